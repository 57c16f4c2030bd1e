// A socket (power domain) as RAPL and the cores see it.
//
// Power: P = P0 + a * sum_k share_k * alpha_k * u_k * f_k^3 over the socket's core groups
// (one per service), where share_k is the group's share of the cores, u_k their utilisation
// and f_k = min(F, top_k, limit_k): RAPL lowers one frequency ceiling F for the whole
// package, licences (AMX) and per-core limits (cpufreq) cut individual groups lower. `a` is
// calibrated so that all cores busy at f_max with alpha = 1 draw TDP (libgradient's
// PowerModel). RAPL's choice of F each tick is the highest with P <= the enforced limit,
// using recent utilisation (RAPL works from measured power, so it can overshoot briefly when
// load rises). The enforced limit follows the cap with a first-order lag (settle_s). Below
// low_cap_below_w RAPL control is inefficient (clock modulation): speed drops by an extra
// low_cap_slowdown per TDP below it.
//
// Speed of a group relative to its top frequency: T(f_top) / T(f) = 1 / ((1-m) f_top/f + m).
#pragma once

#include <cstddef>
#include <vector>

#include "sim/spec.hpp"

namespace powergrad::sim {

struct CoreGroup {
  int servers = 1;            // one busy server keeps one core busy
  double core_share = 1.0;    // share of the socket's cores
  double alpha = 1.0;
  double memory_share = 0.0;  // m at the top frequency
  double top_hz = 0.0;
  double core_limit_hz = 0.0; // 0: none
  double ipc = 2.0;
  double util_ema = 0.0;      // recent utilisation, as RAPL's power average sees it
  double freq_hz = 0.0;       // during the current tick
  double speed = 1.0;         // during the current tick
};

// Cumulative true counts of one core group (a service's cores); sensors add noise on read.
struct TrueCounters {
  double cycles = 0.0;
  double instructions = 0.0;
  double stall_cycles = 0.0;
  double ref_cycles = 0.0;
  double task_clock_s = 0.0;
};

class SocketModel {
 public:
  SocketModel(const SocketTypeSpec &type, double min_cap_w, double max_cap_w,
              std::vector<CoreGroup> groups);

  // The cap in force from now on; the enforced limit follows with the settling lag. The very
  // first call sets the enforced limit directly (the socket was already at it).
  void set_cap_w(double cap_w);
  double cap_w() const { return cap_w_; }
  double min_cap_w() const { return min_cap_w_; }
  double max_cap_w() const { return max_cap_w_; }
  double enforced_limit_w() const { return limit_w_; }
  void set_core_limit_hz(std::size_t group, double hz);

  // Chooses the frequencies for a tick of dt_s.
  void begin_tick(double dt_s);
  std::size_t group_count() const { return groups_.size(); }
  const CoreGroup &group(std::size_t k) const { return groups_[k]; }
  // After the tick: busy server-seconds per group -> power, energy, counters.
  void end_tick(double dt_s, const double *busy_server_s);

  double power_w() const { return power_w_; }  // true average over the last tick
  double energy_j() const { return energy_j_; }
  const TrueCounters &counters(std::size_t k) const { return counters_[k]; }
  double nominal_hz() const { return type_.f_max_hz; }

  // Model curves without state, for the oracle: memory-stall share and speed of a group at
  // frequency f.
  static double stall_share(const CoreGroup &g, double f_hz);
  static double speed_at(const CoreGroup &g, double f_hz);
  double a_w_per_hz3() const { return a_w_per_hz3_; }
  double p0_w() const { return type_.p0_w; }
  const SocketTypeSpec &type() const { return type_; }
  // Extra slowdown factor (<= 1) for an enforced limit on a socket that would draw demand_w
  // at its own clocks. RAPL's clock modulation below the knee acts only while the limit
  // binds, and it sheds at most the power above the limit: the slowdown counts the watts of
  // min(knee, demand) - limit (none when the socket draws less than its limit).
  double low_cap_factor(double limit_w, double demand_w) const;
  // What the socket would draw with no cap: P0 plus every group at its own clock limit at its
  // recent utilisation.
  double demand_w() const;
  // Frequency of group g when the package ceiling is F.
  double group_freq_hz(const CoreGroup &g, double ceiling_hz) const;

 private:
  double solve_ceiling_hz(double dynamic_w) const;

  SocketTypeSpec type_;
  double min_cap_w_, max_cap_w_;
  double a_w_per_hz3_;
  double cap_w_ = 0.0;
  double limit_w_ = 0.0;
  bool started_ = false;
  double power_w_ = 0.0;
  double energy_j_ = 0.0;
  std::vector<CoreGroup> groups_;
  std::vector<TrueCounters> counters_;
};

// Socket `socket` of `spec` as a model: one core group per service, in the socket's service
// order (group j runs spec.sockets[socket].services[j]). A socket type with no core count
// has as many cores as its services have servers. Each group's util_ema starts at its
// service's mean load (RAPL's power average before t = 0); only a running socket reads it.
SocketModel make_socket_model(const ClusterSpec &spec, std::size_t socket);

}  // namespace powergrad::sim
