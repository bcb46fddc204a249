// bench/data_bench.cpp — the data plane: scatter/gather bandwidth next to memcpy, SharedVector, pdot next to Eigen.
//
// Registered side by side so each ratio is taken within one run:
//   BM_copy_256MiB/{memcpy_touched, memcpy_fresh_shared}          single thread, the anchors
//   BM_copy_256MiB/{scatter, gather}/cadre/engines:{2,4}          repeated, memory reused (bytes/s)
//   BM_copy_256MiB/scatter_first/cadre/engines:{2,4}              the first scatter into a fresh cluster (page faults)
//   BM_scatter_shared/cadre/{1MiB, 1GiB, interleaved_1MiB_1GiB}   SharedVector<double>: no byte moves, so equal times
//   BM_matmul_2048/{eigen_1thread, pdot/cadre/engines:2}          items = multiply-adds
//   build-bench/bench/data_bench --benchmark_format=json
#include "bench_util.hpp"

#include "../examples/pdot.hpp"

#include <sys/mman.h>
#include <sys/resource.h>

#include <cstring>
#include <numeric>
#include <thread>

namespace {

using cadre_bench::LiveCluster;
using cadre_bench::now_ns;
using cadre_bench::Samples;

/// Minor page faults of this process (the client) during the timed loop, per iteration: a copy that
/// runs at page-fault speed instead of memcpy speed shows up here.
class FaultCounter {
 public:
  explicit FaultCounter(benchmark::State& state) : state_(state), start_(now()) {}
  ~FaultCounter() {
    if (state_.iterations() > 0) state_.counters["client_minflt_per_iter"] = double(now() - start_) / double(state_.iterations());
  }
  FaultCounter(const FaultCounter&) = delete;
  FaultCounter& operator=(const FaultCounter&) = delete;

 private:
  static long now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
  }
  benchmark::State& state_;
  long start_;
};

constexpr std::size_t kCopyBytes = std::size_t(256) << 20;
constexpr std::size_t kCopyDoubles = kCopyBytes / sizeof(double);

const std::vector<double>& source() {
  static const std::vector<double> v = [] {
    std::vector<double> s(kCopyDoubles);
    std::iota(s.begin(), s.end(), 0.0);
    return s;
  }();
  return v;
}

// ---- anchors: one thread, plain memcpy -----------------------------------------------------------

void BM_memcpy_touched(benchmark::State& state) {
  LiveCluster::drop();
  const auto& src = source();
  std::vector<double> dst(kCopyDoubles, 1.0);  // touched
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    std::memcpy(dst.data(), src.data(), kCopyBytes);
    benchmark::ClobberMemory();
    s.add(now_ns() - t0);
  }
  benchmark::DoNotOptimize(dst.data());
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kCopyBytes));
}

void BM_memcpy_fresh_shared(benchmark::State& state) {
  LiveCluster::drop();
  const auto& src = source();
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    void* p = ::mmap(nullptr, kCopyBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      break;
    }
    std::memcpy(p, src.data(), kCopyBytes);
    benchmark::ClobberMemory();
    s.add(now_ns() - t0);
    ::munmap(p, kCopyBytes);
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kCopyBytes));
}

// ---- cadre scatter / gather ----------------------------------------------------------------------

void BM_scatter(benchmark::State& state, int engines) {
  auto& live = LiveCluster::get(engines);
  cadre::DirectView dv = live.client()[cadre::all];
  const auto& src = source();
  // Two untimed scatters: the second goes to fresh pages while the first value is still held; from
  // the third on, the blocks freed by the previous value are reused (already mapped and touched).
  for (int i = 0; i < 2; ++i) dv.scatter("a", src).get();
  Samples s(state);
  FaultCounter faults(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    dv.scatter("a", src).get();
    s.add(now_ns() - t0);
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kCopyBytes));
}

void BM_gather(benchmark::State& state, int engines) {
  auto& live = LiveCluster::get(engines);
  cadre::DirectView dv = live.client()[cadre::all];
  dv.scatter("a", source()).get();
  std::vector<double> out;
  dv.gather("a", out);  // untimed: out's memory is touched once
  if (out != source()) {
    state.SkipWithError("gather(scatter(x)) != x");
    return;
  }
  Samples s(state);
  FaultCounter faults(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    dv.gather("a", out);
    s.add(now_ns() - t0);
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kCopyBytes));
}

