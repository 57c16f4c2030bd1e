// powergrad.conf: the controller's configuration, in a file next to slurm.conf.
//
//   # cluster budget and control timing
//   Budget=4000            # watts
//   ControlPeriod=1        # seconds
//   LeaseTime=5            # seconds a grant stays valid without renewal
//   Listen=0.0.0.0:6830    # where node agents and the powergrad command connect
//   AdminUsers=root,slurm  # who may change the budget (anyone may read status)
//   NodeFloor=80           # default watts every node is guaranteed
//   NodeMax=400            # default most a node can draw
//   IdleCap=60             # default cap of a node that runs no job (at most its floor)
//   PlainShare=usage       # nodes with plain jobs only: usage (draw up to the fair share) or even
//   BudgetSchedule=/etc/slurm/powergrad-budget.conf
//   StateDir=/var/spool/slurmctld/powergrad   # default: slurm.conf's StateSaveLocation/powergrad
//   SeriesDir=/var/spool/slurmctld/powergrad/series  # default: StateDir/series
//   SeriesKeep=1000        # per-job power series files kept (newest)
//   SeriesKeepDays=30      # and none older than this (0: no age limit)
//   Hysteresis=0.5         # watts move only for (1+H)/(1-H) times the marginal gain
//   HysteresisSettleTime=120  # seconds over which a node's new jobs grow into it
//   CurveSegments=0        # demand curve segments per node (0: by cluster size)
//   StepThreads=0          # threads of a control step (0: the CPUs, at most 4)
//   MetricsFile=/var/lib/prometheus/node-exporter/powergrad.prom  # Prometheus textfile
//   MetricsInterval=15     # seconds between rewrites of MetricsFile
//   RecordInterval=30      # seconds between refreshes of a running job's AdminComment record
//   Group=rowA Limit=8000
//   Group=rack1 Nodes=n[1-16] Limit=3000 Parent=rowA
//   Node=n[1-4] Floor=100 Max=500 IdleCap=80
//
// Managed nodes: the nodes in the groups' Nodes= lists; when no group lists nodes, every node
// of slurm.conf. Only managed nodes are in the budget; the controller leaves the others alone
// (their agents restore their admin's settings).
//
// One or more Key=Value words per line; '#' starts a comment. Keys are case-insensitive,
// as in slurm.conf. Node sets are Slurm hostlist expressions, expanded with Slurm's own
// hostlist API. Every error names the file, the line and the problem; the whole file is
// refused on any error (a controller never runs on half a configuration).
// doc/powergrad.conf.5 documents every key.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "libgradient/cluster_controller.hpp"

