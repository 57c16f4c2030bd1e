// Per-job workload specs for counters=emulated (tests and demos on machines without
// hardware counters). The file named by the plugin's emulate= argument holds one line per
// job:
//   # comment
//   12 memory_share=0.2,busy_cpus=2
//   13 memory_share=0.8,busy_cpus=1,zone=intel-rapl:1
//   *  memory_share=0.3                 (any job not listed)
// The spec is hardware/emulated_counter_source.hpp's workload syntax. The agent reads the
// file again when a job it has not seen starts, so a test may append lines before
// submitting.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace powergrad {

struct EmulationSpecs {
  std::map<std::uint32_t, std::string> by_job;
  std::optional<std::string> fallback;  // the "*" line
  // The spec for `job_id`: its own line, else the fallback, else nullopt.
  std::optional<std::string> find(std::uint32_t job_id) const;
};

struct EmulationSpecsParse {
  EmulationSpecs specs;
  std::string error;  // "" on success; otherwise "line N: ..."
  bool ok() const { return error.empty(); }
};

// Every spec is checked with parse_emulated_workload; a bad line refuses the whole file.
EmulationSpecsParse parse_emulation_specs(std::string_view text);

}  // namespace powergrad
