// src/cli/launch.cpp — `cadre start` and `cadre run`: the two ways the CLI owns a cluster.
//
// `start` forks a detached launcher that owns the cluster until a stop request; `run` owns it in
// this process while the program runs as its client.
//
// No shell is ever involved: programs are started with posix_spawn from an argument vector. Only
// processes started here are ever signalled: the launcher's engines (by cadre::Cluster) and the
// program of `cadre run`.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cadre/cluster.hpp>
#include <admin/admin.hpp>

#include "commands.hpp"

extern char** environ;

namespace cadre::cli {
namespace {

// =============================================================================================
// Process helpers
// =============================================================================================

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

/// The directory of the running `cadre` executable.
std::string self_dir() {
  const std::string exe = detail::main_executable_path();
  if (exe.empty()) throw error(errno_text("cannot read /proc/self/exe"));
  return std::filesystem::path(exe).parent_path().string();
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

/// The absolute path of a program named as a user would to a shell: a path when it contains '/',
/// otherwise looked up in $PATH. Throws argument_error naming what is wrong.
std::string resolve_program(const std::string& prog, const char* role) {
  if (prog.empty()) throw argument_error(std::string(role) + " is empty");
  if (prog.find('/') != std::string::npos) {
    if (!is_executable_file(prog))
      throw argument_error(
          std::string(role) + " '" + prog + "' cannot be run: " +
          (::access(prog.c_str(), F_OK) != 0 ? "no such file" : "not an executable file"));
    return std::filesystem::absolute(prog).lexically_normal().string();
  }
  const char* path_env = std::getenv("PATH");
  const std::string path = path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t at = 0; at <= path.size();) {
    const std::size_t end = std::min(path.find(':', at), path.size());
    const std::string dir = end > at ? path.substr(at, end - at) : ".";
    std::string candidate = dir;
    candidate.append("/").append(prog);
    if (is_executable_file(candidate))
      return std::filesystem::absolute(candidate).lexically_normal().string();
    at = end + 1;
  }
  throw argument_error(std::string(role) + " '" + prog +
                       "' is not in $PATH; give its path, e.g. ./" + prog);
}

/// Writes all of s, retrying on EINTR and short writes. False on error (e.g. EPIPE).
bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(std::size_t(n));
  }
  return true;
}

/// Closes every descriptor except 0, 1, 2 and `keep`: a daemon must not hold its caller's pipes or
/// files open (a test harness or `$(cadre start)` would wait for them to close).
void close_inherited_fds(int keep) {
  std::vector<int> fds;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int dir_fd = ::dirfd(d);
    while (const dirent* ent = ::readdir(d)) {
      const int fd = std::atoi(ent->d_name);
      if (ent->d_name[0] != '.' && fd > 2 && fd != keep && fd != dir_fd) fds.push_back(fd);
    }
    ::closedir(d);
  }
  for (int fd : fds) ::close(fd);
}

void redirect(int target, const char* path, int flags) {
  const int fd = ::open(path, flags | O_CLOEXEC, 0600);
  if (fd < 0) return;  // keep what we have rather than lose the descriptor number
  ::dup2(fd, target);  // dup2 clears FD_CLOEXEC on target
  ::close(fd);
}

/// "2024-05-01 12:00:00" (local time), for the launcher's log.
std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// =============================================================================================
// cadre start: the launcher
// =============================================================================================

// The launcher reports to the `cadre start` process through a pipe, in one write:
//   "ok <launcher pid> <engine pid>...\n"   or   "error <message>"
constexpr std::string_view kReportOk = "ok ";
constexpr std::string_view kReportError = "error ";

