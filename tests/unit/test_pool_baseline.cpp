// Baseline B2 (central power pool, Penelope-style): hand-computed intervals, budget changes,
// the balancer's timing, and the budget invariant on random sequences.
#include <check.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "libgradient/pool_baseline.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;
using pgtest::sum_in_order;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<PoolSocket> sockets(const std::vector<double> &caps, const std::vector<double> &power) {
  std::vector<PoolSocket> s;
  for (std::size_t i = 0; i < caps.size(); ++i) s.push_back({caps[i], power[i], 50.0, 150.0});
  return s;
}

void assert_caps(const AllocResult &r, const std::vector<double> &caps, double pool_w) {
  ck_assert_msg(r.feasible, "%s", r.error.c_str());
  ck_assert_uint_eq(r.grants_w.size(), caps.size());
  for (std::size_t i = 0; i < caps.size(); ++i)
    ck_assert_msg(std::fabs(r.grants_w[i] - caps[i]) < 1e-9, "socket %zu: %.12g, expected %.12g", i,
                  r.grants_w[i], caps[i]);
  ck_assert_double_eq_tol(r.unallocated_w, pool_w, 1e-9);
}

}  // namespace

START_TEST(release_and_grant_step) {
  // Four sockets in [50, 150] W, budget 400 W (fair share 100 W), all capped at 100 W.
  // 0 and 3 draw well below: caps 61.5 and 81.5, 38.5 + 18.5 = 57 W to the pool. 1 and 2
  // are hungry at their fair share: 5% of their range (5 W) each. Pool left: 47 W.
  const AllocResult r = allocate_pool(400.0, sockets({100, 100, 100, 100}, {60, 99, 100, 80}), 0.0);
  assert_caps(r, {61.5, 105, 105, 81.5}, 47.0);
}
END_TEST

START_TEST(below_fair_share_served_first_and_more) {
  // Next interval: 2 drops to 90 W (releases 13.5 W: pool 60.5 W); 0 and 3 are hungry again,
  // below their fair share by 38.5 and 18.5 W: 0 first, asking 5 + 38.5 W; 3 gets the 17 W
  // left of its 23.5 W ask; 1 (at its fair share) gets nothing this time.
  const AllocResult r =
      allocate_pool(400.0, sockets({61.5, 105, 105, 81.5}, {61, 104, 90, 81}), 47.0);
  assert_caps(r, {105, 105, 91.5, 98.5}, 0.0);
}
END_TEST

START_TEST(budget_changes) {
  // Down to 360 W with an empty pool: caps above the new fair share (90 W) give up their
  // excess over it (15 + 15 + 1.5 + 8.5 = 40 W, exactly the drop).
  const AllocResult down =
      allocate_pool(360.0, sockets({105, 105, 91.5, 98.5}, {105, 105, 91.5, 98.5}), 0.0);
  assert_caps(down, {90, 90, 90, 90}, 0.0);
  // A drop the pool covers (50 -> 40 W): no cap is cut. 0 is at its max, 2 and 3 idle at
  // their min (nothing to release, not hungry); 1 is hungry and takes its 5 W step.
  const AllocResult covered =
      allocate_pool(390.0, sockets({150, 100, 50, 50}, {150, 100, 20, 20}), 50.0);
  assert_caps(covered, {150, 105, 50, 50}, 35.0);
  // Up to 420 W: 60 W into the pool; everyone is hungry and 15 W below the new fair share
  // (105 W), asking 20 W each, served in index order until the pool is empty.
  const AllocResult up = allocate_pool(420.0, sockets({90, 90, 90, 90}, {90, 90, 90, 90}), 0.0);
  assert_caps(up, {110, 110, 110, 90}, 0.0);
}
END_TEST

START_TEST(edges) {
  // Releasing never goes below min; a socket without a reading counts as hungry.
  const AllocResult r =
      allocate_pool(400.0, sockets({100, 100, 100, 100}, {10, kNaN, 100, 100}), 0.0);
  // 0 releases 50 W (cap 50 = min). 1, 2, 3 hungry at fair share: 5 W each; pool 35 W.
  assert_caps(r, {50, 105, 105, 105}, 35.0);
  // Caps outside the range are clamped first; a hungry socket at its max takes nothing.
  const AllocResult c = allocate_pool(400.0, sockets({200, 100, 100, 0}, {150, 99, 99, 49}), 0.0);
  // 0: 150 (clamped, at max); 3: clamped to 50, hungry (49 >= 47), below fair by 50:
  // asks 55 W but the pool is empty (the budget: 150 + 100 + 100 + 50 = 400).
  assert_caps(c, {150, 100, 100, 50}, 0.0);
  ck_assert_contains(allocate_pool(90.0, sockets({100, 100}, {1, 1}), 0.0).error,
                     "floors sum to 100 W");
  const AllocResult bad = allocate_pool(400.0, {{100, 100, 80, 60}}, 0.0);
  ck_assert(!bad.feasible);
  ck_assert_contains(bad.error, "socket 0");
  ck_assert(!allocate_pool(kNaN, sockets({100}, {100}), 0.0).feasible);
  // An empty cluster keeps the whole budget in the pool.
  const AllocResult none = allocate_pool(100.0, {}, 0.0);
  ck_assert(none.feasible);
  ck_assert_double_eq(none.unallocated_w, 100.0);
}
END_TEST

