// tests/faults_test.cpp — fault tolerance with real processes: engines SIGKILLed in every phase of their
// work (with and without restarts), engines that crash or never return, clients and launchers killed,
// SIGINT/SIGTERM in a launcher, and a full segment. Every wait is bounded: a hang is a failure.
#include "fault_helpers.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace cadre_fault;
using cadre_test::ScratchDir;

// ---- functions that run on engines ------------------------------------------------------------------

int twice(int x) { return 2 * x; }

int sleep_ms(int ms) {
  ::usleep(useconds_t(ms) * 1000);
  return ms;
}

/// Creates the file `path` when it goes out of scope (if the test has not already): a gate that tasks
/// on engines wait for, opened by the test once it has seen what it needs to see.
struct OpenGate {
  std::string path;
  void open() const {
    if (std::FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
  }
  ~OpenGate() { open(); }
};

/// Waits until the file `path` exists or its directory is gone (the test removed it, done), at most 30 s.
void wait_for_file(const std::string& path) {
  const std::string dir = path.substr(0, path.rfind('/'));
  for (int i = 0; i < 15000 && ::access(path.c_str(), F_OK) != 0 && ::access(dir.c_str(), F_OK) == 0; ++i) ::usleep(2000);
}

/// On an engine: waits until `gate` exists (at most 30 s), then returns x.
int x_once_open(int x, const std::string& gate) {
  wait_for_file(gate);
  return x;
}

/// 2x and the pid of the engine that computed it.
std::tuple<int, pid_t> twice_and_pid(int x) { return {2 * x, ::getpid()}; }

[[gnu::noinline]] int throw_on_purpose(int) { throw std::runtime_error("thrown on purpose"); }

[[gnu::noinline]] int call_abort(int) { std::abort(); }

// Both the pointer and the store are volatile: GCC drops a plain store through a null pointer (-O1), or
// turns it into a trap (SIGILL) at -O2. Not sanitized: UBSan would stop the engine before the store.
[[gnu::noinline, gnu::no_sanitize_undefined, gnu::no_sanitize_address]] int crash_by_null_write(int x) {
  int* volatile p = nullptr;
  *static_cast<volatile int*>(p) = x;
  return x;
}

// Not a tail call (the frame is used after the call) and not provably endless: it recurses until the
// 8 MiB stack runs out.
[[gnu::noinline]] int recurse_until_the_stack_overflows(int depth) {
  volatile char pad[4096];
  pad[0] = char(depth);
  if (depth < 0) return 0;
  return recurse_until_the_stack_overflows(depth + 1) + pad[0];
}

[[gnu::noinline]] int never_return() {
  for (;;) asm volatile("" ::: "memory");
}

/// (size, first, last) of the vector<double> an engine holds under name.
std::vector<double> chunk_summary(cadre::Namespace& ns, const std::string& name) {
  const auto v = ns.view<std::vector<double>>(name);
  if (v.empty()) return {0, 0, 0};
  return {double(v.size()), v.front(), v.back()};
}

// =========================================================================================================
// An engine SIGKILLed while idle, during a task, during a large scatter, and while results flow; each
// without and with restart_engines.
// =========================================================================================================

/// A 4-engine cluster to kill engines of, with or without restart_engines.
class KillableCluster {
 public:
  static constexpr int kEngines = 4;

  // Engine output goes to files when engines restart; restarts with output through pipes are covered by
  // errors_test.cpp, engine_restart.restarting_an_engine_whose_output_goes_to_a_pipe_does_not_deadlock_the_launcher.
  explicit KillableCluster(bool restarts)
      : restarts_(restarts),
        cluster_({.engines = kEngines, .name = ft_name(), .restart_engines = restarts, .log_dir = restarts ? logs_.path : ""}),
        client_(cluster_.client()), pids_(cluster_.pids()) {}

  bool restarts() const { return restarts_; }
  /// The pid the launcher has for engine i now: 0 once it reaped a dead one, a new pid once replaced.
  pid_t current_pid(int i) const { return cluster_.pids()[std::size_t(i)]; }
  cadre::Client& client() { return client_; }
  pid_t pid(int i) const { return pids_[std::size_t(i)]; }

  /// The signal an engine_error for the killed engine must carry, with or without a replacement.
  int expected_signal() const { return SIGKILL; }

  /// After engine `victim` was killed: without restarts, a new task on it fails fast with engine_error
  /// (SIGKILL); with restarts, a replacement with the same id and a new pid answers. Either way every
  /// other engine still answers.
  void expect_the_cluster_to_carry_on(int victim) {
    if (restarts()) {
      ASSERT_TRUE(wait_until([&] {
        const pid_t p = cluster_.pids()[std::size_t(victim)];
        return p != 0 && p != pid(victim);
      }, 10s)) << "engine " << victim << " was not replaced";
      EXPECT_GE(cluster_.restarts(victim), 1u);
      const pid_t replacement = cluster_.pids()[std::size_t(victim)];
      const auto who = settle(client_[victim].apply_async([] { return std::make_tuple(::getpid(), cadre::this_engine::id()); }));
      ASSERT_TRUE(who.ok()) << who.what();
      EXPECT_EQ(std::get<0>(*who.value), replacement);
      EXPECT_EQ(std::get<1>(*who.value), victim);
      EXPECT_EQ(settle(client_[victim].apply_async(twice, 21)).value, 42);
    } else {
      EXPECT_TRUE(wait_until([&] { return cluster_.pids()[std::size_t(victim)] == 0; }, 5s));
      EXPECT_EQ(cluster_.restarts(victim), 0u);
      EXPECT_TRUE(failed_with_engine_error(settle(client_[victim].apply_async(twice, 1)), victim, SIGKILL));
    }
    for (int i = 0; i < kEngines; ++i) {
      if (i == victim) continue;
      const auto r = settle(client_[i].apply_async(::getpid));
      ASSERT_TRUE(r.ok()) << "engine " << i << ": " << r.what();
      EXPECT_EQ(*r.value, pid(i)) << "engine " << i << " was touched";
    }
  }

