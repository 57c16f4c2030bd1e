// Gain curves, flat water-filling and nested allocation over a tree: hand-computed cases,
// randomized invariants, and equality with a brute-force optimum on small integer cases.
#include <check.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "libgradient/allocator.hpp"
#include "libgradient/parallel.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;
using pgtest::sum_in_order;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

AllocChild child(double min_w, double max_w, GainCurve curve) {
  return AllocChild{min_w, max_w, std::move(curve)};
}

AllocChild linear_child(double min_w, double max_w, double gradient) {
  return child(min_w, max_w, GainCurve::linear(gradient, max_w - min_w));
}

double total_gain(const std::vector<AllocChild> &children, const std::vector<double> &grants) {
  double gain = 0.0;
  for (std::size_t i = 0; i < children.size(); ++i)
    gain += children[i].curve.gain_at(grants[i] - children[i].min_w);
  return gain;
}

// A random concave integer curve over `width` watts: one integer slope per watt, falling.
GainCurve random_integer_curve(std::mt19937 &rng, int width) {
  std::vector<double> slopes(static_cast<std::size_t>(width));
  for (double &s : slopes) s = static_cast<double>(rng() % 10);
  std::sort(slopes.begin(), slopes.end(), std::greater<double>());
  std::vector<GainSegment> segments;
  for (double s : slopes) segments.push_back({1.0, s});
  return GainCurve::from_segments(segments);
}

// Best total gain over all integer allocations with sum <= budget; -1 if none is feasible.
// `extra_ok` lets a caller reject allocations (nested limits).
double brute_force(const std::vector<AllocChild> &children, int budget,
                   const std::function<bool(const std::vector<int> &)> &extra_ok) {
  double best = -1.0;
  std::vector<int> alloc(children.size());
  std::function<void(std::size_t, int)> walk = [&](std::size_t i, int used) {
    if (i == children.size()) {
      if (extra_ok && !extra_ok(alloc)) return;
      double gain = 0.0;
      for (std::size_t k = 0; k < children.size(); ++k)
        gain += children[k].curve.gain_at(alloc[k] - children[k].min_w);
      best = std::max(best, gain);
      return;
    }
    for (int w = static_cast<int>(children[i].min_w); w <= static_cast<int>(children[i].max_w);
         ++w) {
      if (used + w > budget) break;
      alloc[i] = w;
      walk(i + 1, used + w);
    }
  };
  walk(0, 0);
  return best;
}

void assert_within_bounds(const std::vector<AllocChild> &children, const AllocResult &r) {
  ck_assert_uint_eq(r.grants_w.size(), children.size());
  for (std::size_t i = 0; i < children.size(); ++i) {
    ck_assert(r.grants_w[i] >= children[i].min_w);
    ck_assert(r.grants_w[i] <= children[i].max_w);
  }
}

}  // namespace

// ---------------------------------------------------------------- curves

START_TEST(curve_from_segments_normalises_and_validates) {
  const GainCurve c = GainCurve::from_segments({{10, 3}, {0, 9}, {5, 3}, {20, 1}, {5, 0}});
  ck_assert(c.valid());
  ck_assert_uint_eq(c.segments().size(), 3);  // zero width dropped, equal slopes merged
  ck_assert_double_eq(c.segments()[0].width_w, 15.0);
  ck_assert_double_eq(c.width_w(), 40.0);
  ck_assert_double_eq(c.gain_at(20.0), 50.0);
  ck_assert_double_eq(c.gain_at(100.0), 65.0);
  ck_assert_double_eq(c.marginal_at(14.9), 3.0);
  ck_assert_double_eq(c.marginal_at(15.0), 1.0);
  ck_assert_double_eq(c.marginal_at(40.0), 0.0);

  ck_assert_contains(GainCurve::from_segments({{10, 1}, {10, 2}}).error(), "concave");
  ck_assert_contains(GainCurve::from_segments({{10, -1}}).error(), "slope");
  ck_assert_contains(GainCurve::from_segments({{-1, 1}}).error(), "width");
  ck_assert_contains(GainCurve::from_segments({{kNaN, 1}}).error(), "width");
  ck_assert(!GainCurve::linear(kInf, 10).valid());
  // A last-bit rise from float arithmetic is accepted as equal.
  const GainCurve noisy = GainCurve::from_segments({{1, 0.3}, {1, 0.1 + 0.2}});
  ck_assert(noisy.valid());
  ck_assert_uint_eq(noisy.segments().size(), 1);
  ck_assert(GainCurve().valid());
  ck_assert_double_eq(GainCurve().width_w(), 0.0);
}
END_TEST

