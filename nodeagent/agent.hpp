// The node agent: threads inside slurmd that know the job steps on its node (told by
// slurmstepd over the step channel), forget the ones whose processes died, and run the
// node's power control every period. The step channel has a thread of its own: a task's
// registration is answered at once, never after a control period. Slurm-free: the SPANK plugin
// starts it from slurm_spank_init in slurmd and stops it from slurm_spank_slurmd_exit, and hands it
// a log function. Nothing here may throw into slurmd or block it: the thread catches everything at
// its edge, and start() never waits on the network or on a lock slurmd holds.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hardware/secure_dir.hpp"
#include "nodeagent/agent_log.hpp"
#include "nodeagent/agent_socket.hpp"
#include "nodeagent/controller_link.hpp"
#include "nodeagent/job_energy.hpp"
#include "nodeagent/power_control.hpp"
#include "nodeagent/step_registry.hpp"
#include "protocol/report_phase.hpp"

namespace powergrad {

struct AgentConfig {
  std::string node_name;
  std::string state_dir;  // root-only folder: the step socket, later the saved-caps file
  double period_s = 1.0;
  std::string procfs_root = "/proc";  // where task PIDs are looked up
};

// Files in state_dir: the socket slurmstepd talks to (kStepSocketFile, agent_socket.hpp),
// and the registry of running steps kept for the next agent (StepRegistry::serialize).
constexpr const char *kStepsFile = "steps";
std::string step_socket_path(const std::string &state_dir);
std::string steps_file_path(const std::string &state_dir);

// The start time of process `pid` (field 22 of procfs' stat, clock ticks since boot), or
// nullopt when it does not run.
std::optional<std::uint64_t> pid_start_ticks(const std::string &procfs_root, pid_t pid);

// Opens the agent's state folder `dir`, creating it (mode 0700, missing parents 0755) if
// absent. Every folder of the path must be root's (or this process's uid's) and not
// writable by group or others unless sticky (hardware/secure_dir.hpp), and `dir` itself
// this process's and writable by it alone: whoever can write a folder on the way could
// plant the socket or the saved-caps file, or swap the folder for one of theirs. The agent
// then reaches its files through the descriptor only.
hw::Result<hw::SecureDir> open_state_dir(const std::string &dir);

// True when `pid` runs (a zombie counts as gone), looked up under procfs_root.
bool pid_alive(const std::string &procfs_root, pid_t pid);

class NodeAgent {
 public:
  // With `power`, each period also runs the node's power control (PowerControl; its
  // node_name, state_dir and procfs_root are taken from `config`). Without: registry only.
  // With `controller`, the agent reports to the cluster controller and takes its grants
  // (its node_name and incarnation are filled in by start()); `auth` authenticates that
  // session (null: munge, through munge_socket_from_env()). Without: static grant only.
  NodeAgent(AgentConfig config, AgentLog log, std::optional<PowerControlConfig> power = {},
            std::optional<ControllerLinkConfig> controller = {},
            std::shared_ptr<proto::Authenticator> auth = {});
  ~NodeAgent();  // stops the thread
  NodeAgent(const NodeAgent &) = delete;
  NodeAgent &operator=(const NodeAgent &) = delete;

  // Prepares the state folder, opens the step socket and starts the thread. Returns "" or
  // why not (then nothing runs).
  std::string start();
  // Wakes the thread, waits for it to finish its period and stop. Idempotent.
  void stop();
  bool running() const { return thread_.joinable(); }

  // A copy of the registered steps (for status and tests).
  std::vector<RegisteredStep> steps() const;
  // Number of control periods completed.
  unsigned long periods() const { return periods_.load(); }
  // Per-step energy and caps (running steps, then recently finished ones), for reports.
  std::vector<JobEnergySummary> job_summaries() const;
  // Reports sent to and grants received from the controller (0 without one).
  unsigned long reports_sent() const { return reports_sent_.load(); }
  unsigned long grants_received() const { return grants_received_.load(); }
  bool controller_connected() const { return controller_connected_.load(); }

 private:
  void run();
  // The step channel's thread: accepts, applies and answers registrations as they come.
  void serve_steps();
  void handle_events();
  // New jobs' first steps, queued by the channel thread, handled by the control thread
  // (restoring the admin's settings may write sysfs: never on the channel thread). Returns
  // the registry as it was when the queue was taken, for the period that follows.
  std::vector<RegisteredStep> take_new_jobs();
  void period();
  // Moves the next period's time towards the report phase (report_phase_); logs when the
  // agent starts or stops following the controller's period.
  void align_period(std::chrono::steady_clock::time_point &next,
                    std::chrono::steady_clock::time_point t0, double now_s);
  // The steps an earlier agent registered that still run (same PID, same start time), taken
  // back into the registry at start: a slurmd restart does not lose them.
  void restore_steps();
  // Writes the registry file when the registry changed since the last write.
  void persist_steps();

  AgentConfig config_;
  AgentLog log_;
  // Before server_: the socket's path goes through this folder's descriptor.
  std::shared_ptr<const hw::SecureDir> state_;
  std::unique_ptr<class StepChannelServer> server_;
  std::thread thread_;
  std::thread channel_thread_;
  int wake_fd_ = -1;  // eventfd: stop() writes it (both threads wake and leave)
  int work_fd_ = -1;  // eventfd: the channel thread queued new jobs for the control thread
  mutable std::mutex mu_;
  StepRegistry registry_;
  bool registry_dirty_ = false;          // under mu_
  std::vector<std::uint32_t> new_jobs_;  // under mu_
  std::atomic<unsigned long> periods_{0};
  std::optional<PowerControlConfig> power_config_;
  std::unique_ptr<PowerControl> power_;
  std::optional<ControllerLinkConfig> controller_;
  std::shared_ptr<proto::Authenticator> auth_;
  std::unique_ptr<ControllerLink> link_;
  // When in the period the report leaves: just before the controller's step (report_phase.hpp).
  std::unique_ptr<proto::ReportPhase> report_phase_;
  bool report_aligned_ = false;
  std::atomic<unsigned long> reports_sent_{0};
  std::atomic<unsigned long> grants_received_{0};
  std::atomic<bool> controller_connected_{false};
};

}  // namespace powergrad
