// tests/load_balanced_test.cpp — LoadBalancedView against real engine processes: apply, map (ordered,
// unordered, zipped, any chunk size), imbalance, restricted targets and their limit, dependencies,
// abort (queued and running), start timeouts, then(), queue_status()/wait(), engines SIGKILLed mid-map
// (with and without retries and restarts), and a flood of small tasks.
//
// Every test starts its own cluster named "lb-<pid>-<n>"; an environment checks at the end that none of
// their segments is left in /dev/shm. The machine is small and noisy: no assertion depends on timing
// except generous bounds (a failure then means "hung" or "never ran concurrently", not "slow").
// Scenarios that can hang a Cluster for good (DISABLED_, library bugs) run in a child process.
#include "test_util.hpp"

#include <cadre/cadre.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The tests write `cadre::Cluster({.engines = 2, .name = n})`, as the API documents; -Wextra would flag
// every field such an initializer leaves at its default.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace lb_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- names and leftovers ---------------------------------------------------------------------

/// The prefix of every cluster this process starts: "lb-<pid>-".
std::string name_prefix() { return "lb-" + std::to_string(::getpid()) + "-"; }

/// A cluster name no other test (or test process) uses: "lb-<pid>-<n>".
std::string unique_name() {
  static std::atomic<int> counter{0};
  return name_prefix() + std::to_string(counter++);
}

class LeftoverCheck : public ::testing::Environment {
 public:
  void TearDown() override { cadre_test::expect_no_segments_left({name_prefix()}); }
};
const bool leftover_check_registered = (::testing::AddGlobalTestEnvironment(new LeftoverCheck), true);

// ---- a cluster per test ----------------------------------------------------------------------

struct Fixture {
  cadre::Cluster cluster;
  cadre::Client rc;
  explicit Fixture(int engines, bool restart = false) : Fixture(unique_name(), engines, restart) {}
  Fixture(const std::string& name, int engines, bool restart = false)
      : cluster({.engines = engines, .name = name, .restart_engines = restart}), rc(cluster.client()) {}
};

/// Polls pred every millisecond until it holds or `timeout` passes; returns pred's last value.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// What a child process (run_in_child) found, written into memory shared with the parent, so that it
/// survives a child that hangs afterwards (in ~Cluster, say).
struct Verdict {
  std::atomic<int> code{-1};  // -1: no verdict yet; 0: as expected; else which check failed
  char message[1024] = {};
  void set(int c, const std::string& m = {}) {
    std::snprintf(message, sizeof message, "%s", m.c_str());
    code.store(c);
  }
};

/// How a child process ended.
struct ChildOutcome {
  bool timed_out = false;
  int exit_code = -1;  // exit code, or 128 + signal
  int verdict = -1;
  std::string message;
};

/// Runs fn(cluster name, verdict) in a forked child, for scenarios that may hang a Cluster beyond
/// repair. A child still running after `timeout` is killed, and the segment its cluster left removed.
ChildOutcome run_in_child(const std::function<void(const std::string&, Verdict&)>& fn, std::chrono::milliseconds timeout) {
  const std::string name = unique_name();
  void* mem = ::mmap(nullptr, sizeof(Verdict), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return {};
  auto* v = new (mem) Verdict;
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      fn(name, *v);
    } catch (const std::exception& e) {
      if (v->code.load() < 0) v->set(98, std::string("exception: ") + e.what());
    } catch (...) {
      if (v->code.load() < 0) v->set(98, "unknown exception");
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(0);
  }
  ChildOutcome out;
  if (child > 0) {
    int status = 0;
    if (wait_until([&] { return ::waitpid(child, &status, WNOHANG) == child; }, timeout)) {
      out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
      out.timed_out = true;
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      // Its engines exit within a second or two once their launcher is gone; then remove the segment.
      std::this_thread::sleep_for(2s);
      ::unlink(("/dev/shm/" + cadre::detail::shm_name(name)).c_str());
    }
  }
  out.verdict = v->code.load();
  out.message = v->message;
  v->~Verdict();
  ::munmap(mem, sizeof(Verdict));
  return out;
}

/// A generous bound on any single wait: exceeding it means a hang, not slowness.
constexpr auto kHang = 30s;

// ---- functions the engines run ---------------------------------------------------------------

int twice(int x) { return 2 * x; }
long affine(long x) { return 3 * x - 7; }
long add(long a, long b) { return a + b; }

/// Sleeps, then says where it ran.
/// Busy for ms milliseconds in this program's own code (interruptible: abort() only jumps out of the
/// program's code, never out of a library call such as a sleep).
int busy_ms(int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  volatile long spins = 0;
  while (std::chrono::steady_clock::now() < until)
    for (int k = 0; k < 10000; ++k) spins = spins + 1;
  return ms;
}

int sleep_ms(int ms) {
  ::usleep(useconds_t(ms) * 1000);
  return cadre::this_engine::id();
}

/// Where it ran.
int where() { return cadre::this_engine::id(); }

/// Leaves a mark in this engine's namespace: the side effect that proves a task ran.
int mark(int tag) {
  cadre::this_engine::ns().set("lb_mark_" + std::to_string(tag), tag);
  return tag;
}

/// 1 when mark(tag) ran on this engine.
int marked(int tag) { return cadre::this_engine::ns().contains("lb_mark_" + std::to_string(tag)) ? 1 : 0; }

int fail_always(int tag) { throw std::runtime_error("planned failure " + std::to_string(tag)); }

long fail_on_five(long x) {
  if (x == 5) throw std::runtime_error("five");
  return x;
}

