// libgradient value types: the cubic power model, counter samples, estimates, ranges.
#include <check.h>

#include <cmath>
#include <limits>

#include "libgradient/types.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

// The worked example of evaluation-model.md: P0 60 W, 3.4 GHz at a TDP of 205 W.
PowerModel xeon() { return PowerModel{60.0, 205.0, 3.4e9, 1.0}; }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

START_TEST(power_model_calibration_matches_note) {
  const PowerModel m = xeon();
  ck_assert_std_str_eq(m.check(), "");
  // a ~ 3.7 W/GHz^3, i.e. 3.7e-27 W/Hz^3
  ck_assert_double_eq_tol(m.a_w_per_hz3() * 1e27, 145.0 / (3.4 * 3.4 * 3.4), 1e-9);
  ck_assert_double_eq_tol(m.power_at_w(3.4e9), 205.0, 1e-9);
  ck_assert_double_eq_tol(m.power_at_w(0.0), 60.0, 1e-12);
  // "a 120 W cap then gives ~2.5 GHz, 90 W ~2.0 GHz"
  ck_assert_double_eq_tol(m.freq_at_hz(120.0) / 1e9, 2.534, 0.002);
  ck_assert_double_eq_tol(m.freq_at_hz(90.0) / 1e9, 2.011, 0.002);
}
END_TEST

START_TEST(power_model_inverse_round_trips) {
  for (double alpha : {1.0, 0.8, 0.6}) {
    PowerModel m = xeon();
    m.alpha = alpha;
    for (double ghz : {0.8, 1.5, 2.2, 3.0, 3.4}) {
      const double p = m.power_at_w(ghz * 1e9);
      ck_assert_double_eq_tol(m.freq_at_hz(p) / 1e9, ghz, 1e-9);
    }
  }
}
END_TEST

START_TEST(power_model_alpha_lowers_power_and_inverse_clamps) {
  PowerModel light = xeon();
  light.alpha = 0.6;
  ck_assert(light.power_at_w(3.0e9) < xeon().power_at_w(3.0e9));
  // A light workload would exceed f_max at TDP: the inverse clamps.
  ck_assert_double_eq(light.freq_at_hz(205.0), 3.4e9);
  ck_assert_double_eq(xeon().freq_at_hz(500.0), 3.4e9);
  ck_assert_double_eq(xeon().freq_at_hz(60.0), 0.0);
  ck_assert_double_eq(xeon().freq_at_hz(10.0), 0.0);
  ck_assert_double_eq(xeon().freq_at_hz(kNaN), 0.0);
  ck_assert_double_eq(xeon().power_at_w(-1.0), 60.0);
}
END_TEST

START_TEST(power_model_rejects_bad_parameters) {
  ck_assert_contains(PowerModel({100.0, 90.0, 3e9, 1.0}).check(), "tdp_w");
  ck_assert_contains(PowerModel({60.0, 205.0, 0.0, 1.0}).check(), "f_max_hz");
  ck_assert_contains(PowerModel({60.0, 205.0, 3e9, 0.0}).check(), "alpha");
  ck_assert_contains(PowerModel({-1.0, 205.0, 3e9, 1.0}).check(), "p0_w");
  ck_assert_contains(PowerModel({kNaN, 205.0, 3e9, 1.0}).check(), "non-finite");
  const PowerModel bad{100.0, 90.0, 3e9, 1.0};
  ck_assert_double_eq(bad.a_w_per_hz3(), 0.0);
  ck_assert_double_eq(bad.freq_at_hz(95.0), 0.0);
}
END_TEST

START_TEST(counter_sample_hardware_and_power) {
  CounterSample s;
  s.interval_s = 2.0;
  s.task_clock_s = 1.5;
  ck_assert(!s.has_hardware_counters());
  ck_assert(!s.average_power_w());
  s.energy_j = 100.0;
  ck_assert(s.average_power_w().has_value());
  ck_assert_double_eq(*s.average_power_w(), 50.0);
  s.ref_cycles = 1e9;
  ck_assert(s.has_hardware_counters());
  s.interval_s = 0.0;
  ck_assert(!s.average_power_w());
  s.interval_s = 1.0;
  s.energy_j = -5.0;  // a wrapped counter not corrected upstream
  ck_assert(!s.average_power_w());
}
END_TEST

START_TEST(estimate_names_and_invalid_helper) {
  ck_assert_str_eq(to_string(GradientUnit::relative_speedup_per_w), "relative_speedup_per_w");
  ck_assert_str_eq(to_string(GradientUnit::latency_s_saved_per_w), "latency_s_saved_per_w");
  ck_assert_str_eq(to_string(GradientSource::counter_model), "counter_model");
  ck_assert_str_eq(to_string(GradientSource::regression), "regression");
  ck_assert_str_eq(to_string(GradientSource::perturbation), "perturbation");
  ck_assert_str_eq(to_string(GradientSource::none), "none");
  const GradientEstimate e = GradientEstimate::invalid("because");
  ck_assert(!e.valid);
  ck_assert(e.source == GradientSource::none);
  ck_assert_double_eq(e.confidence, 0.0);
  ck_assert_std_str_eq(e.reason, "because");
}
END_TEST

START_TEST(power_range_check) {
  ck_assert_std_str_eq(PowerRange({10.0, 20.0}).check(), "");
  ck_assert_std_str_eq(PowerRange({0.0, 0.0}).check(), "");
  ck_assert_contains(PowerRange({30.0, 20.0}).check(), "above max_w");
  ck_assert_contains(PowerRange({-1.0, 20.0}).check(), "min_w");
  ck_assert_contains(PowerRange({0.0, std::numeric_limits<double>::infinity()}).check(), "max_w");
  ck_assert_contains(PowerRange({kNaN, 1.0}).check(), "min_w");
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_types");
  TCase *tc = tcase_create("types");
  tcase_add_test(tc, power_model_calibration_matches_note);
  tcase_add_test(tc, power_model_inverse_round_trips);
  tcase_add_test(tc, power_model_alpha_lowers_power_and_inverse_clamps);
  tcase_add_test(tc, power_model_rejects_bad_parameters);
  tcase_add_test(tc, counter_sample_hardware_and_power);
  tcase_add_test(tc, estimate_names_and_invalid_helper);
  tcase_add_test(tc, power_range_check);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
