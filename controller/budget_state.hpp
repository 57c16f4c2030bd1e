// A budget set at run time (`powergrad set-budget`) outlives a slurmctld restart: the
// controller saves it in a state file (StateDir/budget, see doc/powergrad.conf.5) together
// with powergrad.conf's Budget at the time (and the budget schedule's value then, if a
// schedule is configured). At the next start:
//   - no state file: powergrad.conf's Budget (or the schedule) applies, as always;
//   - powergrad.conf's Budget differs from the one saved: the file wins, the run-time
//     budget is dropped (and its state file removed), with a log line;
//   - a schedule is configured and its value now differs from its value when the budget
//     was set: the schedule has moved on (a budget set by an admin holds only until the
//     schedule's next change, as while running), so the run-time budget is dropped;
//   - otherwise the run-time budget is applied again, with a log line naming who set it
//     and when.
// The file is also removed when the schedule replaces a run-time budget while running.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace powergrad {

struct RuntimeBudget {
  double budget_w = 0.0;         // set by the admin
  double config_budget_w = 0.0;  // powergrad.conf's Budget when it was set
  std::uint32_t uid = 0;         // who set it
  double set_at_s = 0.0;         // when (seconds since the epoch)
  std::optional<double> scheduled_w;  // the schedule's value then; none without a schedule
};

// The state file's text: "v=1 budget_w=450 config_budget_w=800 uid=0 set_at=1764000000
// scheduled_w=600" (scheduled_w only with a schedule), one line.
std::string format_runtime_budget(const RuntimeBudget &b);
// nullopt (with *error naming the problem) for anything else.
std::optional<RuntimeBudget> parse_runtime_budget(const std::string &text, std::string *error);

struct BudgetRestore {
  enum class Action { none, apply, drop };
  Action action = Action::none;
  double budget_w = 0.0;  // for apply
  std::string message;    // the log line (empty for none)
};

// The decision above. config_budget_w: powergrad.conf's Budget now; scheduled_now_w: the
// schedule's value now (nullopt without a schedule, or when none of its entries applies).
// has_schedule: whether a schedule is configured.
BudgetRestore decide_budget_restore(const std::optional<RuntimeBudget> &saved,
                                    double config_budget_w, bool has_schedule,
                                    std::optional<double> scheduled_now_w);

// Reads / writes (atomically, mode 0644, creating the folder) / removes the state file.
// read: nullopt if absent (error empty) or unreadable/malformed (*error says why).
std::optional<RuntimeBudget> read_runtime_budget(const std::string &path, std::string *error);
std::string write_runtime_budget(const std::string &path, const RuntimeBudget &b);
std::string remove_runtime_budget(const std::string &path);

// "2026-11-25 14:03:07" in local time.
std::string local_time_text(double epoch_s);

}  // namespace powergrad
