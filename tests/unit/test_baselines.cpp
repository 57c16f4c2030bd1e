// Baselines B0 (uniform) and B1 (Slurm's former usage-based power plugin), on hand-computed
// cases; B1 follows the worked example of Slurm's power_mgmt guide step by step.
#include <check.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "libgradient/baselines.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;
using pgtest::sum_in_order;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

UsageNode node(double cap_w, double power_w, double since_job_s = 1e9) {
  return UsageNode{cap_w, power_w, 100.0, 200.0, since_job_s};
}

}  // namespace

// ---------------------------------------------------------------- B0

START_TEST(uniform_even_split) {
  const AllocResult r = allocate_uniform(400.0, {{50, 200}, {50, 200}, {50, 200}, {50, 200}});
  ck_assert(r.feasible);
  for (double g : r.grants_w) ck_assert_double_eq(g, 100.0);
  ck_assert_double_eq(r.unallocated_w, 0.0);
}
END_TEST

START_TEST(uniform_clipping_frees_watts_for_others) {
  // A max below the level: the others share what it cannot take.
  const AllocResult hi = allocate_uniform(400.0, {{50, 80}, {50, 200}, {50, 200}});
  ck_assert_double_eq(hi.grants_w[0], 80.0);
  ck_assert_double_eq(hi.grants_w[1], 160.0);
  ck_assert_double_eq(hi.grants_w[2], 160.0);
  // A min above the level: it stays at its min, the others level at 90.
  const AllocResult lo = allocate_uniform(300.0, {{120, 200}, {50, 200}, {50, 200}});
  ck_assert_double_eq(lo.grants_w[0], 120.0);
  ck_assert_double_eq(lo.grants_w[1], 90.0);
  ck_assert_double_eq(lo.grants_w[2], 90.0);
  // Above sum(max): everyone at max, the rest reported.
  const AllocResult all = allocate_uniform(500.0, {{50, 80}, {50, 200}});
  ck_assert_double_eq(all.grants_w[0], 80.0);
  ck_assert_double_eq(all.grants_w[1], 200.0);
  ck_assert_double_eq(all.unallocated_w, 220.0);
  // Exactly the floors.
  const AllocResult floors = allocate_uniform(170.0, {{120, 200}, {50, 200}});
  ck_assert_double_eq(floors.grants_w[0], 120.0);
  ck_assert_double_eq(floors.grants_w[1], 50.0);
}
END_TEST

START_TEST(uniform_infeasible_and_bad_input) {
  const AllocResult r = allocate_uniform(250.0, {{100, 200}, {100, 200}, {100, 200}});
  ck_assert(!r.feasible);
  ck_assert(r.grants_w.empty());
  ck_assert_contains(r.error, "floors sum to 300 W, above the budget 250 W");
  const AllocResult bad = allocate_uniform(250.0, {{0, 10}, {30, 10}});
  ck_assert(!bad.feasible);
  ck_assert_uint_eq(bad.failed_index, 1);
  ck_assert_contains(bad.error, "node 1");
  ck_assert(!allocate_uniform(kNaN, {{0, 10}}).feasible);
  const AllocResult none = allocate_uniform(10.0, {});
  ck_assert(none.feasible);
  ck_assert_double_eq(none.unallocated_w, 10.0);
}
END_TEST

