// Per-job energy on a node: each power domain's energy over a period is split between the
// jobs on it by their share of task-clock (the CPU time their tasks ran there), and summed
// per step with the time it ran and the caps in force on its domains. Pure: the agent feeds
// it numbers, the controller integration reads summaries back (JobEnergyLedger::summaries).
#pragma once

#include <cstddef>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "libgradient/job_mode.hpp"

namespace powergrad {

// Splits `domain_energy_j` between jobs in proportion to `task_clock_s` (one entry per job
// on the domain, same order in the result). Negative or non-finite task-clock counts as 0.
// When no job ran (all 0), or the energy is not a finite non-negative number, every share
// is 0: idle energy belongs to no job.
std::vector<double> attribute_energy(double domain_energy_j,
                                     const std::vector<double> &task_clock_s);

struct JobEnergySummary {
  std::string key;       // "12.0": job.step
  JobMode mode = JobMode::off;
  std::string counters;  // the counter source: hardware, software, emulated or none
  bool running = true;
  // False when no power domain of the node can measure energy (no powercap: monitor
  // mode): energy_j and avg_w are then meaningless, and reports say "unknown", not 0.
  bool energy_measured = true;
  double energy_j = 0.0;  // attributed energy since the step registered
  double seconds = 0.0;   // time the step was measured
  // Caps in force on the step's domains (their sum), over its periods. Absent when no cap
  // was known (monitor mode: no powercap on the node).
  std::optional<double> cap_min_w, cap_max_w;
  double cap_weighted_w_s = 0.0;  // sum of cap x period length, for the mean
  double cap_seconds = 0.0;

  double avg_w() const { return seconds > 0.0 ? energy_j / seconds : 0.0; }
  std::optional<double> cap_mean_w() const {
    if (cap_seconds <= 0.0) return std::nullopt;
    return cap_weighted_w_s / cap_seconds;
  }
};

// "job 12.0 on n1: energy_j=123.4 avg_w=61.7 cap_min_w=110.0 cap_mean_w=118.2
//  cap_max_w=205.0 counters=emulated" (one line; caps "none" when unknown; energy_j and
//  avg_w "unknown" when the node cannot measure energy).
std::string format_job_summary(const JobEnergySummary &s, const std::string &node);

class JobEnergyLedger {
 public:
  explicit JobEnergyLedger(std::size_t keep_finished = 256) : keep_finished_(keep_finished) {}

  // Starts accounting for a step (no effect when it is already known).
  void begin(const std::string &key, JobMode mode, const std::string &counters,
             bool energy_measured = true);
  bool has(const std::string &key) const { return running_.count(key) != 0; }
  void add_energy(const std::string &key, double energy_j);
  // Closes one period of `seconds` for the step, with the caps in force on its domains.
  void add_period(const std::string &key, double seconds, std::optional<double> cap_w);
  // The step left: its final summary (kept among the finished ones), or nullopt if unknown.
  std::optional<JobEnergySummary> finish(const std::string &key);
  // Running steps, then the most recent finished ones (oldest first).
  std::vector<JobEnergySummary> summaries() const;
  std::vector<std::string> running_keys() const;

 private:
  std::size_t keep_finished_;
  std::map<std::string, JobEnergySummary> running_;
  std::deque<JobEnergySummary> finished_;
};

}  // namespace powergrad
