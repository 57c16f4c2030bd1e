// Arguments of the SPANK plugin, as an admin writes them in plugstack.conf:
//   required /usr/lib/x86_64-linux-gnu/slurm-wlm/spank_powergrad.so default_mode=latency
// Parsed by one function where an unknown key or a bad value is an error naming it, so a
// typo refuses to load instead of silently running with defaults.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "libgradient/job_mode.hpp"

namespace powergrad {

enum class LogLevel { quiet, info, debug };

struct PluginConfig {
  // default_mode=: the mode of jobs that do not give --power-aware (off: they are plain
  // jobs; latency/throughput/monitor: every job is power-aware unless --power-aware=off).
  JobMode default_mode = JobMode::off;
  LogLevel log_level = LogLevel::info;                   // log_level=
  // state_dir=: the node agent's root-only folder (step socket, saved caps). May hold %n,
  // the node's name (several slurmd on one host need one folder each). /run: what is
  // saved there must outlive a slurmd crash, not a reboot (RAPL settings do not either).
  std::string state_dir = "/run/powergrad";
  double period_s = 1.0;  // period=: the node agent's control period in seconds
  // sysfs_root= (may hold %n) and procfs_root=: where powercap/cpufreq and task PIDs are
  // read. Tests point them at fake trees.
  std::string sysfs_root = "/sys";
  std::string procfs_root = "/proc";
  // grant=WATTS: static node grant until a controller grants one; unset: the sum of the
  // domains' maxima (no extra limit). floor=WATTS: the lease's fallback floor; unset: the
  // sum of the domains' minima.
  std::optional<double> grant_w;
  std::optional<double> floor_w;
  // counters=auto|perf|software|emulated. auto: perf with hardware events, software events
  // where the PMU is missing. emulated only when asked: its numbers are made up.
  std::string counters = "auto";
  // emulate=PATH (may hold %n): per-job workload specs for counters=emulated, lines
  // "JOBID memory_share=..,busy_cpus=..". Required with counters=emulated, refused otherwise.
  std::string emulate_path;
  // controller=HOST:PORT ([ADDRESS]:PORT for IPv6) or none: the cluster controller the node
  // agent reports to and takes its grants from. Empty (not given): the slurmctld host from
  // slurm.conf (SlurmctldHost) at kDefaultControllerPort. none: the static grant only.
  std::string controller;
  // low_cap_knee=SHARE and low_cap_slowdown=PER_TDP: below low_cap_knee x TDP a domain's
  // RAPL cap slows it by an extra low_cap_slowdown per TDP of cap below the knee (clock
  // modulation; GradientModelParams), which the gain curves then carry. Defaults 0.5 and 1;
  // low_cap_knee=0 leaves it out.
  double low_cap_knee = 0.5;
  double low_cap_slowdown = 1.0;
  // load_spread=K: how far the latency curves count the load's spread from period to period
  // (GradientModelParams::load_spread_k, with hardware counters only). Default 1; 0: the
  // mean load only.
  double load_spread = 1.0;
  // top_clock_busy=SHARE: with hardware counters, a period in which a job busy at least
  // SHARE of the time runs on a package drawing clearly less than its cap shows the clock
  // the hardware gives it unhindered; the highest such clock, where above the generic
  // model's, becomes its gain curve's top (GradientModelParams::top_clock_min_busy).
  // Default 0.6; off (stored as 2): the generic model's top only.
  double top_clock_busy = 0.6;
  // plain_beside=WEIGHT: the weight, from 0 to 1, at which plain jobs on a package shared
  // with power-aware jobs count in that package's gain, modelled as latency services
  // (GradientModelParams::plain_beside_weight). Default 0.5; off (0): not valued.
  double plain_beside = 0.5;
};

constexpr const char *kDefaultControllerPort = "6830";

// "host:port" -> host and port ("[v6]:port" too). Returns "" or why not.
std::string split_host_port(const std::string &text, std::string &host, std::string &port);

// `value` with %n replaced by `node_name` and %% by %.
std::string expand_node_tokens(const std::string &value, const std::string &node_name);

// The same for a path root works in (state_dir, sysfs_root, emulate): nullopt, with *why,
// when the node name is not safe in a path (node_name_problem) or the expanded path is not
// absolute or holds a ".." component.
std::optional<std::string> expand_node_path(const std::string &value, const std::string &node_name,
                                            std::string *why);

struct ConfigParse {
  PluginConfig config;
  std::vector<std::string> errors;  // empty on success; one message per bad argument
  bool ok() const { return errors.empty(); }
};

ConfigParse parse_plugin_args(const std::vector<std::string> &args);

// The keys parse_plugin_args knows, comma-separated, for messages and docs.
const char *plugin_arg_keys();

}  // namespace powergrad
