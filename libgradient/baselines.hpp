// Baseline policies PowerGrad is measured against, with the allocators' result shape.
// See shared/notes/evaluation-model.md (B0, B1).
#pragma once

#include <limits>
#include <vector>

#include "libgradient/allocator.hpp"
#include "libgradient/types.hpp"

namespace powergrad {

// B0 uniform: cap_i = clip(L, min_i, max_i), with the level L chosen so the caps sum to the
// budget. Watts that clipping frees at one node's max go to the others, so the budget is
// used but never exceeded; above sum(max) everyone is at max and the rest is unallocated_w.
// Not feasible if the floors sum above the budget or a range is bad.
AllocResult allocate_uniform(double budget_w, const std::vector<PowerRange> &ranges);

// B1 usage-based: the rules of Slurm's former power plugin (power/cray, power/cray_aries; its
// power_mgmt guide until Slurm 24.05 and _rebalance_node_power() in power_cray_aries.c).
// Thresholds and rates are fractions (0.9, not 90).
struct UsageParams {
  double balance_interval_s = 30.0;  // how often UsageBalancer rebalances
  double lower_threshold = 0.90;     // drawing below this share of its cap: lower the cap
  double upper_threshold = 0.95;     // drawing above this share of its cap: raise the cap
  double decrease_rate = 0.50;       // most a cap drops per interval, share of max - min
  double increase_rate = 0.20;       // most a cap rises per interval, share of max - min
  double recent_job_s = 300.0;       // a job started this recently: the common high cap
};

// One node as one balance interval sees it.
struct UsageNode {
  double cap_w = 0.0;    // cap in force; <= 0 or not finite: none set yet
  double power_w = 0.0;  // recent average draw; <= 0 or not finite: no reading
  double min_w = 0.0;
  double max_w = 0.0;
  double seconds_since_job_start = std::numeric_limits<double>::infinity();
};

// One balance interval. Every node is put in one of three classes:
// - lowered: drawing < lower_threshold * cap: cap - min((cap - power) / 2,
//   decrease_rate * (max - min)), not below min;
// - kept: drawing within the thresholds: keeps its cap;
// - raised: drawing > upper_threshold * cap, may grow by at most increase_rate * (max - min)
//   over its cap; or a job started within recent_job_s, or no cap or no reading yet, may grow
//   to max. The raised nodes share what lowered and kept nodes leave of the budget at one
//   common level ("the common high cap"), each clipped to [min, its limit].
// If lowered and kept caps plus the raised nodes' floors exceed the budget (the budget
// shrank), lowered and kept caps are first cut by an equal amount each (not below min).
// Interpretations where Slurm's code and guide leave room (documented in the .cpp):
// leftover goes to the raised class only (kept nodes keep their cap, as in Slurm's code);
// the common level is found exactly (Slurm hands it out in node order, rounding to whole
// watts, which makes the result depend on node order); budget the raised class cannot take
// is reported as unallocated_w. Not feasible if the floors sum above the budget or a range
// is bad.
AllocResult allocate_usage(double budget_w, const std::vector<UsageNode> &nodes,
                           const UsageParams &params = {});

// What UsageBalancer needs from each node every period.
struct UsageReading {
  double power_w = 0.0;
  double min_w = 0.0;
  double max_w = 0.0;
  double seconds_since_job_start = std::numeric_limits<double>::infinity();
};

// B1 across intervals: remembers the caps in force. step() rebalances on its first call,
// when balance_interval_s has passed since the last rebalance, and at once (for safety) when
// the node count changes, the budget falls below the caps in force, or a cap falls outside
// its node's range; otherwise it returns the caps in force.
class UsageBalancer {
 public:
  explicit UsageBalancer(const UsageParams &params = {}) : params_(params) {}

  AllocResult step(double now_s, double budget_w, const std::vector<UsageReading> &readings);
  const std::vector<double> &caps_w() const { return caps_w_; }
  void reset();

 private:
  bool must_rebalance(double now_s, double budget_w,
                      const std::vector<UsageReading> &readings) const;

  UsageParams params_;
  std::vector<double> caps_w_;
  double last_balance_s_ = 0.0;
  bool balanced_ = false;
};

}  // namespace powergrad
