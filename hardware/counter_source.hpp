// Per-job counters behind one interface, so the node agent's estimator path is the same
// whether numbers come from perf (hardware or software events) or from the emulator.
//
// What a source gives is fixed at construction and reported once: mode() and describe()
// ("counters=software (...why...)"), for the agent's log and each job's report. Sources are
// used by one thread (the agent's) and are not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hardware/result.hpp"
#include "libgradient/types.hpp"

namespace powergrad::hw {

// hardware: PMU events (cycles, instructions, stalls...) plus task-clock.
// software: task-clock and context switches only (VMs, this machine).
// emulated: values made up by a workload model; selected only by explicit configuration.
enum class CounterMode { hardware, software, emulated };
const char *to_string(CounterMode mode);

using CounterJobId = std::uint64_t;

// Whom to count. Exactly one of pids and cgroup is used by the perf source.
struct CounterTarget {
  // Per task: each PID (and every thread it has when attached) is counted with inherit=1,
  // so tasks it forks or threads it starts *afterwards* are counted too. Register a task
  // before it forks (slurmstepd's task_post_fork does), and never register a PID that is a
  // descendant of another registered PID (it would be counted twice).
  std::vector<pid_t> pids;
  // Per cgroup: a path relative to the hierarchy ("system.slice/slurmstepd.scope/job_42"),
  // resolved under the source's cgroup root (see PerfCounterOptions). '..' is refused.
  std::string cgroup;
  // Cgroup mode counts per CPU (the kernel requires a CPU for cgroup events): these CPUs,
  // or every online CPU when empty. The emulated source uses them for cpufreq limits.
  std::vector<int> cpus;
  // Emulated source only: the job's workload model ("memory_share=0.7,busy_cpus=2,..."),
  // see emulated_counter_source.hpp. Ignored by the perf source.
  std::string emulation;
};

struct CounterReading {
  // Deltas since the previous sample: interval_s, task_clock_s always; cycles,
  // instructions, stall_cycles, ref_cycles when counted. energy_j is left empty (energy is
  // per domain, from powercap).
  CounterSample sample;
  std::optional<double> llc_misses;
  std::optional<double> context_switches;
  // Lowest time-running / time-enabled over the hardware events in this interval: below 1
  // the PMU was multiplexed and the counts are scaled estimates.
  double running_fraction = 1.0;
};

class CounterSource {
 public:
  virtual ~CounterSource() = default;

  virtual CounterMode mode() const = 0;
  // One line for the log and the job report: "counters=software (reason)".
  virtual std::string describe() const = 0;

  // Starts counting a job. now_s: the caller's monotonic clock, in seconds.
  virtual Status add_job(CounterJobId job, const CounterTarget &target, double now_s) = 0;
  // More tasks for a per-task job (a new step). PIDs already gone are skipped.
  virtual Status add_tasks(CounterJobId job, const std::vector<pid_t> &pids) = 0;
  virtual void remove_job(CounterJobId job) = 0;
  virtual bool has_job(CounterJobId job) const = 0;
  // Counts since the previous sample (or since add_job).
  virtual Result<CounterReading> sample(CounterJobId job, double now_s) = 0;
};

}  // namespace powergrad::hw
