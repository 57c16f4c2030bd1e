// When a node sends its REPORT within its period: just before the controller's step.
//
// The controller steps on a fixed grid (one period after the last was due) and sends its
// grants right after each step. A node agent that reports at a phase of its own has its
// report used on average half a period later, and up to a whole period plus the step's
// duration later (at 10,000 nodes the p99 report-to-grant latency was 1,012 ms with a 1 s
// period; with this, 686 ms, p50 316 ms: bench/load_test.sh). ReportPhase moves the agent's period
// so that its report leaves a little before the controller's next step: the controller then decides
// on data a fraction of a period old, and the grant that answers a report follows it within that
// fraction.
//
// No wire change: the controller's grid is read off the arrival times of its grants. The
// last `kWindow` arrivals are folded onto the agent's period; when at least `kQuorum` of them
// fall within `kCluster` x period of one another, that cluster's phase is the controller's
// step (grants sent out of turn, e.g. after an admin's budget change, do not form one; nor do
// the grants of a controller whose period differs from the agent's, so then nothing moves).
// The report is aimed `lead` before that phase; each node's lead is drawn from its name in
// [kLeadMin, kLeadMax] x period, so that ten thousand nodes do not report in the same
// millisecond. A period moves by at most kMaxShift x period at a time and not at all when it
// is within kDeadband of its target, so the agent's own measurements see only one slightly
// shorter or longer interval when it aligns. No clock of its own: callers pass their
// monotonic time in seconds (tests step through it without sleeping).
#pragma once

#include <array>
#include <cstddef>
#include <string>

namespace powergrad::proto {

class ReportPhase {
 public:
  static constexpr std::size_t kWindow = 8;
  static constexpr std::size_t kQuorum = 5;
  static constexpr double kCluster = 0.05;
  static constexpr double kLeadMin = 0.10, kLeadMax = 0.50;
  static constexpr double kMaxShift = 0.25;
  static constexpr double kDeadband = 0.03;

  // period_s: the agent's period (> 0). node: the node's name, which picks its lead.
  ReportPhase(double period_s, const std::string &node);

  // A grant arrived at monotonic time t_s.
  void on_grant(double t_s);

  // The time of the next period's report, given the one the agent planned (one period
  // after the last): moved towards `lead` before the controller's step when the grid is
  // known, else `planned_s` unchanged. now_s: the current time; the result is never before
  // it.
  double next(double planned_s, double now_s);

  // Whether the controller's grid is known (a quorum of grants on one phase).
  bool aligned() const { return aligned_; }
  // The controller's step phase in [0, period) on the caller's clock, valid when aligned().
  double step_phase_s() const { return step_phase_s_; }
  double lead_s() const { return lead_s_; }

 private:
  void refresh();

  double period_s_;
  double lead_s_;
  std::array<double, kWindow> arrivals_{};  // phases in [0, period), newest at (head_ - 1)
  std::size_t count_ = 0, head_ = 0;
  bool aligned_ = false;
  double step_phase_s_ = 0.0;
};

}  // namespace powergrad::proto