START_TEST(uniform_never_exceeds_awkward_budgets) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int round = 0; round < 2000; ++round) {
    std::vector<PowerRange> ranges;
    double floors = 0.0, caps = 0.0;
    const std::size_t n = 1 + rng() % 50;
    for (std::size_t i = 0; i < n; ++i) {
      const double lo = unit(rng) * 100.0 / 3.0;
      ranges.push_back({lo, lo + unit(rng) * 200.0 / 7.0});
      floors += lo;
      caps += ranges.back().max_w;
    }
    const double budget = floors + (caps - floors) * unit(rng) * 1.1;
    const AllocResult r = allocate_uniform(budget, ranges);
    ck_assert(r.feasible);
    ck_assert(sum_in_order(r.grants_w) <= budget);
    if (budget < caps) ck_assert_double_eq_tol(sum_in_order(r.grants_w), budget, 1e-9);
    // Every node not at a bound sits at one common level. (The budget guard may take an ulp
    // off a grant at its max, hence the tolerance.)
    double level = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double g = r.grants_w[i];
      ck_assert(g >= ranges[i].min_w && g <= ranges[i].max_w);
      if (g > ranges[i].min_w + 1e-9 && g < ranges[i].max_w - 1e-9) {
        if (level == 0.0) level = g;
        ck_assert_double_eq_tol(g, level, 1e-9);
      }
    }
  }
}
END_TEST

// ---------------------------------------------------------------- B1 rules

START_TEST(usage_lowers_by_half_gap_or_rate) {
  const std::vector<UsageNode> nodes = {
      node(200, 20),   // gap 180: half 90 > 50% of range (50): -50
      node(200, 170),  // 85% of cap: half gap 15 < 50: -15
      node(110, 50),   // -30 would go below min 100: stops at min
  };
  const AllocResult r = allocate_usage(1000.0, nodes);
  ck_assert(r.feasible);
  ck_assert_double_eq(r.grants_w[0], 150.0);
  ck_assert_double_eq(r.grants_w[1], 185.0);
  ck_assert_double_eq(r.grants_w[2], 100.0);
  ck_assert_double_eq(r.unallocated_w, 565.0);  // nobody asked for more
}
END_TEST

START_TEST(usage_keeps_in_band_and_raises_hungry_by_rate) {
  const std::vector<UsageNode> nodes = {
      node(150, 140),  // 93%: between the thresholds, keeps its cap
      node(150, 149),  // 99%: raised by at most 20% of its range
  };
  const AllocResult plenty = allocate_usage(400.0, nodes);
  ck_assert_double_eq(plenty.grants_w[0], 150.0);
  ck_assert_double_eq(plenty.grants_w[1], 170.0);
  ck_assert_double_eq(plenty.unallocated_w, 80.0);
  // "as budget allows"
  const AllocResult tight = allocate_usage(310.0, nodes);
  ck_assert_double_eq(tight.grants_w[0], 150.0);
  ck_assert_double_eq(tight.grants_w[1], 160.0);
}
END_TEST

START_TEST(usage_recent_job_gets_common_high_cap) {
  // A node that just started a job is raised even though it draws little, to the level
  // it shares with the other raised nodes, up to its max.
  const std::vector<UsageNode> nodes = {node(130, 120), node(100, 50, 10.0), node(120, 50, 299)};
  const AllocResult r = allocate_usage(430.0, nodes);
  ck_assert_double_eq(r.grants_w[0], 130.0);
  ck_assert_double_eq(r.grants_w[1], 150.0);
  ck_assert_double_eq(r.grants_w[2], 150.0);
  // Past recent_job_s the same node is lowered instead.
  const AllocResult later = allocate_usage(430.0, {node(130, 120), node(100, 50, 301.0)});
  ck_assert_double_eq(later.grants_w[1], 100.0);
  // No cap or no reading yet: treated as fresh, like Slurm.
  const AllocResult fresh = allocate_usage(300.0, {node(0, 150), node(150, kNaN)});
  ck_assert_double_eq(fresh.grants_w[0], 150.0);
  ck_assert_double_eq(fresh.grants_w[1], 150.0);
}
END_TEST

