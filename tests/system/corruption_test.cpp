// tests/corruption_test.cpp — a damaged segment never crashes or hangs a process: bytes overwritten in the
// header, a ring's indices, the page table or the engine table of a live cluster, and random bytes anywhere
// while a client works. The launcher runs in a process of its own (its death by a signal is seen, not
// suffered, and its log is read); the client works in a forked child (a hang or a crash there is reported).
#include "fault_helpers.hpp"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace cadre_fault;
namespace cd = cadre::detail;

int twice(int x) { return 2 * x; }

int sleep_ms(int ms) {
  ::usleep(useconds_t(ms) * 1000);
  return ms;
}

/// Run in a process of its own by LiveCluster (CR_CHILD_CLUSTER set; skipped otherwise): a launcher of
/// a 2-engine cluster that sends its engine pids and serves until it is asked to stop or stops itself.
TEST(corruption_child, holds_a_cluster_until_it_stops) {
  const char* name = std::getenv("CR_CHILD_CLUSTER");
  if (!name) GTEST_SKIP() << "runs only as the launcher process of the corruption tests";
  {
    cadre::Cluster c({.engines = 2, .name = name});
    ChildProcess::send(ChildProcess::kChildFd, c.pids());
    c.wait_for_stop_request();
  }
  std::fprintf(stderr, "corruption_child: the cluster stopped\n");
}

/// A cluster whose launcher runs in a child process logging to a file, and a mapping of its segment
/// through which the test damages it.
struct LiveCluster {
  std::string name = ft_name();
  std::string log = "/tmp/cadre-" + name + ".log";
  std::unique_ptr<ChildProcess> launcher;
  std::vector<pid_t> engines;
  cd::Segment seg;  // the test's own mapping: outlives the name when the launcher removes it
  bool launcher_done = false;

  LiveCluster() {
    launcher = ChildProcess::exec_test("corruption_child.holds_a_cluster_until_it_stops", {"CR_CHILD_CLUSTER=" + name}, log);
    engines = launcher->receive<pid_t>(2);
    if (engines.size() == 2) seg = cd::Segment::open(name);
  }
  ~LiveCluster() {
    if (!launcher_done) {
      ::kill(launcher->pid(), SIGKILL);
      launcher->wait(5s);
    }
    for (pid_t p : still_running_after(engines, 3s)) ::kill(p, SIGKILL);  // engines our child started
    cd::Segment::remove_if_stale(name);
    ::unlink(log.c_str());
  }

  /// Asks the launcher to stop, as `cadre stop` does.
  void request_stop() {
    auto& h = *reinterpret_cast<cd::SegmentHeader*>(seg.base());
    h.stop_request.store(1, std::memory_order_release);
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&h.stop_request), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
  }

  /// How the launcher ended (within `limit`).
  cadre_test::ChildResult launcher_end(std::chrono::milliseconds limit) {
    auto r = launcher->wait(limit);
    launcher_done = !r.timed_out;
    return r;
  }

  std::string log_text() const {
    std::ifstream f(log);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  /// The lines of the launcher's log saying that an engine died of a signal (its own crash report, or the
  /// launcher's note when it reaped it).
  std::string signal_deaths() const {
    std::istringstream in(log_text());
    std::string line, out;
    while (std::getline(in, line))
      if (line.find("] signal ") != std::string::npos || line.find("died from signal") != std::string::npos) out += line + "\n";
    return out;
  }

  /// Checks that the launcher ended by itself (or after request_stop()) without a signal, that no engine
  /// died of one, that every engine exited and that the segment is gone.
  ::testing::AssertionResult stopped_cleanly(std::chrono::milliseconds limit = 15s) {
    const auto r = launcher_end(limit);
    if (r.timed_out) return ::testing::AssertionFailure() << "the launcher did not stop; its log:\n" << log_text();
    if (!r.exited) return ::testing::AssertionFailure() << "the launcher died of signal " << r.signal << "; its log:\n" << log_text();
    if (r.code != 0) return ::testing::AssertionFailure() << "the launcher exited with " << r.code << "; its log:\n" << log_text();
    if (const auto d = signal_deaths(); !d.empty()) return ::testing::AssertionFailure() << "an engine died of a signal:\n" << d;
    if (const auto left = still_running_after(engines, 5s); !left.empty())
      return ::testing::AssertionFailure() << left.size() << " engine(s) still running";
    if (shm_exists(name)) return ::testing::AssertionFailure() << "the segment is left in /dev/shm";
    return ::testing::AssertionSuccess();
  }

  std::byte* at(std::uint64_t off) const { return seg.base() + off; }
};

