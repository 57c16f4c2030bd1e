// Time of one nested allocation over a cluster: 1 cluster -> 8 groups -> nodes -> 2 domains,
// random concave 4-segment curves, a budget halfway between the floors and the maxima
// (severely power limited). Prints `bench: alloc_<size>_ms <median> ms` per size, and `#`
// lines saying how it was measured.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "libgradient/allocator.hpp"

using namespace powergrad;

namespace {

struct Cluster {
  AllocTree tree;
  double budget_w = 0.0;
};

Cluster make_cluster(std::size_t nodes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Cluster c;
  const std::size_t groups = 8;
  double floors = 0.0, caps = 0.0;
  for (std::size_t g = 0; g < groups; ++g) {
    const NodeId group = c.tree.add_group(AllocTree::kRoot, 0.0, 0.0);  // limit set below
    double group_floor = 0.0, group_cap = 0.0;
    for (std::size_t n = g; n < nodes; n += groups) {
      const NodeId node = c.tree.add_group(group, 0.0, std::numeric_limits<double>::infinity());
      for (int d = 0; d < 2; ++d) {
        const double tdp_w = 115.0 + unit(rng) * 90.0;
        const double min_w = 0.45 * tdp_w;
        const double width_w = tdp_w - min_w;
        const double gradient = 0.001 + unit(rng) * 0.01;
        c.tree.add_leaf(node, min_w, tdp_w,
                        GainCurve::from_segments({{width_w * 0.25, gradient},
                                                  {width_w * 0.25, gradient * 0.7},
                                                  {width_w * 0.25, gradient * 0.45},
                                                  {width_w * 0.25, gradient * 0.25}}));
        group_floor += min_w;
        group_cap += tdp_w;
      }
    }
    // A PDU rated below what its nodes could draw.
    c.tree.set_limits(group, 0.0, group_floor + 0.9 * (group_cap - group_floor));
    floors += group_floor;
    caps += group_cap;
  }
  c.budget_w = floors + 0.5 * (caps - floors);
  return c;
}

double time_once_ms(TreeAllocator &allocator, const Cluster &c) {
  const auto start = std::chrono::steady_clock::now();
  const AllocResult r = allocator.allocate(c.tree, c.budget_w);
  const auto end = std::chrono::steady_clock::now();
  if (!r.feasible || r.grants_w[AllocTree::kRoot] > c.budget_w) {
    std::fprintf(stderr, "bench_alloc: bad allocation: %s\n", r.error.c_str());
    std::exit(1);
  }
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// Median over repetitions; the number of repetitions is chosen so a size takes about
// `target_s` seconds (at least 5, at most `max_reps`).
void run(const char *name, std::size_t nodes, int max_reps, double target_s) {
  const Cluster c = make_cluster(nodes, 42);
  TreeAllocator allocator;
  const double first_ms = time_once_ms(allocator, c);  // warm-up: sizes working memory
  const int reps =
      std::clamp(static_cast<int>(target_s * 1000.0 / std::max(first_ms, 1e-3)), 5, max_reps);
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(reps));
  for (int i = 0; i < reps; ++i) ms.push_back(time_once_ms(allocator, c));
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  std::printf(
      "# %s: %zu nodes x 2 domains (%zu tree nodes), %d repetitions after 1 warm-up; "
      "min %.3f ms, max %.3f ms\n",
      name, nodes, c.tree.size(), reps, ms.front(), ms.back());
  std::printf("bench: %s %.3f ms\n", name, median);
}

}  // namespace

int main() {
  std::printf("# bench_alloc: median wall time of TreeAllocator::allocate over a built tree\n");
  std::printf(
      "# (1 cluster, 8 groups limited to 90%% of their span, nodes, 2 domains each with "
      "random 4-segment concave curves; budget halfway from floors to maxima)\n");
  std::printf(
      "# clock: std::chrono::steady_clock; single-threaded; machine: %u hardware "
      "threads; compiler: %s\n",
      std::thread::hardware_concurrency(), __VERSION__);
  std::fflush(stdout);
  run("alloc_1k_ms", 1000, 501, 1.0);
  run("alloc_10k_ms", 10000, 101, 2.0);
  run("alloc_100k_ms", 100000, 21, 3.0);
  return 0;
}