/// The forked child: detaches, owns the cluster until a stop request, then stops it and exits.
[[noreturn]] void launcher_main(const ClusterOptions& copts, int report_fd) noexcept {
  ::setsid();  // no controlling terminal: the caller's Ctrl-C and hang-up do not reach us
  std::signal(SIGPIPE, SIG_IGN);  // a caller that died before reading the report must not kill us
  [[maybe_unused]] const int cd = ::chdir("/");  // do not pin the caller's working directory
  close_inherited_fds(report_fd);
  redirect(STDIN_FILENO, "/dev/null", O_RDONLY);
  // Everything the user must see travels through the report; what comes later (e.g. a failed engine
  // restart) goes to the launcher's own log next to the engines' logs.
  const std::string log = copts.log_dir + "/launcher.log";
  redirect(STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND);
  redirect(STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND);
  std::setvbuf(stderr, nullptr, _IOLBF, 0);

  // SIGTERM, SIGINT and SIGHUP become stop requests, handled by one thread. Blocked before the
  // Cluster starts its monitor thread, so that thread inherits the mask; engines are spawned with
  // an empty mask and default dispositions by the Cluster.
  sigset_t stops;
  sigemptyset(&stops);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stops, s);
  ::pthread_sigmask(SIG_BLOCK, &stops, nullptr);

  std::optional<Cluster> cluster;
  try {
    cluster.emplace(copts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s cadre launcher %d: cluster '%s' did not start: %s\n",
                 timestamp().c_str(), int(::getpid()), copts.name.c_str(), e.what());
    write_all(report_fd, std::string(kReportError) + e.what());
    ::_exit(1);  // the Cluster has already stopped what it started and removed the segment
  }
  try {
    std::thread([name = copts.name, stops] {
      int sig = 0;
      if (::sigwait(&stops, &sig) != 0) return;
      std::fprintf(stderr, "%s cadre launcher: signal %d (%s): stopping\n", timestamp().c_str(),
                   sig, ::strsignal(sig));
      try {
        detail::request_stop(name);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "cadre launcher: cannot request a stop: %s\n", e.what());
      }
    }).detach();
  } catch (const std::exception& e) {
    // Without the thread a signal stays pending and harmless; `cadre stop` still works.
    std::fprintf(stderr, "cadre launcher: no signal thread: %s\n", e.what());
  }

  const std::string pids = fmt::format("{}", fmt::join(cluster->pids(), " "));
  std::fprintf(stderr, "%s cadre launcher %d: cluster '%s' started, engine pids %s\n",
               timestamp().c_str(), int(::getpid()), copts.name.c_str(), pids.c_str());
  write_all(report_fd, fmt::format("{}{} {}\n", kReportOk, ::getpid(), pids));
  ::close(report_fd);

  cluster->wait_for_stop_request();
  std::fprintf(stderr, "%s cadre launcher %d: stop requested\n", timestamp().c_str(),
               int(::getpid()));
  // Stops the engines (SIGKILL after a second for busy ones) and removes the segment.
  cluster.reset();
  std::fprintf(stderr, "%s cadre launcher %d: cluster '%s' stopped\n", timestamp().c_str(),
               int(::getpid()), copts.name.c_str());
  ::_exit(0);  // the parent's state was copied by fork(): none of it is ours to tear down
}

/// Reads the launcher's report until it closes the pipe, for at most `timeout`. nullopt on timeout.
std::optional<std::string> read_report(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string out;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, int(std::min<long long>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) throw error(errno_text("poll"));
    if (rc <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, std::size_t(n));
  }
}

std::string describe_wait_status(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return std::string("signal ") + std::to_string(WTERMSIG(st)) + " (" +
           ::strsignal(WTERMSIG(st)) + ")";
  return "status " + std::to_string(st);
}

std::string name_flag(const std::string& name) {
  return name == "default" ? "" : " --name " + name;
}

int start_launcher(const StartOptions& o, const ClusterOptions& copts);

}  // namespace

int start(const StartOptions& o) {
  // Resolve what depends on the caller's working directory and environment before detaching.
  ClusterOptions copts;
  copts.engines = o.engines;
  copts.name = o.name;
  copts.segment_size = o.segment_size;
  copts.threads_per_engine = o.threads_per_engine;
  copts.restart_engines = o.restart;
  copts.start_timeout = o.timeout;
  if (o.engine.empty()) {
    copts.engine = self_dir() + "/cadre-engine";
    if (!is_executable_file(copts.engine))
      throw error("the generic engine " + copts.engine +
                  " is missing; build the cadre-engine target, or pass --engine PATH (a program "
                  "whose main() calls cadre::init(argc, argv) first)");
  } else {
    copts.engine = resolve_program(o.engine, "engine executable");
  }
  // Say "already running" or "someone else's" here rather than after a fork, and before making the
  // log folder, which may be the running cluster's; the Cluster checks again (exclusively).
  if (const auto existing = detail::inspect_cluster(o.name)) {
    if (existing->condition == detail::ClusterCondition::running ||
        existing->condition == detail::ClusterCondition::stopping)
      throw exit_error(kExitAlreadyRunning,
                       "a cluster named '" + o.name + "' is already running (launcher pid " +
                           std::to_string(existing->launcher_pid) + "); stop it with `cadre stop" +
                           name_flag(o.name) + "` or choose another --name");
    if (existing->condition == detail::ClusterCondition::foreign)
      throw connection_error("cannot start cluster '" + o.name + "': " + existing->problem);
  }
  if (o.log_dir.empty()) {
    copts.log_dir = detail::default_log_dir(o.name);
    detail::make_log_dir(copts.log_dir, 2);
  } else {
    copts.log_dir = std::filesystem::absolute(o.log_dir).lexically_normal().string();
    while (copts.log_dir.size() > 1 && copts.log_dir.back() == '/') copts.log_dir.pop_back();
    detail::make_log_dir(copts.log_dir, 0);
  }
  try {
    return start_launcher(o, copts);
  } catch (const std::exception& e) {
    // A failed start leaves no log folder of its own behind (a --log-dir is the user's to keep); what
    // the message points to in it is quoted instead.
    if (!o.log_dir.empty()) throw;
    const std::string quoted = detail::remove_cluster_logs(o.name, copts.log_dir, e.what());
    if (quoted.empty()) throw;
    throw error(e.what() + quoted);
  }
}

