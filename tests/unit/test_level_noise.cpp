// The noise guards' statistics (libgradient/level_noise.hpp): the spread of a level's moving
// average for independent and for drifting values, the reset and change rules, and the node
// guard's soft threshold on averages.
#include <check.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "libgradient/level_noise.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kW = 0.1;  // the node guard's default noise_weight

// Feeds `n` values of an AR(1) series (coefficient phi, marginal spread sd) around `level`;
// returns the spread of the moving average over the second half, measured, and the
// average_sd() the statistics gave at the end.
struct Run {
  double measured_sd;
  double average_sd;
  double sd;
};
Run run_ar1(double phi, double sd, unsigned seed, int n = 20000) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> e(0.0, sd * std::sqrt(1.0 - phi * phi));
  AveragedLevelNoise s;
  double x = 0.0, sum = 0.0, sum2 = 0.0;
  int k = 0;
  for (int t = 0; t < n; ++t) {
    x = phi * x + e(rng);
    s.add(-3.0 + x, kW);
    if (t >= n / 2) {
      sum += s.mean + 3.0;
      sum2 += (s.mean + 3.0) * (s.mean + 3.0);
      ++k;
    }
  }
  const double mean = sum / k;
  return {std::sqrt(sum2 / k - mean * mean), s.average_sd(kW), s.sd()};
}

}  // namespace

START_TEST(average_of_independent_values) {
  // sqrt(w / (2 - w)) = 0.229 of the values' spread, and so it is measured.
  for (unsigned seed : {1u, 2u, 3u}) {
    const Run r = run_ar1(0.0, 0.2, seed);
    ck_assert_msg(r.average_sd > 0.19 * r.sd && r.average_sd < 0.28 * r.sd,
                  "seed %u: average_sd %g of sd %g", seed, r.average_sd, r.sd);
    ck_assert_msg(std::fabs(r.average_sd / r.measured_sd - 1.0) < 0.25,
                  "seed %u: average_sd %g, measured %g", seed, r.average_sd, r.measured_sd);
  }
}
END_TEST

START_TEST(average_of_a_slow_drift) {
  // A drift whose values follow each other (phi 0.95): the moving average moves with it, so
  // the statistics give it a larger share of the spread than to independent values (which
  // would have the drift's difference taken as real), never more than the spread itself.
  for (unsigned seed : {1u, 2u, 3u}) {
    const Run drift = run_ar1(0.95, 0.2, seed), iid = run_ar1(0.0, 0.2, seed);
    const double share = drift.average_sd / drift.sd, iid_share = iid.average_sd / iid.sd;
    ck_assert_msg(share > 1.5 * iid_share && share <= 1.0,
                  "seed %u: average_sd %g of sd %g for the drift, %g of %g independent", seed,
                  drift.average_sd, drift.sd, iid.average_sd, iid.sd);
  }
}
END_TEST

START_TEST(unknown_until_seen_and_reset) {
  AveragedLevelNoise s;
  ck_assert(!s.known());
  ck_assert(std::isnan(s.average_sd(kW)));
  s.add(1.0, kW);
  ck_assert(!s.known());  // a mean, no spread yet
  s.add(1.2, kW);
  ck_assert(s.known());
  // No two deviations in a row yet: their correlation is unknown and counts as 1.
  ck_assert_double_eq_tol(s.average_sd(kW), s.sd(), 1e-15);
  s.add(0.9, kW);
  ck_assert(std::isfinite(s.cov1));
  ck_assert(s.average_sd(kW) <= s.sd());
  // A step far beyond the spread is a change: the mean jumps, the correlation starts over.
  s.add(50.0, kW);
  ck_assert_double_eq(s.mean, 50.0);
  ck_assert(std::isnan(s.last_dev));
  // Not a number: unknown again.
  s.add(kNaN, kW);
  ck_assert(!s.known() && std::isnan(s.mean) && std::isnan(s.cov1) && std::isnan(s.last_dev));
}
END_TEST

START_TEST(guard_scale_of_averages) {
  // Within the allowance: the whole difference now is taken out (the median level).
  ck_assert_double_eq_tol(guard_scale_of_average(0.3, 0.4, 0.5), std::exp(-0.5), 1e-15);
  ck_assert_double_eq_tol(guard_scale_of_average(-0.4, 0.4, -0.1), std::exp(0.1), 1e-15);
  // Beyond it: the average keeps (|a| - t) / |a| of its difference; so does the level now.
  ck_assert_double_eq_tol(guard_scale_of_average(1.0, 0.25, 0.8), std::exp(-0.8 * 0.25), 1e-15);
  ck_assert_double_eq_tol(guard_scale_of_average(-1.0, 0.25, -0.6), std::exp(0.6 * 0.25), 1e-15);
  // No allowance: nothing taken out.
  ck_assert_double_eq(guard_scale_of_average(0.7, 0.0, 0.9), 1.0);
  // The plain threshold is the same when the average is the level now.
  ck_assert_double_eq_tol(guard_scale_of_average(0.9, 0.3, 0.9), guard_scale(0.9, 0.3), 1e-15);
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_level_noise");
  TCase *tc = tcase_create("level_noise");
  tcase_add_test(tc, average_of_independent_values);
  tcase_add_test(tc, average_of_a_slow_drift);
  tcase_add_test(tc, unknown_until_seen_and_reset);
  tcase_add_test(tc, guard_scale_of_averages);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