/// 10 ms of work per item, for the engine-death tests.
long slow_square(long x) {
  ::usleep(10'000);
  return x * x;
}

/// How many engines of the cluster ran mark(tag).
int times_marked(const cadre::Client& rc, int tag) {
  int n = 0;
  for (int v : rc[cadre::all].apply_sync(marked, tag)) n += v;
  return n;
}

/// A file in /tmp named after (client pid, tag): how a task on one engine signals one waiting on another.
std::string signal_path(int client, int tag) { return "/tmp/cadre-lb-signal-" + std::to_string(client) + "-" + std::to_string(tag); }

int create_signal(int client, int tag) {
  std::FILE* f = std::fopen(signal_path(client, tag).c_str(), "w");
  if (f) std::fclose(f);
  return f ? 1 : 0;
}

/// 1 when the signal file appeared within 10 s.
int wait_for_signal(int client, int tag) {
  for (int i = 0; i < 10'000; ++i) {
    if (std::FILE* f = std::fopen(signal_path(client, tag).c_str(), "r")) {
      std::fclose(f);
      return 1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return 0;
}

/// A fresh tag for mark(), unique within this process.
int fresh_tag() {
  static std::atomic<int> t{1000};
  return t++;
}

/// The engine ids of a result's finished tasks.
template <class T>
std::set<int> engines_used(const std::vector<cadre::AsyncResult<T>>& rs) {
  std::set<int> out;
  for (const auto& r : rs) out.insert(r.metadata().engine_id);
  return out;
}

// ============================================================================================
// apply
// ============================================================================================

TEST(load_balanced_view, apply_async_apply_sync_and_apply_return_the_right_values) {
  Fixture f(2);
  cadre::LoadBalancedView lview = f.rc.load_balanced_view();
  EXPECT_EQ(lview.targets(), (std::vector<int>{0, 1}));
  EXPECT_EQ(lview.apply_async(twice, 21).get(kHang), 42);
  EXPECT_EQ(lview.apply_sync(twice, -4), -8);
  EXPECT_EQ(lview.apply_sync(add, 40L, 2L), 42L);
  EXPECT_EQ(lview.apply_sync([](int a, int b) { return a * b; }, 6, 7), 42);
  auto r = lview.apply(twice, 5);  // not blocking: a future
  EXPECT_EQ(r.get(kHang), 10);
}

TEST(load_balanced_view, apply_with_block_waits_and_rethrows_before_returning) {
  Fixture f(2);
  cadre::LoadBalancedView lview = f.rc.load_balanced_view();
  lview.block = true;
  auto r = lview.apply(sleep_ms, 20);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_GE(r.get(), 0);
  EXPECT_THROW(lview.apply(fail_always, 1), cadre::remote_error);
  auto m = lview.map(twice, std::vector<int>{1, 2, 3});
  EXPECT_TRUE(m.ready());
  EXPECT_EQ(m.get(), (std::vector<int>{2, 4, 6}));
}

TEST(load_balanced_view, a_function_that_throws_fails_its_future_with_remote_error) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  auto r = lview.apply_async(fail_always, 7);
  ASSERT_TRUE(r.wait_for(kHang));
  EXPECT_FALSE(r.successful());
  try {
    r.get();
    FAIL() << "expected remote_error";
  } catch (const cadre::remote_error& e) {
    EXPECT_NE(e.message().find("planned failure 7"), std::string::npos) << e.what();
    EXPECT_TRUE(e.engine_id() == 0 || e.engine_id() == 1) << e.what();
  }
}

TEST(load_balanced_view, metadata_names_an_engine_of_the_view_and_ordered_times) {
  Fixture f(3);
  auto lview = f.rc.load_balanced_view();
  auto early = lview.apply_async(sleep_ms, 200);
  const auto before = early.metadata();
  if (!early.ready()) {
    EXPECT_EQ(before.engine_id, -1) << "unknown until a load-balanced task finishes";
  }
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(lview.apply_async(sleep_ms, 2));
  rs.push_back(early);
  for (const auto& r : rs) {
    const int ran_on = r.get(kHang);
    const auto m = r.metadata();
    EXPECT_EQ(m.engine_id, ran_on);
    EXPECT_EQ(r.engine_ids(), std::vector<int>{ran_on});
    EXPECT_TRUE(std::ranges::find(lview.targets(), m.engine_id) != lview.targets().end()) << m.engine_id;
    EXPECT_LE(m.submitted, m.started);
    EXPECT_LE(m.started, m.completed);
    EXPECT_LE(m.completed, Clock::now());
  }
  EXPECT_GE(early.metadata().completed - early.metadata().started, 150ms) << "it slept 200 ms";
  EXPECT_GT(early.elapsed(), 0.15);
}

TEST(load_balanced_view, then_computes_on_the_client_from_the_value) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  auto ar = lview.apply_async(twice, 20);
  EXPECT_EQ(ar.then([](int x) { return x + 1; }).get(kHang), 41);
  EXPECT_EQ(ar.then([](int x) { return std::to_string(x); }).then([](std::string s) { return s + "!"; }).get(), "40!");
  // A failure passes through then() without calling the continuation.
  bool called = false;
  auto bad = lview.apply_async(fail_always, 3).then([&called](int x) {
    called = true;
    return x;
  });
  EXPECT_THROW(bad.get(kHang), cadre::remote_error);
  EXPECT_FALSE(called);
}

// ============================================================================================
// map
// ============================================================================================

TEST(load_balanced_view, map_sync_equals_a_serial_map_for_every_chunksize_and_size) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<long> dist(-1'000'000, 1'000'000);
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(10), std::size_t(10000)}) {
    std::vector<long> xs(n);
    for (auto& x : xs) x = dist(rng);
    std::vector<long> serial;
    for (long x : xs) serial.push_back(affine(x));
    for (std::size_t chunk : {std::size_t(1), std::size_t(7), std::size_t(64), std::size_t(1000), std::size_t(0)}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", chunksize = " + (chunk ? std::to_string(chunk) : "default"));
      std::vector<long> got;
      if (chunk) {
        got = lview.map_sync(affine, xs, cadre::MapOptions{.chunksize = chunk});
      } else {
        got = lview.map_sync(affine, xs);
      }
      EXPECT_EQ(got, serial);
      // Iterating an ordered map yields the same, in input order.
      auto amr = lview.map_async(affine, xs, cadre::MapOptions{.chunksize = chunk ? chunk : 0, .ordered = true});
      std::vector<long> iterated;
      for (long y : amr) iterated.push_back(y);
      EXPECT_EQ(iterated, serial);
      const std::size_t per = chunk ? chunk : std::max<std::size_t>(1, (n + 31) / 32);  // default: ~16 tasks per engine
      EXPECT_EQ(amr.size(), (n + per - 1) / per);
    }
  }
}

TEST(load_balanced_view, map_accepts_any_range_such_as_an_iota_view) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  auto got = lview.map_sync(affine, std::views::iota(0L, 1000L), cadre::MapOptions{.chunksize = 33});
  ASSERT_EQ(got.size(), 1000u);
  for (long i = 0; i < 1000; ++i) EXPECT_EQ(got[std::size_t(i)], affine(i));
}

TEST(load_balanced_view, an_unordered_map_yields_a_permutation_and_get_holds_every_result) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::vector<int> ms;  // uneven work, so completion order differs from input order
  for (int i = 0; i < 64; ++i) ms.push_back((i * 7919) % 5);
  auto amr = lview.map_async(sleep_ms, ms, cadre::MapOptions{.chunksize = 16, .ordered = false});
  EXPECT_EQ(amr.size(), 4u);
  std::vector<int> iterated;
  for (int e : amr) iterated.push_back(e);
  ASSERT_EQ(iterated.size(), ms.size());
  for (int e : iterated) EXPECT_TRUE(e == 0 || e == 1) << e;

  std::vector<long> xs(1000);
  std::iota(xs.begin(), xs.end(), -500L);
  std::vector<long> serial;
  for (long x : xs) serial.push_back(affine(x));
  auto amr2 = lview.map_async(affine, xs, cadre::MapOptions{.chunksize = 16, .ordered = false});
  std::vector<long> it2;
  for (long y : amr2) it2.push_back(y);
  auto all = amr2.get(kHang);
  EXPECT_TRUE(std::ranges::is_permutation(it2, serial));
  EXPECT_TRUE(std::ranges::is_permutation(all, serial));
  EXPECT_EQ(all.size(), serial.size());
  // Each chunk stays contiguous: within a chunk, results keep input order.
  std::map<long, std::size_t> pos;
  for (std::size_t i = 0; i < all.size(); ++i) pos[all[i]] = i;
  for (std::size_t i = 0; i + 1 < serial.size(); ++i)
    if ((i + 1) % 16 != 0) {
      EXPECT_EQ(pos[serial[i + 1]], pos[serial[i]] + 1) << i;
    }
}

TEST(load_balanced_view, a_zipped_map_pairs_the_sequences_element_by_element) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::vector<long> a(257), b(257);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = long(i) * 3, b[i] = 1000 - long(i);
  std::vector<long> serial;
  for (std::size_t i = 0; i < a.size(); ++i) serial.push_back(a[i] + b[i]);
  EXPECT_EQ(lview.map_sync(add, a, b), serial);
  EXPECT_EQ(lview.map_sync(add, a, b, cadre::MapOptions{.chunksize = 10}), serial);
  auto un = lview.map_async(add, a, b, cadre::MapOptions{.chunksize = 10, .ordered = false}).get(kHang);
  EXPECT_TRUE(std::ranges::is_permutation(un, serial));
  EXPECT_THROW(lview.map_async(add, a, std::vector<long>(3)), cadre::argument_error);
}

