// cadre/detail/engine/thread_caps.hpp — how an engine caps the thread pools of the libraries its functions use.
//
// Engines share the machine's CPUs, so each one limits the pools of oneTBB and Eigen to
// ClusterOptions::threads_per_engine. The core headers name neither library (each costs every
// includer tens of thousands of preprocessed lines): <cadre/tbb.hpp> and <cadre/eigen.hpp> register
// their cap here, and an engine applies the caps registered in its program as it starts.
#pragma once

#include <algorithm>
#include <vector>

namespace cadre::detail {

/// Limits one library's thread pool in this process to n threads.
using ThreadCap = void (*)(unsigned n);

/// The caps registered by the headers this program includes.
inline std::vector<ThreadCap>& thread_caps() {
  static std::vector<ThreadCap> caps;
  return caps;
}

/// Registers cap once; returns true, to initialize a header's inline variable before main().
inline bool add_thread_cap(ThreadCap cap) {
  auto& caps = thread_caps();
  if (std::find(caps.begin(), caps.end(), cap) == caps.end()) caps.push_back(cap);
  return true;
}

/// Applies every registered cap (in an engine, as it starts serving).
inline void apply_thread_caps(unsigned n) {
  for (ThreadCap cap : thread_caps()) cap(n);
}

}  // namespace cadre::detail
