// quant_gpu_bench: the GPU half of the quant benchmark, for a lent GPU
// machine (built with kernels/ alone; scripts/gpu-check.sh runs it from the
// repository root). Prints one JSON object in the bench format of DESIGN.md:
//  - rtn on a 4096 x 4096 fp16 layer, CPU (all cores) against CUDA: seconds
//    and bytes of fp16 weights per second, warm buffers;
//  - every method on the project's LM (bench/quant/data/kjv-lm.safetensors,
//    Gaussian calibration inputs for the methods that need them), whole
//    model on each backend: seconds, the summed squared output error and the
//    largest violation, and whether the two output files are byte for byte
//    the same (the CPU and CUDA paths compute one function; dmmv's searches
//    break L2 ties on sums taken in another order, so there the errors are
//    what compares).
// Without a GPU it prints the CPU half. `--only=rtn` or `--only=lm` runs one
// part (for a profiler); an optional path names another model.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/gpu_bench_util.h"
#include "common/device.h"
#include "quant/model.h"
#include "quant/quant.h"

namespace {

namespace quant = solverd::quant;
using solverd::Device;
using solverd::StreamHandle;

solverd::bench::BenchRecords records;

double Seconds(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<float> Gaussian(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

struct Backend {
  std::string name;
  Device device;
  StreamHandle stream = nullptr;
};

void RtnThroughput(const std::vector<Backend>& backends) {
  quant::Layer layer;
  layer.rows = layer.cols = 4096;
  layer.weights = Gaussian(layer.rows * layer.cols, 1, 0.02f);
  quant::Options options;
  options.bits = 4;
  options.threads = static_cast<int>(std::thread::hardware_concurrency());
  const double bytes = 2.0 * static_cast<double>(layer.rows * layer.cols);  // as fp16
  for (const Backend& b : backends) {
    quant::QuantizedLayer q;
    double best = 1e30;
    for (int rep = 0; rep < 4; ++rep) {  // the first warms the buffers
      const auto start = std::chrono::steady_clock::now();
      const solverd::Status s = quant::QuantizeLayer(b.device, b.stream, layer, options,
                                                     nullptr, &q);
      if (!s.ok()) {
        std::fprintf(stderr, "rtn on %s: %s\n", b.name.c_str(), s.ToString().c_str());
        return;
      }
      if (rep > 0) best = std::min(best, Seconds(start));
    }
    records.Add("rtn_fp16_4096", "solverd-rtn", b.name, "seconds", best);
    records.Add("rtn_fp16_4096", "solverd-rtn", b.name, "bytes_per_second", bytes / best);
  }
}

// Gaussian `<layer>.inputs` [512, in] for every 2-D tensor of the model.
std::string CalibrationFor(const quant::SafetensorsFile& model) {
  quant::SafetensorsWriter w;
  uint32_t seed = 7;
  for (const quant::TensorEntry& t : model.tensors) {
    if (t.shape.size() != 2) continue;
    w.Add(quant::LayerName(t.name) + ".inputs", quant::DType::kF32, {512, t.shape[1]},
          quant::FloatsToBytes(Gaussian(512 * t.shape[1], seed++, 1)));
  }
  return w.Finish();
}

void LanguageModel(const std::vector<Backend>& backends, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  const std::string model = bytes.str();
  quant::SafetensorsFile parsed;
  if (!in || !quant::ParseSafetensors(model, &parsed).ok()) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return;
  }
  const std::string calibration = CalibrationFor(parsed);
  const quant::Method methods[] = {quant::Method::kRtn, quant::Method::kHqq,
                                   quant::Method::kGptq, quant::Method::kDmmv,
                                   quant::Method::kNf4};
  for (const quant::Method method : methods) {
    quant::ModelOptions options;
    options.layer.method = method;
    options.layer.bits = method == quant::Method::kNf4 ? 4 : 3;
    options.layer.dmmv_time_limit_seconds = 0;
    options.layer.dmmv_outer_iterations = 2;  // the CPU half takes minutes otherwise
    options.layer.threads = static_cast<int>(std::thread::hardware_concurrency());
    options.exclude = quant::DefaultExcludes();
    quant::ModelPlan plan;
    solverd::Status s = quant::PlanModel(model, calibration, options, &plan);
    std::vector<std::string> files;
    const std::string name = std::string("solverd-") + quant::MethodName(method);
    for (const Backend& b : backends) {
      quant::ModelResult result;
      const auto start = std::chrono::steady_clock::now();
      if (s.ok()) s = quant::QuantizeModel(b.device, b.stream, plan, options, nullptr, nullptr,
                                           &result);
      if (!s.ok()) {
        std::fprintf(stderr, "%s on %s: %s\n", name.c_str(), b.name.c_str(),
                     s.ToString().c_str());
        return;
      }
      records.Add("lm_model", name, b.name, "seconds", Seconds(start));
      double error_squared = 0, max_violation = 0;
      for (const quant::LayerSummary& layer : result.layers) {
        error_squared += layer.report.output_error_squared;
        max_violation = std::max(max_violation, layer.report.max_violation);
      }
      records.Add("lm_model", name, b.name, "output_error_squared", error_squared);
      records.Add("lm_model", name, b.name, "max_violation", max_violation);
      files.push_back(std::move(result.file));
    }
    if (files.size() == 2) {
      records.Add("lm_model", name, "cuda", "files_identical_to_cpu", files[0] == files[1]);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Backend> backends = {{"cpu", Device::Cpu(), nullptr}};
  std::string machine = "cpu only";
  if (solverd::CudaDeviceCount() > 0) {
    Backend cuda{"cuda", Device::Cuda(0), nullptr};
    if (solverd::CreateStream(0, &cuda.stream).ok()) backends.push_back(cuda);
    machine = solverd::CudaDeviceName(0);
  }
  std::string only, model = "bench/quant/data/kjv-lm.safetensors";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--only=", 0) == 0) {
      only = arg.substr(7);
    } else {
      model = arg;
    }
  }
  if (only.empty() || only == "rtn") RtnThroughput(backends);
  if (only.empty() || only == "lm") LanguageModel(backends, model);
  records.Print("quant", machine);
  if (backends.size() == 2) solverd::DestroyStream(backends[1].stream);
  return 0;
}