 private:
  bool restarts_;
  ScratchDir logs_;
  cadre::Cluster cluster_;
  cadre::Client client_;
  std::vector<pid_t> pids_;
};

class engine_killed : public ::testing::TestWithParam<bool>, public KillableCluster {
 protected:
  engine_killed() : KillableCluster(GetParam()) {}
};

// Nothing fails: neither the tasks the idle engine finished before (their results not yet taken in by
// the client) nor the tasks running on the other engines through the kill (held there by a gate).
TEST_P(engine_killed, while_idle_fails_nothing_and_the_cluster_carries_on) {
  const int victim = 1;
  ScratchDir dir;
  const OpenGate gate{dir.path + "/open"};
  auto& victim_slot = client().segment()->engine(std::uint32_t(victim));
  const std::uint64_t done_before = victim_slot.tasks_done.load();
  std::vector<cadre::AsyncResult<int>> finished;
  for (int i = 0; i < 8; ++i) finished.push_back(client()[victim].apply_async(twice, i));
  std::vector<cadre::AsyncResult<int>> in_flight;
  for (int i : {0, 2, 3}) in_flight.push_back(client()[i].apply_async(x_once_open, 100 + i, gate.path));
  ASSERT_TRUE(wait_until([&] { return engine_busy(client(), 0) && engine_busy(client(), 2) && engine_busy(client(), 3); }, 10s));
  ASSERT_TRUE(wait_until([&] { return victim_slot.tasks_done.load() == done_before + 8 && !engine_busy(client(), victim); }, 10s));
  ASSERT_EQ(::kill(pid(victim), SIGKILL), 0);
  // The launcher has seen the death before the gate opens: the tasks in flight ran through it.
  ASSERT_TRUE(wait_until([&] { return current_pid(victim) != pid(victim); }, 10s));
  gate.open();

  for (int i = 0; i < 8; ++i) {
    const auto r = settle(finished[std::size_t(i)]);
    ASSERT_TRUE(r.ok()) << "task " << i << ", finished before the kill: " << r.what();
    EXPECT_EQ(*r.value, 2 * i);
  }
  int k = 0;
  for (int i : {0, 2, 3}) {
    const auto r = settle(in_flight[std::size_t(k++)], 10s);
    ASSERT_TRUE(r.ok()) << "engine " << i << ": " << r.what();
    EXPECT_EQ(*r.value, 100 + i);
  }
  EXPECT_EQ(client().outstanding(), 0u);
  expect_the_cluster_to_carry_on(victim);
}

TEST_P(engine_killed, during_a_task_fails_that_task_and_the_queued_ones_and_no_other) {
  const int victim = 2;
  auto running = client()[victim].apply_async(sleep_ms, 60000);
  std::vector<cadre::AsyncResult<int>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(client()[victim].apply_async(twice, i));
  std::vector<cadre::AsyncResult<int>> others;  // running on the other engines at the moment of the kill
  for (int i : {0, 1, 3}) others.push_back(client()[i].apply_async(sleep_ms, 300));
  ASSERT_TRUE(wait_until([&] { return engine_busy(client(), victim); }, 10s));
  ASSERT_EQ(::kill(pid(victim), SIGKILL), 0);

  EXPECT_TRUE(failed_with_engine_error(settle(running), victim, expected_signal()));
  for (auto& q : queued) EXPECT_TRUE(failed_with_engine_error(settle(q), victim, expected_signal()));
  for (auto& o : others) {
    const auto r = settle(o);
    EXPECT_TRUE(r.ok()) << r.what();
    EXPECT_EQ(r.value, 300);
  }
  EXPECT_EQ(client().outstanding(), 0u);
  expect_the_cluster_to_carry_on(victim);
}

// The tasks sent to the victim come back in three runs, in the order they were sent: those the killed
// engine finished (its pid), then those it left unfinished or that were sent before a replacement
// could take them (engine_error naming the killed pid), then, with restarts, those the replacement
// ran (its pid). Nothing finished by the killed engine comes after a failure, no failure after a task
// of the replacement.
TEST_P(engine_killed, while_many_small_results_flow_fails_exactly_the_unfinished_ones) {
  const int victim = 1;
  const pid_t killed_pid = pid(victim);
  auto& victim_slot = client().segment()->engine(std::uint32_t(victim));
  const std::uint64_t done_before = victim_slot.tasks_done.load();
  std::atomic<bool> stop{false}, killed{false};
  std::thread killer([&] {
    // Once results flow: the engine has finished a thousand of the tasks.
    while (!stop && victim_slot.tasks_done.load() < done_before + 1000) std::this_thread::yield();
    ::kill(killed_pid, SIGKILL);
    killed = true;
  });
  std::vector<cadre::AsyncResult<std::tuple<int, pid_t>>> on_victim;
  std::vector<cadre::AsyncResult<int>> on_others;
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t sent_when_noticed = 0;  // tasks sent by the time the launcher had reaped or replaced it
  for (int i = 0; i < 400000; ++i) {
    on_victim.push_back(client()[victim].apply_async(twice_and_pid, i));
    if (i % 16 == 0) on_others.push_back(client()[i % 32 ? 0 : 3].apply_async(twice, i));
    // Go on well past the kill: past the launcher reaping it, and, with restarts, past the replacement's start.
    if (!sent_when_noticed && killed && current_pid(victim) != killed_pid) sent_when_noticed = on_victim.size();
    if (sent_when_noticed && on_victim.size() >= sent_when_noticed + 200) break;
    if (seconds_since(t0) > 60) break;
  }
  stop = true;
  killer.join();
  ASSERT_TRUE(killed);
  ASSERT_NE(sent_when_noticed, 0u) << "the launcher did not notice the kill within the test's 60 s";
  const pid_t replacement = restarts() ? current_pid(victim) : 0;

  enum Run { by_the_killed_engine, failed, by_the_replacement };
  const char* const run_name[] = {"by the killed engine", "failed", "by the replacement"};
  int count[3] = {0, 0, 0}, with_sigkill = 0;
  Run run = by_the_killed_engine;
  for (std::size_t i = 0; i < on_victim.size(); ++i) {
    const auto r = settle(on_victim[i]);
    Run now = failed;
    if (r.ok()) {
      const auto [value, by] = *r.value;
      ASSERT_EQ(value, 2 * int(i)) << "task " << i;
      ASSERT_TRUE(by == killed_pid || (restarts() && by == replacement)) << "task " << i << " ran on pid " << by;
      now = by == killed_pid ? by_the_killed_engine : by_the_replacement;
    } else {
      ASSERT_TRUE(failed_with_engine_error(r, victim, 0)) << "task " << i;
      const auto e = r.as<cadre::engine_error>();
      ASSERT_EQ(e->pid(), killed_pid) << "task " << i << ": " << e->what();
      with_sigkill += e->signal() == SIGKILL;
      now = failed;
    }
    ASSERT_GE(now, run) << "task " << i << " " << run_name[now] << " after a task " << run_name[run];
    run = now;
    ++count[now];
  }
  for (auto& o : on_others) {
    const auto r = settle(o);
    ASSERT_TRUE(r.ok()) << "a task on another engine: " << r.what();
  }
  EXPECT_GT(count[by_the_killed_engine], 0);
  if (restarts()) {
    // The 200 tasks sent after the replacement started are its. If the client was not scheduled
    // between the kill and the restart, no task failed at all.
    EXPECT_GT(count[by_the_replacement], 0) << count[failed] << " failed";
  } else {
    EXPECT_GT(count[failed], 0);
    EXPECT_EQ(count[by_the_replacement], 0);
    // A task sent after the kill carries the signal once the launcher has reaped the engine (it waits
    // for that, see tasks_sent_into_its_full_queue_fail_with_sigkill below).
    EXPECT_GT(with_sigkill, 0) << "no engine_error of the " << count[failed] << " names SIGKILL";
  }
  EXPECT_EQ(client().outstanding(), 0u);
  expect_the_cluster_to_carry_on(victim);
}

INSTANTIATE_TEST_SUITE_P(, engine_killed, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "with_restarts" : "without_restarts"; });

