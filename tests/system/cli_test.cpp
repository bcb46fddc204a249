// tests/cli_test.cpp — the `cadre` command line, driven as a user would, with real processes.
//
// The binaries come from CADRE_BIN_DIR (environment first, then the compile definition CMake bakes
// in). Every test uses its own cluster name and removes what it made, whatever the outcome.
#include "test_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <poll.h>
#include <set>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cadre/cadre.hpp>
#include <admin/admin.hpp>

extern char** environ;

namespace {

using namespace std::chrono_literals;
namespace detail = cadre::detail;

// =============================================================================================
// Running the `cadre` binary
// =============================================================================================

using cadre_test::bin_dir;

std::string cadre_exe() {
  return bin_dir() + "/cadre";
}

/// A `cadre` process started by a test, with its stdout and stderr on pipes.
struct Proc {
  pid_t pid = 0;
  int out = -1, err = -1;
};

struct Result {
  int code = -1;  // exit status, or 128 + signal
  std::string out, err;
  std::string text() const {
    return "exit " + std::to_string(code) + "\n--- stdout\n" + out + "--- stderr\n" + err;
  }
};

Proc spawn_cadre(const std::vector<std::string>& args,
                 const std::vector<std::string>& extra_env = {}) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<std::string> arg_store{cadre_exe()};
  arg_store.insert(arg_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : arg_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "CADRE_CLUSTER=", 14) != 0) env_store.emplace_back(*e);
  env_store.insert(env_store.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  Proc p;
  const int rc = ::posix_spawn(&p.pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    throw std::runtime_error("cannot run " + arg_store[0] + ": " + std::strerror(rc) +
                             " (set CADRE_BIN_DIR to the directory of the cadre binary)");
  }
  p.out = out[0];
  p.err = err[0];
  return p;
}

/// Collects the output until both pipes close and the process exits. A process still running at the
/// timeout (which we started) is killed and the result says so.
Result finish(Proc p, std::chrono::milliseconds timeout = 60s) {
  Result r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (p.out >= 0 || p.err >= 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{p.out, POLLIN, 0}, {p.err, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      int& fd = i == 0 ? p.out : p.err;
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, std::size_t(n));
      } else {
        ::close(fd);
        fd = -1;
      }
    }
  }
  if (timed_out) ::kill(p.pid, SIGKILL);
  for (int fd : {p.out, p.err})
    if (fd >= 0) ::close(fd);
  int st = 0;
  ::waitpid(p.pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (timed_out) r.err += "\n[test: killed after the timeout; a daemon may hold the output pipes]";
  return r;
}

Result cadre(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) {
  return finish(spawn_cadre(args, extra_env));
}

// =============================================================================================
// Fixture: unique names, and cleanup of whatever a test started
// =============================================================================================

std::string unique_name() {
  static std::atomic<int> n{0};
  return "clitest-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// Pids listed after "engine pids:" in `cadre start`'s output.
std::vector<pid_t> started_pids(const std::string& out) {
  std::vector<pid_t> pids;
  const auto at = out.find("engine pids:");
  if (at == std::string::npos) return pids;
  std::istringstream in(out.substr(at + 12, out.find('\n', at) - at - 12));
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

/// (pid, state) of each engine line of `cadre status`: "    <id> <pid> <state> ...".
std::vector<std::pair<pid_t, std::string>> status_engines(const std::string& out) {
  std::vector<std::pair<pid_t, std::string>> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    int id = -1;
    pid_t pid = 0;
    std::string state;
    if (line.rfind("    ", 0) == 0 && (f >> id >> pid >> state)) rows.emplace_back(pid, state);
  }
  return rows;
}

/// The line of `cadre list` that names this cluster.
std::string list_line(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0) return line;
  return {};
}

class cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (bin_dir().empty() || ::access(cadre_exe().c_str(), X_OK) != 0)
      GTEST_FAIL() << "no cadre binary at '" << cadre_exe()
                   << "': build the cadre_cli target and set CADRE_BIN_DIR to its directory";
  }

  /// Stops every cluster this test named and checks /dev/shm is clean.
  void TearDown() override {
    for (const auto& n : names_) {
      if (detail::segment_exists(n)) {
        try {
          detail::stop_cluster(n, 15s);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "cleanup of cluster " << n << ": " << e.what();
          detail::Segment::remove(n);
        }
      }
      EXPECT_FALSE(detail::segment_exists(n)) << "left behind: " << detail::segment_path(n);
      std::error_code ignored;
      std::filesystem::remove_all(detail::default_log_dir(n),
                                  ignored);  // engine logs of `cadre start`
    }
  }

  std::string name() { return names_.emplace_back(unique_name()); }

  std::vector<std::string> names_;
};

