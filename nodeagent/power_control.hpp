// The node agent's control period on real (or fake) hardware: discover the power domains,
// measure their energy, sample every registered step's counters, run libgradient's
// NodeController, apply its caps, attribute energy to jobs, and give the admin's settings
// back. Runs on the agent's thread only (not thread-safe), except job_summaries().
//
// Power domains are the sockets (hardware/socket_power.hpp): Intel powercap packages capped
// through RAPL, AMD EPYC sockets capped through HSMP (hwmon, else /dev/hsmp) and measured
// by their powercap energy zones (or HSMP socket power). A machine that cannot cap (no
// driver, energy-only zones without HSMP, a BIOS lock, permission) runs in monitor mode: it
// measures what it can and never writes, and says why in its start-up line "caps: ...".
// Management: a node that reports to a controller (PowerControlConfig::management) is
// managed from the controller's first accepted grant on, until the controller says it is
// not in its groups (leave_management). That state outlives the agent: <state_dir>/managed
// marks it, so an agent that starts after a stop, a restart or a crash of slurmd (whose jobs
// ran on) is managed at once. The marker holds the boot's id (procfs
// sys/kernel/random/boot_id): where state_dir survives a reboot, an agent that finds a marker
// of an earlier boot holds every domain at its floor until the controller's first grant,
// since the firmware's caps (the maximum, as a rule) are above what the controller counts
// for the node (its last grant). With the default state_dir (/run, emptied at boot) a
// rebooted node starts unmanaged and holds the caps it finds until that grant.
// - managed: the node is in the cluster budget. Its caps are held within its lease whatever
//   runs there: plain jobs and no job at all included. They are never raised above what is
//   in force without a grant: an agent that starts holds the caps in force until the
//   controller's first grant. Stopping leaves the caps as they are (an idle node is already
//   held at its grant, the idle cap); the admin's settings come back only when the node
//   leaves management.
// - otherwise (no controller, or none has granted a lease yet, or it released the node):
//   caps are written only while a power-aware step (latency, throughput, monitor) runs,
//   within the static grant (grant=, else the domains' maxima); plain steps are measured
//   (they count toward the node's power) but never cause a change.
//
// Saved caps: before the first write, every zone's settings (HardwareSnapshot) go to
// <state_dir>/saved-caps. On a managed node they stay on record until it leaves management
// (an agent that starts takes the file over as the admin's settings). Otherwise they
// are restored, and the file removed, when no power-aware step is left, when the agent
// stops, at agent start if the file is there (a crashed agent), and when a new job arrives
// while no power-aware step is left (new_job: an epilog, or the period that would have
// noticed the end of the last job, was missed). A restore that fails is retried every
// period; its failure is logged once, then at most once a minute, and its recovery once.
//
// Grants: the node's watts come from the static grant (plugin arguments) until the cluster
// controller grants a lease (on_grant); NodeController enforces the lease rules (never above
// the grant while it runs, down to its floor on its own when it ends without renewal). Its
// clock is wall-clock seconds, as the controller's grant expiries are. Every period leaves a
// NodeReport (last_report) for the controller, its caps_w read back from the caps in force
// after this period's writes, so a report confirms lowered caps. A grant that lowers the
// node's watts is obeyed at once: on_grant() lowers the caps right away (NodeController::
// enforce, same write path and checks as a period) and leaves a report that confirms the new
// lease (take_urgent_report), for the agent to send without waiting for the next period. A
// grant that raises them is used at once the same way (only raises written, and only if the
// caps in force stay within the grant with them).
// Each report's job summaries carry the job's accounting (energy, average power, caps in
// force) from the ledger.
//
// Per-core frequency limits: when two or more steered (latency/throughput) steps share a
// package and each has CPUs of its own there (from its tasks' Cpus_allowed_list in procfs,
// CPUs no other step may run on), the CPUs of the steps with a lower share of the package's
// marginal gain get a lower scaling_max_freq, between the CPU's floor (cpuinfo_min_freq)
// and the admin's own scaling_max_freq, in proportion to their gain relative to the top
// step's, damped. The admin's scaling_max_freq values are saved with the caps (same file,
// before the first change of either) and restored with them, exactly, everywhere the caps
// are; CPUs that stop being separated go back to the admin's value at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hardware/counter_source.hpp"
#include "hardware/cpufreq.hpp"
#include "hardware/powercap.hpp"
#include "hardware/secure_dir.hpp"
#include "hardware/snapshot_file.hpp"
#include "hardware/socket_power.hpp"
#include "libgradient/node_controller.hpp"
#include "nodeagent/agent_log.hpp"
#include "nodeagent/emulation_specs.hpp"
#include "nodeagent/job_energy.hpp"
#include "nodeagent/step_registry.hpp"
#include "protocol/messages.hpp"

