// cadre/detail/client/partition.hpp — how n items are split over k engines (IPython.parallel's rule), and big copies.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace cadre::detail {

/// Engine p of k gets `n/k + (p < n%k)` items starting at `p*(n/k) + min(p, n%k)`: contiguous chunks whose
/// sizes differ by at most one, the larger ones first. Works for n < k (empty chunks) and n = 0.
struct Chunk {
  std::size_t begin = 0, count = 0;
};
inline Chunk partition(std::size_t n, std::size_t k, std::size_t p) noexcept {
  const std::size_t q = n / k, r = n % k;
  return {p * q + std::min(p, r), q + (p < r ? 1 : 0)};
}

/// Runs part(i) for every i in [0, parts) on up to one thread per CPU, the caller's among them.
/// Only for copies of 16 MiB and more, where starting a thread (~50 µs) is a few percent of the
/// copy. Plain threads rather than oneTBB's parallel_for: its headers would cost every program that
/// includes cadre ~50,000 preprocessed lines (tools/compile-cost) for this one loop.
template <class Part>
void run_parts(std::size_t parts, Part&& part) {
  const std::size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < parts;) part(i);
  };
  std::vector<std::thread> helpers;
  try {
    for (std::size_t k = 1; k < std::min(cpus, parts); ++k) helpers.emplace_back(work);
  } catch (const std::system_error&) {
    // No thread to be had: the caller copies the rest alone.
  }
  work();
  for (auto& t : helpers) t.join();
}

/// memcpy that splits copies of 16 MiB and more over the CPUs. Measured in bench/data_bench.cpp:
/// one core does not saturate memory bandwidth on large copies.
inline void copy_bytes(void* dst, const void* src, std::size_t n) {
  constexpr std::size_t kParallel = 16u << 20, kGrain = 4u << 20;
  if (n < kParallel) {
    if (n != 0) std::memcpy(dst, src, n);  // an empty source may be a null pointer
    return;
  }
  run_parts((n + kGrain - 1) / kGrain, [&](std::size_t i) {
    const std::size_t at = i * kGrain, len = std::min(kGrain, n - at);
    std::memcpy(static_cast<char*>(dst) + at, static_cast<const char*>(src) + at, len);
  });
}

/// Copies `count` runs of `run` bytes, run j from src + j*src_stride to dst + j*dst_stride: a block of
/// rows of a column-major matrix, one run per column. Over the CPUs from 16 MiB on, as copy_bytes.
inline void copy_runs(std::byte* dst, std::size_t dst_stride, const std::byte* src, std::size_t src_stride, std::size_t run,
                      std::size_t count) {
  constexpr std::size_t kParallel = 16u << 20, kGrain = 1u << 20;
  if (run == 0 || count == 0) return;
  auto copy = [&](std::size_t from, std::size_t to) {
    for (std::size_t j = from; j < to; ++j) std::memcpy(dst + j * dst_stride, src + j * src_stride, run);
  };
  if (run * count < kParallel) return copy(0, count);
  const std::size_t per = std::max<std::size_t>(1, kGrain / run);
  run_parts((count + per - 1) / per, [&](std::size_t i) { copy(i * per, std::min(count, (i + 1) * per)); });
}

/// Asks for transparent huge pages on fresh memory of n bytes about to be written at once (a gathered
/// result): one fault per 2 MiB instead of one per 4 KiB. Only where the kernel leaves it to madvise;
/// harmless otherwise. Measured in bench/data_bench.cpp (gather of pdot's 32 MiB result).
inline void advise_huge_pages(void* p, std::size_t n) noexcept {
  constexpr std::uintptr_t kHuge = 2u << 20;
  if (n < 2 * kHuge) return;
  const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace cadre::detail