// =============================================================================================
// Help, version and usage errors
// =============================================================================================

TEST_F(cli, help_exits_zero_for_the_tool_and_every_subcommand) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"},
                                        {"start", "--help"},
                                        {"stop", "--help"},
                                        {"status", "--help"},
                                        {"list", "--help"},
                                        {"run", "--help"}}) {
    const Result r = cadre(args);
    EXPECT_EQ(r.code, 0) << args[0] << "\n" << r.text();
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.text();
  }
}

TEST_F(cli, help_lists_every_exit_status_and_stop_all) {
  const Result top = cadre({"--help"});
  ASSERT_EQ(top.code, 0) << top.text();
  for (const char* line : {"Exit status:", "  0   success", "  1   failure", "  2   usage error",
                           "  10  already running", "  11  not running", "cadre stop --all"})
    EXPECT_NE(top.out.find(line), std::string::npos) << line << "\n" << top.text();
  const Result stop = cadre({"stop", "--help"});
  ASSERT_EQ(stop.code, 0) << stop.text();
  EXPECT_NE(stop.out.find("--all"), std::string::npos) << stop.text();
  EXPECT_NE(stop.out.find("  0   stopped; with --all, every cluster stopped, or there was none"),
            std::string::npos)
      << stop.text();
  EXPECT_NE(stop.out.find("  11  not running"), std::string::npos) << stop.text();
  const Result start = cadre({"start", "--help"});
  EXPECT_NE(start.out.find("  10  already running"), std::string::npos) << start.text();
  const Result status = cadre({"status", "--help"});
  EXPECT_NE(status.out.find("  11  not running"), std::string::npos) << status.text();
}

TEST_F(cli, version_prints_the_library_version) {
  const Result r = cadre({"--version"});
  EXPECT_EQ(r.code, 0) << r.text();
  EXPECT_EQ(r.out, std::string(cadre::version()) + "\n");
  EXPECT_EQ(r.out, std::string(CADRE_PROJECT_VERSION) + "\n");  // CMakeLists.txt's project(VERSION)
}

TEST_F(cli, bad_arguments_exit_two_with_a_message_naming_the_problem) {
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{}, "subcommand"},
      {{"frobnicate"}, "frobnicate"},
      {{"start", "-n", "0"}, "--engines"},
      {{"start", "-n", "many"}, "many"},
      {{"start", "--segment-size", "12Q"}, "12Q"},
      {{"start", "--segment-size", "0"}, "larger than zero"},
      {{"start", "--name", "a/b"}, "a/b"},
      {{"start", "--name", ""}, "invalid cluster name"},
      {{"start", "--threads-per-engine", "0"}, "--threads-per-engine"},
      {{"stop", "--timeout", "-1"}, "--timeout"},
      {{"stop", "--bogus"}, "--bogus"},
      {{"stop", "--all", "--name", "x"}, "not both"},
      {{"status", "extra"}, "extra"},
      {{"run", "-n", "2"}, "command"},
  };
  for (const auto& c : cases) {
    const Result r = cadre(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << "cadre " << joined << "\n" << r.text();
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << "cadre " << joined << "\n" << r.text();
  }
}

TEST_F(cli, an_invalid_cadre_cluster_variable_is_a_usage_error) {
  const Result r = cadre({"status"}, {"CADRE_CLUSTER=no/slashes"});
  EXPECT_EQ(r.code, 2) << r.text();
  EXPECT_NE(r.err.find("CADRE_CLUSTER"), std::string::npos) << r.text();
}

// =============================================================================================
// start, status, a client, list, stop
// =============================================================================================

