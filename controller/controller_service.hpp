// The controller's service loop, without slurmctld: the plugin's thread owns one and calls
// run_once() in a loop. Each round polls the protocol endpoint, feeds node reports to the
// ClusterController (and the per-job ledger), answers admin sessions, and once per control
// period applies the budget schedule, steps the controller and sends every connected node
// its grant.
//
// Two clocks, both from the caller's Clock: the endpoint's timeouts run on a monotonic
// clock; the ClusterController runs on wall-clock seconds since the epoch, because grant
// expiries travel to the nodes, whose clocks are synchronised with ours (munge needs that)
// but whose monotonic clocks are not.
//
// Admin sessions: status is answered to anyone (ADMIN_STATUS, JSON, see status_json());
// ADMIN_SET_BUDGET from a uid that may not administer is refused by the endpoint itself
// (ADMIN_RESULT permission denied), and logged here; from an admin it is applied with
// ClusterController::set_budget and answered ok, or invalid with the reason.
//
// Log lines that an unauthenticated peer or an ordinary user can cause at will (refused
// connections, endpoint errors, read-only sessions and their refused requests) go through a
// LogSummary: the first of a kind in full, then one line per kind and 10 s with the count.
//
// The budget schedule, if any, is applied whenever its value changes (at start, and at
// each scheduled time); a budget set by an admin holds until the schedule's next change.
//
// A budget set by an admin is saved in settings.budget_state_path (if set) and re-applied
// at the next start while powergrad.conf's Budget (and the schedule's value) is still what
// it was then: see budget_state.hpp. The constructor does that.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/budget_state.hpp"
#include "controller/ctld_config.hpp"
#include "controller/job_power.hpp"
#include "controller/listen_retry.hpp"
#include "controller/log_summary.hpp"
#include "libgradient/cluster_controller.hpp"
#include "protocol/controller_endpoint.hpp"

namespace powergrad {

class ServiceClock {
 public:
  virtual ~ServiceClock() = default;
  virtual double monotonic_s() = 0;
  virtual double wall_s() = 0;  // seconds since the epoch
};

// CLOCK_MONOTONIC and CLOCK_REALTIME.
class SystemServiceClock : public ServiceClock {
 public:
  double monotonic_s() override;
  double wall_s() override;
};

enum class ServiceLogLevel { debug, info, error };
using ServiceLog = std::function<void(ServiceLogLevel, const std::string &)>;

struct ServiceSettings {
  double period_s = 1.0;
  std::optional<BudgetSchedule> schedule;
  std::string schedule_path;  // for status and logs
  // Figures of jobs with no sample for this long are dropped (the job ended long ago).
  double forget_jobs_after_s = 3600.0;
  // The jobs slurmctld still lists (running or ended, until MinJobAge), into the set; false
  // when unknown. Figures of jobs it no longer lists are dropped sooner (JobPowerLedger::prune).
  std::function<bool(std::set<std::uint32_t> &)> known_jobs;
  // The run-time budget's state file ("" : not saved); config_budget_w: powergrad.conf's
  // Budget (NaN: the controller's budget at construction).
  std::string budget_state_path;
  // slurm.conf's nodes outside powergrad.conf's groups (not managed), for status.
  std::vector<std::string> unmanaged_nodes;
  double config_budget_w = std::numeric_limits<double>::quiet_NaN();
  // How the listening socket was had (status shows attempts that failed before it).
  ListenState listen;
  // slurm.conf's PrivateData=jobs: status shows a user the ids of their own jobs only,
  // unless the session may administer PowerGrad or sees_all_jobs(uid) says so (Slurm's
  // operators and admins). The owners come from set_job_owners().
  bool private_jobs = false;
  std::function<bool(std::uint32_t uid)> sees_all_jobs;
};

// Whose status is being built: which job ids it may show.
struct StatusViewer {
  bool all_jobs = true;  // false: only jobs owned by uid
  std::uint32_t uid = 0;
};

class ControllerService {
 public:
  // The endpoint, clock and ledger must outlive the service; log may be empty. The ledger
  // is the caller's so that slurmctld's job hooks can read figures without the service.
  ControllerService(ServiceSettings settings, ClusterController controller,
                    proto::ControllerEndpoint &endpoint, ServiceClock &clock,
                    JobPowerLedger &ledger, ServiceLog log);

