// bench/anchors/tbb_tasks.cpp — oneTBB on 2 threads: task_group spawn rate, parallel_for with empty and real bodies.
//
// In-process task scheduling: the ceiling any cross-process task system is measured against
// (informational anchor for cadre's load-balanced throughput).
//   tbb_tasks [tasks=1000000]
#include "anchor_common.hpp"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const int threads = 2;
  tbb::global_control cap(tbb::global_control::max_allowed_parallelism, threads);
  tbb::task_arena arena(threads);
  const std::string extra = "\"threads\": 2, \"tasks\": " + std::to_string(n);

  auto best_rate = [&](auto&& run) {
    std::vector<double> rates;
    for (int rep = -1; rep < 5; ++rep) {
      const std::uint64_t t0 = anchor::now_ns();
      arena.execute(run);
      const double s = double(anchor::now_ns() - t0) * 1e-9;
      if (rep >= 0) rates.push_back(double(n) / s);
    }
    return anchor::quantile(rates, 0.5);
  };

  // 1e6 empty tasks spawned into one task_group.
  anchor::emit("tbb", "task_group_empty_tasks_per_s", best_rate([&] {
                 tbb::task_group g;
                 for (long i = 0; i < n; ++i) g.run([] {});
                 g.wait();
               }),
               "tasks/s", extra);

  // parallel_for with an empty body: one "task" per index, default (auto) partitioner.
  std::atomic<long> sink{0};
  anchor::emit("tbb", "parallel_for_empty_items_per_s", best_rate([&] {
                 tbb::parallel_for(0L, n, [](long) {});
               }),
               "items/s", extra);

  // parallel_for with grain size 1 and simple_partitioner: every index is its own task.
  anchor::emit("tbb", "parallel_for_empty_grain1_tasks_per_s", best_rate([&] {
                 tbb::parallel_for(tbb::blocked_range<long>(0, n, 1),
                                   [](const tbb::blocked_range<long>&) {}, tbb::simple_partitioner{});
               }),
               "tasks/s", extra);

  // parallel_for with a real body: ~100 flops per item into an array.
  std::vector<double> out(static_cast<std::size_t>(n));
  anchor::emit("tbb", "parallel_for_real_items_per_s", best_rate([&] {
                 tbb::parallel_for(0L, n, [&](long i) {
                   double x = double(i);
                   for (int k = 0; k < 50; ++k) x = x * 0.999 + 1.0;
                   out[std::size_t(i)] = x;
                 });
               }),
               "items/s", extra);
  sink += long(out[std::size_t(n / 2)]);
  return sink.load() == 42 ? 1 : 0;
}