TEST_F(cli, start_status_client_and_stop_agree_on_the_engines) {
  const std::string n = name();
  const Result started = cadre({"start", "-n", "2", "--name", n});
  ASSERT_EQ(started.code, 0) << started.text();
  EXPECT_NE(started.out.find("started cluster '" + n + "'"), std::string::npos) << started.text();
  const std::vector<pid_t> pids = started_pids(started.out);
  ASSERT_EQ(pids.size(), 2u) << started.text();

  const auto info = detail::inspect_cluster(n);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->condition, detail::ClusterCondition::running);
  EXPECT_EQ(info->launcher_name, "cadre");
  EXPECT_EQ(std::filesystem::path(info->engine_path).filename(), "cadre-engine");
  ASSERT_EQ(info->engines.size(), 2u);
  for (const auto& e : info->engines) {
    EXPECT_TRUE(e.alive) << "engine " << e.id;
    EXPECT_EQ(e.generation, 1u);
    EXPECT_FALSE(e.log_file.empty());
  }

  const Result status = cadre({"status", "--name", n});
  ASSERT_EQ(status.code, 0) << status.text();
  const auto rows = status_engines(status.out);
  ASSERT_EQ(rows.size(), 2u) << status.text();
  std::vector<pid_t> status_pids;
  for (const auto& [pid, state] : rows) {
    EXPECT_EQ(state, "idle") << status.text();
    status_pids.push_back(pid);
  }
  EXPECT_EQ(status_pids, pids) << status.text();
  EXPECT_NE(status.out.find(info->log_dir + "/engine-0.log"), std::string::npos) << status.text();

  {
    cadre::Client rc{n};
    std::vector<pid_t> remote = rc[cadre::all].apply_sync(::getpid);
    EXPECT_EQ(remote, pids);
  }
  const auto after = detail::inspect_cluster(n);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->engines[0].tasks_done + after->engines[1].tasks_done, 2u);

  const Result listed = cadre({"list"});
  EXPECT_EQ(listed.code, 0) << listed.text();
  const std::string line = list_line(listed.out, n);
  EXPECT_NE(line.find("running"), std::string::npos) << listed.text();
  EXPECT_NE(line.find(std::to_string(info->launcher_pid)), std::string::npos) << listed.text();

  const Result stopped = cadre({"stop", "--name", n});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_NE(stopped.out.find("stopped cluster '" + n + "'"), std::string::npos) << stopped.text();
  EXPECT_FALSE(detail::segment_exists(n));
  for (pid_t p : pids)
    EXPECT_FALSE(detail::process_alive(p)) << "engine pid " << p << " outlived its cluster";
  EXPECT_FALSE(detail::process_alive(info->launcher_pid));
  EXPECT_EQ(list_line(cadre({"list"}).out, n), "");
}

TEST_F(cli, start_with_a_name_that_is_running_exits_ten_and_leaves_it_running) {
  const std::string n = name();
  ASSERT_EQ(cadre({"start", "-n", "1", "--name", n}).code, 0);
  const Result again = cadre({"start", "-n", "1", "--name", n});
  EXPECT_EQ(again.code, 10) << again.text();
  EXPECT_NE(again.err.find("already running"), std::string::npos) << again.text();
  EXPECT_NE(again.err.find("cadre stop --name " + n), std::string::npos) << again.text();
  const auto info = detail::inspect_cluster(n);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->condition, detail::ClusterCondition::running);
}

TEST_F(cli, start_honours_engine_log_dir_threads_and_segment_size) {
  const std::string n = name();
  const std::string logs = ::testing::TempDir() + "cadre-" + n + "/logs";
  const Result r = cadre({"start", "-n", "1", "--name", n, "--engine", bin_dir() + "/cadre-engine",
                          "--log-dir", logs, "--threads-per-engine", "3", "--segment-size", "64M"});
  ASSERT_EQ(r.code, 0) << r.text();
  const auto info = detail::inspect_cluster(n);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->segment_size, 64u << 20);
  EXPECT_EQ(info->threads_per_engine, 3u);
  EXPECT_EQ(std::filesystem::weakly_canonical(info->log_dir),
            std::filesystem::weakly_canonical(logs));
  EXPECT_TRUE(std::filesystem::exists(logs + "/engine-0.log"));
  EXPECT_TRUE(std::filesystem::exists(logs + "/launcher.log"));
  EXPECT_EQ(cadre({"stop", "--name", n}).code, 0);
  std::filesystem::remove_all(::testing::TempDir() + "cadre-" + n);
}

TEST_F(cli, start_with_an_engine_that_is_not_an_engine_fails_and_leaves_nothing) {
  const std::string n = name();
  const Result r =
      cadre({"start", "-n", "1", "--name", n, "--engine", "/bin/true", "--timeout", "5"});
  EXPECT_EQ(r.code, 1) << r.text();
  EXPECT_NE(r.err.find("exited during start-up"), std::string::npos) << r.text();
  EXPECT_FALSE(detail::segment_exists(n));
}