TEST(load_balanced_view, map_calls_take_their_options_as_a_braced_list) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::vector<long> xs(100), serial, sums;
  std::iota(xs.begin(), xs.end(), 0L);
  for (long x : xs) serial.push_back(affine(x)), sums.push_back(x + x);
  auto amr = lview.map_async(affine, xs, {.chunksize = 7, .ordered = false});
  EXPECT_EQ(amr.msg_ids().size(), 15u);  // 100 items in tasks of 7
  EXPECT_TRUE(std::ranges::is_permutation(amr.get(kHang), serial));
  EXPECT_EQ(lview.map_sync(affine, xs, {.chunksize = 7}), serial);
  EXPECT_EQ(lview.map(add, xs, xs, {.chunksize = 30}).get(kHang), sums);
  EXPECT_EQ(lview.map_sync(add, xs, xs, {}), sums);
}

TEST(direct_view, map_with_a_chunksize_cuts_each_engines_share_into_tasks_of_that_many_items_on_that_engine) {
  Fixture f(2);
  cadre::DirectView all = f.rc[cadre::all];
  std::vector<long> xs(101), serial;
  std::iota(xs.begin(), xs.end(), 0L);
  for (long x : xs) serial.push_back(affine(x));
  auto amr = all.map_async(affine, xs, {.chunksize = 10});
  EXPECT_EQ(amr.msg_ids().size(), 11u);  // engine 0: 51 items in 6 tasks, engine 1: 50 in 5
  EXPECT_EQ(amr.engine_ids(), (std::vector<int>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(amr.get(kHang), serial);
  EXPECT_EQ(all.map_async(affine, xs).msg_ids().size(), 2u);  // by default one task per engine
  // sleep_ms returns where it ran: engine 0 sleeps 100 ms three times, engine 1 1 ms three times.
  auto un = all.map(sleep_ms, std::vector<int>{100, 100, 100, 1, 1, 1}, {.chunksize = 1, .ordered = false});
  std::vector<int> order;
  for (int e : un) order.push_back(e);
  EXPECT_EQ(order, (std::vector<int>{1, 1, 1, 0, 0, 0})) << "in completion order, engine 1's short tasks come first";
}

TEST(load_balanced_view, a_map_with_one_failing_item_fails_with_one_remote_error) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::vector<long> xs(10);
  std::iota(xs.begin(), xs.end(), 0L);
  auto amr = lview.map_async(fail_on_five, xs, cadre::MapOptions{.chunksize = 1});
  ASSERT_TRUE(amr.wait_for(kHang));
  EXPECT_FALSE(amr.successful());
  try {
    amr.get();
    FAIL() << "expected composite_error";
  } catch (const cadre::composite_error& e) {
    ASSERT_EQ(e.failures().size(), 1u) << e.what();
    EXPECT_THROW(std::rethrow_exception(e.failures()[0].error), cadre::remote_error);
  }
  // Iterating yields the items before the failing one, then rethrows its error.
  std::vector<long> seen;
  EXPECT_THROW(
      {
        for (long y : amr) seen.push_back(y);
      },
      cadre::remote_error);
  EXPECT_EQ(seen, (std::vector<long>{0, 1, 2, 3, 4}));
}

// ============================================================================================
// Imbalance
// ============================================================================================

TEST(load_balanced_view, tasks_of_uneven_length_spread_over_both_engines) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> ms(1, 50);
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 40; ++i) rs.push_back(lview.apply_async(sleep_ms, ms(rng)));
  std::map<int, int> per_engine;
  for (auto& r : rs) {
    const int e = r.get(kHang);
    EXPECT_EQ(r.metadata().engine_id, e);
    ++per_engine[e];
  }
  EXPECT_EQ(per_engine.size(), 2u) << "both engines must get work";
  EXPECT_EQ(engines_used(rs), (std::set<int>{0, 1}));
}

TEST(load_balanced_view, a_slow_task_does_not_hold_back_the_tasks_queued_after_it) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  auto slow = lview.apply_async(sleep_ms, 1500);
  std::vector<cadre::AsyncResult<int>> quick;
  for (int i = 0; i < 20; ++i) quick.push_back(lview.apply_async(sleep_ms, 2));
  for (auto& q : quick) ASSERT_TRUE(q.wait_for(kHang));
  // 20 x 2 ms of work against 1.5 s: all quick ones ran on the other engine while the slow one ran.
  EXPECT_FALSE(slow.ready()) << "the quick tasks waited for the slow one";
  const int slow_engine = slow.get(kHang);
  for (auto& q : quick) {
    EXPECT_NE(q.get(), slow_engine);
    EXPECT_LT(q.metadata().completed, slow.metadata().completed);
  }
}

// ============================================================================================
// Restricted targets
// ============================================================================================

TEST(load_balanced_view, a_view_of_engine_one_runs_only_on_engine_one) {
  Fixture f(3);
  auto one = f.rc.load_balanced_view({1});
  EXPECT_EQ(one.targets(), std::vector<int>{1});
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 30; ++i) rs.push_back(one.apply_async(sleep_ms, i % 3));
  for (auto& r : rs) {
    EXPECT_EQ(r.get(kHang), 1);
    EXPECT_EQ(r.metadata().engine_id, 1);
  }
  auto m = one.map_sync(sleep_ms, std::vector<int>(12, 1), cadre::MapOptions{.chunksize = 1});
  EXPECT_EQ(m, std::vector<int>(12, 1));
}

TEST(load_balanced_view, a_view_of_engines_zero_and_two_never_runs_on_engine_one) {
  Fixture f(3);
  auto ends = f.rc.load_balanced_view({0, 2});
  EXPECT_EQ(ends.targets(), (std::vector<int>{0, 2}));
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 60; ++i) rs.push_back(ends.apply_async(sleep_ms, 3));
  for (auto& r : rs) {
    const int e = r.get(kHang);
    EXPECT_TRUE(e == 0 || e == 2) << e;
    EXPECT_EQ(r.metadata().engine_id, e);
  }
  EXPECT_FALSE(engines_used(rs).contains(1));
  // Negative ids count from the end, as for direct views.
  auto last = f.rc.load_balanced_view({-1});
  EXPECT_EQ(last.targets(), std::vector<int>{2});
  EXPECT_EQ(last.apply_sync(where), 2);
  EXPECT_THROW(f.rc.load_balanced_view({3}), std::out_of_range);
}

