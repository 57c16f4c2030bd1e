// What the node controller and the cluster controller say to each other, as plain values.
//
// The node agent (slurmd) and the cluster controller (slurmctld) move these over the wire
// protocol; the simulator hands them over through a fake transport. Neither side trusts
// delivery: messages may be lost, delayed, duplicated or reordered, which is why grants
// carry an (epoch, seq) order and a lease expiry, and reports an (incarnation, report_seq)
// order and the lease they confirm. See cluster_controller.hpp for the safety accounting
// these fields feed.
//
// Size: a NodeReport's demand curve has at most NodeControllerParams::report_segments
// segments (or curve_steps per power domain when that is 0), and one JobSummary per (job,
// domain) pair.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "libgradient/gain_curve.hpp"
#include "libgradient/job_mode.hpp"
#include "libgradient/types.hpp"

namespace powergrad {

// Where a job's counter values came from; reported with every estimate so results say which
// counters they rest on.
enum class CounterKind {
  none,      // no usable sample yet
  software,  // software events only (task-clock), e.g. in VMs: power readings carry the model
  hardware,  // hardware events (cycles, instructions, memory stalls) via perf
  emulated,  // an emulator derived them from a workload model (tests, demos, never silently)
};

const char *to_string(CounterKind kind);

// A lease on watts, from the cluster controller to one node. The node may hold its power
// domains' caps at up to grant_w in sum until expires_at_s; after that, or before any grant,
// at up to floor_w. A newer grant (higher (epoch, seq)) replaces an older one; an older one
// arriving late is ignored.
struct GrantMessage {
  std::string node;           // the node's name, as the controller's configuration has it
  double grant_w = 0.0;       // the most the node's caps may sum to while the lease runs
  double floor_w = 0.0;       // what the node falls back to when the lease ends
  // The node's fair share of the budget: work on it that is not steered (plain jobs, jobs
  // without an estimate yet, no job at all) is protected up to this, never beyond, so that
  // a plain job does not live on its power-aware neighbour's gradient. 0: up to the grant.
  double share_w = 0.0;
  double expires_at_s = 0.0;  // controller clock (clocks are synchronised: munge needs it)
  double lease_s = 0.0;       // lease length; a node also ends the lease lease_s after receipt
  std::uint64_t epoch = 0;    // the controller's incarnation: must rise on every restart
  std::uint64_t seq = 0;      // rises with every grant the controller sends (any node)
};

// One job's gradient on one power domain, as the node reports it.
struct JobSummary {
  std::string job;  // the job's key (e.g. "1234.0")
  std::size_t domain = 0;
  JobMode mode = JobMode::off;
  CounterKind counters = CounterKind::none;
  // Marginal gain of one more watt on the domain at its current power, in `unit`
  // (latency jobs: request-seconds saved per second per watt; throughput jobs: relative
  // speed-up per watt, times the job's share of the domain). 0 when not steered.
  double gain_per_w = 0.0;
  GradientUnit unit = GradientUnit::relative_speedup_per_w;
  double speedup_per_w = 0.0;  // raw relative speed-up per watt (the unweighted gradient)
  double confidence = 0.0;     // of the estimate, in [0, 1]
  double memory_share = 0.0;   // share of run time that does not scale with frequency
  double busy_fraction = 0.0;  // task-clock / (interval x CPUs), smoothed
  GradientSource source = GradientSource::none;
  bool valid = false;  // false: no usable estimate; `reason` says why
  std::string reason;
  // Accounting since the job's first period on this node (all domains; repeated on each of
  // the job's entries). NaN: unknown (no energy readings, e.g. a node without powercap).
  double energy_j = std::numeric_limits<double>::quiet_NaN();
  double avg_w = std::numeric_limits<double>::quiet_NaN();  // energy_j / elapsed_s
  double cap_min_w = std::numeric_limits<double>::quiet_NaN();   // of its domains' caps
  double cap_mean_w = std::numeric_limits<double>::quiet_NaN();  // time-weighted
  double cap_max_w = std::numeric_limits<double>::quiet_NaN();
  double elapsed_s = 0.0;  // time the figures cover
};

// What a node tells the cluster controller once per period, after applying its caps.
struct NodeReport {
  std::string node;
  // Orders reports from one node: a report is newer if (incarnation, report_seq) is larger.
  // incarnation must rise when the agent restarts (e.g. its start time).
  std::uint64_t incarnation = 0;
  std::uint64_t report_seq = 0;
  double sent_at_s = 0.0;
  // When this incarnation started: it refuses grants sent before (-infinity: accepts all).
  double started_at_s = -std::numeric_limits<double>::infinity();

  // The lease the node runs under (the newest grant it accepted): (0, 0) when it has none
  // from any controller and runs on its static grant or floor.
  std::uint64_t lease_epoch = 0;
  std::uint64_t lease_seq = 0;
  double lease_grant_w = 0.0;  // that lease's grant (or the static grant / floor without one)
  double lease_expires_at_s = 0.0;
  bool lease_expired = false;
  double effective_grant_w = 0.0;  // what the caps were fitted to this period

  double min_w = 0.0;    // sum of the power domains' minimum caps
  double max_w = 0.0;    // sum of their maximum caps
  // Watts protected for work that is not steered (>= min_w). With steered work and a lease
  // naming the node's fair share, held to that share's even split over the domains, as the
  // node protects it (the watts above go to the steered work, so they are in `demand`).
  double need_w = 0.0;
  double caps_w = 0.0;   // sum of the caps in force after this period's decision
  double power_w = 0.0;  // sum of measured domain power over the period; NaN if unknown

  bool idle = true;        // no job at all on the node
  bool steerable = false;  // some job's gradient is steered (latency or throughput mode)
  // Gain of the watts above need_w, up to max_w: the water-filled merge of the domains'
  // curves, so the cluster allocator can treat the node as one leaf. Empty when nothing is
  // steerable.
  GainCurve demand;
  std::vector<JobSummary> jobs;
};

}  // namespace powergrad