/// A page both the test and its forked client child see: how far the client has come, and what the test did.
struct Handshake {
  std::atomic<int> step{0};  // 1: the client is ready for the damage; 2: the segment is damaged
  std::atomic<int> slot{-1};  // the client slot the client held

  static Handshake* make() {
    void* p = ::mmap(nullptr, sizeof(Handshake), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return new (p) Handshake;
  }
  bool await(int s, std::chrono::milliseconds limit = 10s) const {
    return wait_until([&] { return step.load() >= s; }, limit);
  }
};

/// How a client's call ended, sent from the client child.
struct Outcome {
  int kind = -1;  // 0: a value; 1: a cadre::error; 2: another exception; 3: over its time limit
  double seconds = 0;
  char what[240] = {};
};
constexpr int kValue = 0, kCadreError = 1;

template <class F>
Outcome outcome_of(F&& call, std::chrono::milliseconds limit = 5s) {
  Outcome o;
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  try {
    auto ar = call();
    const auto s = settle(ar, limit);
    o.kind = s.hung ? 3 : s.ok() ? kValue : s.template as<cadre::error>() ? kCadreError : 2;
    what = s.what();
  } catch (const cadre::error& e) {
    o.kind = kCadreError;
    what = e.what();
  } catch (const std::exception& e) {
    o.kind = 2;
    what = e.what();
  }
  o.seconds = seconds_since(t0);
  std::snprintf(o.what, sizeof o.what, "%s", what.c_str());
  return o;
}

/// The client slot this process holds in c's segment.
int slot_of(const cadre::Client& c) {
  for (std::uint32_t s = 0; s < cd::kMaxClients; ++s)
    if (c.segment()->client(s).pid.load() == ::getpid()) return int(s);
  return -1;
}

void scribble(std::byte* p, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < n; ++i) p[i] = std::byte(rng() & 0xff);
}

// ---- one failure mode at a time -------------------------------------------------------------------------

// Random bytes over the header of a live cluster: the attached client's waiting call fails with a
// cadre::error within its health period (not a SIGSEGV, not a hang, not the task's late answer); the
// launcher notices, says so in its log, and stops the cluster: engines exit, the segment is removed,
// nobody dies of a signal.
TEST(corruption, a_damaged_header_fails_the_clients_calls_and_the_launcher_stops_the_cluster) {
  LiveCluster lc;
  ASSERT_EQ(lc.engines.size(), 2u) << lc.log_text();
  Handshake* hs = Handshake::make();
  ChildProcess client([&](int fd) {
    cadre::Client rc{lc.name};
    if (settle(rc[0].apply_async(twice, 1)).value != 2) return 10;
    hs->step = 1;
    if (!hs->await(2)) return 11;
    ChildProcess::send(fd, std::vector<Outcome>{outcome_of([&] { return rc[0].apply_async(sleep_ms, 1000); })});
    return 0;
  });
  ASSERT_TRUE(hs->await(1));
  scribble(lc.at(0), sizeof(cd::SegmentHeader), 1);
  hs->step = 2;
  const auto got = client.receive<Outcome>(1, 20s);
  ASSERT_EQ(got.size(), 1u) << "the client hung or died";
  EXPECT_EQ(got[0].kind, kCadreError) << got[0].what;
  EXPECT_LT(got[0].seconds, 0.9) << "the call waited for the task's answer instead of noticing the damage";
  const auto cr = client.wait(10s);
  EXPECT_TRUE(cr.exited && cr.code == 0) << "client: signal " << cr.signal << ", code " << cr.code;
  EXPECT_TRUE(lc.stopped_cleanly());
  EXPECT_NE(lc.log_text().find("corrupt"), std::string::npos) << lc.log_text();
}

