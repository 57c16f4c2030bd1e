// What the controller writes into a power-aware job's AdminComment. Pure C++: the plugin
// hands in plain copies of job state, so this is tested without slurmctld.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/job_power.hpp"
#include "jobreport/record.hpp"

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

// When a running job's record is refreshed (RecordInterval= of powergrad.conf): its first
// within one control period of its start, then at most every interval while it runs. A job
// whose AdminComment holds no record of PowerGrad's (new, or an admin overwrote it) is due
// at once. The final record is written at the job's end by the end hook, whatever this says.
// Every write of a running job's record stores it under slurmctld's job write lock and
// marks slurmctld's jobs changed (squeue's "nothing changed" replies, the job state save),
// so a large cluster wants fewer of them than one per job and period.
class RecordRefresh {
 public:
  explicit RecordRefresh(double interval_s = 30.0) : interval_s_(interval_s) {}
  void set_interval(double interval_s) { interval_s_ = interval_s; }
  // Whether the job's record is to be checked at now_s (monotonic seconds).
  bool due(std::uint32_t job_id, std::string_view admin_comment, double now_s) const;
  // The job's record was checked (and written if it had changed) at now_s.
  void checked(std::uint32_t job_id, double now_s) { checked_at_[job_id] = now_s; }
  // Forgets the jobs that are no longer running.
  void keep_only(const std::set<std::uint32_t> &running);
  std::size_t size() const { return checked_at_.size(); }

 private:
  double interval_s_;
  std::unordered_map<std::uint32_t, double> checked_at_;
};

// One pass of the plugin's job records (once a control period): the comments are built
// from copies of the jobs, outside slurmctld's locks, and stored afterwards under its job
// write lock. Storing must not build them again there: that is each running job's figures
// and record (about 2.7 us a job here; bench_service's job_records_25k_ms), and the record
// of nearly every running job the pass checks has changed, since its energy grows.
class RecordPlan {
 public:
  // Plans job's new AdminComment if it should change; returns whether it should.
  bool add(const JobView &job);
  // The jobs planned, in the order added.
  const std::vector<std::uint32_t> &ids() const { return ids_; }
  // The comment planned for job_id, if its AdminComment is still the one the plan was made
  // from (current); nullptr otherwise (not planned, or changed meanwhile by another tool or
  // by the job's end: the caller builds it anew).
  const std::string *planned(std::uint32_t job_id, std::string_view current) const;

 private:
  struct Planned {
    std::string seen;  // the AdminComment it was built from
    std::string comment;
  };
  std::unordered_map<std::uint32_t, Planned> plans_;
  std::vector<std::uint32_t> ids_;
};

}  // namespace powergrad
