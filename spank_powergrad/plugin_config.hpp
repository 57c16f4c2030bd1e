// Arguments of the SPANK plugin, as an admin writes them in plugstack.conf:
//   required /usr/lib/x86_64-linux-gnu/slurm-wlm/spank_powergrad.so default_mode=latency
// Parsed by one function where an unknown key or a bad value is an error naming it, so a
// typo refuses to load instead of silently running with defaults.
#pragma once

#include <string>
#include <vector>

#include "spank_powergrad/power_aware_mode.hpp"

namespace powergrad {

enum class LogLevel { quiet, info, debug };

struct PluginConfig {
  PowerAwareMode default_mode = kDefaultPowerAwareMode;  // default_mode=
  LogLevel log_level = LogLevel::info;                   // log_level=
  // state_dir=: the node agent's root-only folder (step socket, saved caps). May hold %n,
  // the node's name (several slurmd on one host need one folder each). /run: what is
  // saved there must outlive a slurmd crash, not a reboot (RAPL settings do not either).
  std::string state_dir = "/run/powergrad";
  double period_s = 1.0;  // period=: the node agent's control period in seconds
};

// `value` with %n replaced by `node_name` and %% by %.
std::string expand_node_tokens(const std::string &value, const std::string &node_name);

struct ConfigParse {
  PluginConfig config;
  std::vector<std::string> errors;  // empty on success; one message per bad argument
  bool ok() const { return errors.empty(); }
};

ConfigParse parse_plugin_args(const std::vector<std::string> &args);

// The keys parse_plugin_args knows, comma-separated, for messages and docs.
const char *plugin_arg_keys();

}  // namespace powergrad
