// Counters through perf_event_open, events encoded by libpfm4 for the present core PMU.
//
// At construction the source probes what works, once: the PMU's events (cycles first) on the
// calling thread, and software task-clock. Where hardware events are unavailable (VMs: the
// kernel answers ENOENT for every hardware, cache and raw event) it runs on software events
// (task-clock, context switches) and says so in describe(): "counters=software (...)".
// Each event is its own group leader with read_format TOTAL_TIME_ENABLED|RUNNING and counts
// are scaled by enabled/running over each interval: inherited per-task events cannot be read
// as a group on older kernels, and a group would also fail as a whole if one event does not
// fit on the PMU.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hardware/counter_source.hpp"
#include "hardware/pfm_events.hpp"
#include "hardware/result.hpp"

namespace powergrad::hw {

// Where a job's cgroup lives:
//   v2:        <root>/<path> on a pure v2 host (<root>/cgroup.controllers exists), or
//              <root>/unified/<path> on a hybrid host (v2 mounted at <root>/unified)
//   v1:        <root>/perf_event/<path> (the v1 perf_event controller; Slurm's cgroup/v1
//              plugin does not create job folders there, so whoever uses it must)
//   automatic: the first of those (v2 first) where the folder exists.
enum class CgroupLayout { automatic, v2, v1 };

Result<std::string> resolve_cgroup_dir(const std::string &cgroup_root, CgroupLayout layout,
                                       const std::string &relative_path);

// One read of a perf event opened with read_format TOTAL_TIME_ENABLED|TOTAL_TIME_RUNNING.
struct PerfCount {
  std::uint64_t value = 0;
  std::uint64_t time_enabled_ns = 0;
  std::uint64_t time_running_ns = 0;
};

// The count between two reads, scaled for multiplexing: delta value x delta enabled / delta
// running. 0 when the event was not enabled in between (a per-task event whose task did not
// run); nullopt when it was enabled but never on the PMU (nothing to scale from). When
// running_fraction is given it receives delta running / delta enabled (1 if not enabled).
std::optional<double> scaled_delta(const PerfCount &before, const PerfCount &after,
                                   double *running_fraction = nullptr);

struct PerfCounterOptions {
  std::string sysfs_root = "/sys";  // devices/system/cpu/online, for cgroup mode
  std::string proc_root = "/proc";  // <pid>/task/<tid>: threads of a PID when attaching
  std::string cgroup_root = "/sys/fs/cgroup";
  CgroupLayout cgroup_layout = CgroupLayout::automatic;
  // Count kernel-mode cycles too (a job's syscalls are its work). Needs root or
  // perf_event_paranoid <= 1; the node agent runs as root.
  bool count_kernel = true;
  // false: software events even where a PMU works (tests; sites that keep the PMU free).
  bool allow_hardware = true;
};

class PerfCounterSource final : public CounterSource {
 public:
  // Fails only when not even software events can be opened (perf_event_paranoid 3 or a
  // seccomp filter): the agent then has no counters at all and must run on energy alone.
  static Result<std::unique_ptr<PerfCounterSource>> create(PerfCounterOptions options = {});
  ~PerfCounterSource() override;

  CounterMode mode() const override;
  std::string describe() const override;
  // Why hardware events are not used ("" in hardware mode).
  const std::string &fallback_reason() const;
  // The PMU's event set in hardware mode, nullptr in software mode.
  const PmuEventSet *event_set() const;
  // Hardware events of the set that could not be opened here (they stay unset in samples).
  const std::vector<std::string> &dropped_events() const;

  Status add_job(CounterJobId job, const CounterTarget &target, double now_s) override;
  Status add_tasks(CounterJobId job, const std::vector<pid_t> &pids) override;
  void remove_job(CounterJobId job) override;
  bool has_job(CounterJobId job) const override;
  Result<CounterReading> sample(CounterJobId job, double now_s) override;

  // Open perf descriptors of a job (for overhead reports; cgroup mode opens one per CPU).
  std::size_t open_descriptors(CounterJobId job) const;

 private:
  struct Impl;
  explicit PerfCounterSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace powergrad::hw
