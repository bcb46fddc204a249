// cadre/detail/launcher/launcher.hpp — the process that owns a cluster: creates the segment, spawns,
// watches, reaps and restarts engines, forwards their output, and removes everything when it stops.
//
// A launcher records how each engine died (in the engine's slot) before it reclaims the engine's
// heap blocks, so clients fail that engine's tasks with engine_error instead of waiting for ever.
// Four times a second it also checks the segment (its header's checksum, the engine table against what
// it spawned, and what other processes reported damaged): a damaged cluster is stopped, with a line in
// its log, rather than left to crash or hang the processes that trust it.
// Runs in the process that holds a cadre::Cluster (or in `cadre start`'s detached launcher).
#pragma once

#include <cadre/cluster_options.hpp>
#include <cadre/detail/launcher/spawn.hpp>
#include <cadre/detail/launcher/teardown.hpp>
#include <cadre/detail/shm/segment.hpp>
#include <cadre/detail/wire/module_ref.hpp>
#include <cadre/errors.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cadre::detail {

class Launcher {
 public:
  explicit Launcher(ClusterOptions opts) : opts_(std::move(opts)) { start(); }
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;
  ~Launcher() { stop(); }

  const std::string& name() const noexcept { return name_; }
  int size() const noexcept { return int(engines_.size()); }

  /// The engines' current pids (0 for one that is dead and not replaced).
  std::vector<pid_t> pids() const {
    std::lock_guard lock(mu_);
    std::vector<pid_t> out;
    for (const auto& e : engines_) out.push_back(e.pid);
    return out;
  }

  /// How many times engine i was restarted.
  std::uint32_t restarts(int i) const { return seg_.engine(std::uint32_t(i)).generation.load() - 1; }

  /// Blocks until `cadre stop` (or stop_request()) asks this cluster to stop.
  void wait_for_stop_request() const {
    auto& h = seg_.header();
    // A damaged cluster stops by itself (stop_damaged): its launcher's owner learns it here too.
    while (h.stop_request.load(std::memory_order_acquire) == 0 && !damaged_.load()) futex_wait(&h.stop_request, 0, 250'000'000u);
  }