TEST_F(cli, stop_and_status_of_an_unknown_cluster_exit_eleven_with_a_message) {
  const std::string n = name();
  const Result stop = cadre({"stop", "--name", n});
  EXPECT_EQ(stop.code, 11) << stop.text();
  EXPECT_NE(stop.err.find("no cluster named '" + n + "'"), std::string::npos) << stop.text();
  const Result status = cadre({"status", "--name", n});
  EXPECT_EQ(status.code, 11) << status.text();
  EXPECT_NE(status.err.find("no cluster named '" + n + "'"), std::string::npos) << status.text();
}

// =============================================================================================
// Stale and half-made clusters
// =============================================================================================

TEST_F(cli, list_marks_a_cluster_whose_launcher_died_as_stale_and_stop_cleans_it_up) {
  const std::string n = name();
  const Result started = cadre({"start", "-n", "2", "--name", n});
  ASSERT_EQ(started.code, 0) << started.text();
  const std::vector<pid_t> engines = started_pids(started.out);
  const auto info = detail::inspect_cluster(n);
  ASSERT_TRUE(info);
  const pid_t launcher = info->launcher_pid;
  ASSERT_GT(launcher, 0);
  ASSERT_EQ(::kill(launcher, SIGKILL), 0);  // the test's own cluster: simulate a crashed launcher
  ASSERT_TRUE(eventually([&] { return !detail::process_alive(launcher); }));

  const Result listed = cadre({"list"});
  EXPECT_EQ(listed.code, 0) << listed.text();
  EXPECT_NE(list_line(listed.out, n).find("stale"), std::string::npos) << listed.text();
  const Result status = cadre({"status", "--name", n});
  EXPECT_NE(status.out.find("stale"), std::string::npos) << status.text();

  const Result stopped = cadre({"stop", "--name", n});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_NE(stopped.out.find("was gone"), std::string::npos) << stopped.text();
  EXPECT_FALSE(detail::segment_exists(n));
  for (pid_t p : engines) EXPECT_FALSE(detail::process_alive(p)) << "engine pid " << p;
}

TEST_F(cli, a_stale_name_can_be_started_again) {
  const std::string n = name();
  ASSERT_EQ(cadre({"start", "-n", "1", "--name", n}).code, 0);
  const pid_t launcher = detail::inspect_cluster(n)->launcher_pid;
  ASSERT_EQ(::kill(launcher, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return !detail::process_alive(launcher); }));
  const Result again = cadre({"start", "-n", "1", "--name", n});
  EXPECT_EQ(again.code, 0) << again.text();
  const auto info = detail::inspect_cluster(n);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->condition, detail::ClusterCondition::running);
  EXPECT_NE(info->launcher_pid, launcher);
}

TEST_F(cli, sigterm_to_the_launcher_stops_the_cluster_cleanly) {
  const std::string n = name();
  const Result started = cadre({"start", "-n", "1", "--name", n});
  ASSERT_EQ(started.code, 0) << started.text();
  const std::vector<pid_t> engines = started_pids(started.out);
  const pid_t launcher = detail::inspect_cluster(n)->launcher_pid;
  ASSERT_EQ(::kill(launcher, SIGTERM), 0);
  EXPECT_TRUE(
      eventually([&] { return !detail::segment_exists(n) && !detail::process_alive(launcher); }));
  for (pid_t p : engines) EXPECT_FALSE(detail::process_alive(p)) << "engine pid " << p;
}

