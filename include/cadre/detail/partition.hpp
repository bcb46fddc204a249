// cadre/detail/partition.hpp — how n items are split over k engines (IPython.parallel's rule), and big copies.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstddef>
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

}  // namespace cadre::detail