START_TEST(curve_from_points) {
  const GainCurve c = GainCurve::from_points({{100, 0}, {120, 40}, {150, 70}, {200, 80}});
  ck_assert(c.valid());
  ck_assert_uint_eq(c.segments().size(), 3);
  ck_assert_double_eq(c.segments()[0].slope, 2.0);
  ck_assert_double_eq(c.segments()[1].slope, 1.0);
  ck_assert_double_eq_tol(c.segments()[2].slope, 0.2, 1e-15);
  ck_assert_double_eq_tol(c.gain_at(100.0), 80.0, 1e-12);
  ck_assert_contains(GainCurve::from_points({{0, 0}, {10, 10}, {20, 30}}).error(), "concave");
  ck_assert_contains(GainCurve::from_points({{0, 0}, {0, 1}}).error(), "increasing power");
  ck_assert_contains(GainCurve::from_points({{0, 0}, {10, kNaN}}).error(), "not finite");
  ck_assert(GainCurve::from_points({{5, 1}}).valid());  // one point: no watts, no gain
}
END_TEST

START_TEST(curve_from_marginal_samples_takes_concave_majorant) {
  // 3, 1, 2: the rise 1 -> 2 is pooled to 1.5, 1.5; total gain (6) is kept.
  const GainCurve c = GainCurve::from_marginal_samples({3, 1, 2}, 1.0);
  ck_assert(c.valid());
  ck_assert_uint_eq(c.segments().size(), 2);
  ck_assert_double_eq(c.segments()[0].slope, 3.0);
  ck_assert_double_eq(c.segments()[1].slope, 1.5);
  ck_assert_double_eq(c.segments()[1].width_w, 2.0);
  ck_assert_double_eq(c.gain_at(3.0), 6.0);
  // Pooling cascades backwards: 1, 1, 4 -> 2, 2, 2.
  const GainCurve flat = GainCurve::from_marginal_samples({1, 1, 4}, 2.0);
  ck_assert_uint_eq(flat.segments().size(), 1);
  ck_assert_double_eq(flat.segments()[0].slope, 2.0);
  ck_assert_double_eq(flat.width_w(), 6.0);
  // Negative samples count as zero.
  const GainCurve neg = GainCurve::from_marginal_samples({2, -1}, 1.0);
  ck_assert_double_eq(neg.segments().back().slope, 0.0);
  ck_assert(!GainCurve::from_marginal_samples({1, kNaN}, 1.0).valid());
  ck_assert(!GainCurve::from_marginal_samples({1}, 0.0).valid());
}
END_TEST

START_TEST(curve_from_marginal_function) {
  const GainCurve c = GainCurve::from_marginal([](double w) { return 10.0 - w; }, 10.0, 10);
  ck_assert(c.valid());
  ck_assert_uint_eq(c.segments().size(), 10);
  ck_assert_double_eq(c.segments()[0].slope, 9.5);
  ck_assert_double_eq(c.segments()[9].slope, 0.5);
  ck_assert_double_eq_tol(c.gain_at(10.0), 50.0, 1e-12);  // midpoint rule is exact here
  ck_assert(!GainCurve::from_marginal(nullptr, 10.0, 10).valid());
  ck_assert(!GainCurve::from_marginal([](double) { return 1.0; }, 10.0, 0).valid());
  ck_assert(!GainCurve::from_marginal([](double) { return 1.0; }, -1.0, 3).valid());
}
END_TEST

// ---------------------------------------------------------------- flat

START_TEST(flat_highest_marginal_first) {
  const std::vector<AllocChild> kids = {
      child(0, 40, GainCurve::from_segments({{10, 3}, {30, 1}})),
      child(0, 40, GainCurve::from_segments({{20, 2}, {20, 0.5}})),
  };
  // 10 W at slope 3 (a), 20 W at slope 2 (b), then 5 W at slope 1 (a).
  const AllocResult r = allocate(35.0, kids);
  ck_assert(r.feasible);
  ck_assert_std_str_eq(r.error, "");
  ck_assert_double_eq(r.grants_w[0], 15.0);
  ck_assert_double_eq(r.grants_w[1], 20.0);
  ck_assert_double_eq(r.unallocated_w, 0.0);
  // Mins come first, whatever the slopes.
  const std::vector<AllocChild> floors = {linear_child(10, 50, 2.0), linear_child(10, 50, 1.0)};
  const AllocResult f = allocate(60.0, floors);
  ck_assert_double_eq(f.grants_w[0], 50.0);
  ck_assert_double_eq(f.grants_w[1], 10.0);
}
END_TEST

START_TEST(flat_equal_gradients_split_evenly) {
  const std::vector<AllocChild> three = {linear_child(0, 100, 0.01), linear_child(0, 100, 0.01),
                                         linear_child(0, 100, 0.01)};
  const AllocResult r = allocate(90.0, three);
  for (double g : r.grants_w) ck_assert_double_eq(g, 30.0);
  // A child whose range ends early returns the rest to the level of the others.
  const std::vector<AllocChild> capped = {linear_child(0, 20, 0.01), linear_child(0, 100, 0.01),
                                          linear_child(0, 100, 0.01)};
  const AllocResult c = allocate(90.0, capped);
  ck_assert_double_eq(c.grants_w[0], 20.0);
  ck_assert_double_eq(c.grants_w[1], 35.0);
  ck_assert_double_eq(c.grants_w[2], 35.0);
  // Tied watts above the floors are shared evenly.
  const std::vector<AllocChild> floors = {linear_child(10, 100, 1.0), linear_child(30, 100, 1.0)};
  const AllocResult f = allocate(100.0, floors);
  ck_assert_double_eq(f.grants_w[0], 40.0);
  ck_assert_double_eq(f.grants_w[1], 60.0);
  // Ties below a steeper segment: the steep part first, then the level.
  const std::vector<AllocChild> mixed = {
      child(0, 50, GainCurve::from_segments({{10, 5}, {40, 1}})),
      child(0, 50, GainCurve::linear(1, 50)),
  };
  const AllocResult m = allocate(30.0, mixed);
  ck_assert_double_eq(m.grants_w[0], 20.0);
  ck_assert_double_eq(m.grants_w[1], 10.0);
}
END_TEST

