#include "controller/job_records.hpp"

#include <cmath>
#include <cstdio>
#include <iterator>

#include "jobreport/record.hpp"
#include "libgradient/job_mode.hpp"

namespace powergrad {

namespace {

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string significant(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

RecordFields job_record_fields(const JobView &job) {
  RecordFields f;
  const ModeParse m = parse_job_mode(job.mode.c_str());
  f.emplace_back("v", std::to_string(kRecordVersion));
  // A value no client of ours would send is kept visible rather than guessed at.
  f.emplace_back("mode", m.mode ? to_string(*m.mode) : "invalid");
  f.emplace_back("nodes", job.nodes.empty() ? "none" : job.nodes);
  if (job.figures && job.figures->samples > 0) {
    const JobFigures &x = *job.figures;
    if (x.seconds > 0.0) {
      f.emplace_back("energy_j", fixed(x.energy_j, 0));
      if (std::isfinite(x.avg_w)) f.emplace_back("avg_w", fixed(x.avg_w, 1));
    }
    if (std::isfinite(x.cap_min_w)) f.emplace_back("cap_min_w", fixed(x.cap_min_w, 1));
    if (std::isfinite(x.cap_mean_w)) f.emplace_back("cap_mean_w", fixed(x.cap_mean_w, 1));
    if (std::isfinite(x.cap_max_w)) f.emplace_back("cap_max_w", fixed(x.cap_max_w, 1));
    if (std::isfinite(x.gradient)) f.emplace_back("gradient", significant(x.gradient));
    if (!x.counters.empty()) f.emplace_back("counters", x.counters);
  }
  return f;
}

std::optional<std::string> updated_admin_comment(const JobView &job) {
  if (job.mode.empty()) return std::nullopt;
  const ModeParse m = parse_job_mode(job.mode.c_str());
  if (m.mode && *m.mode == JobMode::off) return std::nullopt;
  std::string comment = merge_record_into_comment(job.admin_comment, format_record(job_record_fields(job)));
  if (comment == job.admin_comment) return std::nullopt;
  return comment;
}

bool RecordRefresh::due(std::uint32_t job_id, std::string_view admin_comment, double now_s) const {
  if (admin_comment.find(kRecordPrefix) == std::string_view::npos) return true;
  const auto it = checked_at_.find(job_id);
  return it == checked_at_.end() || !(now_s - it->second < interval_s_);
}

void RecordRefresh::keep_only(const std::set<std::uint32_t> &running) {
  for (auto it = checked_at_.begin(); it != checked_at_.end();)
    it = running.count(it->first) ? std::next(it) : checked_at_.erase(it);
}

bool RecordPlan::add(const JobView &job) {
  std::optional<std::string> c = updated_admin_comment(job);
  if (!c) return false;
  auto [it, added] = plans_.insert_or_assign(job.job_id, Planned{job.admin_comment, std::move(*c)});
  (void)it;
  if (added) ids_.push_back(job.job_id);
  return true;
}

const std::string *RecordPlan::planned(std::uint32_t job_id, std::string_view current) const {
  const auto it = plans_.find(job_id);
  return it != plans_.end() && it->second.seen == current ? &it->second.comment : nullptr;
}

}  // namespace powergrad
