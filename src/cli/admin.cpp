// src/cli/admin.cpp — `cadre status`, `list` and `stop`: printers over src/admin/admin.hpp.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <admin/admin.hpp>

#include "commands.hpp"

namespace cadre::cli {
namespace {

/// The flag that names a cluster on a command line: empty for "default".
std::string name_flag(const std::string& name) {
  return name == "default" ? "" : " --name " + name;
}

std::string engine_state(const detail::EngineInfo& e) {
  std::string s = detail::to_string(e.state);
  if (e.state == detail::EngineState::dead)
    s += e.exit_signal ? fmt::format(" (signal {})", e.exit_signal)
                       : fmt::format(" (exit {})", e.exit_code);
  else if ((e.state == detail::EngineState::idle || e.state == detail::EngineState::busy ||
            e.state == detail::EngineState::starting) &&
           !e.alive)
    s += " (gone)";
  return s;
}

std::string heartbeat_age(std::uint64_t heartbeat_ns) {
  if (heartbeat_ns == 0) return "-";
  const std::uint64_t now = detail::now_ns();
  return fmt::format("{:.1f} s ago", now > heartbeat_ns ? double(now - heartbeat_ns) / 1e9 : 0.0);
}

std::string describe(const detail::ClusterInfo& c) {
  switch (c.condition) {
    case detail::ClusterCondition::running:
    case detail::ClusterCondition::stopping:
      return detail::to_string(c.condition);
    case detail::ClusterCondition::stale:
      return "stale";
    case detail::ClusterCondition::half_made:
      return c.stale() ? "stale (half-made)" : "half-made";
    case detail::ClusterCondition::incompatible:
    case detail::ClusterCondition::foreign:
      return detail::to_string(c.condition);
  }
  return "?";
}

}  // namespace

int status(const std::string& name) {
  const auto info = detail::inspect_cluster(name);
  if (!info)
    throw exit_error(kExitNotRunning, "no cluster named '" + name +
                                          "' is running for this user; start one with `cadre "
                                          "start -n 4" +
                                          name_flag(name) + "`, or see `cadre list`");
  const auto& c = *info;
  fmt::print("cluster '{}': {}\n", c.name, describe(c));
  if (!c.readable()) {
    fmt::print("  problem    {}\n", c.problem);
    fmt::print("  segment    {}\n", c.segment_path);
    if (c.stale() || c.condition == detail::ClusterCondition::half_made)
      fmt::print("  remove it with `cadre stop{}`\n", name_flag(name));
    return kExitOk;
  }
  if (c.launcher_alive)
    fmt::print("  launcher   pid {} ({}), alive\n", c.launcher_pid,
               c.launcher_name.empty() ? "?" : c.launcher_name);
  else
    fmt::print("  launcher   pid {}, gone: clean up with `cadre stop{}`\n", c.launcher_pid,
               name_flag(name));
  fmt::print("  segment    {}: {}, heap {}, {} in use\n", c.segment_path,
             detail::format_bytes(c.segment_size), detail::format_bytes(c.heap_bytes),
             detail::format_bytes(c.used_bytes));
  fmt::print("  engine     {}, {} thread{} each\n", c.engine_path, c.threads_per_engine,
             c.threads_per_engine == 1 ? "" : "s");
  fmt::print("  logs       {}\n",
             c.log_dir.empty() ? "(engine output goes to the launcher's stderr)" : c.log_dir);
  fmt::print("  engines    {}\n", c.engine_count);
  fmt::print("    {:<4} {:<8} {:<16} {:<4} {:<9} {:<8} {:<12} {}\n", "ID", "PID", "STATE", "GEN",
             "RESTARTS", "TASKS", "HEARTBEAT", "LOG");
  for (const auto& e : c.engines)
    fmt::print("    {:<4} {:<8} {:<16} {:<4} {:<9} {:<8} {:<12} {}\n", e.id, e.pid, engine_state(e),
               e.generation, e.restarts(), e.tasks_done, heartbeat_age(e.heartbeat_ns),
               e.log_file.empty() ? "-" : e.log_file);
  return kExitOk;
}

int list() {
  const auto clusters = detail::list_clusters();
  if (clusters.empty()) {
    fmt::print("no clusters for this user (uid {}); start one with `cadre start -n 4`\n",
               ::geteuid());
    return kExitOk;
  }
  std::size_t width = 4;
  for (const auto& c : clusters) width = std::max(width, c.name.size());
  fmt::print("{:<{}}  {:<7}  {:<8}  {}\n", "NAME", width, "ENGINES", "LAUNCHER", "STATE");
  for (const auto& c : clusters) {
    const std::string engines = c.readable() ? std::to_string(c.engine_count) : "-";
    const std::string launcher = c.launcher_pid > 0 ? std::to_string(c.launcher_pid) : "-";
    fmt::print("{:<{}}  {:<7}  {:<8}  {}\n", c.name, width, engines, launcher, describe(c));
  }
  return kExitOk;
}

namespace {

/// Stops one cluster and says what it did; the exit status of `cadre stop --name NAME`.
int stop_one(const std::string& name, std::chrono::milliseconds timeout) {
  const auto not_running = [&] {
    return exit_error(kExitNotRunning,
                      "no cluster named '" + name +
                          "' is running for this user; `cadre list` shows the clusters there are");
  };
  if (!detail::segment_exists(name)) throw not_running();
  detail::StopReport report;
  try {
    report = detail::stop_cluster(name, timeout);
  } catch (const connection_error&) {
    if (!detail::segment_exists(name)) throw not_running();  // it went away since the check above
    throw;
  }
  // The cluster is gone, and so go the logs `cadre start` kept for it (a --log-dir is the user's).
  const auto remove_logs = [&] {
    detail::remove_cluster_logs(report.name, report.log_dir.empty()
                                                 ? detail::default_log_dir(report.name)
                                                 : report.log_dir);
  };
  if (report.half_made) {
    remove_logs();
    fmt::print("removed the half-made segment of cluster '{}'\n", report.name);
    return kExitOk;
  }
  if (!report.stale) {
    remove_logs();
    fmt::print("stopped cluster '{}'\n", report.name);
    return kExitOk;
  }
  fmt::print("cleaned up cluster '{}': its launcher (pid {}) was gone; segment removed\n",
             report.name, report.launcher_pid);
  if (!report.lingering.empty()) {
    fmt::print(
        stderr,
        "cadre stop: engine pid{} {} of cluster '{}' did not exit within {} ms, and cadre does\n"
        "  not kill them. An engine leaves when its current task ends; if they do not, end them\n"
        "  with `kill {}`.\n",
        report.lingering.size() == 1 ? "" : "s", fmt::join(report.lingering, ", "), report.name,
        timeout.count(), fmt::join(report.lingering, " "));
    return kExitFailure;  // the engines left may still write their logs: they stay
  }
  remove_logs();
  return kExitOk;
}

/// `cadre stop --all`: every cluster `cadre list` shows, each reported; one that cannot be stopped
/// does not keep the others running. kExitOk when all are gone, also when there were none: the
/// state a script asks for ("none of mine is running") holds either way.
int stop_all(std::chrono::milliseconds timeout) {
  const auto clusters = detail::list_clusters();
  if (clusters.empty()) {
    fmt::print("no clusters for this user (uid {}) to stop\n", ::geteuid());
    return kExitOk;
  }
  int status = kExitOk;
  for (const auto& c : clusters) {
    try {
      if (stop_one(c.name, timeout) != kExitOk) status = kExitFailure;
    } catch (const exit_error&) {
      // kExitNotRunning: stopped by someone else between the listing and now; what was asked holds.
      fmt::print("cluster '{}' was already gone\n", c.name);
    } catch (const std::exception& e) {
      fmt::print(stderr, "cadre stop: cluster '{}': {}\n", c.name, e.what());
      status = kExitFailure;
    }
  }
  return status;
}

}  // namespace

int stop(const StopOptions& opts) {
  return opts.all ? stop_all(opts.timeout) : stop_one(opts.name, opts.timeout);
}

}  // namespace cadre::cli