/// Scatters 200 MB over the four engines and kills engine 2 while the client copies its part. Engine 2
/// is busy meanwhile, so its part cannot have reached it before the kill.
void kill_an_engine_during_a_200_mb_scatter(KillableCluster& k) {
  const int victim = 2;
  constexpr std::size_t n = (200u << 20) / sizeof(double);
  std::vector<double> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = double(i);
  auto& seg = *k.client().segment();
  k.client().wait();
  const std::uint64_t before = seg.used_bytes();
  auto busy = k.client()[victim].apply_async(sleep_ms, 60000);
  ASSERT_TRUE(wait_until([&] { return engine_busy(k.client(), victim); }, 10s));

  // The kill lands once the four 50 MB blocks are allocated, while the client copies into them.
  std::atomic<bool> done{false};
  std::thread killer([&] {
    while (!done && seg.used_bytes() < before + (200u << 20)) std::this_thread::yield();
    ::kill(k.pid(victim), SIGKILL);
  });
  cadre::AsyncResult<void> scattered;
  try {
    scattered = k.client()[cadre::all].scatter("big", data);
  } catch (...) {
    done = true;
    killer.join();
    throw;
  }
  done = true;
  killer.join();
  EXPECT_TRUE(failed_with_engine_error(settle(busy), victim, k.expected_signal()));
  const auto r = settle(scattered);
  std::vector<int> holders{0, 1, 3};
  if (k.restarts() && r.ok()) {
    // The replacement started before the client sent the killed engine its part, and took it.
    holders.push_back(victim);
  } else {
    // The only failure is the killed engine's part (the result rethrows the first failure).
    EXPECT_TRUE(failed_with_engine_error(r, victim, k.expected_signal())) << r.what();
  }
  for (int i : holders) {
    const auto c = cadre::detail::partition(n, KillableCluster::kEngines, std::size_t(i));
    const auto got = settle(k.client()[i].apply_async(chunk_summary, std::string("big")));
    ASSERT_TRUE(got.ok()) << "engine " << i << ": " << got.what();
    EXPECT_EQ(*got.value, (std::vector<double>{double(c.count), double(c.begin), double(c.begin + c.count - 1)})) << "engine " << i;
  }
  k.expect_the_cluster_to_carry_on(victim);
  for (int i : holders) EXPECT_TRUE(settle(k.client()[i].erase("big")).ok());
  // The killed engine's 50 MB went back with it; the others' with the erase.
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == before; }, 5s)) << mib(seg.used_bytes()) << " MiB in use, " << mib(before) << " before";
}

TEST(engine_killed_mid_scatter, without_restarts_fails_only_its_part_and_frees_its_memory) {
  KillableCluster k(false);
  kill_an_engine_during_a_200_mb_scatter(k);
}

// The block a client fills for an engine killed meanwhile stays the client's: its part fails or goes to the replacement.
TEST(engine_killed_mid_scatter, with_restarts_fails_only_its_part_or_delivers_it_to_the_replacement) {
  KillableCluster k(true);
  kill_an_engine_during_a_200_mb_scatter(k);
}

// A task of an engine that was killed and already replaced fails naming the killed pid and SIGKILL.
TEST(engine_killed_with_restarts, a_task_of_the_killed_incarnation_fails_with_sigkill) {
  ScratchDir logs;
  cadre::Cluster c({.engines = 2, .name = ft_name(), .restart_engines = true, .log_dir = logs.path});
  cadre::Client client = c.client();
  const pid_t old = c.pids()[1];
  auto running = client[1].apply_async(sleep_ms, 60000);
  ASSERT_TRUE(wait_until([&] { return engine_busy(client, 1); }, 10s));
  ASSERT_EQ(::kill(old, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { const pid_t p = c.pids()[1]; return p != 0 && p != old; }, 10s));  // replaced before the client looks
  const auto r = settle(running);
  EXPECT_TRUE(failed_with_engine_error(r, 1, SIGKILL)) << r.what();
  if (auto e = r.as<cadre::engine_error>()) {
    EXPECT_EQ(e->pid(), old) << e->what();
  }
}

// =========================================================================================================
// Functions that crash, throw or never return
// =========================================================================================================

/// A 2-engine cluster for one crash on engine 0; engine 0's pid before it.
struct CrashCluster {
  cadre::Cluster cluster{{.engines = 2, .name = ft_name()}};
  cadre::Client client = cluster.client();
  pid_t pid0 = cluster.pids()[0];

  /// Engine 1 (the one not crashed) still answers.
  void expect_the_other_engine_serves() {
    const auto r = settle(client[1].apply_async(twice, 4));
    EXPECT_TRUE(r.ok()) << r.what();
    EXPECT_EQ(r.value, 8);
  }
};

TEST(crash, a_function_that_throws_fails_with_remote_error_and_the_engine_serves_on) {
  CrashCluster c;
  const auto r = settle(c.client[0].apply_async(throw_on_purpose, 1));
  const auto e = r.as<cadre::remote_error>();
  ASSERT_TRUE(e) << r.what();
  EXPECT_EQ(e->engine_id(), 0);
  EXPECT_EQ(e->type(), "std::runtime_error");
  EXPECT_EQ(e->message(), "thrown on purpose");
  EXPECT_EQ(settle(c.client[0].apply_async(::getpid)).value, c.pid0);  // the same process serves on
}

/// The stack of an engine_error as a person reads it: its frame lines ("  #N ...") and the lines that
/// fold cadre's engine ("  ... N frames of cadre's engine (...)").
struct ReadStack {
  std::vector<std::string> frames;
  std::size_t folded = 0;
  bool folded_last = false;  // the folded line comes after every frame line
  explicit ReadStack(const std::string& what) {
    std::istringstream in(what.substr(std::min(what.size(), what.find("stack at the crash"))));
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("  #")) {
        frames.push_back(line);
        folded_last = false;
      } else if (line.find(" frames of cadre's engine") != std::string::npos) {
        ++folded;
        folded_last = true;
      }
    }
  }
};

TEST(crash, std_abort_fails_with_engine_error_carrying_sigabrt) {
  CrashCluster c;
  const auto r = settle(c.client[0].apply_async(call_abort, 1));
  EXPECT_TRUE(failed_with_engine_error(r, 0, SIGABRT)) << r.what();
  if (auto e = r.as<cadre::engine_error>()) {
    EXPECT_EQ(e->pid(), c.pid0);
    EXPECT_NE(std::string(e->what()).find("stack at the crash"), std::string::npos) << e->what();
  }
  c.expect_the_other_engine_serves();
}

