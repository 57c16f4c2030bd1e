// What the controller writes into a power-aware job's AdminComment. Pure C++: the plugin
// hands in plain copies of job state, so this is tested without slurmctld.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "jobreport/record.hpp"
#include "controller/job_power.hpp"

namespace powergrad {

struct JobView {
  uint32_t job_id = 0;
  std::string mode;           // POWERGRAD value from the job's spank environment
  std::string nodes;          // hostlist expression
  std::string admin_comment;  // as it is now
  std::optional<JobFigures> figures;  // measured so far, if any node reported the job
};

// The record's fields for the job (v, mode, nodes, then the measured figures that are
// known: energy_j, avg_w, cap_min_w, cap_mean_w, cap_max_w, gradient, counters).
RecordFields job_record_fields(const JobView &job);

// The AdminComment the job should have, or nullopt when it already has it or the job is
// not power-aware (no mode, or mode "off").
std::optional<std::string> updated_admin_comment(const JobView &job);

}  // namespace powergrad
