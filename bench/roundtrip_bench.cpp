// bench/roundtrip_bench.cpp — round trips: cadre's apply_sync(noop) next to the cross-process floors, start-up, idle cost.
//
// Each workload is registered once per implementation so the numbers sit side by side in one run:
//   BM_roundtrip_hot/{cadre/engines:1, cadre/engines:4, cadre_pinned/engines:1 (diagnostic),
//                     spin_pingpong, futex_pingpong, futex_pingpong_1core}
//   BM_roundtrip_asleep/{cadre/engines:1, futex_pingpong}      150 ms idle before each timed call
//   BM_roundtrip_burst/cadre/engines:1                         hot calls right after 50 calls 200 µs apart
//   BM_roundtrip_all/{cadre/engines:4,                         all.apply_sync(noop), 4 engines
//                     fanout_yield/children:4, fanout_futex/children:4}   the same fan-out, raw (fanout.hpp)
//   BM_cluster_start/cadre/engines:4                           Cluster({.engines = 4}) + first apply_sync
//   BM_idle_cpu/cadre/engines:4                                10 s idle; counters: % of one core
// Every round trip is timed per iteration; counters median_ns / p99_ns are what tools/bench-compare
// reads (the mean is skewed by descheduled iterations on a shared machine). The cadre hot round trips
// also report spin_anchor_ns, the spin ping-pong measured right after each repetition (see below).
//   build-bench/bench/roundtrip_bench --benchmark_format=json
#include "anchors/fanout.hpp"
#include "anchors/pingpong.hpp"
#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