// The user's frames first, from where the signal hit (inside abort) down to the user's function, then
// cadre's engine under it in one line; every name demangled.
TEST(crash, the_stack_of_an_abort_reads_from_the_signal_to_the_users_function_then_folds_cadres_engine) {
  CrashCluster c;
  const std::string w = settle(c.client[0].apply_async(call_abort, 1)).what();
#ifdef CADRE_HAVE_LIBDW
  const ReadStack stack(w);
  ASSERT_FALSE(stack.frames.empty()) << w;
  EXPECT_NE(stack.frames.back().find("call_abort(int)"), std::string::npos) << "the last frame shown is the user's function: " << w;
  EXPECT_NE(stack.frames.back().find("faults_test.cpp:"), std::string::npos) << w;
  EXPECT_EQ(stack.folded, 1u) << w;
  EXPECT_TRUE(stack.folded_last) << w;
  EXPECT_EQ(w.find("_Z"), std::string::npos) << "a name left mangled: " << w;
  EXPECT_LE(stack.frames.size(), 8u) << w;
#else
  EXPECT_NE(w.find("stack at the crash"), std::string::npos) << w;
#endif
}

TEST(crash, apply_sync_on_an_engine_that_dies_throws_engine_error_rather_than_hanging) {
  // apply_sync's task lives on the caller's stack (ClientCore::run): the health check fails it all the same.
  CrashCluster c;
  try {
    c.client[0].apply_sync(call_abort, 1);
    ADD_FAILURE() << "apply_sync returned a result from an engine that aborted";
  } catch (const cadre::engine_error& e) {
    EXPECT_EQ(e.engine_id(), 0);
    EXPECT_EQ(e.pid(), c.pid0);
    EXPECT_EQ(e.signal(), SIGABRT) << e.what();
  }
  c.expect_the_other_engine_serves();
}

TEST(crash, a_null_dereference_fails_with_sigsegv_and_the_stack_names_the_crashing_function) {
  CrashCluster c;
  const auto r = settle(c.client[0].apply_async(crash_by_null_write, 1));
  EXPECT_TRUE(failed_with_engine_error(r, 0, SIGSEGV)) << r.what();
  const std::string w = r.what();
  EXPECT_NE(w.find("stack at the crash"), std::string::npos) << w;
#ifdef CADRE_HAVE_LIBDW
  // The signal hit the user's function: it is the first frame, and all that called it is cadre's, in one line.
  const ReadStack stack(w);
  ASSERT_FALSE(stack.frames.empty()) << w;
  EXPECT_TRUE(stack.frames[0].starts_with("  #0 ")) << w;
  EXPECT_NE(stack.frames[0].find("crash_by_null_write(int)"), std::string::npos) << w;
  EXPECT_NE(stack.frames[0].find("faults_test.cpp:"), std::string::npos) << w;  // source lines, from the debug info
  EXPECT_EQ(stack.frames.size(), 1u) << w;
  EXPECT_EQ(stack.folded, 1u) << w;
  EXPECT_EQ(w.find("_Z"), std::string::npos) << "a name left mangled: " << w;
#endif
  c.expect_the_other_engine_serves();
}

TEST(crash, a_stack_overflow_is_reported_as_sigsegv_not_a_hang) {
  CrashCluster c;
  const auto r = settle(c.client[0].apply_async(recurse_until_the_stack_overflows, 0), 10s);
  EXPECT_TRUE(failed_with_engine_error(r, 0, SIGSEGV)) << r.what();
  const std::string w = r.what();
  EXPECT_NE(w.find("stack at the crash"), std::string::npos) << w;  // the handler ran on its own stack
#ifdef CADRE_HAVE_LIBDW
  EXPECT_NE(w.find("recurse_until_the_stack_overflows"), std::string::npos) << w;
  // The recursion is one frame and one line that counts the others, not a screenful of the same frame.
  EXPECT_NE(w.find("more calls of (anonymous namespace)::recurse_until_the_stack_overflows"), std::string::npos) << w;
  EXPECT_LE(ReadStack(w).frames.size(), 3u) << w;
  EXPECT_EQ(w.find("_Z"), std::string::npos) << "a name left mangled: " << w;
#endif
  c.expect_the_other_engine_serves();
}

TEST(crash, a_function_that_never_returns_is_aborted_and_the_engine_serves_the_next_task) {
  CrashCluster c;
  auto forever = c.client[0].apply_async(never_return);
  ASSERT_TRUE(wait_until([&] { return engine_busy(c.client, 0); }, 10s));
  EXPECT_FALSE(forever.wait_for(50ms));
  EXPECT_TRUE(forever.abort());
  const auto r = settle(forever);
  EXPECT_TRUE(r.as<cadre::aborted_error>()) << r.what();
  const auto next = settle(c.client[0].apply_async(::getpid));
  EXPECT_EQ(next.value, c.pid0) << next.what();  // the same engine process, not a replacement
  EXPECT_EQ(settle(c.client[0].apply_async(twice, 5)).value, 10);
}

TEST(crash, destroying_a_cluster_whose_engines_never_return_finishes_within_seconds_and_fails_the_waiters) {
  const std::string name = ft_name();
  std::vector<pid_t> pids;
  std::optional<cadre::Client> client;
  std::vector<cadre::AsyncResult<int>> forever;
  std::optional<cadre::Cluster> c;
  c.emplace(cadre::ClusterOptions{.engines = 2, .name = name});
  pids = c->pids();
  client.emplace(c->client());
  for (int i = 0; i < 2; ++i) forever.push_back((*client)[i].apply_async(never_return));
  ASSERT_TRUE(wait_until([&] { return engine_busy(*client, 0) && engine_busy(*client, 1); }, 10s));
  const auto t0 = std::chrono::steady_clock::now();
  c.reset();  // ~Cluster
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_FALSE(shm_exists(name));
  EXPECT_TRUE(still_running_after(pids, 5s).empty());
  // A client that outlives its cluster: its waiters fail, they do not hang.
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(failed_with_engine_error(settle(forever[std::size_t(i)]), i, 0));
}

// =========================================================================================================
// A client SIGKILLed mid-task
// =========================================================================================================

/// The files a busy client's two tasks create once running (engines 0 and 1) and the one they wait for.
struct BusyClientFiles {
  ScratchDir dir;
  OpenGate gate{dir.path + "/open"};
  std::string started(int engine) const { return dir.path + "/started" + std::to_string(engine); }
  bool both_running() const { return ::access(started(0).c_str(), F_OK) == 0 && ::access(started(1).c_str(), F_OK) == 0; }
};

/// On an engine: creates `started`, then waits until `gate` exists (at most 30 s).
void say_started_then_wait(const std::string& started, const std::string& gate) {
  if (std::FILE* f = std::fopen(started.c_str(), "w")) std::fclose(f);
  wait_for_file(gate);
}

