#include "libgradient/types.hpp"

#include <cmath>
#include <utility>

#include "libgradient/format.hpp"

namespace powergrad {

std::string PowerRange::check() const {
  if (!std::isfinite(min_w) || min_w < 0.0)
    return "min_w " + format_w(min_w) + " is negative or not finite";
  if (!std::isfinite(max_w)) return "max_w " + format_w(max_w) + " is not finite";
  if (min_w > max_w) return "min_w " + format_w(min_w) + " is above max_w " + format_w(max_w);
  return {};
}

bool CounterSample::has_hardware_counters() const {
  return cycles.has_value() || instructions.has_value() || stall_cycles.has_value() ||
         ref_cycles.has_value();
}

std::optional<double> CounterSample::average_power_w() const {
  if (!energy_j || !std::isfinite(*energy_j) || *energy_j < 0.0) return std::nullopt;
  if (!std::isfinite(interval_s) || interval_s <= 0.0) return std::nullopt;
  return *energy_j / interval_s;
}

const char *to_string(GradientUnit unit) {
  switch (unit) {
    case GradientUnit::relative_speedup_per_w:
      return "relative_speedup_per_w";
    case GradientUnit::latency_s_saved_per_w:
      return "latency_s_saved_per_w";
  }
  return "unknown";
}

const char *to_string(GradientSource source) {
  switch (source) {
    case GradientSource::none:
      return "none";
    case GradientSource::counter_model:
      return "counter_model";
    case GradientSource::regression:
      return "regression";
    case GradientSource::perturbation:
      return "perturbation";
    case GradientSource::combined:
      return "combined";
    case GradientSource::default_prior:
      return "default_prior";
  }
  return "unknown";
}

GradientEstimate GradientEstimate::invalid(std::string why) {
  GradientEstimate e;
  e.reason = std::move(why);
  return e;
}

std::string PowerModel::check() const {
  if (!std::isfinite(p0_w) || !std::isfinite(tdp_w) || !std::isfinite(f_max_hz) ||
      !std::isfinite(alpha))
    return "power model has a non-finite parameter";
  if (p0_w < 0.0) return "power model: p0_w is negative";
  if (tdp_w <= p0_w) return "power model: tdp_w must be above p0_w";
  if (f_max_hz <= 0.0) return "power model: f_max_hz must be positive";
  if (alpha <= 0.0) return "power model: alpha must be positive";
  return {};
}

double PowerModel::a_w_per_hz3() const {
  if (!check().empty()) return 0.0;
  return (tdp_w - p0_w) / (f_max_hz * f_max_hz * f_max_hz);
}

double PowerModel::power_at_w(double f_hz) const {
  const double a = a_w_per_hz3();
  const double f = std::isfinite(f_hz) && f_hz > 0.0 ? f_hz : 0.0;
  return p0_w + a * alpha * f * f * f;
}

double PowerModel::freq_at_hz(double power_w) const {
  const double a = a_w_per_hz3();
  if (a <= 0.0 || !std::isfinite(power_w) || power_w <= p0_w) return 0.0;
  const double f = std::cbrt((power_w - p0_w) / (a * alpha));
  return f < f_max_hz ? f : f_max_hz;
}

}  // namespace powergrad
