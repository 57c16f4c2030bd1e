// The noise of a level that is estimated again every period (the noise guards of the node
// and cluster controllers): how far a new value may lie from the level's recent average
// before it tells more than noise.
//
// The spread is the moving mean square of each value's deviation from the moving average of
// the values before it (weight w): it counts slow drifts of the level as noise too, which
// makes a guard built on it careful (in the simulator's scenarios that did better than
// first differences, which miss the noise that smoothing upstream spreads over periods).
// A value further than kChange spreads (and than kChange x kMinSd, so that a level that has
// been exact so far still has some room) from that average is a change of the level, not
// noise: the average jumps to it and the spread is left as it was. So a level that was
// steady and then steps (a job's phase changes) is followed at once, while a noisy level
// (spread 0.7 in log units for a busy latency service) practically never resets.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace powergrad {

struct LevelNoise {
  static constexpr double kChange = 10.0;
  static constexpr double kMinSd = 0.05;

  double mean = std::numeric_limits<double>::quiet_NaN();
  double var = std::numeric_limits<double>::quiet_NaN();

  // A new value (not finite: the level is unknown again, and so is its noise). Returns its
  // deviation from the mean before it when that went into the spread; NaN for the first
  // value, a change, or no value.
  double add(double level, double w) {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    if (!std::isfinite(level)) {
      mean = var = nan;
      return nan;
    }
    if (!std::isfinite(mean)) {
      mean = level;
      return nan;
    }
    const double dev = level - mean;
    const double room = kChange * std::fmax(std::isfinite(var) ? std::sqrt(var) : 0.0, kMinSd);
    if (std::isfinite(var) && std::fabs(dev) > room) {
      mean = level;
      return nan;
    }
    var = std::isfinite(var) ? (1.0 - w) * var + w * dev * dev : dev * dev;
    mean += w * dev;
    return dev;
  }
  bool known() const { return std::isfinite(var); }
  double sd() const {
    return std::isfinite(var) ? std::sqrt(var) : std::numeric_limits<double>::quiet_NaN();
  }
};

// LevelNoise that also knows how far its moving average can be trusted (the node guard's,
// which judges averages; the cluster controller keeps the plain one for its 100k nodes).
struct AveragedLevelNoise : LevelNoise {
  // The moving mean of the products of consecutive deviations (their lag-1 covariance) and
  // the last deviation.
  double cov1 = std::numeric_limits<double>::quiet_NaN();
  double last_dev = std::numeric_limits<double>::quiet_NaN();

  void add(double level, double w) {
    const double dev = LevelNoise::add(level, w);
    if (!std::isfinite(level)) cov1 = std::numeric_limits<double>::quiet_NaN();
    if (std::isfinite(dev) && std::isfinite(last_dev)) {
      const double c = dev * last_dev;
      cov1 = std::isfinite(cov1) ? (1.0 - w) * cov1 + w * c : c;
    }
    last_dev = dev;
  }
  // The spread of the moving average itself (weight w): for deviations of spread sd() with
  // lag-1 correlation phi (from cov1; unknown counts as 1), as of an AR(1) series,
  // sd() sqrt(w / (2 - w) (1 + a) / (1 - a)) with a = phi (1 - w), at most sd(). Independent
  // values give 0.23 sd() at w = 0.1; a slow drift, whose deviations follow each other,
  // about sd() itself, so a drift still counts as noise.
  double average_sd(double w) const {
    w = std::clamp(w, 1e-6, 1.0);
    const double phi = std::isfinite(cov1) && var > 0.0 ? std::clamp(cov1 / var, 0.0, 1.0) : 1.0;
    const double a = phi * (1.0 - w);
    const double f = a < 1.0 ? w / (2.0 - w) * (1.0 + a) / (1.0 - a) : 1.0;
    return sd() * std::sqrt(std::min(1.0, f));
  }
};

// A marginal gain below this share of its curve's steepest is none to the noise guards (no
// level): what is left of a saturated domain's curve in a moving average, which decays by a
// constant factor every period and never reaches 0. Its log is no level to compare (e^-250
// and below in the simulator's llm-serving-regions, jumping by tens of log units from
// period to period), and a noise that large would have a guard pin it at the median level.
inline constexpr double kNegligibleGain = 1e-6;

// The level of marginal gain g on a curve whose steepest gain is `steepest`: log(g), or NaN
// when g is negligible beside it (kNegligibleGain) or not a finite number.
inline double gain_level(double g, double steepest) {
  if (!(g > kNegligibleGain * steepest) || !std::isfinite(g))
    return std::numeric_limits<double>::quiet_NaN();
  return std::log(g);
}

// The spread of a level (the log of a marginal gain) that comes from the model, not from
// the noise of its inputs: a watt's gain is about proportional to 1 - m (m: the memory-bound
// share of the run time), so a spread sd_m of m is one of sd_m / (1 - m) in the level. An
// estimate of confidence c has sd_m = (1 - c) prior_sd (gradient_model.hpp: confidence 0 is
// the prior's spread). With software counters alone and no progress signal, m is the prior
// (0.5 +- 0.35): a spread of 0.7 in log units, a factor of 2.
inline double model_level_sd(double memory_share, double confidence, double prior_sd) {
  if (!std::isfinite(memory_share) || !std::isfinite(confidence) || !std::isfinite(prior_sd))
    return 0.0;
  const double m = std::clamp(memory_share, 0.0, 0.9);
  return (1.0 - std::clamp(confidence, 0.0, 1.0)) * std::max(prior_sd, 0.0) / (1.0 - m);
}

// The median of v, which it reorders (linear time); NaN when v is empty.
inline double median_in_place(std::vector<double> &v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return v.size() % 2 ? *mid : 0.5 * (*mid + *std::max_element(v.begin(), mid));
}

// The noise guard's soft threshold: for a level that lies `diff` from the median, with the
// noise allowance t (k spreads), the factor on its curve that takes the part of diff within
// t out of it (all of it when |diff| <= t: the level then counts at the median).
inline double guard_scale(double diff, double t) {
  const double kept = std::fabs(diff) <= t ? 0.0 : (diff > 0.0 ? diff - t : diff + t);
  return std::exp(kept - diff);
}

// The node guard's soft threshold, judged on averages: a domain whose average level lies
// `average_diff` from the median of the averages, with the allowance t (k spreads of that
// average), keeps the share max(0, |average_diff| - t) / |average_diff| of its level's
// difference from the median now (`diff_now`); the factor on its curve that does so. One
// period's noisy level then neither makes nor breaks a difference, a steady one counts even
// when each period's level is noisy, and domains that differ only by noise are held at the
// even split (share 0).
inline double guard_scale_of_average(double average_diff, double t, double diff_now) {
  const double a = std::fabs(average_diff);
  const double kept = a > t ? (a - t) / a : 0.0;
  return std::exp(-diff_now * (1.0 - kept));
}

}  // namespace powergrad