START_TEST(usage_shrinking_budget_cuts_evenly) {
  const AllocResult even = allocate_usage(300.0, {node(180, 166), node(150, 138)});
  ck_assert(even.feasible);
  ck_assert_double_eq(even.grants_w[0], 165.0);
  ck_assert_double_eq(even.grants_w[1], 135.0);
  // One node reaches its min: the other gives the rest.
  const AllocResult floor = allocate_usage(250.0, {node(180, 166), node(110, 101)});
  ck_assert_double_eq(floor.grants_w[0], 150.0);
  ck_assert_double_eq(floor.grants_w[1], 100.0);
  // Raised nodes' floors are reserved first.
  const AllocResult reserve =
      allocate_usage(400.0, {node(180, 166), node(150, 138), node(150, 150, 1.0)});
  ck_assert_double_eq(reserve.grants_w[0], 165.0);
  ck_assert_double_eq(reserve.grants_w[1], 135.0);
  ck_assert_double_eq(reserve.grants_w[2], 100.0);
  const AllocResult none = allocate_usage(250.0, {node(180, 166), node(150, 138), node(150, 1)});
  ck_assert(!none.feasible);
  ck_assert(none.grants_w.empty());
  ck_assert_contains(none.error, "floors sum to 300 W");
  const AllocResult bad = allocate_usage(250.0, {UsageNode{100, 90, 50, 40, 1e9}});
  ck_assert(!bad.feasible);
  ck_assert_uint_eq(bad.failed_index, 0);
}
END_TEST

START_TEST(usage_never_exceeds_budget) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int round = 0; round < 2000; ++round) {
    std::vector<UsageNode> nodes;
    double floors = 0.0, caps = 0.0;
    const std::size_t n = 1 + rng() % 30;
    for (std::size_t i = 0; i < n; ++i) {
      const double lo = 50.0 + unit(rng) * 50.0;
      const double hi = lo + unit(rng) * 150.0;
      const double cap = rng() % 8 ? lo + (hi - lo) * unit(rng) : 0.0;
      nodes.push_back({cap, cap * (0.5 + 0.6 * unit(rng)), lo, hi, unit(rng) * 1000.0});
      floors += lo;
      caps += hi;
    }
    const double budget = floors + (caps - floors) * unit(rng) + 1.0 / 3.0;
    const AllocResult r = allocate_usage(budget, nodes);
    ck_assert(r.feasible);
    ck_assert_msg(sum_in_order(r.grants_w) <= budget, "round %d", round);
    for (std::size_t i = 0; i < n; ++i)
      ck_assert(r.grants_w[i] >= nodes[i].min_w && r.grants_w[i] <= nodes[i].max_w);
  }
}
END_TEST

// ---------------------------------------------------------------- B1 across intervals

namespace {

std::vector<UsageReading> readings(const std::vector<double> &power_w, double since_job_s = 1e9) {
  std::vector<UsageReading> out;
  for (double p : power_w) out.push_back({p, 100.0, 200.0, since_job_s});
  return out;
}

}  // namespace