// A client that attaches to a damaged segment is refused with connection_error saying what to do.
TEST(corruption, a_client_attaching_to_a_damaged_header_is_refused_with_connection_error) {
  LiveCluster lc;
  ASSERT_EQ(lc.engines.size(), 2u) << lc.log_text();
  auto& h = *reinterpret_cast<cd::SegmentHeader*>(lc.at(0));
  h.heap_pages ^= 0x5a5a;  // one immutable field, otherwise consistent
  try {
    cadre::Client rc{lc.name};
    ADD_FAILURE() << "attached";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("cadre stop --name " + lc.name), std::string::npos) << e.what();
  }
  EXPECT_TRUE(lc.stopped_cleanly());
}

// Random bytes over the indices of the rings between engine 0 and a client slot: the next client of
// that slot gets a cadre::error (not a submit that waits for ever for room in a ring that looks full),
// and the cluster still stops cleanly.
TEST(corruption, damaged_ring_indices_are_an_error_not_an_endless_wait_in_submit) {
  LiveCluster lc;
  ASSERT_EQ(lc.engines.size(), 2u) << lc.log_text();
  Handshake* hs = Handshake::make();
  ChildProcess client([&](int fd) {
    {
      cadre::Client a{lc.name};
      if (settle(a[0].apply_async(twice, 1)).value != 2) return 10;
      hs->slot = slot_of(a);
    }  // detached: the next client takes the same slot
    hs->step = 1;
    if (!hs->await(2)) return 11;
    ChildProcess::send(fd, std::vector<Outcome>{outcome_of([&] {
                         cadre::Client b{lc.name};
                         return b[0].apply_async(twice, 2);
                       })});
    return 0;
  });
  ASSERT_TRUE(hs->await(1));
  ASSERT_GE(hs->slot.load(), 0);
  const auto c = std::uint32_t(hs->slot.load());
  scribble(reinterpret_cast<std::byte*>(&lc.seg.command_ring(0, c)->idx), sizeof(cd::RingIndices), 2);
  scribble(reinterpret_cast<std::byte*>(&lc.seg.completion_ring(0, c)->idx), sizeof(cd::RingIndices), 3);
  hs->step = 2;
  const auto got = client.receive<Outcome>(1, 20s);
  ASSERT_EQ(got.size(), 1u) << "the client hung or died";
  EXPECT_EQ(got[0].kind, kCadreError) << got[0].what;
  EXPECT_LT(got[0].seconds, 5.0);
  const auto cr = client.wait(10s);
  EXPECT_TRUE(cr.exited && cr.code == 0) << "client: signal " << cr.signal << ", code " << cr.code;
  lc.request_stop();
  EXPECT_TRUE(lc.stopped_cleanly());
}

