// bench/anchors/pingpong_spin.cpp — RTT of one cache line bounced between two spinning processes on two cores.
//
// The floor for a hot cadre round trip (target: e0.apply_sync(noop) hot ≤ 3× this).
//   pingpong_spin [iterations=200000]
#include "pingpong.hpp"

#include <cstdlib>

int main(int argc, char** argv) {
  const std::size_t iters = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200'000;
  if (anchor::online_cpus() < 2) {
    anchor::emit_skip("spin_pingpong", "needs two CPUs");
    return 0;
  }
  try {
    const auto rtt = anchor::pingpong_samples(anchor::WaitMode::spin, 0, 1, iters);
    anchor::emit_rtt("spin_pingpong", rtt, "\"cpus\": [0, 1], \"iterations\": " + std::to_string(iters));
  } catch (const std::exception& e) {
    anchor::emit_skip("spin_pingpong", e.what());
    return 1;
  }
}
