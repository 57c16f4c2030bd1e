// Gradient estimator v1 (counter model) and its per-job smoothing.
#include <check.h>

#include <cmath>
#include <limits>
#include <string>

#include "libgradient/estimator.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const PowerModel kModel{60.0, 205.0, 3.4e9, 1.0};

// One second of a job on one socket with the given memory-stall share.
CounterSample sample(double stall_share, double interval_s = 1.0, double cycles = 3e9) {
  CounterSample s;
  s.interval_s = interval_s;
  s.cycles = cycles;
  s.instructions = cycles * 1.5;
  s.stall_cycles = cycles * stall_share;
  s.ref_cycles = cycles;
  s.task_clock_s = interval_s;
  return s;
}

// g = (1 - s) / (3 (P - P0))
double expected(double stall_share, double power_w) {
  return (1.0 - stall_share) / (3.0 * (power_w - kModel.p0_w));
}

void assert_invalid(const GradientEstimate &e, const char *reason_part) {
  ck_assert(!e.valid);
  ck_assert(e.source == GradientSource::none);
  ck_assert_double_eq(e.confidence, 0.0);
  ck_assert_contains(e.reason, reason_part);
}

}  // namespace

START_TEST(counter_model_matches_closed_form) {
  for (double s : {0.0, 0.15, 0.5, 0.85}) {
    for (double p : {90.0, 150.0, 205.0}) {
      const GradientEstimate e = estimate_counter_gradient(sample(s), p, kModel);
      ck_assert(e.valid);
      ck_assert(e.source == GradientSource::counter_model);
      ck_assert(e.unit == GradientUnit::relative_speedup_per_w);
      ck_assert_double_eq_tol(e.value, expected(s, p), 1e-15);
      ck_assert(e.confidence > 0.9 && e.confidence <= 1.0);
      ck_assert_std_str_eq(e.reason, "");
    }
  }
  // A compute-bound job gains more per watt than a memory-bound one at the same power.
  const double resnet = estimate_counter_gradient(sample(0.15), 150.0, kModel).value;
  const double decode = estimate_counter_gradient(sample(0.8), 150.0, kModel).value;
  ck_assert(resnet > 4.0 * decode);
}
END_TEST

START_TEST(power_from_energy_unless_given) {
  CounterSample s = sample(0.2, 2.0);
  s.energy_j = 300.0;  // 150 W over 2 s
  const GradientEstimate from_energy = estimate_counter_gradient(s, std::nullopt, kModel);
  ck_assert(from_energy.valid);
  ck_assert_double_eq_tol(from_energy.value, expected(0.2, 150.0), 1e-15);
  const GradientEstimate given = estimate_counter_gradient(s, 100.0, kModel);
  ck_assert_double_eq_tol(given.value, expected(0.2, 100.0), 1e-15);
}
END_TEST

START_TEST(refuses_to_guess) {
  CounterSample software_only;
  software_only.interval_s = 1.0;
  software_only.task_clock_s = 0.9;
  software_only.energy_j = 150.0;
  assert_invalid(estimate_counter_gradient(software_only, 150.0, kModel), "no hardware counters");

  CounterSample no_stall = sample(0.2);
  no_stall.stall_cycles.reset();
  assert_invalid(estimate_counter_gradient(no_stall, 150.0, kModel), "memory-stall counter");
  CounterSample no_cycles = sample(0.2);
  no_cycles.cycles.reset();
  assert_invalid(estimate_counter_gradient(no_cycles, 150.0, kModel), "no cycle counter");

  assert_invalid(estimate_counter_gradient(sample(0.2, 1.0, 0.0), 150.0, kModel),
                 "no cycles counted");
  assert_invalid(estimate_counter_gradient(sample(0.2, 0.0), 150.0, kModel), "interval");
  assert_invalid(estimate_counter_gradient(sample(0.2, -1.0), 150.0, kModel), "interval");
  assert_invalid(estimate_counter_gradient(sample(0.2, kNaN), 150.0, kModel), "interval");
  assert_invalid(estimate_counter_gradient(sample(0.2, 1.0, kNaN), 150.0, kModel), "not finite");
  CounterSample negative = sample(0.2);
  negative.stall_cycles = -1.0;
  assert_invalid(estimate_counter_gradient(negative, 150.0, kModel), "negative");
  assert_invalid(estimate_counter_gradient(sample(1.2), 150.0, kModel), "exceed cycles");

  assert_invalid(estimate_counter_gradient(sample(0.2), std::nullopt, kModel), "no power reading");
  assert_invalid(estimate_counter_gradient(sample(0.2), kNaN, kModel), "not finite");
  assert_invalid(estimate_counter_gradient(sample(0.2), 60.0, kModel), "active floor");
  assert_invalid(estimate_counter_gradient(sample(0.2), 40.0, kModel), "active floor");

  const PowerModel broken{100.0, 90.0, 3e9, 1.0};
  assert_invalid(estimate_counter_gradient(sample(0.2), 150.0, broken), "power model");
}
END_TEST

START_TEST(clamps_near_the_floor_with_less_confidence) {
  CounterModelParams params;
  params.min_dynamic_power_w = 2.0;
  const GradientEstimate near = estimate_counter_gradient(sample(0.3), 60.5, kModel, params);
  const GradientEstimate far = estimate_counter_gradient(sample(0.3), 100.0, kModel, params);
  ck_assert(near.valid);
  ck_assert_double_eq_tol(near.value, 0.7 / (3.0 * 2.0), 1e-15);
  ck_assert_double_eq_tol(near.confidence, far.confidence / 2.0, 1e-15);
}
END_TEST

