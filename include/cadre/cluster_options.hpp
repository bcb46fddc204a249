// cadre/cluster_options.hpp — ClusterOptions: how many engines, which program, how much memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cadre {

/// How to start a cluster. Designated initializers read well: `cadre::Cluster c({.engines = 4});`
struct ClusterOptions {
  int engines = 0;                       ///< 0: one per CPU
  std::string name;                      ///< empty: a unique name (an embedded cluster)
  std::string engine;                    ///< engine executable; empty: this program (must call cadre::init)
  std::vector<std::string> engine_args;  ///< extra arguments for the engine executable
  std::uint64_t segment_size = 0;        ///< bytes; 0: 1 GiB. Only what is used is backed by memory
  int threads_per_engine = 0;            ///< oneTBB/Eigen threads per engine; 0: CPUs / engines, at least 1
  bool restart_engines = false;          ///< replace an engine that dies (same id, new generation)
  std::string log_dir;                   ///< empty: engine output on stderr as "[engine N] ..."; else log_dir/engine-N.log
  std::chrono::milliseconds start_timeout{10000};  ///< how long the engines have to become ready
};

}  // namespace cadre
