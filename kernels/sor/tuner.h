// Tuner: learns the relaxation parameter omega online across a sequence of
// linear systems, from the iteration count each solve took ("Learning to
// Relax", Khodak, Chow, Balcan, Talwalkar, ICLR 2024).
//
// For each system the caller asks Choose(context) for a grid index, solves
// with that omega and reports the iterations with Observe(). Algorithms:
//   kFixed        always the configured omega;
//   kGridOracle   every grid omega on every system (the expensive baseline
//                 that yields best-fixed-in-hindsight and instance-optimal);
//   kTsallisInf   Tsallis-INF bandit (non-contextual);
//   kTsallisInfCb one Tsallis-INF per bin of the scalar context;
//   kChebCb       per-arm least squares on Chebyshev features of the
//                 context with inverse-gap-weighted sampling.
// Deterministic given the seed and the sequence of observations.
// Thread-safe: Choose/Observe/Snapshot lock internally.
#ifndef SOLVERD_KERNELS_SOR_TUNER_H_
#define SOLVERD_KERNELS_SOR_TUNER_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

namespace solverd::sor {

enum class TunerAlgorithm { kFixed, kGridOracle, kTsallisInf, kTsallisInfCb, kChebCb };

struct TunerConfig {
  TunerAlgorithm algorithm = TunerAlgorithm::kTsallisInf;
  std::vector<double> grid;  // candidate omegas; empty: linspace(1, 1.95, 20)
  double fixed_omega = 1.0;  // kFixed
  uint64_t seed = 0;
  // Contextual algorithms: the context's expected range (values outside are
  // clamped), the bins of kTsallisInfCb and the Chebyshev terms of kChebCb.
  double context_min = 0;
  double context_max = 1;
  int context_bins = 5;
  int chebyshev_terms = 6;
};

// What a tuner has learned, per grid omega.
struct ArmState {
  double omega = 0;
  int64_t plays = 0;
  double mean_iterations = 0;  // over the systems this omega was used on
  double probability = 0;      // of being chosen next (at the last context)
};

// Everything a tuner has learned, as plain values: enough to rebuild it so
// that it makes the same future choices (after a server restart).
struct TunerCheckpoint {
  int64_t systems = 0;
  int64_t total_iterations = 0;
  double cost_sum = 0;
  std::string rng;                       // the generator's state, in its stream form
  std::vector<ArmState> arms;            // plays and mean iterations
  std::vector<double> last_probabilities;
  std::vector<double> learner;           // the algorithm's own state, flattened
};

// One solve's feedback as a tuner learned from it: enough to teach another
// copy of the tuner the same thing (Replay).
struct TunerObservation {
  int arm = -1;                     // -1: every arm (ObserveAll)
  double context = 0;
  std::vector<int64_t> iterations;  // the arm's, or one per arm
  double probability = 1;           // `arm`'s when it was chosen
};

struct TunerSnapshot {
  int64_t systems = 0;
  int64_t total_iterations = 0;  // over the chosen omegas
  std::vector<ArmState> arms;
};

class Tuner {
 public:
  static Status Create(const TunerConfig& config, std::unique_ptr<Tuner>* tuner);
  virtual ~Tuner() = default;

  const TunerConfig& config() const { return config_; }
  const std::vector<double>& grid() const { return config_.grid; }
  // kGridOracle: the caller solves with every grid omega and observes each.
  bool tries_every_arm() const { return config_.algorithm == TunerAlgorithm::kGridOracle; }
  // kFixed: no choice depends on earlier results, so a batch of systems can
  // have its omegas chosen up front and be solved together.
  bool chooses_ahead() const { return config_.algorithm == TunerAlgorithm::kFixed; }

  // The grid index to use for a system with this context.
  int Choose(double context);
  // Feeds back the iterations a solve with grid index `arm` took.
  void Observe(int arm, double context, int64_t iterations);
  // kGridOracle: the iterations of every grid omega on one system.
  void ObserveAll(double context, const std::vector<int64_t>& iterations);
  TunerSnapshot Snapshot() const;
  TunerCheckpoint Checkpoint() const;
  // INVALID_ARGUMENT when `checkpoint` was not taken from a tuner of this
  // configuration; the tuner is then unchanged.
  Status Restore(const TunerCheckpoint& checkpoint);

  // From now on keeps what Observe/ObserveAll learn for TakeObservations():
  // a job's private copy of a tuner that lives elsewhere (the shared store)
  // hands its feedback back that way.
  void RecordObservations();
  std::vector<TunerObservation> TakeObservations();
  // Learns from observations made on another copy, each weighted by the
  // probability its arm had when that copy chose it.
  void Replay(const std::vector<TunerObservation>& observations);

 protected:
  explicit Tuner(const TunerConfig& config);
  // Sampling distribution over the grid for `context`; called under mu_.
  virtual std::vector<double> Probabilities(double context) = 0;
  // `cost` is iterations - 1 (a solve cannot take fewer than one);
  // cost_scale() the running mean cost, which normalises it.
  virtual void Learn(int arm, double context, double cost, double probability) = 0;
  double cost_scale() const { return cost_scale_; }
  // The algorithm's state, for Checkpoint/Restore; called under mu_.
  // RestoreLearnerState returns false when `state` does not fit.
  virtual std::vector<double> LearnerState() const = 0;
  virtual bool RestoreLearnerState(const std::vector<double>& state) = 0;
  // The context mapped to [-1, 1] by the configured range.
  double UnitContext(double context) const;

 private:
  void ObserveLocked(int arm, double context, int64_t iterations, double probability);
  void ObserveAllLocked(double context, const std::vector<int64_t>& iterations);

  mutable std::mutex mu_;
  const TunerConfig config_;
  std::mt19937_64 rng_;
  std::vector<ArmState> arms_;
  std::vector<double> last_probabilities_;
  int64_t systems_ = 0;
  int64_t total_iterations_ = 0;
  double cost_sum_ = 0;
  double cost_scale_ = 1;  // mean of iterations - 1 over the systems seen, at least 1
  bool recording_ = false;
  std::vector<TunerObservation> recorded_;
};

const char* TunerAlgorithmName(TunerAlgorithm algorithm);
bool ParseTunerAlgorithm(const std::string& name, TunerAlgorithm* algorithm);

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_TUNER_H_
