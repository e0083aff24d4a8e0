#include "quant/formats/bpe_tokenizer.h"

#include <string>

#include "quant/formats/gguf_vocab.h"
#include "quant/formats/json.h"

namespace solverd::quant {
namespace {

Status TokenizerError(const std::string& what) {
  return InvalidArgument("tokenizer.json: " + what);
}

// GPT-2's characters for the 256 bytes: printable Latin-1 stands for
// itself, every other byte for U+0100 on, in byte order; as UTF-8.
const std::vector<std::string>& ByteCharacters() {
  static const std::vector<std::string>* const kTable = [] {
    auto* table = new std::vector<std::string>(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t c = printable ? b : next++;
      std::string& s = (*table)[b];
      if (c < 0x80) {
        s.push_back(static_cast<char>(c));
      } else {
        s.push_back(static_cast<char>(0xC0 | (c >> 6)));
        s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    }
    return table;
  }();
  return *kTable;
}

// The normalizer's steps: NFC (not applied, see the header), Prepend, and
// Replace of a string, alone or in a Sequence.
Status ReadNormalizer(const JsonValue* normalizer,
                      std::vector<std::pair<std::string, std::string>>* edits) {
  if (normalizer == nullptr || normalizer->kind == JsonValue::Kind::kNull) return Status::Ok();
  const JsonValue* steps = JsonFind(*normalizer, "normalizers");
  const bool sequence = JsonStringOr(*normalizer, "type") == "Sequence" && steps != nullptr;
  const size_t count = sequence ? steps->array.size() : 1;
  for (size_t k = 0; k < count; ++k) {
    const JsonValue& step = sequence ? steps->array[k] : *normalizer;
    const std::string type = JsonStringOr(step, "type");
    const JsonValue* prepend = JsonFind(step, "prepend");
    const JsonValue* pattern = JsonFind(step, "pattern");
    const JsonValue* from = pattern == nullptr ? nullptr : JsonFind(*pattern, "String");
    const JsonValue* to = JsonFind(step, "content");
    if (type == "NFC") continue;
    if (type == "Prepend" && prepend != nullptr && prepend->kind == JsonValue::Kind::kString) {
      edits->emplace_back("", prepend->string);
    } else if (type == "Replace" && from != nullptr && from->kind == JsonValue::Kind::kString &&
               !from->string.empty() && to != nullptr &&
               to->kind == JsonValue::Kind::kString) {
      edits->emplace_back(from->string, to->string);
    } else {
      return TokenizerError("normalizer " + JsonQuote(type) + " is not applied by the server "
                            "(NFC, Prepend, Replace of a string): send calibration_tokens "
                            "instead");
    }
  }
  return Status::Ok();
}

// model.merges as pairs, "a b" or ["a", "b"].
Status ReadMerges(const JsonValue& model, std::vector<std::pair<std::string, std::string>>* out) {
  const JsonValue* merges = JsonFind(model, "merges");
  if (merges == nullptr) return Status::Ok();
  for (const JsonValue& m : merges->array) {
    const size_t space = m.string.find(' ');
    if (m.kind == JsonValue::Kind::kString && space != std::string::npos &&
        m.string.find(' ', space + 1) == std::string::npos) {
      out->emplace_back(m.string.substr(0, space), m.string.substr(space + 1));
    } else if (m.kind == JsonValue::Kind::kArray && m.array.size() == 2) {
      out->emplace_back(m.array[0].string, m.array[1].string);
    } else {
      return TokenizerError("model.merges: each must be \"a b\" or [\"a\", \"b\"]");
    }
  }
  return Status::Ok();
}

// The ids of the special tokens a TemplateProcessing post_processor (alone
// or in a Sequence) puts before a single sequence.
Status ReadSequenceStart(const JsonValue* post, int64_t vocab_size, std::vector<int32_t>* ids) {
  if (post == nullptr || post->kind == JsonValue::Kind::kNull) return Status::Ok();
  if (const JsonValue* steps = JsonFind(*post, "processors")) {
    for (const JsonValue& step : steps->array) {
      SOLVERD_RETURN_IF_ERROR(ReadSequenceStart(&step, vocab_size, ids));
    }
    return Status::Ok();
  }
  const JsonValue* single = JsonFind(*post, "single");
  const JsonValue* specials = JsonFind(*post, "special_tokens");
  if (JsonStringOr(*post, "type") != "TemplateProcessing" || single == nullptr ||
      specials == nullptr) {
    return Status::Ok();
  }
  for (const JsonValue& piece : single->array) {
    const JsonValue* special = JsonFind(piece, "SpecialToken");
    if (special == nullptr) break;  // the sequence itself: what follows ends it
    const JsonValue* name = JsonFind(*special, "id");
    const JsonValue* entry = name == nullptr ? nullptr : JsonFind(*specials, name->string);
    const JsonValue* entry_ids = entry == nullptr ? nullptr : JsonFind(*entry, "ids");
    if (entry_ids == nullptr) {
      return TokenizerError("post_processor: special token " +
                            JsonQuote(name == nullptr ? "" : name->string) + " has no ids");
    }
    for (const JsonValue& id : entry_ids->array) {
      if (id.kind != JsonValue::Kind::kInteger || id.integer < 0 || id.integer >= vocab_size) {
        return TokenizerError("post_processor: special token " + JsonQuote(name->string) +
                              " has an id outside the vocabulary [0, " +
                              std::to_string(vocab_size) + ")");
      }
      ids->push_back(static_cast<int32_t>(id.integer));
    }
  }
  return Status::Ok();
}

// `s` with every `from` (not empty) replaced by `to`.
std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string replaced;
  for (size_t at = 0;;) {
    const size_t found = s.find(from, at);
    replaced.append(s.substr(at, found == std::string_view::npos ? found : found - at));
    if (found == std::string_view::npos) return replaced;
    replaced.append(to);
    at = found + from.size();
  }
}

std::string ByteTokenName(int b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

}  // namespace

Status BpeTokenizer::Parse(std::string_view tokenizer_json, int64_t vocab_size,
                           BpeTokenizer* out) {
  *out = BpeTokenizer();
  JsonValue root;
  if (Status s = ParseJson(tokenizer_json, &root); !s.ok()) return TokenizerError(s.message());
  internal::GgufVocab vocab;
  SOLVERD_RETURN_IF_ERROR(internal::VocabFromTokenizerJson(root, vocab_size, &vocab));
  const JsonValue& model = *JsonFind(root, "model");  // VocabFromTokenizerJson checked it
  for (const JsonMember& m : JsonFind(model, "vocab")->object) {
    out->vocab_.emplace(m.name, static_cast<int32_t>(m.value.integer));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  SOLVERD_RETURN_IF_ERROR(ReadMerges(model, &merges));
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t ids[] = {out->Find(left), out->Find(right), out->Find(left + right)};
    if (ids[0] < 0 || ids[1] < 0 || ids[2] < 0) {
      return TokenizerError("model.merges[" + std::to_string(rank) + "]: " +
                            JsonQuote(left + " " + right) + " names or makes a token that is "
                            "not in the vocabulary");
    }
    out->merges_.Add(ids[0], ids[1], ids[2]);
  }
  SOLVERD_RETURN_IF_ERROR(ReadNormalizer(JsonFind(root, "normalizer"), &out->normalizer_));
  SOLVERD_RETURN_IF_ERROR(
      ReadSequenceStart(JsonFind(root, "post_processor"), vocab_size, &out->sequence_start_));
  out->sentence_piece_ = vocab.model == "llama";
  if (out->sentence_piece_) return out->ParseSentencePiece(root, model);
  for (int b = 0; b < 256; ++b) out->byte_ids_[b] = out->Find(ByteCharacters()[b]);
  const JsonValue* pre = JsonFind(root, "pre_tokenizer");
  if (pre == nullptr || pre->kind == JsonValue::Kind::kNull) {
    return TokenizerError("a byte-level vocabulary needs a ByteLevel pre_tokenizer");
  }
  SOLVERD_RETURN_IF_ERROR(ReadWordSplit(*pre, &out->split_, &out->add_prefix_space_));
  out->ignore_merges_ = JsonBoolOr(model, "ignore_merges", false);
  return Status::Ok();
}

Status BpeTokenizer::ParseSentencePiece(const JsonValue& root, const JsonValue& model) {
  for (int b = 0; b < 256; ++b) byte_ids_[b] = Find(ByteTokenName(b));
  const JsonValue* unknown = JsonFind(model, "unk_token");
  if (unknown != nullptr && unknown->kind == JsonValue::Kind::kString) {
    unknown_ = Find(unknown->string);
  }
  fuse_unknown_ = JsonBoolOr(model, "fuse_unk", false);
  const JsonValue* pre = JsonFind(root, "pre_tokenizer");
  if (pre == nullptr || pre->kind == JsonValue::Kind::kNull) return Status::Ok();
  const JsonValue* replacement = JsonFind(*pre, "replacement");
  const JsonValue* scheme = JsonFind(*pre, "prepend_scheme");
  const std::string type = JsonStringOr(*pre, "type");
  if (type != "Metaspace" || (replacement != nullptr && replacement->string.empty())) {
    return TokenizerError("pre_tokenizer " + JsonQuote(type) + " is not one the server "
                          "applies to a SentencePiece-style vocabulary (none, or Metaspace): "
                          "send calibration_tokens instead");
  }
  metaspace_ = replacement != nullptr ? replacement->string : "\u2581";
  // "first" prepends to the text's first piece: the whole text here.
  metaspace_prepend_ = scheme != nullptr ? scheme->string != "never"
                                         : JsonBoolOr(*pre, "add_prefix_space", true);
  metaspace_split_ = JsonBoolOr(*pre, "split", true);
  return Status::Ok();
}

std::string BpeTokenizer::Normalize(std::string_view text) const {
  std::string s(text);
  for (const auto& [from, to] : normalizer_) {
    if (from.empty()) {
      if (!s.empty()) s.insert(0, to);
    } else {
      s = ReplaceAll(s, from, to);
    }
  }
  return s;
}

Status BpeTokenizer::SentencePieceSymbols(std::string_view word,
                                          std::vector<int32_t>* ids) const {
  std::vector<uint32_t> code_points;
  std::vector<size_t> at;
  SOLVERD_RETURN_IF_ERROR(DecodeUtf8(word, &code_points, &at));
  for (size_t k = 0; k + 1 < at.size(); ++k) {
    const std::string_view c = word.substr(at[k], at[k + 1] - at[k]);
    if (const int32_t id = Find(std::string(c)); id >= 0) {
      ids->push_back(id);
      continue;
    }
    bool bytes = true;
    for (const char b : c) bytes = bytes && byte_ids_[static_cast<unsigned char>(b)] >= 0;
    if (bytes) {
      for (const char b : c) ids->push_back(byte_ids_[static_cast<unsigned char>(b)]);
    } else if (unknown_ >= 0) {
      if (!fuse_unknown_ || ids->empty() || ids->back() != unknown_) ids->push_back(unknown_);
    } else {
      return TokenizerError("the vocabulary has no token for " + JsonQuote(c) +
                            ", no <0xNN> tokens for its bytes and no unk_token");
    }
  }
  return Status::Ok();
}

Status BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  std::vector<int32_t> symbols;
  if (sentence_piece_) {
    SOLVERD_RETURN_IF_ERROR(SentencePieceSymbols(word, &symbols));
  } else {
    std::string whole;
    for (const char b : word) whole += ByteCharacters()[static_cast<unsigned char>(b)];
    if (const int32_t id = ignore_merges_ ? Find(whole) : -1; id >= 0) {
      ids->push_back(id);
      return Status::Ok();
    }
    for (const char b : word) {
      const int32_t id = byte_ids_[static_cast<unsigned char>(b)];
      if (id < 0) {
        return TokenizerError("the vocabulary has no token " +
                              JsonQuote(ByteCharacters()[static_cast<unsigned char>(b)]) +
                              " for a byte of the word " + JsonQuote(word));
      }
      symbols.push_back(id);
    }
  }
  merges_.Apply(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  return Status::Ok();
}

std::string BpeTokenizer::Metaspace(std::string_view text) const {
  std::string replaced = ReplaceAll(text, " ", metaspace_);
  if (metaspace_prepend_ && !replaced.empty() &&
      replaced.compare(0, metaspace_.size(), metaspace_) != 0) {
    replaced.insert(0, metaspace_);
  }
  return replaced;
}

Status BpeTokenizer::Encode(std::string_view text, std::vector<int32_t>* ids) const {
  {  // invalid UTF-8 named at its offset in the text as given
    std::vector<uint32_t> code_points;
    std::vector<size_t> at;
    SOLVERD_RETURN_IF_ERROR(DecodeUtf8(text, &code_points, &at));
  }
  std::string prepared = Normalize(text);
  if (!metaspace_.empty()) prepared = Metaspace(prepared);
  if (add_prefix_space_ && !prepared.empty() && prepared[0] != ' ') prepared.insert(0, " ");
  std::vector<std::pair<size_t, size_t>> words;
  if (!sentence_piece_) {
    SOLVERD_RETURN_IF_ERROR(SplitWords(prepared, split_, &words));
  } else if (metaspace_split_ && !metaspace_.empty()) {  // each word from a "▁" on
    size_t begin = 0;
    for (size_t at = prepared.find(metaspace_, 1); at != std::string::npos;
         at = prepared.find(metaspace_, at + 1)) {
      words.emplace_back(begin, at);
      begin = at;
    }
    if (begin < prepared.size()) words.emplace_back(begin, prepared.size());
  } else if (!prepared.empty()) {
    words.emplace_back(0, prepared.size());
  }
  std::unordered_map<std::string_view, std::vector<int32_t>> seen;  // words repeat
  for (const auto& [begin, end] : words) {
    const std::string_view word = std::string_view(prepared).substr(begin, end - begin);
    auto found = seen.find(word);
    if (found == seen.end()) {
      std::vector<int32_t> word_ids;
      SOLVERD_RETURN_IF_ERROR(EncodeWord(word, &word_ids));
      found = seen.emplace(word, std::move(word_ids)).first;
    }
    ids->insert(ids->end(), found->second.begin(), found->second.end());
  }
  return Status::Ok();
}

}  // namespace solverd::quant