START_TEST(flat_budget_above_all_maxima) {
  const std::vector<AllocChild> kids = {linear_child(10, 50, 2.0), linear_child(5, 30, 0.0)};
  const AllocResult r = allocate(100.0, kids);
  ck_assert(r.feasible);
  ck_assert_double_eq(r.grants_w[0], 50.0);
  ck_assert_double_eq(r.grants_w[1], 30.0);  // slope 0 still fills up to max
  ck_assert_double_eq(r.unallocated_w, 20.0);
}
END_TEST

START_TEST(flat_infeasible_is_reported_not_filled) {
  const std::vector<AllocChild> kids = {linear_child(60, 100, 1.0), linear_child(60, 100, 1.0)};
  const AllocResult r = allocate(100.0, kids);
  ck_assert(!r.feasible);
  ck_assert(r.grants_w.empty());
  ck_assert_contains(r.error, "below the floor 120 W");
  ck_assert_uint_eq(r.failed_index, kNoIndex);

  const AllocResult bad_bounds = allocate(100.0, {linear_child(0, 10, 1), child(20, 10, {})});
  ck_assert(!bad_bounds.feasible);
  ck_assert_uint_eq(bad_bounds.failed_index, 1);
  ck_assert_contains(bad_bounds.error, "child 1: min_w 20 W is above max_w 10 W");

  const AllocResult bad_curve =
      allocate(100.0, {child(0, 10, GainCurve::from_segments({{5, 1}, {5, 2}}))});
  ck_assert(!bad_curve.feasible);
  ck_assert_uint_eq(bad_curve.failed_index, 0);
  ck_assert_contains(bad_curve.error, "concave");

  for (double budget : {-1.0, kNaN, kInf}) {
    const AllocResult b = allocate(budget, {linear_child(0, 10, 1)});
    ck_assert(!b.feasible);
    ck_assert_contains(b.error, "budget");
  }
  ck_assert(!allocate(10.0, {linear_child(0, kInf, 1)}).feasible);
  ck_assert(!allocate(10.0, {linear_child(-5, 10, 1)}).feasible);
}
END_TEST

START_TEST(flat_edge_cases) {
  const AllocResult none = allocate(50.0, {});
  ck_assert(none.feasible);
  ck_assert(none.grants_w.empty());
  ck_assert_double_eq(none.unallocated_w, 50.0);

  const AllocResult zero = allocate(0.0, {linear_child(0, 10, 1), linear_child(0, 10, 2)});
  ck_assert(zero.feasible);
  ck_assert_double_eq(zero.grants_w[0], 0.0);
  ck_assert_double_eq(zero.grants_w[1], 0.0);

  const AllocResult single = allocate(42.5, {linear_child(10, 100, 1)});
  ck_assert_double_eq(single.grants_w[0], 42.5);
  const AllocResult exact_floor = allocate(10.0, {linear_child(10, 100, 1)});
  ck_assert(exact_floor.feasible);
  ck_assert_double_eq(exact_floor.grants_w[0], 10.0);

  // A curve narrower than the range gains nothing beyond it; a wider one is cut.
  const std::vector<AllocChild> widths = {child(0, 100, GainCurve::linear(1, 10)),
                                          child(0, 20, GainCurve::linear(0.5, 500))};
  const AllocResult w = allocate(40.0, widths);
  ck_assert_double_eq(w.grants_w[0], 20.0);  // 10 W at slope 1; b's 20 W at 0.5; 10 W at 0
  ck_assert_double_eq(w.grants_w[1], 20.0);
}
END_TEST

START_TEST(flat_never_exceeds_awkward_budgets) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int round = 0; round < 2000; ++round) {
    const std::size_t n = 1 + rng() % 40;
    std::vector<AllocChild> kids;
    double floors = 0.0, caps = 0.0;
    const bool all_tied = round % 3 == 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double min_w = std::floor(unit(rng) * 100.0) / 10.0 + 0.1;
      const double max_w = min_w + unit(rng) * 100.0 / 3.0;
      const GainCurve curve =
          all_tied ? GainCurve::linear(0.1, max_w - min_w)
                   : GainCurve::from_segments({{(max_w - min_w) / 3.0, 0.3 * unit(rng) + 0.2},
                                               {(max_w - min_w) / 7.0, 0.1 * unit(rng)}});
      kids.push_back(child(min_w, max_w, curve));
      floors += min_w;
      caps += max_w;
    }
    const double budget = floors + (caps - floors) * unit(rng) / 1.3 + 1.0 / 3.0;
    const AllocResult r = allocate(budget, kids);
    ck_assert(r.feasible);
    assert_within_bounds(kids, r);
    ck_assert_msg(sum_in_order(r.grants_w) <= budget, "round %d: %.17g > %.17g", round,
                  sum_in_order(r.grants_w), budget);
    ck_assert(r.unallocated_w >= 0.0);
    // Nothing is wasted when the children could take more.
    if (budget < caps) ck_assert_double_eq_tol(sum_in_order(r.grants_w), budget, 1e-9);
    // Bit-identical when run again.
    ck_assert(allocate(budget, kids).grants_w == r.grants_w);
  }
}
END_TEST