  // One round: poll the endpoint (waiting at most max_wait_ms, less when a period falls due
  // sooner), handle what arrived, run the period when due. `extra` as for poll_once. Never
  // throws.
  void run_once(int max_wait_ms, std::vector<pollfd> *extra = nullptr);

  // Handles one round of endpoint events (run_once calls it).
  void handle(const std::vector<proto::ControllerEvent> &events);
  // One control period (run_once calls it when due).
  void period();
  // Between periods (run_once calls it after every round), at most once per
  // release_interval_s() (a release walks every node: `cluster_release_100k_ms`):
  // - after a report whose caps are above everything granted to its node (a node rebooted
  //   with its firmware's caps, an admin's write), a step at once, which lowers that node
  //   (early_steps);
  // - otherwise, after a report confirmed lower caps while a raise waits (O(1) tests), the
  //   raises the last period left waiting for slack, granted now
  //   (ClusterController::release), so that watts moved from one node to another are unused
  //   for one report's round trip rather than until the next period.
  void release_confirmed();
  double release_interval_s() const { return 0.1 * settings_.period_s; }

  // Status as the admin command gets it:
  // {"version":1, "now":WALL, "budget_w", "scheduled_budget_w" (null without a schedule),
  //  "budget_origin" ("config", "schedule" or "run-time"), "config_budget_w",
  //  "runtime_budget" (null, or {"budget_w", "uid", "set_at"}),
  //  "schedule", "period_s", "lease_s", "epoch", "plain_share", "in_force_w", "unallocated_w",
  //  "groups":[{"name", "parent", "limit_w", "in_force_w", "nodes"}],
  //  "nodes":[{"name", "group", "connected", "reported", "silent", "floor_w", "max_w",
  //            "idle_w", "fair_share_w", "work" (unknown|idle|plain|power-aware),
  //            "grant_w", "target_w", "in_force_w", "power_w", "caps_w", "need_w",
  //            "gradient", "jobs":[ids], "lease_age_s", "report_age_s"}],
  //  "unmanaged":[{"name", "connected_at"}],  (nodes outside the groups: not in the budget)
  //  "jobs_shown":"all"|"own",
  //  "listen":{"address", "since", "failed_attempts", "failing_since", "last_error"},
  //  "config_refused": null, or why the last reconfigure kept the configuration in force}
  //  (failing_since and last_error null when the first attempt to listen worked)
  // Unknown numbers are null.
  // With a viewer that may not see every job (PrivateData=jobs), "jobs" lists only theirs
  // and "jobs_shown" says "own" ("all" otherwise).
  std::string status_json(const StatusViewer &viewer = {}) const;
  // What an admin session gets: status_json built at most once per period for each kind of
  // viewer (all jobs, or one uid's own), and again at once after a change an admin makes
  // (budget, PrivateData, job owners) or a node connects or goes. So a flood of status
  // requests costs a copy each, not a walk over every node (issue 11); "now" says when it
  // was built.
  const std::string &status_for(const StatusViewer &viewer);
  // How many times status_for built the status (for tests and the bench).
  std::uint64_t status_builds() const { return status_builds_; }

  // The controller's state in Prometheus' text exposition format (version 0.0.4), for
  // node_exporter's textfile collector (MetricsFile= of powergrad.conf, service_metrics.cpp):
  // the figures of status_json under powergrad_ names in base units (watts, joules,
  // seconds; counters end in _total), every node and running job labelled. Unknown values
  // are left out rather than written as NaN.
  std::string metrics_text() const;

  // The owner of every job slurmctld knows (job id -> uid), refreshed by the host every
  // period; jobs missing here are shown to those who see all jobs only.
  void set_job_owners(std::unordered_map<std::uint32_t, std::uint32_t> owners);
  // PrivateData=jobs may change with `scontrol reconfigure`: the host refreshes it too.
  void set_private_jobs(bool on) {
    if (settings_.private_jobs != on) status_cache_.clear();
    settings_.private_jobs = on;
  }
  bool private_jobs() const { return settings_.private_jobs; }
  // A changed powergrad.conf that `scontrol reconfigure` could not apply ("FILE:LINE:
  // problem"; "" when the file in force is the one on disk): status shows it as
  // "config_refused", and the table says the configuration in force stays.
  void set_config_refused(std::string why) {
    if (why != config_refused_) status_cache_.clear();
    config_refused_ = std::move(why);
  }

