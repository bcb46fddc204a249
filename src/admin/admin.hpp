// src/admin/admin.hpp — cluster administration by name: inspect, list and stop from outside.
//
// Used by the `cadre` CLI and by its tests. Nothing here joins a cluster: inspection maps the
// segment read-only and takes no client slot, so it works on stale, stopping and half-made segments
// too. Nothing here ever kills a process: a launcher is asked to stop through the stop_request
// futex, and the engines of a dead launcher leave by themselves (they watch getppid()).
#pragma once

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <cadre/detail/shm/layout.hpp>
#include <cadre/detail/shm/segment.hpp>
#include <cadre/detail/base/sys.hpp>
#include <cadre/errors.hpp>

namespace cadre::detail {

// =============================================================================================
// Small helpers: sizes, paths, processes
// =============================================================================================

/// Parses a byte count: digits with an optional binary suffix K, M, G or T (also "KiB", "MB", any
/// case; all powers of 1024). `parse_byte_size("512M") == 512 << 20`. Throws argument_error naming
/// the text for anything else, for zero, and for values that do not fit in 64 bits.
inline std::uint64_t parse_byte_size(std::string_view text) {
  auto bad = [&](const char* why) {
    return argument_error(
        "invalid size '" + std::string(text) + "': " + why +
        "; write a number of bytes with an optional K, M, G or T suffix, e.g. 512M or 2G");
  };
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) throw bad("too large");
  if (ec != std::errc() || end == text.data()) throw bad("it does not start with a number");
  std::string suffix(end, text.data() + text.size());
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return char(std::toupper(c)); });
  int shift = 0;
  if (!suffix.empty()) {
    const std::string_view units = "KMGT";
    const auto pos = units.find(suffix[0]);
    const std::string_view rest = std::string_view(suffix).substr(1);
    if (suffix == "B") {
      shift = 0;
    } else if (pos != std::string_view::npos && (rest.empty() || rest == "B" || rest == "IB")) {
      shift = 10 * int(pos + 1);
    } else {
      throw bad("unknown unit");
    }
  }
  if (value == 0) throw bad("it must be larger than zero");
  if (shift && value > (UINT64_MAX >> shift)) throw bad("too large");
  return value << shift;
}

/// "0700"-style octal permission bits.
inline std::string fmt_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", unsigned(m & 07777));
  return buf;
}

/// True while the cluster's segment has a name in /dev/shm (whatever state it is in).
inline bool segment_exists(std::string_view cluster) {
  struct stat st {};
  return ::lstat(segment_path(cluster).c_str(), &st) == 0;
}

/// True when pid is alive and has the cluster's segment mapped — as its launcher and its engines do
/// for their whole lives — so a recycled pid is never taken for them. When /proc/<pid>/maps cannot
/// be read (another user's process, a restricted /proc) this falls back to process_alive(pid).
inline bool process_maps_segment(pid_t pid, std::string_view cluster) {
  if (!process_alive(pid)) return false;
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  if (!maps) return true;
  const std::string needle = segment_path(cluster);
  std::string line;
  bool read_any = false;
  while (std::getline(maps, line)) {
    read_any = true;
    // The path is the last field, perhaps followed by " (deleted)" once the name is removed; the
    // character after it must end the path, or cluster "a" would match cluster "ab".
    const auto at = line.find(needle);
    if (at == std::string::npos) continue;
    const std::size_t after = at + needle.size();
    if (after == line.size() || line[after] == ' ') return true;
  }
  return !read_any && process_alive(pid);  // an unreadable (empty) maps file: trust the pid
}