START_TEST(flat_equals_brute_force_optimum) {
  std::mt19937 rng(11);
  for (int round = 0; round < 400; ++round) {
    const std::size_t n = 2 + rng() % 3;
    std::vector<AllocChild> kids;
    int floors = 0, caps = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const int min_w = static_cast<int>(rng() % 4);
      const int width = static_cast<int>(rng() % 7);
      kids.push_back(child(min_w, min_w + width, random_integer_curve(rng, width)));
      floors += min_w;
      caps += min_w + width;
    }
    const int budget = floors + static_cast<int>(rng() % static_cast<unsigned>(caps - floors + 3));
    const AllocResult r = allocate(budget, kids);
    ck_assert(r.feasible);
    assert_within_bounds(kids, r);
    ck_assert(sum_in_order(r.grants_w) <= budget);
    const double best = brute_force(kids, budget, nullptr);
    ck_assert_msg(std::fabs(total_gain(kids, r.grants_w) - best) < 1e-9,
                  "round %d: gain %.12g, optimum %.12g", round, total_gain(kids, r.grants_w), best);
  }
}
END_TEST

// ---------------------------------------------------------------- tree

START_TEST(tree_structure) {
  AllocTree t(0, kInf, "cluster");
  const NodeId rack = t.add_group(AllocTree::kRoot, 0, 500, "rack1");
  const NodeId leaf = t.add_leaf(rack, 10, 100, GainCurve::linear(1, 90), "n1.pkg0");
  const NodeId leaf2 = t.add_leaf(rack, 10, 100, GainCurve::linear(1, 90));
  ck_assert_uint_eq(t.size(), 4);
  ck_assert_uint_eq(t.add_leaf(leaf, 0, 1, {}), kNoNode);  // leaves have no children
  ck_assert_uint_eq(t.add_group(99, 0, 1), kNoNode);
  ck_assert_uint_eq(t.size(), 4);
  ck_assert(t.children(rack) == std::vector<NodeId>({leaf, leaf2}));
  ck_assert_uint_eq(t.parent(leaf), rack);
  ck_assert(t.is_leaf(leaf) && !t.is_leaf(rack));
  ck_assert_std_str_eq(t.describe(leaf), "n1.pkg0");
  ck_assert_std_str_eq(t.describe(leaf2), "node #3");
  ck_assert(!t.set_curve(rack, GainCurve::linear(1, 1)));
  ck_assert(t.set_curve(leaf, GainCurve::linear(2, 90)));
  ck_assert(t.set_limits(rack, 0, 150));
  ck_assert(!t.set_limits(42, 0, 1));
  ck_assert_double_eq(t.max_w(rack), 150.0);
}
END_TEST

// One allocator over trees whose shape changes, or stays while limits and curves change:
// the same grants as a new allocator's every time (it keeps what it derives from a shape
// only while the shape is the same).
START_TEST(tree_allocator_follows_shape_changes) {
  TreeAllocator kept;
  kept.set_threads(2, 1);
  const auto fresh = [](const AllocTree &t, double budget) {
    TreeAllocator a;
    a.set_threads(2, 1);
    return a.allocate(t, budget).grants_w;
  };
  AllocTree a;
  const NodeId rack = a.add_group(AllocTree::kRoot, 0, 150, "rack");
  a.add_leaf(rack, 10, 100, GainCurve::linear(3, 90));
  a.add_leaf(rack, 10, 100, GainCurve::linear(1, 90));
  a.add_leaf(AllocTree::kRoot, 10, 100, GainCurve::linear(2, 90));
  ck_assert(kept.allocate(a, 200).grants_w == fresh(a, 200));
  AllocTree b = a;  // the same shape: limits and curves of its own
  b.set_limits(rack, 0, 60);
  b.set_curve(4, GainCurve::linear(5, 90));
  ck_assert(kept.allocate(b, 200).grants_w == fresh(b, 200));
  // A node more in a, under the rack: another shape.
  const NodeId late = a.add_leaf(rack, 10, 100, GainCurve::linear(9, 90));
  const std::vector<double> g = kept.allocate(a, 200).grants_w;
  ck_assert(g == fresh(a, 200));
  ck_assert_uint_eq(g.size(), 6);
  ck_assert(g[late] > 10.0);  // the steepest leaf gets watts
  ck_assert(kept.allocate(b, 200).grants_w == fresh(b, 200));
  // A tree moved from: refused by name, and the allocator still sound afterwards.
  AllocTree c = std::move(b);
  const AllocResult r = kept.allocate(b, 200);  // NOLINT(bugprone-use-after-move)
  ck_assert(!r.feasible);
  ck_assert_contains(r.error, "no root");
  ck_assert(kept.allocate(c, 200).grants_w == fresh(c, 200));
}
END_TEST

