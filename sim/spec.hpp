// A simulated cluster as plain data: what a scenario file describes, after defaults and
// checks (sim/scenario.hpp builds it). Units are in the names; frequencies in Hz.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "sim/baseline_settings.hpp"

namespace powergrad::sim {

inline constexpr double kNoLimit = std::numeric_limits<double>::infinity();

// An inference model's service time vs core frequency: T(f) = Tc * f_top / f + Tm, with
// T(f_top) = service_time_s and Tm = memory_share * service_time_s.
struct WorkloadSpec {
  std::string name;
  double service_time_s = 0.05;  // mean, at the workload's top frequency
  double memory_share = 0.2;     // share of T(f_top) that does not scale with frequency
  double cv = 0.1;               // service-time coefficient of variation
  double alpha = 0.8;            // activity factor in P = P0 + a * alpha * f^3
  double top_freq_hz = 0.0;      // licence limit of wide-vector/AMX code; 0: the socket's f_max
  double ipc = 2.0;              // instructions per cycle when not stalled
};

struct SocketTypeSpec {
  std::string name;
  double tdp_w = 205.0;
  double p0_w = 60.0;           // active floor: uncore + leakage
  double f_max_hz = 3.4e9;      // all-core frequency at TDP with alpha = 1, all cores busy
  double f_min_hz = 0.8e9;
  double min_cap_w = 0.0;       // 0: 0.45 * tdp_w
  double max_cap_w = 0.0;       // 0: tdp_w
  double settle_s = 0.5;        // first-order lag of the enforced limit after a cap change
  double low_cap_below_w = 0.0; // 0: 0.5 * tdp_w; RAPL control gets inefficient below this
  double low_cap_slowdown = 1.0;  // extra slowdown per TDP below low_cap_below_w
  double power_noise = 0.01;    // relative sd of a 1-s energy reading
  double counter_noise = 0.02;  // relative sd of a 1-s counter reading
  int cores = 0;                // 0: the sum of its services' servers
};

struct ArrivalSpec {
  enum class Kind { poisson, mmpp };
  Kind kind = Kind::poisson;
  // MMPP (bursty): two states; in the burst state the rate is burst_factor times the mean,
  // the calm state's factor keeps the long-run mean at 1.
  double burst_factor = 2.0;
  double burst_mean_s = 20.0;
  double calm_mean_s = 100.0;
  // Diurnal: the rate is multiplied by 1 + amplitude * sin(2 pi (t - phase) / period).
  double diurnal_amplitude = 0.0;
  double diurnal_period_s = 86400.0;
  double diurnal_phase_s = 0.0;

  double calm_factor() const;
  double diurnal_factor(double t_s) const;
};

struct ServiceSpec {
  std::string name;
  std::size_t workload = 0;
  std::size_t socket = 0;
  int servers = 4;
  double load = 0.7;  // mean arrival rate as a share of the uncapped capacity
  ArrivalSpec arrivals;
  std::size_t queue_limit = 10000;
  double timeout_s = 0.0;
  double core_max_hz = 0.0;  // admin's per-core frequency limit; 0: none
  bool progress_signal = false;  // the service exposes its progress (requests served) to the agent
  // Its jobs asked for power awareness (srun --power-aware). false: a plain job, never steered;
  // its node holds it at a fair share (doc/scenarios.md, "Plain services").
  bool power_aware = true;
  double mean_rate_rps = 0.0;  // derived: load * servers / service_time_s
};

struct SocketSpec {
  std::string name;
  std::size_t node = 0;
  std::size_t type = 0;
  std::vector<std::size_t> services;
  double min_cap_w = 0.0;  // resolved from the type
  double max_cap_w = 0.0;
};

struct NodeSpec {
  std::string name;
  std::size_t group = 0;
  std::vector<std::size_t> sockets;
};

struct GroupSpec {
  std::string name;
  double limit_w = kNoLimit;
  std::vector<std::size_t> nodes;
};

struct BudgetSpec {
  std::vector<std::pair<double, double>> points_w;  // (time s, W), times increasing
  bool linear = false;  // interpolate between points; otherwise hold each until the next
  double grace_s = 2.0;  // time a policy has to bring its caps under a lowered budget

  double at_w(double t_s) const;
  double min_w() const;
};

struct ClusterSpec {
  std::string name;
  std::string source;  // file it came from, for messages
  double duration_s = 3600.0;
  double tick_s = 0.1;
  double warmup_s = 60.0;
  double control_period_s = 1.0;
  double transport_delay_s = 0.0;  // node <-> controller message delay (powergrad, pool)
  bool hardware_counters = true;   // false: software events only (VM-like)
  bool agent_knows_servers = false;  // the node agent is told each service's parallel servers
  // What a node with only plain services gets (powergrad.conf PlainShare=): what it draws
  // (plus headroom) up to its fair share, or its fair share.
  enum class PlainShare { usage, even };
  PlainShare plain_share = PlainShare::usage;
  std::uint64_t seed = 1;
  double plot_interval_s = 0.0;  // 0: duration / 240
  BaselineSettings baselines;    // usage and pool settings (powergrad-sim --set)

  std::vector<WorkloadSpec> workloads;
  std::vector<SocketTypeSpec> socket_types;
  std::vector<ServiceSpec> services;
  std::vector<SocketSpec> sockets;
  std::vector<NodeSpec> nodes;
  std::vector<GroupSpec> groups;
  BudgetSpec budget;

  double sum_min_caps_w() const;
  double sum_max_caps_w() const;
  const SocketTypeSpec &type_of(std::size_t socket) const {
    return socket_types[sockets[socket].type];
  }
  // The top frequency service s's code can run at on its socket.
  double top_freq_hz(std::size_t service) const;
  // Empty when consistent; otherwise what is wrong (used after building by hand in tests).
  std::string check() const;
};

}  // namespace powergrad::sim