// A client has kLbQueues (4) load-balanced queues, one per distinct set of target engines; views over
// a set already in use share its queue, and a fifth distinct set is refused with cadre::error.
TEST(load_balanced_view, a_client_supports_at_most_four_distinct_target_sets) {
  static_assert(cadre::detail::kLbQueues == 4);
  Fixture f(3);
  auto all = f.rc.load_balanced_view();
  auto v0 = f.rc.load_balanced_view({0});
  auto v1 = f.rc.load_balanced_view({1});
  auto v01 = f.rc.load_balanced_view({0, 1});
  // Same sets again (in any order, or every engine listed explicitly): no new queue.
  EXPECT_NO_THROW(f.rc.load_balanced_view({1, 0}));
  EXPECT_NO_THROW(f.rc.load_balanced_view({0, 1, 2}));
  EXPECT_NO_THROW(f.rc.load_balanced_view({1}));
  try {
    f.rc.load_balanced_view({0, 2});
    FAIL() << "a fifth target set must be refused";
  } catch (const cadre::error& e) {
    EXPECT_NE(std::string(e.what()).find("at most 4"), std::string::npos) << e.what();
  }
  // The four views still work, each on its own engines.
  EXPECT_EQ(v0.apply_sync(where), 0);
  EXPECT_EQ(v1.apply_sync(where), 1);
  const int e01 = v01.apply_sync(where);
  EXPECT_TRUE(e01 == 0 || e01 == 1);
  EXPECT_GE(all.apply_sync(where), 0);
  // The limit is per client: another client has its own four queues.
  cadre::Client other = f.cluster.client();
  EXPECT_EQ(other.load_balanced_view({0, 2}).apply_sync(where) % 2, 0);
}

// ============================================================================================
// Dependencies
// ============================================================================================

TEST(load_balanced_view, a_task_after_two_others_starts_after_both_completed) {
  Fixture f(3);
  auto lview = f.rc.load_balanced_view();
  auto a1 = lview.apply_async(sleep_ms, 150);
  auto a2 = lview.apply_async(sleep_ms, 80);
  auto dep = lview.after(a1, a2).apply_async(twice, 21);
  EXPECT_EQ(dep.get(kHang), 42);
  ASSERT_TRUE(a1.ready() && a2.ready());
  EXPECT_GE(dep.metadata().started, a1.metadata().completed);
  EXPECT_GE(dep.metadata().started, a2.metadata().completed);
  // A chain: each waits for the one before.
  auto c1 = lview.apply_async(sleep_ms, 30);
  auto c2 = lview.after(c1).apply_async(sleep_ms, 30);
  auto c3 = lview.after(c2).apply_async(sleep_ms, 30);
  ASSERT_TRUE(c3.wait_for(kHang));
  EXPECT_GE(c2.metadata().started, c1.metadata().completed);
  EXPECT_GE(c3.metadata().started, c2.metadata().completed);
  // A dependency on a map waits for all its tasks.
  auto m = lview.map_async(sleep_ms, std::vector<int>(6, 20), cadre::MapOptions{.chunksize = 1});
  auto after_map = lview.after(m).apply_async(where);
  ASSERT_TRUE(after_map.wait_for(kHang));
  for (std::size_t i = 0; i < m.size(); ++i) EXPECT_GE(after_map.metadata().started, m.metadata(i).completed) << i;
}

TEST(load_balanced_view, a_dependent_task_is_sent_while_an_apply_sync_of_the_same_thread_waits) {
  // EngineView::apply_sync drains completions itself for as long as it waits (ClientCore::run): it
  // must also send the load-balanced tasks whose dependencies finish meanwhile. Here the apply_sync
  // waits for what the dependent task does.
  Fixture f(3);
  auto lview = f.rc.load_balanced_view({1, 2});
  const int me = int(::getpid()), tag = fresh_tag();
  auto first = lview.apply_async(sleep_ms, 20);
  auto dep = lview.after(first).apply_async(create_signal, me, tag);
  EXPECT_EQ(f.rc[0].apply_sync(wait_for_signal, me, tag), 1) << "the dependent task was not sent while apply_sync waited";
  EXPECT_EQ(dep.get(kHang), 1);
  std::remove(signal_path(me, tag).c_str());
}

TEST(load_balanced_view, a_failed_dependency_fails_the_dependent_with_dependency_error_and_it_never_runs) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  const int tag = fresh_tag();
  auto ok = lview.apply_async(sleep_ms, 20);
  auto bad = lview.apply_async(fail_always, 1);
  auto dep = lview.after(ok, bad).apply_async(mark, tag);
  ASSERT_TRUE(dep.wait_for(kHang));
  try {
    dep.get();
    FAIL() << "expected dependency_error";
  } catch (const cadre::dependency_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("(" + std::to_string(bad.msg_ids()[0]) + ")"), std::string::npos) << what;
    EXPECT_EQ(what.find("(" + std::to_string(ok.msg_ids()[0])), std::string::npos) << "only the failed one is named: " << what;
  }
  // It fails transitively: a task after the dependent does not run either.
  const int tag2 = fresh_tag();
  auto dep2 = lview.after(dep).apply_async(mark, tag2);
  EXPECT_THROW(dep2.get(kHang), cadre::dependency_error);
  f.rc.wait();
  EXPECT_EQ(times_marked(f.rc, tag), 0) << "the dependent function ran";
  EXPECT_EQ(times_marked(f.rc, tag2), 0);
}

// A load-balanced apply_async allocates its task together with its result (AsyncResult::with_new_task):
// the task must live as long as anything refers to it, and no longer.
TEST(load_balanced_view, a_task_outlives_a_dropped_result_while_something_still_needs_it) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  // Fire and forget: the result is dropped at once; the task still runs, and rc.wait() waits for it.
  std::vector<int> tags;
  for (int i = 0; i < 3; ++i) (void)lview.apply_async(mark, tags.emplace_back(fresh_tag()));
  f.rc.wait();
  for (int tag : tags) EXPECT_EQ(times_marked(f.rc, tag), 1) << tag;
  // A view made after() a result keeps that result's task alive after the result is gone.
  cadre::LoadBalancedView later;
  std::weak_ptr<cadre::detail::TaskState> watch;
  {
    auto slow = lview.apply_async(sleep_ms, 60);
    later = lview.after(slow);
    watch = cadre::detail::ResultAccess::tasks(slow).at(0);
  }
  EXPECT_EQ(later.apply_async(twice, 5).get(kHang), 10);
  EXPECT_FALSE(watch.expired()) << "the view still lists it as a dependency";
  later = cadre::LoadBalancedView();
  EXPECT_TRUE(watch.expired()) << "nothing refers to the finished task any more, yet it lives";
  // tasks() hands out owning references; then() keeps its base alive.
  std::vector<cadre::detail::Task> kept;
  cadre::AsyncResult<int> next;
  {
    auto ar = lview.apply_async(twice, 8);
    kept = cadre::detail::ResultAccess::tasks(ar);
    next = ar.then([](int x) { return x + 1; });
  }
  EXPECT_EQ(next.get(kHang), 17);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_TRUE(kept[0]->is_done());
  EXPECT_EQ(next.msg_ids(), std::vector<std::uint64_t>{kept[0]->id});
}

TEST(load_balanced_view, a_task_waiting_for_its_dependencies_can_be_aborted) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  const int tag = fresh_tag();
  auto slow = lview.apply_async(sleep_ms, 300);
  auto dep = lview.after(slow).apply_async(mark, tag);
  EXPECT_TRUE(dep.abort());
  EXPECT_THROW(dep.get(kHang), cadre::aborted_error);
  ASSERT_TRUE(slow.wait_for(kHang));
  f.rc.wait();
  EXPECT_EQ(times_marked(f.rc, tag), 0);
}

// ============================================================================================
// abort and timeout
// ============================================================================================

