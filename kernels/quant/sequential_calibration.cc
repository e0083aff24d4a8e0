#include "quant/sequential_calibration.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>

#include "quant/formats/bpe_tokenizer.h"
#include "quant/formats/byte_sink.h"
#include "quant/formats/json.h"
#include "quant/formats/safetensors.h"
#include "quant/gptq_hessian.h"

namespace solverd::quant {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string_view AsBytes(const void* data, size_t n) {
  return std::string_view(static_cast<const char*>(data), n);
}

// One pass's state: the plan, the per-layer options and the calibration
// file's entries so far.
class Pass {
 public:
  Pass(const Device& device, StreamHandle stream, const ModelPlan& plan,
       const ModelOptions& options, const TokenRuns& runs, ProgressSink* sink,
       const CancelToken* cancel, std::map<std::string, DoneLayer>* done)
      : device_(device), stream_(stream), plan_(plan), options_(options), runs_(runs),
        sink_(sink), cancel_(cancel), done_layers_(done) {
    for (size_t i = 0; i < plan.selected.size(); ++i) selected_[plan.selected[i].name] = i;
    const ModelConfig& c = plan.config;
    shape_ = {c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
              c.head_dim, c.rope_theta, c.rms_norm_eps};
  }

  // Whether any layer from block `block` on is quantized.
  bool QuantizesFrom(int64_t block) const {
    for (const auto& [name, index] : selected_) {
      if (name.rfind("model.layers.", 0) != 0) continue;
      if (std::stoll(name.substr(13)) >= block) return true;
    }
    return false;
  }

  // The forward passes on the plan's device: their activations are
  // allocated now. GPTQ's has a reference pass of the unquantized model
  // beside the quantized one, whose outputs each layer rounds toward.
  Status Start() {
    const int threads = options_.layer.threads;
    SOLVERD_RETURN_IF_ERROR(MakeLlamaForward(device_, stream_, shape_, runs_, threads, &forward_));
    if (options_.layer.method != Method::kGptq) return Status::Ok();
    return MakeLlamaForward(device_, stream_, shape_, runs_, threads, &reference_);
  }
  Status Block(int64_t b);
  Status Embedding(const std::vector<int32_t>& ids) {
    std::vector<float> table;
    SOLVERD_RETURN_IF_ERROR(Floats("model.embed_tokens.weight", &table));
    return OnBoth([&](LlamaForward& f) { return f.Embed(table, ids); });
  }
  // The file into `path` (or *file when there is none).
  Status Finish(const std::string& path, std::string* file);
  Status SpillTo(const std::string& dir) { return writer_.SpillTo(dir); }

 private:
  Status Floats(const std::string& name, std::vector<float>* out) const {
    const TensorEntry* t = plan_.model.Find(name);
    if (t == nullptr) return InvalidArgument("model: tensor " + JsonQuote(name) + " is missing");
    return ReadFloats(plan_.model, *t, out);
  }
  // The bias `name` if the checkpoint has one (qwen2's q/k/v), else null.
  const std::vector<float>* Bias(const std::string& name, std::vector<float>* out) const {
    const TensorEntry* t = plan_.model.Find(name);
    if (t == nullptr || !ReadFloats(plan_.model, *t, out).ok()) return nullptr;
    return out;
  }
  // `step` on the quantized pass, then on the reference pass if any.
  template <typename Step>
  Status OnBoth(const Step& step) {
    SOLVERD_RETURN_IF_ERROR(step(*forward_));
    return reference_ != nullptr ? step(*reference_) : Status::Ok();
  }
  Status Norm(const std::string& name) {
    std::vector<float> weight;
    SOLVERD_RETURN_IF_ERROR(Floats(name, &weight));
    return OnBoth([&](LlamaForward& f) { return f.Norm(weight); });
  }
  // Quantizes the layers `prefix + member + ".weight"` that read `input`
  // from its Hessian (and drift from the reference), records the entries,
  // and keeps each layer's weights as the model will hold them (dequantized
  // when quantized) in weights_, the checkpoint's in originals_.
  Status Group(const std::string& prefix, const std::vector<std::string>& members, Slot input);
  // Layer `member` of the last group applied: out = in W^T on both passes.
  Status Apply(const std::string& prefix, const std::string& member, size_t index, Slot in,
               Slot out) {
    std::vector<float> bias;
    const std::vector<float>* b = Bias(prefix + member + ".bias", &bias);
    SOLVERD_RETURN_IF_ERROR(forward_->Linear(in, weights_[index], b, out));
    return reference_ != nullptr ? reference_->Linear(in, originals_[index], b, out)
                                 : Status::Ok();
  }
  // The layer's weights moved toward the reference outputs (GPTQ only).
  Status Retarget(const std::vector<double>& h, const std::vector<double>& drift, Layer* layer) {
    if (drift.empty()) return Status::Ok();
    return internal::TowardReferenceOutputs(h, drift, options_.layer.damp, layer->rows,
                                            layer->cols, options_.layer.threads,
                                            &layer->weights);
  }
  void Report(const LayerSummary& layer) const {
    if (sink_ == nullptr) return;
    Progress p;
    p.iteration = static_cast<int64_t>(done_layers_->size()) + 1;
    p.stage = "calibration: " + layer.name;
    p.objective = layer.report.relative_output_error;
    p.fraction = static_cast<double>(p.iteration) / static_cast<double>(plan_.selected.size());
    p.elapsed_seconds = SecondsSince(start_);
    p.extras = {{"bits", static_cast<double>(layer.bits)},
                {"layer_seconds", layer.report.seconds}};
    sink_->Report(p);
  }

