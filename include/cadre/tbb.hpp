// cadre/tbb.hpp — caps oneTBB's threads in each engine, for programs whose engine functions use oneTBB.
//
// Engines share the machine's CPUs: with this header, oneTBB in each engine uses at most
// ClusterOptions::threads_per_engine threads (default: CPUs / engines) instead of one per CPU.
// The core header leaves oneTBB out, as its headers are large.
#pragma once

#include <cadre/cadre.hpp>
#include <cadre/detail/engine/thread_caps.hpp>

#include <tbb/global_control.h>

#include <optional>

namespace cadre::detail {

inline void cap_tbb_threads(unsigned n) {
  static std::optional<tbb::global_control> cap;
  cap.emplace(tbb::global_control::max_allowed_parallelism, n);
}
inline const bool tbb_threads_capped = add_thread_cap(&cap_tbb_threads);

}  // namespace cadre::detail