// IPython's idiom `while not ar.ready(): time.sleep(1)`: the non-blocking queries take in completions
// that have arrived, so a loop that only polls them sees its tasks finish, on a load-balanced and on a
// direct view alike (nothing else in this process waits).
TEST(async_result, ready_polled_in_a_loop_turns_true_without_a_blocking_call) {
  Fixture f(2);
  const auto balanced = f.rc.load_balanced_view().apply_async(sleep_ms, 100);
  const auto direct = f.rc[1].apply_async(sleep_ms, 100);
  const auto give_up = std::chrono::steady_clock::now() + 20s;  // a bound against a hang, not a timing check
  while (!(balanced.ready() && direct.ready()) && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(balanced.ready()) << "ready() never saw the load-balanced task finish";
  ASSERT_TRUE(direct.ready()) << "ready() never saw the direct task finish";
  EXPECT_TRUE(balanced.successful());
  EXPECT_EQ(direct.get(), 1);
  EXPECT_GE(balanced.metadata().engine_id, 0) << "the engine that ran it is known once it is done";
}

TEST(async_result, progress_and_queue_status_see_finished_tasks_without_a_blocking_call) {
  Fixture f(1);
  const auto ar = f.rc[0].apply_async(sleep_ms, 50);
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (ar.progress() == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(ar.progress(), 1u);
  EXPECT_EQ(f.rc.outstanding(), 0u) << "the client took the completion in";
  EXPECT_EQ(f.rc.queue_status()[0].done, 1u);
}

TEST(load_balanced_view, abort_of_a_queued_task_stops_it_from_ever_running) {
  Fixture f(1);
  auto lview = f.rc.load_balanced_view();
  auto running = lview.apply_async(sleep_ms, 400);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[0].running; })) << "the long task never started";
  std::vector<int> tags;
  std::vector<cadre::AsyncResult<int>> queued;
  for (int i = 0; i < 4; ++i) {
    tags.push_back(fresh_tag());
    queued.push_back(lview.apply_async(mark, tags.back()));
  }
  EXPECT_TRUE(queued[1].abort());
  EXPECT_TRUE(queued[3].abort());
  EXPECT_TRUE(queued[1].ready()) << "an aborted future is finished at once";
  try {
    queued[1].get();
    FAIL() << "expected aborted_error";
  } catch (const cadre::aborted_error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(queued[1].msg_ids()[0])), std::string::npos) << e.what();
  }
  EXPECT_THROW(queued[3].get(kHang), cadre::aborted_error);
  EXPECT_EQ(running.get(kHang), 0) << "the running task finishes normally";
  EXPECT_EQ(queued[0].get(kHang), tags[0]);
  EXPECT_EQ(queued[2].get(kHang), tags[2]);
  queued[0].abort();  // a finished task has nothing left to abort: its value stays
  EXPECT_EQ(queued[0].get(), tags[0]);
  EXPECT_EQ(times_marked(f.rc, tags[0]), 1);
  EXPECT_EQ(times_marked(f.rc, tags[1]), 0) << "an aborted task ran";
  EXPECT_EQ(times_marked(f.rc, tags[2]), 1);
  EXPECT_EQ(times_marked(f.rc, tags[3]), 0) << "an aborted task ran";
}

// abort() interrupts a running task too (SIGUSR2; the engine jumps out and serves on).

TEST(load_balanced_view, abort_of_a_running_task_interrupts_it_and_the_engine_serves_on) {
  Fixture f(1);
  auto lview = f.rc.load_balanced_view();
  auto running = lview.apply_async(busy_ms, 3000);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[0].running; })) << "the long task never started";
  const int tag = fresh_tag();
  auto next = lview.apply_async(mark, tag);
  EXPECT_TRUE(running.abort());
  ASSERT_TRUE(running.wait_for(kHang));
  try {
    running.get();
    FAIL() << "expected aborted_error";
  } catch (const cadre::aborted_error& e) {
    EXPECT_NE(std::string(e.what()).find("interrupted"), std::string::npos) << e.what();
  }
  EXPECT_EQ(running.metadata().engine_id, 0);
  EXPECT_LT(running.metadata().completed - running.metadata().started, 3000ms) << "it was not cut short";
  EXPECT_EQ(next.get(kHang), tag) << "the task queued behind it runs";
  EXPECT_EQ(lview.apply_sync(twice, 4), 8);
  EXPECT_EQ(times_marked(f.rc, tag), 1);
}

TEST(direct_view, abort_of_a_queued_task_fails_it_with_aborted_error_and_it_never_runs) {
  Fixture f(2);
  auto busy = f.rc[1].apply_async(sleep_ms, 400);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[1].running; })) << "the long task never started";
  const int tag = fresh_tag(), after = fresh_tag();
  auto a = f.rc[1].apply_async(mark, tag);
  auto b = f.rc[1].apply_async(mark, after);
  EXPECT_TRUE(a.abort());
  try {
    a.get(kHang);
    FAIL() << "expected aborted_error";
  } catch (const cadre::aborted_error& e) {
    EXPECT_NE(std::string(e.what()).find("before it started"), std::string::npos) << e.what();
  }
  EXPECT_EQ(busy.get(kHang), 1) << "the running task finishes normally";
  EXPECT_EQ(b.get(kHang), after) << "the task queued behind the aborted one runs";
  EXPECT_EQ(times_marked(f.rc, tag), 0) << "an aborted task ran";
  EXPECT_EQ(times_marked(f.rc, after), 1);
  EXPECT_EQ(f.rc[1].apply_sync(twice, 4), 8);
}

TEST(direct_view, view_abort_aborts_the_views_unfinished_tasks_and_no_others) {
  Fixture f(2);
  cadre::DirectView all = f.rc[cadre::all];
  auto long_ones = all.apply_async(busy_ms, 3000);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[0].running && f.rc.queue_status()[1].running; }));
  const int tag = fresh_tag();
  auto queued = all.apply_async(mark, tag);
  auto elsewhere = f.rc.load_balanced_view().apply_async(twice, 21);  // not a task of `all`
  EXPECT_EQ(all.abort(), 4u) << "two running and two queued tasks";
  EXPECT_THROW(long_ones.get(kHang), cadre::composite_error);
  EXPECT_THROW(queued.get(kHang), cadre::composite_error);
  EXPECT_EQ(elsewhere.get(kHang), 42) << "a task of another view is left alone";
  EXPECT_EQ(times_marked(f.rc, tag), 0) << "an aborted task ran";
  EXPECT_EQ(all.abort(), 0u) << "nothing is left to abort";
  EXPECT_EQ(all.apply_sync(twice, 1), (std::vector<int>{2, 2}));
}

TEST(client, abort_aborts_every_unfinished_task_of_the_client_direct_and_load_balanced) {
  Fixture f(1);
  auto lview = f.rc.load_balanced_view();
  auto running = f.rc[0].apply_async(busy_ms, 3000);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[0].running; }));
  const int direct_tag = fresh_tag(), balanced_tag = fresh_tag();
  auto direct = f.rc[0].apply_async(mark, direct_tag);
  auto balanced = lview.apply_async(mark, balanced_tag);
  EXPECT_EQ(f.rc.abort(), 3u);
  for (auto* r : {&running, &direct, &balanced}) EXPECT_THROW(r->get(kHang), cadre::aborted_error);
  EXPECT_EQ(f.rc.outstanding(), 0u);
  EXPECT_EQ(times_marked(f.rc, direct_tag), 0);
  EXPECT_EQ(times_marked(f.rc, balanced_tag), 0);
  EXPECT_EQ(lview.apply_sync(twice, 3), 6);
}

/// Spins for `ms` milliseconds; one function per N, so that each first call makes the engine resolve it.
template <int N>
int spin_ms(int ms) {
  return busy_ms(ms) + N;
}