/// The short command name of a process (/proc/<pid>/comm), or "" when it cannot be read.
inline std::string process_name(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

/// Where `cadre start` writes engine logs by default: $XDG_RUNTIME_DIR/cadre/<name> when that
/// variable names an absolute directory, else /tmp/cadre-<euid>/<name>.
inline std::string default_log_dir(std::string_view cluster) {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  struct stat st {};
  if (xdg && xdg[0] == '/' && ::stat(xdg, &st) == 0 && S_ISDIR(st.st_mode))
    return std::string(xdg) + "/cadre/" + std::string(cluster);
  return "/tmp/cadre-" + std::to_string(::geteuid()) + "/" + std::string(cluster);
}

/// Creates `dir` and its missing parents with mode 0700; the result must be a directory. The last
/// `owned` components — 2 for cadre's own `cadre-<uid>/<name>` or `cadre/<name>` — must moreover be
/// real directories (not symlinks) of this user, tightened to 0700 if needed, so that nobody else
/// can plant or read the logs in a shared /tmp. Throws cadre::error naming the path.
inline void make_log_dir(const std::string& dir, std::size_t owned) {
  if (dir.empty() || dir[0] != '/')
    throw error("log directory '" + dir + "' must be an absolute path");
  std::vector<std::string> parts;  // "/a", "/a/b", ...
  for (std::size_t at = 1; at <= dir.size();) {
    const std::size_t next = std::min(dir.find('/', at), dir.size());
    if (next > at) parts.push_back(dir.substr(0, next));
    at = next + 1;
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const bool ours = i + owned >= parts.size();
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
      throw error("cannot create log directory " + p + ": " + std::strerror(errno));
    struct stat st {};
    if ((ours ? ::lstat(p.c_str(), &st) : ::stat(p.c_str(), &st)) != 0)
      throw error("cannot stat " + p + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode))
      throw error(p + " is not a directory" + (S_ISLNK(st.st_mode) ? " (a symbolic link)" : "") +
                  "; remove it or choose another log directory with --log-dir");
    if (!ours) continue;
    if (st.st_uid != ::geteuid())
      throw error("log directory " + p + " belongs to uid " + std::to_string(st.st_uid) +
                  ", not to this user (uid " + std::to_string(::geteuid()) +
                  "); remove it, set XDG_RUNTIME_DIR, or choose another with --log-dir");
    if ((st.st_mode & 077) != 0 && ::chmod(p.c_str(), 0700) != 0)
      throw error("cannot make " + p + " private (chmod 0700): " + std::strerror(errno));
  }
}

/// The last lines of the log file `name` in the folder `dir_fd`, as a note for an error message
/// that names `path`, which is being removed.
inline std::string quote_removed_log(int dir_fd, const std::string& name, const std::string& path) {
  std::string tail;
  const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st {};
  if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    tail.resize(std::size_t(std::min<off_t>(st.st_size, 4096)));
    const ssize_t n = ::pread(fd, tail.data(), tail.size(), st.st_size - off_t(tail.size()));
    tail.resize(n > 0 ? std::size_t(n) : 0);
  }
  if (fd >= 0) ::close(fd);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  std::vector<std::string> lines;
  for (std::size_t at = tail.size(); at > 0 && lines.size() < 5;) {
    const std::size_t nl = tail.rfind('\n', at - 1);
    const std::size_t from = nl == std::string::npos ? 0 : nl + 1;
    lines.insert(lines.begin(), tail.substr(from, at - from));
    at = nl == std::string::npos ? 0 : nl;
  }
  std::string note = "\n" + path + " (removed with the logs of the failed start) ";
  if (lines.empty()) return note + "was empty";
  note += "ended with:";
  for (const auto& l : lines) note += "\n    " + l;
  return note;
}

