// tests/core_test.cpp — the client API against real engine processes: choosing engines, apply, futures,
// push/pull, namespaces, cluster lifecycle and capacity.
#include "test_util.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace cadre_test;
using cadre::slice;

// ---- functions that run on engines --------------------------------------------------------------

int twice(int x) { return 2 * x; }
int thrice(int x) { return 3 * x; }
double half(double x) { return x / 2; }
int engine_id_from_ns(cadre::Namespace& ns) { return ns.engine_id(); }
int add_to_named(cadre::Namespace& ns, const std::string& name, int x) { return ns.get<int>(name) + x; }
void count_calls(cadre::Namespace& ns) { ns.set("calls", ns.contains("calls") ? ns.get<int>("calls") + 1 : 1); }
std::string greet(const std::string& who) { return "hello " + who; }
std::vector<double> halves(int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[std::size_t(i)] = i / 2.0;
  return v;
}
void nothing(int) {}
/// On an engine: waits until the file `gate` exists or its directory is gone (at most 30 s), then returns x.
int x_once_open(int x, const std::string& gate) {
  const std::string dir = gate.substr(0, gate.rfind('/'));
  for (int i = 0; i < 15000 && ::access(gate.c_str(), F_OK) != 0 && ::access(dir.c_str(), F_OK) == 0; ++i) ::usleep(2000);
  return x;
}

/// Creates the file `path` (a gate for x_once_open) when asked, and at the latest when it goes out of scope.
struct Gate {
  ScratchDir dir;
  std::string path = dir.path + "/open";
  void open() const {
    if (std::FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
  }
  ~Gate() { open(); }
};

int sleep_ms(int ms) {
  ::usleep(useconds_t(ms) * 1000);
  return ms;
}

struct Pod {
  int a;
  double b;
  char c[8];
};

std::vector<int> iota_vector(int n, int from = 0) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), from);
  return v;
}

// ---- Client: choosing engines -------------------------------------------------------------------

TEST(client, ids_are_zero_to_n_minus_one) {
  EXPECT_EQ(rc().ids(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(rc().size(), 4u);
  EXPECT_EQ(rc().cluster(), shared().cluster.name());
}

TEST(client, index_zero_is_the_first_engine_and_minus_one_the_last) {
  const auto pids = shared().cluster.pids();
  EXPECT_EQ(rc()[0].id(), 0);
  EXPECT_EQ(rc()[-1].id(), 3);
  EXPECT_EQ(rc()[-4].id(), 0);
  EXPECT_EQ(rc()[-1].apply_sync(::getpid), pids[3]);
  EXPECT_EQ(rc()[0].apply_sync(::getpid), pids[0]);
}

TEST(client, all_selects_every_engine_in_order) {
  EXPECT_EQ(rc()[cadre::all].targets(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(rc().direct_view().targets(), (std::vector<int>{0, 1, 2, 3}));
}

TEST(client, even_and_odd_slices_select_alternate_engines) {
  EXPECT_EQ((rc()[slice{0, cadre::end, 2}].targets()), (std::vector<int>{0, 2}));
  EXPECT_EQ((rc()[slice{1, cadre::end, 2}].targets()), (std::vector<int>{1, 3}));
  EXPECT_EQ((rc()[slice{1, cadre::end, 2}].apply_sync([] { return cadre::this_engine::id(); })), (std::vector<int>{1, 3}));
}

TEST(client, slices_follow_python_semantics) {
  EXPECT_EQ((rc()[slice{1, 3}].targets()), (std::vector<int>{1, 2}));
  EXPECT_EQ(rc()[slice{-2}].targets(), (std::vector<int>{2, 3}));
  EXPECT_EQ((rc()[slice{0, -1}].targets()), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ((rc()[slice{cadre::end, cadre::end, -1}].targets()), (std::vector<int>{3, 2, 1, 0}));
  EXPECT_EQ((rc()[slice{-100, 100}].targets()), (std::vector<int>{0, 1, 2, 3}));
}

TEST(client, a_list_of_ids_keeps_its_order_in_results) {
  cadre::DirectView v = rc()[std::vector<int>{3, 1}];
  EXPECT_EQ(v.targets(), (std::vector<int>{3, 1}));
  EXPECT_EQ(v.apply_sync([] { return cadre::this_engine::id(); }), (std::vector<int>{3, 1}));
  const auto pids = shared().cluster.pids();
  EXPECT_EQ(v.apply_sync(::getpid), (std::vector<pid_t>{pids[3], pids[1]}));
  EXPECT_EQ((rc()[{-1, 0}].targets()), (std::vector<int>{3, 0}));
}

template <class F>
std::string out_of_range_message(F&& f) {
  try {
    f();
  } catch (const std::out_of_range& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

TEST(client, a_bad_index_throws_out_of_range_naming_the_valid_range) {
  for (int bad : {4, -5, 100, INT_MIN}) {
    const std::string m = out_of_range_message([&] { (void)rc()[bad]; });
    EXPECT_NE(m.find("0..3"), std::string::npos) << bad << ": " << m;
    EXPECT_NE(m.find(std::to_string(bad)), std::string::npos) << m;
  }
}

TEST(client, a_zero_step_slice_throws_out_of_range) {
  EXPECT_THROW(((void)rc()[slice{0, cadre::end, 0}]), std::out_of_range);
}

// BUG (slice.hpp, resolve_slice, the step == 0 check): unlike every other bad selection, the message
// "slice step cannot be zero" names neither the valid range nor a way out. Enable once it does.
TEST(client, a_zero_step_slice_message_names_the_valid_range) {
  const std::string m = out_of_range_message([] { (void)rc()[slice{0, cadre::end, 0}]; });
  EXPECT_NE(m.find("0..3"), std::string::npos) << m;
}

TEST(client, an_empty_slice_throws_out_of_range_naming_the_valid_range) {
  for (slice s : {slice{2, 2}, slice{4, cadre::end}, slice{0, 3, -1}, slice{-1, 0, 1}}) {
    const std::string m = out_of_range_message([&] { (void)rc()[s]; });
    EXPECT_NE(m.find("0..3"), std::string::npos) << m;
    EXPECT_NE(m.find("selects no engine"), std::string::npos) << m;
  }
}

TEST(client, an_empty_or_bad_list_throws_out_of_range_naming_the_valid_range) {
  std::string m = out_of_range_message([] { (void)rc()[std::vector<int>{}]; });
  EXPECT_NE(m.find("0..3"), std::string::npos) << m;
  m = out_of_range_message([] { (void)rc()[std::vector<int>{0, 4}]; });
  EXPECT_NE(m.find("0..3"), std::string::npos) << m;
}

TEST(client, views_print_their_engines) {
  EXPECT_EQ(fmt::format("{}", rc()[2]), "<EngineView 2>");
  EXPECT_EQ(fmt::format("{}", rc()[slice{0, cadre::end, 2}]), "<DirectView [0, 2]>");
  std::ostringstream os;
  os << rc()[-1] << " " << rc()[std::vector<int>{3, 1}];
  EXPECT_EQ(os.str(), "<EngineView 3> <DirectView [3, 1]>");
}

TEST(client, copies_share_one_connection) {
  cadre::Client copy = rc();
  EXPECT_EQ(copy.core(), rc().core());
  EXPECT_EQ(copy[1].apply_sync(twice, 4), 8);
}

TEST(client, a_fifth_client_is_refused_and_a_freed_slot_is_reused) {
  const std::string name = shared().cluster.name();
  std::vector<std::optional<cadre::Client>> extra(3);  // the shared client holds the fourth slot
  for (auto& c : extra) c.emplace(name);
  try {
    cadre::Client fifth{name};
    ADD_FAILURE() << "a fifth client connected";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("clients attached"), std::string::npos) << e.what();
  }
  EXPECT_EQ((*extra[2])[3].apply_sync(twice, 5), 10);
  extra[2].reset();
  cadre::Client again{name};
  EXPECT_EQ(again[0].apply_sync(twice, 6), 12);
  EXPECT_EQ((*extra[0])[1].apply_sync(twice, 7), 14);
}

TEST(client, late_results_of_a_client_that_left_are_freed_when_its_slot_is_reused) {
  auto& seg = *rc().segment();
  rc().wait();
  const std::uint64_t before = seg.used_bytes();
  {
    cadre::Client gone{shared().cluster.name()};
    (void)gone[2].apply_async([](int ms) {
      ::usleep(useconds_t(ms) * 1000);
      return std::vector<double>(1 << 17, 1.0);  // 1 MiB: a result block pinned for that client
    }, 200);
    EXPECT_TRUE(wait_until([&] { return cadre::detail::engine_state(seg.engine(2)) == cadre::detail::EngineState::busy; }));
  }  // gone before its result exists
  cadre::Client next{shared().cluster.name()};  // takes the same slot, and drains what was left in it
  EXPECT_EQ(next[2].apply_sync(twice, 1), 2);   // runs after the late result was posted
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == before; }, 5s)) << seg.used_bytes() << " vs " << before;
}

// The same through a load-balanced view: a task in flight must not keep its departed client alive
// (its result state is allocated with the task, which the client's table of tasks in flight holds).
TEST(client, late_load_balanced_results_of_a_client_that_left_are_freed_when_its_slot_is_reused) {
  auto& seg = *rc().segment();
  rc().wait();
  const std::uint64_t before = seg.used_bytes();
  {
    cadre::Client gone{shared().cluster.name()};
    (void)gone.load_balanced_view({3}).apply_async([](int ms) {
      ::usleep(useconds_t(ms) * 1000);
      return std::vector<double>(1 << 17, 1.0);
    }, 200);
    EXPECT_TRUE(wait_until([&] { return cadre::detail::engine_state(seg.engine(3)) == cadre::detail::EngineState::busy; }));
  }
  cadre::Client next{shared().cluster.name()};
  EXPECT_EQ(next[3].apply_sync(twice, 1), 2);
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == before; }, 5s)) << seg.used_bytes() << " vs " << before;
}

