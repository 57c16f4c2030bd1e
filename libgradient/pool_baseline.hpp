// Baseline B2: a central power pool in the style of Penelope's centralised comparison
// point (Srivastava, Zhang, Hoffmann, ICPP'22), as shared/notes/evaluation-model.md states
// it: per socket, every interval (2 s), a socket drawing well below its cap gives the
// excess to a pool, and hungry sockets take from the pool, in larger grants while they are
// below their fair share. Like B1 it only moves *unused* power, so when every socket is
// hungry it degrades to the fair (equal) shares it started from.
//
// Rules of one interval (allocate_pool), in this order:
// 1. release: a socket with power < cap - release_threshold_w (3 W) gets cap = power +
//    release_margin_w (1.5 W), not below its min; the difference goes to the pool;
// 2. budget: the pool absorbs a budget change (a rise adds to it, a drop takes from it
//    first); if the pool cannot cover a drop, caps above their fair share are cut in
//    proportion to their excess over it, then all caps in proportion to their room above
//    min, so caps + pool never exceed the budget;
// 3. grants: hungry sockets (power >= cap - release_threshold_w, or no reading) below their
//    max ask for grant_step_frac of their range, plus the whole gap to their fair share when
//    below it; those furthest below their fair share are served first, then the others in
//    index order, each min(ask, pool, max - cap).
// Fair share: the budget split evenly within the sockets' ranges (allocate_uniform).
// Interpretations (Penelope's paper gives the thresholds, not the grant sizes): the ask
// sizes and the service order above.
#pragma once

#include <vector>

#include "libgradient/allocator.hpp"
#include "libgradient/types.hpp"

namespace powergrad {

struct PoolParams {
  double interval_s = 2.0;           // how often PoolBalancer runs the rules
  double release_threshold_w = 3.0;  // drawing this far below the cap: release
  double release_margin_w = 1.5;     // headroom left above the power when releasing
  double grant_step_frac = 0.05;     // ask of a hungry socket, share of max - min
};

// One socket as one interval sees it.
struct PoolSocket {
  double cap_w = 0.0;    // cap in force (clamped into [min_w, max_w])
  double power_w = 0.0;  // average power over the interval; negative or not finite: no reading
  double min_w = 0.0;
  double max_w = 0.0;
};

// One interval of the rules above. pool_w is the pool carried over (clamped to >= 0). On
// success grants_w are the new caps and unallocated_w the new pool; caps + pool sum to at
// most budget_w. Not feasible (no partial answer) if the budget is bad, a range is bad, or
// the mins sum above the budget.
AllocResult allocate_pool(double budget_w, const std::vector<PoolSocket> &sockets, double pool_w,
                          const PoolParams &params = {});

// What PoolBalancer needs from each socket every period.
struct PoolReading {
  double power_w = 0.0;
  double min_w = 0.0;
  double max_w = 0.0;
};

// B2 across intervals: keeps the caps and the pool. step() starts from the fair shares (the
// pool holds what they leave), runs the rules when interval_s has passed since the last run,
// and at once (for safety) when the socket count changes, a cap falls outside its range, or
// the budget falls below the caps in force; otherwise it returns the caps in force.
class PoolBalancer {
 public:
  explicit PoolBalancer(const PoolParams &params = {}) : params_(params) {}

  AllocResult step(double now_s, double budget_w, const std::vector<PoolReading> &readings);
  const std::vector<double> &caps_w() const { return caps_w_; }
  double pool_w() const { return pool_w_; }
  void reset();

 private:
  PoolParams params_;
  std::vector<double> caps_w_;
  double pool_w_ = 0.0;
  double last_run_s_ = 0.0;
  bool started_ = false;
};

}  // namespace powergrad