// The guide's example: 10 nodes of 100-200 W, cap_watts=1800, balance_interval=60,
// decrease_rate=30, increase_rate=10, lower_threshold=90, upper_threshold=98. (The guide
// rounds to whole watts: 183, 189, 184.)
START_TEST(usage_balancer_follows_slurm_guide_example) {
  UsageParams p;
  p.balance_interval_s = 60.0;
  p.decrease_rate = 0.30;
  p.increase_rate = 0.10;
  p.lower_threshold = 0.90;
  p.upper_threshold = 0.98;
  UsageBalancer b(p);

  // Initial state: 1800 W / 10 nodes.
  AllocResult r = b.step(0.0, 1800.0, readings(std::vector<double>(10, 150.0)));
  ck_assert(r.feasible);
  for (double g : r.grants_w) ck_assert_double_eq(g, 180.0);

  // Within the interval nothing moves, whatever the readings.
  r = b.step(30.0, 1800.0, readings(std::vector<double>(10, 10.0)));
  for (double g : r.grants_w) ck_assert_double_eq(g, 180.0);

  // 60 s: one node draws 110 W: -min(35, 30) = 150; 1650 W over the other 9.
  std::vector<double> power(10, 180.0);
  power[0] = 110.0;
  r = b.step(60.0, 1800.0, readings(power));
  ck_assert_double_eq(r.grants_w[0], 150.0);
  for (int i = 1; i < 10; ++i) ck_assert_double_eq_tol(r.grants_w[i], 1650.0 / 9.0, 1e-9);

  // 120 s: 110 W at cap 150: -20 = 130; 115 W at cap 183.3: -30 = 153.3; 8 share the rest.
  power.assign(10, 1650.0 / 9.0);
  power[0] = 110.0;
  power[1] = 115.0;
  r = b.step(120.0, 1800.0, readings(power));
  ck_assert_double_eq(r.grants_w[0], 130.0);
  ck_assert_double_eq_tol(r.grants_w[1], 1650.0 / 9.0 - 30.0, 1e-9);
  const double level = (1800.0 - 130.0 - (1650.0 / 9.0 - 30.0)) / 8.0;  // 189.58
  for (int i = 2; i < 10; ++i) ck_assert_double_eq_tol(r.grants_w[i], level, 1e-9);

  // 180 s: 128 W at cap 130 (> 98%): +10 = 140; the 115 W node starts a job: common cap.
  std::vector<UsageReading> in = readings(std::vector<double>(10, level));
  in[0].power_w = 128.0;
  in[1].power_w = 115.0;
  in[1].seconds_since_job_start = 5.0;
  r = b.step(180.0, 1800.0, in);
  ck_assert_double_eq(r.grants_w[0], 140.0);
  for (int i = 1; i < 10; ++i) ck_assert_double_eq_tol(r.grants_w[i], 1660.0 / 9.0, 1e-9);
  ck_assert(sum_in_order(r.grants_w) <= 1800.0);
  ck_assert(b.caps_w() == r.grants_w);
}
END_TEST

START_TEST(usage_balancer_rebalances_at_once_when_budget_drops) {
  UsageBalancer b;
  AllocResult r = b.step(0.0, 1000.0, readings({150, 150, 150, 150}));
  ck_assert_double_eq(sum_in_order(r.grants_w), 800.0);
  ck_assert_double_eq(r.unallocated_w, 200.0);
  r = b.step(1.0, 600.0, readings({150, 150, 150, 150}));  // well inside the interval
  ck_assert(r.feasible);
  ck_assert(sum_in_order(r.grants_w) <= 600.0);
  // A node joins: rebalanced at once, the newcomer gets a cap.
  r = b.step(2.0, 600.0, readings({140, 140, 140, 140, 140}));
  ck_assert_uint_eq(r.grants_w.size(), 5);
  ck_assert(sum_in_order(r.grants_w) <= 600.0);
  ck_assert(!b.step(3.0, 100.0, readings({140, 140, 140, 140, 140})).feasible);
  b.reset();
  ck_assert(b.caps_w().empty());
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_baselines");
  TCase *uniform = tcase_create("uniform");
  tcase_set_timeout(uniform, 60);
  tcase_add_test(uniform, uniform_even_split);
  tcase_add_test(uniform, uniform_clipping_frees_watts_for_others);
  tcase_add_test(uniform, uniform_infeasible_and_bad_input);
  tcase_add_test(uniform, uniform_never_exceeds_awkward_budgets);
  suite_add_tcase(s, uniform);
  TCase *usage = tcase_create("usage");
  tcase_set_timeout(usage, 60);
  tcase_add_test(usage, usage_lowers_by_half_gap_or_rate);
  tcase_add_test(usage, usage_keeps_in_band_and_raises_hungry_by_rate);
  tcase_add_test(usage, usage_recent_job_gets_common_high_cap);
  tcase_add_test(usage, usage_shrinking_budget_cuts_evenly);
  tcase_add_test(usage, usage_never_exceeds_budget);
  tcase_add_test(usage, usage_balancer_follows_slurm_guide_example);
  tcase_add_test(usage, usage_balancer_rebalances_at_once_when_budget_drops);
  suite_add_tcase(s, usage);
  return pgtest::run_suite(s);
}
