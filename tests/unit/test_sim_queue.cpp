// The simulator's request-level queue against queueing theory's closed forms, and its
// accounting and determinism.
//
// Tolerances: every check runs 1.5-3 million requests after a warm-up. The relative standard
// error of a mean sojourn at these loads over such runs is under 1% (batch-means estimate,
// relaxation time ~ 1 / (mu (1 - sqrt(rho))^2)); p99 adds the histogram's 0.39% bucket error.
// So means must lie within 3% and p99 within 4% of the closed form: about 3-4 standard
// errors, and the seeds are fixed, so the tests are deterministic.
#include <check.h>

#include <cmath>

#include "sim/histogram.hpp"
#include "sim/queueing.hpp"
#include "sim/rng.hpp"
#include "sim/service.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad::sim;

namespace {

struct QueueRun {
  LatencyHistogram latency;
  ServiceCounts counts;
  std::uint64_t in_flight = 0;
};

// Runs one service at constant speed 1 for duration_s in steps of step_s.
QueueRun run_queue(const ServiceParams &params, double rate_rps, double duration_s,
                   double step_s, std::uint64_t seed) {
  QueueRun run;
  Service service(params, seed);
  const auto steps = static_cast<long>(duration_s / step_s);
  for (long i = 0; i < steps; ++i)
    service.advance(i * step_s, (i + 1) * step_s, 1.0, rate_rps, LatencySink{&run.latency});
  run.counts = service.counts();
  run.in_flight = service.in_flight();
  return run;
}

void assert_close(double got, double want, double rel_tol, const char *what) {
  ck_assert_msg(std::fabs(got / want - 1.0) <= rel_tol, "%s: got %.6g, closed form %.6g (tol %.1f%%)",
                what, got, want, rel_tol * 100.0);
}

}  // namespace

START_TEST(histogram_quantiles_bounded_error) {
  LatencyHistogram h;
  for (int i = 1; i <= 100000; ++i) h.add(i * 1e-4);  // 0.1 ms .. 10 s, uniform
  ck_assert_uint_eq(h.count(), 100000);
  assert_close(h.mean_s(), 5.00005, 1e-12, "mean is exact");
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = std::ceil(q * 100000) * 1e-4;
    ck_assert_msg(std::fabs(h.quantile_s(q) / exact - 1.0) <= LatencyHistogram::kRelativeError + 1e-12,
                  "q=%g: %g vs %g", q, h.quantile_s(q), exact);
  }
  LatencyHistogram other;
  other.add(1e-9);  // below the range: clamped, counted
  h.merge(other);
  ck_assert_uint_eq(h.clamped(), 1);
  ck_assert_uint_eq(h.count(), 100001);
}
END_TEST

START_TEST(rng_distributions_have_their_moments) {
  Rng rng(42);
  for (double cv : {0.0, 0.3, 1.0, 2.0}) {
    const SizeDistribution d(2.0, cv);
    double sum = 0.0, sum2 = 0.0;
    const int n = 400000;
    for (int i = 0; i < n; ++i) {
      const double x = d.draw(rng);
      sum += x;
      sum2 += x * x;
    }
    const double mean = sum / n;
    const double sd = std::sqrt(std::max(0.0, sum2 / n - mean * mean));
    assert_close(mean, 2.0, 0.01, "size mean");
    if (cv > 0.0) assert_close(sd / mean, cv, 0.02, "size cv");
  }
}
END_TEST

START_TEST(mm1_mean_and_p99_match_closed_form) {
  ServiceParams p;
  p.servers = 1;
  p.mean_size_s = 1.0;
  p.size_cv = 1.0;
  p.queue_limit = 1000000;
  p.record_after_s = 1000.0;
  const double lambda = 0.7;
  const QueueRun run = run_queue(p, lambda, 3.0e6, 10.0, 7);
  // W = 1 / (mu - lambda); p99 = ln(100) / (mu - lambda).
  assert_close(run.latency.mean_s(), 1.0 / (1.0 - lambda), 0.03, "M/M/1 mean");
  assert_close(run.latency.quantile_s(0.99), std::log(100.0) / (1.0 - lambda), 0.04, "M/M/1 p99");
  assert_close(run.latency.quantile_s(0.99), mmc_sojourn_quantile_s(1, lambda, 1.0, 0.99), 0.04,
               "M/M/1 p99 via M/M/c formula");
}
END_TEST

START_TEST(mmc_mean_and_p99_match_erlang_c) {
  ServiceParams p;
  p.servers = 8;
  p.mean_size_s = 0.1;
  p.size_cv = 1.0;
  p.queue_limit = 1000000;
  p.record_after_s = 100.0;
  const double mu = 10.0;
  for (double rho : {0.6, 0.85}) {
    const double lambda = rho * 8 * mu;
    const QueueRun run = run_queue(p, lambda, 40000.0, 1.0, 11);
    assert_close(run.latency.mean_s(), mmc_mean_sojourn_s(8, lambda, mu), 0.03, "M/M/8 mean");
    assert_close(run.latency.quantile_s(0.99), mmc_sojourn_quantile_s(8, lambda, mu, 0.99), 0.04,
                 "M/M/8 p99");
  }
}
END_TEST

