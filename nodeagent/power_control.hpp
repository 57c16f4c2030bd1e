// The node agent's control period on real (or fake) hardware: discover the power domains,
// measure their energy, sample every registered step's counters, run libgradient's
// NodeController, apply its caps, attribute energy to jobs, and give the admin's settings
// back. Runs on the agent's thread only (not thread-safe), except job_summaries().
//
// Power domains are the powercap packages. A machine without powercap (or with energy-only
// zones, e.g. AMD) runs in monitor mode: it measures what it can and never writes.
// Caps are written only while a power-aware step (latency, throughput, monitor) runs; plain
// steps are measured (they count toward the node's power) but never cause a change.
//
// Saved caps: before the first write, every zone's settings (HardwareSnapshot) go to
// <state_dir>/saved-caps. They are restored, and the file removed, when no power-aware step
// is left, when the agent stops, and at agent start if the file is there (a crashed agent).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hardware/counter_source.hpp"
#include "hardware/powercap.hpp"
#include "hardware/snapshot_file.hpp"
#include "libgradient/node_controller.hpp"
#include "nodeagent/agent_log.hpp"
#include "nodeagent/emulation_specs.hpp"
#include "nodeagent/job_energy.hpp"
#include "nodeagent/step_registry.hpp"

namespace powergrad {

struct PowerControlConfig {
  std::string node_name;
  std::string state_dir;
  std::string sysfs_root = "/sys";
  std::string procfs_root = "/proc";
  std::string counters = "auto";  // auto|perf|software|emulated
  std::string emulate_path;       // counters=emulated: the workload specs file
  std::optional<double> grant_w;  // unset: the sum of the domains' maxima
  std::optional<double> floor_w;  // unset: the sum of the domains' minima
};

std::string saved_caps_path(const std::string &state_dir);

class PowerControl {
 public:
  PowerControl(PowerControlConfig config, AgentLog log);
  ~PowerControl();
  PowerControl(const PowerControl &) = delete;
  PowerControl &operator=(const PowerControl &) = delete;

  // At agent start: a saved-caps file left by a previous agent is restored and removed.
  void recover();
  // One control period at monotonic time now_s with the steps registered now.
  void period(const std::vector<RegisteredStep> &steps, double now_s);
  // At agent stop: every step's summary is logged, saved caps restored.
  void shutdown();

  // Per-step energy and caps: running steps, then recently finished ones. Thread-safe.
  std::vector<JobEnergySummary> job_summaries() const;
  bool monitor_only() const { return monitor_only_; }

 private:
  struct Domain {
    std::size_t zone = 0;  // index in tree_.zones()
    std::string zone_name;
    std::string label;
    std::optional<hw::EnergyCounter> counter;
    double energy_j = 0.0;  // over the last period
    std::optional<double> power_w;
  };
  struct Step {
    hw::CounterJobId id = 0;
    std::string mode;
    std::set<pid_t> pids;
    bool counting = false;
    std::vector<std::size_t> domains;  // indices into domains_
    double cpus = 1.0;
    std::optional<hw::CounterReading> reading;
  };

  void setup_hardware();
  void setup_counters();
  void sync_steps(const std::vector<RegisteredStep> &steps, double now_s);
  void start_step(const RegisteredStep &rs, Step &st, double now_s);
  void finish_step(const std::string &key);
  std::optional<double> cap_in_force_w(std::size_t domain) const;
  void control(double now_s);
  bool save_caps();
  void restore_caps(const std::string &why);

  PowerControlConfig config_;
  AgentLog log_;
  bool hardware_ready_ = false;
  bool monitor_only_ = true;
  bool control_blocked_ = false;  // a saved-caps file we could not restore: never write
  hw::PowercapTree tree_;
  std::vector<Domain> domains_;
  int cores_per_domain_ = 1;
  std::unique_ptr<hw::CounterSource> counters_;
  std::string counters_name_ = "none";
  bool counters_ready_ = false;
  EmulationSpecs specs_;
  std::unique_ptr<NodeController> controller_;
  std::optional<hw::HardwareSnapshot> saved_;
  std::map<std::string, Step> steps_;
  hw::CounterJobId next_id_ = 1;
  std::optional<double> last_now_s_;
  double interval_s_ = 0.0;
  mutable std::mutex ledger_mu_;
  JobEnergyLedger ledger_;
};

}  // namespace powergrad
