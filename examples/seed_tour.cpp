// examples/seed_tour.cpp — the seed notebook ("DirectView as multiplexer"), cell by cell, in C++.
//
// Runs on an embedded 4-engine cluster, prints what each cell shows, and checks every result: the
// exit code is non-zero on any mismatch. Run: build/examples/seed_tour
#include <cadre/eigen.hpp>
#include <cadre/fmt.hpp>

#include "pdot.hpp"

#include <fmt/ranges.h>
#include <unistd.h>

#include <numeric>
#include <ranges>
#include <set>

namespace {

int failures = 0;

void check(bool ok, std::string_view what) {
  fmt::print("  {} {}\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

void cell(std::string_view title) { fmt::print("\n## {}\n", title); }

/// x**10, wrapping modulo 2^64 like the unsigned arithmetic it is (Python's would be exact).
long pow10(long x) {
  unsigned long r = 1;
  for (int i = 0; i < 10; ++i) r *= static_cast<unsigned long>(x);
  return static_cast<long>(r);
}

}  // namespace

int main(int argc, char** argv) try {
  cadre::init(argc, argv);  // engine processes serve here and exit

  cell("rc = parallel.Client()");
  cadre::Cluster cluster({.engines = 4});
  cadre::Client rc = cluster.client();
  fmt::print("rc.ids = {}\n", rc.ids());
  check(rc.ids() == std::vector<int>{0, 1, 2, 3}, "four engines");

  cell("e0 = rc[0]; engines = rc[:]; even = rc[::2]; odd = rc[1::2]");
  cadre::EngineView e0 = rc[0];
  cadre::DirectView engines = rc[cadre::all];
  cadre::DirectView even = rc[cadre::slice{0, cadre::end, 2}];
  cadre::DirectView odd = rc[cadre::slice{1, cadre::end, 2}];
  cadre::DirectView dview = engines;
  dview.block = true;
  check(even.targets() == std::vector<int>{0, 2} && odd.targets() == std::vector<int>{1, 3}, "even = [0, 2], odd = [1, 3]");

  cell("for view in (e0, engines, even, odd): print view, view.apply_sync(os.getpid)");
  const pid_t p0 = e0.apply_sync(::getpid);
  fmt::print("{} {}\n", e0, p0);
  const std::vector<pid_t> all_pids = engines.apply_sync(::getpid);
  fmt::print("{} {}\n", engines, all_pids);
  const std::vector<pid_t> even_pids = even.apply_sync(::getpid), odd_pids = odd.apply_sync(::getpid);
  fmt::print("{} {}\n{} {}\n", even, even_pids, odd, odd_pids);
  check(std::set<pid_t>(all_pids.begin(), all_pids.end()).size() == 4 && p0 == all_pids[0] && p0 != ::getpid(),
        "four engine processes, none of them this one");
  check(even_pids == std::vector<pid_t>{all_pids[0], all_pids[2]} && odd_pids == std::vector<pid_t>{all_pids[1], all_pids[3]},
        "each view runs on its own engines");

  cell("engines['a'] = 5; engines['a']");
  engines["a"] = 5;
  const auto a = engines.pull<int>("a");
  fmt::print("{}\n", a);
  check(a == std::vector<int>(4, 5), "a == [5, 5, 5, 5]");

  cell("dview.scatter('a', range(16)); dview['a']");
  std::vector<int> r16(16);
  std::iota(r16.begin(), r16.end(), 0);
  dview.scatter("a", r16);
  const auto parts = dview.pull<std::vector<int>>("a");
  fmt::print("{}\n", parts);
  check(parts == std::vector<std::vector<int>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}}, "contiguous chunks");

  cell("dview.gather('a')");
  const auto back = dview.gather<int>("a");
  fmt::print("{}\n", back);
  check(back == r16, "gather(scatter(x)) == x");