TEST(client, wait_waits_for_every_task_it_sent) {
  cadre::Client c = rc();
  auto a = c[0].apply_async(sleep_ms, 50);
  auto b = c[slice{1, cadre::end}].apply_async(sleep_ms, 20);
  c.wait();
  EXPECT_TRUE(a.ready());
  EXPECT_TRUE(b.ready());
  EXPECT_EQ(c.outstanding(), 0u);
}

// ---- apply ----------------------------------------------------------------------------------------

TEST(engine_view, apply_sync_of_getpid_returns_that_engines_pid) {
  const pid_t p = rc()[0].apply_sync(::getpid);
  EXPECT_EQ(p, shared().cluster.pids()[0]);
  EXPECT_NE(p, ::getpid());
}

TEST(direct_view, apply_sync_returns_one_result_per_engine_in_target_order) {
  const std::vector<pid_t> pids = rc()[cadre::all].apply_sync(::getpid);
  EXPECT_EQ(pids, shared().cluster.pids());
  EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).size(), 4u);
  for (pid_t p : pids) EXPECT_NE(p, ::getpid());
}

TEST(direct_view, apply_calls_a_free_function_with_an_argument) {
  EXPECT_EQ((rc()[slice{0, cadre::end, 2}].apply_sync(twice, 21)), (std::vector<int>{42, 42}));
  EXPECT_EQ(rc()[1].apply_sync(twice, -3), -6);
}

TEST(direct_view, apply_converts_arguments_to_the_parameter_types) {
  EXPECT_EQ(rc()[0].apply_sync(half, 3), 1.5);            // int → double
  EXPECT_EQ(rc()[0].apply_sync(greet, "world"), "hello world");  // const char* → std::string
}

TEST(direct_view, arguments_arrive_in_the_order_they_were_given) {
  EXPECT_EQ(rc()[2].apply_sync([](int a, int b, int c) { return 100 * a + 10 * b + c; }, 1, 2, 3), 123);
  EXPECT_EQ(rc()[2].apply_sync([](std::string a, int b, std::string c) { return a + std::to_string(b) + c; }, std::string("x"), 5, std::string("z")),
            "x5z");
}

TEST(direct_view, apply_runs_a_captureless_lambda) {
  EXPECT_EQ(rc()[cadre::all].apply_sync([](int a, int b) { return a * b; }, 6, 7), (std::vector<int>(4, 42)));
}

TEST(direct_view, apply_ships_trivially_copyable_captures_by_value) {
  int i = 7;
  double d = 0.25;
  Pod pod{3, 1.5, "pod"};
  auto f = [i, d, pod](int x) { return std::to_string(x + i) + "/" + std::to_string(d + pod.b) + "/" + pod.c + std::to_string(pod.a); };
  i = 1000;  // the lambda holds its own copy
  const std::vector<std::string> out = rc()[cadre::all].apply_sync(f, 1);
  ASSERT_EQ(out.size(), 4u);
  for (const auto& s : out) EXPECT_EQ(s, "8/1.750000/pod3");
}

// The encoded reference to the last function applied is reused per thread: switching between
// functions of one signature must still call the right one each time.
TEST(direct_view, alternating_functions_of_one_signature_each_run) {
  int (*const fns[])(int) = {twice, thrice, thrice, twice, twice};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rc()[0].apply_sync(fns[i], 7), fns[i](7)) << "call " << i;
  std::thread other([&] { EXPECT_EQ(rc()[1].apply_sync(thrice, 5), 15); });  // its own thread's cache
  EXPECT_EQ(rc()[1].apply_sync(twice, 5), 10);
  other.join();
}

TEST(direct_view, apply_passes_the_engines_namespace_to_a_function_that_takes_it_first) {
  EXPECT_EQ(rc()[cadre::all].apply_sync(engine_id_from_ns), (std::vector<int>{0, 1, 2, 3}));
  rc()[cadre::all].push("ns_arg", 100).get();
  EXPECT_EQ((rc()[{2, 0}].apply_sync(add_to_named, std::string("ns_arg"), 5)), (std::vector<int>{105, 105}));
  EXPECT_EQ(rc()[3].apply_sync([](cadre::Namespace& ns, int k) { return ns.get<int>("ns_arg") * k; }, 2), 200);
}

TEST(direct_view, this_engine_id_inside_a_lambda_is_each_engines_id) {
  EXPECT_EQ(rc()[cadre::all].apply_sync([] { return cadre::this_engine::id(); }), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(rc()[cadre::all].apply_sync([] { return cadre::this_engine::active(); }), (std::vector<bool>(4, true)));
  EXPECT_EQ(rc()[1].apply_sync([] { return cadre::this_engine::ns().engine_id(); }), 1);
}

TEST(direct_view, this_engine_outside_an_engine_reports_none) {
  EXPECT_EQ(cadre::this_engine::id(), -1);
  EXPECT_FALSE(cadre::this_engine::active());
  EXPECT_THROW(cadre::this_engine::ns(), cadre::error);
}

TEST(direct_view, ref_arguments_are_read_from_each_engines_namespace) {
  for (int i = 0; i < 4; ++i) rc()[i]["ref_a"] = 10 * i;
  EXPECT_EQ(rc()[cadre::all].apply_sync(twice, cadre::ref("ref_a")), (std::vector<int>{0, 20, 40, 60}));
  EXPECT_EQ(rc()[cadre::all].apply_sync([](int a, int b) { return a + b; }, cadre::ref("ref_a"), 1), (std::vector<int>{1, 11, 21, 31}));
}

TEST(direct_view, apply_returns_strings_vectors_and_void) {
  EXPECT_EQ(rc()[2].apply_sync(greet, std::string("cadre")), "hello cadre");
  EXPECT_EQ(rc()[0].apply_sync(halves, 5), (std::vector<double>{0, 0.5, 1, 1.5, 2}));
  rc()[cadre::all].apply_sync(nothing, 1);
  cadre::AsyncResult<void> ar = rc()[cadre::all].apply_async(nothing, 2);
  ar.get();
  EXPECT_TRUE(ar.successful());
  static_assert(std::is_void_v<decltype(rc()[0].apply_sync(nothing, 1))>);
  static_assert(std::is_same_v<decltype(rc()[cadre::all].apply_sync(halves, 1)), std::vector<std::vector<double>>>);
}

TEST(direct_view, apply_takes_containers_tuples_and_maps_as_arguments) {
  const std::vector<int> v{1, 2, 3};
  EXPECT_EQ(rc()[0].apply_sync([](const std::vector<int>& x) { return std::accumulate(x.begin(), x.end(), 0); }, v), 6);
  const std::map<std::string, int> m{{"a", 1}, {"b", 2}};
  EXPECT_EQ(rc()[1].apply_sync([](std::map<std::string, int> x) { x["c"] = 3; return x; }, m),
            (std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 3}}));
  const std::tuple<int, std::string, double> t{1, "two", 3.0};
  EXPECT_EQ(rc()[2].apply_sync([](const std::tuple<int, std::string, double>& x) { return std::get<1>(x) + std::to_string(std::get<0>(x)); }, t),
            "two1");
  EXPECT_EQ(rc()[3].apply_sync([](std::string a, std::string b) { return a + b; }, std::string(300, 'x'), std::string("y")),
            std::string(300, 'x') + "y");
}