TEST_F(cli, stop_removes_an_abandoned_half_made_segment) {
  const std::string n = name();
  const int fd =
      ::open(detail::segment_path(n).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::close(fd);
  const Result listed = cadre({"list"});
  EXPECT_NE(list_line(listed.out, n).find("half-made"), std::string::npos) << listed.text();
  const Result stopped = cadre({"stop", "--name", n});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_NE(stopped.out.find("half-made"), std::string::npos) << stopped.text();
  EXPECT_FALSE(detail::segment_exists(n));
}

// =============================================================================================
// cadre stop --all
// =============================================================================================
//
// `stop --all` stops every cluster of the user who runs it, and ctest runs other tests (and other
// checkouts may run theirs) as root at the same time: these tests run `cadre` as a user of their own,
// uid kAllUidBase + this process's pid, which no other process uses, with copies of `cadre` and
// `cadre-engine` that user may run. Only root may become another user, so they skip without root.

constexpr uid_t kAllUidBase = 200'000;

/// `cadre` and `cadre-engine` copied to a directory every user may read, run as one uid of our own.
struct OtherUserCli {
  uid_t uid = kAllUidBase + uid_t(::getpid());
  cadre_test::ScratchDir dir;
  std::string exe;

  OtherUserCli() {
    if (dir.path.empty() || ::chmod(dir.path.c_str(), 0755) != 0) return;
    for (const char* prog : {"cadre", "cadre-engine"}) {
      const std::string to = dir.path + "/" + prog;
      std::error_code ec;
      std::filesystem::copy_file(bin_dir() + "/" + prog, to, ec);
      if (ec || ::chmod(to.c_str(), 0755) != 0) return;
    }
    exe = dir.path + "/cadre";
  }

  /// Runs `cadre args...` as `uid`, without XDG_RUNTIME_DIR (root's) and CADRE_CLUSTER, plus extra_env.
  Result operator()(const std::vector<std::string>& args,
                    const std::vector<std::string>& extra_env = {}) const {
    std::vector<std::string> arg_store{exe};
    arg_store.insert(arg_store.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : arg_store) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "CADRE_CLUSTER=", 14) != 0 && std::strncmp(*e, "XDG_RUNTIME_DIR=", 16) != 0)
        env_store.emplace_back(*e);
    env_store.insert(env_store.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {  // only async-signal-safe calls: the test process has threads
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (::chdir("/") != 0 || ::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 ||
          ::setuid(uid) != 0)
        ::_exit(97);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(96);
    }
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) throw std::runtime_error("fork failed");
    return finish(Proc{pid, out[0], err[0]});
  }

  /// This user's segments in /dev/shm.
  std::vector<std::string> segments() const {
    std::vector<std::string> found;
    const std::string prefix = "cadre-" + std::to_string(uid) + "-";
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
      if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path().string());
    return found;
  }

  /// Whatever a failed test left: stopped as that user, then removed; its log folders too.
  ~OtherUserCli() {
    if (exe.empty()) return;
    if (!segments().empty()) (*this)({"stop", "--all", "--timeout", "15"});
    std::error_code ec;
    for (const auto& s : segments()) std::filesystem::remove(s, ec);
    std::filesystem::remove_all("/tmp/cadre-" + std::to_string(uid), ec);
  }
};

#define CADRE_SKIP_UNLESS_ROOT_FOR_STOP_ALL()                                                               \
  if (::geteuid() != 0)                                                                        \
  GTEST_SKIP() << "needs root: runs `cadre stop --all` as a user of its own (uid 200000 + pid), " \
                  "so that it cannot stop the clusters of tests running beside it"

TEST_F(cli, stop_all_stops_every_cluster_of_the_user_and_leaves_nothing_in_dev_shm) {
  CADRE_SKIP_UNLESS_ROOT_FOR_STOP_ALL();
  const OtherUserCli as_user;
  ASSERT_FALSE(as_user.exe.empty()) << "cannot copy the binaries of " << bin_dir();
  const std::string a = unique_name(), b = unique_name();
  for (const auto& n : {a, b}) {
    const Result started = as_user({"start", "-n", "1", "--name", n});
    ASSERT_EQ(started.code, 0) << started.text();
  }
  ASSERT_EQ(as_user.segments().size(), 2u);
  const Result listed = as_user({"list"});
  EXPECT_NE(list_line(listed.out, a).find("running"), std::string::npos) << listed.text();
  EXPECT_NE(list_line(listed.out, b).find("running"), std::string::npos) << listed.text();

  const Result stopped = as_user({"stop", "--all"});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_NE(stopped.out.find("stopped cluster '" + a + "'"), std::string::npos) << stopped.text();
  EXPECT_NE(stopped.out.find("stopped cluster '" + b + "'"), std::string::npos) << stopped.text();
  EXPECT_EQ(as_user.segments(), std::vector<std::string>{});
  EXPECT_NE(as_user({"list"}).out.find("no clusters for this user"), std::string::npos);

  // Nothing left to stop is what --all asks for: success, said so.
  const Result again = as_user({"stop", "--all"});
  EXPECT_EQ(again.code, 0) << again.text();
  EXPECT_NE(again.out.find("no clusters for this user"), std::string::npos) << again.text();
}