  const ClusterController &controller() const { return controller_; }
  const JobPowerLedger &ledger() const { return ledger_; }
  // The admin's run-time budget in force (restored or set since start), if any.
  const std::optional<RuntimeBudget> &runtime_budget() const { return runtime_budget_; }
  std::uint64_t periods() const { return periods_; }
  // Grants sent between periods by release_confirmed(), and its steps between periods (for
  // tests; "loop" in status).
  std::uint64_t released_grants() const { return released_grants_; }
  std::uint64_t early_steps() const { return early_steps_; }
  // The grants of the last step (a period's, or an early step's), one per node in
  // configuration order: what was sent to the nodes with a session (for the bench).
  const std::vector<GrantMessage> &last_step_grants() const { return step_grants_; }

 private:
  // Sends grants to the nodes' sessions, counting sent and failed ones.
  void send_grants(const std::vector<GrantMessage> &grants);
  struct NodeExtra {
    double gradient = 0.0;  // mean speed-up per watt of the last report's valid estimates
    bool gradient_known = false;
    std::vector<std::uint32_t> jobs;
    double lease_expires_at_s = 0.0;
    bool lease_ours = false;
    // What the node said it can do (NODE_CAPS); unset: its agent predates the message.
    std::optional<proto::NodeCaps> caps;
    // Where the ledger keeps the node's last report (JobPowerLedger::on_report's hint).
    std::size_t ledger_slot = JobPowerLedger::kNoSlot;
  };

  void on_message(const proto::ControllerEvent &e);
  void apply_schedule(double wall_s);
  void restore_budget();
  std::optional<double> scheduled_now(double wall_s) const;
  void log(ServiceLogLevel level, const std::string &msg) const;
  // Logs msg unless events of `kind` are being summarised (log_summary.hpp).
  void log_peer_event(ServiceLogLevel level, const std::string &kind, const std::string &msg);
  void flush_peer_log();
  void log_node_event(ServiceLogLevel level, const std::string &kind, const std::string &msg);

  ServiceSettings settings_;
  ClusterController controller_;
  proto::ControllerEndpoint &endpoint_;
  ServiceClock &clock_;
  ServiceLog log_;
  JobPowerLedger &ledger_;
  // The grants of the last step, sent; kept so that each period reuses its memory.
  std::vector<GrantMessage> step_grants_;
  std::vector<NodeExtra> extra_;  // by the controller's node index
  std::optional<double> last_scheduled_w_;
  std::optional<RuntimeBudget> runtime_budget_;  // in force and saved
  std::string budget_origin_ = "config";
  double next_period_mono_s_ = -1e300;
  std::uint64_t periods_ = 0;
  // The control loop's own record, for status ("loop") and the load benchmark: how long a
  // period's work took (allocation, grants sent, job samples), and how many periods began
  // more than half a period late.
  double step_last_s_ = 0.0, step_max_s_ = 0.0, step_sum_s_ = 0.0;
  std::uint64_t late_periods_ = 0;
  // Whether a report confirmed lower caps since the last period or release_confirmed();
  // when release_confirmed() last ran (monotonic).
  bool slack_freed_ = false;
  // Whether a report showed caps above everything granted to its node since the last step.
  bool step_early_ = false;
  double last_release_mono_s_ = -1e300;
  std::uint64_t released_grants_ = 0, early_steps_ = 0;
  // Counters for metrics_text: grants sent, budget changes (run-time, schedule, restored),
  // connections refused before a session (by the code's name), grants that could not be
  // sent.
  std::uint64_t grants_sent_ = 0, grant_failures_ = 0, budget_changes_ = 0;
  std::map<std::string, std::uint64_t> refused_by_reason_;
  std::string config_refused_;
  // status_for's copies of this period: key ~0 for viewers who see every job, else the uid.
  std::map<std::uint64_t, std::string> status_cache_;
  std::uint64_t status_builds_ = 0;
  std::unordered_map<std::string, std::string> last_report_error_;
  // Nodes that reported but are in no group, and when they last did (wall clock).
  std::map<std::string, double> unmanaged_seen_;
  std::unordered_map<std::uint32_t, std::uint32_t> job_owners_;
  // Lines peers can cause at will, summarised per kind every 10 s.
  LogSummary peer_log_{10.0};
  // Node events, routine one by one (a node connects, goes, a grant cannot be sent to a node
  // that just went) but by the thousand at once when many nodes go together: the first 20
  // of a kind are logged in full, the rest counted until the kind is quiet for 10 s.
  LogSummary node_log_{10.0, 256, 20};
};

}  // namespace powergrad
