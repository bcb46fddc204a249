// cadre/detail/client/partition.hpp — how n items are split over k engines (IPython.parallel's rule), and big copies.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

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

/// memcpy that splits copies of 16 MiB and more over oneTBB's threads. Measured in
/// bench/data_bench.cpp: one core does not saturate memory bandwidth on large copies.
inline void copy_bytes(void* dst, const void* src, std::size_t n) {
  constexpr std::size_t kParallel = 16u << 20, kGrain = 4u << 20;
  if (n < kParallel) {
    if (n != 0) std::memcpy(dst, src, n);  // an empty source may be a null pointer
    return;
  }
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, (n + kGrain - 1) / kGrain), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i != r.end(); ++i) {
      const std::size_t at = i * kGrain, len = std::min(kGrain, n - at);
      std::memcpy(static_cast<char*>(dst) + at, static_cast<const char*>(src) + at, len);
    }
  });
}

/// Copies `count` runs of `run` bytes, run j from src + j*src_stride to dst + j*dst_stride: a block of
/// rows of a column-major matrix, one run per column. Over oneTBB's threads from 16 MiB on, as copy_bytes.
inline void copy_runs(std::byte* dst, std::size_t dst_stride, const std::byte* src, std::size_t src_stride, std::size_t run,
                      std::size_t count) {
  constexpr std::size_t kParallel = 16u << 20, kGrain = 1u << 20;
  if (run == 0 || count == 0) return;
  auto copy = [&](std::size_t from, std::size_t to) {
    for (std::size_t j = from; j < to; ++j) std::memcpy(dst + j * dst_stride, src + j * src_stride, run);
  };
  if (run * count < kParallel) return copy(0, count);
  const std::size_t per = std::max<std::size_t>(1, kGrain / run);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, count, per), [&](const tbb::blocked_range<std::size_t>& r) { copy(r.begin(), r.end()); });
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
