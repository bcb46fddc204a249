// bench/anchors/pingpong_futex.cpp — RTT of one cache line between two processes that always sleep on a futex.
//
// Each side FUTEX_WAITs at once for the other's write and is woken by FUTEX_WAKE: two wake-ups per
// round trip. Variants: the two processes on two cores, and both on one core. The floor for a round
// trip to an engine that was asleep (target: ≤ 2× the two-core figure).
//   pingpong_futex [iterations=20000]
#include "pingpong.hpp"

#include <cstdlib>

int main(int argc, char** argv) {
  const std::size_t iters = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20'000;
  int rc = 0;
  auto run = [&](const char* name, int parent_cpu, int child_cpu) {
    try {
      const auto rtt = anchor::pingpong_samples(anchor::WaitMode::futex, parent_cpu, child_cpu, iters);
      anchor::emit_rtt(name, rtt,
                       "\"cpus\": [" + std::to_string(parent_cpu) + ", " + std::to_string(child_cpu) +
                           "], \"iterations\": " + std::to_string(iters));
    } catch (const std::exception& e) {
      anchor::emit_skip(name, e.what());
      rc = 1;
    }
  };
  if (anchor::online_cpus() >= 2) run("futex_pingpong_2cores", 0, 1);
  else anchor::emit_skip("futex_pingpong_2cores", "needs two CPUs");
  run("futex_pingpong_1core", 0, 0);
  return rc;
}