/// Removes the log folder `dir` of the cluster, when it is cadre's own (default_log_dir(), or
/// /tmp/cadre-<euid>/<cluster>: never a --log-dir, which is the user's) and no segment of that name
/// exists (a running cluster keeps its logs): cadre's files in it (launcher.log, engine-N.log),
/// then the folder if that left it empty. Follows no symbolic link and leaves a folder this user
/// does not own alone. Returns, for each removed file that `message` names, a note quoting its last
/// lines, to append to that message.
inline std::string remove_cluster_logs(std::string_view cluster, const std::string& dir, std::string_view message = {}) {
  const std::string tmp_dir = "/tmp/cadre-" + std::to_string(::geteuid()) + "/" + std::string(cluster);
  if (segment_exists(cluster) || (dir != default_log_dir(cluster) && dir != tmp_dir)) return {};
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return {};
  struct stat st {};
  DIR* d = ::fstat(dir_fd, &st) == 0 && st.st_uid == ::geteuid() ? ::fdopendir(dir_fd) : nullptr;
  if (!d) {
    ::close(dir_fd);
    return {};
  }
  auto is_log = [](std::string_view n) {
    if (n == "launcher.log") return true;
    if (n.size() <= 11 || n.substr(0, 7) != "engine-" || n.substr(n.size() - 4) != ".log") return false;
    const std::string_view id = n.substr(7, n.size() - 11);
    return std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::vector<std::string> logs;
  while (const dirent* ent = ::readdir(d))
    if (is_log(ent->d_name)) logs.emplace_back(ent->d_name);
  std::sort(logs.begin(), logs.end());
  std::string notes;
  for (const auto& n : logs) {
    std::string path = dir;
    path += '/';
    path += n;
    if (message.find(path) != std::string_view::npos) notes += quote_removed_log(::dirfd(d), n, path);
    ::unlinkat(::dirfd(d), n.c_str(), 0);
  }
  ::closedir(d);
  ::rmdir(dir.c_str());  // fails, as it should, when something else is in it
  return notes;
}

// =============================================================================================
// Inspection: a snapshot of a cluster, read without joining it
// =============================================================================================

/// What a cluster's segment says about it.
enum class ClusterCondition {
  running,       ///< ready, and its launcher is alive
  stopping,      ///< its launcher is stopping it
  stale,         ///< its launcher is gone (ready or stopping): `cadre stop` cleans it up
  half_made,     ///< not (yet) initialised: being created, or abandoned by a creator that died
  incompatible,  ///< made by another cadre version (layout) or corrupt
  foreign,       ///< not owned exclusively by this user: never touched
};

inline const char* to_string(ClusterCondition c) noexcept {
  switch (c) {
    case ClusterCondition::running:
      return "running";
    case ClusterCondition::stopping:
      return "stopping";
    case ClusterCondition::stale:
      return "stale";
    case ClusterCondition::half_made:
      return "half-made";
    case ClusterCondition::incompatible:
      return "incompatible";
    case ClusterCondition::foreign:
      return "foreign";
  }
  return "?";
}

/// One engine slot, copied out of the segment.
struct EngineInfo {
  int id = 0;
  pid_t pid = 0;  ///< 0: never started (or being replaced)
  EngineState state = EngineState::empty;
  std::uint32_t generation = 0;  ///< 1 for the first start; restarts = generation - 1
  std::uint64_t tasks_done = 0;
  std::uint64_t heartbeat_ns = 0;  ///< CLOCK_MONOTONIC nanoseconds of its last sign of life, 0: none
  int exit_code = 0, exit_signal = 0;  ///< how it died, when state is dead
  bool alive = false;                  ///< the pid is alive and maps this cluster's segment
  std::string log_file;                ///< empty: its output goes to the launcher's stderr

  std::uint32_t restarts() const noexcept { return generation > 0 ? generation - 1 : 0; }
};

/// A snapshot of one cluster. Fields past `problem` are meaningful only when the header could be
/// read (running, stopping, stale).
struct ClusterInfo {
  std::string name;
  std::string segment_path;
  ClusterCondition condition = ClusterCondition::half_made;
  std::string problem;       ///< for half_made, incompatible, foreign: what is wrong
  std::uint64_t age_ns = 0;  ///< time since the segment file last changed (for half_made)
  pid_t launcher_pid = 0;
  bool launcher_alive = false;
  std::string launcher_name;  ///< its /proc comm, e.g. "cadre" or the embedding program
  std::uint64_t segment_size = 0, heap_bytes = 0, used_bytes = 0;
  std::uint32_t engine_count = 0, threads_per_engine = 0;
  std::string engine_path, log_dir;
  std::vector<EngineInfo> engines;

  /// True when nobody but `cadre stop` will clean this cluster up: its launcher is gone, or its
  /// segment has stayed half-made longer than a creator needs (2 s, as Segment::open waits).
  bool stale() const noexcept {
    return condition == ClusterCondition::stale ||
           (condition == ClusterCondition::half_made && age_ns >= 2'000'000'000u);
  }
  /// True when the header was read: the fields below `problem` are valid.
  bool readable() const noexcept {
    return condition == ClusterCondition::running || condition == ClusterCondition::stopping ||
           condition == ClusterCondition::stale;
  }
};

/// A snapshot of the named cluster, read through a read-only mapping of its segment (no client
/// slot, no waiting). std::nullopt when no segment of that name exists. Throws argument_error for
/// an invalid name and connection_error when the segment exists but cannot be opened.
inline std::optional<ClusterInfo> inspect_cluster(std::string_view cluster) {
  validate_cluster_name(cluster);
  ClusterInfo info;
  info.name = std::string(cluster);
  info.segment_path = segment_path(cluster);
  // Type and owner before any open: another user's FIFO or file is described, never opened.
  auto foreign = [&](const struct stat& st) {
    info.condition = ClusterCondition::foreign;
    info.problem = unusable_segment_file(info.segment_path, st, "use another name (--name NAME)");
    return info;
  };
  if (struct stat st {}; ::lstat(info.segment_path.c_str(), &st) == 0 && !is_private_segment_file(st))
    return foreign(st);
  // O_NONBLOCK: what another user put under this name may be a FIFO, whose open would wait for a writer.
  const int fd = ::open(info.segment_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw connection_error("cannot open " + info.segment_path + ": " + std::strerror(errno));
  }
  struct stat st {};
  const int stat_rc = ::fstat(fd, &st);
  const int stat_errno = errno;
  if (stat_rc != 0) {
    ::close(fd);
    throw connection_error("cannot stat " + info.segment_path + ": " + std::strerror(stat_errno));
  }
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const std::int64_t age =
      (std::int64_t(now.tv_sec) - std::int64_t(st.st_ctim.tv_sec)) * 1'000'000'000 +
      (std::int64_t(now.tv_nsec) - std::int64_t(st.st_ctim.tv_nsec));
  info.age_ns = age > 0 ? std::uint64_t(age) : 0;
  if (!is_private_segment_file(st)) {  // replaced since the lstat above
    ::close(fd);
    return foreign(st);
  }
  const std::uint64_t file_size = std::uint64_t(st.st_size);
  if (file_size < sizeof(SegmentHeader)) {
    ::close(fd);
    info.condition = ClusterCondition::half_made;
    info.problem = "its segment is " + std::to_string(file_size) + " bytes, not yet sized";
    return info;
  }
  void* p = ::mmap(nullptr, file_size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (p == MAP_FAILED)
    throw connection_error("cannot map " + info.segment_path + ": " + std::strerror(map_errno));
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{p, file_size};
  const auto* base = static_cast<const std::byte*>(p);
  const auto& h = *reinterpret_cast<const SegmentHeader*>(base);

  // Pairs with the release-store of SegmentState::ready at the end of Segment::init(): the fields
  // written before it are complete once we see ready (or stopping, which comes later).
  const auto state = SegmentState(h.state.load(std::memory_order_acquire));
  if (h.magic != kMagic || state == SegmentState::initialising) {
    info.condition = ClusterCondition::half_made;
    info.problem = "its segment header is not initialised";
    if (h.magic == kMagic) info.launcher_pid = h.creator_pid;
    return info;
  }
  if (h.layout_version != kLayoutVersion) {
    info.condition = ClusterCondition::incompatible;
    info.problem = "it uses segment layout " + std::to_string(h.layout_version) +
                   " and this cadre expects " + std::to_string(kLayoutVersion) +
                   "; manage it with the cadre version that started it";
    return info;
  }
  // Offsets and counts come from shared memory: check them before following them.
  if (h.engine_count == 0 || h.engine_count > kMaxEngines || h.segment_size != file_size ||
      h.engines_off < sizeof(SegmentHeader) || h.engines_off % alignof(EngineSlot) != 0 ||
      h.engines_off + std::uint64_t(h.engine_count) * sizeof(EngineSlot) > file_size ||
      h.heap_off > file_size || h.heap_pages > file_size / kPageSize) {
    info.condition = ClusterCondition::incompatible;
    info.problem = "its segment header is inconsistent (corrupt)";
    return info;
  }
  auto text = [](const char* s, std::size_t cap) { return std::string(s, ::strnlen(s, cap)); };
  info.launcher_pid = h.creator_pid;
  info.launcher_alive = process_maps_segment(info.launcher_pid, cluster);
  if (info.launcher_alive) info.launcher_name = process_name(info.launcher_pid);
  info.condition = !info.launcher_alive              ? ClusterCondition::stale
                   : state == SegmentState::stopping ? ClusterCondition::stopping
                                                     : ClusterCondition::running;
  info.segment_size = h.segment_size;
  info.heap_bytes = h.heap_pages * kPageSize;  // as Segment::heap_bytes()
  info.used_bytes =
      std::min<std::uint64_t>(h.used_pages.load(std::memory_order_relaxed), h.heap_pages) *
      kPageSize;
  info.engine_count = h.engine_count;
  info.threads_per_engine = h.threads_per_engine;
  info.engine_path = text(h.engine_path, sizeof h.engine_path);
  if (h.log_to_files) info.log_dir = text(h.log_dir, sizeof h.log_dir);
  const auto* slots = reinterpret_cast<const EngineSlot*>(base + h.engines_off);
  for (std::uint32_t i = 0; i < h.engine_count; ++i) {
    const EngineSlot& s = slots[i];
    EngineInfo e;
    e.id = int(i);
    e.pid = s.pid.load(std::memory_order_acquire);
    e.state = engine_state(s);
    e.generation = s.generation.load(std::memory_order_relaxed);
    e.tasks_done = s.tasks_done.load(std::memory_order_relaxed);
    e.heartbeat_ns = s.heartbeat_ns.load(std::memory_order_relaxed);
    e.exit_code = s.exit_code.load(std::memory_order_relaxed);
    e.exit_signal = s.exit_signal.load(std::memory_order_relaxed);
    e.alive = e.pid > 0 && process_maps_segment(e.pid, cluster);
    if (!info.log_dir.empty()) e.log_file = info.log_dir + "/engine-" + std::to_string(i) + ".log";
    info.engines.push_back(std::move(e));
  }
  return info;
}

/// This user's clusters (every /dev/shm entry named shm_name(<cluster>)), sorted by name.
inline std::vector<ClusterInfo> list_clusters() {
  const std::string prefix = shm_name("");
  std::vector<std::string> names;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const dirent* ent = ::readdir(d)) {
      const std::string_view n = ent->d_name;
      if (n.size() <= prefix.size() || n.substr(0, prefix.size()) != prefix) continue;
      names.emplace_back(n.substr(prefix.size()));
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<ClusterInfo> out;
  for (const auto& n : names) {
    try {
      if (auto info = inspect_cluster(n)) out.push_back(std::move(*info));
    } catch (const argument_error&) {
      // Not a name cadre would have made: not ours to show.
    } catch (const connection_error&) {
      // Vanished or unreadable between readdir and open.
    }
  }
  return out;
}

// =============================================================================================
// Stopping
// =============================================================================================

/// Sets the cluster's stop request and wakes its launcher (the `cadre start` process, which sleeps
/// in Cluster::wait_for_stop_request()); returns at once. Throws connection_error when the cluster
/// is not running (absent, half-made, stopping).
inline void request_stop(std::string_view cluster) {
  Segment seg = Segment::open(cluster, std::chrono::milliseconds(500));
  auto& h = seg.header();
  // Pairs with the acquire-load in Cluster::wait_for_stop_request().
  h.stop_request.store(1, std::memory_order_release);
  futex_wake(&h.stop_request, std::numeric_limits<int>::max());
}

/// What stop_cluster() did.
struct StopReport {
  std::string name;
  pid_t launcher_pid = 0;
  bool stale =
      false;  ///< the launcher was gone: the engines were awaited and the segment removed here
  bool half_made = false;  ///< an abandoned half-made segment was removed
  std::vector<pid_t>
      lingering;  ///< engines of a stale cluster still alive at the timeout (never killed)
  std::string log_dir;  ///< where its engines logged, as its segment said; empty: unknown or none
};

/// Stops the named cluster and waits (at most `timeout`) until it is gone.
///
/// A running cluster: sets its stop request; its launcher stops the engines and removes the
/// segment, and this waits until the launcher has unmapped the segment and the name is gone. A
/// stale cluster (launcher dead): its engines leave by themselves within about a second; this waits
/// for them, then removes the segment — engines still alive at the timeout are reported in
/// `lingering`, not killed. A segment half-made for more than two seconds is removed.
///
/// Throws connection_error when there is no such cluster or it is foreign or incompatible, and
/// timeout_error when a live launcher has not finished within the timeout (which may be as long as
/// milliseconds::max(): the deadline saturates instead of overflowing into the past).
inline StopReport stop_cluster(std::string_view cluster, std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline =
      timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(clock::time_point::max() - start)
          ? clock::time_point::max()
          : start + std::max(timeout, std::chrono::milliseconds(0));
  const auto tick = std::chrono::milliseconds(5);
  StopReport report;
  report.name = std::string(cluster);

  std::optional<ClusterInfo> info = inspect_cluster(cluster);
  if (!info)
    throw connection_error("no cluster named '" + std::string(cluster) +
                           "' is running for this user; `cadre list` shows the clusters there are");

  // A segment being created becomes ready within milliseconds; one still half-made after two
  // seconds (or the timeout, if shorter) was abandoned by a creator that died.
  const auto half_made_deadline = std::min(deadline, clock::now() + std::chrono::seconds(2));
  while (info && info->condition == ClusterCondition::half_made && !info->stale() &&
         clock::now() < half_made_deadline) {
    std::this_thread::sleep_for(tick);
    info = inspect_cluster(cluster);
  }
  if (!info) return report;  // its creator gave up and removed it meanwhile
  report.log_dir = info->log_dir;
  switch (info->condition) {
    case ClusterCondition::foreign:
    case ClusterCondition::incompatible:
      throw connection_error("cannot stop cluster '" + std::string(cluster) +
                             "': " + info->problem);
    case ClusterCondition::half_made:
      Segment::remove(cluster);
      report.half_made = true;
      return report;
    case ClusterCondition::running:
      try {
        request_stop(cluster);
      } catch (const connection_error&) {
        // It began stopping (or vanished) in the meantime: the wait below copes with both.
      }
      [[fallthrough]];
    case ClusterCondition::stopping:
      report.launcher_pid = info->launcher_pid;
      for (;;) {
        const bool launcher = process_maps_segment(info->launcher_pid, cluster);
        if (!launcher) break;
        if (clock::now() >= deadline) {
          const std::string prog =
              info->launcher_name.empty() ? "" : " (" + info->launcher_name + ")";
          throw timeout_error(
              "the launcher of cluster '" + std::string(cluster) + "', pid " +
              std::to_string(info->launcher_pid) + prog + ", did not stop it within " +
              std::to_string(timeout.count()) + " ms" +
              (info->launcher_name == "cadre"
                   ? "; it may still be stopping busy engines: try again with a longer --timeout"
                   : "; a cluster embedded in a program (cadre::Cluster) stops when that program "
                     "destroys it"));
        }
        std::this_thread::sleep_for(tick);
      }
      if (!segment_exists(cluster)) return report;
      // The launcher died without removing the segment: clean up as for a stale cluster.
      info = inspect_cluster(cluster);
      if (!info || info->condition == ClusterCondition::running ||
          info->condition == ClusterCondition::stopping)
        return report;  // gone, or already a new cluster of the same name with a live launcher
      if (!info->readable()) {
        Segment::remove(cluster);
        return report;
      }
      break;
    case ClusterCondition::stale:
      report.launcher_pid = info->launcher_pid;
      break;
  }

  // Stale: the engines notice that their launcher is gone at their next idle wake-up (at most a
  // second apart) and exit; an engine busy with a long task exits when the task ends.
  report.stale = true;
  std::vector<pid_t> waiting;
  for (const auto& e : info->engines)
    if (e.pid > 0) waiting.push_back(e.pid);
  for (;;) {
    std::erase_if(waiting, [&](pid_t pid) { return !process_maps_segment(pid, cluster); });
    if (waiting.empty() || clock::now() >= deadline) break;
    std::this_thread::sleep_for(tick);
  }
  report.lingering = waiting;
  Segment::remove(cluster);
  return report;
}

}  // namespace cadre::detail
