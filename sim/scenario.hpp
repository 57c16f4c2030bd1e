// Scenario files (YAML, see doc/scenarios.md) -> ClusterSpec.
#pragma once

#include <stdexcept>
#include <string>

#include "sim/spec.hpp"

namespace powergrad::sim {

// A scenario that cannot be used. what() is "FILE:LINE:COLUMN: KEY: problem" (line and
// column 1-based) when the problem is at a place in the file, "FILE: problem" otherwise.
class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and checks a scenario file. Throws ScenarioError.
ClusterSpec load_scenario(const std::string &path);
// The same from text; `name` stands for the file in messages.
ClusterSpec parse_scenario(const std::string &yaml_text, const std::string &name);

// Workload presets a scenario may start from (`like: bert`), by name.
const WorkloadSpec *workload_preset(const std::string &name);

}  // namespace powergrad::sim
