// examples/monte_carlo_pi.cpp — the seed's linked exercise: π by Monte Carlo on every engine.
//
// 10^8 samples split into tasks for a load-balanced view; each task draws its points with its own
// independent random stream (seeded by task index), and the client adds up the hits. Checks that the
// estimate is within 0.01 of π (non-zero exit otherwise). Run: build/examples/monte_carlo_pi [samples]
#include <cadre/cadre.hpp>

#include <fmt/core.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <numeric>
#include <ranges>

namespace {

/// Points (x, y) in the unit square that fall inside the quarter circle, out of n, from stream `seed`.
/// splitmix64: small, fast, and streams with different seeds are independent for this purpose.
long hits_in_quarter_circle(std::uint64_t seed, long n) {
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&s] {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return double((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  };
  long hits = 0;
  for (long i = 0; i < n; ++i) {
    const double x = next(), y = next();
    hits += x * x + y * y <= 1.0;
  }
  return hits;
}

}  // namespace

int main(int argc, char** argv) try {
  cadre::init(argc, argv);
  const long samples = argc > 1 ? std::atol(argv[1]) : 100'000'000L;
  constexpr long kTasks = 64;

  cadre::Cluster cluster;  // one engine per CPU
  cadre::Client rc = cluster.client();
  cadre::LoadBalancedView lview = rc.load_balanced_view();

  std::vector<std::uint64_t> seeds(kTasks);
  std::iota(seeds.begin(), seeds.end(), 1);
  std::vector<long> sizes(kTasks, samples / kTasks);
  sizes.back() += samples % kTasks;

  auto amr = lview.map_async(hits_in_quarter_circle, seeds, sizes, cadre::MapOptions{.chunksize = 1, .ordered = false});
  amr.wait_interactive();
  long hits = 0;
  for (long h : amr) hits += h;
  const double pi = 4.0 * double(hits) / double(samples);
  const double error = std::abs(pi - std::numbers::pi);
  fmt::print("{} samples on {} engines in {} tasks: pi ~ {:.6f} (error {:.2e}) in {:.2f} s\n", samples, rc.size(), kTasks, pi,
             error, amr.elapsed());
  const bool ok = samples < 100'000'000L || error < 0.01;
  fmt::print("{}\n", ok ? "monte carlo pi: ok" : "monte carlo pi: estimate too far from pi");
  return ok ? 0 : 1;
} catch (const std::exception& e) {  // unwinding runs ~Cluster: engines stopped, segment removed
  fmt::print(stderr, "monte_carlo_pi: {}\n", e.what());
  return 1;
}
