// ReportPhase: an agent's report moves to just before the controller's step, read off the
// grants' arrival times; grants that are not on one period move nothing.
#include <cmath>
#include <random>
#include <set>
#include <string>

// Check after the standard headers: its fail() macro breaks the iostream headers.
#include <check.h>

#include "protocol/report_phase.hpp"
#include "tests/unit/check_util.hpp"

using powergrad::proto::ReportPhase;

namespace {

// The distance of a and b on a circle of length p.
double circ(double a, double b, double p) {
  double d = std::fmod(std::fabs(a - b), p);
  return std::min(d, p - d);
}

// Runs an agent whose period starts at `start` against grants at step + k x ctl_period (+
// jitter), for `periods` of its periods; returns the phase of its last report in [0, p).
struct Run {
  double last_report = 0;
  double min_interval = 1e9, max_interval = 0;
  int moves = 0;
};
Run run_agent(ReportPhase &rp, double p, double start, double step, double ctl_period, int periods,
              double jitter, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> j(0, jitter);
  Run r;
  double report = start, next_grant = step;
  for (int k = 0; k < periods; ++k) {
    // Grants that arrived before this report.
    while (next_grant < report) {
      rp.on_grant(next_grant + j(rng));
      next_grant += ctl_period;
    }
    const double planned = report + p;
    const double moved = rp.next(planned, report);
    if (moved != planned) ++r.moves;
    r.min_interval = std::min(r.min_interval, moved - report);
    r.max_interval = std::max(r.max_interval, moved - report);
    report = moved;
  }
  r.last_report = std::fmod(report, p);
  return r;
}

}  // namespace

START_TEST(no_grants_no_move) {
  ReportPhase rp(1.0, "n1");
  ck_assert(!rp.aligned());
  ck_assert_double_eq(rp.next(12.345, 12.0), 12.345);
  // Four grants on one phase are not yet a quorum.
  for (int k = 0; k < 4; ++k) rp.on_grant(100.4 + k);
  ck_assert(!rp.aligned());
  ck_assert_double_eq(rp.next(104.9, 104.0), 104.9);
  rp.on_grant(104.4);
  ck_assert(rp.aligned());
  ck_assert_double_lt(circ(rp.step_phase_s(), 0.4, 1.0), 1e-9);
}
END_TEST

START_TEST(report_moves_before_the_step) {
  for (double start : {0.05, 0.3, 0.5, 0.62, 0.95}) {
    ReportPhase rp(1.0, "node" + std::to_string(static_cast<int>(start * 100)));
    const double lead = rp.lead_s();
    ck_assert(lead >= ReportPhase::kLeadMin - 1e-12 && lead <= ReportPhase::kLeadMax + 1e-12);
    // The controller steps at 0.7 (mod 1); its grants arrive up to 20 ms after.
    const Run r = run_agent(rp, 1.0, 1000.0 + start, 1000.7, 1.0, 20, 0.02, 7);
    ck_assert(rp.aligned());
    // Within the dead band of its target, a little before the step (after the grants'
    // delay is counted into the step's phase).
    ck_assert_double_lt(circ(r.last_report, 0.7 + 0.01 - lead, 1.0),
                        ReportPhase::kDeadband + 0.011);
    // No period shorter or longer than the largest shift allows.
    ck_assert_double_ge(r.min_interval, 1.0 - ReportPhase::kMaxShift - 1e-9);
    ck_assert_double_le(r.max_interval, 1.0 + ReportPhase::kMaxShift + 1e-9);
  }
}
END_TEST

START_TEST(once_aligned_it_stays) {
  ReportPhase rp(1.0, "n7");
  run_agent(rp, 1.0, 50.2, 50.5, 1.0, 20, 0.01, 3);
  ck_assert(rp.aligned());
  // Further periods: no more moves (the dead band absorbs the grants' jitter).
  const Run more = run_agent(rp, 1.0, std::fmod(rp.step_phase_s() - rp.lead_s() + 1.0, 1.0) + 70,
                             70.5, 1.0, 30, 0.01, 4);
  ck_assert_int_eq(more.moves, 0);
}
END_TEST

START_TEST(grants_out_of_turn_do_not_move_the_phase) {
  ReportPhase rp(1.0, "n2");
  // Three of every eight grants come at odd times (a budget change, say).
  for (int k = 0; k < 40; ++k) {
    rp.on_grant(200.0 + k + 0.25);
    if (k % 3 == 0) rp.on_grant(200.0 + k + 0.25 + 0.1 + 0.13 * (k % 5));
  }
  ck_assert(rp.aligned());
  ck_assert_double_lt(circ(rp.step_phase_s(), 0.25, 1.0), 1e-9);
}
END_TEST

