#include "sim/baseline_settings.hpp"

#include <cmath>
#include <cstddef>
#include <exception>

#include "libgradient/format.hpp"

namespace powergrad::sim {

namespace {

struct Key {
  const char *name;
  double lo, hi;
  bool lo_open;  // lo itself is out of range
  const char *meaning;
  double &(*field)(BaselineSettings &);
  bool hi_open = false;  // hi itself is out of range
};

const Key kKeys[] = {
    {"usage.period_s", 0.0, 1e6, true, "balancing period (30)",
     [](BaselineSettings &s) -> double & { return s.usage.balance_interval_s; }},
    {"usage.lower_threshold", 0.0, 1.0, true,
     "below this share of its cap a node is lowered (0.90)",
     [](BaselineSettings &s) -> double & { return s.usage.lower_threshold; }},
    {"usage.upper_threshold", 0.0, 1.0, true, "above this share of its cap a node is raised (0.95)",
     [](BaselineSettings &s) -> double & { return s.usage.upper_threshold; }},
    {"usage.decrease_rate", 0.0, 1.0, true, "most a cap drops per period, share of max - min (0.5)",
     [](BaselineSettings &s) -> double & { return s.usage.decrease_rate; }},
    {"usage.increase_rate", 0.0, 1.0, true, "most a cap rises per period, share of max - min (0.2)",
     [](BaselineSettings &s) -> double & { return s.usage.increase_rate; }},
    {"usage.recent_job_s", 0.0, 1e9, false, "a job this young gets the common high cap (300)",
     [](BaselineSettings &s) -> double & { return s.usage.recent_job_s; }},
    {"pool.interval_s", 0.0, 1e6, true, "period of the pool's rules (2)",
     [](BaselineSettings &s) -> double & { return s.pool.interval_s; }},
    {"pool.release_threshold_w", 0.0, 1e4, false,
     "drawing this far below its cap, a socket releases (3)",
     [](BaselineSettings &s) -> double & { return s.pool.release_threshold_w; }},
    {"pool.release_margin_w", 0.0, 1e4, false, "headroom kept above the power when releasing (1.5)",
     [](BaselineSettings &s) -> double & { return s.pool.release_margin_w; }},
    {"pool.grant_step", 0.0, 1.0, true, "ask of a hungry socket, share of max - min (0.05)",
     [](BaselineSettings &s) -> double & { return s.pool.grant_step_frac; }},
    {"powergrad.low_cap_knee", 0.0, 1.0, false, "low-cap slowdown below this share of TDP (0: off)",
     [](BaselineSettings &s) -> double & { return s.powergrad_low_cap_knee; }},
    {"powergrad.low_cap_slowdown", 0.0, 10.0, false, "its slowdown per TDP below the knee (1)",
     [](BaselineSettings &s) -> double & { return s.powergrad_low_cap_slowdown; }},
    {"powergrad.load_spread_k", 0.0, 10.0, false,
     "how far the load's period-to-period spread counts (1; 0: the mean load only)",
     [](BaselineSettings &s) -> double & { return s.powergrad_load_spread_k; }},
    {"powergrad.top_clock_min_busy", 0.0, 2.0, false,
     "busy share from which periods below the cap teach the top clock (0.6; 2: never)",
     [](BaselineSettings &s) -> double & { return s.powergrad_top_clock_min_busy; }},
    {"powergrad.backlog_horizon_s", 0.0, 1e6, false,
     "horizon of the latency weight's transient bound (10; 0: no bound)",
     [](BaselineSettings &s) -> double & { return s.powergrad_backlog_horizon_s; }},
    {"powergrad.busy_smoothing_weight", 0.0, 1.0, true,
     "weight of the newest period in the load's average (0.05)",
     [](BaselineSettings &s) -> double & { return s.powergrad_busy_smoothing_weight; }},
    {"powergrad.load_change_sds", 0.0, 100.0, false,
     "spreads past which a load change is followed at once (4; 0: never)",
     [](BaselineSettings &s) -> double & { return s.powergrad_load_change_sds; }},
    {"powergrad.load_change_fast_weight", 0.0, 1.0, true,
     "weight of the newest period in the load change detector's fast average (0.25)",
     [](BaselineSettings &s) -> double & { return s.powergrad_load_change_fast_weight; }},
    {"powergrad.plain_beside_weight", 0.0, 1.0, false,
     "weight of plain services beside power-aware ones in their socket's gain (0.5; 0: none)",
     [](BaselineSettings &s) -> double & { return s.powergrad_plain_beside_weight; }},
    {"powergrad.hysteresis", 0.0, 0.9, false,
     "the cluster controller's hysteresis between nodes (0.3)",
     [](BaselineSettings &s) -> double & { return s.powergrad_hysteresis; }, true},
    {"powergrad.noise_guard_k", 0.0, 10.0, false,
     "spreads of a node's level noise the cluster controller's guard takes out (1; 0: off)",
     [](BaselineSettings &s) -> double & { return s.powergrad_noise_guard_k; }},
    {"powergrad.noise_weight", 0.0, 1.0, true,
     "weight of the newest step in the cluster guard's level average and spread (0.05)",
     [](BaselineSettings &s) -> double & { return s.powergrad_noise_weight; }},
};

std::string range_text(const Key &k) {
  return (k.lo_open ? "(" : "[") + format_number(k.lo) + ", " + format_number(k.hi) +
         (k.hi_open ? ")" : "]");
}

}  // namespace

std::string baseline_settings_help() {
  std::string h;
  for (const Key &k : kKeys) {
    std::string name = k.name;
    name.resize(std::max<std::size_t>(name.size(), 25), ' ');
    h += "    " + name + " " + range_text(k) + " " + k.meaning + "\n";
  }
  return h;
}

std::string apply_baseline_setting(BaselineSettings &settings, const std::string &assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string::npos) return "'" + assignment + "': expected KEY=VALUE";
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  const Key *found = nullptr;
  for (const Key &k : kKeys)
    if (key == k.name) found = &k;
  if (!found) {
    std::string names;
    for (const Key &k : kKeys) names += std::string(names.empty() ? "" : ", ") + k.name;
    return "'" + key + "': unknown key (expected one of: " + names + ")";
  }
  double v = NAN;
  try {
    std::size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size()) v = NAN;
  } catch (const std::exception &) {
  }
  if (!std::isfinite(v)) return key + ": expected a number, got '" + text + "'";
  if (v > found->hi || v < found->lo || (found->lo_open && v == found->lo) ||
      (found->hi_open && v == found->hi))
    return key + ": " + text + " is out of range " + range_text(*found);
  found->field(settings) = v;
  settings.changed.push_back(key + "=" + text);
  return "";
}

std::string check_baseline_settings(const BaselineSettings &settings) {
  if (!(settings.usage.lower_threshold <= settings.usage.upper_threshold))
    return "usage.lower_threshold (" + format_number(settings.usage.lower_threshold) +
           ") must not be above usage.upper_threshold (" +
           format_number(settings.usage.upper_threshold) + ")";
  return "";
}

}  // namespace powergrad::sim
