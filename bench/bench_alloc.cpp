// Time of one nested allocation over a cluster: 1 cluster -> 8 groups -> nodes -> 2 domains,
// random concave 4-segment curves, a budget halfway between the floors and the maxima
// (severely power limited). Prints `bench: alloc_<size>_ms <median> ms` per size, and `#`
// lines saying how it was measured.
// Then one whole ClusterController::step over 100k nodes (8 groups, every node reporting a
// new 8-segment demand curve every period, as node agents do): `bench: cluster_step_100k_ms`
// with every node's jobs settled, `cluster_step_100k_young_ms` in the two minutes after all
// of them started at once, both with the step's default threads (ClusterConfig::step_threads
// 0), and `cluster_step_100k_one_thread_ms`: the first on one thread, for the ratio.
// `cluster_release_100k_ms`: one ClusterController::release between steps, once the nodes
// lowered by the step have confirmed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_cluster.hpp"
#include "libgradient/allocator.hpp"
#include "libgradient/cluster_controller.hpp"

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

// The controller's period with `nodes` nodes in 8 groups limited to 90% of their span, every
// node steerable with a fresh random concave 8-segment demand curve per period, confirming
// its last grant. Reports are fed untimed; step() is timed. settled: every node's jobs have
// settled (the whole hysteresis, the steady state); otherwise they all started with the
// first report (young: hysteresis growing from 0 over hysteresis_settle_s, so that these
// random curves move far more watts each step, as after a cluster-wide restart of jobs).
// With time_release, the step is not timed: after it every node whose grant went down
// confirms it at once (caps at the new grant, untimed), and ClusterController::release,
// which hands the confirmed watts to the raises that waited, is timed instead (what the
// controller's service runs between periods, at most ten times a period).
void run_cluster_step(const char *name, std::size_t nodes, int reps, bool settled,
                      bool time_release = false, unsigned threads = 0) {
  std::mt19937 rng(7);
  ClusterConfig config = bench::step_cluster(nodes, rng);
  const std::size_t groups = bench::kGroups;
  if (settled) config.hysteresis_settle_s = 0.0;
  config.step_threads = threads;
  ClusterController cc(config);
  if (!cc.ok()) {
    std::fprintf(stderr, "bench_alloc: %s\n", cc.error().c_str());
    std::exit(1);
  }
  std::vector<GrantMessage> last(nodes);
  std::vector<std::uint64_t> report_seq(nodes, 0);
  const auto feed_reports = [&](double now_s) {
    for (std::size_t i = 0; i < nodes; ++i) {
      const NodeReport r =
          bench::step_report(config.nodes[i], last[i], ++report_seq[i], now_s, rng);
      const std::string why = cc.on_report(r, now_s);
      if (!why.empty()) {
        std::fprintf(stderr, "bench_alloc: %s\n", why.c_str());
        std::exit(1);
      }
    }
  };
  std::vector<double> ms;
  std::vector<GrantMessage> grants;
  std::size_t released = 0, waiting = 0;
  double now_s = 0.0;
  for (int rep = 0; rep < reps + 1; ++rep) {  // the first step warms up (no reports yet)
    if (rep > 0) feed_reports(now_s - 0.5);
    auto start = std::chrono::steady_clock::now();
    cc.step(now_s, grants);  // into the last step's vector, as the controller service does
    auto end = std::chrono::steady_clock::now();
    if (grants.size() != nodes || !cc.last_step_error().empty()) {
      std::fprintf(stderr, "bench_alloc: bad step: %s\n", cc.last_step_error().c_str());
      std::exit(1);
    }
    if (time_release && rep > 0) {
      for (std::size_t i = 0; i < nodes; ++i) {
        if (!(grants[i].grant_w < last[i].grant_w)) continue;
        NodeReport r;
        const ClusterNodeConfig &cfg = config.nodes[i];
        r.node = cfg.name;
        r.report_seq = ++report_seq[i];
        r.sent_at_s = now_s + 0.1;
        r.min_w = cfg.floor_w;
        r.max_w = cfg.max_w;
        r.need_w = cfg.floor_w;
        r.lease_epoch = grants[i].epoch;
        r.lease_seq = grants[i].seq;
        r.lease_grant_w = r.effective_grant_w = r.caps_w = r.power_w = grants[i].grant_w;
        r.lease_expires_at_s = grants[i].expires_at_s;
        r.steerable = true;
        r.demand = GainCurve::linear(0.001, cfg.max_w - cfg.floor_w);
        if (!cc.on_report(r, now_s + 0.2).empty()) std::exit(1);
      }
      waiting += cc.raises_waiting() ? 1 : 0;
      start = std::chrono::steady_clock::now();
      const std::vector<GrantMessage> rel = cc.release(now_s + 0.3);
      end = std::chrono::steady_clock::now();
      released += rel.size();
      last = grants;
      for (const GrantMessage &g : rel) last[cc.node_index(g.node)] = g;
    } else {
      last = grants;  // one per configured node, in configuration order
    }
    if (rep > 0) ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    now_s += config.period_s;
  }
  std::sort(ms.begin(), ms.end());
  if (time_release) {
    std::printf(
        "# %s: ClusterController::release after a step, %zu nodes in %zu groups (as "
        "cluster_step_100k_ms), every node whose grant went down confirming it first (not "
        "timed); raises waiting after %zu of %d steps, %.0f grants released per step; min "
        "%.3f ms, max %.3f ms\n",
        name, nodes, groups, waiting, reps, static_cast<double>(released) / reps, ms.front(),
        ms.back());
    std::printf("bench: %s %.3f ms\n", name, ms[ms.size() / 2]);
    return;
  }
  std::printf(
      "# %s: ClusterController::step, %zu nodes in %zu groups, every node reporting a new "
      "8-segment curve each period (reports not timed), grants into the last step's vector "
      "(as the controller service keeps it), %s; %zu step thread(s) "
      "(StepThreads=%u); %d steps after 1 warm-up; min %.3f ms, max %.3f ms\n",
      name, nodes, groups,
      settled ? "jobs settled (the whole hysteresis)"
              : "jobs started with the first report (young)",
      cc.step_thread_count(), threads, reps, ms.front(), ms.back());
  std::printf("bench: %s %.3f ms\n", name, ms[ms.size() / 2]);
}

}  // namespace