/// Forks a client of `name` that starts a task returning 1 MiB on engine 0 and a task with a 1 MiB
/// argument on engine 1, both running until the gate of `files` opens, and many small pushes to both,
/// then sends its client slot and waits to be killed.
std::unique_ptr<ChildProcess> fork_busy_client(const std::string& name, const BusyClientFiles& files) {
  return std::make_unique<ChildProcess>([name, s0 = files.started(0), s1 = files.started(1), gate = files.gate.path](int fd) {
    cadre::Client c{name};
    const std::uint32_t slot = static_cast<cadre::detail::ShmTransport&>(c.core()->transport()).slot();
    auto big_result = c[0].apply_async([](const std::string& started, const std::string& g) {
      say_started_then_wait(started, g);
      return std::vector<double>(1 << 17, 1.0);
    }, s0, gate);
    auto big_argument = c[1].apply_async([](const std::vector<double>& v, const std::string& started, const std::string& g) {
      say_started_then_wait(started, g);
      return v.size();
    }, std::vector<double>(1 << 17, 2.0), s1, gate);
    // Fewer than a ring holds: the pushes queue behind the tasks without blocking the client.
    for (int i = 0; i < 200; ++i) c[i % 2].push("small" + std::to_string(i % 20), i);
    ChildProcess::send(fd, std::vector<std::uint32_t>{slot});
    for (;;) ::pause();
    return 0;
  });
}

TEST(client_killed, mid_task_leaves_a_cluster_that_later_clients_use_fully_and_its_memory_is_reclaimed) {
  const std::string name = ft_name();
  cadre::Cluster cluster({.engines = 2, .name = name});
  cadre::Client rc = cluster.client();  // slot 0, for the whole test
  auto& seg = *rc.segment();
  EXPECT_EQ(rc[cadre::all].apply_sync(twice, 1), (std::vector<int>{2, 2}));
  rc.wait();
  const std::uint64_t baseline = seg.used_bytes();
  const auto engines = cluster.pids();

  // Three clients in a row die mid-task, each in a slot of its own or one a previous one died in.
  for (int round = 0; round < 3; ++round) {
    const BusyClientFiles files;
    auto child = fork_busy_client(name, files);
    ASSERT_EQ(child->receive<std::uint32_t>(1).size(), 1u) << "round " << round << ": the client did not start";
    ASSERT_TRUE(wait_until([&] { return files.both_running(); }, 20s)) << "round " << round << ": its tasks did not start";
    ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);  // mid-task: both wait for the gate
    const auto end = child->wait(5s);
    EXPECT_EQ(end.signal, SIGKILL) << "round " << round;
  }  // the gate opens: the dead client's tasks finish

  // Every slot is needed now: the dead clients' slots must have been reclaimed.
  {
    std::vector<std::unique_ptr<cadre::Client>> three;
    for (int i = 0; i < 3; ++i) {
      ASSERT_NO_THROW(three.push_back(std::make_unique<cadre::Client>(name))) << "client " << i;
    }
    // Let the dead clients' tasks finish before going on.
    ASSERT_TRUE(wait_until([&] {
      for (const auto& q : rc.queue_status())
        if (q.running || q.queued) return false;
      return true;
    }, 10s));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(settle((*three[std::size_t(i)])[cadre::all].apply_async(twice, 1)).value, (std::vector<int>{2, 2}));
    for (int i = 0; i < 3; ++i) {
      cadre::Client& c = *three[std::size_t(i)];
      EXPECT_EQ(settle(c[cadre::all].apply_async(twice, i)).value, (std::vector<int>{2 * i, 2 * i}));
      EXPECT_TRUE(settle(c[i % 2].push("big" + std::to_string(i), std::vector<double>(1 << 17, double(i)))).ok());
      EXPECT_EQ(settle(c[i % 2].pull_async<std::vector<double>>("big" + std::to_string(i))).value, std::vector<double>(1 << 17, double(i)));
      EXPECT_TRUE(settle(c[i % 2].erase("big" + std::to_string(i))).ok());
    }
  }
  // More clients in sequence, each in a slot freed a moment ago.
  for (int i = 0; i < 5; ++i) {
    cadre::Client c{name};
    const auto r = settle(c[cadre::all].apply_async(::getpid));
    ASSERT_TRUE(r.ok()) << r.what();
    EXPECT_EQ(*r.value, engines);
  }
  EXPECT_EQ(cluster.pids(), engines);  // no engine was harmed
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == baseline; }, 10s))
      << mib(seg.used_bytes()) << " MiB in use, " << mib(baseline) << " MiB before";
}

/// Run in a process of its own by start_launcher() (FT_CHILD_CLUSTER set; skipped otherwise): a launcher
/// of a 2-engine cluster that sends its engine pids, with FT_CHILD_BUSY set first starts a task that
/// never returns on engine 0, and then sleeps until it is killed.
TEST(fault_child, holds_a_cluster_and_sleeps) {
  const char* name = std::getenv("FT_CHILD_CLUSTER");
  if (!name) GTEST_SKIP() << "runs only as the child process of launcher_killed.* and the like";
  cadre::Cluster c({.engines = 2, .name = name});
  std::optional<cadre::Client> client;
  if (std::getenv("FT_CHILD_BUSY")) {
    client.emplace(c.client());
    (void)(*client)[0].apply_async(never_return);
    while (!engine_busy(*client, 0)) ::usleep(1000);
  }
  ChildProcess::send(ChildProcess::kChildFd, c.pids());
  for (;;) ::pause();
}

/// Starts a launcher process of cluster `name` (the test above); receive<pid_t>(2) gives its engines.
/// A fresh process rather than a fork: the launcher's threads are not started in a fork of a process
/// that has threads of its own (the shared cluster's, oneTBB's), and it inherits none of our state.
std::unique_ptr<ChildProcess> start_launcher(const std::string& name, bool busy_engine0 = false) {
  std::vector<std::string> env{"FT_CHILD_CLUSTER=" + name};
  if (busy_engine0) env.push_back("FT_CHILD_BUSY=1");
  return ChildProcess::exec_test("fault_child.holds_a_cluster_and_sleeps", env);
}

