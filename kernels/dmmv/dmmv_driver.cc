// RunSearch: local search inside an adaptive large-neighbourhood search
// (its rounds in dmmv_lns.cc), for every instance of the batch in lockstep
// so that each backend call scores the candidate moves of all instances
// at once.
#include <algorithm>
#include <cmath>

#include "dmmv/dmmv_search.h"
#include "dmmv/dmmv_sparse.h"

namespace solverd::dmmv::internal {

Status Search::Init(std::vector<State>* states) {
  const int64_t m = problem_.cols;
  states->resize(problem_.instances.size());
  std::vector<int> all;
  std::vector<std::vector<double>> values(states->size());
  for (size_t i = 0; i < states->size(); ++i) {
    State& s = (*states)[i];
    s.instance = &problem_.instances[i];
    s.rng.seed(options_.seed * 0x9E3779B97F4A7C15ull + i);
    s.q.resize(m);
    for (int64_t j = 0; j < m; ++j) {
      const Instance& inst = *s.instance;
      s.q[j] = !inst.start_levels.empty() ? inst.start_levels[j]
               : !inst.start_values.empty() ? s.LevelsOf(j).Nearest(inst.start_values[j])
                                            : s.LevelsOf(j).Nearest(0.0);
    }
    values[i] = s.Values(s.q);
    all.push_back(static_cast<int>(i));
  }
  if (Status st = backend_.SetValues(values); !st.ok()) return st;
  if (Status st = Measure(*states, all); !st.ok()) return st;
  for (State& s : *states) {
    s.start = s.best = s.current;
    s.best_q = s.q;
  }
  return Status::Ok();
}

Status Search::Measure(std::vector<State>& states, const std::vector<int>& which) {
  std::vector<Move> still;
  for (int i : which) still.push_back({i, 0, -1, 0.0, 0.0});
  std::vector<MoveScore> scores;
  if (Status st = backend_.Score(still, std::vector<double>(states.size(), kInf), &scores);
      !st.ok()) {
    return st;
  }
  for (size_t k = 0; k < which.size(); ++k) {
    states[which[k]].current = {scores[k].max_violation, scores[k].sum_squares};
  }
  return Status::Ok();
}

std::vector<bool> Search::InPlay(const std::vector<State>& states, bool best) const {
  std::vector<bool> in_play(states.size(), true);
  if (!options_.max_over_instances) return in_play;
  const auto t = [&](const State& s) { return best ? s.best.t : s.current.t; };
  double largest = 0;
  for (const State& s : states) largest = std::max(largest, t(s));
  for (size_t i = 0; i < states.size(); ++i) {
    in_play[i] = t(states[i]) >= (1 - kInPlayBand) * largest;
  }
  return in_play;
}

Status Search::LocalSearch(std::vector<State>& states) {
  const int64_t m = problem_.cols;
  std::vector<int> active(states.size());
  for (size_t i = 0; i < states.size(); ++i) active[i] = static_cast<int>(i);
  const int64_t max_rounds = 50 * m + 100;
  const size_t top = static_cast<size_t>(std::max(0, options_.pair_candidates));
  for (int64_t round = 0; round < max_rounds && !active.empty() && !OutOfTime(); ++round) {
    if (Status st = Stopped(); !st.ok()) return st;
    std::vector<int> waiting;  // not at a local optimum, but below the band this round
    if (options_.max_over_instances) {
      const std::vector<bool> in_play = InPlay(states, /*best=*/false);
      std::vector<int> playing;
      for (int i : active) (in_play[i] ? playing : waiting).push_back(i);
      if (playing.empty()) break;
      active.swap(playing);
    }
    std::vector<Move> singles;
    std::vector<size_t> first(active.size() + 1);
    std::vector<double> cutoff(states.size(), kInf);
    for (size_t a = 0; a < active.size(); ++a) {
      State& s = states[active[a]];
      cutoff[active[a]] = order_.Cutoff(s.current);
      first[a] = singles.size();
      for (int64_t j = 0; j < m; ++j) {
        const int32_t i = active[a], v = static_cast<int32_t>(j);
        if (s.q[j] + 1 < s.LevelsOf(j).size()) singles.push_back({i, v, -1, s.Delta(j, s.q[j] + 1), 0});
        if (s.q[j] > 0) singles.push_back({i, v, -1, s.Delta(j, s.q[j] - 1), 0});
      }
    }
    first[active.size()] = singles.size();
    std::vector<MoveScore> scores;
    if (Status st = backend_.Score(singles, cutoff, &scores); !st.ok()) return st;

    // Pairs: the best few up-moves with the best few down-moves.
    std::vector<Move> pairs;
    std::vector<size_t> pair_first(active.size() + 1);
    auto by_score = [&](size_t x, size_t y) {
      return order_.Better({scores[x].max_violation, scores[x].sum_squares},
                           {scores[y].max_violation, scores[y].sum_squares});
    };
    for (size_t a = 0; a < active.size(); ++a) {
      pair_first[a] = pairs.size();
      std::vector<size_t> up, down;
      for (size_t c = first[a]; c < first[a + 1]; ++c) (singles[c].delta1 > 0 ? up : down).push_back(c);
      const size_t nu = std::min(top, up.size()), nd = std::min(top, down.size());
      std::partial_sort(up.begin(), up.begin() + nu, up.end(), by_score);
      std::partial_sort(down.begin(), down.begin() + nd, down.end(), by_score);
      for (size_t x = 0; x < nu; ++x) {
        for (size_t y = 0; y < nd; ++y) {
          const Move& u = singles[up[x]];
          const Move& d = singles[down[y]];
          if (u.var1 != d.var1) pairs.push_back({u.instance, u.var1, d.var1, u.delta1, d.delta1});
        }
      }
    }
    pair_first[active.size()] = pairs.size();
    std::vector<MoveScore> pair_scores;
    if (Status st = backend_.Score(pairs, cutoff, &pair_scores); !st.ok()) return st;

    std::vector<Move> chosen;
    std::vector<int> still_active;
    for (size_t a = 0; a < active.size(); ++a) {
      State& s = states[active[a]];
      std::vector<Candidate> candidates;
      for (size_t c = first[a]; c < first[a + 1]; ++c) {
        candidates.push_back({&singles[c], &scores[c]});
      }
      for (size_t c = pair_first[a]; c < pair_first[a + 1]; ++c) {
        candidates.push_back({&pairs[c], &pair_scores[c]});
      }
      const size_t before = chosen.size();
      ChooseMoves(s, candidates, &chosen);
      if (chosen.size() == before) continue;  // a local optimum
      for (size_t c = before; c < chosen.size(); ++c) {
        const Move& move = chosen[c];
        s.q[move.var1] += move.delta1 > 0 ? 1 : -1;
        if (move.var2 >= 0) s.q[move.var2] += move.delta2 > 0 ? 1 : -1;
      }
      s.moves += static_cast<int64_t>(chosen.size() - before);
      still_active.push_back(active[a]);
    }
    if (Status st = backend_.Apply(chosen); !st.ok()) return st;
    if (columns_ != nullptr) {  // several moves may have been applied: measure afresh
      if (Status st = Measure(states, still_active); !st.ok()) return st;
    }
    still_active.insert(still_active.end(), waiting.begin(), waiting.end());
    std::sort(still_active.begin(), still_active.end());
    active.swap(still_active);
  }
  return Status::Ok();
}

void Search::ChooseMoves(State& s, std::vector<Candidate>& candidates, std::vector<Move>* chosen) {
  const Candidate* best = nullptr;
  Objective best_objective = s.current;
  for (const Candidate& c : candidates) {
    if (order_.Better(c.objective(), best_objective)) best_objective = c.objective(), best = &c;
  }
  if (best == nullptr) return;
  chosen->push_back(*best->move);
  if (columns_ == nullptr) {
    s.current = best_objective;  // dense: one move a round, its score exact
    return;
  }
  // Sparse: then every other improving move on rows still untouched, best
  // first; each keeps t and lowers the sum of squares on its own rows.
  ++stamp_;
  Claim(*best->move);
  std::vector<const Candidate*> rest;
  for (const Candidate& c : candidates) {
    if (&c != best && order_.Better(c.objective(), s.current)) rest.push_back(&c);
  }
  std::stable_sort(rest.begin(), rest.end(), [&](const Candidate* x, const Candidate* y) {
    return order_.Key(x->objective()) < order_.Key(y->objective());
  });
  for (const Candidate* c : rest) {
    if (Free(*c->move)) Claim(*c->move), chosen->push_back(*c->move);
  }
}

bool Search::Free(const Move& m) const {
  for (int32_t var : {m.var1, m.var2}) {
    if (var < 0) continue;
    if (var_stamp_[var] == stamp_) return false;
    for (int64_t e = columns_->col_offsets[var]; e < columns_->col_offsets[var + 1]; ++e) {
      if (row_stamp_[columns_->rows[e]] == stamp_) return false;
    }
  }
  return true;
}

void Search::Claim(const Move& m) {
  for (int32_t var : {m.var1, m.var2}) {
    if (var < 0) continue;
    var_stamp_[var] = stamp_;
    for (int64_t e = columns_->col_offsets[var]; e < columns_->col_offsets[var + 1]; ++e) {
      row_stamp_[columns_->rows[e]] = stamp_;
    }
  }
}

void GroupByInstance(const std::vector<Move>& moves, std::vector<Move>* sorted,
                     std::vector<int32_t>* first) {
  *sorted = moves;
  std::stable_sort(sorted->begin(), sorted->end(),
                   [](const Move& a, const Move& b) { return a.instance < b.instance; });
  first->assign(1, 0);
  for (size_t i = 1; i < sorted->size(); ++i) {
    if ((*sorted)[i].instance != (*sorted)[i - 1].instance) {
      first->push_back(static_cast<int32_t>(i));
    }
  }
  first->push_back(static_cast<int32_t>(sorted->size()));
}

Status RunSearch(DmmvBackend& backend, const Problem& problem, const CscMatrix* columns,
                 const Options& options, ProgressSink* sink, const CancelToken* cancel,
                 Result* result) {
  Search search(backend, problem, columns, options, cancel);
  std::vector<State> states;
  Status status = search.Init(&states);
  if (status.ok()) status = search.LocalSearch(states);
  for (State& s : states) {
    if (search.order().Better(s.current, s.best)) s.best = s.current, s.best_q = s.q;
  }
  const auto stalled = [&] {  // every instance the search would still work on
    if (options.stall_rounds <= 0) return false;
    const std::vector<bool> in_play = search.InPlay(states, /*best=*/true);
    for (size_t i = 0; i < states.size(); ++i) {
      if (in_play[i] && states[i].rounds_since_better < options.stall_rounds) return false;
    }
    return true;
  };
  int64_t outer = 0;
  for (; status.ok() && outer < options.max_outer_iterations && !search.OutOfTime() && !stalled();
       ++outer) {
    status = search.Stopped();
    if (status.ok()) status = search.Outer(states);
    if (sink != nullptr && options.progress_every > 0 && (outer + 1) % options.progress_every == 0) {
      Progress p;
      p.iteration = outer + 1;
      p.stage = "lns";
      int64_t moves = 0;
      for (const State& s : states) {  // the worst instance's
        p.objective = std::max(p.objective, options.least_squares ? std::sqrt(s.best.sum_squares)
                                                                  : s.best.t);
        p.residual = std::max(p.residual, s.best.t);
        moves += s.moves;
      }
      p.elapsed_seconds = search.Seconds();
      p.fraction = static_cast<double>(outer + 1) / options.max_outer_iterations;
      p.extras = {{"moves", static_cast<double>(moves)}};
      sink->Report(p);
    }
  }
  result->instances.clear();
  for (State& s : states) {
    InstanceResult r;
    if (s.best_q.empty()) s.best_q = s.q;  // stopped during Init
    r.level_indices = s.best_q;
    r.values = s.Values(s.best_q);
    r.max_violation = s.best.t;
    r.l2 = std::sqrt(s.best.sum_squares);
    r.start_max_violation = s.start.t;
    r.moves = s.moves;
    r.outer_iterations = s.outer;
    result->instances.push_back(std::move(r));
  }
  result->seconds = search.Seconds();
  return status;
}

}  // namespace solverd::dmmv::internal