START_TEST(stall_overshoot_within_tolerance_is_memory_bound) {
  const GradientEstimate e = estimate_counter_gradient(sample(1.03), 150.0, kModel);
  ck_assert(e.valid);
  ck_assert_double_eq(e.value, 0.0);
}
END_TEST

START_TEST(confidence_grows_with_data) {
  const double tiny = estimate_counter_gradient(sample(0.2, 0.001, 3e6), 150.0, kModel).confidence;
  const double short_ =
      estimate_counter_gradient(sample(0.2, 0.05, 1.5e8), 150.0, kModel).confidence;
  const double full = estimate_counter_gradient(sample(0.2, 1.0, 3e9), 150.0, kModel).confidence;
  const double idle = estimate_counter_gradient(sample(0.2, 1.0, 1e5), 150.0, kModel).confidence;
  ck_assert(tiny < 0.05);
  ck_assert(tiny < short_ && short_ < full);
  ck_assert(full > 0.9 && full <= 1.0);
  ck_assert(idle < 0.02);  // a long interval in which the job barely ran tells little
}
END_TEST

START_TEST(estimator_smooths_with_moving_average) {
  EstimatorParams params;
  params.smoothing_weight = 0.25;
  GradientEstimator est(kModel, params);
  ck_assert(!est.current().valid);
  ck_assert_contains(est.current().reason, "no sample yet");
  const double g1 = expected(0.2, 150.0);
  const double g2 = expected(0.6, 150.0);
  ck_assert_double_eq_tol(est.update(sample(0.2), 150.0).value, g1, 1e-15);
  const GradientEstimate &e = est.update(sample(0.6), 150.0);
  ck_assert(e.valid);
  ck_assert_double_eq_tol(e.value, 0.25 * g2 + 0.75 * g1, 1e-15);
  ck_assert(e.source == GradientSource::counter_model);
  // Converges to a steady input.
  for (int i = 0; i < 200; ++i) est.update(sample(0.6), 150.0);
  ck_assert_double_eq_tol(est.current().value, g2, 1e-12);
}
END_TEST

START_TEST(estimator_bridges_a_few_bad_periods_then_gives_up) {
  EstimatorParams params;
  params.smoothing_weight = 0.5;
  params.max_stale_periods = 2;
  GradientEstimator est(kModel, params);
  CounterSample software_only;
  software_only.interval_s = 1.0;
  const GradientEstimate first = est.update(sample(0.2), 150.0);
  const GradientEstimate stale1 = est.update(software_only, 150.0);
  ck_assert(stale1.valid);
  ck_assert_double_eq(stale1.value, first.value);
  ck_assert_double_eq_tol(stale1.confidence, first.confidence * 0.5, 1e-15);
  const GradientEstimate stale2 = est.update(software_only, 150.0);
  ck_assert(stale2.valid);
  ck_assert_double_eq_tol(stale2.confidence, first.confidence * 0.25, 1e-15);
  const GradientEstimate gone = est.update(software_only, 150.0);
  ck_assert(!gone.valid);
  ck_assert_contains(gone.reason, "no usable sample for 3 periods");
  ck_assert_contains(gone.reason, "no hardware counters");
  // A good sample starts afresh, not blended with the dropped value.
  ck_assert_double_eq_tol(est.update(sample(0.7), 150.0).value, expected(0.7, 150.0), 1e-15);
}
END_TEST

START_TEST(estimator_reset_and_bad_weight) {
  EstimatorParams params;
  params.smoothing_weight = kNaN;
  GradientEstimator est(kModel, params);
  ck_assert_double_eq(est.params().smoothing_weight, 1.0);
  est.update(sample(0.2), 150.0);
  ck_assert_double_eq_tol(est.update(sample(0.5), 150.0).value, expected(0.5, 150.0), 1e-15);
  est.reset();
  ck_assert(!est.current().valid);
  ck_assert_double_eq_tol(est.update(sample(0.9), 150.0).value, expected(0.9, 150.0), 1e-15);
  EstimatorParams too_big;
  too_big.smoothing_weight = 3.0;
  ck_assert_double_eq(GradientEstimator(kModel, too_big).params().smoothing_weight, 1.0);
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_estimator");
  TCase *tc = tcase_create("counter_model");
  tcase_add_test(tc, counter_model_matches_closed_form);
  tcase_add_test(tc, power_from_energy_unless_given);
  tcase_add_test(tc, refuses_to_guess);
  tcase_add_test(tc, clamps_near_the_floor_with_less_confidence);
  tcase_add_test(tc, stall_overshoot_within_tolerance_is_memory_bound);
  tcase_add_test(tc, confidence_grows_with_data);
  suite_add_tcase(s, tc);
  TCase *smoothing = tcase_create("estimator");
  tcase_add_test(smoothing, estimator_smooths_with_moving_average);
  tcase_add_test(smoothing, estimator_bridges_a_few_bad_periods_then_gives_up);
  tcase_add_test(smoothing, estimator_reset_and_bad_weight);
  suite_add_tcase(s, smoothing);
  return pgtest::run_suite(s);
}
