// BearerTokens: the tokens file format and what a presented header maps to.
#include "server/bearer_tokens.h"

#include <gtest/gtest.h>

namespace solverd::server {
namespace {

constexpr char kFile[] = R"(# name token
alice  a1b2c3d4e5f6a7b8c9d0
bob	0123456789abcdef0123   # tab-separated, trailing comment

)";

TEST(BearerTokens, MapsEachTokenToItsName) {
  auto tokens = BearerTokens::Parse(kFile);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_EQ(*tokens->NameFor("Bearer a1b2c3d4e5f6a7b8c9d0"), "alice");
  EXPECT_EQ(*tokens->NameFor("bearer 0123456789abcdef0123"), "bob");
}

TEST(BearerTokens, RefusesMissingMalformedAndUnknownTokens) {
  auto tokens = BearerTokens::Parse(kFile);
  ASSERT_TRUE(tokens.ok());
  for (const char* header : {"", "a1b2c3d4e5f6a7b8c9d0", "Basic a1b2c3d4e5f6a7b8c9d0",
                             "Bearer ", "Bearer a1b2c3d4e5f6a7b8c9d", "Bearer a1b2c3d4e5f6a7b8c9d00",
                             "Bearer A1B2C3D4E5F6A7B8C9D0"}) {
    auto name = tokens->NameFor(header);
    EXPECT_EQ(name.status().code(), absl::StatusCode::kUnauthenticated) << "'" << header << "'";
  }
}

TEST(BearerTokens, FileErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {Case{"alice short\n", "line 1: token shorter than 16"},
                        Case{"\nal ice a1b2c3d4e5f6a7b8c9d0\n", "line 2: expected NAME TOKEN"},
                        Case{"al/ice a1b2c3d4e5f6a7b8c9d0\n", "line 1: name may use only"},
                        Case{"a a1b2c3d4e5f6a7b8c9d0\nb a1b2c3d4e5f6a7b8c9d0\n",
                             "line 2: token repeated (also a's)"},
                        Case{"# nothing\n", "no tokens"}}) {
    auto tokens = BearerTokens::Parse(c.text);
    ASSERT_FALSE(tokens.ok()) << c.text;
    EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(tokens.status().message().find(c.message), std::string::npos)
        << tokens.status().message();
  }
  EXPECT_EQ(BearerTokens::Load("/nonexistent/tokens").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace solverd::server