  cell("dview.execute('asum = sum(a)'); dview.gather('asum')");
  dview.execute([](cadre::Namespace& ns) {
    auto chunk = ns.view<std::vector<int>>("a");  // in place, no copy
    ns.set("asum", std::accumulate(chunk.begin(), chunk.end(), 0));
  });
  const auto asum = dview.gather<int>("asum");
  fmt::print("{}\n", asum);
  check(asum == std::vector<int>{6, 22, 38, 54}, "partial sums");

  cell("dview.scatter('id', rc.ids); dview['id']");
  dview.scatter("id", rc.ids());
  const auto ids = dview.pull<std::vector<int>>("id");
  fmt::print("{}\n", ids);
  check(ids == std::vector<std::vector<int>>{{0}, {1}, {2}, {3}}, "one-element chunks");

  cell("dview.scatter('id', rc.ids, flatten=True); dview['id']");
  dview.scatter("id", rc.ids(), {.flatten = true});
  const auto flat = dview.pull<int>("id");
  fmt::print("{}\n", flat);
  check(flat == std::vector<int>{0, 1, 2, 3}, "flattened to the element");

  cell("A = np.random.randint(1,10,(16,4)); B = np.random.randint(1,10,(4,16))");
  std::srand(7);
  Eigen::MatrixXd A = (Eigen::MatrixXd::Random(16, 4).array() * 4 + 5).round().matrix();
  Eigen::MatrixXd B = (Eigen::MatrixXd::Random(4, 16).array() * 4 + 5).round().matrix();
  fmt::print("A is {}x{}, B is {}x{}\n", A.rows(), A.cols(), B.rows(), B.cols());

  cell("dview.scatter('A', A); dview.scatter('B', B); e0['A']; e0['B']");
  dview.scatter("A", A);
  dview.scatter("B", B);
  const Eigen::MatrixXd e0A = e0.pull<Eigen::MatrixXd>("A"), e0B = e0.pull<Eigen::MatrixXd>("B");
  fmt::print("e0['A'] is {}x{}, e0['B'] is {}x{}\n", e0A.rows(), e0A.cols(), e0B.rows(), e0B.cols());
  check(e0A == A.topRows(4) && e0B == B.topRows(1), "engine 0 holds the first row blocks");

  cell("C1 = pdot(dview, A, B); (C1 == A.dot(B)).all()");
  const Eigen::MatrixXd C_ref = A * B;
  const Eigen::MatrixXd C1 = pdot(dview, A, B);
  check(C1 == C_ref, "parallel product equals A * B");

  cell("serial_result == dview.map(lambda x: x**10, range(32))");
  std::vector<long> serial;
  for (long x = 0; x < 32; ++x) serial.push_back(pow10(x));
  const std::vector<long> parallel = dview.map_sync(pow10, std::views::iota(0L, 32L));
  check(serial == parallel, "parallel map equals serial map");

  cell("amr = dview.map_async(lambda x: x**10, range(32)); amr.msg_ids");
  auto amr = dview.map_async(pow10, std::views::iota(0L, 32L));
  fmt::print("{}\n", amr.msg_ids());
  check(amr.msg_ids().size() == 4, "one task per engine");

  cell("amr = dview.map_async(lambda x: x**10, range(3200)); amr.msg_ids");
  auto amr2 = dview.map_async(pow10, std::views::iota(0L, 3200L));
  fmt::print("{}\n", amr2.msg_ids());
  amr2.wait_interactive();
  long i = 0;
  bool in_order = true;
  for (long y : amr2) in_order &= y == pow10(i++);
  check(amr2.msg_ids().size() == 4 && i == 3200 && in_order, "still one task per engine; results in order as they arrive");

  fmt::print("\n{}\n", failures == 0 ? "seed tour: all cells match" : fmt::format("seed tour: {} mismatches", failures));
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {  // unwinding runs ~Cluster: engines stopped, segment removed
  fmt::print(stderr, "seed_tour: {}\n", e.what());
  return 1;
}
