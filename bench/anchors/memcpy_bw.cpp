// bench/anchors/memcpy_bw.cpp — single-thread memcpy of 256 MiB: into memory already touched, and into fresh MAP_SHARED pages.
//
// The anchor for scatter/gather bandwidth (target: ≥ 0.8× the touched figure). The same workload is
// also registered inside bench/data_bench.cpp so that the ratio is taken within one run.
//   memcpy_bw [MiB=256] [repetitions=8]
#include "anchor_common.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 8;
  const std::size_t bytes = mib << 20;
  auto* src = static_cast<char*>(std::aligned_alloc(4096, bytes));
  auto* dst = static_cast<char*>(std::aligned_alloc(4096, bytes));
  if (!src || !dst) {
    anchor::emit_skip("memcpy", "cannot allocate 2 × " + std::to_string(mib) + " MiB");
    return 1;
  }
  std::memset(src, 1, bytes);
  std::memset(dst, 2, bytes);
  const std::string extra = "\"bytes\": " + std::to_string(bytes);

  std::vector<double> touched;
  for (int i = -1; i < reps; ++i) {
    const std::uint64_t t0 = anchor::now_ns();
    std::memcpy(dst, src, bytes);
    const double s = double(anchor::now_ns() - t0) * 1e-9;
    if (i >= 0) touched.push_back(double(bytes) / s);
  }
  anchor::emit("memcpy", "touched_bw_median", anchor::quantile(touched, 0.5), "B/s", extra);

  std::vector<double> fresh;
  for (int i = 0; i < reps; ++i) {
    const std::uint64_t t0 = anchor::now_ns();
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      anchor::emit_skip("memcpy_fresh_shared", "mmap of " + std::to_string(mib) + " MiB failed");
      return 1;
    }
    std::memcpy(p, src, bytes);
    const double s = double(anchor::now_ns() - t0) * 1e-9;
    ::munmap(p, bytes);
    fresh.push_back(double(bytes) / s);
  }
  anchor::emit("memcpy", "fresh_shared_bw_median", anchor::quantile(fresh, 0.5), "B/s", extra);
  std::free(src);
  std::free(dst);
}