// No waiting for the launcher's sweep: with the launcher held still (SIGSTOP) from before the client
// dies, connecting takes the dead client's slot over itself.
TEST(client_killed, with_every_other_slot_in_use_a_new_client_gets_its_slot_at_once) {
  const std::string name = ft_name();
  auto launcher = start_launcher(name);
  const auto pids = launcher->receive<pid_t>(2);
  ASSERT_EQ(pids.size(), 2u) << "the launcher did not start its cluster";
  {
    std::vector<std::unique_ptr<cadre::Client>> three;
    for (int i = 0; i < 3; ++i) three.push_back(std::make_unique<cadre::Client>(name));
    const BusyClientFiles files;
    auto child = fork_busy_client(name, files);  // the fourth slot
    const auto slot = child->receive<std::uint32_t>(1);
    ASSERT_EQ(slot.size(), 1u);
    ASSERT_EQ(::kill(launcher->pid(), SIGSTOP), 0);  // no sweep from here on
    ASSERT_TRUE(wait_until([&] { return all_threads_stopped(launcher->pid()); }, 5s));
    ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
    EXPECT_EQ(child->wait(5s).signal, SIGKILL);
    ASSERT_NE(three[0]->segment()->client(slot[0]).pid.load(), 0) << "the dead client's slot was retired while the launcher was stopped";
    std::optional<cadre::Client> fourth;
    ASSERT_NO_THROW(fourth.emplace(name));
    EXPECT_EQ(static_cast<cadre::detail::ShmTransport&>(fourth->core()->transport()).slot(), slot[0]);
    files.gate.open();  // the dead client's tasks finish; the engines serve the fourth client's
    EXPECT_EQ(settle((*fourth)[cadre::all].apply_async(twice, 3), 20s).value, (std::vector<int>{6, 6}));
    ASSERT_EQ(::kill(launcher->pid(), SIGCONT), 0);
  }
  ASSERT_EQ(::kill(launcher->pid(), SIGTERM), 0);  // cadre's teardown: engines and segment go with it
  launcher->wait(10s);
  for (pid_t p : still_running_after(pids, 10s)) ::kill(p, SIGKILL);
  cadre::detail::Segment::remove_if_stale(name);
}

// The result of a dead client's task that finishes after the launcher retired its slot is freed at once,
// without a new client: the tasks wait for a gate the test opens only once it has seen the slot retired.
TEST(client_killed, the_result_of_its_task_finishing_after_the_sweep_is_freed_without_a_new_client) {
  const std::string name = ft_name();
  cadre::Cluster cluster({.engines = 2, .name = name});
  cadre::Client rc = cluster.client();
  auto& seg = *rc.segment();
  rc.wait();
  const std::uint64_t baseline = seg.used_bytes();
  const BusyClientFiles files;
  auto child = fork_busy_client(name, files);
  const auto slot = child->receive<std::uint32_t>(1);
  ASSERT_EQ(slot.size(), 1u);
  ASSERT_TRUE(wait_until([&] { return files.both_running(); }, 20s)) << "its tasks did not start";
  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  child->wait(5s);
  ASSERT_TRUE(wait_until([&] { return seg.client(slot[0]).pid.load() == 0; }, 10s)) << "the launcher did not retire the dead client";
  ASSERT_TRUE(engine_busy(rc, 0) && engine_busy(rc, 1)) << "a task finished before the sweep";
  files.gate.open();
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == baseline; }, 10s))
      << mib(seg.used_bytes()) << " MiB in use, " << mib(baseline) << " MiB before";
}

// A dead client's unread completions are released once, when its slot is retired, never again by the next client of the slot.
TEST(client_killed, its_unread_results_do_not_free_a_block_of_the_next_client_of_its_slot) {
  using cadre::detail::ShmTransport;
  const std::string name = ft_name();
  cadre::Cluster cluster({.engines = 1, .name = name});
  cadre::Client rc = cluster.client();
  auto& seg = *rc.segment();
  rc.wait();
  const std::uint64_t baseline = seg.used_bytes();
  ChildProcess child([name](int fd) {
    cadre::Client c{name};
    const std::uint32_t slot = static_cast<ShmTransport&>(c.core()->transport()).slot();
    auto r = c[0].apply_async([] { return std::vector<double>(1 << 17, 1.0); });
    // Wait for the completion to be in the ring; never read it.
    while (c.segment()->completion_ring(0, slot)->idx.head.load() == 0) ::usleep(1000);
    ChildProcess::send(fd, std::vector<std::uint32_t>{slot});
    for (;;) ::pause();
    return 0;
  });
  const auto slot = child.receive<std::uint32_t>(1);
  ASSERT_EQ(slot.size(), 1u);
  auto* ring = seg.completion_ring(0, slot[0]);
  const std::uint64_t stale_block = ring->slots[0].block;
  ASSERT_NE(stale_block, 0u);
  ASSERT_EQ(::kill(child.pid(), SIGKILL), 0);
  child.wait(5s);
  ASSERT_TRUE(wait_until([&] { return seg.client(slot[0]).pid.load() == 0 && seg.used_bytes() == baseline; }, 3s))
      << "the launcher did not reclaim the dead client";
  cadre::Client next{name};
  ASSERT_EQ(static_cast<ShmTransport&>(next.core()->transport()).slot(), slot[0]);  // the dead client's slot
  auto mine = next[0].apply_async([] { return std::vector<double>(1 << 17, 7.0); });
  ASSERT_TRUE(wait_until([&] { return ring->idx.head.load() == 2; }, 5s));  // published behind the stale record, not read yet
  EXPECT_EQ(ring->slots[1].block, stale_block) << "first fit gave the new result the freed block's offset";
  const auto r = settle(mine);
  ASSERT_TRUE(r.ok()) << r.what();
  EXPECT_EQ(*r.value, std::vector<double>(1 << 17, 7.0));
  mine = {};  // its result block is held while the future lives
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == baseline; }, 2s)) << mib(seg.used_bytes()) << " MiB in use, " << mib(baseline) << " before";
}

/// On an engine: waits until `gate` exists (at most 30 s), then returns the sum of v.
double sum_once_open(const std::vector<double>& v, const std::string& gate) {
  wait_for_file(gate);
  double s = 0;
  for (double x : v) s += x;
  return s;
}