TEST(direct_view, apply_takes_and_returns_eigen_matrices) {
  Eigen::MatrixXd small(2, 3);
  small << 1, 2, 3, 4, 5, 6;
  auto transpose_twice = [](const Eigen::MatrixXd& m) -> Eigen::MatrixXd { return 2 * m.transpose(); };
  const std::vector<Eigen::MatrixXd> out = rc()[cadre::all].apply_sync(transpose_twice, small);
  ASSERT_EQ(out.size(), 4u);
  for (const auto& r : out) EXPECT_TRUE(r.isApprox(2 * small.transpose())) << r;
  const Eigen::MatrixXd big = Eigen::MatrixXd::Random(300, 200);  // 480 KB: travels outside the ring slots
  EXPECT_TRUE(rc()[1].apply_sync(transpose_twice, big).isApprox(2 * big.transpose()));
}

TEST(direct_view, a_one_megabyte_argument_and_result_travel_outside_the_slots) {
  std::vector<double> v(1 << 17);  // 1 MiB
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  auto reversed = [](std::vector<double> x) {
    std::reverse(x.begin(), x.end());
    return x;
  };
  const auto out = rc()[cadre::all].apply_sync(reversed, v);
  std::vector<double> want(v.rbegin(), v.rend());
  ASSERT_EQ(out.size(), 4u);
  for (const auto& r : out) EXPECT_TRUE(r == want);
}

TEST(direct_view, more_tasks_than_ring_slots_all_complete) {
  std::vector<cadre::AsyncResult<int>> rs;
  for (int i = 0; i < 1000; ++i) rs.push_back(rc()[1].apply_async(twice, i));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(rs[std::size_t(i)].get(), 2 * i);
}

