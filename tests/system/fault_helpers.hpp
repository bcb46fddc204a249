// tests/fault_helpers.hpp — what the fault and soak tests share: "ft-<pid>-<n>" cluster names and their
// leftover check, get() with a hang limit, process states (zombies count as exited), child processes
// that report over a pipe, and the client's resident memory.
#pragma once

#include "test_util.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cadre_fault {

using namespace std::chrono_literals;
using cadre_test::seconds_since;
using cadre_test::shm_exists;
using cadre_test::wait_until;

// ---- names ----------------------------------------------------------------------------------------

inline std::string ft_prefix() { return "ft-" + std::to_string(::getpid()) + "-"; }

/// A cluster name no other test or test process uses: "ft-<pid>-<n>".
inline std::string ft_name() {
  static std::atomic<int> counter{0};
  return ft_prefix() + std::to_string(counter++);
}

/// At the end of the run: no segment named by this process's fault tests is left in /dev/shm.
class LeftoverCheck : public ::testing::Environment {
 public:
  void TearDown() override {
    std::vector<std::string> left;
    const std::string ours = cadre::detail::shm_name(ft_prefix());
    if (DIR* d = ::opendir("/dev/shm")) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name).rfind(ours, 0) == 0) left.emplace_back(e->d_name);
      ::closedir(d);
    }
    EXPECT_TRUE(left.empty()) << "segments left in /dev/shm: " << ::testing::PrintToString(left);
    for (const auto& n : left) ::unlink(("/dev/shm/" + n).c_str());  // not left for the next run
  }
};
inline const bool leftover_check_registered = (::testing::AddGlobalTestEnvironment(new LeftoverCheck), true);

// ---- results with a hang limit ------------------------------------------------------------------------

/// How a get() ended: its value, or the error it threw; `hung` when it did not finish within the limit.
template <class T>
struct Settled {
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
  std::exception_ptr error;
  bool hung = false;
  double seconds = 0;

  bool ok() const { return value.has_value(); }
  std::string what() const {
    if (hung) return "get() did not finish: a hang";
    if (!error) return "no error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "an exception not derived from std::exception";
    }
  }
  /// The error as E, when it is one.
  template <class E>
  std::optional<E> as() const {
    if (!error) return std::nullopt;
    try {
      std::rethrow_exception(error);
    } catch (const E& e) {
      return e;
    } catch (...) {
    }
    return std::nullopt;
  }
};

/// ar.get(limit), never throwing: a get() still waiting after `limit` is reported as hung (a timeout_error
/// from get() itself), not confused with a timeout_error a task failed with.
template <class T>
Settled<T> settle(const cadre::AsyncResult<T>& ar, std::chrono::milliseconds limit = 5s) {
  Settled<T> s;
  const auto t0 = std::chrono::steady_clock::now();
  if (!ar.wait_for(limit)) {
    s.hung = true;
    s.seconds = seconds_since(t0);
    return s;
  }
  try {
    if constexpr (std::is_void_v<T>) {
      ar.get();
      s.value = true;
    } else {
      s.value = ar.get();
    }
  } catch (...) {
    s.error = std::current_exception();
  }
  s.seconds = seconds_since(t0);
  return s;
}

/// Checks that r failed with engine_error for `engine` killed by `signal` (0: any signal), in time.
template <class T>
::testing::AssertionResult failed_with_engine_error(const Settled<T>& r, int engine, int signal) {
  if (r.hung) return ::testing::AssertionFailure() << "hung: get() still waiting after " << r.seconds << " s";
  if (r.ok()) return ::testing::AssertionFailure() << "succeeded, but its engine was killed";
  const auto e = r.template as<cadre::engine_error>();
  if (!e) return ::testing::AssertionFailure() << "failed with something other than engine_error: " << r.what();
  if (e->engine_id() != engine) return ::testing::AssertionFailure() << "engine_error names engine " << e->engine_id() << ": " << e->what();
  if (signal && e->signal() != signal)
    return ::testing::AssertionFailure() << "engine_error carries signal " << e->signal() << ", not " << signal << ": " << e->what();
  return ::testing::AssertionSuccess();
}

/// Engine i is running a task.
inline bool engine_busy(const cadre::Client& c, int i) {
  return cadre::detail::engine_state(c.segment()->engine(std::uint32_t(i))) == cadre::detail::EngineState::busy;
}

// ---- processes -------------------------------------------------------------------------------------------

/// The state letter of pid from /proc/<pid>/stat ('R', 'S', 'Z', ...), or 0 when there is no such process.
inline char proc_state(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char buf[512];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* close = std::strrchr(buf, ')');
  return close && close[1] == ' ' ? close[2] : '?';
}

/// True once pid is gone or a zombie: orphans re-parented to an init that does not reap stay zombies here.
inline bool exited(pid_t pid) {
  const char s = proc_state(pid);
  return s == 0 || s == 'Z' || s == 'X';
}

/// True when every thread of pid is stopped (SIGSTOP has taken effect, not merely been sent).
inline bool all_threads_stopped(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool all = true;
  int threads = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ++threads;
    std::FILE* f = std::fopen((dir + "/" + e->d_name + "/stat").c_str(), "r");
    if (!f) continue;
    char buf[512];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* close = std::strrchr(buf, ')');
    all &= close && close[1] == ' ' && (close[2] == 'T' || close[2] == 't');
  }
  ::closedir(d);
  return all && threads > 0;
}

