// Per-job power figures for the AdminComment record, from the node reports the controller
// receives: energy, average power, min/mean/max cap, mean gradient and the counters used.
//
// Node-measured figures first. A node report carries one JobSummary per (step, power
// domain), each with the step's own accounting on that node since it started there
// (energy_j, avg_w, cap_min/mean/max_w, elapsed_s; NaN when unknown), repeated on each of
// the step's entries. on_report() keeps the latest accounting of every (job, node, step) it
// sees, also after the step ends or the node goes silent (the figures are cumulative). A
// job's figures are then, per node, its steps' energy summed, their caps (steps of a job
// share its domains) and elapsed time the largest; over the job's nodes, energy, average
// power and caps summed (cap_min_w: the sum of the nodes' minima), elapsed time the
// largest. A field is taken from these only when every node that reported the job knows it.
//
// Otherwise, the estimate: a node report also gives node-level power (power_w) and caps
// (caps_w). A job's share of a node is the node's figure divided by the number of distinct
// jobs on it (jobs sharing a node cannot be told apart by node-level power). Once per
// control period, sample() adds up each job's shares over its nodes whose last report is
// fresh: that is the job's power and cap for the period; energy is power x the time since
// the previous sample. The gradient is always the mean raw speed-up per watt of the job's
// valid estimates (JobSummary::speedup_per_w), over the periods that had one.
//
// The same per-period estimate (power, cap, and the job's share of its nodes' grants) is
// kept as a bounded time series per job (jobreport/series.hpp: at most 720 points, pairs
// merged when full), for `powergrad report --plot`. take_finished_series() hands over the
// series of jobs that have ended, once each; unfinished_series() and restore_series() carry
// the others over a restart of slurmctld.
//
// Pure C++: time is an input. One thread drives it (on_report, sample, prune,
// take_finished_series, restore_series: the controller service's). The readers figures(),
// series(), unfinished_series(), unfinished_ids() and job_count() may be called from any
// thread meanwhile (slurmctld's job hooks, the series writer's thread): the jobs are under
// a mutex. Only the driving thread adds or removes jobs (under the mutex), so it may look
// them up without it: sample() finds its jobs first and holds the mutex only to update
// them (about 2 ms for 25,000 jobs here, where it held it 7-9 ms; a job hook waits for no
// longer). The nodes' last reports are the driving thread's alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "jobreport/series.hpp"
#include "libgradient/control_messages.hpp"

namespace powergrad {

struct JobFigures {
  double energy_j = 0.0;
  double seconds = 0.0;  // time covered by samples with a power reading
  double avg_w = std::numeric_limits<double>::quiet_NaN();
  double cap_min_w = std::numeric_limits<double>::quiet_NaN();
  double cap_mean_w = std::numeric_limits<double>::quiet_NaN();
  double cap_max_w = std::numeric_limits<double>::quiet_NaN();
  double gradient = std::numeric_limits<double>::quiet_NaN();  // mean speed-up per watt
  std::string counters;  // CounterKind names seen, '+'-joined in a fixed order; "" none
  std::size_t samples = 0;
  // Which figures came from the nodes' own per-job accounting rather than the estimate.
  bool measured_energy = false;  // energy_j, seconds, avg_w
  bool measured_caps = false;    // cap_min_w, cap_mean_w, cap_max_w
};

// The Slurm job id a JobSummary key ("1234.0", "1234.batch") belongs to; nullopt if it
// does not start with a job id.
std::optional<std::uint32_t> job_id_of_key(const std::string &key);

class JobPowerLedger {
 public:
  // stale_after_s: a node report older than this at a sample is not counted.
  explicit JobPowerLedger(double stale_after_s = 3.0) : stale_after_s_(stale_after_s) {}

  // Where a node's last report is kept (an index into the ledger's nodes): on_report
  // returns it, and takes the one it returned for the same node before as a hint, so that a
  // caller that keeps it (the controller service, per node) saves a lookup by name. A hint
  // is checked against the node's name: a stale one costs that lookup, never a wrong node.
  static constexpr std::size_t kNoSlot = static_cast<std::size_t>(-1);
  std::size_t on_report(const NodeReport &report, double now_s, std::size_t slot_hint = kNoSlot);
  // A node's current grant in watts, NaN when unknown.
  using GrantLookup = std::function<double(const std::string &node)>;
  // One period's sample (see the top of this file). grant_w: each node's current grant,
  // for the series' grant column (empty: every grant unknown).
  void sample(double now_s, const GrantLookup &grant_w = {});

