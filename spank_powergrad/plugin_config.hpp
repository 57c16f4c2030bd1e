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
};

struct ConfigParse {
  PluginConfig config;
  std::vector<std::string> errors;  // empty on success; one message per bad argument
  bool ok() const { return errors.empty(); }
};

ConfigParse parse_plugin_args(const std::vector<std::string> &args);

// The keys parse_plugin_args knows, comma-separated, for messages and docs.
const char *plugin_arg_keys();

}  // namespace powergrad