// Random bytes over the page table, and a page that claims to start a run of 2^32-1 pages of a client
// that then dies without detaching: the launcher's reclaim of the dead client's blocks stays inside the
// table, and later clients are served.
TEST(corruption, a_damaged_page_table_does_not_crash_the_launchers_reclaim) {
  LiveCluster lc;
  ASSERT_EQ(lc.engines.size(), 2u) << lc.log_text();
  Handshake* hs = Handshake::make();
  ChildProcess client([&](int) {
    cadre::Client a{lc.name};
    if (settle(a[0].apply_async(twice, 1)).value != 2) return 10;
    hs->slot = slot_of(a);
    hs->step = 1;
    if (!hs->await(2)) return 11;
    ::_exit(0);  // dies holding its slot: the launcher reclaims what it owned
  });
  ASSERT_TRUE(hs->await(1));
  const auto c = std::uint32_t(hs->slot.load());
  const auto& h = lc.seg.header();
  auto* pages = reinterpret_cast<cd::PageEntry*>(lc.at(h.pages_off));
  scribble(reinterpret_cast<std::byte*>(pages + h.heap_pages / 2), 4096, 4);
  cd::PageEntry& last = pages[h.heap_pages - 1];
  last.run = ~0u;
  last.owner.store(cd::client_tag(c));
  hs->step = 2;
  EXPECT_TRUE(client.wait(10s).exited);
  // The launcher retires the dead client's slot within its next idle second.
  EXPECT_TRUE(wait_until([&] { return lc.seg.client(c).pid.load() == 0; }, 5s)) << lc.log_text();
  EXPECT_FALSE(exited(lc.launcher->pid()));
  {
    cadre::Client b{lc.name};
    const auto o = outcome_of([&] { return b[1].apply_async(twice, 3); });
    EXPECT_TRUE(o.kind == kValue || o.kind == kCadreError) << o.what;
  }
  lc.request_stop();
  EXPECT_TRUE(lc.stopped_cleanly());
}

// Random bytes over an engine's slot in the engine table: the launcher finds it is not what it wrote,
// says so and stops the cluster; the client's call fails with a cadre::error in time.
TEST(corruption, a_damaged_engine_table_fails_the_clients_calls_and_the_launcher_stops_the_cluster) {
  LiveCluster lc;
  ASSERT_EQ(lc.engines.size(), 2u) << lc.log_text();
  Handshake* hs = Handshake::make();
  ChildProcess client([&](int fd) {
    cadre::Client rc{lc.name};
    if (settle(rc[0].apply_async(twice, 1)).value != 2) return 10;
    hs->step = 1;
    if (!hs->await(2)) return 11;
    std::vector<Outcome> os;
    for (int i = 0; i < 2; ++i) os.push_back(outcome_of([&] { return rc[i].apply_async(twice, 2); }));
    ChildProcess::send(fd, os);
    return 0;
  });
  ASSERT_TRUE(hs->await(1));
  scribble(reinterpret_cast<std::byte*>(&lc.seg.engine(0)), offsetof(cd::EngineSlot, counted_runnable), 5);
  hs->step = 2;
  const auto got = client.receive<Outcome>(2, 20s);
  ASSERT_EQ(got.size(), 2u) << "the client hung or died";
  EXPECT_EQ(got[0].kind, kCadreError) << got[0].what;
  for (const auto& o : got) EXPECT_LT(o.seconds, 5.0) << o.what;
  const auto cr = client.wait(10s);
  EXPECT_TRUE(cr.exited && cr.code == 0) << "client: signal " << cr.signal << ", code " << cr.code;
  EXPECT_TRUE(lc.stopped_cleanly());
  EXPECT_NE(lc.log_text().find("corrupt"), std::string::npos) << lc.log_text();
}

// ---- random bytes anywhere -------------------------------------------------------------------------------

/// What a client child did while its segment was being damaged.
struct Work {
  int calls = 0, errors = 0, late = 0;
  double slowest = 0;
  char first_late[300] = {};
};