/// Sends spin_ms<N>(2000) for each N through `view` and aborts it the moment the engine is seen
/// running it; each must end aborted and the engine serve the next call.
template <class View, int... N>
void abort_each_as_it_starts(Fixture& f, View& view, std::integer_sequence<int, N...>) {
  auto one = [&](auto run) {
    auto r = view.apply_async(run, 2000);
    while (!f.rc.queue_status()[0].running && !r.ready()) {
    }
    (void)r.abort();
    EXPECT_THROW(r.get(kHang), cadre::aborted_error) << "an abort as the task started was lost";
    EXPECT_EQ(f.rc[0].apply_sync(twice, 4), 8) << "the engine serves on after an abort as it started a task";
  };
  (one(spin_ms<N>), ...);
}

// The abort lands as soon as the engine is seen running the task: often while it still resolves the
// function (under a lock) or fills its call cache, where a jump out would leave that lock held and
// the engine stuck. The jump is armed around the call itself only, and an interrupt that came before
// stops the task before its call.
TEST(direct_view, an_abort_as_the_engine_starts_a_task_is_kept_and_never_leaves_the_engine_unable_to_serve) {
  Fixture f(1);
  auto e0 = f.rc[0];
  abort_each_as_it_starts(f, e0, std::make_integer_sequence<int, 16>{});
}

TEST(load_balanced_view, an_abort_as_the_engine_starts_a_task_is_kept_and_never_leaves_the_engine_unable_to_serve) {
  Fixture f(1);
  auto lview = f.rc.load_balanced_view();
  abort_each_as_it_starts(f, lview, std::make_integer_sequence<int, 16>{});
}

/// Allocates and frees strings for `ms` milliseconds: almost always inside malloc or free.
long churn(int ms) {
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  long n = 0;
  while (Clock::now() < end) {
    std::vector<std::string> v;
    for (int i = 0; i < 64; ++i) v.emplace_back(std::size_t(2000 + 997 * i), 'x');  // past the tcache: the arena lock
    n += long(v.size());
  }
  return n;
}

// BUG (engine_loop.hpp, Engine::on_interrupt / run_interruptible, commit 94de2c8): the SIGUSR2 handler
// siglongjmp()s out of whatever the task is doing. When that is inside malloc/free (or any code holding
// a lock or mid-update: iostreams, the namespace's map, TBB), the heap is left inconsistent or locked:
// here the engine dies of SIGSEGV/SIGABRT inside libc's malloc within the first few rounds (3 of 3
// runs), so "the engine serves on" does not hold. Suggested fix: make interruption cooperative (a flag
// the task polls, e.g. this_engine::interrupted(), checked at safe points) or, for a hard stop, kill and
// restart the engine (with restart_engines) instead of jumping out of async-signal-unsafe code.
TEST(load_balanced_view, an_engine_interrupted_inside_malloc_still_serves) {
  Fixture f(1);
  auto lview = f.rc.load_balanced_view();
  for (int round = 0; round < 30; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto r = lview.apply_async(churn, 5000);
    ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[0].running; }));
    std::this_thread::sleep_for(20ms);
    r.abort();
    ASSERT_TRUE(r.wait_for(10s)) << "the interrupted task never finished";
    auto probe = lview.apply_async(twice, round);
    ASSERT_TRUE(probe.wait_for(10s)) << "the engine stopped serving after an interrupt";
    EXPECT_EQ(probe.get(), 2 * round);
  }
}

TEST(load_balanced_view, a_task_not_started_within_its_timeout_fails_with_timeout_error_and_never_runs) {
  Fixture f(1);
  auto lview = f.rc.load_balanced_view();
  auto busy = lview.apply_async(sleep_ms, 500);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[0].running; }));
  auto timed = lview;
  timed.timeout = 50ms;
  const int tag = fresh_tag();
  auto late = timed.apply_async(mark, tag);
  ASSERT_TRUE(late.wait_for(kHang));
  EXPECT_THROW(late.get(), cadre::timeout_error);
  EXPECT_EQ(busy.get(kHang), 0);
  // The view without a timeout is unaffected, and a task that starts in time succeeds.
  EXPECT_EQ(lview.apply_sync(twice, 2), 4);
  auto roomy = lview;
  roomy.timeout = 10s;
  EXPECT_EQ(roomy.apply_async(twice, 3).get(kHang), 6);
  EXPECT_EQ(times_marked(f.rc, tag), 0) << "a timed-out task ran";
}

// ============================================================================================
// queue_status and wait
// ============================================================================================

TEST(load_balanced_view, queue_status_has_one_entry_per_engine_with_growing_done_counts) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  const auto before = f.rc.queue_status();
  ASSERT_EQ(before.size(), 2u);
  for (int e = 0; e < 2; ++e) EXPECT_EQ(before[std::size_t(e)].engine, e);
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 40; ++i) rs.push_back(lview.apply_async(sleep_ms, 2));
  f.rc.wait();
  const auto after = f.rc.queue_status();
  ASSERT_EQ(after.size(), 2u);
  std::uint64_t grew = 0;
  for (std::size_t e = 0; e < 2; ++e) {
    EXPECT_GE(after[e].done, before[e].done);
    grew += after[e].done - before[e].done;
    EXPECT_FALSE(after[e].running);
    EXPECT_EQ(after[e].queued, 0u);
  }
  EXPECT_GE(grew, 40u);
  std::map<int, std::uint64_t> ran;
  for (auto& r : rs) ++ran[r.get()];
  for (const auto& [e, n] : ran) EXPECT_GE(after[std::size_t(e)].done - before[std::size_t(e)].done, n) << "engine " << e;
}

TEST(load_balanced_view, client_wait_waits_for_everything_outstanding) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 30; ++i) rs.push_back(lview.apply_async(sleep_ms, 5));
  auto m = lview.map_async(affine, std::vector<long>(100, 1), cadre::MapOptions{.chunksize = 3});
  auto slow = lview.apply_async(sleep_ms, 1);
  auto dep = lview.after(slow).apply_async(twice, 1);  // held on the client until `slow` is done
  EXPECT_GT(f.rc.outstanding(), 0u);
  f.rc.wait();
  EXPECT_EQ(f.rc.outstanding(), 0u);
  for (auto& r : rs) EXPECT_TRUE(r.ready());
  EXPECT_TRUE(m.ready());
  EXPECT_TRUE(dep.ready());
  EXPECT_EQ(dep.get(), 2);
  EXPECT_EQ(m.get(), std::vector<long>(100, affine(1)));
}

// ============================================================================================
// Engine death
// ============================================================================================

constexpr long kDeathItems = 200;

/// Submits the 200-item, 10 ms-per-item map (chunksize 1), then SIGKILLs engine `victim` after ~300 ms.
/// Returns the map's future and the pid that was killed.
std::pair<cadre::AsyncMapResult<long>, pid_t> map_and_kill(Fixture& f, const cadre::LoadBalancedView& lview, int victim) {
  auto amr = lview.map_async(slow_square, std::views::iota(0L, kDeathItems), cadre::MapOptions{.chunksize = 1});
  std::this_thread::sleep_for(300ms);
  const pid_t pid = f.cluster.pids()[std::size_t(victim)];
  EXPECT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, SIGKILL), 0);
  return {amr, pid};
}

std::vector<long> squares(long n) {
  std::vector<long> out;
  for (long i = 0; i < n; ++i) out.push_back(i * i);
  return out;
}

