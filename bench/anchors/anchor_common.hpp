// bench/anchors/anchor_common.hpp — what every anchor program shares: a clock, order statistics, pinning, JSON lines.
//
// Anchors are the reference points cadre's figures are divided by (tools/bench-compare). Each prints one
// JSON object per line: {"anchor": "...", "metric": "...", "value": ..., "unit": "...", ...}; a skipped
// measurement prints {"anchor": "...", "skipped": true, "reason": "..."}.
#pragma once

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace anchor {

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// The q-quantile (0..1) of samples, nearest rank. Sorts a copy.
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, std::size_t(q * double(v.size() - 1) + 0.5));
  return v[i];
}

/// Pins the calling thread to one CPU; returns false when that CPU is not usable here.
inline bool pin_to_cpu(int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

/// Saves the calling thread's affinity and restores it on scope exit (benchmarks that pin must not
/// leave the process pinned: cadre's engines inherit the launcher's mask).
class AffinityGuard {
 public:
  AffinityGuard() noexcept { ok_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0; }
  ~AffinityGuard() {
    if (ok_) ::sched_setaffinity(0, sizeof saved_, &saved_);
  }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

inline int online_cpus() noexcept { return int(::sysconf(_SC_NPROCESSORS_ONLN)); }

inline std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out;
}

/// One measurement as a JSON line. `extra` is raw JSON members without braces, e.g. "\"cpus\": [0, 1]".
inline void emit(std::string_view anchor, std::string_view metric, double value, std::string_view unit,
                 std::string_view extra = {}) {
  std::printf("{\"anchor\": \"%s\", \"metric\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"%s%.*s}\n",
              json_escape(anchor).c_str(), json_escape(metric).c_str(), value, json_escape(unit).c_str(),
              extra.empty() ? "" : ", ", int(extra.size()), extra.data());
  std::fflush(stdout);
}

inline void emit_skip(std::string_view anchor, std::string_view reason) {
  std::printf("{\"anchor\": \"%s\", \"skipped\": true, \"reason\": \"%s\"}\n", json_escape(anchor).c_str(),
              json_escape(reason).c_str());
  std::fflush(stdout);
}

/// Emits median and p99 of round-trip samples (ns) as two lines.
inline void emit_rtt(std::string_view anchor, const std::vector<double>& rtt_ns, std::string_view extra = {}) {
  emit(anchor, "rtt_median", quantile(rtt_ns, 0.5), "ns", extra);
  emit(anchor, "rtt_p99", quantile(rtt_ns, 0.99), "ns", extra);
}

}  // namespace anchor
