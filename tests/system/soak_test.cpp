// tests/soak_test.cpp — long runs of mixed operations on clusters of 4, 8 and 16 engines (more engines
// than cores), checking every result, the longest single wait, and that neither the segment nor the
// client's memory grows.
//
// Each cluster size runs for CADRE_SOAK_SECONDS seconds (default 10; tools/test and CI run 60). The full soak is
// 600 seconds per size:
//
//     CADRE_SOAK_SECONDS=600 ./cadre_tests --gtest_filter='soak.*'
//
// Each test prints one line of figures ("[soak] ...": operations per second, the longest wait, segment
// and client memory after warm-up and at the end) for the release notes.
#include "fault_helpers.hpp"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

namespace {

using namespace cadre_fault;

long square(long x) { return x * x; }
int salted_id(cadre::Namespace& ns, int i) { return i * 31 + ns.engine_id(); }

double soak_seconds() {
  const char* s = std::getenv("CADRE_SOAK_SECONDS");
  const double v = s && *s ? std::strtod(s, nullptr) : 10.0;
  return v > 0 ? v : 10.0;
}

/// What one soak run measured.
struct Figures {
  std::uint64_t ops = 0;
  double seconds = 0;
  double max_wait = 0;  // the longest single wait for a result, seconds
  std::string max_wait_op;
  std::uint64_t segment_warm = 0, segment_end = 0;
  std::uint64_t rss_warm = 0, rss_end = 0;
};

/// Runs `call` (which waits for one result) and records how long it took.
template <class Call>
auto timed(Figures& f, const char* what, Call&& call) {
  const auto t0 = std::chrono::steady_clock::now();
  auto done = [&] {
    const double w = seconds_since(t0);
    if (w > f.max_wait) f.max_wait = w, f.max_wait_op = what;
    ++f.ops;
  };
  if constexpr (std::is_void_v<decltype(call())>) {
    call();
    done();
  } else {
    auto v = call();
    done();
    return v;
  }
}

class soak : public ::testing::TestWithParam<int> {};

TEST_P(soak, mixed_operations_give_right_results_without_hangs_or_memory_growth) {
  const int n = GetParam();
  const double duration = soak_seconds();
  const double warm_up = std::min(5.0, 0.2 * duration);
  cadre::Cluster cluster({.engines = n, .name = ft_name()});
  cadre::Client rc = cluster.client();
  const auto engines = cluster.pids();
  cadre::DirectView all = rc[cadre::all];
  cadre::LoadBalancedView lview = rc.load_balanced_view();
  auto& seg = *rc.segment();
  constexpr auto kHang = 30s;  // a get() this slow is a hang: fail instead of waiting forever

  Figures f;
  bool warm = false;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> data;
  std::vector<long> xs;
  for (int i = 0;; ++i) {
    // One cycle: every kind of operation once. Between cycles no result is held, so the segment holds
    // only the namespaces' fixed values.
    const auto apply = timed(f, "apply on all", [&] { return all.apply_async(salted_id, i).get(kHang); });
    for (int e = 0; e < n; ++e) ASSERT_EQ(apply[std::size_t(e)], i * 31 + e) << "cycle " << i;

    const std::string key = "k" + std::to_string(i % 8);
    timed(f, "push to all", [&] { all.push(key, i).get(kHang); });
    ASSERT_EQ(timed(f, "pull from all", [&] { return all.pull_async<int>(key).get(kHang); }), std::vector<int>(std::size_t(n), i));
    const int one = i % n;
    timed(f, "push 256 KiB", [&] { rc[one].push("medium", std::vector<double>(32768, double(i))).get(kHang); });
    ASSERT_EQ(timed(f, "pull 256 KiB", [&] { return rc[one].pull_async<std::vector<double>>("medium").get(kHang); }),
              std::vector<double>(32768, double(i)));

    data.resize(std::size_t((1 + i % 4) << 20) / sizeof(double));  // 1 to 4 MiB
    for (std::size_t k = 0; k < data.size(); ++k) data[k] = double(i) + double(k);
    timed(f, "scatter 1-4 MiB", [&] { all.scatter("sv", data).get(kHang); });
    ASSERT_EQ(timed(f, "gather 1-4 MiB", [&] { return all.gather<double>("sv"); }), data) << "cycle " << i;
    timed(f, "erase", [&] { all.erase("sv").get(kHang); });

    xs.resize(1000);
    std::iota(xs.begin(), xs.end(), long(i));
    std::vector<long> want(xs.size());
    std::transform(xs.begin(), xs.end(), want.begin(), square);
    ASSERT_EQ(timed(f, "DirectView map", [&] { return all.map_async(square, xs).get(kHang); }), want) << "cycle " << i;
    const std::vector<long> small(xs.begin(), xs.begin() + 400);
    ASSERT_EQ(timed(f, "load-balanced map", [&] { return lview.map_async(square, small, cadre::MapOptions{.chunksize = 4}).get(kHang); }),
              std::vector<long>(want.begin(), want.begin() + 400))
        << "cycle " << i;

    const double now = seconds_since(t0);
    if (!warm && now >= warm_up) {
      warm = true;
      f.segment_warm = seg.used_bytes();
      f.rss_warm = rss_bytes();
      f.ops = 0;
      f.max_wait = 0;
      f.seconds = now;
    }
    if (now >= duration) {
      f.segment_end = seg.used_bytes();
      f.rss_end = rss_bytes();
      f.seconds = now - f.seconds;
      break;
    }
  }
  EXPECT_EQ(cluster.pids(), engines) << "an engine died during the soak";
  EXPECT_EQ(rc.outstanding(), 0u);

  std::printf("[soak] %2d engines, %.0f s after %.0f s of warm-up: %.0f ops/s, longest wait %.1f ms (%s), segment in use %.2f -> %.2f MiB, "
              "client RSS %.1f -> %.1f MiB\n",
              n, f.seconds, warm_up, double(f.ops) / f.seconds, f.max_wait * 1e3, f.max_wait_op.c_str(), mib(f.segment_warm),
              mib(f.segment_end), mib(f.rss_warm), mib(f.rss_end));
  std::fflush(stdout);
  // The longest wait is reported, not judged: on a shared machine it measures the scheduler. A hang
  // fails its get() (kHang); a lost wake-up is checked by doorbell.no_wake_up_is_lost_* in tests/unit/.
  EXPECT_LE(f.segment_end, f.segment_warm + (1u << 20)) << "the segment grows";
  EXPECT_LE(f.rss_end, f.rss_warm + (32u << 20)) << "the client's memory grows";
}

INSTANTIATE_TEST_SUITE_P(, soak, ::testing::Values(4, 8, 16), [](const auto& p) { return std::to_string(p.param) + "_engines"; });

}  // namespace
