// The cluster the controller's benchmarks run (bench_alloc's cluster_step_*, bench_service):
// `nodes` nodes of 2 sockets (max 230-410 W, floor 45% of max) in 8 groups limited to 90% of
// their span, a budget halfway from the floors to the maxima, and every node's report of a
// period: steerable, a need near its floor, a fresh random concave 8-segment demand curve,
// confirming its last grant.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "libgradient/cluster_controller.hpp"

namespace powergrad::bench {

constexpr std::size_t kGroups = 8;

inline ClusterConfig step_cluster(std::size_t nodes, std::mt19937 &rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ClusterConfig config;
  std::vector<double> group_floor(kGroups, 0.0), group_max(kGroups, 0.0);
  double floors = 0.0, maxima = 0.0;
  for (std::size_t g = 0; g < kGroups; ++g) config.groups.push_back({"pdu" + std::to_string(g)});
  for (std::size_t i = 0; i < nodes; ++i) {
    const double max_w = 2.0 * (115.0 + unit(rng) * 90.0);
    const double floor_w = 0.45 * max_w;
    const std::size_t g = i % kGroups;
    config.nodes.push_back({"n" + std::to_string(i), floor_w, max_w, g});
    group_floor[g] += floor_w;
    group_max[g] += max_w;
    floors += floor_w;
    maxima += max_w;
  }
  for (std::size_t g = 0; g < kGroups; ++g)
    config.groups[g].max_w = group_floor[g] + 0.9 * (group_max[g] - group_floor[g]);
  config.budget_w = floors + 0.5 * (maxima - floors);
  return config;
}

// A node's report sent at now_s, confirming `last` (seq 0: no grant yet, at its floor).
inline NodeReport step_report(const ClusterNodeConfig &cfg, const GrantMessage &last,
                              std::uint64_t report_seq, double now_s, std::mt19937 &rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  NodeReport r;
  r.node = cfg.name;
  r.report_seq = report_seq;
  r.sent_at_s = now_s;
  r.min_w = cfg.floor_w;
  r.max_w = cfg.max_w;
  r.need_w = cfg.floor_w + 0.1 * (cfg.max_w - cfg.floor_w) * unit(rng);
  if (last.seq != 0) {
    r.lease_epoch = last.epoch;
    r.lease_seq = last.seq;
    r.lease_grant_w = last.grant_w;
    r.lease_expires_at_s = last.expires_at_s;
    r.effective_grant_w = last.grant_w;
  } else {
    r.lease_grant_w = r.effective_grant_w = cfg.floor_w;
  }
  r.caps_w = std::max(r.effective_grant_w, r.need_w);
  r.power_w = r.caps_w;
  r.idle = false;
  r.steerable = true;
  std::vector<GainSegment> segments(8);
  double slope = 0.001 + unit(rng) * 0.01;
  const double width_w = (cfg.max_w - r.need_w) / 8.0;
  for (GainSegment &s : segments) {
    s = {width_w, slope};
    slope *= 0.6 + 0.35 * unit(rng);
  }
  r.demand = GainCurve::from_segments(segments);
  return r;
}

}  // namespace powergrad::bench
