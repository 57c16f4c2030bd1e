#include "libgradient/baselines.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "libgradient/format.hpp"
#include "libgradient/numeric.hpp"

namespace powergrad {

namespace {

// False, with the error and failed_index set, if a range is bad.
bool check_ranges(const std::vector<PowerRange> &ranges, AllocResult &result) {
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (std::string why = ranges[i].check(); !why.empty()) {
      result.error = "node " + std::to_string(i) + ": " + why;
      result.failed_index = i;
      return false;
    }
  }
  return true;
}

// The level L with sum(clip(L, min_i, max_i)) == budget_w, for sum(min) <= budget_w <
// sum(max). f(L) is piecewise linear: walking the sorted bounds, f = base + free * L, where
// base counts nodes still at their min or already at their max and free the nodes between.
double uniform_level(double budget_w, const std::vector<PowerRange> &ranges, double floor_sum) {
  struct Bound {
    double w;
    bool is_max;
  };
  std::vector<Bound> bounds;
  bounds.reserve(2 * ranges.size());
  for (const PowerRange &r : ranges) {
    bounds.push_back({r.min_w, false});
    bounds.push_back({r.max_w, true});
  }
  std::sort(bounds.begin(), bounds.end(), [](const Bound &a, const Bound &b) {
    return a.w != b.w ? a.w < b.w : (!a.is_max && b.is_max);
  });
  double base = floor_sum;
  double free = 0.0;
  for (std::size_t k = 0; k < bounds.size(); ++k) {
    const Bound &b = bounds[k];
    if (b.is_max) {
      base += b.w;
      free -= 1.0;
    } else {
      base -= b.w;
      free += 1.0;
    }
    const bool segment_ends = k + 1 == bounds.size() || bounds[k + 1].w != b.w;
    if (!segment_ends || free < 0.5) continue;
    const double next = k + 1 < bounds.size() ? bounds[k + 1].w : b.w;
    if (base + free * next >= budget_w) return (budget_w - base) / free;
  }
  return bounds.empty() ? 0.0 : bounds.back().w;
}

// Splits budget_w over `ranges` at one level; assumes the ranges are valid.
AllocResult uniform_over(double budget_w, const std::vector<PowerRange> &ranges) {
  AllocResult result;
  double floor_sum = 0.0;
  double cap_sum = 0.0;
  for (const PowerRange &r : ranges) {
    floor_sum += r.min_w;
    cap_sum += r.max_w;
  }
  if (floor_sum > budget_w) {
    result.error =
        "floors sum to " + format_w(floor_sum) + ", above the budget " + format_w(budget_w);
    return result;
  }
  std::vector<double> grants(ranges.size());
  std::vector<double> floors(ranges.size());
  const double level = budget_w >= cap_sum ? std::numeric_limits<double>::infinity()
                                           : uniform_level(budget_w, ranges, floor_sum);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    grants[i] = std::clamp(level, ranges[i].min_w, ranges[i].max_w);
    floors[i] = ranges[i].min_w;
  }
  fit_to_budget(grants.data(), floors.data(), grants.size(), budget_w);
  result.feasible = true;
  result.unallocated_w = std::max(0.0, budget_w - sum_in_order(grants));
  result.grants_w = std::move(grants);
  return result;
}

bool check_budget(double budget_w, AllocResult &result) {
  if (std::isfinite(budget_w) && budget_w >= 0.0) return true;
  result.error = "budget " + format_w(budget_w) + " is negative or not finite";
  return false;
}

// Lowers caps by one common amount d each, none below its floor, so that they drop by `need`
// in total (or as far as the floors allow). Taking the nodes with the least room first lets
// one pass find d exactly.
void cut_evenly(std::vector<double> &caps, const std::vector<double> &floors,
                const std::vector<std::size_t> &which, double need) {
  std::vector<std::size_t> order = which;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const double ra = caps[a] - floors[a];
    const double rb = caps[b] - floors[b];
    return ra != rb ? ra < rb : a < b;
  });
  std::size_t left = order.size();
  for (std::size_t i : order) {
    if (!(need > 0.0)) break;
    const double cut = std::min(caps[i] - floors[i], need / static_cast<double>(left));
    caps[i] -= cut;
    need -= cut;
    --left;
  }
}

}  // namespace

AllocResult allocate_uniform(double budget_w, const std::vector<PowerRange> &ranges) {
  AllocResult result;
  if (!check_budget(budget_w, result) || !check_ranges(ranges, result)) return result;
  return uniform_over(budget_w, ranges);
}

