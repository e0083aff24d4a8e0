#include "server/families/sor/matrix_market.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/status_util.h"

namespace solverd::server {
namespace {

struct Triplet {
  int64_t row, col;
  double value;
};

absl::Status LineError(absl::string_view field, int64_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": line ", line, ": ", what));
}

// The next line that is neither blank nor a comment, or false at the end.
bool NextDataLine(absl::string_view text, size_t* pos, int64_t* line, absl::string_view* out) {
  while (*pos < text.size()) {
    size_t end = text.find('\n', *pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view l = absl::StripAsciiWhitespace(text.substr(*pos, end - *pos));
    *pos = end + 1;
    ++*line;
    if (!l.empty() && l[0] != '%') {
      *out = l;
      return true;
    }
  }
  return false;
}

std::vector<absl::string_view> Fields(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

}  // namespace

absl::StatusOr<::solverd::sor::CsrMatrix> ParseMatrixMarket(absl::string_view text,
                                                            absl::string_view field) {
  const size_t header_end = std::min(text.find('\n'), text.size());
  const std::string header = absl::AsciiStrToLower(text.substr(0, header_end));
  const std::vector<absl::string_view> h = Fields(header);
  if (h.size() != 5 || h[0] != "%%matrixmarket" || h[1] != "matrix") {
    return LineError(field, 1, "not a Matrix Market header (%%MatrixMarket matrix ...)");
  }
  if (h[2] != "coordinate") return LineError(field, 1, "only the coordinate format is read");
  const bool pattern = h[3] == "pattern";
  if (!pattern && h[3] != "real" && h[3] != "integer") {
    return LineError(field, 1, absl::StrCat("field type ", h[3], " is not real, integer or pattern"));
  }
  const bool symmetric = h[4] == "symmetric";
  if (!symmetric && h[4] != "general") {
    return LineError(field, 1, absl::StrCat("symmetry ", h[4], " is not general or symmetric"));
  }
  size_t pos = header_end + 1;
  int64_t line = 1;
  absl::string_view data;
  if (!NextDataLine(text, &pos, &line, &data)) return LineError(field, line, "missing size line");
  const std::vector<absl::string_view> size = Fields(data);
  int64_t rows = 0, cols = 0, entries = 0;
  if (size.size() != 3 || !absl::SimpleAtoi(size[0], &rows) || !absl::SimpleAtoi(size[1], &cols) ||
      !absl::SimpleAtoi(size[2], &entries)) {
    return LineError(field, line, "size line must be: rows cols entries");
  }
  if (rows != cols) return LineError(field, line, absl::StrCat("matrix is ", rows, " x ", cols, ", not square"));
  if (rows <= 0 || rows >= (int64_t{1} << 31)) return LineError(field, line, "row count out of range");
  // Divided, not multiplied: a count near INT64_MAX must not overflow.
  if (entries < 0 || entries > kMaxMatrixMarketEntries / (symmetric ? 2 : 1)) {
    return LineError(field, line, absl::StrCat("entry count out of range (at most ",
                                               kMaxMatrixMarketEntries, ")"));
  }
  std::vector<Triplet> triplets;
  // Each entry takes at least 4 bytes of text: a lying count cannot
  // make us reserve more than the text supports.
  triplets.reserve(std::min<int64_t>(entries, text.size() / 4) * (symmetric ? 2 : 1));
  for (int64_t k = 0; k < entries; ++k) {
    if (!NextDataLine(text, &pos, &line, &data)) {
      return LineError(field, line, absl::StrCat("expected ", entries, " entries, found ", k));
    }
    const std::vector<absl::string_view> f = Fields(data);
    Triplet t{0, 0, 1.0};
    if (f.size() != (pattern ? 2u : 3u) || !absl::SimpleAtoi(f[0], &t.row) ||
        !absl::SimpleAtoi(f[1], &t.col) || (!pattern && !absl::SimpleAtod(f[2], &t.value))) {
      return LineError(field, line, pattern ? "entry must be: row col" : "entry must be: row col value");
    }
    if (t.row < 1 || t.row > rows || t.col < 1 || t.col > cols) {
      return LineError(field, line, absl::StrCat("index (", t.row, ", ", t.col, ") out of range"));
    }
    if (!std::isfinite(t.value)) return LineError(field, line, "value is not finite");
    if (symmetric && t.col > t.row) {
      return LineError(field, line, "symmetric files store the lower triangle only");
    }
    --t.row;
    --t.col;
    triplets.push_back(t);
    if (symmetric && t.row != t.col) triplets.push_back({t.col, t.row, t.value});
  }
  std::sort(triplets.begin(), triplets.end(), [](const Triplet& a, const Triplet& b) {
    return std::tie(a.row, a.col) < std::tie(b.row, b.col);
  });
  ::solverd::sor::CsrMatrix a;
  a.n = static_cast<int32_t>(rows);
  a.row_ptr.assign(rows + 1, 0);
  for (size_t k = 0; k < triplets.size(); ++k) {
    if (k > 0 && triplets[k].row == triplets[k - 1].row && triplets[k].col == triplets[k - 1].col) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": duplicate entry (",
          triplets[k].row + 1, ", ", triplets[k].col + 1, ")"));
    }
    ++a.row_ptr[triplets[k].row + 1];
    a.col_idx.push_back(static_cast<int32_t>(triplets[k].col));
    a.values.push_back(triplets[k].value);
  }
  for (int64_t i = 0; i < rows; ++i) a.row_ptr[i + 1] += a.row_ptr[i];
  if (absl::Status s = FromKernel(::solverd::sor::ValidateCsr(a, std::string(field))); !s.ok()) {
    return s;
  }
  return a;
}

}  // namespace solverd::server