TEST_F(cli, stop_all_ignores_cadre_cluster_and_cleans_up_a_stale_cluster_too) {
  CADRE_SKIP_UNLESS_ROOT_FOR_STOP_ALL();
  const OtherUserCli as_user;
  ASSERT_FALSE(as_user.exe.empty()) << "cannot copy the binaries of " << bin_dir();
  const std::string n = unique_name();
  ASSERT_EQ(as_user({"start", "-n", "1", "--name", n}).code, 0);
  const Result status = as_user({"status", "--name", n});
  ASSERT_EQ(status.code, 0) << status.text();
  const auto at = status.out.find("launcher   pid ");
  ASSERT_NE(at, std::string::npos) << status.text();
  const pid_t launcher = std::atoi(status.out.c_str() + at + 15);
  ASSERT_GT(launcher, 0) << status.text();
  ASSERT_EQ(::kill(launcher, SIGKILL), 0);  // the test's own cluster: a crashed launcher
  ASSERT_TRUE(eventually([&] { return !detail::process_alive(launcher); }));

  const Result stopped = as_user({"stop", "--all"}, {"CADRE_CLUSTER=no/slashes"});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_NE(stopped.out.find("cleaned up cluster '" + n + "'"), std::string::npos) << stopped.text();
  EXPECT_EQ(as_user.segments(), std::vector<std::string>{});
}

// =============================================================================================
// cadre run
// =============================================================================================

std::string self_exe() {
  return detail::main_executable_path();
}

TEST_F(cli, run_of_a_program_that_is_not_an_engine_fails_and_leaves_nothing) {
  Proc p = spawn_cadre({"run", "-n", "2", "--", "/bin/true"});
  const pid_t cadre_pid = p.pid;
  const Result r = finish(p);
  EXPECT_NE(r.code, 0) << r.text();
  EXPECT_NE(r.err.find("exited during start-up"), std::string::npos) << r.text();
  EXPECT_NE(r.err.find("cadre engine"), std::string::npos) << r.text();
  // The unnamed cluster was embedded-<pid of cadre>-0.
  EXPECT_FALSE(detail::segment_exists("embedded-" + std::to_string(cadre_pid) + "-0"));

  const std::string n = name();
  const Result named = cadre({"run", "-n", "1", "--name", n, "--", "/bin/true"});
  EXPECT_NE(named.code, 0) << named.text();
  EXPECT_FALSE(detail::segment_exists(n));

  const Result missing = cadre({"run", "-n", "1", "--", "./no-such-program-here"});
  EXPECT_EQ(missing.code, 1) << missing.text();
  EXPECT_NE(missing.err.find("no-such-program-here"), std::string::npos) << missing.text();
}

// The program of the positive `cadre run` tests is this test binary, whose main() calls
// cadre::init: run with CADRE_CLI_TEST_CHILD=1 and a --gtest_filter naming one of these, it is both
// the client and the engines. Run normally, they skip.
bool in_cadre_run() {
  return std::getenv("CADRE_CLI_TEST_CHILD") != nullptr;
}

TEST(cli_run_child, uses_the_cluster_named_by_cadre_cluster) {
  if (!in_cadre_run()) GTEST_SKIP() << "only meaningful under `cadre run` (see cli.run_*)";
  cadre::Client rc;  // $CADRE_CLUSTER
  ASSERT_EQ(rc.size(), 2u);
  std::vector<pid_t> pids = rc[cadre::all].apply_sync(::getpid);
  EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).size(), 2u);
  for (pid_t p : pids) EXPECT_NE(p, ::getpid());
  std::_Exit(::testing::Test::HasFailure() ? 1 : 7);  // 7: proves the status is passed through
}

TEST(cli_run_child, waits_to_be_stopped) {
  if (!in_cadre_run()) GTEST_SKIP() << "only meaningful under `cadre run` (see cli.run_*)";
  std::this_thread::sleep_for(60s);  // `cadre stop` makes `cadre run` send SIGTERM
  std::_Exit(0);
}

TEST_F(cli, run_gives_the_program_its_cluster_and_exits_with_its_status) {
  const std::string n = name();
  const Result r = cadre({"run", "-n", "2", "--name", n, "--", self_exe(),
                          "--gtest_filter=cli_run_child.uses_the_cluster_named_by_cadre_cluster"},
                         {"CADRE_CLI_TEST_CHILD=1"});
  EXPECT_EQ(r.code, 7) << r.text();
  EXPECT_FALSE(detail::segment_exists(n));
}

TEST_F(cli, stop_of_a_run_cluster_terminates_its_program) {
  const std::string n = name();
  Proc p = spawn_cadre({"run", "-n", "1", "--name", n, "--", self_exe(),
                        "--gtest_filter=cli_run_child.waits_to_be_stopped"},
                       {"CADRE_CLI_TEST_CHILD=1"});
  const bool up = eventually(
      [&] {
        const auto info = detail::inspect_cluster(n);
        return info && info->condition == detail::ClusterCondition::running;
      },
      30s);
  EXPECT_TRUE(up);
  const Result stopped = cadre({"stop", "--name", n});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  const Result r = finish(p, 30s);
  EXPECT_EQ(r.code, 128 + SIGTERM) << r.text();
  EXPECT_FALSE(detail::segment_exists(n));
}