  /// Stops the engines (SIGKILL for those that do not exit within a second), removes the segment.
  void stop() noexcept {
    if (stopped_.exchange(true) || !seg_) return;
    watch_segment(true);  // a damage found only now is still said in the log
    auto& h = seg_.header();
    h.state.store(std::uint32_t(SegmentState::stopping), std::memory_order_release);
    for (std::uint32_t i = 0; i < engines_.size(); ++i) ring_engine(i);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (alive_count() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    {
      std::lock_guard lock(mu_);
      for (auto& e : engines_)
        if (e.pid > 0 && !e.reaped) e.killed = ::kill(e.pid, SIGKILL) == 0;  // not yet reaped: the pid is still ours
    }
    while (alive_count() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    quit_ = true;
    wake_monitor();
    if (monitor_.joinable()) monitor_.join();
    for (int fd : {wake_[0], wake_[1]})
      if (fd >= 0) ::close(fd);
    // A damaged cluster's name went at once (stop_damaged): by now it may be another cluster's.
    if (!damaged_.load()) Segment::remove(name_);
    teardown_unregister(teardown_);
  }

 private:
  struct EngineProc {
    pid_t pid = 0;
    int pidfd = -1;
    int out = -1;          // read end of the output pipe (embedded), or -1
    bool reaped = true;
    std::string partial;   // an output line not yet terminated
    std::uint64_t started_ns = 0;
    int quick_deaths = 0;
    std::uint32_t generation = 0;  // what spawn() stored in the engine's slot
    bool killed = false;           // we sent it SIGKILL: a death by that signal is no crash
  };

  void start() {
    if (const char* parent = std::getenv("CADRE_ENGINE_CLUSTER")) {
      // This process was started as an engine of `parent`, but main() did not call cadre::init(), so
      // it runs the client's program instead. Starting engines here would start copies of this program
      // that do the same: refuse, and the parent reports that its engine exited during start-up.
      throw error(std::string("this process was started as an engine of cluster '") + parent +
                  "', but main() did not call cadre::init(argc, argv) first, so it ran the client program and "
                  "tried to start a cluster of its own; call cadre::init(argc, argv) at the start of main()");
    }
    if (opts_.engines < 0 || opts_.engines > int(kMaxEngines))
      throw argument_error("engine count " + std::to_string(opts_.engines) + " is out of range: use 1 to " +
                                  std::to_string(kMaxEngines) + " (or 0 for one per CPU)");
    const int n = opts_.engines ? opts_.engines : int(usable_cpus());
    static std::atomic<int> counter{0};
    name_ = opts_.name.empty() ? "embedded-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) : opts_.name;
    validate_cluster_name(name_);
    sweep_stale_embedded();

    SegmentConfig cfg;
    cfg.cluster = name_;
    cfg.engines = std::uint32_t(n);
    cfg.size = opts_.segment_size ? opts_.segment_size : (1ull << 30);
    cfg.log_dir = opts_.log_dir;
    cfg.threads_per_engine = std::uint32_t(opts_.threads_per_engine > 0 ? opts_.threads_per_engine
                                                                         : std::max(1, int(usable_cpus()) / n));
    threads_per_engine_ = cfg.threads_per_engine;
    BuildId id;
    if (opts_.engine.empty()) {
      path_ = main_executable_path();
      id = main_build_id();
    } else {
      path_ = opts_.engine;
      if (::access(path_.c_str(), X_OK) != 0)
        throw argument_error("engine executable '" + path_ + "' cannot be run: " + std::strerror(errno) +
                             "; give the path of a program whose main() calls cadre::init(argc, argv) first");
      id = build_id_of_file(path_);
    }
    cfg.engine_path = path_;
    cfg.build_id = id.bytes.data();
    cfg.build_id_len = id.len;
    seg_ = Segment::create(cfg);
    teardown_ = teardown_register(shm_name(name_));
    try {
      if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw error(std::string("pipe2: ") + std::strerror(errno));
      engines_.resize(std::size_t(n));
      monitor_ = std::thread([this] { monitor(); });  // first: a failed spawn must still see the others reaped
      for (int i = 0; i < n; ++i) spawn(i);
      wait_until_ready();
    } catch (...) {
      stop();
      throw;
    }
  }

  void wait_until_ready() {
    const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
    for (;;) {
      int ready = 0;
      for (std::uint32_t i = 0; i < engines_.size(); ++i) {
        const auto st = EngineState(seg_.engine(i).state.load(std::memory_order_acquire));
        if (st == EngineState::dead || st == EngineState::stopped) {
          const auto& s = seg_.engine(i);
          throw error("engine " + std::to_string(i) + " of cluster '" + name_ + "' (" + path_ + ") exited during start-up " +
                      (s.exit_signal ? "from signal " + std::to_string(s.exit_signal.load()) : "with code " + std::to_string(s.exit_code.load())) +
                      (opts_.engine.empty() ? "; does main() call cadre::init(argc, argv) first?" : "; is it a cadre engine?") +
                      (opts_.log_dir.empty() ? " Its output is above." : " See " + opts_.log_dir + "/engine-" + std::to_string(i) + ".log"));
        }
        ready += st == EngineState::idle || st == EngineState::busy;
      }
      if (ready == int(engines_.size())) return;
      if (std::chrono::steady_clock::now() > deadline)
        throw error("engines of cluster '" + name_ + "' did not start within " + std::to_string(opts_.start_timeout.count()) +
                    " ms (" + std::to_string(ready) + " of " + std::to_string(engines_.size()) + " ready); does " + path_ +
                    " call cadre::init(argc, argv) at the start of main()?");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  void spawn(int i) {
    auto& slot = seg_.engine(std::uint32_t(i));
    const std::uint32_t generation = slot.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
    slot.exit_signal.store(0);
    slot.exit_code.store(0);
    slot.pid.store(0);
    slot.crash[0] = 0;
    slot.state.store(std::uint32_t(EngineState::starting), std::memory_order_release);

    int out_fd = -1, read_end = -1;
    if (!opts_.log_dir.empty()) {
      const std::string log = opts_.log_dir + "/engine-" + std::to_string(i) + ".log";
      out_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (out_fd < 0) throw error("cannot open engine log " + log + ": " + std::strerror(errno));
    } else {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) throw error(std::string("pipe2: ") + std::strerror(errno));
      read_end = p[0];
      out_fd = p[1];
      ::fcntl(read_end, F_SETFL, O_NONBLOCK);  // the monitor must never block on an engine's output
    }
    const pid_t pid = spawn_engine_process(path_, opts_.engine_args, name_, i, threads_per_engine_, out_fd);
    if (pid < 0) {
      const int err = -pid;
      if (read_end >= 0) ::close(read_end);
      slot.state.store(std::uint32_t(EngineState::dead));
      throw error("cannot start engine " + std::to_string(i) + " (" + path_ + "): " + std::strerror(err));
    }
    slot.pid.store(pid, std::memory_order_release);
    teardown_set_pid(teardown_, i, pid);
    std::lock_guard lock(mu_);
    auto& e = engines_[std::size_t(i)];
    e.pid = pid;
    e.pidfd = pidfd_open(pid);
    e.out = read_end;
    e.reaped = false;
    e.started_ns = now_ns();
    e.generation = generation;
    e.killed = false;
    wake_monitor();
  }

  /// The launcher's thread: reaps engines, forwards their output, restarts them.
  void monitor() noexcept {
    std::vector<pollfd> fds;
    struct Watch {
      int engine, kind, fd;  // kind 0: pidfd, 1: output
    };
    std::vector<Watch> what;
    for (;;) {
      fds.clear();
      what.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      what.push_back({-1, 0, wake_[0]});
      {
        std::lock_guard lock(mu_);
        for (int i = 0; i < int(engines_.size()); ++i) {
          const auto& e = engines_[std::size_t(i)];
          if (!e.reaped) {
            fds.push_back({e.pidfd, POLLIN, 0});
            what.push_back({i, 0, e.pidfd});
          }
          if (e.out >= 0) {
            fds.push_back({e.out, POLLIN, 0});
            what.push_back({i, 1, e.out});
          }
        }
      }
      const bool quitting = quit_.load();
      if (quitting && fds.size() == 1) return;
      const int rc = ::poll(fds.data(), fds.size(), quitting ? 100 : 250);
      if (rc == 0 && !quitting) reclaim_dead_clients();
      if (rc == 0 && quitting) {
        close_outputs();
        return;
      }
      for (std::size_t k = 0; k < fds.size(); ++k) {
        if (!fds[k].revents) continue;
        const auto [i, kind, fd] = what[k];
        if (i < 0) {
          char buf[64];
          while (::read(wake_[0], buf, sizeof buf) > 0) {
          }
        } else if (kind == 1) {
          forward_output(i, fd);
        } else {
          reap(i);
        }
      }
      // Engines without a pidfd (kernels before 5.3) are polled with waitid once a second.
      std::vector<int> unwatched;
      {
        std::lock_guard lock(mu_);
        for (int i = 0; i < int(engines_.size()); ++i)
          if (!engines_[std::size_t(i)].reaped && engines_[std::size_t(i)].pidfd < 0) unwatched.push_back(i);
      }
      for (int i : unwatched) reap(i);
      if (!quitting) watch_segment();
    }
  }

  /// Once per kWatchPeriodNs (or now, with `now`): stops the cluster if the segment is damaged. Once
  /// stopping for that, kills the engines that have not exited after two seconds.
  void watch_segment(bool now = false) noexcept {
    const std::uint64_t t = now_ns();
    if (damaged_.load()) {
      const std::uint64_t kill_at = kill_at_ns_.load();
      if (kill_at && t > kill_at && kill_at_ns_.exchange(0) == kill_at) {
        std::lock_guard lock(mu_);
        for (auto& e : engines_)
          if (e.pid > 0 && !e.reaped) e.killed = ::kill(e.pid, SIGKILL) == 0;
      }
      return;
    }
    if (!now && t < next_watch_ns_) return;
    next_watch_ns_ = t + kWatchPeriodNs;
    try {
      if (const auto [what, why] = inspect(); what != Damage::none) stop_damaged(what, why);
    } catch (...) {
      // No memory for a message: the next look tries again.
    }
  }

  static constexpr std::uint64_t kWatchPeriodNs = 250'000'000;

  /// What is damaged in the segment, and how: its header no longer matches its checksum, another process
  /// reported damage, or an engine's entry in the engine table no longer holds the pid and generation
  /// this launcher gave it (or a state no cadre writes).
  std::pair<Damage, std::string> inspect() {
    if (const char* why = seg_.damage()) {
      const auto found = Damage(seg_.header().damaged.load(std::memory_order_acquire));
      return {found == Damage::none ? Damage::header : found, why};
    }
    std::lock_guard lock(mu_);
    for (std::uint32_t i = 0; i < engines_.size(); ++i) {
      const EngineProc& e = engines_[i];
      if (e.reaped || e.pid <= 0) continue;  // spawn() has not finished: its slot is being written
      const EngineSlot& s = seg_.engine(i);
      const std::int32_t pid = s.pid.load(std::memory_order_acquire);
      const std::uint32_t generation = s.generation.load(std::memory_order_acquire), state = s.state.load(std::memory_order_acquire);
      if (pid != e.pid || generation != e.generation || state > std::uint32_t(EngineState::stopped))
        return {Damage::engine_table, "the engine table says engine " + std::to_string(i) + " is pid " + std::to_string(pid) +
                                          ", generation " + std::to_string(generation) + ", state " + std::to_string(state) +
                                          "; its launcher started pid " + std::to_string(e.pid) + " as generation " +
                                          std::to_string(e.generation)};
    }
    return {Damage::none, {}};
  }

  /// Stops a damaged cluster: says so in the log, marks the segment stopping (engines exit at their next
  /// look; those that do not within two seconds are killed), wakes every waiting client (their tasks fail
  /// with connection_error at their next health check) and removes the segment's name, so that nobody
  /// attaches any more. The owner of the launcher (wait_for_stop_request) is let go too.
  void stop_damaged(Damage what, const std::string& why) noexcept {
    if (damaged_.exchange(true)) return;
    seg_.report_damage(what);
    std::fprintf(stderr,
                 "cadre: the shared memory of cluster '%s' is corrupted (%s); stopping the cluster: its engines exit, its "
                 "segment is removed, and its clients' tasks fail with connection_error\n",
                 name_.c_str(), why.c_str());
    std::fflush(stderr);
    auto& h = seg_.header();
    // Pairs with the engines' acquire-load of state (Engine::stopping).
    h.state.store(std::uint32_t(SegmentState::stopping), std::memory_order_release);
    for (std::uint32_t i = 0; i < engines_.size(); ++i) ring_engine(i);
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      auto& cs = seg_.client(c);
      cs.doorbell.fetch_add(1);
      futex_wake(&cs.doorbell, INT_MAX);
    }
    Segment::remove(name_);
    kill_at_ns_ = now_ns() + 2'000'000'000u;
    // Pairs with the acquire-load in wait_for_stop_request().
    h.stop_request.store(1, std::memory_order_release);
    futex_wake(&h.stop_request, INT_MAX);
  }

  void forward_output(int i, int fd) {
    std::lock_guard lock(mu_);
    auto& e = engines_[std::size_t(i)];
    if (e.out != fd || fd < 0) return;  // that engine was replaced since the poll: its pipe is closed
    char buf[65536];
    const ssize_t n = ::read(e.out, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      if (!e.partial.empty()) std::fprintf(stderr, "[engine %d] %s\n", i, e.partial.c_str());
      e.partial.clear();
      ::close(e.out);
      e.out = -1;
      return;
    }
    e.partial.append(buf, std::size_t(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = e.partial.find('\n', start)) != std::string::npos; start = nl + 1)
      std::fprintf(stderr, "[engine %d] %.*s\n", i, int(nl - start), e.partial.data() + start);
    e.partial.erase(0, start);
    std::fflush(stderr);
  }

  /// Forwards what a dead engine left in its pipe and closes it (before a replacement gets a new one).
  void drain_output(int i) {
    for (;;) {
      int fd;
      {
        std::lock_guard lock(mu_);
        fd = engines_[std::size_t(i)].out;
      }
      if (fd < 0) return;
      forward_output(i, fd);  // closes the pipe at end of file
      std::lock_guard lock(mu_);
      if (engines_[std::size_t(i)].out == fd) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) {  // nothing more now: a grandchild may still hold the pipe; let it go
          if (!engines_[std::size_t(i)].partial.empty())
            std::fprintf(stderr, "[engine %d] %s\n", i, engines_[std::size_t(i)].partial.c_str());
          engines_[std::size_t(i)].partial.clear();
          ::close(fd);
          engines_[std::size_t(i)].out = -1;
          return;
        }
      }
    }
  }