/// Per task of a chunksize-1 map: which failed (with what), and whether the others are right.
struct PerTask {
  std::vector<std::size_t> failed;
  std::vector<std::exception_ptr> errors;
  std::size_t wrong = 0;
};
PerTask classify(const cadre::AsyncMapResult<long>& amr) {
  PerTask out;
  const auto tasks = cadre::detail::ResultAccess::tasks(amr);
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = *tasks[i];
    EXPECT_TRUE(t.is_done()) << i;
    if (auto e = cadre::detail::task_error(t)) {
      out.failed.push_back(i);
      out.errors.push_back(e);
    } else if (cadre::detail::task_value<std::vector<long>>(t, "item") != std::vector<long>{long(i) * long(i)}) {
      ++out.wrong;
    }
  }
  return out;
}

TEST(load_balanced_view, with_one_retry_a_map_survives_an_engine_killed_mid_map) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  lview.retries = 1;
  auto [amr, pid] = map_and_kill(f, lview, 1);
  ASSERT_TRUE(amr.wait_for(kHang)) << "the map hung after an engine died";
  EXPECT_EQ(amr.get(), squares(kDeathItems));
  EXPECT_TRUE(amr.successful());
  // The dead engine did part of the work before it died, the survivor the rest.
  std::set<int> used;
  for (std::size_t i = 0; i < amr.size(); ++i) used.insert(amr.metadata(i).engine_id);
  EXPECT_EQ(used, (std::set<int>{0, 1}));
  EXPECT_TRUE(wait_until([&] { return f.cluster.pids()[1] == 0; })) << "reaped and not restarted";
  // The surviving engine still serves the view.
  EXPECT_EQ(lview.apply_sync(where), 0);
}

TEST(load_balanced_view, without_retries_exactly_the_task_running_on_a_killed_engine_fails_with_engine_error) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  ASSERT_EQ(lview.retries, 0);
  auto [amr, pid] = map_and_kill(f, lview, 1);
  ASSERT_TRUE(amr.wait_for(kHang)) << "the map hung after an engine died";
  try {
    amr.get();
    FAIL() << "expected composite_error";
  } catch (const cadre::composite_error& e) {
    ASSERT_EQ(e.failures().size(), 1u) << e.what();
    try {
      std::rethrow_exception(e.failures()[0].error);
    } catch (const cadre::engine_error& ee) {
      EXPECT_EQ(ee.engine_id(), 1) << ee.what();
      EXPECT_EQ(ee.pid(), pid) << ee.what();
      EXPECT_EQ(ee.signal(), SIGKILL) << ee.what();
    } catch (const std::exception& other) {
      ADD_FAILURE() << "not an engine_error: " << other.what();
    }
  }
  const PerTask per = classify(amr);
  ASSERT_EQ(per.failed.size(), 1u);
  EXPECT_THROW(std::rethrow_exception(per.errors[0]), cadre::engine_error);
  EXPECT_EQ(per.wrong, 0u) << "every other item is right";
  // Its metadata names the engine that was running it, as its engine_error does.
  EXPECT_EQ(amr.metadata(per.failed[0]).engine_id, 1);
  EXPECT_EQ(lview.apply_sync(where), 0);
}

// BUG (shm_transport.hpp ShmTransport::balanced_claim, used by client_core.hpp check_health): with
// restart_engines, the launcher reaps the killed engine, saves its claim in dead_claim and spawns the new
// incarnation at once; the client notices at its next health check (up to 10 ms later, plus up to 100 ms
// of grace while the signal is not yet recorded), by which time the new incarnation has usually claimed a
// task of its own. balanced_claim(e, q, pos, dead = true) prefers lb_claim and reads dead_claim only when
// lb_claim is 0, so the client takes the NEW incarnation's running task for the lost one: it re-sends it
// (retries = 1; it then runs twice) or fails it with engine_error although it completes (retries = 0),
// while the task the dead incarnation held is never retried nor failed: its future never completes and
// the map hangs (in 3 of 3 runs here: "199 of 200 tasks done").
// (Runs in a child process with a time limit: see the launcher bug below, which can hang any test that
// restarts engines.)
TEST(load_balanced_view, a_map_survives_an_engine_killed_mid_map_when_engines_restart) {
  const auto r = run_in_child(
      [](const std::string& name, Verdict& v) {
        Fixture f(name, 2, /*restart=*/true);
        auto lview = f.rc.load_balanced_view();
        lview.retries = 1;
        auto amr = lview.map_async(slow_square, std::views::iota(0L, kDeathItems), cadre::MapOptions{.chunksize = 1});
        std::this_thread::sleep_for(300ms);
        ::kill(f.cluster.pids()[1], SIGKILL);
        if (!amr.wait_for(15s))
          return v.set(1, std::to_string(amr.progress()) + " of " + std::to_string(amr.size()) + " tasks done: the map hung");
        if (amr.get() != squares(kDeathItems)) return v.set(2, "wrong result");
        v.set(0);
      },
      40s);
  EXPECT_EQ(r.verdict, 0) << r.message;
  EXPECT_FALSE(r.timed_out) << "the child hung (the launcher bug below?)";
}

// BUG: the same as above, with retries = 0 and individual futures: the lost task never fails.
TEST(load_balanced_view, when_engines_restart_and_retries_is_zero_only_the_lost_task_fails) {
  const auto r = run_in_child(
      [](const std::string& name, Verdict& v) {
        Fixture f(name, 2, /*restart=*/true);
        auto lview = f.rc.load_balanced_view();
        std::vector<cadre::AsyncResult<long>> rs;  // individual futures this time
        for (long i = 0; i < kDeathItems; ++i) rs.push_back(lview.apply_async(slow_square, i));
        std::this_thread::sleep_for(300ms);
        ::kill(f.cluster.pids()[1], SIGKILL);
        int failed = 0;
        for (long i = 0; i < kDeathItems; ++i) {
          if (!rs[std::size_t(i)].wait_for(15s)) return v.set(1, "task " + std::to_string(i) + " never completed nor failed");
          try {
            if (rs[std::size_t(i)].get() != i * i) return v.set(2, "wrong value for task " + std::to_string(i));
          } catch (const cadre::engine_error&) {
            ++failed;
          }
        }
        v.set(failed == 1 ? 0 : 3, std::to_string(failed) + " tasks failed with engine_error");
      },
      40s);
  EXPECT_EQ(r.verdict, 0) << r.message;
  EXPECT_FALSE(r.timed_out) << "the child hung (the launcher bug below?)";
}

// BUG: the same claim mix-up, without any task lost. Engine 1 is killed while idle; while the test
// waits for the restart and while the new incarnation runs its first tasks the client does not look,
// so its first health check comes after the new incarnation has claimed a task: that task (which
// completes fine) is failed with "engine 1 ... died before finishing the task; it was running this
// load-balanced task".
// In about a third of runs the child hangs instead, in cluster.pids(): the launcher bug below.
TEST(load_balanced_view, a_restarted_engine_serves_load_balanced_tasks_again) {
  const auto r = run_in_child(
      [](const std::string& name, Verdict& v) {
        Fixture f(name, 2, /*restart=*/true);
        auto one = f.rc.load_balanced_view({1});
        if (one.apply_sync(where) != 1) return v.set(1, "not on engine 1");
        ::kill(f.cluster.pids()[1], SIGKILL);  // idle: it holds no task
        if (!wait_until([&] { return f.cluster.restarts(1) == 1 && f.cluster.pids()[1] > 0; })) return v.set(2, "not restarted");
        std::vector<cadre::AsyncResult<int>> rs;
        for (int i = 0; i < 5; ++i) rs.push_back(one.apply_async(sleep_ms, 100));
        std::this_thread::sleep_for(250ms);  // the new engine runs them; the client has not looked yet
        for (auto& x : rs) {
          try {
            if (x.get(15s) != 1) return v.set(3, "not on engine 1");
          } catch (const std::exception& e) {
            return v.set(4, e.what());
          }
        }
        v.set(0);
      },
      30s);
  EXPECT_EQ(r.verdict, 0) << r.message;
  EXPECT_FALSE(r.timed_out) << "the child hung (the launcher bug below?)";
}