// =============================================================================================
// Edges of the command line: timeouts, $CADRE_CLUSTER, messages, log folders
// =============================================================================================

TEST_F(cli, a_timeout_that_is_not_a_sane_number_of_seconds_is_a_usage_error_with_a_short_range) {
  const std::string n = name();  // in case a start goes through: the teardown stops it
  for (const std::string cmd : {"start", "stop", "run"}) {
    for (const std::string t : {"1e300", "nan", "inf", "0.0001", "0", "-1", "86401", "soon"}) {
      std::vector<std::string> args{cmd, "--timeout", t};
      if (cmd != "run") args.insert(args.end(), {"--name", n});
      if (cmd == "run") args.insert(args.end(), {"--", "/bin/true"});
      const Result r = cadre(args);
      const std::string what = "cadre " + cmd + " --timeout " + t + "\n" + r.text();
      EXPECT_EQ(r.code, 2) << what;
      EXPECT_NE(r.err.find("--timeout"), std::string::npos) << what;
      EXPECT_NE(r.err.find("0.1 to 86400 seconds"), std::string::npos) << what;
      EXPECT_LT(r.err.size(), 400u) << "a short message, not the limits of a double\n" << what;
    }
  }
  EXPECT_FALSE(detail::segment_exists(n));
}

TEST_F(cli, stop_refuses_a_timeout_beyond_a_day_and_leaves_the_cluster_running) {
  const std::string n = name();
  ASSERT_EQ(cadre({"start", "-n", "1", "--name", n}).code, 0);
  const Result huge = cadre({"stop", "--name", n, "--timeout", "1e300"});
  EXPECT_EQ(huge.code, 2) << huge.text();
  EXPECT_EQ(huge.err.find("did not stop it within"), std::string::npos) << huge.text();
  const auto info = detail::inspect_cluster(n);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->condition, detail::ClusterCondition::running);
  const Result day = cadre({"stop", "--name", n, "--timeout", "86400"});
  EXPECT_EQ(day.code, 0) << day.text();
  EXPECT_NE(day.out.find("stopped cluster '" + n + "'"), std::string::npos) << day.text();
}

TEST_F(cli, stop_cluster_with_the_longest_timeout_stops_the_cluster_instead_of_timing_out) {
  const std::string n = name();
  ASSERT_EQ(cadre({"start", "-n", "1", "--name", n}).code, 0);
  detail::StopReport report;
  EXPECT_NO_THROW(report = detail::stop_cluster(n, std::chrono::milliseconds::max()));
  EXPECT_FALSE(report.stale);
  EXPECT_FALSE(detail::segment_exists(n));
}

TEST_F(cli, list_works_whatever_cadre_cluster_says) {
  const Result r = cadre({"list"}, {"CADRE_CLUSTER=no/slashes"});
  EXPECT_EQ(r.code, 0) << r.text();
  EXPECT_EQ(r.err, "") << r.text();
}

TEST_F(cli, a_segment_too_small_for_one_engine_says_engine_not_engines) {
  const std::string n = name();
  const Result r = cadre({"start", "-n", "1", "--name", n, "--segment-size", "64K"});
  EXPECT_EQ(r.code, 1) << r.text();
  EXPECT_NE(r.err.find("too small for 1 engine:"), std::string::npos) << r.text();
  EXPECT_EQ(r.err.find("1 engines"), std::string::npos) << r.text();
}

TEST_F(cli, the_api_and_the_cli_print_the_mode_of_a_segment_file_in_octal) {
  const std::string n = name();
  const std::string path = detail::segment_path(n);
  struct Remove {
    std::string n;
    ~Remove() { detail::Segment::remove(n); }
  } remove{n};
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 0644), 0);
  ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
  ::close(fd);
  try {
    cadre::Client c(n);
    ADD_FAILURE() << "attached to a segment file of mode 0644";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("mode 0644"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("420"), std::string::npos) << "decimal mode\n" << e.what();
  }
  const Result status = cadre({"status", "--name", n});
  EXPECT_NE(status.out.find("mode 0644"), std::string::npos) << status.text();
  EXPECT_EQ(status.out.find("420"), std::string::npos) << status.text();
}