// A dead client's load-balanced tasks, the queued ones and the one running when it died, are never run
// after its slot is retired, and their blocks are freed once: never a block of the next client of its slot.
TEST(client_killed, its_load_balanced_tasks_do_not_free_a_block_of_the_next_client_of_its_slot) {
  using cadre::detail::ShmTransport;
  constexpr int kQueued = 8;
  constexpr std::size_t kLen = 1 << 14;  // 128 KiB: each record is spilled to a block of its own
  const std::string name = ft_name();
  ScratchDir dir;
  const OpenGate gate{dir.path + "/open"};
  cadre::Cluster cluster({.engines = 1, .name = name});
  cadre::Client rc = cluster.client();
  auto& seg = *rc.segment();
  rc.wait();
  const std::uint64_t baseline = seg.used_bytes(), done_before = seg.engine(0).tasks_done.load();
  ChildProcess child([name, path = gate.path](int fd) {
    cadre::Client c{name};
    const std::uint32_t slot = static_cast<ShmTransport&>(c.core()->transport()).slot();
    auto lview = c.load_balanced_view();
    std::vector<cadre::AsyncResult<double>> rs;
    rs.push_back(lview.apply_async(sum_once_open, std::vector<double>(kLen, 1.0), path));  // runs until the gate opens
    while (c.segment()->engine(0).current_task.load() == 0) ::usleep(1000);
    for (int i = 0; i < kQueued; ++i) rs.push_back(lview.apply_async(sum_once_open, std::vector<double>(kLen, 1.0), path));
    ChildProcess::send(fd, std::vector<std::uint32_t>{slot});
    for (;;) ::pause();
    return 0;
  });
  const auto slot = child.receive<std::uint32_t>(1);
  ASSERT_EQ(slot.size(), 1u);
  cadre::detail::LbQueue& q = *seg.lb_queue(slot[0], 0);
  ASSERT_EQ(q.head.load() - q.tail.load(), std::uint64_t(kQueued)) << "the child's tasks are not queued behind the running one";
  std::vector<std::uint64_t> old_blocks;  // the running task's, then the queued ones'
  for (std::uint64_t p = q.tail.load() - 1; p != q.head.load(); ++p) old_blocks.push_back(q.slots[p % cadre::detail::kLbSlots].record.block);
  for (const auto b : old_blocks) ASSERT_NE(b, 0u);
  ASSERT_EQ(::kill(child.pid(), SIGKILL), 0);
  child.wait(5s);
  ASSERT_TRUE(wait_until([&] { return seg.client(slot[0]).pid.load() == 0; }, 3s)) << "the launcher did not retire the dead client";

  cadre::Client next{name};
  ASSERT_EQ(static_cast<ShmTransport&>(next.core()->transport()).slot(), slot[0]);  // the dead client's slot
  auto lview = next.load_balanced_view();
  std::vector<cadre::AsyncResult<double>> mine;
  for (int i = 0; i <= kQueued; ++i) mine.push_back(lview.apply_async(sum_once_open, std::vector<double>(kLen, double(i + 2)), gate.path));
  bool reused = false;
  for (std::uint64_t p = q.head.load() - (kQueued + 1); p != q.head.load(); ++p)
    for (const auto b : old_blocks) reused |= q.slots[p % cadre::detail::kLbSlots].record.block == b;
  EXPECT_TRUE(reused) << "first fit gave none of the new records a freed block's offset";
  EXPECT_NE(seg.engine(0).current_task.load(), 0u) << "the dead client's task finished before the new client queued its own";
  gate.open();
  for (int i = 0; i <= kQueued; ++i) {
    const auto r = settle(mine[std::size_t(i)], 10s);
    ASSERT_TRUE(r.ok()) << "task " << i << ": " << r.what();
    EXPECT_EQ(*r.value, double(kLen) * (i + 2)) << "task " << i;
  }
  // The dead client's running task, and the new client's tasks: none of its queued ones ran.
  EXPECT_EQ(seg.engine(0).tasks_done.load(), done_before + 1 + kQueued + 1);
  mine.clear();
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == baseline; }, 2s)) << mib(seg.used_bytes()) << " MiB in use, " << mib(baseline) << " before";
}

// =========================================================================================================
// The launcher SIGKILLed
// =========================================================================================================

// Tasks that find a killed engine's queue full before the launcher has reaped it (held still here with
// SIGSTOP) wait for the launcher and fail with SIGKILL, not with signal 0.
TEST(engine_killed_before_the_launcher_noticed, tasks_sent_into_its_full_queue_fail_with_sigkill) {
  const std::string name = ft_name();
  auto launcher = start_launcher(name);
  const auto pids = launcher->receive<pid_t>(2);
  ASSERT_EQ(pids.size(), 2u);
  {
    cadre::Client client{name};
    ASSERT_EQ(settle(client[1].apply_async(twice, 1)).value, 2);
    ASSERT_EQ(::kill(launcher->pid(), SIGSTOP), 0);  // as if its monitor thread were not scheduled
    ASSERT_TRUE(wait_until([&] { return all_threads_stopped(launcher->pid()); }, 5s));
    ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
    ASSERT_TRUE(wait_until([&] { return exited(pids[1]); }, 5s));
    std::vector<cadre::AsyncResult<int>> rs;
    for (int i = 0; i < 300; ++i) rs.push_back(client[1].apply_async(twice, i));  // more than its queue holds
    ASSERT_EQ(::kill(launcher->pid(), SIGCONT), 0);  // a few ms later: well within check_health's grace
    int without_signal = 0;
    for (auto& r : rs) {
      const auto s = settle(r);
      ASSERT_TRUE(failed_with_engine_error(s, 1, 0)) << s.what();
      without_signal += s.as<cadre::engine_error>()->signal() != SIGKILL;
    }
    EXPECT_EQ(without_signal, 0) << "of 300 tasks sent to the killed engine";
  }
  ::kill(launcher->pid(), SIGKILL);
  launcher->wait(5s);
  for (pid_t p : still_running_after(pids, 3s)) ::kill(p, SIGKILL);
  cadre::detail::Segment::remove_if_stale(name);
}

TEST(launcher_killed, its_idle_engines_exit_and_the_name_can_be_reused) {
  const std::string name = ft_name();
  auto launcher = start_launcher(name);
  const auto pids = launcher->receive<pid_t>(2);
  ASSERT_EQ(pids.size(), 2u) << "the launcher did not start its cluster";
  cadre::Client client{name};  // a client of the dead launcher's cluster, in this process
  EXPECT_EQ(settle(client[cadre::all].apply_async(::getpid)).value, pids);

  ASSERT_EQ(::kill(launcher->pid(), SIGKILL), 0);
  EXPECT_EQ(launcher->wait(5s).signal, SIGKILL);
  const auto left = still_running_after(pids, 20s);
  EXPECT_TRUE(left.empty()) << left.size() << " engine(s) still running 20 s after their launcher died";
  for (pid_t p : left) ::kill(p, SIGKILL);  // engines our child started: do not leave them running

  // The client fails fast instead of waiting for engines nobody will ever run.
  const auto r = settle(client[0].apply_async(twice, 1));
  EXPECT_TRUE(failed_with_engine_error(r, 0, 0)) << r.what();

  EXPECT_TRUE(cadre::detail::Segment::remove_if_stale(name));
  EXPECT_FALSE(shm_exists(name));
  cadre::Cluster again({.engines = 1, .name = name});  // the name is free again
  EXPECT_EQ(settle(again.client()[0].apply_async(twice, 2)).value, 4);
}

TEST(launcher_killed, a_new_cluster_of_the_same_name_replaces_the_stale_segment) {
  const std::string name = ft_name();
  auto launcher = start_launcher(name);
  const auto pids = launcher->receive<pid_t>(2);
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(launcher->pid(), SIGKILL), 0);
  launcher->wait(5s);
  EXPECT_TRUE(shm_exists(name));  // nobody removed it
  cadre::Cluster again({.engines = 2, .name = name});
  EXPECT_EQ(settle(again.client()[cadre::all].apply_async(twice, 3)).value, (std::vector<int>{6, 6}));
  EXPECT_TRUE(still_running_after(pids, 3s).empty());
}