namespace {

/// The rest of `cadre start`: forks the launcher and reads its report.
int start_launcher(const StartOptions& o, const ClusterOptions& copts) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw error(errno_text("pipe2"));
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t child = ::fork();
  if (child < 0) {
    const std::string why = errno_text("fork");
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    throw error(why);
  }
  if (child == 0) {
    ::close(pipe_fds[0]);
    launcher_main(copts, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  const auto report = read_report(pipe_fds[0], o.timeout + std::chrono::seconds(10));
  ::close(pipe_fds[0]);

  if (!report)
    throw timeout_error(
        "the launcher of cluster '" + o.name + "' (pid " + std::to_string(child) +
        ") did not report within " + std::to_string((o.timeout.count() + 10'000) / 1000) +
        " s; see " + copts.log_dir + "/launcher.log and `cadre status" + name_flag(o.name) + "`");
  if (report->rfind(kReportOk, 0) == 0) {
    std::vector<std::string> pids;
    std::istringstream in(report->substr(kReportOk.size()));
    std::string launcher;
    in >> launcher;
    for (std::string p; in >> p;) pids.push_back(p);
    fmt::print("started cluster '{}': {} engine{}, launcher pid {}\n", o.name, pids.size(),
               pids.size() == 1 ? "" : "s", launcher);
    fmt::print("engine pids: {}\n", fmt::join(pids, " "));
    fmt::print("logs: {}\n", copts.log_dir);
    fmt::print("stop it with `cadre stop{}`\n", name_flag(o.name));
    return kExitOk;
  }
  int st = 0;
  ::waitpid(child, &st, 0);  // the launcher exits right after reporting a failure
  if (report->rfind(kReportError, 0) == 0) throw error(report->substr(kReportError.size()));
  throw error("the launcher of cluster '" + o.name + "' ended (" + describe_wait_status(st) +
              ") before reporting; see " + copts.log_dir + "/launcher.log");
}

}  // namespace

// =============================================================================================
// cadre run
// =============================================================================================

int run(const RunOptions& o) {
  const std::string program = resolve_program(o.command.at(0), "program");

  // Signals meant for us go to the program instead (see the loop below). Blocked before the Cluster
  // starts its monitor thread, which inherits the mask.
  sigset_t forward, old_mask;
  sigemptyset(&forward);
  for (int s : {SIGINT, SIGQUIT, SIGTERM, SIGHUP}) sigaddset(&forward, s);
  ::pthread_sigmask(SIG_BLOCK, &forward, &old_mask);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { ::pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old_mask};

  ClusterOptions copts;
  copts.engines = o.engines;
  copts.name = o.name;  // empty: the Cluster picks a unique embedded-<pid>-<k>
  copts.engine = program;
  copts.segment_size = o.segment_size;
  copts.threads_per_engine = o.threads_per_engine;
  copts.start_timeout = o.timeout;
  // log_dir stays empty: engine output is forwarded to our stderr as "[engine N] ...".
  Cluster cluster(copts);
  detail::Segment seg = detail::Segment::open(cluster.name());  // to watch its stop request

  // The program's environment: ours, with CADRE_CLUSTER (cadre::Client's default) set to ours.
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "CADRE_CLUSTER=", 14) != 0) env_store.emplace_back(*e);
  env_store.push_back("CADRE_CLUSTER=" + cluster.name());
  std::vector<char*> envp;
  envp.reserve(env_store.size() + 1);
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_store = o.command;
  std::vector<char*> argv;
  argv.reserve(arg_store.size() + 1);
  for (auto& s : arg_store) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &old_mask);  // the program gets the mask we were given
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int rc =
      ::posix_spawn(&pid, program.c_str(), nullptr, &attr, argv.data(), envp.data());  // no shell
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw error("cannot run " + program + ": " + std::strerror(rc));

  const int sig_fd = ::signalfd(-1, &forward, SFD_CLOEXEC | SFD_NONBLOCK);
  const int pid_fd = detail::pidfd_open(pid);
  bool stop_forwarded = false;
  int status = 0;
  for (;;) {
    pollfd fds[2] = {{sig_fd, POLLIN, 0}, {pid_fd, POLLIN, 0}};
    ::poll(fds, 2,
           100);  // -1 descriptors are ignored; the timeout also paces the stop-request check
    signalfd_siginfo si{};
    while (sig_fd >= 0 && ::read(sig_fd, &si, sizeof si) == ssize_t(sizeof si)) {
      // A terminal's Ctrl-C or Ctrl-\ (SI_KERNEL) already reached the program, which is in our
      // process group; a signal sent to us alone (kill, a supervisor) is passed on.
      if (si.ssi_code == SI_KERNEL && (si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT)) continue;
      ::kill(pid, int(si.ssi_signo));
    }
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      status = 0xff00;  // unknowable: report failure
      break;
    }
    // `cadre stop` on this cluster: ask the program to finish. Pairs with the release-store in
    // detail::request_stop().
    if (!stop_forwarded && seg.header().stop_request.load(std::memory_order_acquire) != 0) {
      ::kill(pid, SIGTERM);
      stop_forwarded = true;
    }
  }
  if (sig_fd >= 0) ::close(sig_fd);
  if (pid_fd >= 0) ::close(pid_fd);
  seg = detail::Segment();
  cluster.stop();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kExitFailure;
}

}  // namespace cadre::cli
