// Gradient estimator v1: the counter model.
//
// The share of unhalted cycles stalled on memory, s, tells how much of a job's time scales
// with core frequency: with T(f) = Tc f0/f + Tm, d ln perf / d ln f = 1 - s. The cubic power
// model P = P0 + a alpha f^3 gives d ln f / dP = 1 / (3 (P - P0)). Together:
//
//   g = (1 - s) / (3 (P - P0))     relative speed-up per watt at the current power P.
//
// alpha cancels, so only P0 of the PowerModel matters here. Later versions add online
// regression and cap perturbation on top; GradientEstimator is where they will plug in.
#pragma once

#include <optional>

#include "libgradient/types.hpp"

namespace powergrad {

struct CounterModelParams {
  // Lower bound on P - P0. Near the floor the difference is mostly RAPL noise (1-2% of
  // package power), and 1 / (P - P0) would turn that noise into an enormous gradient.
  double min_dynamic_power_w = 2.0;
  // Counted cycles at which the cycle-count part of the confidence reaches 1/2.
  double half_confidence_cycles = 1e7;
  // Interval length at which the interval part of the confidence reaches 1/2.
  double half_confidence_interval_s = 0.05;
  // Multiplexing scales counts, so stall_cycles may overshoot cycles a little; beyond this
  // relative overshoot the counters are taken to be broken.
  double max_stall_overshoot = 0.05;
};

// One estimate from one sample. power_w is the domain's average power over the interval; when
// not given, the sample's energy_j / interval_s is used. Returns valid = false with a reason
// when the sample cannot support an estimate: no hardware counters (software events only),
// no cycles or stall counter, zero cycles, interval <= 0, non-finite or negative counts,
// stall cycles well above cycles, no power reading, power at or below P0, unusable model.
GradientEstimate estimate_counter_gradient(const CounterSample &sample,
                                           std::optional<double> power_w, const PowerModel &model,
                                           const CounterModelParams &params = {});

struct EstimatorParams {
  CounterModelParams counter;
  // Weight of the newest estimate in the exponential moving average, in (0, 1]; 1 means no
  // smoothing. Values outside that range are clamped (a non-positive or non-finite one
  // becomes 1: never stop reacting).
  double smoothing_weight = 0.3;
  // A job whose sample is unusable for a period or two (a counter read failed, the interval
  // was too short) keeps its last smoothed gradient, at decaying confidence, for at most this
  // many consecutive periods; after that its estimate becomes invalid.
  int max_stale_periods = 3;
};

// Per-job estimator state: one instance per job (per domain the job is measured on).
class GradientEstimator {
 public:
  explicit GradientEstimator(const PowerModel &model, const EstimatorParams &params = {});

  // Feeds one period's sample; returns the smoothed estimate (also current()).
  const GradientEstimate &update(const CounterSample &sample,
                                 std::optional<double> power_w = std::nullopt);
  const GradientEstimate &current() const { return current_; }
  // Forgets everything, as if just constructed (e.g. the job's phase changed).
  void reset();

  const EstimatorParams &params() const { return params_; }

 private:
  PowerModel model_;
  EstimatorParams params_;
  GradientEstimate current_;
  int stale_periods_ = 0;
};

}  // namespace powergrad
