// tests/errors_test.cpp — failure paths: exceptions thrown on engines, engines killed mid-task,
// restarted engines, and the error types themselves.
#include "test_util.hpp"

#include <csignal>
#include <cstring>
#include <functional>
#include <span>
#include <cstdio>
#include <fcntl.h>
#include <sys/wait.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace cadre_test_errors {
/// A user's own exception type, named in a namespace so its demangled name is predictable.
struct custom_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace cadre_test_errors

namespace {

using namespace cadre_test;

int boom(int) { throw std::runtime_error("boom"); }
int sleep_ms(int ms) {
  ::usleep(useconds_t(ms) * 1000);
  return ms;
}
int twice(int x) { return 2 * x; }

template <class E, class F>
std::optional<E> caught(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  }
  return std::nullopt;
}

// ---- exceptions thrown by functions on engines ---------------------------------------------------

TEST(remote_errors, an_engine_view_rethrows_a_remote_error_with_engine_type_and_message) {
  const auto e = caught<cadre::remote_error>([] { (void)rc()[2].apply_sync(boom, 1); });
  ASSERT_TRUE(e) << "no remote_error";
  EXPECT_EQ(e->engine_id(), 2);
  EXPECT_EQ(e->type(), "std::runtime_error");
  EXPECT_EQ(e->message(), "boom");
  const std::string w = e->what();
  EXPECT_NE(w.find("engine 2"), std::string::npos) << w;
  EXPECT_NE(w.find("std::runtime_error"), std::string::npos) << w;
  EXPECT_NE(w.find("boom"), std::string::npos) << w;
}

TEST(remote_errors, a_direct_view_gathers_one_failure_per_engine_into_a_composite_error) {
  const auto e = caught<cadre::composite_error>([] { (void)rc()[cadre::all].apply_sync(boom, 1); });
  ASSERT_TRUE(e) << "no composite_error";
  ASSERT_EQ(e->failures().size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const auto& f = e->failures()[std::size_t(i)];
    EXPECT_EQ(f.engine_id, i);
    EXPECT_NE(f.what.find("boom"), std::string::npos) << f.what;
    const auto inner = caught<cadre::remote_error>([&] { std::rethrow_exception(f.error); });
    ASSERT_TRUE(inner);
    EXPECT_EQ(inner->engine_id(), i);
    EXPECT_EQ(inner->message(), "boom");
  }
  const std::string w = e->what();
  EXPECT_NE(w.find("4 engine task(s) failed"), std::string::npos) << w;
  EXPECT_NE(w.find("[3] engine 3 raised std::runtime_error: boom"), std::string::npos) << w;
}

