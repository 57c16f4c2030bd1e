#include "libgradient/estimator.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "libgradient/numeric.hpp"

namespace powergrad {

GradientEstimate estimate_counter_gradient(const CounterSample &sample,
                                           std::optional<double> power_w, const PowerModel &model,
                                           const CounterModelParams &params) {
  using Est = GradientEstimate;
  if (const std::string bad = model.check(); !bad.empty()) return Est::invalid(bad);
  if (!std::isfinite(sample.interval_s)) return Est::invalid("interval is not finite");
  if (sample.interval_s <= 0.0) return Est::invalid("interval is not positive");
  if (!sample.has_hardware_counters())
    return Est::invalid("no hardware counters (software events only)");
  if (!sample.cycles) return Est::invalid("no cycle counter");
  if (!sample.stall_cycles) return Est::invalid("no memory-stall counter");
  const double cycles = *sample.cycles;
  const double stalls = *sample.stall_cycles;
  if (!finite_nonnegative(cycles) || !finite_nonnegative(stalls))
    return Est::invalid("counter values are negative or not finite");
  if (cycles == 0.0) return Est::invalid("no cycles counted (job idle or counters stopped)");
  if (stalls > cycles * (1.0 + params.max_stall_overshoot))
    return Est::invalid("memory-stall cycles exceed cycles: counters inconsistent");

  const std::optional<double> p = power_w ? power_w : sample.average_power_w();
  if (!p) return Est::invalid("no power reading");
  if (!std::isfinite(*p)) return Est::invalid("power reading is not finite");
  if (*p <= model.p0_w)
    return Est::invalid("power at or below the active floor P0: no frequency headroom to model");

  const double stall_share = std::min(1.0, stalls / cycles);
  double dynamic_w = *p - model.p0_w;
  double confidence = saturating(cycles, params.half_confidence_cycles) *
                      saturating(sample.interval_s, params.half_confidence_interval_s);
  if (dynamic_w < params.min_dynamic_power_w) {
    dynamic_w = params.min_dynamic_power_w;
    confidence *= 0.5;  // the clamp, not the measurement, sets the value
  }

  Est e;
  e.value = (1.0 - stall_share) / (3.0 * dynamic_w);
  e.unit = GradientUnit::relative_speedup_per_w;
  e.confidence = std::clamp(confidence, 0.0, 1.0);
  e.valid = true;
  e.source = GradientSource::counter_model;
  return e;
}

GradientEstimator::GradientEstimator(const PowerModel &model, const EstimatorParams &params)
    : model_(model), params_(params) {
  double &w = params_.smoothing_weight;
  if (!std::isfinite(w) || w <= 0.0 || w > 1.0) w = 1.0;
  if (params_.max_stale_periods < 0) params_.max_stale_periods = 0;
  reset();
}

void GradientEstimator::reset() {
  current_ = GradientEstimate::invalid("no sample yet");
  stale_periods_ = 0;
}

const GradientEstimate &GradientEstimator::update(const CounterSample &sample,
                                                  std::optional<double> power_w) {
  const double w = params_.smoothing_weight;
  GradientEstimate fresh = estimate_counter_gradient(sample, power_w, model_, params_.counter);
  if (!fresh.valid) {
    if (current_.valid && stale_periods_ < params_.max_stale_periods) {
      ++stale_periods_;
      current_.confidence *= 1.0 - w;  // an old number is worth less each period
      return current_;
    }
    if (current_.valid)
      fresh.reason = "no usable sample for " + std::to_string(stale_periods_ + 1) +
                     " periods: " + fresh.reason;
    current_ = std::move(fresh);
    stale_periods_ = 0;
    return current_;
  }
  stale_periods_ = 0;
  if (!current_.valid) {
    current_ = std::move(fresh);
    return current_;
  }
  current_.value = w * fresh.value + (1.0 - w) * current_.value;
  current_.confidence = w * fresh.confidence + (1.0 - w) * current_.confidence;
  current_.source = fresh.source;
  current_.unit = fresh.unit;
  return current_;
}

}  // namespace powergrad
