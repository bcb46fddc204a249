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
  // What the clock allows itself: extrapolation from an anchor at most 1 ms old at a rate it accepts
  // only within 0.1 % of the previous one (1 µs), plus half an anchor reading's width (tens of ns).
  // Ten times that: a reading further off is a calibration error (a wrong rate is off by far more
  // over the 1 ms window), never preemption or a loaded machine, which widen the bracket instead.
  constexpr std::int64_t kTolerance = 10'000;
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
    far += off > kTolerance;
    if (after > end) break;
  }
  EXPECT_GT(readings, 1000u);
  EXPECT_EQ(far, 0u) << "worst: " << worst << " ns outside [now_ns() before, now_ns() after]";
}

}  // namespace
