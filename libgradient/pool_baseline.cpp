#include "libgradient/pool_baseline.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "libgradient/baselines.hpp"
#include "libgradient/format.hpp"
#include "libgradient/numeric.hpp"

namespace powergrad {

AllocResult allocate_pool(double budget_w, const std::vector<PoolSocket> &sockets, double pool_w,
                          const PoolParams &params) {
  AllocResult result;
  if (!finite_nonnegative(budget_w)) {
    result.error = "budget " + format_w(budget_w) + " is negative or not finite";
    return result;
  }
  const std::size_t n = sockets.size();
  std::vector<PowerRange> ranges(n);
  std::vector<double> mins(n);
  for (std::size_t i = 0; i < n; ++i) {
    ranges[i] = {sockets[i].min_w, sockets[i].max_w};
    mins[i] = sockets[i].min_w;
    if (std::string why = ranges[i].check(); !why.empty()) {
      result.error = "socket " + std::to_string(i) + ": " + why;
      result.failed_index = i;
      return result;
    }
  }
  const AllocResult fair = allocate_uniform(budget_w, ranges);
  if (!fair.feasible) {
    result.error = fair.error;
    return result;
  }

  std::vector<double> caps(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double c = std::isfinite(sockets[i].cap_w) ? sockets[i].cap_w : fair.grants_w[i];
    caps[i] = std::clamp(c, sockets[i].min_w, sockets[i].max_w);
  }
  double pool = finite_nonnegative(pool_w) ? pool_w : 0.0;

  // 1. Release.
  std::vector<char> released(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const double power = sockets[i].power_w;
    if (!finite_nonnegative(power) || !(power < caps[i] - params.release_threshold_w)) continue;
    const double lowered = std::max(sockets[i].min_w, power + params.release_margin_w);
    if (lowered < caps[i]) {
      pool += caps[i] - lowered;
      caps[i] = lowered;
      released[i] = 1;
    }
  }

  // 2. Budget.
  const double total = sum_in_order(caps) + pool;
  if (total > budget_w) {
    double over = total - budget_w;
    const double from_pool = std::min(over, pool);
    pool -= from_pool;
    over -= from_pool;
    if (over > 0.0) {
      over = lower_towards(caps, fair.grants_w, over);
      lower_towards(caps, mins, over);
      pool = 0.0;
      fit_to_budget(caps.data(), mins.data(), n, budget_w);
    }
  } else {
    pool += budget_w - total;
  }

  // 3. Grants.
  std::vector<std::size_t> hungry;
  for (std::size_t i = 0; i < n; ++i) {
    const double power = sockets[i].power_w;
    const bool reading = finite_nonnegative(power);
    if (released[i] || caps[i] >= sockets[i].max_w) continue;
    if (!reading || power >= caps[i] - params.release_threshold_w) hungry.push_back(i);
  }
  const auto deficit = [&](std::size_t i) { return std::max(0.0, fair.grants_w[i] - caps[i]); };
  std::stable_sort(hungry.begin(), hungry.end(),
                   [&](std::size_t a, std::size_t b) { return deficit(a) > deficit(b); });
  for (std::size_t i : hungry) {
    if (!(pool > 0.0)) break;
    const double ask = params.grant_step_frac * (sockets[i].max_w - sockets[i].min_w) + deficit(i);
    const double give = std::min({ask, pool, sockets[i].max_w - caps[i]});
    if (!(give > 0.0)) continue;
    caps[i] = std::min(sockets[i].max_w, caps[i] + give);
    pool -= give;
  }

  // Rounding must not let caps leave their ranges, nor caps and pool claim more than the
  // budget.
  for (std::size_t i = 0; i < n; ++i) caps[i] = std::clamp(caps[i], mins[i], sockets[i].max_w);
  fit_to_budget(caps.data(), mins.data(), n, budget_w);
  pool = std::clamp(pool, 0.0, std::max(0.0, budget_w - sum_in_order(caps)));
  result.feasible = true;
  result.grants_w = std::move(caps);
  result.unallocated_w = pool;
  return result;
}

void PoolBalancer::reset() {
  caps_w_.clear();
  pool_w_ = 0.0;
  last_run_s_ = 0.0;
  started_ = false;
}

AllocResult PoolBalancer::step(double now_s, double budget_w,
                               const std::vector<PoolReading> &readings) {
  const std::size_t n = readings.size();
  if (!started_ || caps_w_.size() != n) {
    std::vector<PowerRange> ranges(n);
    for (std::size_t i = 0; i < n; ++i) ranges[i] = {readings[i].min_w, readings[i].max_w};
    AllocResult fair = allocate_uniform(budget_w, ranges);
    if (!fair.feasible) return fair;
    caps_w_ = fair.grants_w;
    pool_w_ = fair.unallocated_w;
    last_run_s_ = now_s;
    started_ = true;
    return fair;
  }
  bool must_run = !(now_s - last_run_s_ < params_.interval_s) || sum_in_order(caps_w_) > budget_w;
  for (std::size_t i = 0; i < n && !must_run; ++i)
    must_run = !(caps_w_[i] >= readings[i].min_w && caps_w_[i] <= readings[i].max_w);
  if (!must_run) {
    AllocResult kept;
    kept.feasible = true;
    kept.grants_w = caps_w_;
    // A budget that fell (but not below the caps) shrinks the pool at once.
    pool_w_ = std::clamp(pool_w_, 0.0, std::max(0.0, budget_w - sum_in_order(caps_w_)));
    kept.unallocated_w = pool_w_;
    return kept;
  }
  std::vector<PoolSocket> sockets(n);
  for (std::size_t i = 0; i < n; ++i)
    sockets[i] = {caps_w_[i], readings[i].power_w, readings[i].min_w, readings[i].max_w};
  AllocResult r = allocate_pool(budget_w, sockets, pool_w_, params_);
  if (r.feasible) {
    caps_w_ = r.grants_w;
    pool_w_ = r.unallocated_w;
    last_run_s_ = now_s;
  }
  return r;
}

}  // namespace powergrad
