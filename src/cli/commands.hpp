// src/cli/commands.hpp — the `cadre` subcommands; main.cpp parses, these do the work.
//
// Each command returns the process exit status. They throw cadre::error (argument_error for a bad
// argument) for failures the user can fix; main() prints those and exits with kExitFailure.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cadre::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command could not do its job
inline constexpr int kExitUsage = 2;    // the command line was wrong

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
/// `cadre stop`: asks the launcher to stop, or cleans up after a dead one.
int stop(const StopOptions& opts);
/// `cadre status`: one cluster in detail.
int status(const std::string& name);
/// `cadre list`: this user's clusters, one line each.
int list();
/// `cadre run`: a cluster in this process whose engines are the program; the program is the client.
int run(const RunOptions& opts);

}  // namespace cadre::cli