TEST(remote_errors, a_custom_exception_type_is_reported_by_its_demangled_name) {
  const auto e = caught<cadre::remote_error>(
      [] { rc()[1].apply_sync([] { throw cadre_test_errors::custom_failure("custom"); }); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type(), "cadre_test_errors::custom_failure");
  EXPECT_EQ(e->message(), "custom");
}

TEST(remote_errors, an_exception_not_derived_from_std_exception_is_still_reported) {
  const auto e = caught<cadre::remote_error>([] { rc()[0].apply_sync([] { throw 42; }); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type(), "int");
  EXPECT_NE(e->message().find("not derived from std::exception"), std::string::npos) << e->message();
}

TEST(remote_errors, only_the_engines_that_throw_are_reported_and_the_others_still_answer) {
  auto maybe_throw = [](int x) {
    if (cadre::this_engine::id() == 2) throw std::invalid_argument("engine two refuses");
    return x + cadre::this_engine::id();
  };
  cadre::AsyncResult<std::vector<int>> ar = rc()[cadre::all].apply_async(maybe_throw, 10);
  ar.wait();
  EXPECT_FALSE(ar.successful());
  const auto e = caught<cadre::composite_error>([&] { (void)ar.get(); });
  ASSERT_TRUE(e);
  ASSERT_EQ(e->failures().size(), 1u);
  EXPECT_EQ(e->failures()[0].engine_id, 2);
  EXPECT_NE(e->failures()[0].what.find("std::invalid_argument"), std::string::npos) << e->failures()[0].what;
  // The same error again, and the other engines are fine.
  EXPECT_THROW((void)ar.get(), cadre::composite_error);
  EXPECT_EQ((rc()[{0, 1, 3}].apply_sync(maybe_throw, 10)), (std::vector<int>{10, 11, 13}));
}

TEST(remote_errors, an_engine_keeps_serving_after_a_task_throws) {
  for (int i = 0; i < 5; ++i) EXPECT_THROW((void)rc()[3].apply_sync(boom, i), cadre::remote_error);
  EXPECT_EQ(rc()[3].apply_sync(twice, 4), 8);
}

TEST(remote_errors, a_long_error_message_arrives_whole) {
  const std::string longer(5000, 'm');
  const auto e = caught<cadre::remote_error>(
      [&] { rc()[1].apply_sync([](const std::string& s) { throw std::runtime_error(s); }, longer); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message(), longer);
}

TEST(remote_errors, errors_inside_execute_become_a_composite_error) {
  const auto e = caught<cadre::composite_error>(
      [] { rc()[{1, 2}].execute([](cadre::Namespace& ns) { (void)ns.get<int>("err_never_pushed"); }).get(); });
  ASSERT_TRUE(e);
  ASSERT_EQ(e->failures().size(), 2u);
  const auto inner = caught<cadre::name_error>([&] { std::rethrow_exception(e->failures()[1].error); });
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->engine_id(), 2);
  EXPECT_EQ(inner->name(), "err_never_pushed");
}

// As IPython: any DirectView throws composite_error, even of one engine, so that code written for
// DirectView catches what it throws; an EngineView throws the engine's own error.
TEST(remote_errors, a_one_engine_direct_view_throws_composite_error_and_an_engine_view_the_engines_own) {
  const auto e = caught<cadre::composite_error>([] { (void)rc()[std::vector<int>{1}].apply_sync(boom, 1); });
  ASSERT_TRUE(e);
  ASSERT_EQ(e->failures().size(), 1u);
  EXPECT_EQ(e->failures()[0].engine_id, 1);
  EXPECT_THROW(e->rethrow_first(), cadre::remote_error);
  EXPECT_THROW((void)rc()[std::vector<int>{1}].apply_async(boom, 1).get(), cadre::composite_error);
  EXPECT_THROW((void)rc()[std::vector<int>{1}].map_sync(boom, std::vector<int>{1}), cadre::composite_error);
  EXPECT_THROW((void)rc()[1].apply_sync(boom, 1), cadre::remote_error);
}

// ---- the error types -----------------------------------------------------------------------------

static_assert(std::is_base_of_v<std::runtime_error, cadre::error>);
static_assert(std::is_base_of_v<cadre::error, cadre::remote_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::engine_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::composite_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::timeout_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::name_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::type_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::decode_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::connection_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::function_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::capacity_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::aborted_error>);
static_assert(std::is_base_of_v<cadre::error, cadre::dependency_error>);

TEST(error_types, engine_error_names_engine_pid_and_signal) {
  const cadre::engine_error e(1, 4242, SIGKILL, "extra detail");
  EXPECT_EQ(e.engine_id(), 1);
  EXPECT_EQ(e.pid(), 4242);
  EXPECT_EQ(e.signal(), SIGKILL);
  const std::string w = e.what();
  EXPECT_NE(w.find("engine 1 (pid 4242) died from signal 9"), std::string::npos) << w;
  EXPECT_NE(w.find("extra detail"), std::string::npos) << w;
  EXPECT_EQ(std::string(cadre::engine_error(0, 1, 0).what()).find("signal"), std::string::npos);
}

TEST(error_types, name_and_type_errors_say_what_and_how_to_fix_it) {
  const cadre::name_error n(3, "x");
  EXPECT_NE(std::string(n.what()).find("push it first"), std::string::npos) << n.what();
  const cadre::type_error t("i32", "str", "value 'x' on engine 3");
  EXPECT_STREQ(t.what(), "value 'x' on engine 3: stored i32, requested str");
}

TEST(error_types, composite_error_lists_every_failure) {
  const cadre::composite_error c({{0, "first", nullptr}, {5, "second", nullptr}});
  EXPECT_STREQ(c.what(), "2 engine task(s) failed:\n  [0] first\n  [5] second");
  EXPECT_EQ(c.failures().size(), 2u);
}

// ---- engines that die --------------------------------------------------------------------------------

TEST(engine_death, a_sigkilled_engine_fails_its_task_with_engine_error_and_the_others_still_answer) {
  cadre::Cluster c({.engines = 2, .name = unique_name("kill")});
  cadre::Client client = c.client();
  const auto pids = c.pids();
  cadre::AsyncResult<int> sleeping = client[1].apply_async(sleep_ms, 60000);
  ASSERT_TRUE(wait_until([&] {
    return cadre::detail::engine_state(client.segment()->engine(1)) == cadre::detail::EngineState::busy;
  }));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
  const auto e = caught<cadre::engine_error>([&] { (void)sleeping.get(10s); });  // timeout_error would escape: no hang
  ASSERT_TRUE(e) << "no engine_error";
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_EQ(e->engine_id(), 1);
  EXPECT_EQ(e->signal(), SIGKILL);
  EXPECT_EQ(e->pid(), pids[1]);
  EXPECT_NE(std::string(e->what()).find("engine 1"), std::string::npos) << e->what();
  EXPECT_EQ(client[0].apply_sync(::getpid), pids[0]);
  EXPECT_TRUE(wait_until([&] { return c.pids()[1] == 0; }, 5s));

  // Sent after the death: fails at once, without waiting for anything.
  cadre::AsyncResult<int> late = client[1].apply_async(twice, 1);
  EXPECT_TRUE(late.ready());
  const auto e2 = caught<cadre::engine_error>([&] { (void)late.get(); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->engine_id(), 1);
  EXPECT_EQ(e2->signal(), SIGKILL);

  // A DirectView that includes the dead engine reports it alone.
  const auto comp = caught<cadre::composite_error>([&] { (void)client[cadre::all].apply_sync(twice, 3); });
  ASSERT_TRUE(comp);
  ASSERT_EQ(comp->failures().size(), 1u);
  EXPECT_EQ(comp->failures()[0].engine_id, 1);
  EXPECT_THROW(std::rethrow_exception(comp->failures()[0].error), cadre::engine_error);
  EXPECT_THROW(client[1].push("x", 1).get(), cadre::engine_error);
  EXPECT_THROW((void)client[1].pull<int>("x"), cadre::engine_error);
}

TEST(engine_death, an_engine_killed_during_a_direct_view_apply_sync_fails_its_part_without_a_hang) {
  // DirectView::apply_sync keeps its tasks on the caller's stack (ClientCore::run): the death must
  // still reach them, and the other engine's result must still be waited for.
  cadre::Cluster c({.engines = 2, .name = unique_name("killsync")});
  cadre::Client client = c.client();
  const auto pids = c.pids();
  std::thread killer([&] {
    if (wait_until([&] { return cadre::detail::engine_state(client.segment()->engine(1)) == cadre::detail::EngineState::busy; }))
      ::kill(pids[1], SIGKILL);
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto comp = caught<cadre::composite_error>([&] { (void)client[cadre::all].apply_sync(sleep_ms, 2000); });
  killer.join();
  ASSERT_TRUE(comp) << "no composite_error";
  EXPECT_LT(seconds_since(t0), 10.0);
  ASSERT_EQ(comp->failures().size(), 1u);
  EXPECT_EQ(comp->failures()[0].engine_id, 1);
  EXPECT_THROW(std::rethrow_exception(comp->failures()[0].error), cadre::engine_error);
  EXPECT_EQ(client[0].apply_sync(::getpid), pids[0]);
}

TEST(engine_death, queued_tasks_of_a_killed_engine_all_fail) {
  cadre::Cluster c({.engines = 2, .name = unique_name("queue")});
  cadre::Client client = c.client();
  std::vector<cadre::AsyncResult<int>> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(client[0].apply_async(sleep_ms, 1000));
  ASSERT_EQ(::kill(c.pids()[0], SIGKILL), 0);
  for (auto& r : queued) EXPECT_THROW((void)r.get(10s), cadre::engine_error);
  EXPECT_EQ(client.outstanding(), 0u);
  EXPECT_EQ(client[1].apply_sync(twice, 2), 4);
}

TEST(engine_death, a_large_value_pulled_before_the_engine_died_stays_readable) {
  cadre::Cluster c({.engines = 2, .name = unique_name("pinned")});
  cadre::Client client = c.client();
  client[1].push("big", std::vector<int>(100000, 7)).get();
  auto pulled = client[1].pull_async<std::vector<int>>("big");
  pulled.wait();
  ASSERT_EQ(::kill(c.pids()[1], SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return c.pids()[1] == 0; }));
  EXPECT_EQ(pulled.get(), std::vector<int>(100000, 7));
}

TEST(engine_death, the_pages_of_a_dead_engine_are_reclaimed) {
  cadre::Cluster c({.engines = 2, .name = unique_name("reclaim")});
  cadre::Client client = c.client();
  auto& seg = *client.segment();
  const std::uint64_t before = seg.used_bytes();
  client[1].push("big", std::vector<double>(1 << 20, 1.0)).get();  // 8 MiB held by engine 1's namespace
  EXPECT_GE(seg.used_bytes(), before + (8u << 20));
  ASSERT_EQ(::kill(c.pids()[1], SIGKILL), 0);
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == before; }, 5s)) << seg.used_bytes() << " vs " << before;
}

// ---- restarted engines -------------------------------------------------------------------------------

TEST(engine_restart, a_killed_engine_is_replaced_under_the_same_id) {
  cadre::Cluster c({.engines = 2, .name = unique_name("restart"), .restart_engines = true});
  cadre::Client client = c.client();
  const pid_t old_pid = c.pids()[1];
  client[1]["before"] = 1;
  cadre::AsyncResult<int> sleeping = client[1].apply_async(sleep_ms, 60000);
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  EXPECT_THROW((void)sleeping.get(10s), cadre::engine_error);
  ASSERT_TRUE(wait_until([&] { const pid_t p = c.pids()[1]; return p != 0 && p != old_pid; }, 10s));
  const pid_t new_pid = c.pids()[1];
  EXPECT_EQ(client[1].apply_sync(::getpid), new_pid);
  EXPECT_EQ(client[1].apply_sync([] { return cadre::this_engine::id(); }), 1);
  EXPECT_EQ(c.restarts(1), 1u);
  EXPECT_EQ(c.restarts(0), 0u);
  EXPECT_THROW((void)client[1].pull<int>("before"), cadre::name_error);  // a fresh namespace
  EXPECT_TRUE(wait_until([&] { return pid_gone(old_pid); }, 5s));
  EXPECT_EQ(client[cadre::all].apply_sync(twice, 5), (std::vector<int>{10, 10}));
}

// A regression test: when one poll() reported both a dead engine's pidfd and its output pipe, the
// launcher restarted the engine first and then read — blocking, holding its mutex — from the
// replacement's empty pipe, so pids() and ~Cluster hung forever.
TEST(engine_restart, restarting_an_engine_whose_output_goes_to_a_pipe_does_not_deadlock_the_launcher) {
  const std::string name = unique_name("restartpipe");
  const ChildResult r = run_in_child(
      [&] {
        cadre::Cluster c({.engines = 2, .name = name, .restart_engines = true});  // output through pipes
        cadre::Client client = c.client();
        const pid_t launcher = ::getpid(), old_pid = c.pids()[1];
        // Stop the launcher, kill the engine, let the kernel finish its exit, resume the launcher: its
        // next poll() then reports the pidfd and the pipe's hang-up together, deterministically.
        const pid_t helper = ::fork();
        if (helper == 0) {
          ::kill(launcher, SIGSTOP);
          ::usleep(100'000);
          ::kill(old_pid, SIGKILL);
          ::usleep(200'000);
          ::kill(launcher, SIGCONT);
          ::_exit(0);
        }
        ::waitpid(helper, nullptr, 0);
        if (!wait_until([&] { const pid_t p = c.pids()[1]; return p != 0 && p != old_pid; }, 5s)) return 1;
        return client[1].apply_sync(twice, 21) == 42 ? 0 : 2;
      },
      15s);
  EXPECT_FALSE(r.timed_out) << "the launcher deadlocked restarting an engine";
  EXPECT_TRUE(r.exited && r.code == 0) << r.code << " / signal " << r.signal;
  cadre::detail::Segment::remove(name);  // what a hung child could not remove
}

// The error of a task whose engine was killed and replaced names the killed pid and signal, not the replacement's.
TEST(engine_restart, the_error_of_a_restarted_engine_names_the_pid_and_signal_that_died) {
  cadre::Cluster c({.engines = 2, .name = unique_name("restartpid"), .restart_engines = true});
  cadre::Client client = c.client();
  const pid_t old_pid = c.pids()[1];
  cadre::AsyncResult<int> sleeping = client[1].apply_async(sleep_ms, 60000);
  ASSERT_TRUE(wait_until([&] {
    return cadre::detail::engine_state(client.segment()->engine(1)) == cadre::detail::EngineState::busy;
  }));
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { const pid_t p = c.pids()[1]; return p != 0 && p != old_pid; }, 10s));
  const auto e = caught<cadre::engine_error>([&] { (void)sleeping.get(10s); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->pid(), old_pid) << e->what();
  EXPECT_EQ(e->signal(), SIGKILL) << e->what();
}

// Records queued for a killed engine are dropped by its replacement without releasing their blocks, which reap() reclaimed: new values keep theirs.
TEST(engine_restart, large_pushes_queued_for_a_killed_engine_do_not_free_its_replacements_values) {
  cadre::Cluster c({.engines = 2, .name = unique_name("aba"), .restart_engines = true});
  cadre::Client client = c.client();
  cadre::EngineView e1 = client[1];
  const pid_t old_pid = c.pids()[1];
  cadre::AsyncResult<int> sleeping = e1.apply_async(sleep_ms, 60000);
  std::vector<cadre::AsyncResult<void>> queued;
  for (int k = 0; k < 8; ++k) queued.push_back(e1.push("q" + std::to_string(k), std::vector<int>(50000, k)));
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { const pid_t p = c.pids()[1]; return p != 0 && p != old_pid; }, 10s));
  std::vector<cadre::AsyncResult<void>> fresh;
  for (int k = 0; k < 8; ++k) fresh.push_back(e1.push("n" + std::to_string(k), std::vector<int>(50000, 100 + k)));
  for (auto& q : queued) EXPECT_THROW(q.get(10s), cadre::engine_error);
  for (int k = 0; k < 8; ++k) {
    EXPECT_NO_THROW(fresh[std::size_t(k)].get(10s)) << "push n" << k;
    std::vector<int> back;
    EXPECT_NO_THROW(back = e1.pull<std::vector<int>>("n" + std::to_string(k))) << "pull n" << k;
    EXPECT_EQ(back, std::vector<int>(50000, 100 + k)) << "n" << k;
  }
}

