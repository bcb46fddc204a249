// bench/bench_util.hpp — what cadre's Google Benchmark programs share: a cached cluster, per-iteration samples, /proc CPU time.
#pragma once

#include <cadre/eigen.hpp>

#include <benchmark/benchmark.h>

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace cadre_bench {

/// ClusterOptions without designated initializers (GCC 12 warns -Wmissing-field-initializers on those).
inline cadre::ClusterOptions options(int engines, std::uint64_t segment_size = 0) {
  cadre::ClusterOptions o;
  o.engines = engines;
  o.segment_size = segment_size;
  return o;
}

/// One live cluster at a time, reused across the calls Google Benchmark makes to a benchmark function
/// (it calls each one several times while it picks the iteration count). Asking for another shape
/// stops the previous cluster first, so idle engines of one benchmark never share the CPUs with the next.
class LiveCluster {
 public:
  static LiveCluster& get(int engines, std::uint64_t segment_size = 0) {
    auto& slot = instance();
    if (!slot || slot->engines_ != engines || slot->segment_size_ != segment_size) {
      slot.reset();
      slot.reset(new LiveCluster(engines, segment_size));
    }
    return *slot;
  }
  /// Stops the cached cluster (call before main returns, and before benchmarks that start their own).
  static void drop() { instance().reset(); }

  cadre::Cluster& cluster() { return *cluster_; }
  cadre::Client& client() { return *client_; }

 private:
  LiveCluster(int engines, std::uint64_t segment_size) : engines_(engines), segment_size_(segment_size) {
    cluster_ = std::make_unique<cadre::Cluster>(options(engines, segment_size));
    client_ = std::make_unique<cadre::Client>(cluster_->client());
  }
  static std::unique_ptr<LiveCluster>& instance() {
    static std::unique_ptr<LiveCluster> p;
    return p;
  }

  int engines_;
  std::uint64_t segment_size_;
  std::unique_ptr<cadre::Cluster> cluster_;
  std::unique_ptr<cadre::Client> client_;  // destroyed first: a client must not outlive its cluster's segment
};

inline std::uint64_t now_ns() noexcept {
  return std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

/// Per-iteration durations of a manually timed benchmark; publishes median and p99 as counters
/// (Google Benchmark's own figure is the mean, which one descheduled iteration on a shared machine skews).
class Samples {
 public:
  explicit Samples(benchmark::State& state) : state_(state) { ns_.reserve(std::size_t(std::min<benchmark::IterationCount>(state.max_iterations, 1 << 22))); }
  /// Records one iteration of `ns` nanoseconds and reports it as the iteration's time.
  void add(std::uint64_t ns) {
    ns_.push_back(double(ns));
    state_.SetIterationTime(double(ns) * 1e-9);
  }
  ~Samples() {
    if (ns_.empty()) return;
    std::sort(ns_.begin(), ns_.end());
    auto q = [&](double p) { return ns_[std::min(ns_.size() - 1, std::size_t(p * double(ns_.size() - 1) + 0.5))]; };
    state_.counters["median_ns"] = q(0.5);
    state_.counters["p99_ns"] = q(0.99);
    state_.counters["min_ns"] = ns_.front();
  }
  Samples(const Samples&) = delete;
  Samples& operator=(const Samples&) = delete;

 private:
  benchmark::State& state_;
  std::vector<double> ns_;
};

/// The timed loop of a latency benchmark: op() once per iteration, each call timed on its own (Samples).
template <class Op>
void time_each(benchmark::State& state, Op&& op) {
  Samples s(state);
  for (auto _ : state) {
    const std::uint64_t t0 = now_ns();
    op();
    s.add(now_ns() - t0);
  }
}

/// utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat; -1 if unreadable.
inline double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));  // fields from 3 (state) on
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  static const long hz = ::sysconf(_SC_CLK_TCK);
  return double(utime + stime) / double(hz);
}

/// CPU time of a process in seconds at nanosecond resolution: the sum over its threads of the first
/// field of /proc/<pid>/task/<tid>/schedstat (time on CPU). -1 if unreadable.
inline double cpu_seconds_precise(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  unsigned long long ns = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/schedstat");
    unsigned long long run = 0;
    if (f >> run) ns += run;
  }
  ::closedir(d);
  return double(ns) * 1e-9;
}

/// Context switches (voluntary + involuntary) of all threads of a process: how often it woke up.
inline long long context_switches(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  long long n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/status");
    for (std::string line; std::getline(f, line);)
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        n += std::stoll(line.substr(line.find(':') + 1));
  }
  ::closedir(d);
  return n;
}

/// Google Benchmark's flags plus our main: engines re-execute this binary, so cadre::init comes first.
inline int run_main(int argc, char** argv) {
  cadre::init(argc, argv);  // in an engine process: serves, then exits
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  LiveCluster::drop();
  return 0;
}

}  // namespace cadre_bench