// An engine running a task that never returns exits too when its launcher is SIGKILLed: no orphan.
TEST(launcher_killed, an_engine_busy_in_an_endless_task_exits_too) {
  const std::string name = ft_name();
  auto launcher = start_launcher(name, /*busy_engine0=*/true);
  const auto pids = launcher->receive<pid_t>(2);
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(launcher->pid(), SIGKILL), 0);
  launcher->wait(5s);
  const auto left = still_running_after(pids, 3s);
  EXPECT_TRUE(left.empty()) << "engine pid " << (left.empty() ? 0 : left[0]) << " still runs with its launcher dead";
  for (pid_t p : left) ::kill(p, SIGKILL);  // engines our child started
  cadre::detail::Segment::remove_if_stale(name);
}

// =========================================================================================================
// SIGINT / SIGTERM in a program that holds an embedded cluster
// =========================================================================================================

/// Run in a process of its own by interrupted_launcher (FT_CHILD_CLUSTER set; skipped otherwise): a
/// program that starts a 2-engine cluster, sends its engine pids, and waits on a long task with
/// wait_interactive() — what a user interrupts with Ctrl-C. A fresh process rather than a fork, so the
/// signal dispositions are a shell's (a background test run ignores SIGINT) and cadre installs its
/// teardown handler as in any program.
TEST(fault_child, holds_a_cluster_and_waits_interactively_on_a_long_task) {
  const char* name = std::getenv("FT_CHILD_CLUSTER");
  if (!name) GTEST_SKIP() << "runs only as the child process of interrupted_launcher.*";
  cadre::Cluster c({.engines = 2, .name = name});
  cadre::Client client = c.client();
  auto ar = client[cadre::all].apply_async(sleep_ms, 60000);
  while (!engine_busy(client, 0) || !engine_busy(client, 1)) ::usleep(1000);
  ChildProcess::send(ChildProcess::kChildFd, c.pids());
  ar.wait_interactive();
  ADD_FAILURE() << "not reached: the signal ends the program";
}

class interrupted_launcher : public ::testing::TestWithParam<int> {};

TEST_P(interrupted_launcher, dies_of_the_signal_and_takes_its_engines_and_segment_with_it) {
  const int sig = GetParam();
  const std::string name = ft_name();
  auto launcher = ChildProcess::exec_test("fault_child.holds_a_cluster_and_waits_interactively_on_a_long_task", {"FT_CHILD_CLUSTER=" + name});
  const auto pids = launcher->receive<pid_t>(2);
  ASSERT_EQ(pids.size(), 2u) << "the launcher did not start its cluster";
  EXPECT_TRUE(shm_exists(name));
  std::this_thread::sleep_for(100ms);  // inside wait_interactive()
  ASSERT_EQ(::kill(launcher->pid(), sig), 0);
  const auto end = launcher->wait(5s);
  EXPECT_FALSE(end.timed_out) << "the launcher did not die";
  EXPECT_EQ(end.signal, sig) << "exit code " << end.code;  // it dies *of* the signal, as without cadre
  const auto left = still_running_after(pids, 2s);
  EXPECT_TRUE(left.empty()) << left.size() << " engine(s) left running";
  for (pid_t p : left) ::kill(p, SIGKILL);
  EXPECT_FALSE(shm_exists(name)) << "the segment was left in /dev/shm";
  cadre::detail::Segment::remove(name);
}

INSTANTIATE_TEST_SUITE_P(, interrupted_launcher, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& p) { return p.param == SIGINT ? "by_sigint" : "by_sigterm"; });

// A worker forked without exec inherits the teardown table but owns none of it: terminating it leaves the parent's cluster alone.
TEST(interrupted_launcher_fork, terminating_a_forked_worker_leaves_the_parents_cluster_alone) {
  const std::string name = ft_name();
  cadre::Cluster cluster({.engines = 2, .name = name});
  cadre::Client client = cluster.client();
  const auto engines = cluster.pids();
  ChildProcess worker([](int fd) {
    ChildProcess::send(fd, std::vector<int>{1});
    for (;;) ::pause();
    return 0;
  });
  ASSERT_EQ(worker.receive<int>(1).size(), 1u);
  ASSERT_EQ(::kill(worker.pid(), SIGTERM), 0);
  EXPECT_EQ(worker.wait(5s).signal, SIGTERM);
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(shm_exists(name)) << "the worker removed its parent's segment";
  const auto r = settle(client[cadre::all].apply_async(::getpid));
  EXPECT_TRUE(r.ok()) << r.what();
  EXPECT_EQ(cluster.pids(), engines);
}

// =========================================================================================================
// A full segment
// =========================================================================================================

TEST(segment_full, pushing_until_capacity_error_then_erasing_makes_room_again) {
  cadre::Cluster cluster({.engines = 2, .name = ft_name(), .segment_size = 64 << 20});
  cadre::Client client = cluster.client();
  auto& seg = *client.segment();
  client.wait();
  const std::uint64_t baseline = seg.used_bytes();
  cadre::EngineView e0 = client[0];
  const std::vector<char> four_mib(4 << 20, 'f');

  std::vector<std::string> names;
  std::string message;
  for (int i = 0; i < 64 && message.empty(); ++i) {
    const std::string n = "fill" + std::to_string(i);
    try {
      e0.push(n, four_mib).get();
      names.push_back(n);
    } catch (const cadre::capacity_error& e) {
      message = e.what();
    }
  }
  ASSERT_FALSE(message.empty()) << names.size() << " pushes of 4 MiB fit in a 64 MiB segment";
  EXPECT_GE(names.size(), 10u);
  EXPECT_NE(message.find("segment_size"), std::string::npos) << message;  // says the way out
  EXPECT_NE(message.find("erase"), std::string::npos) << message;

  // Full, but working: small values, tasks and pulls of what is stored.
  EXPECT_EQ(settle(client[cadre::all].apply_async(twice, 4)).value, (std::vector<int>{8, 8}));
  client[1]["small"] = 5;
  EXPECT_EQ(settle(client[1].pull_async<int>("small")).value, 5);
  EXPECT_EQ(settle(e0.apply_async([](cadre::Namespace& ns) { return ns.view<std::vector<char>>("fill0").size(); })).value, 4u << 20);

  for (const auto& n : names) EXPECT_TRUE(settle(e0.erase(n)).ok()) << n;
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == baseline; }, 5s)) << mib(seg.used_bytes()) << " MiB in use";
  for (const auto& n : names) EXPECT_TRUE(settle(client[1].push(n, four_mib)).ok()) << "after the erase: " << n;
  EXPECT_EQ(settle(client[1].pull_async<std::vector<char>>(names.back())).value, four_mib);
}

}  // namespace
