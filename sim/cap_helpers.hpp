// Small steps every policy needs: socket ranges, node -> socket splits, group limits, and
// the seconds in their inputs() lines.
#pragma once

#include <string>
#include <vector>

#include "libgradient/types.hpp"
#include "sim/policy.hpp"
#include "sim/spec.hpp"

namespace powergrad::sim {

std::vector<PowerRange> socket_ranges(const ClusterSpec &spec);

// Splits a node's cap evenly over its sockets (B0 within the node), into caps_w.
void split_node_cap(const ClusterSpec &spec, std::size_t node, double node_cap_w,
                    std::vector<double> &caps_w);

// Where a group's caps sum above its limit, lowers them to one common level (never below a
// socket's min, never above its current cap), so the group fits. Groups' floors fit their
// limits (ClusterSpec::check), so this always succeeds.
void enforce_group_limits(const ClusterSpec &spec, std::vector<double> &caps_w);

// Applies caps: lowered ones first, then raised ones (the order a real transport needs; here
// actuation is instant, but it keeps the habit visible).
void apply_caps(ClusterIo &io, const std::vector<double> &caps_w);

// A duration for a policy's inputs() line: "0.5 s".
std::string format_seconds(double s);

}  // namespace powergrad::sim
