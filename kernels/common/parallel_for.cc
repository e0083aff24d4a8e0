#include "common/parallel_for.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace solverd {

void ParallelFor(int64_t n, int threads,
                 const std::function<void(int64_t, int64_t)>& body,
                 int64_t min_items_per_thread) {
  if (n <= 0) return;
  int64_t max_useful = std::max<int64_t>(1, n / std::max<int64_t>(1, min_items_per_thread));
  int64_t parts = std::clamp<int64_t>(threads, 1, max_useful);
  if (parts == 1) {
    body(0, n);
    return;
  }
  int64_t chunk = (n + parts - 1) / parts;
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  for (int64_t p = 1; p < parts; ++p) {
    int64_t begin = p * chunk, end = std::min(n, begin + chunk);
    if (begin < end) workers.emplace_back(body, begin, end);
  }
  body(0, std::min(n, chunk));
  for (auto& w : workers) w.join();
}

}  // namespace solverd