// ---- clients that die ------------------------------------------------------------------------------

// A client that dies holds pins: on its own result blocks and on engine blocks it pulled in place.
// Taking its slot over must give every one of those pages back.
TEST(client_death, results_a_dead_client_held_are_freed_when_its_slot_is_taken_over) {
  const std::string name = unique_name("deadclient");
  cadre::Cluster c({.engines = 1, .name = name});
  const cadre::detail::Segment seg = cadre::detail::Segment::open(name);
  const std::uint64_t before = seg.used_bytes();
  const ChildResult r = run_in_child([&] {
    cadre::Client client{name};
    auto result = client[0].apply_async([](int n) { return std::vector<double>(std::size_t(n), 1.0); }, 1 << 17);  // 1 MiB
    client[0].push("v", std::vector<double>(1 << 17, 2.0)).get();
    auto pulled = client[0].pull_async<std::vector<double>>("v");
    result.wait();
    pulled.wait();
    return 0;  // run_in_child _exits: no destructor releases anything, as in a crash
  });
  ASSERT_TRUE(r.exited && r.code == 0);
  std::vector<cadre::Client> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back(name);  // the fourth takes the dead client's slot over
  clients[0][0].erase("v").get();
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == before; }, 3s)) << seg.used_bytes() << " bytes in use, " << before << " before";
}

