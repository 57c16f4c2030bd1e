#include "sim/cap_helpers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

}  // namespace powergrad::sim