START_TEST(tree_group_limit_and_floor) {
  AllocTree t;
  const NodeId pdu = t.add_group(AllocTree::kRoot, 0, 50, "pdu-a");
  const NodeId a = t.add_leaf(pdu, 0, 100, GainCurve::linear(5, 100));
  const NodeId b = t.add_leaf(pdu, 0, 100, GainCurve::linear(4, 100));
  const NodeId open = t.add_group(AllocTree::kRoot, 0, kInf, "pdu-b");
  const NodeId c = t.add_leaf(open, 0, 100, GainCurve::linear(1, 100));
  const AllocResult r = allocate_tree(t, 120.0);
  ck_assert(r.feasible);
  ck_assert_uint_eq(r.grants_w.size(), t.size());
  ck_assert_double_eq(r.grants_w[AllocTree::kRoot], 120.0);
  ck_assert_double_eq(r.grants_w[pdu], 50.0);  // its own limit, though its leaves gain more
  ck_assert_double_eq(r.grants_w[a], 50.0);
  ck_assert_double_eq(r.grants_w[b], 0.0);
  ck_assert_double_eq(r.grants_w[open], 70.0);
  ck_assert_double_eq(r.grants_w[c], 70.0);

  // A group floor forces watts into a low-gain subtree.
  AllocTree f;
  const NodeId must = f.add_group(AllocTree::kRoot, 60, kInf);
  const NodeId low = f.add_leaf(must, 0, 100, GainCurve::linear(0.1, 100));
  const NodeId high = f.add_leaf(AllocTree::kRoot, 0, 100, GainCurve::linear(9, 100));
  const AllocResult rf = allocate_tree(f, 100.0);
  ck_assert(rf.feasible);
  ck_assert_double_eq(rf.grants_w[must], 60.0);
  ck_assert_double_eq(rf.grants_w[low], 60.0);
  ck_assert_double_eq(rf.grants_w[high], 40.0);
  // The root's own limit caps what the tree takes.
  AllocTree capped(0, 80);
  capped.add_leaf(AllocTree::kRoot, 0, 100, GainCurve::linear(1, 100));
  const AllocResult rc = allocate_tree(capped, 100.0);
  ck_assert_double_eq(rc.grants_w[1], 80.0);
  ck_assert_double_eq(rc.unallocated_w, 20.0);
}
END_TEST

START_TEST(tree_infeasible_names_the_node) {
  AllocTree t;
  const NodeId rack = t.add_group(AllocTree::kRoot, 0, 100, "rack7");
  t.add_leaf(rack, 60, 100, GainCurve::linear(1, 40));
  t.add_leaf(rack, 60, 100, GainCurve::linear(1, 40));
  AllocResult r = allocate_tree(t, 1000.0);
  ck_assert(!r.feasible);
  ck_assert(r.grants_w.empty());
  ck_assert_uint_eq(r.failed_index, rack);
  ck_assert_contains(r.error, "rack7: its children's floors sum to 120 W, above its limit 100 W");

  AllocTree hungry;
  const NodeId g = hungry.add_group(AllocTree::kRoot, 300, kInf, "g");
  hungry.add_leaf(g, 0, 100, GainCurve::linear(1, 100));
  r = allocate_tree(hungry, 1000.0);
  ck_assert(!r.feasible);
  ck_assert_uint_eq(r.failed_index, g);
  ck_assert_contains(r.error, "g: its floor 300 W is above the 100 W its children can take");

  AllocTree deep;
  const NodeId d = deep.add_group(AllocTree::kRoot, 0, kInf);
  const NodeId bad = deep.add_leaf(d, 0, 10, GainCurve::from_segments({{1, 1}, {1, 3}}), "x");
  r = allocate_tree(deep, 5.0);
  ck_assert(!r.feasible);
  ck_assert_uint_eq(r.failed_index, bad);
  ck_assert_contains(r.error, "x: gain curve segment 1");

  AllocTree floor(50, kInf);
  floor.add_leaf(AllocTree::kRoot, 0, 100, GainCurve::linear(1, 100));
  r = allocate_tree(floor, 40.0);
  ck_assert(!r.feasible);
  ck_assert_contains(r.error, "below the floor 50 W of root");
}
END_TEST

