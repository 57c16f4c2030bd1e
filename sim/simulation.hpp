// One run: one scenario, one policy, from t = 0 to duration_s, in ticks of tick_s.
//
// Each tick: the budget for the tick is looked up, burst states and arrival rates advance,
// the policy runs (reads sensors, sets caps), the invariants are checked on the caps now in
// force, then every socket picks its frequencies and its services run request by request
// through the tick (sim/service.hpp), and power, energy and counters accumulate.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "sim/histogram.hpp"
#include "sim/spec.hpp"

namespace powergrad::sim {

// One point of the time series (averages over a plot interval).
struct WindowPoint {
  double t_s = 0.0;  // end of the interval
  double budget_w = 0.0;
  double caps_w = 0.0;   // sum of caps in force
  double power_w = 0.0;  // true total power
  double mean_latency_s = 0.0;
  double p99_latency_s = 0.0;
  std::uint64_t completed = 0;
};

// Latency of the requests of one workload's services (or of a class of services), after the
// warm-up. A workload with both plain and power-aware services has one result for each.
struct WorkloadResult {
  std::string name;
  bool power_aware = true;  // the services' power_aware; see RunResult::plain
  std::uint64_t completed = 0;
  double mean_latency_s = 0.0;
  double p99_latency_s = 0.0;
};

struct RunResult {
  std::string policy;
  std::string inputs;    // what the policy decided from
  std::string counters;  // "hardware" or "software" (what the sensors offered)
  LatencyHistogram latency;  // completions of requests that arrived after warm-up
  std::uint64_t arrivals = 0, completed = 0, rejected = 0, timed_out = 0, in_flight = 0;
  double goodput_rps = 0.0;  // recorded completions per second after warm-up
  double energy_j = 0.0;
  // Ticks where the caps in force exceeded the highest budget of the last grace_s, or a
  // group's caps exceeded its limit. Must be 0.
  std::uint64_t budget_violations = 0;
  double over_budget_s = 0.0;  // time with caps above the budget of the moment (grace incl.)
  double max_over_budget_w = 0.0;
  std::uint64_t cap_bound_violations = 0;  // caps asked outside a socket's range (clamped)
  // Share of the budget in force held as caps: the sum over the ticks after the warm-up of
  // the caps in force over the sum of the budget (below 1 where caps were left unused, or
  // where the sockets' maximum caps or group limits cannot take the whole budget).
  double budget_used = 0.0;
  // The same over the ticks after the warm-up in which some socket below its maximum cap
  // would have drawn more than its cap (its draw at its own clocks, SocketModel::demand_w,
  // above the cap by more than kWantMarginW): issue 12's budget-use target counts those. NaN
  // when there were none. wanted_share: the share of the ticks after the warm-up they were.
  double budget_used_wanted = std::numeric_limits<double>::quiet_NaN();
  double wanted_share = 0.0;
  static constexpr double kWantMarginW = 0.5;
  std::vector<WindowPoint> windows;
  std::vector<std::vector<double>> node_caps_w;   // [window][node]
  std::vector<std::vector<double>> node_power_w;  // [window][node]
  // Per node, the highest sum of its sockets' caps in force in any tick (the caps the
  // invariant checks see, not plot-window averages).
  std::vector<double> node_max_caps_w;
  // Per socket, its cap in force over the ticks after the warm-up.
  struct CapStats {
    double min_w = 0.0, mean_w = 0.0, max_w = 0.0;
  };
  std::vector<CapStats> socket_caps;
  // Per workload and power_aware, in workload order (power-aware first); workloads without
  // recorded requests are left out.
  std::vector<WorkloadResult> workloads;
  // The requests of all power-aware services, and of all plain (power_aware: false) ones;
  // plain.completed is 0 when the scenario has none.
  // How a policy follows bursts (services with mmpp arrivals, bursts that began after the
  // warm-up): at each of kBurstOffsetsS after a burst began, while it lasted, the cap of the
  // bursting service's socket minus its cap in force when the burst began, averaged over the
  // bursts (burst_rise_w, W; NaN when none lasted that long) and their count (burst_count).
  // The oracle, which sees the rates of the moment, raises such a socket within a control
  // period; a policy that follows its estimates shows here how late, and how far.
  static constexpr std::array<double, 4> kBurstOffsetsS{1.0, 2.0, 4.0, 8.0};
  static constexpr std::array<double, kBurstOffsetsS.size()> kNoBurstRise = [] {
    std::array<double, kBurstOffsetsS.size()> none{};
    for (double &w : none) w = std::numeric_limits<double>::quiet_NaN();
    return none;
  }();
  std::array<double, kBurstOffsetsS.size()> burst_rise_w = kNoBurstRise;
  std::array<std::uint64_t, kBurstOffsetsS.size()> burst_count{};
  WorkloadResult power_aware{"power-aware", true};
  WorkloadResult plain{"plain", false};
  double wall_s = 0.0;

  std::uint64_t dropped() const { return rejected + timed_out; }
};

// Runs `policy` on `spec`. Throws std::runtime_error for an unknown policy or a policy that
// left a socket without a cap. `progress`, if given, is updated with the fraction done.
RunResult simulate(const ClusterSpec &spec, const std::string &policy,
                   std::atomic<double> *progress = nullptr);

}  // namespace powergrad::sim