START_TEST(balancer_timing) {
  PoolBalancer b;
  const std::vector<PoolReading> idle = {{60, 50, 150}, {60, 50, 150}};
  const std::vector<PoolReading> busy = {{60, 50, 150}, {150, 50, 150}};
  // Start: the fair shares.
  AllocResult r = b.step(0.0, 200.0, idle);
  assert_caps(r, {100, 100}, 0.0);
  // Within the 2 s interval nothing changes.
  r = b.step(1.0, 200.0, busy);
  assert_caps(r, {100, 100}, 0.0);
  // At 2 s: 0 releases 38.5 W; 1 is hungry at its fair share and takes 5 W.
  r = b.step(2.0, 200.0, busy);
  assert_caps(r, {61.5, 105}, 33.5);
  ck_assert_double_eq_tol(b.pool_w(), 33.5, 1e-12);
  r = b.step(3.0, 200.0, busy);
  assert_caps(r, {61.5, 105}, 33.5);
  // A budget below the caps in force: at once, not at the next interval.
  r = b.step(3.5, 150.0, busy);
  ck_assert(r.feasible);
  ck_assert(sum_in_order(r.grants_w) <= 150.0);
  // A different socket count: fair shares again.
  r = b.step(4.0, 300.0, {{60, 50, 150}, {60, 50, 150}, {60, 50, 150}});
  assert_caps(r, {100, 100, 100}, 0.0);
  b.reset();
  ck_assert(b.caps_w().empty());
}
END_TEST

START_TEST(never_exceeds_the_budget) {
  std::mt19937 rng(77);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int run = 0; run < 200; ++run) {
    const std::size_t n = 1 + rng() % 12;
    std::vector<PoolReading> readings(n);
    double floors = 0.0, maxes = 0.0;
    for (PoolReading &r : readings) {
      r.min_w = 20.0 + 40.0 * unit(rng);
      r.max_w = r.min_w + 150.0 * unit(rng);
      floors += r.min_w;
      maxes += r.max_w;
    }
    PoolBalancer b;
    double budget = floors + (maxes - floors) * unit(rng);
    for (int t = 0; t < 200; ++t) {
      if (rng() % 10 == 0) budget = floors + (maxes - floors) * unit(rng) * 1.2;
      const std::vector<double> caps = b.caps_w();
      for (std::size_t i = 0; i < n; ++i) {
        const double cap = caps.empty() ? readings[i].max_w : caps[i];
        readings[i].power_w = rng() % 20 == 0 ? kNaN : cap * (0.5 + 0.6 * unit(rng));
        readings[i].power_w = std::min(readings[i].power_w, cap);
      }
      const AllocResult r = b.step(0.5 * t, budget, readings);
      ck_assert_msg(r.feasible, "%s", r.error.c_str());
      ck_assert_msg(sum_in_order(r.grants_w) <= budget, "run %d t %d: %.17g > %.17g", run, t,
                    sum_in_order(r.grants_w), budget);
      ck_assert(sum_in_order(r.grants_w) + r.unallocated_w <= budget * (1.0 + 1e-12));
      ck_assert(r.unallocated_w >= 0.0);
      for (std::size_t i = 0; i < n; ++i)
        ck_assert_msg(r.grants_w[i] >= readings[i].min_w && r.grants_w[i] <= readings[i].max_w,
                      "run %d t %d: socket %zu cap %.17g outside [%.17g, %.17g]", run, t, i,
                      r.grants_w[i], readings[i].min_w, readings[i].max_w);
    }
  }
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_pool_baseline");
  TCase *rules = tcase_create("rules");
  tcase_add_test(rules, release_and_grant_step);
  tcase_add_test(rules, below_fair_share_served_first_and_more);
  tcase_add_test(rules, budget_changes);
  tcase_add_test(rules, edges);
  suite_add_tcase(s, rules);
  TCase *balancer = tcase_create("balancer");
  tcase_set_timeout(balancer, 60);
  tcase_add_test(balancer, balancer_timing);
  tcase_add_test(balancer, never_exceeds_the_budget);
  suite_add_tcase(s, balancer);
  return pgtest::run_suite(s);
}