// ---- corrupt records ---------------------------------------------------------------------------------

/// Writes records into an engine's command ring by hand, from a client slot it claims itself, and reads
/// the engine's completions: a client that sends garbage.
class RawClient {
 public:
  RawClient(const std::string& cluster, std::uint32_t slot) : seg_(cadre::detail::Segment::open(cluster)), slot_(slot) {
    auto& cs = seg_.client(slot);
    std::int32_t free_slot = 0;
    ok_ = cs.pid.compare_exchange_strong(free_slot, ::getpid());
    gen_ = cs.generation.fetch_add(1) + 1;
    commands_ = cadre::detail::RingProducer(seg_.command_ring(0, slot));
    completions_ = cadre::detail::RingConsumer(seg_.completion_ring(0, slot));
  }
  ~RawClient() { seg_.client(slot_).pid.store(0); }
  bool claimed() const { return ok_; }

  /// Sends one record to engine 0; `fill` may change the slot before it is published.
  void send(std::uint64_t task, std::uint16_t kind, std::span<const std::byte> data, const std::function<void(cadre::detail::RingSlot&)>& fill = {}) {
    cadre::detail::RingSlot* s = commands_.try_claim();
    ASSERT_NE(s, nullptr);
    s->task_id = task;
    s->kind = kind;
    s->flags = 0;
    s->status = 0;
    s->len = std::uint32_t(data.size());
    s->aux = 0;
    s->block = 0;
    s->started_ns = 0;
    s->engine_gen = seg_.engine(0).generation.load();
    s->client_gen = gen_;
    std::memcpy(s->data, data.data(), std::min(data.size(), cadre::detail::kInlineBytes));
    if (fill) fill(*s);
    commands_.publish();
    cadre::detail::doorbell_of(seg_.engine(0)).ring();
  }

