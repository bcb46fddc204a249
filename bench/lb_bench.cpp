// bench/lb_bench.cpp — load-balanced tasks: empty-task throughput and imbalanced work, next to oneTBB in-process.
//
// Reported as items/s. Ratios that matter: BM_lb_map/noop/default_chunks vs BM_tbb_task_group/noop
// (target: >= 1e6 tasks/s), BM_lb_apply/noop vs the TBB rate (target >= 20 %), and
// BM_imbalanced/cadre_lb vs BM_imbalanced/tbb_parallel_for (target <= 1.15x the time).
#include "bench_util.hpp"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_group.h>

#include <ranges>

namespace {

long noop(long x) { return x; }

/// Work whose cost varies 1..100x with the item (a deterministic spread, the same for both runners).
double spin_work(long i) {
  const long reps = 1 + (i * 7919) % 100;
  double acc = 0;
  for (long k = 0; k < reps * 2000; ++k) acc += double(k % 7) * 1e-9;
  return acc;
}

void BM_lb_map_noop(benchmark::State& state, std::size_t chunksize) {
  auto& rc = cadre_bench::LiveCluster::get(2).client();
  auto lview = rc.load_balanced_view();
  const long n = 1'000'000;
  for (auto _ : state) {
    auto r = lview.map_sync(noop, std::views::iota(0L, n), cadre::MapOptions{.chunksize = chunksize, .ordered = true});
    benchmark::DoNotOptimize(r.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_lb_apply_noop(benchmark::State& state) {
  auto& rc = cadre_bench::LiveCluster::get(2).client();
  auto lview = rc.load_balanced_view();
  const long n = 100'000;
  std::vector<cadre::AsyncResult<long>> rs;
  rs.reserve(n);
  for (auto _ : state) {
    rs.clear();
    for (long i = 0; i < n; ++i) rs.push_back(lview.apply_async(noop, i));
    for (auto& r : rs) benchmark::DoNotOptimize(r.get());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_tbb_task_group_noop(benchmark::State& state) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 2);
  const long n = 1'000'000;
  for (auto _ : state) {
    tbb::task_group g;
    for (long i = 0; i < n; ++i) g.run([i] { benchmark::DoNotOptimize(noop(i)); });
    g.wait();
  }
  state.SetItemsProcessed(state.iterations() * n);
}

constexpr long kImbalanced = 2000;

void BM_imbalanced_cadre(benchmark::State& state) {
  auto& rc = cadre_bench::LiveCluster::get(2).client();
  auto lview = rc.load_balanced_view();
  for (auto _ : state) {
    auto r = lview.map_sync(spin_work, std::views::iota(0L, kImbalanced), cadre::MapOptions{.chunksize = 8});
    benchmark::DoNotOptimize(r.data());
  }
  state.SetItemsProcessed(state.iterations() * kImbalanced);
}

void BM_imbalanced_tbb(benchmark::State& state) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 2);
  std::vector<double> out(kImbalanced);
  for (auto _ : state) {
    tbb::parallel_for(0L, kImbalanced, [&](long i) { out[std::size_t(i)] = spin_work(i); });
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kImbalanced);
}

[[maybe_unused]] const bool registered = [] {
  using benchmark::RegisterBenchmark;
  // Real time throughout: the work happens in engine processes (or TBB's threads), not on the timing
  // thread, so its CPU time would overstate every rate.
  RegisterBenchmark("BM_lb_map/noop/default_chunks", BM_lb_map_noop, std::size_t(0))->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
  RegisterBenchmark("BM_lb_map/noop/chunksize:1", BM_lb_map_noop, std::size_t(1))->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
  RegisterBenchmark("BM_lb_apply/noop", BM_lb_apply_noop)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
  RegisterBenchmark("BM_tbb_task_group/noop", BM_tbb_task_group_noop)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
  RegisterBenchmark("BM_imbalanced/cadre_lb", BM_imbalanced_cadre)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
  RegisterBenchmark("BM_imbalanced/tbb_parallel_for", BM_imbalanced_tbb)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
  return true;
}();

}  // namespace

int main(int argc, char** argv) { return cadre_bench::run_main(argc, argv); }