/// Waits until every pid has exited; the ones still running are returned.
inline std::vector<pid_t> still_running_after(const std::vector<pid_t>& pids, std::chrono::milliseconds limit) {
  wait_until([&] {
    for (pid_t p : pids)
      if (!exited(p)) return false;
    return true;
  }, limit);
  std::vector<pid_t> left;
  for (pid_t p : pids)
    if (!exited(p)) left.push_back(p);
  return left;
}

/// A child process of the test that can send fixed-size values back over a pipe: a fork running a
/// function, or this test binary run anew for one helper test (see exec_test). The destructor kills
/// (SIGKILL, by pid) and reaps a child the test did not reap itself.
class ChildProcess {
 public:
  /// Runs body(write_fd) in a child process; its return value is the exit code. The child starts with
  /// one thread (the forking one) and leaves with _exit: no destructor of the parent's objects runs.
  template <class Body>
  explicit ChildProcess(Body&& body) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    std::fflush(stdout);
    std::fflush(stderr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::close(p[0]);
      int code = 97;
      try {
        code = body(p[1]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "forked child failed: %s\n", e.what());
        code = 98;
      } catch (...) {
        code = 99;
      }
      std::fflush(stdout);
      std::fflush(stderr);
      ::_exit(code);
    }
    ::close(p[1]);
    from_ = p[0];
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (from_ >= 0) ::close(from_);
  }

  /// Runs this test binary again with --gtest_filter=<test> and `env` added: a fresh process, with
  /// SIGINT, SIGTERM and SIGHUP at their default dispositions (as in a program started from a shell,
  /// even when this run ignores SIGINT as a background job) and one thread. The helper test finds the
  /// pipe to send() on at kChildFd, and writes its gtest report to /dev/null. With `stderr_path`, its
  /// standard error (a launcher's log) goes to that file instead of ours.
  static constexpr int kChildFd = 3;
  static std::unique_ptr<ChildProcess> exec_test(const std::string& test, const std::vector<std::string>& env,
                                                 const std::string& stderr_path = {}) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (!stderr_path.empty()) posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, p[1], kChildFd);  // dup2 clears FD_CLOEXEC on the copy
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<std::string> args{cadre::detail::main_executable_path(), "--gtest_filter=" + test};
    std::vector<std::string> envs;
    for (char** e = environ; e && *e; ++e)
      if (std::strncmp(*e, "GTEST_", 6) != 0) envs.emplace_back(*e);  // e.g. GTEST_OUTPUT: not the parent's report file
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::unique_ptr<ChildProcess> c(new ChildProcess());
    const int rc = ::posix_spawn(&c->pid_, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(p[1]);
    if (rc != 0) {
      ::close(p[0]);
      c->pid_ = -1;
      throw std::runtime_error("cannot run " + args[0] + ": " + std::strerror(rc));
    }
    c->from_ = p[0];
    return c;
  }

  pid_t pid() const { return pid_; }

  /// Reads n values of T the child wrote (see send()), waiting at most `limit`; fewer on timeout or EOF.
  template <class T>
  std::vector<T> receive(std::size_t n, std::chrono::milliseconds limit = 20s) {
    std::vector<T> out(n);
    auto* bytes = reinterpret_cast<char*>(out.data());
    std::size_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (got < n * sizeof(T) && std::chrono::steady_clock::now() < deadline) {
      pollfd pf{from_, POLLIN, 0};
      if (::poll(&pf, 1, 50) <= 0) continue;
      const ssize_t r = ::read(from_, bytes + got, n * sizeof(T) - got);
      if (r <= 0) break;
      got += std::size_t(r);
    }
    out.resize(got / sizeof(T));
    return out;
  }

  /// Sends values from the child (call in the child, with the fd it was given).
  template <class T>
  static bool send(int fd, const std::vector<T>& v) {
    const auto* p = reinterpret_cast<const char*>(v.data());
    std::size_t left = v.size() * sizeof(T);
    while (left) {
      const ssize_t w = ::write(fd, p, left);
      if (w <= 0) return false;
      p += w;
      left -= std::size_t(w);
    }
    return true;
  }

  /// Waits at most `limit` for the child to end; how it ended (timed_out: still running).
  cadre_test::ChildResult wait(std::chrono::milliseconds limit) {
    cadre_test::ChildResult r;
    int st = 0;
    if (!wait_until([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, limit)) {
      r.timed_out = true;
      return r;
    }
    reaped_ = true;
    if (WIFEXITED(st)) r.exited = true, r.code = WEXITSTATUS(st);
    else if (WIFSIGNALED(st)) r.signal = WTERMSIG(st);
    return r;
  }

 private:
  ChildProcess() = default;

  pid_t pid_ = -1;
  int from_ = -1;
  bool reaped_ = false;
};

#if defined(__SANITIZE_ADDRESS__)
extern "C" void __sanitizer_purge_allocator();  // sanitizer/allocator_interface.h
#endif

/// This process's resident memory, from /proc/self/statm. Under ASan the freed blocks held in its
/// quarantine (up to 256 MiB, filling at the speed the test runs) are first returned, so two readings
/// compare what the program holds rather than how full the quarantine was.
inline std::uint64_t rss_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_purge_allocator();
#endif
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? std::uint64_t(resident) * std::uint64_t(::sysconf(_SC_PAGESIZE)) : 0;
}

inline double mib(std::uint64_t bytes) { return double(bytes) / double(1 << 20); }

}  // namespace cadre_fault