/// Calls engines (small values inline, large ones through heap blocks) until `stop` is set or the
/// cluster is unusable; every call must return within its limit, with a value or a cadre::error.
Work work_until(const std::string& name, const std::atomic<int>& stop, Handshake* hs) {
  Work w;
  constexpr auto kLimit = 2s;
  const auto note = [&](const Outcome& o) {
    ++w.calls;
    w.errors += o.kind != kValue;
    w.slowest = std::max(w.slowest, o.seconds);
    if ((o.kind != kValue && o.kind != kCadreError) || o.seconds > 3.0) {
      if (!w.late) std::snprintf(w.first_late, sizeof w.first_late, "kind %d after %.2f s: %s", o.kind, o.seconds, o.what);
      ++w.late;
    }
  };
  try {
    cadre::Client rc{name};
    hs->step = 1;
    const std::vector<double> big(20000, 1.5);
    for (int i = 0; stop.load() == 0 && w.errors < 40; ++i) {
      note(outcome_of([&] { return rc[i % 2].apply_async(twice, i); }, kLimit));
      note(outcome_of([&] { return rc[i % 2].apply_async([](std::vector<double> v) { return v.size(); }, big); }, kLimit));
    }
  } catch (const cadre::error&) {
    hs->step = 1;  // refused at attach: also an answer
  }
  return w;
}

// Random bytes at random places of a live segment (the header, the engine and client tables, the rings,
// the load-balanced queues, the page table) while a client works: no process dies of a signal, every call returns within its limit, and
// the cluster stops cleanly when asked (or by itself). A fixed seed per round keeps a failure repeatable
// (CADRE_CORRUPTION_SEED=<n> starts from another one, to explore); ten rounds take ~10 s.
TEST(corruption, random_bytes_anywhere_in_a_live_segment_never_crash_or_hang_a_process) {
  constexpr int kRounds = 10;
  const char* from = std::getenv("CADRE_CORRUPTION_SEED");
  const std::uint64_t first_seed = from ? std::strtoull(from, nullptr, 10) : 1000;
  for (int round = 0; round < kRounds; ++round) {
    const std::uint64_t seed = first_seed + std::uint64_t(round);
    SCOPED_TRACE("round " + std::to_string(round) + " (seed " + std::to_string(seed) + ")");
    LiveCluster lc;
    ASSERT_EQ(lc.engines.size(), 2u) << lc.log_text();
    Handshake* hs = Handshake::make();
    auto* stop = new (::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0))
        std::atomic<int>(0);
    ChildProcess client([&](int fd) {
      ChildProcess::send(fd, std::vector<Work>{work_until(lc.name, *stop, hs)});
      return 0;
    });
    ASSERT_TRUE(hs->await(1));
    const auto& h = lc.seg.header();
    struct Region {
      std::uint64_t off, len;
    };
    // Odd rounds damage the header too (the launcher then stops the cluster); even rounds leave it whole,
    // so the damage elsewhere meets a cluster that goes on.
    std::vector<Region> regions{{h.engines_off, h.clients_off - h.engines_off},
                                {h.clients_off, h.rings_off - h.clients_off},
                                {h.lbq_off, h.pages_off - h.lbq_off},
                                {h.rings_off, h.lbq_off - h.rings_off},
                                {h.pages_off, std::min<std::uint64_t>(h.heap_pages * sizeof(cd::PageEntry), 64 * 1024)}};
    if (round % 2) regions.push_back({0, sizeof(cd::SegmentHeader)});
    std::mt19937_64 rng(seed);
    for (int burst = 0; burst < 20; ++burst) {
      for (int k = 0; k < 6; ++k) {
        const Region& r = regions[rng() % regions.size()];
        *lc.at(r.off + rng() % r.len) = std::byte(rng() & 0xff);
      }
      std::this_thread::sleep_for(50ms);
    }
    stop->store(1);
    const auto got = client.receive<Work>(1, 30s);
    ASSERT_EQ(got.size(), 1u) << "the client hung or died";
    EXPECT_EQ(got[0].late, 0) << got[0].late << " of " << got[0].calls << " calls over their limit; first: " << got[0].first_late;
    const auto cr = client.wait(10s);
    EXPECT_TRUE(cr.exited) << "client: signal " << cr.signal;
    lc.request_stop();
    EXPECT_TRUE(lc.stopped_cleanly());
    ::munmap(stop, sizeof(std::atomic<int>));
    ::munmap(hs, sizeof(Handshake));
  }
}

}  // namespace