// Interpretation notes (Slurm's power_cray_aries.c, _rebalance_node_power, and the guide):
// - Slurm's code raises only nodes above upper_threshold, with a new job, or without a cap or
//   reading; nodes between the thresholds keep their cap. The guide's "leftover split evenly"
//   example only has such raised nodes, so leftover goes to the raised class here too.
// - Slurm hands out the common level node by node with integer division and re-normalises
//   after each node that hits its limit, so its answer depends on node order. Here the
//   level is the exact water level over the raised nodes' [min, limit] (no rounding), which
//   is what the re-normalisation approximates and what the guide's examples show.
// - When the budget shrinks, Slurm cuts lowered and kept nodes by one even amount in a
//   single pass, which frees too little once some reach their minimum (and then underflows
//   an unsigned sum). Here the even amount is found exactly over the nodes that still have
//   room (cut_evenly), so the budget always holds.
// - Slurm leaves DOWN and not-ready nodes at their cap and levels caps per job when asked
//   (job_level); callers model the former by leaving such nodes out and lowering the budget;
//   the latter is not modelled.
AllocResult allocate_usage(double budget_w, const std::vector<UsageNode> &nodes,
                           const UsageParams &params) {
  AllocResult result;
  if (!check_budget(budget_w, result)) return result;
  const std::size_t n = nodes.size();
  std::vector<PowerRange> ranges(n);
  for (std::size_t i = 0; i < n; ++i) ranges[i] = {nodes[i].min_w, nodes[i].max_w};
  if (!check_ranges(ranges, result)) return result;

  std::vector<double> caps(n, 0.0);
  std::vector<double> floors(n);
  std::vector<std::size_t> fixed;  // lowered or kept: their cap is decided
  std::vector<std::size_t> raised;
  std::vector<PowerRange> raise_ranges;
  for (std::size_t i = 0; i < n; ++i) {
    const UsageNode &node = nodes[i];
    const double span = node.max_w - node.min_w;
    floors[i] = node.min_w;
    const bool has_cap = std::isfinite(node.cap_w) && node.cap_w > 0.0;
    const bool has_reading = std::isfinite(node.power_w) && node.power_w > 0.0;
    const bool recent = node.seconds_since_job_start <= params.recent_job_s;
    const double cap = has_cap ? std::clamp(node.cap_w, node.min_w, node.max_w) : 0.0;
    if (recent || !has_cap || !has_reading) {
      raised.push_back(i);
      raise_ranges.push_back({node.min_w, node.max_w});
    } else if (node.power_w < params.lower_threshold * cap) {
      const double drop = std::min((cap - node.power_w) / 2.0, params.decrease_rate * span);
      caps[i] = std::max(node.min_w, cap - drop);
      fixed.push_back(i);
    } else if (node.power_w <= params.upper_threshold * cap) {
      caps[i] = cap;
      fixed.push_back(i);
    } else {
      raised.push_back(i);
      raise_ranges.push_back({node.min_w, std::min(node.max_w, cap + params.increase_rate * span)});
    }
  }

  double floor_sum = 0.0;
  for (double f : floors) floor_sum += f;
  if (floor_sum > budget_w) {
    result.error =
        "floors sum to " + format_w(floor_sum) + ", above the budget " + format_w(budget_w);
    return result;
  }
  double fixed_sum = 0.0;
  for (std::size_t i : fixed) fixed_sum += caps[i];
  double raise_floor_sum = 0.0;
  for (const PowerRange &r : raise_ranges) raise_floor_sum += r.min_w;
  if (fixed_sum + raise_floor_sum > budget_w) {
    cut_evenly(caps, floors, fixed, fixed_sum + raise_floor_sum - budget_w);
    fixed_sum = 0.0;
    for (std::size_t i : fixed) fixed_sum += caps[i];
  }

  const double left_w = std::max(0.0, budget_w - fixed_sum);
  const AllocResult shared = uniform_over(left_w, raise_ranges);
  if (shared.feasible)
    for (std::size_t k = 0; k < raised.size(); ++k) caps[raised[k]] = shared.grants_w[k];
  else  // only float noise can get here: floors fit the budget, so give the raised their min
    for (std::size_t k = 0; k < raised.size(); ++k) caps[raised[k]] = raise_ranges[k].min_w;
  fit_to_budget(caps.data(), floors.data(), n, budget_w);
  result.feasible = true;
  result.unallocated_w = std::max(0.0, budget_w - sum_in_order(caps));
  result.grants_w = std::move(caps);
  return result;
}

void UsageBalancer::reset() {
  caps_w_.clear();
  balanced_ = false;
  last_balance_s_ = 0.0;
}

bool UsageBalancer::must_rebalance(double now_s, double budget_w,
                                   const std::vector<UsageReading> &readings) const {
  if (!balanced_ || caps_w_.size() != readings.size()) return true;
  if (!(now_s - last_balance_s_ < params_.balance_interval_s)) return true;
  if (sum_in_order(caps_w_) > budget_w) return true;
  for (std::size_t i = 0; i < readings.size(); ++i)
    if (!(caps_w_[i] >= readings[i].min_w && caps_w_[i] <= readings[i].max_w)) return true;
  return false;
}

AllocResult UsageBalancer::step(double now_s, double budget_w,
                                const std::vector<UsageReading> &readings) {
  if (!must_rebalance(now_s, budget_w, readings)) {
    AllocResult kept;
    kept.feasible = true;
    kept.grants_w = caps_w_;
    kept.unallocated_w = std::max(0.0, budget_w - sum_in_order(caps_w_));
    return kept;
  }
  if (caps_w_.size() != readings.size()) caps_w_.assign(readings.size(), 0.0);  // no caps yet
  std::vector<UsageNode> nodes(readings.size());
  for (std::size_t i = 0; i < readings.size(); ++i) {
    const UsageReading &r = readings[i];
    nodes[i] = {caps_w_[i], r.power_w, r.min_w, r.max_w, r.seconds_since_job_start};
  }
  AllocResult result = allocate_usage(budget_w, nodes, params_);
  if (result.feasible) {
    caps_w_ = result.grants_w;
    last_balance_s_ = now_s;
    balanced_ = true;
  }
  return result;
}

}  // namespace powergrad