namespace {

using cadre_bench::LiveCluster;
using cadre_bench::now_ns;
using cadre_bench::Samples;
using cadre_bench::time_each;

void noop() {}

constexpr auto kAsleepGap = std::chrono::milliseconds(150);

// ---- hot round trips ---------------------------------------------------------------------------

/// Median round trip of the spin ping-pong anchor (CPUs 0 and 1), measured now. The host moves this
/// VM's two CPUs between placements whose cache-line transfers differ 3-4x (the anchor read 80-450 ns
/// across the repetitions of one run), for seconds at a time; so each repetition of a cadre round trip
/// measures its own anchor right after it, and tools/bench-compare takes the median of the ratios.
double adjacent_spin_ns() {
  if (anchor::online_cpus() < 2) return 0;
  anchor::PingPong pp(anchor::WaitMode::spin, 0, 1);
  std::vector<double> ns(20'000);
  for (double& x : ns) {
    const std::uint64_t t0 = now_ns();
    pp.round_trip();
    x = double(now_ns() - t0);
  }
  std::nth_element(ns.begin(), ns.begin() + std::ptrdiff_t(ns.size() / 2), ns.end());
  return ns[ns.size() / 2];
}

void BM_roundtrip_hot_cadre(benchmark::State& state, int engines, bool pinned) {
  // pinned: a diagnostic, not what a user gets. The client thread on CPU 0 and engine 0 on CPU 1, like
  // the ping-pong anchors, which tells the library's own cost from the scheduler's placement.
  if (pinned) LiveCluster::drop();
  auto& live = LiveCluster::get(engines);
  std::optional<anchor::AffinityGuard> guard;
  if (pinned) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(1, &one);
    if (anchor::online_cpus() < 2 || ::sched_setaffinity(live.cluster().pids().at(0), sizeof one, &one) != 0) {
      state.SkipWithError("cannot pin engine 0 to CPU 1");
      return;
    }
    guard.emplace();
    anchor::pin_to_cpu(0);
  }
  cadre::EngineView e0 = live.client()[0];
  for (int i = 0; i < 1000; ++i) e0.apply_sync(noop);  // warm: code references cached on both sides
  time_each(state, [&] { e0.apply_sync(noop); });
  state.SetItemsProcessed(state.iterations());
  guard.reset();  // the anchor pins (and restores) this thread itself
  if (const double spin = adjacent_spin_ns(); spin > 0) state.counters["spin_anchor_ns"] = spin;
  if (pinned) LiveCluster::drop();  // later benchmarks get unpinned engines
}

void BM_roundtrip_pingpong(benchmark::State& state, anchor::WaitMode mode, int parent_cpu, int child_cpu) {
  if (anchor::online_cpus() < 2 && parent_cpu != child_cpu) {
    state.SkipWithError("needs two CPUs");
    return;
  }
  LiveCluster::drop();  // no idle engines waking up on our cores
  anchor::PingPong pp(mode, parent_cpu, child_cpu);
  time_each(state, [&] { pp.round_trip(); });
  state.SetItemsProcessed(state.iterations());
}

// ---- after the engine has gone to sleep ---------------------------------------------------------

void BM_roundtrip_asleep_cadre(benchmark::State& state, int engines) {
  auto& live = LiveCluster::get(engines);
  cadre::EngineView e0 = live.client()[0];
  e0.apply_sync(noop);
  Samples s(state);
  for (auto _ : state) {
    std::this_thread::sleep_for(kAsleepGap);  // not timed: the engine spins at most 500 µs, then sleeps on its futex
    const std::uint64_t t0 = now_ns();
    e0.apply_sync(noop);
    s.add(now_ns() - t0);
  }
  state.SetItemsProcessed(state.iterations());
}

/// A burst of round trips right after a quiet spell: 50 calls 200 µs apart (each side's spin runs out
/// waiting for the other, so both shrink their spin budgets and the engine falls asleep between calls),
/// then hot calls as fast as they come. Guards against both sides settling into waking each other for
/// every call (~45 µs each), which a burst after such a spell used to do for good (waiter.hpp).
void BM_roundtrip_burst_cadre(benchmark::State& state) {
  auto& live = LiveCluster::get(1);
  cadre::EngineView e0 = live.client()[0];
  for (int i = 0; i < 50; ++i) {
    e0.apply_sync(noop);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  time_each(state, [&] { e0.apply_sync(noop); });
  state.SetItemsProcessed(state.iterations());
}

void BM_roundtrip_asleep_futex(benchmark::State& state) {
  if (anchor::online_cpus() < 2) {
    state.SkipWithError("needs two CPUs");
    return;
  }
  LiveCluster::drop();
  anchor::PingPong pp(anchor::WaitMode::futex, 0, 1);
  Samples s(state);
  for (auto _ : state) {
    std::this_thread::sleep_for(kAsleepGap);
    const std::uint64_t t0 = now_ns();
    pp.round_trip();
    s.add(now_ns() - t0);
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- all engines ---------------------------------------------------------------------------------

void BM_roundtrip_all_cadre(benchmark::State& state, int engines) {
  auto& live = LiveCluster::get(engines);
  cadre::DirectView all = live.client()[cadre::all];
  for (int i = 0; i < 200; ++i) all.apply_sync(noop);
  time_each(state, [&] { all.apply_sync(noop); });
  state.SetItemsProcessed(state.iterations() * engines);
}

void BM_roundtrip_all_fanout(benchmark::State& state, anchor::FanOut::Wait wait, int children) {
  LiveCluster::drop();
  anchor::FanOut f(wait, children);
  time_each(state, [&] { f.round_trip(); });
  state.SetItemsProcessed(state.iterations() * children);
}

// ---- start-up ------------------------------------------------------------------------------------

void BM_cluster_start_cadre(benchmark::State& state, int engines) {
  LiveCluster::drop();
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    std::uint64_t t1;
    {
      cadre::Cluster cluster(cadre_bench::options(engines));
      cadre::Client rc = cluster.client();
      rc[0].apply_sync(noop);
      t1 = now_ns();
    }  // stopping the engines is not timed
    s.add(t1 - t0);
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- idle cost -----------------------------------------------------------------------------------

void BM_idle_cpu_cadre(benchmark::State& state, int engines, double seconds) {
  LiveCluster::drop();
  cadre::Cluster cluster(cadre_bench::options(engines));
  cadre::Client rc = cluster.client();
  rc[cadre::all].apply_sync(noop);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past every spin budget
  const std::vector<pid_t> pids = cluster.pids();
  // Per process: CPU time from /proc/<pid>/stat (utime + stime, clock ticks) and, at ns resolution,
  // from the threads' schedstat; context switches count wake-ups.
  struct Reading {
    double ticks_s, precise_s;
    long long switches;
  };
  std::vector<pid_t> procs = pids;
  procs.push_back(::getpid());  // the client (and launcher: its monitor thread polls once a second)
  auto read = [&] {
    std::vector<Reading> r;
    for (pid_t p : procs) r.push_back({cadre_bench::cpu_seconds(p), cadre_bench::cpu_seconds_precise(p), cadre_bench::context_switches(p)});
    return r;
  };
  for (auto _ : state) {
    const auto before = read();
    const std::uint64_t t0 = now_ns();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const double wall = double(now_ns() - t0) * 1e-9;
    const auto after = read();
    double eng_ticks = 0, eng_precise = 0, cl_ticks = 0, cl_precise = 0;
    long long eng_switches = 0;
    for (std::size_t i = 0; i < procs.size(); ++i) {
      const bool client = i + 1 == procs.size();
      (client ? cl_ticks : eng_ticks) += after[i].ticks_s - before[i].ticks_s;
      (client ? cl_precise : eng_precise) += after[i].precise_s - before[i].precise_s;
      if (!client) eng_switches += after[i].switches - before[i].switches;
    }
    state.SetIterationTime(wall);
    state.counters["engines_pct_of_core"] = 100.0 * eng_precise / wall;
    state.counters["client_pct_of_core"] = 100.0 * cl_precise / wall;
    state.counters["total_pct_of_core"] = 100.0 * (eng_precise + cl_precise) / wall;
    state.counters["total_pct_of_core_stat"] = 100.0 * (eng_ticks + cl_ticks) / wall;  // 10 ms ticks: coarse
    state.counters["engine_wakeups_per_s"] = double(eng_switches) / wall;
    state.counters["window_s"] = wall;
  }
  // Still alive and serving after the idle window?
  rc[cadre::all].apply_sync(noop);
}

// ---- registration --------------------------------------------------------------------------------

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  using anchor::WaitMode;
  constexpr double kMin = 0.5;
  for (int n : {1, 4})
    RegisterBenchmark(("BM_roundtrip_hot/cadre/engines:" + std::to_string(n)).c_str(), BM_roundtrip_hot_cadre, n, false)
        ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kNanosecond);
  RegisterBenchmark("BM_roundtrip_hot/cadre_pinned/engines:1", BM_roundtrip_hot_cadre, 1, true)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kNanosecond);
  RegisterBenchmark("BM_roundtrip_hot/spin_pingpong", BM_roundtrip_pingpong, WaitMode::spin, 0, 1)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kNanosecond);
  RegisterBenchmark("BM_roundtrip_hot/futex_pingpong", BM_roundtrip_pingpong, WaitMode::futex, 0, 1)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kNanosecond);
  RegisterBenchmark("BM_roundtrip_hot/futex_pingpong_1core", BM_roundtrip_pingpong, WaitMode::futex, 0, 0)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kNanosecond);
  RegisterBenchmark("BM_roundtrip_asleep/cadre/engines:1", BM_roundtrip_asleep_cadre, 1)
      ->UseManualTime()->Iterations(25)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_roundtrip_burst/cadre/engines:1", BM_roundtrip_burst_cadre)
      ->UseManualTime()->Iterations(20'000)->Unit(benchmark::kNanosecond);
  RegisterBenchmark("BM_roundtrip_asleep/futex_pingpong", BM_roundtrip_asleep_futex)
      ->UseManualTime()->Iterations(25)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_roundtrip_all/cadre/engines:4", BM_roundtrip_all_cadre, 4)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_roundtrip_all/fanout_yield/children:4", BM_roundtrip_all_fanout, anchor::FanOut::Wait::yield, 4)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_roundtrip_all/fanout_futex/children:4", BM_roundtrip_all_fanout, anchor::FanOut::Wait::futex, 4)
      ->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_cluster_start/cadre/engines:4", BM_cluster_start_cadre, 4)
      ->UseManualTime()->Iterations(7)->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_idle_cpu/cadre/engines:4", BM_idle_cpu_cadre, 4, 10.0)
      ->UseManualTime()->Iterations(1)->Unit(benchmark::kSecond);
  return true;
}();

}  // namespace

int main(int argc, char** argv) { return cadre_bench::run_main(argc, argv); }