  const Device& device_;
  StreamHandle stream_;
  const ModelPlan& plan_;
  const ModelOptions& options_;
  const TokenRuns runs_;
  ProgressSink* const sink_;
  const CancelToken* const cancel_;
  std::map<std::string, DoneLayer>* const done_layers_;
  LlamaShape shape_;
  std::unique_ptr<LlamaForward> forward_, reference_;
  std::vector<std::vector<float>> weights_, originals_;  // the last group's
  std::map<std::string, size_t> selected_;
  SafetensorsWriter writer_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

Status Pass::Finish(const std::string& path, std::string* file) {
  if (path.empty()) {
    *file = writer_.Finish();
    return Status::Ok();
  }
  int64_t size = 0;
  return internal::WriteFile(
      path, [&](internal::ByteSink* file) { return writer_.Finish(file); }, &size);
}

Status Pass::Group(const std::string& prefix, const std::vector<std::string>& members,
                   Slot input) {
  const int64_t tokens = runs_.tokens(), width = SlotWidth(shape_, input);
  std::vector<double> h, drift;
  SOLVERD_RETURN_IF_ERROR(forward_->SumOfOuterProducts(input, &h));
  if (reference_ != nullptr) {
    SOLVERD_RETURN_IF_ERROR(forward_->SumOfDriftProducts(input, reference_.get(), &drift));
  }
  std::string base = prefix + members[0];
  if (members.size() > 1) {
    base = prefix + "{";
    for (size_t i = 0; i < members.size(); ++i) base += (i ? "," : "") + members[i];
    base += "}";
  }
  writer_.Add(base + ".hessian", DType::kF64, {width, width},
              AsBytes(h.data(), h.size() * sizeof(double)));
  writer_.Add(base + ".tokens", DType::kI64, {}, AsBytes(&tokens, sizeof(tokens)));
  if (!drift.empty()) {
    writer_.Add(base + ".drift", DType::kF64, {width, width},
                AsBytes(drift.data(), drift.size() * sizeof(double)));
  }
  weights_.resize(members.size());
  originals_.resize(members.size());
  for (size_t m = 0; m < members.size(); ++m) {
    const std::string name = prefix + members[m] + ".weight";
    SOLVERD_RETURN_IF_ERROR(Floats(name, &originals_[m]));
    weights_[m] = originals_[m];
    const auto found = selected_.find(name);
    if (found == selected_.end()) continue;  // not quantized: runs as it is
    SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel_));
    const TensorEntry& t = plan_.selected[found->second];
    Layer layer;
    layer.rows = t.shape[0];
    layer.cols = t.shape[1];
    layer.weights = std::move(weights_[m]);
    layer.hessian = h;
    layer.hessian_tokens = tokens;
    Options o = options_.layer;
    o.bits = plan_.bits[found->second];
    const auto begin = std::chrono::steady_clock::now();
    DoneLayer done;
    Status s = Retarget(h, drift, &layer);
    if (s.ok()) s = QuantizeLayer(device_, stream_, layer, o, cancel_, &done.layer);
    if (!s.ok()) {
      return Status(s.code(), "calibration: layer " + JsonQuote(name) + ": " + s.message());
    }
    internal::Summarize(t, layer, done.layer, o.threads, SecondsSince(begin), &done.summary);
    weights_[m] = std::move(done.layer.dequantized);
    done.layer.dequantized = {};
    Report(done.summary);
    done_layers_->emplace(name, std::move(done));
  }
  return Status::Ok();
}