TEST(direct_view, several_threads_can_share_one_client) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &wrong] {
      for (int i = 0; i < 200; ++i)
        if (rc()[t].apply_sync(twice, i) != 2 * i) ++wrong;
      if (rc()[cadre::all].apply_sync(twice, t) != std::vector<int>(4, 2 * t)) ++wrong;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(direct_view, client_wait_in_one_thread_while_another_calls_apply_sync) {
  // EngineView::apply_sync keeps its task on the caller's stack (ClientCore::run) and drains every
  // completion while it waits: Client::wait() in another thread, which takes no handle to that task,
  // must still return only once the tasks it waits for are done.
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::thread caller([&] {
    for (int i = 0; i < 3000; ++i)
      if (rc()[0].apply_sync(twice, i) != 2 * i) ++wrong;
    done = true;
  });
  int waits = 0;
  while (!done) {
    auto ar = rc()[1].apply_async(twice, waits);
    rc().wait();
    EXPECT_TRUE(ar.ready());
    ++waits;
  }
  caller.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(waits, 0);
}

// ---- AsyncResult -----------------------------------------------------------------------------------

TEST(async_result, ready_wait_successful_and_get_may_be_called_several_times) {
  cadre::AsyncResult<std::vector<int>> ar = rc()[slice{1, cadre::end, 2}].apply_async(twice, 1);
  ar.wait();
  EXPECT_TRUE(ar.ready());
  EXPECT_TRUE(ar.successful());
  EXPECT_EQ(ar.get(), (std::vector<int>{2, 2}));
  EXPECT_EQ(ar.get(), (std::vector<int>{2, 2}));
  EXPECT_EQ(ar.get(1s), (std::vector<int>{2, 2}));
  cadre::AsyncResult<std::vector<int>> copy = ar;
  EXPECT_EQ(copy.get(), (std::vector<int>{2, 2}));
  EXPECT_EQ(ar.progress(), 2u);
  EXPECT_EQ(ar.size(), 2u);
}

// The task waits for a gate the test opens only after its checks: it cannot finish in between.
TEST(async_result, get_with_a_timeout_throws_timeout_error_while_the_task_runs) {
  const Gate gate;
  cadre::AsyncResult<int> ar = rc()[0].apply_async(x_once_open, 400, gate.path);
  const auto t0 = std::chrono::steady_clock::now();  // after the submission
  EXPECT_THROW(ar.get(10ms), cadre::timeout_error);
  EXPECT_FALSE(ar.ready());
  EXPECT_FALSE(ar.wait_for(1ms));
  EXPECT_THROW((void)ar.successful(), cadre::error);  // not ready yet
  const double held = seconds_since(t0);
  gate.open();
  EXPECT_EQ(ar.get(30s), 400);  // the task went on
  EXPECT_GE(ar.elapsed(), held);
}

TEST(async_result, timeout_error_says_how_many_tasks_are_done) {
  const Gate gate;  // engine 3 waits for it: its task cannot finish before the gate opens
  auto ar = rc()[cadre::all].apply_async([](const std::string& g) { return cadre::this_engine::id() == 3 ? x_once_open(0, g) : 0; }, gate.path);
  try {
    rc()[slice{0, 3}].apply_sync(twice, 1);  // engines 0..2 are free: their tasks of ar are done
    ar.get(1ms);
    ADD_FAILURE() << "no timeout";
  } catch (const cadre::timeout_error& e) {
    EXPECT_NE(std::string(e.what()).find("3 of 4 tasks done"), std::string::npos) << e.what();
  }
  gate.open();
  EXPECT_EQ(ar.get(), std::vector<int>(4, 0));
}

TEST(async_result, has_one_msg_id_per_engine_and_knows_its_engines) {
  cadre::AsyncResult<std::vector<int>> ar = rc()[cadre::all].apply_async(twice, 2);
  const auto ids = ar.msg_ids();
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(std::set<std::uint64_t>(ids.begin(), ids.end()).size(), 4u);
  EXPECT_EQ(ar.engine_ids(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ((rc()[std::vector<int>{3, 1}].apply_async(twice, 1).engine_ids()), (std::vector<int>{3, 1}));
  ar.wait();
  EXPECT_GT(ar.elapsed(), 0.0);
}

TEST(async_result, wait_interactive_prints_one_summary_line_when_stderr_is_not_a_terminal) {
  cadre::AsyncResult<std::vector<int>> ar = rc()[cadre::all].apply_async(sleep_ms, 30);
  ::testing::internal::CaptureStderr();
  ar.wait_interactive(5ms);
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(ar.ready());
  std::size_t lines = 0;
  for (std::size_t p = 0; (p = out.find("tasks finished", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 1u) << out;
  EXPECT_NE(out.find("4/4 tasks finished"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
}

/// Run under a terminal by draw_progress_in_tmux (CADRE_TEST_PROGRESS_CHILD set; skipped otherwise): a
/// program that waits interactively for a load-balanced map of 64 short tasks on 4 engines.
TEST(async_result_child, waits_interactively_for_a_load_balanced_map) {
  if (!std::getenv("CADRE_TEST_PROGRESS_CHILD")) GTEST_SKIP() << "runs only under the terminal of async_result.wait_interactive_on_a_terminal_*";
  cadre::Cluster c({.engines = 4, .name = unique_name("progress")});
  cadre::Client client = c.client();
  auto amr = client.load_balanced_view().map_async(sleep_ms, std::vector<int>(64, 20), {.chunksize = 1});
  amr.wait_interactive(5ms);
  EXPECT_EQ(amr.get(), std::vector<int>(64, 20));
}

/// What a terminal `columns` wide received (raw) and shows at the end (screen, wrapped lines joined)
/// while async_result_child.waits_interactively_for_a_load_balanced_map ran in it: a tmux session of its
/// own server, removed before returning.
struct TerminalRun {
  std::string raw, screen;
};
TerminalRun draw_progress_in_tmux(int columns) {
  const ScratchDir dir;
  const std::string tmux = "tmux -f /dev/null -S " + dir.path + "/tmux";  // a server of its own, its socket in dir
  const std::string raw_path = dir.path + "/raw";
  // The program waits for a line on its terminal, so that pipe-pane records everything it draws.
  const std::string program = fmt::format(
      "read go; env -u COLUMNS CADRE_TEST_PROGRESS_CHILD=1 {} --gtest_filter=async_result_child.* >/dev/null; echo exit=$?; sleep 60",
      cadre::detail::main_executable_path());
  const auto sh = [](const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); };
  const auto read_all = [](const std::string& cmd_or_path, bool command) {
    std::string out;
    FILE* f = command ? ::popen(cmd_or_path.c_str(), "r") : std::fopen(cmd_or_path.c_str(), "rb");
    if (!f) return out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    command ? ::pclose(f) : std::fclose(f);
    return out;
  };
  TerminalRun run;
  EXPECT_EQ(sh(fmt::format("{} new-session -d -s bar -x {} -y 10 '{}'", tmux, columns, program)), 0) << "tmux could not start";
  EXPECT_EQ(sh(fmt::format("{} pipe-pane -t bar 'cat > {}'", tmux, raw_path)), 0);
  EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(raw_path); }, 5s)) << "pipe-pane did not start";
  EXPECT_EQ(sh(tmux + " send-keys -t bar Enter"), 0);
  EXPECT_TRUE(wait_until([&] { return read_all(raw_path, false).find("exit=") != std::string::npos; }, 60s))
      << "the program did not finish: " << read_all(raw_path, false);
  run.raw = read_all(raw_path, false);
  run.screen = read_all(tmux + " capture-pane -p -J -t bar", true);
  sh(tmux + " kill-server");
  return run;
}

/// The lines drawn: the raw output cut at each \r and \n, less the terminal's control sequences.
std::vector<std::string> drawn_lines(const std::string& raw) {
  std::vector<std::string> lines(1);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' || raw[i] == '\n') {
      lines.emplace_back();
    } else if (raw[i] == '\x1b' && i + 1 < raw.size() && raw[i + 1] == '[') {
      for (i += 2; i < raw.size() && !std::isalpha(static_cast<unsigned char>(raw[i]));) ++i;  // a CSI sequence
    } else {
      lines.back() += raw[i];
    }
  }
  return lines;
}

TEST(async_result, wait_interactive_on_a_terminal_redraws_one_line_that_never_wraps) {
  constexpr int kColumns = 40;
  const TerminalRun run = draw_progress_in_tmux(kColumns);
  EXPECT_NE(run.raw.find("exit=0"), std::string::npos) << run.raw;
  std::size_t draws = 0;
  for (const std::string& line : drawn_lines(run.raw)) {
    EXPECT_LT(line.size(), std::size_t(kColumns)) << "a line as wide as the terminal wraps and breaks the redraw: " << line;
    draws += line.find("tasks finished") != std::string::npos;
  }
  EXPECT_GT(draws, 1u) << "redrawn while the tasks ran: " << run.raw;
  EXPECT_EQ(run.raw.find("4294967295"), std::string::npos) << run.raw;
  // What the terminal shows at the end: one line, the finished count, nothing left of longer lines
  // drawn before it (capture-pane -J joins a wrapped line back into one longer than the terminal).
  std::istringstream screen(run.screen);
  std::size_t finished = 0;
  for (std::string line; std::getline(screen, line);) {
    EXPECT_LE(line.size(), std::size_t(kColumns)) << "wrapped: " << line;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (line.find("tasks finished") == std::string::npos) continue;
    ++finished;
    EXPECT_NE(line.find("64/64 tasks finished after "), std::string::npos) << line;
    EXPECT_TRUE(line.ends_with(" s")) << "residue of an earlier, longer line: " << line;
  }
  EXPECT_EQ(finished, 1u) << run.screen;
}

TEST(async_result, wait_interactive_on_a_wide_terminal_names_each_busy_engine_once_and_never_a_task_not_started) {
  const TerminalRun run = draw_progress_in_tmux(120);
  EXPECT_NE(run.raw.find("exit=0"), std::string::npos) << run.raw;
  EXPECT_EQ(run.raw.find("4294967295"), std::string::npos) << "a load-balanced task no engine took yet has no engine: " << run.raw;
  std::size_t lists = 0;
  for (const std::string& line : drawn_lines(run.raw)) {
    const auto at = line.find("(busy: engine");
    if (at == std::string::npos) continue;
    ++lists;
    std::istringstream in(line.substr(line.find(' ', at + 7) + 1));
    std::vector<int> engines;
    for (int e; in >> e;) {
      engines.push_back(e);
      if (in.peek() == ',') in.get();
    }
    EXPECT_FALSE(engines.empty()) << line;
    EXPECT_TRUE(std::is_sorted(engines.begin(), engines.end()) && std::adjacent_find(engines.begin(), engines.end()) == engines.end()) << line;
    for (int e : engines) EXPECT_TRUE(e >= 0 && e < 4) << line;
  }
  EXPECT_GT(lists, 0u) << "no line named the engines at work: " << run.raw;
}

// BUG (async_result.hpp: ready(), progress() and size() are noexcept but call state(), which throws for
// a default-constructed AsyncResult): the documented cadre::error becomes std::terminate. Run in a
// child so the abort fails this test instead of the whole binary.
TEST(async_result, an_empty_result_reports_an_error_instead_of_terminating) {
  const ChildResult r = run_in_child([] {
    cadre::AsyncResult<int> empty;
    try {
      (void)empty.ready();
    } catch (const cadre::error&) {
      return 0;
    }
    return 1;
  });
  EXPECT_TRUE(r.exited && r.code == 0) << "child ended by signal " << r.signal << " / code " << r.code;
}

TEST(async_result, an_empty_result_throws_from_get_and_wait) {
  cadre::AsyncResult<int> empty;
  EXPECT_THROW(empty.wait(), cadre::error);
  EXPECT_THROW((void)empty.msg_ids(), cadre::error);
}

// ---- view.block -------------------------------------------------------------------------------------

TEST(blocking_view, apply_execute_and_push_return_ready_results) {
  cadre::DirectView v = rc()[cadre::all];
  v.block = true;
  auto a = v.apply(sleep_ms, 20);
  EXPECT_TRUE(a.ready());
  EXPECT_EQ(a.get(), std::vector<int>(4, 20));
  auto e = v.execute([](cadre::Namespace& ns) { ns.set("blocked", 1); });
  EXPECT_TRUE(e.ready());
  auto p = v.push("blocked_push", std::vector<int>(1000, 3));
  EXPECT_TRUE(p.ready());
  auto x = v.erase("blocked_push");
  EXPECT_TRUE(x.ready());
  cadre::DirectView nonblocking = rc()[cadre::all];
  EXPECT_FALSE(nonblocking.block);
}

TEST(blocking_view, errors_are_rethrown_by_the_call_itself) {
  cadre::EngineView e = rc()[1];
  e.block = true;
  EXPECT_THROW(e.apply([] { throw std::runtime_error("blocked boom"); }), cadre::remote_error);
  cadre::DirectView v = rc()[cadre::all];
  v.block = true;
  EXPECT_THROW(v.apply([] { throw std::runtime_error("blocked boom"); }), cadre::composite_error);
  EXPECT_THROW(v.execute([](cadre::Namespace& ns) { (void)ns.get<int>("never-pushed-anywhere"); }), cadre::composite_error);
}

// ---- push / pull ------------------------------------------------------------------------------------

TEST(push_pull, item_assignment_pushes_to_every_engine_and_pull_returns_each_value) {
  cadre::DirectView all = rc()[cadre::all];
  all["pp_a"] = 5;
  EXPECT_EQ(all.pull<int>("pp_a"), (std::vector<int>{5, 5, 5, 5}));
  rc()[0]["pp_a"] = 9;
  EXPECT_EQ(all.pull<int>("pp_a"), (std::vector<int>{9, 5, 5, 5}));
  EXPECT_EQ(rc()[0].pull<int>("pp_a"), 9);
  EXPECT_EQ(rc()[0]["pp_a"].get<int>(), 9);
  EXPECT_EQ(all["pp_a"].get<int>(), (std::vector<int>{9, 5, 5, 5}));
}

TEST(push_pull, strings_round_trip) {
  cadre::DirectView all = rc()[cadre::all];
  all["pp_s"] = "hi";
  EXPECT_EQ(all.pull<std::string>("pp_s"), std::vector<std::string>(4, "hi"));
  const std::string longer(5000, 'q');
  rc()[2].push("pp_s", longer).get();
  EXPECT_EQ(rc()[2].pull<std::string>("pp_s"), longer);
}

TEST(push_pull, small_and_ten_megabyte_vectors_round_trip) {
  cadre::DirectView all = rc()[cadre::all];
  all.push("pp_small", std::vector<int>{1, 2, 3}).get();
  EXPECT_EQ(all.pull<std::vector<int>>("pp_small"), std::vector<std::vector<int>>(4, {1, 2, 3}));
  std::vector<double> big(10 << 17);  // 10 MiB
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = double(i) * 0.5;
  all.push("pp_big", big).get();
  const auto back = all.pull<std::vector<double>>("pp_big");
  ASSERT_EQ(back.size(), 4u);
  for (const auto& b : back) EXPECT_TRUE(b == big);
  EXPECT_EQ(rc()[3].apply_sync([](cadre::Namespace& ns) { return ns.view<std::vector<double>>("pp_big")[12345]; }), 12345 * 0.5);
  all.erase("pp_big").get();
}

TEST(push_pull, eigen_matrices_round_trip) {
  const Eigen::MatrixXd m = Eigen::MatrixXd::Random(4, 3);
  const Eigen::MatrixXd big = Eigen::MatrixXd::Random(500, 300);  // 1.2 MB: kept in the segment
  cadre::DirectView all = rc()[cadre::all];
  all.push("pp_m", m).get();
  all.push("pp_mbig", big).get();
  const auto small_back = all.pull<Eigen::MatrixXd>("pp_m"), big_back = all.pull<Eigen::MatrixXd>("pp_mbig");
  ASSERT_EQ(small_back.size(), 4u);
  ASSERT_EQ(big_back.size(), 4u);
  for (const auto& r : small_back) EXPECT_EQ(r, m);
  for (const auto& r : big_back) EXPECT_EQ(r, big);
  EXPECT_DOUBLE_EQ(rc()[1].apply_sync([](cadre::Namespace& ns) { return ns.view<Eigen::MatrixXd>("pp_mbig")(499, 299); }), big(499, 299));
  all.erase("pp_mbig").get();
}

TEST(push_pull, pulling_the_wrong_type_throws_type_error_naming_both_types) {
  rc()[cadre::all]["pp_t"] = 42;
  try {
    (void)rc()[1].pull<std::string>("pp_t");
    ADD_FAILURE() << "no type_error";
  } catch (const cadre::type_error& e) {
    const std::string w = e.what();
    EXPECT_EQ(e.stored(), cadre::type_name<int>());
    EXPECT_EQ(e.requested(), cadre::type_name<std::string>());
    EXPECT_NE(w.find(cadre::type_name<int>()), std::string::npos) << w;
    EXPECT_NE(w.find(cadre::type_name<std::string>()), std::string::npos) << w;
    EXPECT_NE(w.find("pp_t"), std::string::npos) << w;
    EXPECT_NE(w.find("engine 1"), std::string::npos) << w;
  }
  EXPECT_THROW((void)rc()[cadre::all].pull<double>("pp_t"), cadre::type_error);  // data calls rethrow the first error
}

TEST(push_pull, pulling_a_missing_name_throws_name_error_naming_the_engine) {
  try {
    (void)rc()[2].pull<int>("pp_never_pushed");
    ADD_FAILURE() << "no name_error";
  } catch (const cadre::name_error& e) {
    EXPECT_EQ(e.engine_id(), 2);
    EXPECT_EQ(e.name(), "pp_never_pushed");
    EXPECT_NE(std::string(e.what()).find("engine 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pp_never_pushed"), std::string::npos) << e.what();
  }
  rc()[0]["pp_only_on_0"] = 1;
  try {
    (void)rc()[cadre::all].pull<int>("pp_only_on_0");
    ADD_FAILURE() << "no name_error";
  } catch (const cadre::name_error& e) {
    EXPECT_EQ(e.engine_id(), 1);  // the first engine that lacks it
  }
}

TEST(push_pull, erase_then_pull_throws_name_error) {
  cadre::DirectView all = rc()[cadre::all];
  all["pp_e"] = 3;
  EXPECT_EQ(all.pull<int>("pp_e"), std::vector<int>(4, 3));
  all.erase("pp_e");
  EXPECT_THROW((void)all.pull<int>("pp_e"), cadre::name_error);
  all.erase("pp_e").get();  // absent names are ignored
}

TEST(push_pull, pushing_another_type_under_a_name_replaces_the_value_and_its_type) {
  cadre::EngineView e = rc()[3];
  e["pp_retype"] = 1;
  e.push("pp_retype", std::string("now a string")).get();
  EXPECT_EQ(e.pull<std::string>("pp_retype"), "now a string");
  EXPECT_THROW((void)e.pull<int>("pp_retype"), cadre::type_error);
}

TEST(push_pull, execute_counts_calls_in_each_namespace) {
  cadre::DirectView all = rc()[cadre::all];
  all.erase("calls");
  all.execute(count_calls);
  all.execute(count_calls).get();
  rc()[2].execute(count_calls).get();
  EXPECT_EQ(all.pull<int>("calls"), (std::vector<int>{2, 2, 3, 2}));
}

/// True when p lies in this process's mapping of a cadre segment (/dev/shm/cadre-...).
bool in_a_mapped_segment(const void* p) {
  std::FILE* f = std::fopen("/proc/self/maps", "r");
  if (!f) return false;
  char line[1024];
  bool found = false;
  while (!found && std::fgets(line, sizeof line, f)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx", &lo, &hi) == 2 && std::strstr(line, "/dev/shm/cadre-"))
      found = reinterpret_cast<std::uintptr_t>(p) >= lo && reinterpret_cast<std::uintptr_t>(p) < hi;
  }
  std::fclose(f);
  return found;
}

TEST(push_pull, namespace_view_of_a_vector_is_a_span_over_the_stored_bytes) {
  cadre::DirectView all = rc()[cadre::all];
  all.push("pp_v_small", iota_vector(10)).get();
  all.push("pp_v_big", iota_vector(100000)).get();  // 400 KB: a segment block
  // (same pointer on every call, aligned, in the shared segment, sum of the elements)
  using Seen = std::tuple<bool, bool, bool, long long>;
  auto in_place = [](cadre::Namespace& ns, const std::string& name) {
    auto s = ns.view<std::vector<int>>(name);
    static_assert(std::is_same_v<decltype(s), std::span<const int>>);
    const bool same_again = ns.view<std::vector<int>>(name).data() == s.data();
    const bool aligned = reinterpret_cast<std::uintptr_t>(s.data()) % alignof(int) == 0;
    return Seen{same_again, aligned, in_a_mapped_segment(s.data()), std::accumulate(s.begin(), s.end(), 0LL)};
  };
  const Seen small = rc()[1].apply_sync(in_place, std::string("pp_v_small"));
  EXPECT_TRUE(std::get<0>(small) && std::get<1>(small));
  EXPECT_EQ(std::get<3>(small), 45);
  EXPECT_EQ(rc()[3].apply_sync(in_place, std::string("pp_v_big")), (Seen{true, true, true, 99999LL * 100000 / 2}));
  EXPECT_NE(rc()[3].apply_sync([](cadre::Namespace& ns) { return cadre::detail::NamespaceAccess::locate(ns, "pp_v_big").block; }), 0u);
  all.erase("pp_v_big").get();
}

TEST(push_pull, names_lists_each_engines_names) {
  rc()[cadre::all].erase("pp_n").get();
  rc()[0]["pp_n"] = 1;
  const std::vector<std::string> n0 = rc()[0].names();
  EXPECT_NE(std::find(n0.begin(), n0.end(), "pp_n"), n0.end());
  const std::vector<std::vector<std::string>> n = rc()[slice{0, 2}].names();
  ASSERT_EQ(n.size(), 2u);
  EXPECT_NE(std::find(n[0].begin(), n[0].end(), "pp_n"), n[0].end());
  EXPECT_EQ(std::find(n[1].begin(), n[1].end(), "pp_n"), n[1].end());
}

TEST(push_pull, invalid_namespace_names_throw_argument_error) {
  EXPECT_THROW(rc()[0].push("", 1), cadre::argument_error);
  EXPECT_THROW(rc()[0].push(std::string(129, 'n'), 1), cadre::argument_error);
  EXPECT_THROW((void)rc()[0].pull<int>(""), cadre::argument_error);
  rc()[0].push(std::string(128, 'n'), 1).get();
  EXPECT_EQ(rc()[0].pull<int>(std::string(128, 'n')), 1);
}

TEST(push_pull, a_pulled_large_value_survives_the_engine_overwriting_it_before_get) {
  cadre::EngineView e = rc()[2];
  e.push("pp_pin", std::vector<int>(50000, 1)).get();
  auto first = e.pull_async<std::vector<int>>("pp_pin");
  first.wait();
  e.push("pp_pin", std::vector<int>(50000, 2)).get();
  e.erase("pp_pin").get();
  e.push("pp_pin2", std::vector<int>(50000, 3)).get();  // may land on freed pages: not on the pinned ones
  EXPECT_EQ(first.get(), std::vector<int>(50000, 1));
  e.erase("pp_pin2").get();
}

TEST(push_pull, large_values_give_their_pages_back_when_erased_and_read) {
  auto& seg = *rc().segment();
  cadre::DirectView all = rc()[cadre::all];
  rc().wait();
  const std::uint64_t before = seg.used_bytes();
  all.push("pp_pages", std::vector<char>(3 << 20, 'p')).get();
  EXPECT_GE(seg.used_bytes(), before + 4 * (3u << 20));
  const auto pages = all.pull<std::vector<char>>("pp_pages");
  ASSERT_EQ(pages.size(), 4u);
  for (const auto& v : pages) EXPECT_EQ(v.size(), 3u << 20);
  (void)all.apply_sync([](const std::vector<char>& v) { return v; }, std::vector<char>(1 << 20, 'a'));
  all.erase("pp_pages").get();
  EXPECT_TRUE(wait_until([&] { return seg.used_bytes() == before; }, 5s)) << seg.used_bytes() << " vs " << before;
}

// Large results are read where the engine left them: the client keeps a pin on the block instead of
// copying it out (a regression test: the pin once lived in a shared_ptr whose null pointer read as
// "nothing held", so every large result was copied).
TEST(push_pull, a_large_result_is_read_in_place_from_the_segment) {
  cadre::EngineView e = rc()[1];
  e.push("pp_inplace", std::vector<double>(1 << 17, 4.0)).get();
  auto pulled = e.pull_async<std::vector<double>>("pp_inplace");
  pulled.wait();
  const auto& seg = *rc().segment();
  const std::byte* p = cadre::detail::ResultAccess::tasks(pulled).at(0)->bytes.data();
  EXPECT_TRUE(p >= seg.base() && p < seg.base() + seg.size()) << "the result was copied out of the segment";
  EXPECT_EQ(pulled.get(), std::vector<double>(1 << 17, 4.0));
  e.erase("pp_inplace").get();
}

// ---- Namespace on its own (no segment) ----------------------------------------------------------

TEST(namespace_object, set_get_view_erase_without_a_segment) {
  cadre::Namespace ns;
  ns.set("i", 3);
  ns.set("v", std::vector<double>(100000, 2.5));
  EXPECT_TRUE(ns.contains("i"));
  EXPECT_EQ(ns.get<int>("i"), 3);
  EXPECT_EQ(ns.view<std::vector<double>>("v").size(), 100000u);
  EXPECT_EQ(ns.type_of("v"), cadre::type_name<std::vector<double>>());
  EXPECT_EQ(ns.names(), (std::vector<std::string>{"i", "v"}));
  EXPECT_THROW((void)ns.get<std::string>("i"), cadre::type_error);
  EXPECT_THROW((void)ns.get<int>("nope"), cadre::name_error);
  EXPECT_TRUE(ns.erase("i"));
  EXPECT_FALSE(ns.erase("i"));
  EXPECT_FALSE(ns.contains("i"));
}

TEST(namespace_object, allocate_stores_a_writable_array_of_the_given_shape) {
  cadre::Namespace ns;
  auto m = ns.allocate<Eigen::MatrixXd>("m", 3, 2);
  static_assert(std::is_same_v<decltype(m), Eigen::Map<Eigen::MatrixXd>>);
  m << 1, 2, 3, 4, 5, 6;
  EXPECT_EQ(ns.get<Eigen::MatrixXd>("m"), m);
  EXPECT_EQ(ns.view<Eigen::MatrixXd>("m").data(), m.data()) << "the view reads where allocate wrote";
  auto v = ns.allocate<std::vector<int>>("v", 5);
  static_assert(std::is_same_v<decltype(v), std::span<int>>);
  std::iota(v.begin(), v.end(), 10);
  EXPECT_EQ(ns.get<std::vector<int>>("v"), (std::vector<int>{10, 11, 12, 13, 14}));
  EXPECT_TRUE(ns.allocate<std::vector<int>>("v", 0).empty());  // replaces, like set
  EXPECT_EQ(ns.get<std::vector<int>>("v"), std::vector<int>{});
  auto f = ns.allocate<Eigen::Matrix2f>("f", 2, 2);
  f.setIdentity();
  EXPECT_EQ(ns.get<Eigen::Matrix2f>("f"), Eigen::Matrix2f::Identity());
  EXPECT_THROW((void)ns.allocate<Eigen::Matrix2f>("f", 3, 2), cadre::argument_error);
  EXPECT_THROW((void)ns.allocate<std::vector<int>>("v", 4, 2), cadre::argument_error);
  EXPECT_THROW((void)ns.allocate<Eigen::MatrixXd>("m", std::size_t(1) << 62, 4), cadre::argument_error);
  EXPECT_THROW((void)ns.allocate<Eigen::MatrixXd>("m", ~std::size_t(0), 0), cadre::argument_error);
  EXPECT_THROW((void)(ns.allocate<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, 4, 4>>("b", 5, 1)), cadre::argument_error);
  EXPECT_EQ(ns.get<Eigen::MatrixXd>("m"), m) << "a refused allocate leaves the old value";
}

TEST(push_pull, a_result_allocated_in_the_segment_is_gathered_from_where_the_engine_wrote_it) {
  cadre::DirectView all = rc()[cadre::all];
  const auto where = all.apply_sync([](cadre::Namespace& ns) {
    auto c = ns.allocate<Eigen::MatrixXd>("pp_alloc", 300, 40);  // 96 KB: a segment block
    c.setConstant(double(ns.engine_id()));
    return std::vector<long>{long(in_a_mapped_segment(c.data())), long(cadre::detail::NamespaceAccess::locate(ns, "pp_alloc").block != 0)};
  });
  ASSERT_EQ(all.size(), 4u);
  ASSERT_EQ(where.size(), 4u);
  for (const auto& w : where) EXPECT_EQ(w, (std::vector<long>{1, 1}));
  const Eigen::MatrixXd g = all.gather<Eigen::MatrixXd>("pp_alloc");
  ASSERT_EQ(g.rows(), 300 * Eigen::Index(all.size()));
  for (Eigen::Index e = 0; e < Eigen::Index(all.size()); ++e)
    EXPECT_TRUE((g.middleRows(e * 300, 300).array() == double(all.targets()[std::size_t(e)])).all()) << "block " << e;
  // A large push is written straight into each engine's block: the same value arrives everywhere.
  const Eigen::MatrixXd big = Eigen::MatrixXd::Random(500, 300);
  all.push("pp_big", big).get();
  const auto big_back = all.pull<Eigen::MatrixXd>("pp_big");
  ASSERT_EQ(big_back.size(), 4u);
  for (const auto& m : big_back) EXPECT_EQ(m, big);
  const std::array<double, 20000> arr{1.5, 2.5};
  all.push("pp_arr", arr).get();
  EXPECT_EQ((rc()[2].pull<std::array<double, 20000>>("pp_arr")), arr);
  all.erase("pp_alloc").get();
  all.erase("pp_big").get();
  all.erase("pp_arr").get();
}

// ---- Cluster lifecycle -------------------------------------------------------------------------------

TEST(cluster, destroying_it_removes_the_segment_and_ends_the_engines) {
  const std::string name = unique_name("life");
  std::vector<pid_t> pids;
  {
    cadre::Cluster c({.engines = 2, .name = name});
    EXPECT_EQ(c.name(), name);
    EXPECT_EQ(c.size(), 2);
    EXPECT_TRUE(shm_exists(name));
    pids = c.pids();
    cadre::Client client = c.client();
    EXPECT_EQ(client[cadre::all].apply_sync(::getpid), pids);
    EXPECT_EQ(c.restarts(0), 0u);
  }
  EXPECT_FALSE(shm_exists(name));
  for (pid_t p : pids) EXPECT_TRUE(wait_until([&] { return pid_gone(p); }, 5s)) << p;
}

TEST(cluster, destroying_it_while_an_engine_spins_forever_finishes_within_seconds) {
  const std::string name = unique_name("busy");
  std::vector<pid_t> pids;
  auto t0 = std::chrono::steady_clock::now();
  {
    cadre::Cluster c({.engines = 2, .name = name});
    pids = c.pids();
    cadre::Client client = c.client();
    auto forever = client[1].apply_async([] {
      for (;;) asm volatile("" ::: "memory");
    });
    EXPECT_FALSE(forever.wait_for(50ms));
    t0 = std::chrono::steady_clock::now();
  }
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_FALSE(shm_exists(name));
  for (pid_t p : pids) EXPECT_TRUE(wait_until([&] { return pid_gone(p); }, 5s)) << p;
}

TEST(cluster, a_client_that_outlives_its_cluster_fails_fast_with_engine_error) {
  std::optional<cadre::Client> client;
  {
    cadre::Cluster c({.engines = 1, .name = unique_name("outlive")});
    client.emplace(c.client());
    EXPECT_EQ((*client)[0].apply_sync(twice, 1), 2);
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW((*client)[0].apply_sync(twice, 1), cadre::engine_error);
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST(cluster, after_its_launcher_is_killed_the_engines_stop_clients_are_refused_and_the_name_can_be_used_again) {
  const std::string name = unique_name("orphan");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t launcher = ::fork();
  if (launcher == 0) {
    ::close(fds[0]);
    try {
      cadre::Cluster c({.engines = 2, .name = name});
      const std::vector<pid_t> pids = c.pids();
      if (::write(fds[1], pids.data(), pids.size() * sizeof(pid_t)) < 0) ::_exit(2);
      for (;;) ::pause();  // until SIGKILL: no destructor runs
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(fds[1]);
  pid_t pids[2] = {0, 0};
  const ssize_t got = ::read(fds[0], pids, sizeof pids);
  ::close(fds[0]);
  ASSERT_EQ(::kill(launcher, SIGKILL), 0);
  ::waitpid(launcher, nullptr, 0);
  ASSERT_EQ(got, ssize_t(sizeof pids)) << "the launcher did not start its cluster";
  EXPECT_TRUE(shm_exists(name));  // nobody removed it
  for (pid_t p : pids) EXPECT_TRUE(wait_until([&] { return !cadre::detail::process_alive(p); }, 10s)) << "engine " << p << " outlived its launcher";
  // A client refuses the stale cluster at once, with the way out, instead of failing every task.
  try {
    const cadre::Client stale{name};
    ADD_FAILURE() << "a client attached to a cluster whose launcher is dead";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("stale"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cadre stop --name " + name), std::string::npos) << e.what();
  }
  cadre::Cluster again({.engines = 1, .name = name});  // the stale segment is replaced
  EXPECT_EQ(again.client()[0].apply_sync(twice, 4), 8);
}

TEST(cluster, zero_engines_means_one_per_cpu) {
  cadre::Cluster c({.name = unique_name("percpu")});
  EXPECT_EQ(c.size(), int(cadre::detail::usable_cpus()));
  EXPECT_EQ(c.client()[cadre::all].apply_sync(twice, 1).size(), std::size_t(c.size()));
}

TEST(cluster, connecting_to_a_missing_cluster_says_how_to_start_one) {
  try {
    cadre::Client c{"no-such-cluster"};
    ADD_FAILURE() << "connected";
  } catch (const cadre::connection_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("no-such-cluster"), std::string::npos) << w;
    EXPECT_NE(w.find("cadre start"), std::string::npos) << w;
  }
}

TEST(cluster, a_second_cluster_with_the_same_name_throws_connection_error) {
  const std::string name = unique_name("twice");
  cadre::Cluster first({.engines = 1, .name = name});
  try {
    cadre::Cluster second({.engines = 1, .name = name});
    ADD_FAILURE() << "second cluster started";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  EXPECT_TRUE(shm_exists(name));  // the failed attempt did not remove the running cluster's segment
  EXPECT_EQ(first.client()[0].apply_sync(twice, 2), 4);
}

TEST(cluster, invalid_names_throw_argument_error) {
  for (const std::string& bad : {std::string("a/b"), std::string(300, 'x'), std::string(".hidden"), std::string("sp ace")})
    EXPECT_THROW(cadre::Cluster({.engines = 1, .name = bad}), cadre::argument_error) << bad;
  for (const std::string& bad : {std::string(""), std::string("a/b"), std::string(300, 'x')})
    EXPECT_THROW(cadre::Client{bad}, cadre::argument_error) << bad;
}

// Every error cadre throws is a cadre::error; a bad cluster name says what is wrong with it and
// which names are allowed, wherever it comes from.
TEST(cluster, an_invalid_name_is_a_cadre_error_saying_what_is_wrong_and_which_names_are_allowed) {
  struct Case {
    std::string name, wrong;
  };
  const std::vector<Case> cases = {{"", "it is empty"},
                                   {"a/b", "it contains '/'"},
                                   {std::string(65, 'x'), "it is 65 characters long"},
                                   {".hidden", "it starts with '.'"},
                                   {"sp ace", "it contains ' '"},
                                   {std::string("a\0b", 3), "it contains byte 0x00"}};
  const std::string allowed = "a cluster name is 1 to 64 characters from A-Z a-z 0-9 _ - .";
  auto check = [&](const std::string& what, const std::string& wrong, const std::function<void()>& make) {
    try {
      make();
      ADD_FAILURE() << what << ": accepted";
    } catch (const cadre::error& e) {
      EXPECT_NE(std::string(e.what()).find(wrong), std::string::npos) << what << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(allowed), std::string::npos) << what << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": not a cadre::error: " << e.what();
    }
  };
  for (const auto& c : cases) {
    if (!c.name.empty())  // an empty ClusterOptions::name asks for a unique one
      check("Cluster '" + c.name + "'", c.wrong, [&] { cadre::Cluster cl({.engines = 1, .name = c.name}); });
    check("Client '" + c.name + "'", c.wrong, [&] { cadre::Client cl{c.name}; });
  }
  struct Env {  // $CADRE_CLUSTER as it was, whatever the test does
    std::optional<std::string> old;
    Env() {
      if (const char* e = std::getenv("CADRE_CLUSTER")) old = e;
      ::setenv("CADRE_CLUSTER", "no/slashes", 1);
    }
    ~Env() { old ? (void)::setenv("CADRE_CLUSTER", old->c_str(), 1) : (void)::unsetenv("CADRE_CLUSTER"); }
  };
  {
    Env env;
    check("Client() with $CADRE_CLUSTER=no/slashes", "$CADRE_CLUSTER: invalid cluster name 'no/slashes': it contains '/'",
          [] { cadre::Client cl; });
  }
}

TEST(cluster, engine_counts_out_of_range_throw_argument_error) {
  EXPECT_THROW(cadre::Cluster({.engines = -1, .name = unique_name("neg")}), cadre::argument_error);
  EXPECT_THROW(cadre::Cluster({.engines = 100000, .name = unique_name("many")}), cadre::argument_error);
}

// A program whose main() forgets cadre::init() runs main() again in each engine; if those copies could
// start clusters, each would start more copies of itself (a fork bomb). They are refused instead.
TEST(cluster, a_process_started_as_an_engine_without_init_cannot_start_a_cluster) {
  struct AsIfAnEngine {  // unset again whatever the test does
    AsIfAnEngine() { ::setenv("CADRE_ENGINE_CLUSTER", "parent-of-this-test", 1); }
    ~AsIfAnEngine() { ::unsetenv("CADRE_ENGINE_CLUSTER"); }
  };
  std::optional<AsIfAnEngine> as_if(std::in_place);
  try {
    cadre::Cluster c({.engines = 1, .name = unique_name("copy")});
    ADD_FAILURE() << "started";
  } catch (const cadre::error& e) {
    EXPECT_NE(std::string(e.what()).find("did not call cadre::init(argc, argv)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("parent-of-this-test"), std::string::npos) << e.what();
  }
  as_if.reset();
  cadre::Cluster fine({.engines = 1, .name = unique_name("fine")});
  EXPECT_EQ(fine.client()[0].apply_sync(::getpid), fine.pids()[0]);
}

TEST(cluster, a_tiny_segment_is_invalid_and_a_huge_one_is_a_capacity_error) {
  const std::string tiny = unique_name("tiny");
  try {
    cadre::Cluster c({.engines = 1, .name = tiny, .segment_size = 1024});
    ADD_FAILURE() << "started";
  } catch (const cadre::argument_error& e) {
    EXPECT_NE(std::string(e.what()).find("too small"), std::string::npos) << e.what();
  }
  const std::string huge = unique_name("huge");
  try {
    cadre::Cluster c({.engines = 1, .name = huge, .segment_size = 1ull << 50});
    ADD_FAILURE() << "started";
  } catch (const cadre::capacity_error& e) {
    EXPECT_NE(std::string(e.what()).find("1024.0 TiB"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(shm_exists(tiny));
  EXPECT_FALSE(shm_exists(huge));
}

// The minimum size a too-small error suggests is one Segment::create accepts.
TEST(cluster, the_minimum_segment_size_a_too_small_error_suggests_is_accepted) {
  std::string msg;
  try {
    cadre::Cluster c({.engines = 1, .name = unique_name("tiny2"), .segment_size = 1024});
  } catch (const cadre::argument_error& e) {
    msg = e.what();
  }
  // The control area of even one engine (rings alone: 8 × 64 KiB) is larger than 256 KiB.
  EXPECT_EQ(msg.find("use at least 256.0 KiB"), std::string::npos) << msg;
  const auto at = msg.find("use at least ");
  ASSERT_NE(at, std::string::npos) << msg;
  double amount = 0;
  char unit[8] = {};
  ASSERT_EQ(std::sscanf(msg.c_str() + at + 13, "%lf %7s", &amount, unit), 2) << msg;
  const std::string u = unit;
  const double scale = u == "KiB" ? 1024.0 : u == "MiB" ? 1048576.0 : u == "GiB" ? 1073741824.0 : 1.0;
  const std::uint64_t control = 2 * cadre::detail::kMaxClients * sizeof(cadre::detail::RingStorage);
  cadre::detail::SegmentConfig cfg;
  cfg.cluster = unique_name("tiny3");
  cfg.engines = 1;
  cfg.size = std::uint64_t(amount * scale);  // what the message suggests
  EXPECT_GT(cfg.size, control) << msg;
  EXPECT_NO_THROW(cadre::detail::Segment::create(cfg)) << msg;
  cadre::detail::Segment::remove(cfg.cluster);
}

TEST(cluster, an_engine_program_that_is_not_an_engine_fails_at_start_up) {
  const std::string name = unique_name("bintrue");
  const auto t0 = std::chrono::steady_clock::now();
  try {
    cadre::Cluster c({.engines = 2, .name = name, .engine = "/bin/true"});
    ADD_FAILURE() << "started";
  } catch (const cadre::error& e) {
    EXPECT_NE(std::string(e.what()).find("start-up"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/bin/true"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(t0), 8.0);
  EXPECT_FALSE(shm_exists(name));
}

TEST(cluster, an_engine_program_that_cannot_run_throws_argument_error) {
  EXPECT_THROW(cadre::Cluster({.engines = 1, .name = unique_name("noexec"), .engine = "/no/such/engine"}), cadre::argument_error);
}

// BUG (cluster.hpp, Cluster::start → stop()): when spawn(i) throws after engines 0..i-1 were spawned,
// the monitor thread has not been started yet, so nobody reaps them and stop() loops forever in
// `while (alive_count() > 0)`. Triggered here by an unopenable log file for engine 1. Runs in a child
// process so the hang fails this test instead of the suite.
TEST(cluster, a_failure_to_start_the_second_engine_does_not_hang) {
  const std::string name = unique_name("halfstart");
  ScratchDir logs;
  const std::string dir = logs.path;
  ASSERT_EQ(::mkdir((dir + "/engine-1.log").c_str(), 0700), 0);  // engine 1's log cannot be opened for writing
  const ChildResult r = run_in_child(
      [&] {
        try {
          cadre::Cluster c({.engines = 2, .name = name, .log_dir = dir});
        } catch (const cadre::error& e) {
          return std::string(e.what()).find("engine-1.log") != std::string::npos ? 0 : 2;
        }
        return 1;
      },
      10s);
  EXPECT_FALSE(r.timed_out) << "Cluster construction hung after a failed spawn";
  EXPECT_TRUE(r.exited && r.code == 0) << r.code << " / signal " << r.signal;
  cadre::detail::Segment::remove(name);  // what the hung child could not remove
}

TEST(cluster, engine_output_goes_to_the_log_dir_when_one_is_given) {
  ScratchDir logs;
  const std::string dir = logs.path;
  {
    cadre::Cluster c({.engines = 1, .name = unique_name("logs"), .log_dir = dir});
    c.client()[0].apply_sync([] {
      std::printf("to the log %d\n", 42);
      std::fflush(stdout);
    });
  }
  std::FILE* f = std::fopen((dir + "/engine-0.log").c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[256] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  EXPECT_NE(std::string(buf, n).find("to the log 42"), std::string::npos) << std::string(buf, n);
}

// ---- capacity ------------------------------------------------------------------------------------------

TEST(capacity, a_value_larger_than_the_segment_is_a_capacity_error_and_the_cluster_goes_on) {
  cadre::Cluster c({.engines = 2, .name = unique_name("cap"), .segment_size = 64 << 20});
  cadre::Client client = c.client();
  cadre::DirectView all = client[cadre::all];
  {
    const std::vector<std::uint8_t> huge(200 << 20, 7);
    try {
      all.push("huge", huge);
      ADD_FAILURE() << "200 MB fit in a 64 MiB segment";
    } catch (const cadre::capacity_error& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find("segment"), std::string::npos) << w;
      EXPECT_NE(w.find("segment_size"), std::string::npos) << w;
      EXPECT_NE(w.find("MiB"), std::string::npos) << w;
    }
    EXPECT_THROW(client[0].apply_sync([](const std::vector<std::uint8_t>& v) { return v.size(); }, huge), cadre::capacity_error);
  }
  all["small"] = 11;
  EXPECT_EQ(all.pull<int>("small"), (std::vector<int>{11, 11}));
  all.push("medium", std::vector<double>(1 << 20, 1.0)).get();  // 8 MiB still fits
  EXPECT_EQ(client[1].pull<std::vector<double>>("medium").size(), 1u << 20);
}

// A regression test. When the engine cannot allocate a block for a large result, it replaces the
// result with a capacity_error payload that must still fit the ring slot. It once wrote a ~300-byte
// message inline, past the slot's 192 bytes and into the next record's header (Engine::complete now
// truncates it), and the client reported "a corrupt error record" instead of capacity_error.
TEST(capacity, a_result_too_large_for_the_segment_is_a_capacity_error_from_the_engine) {
  cadre::Cluster c({.engines = 1, .name = unique_name("capres"), .segment_size = 64 << 20});
  cadre::Client client = c.client();
  try {
    (void)client[0].apply_sync([](int mb) { return std::vector<char>(std::size_t(mb) << 20, 'r'); }, 100);
    ADD_FAILURE() << "100 MB result fit";
  } catch (const cadre::capacity_error& e) {
    EXPECT_NE(std::string(e.what()).find("segment"), std::string::npos) << e.what();
  }
  EXPECT_EQ(client[0].apply_sync(twice, 8), 16);
}

// try_send() throws capacity_error when a record too big for a slot cannot get a block: the task it
// was for must not stay pending (outstanding() would never reach 0 and Client::wait() would hang).
TEST(capacity, a_send_that_fails_for_capacity_leaves_no_task_outstanding) {
  cadre::Cluster c({.engines = 1, .name = unique_name("capsend"), .segment_size = 64 << 20});
  cadre::Client client = c.client();
  EXPECT_THROW(client[0].apply_sync([](const std::vector<std::uint8_t>& v) { return v.size(); }, std::vector<std::uint8_t>(100 << 20)),
               cadre::capacity_error);
  EXPECT_EQ(client[0].apply_sync(twice, 1), 2);
  EXPECT_EQ(client.outstanding(), 0u);
  // Were it still pending, Client::wait() would hang: bound it (the thread owns copies of what it uses).
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread waiter([client, done] {
    client.wait();
    *done = true;
  });
  EXPECT_TRUE(wait_until([&] { return done->load(); }, 3s)) << "Client::wait() hangs on the task that was never sent";
  if (done->load()) waiter.join();
  else waiter.detach();  // it ends when the cluster stops below and fails the task
}

// CADRE_PROJECT_VERSION is CMakeLists.txt's project(VERSION), passed by the build: the header the
// tests include is the one generated from it, not a stale or installed copy.
TEST(version, is_the_cmake_project_version) {
  EXPECT_STREQ(cadre::version(), CADRE_PROJECT_VERSION);
  EXPECT_EQ(std::to_string(CADRE_VERSION_MAJOR) + "." + std::to_string(CADRE_VERSION_MINOR) + "." +
                std::to_string(CADRE_VERSION_PATCH),
            CADRE_PROJECT_VERSION);
  EXPECT_EQ(CADRE_VERSION, CADRE_VERSION_MAJOR * 10000 + CADRE_VERSION_MINOR * 100 + CADRE_VERSION_PATCH);
}

}  // namespace