namespace powergrad {

using NodeCapabilities = proto::NodeCaps;

enum class NodeManagement {
  local,       // no controller: caps only for power-aware steps, admin's settings back after
  controller,  // reports to a controller: managed once it grants a lease (see above)
};
const char *to_string(NodeManagement m);

struct PowerControlConfig {
  NodeManagement management = NodeManagement::local;
  std::string node_name;
  std::string state_dir;
  // The state folder opened and checked by the agent (hardware/secure_dir.hpp): its files
  // are reached through it, never by path. Unset: PowerControl opens state_dir itself
  // (checked the same way, never created).
  std::shared_ptr<const hw::SecureDir> state;
  std::string sysfs_root = "/sys";
  std::string procfs_root = "/proc";
  std::string counters = "auto";  // auto|perf|software|emulated
  // Opens the HSMP ioctl device (AMD, where no amd_hsmp_hwmon device exists). Unset:
  // /dev/hsmp when sysfs_root is "/sys", never beside a test tree. Tests inject a fake.
  std::function<hw::Result<std::unique_ptr<hw::HsmpDevice>>()> open_hsmp;
  std::string emulate_path;       // counters=emulated: the workload specs file
  std::optional<double> grant_w;  // unset: the sum of the domains' maxima
  std::optional<double> floor_w;  // unset: the sum of the domains' minima
  // Orders this agent's reports (rises with every agent start) and refuses grants sent
  // before it started (wall-clock seconds; -infinity: accept every grant).
  std::uint64_t incarnation = 0;
  double started_at_s = -std::numeric_limits<double>::infinity();
  // Per-core frequency limits between steered steps that share a package (see above).
  bool cpufreq = true;
  // Most a CPU's scaling_max_freq moves per period: this share of cpuinfo max - min.
  double freq_max_step_frac = 0.10;
  // Targets closer than this share of cpuinfo max - min to the limit in force do not move it.
  double freq_deadband_frac = 0.01;
  // The low-cap slowdown the gain curves carry (GradientModelParams::low_cap_knee,
  // low_cap_slowdown; plugin arguments of the same names).
  double low_cap_knee = 0.0;
  double low_cap_slowdown = 1.0;
  // How far the latency curves count the load's spread from period to period
  // (GradientModelParams::load_spread_k; plugin argument load_spread=).
  double load_spread_k = 1.0;
  // The busy share from which a job's periods at its own clock set its curve's top
  // (GradientModelParams::top_clock_min_busy; plugin argument top_clock_busy=).
  double top_clock_min_busy = GradientModelParams{}.top_clock_min_busy;
  // The weight of plain jobs' latency in the gain of a package they share with power-aware
  // jobs (GradientModelParams::plain_beside_weight; plugin argument plain_beside=).
  double plain_beside_weight = GradientModelParams{}.plain_beside_weight;
};

// Files in the state folder.
constexpr const char *kSavedCapsFile = "saved-caps";
constexpr const char *kManagedFile = "managed";
std::string saved_caps_path(const std::string &state_dir);
// Present while the node is managed by the cluster controller (see above).
std::string managed_marker_path(const std::string &state_dir);

class PowerControl {
 public:
  PowerControl(PowerControlConfig config, AgentLog log);
  ~PowerControl();
  PowerControl(const PowerControl &) = delete;
  PowerControl &operator=(const PowerControl &) = delete;

  // At agent start: on a managed node (the marker file is there and a controller is
  // configured) a saved-caps file is taken over as the admin's settings on record, and the
  // caps in force are left as they are; otherwise it is restored and removed (a crashed
  // agent), and a stale marker removed.
  void recover();
  // The controller says this node is not in its budget: the admin's settings are restored
  // (and the saved file removed), and the node runs as a local one until a grant arrives.
  void leave_management(const std::string &why);
  // Managed now: a controller granted a lease, and has not released the node since.
  bool managed() const { return config_.management == NodeManagement::controller && managed_; }
  // One control period at monotonic time now_s with the steps registered now. wall_s is
  // the wall clock (seconds since the epoch) that leases run on; NaN: now_s (tests that run
  // without a controller).
  void period(const std::vector<RegisteredStep> &steps, double now_s,
              double wall_s = std::numeric_limits<double>::quiet_NaN());
  // A grant from the cluster controller, taken as the node's lease at wall-clock wall_s.
  // Returns "" when accepted, else why not (then nothing changes). When the grant lowers the
  // node's watts below the caps in force they are lowered at once, and when it raises them
  // (NodeController::enforce) they are raised at once; either way a report confirming the
  // lease is left for take_urgent_report(). Otherwise the caps follow at the next period.
  std::string on_grant(const GrantMessage &grant, double wall_s);
  // The report that confirms a grant obeyed at once (nullopt if none is waiting); taking it
  // clears it.
  std::optional<NodeReport> take_urgent_report();
  // The report of the last period (nullopt before the first one with measurements).
  const std::optional<NodeReport> &last_report() const { return last_report_; }
  // A job not seen before is starting (its first task registered); `steps` are the steps
  // registered now, dead ones already reaped. With no other power-aware step left, the
  // admin's settings are put back first if they are still saved (in memory or in the
  // saved-caps file): the end of the previous job was missed. Returns true if it restored.
  bool new_job(std::uint32_t job_id, const std::vector<RegisteredStep> &steps);
  // At agent stop: every step's summary is logged, saved caps restored.
  void shutdown();

