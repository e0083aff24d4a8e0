#include "quant/formats/gguf_vocab.h"

#include <utility>

#include "quant/formats/json.h"
#include "quant/formats/word_split.h"

namespace solverd::quant::internal {
namespace {

// llama.cpp's token types.
enum TokenType : int32_t {
  kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6
};

Status VocabError(const std::string& what) { return InvalidArgument("tokenizer.json: " + what); }

bool IsByteToken(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
}

// Puts `token` at `id`, refusing ids out of range or taken twice.
Status Place(const std::string& token, int64_t id, int32_t type, GgufVocab* out) {
  if (id < 0 || id >= static_cast<int64_t>(out->tokens.size())) {
    return VocabError("token " + JsonQuote(token) + " has id " + std::to_string(id) +
                      ", outside the model's vocab_size " + std::to_string(out->tokens.size()));
  }
  const size_t k = static_cast<size_t>(id);
  if (out->types[k] != kUnused && out->tokens[k] != token) {
    return VocabError("id " + std::to_string(id) + " is both " + JsonQuote(out->tokens[k]) +
                      " and " + JsonQuote(token));
  }
  out->tokens[k] = token;
  out->types[k] = type;
  return Status::Ok();
}

Status ReadMerges(const JsonValue& merges, GgufVocab* out) {
  for (const JsonValue& m : merges.array) {
    if (m.kind == JsonValue::Kind::kString) {  // "a b"
      out->merges.push_back(m.string);
    } else if (m.kind == JsonValue::Kind::kArray && m.array.size() == 2 &&
               m.array[0].kind == JsonValue::Kind::kString &&
               m.array[1].kind == JsonValue::Kind::kString) {  // ["a", "b"]
      out->merges.push_back(m.array[0].string + " " + m.array[1].string);
    } else {
      return VocabError("model.merges: each must be \"a b\" or [\"a\", \"b\"]");
    }
  }
  return Status::Ok();
}

// llama.cpp's name for the word split of `pre` (a pre_tokenizer object):
// its llama-bpe also takes a whole word in the vocabulary as one token,
// as Llama 3's tokenizer.json says with ignore_merges.
std::string LlamaCppPreTokenizer(const JsonValue* pre) {
  WordSplit split = WordSplit::kNone;
  bool prefix_space = false;
  if (pre == nullptr || !ReadWordSplit(*pre, &split, &prefix_space).ok()) return "default";
  switch (split) {
    case WordSplit::kGpt2: return "gpt-2";
    case WordSplit::kLlama3: return "llama-bpe";
    case WordSplit::kQwen2: return "qwen2";
    case WordSplit::kNone: break;
  }
  return "default";
}

}  // namespace

Status VocabFromTokenizerJson(std::string_view json, int64_t vocab_size, GgufVocab* out) {
  JsonValue root;
  if (Status s = ParseJson(json, &root); !s.ok()) return VocabError(s.message());
  return VocabFromTokenizerJson(root, vocab_size, out);
}

Status VocabFromTokenizerJson(const JsonValue& root, int64_t vocab_size, GgufVocab* out) {
  *out = GgufVocab();
  const JsonValue* model = JsonFind(root, "model");
  const JsonValue* type = model == nullptr ? nullptr : JsonFind(*model, "type");
  const JsonValue* vocab = model == nullptr ? nullptr : JsonFind(*model, "vocab");
  if (type == nullptr || type->string != "BPE" || vocab == nullptr ||
      vocab->kind != JsonValue::Kind::kObject) {
    return VocabError("only BPE tokenizers (model.type \"BPE\" with a vocab object) can be "
                      "written for llama.cpp");
  }
  const JsonValue* fallback = JsonFind(*model, "byte_fallback");
  const bool sentencepiece = fallback != nullptr && fallback->boolean;
  out->model = sentencepiece ? "llama" : "gpt2";
  out->tokens.resize(static_cast<size_t>(vocab_size));
  out->types.assign(static_cast<size_t>(vocab_size), kUnused);
  out->scores.assign(static_cast<size_t>(vocab_size), 0.0f);
  const JsonValue* unk = JsonFind(*model, "unk_token");
  for (const JsonMember& m : vocab->object) {
    if (m.value.kind != JsonValue::Kind::kInteger) {
      return VocabError("model.vocab[" + JsonQuote(m.name) + "] must be an integer id");
    }
    int32_t token_type = kNormal;
    if (sentencepiece && IsByteToken(m.name)) token_type = kByte;
    if (unk != nullptr && unk->kind == JsonValue::Kind::kString && unk->string == m.name) {
      token_type = kUnknown;
      out->unknown = m.value.integer;
    }
    SOLVERD_RETURN_IF_ERROR(Place(m.name, m.value.integer, token_type, out));
    if (sentencepiece) {  // earlier tokens (earlier merges) score higher
      out->scores[static_cast<size_t>(m.value.integer)] = -static_cast<float>(m.value.integer);
    }
  }
  if (const JsonValue* added = JsonFind(root, "added_tokens")) {
    for (const JsonValue& a : added->array) {
      const JsonValue* id = JsonFind(a, "id");
      const JsonValue* content = JsonFind(a, "content");
      const JsonValue* special = JsonFind(a, "special");
      if (id == nullptr || id->kind != JsonValue::Kind::kInteger || content == nullptr ||
          content->kind != JsonValue::Kind::kString) {
        return VocabError("added_tokens: each needs an integer id and a string content");
      }
      const bool control = special != nullptr && special->boolean;
      SOLVERD_RETURN_IF_ERROR(
          Place(content->string, id->integer, control ? kControl : kUserDefined, out));
    }
  }
  if (!sentencepiece) {
    if (const JsonValue* merges = JsonFind(*model, "merges")) {
      SOLVERD_RETURN_IF_ERROR(ReadMerges(*merges, out));
    }
    out->pre = LlamaCppPreTokenizer(JsonFind(root, "pre_tokenizer"));
  }
  for (size_t k = 0; k < out->tokens.size(); ++k) {
    if (out->types[k] == kUnused) out->tokens[k] = "[PAD" + std::to_string(k) + "]";
  }
  return Status::Ok();
}

void AddVocabMetadata(const GgufVocab& vocab, int64_t bos, int64_t eos, GgufMetadata* kv) {
  kv->String("tokenizer.ggml.model", vocab.model);
  if (vocab.model == "gpt2") kv->String("tokenizer.ggml.pre", vocab.pre);
  kv->StringArray("tokenizer.ggml.tokens", vocab.tokens);
  kv->Float32Array("tokenizer.ggml.scores", vocab.scores);
  kv->Int32Array("tokenizer.ggml.token_type", vocab.types);
  // llama.cpp requires the key of a gpt2 vocabulary, even with no merges.
  if (vocab.model == "gpt2") kv->StringArray("tokenizer.ggml.merges", vocab.merges);
  const std::pair<const char*, int64_t> ids[] = {{"tokenizer.ggml.bos_token_id", bos},
                                                 {"tokenizer.ggml.eos_token_id", eos},
                                                 {"tokenizer.ggml.unknown_token_id",
                                                  vocab.unknown}};
  for (const auto& [key, id] : ids) {
    if (id >= 0) kv->Uint32(key, static_cast<uint32_t>(id));
  }
}

}  // namespace solverd::quant::internal