// Of several bad nodes, the one reported is the one building by falling id meets first (a
// node's children have larger ids): the highest id among those whose children are sound. A
// group above a bad child is not checked itself. The same on any number of threads.
START_TEST(tree_infeasible_reports_the_first_by_falling_id) {
  for (std::size_t threads : {1, 2, 4}) {
    TreeAllocator a;
    a.set_threads(threads, 1);
    AllocTree t;
    const NodeId early = t.add_leaf(AllocTree::kRoot, 50, 10, GainCurve{}, "early");  // min > max
    const NodeId rack = t.add_group(AllocTree::kRoot, 0, 100, "rack");
    t.add_leaf(rack, 60, 100, GainCurve::linear(1, 40));
    t.add_leaf(rack, 60, 100, GainCurve::linear(1, 40));  // floors 120 W, above the 100 W
    AllocResult r = a.allocate(t, 1000.0);
    ck_assert(!r.feasible);
    ck_assert_uint_eq(r.failed_index, rack);
    ck_assert_contains(r.error, "rack: its children's floors sum to 120 W");

    // A bad leaf under the rack: the rack is not checked; the leaf has the highest id.
    const NodeId late = t.add_leaf(rack, 0, 10, GainCurve::from_segments({{1, 1}, {1, 3}}), "late");
    r = a.allocate(t, 1000.0);
    ck_assert_uint_eq(r.failed_index, late);
    ck_assert_contains(r.error, "late: gain curve segment 1");

    // Only the early leaf bad.
    AllocTree u;
    u.add_leaf(AllocTree::kRoot, 50, 10, GainCurve{}, "early");
    const NodeId ok_rack = u.add_group(AllocTree::kRoot, 0, 500, "rack");
    u.add_leaf(ok_rack, 60, 100, GainCurve::linear(1, 40));
    r = a.allocate(u, 1000.0);
    ck_assert_uint_eq(r.failed_index, early);
    ck_assert_contains(r.error, "early: ");
  }
}
END_TEST

START_TEST(tree_equal_gradients_equal_per_leaf) {
  // Groups of 3 and 1 leaves, all tied: each leaf gets the same, not each group.
  AllocTree t;
  const NodeId g1 = t.add_group(AllocTree::kRoot, 0, kInf);
  const NodeId g2 = t.add_group(AllocTree::kRoot, 0, kInf);
  std::vector<NodeId> leaves;
  for (int i = 0; i < 3; ++i) leaves.push_back(t.add_leaf(g1, 0, 100, GainCurve::linear(1, 100)));
  leaves.push_back(t.add_leaf(g2, 0, 100, GainCurve::linear(1, 100)));
  const AllocResult r = allocate_tree(t, 200.0);
  ck_assert(r.feasible);
  for (NodeId l : leaves) ck_assert_double_eq(r.grants_w[l], 50.0);
  ck_assert_double_eq(r.grants_w[g1], 150.0);
  ck_assert_double_eq(r.grants_w[g2], 50.0);
}
END_TEST

namespace {

// A random tree: root (maybe limited) -> groups (random limits) -> nodes -> 1-3 domains.
struct RandomTree {
  AllocTree tree;
  double budget_w = 0.0;
};

RandomTree random_tree(std::mt19937 &rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  RandomTree out;
  AllocTree &t = out.tree;
  double floors = 0.0, caps = 0.0;
  const int groups = 1 + static_cast<int>(rng() % 4);
  for (int g = 0; g < groups; ++g) {
    const NodeId group = t.add_group(AllocTree::kRoot, 0, kInf);
    double gfloor = 0.0, gcap = 0.0;
    const int nodes = static_cast<int>(rng() % 6);
    for (int n = 0; n < nodes; ++n) {
      const NodeId node = t.add_group(group, 0, kInf);
      double nfloor = 0.0, ncap = 0.0;
      const int domains = 1 + static_cast<int>(rng() % 3);
      for (int d = 0; d < domains; ++d) {
        const double min_w = 40.0 + unit(rng) * 30.0;
        const double max_w = min_w + unit(rng) * 130.0;
        const double slope = (rng() % 4 == 0) ? 0.5 : unit(rng);  // some ties
        t.add_leaf(node, min_w, max_w,
                   GainCurve::from_segments(
                       {{(max_w - min_w) * 0.4, slope}, {(max_w - min_w) * 0.6, slope * 0.3}}));
        nfloor += min_w;
        ncap += max_w;
      }
      // Node limits inside what its domains span, sometimes binding either way.
      const double nmax = rng() % 2 ? ncap : nfloor + (ncap - nfloor) * unit(rng);
      const double nmin = rng() % 3 ? 0.0 : nfloor + (nmax - nfloor) * unit(rng);
      t.set_limits(node, nmin, nmax);
      gfloor += std::max(nmin, nfloor);
      gcap += nmax;
    }
    if (rng() % 2) {
      const double gmax = gfloor + (gcap - gfloor) * unit(rng);
      t.set_limits(group, 0.0, gmax);
      gcap = gmax;
    }
    floors += gfloor;
    caps += gcap;
  }
  out.budget_w = floors + (caps - floors) * unit(rng) * 1.2 + unit(rng) / 7.0;
  return out;
}

// Every grant within its node's limits; children sum (in order) to at most the parent.
void assert_tree_invariants(const AllocTree &t, const AllocResult &r, double budget_w) {
  ck_assert(r.feasible);
  ck_assert_uint_eq(r.grants_w.size(), t.size());
  ck_assert(r.grants_w[AllocTree::kRoot] <= budget_w);
  ck_assert_double_eq_tol(r.grants_w[AllocTree::kRoot] + r.unallocated_w, budget_w, 1e-9);
  for (NodeId id = 0; id < t.size(); ++id) {
    const double g = r.grants_w[id];
    ck_assert_msg(g <= t.max_w(id), "node %u: %.17g above max %.17g", id, g, t.max_w(id));
    ck_assert_msg(g >= t.min_w(id) - 1e-9, "node %u: %.17g below min %.17g", id, g, t.min_w(id));
    if (t.is_leaf(id)) {
      ck_assert(g >= t.min_w(id));
      continue;
    }
    std::vector<double> kids;
    for (NodeId c : t.children(id)) kids.push_back(r.grants_w[c]);
    ck_assert_msg(sum_in_order(kids) <= g, "node %u: children %.17g above its grant %.17g", id,
                  sum_in_order(kids), g);
  }
}

}  // namespace