START_TEST(md1_mean_wait_matches_pollaczek_khinchine) {
  ServiceParams p;
  p.servers = 1;
  p.mean_size_s = 1.0;
  p.size_cv = 0.0;
  p.queue_limit = 1000000;
  p.record_after_s = 1000.0;
  const double rho = 0.8;
  const QueueRun run = run_queue(p, rho, 2.0e6, 10.0, 13);
  // Wq = rho / (2 mu (1 - rho)); sojourn = Wq + 1.
  const double wait = run.latency.mean_s() - 1.0;
  assert_close(wait, rho / (2.0 * (1.0 - rho)), 0.03, "M/D/1 mean wait");
  // M/G/1 with cv = 0.5 by Pollaczek-Khinchine (the Allen-Cunneen form at c = 1).
  p.size_cv = 0.5;
  const QueueRun g = run_queue(p, rho, 2.0e6, 10.0, 17);
  assert_close(g.latency.mean_s(), mgc_mean_sojourn_s(1, rho, 1.0, 0.5), 0.03, "M/G/1 mean");
}
END_TEST

START_TEST(speed_changes_scale_service_time) {
  // M/M/1 at speed 2 with sizes of mean 2 is M/M/1 with mean service time 1: the remaining
  // work of requests spanning steps is carried over exactly.
  ServiceParams p;
  p.servers = 1;
  p.mean_size_s = 2.0;
  p.size_cv = 1.0;
  p.queue_limit = 1000000;
  p.record_after_s = 1000.0;
  LatencyHistogram h;
  Service s(p, 19);
  // Alternate speeds 1.5 and 2.5 every 0.5 s (mean rate of work 2): latency lies between the
  // constant-speed results, and no request is lost.
  const double lambda = 0.6;
  for (long i = 0; i < 4000000; ++i)
    s.advance(i * 0.5, (i + 1) * 0.5, (i % 2) ? 2.5 : 1.5, lambda, LatencySink{&h});
  const double at_speed_2 = 1.0 / (1.0 - lambda);
  ck_assert_msg(h.mean_s() > 0.97 * at_speed_2 && h.mean_s() < 1.6 * at_speed_2, "mean %g", h.mean_s());
  const ServiceCounts &c = s.counts();
  ck_assert_uint_eq(c.arrivals, c.completed + c.dropped() + s.in_flight());
}
END_TEST

START_TEST(overload_drops_are_counted_never_lost) {
  ServiceParams p;
  p.servers = 2;
  p.mean_size_s = 1.0;
  p.size_cv = 0.5;
  p.queue_limit = 20;
  p.timeout_s = 8.0;
  const QueueRun run = run_queue(p, 3.0, 20000.0, 0.7, 23);  // offered 1.5x capacity
  ck_assert(run.counts.rejected > 0);
  ck_assert(run.counts.timed_out > 0);
  ck_assert_uint_eq(run.counts.arrivals,
                    run.counts.completed + run.counts.rejected + run.counts.timed_out + run.in_flight);
  // Goodput cannot exceed capacity (2 per s).
  ck_assert(run.counts.completed / 20000.0 <= 2.05);
  // Nothing waits longer than the timeout plus one service.
  ck_assert(run.latency.quantile_s(1.0) < 8.0 + 20.0);
}
END_TEST

START_TEST(rate_changes_keep_poisson_counts) {
  // Rate switching every step between 5 and 15 per s: the count is that of a Poisson process
  // with mean rate 10 (the rescaling of the pending gap is exact).
  ServiceParams p;
  p.servers = 64;
  p.mean_size_s = 0.01;
  p.size_cv = 0.0;
  Service s(p, 29);
  const long steps = 200000;
  for (long i = 0; i < steps; ++i) s.advance(i * 0.1, (i + 1) * 0.1, 1.0, (i % 2) ? 15.0 : 5.0, {});
  assert_close(static_cast<double>(s.counts().arrivals), 10.0 * steps * 0.1, 0.01, "arrivals");
}
END_TEST

START_TEST(same_seed_same_numbers) {
  ServiceParams p;
  p.servers = 3;
  p.mean_size_s = 0.2;
  p.size_cv = 0.7;
  const QueueRun a = run_queue(p, 12.0, 5000.0, 0.1, 99);
  const QueueRun b = run_queue(p, 12.0, 5000.0, 0.1, 99);
  const QueueRun c = run_queue(p, 12.0, 5000.0, 0.1, 100);
  ck_assert_uint_eq(a.counts.completed, b.counts.completed);
  ck_assert(a.latency.sum_s() == b.latency.sum_s());
  ck_assert(a.latency.sum_s() != c.latency.sum_s());
}
END_TEST

int main() {
  Suite *s = suite_create("sim_queue");
  TCase *tc = tcase_create("queue");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, histogram_quantiles_bounded_error);
  tcase_add_test(tc, rng_distributions_have_their_moments);
  tcase_add_test(tc, mm1_mean_and_p99_match_closed_form);
  tcase_add_test(tc, mmc_mean_and_p99_match_erlang_c);
  tcase_add_test(tc, md1_mean_wait_matches_pollaczek_khinchine);
  tcase_add_test(tc, speed_changes_scale_service_time);
  tcase_add_test(tc, overload_drops_are_counted_never_lost);
  tcase_add_test(tc, rate_changes_keep_poisson_counts);
  tcase_add_test(tc, same_seed_same_numbers);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
