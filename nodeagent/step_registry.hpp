// The node agent's view of which job steps run on this node and with which task PIDs.
// Fed by slurmstepd's events; a step is forgotten when its last task exits, when its stepd
// says it ended, or when its PIDs are found dead (a crashed stepd sends nothing more).
// Pure: liveness is asked through a callback, so tests need no processes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nodeagent/step_event.hpp"

namespace powergrad {

struct RegisteredStep {
  uint32_t job_id = 0;
  std::string step;
  JobMode mode = JobMode::off;
  std::set<pid_t> pids;
  double registered_at_s = 0.0;

  std::string key() const { return std::to_string(job_id) + "." + step; }
  bool power_aware() const { return is_power_aware(mode); }
};

struct RegistryLimits {
  std::size_t max_steps = 4096;
  std::size_t max_pids_per_step = 4096;
};

class StepRegistry {
 public:
  explicit StepRegistry(RegistryLimits limits = {}) : limits_(limits) {}

  // Applies one event. Returns "" on success, else why it was refused (unknown step for an
  // exit is not an error: the agent may have restarted; a full registry is).
  std::string apply(const StepEvent &e, double now_s);

  // Drops PIDs for which alive(pid) is false, and steps left without PIDs. Returns the keys
  // of the steps dropped.
  std::vector<std::string> reap(const std::function<bool(pid_t)> &alive);

  std::vector<RegisteredStep> steps() const;
  bool has_power_aware_step() const;
  std::size_t size() const { return steps_.size(); }

  // Where the registry is kept across agent restarts (slurmd restarts while its jobs run
  // on): the agent writes it on every change, and a new agent reads it back.
  //   powergrad-steps 1
  //   <pid start time, in clock ticks since boot> <a task_start step event>
  //   ...
  //   end
  // Tasks whose start time is unknown (already gone) are left out.
  static std::string serialize(
      const std::vector<RegisteredStep> &steps,
      const std::function<std::optional<std::uint64_t>(pid_t)> &start_ticks);

 private:
  using Key = std::pair<uint32_t, std::string>;
  RegistryLimits limits_;
  std::map<Key, RegisteredStep> steps_;
};

// A task read back from a registry file: its start event, and its process's start time (a
// PID of the same number but another start time is another process).
struct SavedTask {
  StepEvent start;
  std::uint64_t start_ticks = 0;
};
struct RegistryFileParse {
  std::vector<SavedTask> tasks;
  std::string error;  // "" or "line N: what is wrong" (then tasks is empty)
};
RegistryFileParse parse_registry_file(const std::string &text);

}  // namespace powergrad
