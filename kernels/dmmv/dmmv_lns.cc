// The large-neighbourhood rounds around the local search: destroy (random
// or worst-row guided), repair (random or greedy), roulette-wheel operator
// weights and hill-climbing acceptance.
#include <algorithm>
#include <cmath>
#include <random>

#include "dmmv/dmmv_search.h"
#include "dmmv/dmmv_sparse.h"

namespace solverd::dmmv::internal {

Status Search::Destroy(State& s, int instance, int op, std::vector<int64_t>* chosen) {
  const int64_t m = problem_.cols;
  const int64_t k = std::min<int64_t>(
      m, options_.destroy_size > 0 ? options_.destroy_size : std::max<int64_t>(2, m / 10));
  std::vector<int64_t> vars(m);
  for (int64_t j = 0; j < m; ++j) vars[j] = j;
  if (op == 1) {  // worst-row guided: the variables that move the worst row most
    std::vector<double> d;
    if (Status st = backend_.Residual(instance, &d); !st.ok()) return st;
    const std::vector<double>& w = s.instance->weights;
    int64_t worst = 0;
    for (int64_t r = 1; r < problem_.rows; ++r) {
      const double wr = w.empty() ? 1 : w[r], ww = w.empty() ? 1 : w[worst];
      if (wr * std::fabs(d[r]) > ww * std::fabs(d[worst])) worst = r;
    }
    std::vector<double> influence(m, 0.0);  // |X[worst, j]|
    if (problem_.sparse()) {
      const CsrMatrix& x = problem_.x_csr;
      for (int64_t e = x.row_offsets[worst]; e < x.row_offsets[worst + 1]; ++e) {
        influence[x.columns[e]] = std::fabs(x.values[e]);
      }
    } else {
      for (int64_t j = 0; j < m; ++j) influence[j] = std::fabs(problem_.x[worst * m + j]);
    }
    std::sort(vars.begin(), vars.end(), [&](int64_t a, int64_t b) {
      return influence[a] > influence[b] || (influence[a] == influence[b] && a < b);
    });
    int64_t keep = std::min<int64_t>(m, 2 * k);  // then k of the 2k most influential
    while (keep > 1 && influence[vars[keep - 1]] == 0) --keep;  // that touch the row at all
    vars.resize(keep);
  }
  std::shuffle(vars.begin(), vars.end(), s.rng);
  vars.resize(std::min<int64_t>(k, static_cast<int64_t>(vars.size())));
  // Destroy: each chosen variable jumps to a random level within two.
  std::vector<Move> moves;
  for (int64_t j : vars) {
    const int64_t hi = s.LevelsOf(j).size() - 1;
    std::uniform_int_distribution<int64_t> jump(std::max<int64_t>(0, s.q[j] - 2),
                                                std::min<int64_t>(hi, s.q[j] + 2));
    const int64_t to = jump(s.rng);
    if (to == s.q[j]) continue;
    moves.push_back({instance, static_cast<int32_t>(j), -1, s.Delta(j, to), 0});
    s.q[j] = to;
  }
  *chosen = vars;
  return backend_.Apply(moves);
}

Status Search::GreedyRepair(std::vector<State>& states,
                            const std::vector<std::vector<int64_t>>& sets) {
  size_t longest = 0;
  for (const auto& set : sets) longest = std::max(longest, set.size());
  for (size_t step = 0; step < longest; ++step) {
    std::vector<Move> candidates;
    std::vector<int64_t> targets;
    for (size_t i = 0; i < states.size(); ++i) {
      if (step >= sets[i].size()) continue;
      State& s = states[i];
      const int64_t j = sets[i][step];
      const int64_t hi = s.LevelsOf(j).size() - 1;
      for (int64_t to = std::max<int64_t>(0, s.q[j] - 2); to <= std::min(hi, s.q[j] + 2); ++to) {
        candidates.push_back({static_cast<int32_t>(i), static_cast<int32_t>(j), -1, s.Delta(j, to), 0});
        targets.push_back(to);
      }
    }
    std::vector<MoveScore> scores;
    if (Status st = backend_.Score(candidates, std::vector<double>(states.size(), kInf), &scores);
        !st.ok()) {
      return st;
    }
    std::vector<Move> chosen;
    for (size_t c = 0; c < candidates.size();) {
      size_t best = c, end = c;
      while (end < candidates.size() && candidates[end].instance == candidates[c].instance) {
        if (order_.Better({scores[end].max_violation, scores[end].sum_squares},
                          {scores[best].max_violation, scores[best].sum_squares})) {
          best = end;
        }
        ++end;
      }
      State& s = states[candidates[best].instance];
      if (targets[best] != s.q[candidates[best].var1]) {
        chosen.push_back(candidates[best]);
        s.q[candidates[best].var1] = targets[best];
      }
      c = end;
    }
    if (Status st = backend_.Apply(chosen); !st.ok()) return st;
  }
  return Status::Ok();
}

Status Search::Outer(std::vector<State>& states) {
  const std::vector<bool> in_play = InPlay(states, /*best=*/true);
  std::vector<int> playing;
  for (size_t i = 0; i < states.size(); ++i) {
    if (in_play[i]) playing.push_back(static_cast<int>(i));
  }
  std::vector<std::vector<int64_t>> sets(states.size());
  std::vector<int> destroy_op(states.size()), repair_op(states.size());
  for (int i : playing) {
    State& s = states[i];
    destroy_op[i] = s.Roulette(s.destroy_weight);
    repair_op[i] = s.Roulette(s.repair_weight);
    if (Status st = Destroy(s, i, destroy_op[i], &sets[i]); !st.ok()) return st;
    if (repair_op[i] == 0) sets[i].clear();  // random repair: keep the jumps
  }
  if (Status st = GreedyRepair(states, sets); !st.ok()) return st;
  if (Status st = Measure(states, playing); !st.ok()) return st;
  if (Status st = LocalSearch(states); !st.ok()) return st;
  std::vector<Move> back;
  for (int i : playing) {
    State& s = states[i];
    ++s.outer;
    double reward = 0;
    ++s.rounds_since_better;
    if (order_.Better(s.current, s.best)) {
      s.best = s.current;
      s.best_q = s.q;
      s.rounds_since_better = 0;
      reward = 3;
    } else {  // hill climbing: go back to the best, moving only what changed
      for (int64_t j = 0; j < problem_.cols; ++j) {
        if (s.q[j] == s.best_q[j]) continue;
        back.push_back({i, static_cast<int32_t>(j), -1, s.Delta(j, s.best_q[j]), 0});
      }
      s.q = s.best_q;
      s.current = s.best;
    }
    double& dw = s.destroy_weight[destroy_op[i]];
    double& rw = s.repair_weight[repair_op[i]];
    dw = std::max(0.1, (1 - kReaction) * dw + kReaction * reward);
    rw = std::max(0.1, (1 - kReaction) * rw + kReaction * reward);
  }
  return backend_.Apply(back);
}

}  // namespace solverd::dmmv::internal