void BM_scatter_first(benchmark::State& state, int engines) {
  LiveCluster::drop();
  const auto& src = source();
  Samples s(state);
  for (auto _ : state) {
    cadre::Cluster cluster(cadre_bench::options(engines));  // untimed: a fresh segment, nothing mapped yet
    cadre::Client rc = cluster.client();
    cadre::DirectView dv = rc[cadre::all];
    dv.apply_sync([] {});
    const std::uint64_t t0 = now_ns();
    dv.scatter("a", src).get();
    s.add(now_ns() - t0);
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kCopyBytes));
}

// ---- SharedVector: scatter cost must not grow with size -------------------------------------------

constexpr std::uint64_t kSharedSegment = std::uint64_t(3) << 29;  // 1.5 GiB: room for the 1 GiB array
constexpr int kSharedEngines = 2;

void BM_scatter_shared(benchmark::State& state, std::size_t bytes) {
  auto& live = LiveCluster::get(kSharedEngines, kSharedSegment);
  cadre::DirectView dv = live.client()[cadre::all];
  auto v = live.client().make_shared_vector<double>(bytes / sizeof(double));
  v[v.size() - 1] = 42.0;
  for (int i = 0; i < 20; ++i) dv.scatter("v", v).get();
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    dv.scatter("v", v).get();
    s.add(now_ns() - t0);
  }
  dv.erase("v").get();  // engines drop their views; the array is freed with v
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(bytes));
}

/// Both sizes in one loop, alternating, so that a burst of load on the shared machine hits both alike:
/// the 1 GiB / 1 MiB ratio of the medians is what tools/bench-compare checks.
void BM_scatter_shared_interleaved(benchmark::State& state) {
  auto& live = LiveCluster::get(kSharedEngines, kSharedSegment);
  cadre::DirectView dv = live.client()[cadre::all];
  auto small = live.client().make_shared_vector<double>((std::size_t(1) << 20) / sizeof(double));
  auto large = live.client().make_shared_vector<double>((std::size_t(1) << 30) / sizeof(double));
  for (int i = 0; i < 20; ++i) dv.scatter("v", (i & 1) ? large : small).get();
  std::vector<double> ns_small, ns_large;
  for (auto _ : state) {
    std::uint64_t t0 = now_ns();
    dv.scatter("v", small).get();
    const std::uint64_t a = now_ns() - t0;
    t0 = now_ns();
    dv.scatter("v", large).get();
    const std::uint64_t b = now_ns() - t0;
    ns_small.push_back(double(a));
    ns_large.push_back(double(b));
    state.SetIterationTime(double(a + b) * 1e-9);
  }
  dv.erase("v").get();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  state.counters["median_1MiB_ns"] = median(ns_small);
  state.counters["median_1GiB_ns"] = median(ns_large);
  state.counters["ratio_1GiB_over_1MiB"] = median(ns_small) > 0 ? median(ns_large) / median(ns_small) : 0;
}

// ---- pdot vs Eigen -------------------------------------------------------------------------------

constexpr int kN = 2048;

const Eigen::MatrixXd& mat(int which) {
  static const Eigen::MatrixXd a = [] {
    std::srand(1);
    return Eigen::MatrixXd(Eigen::MatrixXd::Random(kN, kN));
  }();
  static const Eigen::MatrixXd b = [] {
    std::srand(2);
    return Eigen::MatrixXd(Eigen::MatrixXd::Random(kN, kN));
  }();
  return which == 0 ? a : b;
}

void BM_matmul_eigen(benchmark::State& state) {
  LiveCluster::drop();
  Eigen::setNbThreads(1);
  const auto &A = mat(0), &B = mat(1);
  Eigen::MatrixXd C(kN, kN);
  const double cpu0 = cadre_bench::cpu_seconds_precise(::getpid());
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
    s.add(now_ns() - t0);
  }
  state.counters["cpu_s_per_call"] = (cadre_bench::cpu_seconds_precise(::getpid()) - cpu0) / double(state.iterations());
  state.SetItemsProcessed(std::int64_t(state.iterations()) * kN * kN * kN);
}

