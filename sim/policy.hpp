// The one interface every power policy implements, and what it may touch.
//
// A policy sees the cluster as the real plugins see it: topology and limits (the admin's
// configuration), the budget in force, and noisy cumulative sensors (RAPL energy, perf
// counters) it reads whenever it likes; it acts through socket caps (RAPL) and per-core
// frequency limits (cpufreq). Only the oracles also get the simulator's Truth (the arrival
// rates and the true models), and only through their constructor.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "sim/spec.hpp"

namespace powergrad::sim {

// Cumulative counter values of one service's cores, as perf would report them since the job
// started. Hardware counters are absent in software-only (VM-like) scenarios.
struct CounterReading {
  double time_s = 0.0;
  std::optional<double> cycles;
  std::optional<double> instructions;
  std::optional<double> stall_cycles;
  std::optional<double> ref_cycles;
  double task_clock_s = 0.0;
  // Requests served so far, when the service exposes its progress (scenario key
  // progress_signal); a software signal, exact.
  std::optional<double> progress;
};

class ClusterIo {
 public:
  virtual ~ClusterIo() = default;
  virtual const ClusterSpec &spec() const = 0;
  virtual double now_s() const = 0;
  // The cluster budget in force this tick (the admin may change it at any time).
  virtual double budget_w() const = 0;

  // Noisy cumulative package energy of a socket (J), like RAPL energy_uj.
  virtual double read_energy_j(std::size_t socket) = 0;
  virtual CounterReading read_counters(std::size_t service) = 0;

  // The cap in force on a socket; 0 before the policy set one.
  virtual double cap_w(std::size_t socket) const = 0;
  // Sets a socket's cap, in force from this tick. A cap outside the socket's range is
  // clamped into it and counted as a violation: policies must stay inside.
  virtual void set_cap_w(std::size_t socket, double cap_w) = 0;
  // Per-core frequency limit of a service's cores (cpufreq scaling_max_freq); 0 lifts it.
  virtual void set_core_limit_hz(std::size_t service, double hz) = 0;
};

// Ground truth for the clairvoyant policies.
class Truth {
 public:
  virtual ~Truth() = default;
  // Arrival rate of a service during the current tick (mean x diurnal x burst state).
  virtual double rate_rps(std::size_t service) const = 0;
  // Time average of the arrival rate over the whole run (hindsight).
  virtual double average_rate_rps(std::size_t service) const = 0;
};

class Policy {
 public:
  virtual ~Policy() = default;
  // At t = 0, before any request: must set a cap on every socket.
  virtual void start(ClusterIo &io) = 0;
  // At the start of every tick (after the tick's budget is known), before the hardware runs.
  virtual void tick(ClusterIo &io) = 0;
  // What the policy decides from, for the report ("power readings", "true curves", ...).
  virtual std::string inputs() const = 0;
  // Which counters the policy's estimates rested on, asked after the run ("hardware",
  // "software", ...). Empty: the policy reads no counters, and the report shows what the
  // sensors offered.
  virtual std::string counters_used() const { return {}; }
};

}  // namespace powergrad::sim