  // The series of jobs that have ended, each handed over once: a job with a non-empty
  // series, no sample for quiet_s, and not in `running` (slurmctld's running jobs; nullptr:
  // unknown, the quiet time alone decides). A job is never handed over while it is in
  // `running`. Its later samples no longer extend a series.
  std::vector<std::pair<std::uint32_t, JobSeries>> take_finished_series(
      double now_s, double quiet_s, const std::set<std::uint32_t> *running);
  // A copy of a job's series so far (empty if none or already handed over).
  JobSeries series(std::uint32_t job_id) const;
  // Copies of the series not yet handed over (non-empty), by job id: what to save so that
  // a restart of slurmctld does not lose them (save_running_series).
  std::vector<std::pair<std::uint32_t, JobSeries>> unfinished_series() const;
  // Their job ids only (copy each with series(): no copy of all of them at once).
  std::vector<std::uint32_t> unfinished_ids() const;
  // Takes back a series saved before a restart (load_running_series): later samples extend
  // it, and take_finished_series hands it over as any other (a job that ended meanwhile:
  // once quiet_s has passed since now_s). Points the ledger already has for the job, if
  // any, follow the saved ones (those not later than its last point are dropped). Ignored
  // for a job whose series was already handed over.
  void restore_series(std::uint32_t job_id, const JobSeries &saved, double now_s);

  std::optional<JobFigures> figures(std::uint32_t job_id) const;
  // Drops the figures of jobs with no sample for `older_than_s` (ended long ago) and, given
  // `known` (the jobs slurmctld still lists, running or ended), of jobs not in it with no
  // sample for `unknown_after_s` and no series left to hand over: slurmctld has forgotten
  // them (MinJobAge), so no record can be written for them any more. Without that, a cluster
  // running 2,000 one-minute jobs a minute would hold an hour of them (about 3 KB each).
  void prune(double now_s, double older_than_s, const std::set<std::uint32_t> *known = nullptr,
             double unknown_after_s = 30.0);
  std::size_t job_count() const;

 private:
  // One job's entries in a node's last report: the counters they name and their valid
  // gradients (taken apart once per report, not once per sample).
  struct NodeJob {
    std::uint32_t id = 0;
    unsigned counters = 0;  // bit k: CounterKind k (not none)
    double gradient_sum = 0.0;
    std::size_t gradient_n = 0;
  };
  struct NodeLast {
    std::string node;
    double at_s = 0.0;
    double power_w = 0.0;
    double caps_w = 0.0;
    std::vector<NodeJob> jobs;  // one per distinct job id, by id
  };
  // A job's sums over its nodes in one sample.
  struct PeriodSum {
    double power_w = 0.0;
    bool power_known = true;
    double cap_w = 0.0;
    bool cap_known = true;
    double grant_w = 0.0;
    bool grant_known = true;
    double gradient_sum = 0.0;
    std::size_t gradient_n = 0;
    unsigned counters = 0;
  };
  // The latest accounting of one step on one node (JobSummary's figures).
  struct StepAccounting {
    double energy_j, avg_w, cap_min_w, cap_mean_w, cap_max_w, elapsed_s;
  };
  struct Acc {
    JobFigures f;
    std::map<std::string, std::map<std::string, StepAccounting>> measured;  // node -> step
    double cap_sum_w = 0.0;
    std::size_t cap_samples = 0;
    double gradient_sum = 0.0;
    std::size_t gradient_samples = 0;
    unsigned counters = 0;  // bit k: CounterKind k seen
    double last_sample_s = 0.0;
    double last_series_s = 0.0;  // last time a point was added
    JobSeries series;
    bool series_taken = false;
  };

  double stale_after_s_;
  std::vector<NodeLast> nodes_;  // in no order: a stale one's place goes to the last
  std::unordered_map<std::string, std::size_t> node_slots_;  // name -> index in nodes_
  std::unordered_map<std::uint32_t, PeriodSum> period_;      // sample()'s, kept for its memory
  double last_sample_s_ = std::numeric_limits<double>::quiet_NaN();
  static void apply_measured(const Acc &a, JobFigures &f);
  mutable std::mutex mu_;  // guards jobs_ (its structure changes on the driving thread only)
  std::map<std::uint32_t, Acc> jobs_;
  // sample()'s jobs, found before it takes the lock (acc null: to be added), kept for memory.
  struct Staged {
    Acc *acc;
    std::uint32_t id;
    const PeriodSum *sum;
  };
  std::vector<Staged> staged_;
  std::vector<std::optional<std::uint32_t>> entry_ids_;  // on_report's, kept for memory
};

}  // namespace powergrad
