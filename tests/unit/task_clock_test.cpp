// The task clock (detail/base/task_clock.hpp): extrapolated from the time-stamp counter, it must read like
// CLOCK_MONOTONIC — close to now_ns() at every moment, and never backwards.
#include "test_util.hpp"

#include <cadre/detail/base/task_clock.hpp>

#include <cstdint>
#include <cstdlib>

namespace {

namespace cd = cadre::detail;

TEST(task_clock, reads_like_clock_monotonic_and_never_goes_backwards) {
  // 150 ms: past the 50 ms calibration, so most readings below are extrapolated.
  const std::uint64_t end = cd::now_ns() + 150'000'000;
  std::uint64_t last = 0, readings = 0, far = 0;
  std::int64_t worst = 0;
  while (true) {
    const std::uint64_t before = cd::now_ns();
    const std::uint64_t t = cd::task_now_ns();
    const std::uint64_t after = cd::now_ns();
    ASSERT_GE(t, last) << "task clock went backwards after " << readings << " readings";
    last = t;
    ++readings;
    // Between two clock_gettime readings, give or take the extrapolation error (a few ns); a reading
    // preempted in the middle widens the bracket, never the error.
    const std::int64_t below = std::int64_t(before) - std::int64_t(t), above = std::int64_t(t) - std::int64_t(after);
    const std::int64_t off = std::max<std::int64_t>({below, above, 0});
    worst = std::max(worst, off);
    far += off > 1000;
    if (after > end) break;
  }
  EXPECT_GT(readings, 1000u);
  // A reading more than 1 µs outside its bracket would be a calibration error, not noise.
  EXPECT_EQ(far, 0u) << "worst: " << worst << " ns outside [now_ns() before, now_ns() after]";
}

}  // namespace
