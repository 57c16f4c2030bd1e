#include "spank_powergrad/power_aware_mode.hpp"

#include <algorithm>
#include <cctype>

namespace powergrad {

namespace {

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

ModeParse parse_power_aware_mode(const char *value, PowerAwareMode default_mode) {
  ModeParse out;
  if (value == nullptr || *value == '\0' || std::string(value) == "(null)") {
    out.mode = default_mode;
    return out;
  }
  const std::string v = lowercase(value);
  if (v == "latency") {
    out.mode = PowerAwareMode::latency;
  } else if (v == "throughput") {
    out.mode = PowerAwareMode::throughput;
  } else if (v == "monitor") {
    out.mode = PowerAwareMode::monitor;
  } else if (v == "off" || v == "no" || v == "0") {
    out.mode = PowerAwareMode::off;
  } else if (v == "on" || v == "yes" || v == "1") {
    out.mode = default_mode;
  } else {
    std::string shown(value);
    if (shown.size() > 64) shown = shown.substr(0, 64) + "...";
    out.error = "invalid --power-aware mode '" + shown + "' (choose one of " + mode_choices() + ")";
  }
  return out;
}

const char *mode_name(PowerAwareMode mode) {
  switch (mode) {
    case PowerAwareMode::off:
      return "off";
    case PowerAwareMode::latency:
      return "latency";
    case PowerAwareMode::throughput:
      return "throughput";
    case PowerAwareMode::monitor:
      return "monitor";
  }
  return "off";
}

const char *mode_choices() { return "latency, throughput, monitor, off"; }

}  // namespace powergrad