// With an argument, only the benchmarks whose names contain it (e.g. `cluster_step`).
int main(int argc, char **argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  const auto wanted = [&](const char *name) {
    return only.empty() || std::string(name).find(only) != std::string::npos;
  };
  std::printf("# bench_alloc: median wall time of TreeAllocator::allocate over a built tree\n");
  std::printf(
      "# (1 cluster, 8 groups limited to 90%% of their span, nodes, 2 domains each with "
      "random 4-segment concave curves; budget halfway from floors to maxima)\n");
  std::printf(
      "# clock: std::chrono::steady_clock; alloc_* on one thread, the cluster step on the "
      "threads each line says; machine: %u hardware threads; compiler: %s\n",
      std::thread::hardware_concurrency(), __VERSION__);
  std::fflush(stdout);
  if (wanted("alloc_1k_ms")) run("alloc_1k_ms", 1000, 501, 1.0);
  if (wanted("alloc_10k_ms")) run("alloc_10k_ms", 10000, 101, 2.0);
  if (wanted("alloc_100k_ms")) run("alloc_100k_ms", 100000, 21, 3.0);
  std::fflush(stdout);
  if (wanted("cluster_step_100k_ms")) run_cluster_step("cluster_step_100k_ms", 100000, 11, true);
  // The same on one thread: the ratio of the two is what the step's threads buy here.
  if (wanted("cluster_step_100k_one_thread_ms"))
    run_cluster_step("cluster_step_100k_one_thread_ms", 100000, 11, true, false, 1);
  if (wanted("cluster_step_100k_young_ms"))
    run_cluster_step("cluster_step_100k_young_ms", 100000, 11, false);
  if (wanted("cluster_release_100k_ms"))
    run_cluster_step("cluster_release_100k_ms", 100000, 11, true, true);
  return 0;
}