// The best any two workers can do on this machine: two threads of this process, each multiplying
// half of A's rows by B with single-threaded Eigen (shared caches and memory bandwidth included).
void BM_matmul_two_threads(benchmark::State& state) {
  LiveCluster::drop();
  Eigen::setNbThreads(1);
  const auto &A = mat(0), &B = mat(1);
  Eigen::MatrixXd C(kN, kN);
  const Eigen::Index half = kN / 2;
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    std::thread other([&] { C.bottomRows(kN - half).noalias() = A.bottomRows(kN - half) * B; });
    C.topRows(half).noalias() = A.topRows(half) * B;
    other.join();
    benchmark::DoNotOptimize(C.data());
    s.add(now_ns() - t0);
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * kN * kN * kN);
}

void BM_matmul_pdot(benchmark::State& state, int engines) {
  auto& live = LiveCluster::get(engines);
  cadre::DirectView dv = live.client()[cadre::all];
  const auto &A = mat(0), &B = mat(1);
  {
    Eigen::setNbThreads(1);
    const Eigen::MatrixXd C = pdot(dv, A, B), ref = A * B;
    if (!C.isApprox(ref)) {
      state.SkipWithError("pdot(A, B) != A * B");
      return;
    }
  }
  // CPU time the engines spend per call: on a machine shared with other work the wall-clock speed-up
  // depends on how much CPU the engines get; the CPU time says how much work pdot adds to Eigen's.
  const std::vector<pid_t> pids = live.cluster().pids();
  auto engines_cpu = [&] {
    double t = 0;
    for (pid_t p : pids) t += cadre_bench::cpu_seconds_precise(p);
    return t;
  };
  const double cpu0 = engines_cpu(), client0 = cadre_bench::cpu_seconds_precise(::getpid());
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    Eigen::MatrixXd C = pdot(dv, A, B);
    benchmark::DoNotOptimize(C.data());
    s.add(now_ns() - t0);
  }
  state.counters["engines_cpu_s_per_call"] = (engines_cpu() - cpu0) / double(state.iterations());
  state.counters["client_cpu_s_per_call"] = (cadre_bench::cpu_seconds_precise(::getpid()) - client0) / double(state.iterations());
  state.SetItemsProcessed(std::int64_t(state.iterations()) * kN * kN * kN);
}

// ---- registration --------------------------------------------------------------------------------

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  constexpr double kMin = 1.0;
  RegisterBenchmark("BM_copy_256MiB/memcpy_touched", BM_memcpy_touched)->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_copy_256MiB/memcpy_fresh_shared", BM_memcpy_fresh_shared)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  for (int n : {2, 4}) {
    const std::string e = "/cadre/engines:" + std::to_string(n);
    RegisterBenchmark(("BM_copy_256MiB/scatter" + e).c_str(), BM_scatter, n)->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMillisecond);
    RegisterBenchmark(("BM_copy_256MiB/gather" + e).c_str(), BM_gather, n)->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMillisecond);
  }
  // The anchor once more, after the cadre runs: the machine is shared, so bracket them.
  RegisterBenchmark("BM_copy_256MiB/memcpy_touched_again", BM_memcpy_touched)->UseManualTime()->MinTime(kMin)->Unit(benchmark::kMillisecond);
  for (int n : {2, 4})
    RegisterBenchmark(("BM_copy_256MiB/scatter_first/cadre/engines:" + std::to_string(n)).c_str(), BM_scatter_first, n)
        ->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  // Fixed iteration counts: Google Benchmark then calls each function once, so the 1 GiB array is
  // allocated (and zero-filled) once.
  RegisterBenchmark("BM_scatter_shared/cadre/1MiB", BM_scatter_shared, std::size_t(1) << 20)->UseManualTime()->Iterations(3000)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_scatter_shared/cadre/1GiB", BM_scatter_shared, std::size_t(1) << 30)->UseManualTime()->Iterations(3000)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_scatter_shared/cadre/interleaved_1MiB_1GiB", BM_scatter_shared_interleaved)->UseManualTime()->Iterations(2000)->Unit(benchmark::kMicrosecond);
  RegisterBenchmark("BM_matmul_2048/eigen_1thread", BM_matmul_eigen)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_matmul_2048/eigen_2threads_split", BM_matmul_two_threads)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_matmul_2048/pdot/cadre/engines:2", BM_matmul_pdot, 2)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_matmul_2048/eigen_1thread_again", BM_matmul_eigen)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace

int main(int argc, char** argv) { return cadre_bench::run_main(argc, argv); }