namespace powergrad {

struct ConfigGroup {
  std::string name;
  double limit_w = -1;             // < 0: no own limit
  std::string parent;              // "" : the cluster
  std::vector<std::string> nodes;  // expanded
  int line = 0;
};

struct ConfigNodeOverride {
  std::vector<std::string> nodes;  // expanded
  double floor_w = -1;             // < 0: default
  double max_w = -1;
  double idle_w = -1;  // < 0: default
  int line = 0;
};

struct ControllerFileConfig {
  std::string path;
  double budget_w = -1;  // required
  double period_s = 1.0;
  double lease_s = 5.0;
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 6830;
  std::vector<std::string> admin_users = {"root"};
  double node_floor_w = 50.0;
  double node_max_w = 500.0;
  double idle_cap_w = -1;  // < 0: each node's floor
  PlainShare plain_share = PlainShare::usage;
  std::string budget_schedule;  // "" : none
  std::string state_dir;        // "" : StateSaveLocation/powergrad
  std::string series_dir;       // "" : state dir/series
  std::size_t series_keep = 1000;
  double series_keep_days = 30;
  std::string metrics_file;         // "" : no Prometheus metrics file
  double metrics_interval_s = 15;   // how often it is rewritten
  double record_interval_s = 30;    // a running job's record refreshed at most this often
  double hysteresis = ClusterConfig{}.hysteresis;                    // in [0, 0.9)
  double hysteresis_settle_s = ClusterConfig{}.hysteresis_settle_s;  // in [0, 86400]
  std::size_t curve_segments = 0;   // ClusterConfig::curve_segments; 0: by cluster size
  unsigned step_threads = 0;        // ClusterConfig::step_threads; 0: by the CPUs
  std::vector<ConfigGroup> groups;
  std::vector<ConfigNodeOverride> node_overrides;
};

struct ConfigResult {
  std::optional<ControllerFileConfig> config;
  std::string error;  // "FILE:LINE: problem", or "FILE: problem"
};

// Parses the text of a configuration file; `path` is only used in messages.
ConfigResult parse_controller_config(const std::string &text, const std::string &path);
// Reads and parses the file.
ConfigResult load_controller_config(const std::string &path);

// PowerGrad's state folder (StateDir=, else STATE_SAVE_LOCATION/powergrad) and the folder
// of per-job series files (SeriesDir=, else the state folder's series/). "" if neither the
// key nor state_save_location is known.
std::string resolve_state_dir(const ControllerFileConfig &c, const std::string &state_save_location);
std::string resolve_series_dir(const ControllerFileConfig &c, const std::string &state_save_location);

// Expands a Slurm hostlist expression ("n[1-4,7]") into names; nullopt if malformed.
std::optional<std::vector<std::string>> expand_hostlist(const std::string &expr);

// The ClusterController configuration for the managed nodes among those slurmctld knows (in
// its order): groups from the file, each node's floor/max/idle cap from its Node= line or
// the defaults. Error (naming the node, group or line) if a group names an unknown node or a
// node twice, a Node= line names a node that is not managed, or the floors cannot fit in the
// budget or a group's limit. `unmanaged` lists slurm.conf's nodes outside the groups.
struct ClusterConfigResult {
  std::optional<ClusterConfig> config;
  std::vector<std::string> unmanaged;
  std::string error;
};
ClusterConfigResult build_cluster_config(const ControllerFileConfig &file,
                                         const std::vector<std::string> &slurm_nodes,
                                         uint64_t epoch);
// StepThreads=0 (ClusterConfig::step_threads): the CPUs this process may run on (its affinity
// mask), at most kAutoStepThreads; 0 if the mask cannot be read (the controller's own
// default, the hardware threads, then holds).
unsigned affinity_step_threads();

// A budget that follows the time of day or the calendar (renewable supply):
//   # HH:MM[:SS] WATTS         every day, local time
//   06:00 3000
//   12:00 5200
//   # or YYYY-MM-DDTHH:MM[:SS] WATTS   once, local time
//   2026-12-24T18:00 2500
// The budget at time t is the value of the latest entry at or before t (daily entries
// repeat; an absolute entry later than every daily one of that day wins until the next).
struct BudgetEntry {
  bool daily = true;
  long seconds = 0;  // daily: seconds since midnight; absolute: epoch seconds
  double watts = 0;
  int line = 0;
};

struct BudgetSchedule {
  std::vector<BudgetEntry> entries;
  // The scheduled budget at `epoch_s` (local time for daily entries), or nullopt if no
  // entry applies yet.
  std::optional<double> budget_at(long epoch_s) const;
};

struct ScheduleResult {
  std::optional<BudgetSchedule> schedule;
  std::string error;  // "FILE:LINE: problem"
};
ScheduleResult parse_budget_schedule(const std::string &text, const std::string &path);
ScheduleResult load_budget_schedule(const std::string &path);

// Everything the controller checks in its configuration before it runs, in its order and
// with its messages (the plugin at start and `powergrad check-config` use this alike): the
// file, the budget schedule it names, every AdminUsers name on this host, and, given the
// nodes slurmctld knows, the groups, node lines, floors and limits against them.
struct ConfigCheck {
  std::optional<ControllerFileConfig> file;
  std::optional<BudgetSchedule> schedule;  // when BudgetSchedule= is set
  std::vector<uid_t> admin_uids;           // AdminUsers, in order
  std::optional<ClusterConfig> cluster;    // when nodes were given
  std::vector<std::string> unmanaged;      // slurm.conf's nodes outside the groups
  std::string error;                       // the first problem; "" when all is well
  bool ok() const { return error.empty(); }
};
ConfigCheck check_controller_config(const std::string &path,
                                    const std::vector<std::string> *slurm_nodes, uint64_t epoch);

}  // namespace powergrad