START_TEST(another_period_moves_nothing) {
  // The controller's period is 0.7 s, the agent's 1 s: the grants' phases spread.
  ReportPhase rp(1.0, "n3");
  const Run r = run_agent(rp, 1.0, 10.3, 10.0, 0.7, 40, 0.0, 5);
  ck_assert(!rp.aligned());
  ck_assert_int_eq(r.moves, 0);
  // Twice as fast: two phases, neither a quorum.
  ReportPhase rp2(1.0, "n3");
  const Run r2 = run_agent(rp2, 1.0, 10.3, 10.0, 0.5, 40, 0.0, 5);
  ck_assert(!rp2.aligned());
  ck_assert_int_eq(r2.moves, 0);
}
END_TEST

START_TEST(phase_wraps_around_zero) {
  ReportPhase rp(2.0, "n4");
  // Grants at 1.99 .. 2.01 (mod 2): the phase is near 0, not near 1.
  const double at[] = {1.99, 2.005, 1.995, 2.01, 1.998, 2.002, 1.992, 2.0};
  for (int k = 0; k < 8; ++k) rp.on_grant(40.0 + 2.0 * k + at[k]);
  ck_assert(rp.aligned());
  ck_assert_double_lt(circ(rp.step_phase_s(), 0.0, 2.0), 0.01);
  // The target (lead before it) is reached through the short way round.
  const double planned = 60.0 + 1.0;  // phase 1.0: as far as can be
  const double moved = rp.next(planned, 59.0);
  ck_assert_double_le(std::fabs(moved - planned), ReportPhase::kMaxShift * 2.0 + 1e-9);
}
END_TEST

START_TEST(never_before_now_and_bad_input_ignored) {
  ReportPhase rp(1.0, "n5");
  for (int k = 0; k < 8; ++k) rp.on_grant(10.0 + k + 0.9);
  ck_assert(rp.aligned());
  rp.on_grant(NAN);
  rp.on_grant(INFINITY);
  ck_assert(rp.aligned());
  // Planned at phase 0.2, target 0.9 - lead: moved earlier, but not before now.
  ck_assert_double_ge(rp.next(20.2, 20.15), 20.15);
  ck_assert(std::isnan(rp.next(NAN, 20.0)));
  // A period that is not a positive number falls back to 1 s.
  ReportPhase bad(-3, "x");
  ck_assert(bad.lead_s() >= ReportPhase::kLeadMin && bad.lead_s() <= ReportPhase::kLeadMax);
}
END_TEST

START_TEST(leads_spread_over_nodes) {
  std::set<long> buckets;
  double lo = 1, hi = 0;
  for (int i = 0; i < 1000; ++i) {
    ReportPhase rp(1.0, "cn" + std::to_string(i));
    lo = std::min(lo, rp.lead_s());
    hi = std::max(hi, rp.lead_s());
    buckets.insert(std::lround(rp.lead_s() * 100));
    // The same name, the same lead.
    ck_assert_double_eq(ReportPhase(1.0, "cn" + std::to_string(i)).lead_s(), rp.lead_s());
  }
  ck_assert_double_ge(lo, ReportPhase::kLeadMin);
  ck_assert_double_le(hi, ReportPhase::kLeadMax);
  ck_assert_double_lt(lo, ReportPhase::kLeadMin + 0.01);
  ck_assert_double_gt(hi, ReportPhase::kLeadMax - 0.01);
  ck_assert_uint_ge(buckets.size(), 20);  // every 10 ms step of the range is used
}
END_TEST

int main() {
  Suite *s = suite_create("report_phase");
  TCase *tc = tcase_create("report_phase");
  tcase_add_test(tc, no_grants_no_move);
  tcase_add_test(tc, report_moves_before_the_step);
  tcase_add_test(tc, once_aligned_it_stays);
  tcase_add_test(tc, grants_out_of_turn_do_not_move_the_phase);
  tcase_add_test(tc, another_period_moves_nothing);
  tcase_add_test(tc, phase_wraps_around_zero);
  tcase_add_test(tc, never_before_now_and_bad_input_ignored);
  tcase_add_test(tc, leads_spread_over_nodes);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
