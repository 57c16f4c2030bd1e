// Plain value types shared by the estimator, the allocators and the baselines.
// No I/O, no globals: the node agent, the controller and the simulator all pass these around.
#pragma once

#include <optional>
#include <string>

namespace powergrad {

// Both ends of a power range a grant must stay inside.
struct PowerRange {
  double min_w = 0.0;
  double max_w = 0.0;

  // Empty if usable (finite, 0 <= min_w <= max_w); otherwise why not.
  std::string check() const;
};

// A power domain: a socket/package (RAPL zone) or a whole node. cap_w is the limit in force,
// power_w the last measured average.
struct PowerDomain {
  std::string name;
  double min_cap_w = 0.0;
  double max_cap_w = 0.0;
  double cap_w = 0.0;
  double power_w = 0.0;
};

// Counter deltas for one job on one domain over one sampling interval. Hardware counters are
// optional because VMs and many containers have none; task_clock_s (a software event) is
// always there, and the estimator must say so rather than guess when it is all it has.
struct CounterSample {
  double interval_s = 0.0;
  std::optional<double> cycles;        // unhalted core cycles
  std::optional<double> instructions;  // retired instructions
  std::optional<double> stall_cycles;  // cycles stalled on memory
  std::optional<double> ref_cycles;    // reference cycles: cycles/ref_cycles ~ APERF/MPERF
  double task_clock_s = 0.0;           // CPU time the job's tasks ran
  std::optional<double> energy_j;      // energy of the domain over the interval

  // True when at least one hardware event was counted.
  bool has_hardware_counters() const;
  // energy_j / interval_s, when both make sense.
  std::optional<double> average_power_w() const;
};

enum class GradientUnit {
  relative_speedup_per_w,  // (d perf / perf) per watt: dimensionless speed-up per W
  latency_s_saved_per_w,   // request-seconds of latency saved per second per W (load-aware)
};

// What an estimate mostly rests on. combined: the counter model and the online regression
// both weigh in; default_prior: neither is available (software counters without a progress
// signal), so the value is the model's shape at a default memory share, with low confidence.
enum class GradientSource {
  none,
  counter_model,
  regression,
  perturbation,
  combined,
  default_prior
};

const char *to_string(GradientUnit unit);
const char *to_string(GradientSource source);

// How much a workload gains from one more watt, and how sure we are. When valid is false,
// value means nothing and reason says why (never a made-up number).
struct GradientEstimate {
  double value = 0.0;
  GradientUnit unit = GradientUnit::relative_speedup_per_w;
  double confidence = 0.0;  // in [0, 1]
  bool valid = false;
  GradientSource source = GradientSource::none;
  std::string reason;

  static GradientEstimate invalid(std::string why);
};

// Socket power vs. frequency: P(f) = P0 + a * alpha * f^3 (dynamic power ~ C V^2 f with V
// rising about linearly in f). `a` is calibrated so that the most power-hungry code
// (alpha = 1) reaches TDP at f_max; a workload with alpha < 1 switches less and draws less at
// the same frequency. See shared/notes/evaluation-model.md.
struct PowerModel {
  double p0_w = 0.0;      // active floor: uncore + leakage
  double tdp_w = 0.0;     // package power at f_max_hz with alpha = 1
  double f_max_hz = 0.0;  // all-core frequency at TDP
  double alpha = 1.0;     // the workload's activity factor, typically 0.6 .. 1.0

  // Empty when the parameters make a usable model; otherwise why not.
  std::string check() const;
  // W per Hz^3; 0 for an unusable model.
  double a_w_per_hz3() const;
  double power_at_w(double f_hz) const;
  // Inverse of power_at_w, clamped to [0, f_max_hz]: 0 at or below P0, f_max_hz at or above
  // what f_max_hz would draw. 0 for an unusable model or a non-finite power.
  double freq_at_hz(double power_w) const;
};

}  // namespace powergrad