START_TEST(tree_randomized_invariants) {
  std::mt19937 rng(2024);
  TreeAllocator reused;
  TreeAllocator threaded;
  threaded.set_threads(3, 1);
  // The root's children split in chunks (as from 16,384 leaves on), on one thread and on
  // three: the same grants either way, and those of the one pass but for rounding (the
  // chunks' histograms are summed in another order).
  TreeAllocator chunked, chunked3;
  chunked.set_root_chunk_leaves(1);
  chunked3.set_root_chunk_leaves(1);
  chunked3.set_threads(3, 1);
  int feasible = 0;
  for (int round = 0; round < 500; ++round) {
    const RandomTree rt = random_tree(rng);
    const AllocResult r = allocate_tree(rt.tree, rt.budget_w);
    if (!r.feasible) {
      // Only possible when the budget is below the tree's floor.
      ck_assert_contains(r.error, "below the floor");
      continue;
    }
    ++feasible;
    assert_tree_invariants(rt.tree, r, rt.budget_w);
    // A reused allocator gives bit-identical answers, and so does one on threads (sibling
    // groups built and split on up to 3, leaves checked in chunks of one or more).
    ck_assert(reused.allocate(rt.tree, rt.budget_w).grants_w == r.grants_w);
    const AllocResult rt3 = threaded.allocate(rt.tree, rt.budget_w);
    ck_assert(rt3.grants_w == r.grants_w);
    ck_assert(rt3.unallocated_w == r.unallocated_w);
    const AllocResult c1 = chunked.allocate(rt.tree, rt.budget_w);
    assert_tree_invariants(rt.tree, c1, rt.budget_w);
    ck_assert(chunked3.allocate(rt.tree, rt.budget_w).grants_w == c1.grants_w);
    for (NodeId id = 0; id < rt.tree.size(); ++id)
      ck_assert_msg(std::fabs(c1.grants_w[id] - r.grants_w[id]) < 1e-6,
                    "round %d node %u: chunked %.17g, one pass %.17g", round, id, c1.grants_w[id],
                    r.grants_w[id]);
  }
  ck_assert(feasible > 400);
}
END_TEST

START_TEST(tree_equals_brute_force_optimum) {
  // Random trees up to three levels of groups deep (root -> groups -> subgroups -> leaves),
  // integer floors and caps at every level, 2-5 leaves with concave integer curves.
  std::mt19937 rng(99);
  int compared = 0;
  for (int round = 0; round < 600; ++round) {
    const auto limit = [&](double &lo, double &hi) {
      lo = rng() % 3 ? 0.0 : static_cast<double>(rng() % 6);
      hi = rng() % 2 ? kInf : lo + static_cast<double>(rng() % 9);
    };
    double root_lo = 0.0, root_hi = kInf;
    if (rng() % 3 == 0) limit(root_lo, root_hi);
    AllocTree t(root_lo, root_hi);
    std::vector<AllocChild> leaves;
    std::vector<NodeId> leaf_ids;
    const auto add_leaf = [&](NodeId parent) {
      const int min_w = static_cast<int>(rng() % 3);
      const int width = static_cast<int>(rng() % 5);
      leaves.push_back(child(min_w, min_w + width, random_integer_curve(rng, width)));
      leaf_ids.push_back(t.add_leaf(parent, min_w, min_w + width, leaves.back().curve));
    };
    const int groups = 1 + static_cast<int>(rng() % 2);
    for (int g = 0; g < groups && leaves.size() < 5; ++g) {
      double lo = 0.0, hi = 0.0;
      limit(lo, hi);
      const NodeId group = t.add_group(AllocTree::kRoot, lo, hi);
      const int subgroups = static_cast<int>(rng() % 3);
      for (int sg = 0; sg < subgroups && leaves.size() < 5; ++sg) {
        limit(lo, hi);
        const NodeId sub = t.add_group(group, lo, hi);
        for (int k = 1 + static_cast<int>(rng() % 2); k > 0 && leaves.size() < 5; --k)
          add_leaf(sub);
      }
      if (rng() % 2 && leaves.size() < 5) add_leaf(group);
    }
    if (leaves.size() < 2) add_leaf(AllocTree::kRoot);
    const int budget = static_cast<int>(rng() % 25);

    // Every group's limits hold for the sum of the leaves below it.
    const auto nested_ok = [&](const std::vector<int> &alloc) {
      std::vector<double> below(t.size(), 0.0);
      for (std::size_t i = 0; i < alloc.size(); ++i)
        for (NodeId v = t.parent(leaf_ids[i]); v != kNoNode; v = t.parent(v)) below[v] += alloc[i];
      for (NodeId v = 0; v < t.size(); ++v)
        if (!t.is_leaf(v) && (below[v] < t.min_w(v) || below[v] > t.max_w(v))) return false;
      return true;
    };
    const double best = brute_force(leaves, budget, nested_ok);
    const AllocResult r = allocate_tree(t, budget);
    ck_assert_msg(r.feasible == (best >= 0.0), "round %d: feasible %d, brute force %g (%s)", round,
                  r.feasible, best, r.error.c_str());
    if (!r.feasible) continue;
    ++compared;
    assert_tree_invariants(t, r, budget);
    std::vector<double> grants;
    for (NodeId id : leaf_ids) grants.push_back(r.grants_w[id]);
    ck_assert_msg(std::fabs(total_gain(leaves, grants) - best) < 1e-9,
                  "round %d: gain %.12g, optimum %.12g", round, total_gain(leaves, grants), best);
  }
  ck_assert(compared > 200);
}
END_TEST