TEST(load_balanced_view, an_engine_death_noticed_late_still_fails_only_the_lost_task) {
  // Without restarts, the dead engine's claim survives in dead_claim until the client looks.
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  auto amr = lview.map_async(slow_square, std::views::iota(0L, kDeathItems), cadre::MapOptions{.chunksize = 1});
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(::kill(f.cluster.pids()[1], SIGKILL), 0);
  std::this_thread::sleep_for(500ms);  // the client is not looking
  ASSERT_TRUE(amr.wait_for(kHang));
  const PerTask per = classify(amr);
  EXPECT_EQ(per.failed.size(), 1u);
  EXPECT_EQ(per.wrong, 0u);
}

TEST(load_balanced_view, queued_tasks_whose_every_allowed_engine_died_fail_with_engine_error) {
  Fixture f(2);
  auto only1 = f.rc.load_balanced_view({1});
  auto running = only1.apply_async(sleep_ms, 2000);
  ASSERT_TRUE(wait_until([&] { return f.rc.queue_status()[1].running; }));
  std::vector<cadre::AsyncResult<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(only1.apply_async(twice, i));
  ASSERT_EQ(::kill(f.cluster.pids()[1], SIGKILL), 0);
  EXPECT_THROW(running.get(kHang), cadre::engine_error);
  for (auto& q : queued) EXPECT_THROW(q.get(kHang), cadre::engine_error);
  // A view that includes the live engine still works.
  EXPECT_EQ(f.rc.load_balanced_view().apply_sync(where), 0);
}

// BUG (engine_loop.hpp claim_balanced / client_core.hpp check_health): an engine that dies while it
// holds a load-balanced slot never stores seq = pos + kLbSlots (engine_loop.hpp, after handle()), and
// nobody else does, so the slot at pos % 512 stays "ready" (seq == pos + 1) forever. When the client's
// queue wraps around to that slot (pos + 512), try_send_balanced sees it as full and send_balanced
// loops in progress() forever: every apply_async/map_async on that view hangs, 511 tasks after any
// engine death that interrupted a load-balanced task. Runs in a child process with a time limit,
// because the hang is inside apply_async.
TEST(load_balanced_view, a_view_keeps_accepting_tasks_long_after_an_engine_died_mid_task) {
  const auto r = run_in_child(
      [](const std::string& name, Verdict& v) {
        Fixture f(name, 2);
        auto lview = f.rc.load_balanced_view();
        lview.retries = 1;
        auto amr = lview.map_async(slow_square, std::views::iota(0L, 100L), cadre::MapOptions{.chunksize = 1});
        std::this_thread::sleep_for(200ms);
        ::kill(f.cluster.pids()[1], SIGKILL);
        if (amr.get(kHang) != squares(100)) return v.set(1, "wrong result of the first map");
        v.set(2, "submitting 1000 more tasks hung");
        // 1000 more single-item tasks pass slot (lost position % 512) again.
        auto more = lview.map_sync(affine, std::views::iota(0L, 1000L), cadre::MapOptions{.chunksize = 1});
        v.set(more.size() == 1000 ? 0 : 3, "wrong result of the second map");
      },
      20s);
  EXPECT_EQ(r.verdict, 0) << r.message;
  EXPECT_FALSE(r.timed_out);
}

// BUG (cluster.hpp, Cluster::monitor / spawn / forward_output): when an engine dies, its pidfd and its
// output pipe (hang-up) usually become ready in the same poll(). monitor() handles the pidfd first:
// reap() -> spawn() replaces engines_[i].out with the NEW engine's pipe (without closing the old one,
// which leaks). It then handles the stale (i, output) entry: forward_output(i) does a blocking read()
// on the new, empty pipe while holding mu_. The launcher thread is stuck: it reaps and restarts no
// more engines, and everything that takes mu_ (pids(), stop(), so ~Cluster) blocks forever. Seen in
// about a third of restarts here (hence 8 kills in a row). Suggested fix: remember the fd in `what`
// and skip it in forward_output if engines_[i].out is no longer that fd (or open the pipe's read end
// O_NONBLOCK); drain and close the old output fd in reap() before spawning the replacement. Runs in a
// child process with a time limit, because the hang takes the Cluster with it.
TEST(load_balanced_view, the_launcher_keeps_restarting_killed_engines) {
  const auto r = run_in_child(
      [](const std::string& name, Verdict& v) {
        cadre::Cluster cluster({.engines = 2, .name = name, .restart_engines = true});
        for (std::uint32_t round = 1; round <= 8; ++round) {
          std::this_thread::sleep_for(1100ms);  // outlive the launcher's "dies at once" limit
          v.set(1, "cluster.pids() hung in round " + std::to_string(round));
          const pid_t pid = cluster.pids()[1];
          if (pid <= 0 || ::kill(pid, SIGKILL) != 0) return v.set(2, "no engine 1 to kill");
          if (!wait_until([&] { return cluster.restarts(1) == round && cluster.pids()[1] > 0; }, 5s))
            return v.set(3, "engine 1 not restarted in round " + std::to_string(round));
        }
        v.set(0);
      },
      30s);
  EXPECT_EQ(r.verdict, 0) << r.message;
  EXPECT_FALSE(r.timed_out);
}

// ============================================================================================
// Many small tasks
// ============================================================================================

TEST(load_balanced_view, twenty_thousand_small_tasks_all_complete_with_the_right_values) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  constexpr int n = 20000;
  std::vector<cadre::AsyncResult<int>> rs;
  rs.reserve(n);
  for (int i = 0; i < n; ++i) rs.push_back(lview.apply_async(twice, i));
  std::set<int> used;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(rs[std::size_t(i)].get(kHang), 2 * i) << i;
    used.insert(rs[std::size_t(i)].metadata().engine_id);
  }
  EXPECT_TRUE(used.contains(0) || used.contains(1));
  for (int e : used) EXPECT_TRUE(e == 0 || e == 1) << e;
  EXPECT_EQ(f.rc.outstanding(), 0u);
}

TEST(load_balanced_view, two_threads_submitting_to_one_view_get_all_their_results) {
  Fixture f(2);
  auto lview = f.rc.load_balanced_view();
  std::atomic<int> wrong{0};
  auto work = [&](int base) {
    std::vector<cadre::AsyncResult<int>> rs;
    for (int i = 0; i < 2000; ++i) rs.push_back(lview.apply_async(twice, base + i));
    for (int i = 0; i < 2000; ++i)
      if (rs[std::size_t(i)].get(kHang) != 2 * (base + i)) ++wrong;
  };
  std::thread a(work, 0), b(work, 100000);
  a.join();
  b.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(load_balanced_view, prints_its_targets) {
  Fixture f(3);
  auto v = f.rc.load_balanced_view({0, 2});
  EXPECT_EQ(fmt::format("{}", v), "<LoadBalancedView [0, 2]>");
  std::ostringstream os;
  os << v;
  EXPECT_EQ(os.str(), "<LoadBalancedView [0, 2]>");
}

}  // namespace lb_test