Status Pass::Block(int64_t b) {
  const std::string block = "model.layers." + std::to_string(b) + ".";
  const std::string attn = block + "self_attn.", mlp = block + "mlp.";
  const auto attend = [](LlamaForward& f) { return f.Attend(); };
  const auto gate = [](LlamaForward& f) { return f.Gate(); };
  const auto add = [](LlamaForward& f) { return f.AddToResidual(); };

  SOLVERD_RETURN_IF_ERROR(Norm(block + "input_layernorm.weight"));
  SOLVERD_RETURN_IF_ERROR(Group(attn, {"q_proj", "k_proj", "v_proj"}, Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(Apply(attn, "q_proj", 0, Slot::kNormed, Slot::kQuery));
  SOLVERD_RETURN_IF_ERROR(Apply(attn, "k_proj", 1, Slot::kNormed, Slot::kKey));
  SOLVERD_RETURN_IF_ERROR(Apply(attn, "v_proj", 2, Slot::kNormed, Slot::kValue));
  SOLVERD_RETURN_IF_ERROR(OnBoth(attend));
  SOLVERD_RETURN_IF_ERROR(Group(attn, {"o_proj"}, Slot::kMixed));
  SOLVERD_RETURN_IF_ERROR(Apply(attn, "o_proj", 0, Slot::kMixed, Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(OnBoth(add));

  SOLVERD_RETURN_IF_ERROR(Norm(block + "post_attention_layernorm.weight"));
  SOLVERD_RETURN_IF_ERROR(Group(mlp, {"gate_proj", "up_proj"}, Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(Apply(mlp, "gate_proj", 0, Slot::kNormed, Slot::kGate));
  SOLVERD_RETURN_IF_ERROR(Apply(mlp, "up_proj", 1, Slot::kNormed, Slot::kUp));
  SOLVERD_RETURN_IF_ERROR(OnBoth(gate));
  SOLVERD_RETURN_IF_ERROR(Group(mlp, {"down_proj"}, Slot::kGate));
  SOLVERD_RETURN_IF_ERROR(Apply(mlp, "down_proj", 0, Slot::kGate, Slot::kNormed));
  return OnBoth(add);
}

}  // namespace

Status ReadCalibrationTokens(std::string_view file, int64_t vocab, int64_t max_length,
                             std::vector<int32_t>* ids, TokenRuns* runs) {
  SafetensorsFile parsed;
  SOLVERD_RETURN_IF_ERROR(ParseSafetensors(file, &parsed));
  const TensorEntry* t = parsed.Find("tokens");
  if (t == nullptr || (t->dtype != DType::kI32 && t->dtype != DType::kI64) ||
      t->shape.size() != 2 || t->shape[0] < 1 || t->shape[1] < 1) {
    return InvalidArgument("needs the tensor \"tokens\", I32 or I64 [sequences, length]");
  }
  if (max_length > 0 && t->shape[1] > max_length) {
    return InvalidArgument("\"tokens\": sequences of " + std::to_string(t->shape[1]) +
                           " tokens exceed the model's context of " + std::to_string(max_length));
  }
  runs->sequences = t->shape[0];
  runs->length = t->shape[1];
  const std::string_view bytes = parsed.Bytes(*t);
  const int64_t n = t->elements(), size = DTypeSize(t->dtype);
  ids->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t id = 0;
    if (size == 4) {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      id = v;
    } else {
      std::memcpy(&id, bytes.data() + 8 * i, 8);
    }
    if (id < 0 || id >= vocab) {
      return InvalidArgument("\"tokens\": entry " + std::to_string(i) + " is " +
                             std::to_string(id) + ", outside the vocabulary [0, " +
                             std::to_string(vocab) + ")");
    }
    (*ids)[i] = static_cast<int32_t>(id);
  }
  return Status::Ok();
}

Status CalibrationTokensFromText(std::string_view text, std::string_view tokenizer_json,
                                 int64_t vocab, int64_t max_length, int64_t sequences,
                                 int64_t length, std::vector<int32_t>* ids, TokenRuns* runs) {
  constexpr int64_t kDefaultSequences = 128, kDefaultLength = 512;
  if (max_length > 0 && length > max_length) {
    return InvalidArgument("calibration_length " + std::to_string(length) +
                           " exceeds the model's context of " + std::to_string(max_length));
  }
  if (length == 0) length = max_length > 0 ? std::min(kDefaultLength, max_length) : kDefaultLength;
  if (tokenizer_json.empty()) {
    return InvalidArgument("the checkpoint has no tokenizer.json to read the text with: send "
                           "calibration_tokens instead");
  }
  BpeTokenizer tokenizer;
  SOLVERD_RETURN_IF_ERROR(BpeTokenizer::Parse(tokenizer_json, vocab, &tokenizer));
  // Each run starts as the tokenizer starts a sequence (Llama 2's <s>).
  const std::vector<int32_t>& start = tokenizer.sequence_start();
  const int64_t body = length - static_cast<int64_t>(start.size());
  const std::string after =
      start.empty() ? ""
                    : " after the " + std::to_string(start.size()) +
                          (start.size() == 1 ? " token" : " tokens") +
                          " the tokenizer starts each sequence with";
  if (body < 1) {
    return InvalidArgument("calibration_length " + std::to_string(length) + " leaves no room"
                           " for text" + after);
  }
  std::vector<int32_t> text_ids;
  SOLVERD_RETURN_IF_ERROR(tokenizer.Encode(text, &text_ids));
  const int64_t held = static_cast<int64_t>(text_ids.size()) / body;
  if (held == 0 || held < sequences) {
    return InvalidArgument("the text is " + std::to_string(text_ids.size()) + " tokens, fewer "
                           "than " + std::to_string(std::max<int64_t>(sequences, 1)) +
                           " sequences of " + std::to_string(body) + after);
  }
  runs->sequences = sequences > 0 ? sequences : std::min(held, kDefaultSequences);
  runs->length = length;
  ids->clear();
  for (int64_t r = 0; r < runs->sequences; ++r) {
    ids->insert(ids->end(), start.begin(), start.end());
    ids->insert(ids->end(), text_ids.begin() + r * body, text_ids.begin() + (r + 1) * body);
  }
  return Status::Ok();
}

bool CalibratedBySequentialPass(std::string_view name) {
  constexpr std::string_view kBlocks = "model.layers.";
  if (name.substr(0, kBlocks.size()) != kBlocks) return false;
  name.remove_prefix(kBlocks.size());
  const size_t digits = name.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string_view::npos || name[digits] != '.') return false;
  name.remove_prefix(digits + 1);
  for (const std::string_view layer :
       {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight"}) {
    if (name == layer) return true;
  }
  return false;
}

int64_t SequentialMemoryBytes(const ModelPlan& plan, const TokenRuns& runs, Method method,
                              bool file_in_memory) {
  const int64_t passes = method == Method::kGptq ? 2 : 1;
  const ModelConfig& c = plan.config;
  const int64_t per_token = 6 * c.hidden_size + 3 * c.intermediate_size;
  const int64_t widest = std::max(c.hidden_size, c.intermediate_size);
  // The file of Hessians, held until the job ends: per block, q/k/v's, o's
  // and gate/up's (hidden wide; o reads heads x head_dim) and down's.
  const int64_t q_width = c.num_attention_heads * c.head_dim;
  const int64_t per_block =
      2 * c.hidden_size * c.hidden_size + q_width * q_width +
      c.intermediate_size * c.intermediate_size;
  return passes * (runs.tokens() * per_token * 4 + widest * widest * 8 * 2) +
         plan.selected_weights +
         (file_in_memory ? passes * c.num_hidden_layers * per_block * 8 : 0);
}

Status SequentialCalibration(const Device& device, StreamHandle stream, ModelPlan* plan,
                             const ModelOptions& options, const std::vector<int32_t>& ids,
                             const TokenRuns& runs, ProgressSink* sink,
                             const CancelToken* cancel, const std::string& path,
                             std::string* calibration_file) {
  if (!IsLlamaFamily(plan->config.model_type)) {
    return InvalidArgument("calibration from tokens needs a Llama-family checkpoint "
                           "(config.json model_type llama, mistral or qwen2)");
  }
  Pass pass(device, stream, *plan, options, runs, sink, cancel, &plan->done_layers);
  if (!path.empty()) SOLVERD_RETURN_IF_ERROR(pass.SpillTo(internal::FolderOf(path)));
  Status s = pass.Start();
  if (s.ok()) s = pass.Embedding(ids);
  for (int64_t b = 0; s.ok() && b < plan->config.num_hidden_layers && pass.QuantizesFrom(b);
       ++b) {
    s = pass.Block(b);
  }
  if (s.ok()) s = pass.Finish(path, calibration_file);  // removes a file it cut short
  return s;
}

}  // namespace solverd::quant
