#include "sim/cap_helpers.hpp"

#include <algorithm>
#include <cmath>

#include "libgradient/baselines.hpp"

namespace powergrad::sim {

std::vector<PowerRange> socket_ranges(const ClusterSpec &spec) {
  std::vector<PowerRange> ranges;
  ranges.reserve(spec.sockets.size());
  for (const SocketSpec &s : spec.sockets) ranges.push_back({s.min_cap_w, s.max_cap_w});
  return ranges;
}

void split_node_cap(const ClusterSpec &spec, std::size_t node, double node_cap_w,
                    std::vector<double> &caps_w) {
  const std::vector<std::size_t> &sockets = spec.nodes[node].sockets;
  std::vector<PowerRange> ranges;
  for (std::size_t k : sockets) ranges.push_back({spec.sockets[k].min_cap_w, spec.sockets[k].max_cap_w});
  const AllocResult r = allocate_uniform(node_cap_w, ranges);
  for (std::size_t i = 0; i < sockets.size(); ++i)
    caps_w[sockets[i]] = r.feasible ? r.grants_w[i] : ranges[i].min_w;
}

std::vector<double> fair_share_caps(const ClusterSpec &spec, double budget_w) {
  const std::size_t n = spec.nodes.size();
  std::vector<double> floor_w(n, 0.0), width_w(n, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k : spec.nodes[i].sockets) {
      floor_w[i] += spec.sockets[k].min_cap_w;
      width_w[i] += std::max(0.0, spec.sockets[k].max_cap_w - spec.sockets[k].min_cap_w);
    }
  // What group g's nodes take at share f, before its limit.
  const auto within = [&](const GroupSpec &g, double f) {
    double t = 0.0;
    for (std::size_t i : g.nodes) t += floor_w[i] + f * width_w[i];
    return t;
  };
  const auto take = [&](double f) {
    double t = 0.0;
    for (const GroupSpec &g : spec.groups) t += std::min(within(g, f), g.limit_w);
    return t;
  };
  // The highest share in [0, 1] whose take fits `limit` (bisection, as the controller's).
  const auto share_fitting = [](const auto &taken, double limit) {
    if (taken(1.0) <= limit) return 1.0;
    double lo = 0.0, hi = 1.0;
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      (taken(mid) <= limit ? lo : hi) = mid;
    }
    return lo;
  };
  const double f = share_fitting(take, budget_w);
  std::vector<double> caps_w(spec.sockets.size(), 0.0);
  for (const GroupSpec &g : spec.groups) {
    const double fg = within(g, f) <= g.limit_w
                          ? f
                          : share_fitting([&](double x) { return within(g, x); }, g.limit_w);
    for (std::size_t i : g.nodes) split_node_cap(spec, i, floor_w[i] + fg * width_w[i], caps_w);
  }
  return caps_w;
}

void enforce_group_limits(const ClusterSpec &spec, std::vector<double> &caps_w) {
  for (const GroupSpec &g : spec.groups) {
    if (!std::isfinite(g.limit_w)) continue;
    std::vector<std::size_t> members;
    double sum = 0.0;
    for (std::size_t n : g.nodes)
      for (std::size_t k : spec.nodes[n].sockets) {
        members.push_back(k);
        sum += caps_w[k];
      }
    if (sum <= g.limit_w) continue;
    std::vector<PowerRange> ranges;
    for (std::size_t k : members)
      ranges.push_back({spec.sockets[k].min_cap_w, std::max(spec.sockets[k].min_cap_w, caps_w[k])});
    const AllocResult r = allocate_uniform(g.limit_w, ranges);
    for (std::size_t i = 0; i < members.size(); ++i)
      caps_w[members[i]] = r.feasible ? r.grants_w[i] : ranges[i].min_w;
  }
}

void apply_caps(ClusterIo &io, const std::vector<double> &caps_w) {
  for (std::size_t k = 0; k < caps_w.size(); ++k)
    if (caps_w[k] < io.cap_w(k)) io.set_cap_w(k, caps_w[k]);
  for (std::size_t k = 0; k < caps_w.size(); ++k)
    if (caps_w[k] != io.cap_w(k)) io.set_cap_w(k, caps_w[k]);
}

}  // namespace powergrad::sim
