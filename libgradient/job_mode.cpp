#include "libgradient/job_mode.hpp"

#include <algorithm>
#include <cctype>

namespace powergrad {

const char *to_string(JobMode mode) {
  switch (mode) {
    case JobMode::latency:
      return "latency";
    case JobMode::throughput:
      return "throughput";
    case JobMode::monitor:
      return "monitor";
    case JobMode::off:
      return "off";
  }
  return "off";
}

std::optional<JobMode> job_mode_from_name(std::string_view name) {
  for (JobMode m : {JobMode::latency, JobMode::throughput, JobMode::monitor, JobMode::off})
    if (name == to_string(m)) return m;
  return std::nullopt;
}

ModeParse parse_job_mode(const char *value, JobMode default_mode) {
  ModeParse out;
  if (value == nullptr || *value == '\0' || std::string_view(value) == "(null)") {
    out.mode = default_mode;
    return out;
  }
  std::string v(value);
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (auto m = job_mode_from_name(v)) {
    out.mode = m;
  } else if (v == "no" || v == "0") {
    out.mode = JobMode::off;
  } else if (v == "on" || v == "yes" || v == "1") {
    out.mode = default_mode;
  } else {
    std::string shown(value);
    if (shown.size() > 64) shown = shown.substr(0, 64) + "...";
    out.error =
        "invalid --power-aware mode '" + shown + "' (choose one of " + job_mode_choices() + ")";
  }
  return out;
}

const char *job_mode_choices() { return "latency, throughput, monitor, off"; }

}  // namespace powergrad