  // Per-step energy and caps: running steps, then recently finished ones. Thread-safe.
  std::vector<JobEnergySummary> job_summaries() const;
  bool monitor_only() const { return monitor_only_; }
  // What this node can do, once the hardware was looked at (the first period or grant):
  // how it caps, how it measures, and with which counters, and how often putting the
  // admin's saved settings back failed since the agent started. nullopt before.
  std::optional<NodeCapabilities> capabilities() const;
  // CPUs whose scaling_max_freq this agent set below the admin's value, and the value.
  std::map<int, std::uint64_t> freq_limits() const { return freq_set_; }

 private:
  struct Domain {
    std::size_t zone = 0;  // index in sockets_.domains()
    std::string zone_name;
    std::string label;
    std::optional<hw::EnergyCounter> counter;
    double energy_j = 0.0;  // over the last period
    std::optional<double> power_w;
  };
  struct Step {
    hw::CounterJobId id = 0;
    JobMode mode = JobMode::off;
    std::set<pid_t> pids;
    bool counting = false;
    std::vector<std::size_t> domains;  // indices into domains_
    double cpus = 1.0;
    std::optional<hw::CounterReading> reading;
    std::set<int> cpus_allowed;  // union of its tasks' Cpus_allowed_list (empty: unknown)
  };

  void setup_hardware();
  void make_controller(bool managed_node);
  // Every domain at its minimum cap now (lowerings only): a node rebooted while managed.
  void hold_floors();
  void announce(double wall_s);
  std::vector<JobInput> job_inputs() const;
  void adopt_saved_file();
  void adopt_freq_limits();
  void setup_counters();
  void sync_steps(const std::vector<RegisteredStep> &steps, double now_s);
  void start_step(const RegisteredStep &rs, Step &st, double now_s);
  void finish_step(const std::string &key);
  std::optional<double> cap_in_force_w(std::size_t domain) const;
  void control(double now_s, double wall_s);
  void monitor_report(double wall_s);
  // Writes dec's caps in apply_order (lowered first), within each domain's bounds; stops at
  // the first failure. Returns whether a cap changed.
  bool write_caps(const NodeDecision &dec, const std::vector<DomainInput> &domains,
                  bool lower_only);
  bool domain_inputs(std::vector<DomainInput> &out);
  void enforce_grant(double wall_s);
  std::optional<std::uint64_t> saved_cpufreq_khz(int cpu) const;
  hw::Status restore_cpufreq(const hw::CpufreqSnapshot &saved);
  // Domain d's cap in force; its maximum when it cannot be read (the safe assumption).
  double cap_in_force_or_max_w(std::size_t d, const std::vector<DomainInput> &domains) const;
  double caps_in_force_sum_w(const std::vector<DomainInput> &domains) const;
  void fill_accounting(NodeReport &report) const;
  std::set<int> read_cpus_allowed(const std::set<pid_t> &pids) const;
  void apply_freq_limits(const NodeDecision &dec);
  void release_freq_limits(const std::set<int> &keep);
  bool save_caps();
  bool restore_caps(const std::string &why);
  bool restore_from_file(const std::string &why);
  void log_restore_failure(const std::string &what);

  PowerControlConfig config_;
  // The state folder; nullptr when it cannot be opened (logged once): nothing can be saved,
  // so caps are never changed.
  const hw::SecureDir *state_dir();
  std::string state_error_;
  AgentLog log_;
  bool hardware_ready_ = false;
  bool monitor_only_ = true;
  bool control_blocked_ = false;  // a saved-caps file we could not restore: never write
  bool managed_ = false;          // see managed()
  void set_managed(bool on);      // managed_ and its marker file (with this boot's id)
  // The marker was written in an earlier boot (its boot id is not this boot's): the node was
  // rebooted while managed, and its caps are the firmware's, not what the controller counts.
  bool rebooted_ = false;
  double domains_min_w_ = 0.0, domains_max_w_ = 0.0;
  hw::SocketPower sockets_;
  bool caps_logged_ = false;
  void log_capabilities();
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
  unsigned long restore_failures_ = 0;        // since the last success, for the log
  std::uint64_t restore_failures_total_ = 0;  // since the agent started (capabilities())
  double last_restore_log_s_ = 0.0;
  std::optional<NodeReport> last_report_;
  std::optional<NodeReport> urgent_report_;
  hw::CpufreqLimits cpufreq_;
  bool cpufreq_ready_ = false;
  std::map<int, int> package_of_cpu_;
  std::map<int, std::uint64_t> freq_set_;  // cpu -> limit this agent set (below the admin's)
  std::set<int> freq_refused_;              // CPUs whose limit could not be written
  std::uint64_t report_seq_ = 0;  // of the reports built here (monitor mode)
  mutable std::mutex ledger_mu_;
  JobEnergyLedger ledger_;
};

}  // namespace powergrad
