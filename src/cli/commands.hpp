// src/cli/commands.hpp — the `cadre` subcommands; main.cpp parses, these do the work.
//
// Each command returns the process exit status. They throw cadre::error (argument_error for a bad
// argument) for failures the user can fix; main() prints those and exits with kExitFailure, or with
// the status an exit_error carries.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <cadre/errors.hpp>

namespace cadre::cli {

// The exit statuses of `cadre`, for scripts; the top-level --help, the man page and README.md list
// them. 10 and 11 are ipcluster's ALREADY_STARTED and ALREADY_STOPPED, so that a script written
// against ipcluster tests the same numbers. (`cadre run` exits with its program's status instead.)
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;         // the command could not do its job
inline constexpr int kExitUsage = 2;           // the command line was wrong
inline constexpr int kExitAlreadyRunning = 10; // `start`: a cluster of that name is running
inline constexpr int kExitNotRunning = 11;     // `stop`, `status`: no cluster of that name exists

/// A failure that exits with its own status (kExitAlreadyRunning, kExitNotRunning) instead of
/// kExitFailure; main() prints what() like any other error.
class exit_error : public error {
 public:
  exit_error(int status, const std::string& what) : error(what), status_(status) {}
  [[nodiscard]] int status() const noexcept { return status_; }

 private:
  int status_;
};

struct StartOptions {
  int engines = 0;  // 0: one per CPU
  std::string name;
  std::string engine;              // empty: cadre-engine next to this executable
  std::string log_dir;             // empty: detail::default_log_dir(name)
  std::uint64_t segment_size = 0;  // 0: the Cluster default
  int threads_per_engine = 0;
  bool restart = false;
  std::chrono::milliseconds timeout{30'000};  // for the engines to become ready
};

struct StopOptions {
  std::string name;
  bool all = false;  // every cluster of this user instead of `name`
  std::chrono::milliseconds timeout{10'000};
};

struct RunOptions {
  int engines = 0;
  std::string name;  // empty: a unique embedded-<pid>-<k> name
  std::uint64_t segment_size = 0;
  int threads_per_engine = 0;
  std::chrono::milliseconds timeout{30'000};
  std::vector<std::string> command;  // the program and its arguments
};

/// `cadre start`: forks a detached launcher that owns the cluster until `cadre stop`.
int start(const StartOptions& opts);
/// `cadre stop`: asks the launcher to stop, or cleans up after a dead one; with `all`, does so for
/// each cluster `cadre list` shows.
int stop(const StopOptions& opts);
/// `cadre status`: one cluster in detail.
int status(const std::string& name);
/// `cadre list`: this user's clusters, one line each.
int list();
/// `cadre run`: a cluster in this process whose engines are the program; the program is the client.
int run(const RunOptions& opts);

}  // namespace cadre::cli