  /// The status of the next completion (which must be for `task`), or -1 if none came within 10 s.
  int completion(std::uint64_t task) {
    const cadre::detail::RingSlot* s = nullptr;
    if (!wait_until([&] { return (s = completions_.peek()) != nullptr; }, 10s)) return -1;
    EXPECT_EQ(s->task_id, task);
    const int status = int(s->status);
    if (s->block) {
      try {
        seg_.release(s->block, cadre::detail::kPin);
      } catch (...) {
      }
    }
    completions_.release();
    return status;
  }

 private:
  cadre::detail::Segment seg_;
  std::uint32_t slot_;
  bool ok_ = false;
  std::uint64_t gen_ = 0;
  cadre::detail::RingProducer commands_;
  cadre::detail::RingConsumer completions_;
};

TEST(corrupt_records, an_engine_answers_malformed_records_with_errors_and_keeps_serving) {
  const std::string name = unique_name("corrupt");
  cadre::Cluster c({.engines = 1, .name = name});
  const pid_t pid = c.pids()[0];
  using cadre::detail::RecordKind;
  using cadre::detail::Status;
  const int decode = int(Status::decode_error), function = int(Status::function_error);
  {
    RawClient raw(name, cadre::detail::kMaxClients - 1);
    ASSERT_TRUE(raw.claimed());
    std::vector<std::byte> b(32, std::byte{0});
    const auto apply = std::uint16_t(RecordKind::apply);

    b[0] = std::byte{7};  // unknown call mode
    raw.send(1, apply, std::span(b).first(1));
    EXPECT_EQ(raw.completion(1), decode);

    raw.send(2, apply, b, [](auto& s) { s.len = 500; });  // longer than a slot, no block
    EXPECT_EQ(raw.completion(2), decode);

    raw.send(3, std::uint16_t(RecordKind::push), b, [](auto& s) { s.block = 12345; });  // not a block
    EXPECT_EQ(raw.completion(3), decode);

    raw.send(4, 55, b);  // unknown kind
    EXPECT_EQ(raw.completion(4), decode);

    const std::uint32_t long_name = 1000;  // a name longer than the record
    std::memcpy(b.data(), &long_name, sizeof long_name);
    raw.send(5, std::uint16_t(RecordKind::pull), std::span(b).first(8));
    EXPECT_EQ(raw.completion(5), decode);

    b[0] = std::byte{0};  // call mode 0 and nothing after it
    raw.send(6, apply, std::span(b).first(1));
    EXPECT_EQ(raw.completion(6), decode);

    std::vector<std::byte> rec;
    cadre::detail::Writer w(rec);
    cadre::detail::CodeRef unknown;
    unknown.id.len = 20;
    unknown.id.bytes.fill(0xee);  // no module has this build-id
    unknown.offset = 0x1000;
    cadre::detail::put_thunk_call_head(w, unknown, &unknown, {});
    w.align(cadre::detail::kArgsAlign);
    w.put(std::uint32_t(0));  // no arguments
    raw.send(7, apply, rec);
    EXPECT_EQ(raw.completion(7), function);
  }
  cadre::Client client = c.client();
  EXPECT_EQ(client[0].apply_sync(::getpid), pid);  // the same process, still serving
  EXPECT_EQ(c.restarts(0), 0u);
}

}  // namespace