// ---------------------------------------------------------------- parallel_tasks

// Every task runs exactly once, on a worker below the thread count, whatever the counts.
START_TEST(parallel_tasks_runs_each_task_once) {
  for (std::size_t threads : {0, 1, 2, 3, 8}) {
    for (std::size_t tasks : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> runs(tasks);
      std::atomic<bool> bad_worker{false};
      parallel_tasks(tasks, threads, [&](std::size_t t, std::size_t worker) {
        runs[t].fetch_add(1);
        if (worker >= std::max<std::size_t>(1, threads)) bad_worker = true;
      });
      for (std::size_t t = 0; t < tasks; ++t) ck_assert_int_eq(runs[t].load(), 1);
      ck_assert(!bad_worker.load());
    }
  }
}
END_TEST

// A task that throws does not stop the others; the lowest task's exception is rethrown once
// all have run.
START_TEST(parallel_tasks_rethrows_after_all_ran) {
  for (std::size_t threads : {1, 2, 4}) {
    std::vector<std::atomic<int>> runs(10);
    std::string caught;
    try {
      parallel_tasks(10, threads, [&](std::size_t t, std::size_t) {
        runs[t].fetch_add(1);
        if (t == 3 || t == 7) throw std::runtime_error("task " + std::to_string(t));
      });
    } catch (const std::runtime_error &e) {
      caught = e.what();
    }
    ck_assert_str_eq(caught.c_str(), "task 3");
    for (std::size_t t = 0; t < 10; ++t) ck_assert_int_eq(runs[t].load(), 1);
  }
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_allocator");
  TCase *curves = tcase_create("gain_curve");
  tcase_add_test(curves, curve_from_segments_normalises_and_validates);
  tcase_add_test(curves, curve_from_points);
  tcase_add_test(curves, curve_from_marginal_samples_takes_concave_majorant);
  tcase_add_test(curves, curve_from_marginal_function);
  suite_add_tcase(s, curves);
  TCase *flat = tcase_create("flat");
  tcase_set_timeout(flat, 60);
  tcase_add_test(flat, flat_highest_marginal_first);
  tcase_add_test(flat, flat_equal_gradients_split_evenly);
  tcase_add_test(flat, flat_budget_above_all_maxima);
  tcase_add_test(flat, flat_infeasible_is_reported_not_filled);
  tcase_add_test(flat, flat_edge_cases);
  tcase_add_test(flat, flat_never_exceeds_awkward_budgets);
  tcase_add_test(flat, flat_equals_brute_force_optimum);
  suite_add_tcase(s, flat);
  TCase *tree = tcase_create("tree");
  tcase_set_timeout(tree, 60);
  tcase_add_test(tree, tree_structure);
  tcase_add_test(tree, tree_allocator_follows_shape_changes);
  tcase_add_test(tree, tree_group_limit_and_floor);
  tcase_add_test(tree, tree_infeasible_names_the_node);
  tcase_add_test(tree, tree_infeasible_reports_the_first_by_falling_id);
  tcase_add_test(tree, tree_equal_gradients_equal_per_leaf);
  tcase_add_test(tree, tree_randomized_invariants);
  tcase_add_test(tree, tree_equals_brute_force_optimum);
  suite_add_tcase(s, tree);
  TCase *parallel = tcase_create("parallel");
  tcase_add_test(parallel, parallel_tasks_runs_each_task_once);
  tcase_add_test(parallel, parallel_tasks_rethrows_after_all_ran);
  suite_add_tcase(s, parallel);
  return pgtest::run_suite(s);
}
