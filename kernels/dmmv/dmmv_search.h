// The DMMV search's state and its Search class, shared by the local search
// (dmmv_driver.cc) and the large-neighbourhood rounds around it
// (dmmv_lns.cc). Internal to kernels/dmmv. Not thread-safe.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_SEARCH_H_
#define SOLVERD_KERNELS_DMMV_DMMV_SEARCH_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "dmmv/dmmv_backend.h"

namespace solverd::dmmv::internal {

using Clock = std::chrono::steady_clock;
inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr int kOperators = 2;  // destroy: random, worst-row; repair: random, greedy
inline constexpr double kReaction = 0.2;
// With Options::max_over_instances, the instances whose t is within this
// fraction of the largest are searched; the rest wait for it to come down.
inline constexpr double kInPlayBand = 0.02;

// (t, sum of squares), compared lexicographically; the L2 tie-break keeps
// the search from wandering along plateaus of t. With least_squares t
// does not count (it is kept only to be reported).
struct Objective {
  double t = kInf, sum_squares = kInf;
};

class Order {
 public:
  Order(bool least_squares, double cap) : least_squares_(least_squares), cap_(cap) {}
  bool Better(const Objective& a, const Objective& b) const {
    return Rank(a) < Rank(b) || (Rank(a) == Rank(b) && a.sum_squares < b.sum_squares * (1 - 1e-12));
  }
  // A strict weak order agreeing with Better, for sorting.
  std::pair<double, double> Key(const Objective& a) const { return {Rank(a), a.sum_squares}; }
  // The cutoff above which a move's t may be reported inexactly.
  double Cutoff(const Objective& current) const {
    return least_squares_ ? kInf : std::max(cap_, current.t);
  }

 private:
  double Rank(const Objective& a) const {
    return least_squares_ ? 0.0 : std::max(0.0, a.t - cap_);
  }
  bool least_squares_;
  double cap_;  // Options::violation_cap
};

struct State {
  const Instance* instance = nullptr;
  std::vector<int64_t> q, best_q;
  Objective current, best, start;
  int64_t moves = 0, outer = 0;
  int64_t rounds_since_better = 0;  // LNS rounds
  std::mt19937_64 rng;
  double destroy_weight[kOperators] = {1, 1}, repair_weight[kOperators] = {1, 1};

  const Levels& LevelsOf(int64_t j) const {
    return instance->levels.size() == 1 ? instance->levels[0] : instance->levels[j];
  }
  double Delta(int64_t j, int64_t to) const {
    return LevelsOf(j).Value(to) - LevelsOf(j).Value(q[j]);
  }
  std::vector<double> Values(const std::vector<int64_t>& levels) const {
    std::vector<double> v(levels.size());
    for (size_t j = 0; j < levels.size(); ++j) v[j] = LevelsOf(j).Value(levels[j]);
    return v;
  }
  int Roulette(const double* weights) {
    std::uniform_real_distribution<double> u(0, weights[0] + weights[1]);
    return u(rng) < weights[0] ? 0 : 1;
  }
};

struct Candidate {
  const Move* move;
  const MoveScore* score;
  Objective objective() const { return {score->max_violation, score->sum_squares}; }
};

class Search {
 public:
  Search(DmmvBackend& backend, const Problem& problem, const CscMatrix* columns,
         const Options& options, const CancelToken* cancel)
      : backend_(backend), problem_(problem), columns_(columns), options_(options),
        cancel_(cancel), start_(Clock::now()),
        order_(options.least_squares, options.violation_cap) {
    if (columns_ != nullptr) {
      row_stamp_.assign(static_cast<size_t>(problem.rows), 0);
      var_stamp_.assign(static_cast<size_t>(problem.cols), 0);
    }
  }

  Status Init(std::vector<State>* states);
  Status LocalSearch(std::vector<State>& states);
  Status Outer(std::vector<State>& states);

  // Cancelled, or past the job's deadline: the job stops with that status.
  Status Stopped() const { return CheckCancel(cancel_); }
  // Past options.time_limit_seconds: a budget, so the search just ends.
  bool OutOfTime() const {
    return options_.time_limit_seconds > 0 && Seconds() > options_.time_limit_seconds;
  }
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  const Order& order() const { return order_; }
  // With max_over_instances, the instances whose t (their best's, or
  // their current one's) is within kInPlayBand of the largest over all
  // instances; else all of them.
  std::vector<bool> InPlay(const std::vector<State>& states, bool best) const;

 private:
  // The exact objective of each listed instance's current residual.
  Status Measure(std::vector<State>& states, const std::vector<int>& which);
  // Appends the moves of one instance's round to `chosen` (none at a local
  // optimum) and, for a dense X, sets its objective.
  void ChooseMoves(State& s, std::vector<Candidate>& candidates, std::vector<Move>* chosen);
  // Whether m's variables and rows are unclaimed this round; claims them.
  bool Free(const Move& m) const;
  void Claim(const Move& m);
  Status Destroy(State& s, int instance, int op, std::vector<int64_t>* chosen);
  Status GreedyRepair(std::vector<State>& states, const std::vector<std::vector<int64_t>>& sets);

  DmmvBackend& backend_;
  const Problem& problem_;
  const CscMatrix* columns_;  // sparse X only
  const Options& options_;
  const CancelToken* cancel_;
  const Clock::time_point start_;
  const Order order_;
  std::vector<int64_t> row_stamp_, var_stamp_;  // claimed this round when == stamp_
  int64_t stamp_ = 0;
};

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_SEARCH_H_