  void close_outputs() {
    std::lock_guard lock(mu_);
    for (int i = 0; i < int(engines_.size()); ++i) {
      auto& e = engines_[std::size_t(i)];
      if (e.out >= 0) {
        if (!e.partial.empty()) std::fprintf(stderr, "[engine %d] %s\n", i, e.partial.c_str());
        ::close(e.out);
        e.out = -1;
      }
    }
  }

  void reap(int i) {
    siginfo_t si{};
    pid_t pid;
    bool killed;
    {
      std::lock_guard lock(mu_);
      pid = engines_[std::size_t(i)].pid;
      killed = engines_[std::size_t(i)].killed;
      if (engines_[std::size_t(i)].reaped) return;
    }
    if (::waitid(P_PID, id_t(pid), &si, WEXITED | WNOHANG) != 0 || si.si_pid != pid) return;
    auto& slot = seg_.engine(std::uint32_t(i));
    const int sig = (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) ? si.si_status : 0;
    if (sig != 0 && !(killed && sig == SIGKILL)) {
      std::fprintf(stderr, "cadre: engine %d (pid %d) of cluster '%s' died from signal %d (%s)\n", i, int(pid), name_.c_str(), sig,
                   ::strsignal(sig));
      std::fflush(stderr);
    }
    const bool damaged = damaged_.load();
    slot.exit_signal.store(sig);
    slot.exit_code.store(si.si_code == CLD_EXITED ? si.si_status : -1);
    slot.last_pid.store(pid);
    slot.last_signal.store(sig);
    slot.last_generation.store(slot.generation.load(), std::memory_order_release);  // before spawn() bumps it
    if (slot.counted_runnable.exchange(0)) seg_.header().runnable.fetch_sub(1);
    slot.completing.store(0, std::memory_order_release);  // it may have died posting a completion
    slot.dead_claim.store(slot.lb_claim.exchange(0), std::memory_order_release);
    const bool stopping = stopped_.load();
    slot.state.store(std::uint32_t(stopping && sig == 0 ? EngineState::stopped : EngineState::dead), std::memory_order_release);
    // Pairs with the fence in ShmTransport::hand_over: a client either sees the engine dead and keeps its
    // block, or handed it over before this reclaim looks at its owner tag.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!damaged) {  // a damaged heap is not worth tidying: the segment goes with the cluster
      seg_.reclaim(engine_tag(std::uint32_t(i)));
      seg_.reclaim(transit_tag(std::uint32_t(i)));
    }
    teardown_set_pid(teardown_, i, 0);
    bool restart = false;
    drain_output(i);
    {
      std::lock_guard lock(mu_);
      auto& e = engines_[std::size_t(i)];
      if (e.pidfd >= 0) ::close(e.pidfd);
      e.pidfd = -1;
      e.reaped = true;
      e.pid = 0;
      if (now_ns() - e.started_ns < 1'000'000'000u) ++e.quick_deaths;
      else e.quick_deaths = 0;
      restart = opts_.restart_engines && !stopping && !damaged && e.quick_deaths < 3;
    }
    // Waiting clients learn of the death now rather than at their next health check.
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      auto& cs = seg_.client(c);
      cs.doorbell.fetch_add(1);
      futex_wake(&cs.doorbell, INT_MAX);
    }
    if (restart) {
      try {
        spawn(i);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "cadre: cannot restart engine %d: %s\n", i, ex.what());
      }
    }
  }

  /// Frees what clients that died without detaching owned, so the next client finds the segment clean
  /// and engines stop working for them.
  void reclaim_dead_clients() noexcept {
    if (damaged_.load()) return;
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      auto& s = seg_.client(c);
      const std::int32_t pid = s.pid.load();
      if (pid != 0 && !Segment::slot_holder_alive(pid)) seg_.retire_client(c, pid, true);
    }
  }

  int alive_count() const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& e : engines_) n += !e.reaped;
    return n;
  }

  void ring_engine(std::uint32_t i) {
    auto& s = seg_.engine(i);
    s.doorbell.fetch_add(1);
    futex_wake(&s.doorbell, INT_MAX);
  }

  void wake_monitor() noexcept {
    if (wake_[1] >= 0) {
      const char c = 1;
      [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
    }
  }

  /// Removes segments of this user's embedded clusters whose launcher died without cleaning up.
  static void sweep_stale_embedded() noexcept {
    const std::string prefix = shm_name("embedded-");
    DIR* d = ::opendir("/dev/shm");
    if (!d) return;
    while (dirent* ent = ::readdir(d)) {
      const std::string n = ent->d_name;
      if (n.rfind(prefix, 0) != 0) continue;
      const std::string cluster = n.substr(prefix.size() - std::string("embedded-").size());
      // embedded-<pid>-<k>: stale when <pid> is gone.
      const pid_t pid = pid_t(std::atoi(cluster.c_str() + std::string("embedded-").size()));
      if (pid > 0 && !process_alive(pid)) Segment::remove(cluster);
    }
    ::closedir(d);
  }

  ClusterOptions opts_;
  std::string name_, path_;
  Segment seg_;
  mutable std::mutex mu_;
  std::vector<EngineProc> engines_;
  std::thread monitor_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> quit_{false}, stopped_{false};
  std::atomic<bool> damaged_{false};  // stop_damaged() ran
  // watch_segment() runs in the monitor thread and in stop(): plain counters, but atomic.
  std::atomic<std::uint64_t> next_watch_ns_{0};
  std::atomic<std::uint64_t> kill_at_ns_{0};  // damaged: when the engines still running are killed (0: done)
  std::uint32_t threads_per_engine_ = 1;
  int teardown_ = -1;
};

}  // namespace cadre::detail
