// tests/test_util.hpp — what the core tests share: unique cluster names, the shared 4-engine cluster,
// polling with generous deadlines, running a check in a child process, and the leftover-segment check.
#pragma once

#include <cadre/eigen.hpp>
#include <cadre/fmt.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// The tests build options the way the API documents them, `cadre::Cluster({.engines = 2, .name = n})`;
// GCC 12's -Wextra would flag every field such an initializer leaves at its default.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace cadre_test {

using namespace std::chrono_literals;

/// Every cluster/segment name a test of this process made, for the leftover check at exit.
inline std::vector<std::string>& created_names() {
  static std::vector<std::string> names;
  return names;
}
inline std::mutex& created_names_mutex() {
  static std::mutex m;
  return m;
}

/// The prefix of every name this process makes: "core-<pid>-".
inline std::string name_prefix() { return "core-" + std::to_string(::getpid()) + "-"; }

/// A cluster name no other test (or test process) uses: "core-<pid>-<tag>-<counter>".
inline std::string unique_name(const std::string& tag = "c") {
  static std::atomic<int> counter{0};
  std::string n = name_prefix() + tag + "-" + std::to_string(counter++);
  std::lock_guard lock(created_names_mutex());
  created_names().push_back(n);
  return n;
}

/// The /dev/shm file behind a cluster's segment.
inline std::string shm_path(const std::string& cluster) { return "/dev/shm/" + cadre::detail::shm_name(cluster); }

inline bool shm_exists(const std::string& cluster) {
  struct stat st{};
  return ::stat(shm_path(cluster).c_str(), &st) == 0;
}

/// Polls pred every millisecond until it holds or `timeout` passes; returns pred's last value.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// True once no process has this pid (kill(pid, 0) fails with ESRCH).
inline bool pid_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

/// Seconds since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// A private temporary directory, removed with everything in it when the test ends.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char t[] = "/tmp/cadre-core-test-XXXXXX";
    if (::mkdtemp(t)) path = t;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

/// How a child process ended.
struct ChildResult {
  bool timed_out = false;
  bool exited = false;
  int code = -1;    // exit code when exited
  int signal = 0;   // terminating signal otherwise
};

/// Runs fn in a forked child (for checks that may abort or hang the process); fn's return value is the
/// child's exit code. A child still running after `timeout` is killed and reported as timed out.
inline ChildResult run_in_child(const std::function<int()>& fn, std::chrono::milliseconds timeout = 20s) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = fn();
    } catch (...) {
      code = 98;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
  }
  ChildResult r;
  if (pid < 0) return r;
  int status = 0;
  const bool done = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.timed_out = true;
    return r;
  }
  if (WIFEXITED(status)) r.exited = true, r.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

/// The /dev/shm entries of clusters whose names start with one of `prefixes` and that still exist.
inline std::vector<std::string> segments_named(std::initializer_list<std::string> prefixes) {
  std::vector<std::string> out;
  std::vector<std::string> ours;
  for (const auto& p : prefixes) ours.push_back(cadre::detail::shm_name(p));
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      for (const auto& o : ours)
        if (n.rfind(o, 0) == 0) {
          out.push_back(n);
          break;
        }
    }
    ::closedir(d);
  }
  return out;
}

/// Fails the run when segments of clusters named with one of `prefixes` outlived the tests, and removes
/// them so that the next run does not inherit them. For the suites' global TearDown.
inline void expect_no_segments_left(std::initializer_list<std::string> prefixes) {
  const auto left = segments_named(prefixes);
  EXPECT_TRUE(left.empty()) << "segments left in /dev/shm: " << ::testing::PrintToString(left);
  for (const auto& n : left) ::unlink(("/dev/shm/" + n).c_str());
}

/// Where the `cadre` and `cadre-engine` binaries are: $CADRE_BIN_DIR, else the build's bin/.
inline std::string bin_dir() {
  if (const char* e = std::getenv("CADRE_BIN_DIR"); e && *e) return e;
#ifdef CADRE_BIN_DIR
  return CADRE_BIN_DIR;
#else
  return {};
#endif
}

/// The 4-engine cluster most tests share, started on first use and stopped by the environment below
/// (which then checks that no segment of this process is left in /dev/shm).
struct Shared {
  cadre::Cluster cluster;
  cadre::Client rc;
  Shared() : cluster({.engines = 4, .name = unique_name("shared")}), rc(cluster.client()) {}
};

inline std::unique_ptr<Shared>& shared_slot() {
  static std::unique_ptr<Shared> s;
  return s;
}

inline Shared& shared() {
  static std::mutex m;
  std::lock_guard lock(m);
  auto& s = shared_slot();
  if (!s) s = std::make_unique<Shared>();
  return *s;
}

/// The shared cluster's client.
inline cadre::Client& rc() { return shared().rc; }

class Environment : public ::testing::Environment {
 public:
  void TearDown() override {
    shared_slot().reset();
    expect_no_segments_left({name_prefix(), "embedded-" + std::to_string(::getpid()) + "-"});
  }
};

/// Registers the environment once, however many test files include this header.
inline const bool environment_registered = (::testing::AddGlobalTestEnvironment(new Environment), true);

}  // namespace cadre_test
