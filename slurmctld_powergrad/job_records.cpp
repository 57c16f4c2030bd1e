#include "slurmctld_powergrad/job_records.hpp"

#include "jobreport/record.hpp"
#include "spank_powergrad/power_aware_mode.hpp"

namespace powergrad {

std::optional<std::string> updated_admin_comment(const JobView &job) {
  if (job.mode.empty()) return std::nullopt;
  const ModeParse m = parse_power_aware_mode(job.mode.c_str());
  if (m.mode && *m.mode == PowerAwareMode::off) return std::nullopt;
  RecordFields f;
  f.emplace_back("v", std::to_string(kRecordVersion));
  // A value no client of ours would send is kept visible rather than guessed at.
  f.emplace_back("mode", m.mode ? mode_name(*m.mode) : "invalid");
  f.emplace_back("nodes", job.nodes.empty() ? "none" : job.nodes);
  std::string comment = merge_record_into_comment(job.admin_comment, format_record(f));
  if (comment == job.admin_comment) return std::nullopt;
  return comment;
}

}  // namespace powergrad
