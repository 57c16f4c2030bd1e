// Settings of the baselines usage (B1) and pool (B2), and powergrad's opt-ins, that a run may
// change without recompiling: powergrad-sim --set KEY=VALUE (see doc/scenarios.md). The
// defaults are libgradient's UsageParams, PoolParams and GradientModelParams.
#pragma once

#include <string>
#include <vector>

#include "libgradient/baselines.hpp"
#include "libgradient/cluster_controller.hpp"
#include "libgradient/gradient_model.hpp"
#include "libgradient/pool_baseline.hpp"

namespace powergrad::sim {

struct BaselineSettings {
  UsageParams usage;
  PoolParams pool;
  // powergrad's node agents: the low-cap slowdown in their gain curves (plugin arguments
  // low_cap_knee= and low_cap_slowdown=; GradientModelParams).
  double powergrad_low_cap_knee = GradientModelParams{}.low_cap_knee;
  double powergrad_low_cap_slowdown = GradientModelParams{}.low_cap_slowdown;
  double powergrad_load_spread_k = GradientModelParams{}.load_spread_k;
  double powergrad_top_clock_min_busy = GradientModelParams{}.top_clock_min_busy;
  double powergrad_backlog_horizon_s = GradientModelParams{}.backlog_horizon_s;
  double powergrad_busy_smoothing_weight = GradientModelParams{}.busy_smoothing_weight;
  double powergrad_load_change_sds = GradientModelParams{}.load_change_sds;
  double powergrad_load_change_fast_weight = GradientModelParams{}.load_change_fast_weight;
  double powergrad_plain_beside_weight = GradientModelParams{}.plain_beside_weight;
  double powergrad_hysteresis = ClusterConfig{}.hysteresis;
  double powergrad_noise_guard_k = ClusterConfig{}.noise_guard_k;
  double powergrad_noise_weight = ClusterConfig{}.noise_weight;
  std::vector<std::string> changed;  // the KEY=VALUE applied, in order (shown in reports)
};

// One line per key: name, range and what it sets (for --help).
std::string baseline_settings_help();

// Applies one KEY=VALUE. Empty when applied; otherwise what is wrong, naming the key or the
// value (the settings are then unchanged).
std::string apply_baseline_setting(BaselineSettings &settings, const std::string &assignment);

// Empty when the settings fit together (usage.lower_threshold <= usage.upper_threshold);
// otherwise what is wrong.
std::string check_baseline_settings(const BaselineSettings &settings);

}  // namespace powergrad::sim