TEST_F(cli, a_failed_start_removes_the_log_folder_it_made) {
  const std::string n = name();
  const std::string logs = detail::default_log_dir(n);
  const Result r =
      cadre({"start", "-n", "1", "--name", n, "--engine", "/bin/true", "--timeout", "5"});
  EXPECT_EQ(r.code, 1) << r.text();
  EXPECT_NE(r.err.find("exited during start-up"), std::string::npos) << r.text();
  EXPECT_FALSE(std::filesystem::exists(logs)) << "left behind: " << logs << "\n" << r.text();
}

TEST_F(cli, stop_removes_the_log_folder_of_the_cluster_and_a_failed_start_keeps_a_running_ones) {
  const std::string n = name();
  const std::string logs = detail::default_log_dir(n);
  ASSERT_EQ(cadre({"start", "-n", "1", "--name", n}).code, 0);
  EXPECT_TRUE(std::filesystem::exists(logs + "/engine-0.log"));
  const Result again = cadre({"start", "-n", "1", "--name", n});
  EXPECT_EQ(again.code, 10) << again.text();  // already running
  EXPECT_TRUE(std::filesystem::exists(logs + "/engine-0.log"))
      << "a failed start removed the logs of the running cluster\n" << again.text();
  const Result stopped = cadre({"stop", "--name", n});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_FALSE(std::filesystem::exists(logs)) << "left behind: " << logs;
}

TEST_F(cli, stop_of_a_stale_cluster_removes_its_log_folder) {
  const std::string n = name();
  const std::string logs = detail::default_log_dir(n);
  ASSERT_EQ(cadre({"start", "-n", "1", "--name", n}).code, 0);
  const pid_t launcher = detail::inspect_cluster(n)->launcher_pid;
  ASSERT_EQ(::kill(launcher, SIGKILL), 0);  // the test's own cluster: a crashed launcher
  ASSERT_TRUE(eventually([&] { return !detail::process_alive(launcher); }));
  const Result stopped = cadre({"stop", "--name", n});
  EXPECT_EQ(stopped.code, 0) << stopped.text();
  EXPECT_FALSE(std::filesystem::exists(logs)) << "left behind: " << logs;
}

// =============================================================================================
// admin.hpp helpers
// =============================================================================================

TEST(admin, parse_byte_size_accepts_binary_suffixes_and_rejects_the_rest) {
  EXPECT_EQ(detail::parse_byte_size("65536"), 65536u);
  EXPECT_EQ(detail::parse_byte_size("512M"), 512ull << 20);
  EXPECT_EQ(detail::parse_byte_size("2G"), 2ull << 30);
  EXPECT_EQ(detail::parse_byte_size("4k"), 4096u);
  EXPECT_EQ(detail::parse_byte_size("1GiB"), 1ull << 30);
  EXPECT_EQ(detail::parse_byte_size("3MB"), 3ull << 20);
  EXPECT_EQ(detail::parse_byte_size("1T"), 1ull << 40);
  EXPECT_EQ(detail::parse_byte_size("100B"), 100u);
  for (const char* bad :
       {"", "M", "0", "0G", "-1", "1.5G", "12Q", "1 G", "1GG", "99999999999999999999", "20000000T"})
    EXPECT_THROW((void)detail::parse_byte_size(bad), cadre::argument_error) << "'" << bad << "'";
}

TEST(admin, make_log_dir_creates_private_directories_and_refuses_a_symlink) {
  const std::string root = ::testing::TempDir() + "cadre-admin-" + std::to_string(::getpid());
  std::filesystem::remove_all(root);
  detail::make_log_dir(root + "/cadre-x/name", 2);
  struct stat st {};
  ASSERT_EQ(::stat((root + "/cadre-x/name").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ::chmod((root + "/cadre-x").c_str(), 0755);
  detail::make_log_dir(root + "/cadre-x/name", 2);  // existing: tightened, not an error
  ASSERT_EQ(::stat((root + "/cadre-x").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::symlink("/tmp", (root + "/cadre-link").c_str()), 0);
  EXPECT_THROW(detail::make_log_dir(root + "/cadre-link/name", 2), cadre::error);
  EXPECT_THROW(detail::make_log_dir("relative/dir", 2), cadre::error);
  std::filesystem::remove_all(root);
}

TEST(admin, inspect_cluster_of_an_absent_name_is_empty_and_a_bad_name_throws) {
  EXPECT_FALSE(detail::inspect_cluster(unique_name()));
  EXPECT_THROW((void)detail::inspect_cluster("a/b"), cadre::argument_error);
  EXPECT_THROW((void)detail::stop_cluster(unique_name(), 1s), cadre::connection_error);
}

}  // namespace
