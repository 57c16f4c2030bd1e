// The hierarchical (cluster) controller: configuration checks, water-filling across nodes,
// decrease-before-increase, budget drops, leases, silent nodes, report validation, and the
// safety invariant with real node controllers behind a lossy, delaying, reordering fake
// transport, with node hangs, partitions and restarts.
#include <check.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "libgradient/cluster_controller.hpp"
#include "libgradient/node_controller.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

ClusterConfig two_nodes(double budget_w = 500.0) {
  ClusterConfig c;
  c.budget_w = budget_w;
  c.nodes = {{"a", 100.0, 300.0, kNoGroup}, {"b", 100.0, 300.0, kNoGroup}};
  return c;
}

// A report that confirms the node's newest grant, runs at it, and wants watts at `slope` per
// watt above its floor.
struct HandNode {
  HandNode(const char *node_name) : name(node_name) {}  // NOLINT: {"a"} lists read well

  std::string name;
  double min_w = 100.0;
  double max_w = 300.0;
  double slope = 1.0;
  // Concave demand instead of linear: 2 x slope over its first 100 W, then slope.
  bool two_step = false;
  bool idle = false;
  bool steerable = true;
  double need_w = 100.0;
  // Width of its demand curve above need_w; < 0: up to max_w. Shorter: saturated (its cores
  // run at their top clock before its maximum: watts above buy nothing).
  double curve_w = -1.0;
  // >= 0: the report carries one steered job with this confidence (memory share 0.5), keyed
  // job (empty: the node's name + ".0").
  double confidence = -1.0;
  std::string job;
  // Non-empty: its demand curve, as given (slope, two_step and curve_w are not used).
  std::vector<GainSegment> segments;
  std::uint64_t incarnation = 0;  // of its agent: rises when the agent restarts
  std::uint64_t seq = 0;
  GrantMessage lease;
  bool have_lease = false;

  void take(const std::vector<GrantMessage> &grants) {
    for (const GrantMessage &g : grants)
      if (g.node == name) {
        lease = g;
        have_lease = true;
      }
  }
  NodeReport report(double now_s) {
    NodeReport r;
    r.node = name;
    r.incarnation = incarnation;
    r.report_seq = ++seq;
    r.sent_at_s = now_s;
    if (have_lease) {
      r.lease_epoch = lease.epoch;
      r.lease_seq = lease.seq;
      r.lease_grant_w = lease.grant_w;
      r.lease_expires_at_s = lease.expires_at_s;
    }
    r.effective_grant_w = have_lease ? lease.grant_w : min_w;
    r.min_w = min_w;
    r.max_w = max_w;
    r.need_w = need_w;
    r.caps_w = r.effective_grant_w;
    r.power_w = r.caps_w;
    r.idle = idle;
    r.steerable = steerable && !idle;
    const double width = curve_w >= 0.0 ? curve_w : max_w - need_w;
    if (r.steerable && !segments.empty())
      r.demand = GainCurve::from_segments(segments);
    else if (r.steerable)
      r.demand = two_step ? GainCurve::from_segments({{100.0, 2.0 * slope}, {width - 100.0, slope}})
                          : GainCurve::linear(slope, width);
    if (r.steerable && confidence >= 0.0) {
      JobSummary j;
      j.job = job.empty() ? name + ".0" : job;
      j.mode = JobMode::latency;
      j.valid = true;
      j.gain_per_w = slope;
      j.confidence = confidence;
      j.memory_share = 0.5;
      r.jobs.push_back(j);
    }
    return r;
  }
};

double grant_of(const std::vector<GrantMessage> &grants, const std::string &node) {
  for (const GrantMessage &g : grants)
    if (g.node == node) return g.grant_w;
  return kNaN;
}

// Each named node's grant is as given (within 1e-5 W).
void expect_grants(const std::vector<GrantMessage> &grants,
                   const std::vector<std::pair<std::string, double>> &want) {
  for (const auto &w : want)
    ck_assert_msg(std::fabs(grant_of(grants, w.first) - w.second) < 1e-5, "%s granted %g, not %g",
                  w.first.c_str(), grant_of(grants, w.first), w.second);
}

double sum_grants(const std::vector<GrantMessage> &grants) {
  double sum = 0.0;
  for (const GrantMessage &g : grants) sum += g.grant_w;
  return sum;
}

// Steps the controller and has every hand node confirm at once (a perfect network).
std::vector<GrantMessage> round_trip(ClusterController &cc, std::vector<HandNode> &nodes,
                                     double now_s) {
  const std::vector<GrantMessage> grants = cc.step(now_s);
  for (HandNode &n : nodes) {
    n.take(grants);
    ck_assert_std_str_eq(cc.on_report(n.report(now_s + 0.5), now_s + 0.5), "");
  }
  return grants;
}

}  // namespace

// ---------------------------------------------------------------- configuration

START_TEST(refuses_bad_configurations) {
  ClusterConfig c = two_nodes(150.0);
  ClusterController refused(c);
  ck_assert(!refused.ok());
  ck_assert_contains(refused.error(), "node floors sum to 200 W, above the budget 150 W");
  ck_assert(refused.step(0.0).empty());
  ck_assert_contains(refused.on_report(NodeReport{}, 0.0), "not configured");

  c = two_nodes();
  c.groups = {{"rack1", 150.0, kNoGroup}};
  c.nodes[0].group = c.nodes[1].group = 0;
  ck_assert_contains(ClusterController::check_config(c),
                     "group 'rack1': its nodes' floors sum to 200 W, above its limit 150 W");
  c = two_nodes();
  c.nodes[1].name = "a";
  ck_assert_contains(ClusterController::check_config(c), "node 1 ('a'): duplicate name");
  c = two_nodes();
  c.nodes[0].name.clear();
  ck_assert_contains(ClusterController::check_config(c), "node 0: empty name");
  c = two_nodes();
  c.nodes[0].floor_w = 400.0;
  ck_assert_contains(ClusterController::check_config(c), "node 0 ('a'): min_w 400 W is above");
  c = two_nodes();
  c.lease_s = 0.5;
  ck_assert_contains(ClusterController::check_config(c), "lease_s");
  c = two_nodes();
  c.groups = {{"g0", kInf, 1}, {"g1", kInf, kNoGroup}};
  ck_assert_contains(ClusterController::check_config(c), "group 'g0': parent must be an earlier");
  c = two_nodes();
  c.nodes[1].group = 3;
  ck_assert_contains(ClusterController::check_config(c), "group 3 does not exist");
  c = two_nodes();
  c.budget_w = kNaN;
  ck_assert_contains(ClusterController::check_config(c), "budget");
  c = two_nodes();
  c.step_threads = kMaxStepThreads + 1;
  ck_assert_contains(ClusterController::check_config(c), "step_threads 65 is above 64");
  c = two_nodes();
  c.step_thread_min_nodes = 0;
  ck_assert_contains(ClusterController::check_config(c), "step_thread_min_nodes");
  ck_assert_std_str_eq(ClusterController::check_config(two_nodes()), "");

  ClusterController cc(two_nodes());
  ck_assert(cc.ok());
  ck_assert_contains(cc.set_budget(150.0, 0.0), "below the nodes' floors (200 W); keeping 500 W");
  ck_assert_double_eq(cc.budget_w(), 500.0);
  ck_assert_contains(cc.set_budget(kInf, 0.0), "not finite");
  ck_assert_contains(cc.set_budget(-1.0, 0.0), "negative");
  ck_assert_std_str_eq(cc.set_budget(200.0, 0.0), "");
  ck_assert_double_eq(cc.budget_w(), 200.0);
}
END_TEST

// ---------------------------------------------------------------- allocation and moves

START_TEST(floors_until_nodes_report_then_water_filling) {
  ClusterController cc(two_nodes());
  std::vector<HandNode> nodes = {{"a"}, {"b"}};
  nodes[0].slope = 2.0;
  // Nothing known: every node counted at its maximum, granted its floor.
  std::vector<GrantMessage> g = cc.step(0.0);
  ck_assert_uint_eq(g.size(), 2);
  ck_assert_double_eq_tol(grant_of(g, "a"), 100.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 100.0, 1e-5);
  ck_assert_double_eq(cc.total_in_force_bound_w(0.0), 600.0);
  for (HandNode &n : nodes) {
    n.take(g);
    cc.on_report(n.report(0.5), 0.5);
  }
  ck_assert_double_eq(cc.total_in_force_bound_w(0.5), 200.0);
  // Confirmed: the steeper node fills first (300 W), the other takes the rest.
  for (double t = 1.0; t < 5.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
  ck_assert(sum_grants(g) <= 500.0);
  ck_assert(cc.total_in_force_bound_w(5.0) <= 500.0);
  const ClusterNodeStatus st = cc.node_status(0, 5.0);
  ck_assert_std_str_eq(st.name, "a");
  ck_assert(st.reported && !st.silent && st.steerable);
  ck_assert_double_eq(st.target_w, 300.0);
  ck_assert_uint_eq(st.confirmed_seq, g[0].seq);
}
END_TEST

START_TEST(decrease_before_increase) {
  ClusterConfig c = two_nodes();
  c.hysteresis = 0.0;  // slopes 2 vs 1 move watts only without hysteresis
  c.slow_confirm_periods = -1.0;  // lowered in the first step its target falls
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"a"}, {"b"}};
  nodes[0].slope = 2.0;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 5.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
  // The gradients swap. a is lowered at once; b's raise waits for a's confirmation.
  nodes[0].slope = 1.0;
  nodes[1].slope = 2.0;
  cc.on_report(nodes[0].report(5.5), 5.5);
  cc.on_report(nodes[1].report(5.5), 5.5);
  g = cc.step(6.0);
  ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
  ck_assert_double_eq_tol(cc.in_force_bound_w(0, 6.0), 300.0, 1e-5);  // until a confirms
  // a does not answer: b keeps waiting, however long.
  nodes[1].take(g);
  for (double t = 7.0; t < 12.0; t += 1.0) {
    cc.on_report(nodes[1].report(t - 0.5), t - 0.5);
    g = cc.step(t);
    nodes[1].take(g);
    ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
    ck_assert(cc.total_in_force_bound_w(t) <= 500.0);
  }
  // a confirms its lowered grant: the next step raises b.
  nodes[0].take(g);
  cc.on_report(nodes[0].report(12.5), 12.5);
  ck_assert_double_eq_tol(cc.in_force_bound_w(0, 12.5), 200.0, 1e-5);
  g = cc.step(13.0);
  ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
  ck_assert(cc.total_in_force_bound_w(13.0) <= 500.0);
}
END_TEST

START_TEST(a_dip_waits_for_a_second_step) {
  for (const bool hold : {true, false}) {
    ClusterConfig c = two_nodes();
    c.hysteresis = 0.0;
    c.slow_confirm_periods = hold ? 0.0 : -1.0;  // every node slow, or none
    ClusterController cc(c);
    std::vector<HandNode> nodes = {{"a"}, {"b"}};
    std::vector<GrantMessage> g;
    // Node k becomes the steeper; the nodes report it before the step at t.
    const auto steeper = [&](std::size_t k, double t) {
      nodes[k].slope = 2.0;
      nodes[1 - k].slope = 1.0;
      for (HandNode &n : nodes) ck_assert_std_str_eq(cc.on_report(n.report(t - 0.2), t - 0.2), "");
    };
    double t = 0.0;
    nodes[0].slope = 2.0;
    for (; t < 5.0; t += 1.0) g = round_trip(cc, nodes, t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
    // For one report b looks the steeper: a's target falls to 200 W and comes back.
    steeper(1, t);
    g = round_trip(cc, nodes, t);
    ck_assert_double_eq_tol(cc.node_status(0, t).target_w, 200.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "a"), hold ? 300.0 : 200.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);  // its raise waits either way
    steeper(0, t += 1.0);
    g = round_trip(cc, nodes, t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
    ck_assert(cc.total_in_force_bound_w(t + 0.5) <= 500.0 + 1e-6);
    // b stays the steeper: a is lowered at the second step (at once where no node is slow),
    // and b raised once a has confirmed.
    steeper(1, t += 1.0);
    g = round_trip(cc, nodes, t);
    ck_assert_double_eq_tol(grant_of(g, "a"), hold ? 300.0 : 200.0, 1e-5);
    g = round_trip(cc, nodes, t += 1.0);
    ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
    g = round_trip(cc, nodes, t += 1.0);
    ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
    ck_assert(cc.total_in_force_bound_w(t + 0.5) <= 500.0 + 1e-6);
    // A budget drop is obeyed in its first step, dip or not.
    steeper(0, t += 1.0);
    ck_assert_std_str_eq(cc.set_budget(400.0, t), "");
    g = cc.step(t);
    ck_assert(sum_grants(g) <= 400.0 + 1e-6);
    ck_assert(grant_of(g, "b") < 300.0 - 1.0);
  }
}
END_TEST

START_TEST(dips_held_only_where_decreases_are_slow) {
  // The default: dips held on nodes whose decreases take a third of a period or more to be
  // confirmed.
  // Nodes confirm `lag` after each step: a fifth of the 0.5 s period, half of it, or more
  // than one.
  for (const double lag : {0.1, 0.25, 0.6}) {
    ClusterConfig c = two_nodes();
    c.hysteresis = 0.0;
    c.period_s = 0.5;
    ClusterController cc(c);
    ck_assert(cc.config().slow_confirm_periods > 0.0);
    std::vector<HandNode> nodes = {{"a"}, {"b"}};
    std::vector<GrantMessage> g;
    const auto trip = [&](double t) {
      for (HandNode &n : nodes) ck_assert_std_str_eq(cc.on_report(n.report(t - 0.2), t - 0.2), "");
      g = cc.step(t);
      for (HandNode &n : nodes) {
        n.take(g);
        ck_assert_std_str_eq(cc.on_report(n.report(t + lag), t + lag), "");
      }
    };
    const auto steeper = [&](std::size_t k) {
      nodes[k].slope = 2.0;
      nodes[1 - k].slope = 1.0;
    };
    double t = 0.0;
    steeper(0);
    for (; t < 5.0; t += 1.0) trip(t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
    ck_assert(std::isnan(cc.node_status(0, t).confirm_s));  // never lowered yet
    // a's first decrease is not held (nothing measured yet); its confirmation is timed.
    steeper(1);
    trip(t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
    ck_assert_double_eq_tol(cc.node_status(0, t).confirm_s, lag, 1e-9);
    for (t += 1.0; t < 10.0; t += 1.0) trip(t);
    ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
    // b's first decrease, timed as well.
    steeper(0);
    trip(t);
    ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
    for (t += 1.0; t < 15.0; t += 1.0) trip(t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
    // Now a one-step dip of a: held only where a's decreases took half a period or more.
    steeper(1);
    trip(t);
    ck_assert_double_eq_tol(grant_of(g, "a"), lag > 0.2 ? 300.0 : 200.0, 1e-5);
    ck_assert(cc.total_in_force_bound_w(t + lag) <= 500.0 + 1e-6);
  }
}
END_TEST

START_TEST(a_falling_budget_keeps_the_grants_at_the_budget) {
  for (const bool spread : {true, false}) {
    ClusterConfig c = two_nodes(600.0);
    c.nodes.push_back({"c", 100.0, 300.0, kNoGroup});
    c.hysteresis = 0.0;
    c.slow_confirm_periods = spread ? 0.0 : -1.0;  // every node slow, or none
    ClusterController cc(c);
    std::vector<HandNode> nodes = {{"a"}, {"b"}, {"c"}};
    for (std::size_t k = 0; k < 3; ++k) nodes[k].slope = 3.0 - k;
    std::vector<GrantMessage> g;
    for (double t = 0.0; t < 6.0; t += 1.0) g = round_trip(cc, nodes, t);
    expect_grants(g, {{"a", 300.0}, {"b", 200.0}, {"c", 100.0}});
    // c becomes the steepest as the budget falls by 100 W: its raise must wait for the
    // decreases, which are confirmed later (c's target 300 W, a's and b's 100 W).
    nodes[0].slope = 1.0;
    nodes[2].slope = 4.0;
    for (HandNode &n : nodes) ck_assert_std_str_eq(cc.on_report(n.report(6.2), 6.2), "");
    ck_assert_std_str_eq(cc.set_budget(500.0, 6.3), "");
    g = cc.step(7.0);
    ck_assert_double_eq_tol(cc.node_status(2, 7.0).target_w, 300.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "c"), 100.0, 1e-5);  // not raised while over
    ck_assert(grant_of(g, "a") <= 300.0 + 1e-9);
    ck_assert(grant_of(g, "b") <= 200.0 + 1e-9);
    if (spread) {
      // a and b lowered by as much as the budget needs, each by the same share of the way
      // to its target (a: 300 -> 100, b: 200 -> 100; 100 W of 300 W: a third).
      ck_assert_double_eq_tol(sum_grants(g), 500.0, 1e-6);
      ck_assert(sum_grants(g) <= 500.0);
      ck_assert_double_eq_tol(grant_of(g, "a"), 300.0 - 200.0 / 3.0, 1e-5);
      ck_assert_double_eq_tol(grant_of(g, "b"), 200.0 - 100.0 / 3.0, 1e-5);
    } else {
      // All the way: 200 W of the budget are nobody's until a and b confirm.
      ck_assert_double_eq_tol(sum_grants(g), 300.0, 1e-6);
    }
    // Confirmed, the sum is within the budget; from there c is raised as the others fall.
    for (HandNode &n : nodes) {
      n.take(g);
      ck_assert_std_str_eq(cc.on_report(n.report(7.5), 7.5), "");
    }
    ck_assert(cc.total_in_force_bound_w(7.5) <= 500.0 + 1e-6);
    for (double t = 8.0; t < 14.0; t += 1.0) {
      g = round_trip(cc, nodes, t);
      ck_assert(cc.total_in_force_bound_w(t + 0.5) <= 500.0 + 1e-6);
    }
    ck_assert_double_eq_tol(grant_of(g, "c"), 300.0, 1e-5);
    ck_assert_double_eq_tol(sum_grants(g), 500.0, 1e-6);
  }
}
END_TEST

START_TEST(budget_drop_obeyed_within_one_step) {
  ClusterConfig c = two_nodes(600.0);
  c.nodes.push_back({"c", 100.0, 300.0, kNoGroup});
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"a"}, {"b"}, {"c"}};
  nodes[0].slope = 3.0;
  nodes[1].slope = 2.0;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 6.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(sum_grants(g), 600.0, 1e-6);
  ck_assert_std_str_eq(cc.set_budget(400.0, 6.2), "");
  g = cc.step(7.0);
  // Every grant that must fall is sent lowered in this step; none is raised.
  ck_assert(sum_grants(g) <= 400.0);
  ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 100.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "c"), 100.0, 1e-5);
  ck_assert(cc.total_in_force_bound_w(7.0) > 400.0);  // not yet confirmed
  for (HandNode &n : nodes) {
    n.take(g);
    cc.on_report(n.report(7.5), 7.5);
  }
  ck_assert(cc.total_in_force_bound_w(7.5) <= 400.0);
  // A rise is taken up as slack.
  cc.set_budget(700.0, 8.0);
  for (double t = 8.0; t < 14.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(sum_grants(g), 700.0, 1e-6);
}
END_TEST

START_TEST(leases_renewed_every_step) {
  ClusterConfig c = two_nodes();
  c.lease_s = 4.0;
  c.epoch = 9;
  ClusterController cc(c);
  std::uint64_t last = 0;
  for (double t = 0.0; t < 5.0; t += 1.0) {
    const std::vector<GrantMessage> g = cc.step(t);
    ck_assert_uint_eq(g.size(), 2);
    for (const GrantMessage &m : g) {
      ck_assert_double_eq(m.expires_at_s, t + 4.0);
      ck_assert_double_eq(m.lease_s, 4.0);
      ck_assert_double_eq(m.floor_w, 100.0);
      ck_assert_uint_eq(m.epoch, 9);
      ck_assert(m.seq > last);
      last = m.seq;
    }
  }
}
END_TEST

START_TEST(silent_nodes_stay_counted) {
  ClusterConfig c = two_nodes();
  c.lease_s = 3.0;
  c.hysteresis = 0.0;  // slopes 5 vs 2 move watts only without hysteresis
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"a"}, {"b"}};
  nodes[0].slope = 2.0;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 5.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
  // a stops answering; b wants more. a is never raised and stays counted at 300 W.
  nodes[1].slope = 5.0;
  for (double t = 5.0; t < 60.0; t += 1.0) {
    nodes[1].take(g);
    cc.on_report(nodes[1].report(t - 0.5), t - 0.5);
    g = cc.step(t);
    ck_assert(grant_of(g, "a") <= 300.0);
    ck_assert(grant_of(g, "b") <= 200.0);
    ck_assert_double_eq_tol(cc.in_force_bound_w(0, t), 300.0, 1e-5);
  }
  ck_assert(cc.node_status(0, 60.0).silent);
  // It re-registers (confirming the lowered grant it got): the watts move.
  nodes[0].take(g);
  cc.on_report(nodes[0].report(60.5), 60.5);
  ck_assert_double_eq_tol(cc.in_force_bound_w(0, 60.5), 200.0, 1e-5);
  g = cc.step(61.0);
  ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);

  // With reclaim_after_lease, a silent node's ended leases stop counting.
  c.reclaim_after_lease = true;
  ClusterController rc(c);
  std::vector<HandNode> again = {{"a"}, {"b"}};
  again[0].slope = 2.0;
  for (double t = 0.0; t < 5.0; t += 1.0) g = round_trip(rc, again, t);
  double t = 5.0;
  for (; t < 20.0; t += 1.0) {
    again[1].take(g);
    rc.on_report(again[1].report(t - 0.5), t - 0.5);
    g = rc.step(t);
  }
  ck_assert_double_eq(rc.in_force_bound_w(0, t), 100.0);  // its floor
}
END_TEST

START_TEST(nodes_without_steered_work) {
  ClusterConfig c;
  c.budget_w = 600.0;
  c.nodes = {{"idle", 100.0, 300.0, kNoGroup},
             {"plain", 100.0, 300.0, kNoGroup},
             {"small", 100.0, 300.0, kNoGroup},
             {"pa", 100.0, 300.0, kNoGroup}};
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"idle"}, {"plain"}, {"small"}, {"pa"}};
  nodes[0].idle = true;
  nodes[1].steerable = false;
  nodes[1].need_w = 280.0;  // more than its fair share (150 W)
  nodes[2].steerable = false;
  nodes[2].need_w = 120.0;
  nodes[3].slope = 1.0;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 8.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "idle"), 100.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "plain"), 150.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "small"), 120.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 230.0, 1e-5);
  ck_assert_double_eq_tol(cc.unallocated_w(), 0.0, 1e-9);
}
END_TEST

// slurmctld restarts while the nodes hold the old controller's leases: an idle node held
// at its idle cap (105 W, below its 120 W floor) so that the others could hold 295 W and
// 200 W of a 600 W budget. The new controller has not heard from those two yet, so the
// bounds sum above the budget; it must not raise the idle node to its floor until they
// have confirmed decreases (it did: 615 W in force, in an e2e run). And a lease never has
// the node fall back above its grant: an idle node's lease ends at its idle cap.
START_TEST(a_restarted_controller_raises_nothing_over_the_old_leases) {
  ClusterConfig c;
  c.budget_w = 600.0;
  c.epoch = 1;
  c.nodes = {{"n1", 120.0, 410.0, kNoGroup},
             {"n2", 120.0, 410.0, kNoGroup},
             {"n3", 120.0, 410.0, kNoGroup}};
  for (ClusterNodeConfig &n : c.nodes) n.idle_w = 105.0;
  ClusterController old(c);
  std::vector<HandNode> nodes = {{"n1"}, {"n2"}, {"n3"}};
  for (HandNode &n : nodes) {
    n.min_w = 100.0;
    n.max_w = 410.0;
  }
  nodes[0].slope = 2.0;
  nodes[0].need_w = 120.0;
  nodes[1].steerable = false;
  nodes[1].need_w = 200.0;
  nodes[2].idle = true;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 10.0; t += 1.0) g = round_trip(old, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "n1"), 295.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "n2"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "n3"), 105.0, 1e-5);
  for (const GrantMessage &m : g)
    ck_assert_double_eq_tol(m.floor_w, std::min(120.0, m.grant_w), 1e-9);
  const auto in_force = [&] {
    double sum = 0.0;
    for (const HandNode &n : nodes) sum += n.lease.grant_w;
    return sum;
  };
  // The new controller (a new epoch). The idle node reports first, with a job now (a plain
  // one: its target is its floor, 120 W).
  c.epoch = 2;
  ClusterController fresh(c);
  nodes[2].idle = false;
  nodes[2].steerable = false;
  nodes[2].need_w = 100.0;
  ck_assert_std_str_eq(fresh.on_report(nodes[2].report(9.6), 9.6), "");
  g = fresh.step(9.7);
  for (HandNode &n : nodes) n.take(g);
  ck_assert_msg(grant_of(g, "n3") <= 105.0 + 1e-9, "n3 raised to %g W over the old leases",
                grant_of(g, "n3"));
  ck_assert(in_force() <= 600.0 + 1e-9);
  // Then every node reports and confirms each grant at once: within the budget at every
  // step, and the node reaches its floor once the others' decreases are confirmed.
  for (double t = 10.0; t < 20.0; t += 1.0) {
    g = round_trip(fresh, nodes, t);
    ck_assert_msg(in_force() <= 600.0 + 1e-9, "%g W in force at %g s", in_force(), t);
  }
  ck_assert_double_eq_tol(grant_of(g, "n3"), 120.0, 1e-5);
}
END_TEST

// The whole-cluster semantics: idle nodes at their idle cap, plain nodes at a fixed fair
// share (even) or what they draw up to it (usage), power-aware nodes by gradient but never
// below their fair share for nothing.
START_TEST(idle_nodes_held_at_their_idle_cap) {
  ClusterConfig c;
  c.budget_w = 600.0;
  c.nodes = {{"idle", 100.0, 300.0, kNoGroup},
             {"idle2", 100.0, 300.0, kNoGroup},
             {"pa", 100.0, 300.0, kNoGroup}};
  c.nodes[0].idle_w = 60.0;  // idle2 keeps the default: its floor
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"idle"}, {"idle2"}, {"pa"}};
  nodes[0].idle = nodes[1].idle = true;
  nodes[0].min_w = 70.0;  // its domains cannot be capped below 70 W: held there
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 8.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "idle"), 70.0, 1e-5);
  nodes[0].min_w = 50.0;
  for (double t = 8.0; t < 12.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "idle"), 60.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "idle2"), 100.0, 1e-5);
  // What idle nodes leave goes to the power-aware one (up to its maximum).
  ck_assert_double_eq_tol(grant_of(g, "pa"), 300.0, 1e-5);
  ck_assert_double_eq_tol(cc.node_status(0, 12.0).idle_w, 60.0, 1e-9);
  ck_assert_double_eq_tol(cc.node_status(1, 12.0).idle_w, 100.0, 1e-9);
  // The node becomes busy: it leaves its idle cap (plain: its need, up to its fair share;
  // with "pa" at its maximum, the spare watts up to its fair share too).
  nodes[0].idle = false;
  nodes[0].steerable = false;
  nodes[0].need_w = 190.0;
  for (double t = 12.0; t < 20.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "idle"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 300.0, 1e-5);
  // A power-aware node that wants them comes first: with 20 W less budget, "pa" can no
  // longer reach its maximum, and the plain node is back at its need.
  ck_assert_std_str_eq(cc.set_budget(580.0, 20.0), "");
  for (double t = 20.0; t < 28.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 290.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "idle"), 190.0, 1e-5);
  ck_assert(sum_grants(g) <= 580.0 + 1e-6);
  ck_assert(sum_grants(g) <= 600.0 + 1e-6);
}
END_TEST

START_TEST(idle_cap_above_floor_refused) {
  ClusterConfig c = two_nodes();
  c.nodes[1].idle_w = 120.0;
  ClusterController cc(c);
  ck_assert(!cc.ok());
  ck_assert_contains(cc.error(), "node 1 ('b'): idle cap 120 W is not within 0..100 W (its floor)");
  c.nodes[1].idle_w = -1.0;
  ck_assert_contains(ClusterController::check_config(c), "idle cap -1 W");
  c.nodes[1].idle_w = 100.0;
  ck_assert_std_str_eq(ClusterController::check_config(c), "");
}
END_TEST

START_TEST(plain_nodes_even_or_usage) {
  for (PlainShare mode : {PlainShare::usage, PlainShare::even}) {
    ClusterConfig c;
    c.budget_w = 800.0;
    c.plain_share = mode;
    c.nodes = {{"light", 100.0, 300.0, kNoGroup},
               {"heavy", 100.0, 300.0, kNoGroup},
               {"pa", 100.0, 300.0, kNoGroup},
               {"pa2", 100.0, 300.0, kNoGroup}};
    ClusterController cc(c);
    std::vector<HandNode> nodes = {{"light"}, {"heavy"}, {"pa"}, {"pa2"}};
    nodes[0].steerable = nodes[1].steerable = false;
    nodes[0].need_w = 130.0;  // draws little
    nodes[1].need_w = 290.0;  // would take more than its fair share (200 W)
    nodes[3].slope = 2.0;
    std::vector<GrantMessage> g;
    for (double t = 0.0; t < 10.0; t += 1.0) g = round_trip(cc, nodes, t);
    ck_assert_double_eq_tol(cc.node_status(0, 10.0).fair_share_w, 200.0, 1e-6);
    // Never more than its fair share, whatever it wants.
    ck_assert_double_eq_tol(grant_of(g, "heavy"), 200.0, 1e-5);
    if (mode == PlainShare::even) {
      ck_assert_double_eq_tol(grant_of(g, "light"), 200.0, 1e-5);
      ck_assert_double_eq_tol(grant_of(g, "pa") + grant_of(g, "pa2"), 400.0, 1e-4);
    } else {
      // Usage: what it draws; the rest goes to power-aware work, the steeper first.
      ck_assert_double_eq_tol(grant_of(g, "light"), 130.0, 1e-5);
      ck_assert_double_eq_tol(grant_of(g, "pa2"), 300.0, 1e-5);
      ck_assert_double_eq_tol(grant_of(g, "pa"), 170.0, 1e-4);
    }
    ck_assert(sum_grants(g) <= 800.0 + 1e-6);
  }
}
END_TEST

START_TEST(power_aware_never_below_fair_share_for_nothing) {
  ClusterConfig c;
  c.budget_w = 600.0;
  c.nodes = {{"sat", 100.0, 300.0, kNoGroup},
             {"plain", 100.0, 300.0, kNoGroup},
             {"pa", 100.0, 300.0, kNoGroup}};
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"sat"}, {"plain"}, {"pa"}};
  // A power-aware node whose curve ends early (its cores are saturated at 130 W: 30 W of
  // demand above its 100 W need) and another that wants little more either.
  nodes[0].curve_w = 30.0;
  nodes[1].steerable = false;
  nodes[1].need_w = 120.0;
  nodes[2].curve_w = 180.0;  // wants watts up to 280 W
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 10.0; t += 1.0) g = round_trip(cc, nodes, t);
  // "pa" gains from watts up to 280 W, "sat" from none above 130 W; 480 W are theirs. "sat"
  // still gets its fair share (200 W), as much as it would without opting in: the watts it
  // cannot use go to "pa" only as far as pa gains from them, and what nobody gains from is
  // its own first, up to its fair share.
  ck_assert_double_eq_tol(grant_of(g, "pa"), 280.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "sat"), 200.0, 1e-4);
  // A node's own maximum below its fair share: that is all it gets.
  nodes[0].max_w = 130.0;
  for (double t = 10.0; t < 14.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "sat"), 130.0, 1e-5);
  nodes[0].curve_w = nodes[2].curve_w = -1.0;
  // With room to its maximum, the saturated node is topped up to its fair share.
  nodes[0].max_w = 300.0;
  nodes[2].max_w = 300.0;
  nodes[0].slope = 1e-3;  // a real but low gradient
  nodes[2].slope = 0.0;   // a curve that gains nothing
  for (double t = 14.0; t < 20.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "plain"), 120.0, 1e-5);
  // "sat" has a positive gradient everywhere: it takes watts up to its maximum, some of
  // them below "pa"'s fair share (gains above nothing); "pa" gets the rest.
  ck_assert_double_eq_tol(grant_of(g, "sat"), 300.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 180.0, 1e-4);
  // Less demand from "sat": "pa" is topped up to its fair share, not left short. What
  // nobody gains from is the plain node's next, up to its fair share (kPlainSpareGain),
  // before the zero-gain tail of pa's curve: 150 W for "plain", 200 W for "pa".
  nodes[0].max_w = 250.0;
  for (double t = 20.0; t < 30.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "sat"), 250.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 200.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "plain"), 150.0, 1e-4);
  ck_assert_double_eq_tol(cc.unallocated_w(), 0.0, 1e-4);
  // Never beyond its fair share: with "sat" back at 130 W and "pa" at its maximum of
  // 200 W, the plain node gets its fair share, and 70 W stay unallocated.
  nodes[0].max_w = 130.0;
  nodes[2].max_w = 200.0;
  nodes[2].slope = 1e-13;
  for (double t = 30.0; t < 40.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 200.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "plain"), 200.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "plain"), cc.node_status(1, 40.0).fair_share_w, 1e-4);
  ck_assert_double_eq_tol(cc.unallocated_w(), 70.0, 1e-4);
  nodes[2].max_w = 300.0;
  nodes[0].max_w = 300.0;
  // A steeper power-aware node takes watts below the other's fair share: that is the deal.
  nodes[2].slope = 5.0;
  for (double t = 40.0; t < 50.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "pa"), 300.0, 1e-4);
  ck_assert_double_eq_tol(grant_of(g, "sat"), 180.0, 1e-4);
  ck_assert(grant_of(g, "sat") < cc.node_status(0, 50.0).fair_share_w);
  ck_assert(sum_grants(g) <= 600.0 + 1e-6);
}
END_TEST

// The fair share is the budget split evenly over the nodes' ranges: every node at the same
// share of its range above its floor (a node of four sockets gets four times what one of
// one socket gets), and a group at its limit splits that limit the same way.
START_TEST(fair_share_is_the_same_share_of_every_nodes_range) {
  ClusterConfig c;
  c.groups = {{"pdu", 900.0, kNoGroup}};
  c.nodes = {
      {"one", 100.0, 280.0, 0}, {"four", 400.0, 1120.0, 0}, {"free", 100.0, 280.0, kNoGroup}};
  // Budget 1000: the pdu's limit does not bind; share f = 400 / 1080 of every range.
  c.budget_w = 1000.0;
  {
    ClusterController cc(c);
    const double f = 400.0 / 1080.0;
    ck_assert_double_eq_tol(cc.node_status(0, 0.0).fair_share_w, 100.0 + f * 180.0, 1e-6);
    ck_assert_double_eq_tol(cc.node_status(1, 0.0).fair_share_w, 400.0 + f * 720.0, 1e-6);
    ck_assert_double_eq_tol(cc.node_status(2, 0.0).fair_share_w, 100.0 + f * 180.0, 1e-6);
  }
  // Budget 2000: the node outside the pdu at its maximum, the pdu at its 900 W, split at
  // share 400 / 900 of its nodes' ranges.
  c.budget_w = 2000.0;
  ClusterController cc(c);
  ck_assert_double_eq_tol(cc.node_status(2, 0.0).fair_share_w, 280.0, 1e-6);
  ck_assert_double_eq_tol(cc.node_status(0, 0.0).fair_share_w, 100.0 + 180.0 * 4.0 / 9.0, 1e-6);
  ck_assert_double_eq_tol(cc.node_status(1, 0.0).fair_share_w, 400.0 + 720.0 * 4.0 / 9.0, 1e-6);
  // A budget change recomputes them.
  ck_assert(cc.set_budget(1000.0, 1.0).empty());
  ck_assert_double_eq_tol(cc.node_status(1, 1.0).fair_share_w, 400.0 + 720.0 * 400.0 / 1080.0,
                          1e-6);
}
END_TEST

START_TEST(group_limits_hold) {
  ClusterConfig c;
  c.budget_w = 1000.0;
  c.groups = {{"pdu", 350.0, kNoGroup}};
  c.nodes = {{"a", 100.0, 300.0, 0}, {"b", 100.0, 300.0, 0}, {"c", 100.0, 300.0, kNoGroup}};
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"a"}, {"b"}, {"c"}};
  nodes[0].slope = 3.0;
  nodes[1].slope = 2.0;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 6.0; t += 1.0) {
    g = round_trip(cc, nodes, t);
    ck_assert(grant_of(g, "a") + grant_of(g, "b") <= 350.0);
  }
  ck_assert_double_eq_tol(grant_of(g, "a"), 250.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 100.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "c"), 300.0, 1e-5);
  ck_assert(cc.group_in_force_bound_w(0, 6.0) <= 350.0);
}
END_TEST

START_TEST(reports_are_checked) {
  ClusterController cc(two_nodes());
  HandNode a{"a"};
  NodeReport r = a.report(0.0);
  ck_assert_std_str_eq(cc.on_report(r, 0.0), "");
  ck_assert_contains(cc.on_report(r, 0.1), "not newer");
  NodeReport other = r;
  other.node = "zz";
  ck_assert_contains(cc.on_report(other, 0.1), "unknown node 'zz'");
  // With the index its caller looked up: another node's index, or none, is refused.
  ck_assert_contains(cc.on_report(other, 0.1, 1), "report from 'zz' given as node 'b'");
  ck_assert_contains(cc.on_report(other, 0.1, 2), "report from 'zz' given as node 2");
  ck_assert_contains(cc.on_report(a.report(0.1), 0.1, 1), "given as node 'b'");
  ck_assert_contains(cc.on_report(a.report(0.1), 0.1, kNoIndex), "given as node");
  ck_assert_std_str_eq(cc.on_report(a.report(0.15), 0.15, cc.node_index("a")), "");
  NodeReport bad = a.report(0.2);
  bad.caps_w = kNaN;
  ck_assert_contains(cc.on_report(bad, 0.2), "power figure");
  bad = a.report(0.3);
  bad.demand = GainCurve::from_segments({{1, 1}, {1, 2}});
  ck_assert_contains(cc.on_report(bad, 0.3), "demand curve");
  bad = a.report(0.4);
  bad.power_w = -3.0;
  ck_assert_contains(cc.on_report(bad, 0.4), "measured power");
  // A restarted agent (higher incarnation) starts its report numbers again.
  NodeReport restarted = a.report(0.5);
  restarted.incarnation = 1;
  restarted.report_seq = 1;
  ck_assert_std_str_eq(cc.on_report(restarted, 0.5), "");
  // A lease this controller never sent is not taken as confirmed.
  NodeReport forged = a.report(0.6);
  forged.incarnation = 1;
  forged.lease_epoch = 1;
  forged.lease_seq = 77;
  forged.lease_grant_w = 120.0;
  forged.caps_w = 120.0;
  ck_assert_std_str_eq(cc.on_report(forged, 0.6), "");
  ck_assert_uint_eq(cc.node_status(0, 0.6).confirmed_seq, 0);
}
END_TEST

// An agent that restarts with an older incarnation than the last report's (its start time:
// the node's clock stepped back across the restart) was refused for its whole life, and the
// controller never learnt the caps it started with (here its maximum, after a reboot): no
// slack must be granted from watts the node is using. Its new session makes its reports
// count again.
START_TEST(an_agent_whose_clock_stepped_back_is_heard_from_its_new_session) {
  ClusterController cc(two_nodes());
  std::vector<HandNode> nodes = {{"a"}, {"b"}};
  for (HandNode &n : nodes) n.incarnation = 5000000;
  nodes[1].slope = 3.0;  // b wants the watts
  for (double t = 0.0; t < 4.0; t += 1.0) round_trip(cc, nodes, t);
  const double before = cc.in_force_bound_w(0, 4.0);
  ck_assert(before < 300.0);
  // a's agent restarts with incarnation 1000 and finds the caps at its maximum.
  HandNode a{"a"};
  a.incarnation = 1000;
  NodeReport r = a.report(4.2);
  r.caps_w = r.effective_grant_w = r.lease_grant_w = 300.0;
  ck_assert_contains(cc.on_report(r, 4.2), "incarnation 1000 is older than the last accepted one");
  ck_assert_double_eq(cc.in_force_bound_w(0, 4.2), before);  // unheard: the old bound
  // Its new session: heard, counted at the caps it found, ordered from there.
  ck_assert(cc.new_session("a", 1000));
  ck_assert(!cc.new_session("zz", 1));
  ck_assert_std_str_eq(cc.on_report(r, 4.3), "");
  ck_assert_double_eq(cc.in_force_bound_w(0, 4.3), 300.0);
  ck_assert_contains(cc.on_report(r, 4.4), "not newer");
  // With a known at 300 W, b is not raised: both are lowered until the sum is back within.
  const double b_before = cc.in_force_bound_w(1, 5.0);
  const std::vector<GrantMessage> g = cc.step(5.0);
  ck_assert(grant_of(g, "b") <= b_before + 1e-9);
  ck_assert(sum_grants(g) <= 500.0 + 1e-6);
  nodes[0] = a;
  for (HandNode &n : nodes) {
    n.take(g);
    ck_assert_std_str_eq(cc.on_report(n.report(5.5), 5.5), "");
  }
  round_trip(cc, nodes, 6.0);
  ck_assert(cc.in_force_bound_w(0, 6.6) + cc.in_force_bound_w(1, 6.6) <= 500.0 + 1e-6);
  // A reconnect of the same agent (not older): nothing to say.
  ck_assert(!cc.new_session("a", 1000));
}
END_TEST

// ---------------------------------------------------------------- the invariant

namespace {

// A message on its way, delivered at `at` (in-flight order is random: reordering).
template <class Msg>
struct Link {
  struct Flight {
    double at;
    std::uint64_t order;
    Msg msg;
  };
  std::vector<Flight> flights;
  std::uint64_t next = 0;

  void send(const Msg &m, double now_s, std::mt19937 &rng, double loss, double max_delay_s) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    if (unit(rng) < loss) return;
    const int copies = unit(rng) < 0.03 ? 2 : 1;  // duplicates
    for (int k = 0; k < copies; ++k)
      flights.push_back({now_s + max_delay_s * unit(rng), next++, m});
  }
  std::vector<Msg> due(double now_s) {
    std::vector<Flight> ready;
    std::vector<Flight> later;
    for (Flight &f : flights) (f.at <= now_s ? ready : later).push_back(std::move(f));
    flights = std::move(later);
    std::sort(ready.begin(), ready.end(), [](const Flight &a, const Flight &b) {
      return a.at != b.at ? a.at < b.at : a.order < b.order;
    });
    std::vector<Msg> out;
    for (Flight &f : ready) out.push_back(std::move(f.msg));
    return out;
  }
};

// A node: its hardware (caps in force) and its agent (a real NodeController), which may
// hang (no steps, no messages), be cut off (steps, but no messages) or restart.
struct FakeNode {
  std::string name;
  std::vector<double> dmin, dmax, m;
  std::vector<double> caps;  // in force on the hardware
  std::unique_ptr<NodeController> agent;
  std::uint64_t incarnation = 0;
  double floor_w = 0.0;
  double hung_until = -1.0;
  double cut_until = -1.0;
  bool busy = true;

  void start(double now_s, std::uint64_t seed) {
    NodeControllerParams p;
    p.incarnation = ++incarnation;
    p.started_at_s = now_s;
    p.floor_w = floor_w;
    p.seed = seed;
    agent = std::make_unique<NodeController>(name, p);
  }
  double caps_sum() const {
    double s = 0.0;
    for (double c : caps) s += c;
    return s;
  }
  NodeInputs inputs(double now_s) const {
    const PowerModel model{0.3 * 200.0, 200.0, 3.0e9, 1.0};
    NodeInputs in;
    in.now_s = now_s;
    for (std::size_t d = 0; d < caps.size(); ++d) {
      DomainInput di;
      di.name = "pkg" + std::to_string(d);
      di.min_cap_w = dmin[d];
      di.max_cap_w = dmax[d];
      di.cap_w = caps[d];
      di.power_w = std::min(caps[d], dmax[d] * 0.97);
      di.model = model;
      in.domains.push_back(di);
      if (!busy) continue;
      const double f = model.freq_at_hz(di.power_w);
      const double tm = m[d] / (1.0 - m[d]) / model.f_max_hz;
      const double t = 1.0 / f + tm;
      JobInput job;
      job.key = "job" + std::to_string(d);
      job.mode = d % 2 ? JobMode::latency : JobMode::throughput;
      JobDomainInput jd;
      jd.domain = d;
      jd.cpus = 4.0;
      jd.counters.interval_s = 1.0;
      jd.counters.task_clock_s = 4.0 * (d % 2 ? 0.7 : 1.0);
      jd.counters.cycles = jd.counters.task_clock_s * f;
      jd.counters.instructions = jd.counters.task_clock_s / t;
      jd.counters.stall_cycles = *jd.counters.cycles * tm / t;
      job.domains.push_back(jd);
      in.jobs.push_back(job);
    }
    return in;
  }
};

struct ProtocolRun {
  bool reclaim = false;
  double loss = 0.15;
  double max_delay_s = 2.5;
  // release() after the reports of each delivery, as the controller's service calls it.
  bool release = false;
  unsigned step_threads = 1;
  std::size_t step_thread_min_nodes = 4096;
  // When set: every grant the controller sends, as text, in the order sent.
  std::vector<std::string> *transcript = nullptr;
  // Steps into one vector kept from step to step (as the controller service does), which
  // starts with stale grants of other nodes; else each step returns a new one.
  bool kept_vector = false;
};

std::string grant_text(const GrantMessage &g) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s %.17g %.17g %.17g %.17g %llu %llu", g.node.c_str(), g.grant_w,
                g.floor_w, g.share_w, g.expires_at_s, static_cast<unsigned long long>(g.epoch),
                static_cast<unsigned long long>(g.seq));
  return buf;
}

// Runs a random cluster for `ticks` control periods and checks, after every event:
// - soundness: every node's caps in force are within the controller's bound for it;
// - no event but a step raises the sum of bounds, and a step never raises it past the
//   budget (or a group's limit), nor at all while it is above;
// - every agent's caps fit its effective grant.
// Then a calm phase (no loss, all agents up) must bring the sum of bounds within the budget.
void run_protocol(std::uint32_t seed, const ProtocolRun &opt) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ClusterConfig c;
  c.lease_s = 3.0;
  c.silent_after_s = 3.0;
  c.clock_skew_s = 0.0;  // one clock in this test
  c.reclaim_after_lease = opt.reclaim;
  c.epoch = 1 + seed % 5;
  c.step_threads = opt.step_threads;
  c.step_thread_min_nodes = opt.step_thread_min_nodes;
  const std::size_t groups = rng() % 4;
  for (std::size_t g = 0; g < groups; ++g)
    c.groups.push_back({"g" + std::to_string(g), kInf, g > 0 && rng() % 2 ? g - 1 : kNoGroup});
  std::vector<FakeNode> nodes(4 + rng() % 9);
  double floors = 0.0, maxes = 0.0;
  std::vector<double> group_floor(groups, 0.0), group_max(groups, 0.0);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    FakeNode &n = nodes[i];
    n.name = "n" + std::to_string(i);
    const std::size_t doms = 1 + rng() % 2;
    double lo = 0.0, hi = 0.0;
    for (std::size_t d = 0; d < doms; ++d) {
      n.dmin.push_back(40.0 + 20.0 * unit(rng));
      n.dmax.push_back(120.0 + 80.0 * unit(rng));
      n.m.push_back(0.05 + 0.9 * unit(rng));
      lo += n.dmin.back();
      hi += n.dmax.back();
    }
    n.caps = n.dmax;  // the admin's settings: uncapped
    n.floor_w = lo + 20.0 * unit(rng);
    const std::size_t group = groups > 0 && rng() % 3 ? rng() % groups : kNoGroup;
    c.nodes.push_back({n.name, n.floor_w, hi, group});
    floors += n.floor_w;
    maxes += hi;
    for (std::size_t g = group; g != kNoGroup; g = c.groups[g].parent) {
      group_floor[g] += n.floor_w;
      group_max[g] += hi;
    }
    n.start(0.0, seed * 100 + i);
  }
  for (std::size_t g = 0; g < groups; ++g)
    if (rng() % 2) c.groups[g].max_w = group_floor[g] + (group_max[g] - group_floor[g]) * unit(rng);
  c.budget_w = floors + (maxes - floors) * unit(rng);
  ClusterController cc(c);
  // The step's grants. Kept from step to step under opt.kept_vector, starting with stale
  // grants that the first step must replace; else each step's new vector.
  std::vector<GrantMessage> grants(3);
  for (GrantMessage &g : grants) {
    g.node = "stale";
    g.grant_w = 1e9;
  }
  ck_assert_msg(cc.ok(), "%s", cc.error().c_str());

  Link<GrantMessage> down;
  Link<NodeReport> up;
  const double tol = 1e-6;
  const auto bounds_sum = [&](double now) { return cc.total_in_force_bound_w(now); };
  const auto check_sound = [&](double now) {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      ck_assert_msg(nodes[i].caps_sum() <= cc.in_force_bound_w(i, now) + tol,
                    "seed %u t %g: node %zu caps %.9g above its bound %.9g", seed, now, i,
                    nodes[i].caps_sum(), cc.in_force_bound_w(i, now));
  };
  const auto group_sums = [&](double now) {
    std::vector<double> s(groups);
    for (std::size_t g = 0; g < groups; ++g) s[g] = cc.group_in_force_bound_w(g, now);
    return s;
  };

  const int ticks = 150;
  for (int k = 0; k < 2 * (ticks + 60); ++k) {
    const double now = 0.5 * k;
    const bool calm = k >= 2 * ticks;
    const double loss = calm ? 0.0 : opt.loss;
    const double delay = calm ? 0.0 : opt.max_delay_s;
    // Deliveries.
    double before = bounds_sum(now);
    for (const NodeReport &r : up.due(now)) {
      cc.on_report(r, now);
      const double after = bounds_sum(now);
      ck_assert_msg(after <= before + tol, "seed %u t %g: a report raised the bounds %.9g -> %.9g",
                    seed, now, before, after);
      before = after;
    }
    if (opt.release) {
      const double sum_before = bounds_sum(now);
      const std::vector<double> g_before = group_sums(now);
      for (const GrantMessage &g : cc.release(now)) {
        if (opt.transcript) opt.transcript->push_back("release " + grant_text(g));
        down.send(g, now, rng, loss, delay);
      }
      // Raises only, within the budget and every group's limit.
      const double sum_after = bounds_sum(now);
      ck_assert_msg(sum_after <= std::max(sum_before, cc.budget_w()) + tol,
                    "seed %u t %g: release raised the bounds %.9g -> %.9g (budget %.9g)", seed,
                    now, sum_before, sum_after, cc.budget_w());
      const std::vector<double> g_after = group_sums(now);
      for (std::size_t g = 0; g < groups; ++g)
        ck_assert(g_after[g] <= std::max(g_before[g], c.groups[g].max_w) + tol);
      check_sound(now);
    }
    for (const GrantMessage &g : down.due(now)) {
      FakeNode &n = nodes[cc.node_index(g.node)];
      if (now < n.hung_until || now < n.cut_until) continue;  // lost on the way in
      n.agent->on_grant(g, now);
    }
    check_sound(now);
    if (k % 2 == 0) {
      // The controller's period; now and then the budget changes (sometimes refused).
      if (!calm && rng() % 15 == 0)
        cc.set_budget(floors * 0.9 + (maxes - floors * 0.9) * unit(rng), now);
      const double sum_before = bounds_sum(now);
      const std::vector<double> g_before = group_sums(now);
      if (opt.kept_vector) {
        cc.step(now, grants);
      } else {
        grants = cc.step(now);
      }
      for (const GrantMessage &g : grants) {
        if (opt.transcript) opt.transcript->push_back(grant_text(g));
        down.send(g, now, rng, loss, delay);
      }
      const double sum_after = bounds_sum(now);
      const double budget = cc.budget_w();
      if (sum_after > budget + tol)
        ck_assert_msg(sum_after <= sum_before + tol,
                      "seed %u t %g: bounds rose to %.9g while above the budget %.9g", seed, now,
                      sum_after, budget);
      else
        ck_assert(sum_before > budget + tol || sum_after <= budget + tol);
      const std::vector<double> g_after = group_sums(now);
      for (std::size_t g = 0; g < groups; ++g)
        if (g_after[g] > c.groups[g].max_w + tol) ck_assert(g_after[g] <= g_before[g] + tol);
      check_sound(now);
    } else {
      // The nodes' period.
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        FakeNode &n = nodes[i];
        if (!calm) {
          const double r = unit(rng);
          if (r < 0.01 && !opt.reclaim)
            n.hung_until = now + 20.0 * unit(rng);
          else if (r < 0.02)
            n.cut_until = now + 20.0 * unit(rng);
          else if (r < 0.025 && now >= n.hung_until)
            n.start(now, seed * 100 + i + 7 * k);
          else if (r < 0.05)
            n.busy = !n.busy;
          else if (r < 0.07)
            n.m[rng() % n.m.size()] = 0.05 + 0.9 * unit(rng);
        }
        if (now < n.hung_until) continue;
        const NodeDecision d = n.agent->step(n.inputs(now));
        ck_assert_msg(d.ok, "%s", d.error.c_str());
        double sum = 0.0;
        for (double cap : d.caps_w) sum += cap;
        ck_assert(sum <= n.agent->effective_grant_w(now) + tol);
        n.caps = d.caps_w;
        check_sound(now);
        if (now >= n.cut_until) up.send(d.report, now, rng, loss, delay);
      }
    }
  }
  // Calm for 60 periods: everything confirmed, within the budget and every group limit.
  const double end = 0.5 * (2 * (ticks + 60));
  ck_assert_msg(bounds_sum(end) <= cc.budget_w() + tol, "seed %u: bounds %.9g, budget %.9g", seed,
                bounds_sum(end), cc.budget_w());
  double truth = 0.0;
  for (const FakeNode &n : nodes) truth += n.caps_sum();
  ck_assert(truth <= cc.budget_w() + tol);
  for (std::size_t g = 0; g < groups; ++g)
    ck_assert(cc.group_in_force_bound_w(g, end) <= c.groups[g].max_w + tol);
}

}  // namespace

START_TEST(random_protocol_keeps_the_budget) {
  for (std::uint32_t seed = 1; seed <= 40; ++seed) run_protocol(seed, ProtocolRun{});
}
END_TEST

// ClusterConfig::step_threads: the per-node loops of step() and release() split over threads
// (here down to one node each) send the same grants, bit for bit, as on one thread, through
// the random protocol's losses, delays, restarts and budget changes.
START_TEST(random_protocol_with_release_keeps_the_budget) {
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    ProtocolRun run;
    run.release = true;
    run_protocol(seed, run);
  }
}
END_TEST

// Runs the random protocol with `a` and with `b` on one seed and asserts that both sent the
// same grants in the same order (`b_is` says how b differs); returns a's transcript.
std::vector<std::string> same_grants(std::uint32_t seed, ProtocolRun a, ProtocolRun b,
                                     const std::string &b_is) {
  std::vector<std::string> ta, tb;
  a.transcript = &ta;
  b.transcript = &tb;
  run_protocol(seed, a);
  run_protocol(seed, b);
  ck_assert_uint_gt(ta.size(), 500);
  ck_assert_uint_eq(ta.size(), tb.size());
  for (std::size_t i = 0; i < ta.size(); ++i)
    ck_assert_msg(ta[i] == tb[i], "seed %u grant %zu: '%s', %s '%s'", seed, i, ta[i].c_str(),
                  b_is.c_str(), tb[i].c_str());
  return ta;
}

// step() into a vector the caller keeps (the controller service's) sends what a step
// returning a new vector does, grant for grant: the stale content is gone.
START_TEST(step_into_a_kept_vector_sends_the_same_grants) {
  for (std::uint32_t seed = 1; seed <= 6; ++seed) {
    ProtocolRun a;
    a.release = seed % 2 == 0;
    ProtocolRun b = a;
    b.kept_vector = true;
    same_grants(seed, a, b, "into a kept vector");
  }
  // A controller that refused its configuration empties the vector.
  ClusterController refused(two_nodes(150.0));
  ck_assert(!refused.ok());
  std::vector<GrantMessage> out(2);
  refused.step(1.0, out);
  ck_assert_uint_eq(out.size(), 0);
}
END_TEST

START_TEST(step_threads_send_the_same_grants) {
  for (std::uint32_t seed = 1; seed <= 12; ++seed) {
    ProtocolRun a;
    a.release = seed % 2 == 0;
    ProtocolRun b = a;
    b.step_threads = 2 + seed % 3;
    b.step_thread_min_nodes = 1;
    const std::vector<std::string> one =
        same_grants(seed, a, b, "on " + std::to_string(b.step_threads) + " threads");
    if (a.release) {  // release() had raises to hand out
      std::size_t released = 0;
      for (const std::string &g : one) released += g.rfind("release ", 0) == 0 ? 1 : 0;
      ck_assert_uint_gt(released, 0);
    }
  }
}
END_TEST

// Random clusters of idle, plain and power-aware nodes (random floors, idle caps, budgets,
// groups, share policy and demand), perfect network, several steps each: the grants sum to at
// most the budget and every group's limit; an idle node gets its idle cap (or its minimum
// caps); a plain node at most its fair share (exactly it under PlainShare::even, while it
// wants it); and a power-aware node is below its fair share only when no watt of the budget
// is left unallocated (its watts went to other power-aware work, not to nothing).
START_TEST(random_mixes_keep_the_shares) {
  for (std::uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    auto uni = [&](double a, double b) {
      return std::uniform_real_distribution<double>(a, b)(rng);
    };
    const std::size_t n = 2 + rng() % 7;
    ClusterConfig c;
    c.plain_share = rng() % 2 ? PlainShare::even : PlainShare::usage;
    c.hysteresis = rng() % 2 ? 0.0 : 0.5;
    const bool grouped = rng() % 2;
    if (grouped) c.groups = {{"pdu", 1e9, kNoGroup}};
    std::vector<HandNode> nodes;
    double floors = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      ClusterNodeConfig nc;
      nc.name = "n" + std::to_string(i);
      nc.floor_w = uni(80.0, 120.0);
      nc.max_w = 300.0;
      nc.idle_w = rng() % 2 ? nc.floor_w : uni(40.0, nc.floor_w);
      nc.group = grouped && i % 2 ? 0 : kNoGroup;
      floors += nc.floor_w;
      c.nodes.push_back(nc);
      HandNode h(nc.name.c_str());
      h.name = nc.name;
      h.min_w = uni(30.0, 60.0);
      const unsigned kind = rng() % 3;
      h.idle = kind == 0;
      h.steerable = kind == 2;
      h.need_w = uni(nc.floor_w, 290.0);
      h.slope = rng() % 4 == 0 ? 0.0 : uni(0.001, 3.0);
      h.max_w = uni(h.need_w + 1.0, 300.0);
      if (rng() % 2) h.curve_w = uni(0.0, h.max_w - h.need_w);  // saturated early
      nodes.push_back(h);
    }
    c.budget_w = uni(floors, 300.0 * static_cast<double>(n));
    if (grouped) c.groups[0].max_w = uni(0.0, 1.0) < 0.5 ? 1e9 : c.budget_w * 0.6 + floors;
    ClusterController cc(c);
    ck_assert_msg(cc.ok(), "seed %u: %s", seed, cc.error().c_str());
    std::vector<GrantMessage> g;
    for (double t = 0.0; t < 12.0; t += 1.0) g = round_trip(cc, nodes, t);
    double sum = 0.0, group = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      sum += grant_of(g, nodes[i].name);
      if (c.nodes[i].group == 0) group += grant_of(g, nodes[i].name);
    }
    ck_assert_msg(sum <= c.budget_w + 1e-6, "seed %u: grants %f > budget %f", seed, sum,
                  c.budget_w);
    if (grouped) ck_assert_msg(group <= c.groups[0].max_w + 1e-6, "seed %u: group", seed);
    const bool spare = cc.unallocated_w() > 1e-3;
    // Power-aware nodes held below their fair share, and those above it with watts that
    // gain nothing (past the end of their demand curve).
    bool someone_short = false, someone_idle_watts = false;
    for (std::size_t i = 0; i < n; ++i) {
      const HandNode &h = nodes[i];
      if (h.idle || !h.steerable) continue;
      const double share =
          std::max(c.nodes[i].floor_w, std::min(cc.node_status(i, 12.0).fair_share_w, h.max_w));
      const double got = grant_of(g, h.name);
      const double width = h.curve_w >= 0.0 ? h.curve_w : h.max_w - h.need_w;
      // Its watts gain up to its need plus its curve (a need above the share is lent the
      // curve's first slope); with a flat curve, nothing above what it is guaranteed.
      const double useful = h.slope > 0.0 ? h.need_w + width : std::min(h.need_w, share);
      someone_short = someone_short || got < share - 1e-3;
      someone_idle_watts = someone_idle_watts || (got > share + 1e-3 && got > useful + 1e-3);
    }
    if (!grouped)
      ck_assert_msg(!(someone_short && someone_idle_watts),
                    "seed %u: a power-aware node below its fair share while another holds watts "
                    "above its own that gain it nothing",
                    seed);
    for (std::size_t i = 0; i < n; ++i) {
      const HandNode &h = nodes[i];
      const ClusterNodeStatus st = cc.node_status(i, 12.0);
      const double got = grant_of(g, h.name);
      const double share = std::max(c.nodes[i].floor_w, std::min(st.fair_share_w, h.max_w));
      if (h.idle) {
        ck_assert_msg(
            std::fabs(got - std::max(st.idle_w, std::min(h.min_w, c.nodes[i].floor_w))) < 1e-5,
            "seed %u: idle %s got %f", seed, h.name.c_str(), got);
      } else if (!h.steerable) {
        ck_assert_msg(got <= share + 1e-5, "seed %u: plain %s got %f > share %f", seed,
                      h.name.c_str(), got, share);
        if (c.plain_share == PlainShare::even && !grouped)
          ck_assert_msg(std::fabs(got - share) < 1e-5, "seed %u: even plain %s got %f, share %f",
                        seed, h.name.c_str(), got, share);
      } else if (got < share - 1e-3 && !grouped) {
        ck_assert_msg(!spare,
                      "seed %u: power-aware %s got %f below its share %f with %f W unallocated",
                      seed, h.name.c_str(), got, share, cc.unallocated_w());
      }
    }
  }
}
END_TEST

START_TEST(random_protocol_with_reclaim) {
  ProtocolRun opt;
  opt.reclaim = true;
  for (std::uint32_t seed = 101; seed <= 130; ++seed) run_protocol(seed, opt);
}
END_TEST

START_TEST(release_hands_on_confirmed_watts) {
  ClusterConfig no_dips = two_nodes();
  no_dips.slow_confirm_periods = -1.0;  // a is lowered in the first step its target falls
  ClusterController cc(no_dips);
  // Nothing sent yet, nothing pending.
  ck_assert(cc.release(0.0).empty());
  std::vector<HandNode> nodes = {{"a"}, {"b"}};
  nodes[0].slope = 2.0;
  std::vector<GrantMessage> g;
  for (double t = 0.0; t < 5.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
  ck_assert(cc.release(5.2).empty());  // settled: nothing pending
  ck_assert(!cc.raises_waiting());
  // b becomes far steeper (beyond the hysteresis). The step lowers a at once; b's raise
  // waits: the in-force bounds sum to the budget until a confirms.
  nodes[0].slope = 0.5;
  nodes[1].slope = 4.0;
  cc.on_report(nodes[0].report(5.5), 5.5);
  cc.on_report(nodes[1].report(5.5), 5.5);
  g = cc.step(6.0);
  ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
  const double b_target = cc.node_status(1, 6.0).target_w;
  ck_assert_double_eq_tol(b_target, 300.0, 1e-5);
  ck_assert_double_eq_tol(cc.total_in_force_bound_w(6.0), 500.0, 1e-6);
  ck_assert(cc.raises_waiting());
  nodes[0].take(g);
  nodes[1].take(g);
  const std::uint64_t a_seq = nodes[0].lease.seq;
  std::uint64_t last_seq = 0;
  for (const GrantMessage &m : g) last_seq = std::max(last_seq, m.seq);
  // b confirms its (unchanged) grant: still no slack, nothing to release.
  ck_assert_std_str_eq(cc.on_report(nodes[1].report(6.1), 6.1), "");
  ck_assert(cc.release(6.1).empty());
  ck_assert(cc.raises_waiting());  // still waiting for a
  ck_assert(cc.total_in_force_bound_w(6.1) <= 500.0);
  // a confirms the lowered grant (its seq, caps at 200 W): release() hands the watts to b.
  const NodeReport ra = nodes[0].report(6.3);
  ck_assert_uint_eq(ra.lease_seq, a_seq);
  ck_assert_double_eq_tol(ra.caps_w, 200.0, 1e-5);
  ck_assert_std_str_eq(cc.on_report(ra, 6.3), "");
  ck_assert(cc.total_in_force_bound_w(6.3) <= 500.0);
  const std::vector<GrantMessage> rel = cc.release(6.3);
  ck_assert_uint_eq(rel.size(), 1);
  ck_assert_std_str_eq(rel[0].node, "b");
  ck_assert(rel[0].grant_w <= b_target + 1e-9);
  ck_assert(rel[0].grant_w > 200.0 + 1.0);
  ck_assert_double_eq_tol(rel[0].grant_w, 300.0, 1e-5);
  ck_assert(rel[0].seq > last_seq);
  ck_assert_double_eq(rel[0].expires_at_s, 6.3 + cc.config().lease_s);
  ck_assert_uint_eq(rel[0].epoch, cc.config().epoch);
  ck_assert(cc.total_in_force_bound_w(6.3) <= 500.0);
  ck_assert_double_eq_tol(cc.in_force_bound_w(1, 6.3), rel[0].grant_w, 1e-9);
  // Nothing more pending.
  ck_assert(!cc.raises_waiting());
  ck_assert(cc.release(6.4).empty());
  // b takes it and confirms; the next step keeps the allocation.
  nodes[1].take(rel);
  cc.on_report(nodes[1].report(6.6), 6.6);
  ck_assert(cc.release(6.7).empty());
  g = cc.step(7.0);
  ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
  ck_assert(cc.total_in_force_bound_w(7.0) <= 500.0);

  // More slack than b waits for (the budget rose between steps): release() still stops at
  // b's step target; the rest waits for the next step.
  ClusterController more(no_dips);
  std::vector<HandNode> again = {{"a"}, {"b"}};
  again[0].slope = 2.0;
  for (double t = 0.0; t < 5.0; t += 1.0) g = round_trip(more, again, t);
  again[0].slope = 0.5;
  again[1].slope = 4.0;
  more.on_report(again[0].report(5.5), 5.5);
  more.on_report(again[1].report(5.5), 5.5);
  g = more.step(6.0);
  again[0].take(g);
  ck_assert_std_str_eq(more.set_budget(550.0, 6.1), "");
  more.on_report(again[0].report(6.3), 6.3);
  const std::vector<GrantMessage> capped = more.release(6.3);
  ck_assert_uint_eq(capped.size(), 1);
  ck_assert_std_str_eq(capped[0].node, "b");
  ck_assert_msg(capped[0].grant_w <= more.node_status(1, 6.3).target_w + 1e-9,
                "released %g above the target %g", capped[0].grant_w,
                more.node_status(1, 6.3).target_w);
  ck_assert_double_eq_tol(more.total_in_force_bound_w(6.3), 500.0, 1e-6);
}
END_TEST

START_TEST(demand_curves_coarsened_to_curve_segments) {
  // a: 2 per watt over its first 100 W, then 1; b: 1.9 per watt. 200 W above the floors.
  // With both of a's segments, a takes its steep 100 W and b the next 100 W; with a's curve
  // coarsened to one segment (1.5 per watt), b's 1.9 wins all 200 W.
  const auto run = [](std::size_t segments) {
    ClusterConfig c = two_nodes(400.0);
    c.hysteresis = 0.0;
    c.curve_segments = segments;
    ClusterController cc(c);
    std::vector<HandNode> nodes = {{"a"}, {"b"}};
    nodes[0].two_step = true;
    nodes[0].slope = 1.0;
    nodes[1].slope = 1.9;
    std::vector<GrantMessage> g;
    for (double t = 0.0; t < 4.0; t += 1.0) g = round_trip(cc, nodes, t);
    ck_assert_uint_eq(cc.curve_segments(), segments == 0 ? 32u : segments);
    return std::make_pair(grant_of(g, "a"), grant_of(g, "b"));
  };
  const auto fine = run(0);
  ck_assert_double_eq_tol(fine.first, 200.0, 1e-5);
  ck_assert_double_eq_tol(fine.second, 200.0, 1e-5);
  const auto coarse = run(1);
  ck_assert_double_eq_tol(coarse.first, 100.0, 1e-5);
  ck_assert_double_eq_tol(coarse.second, 300.0, 1e-5);
}
END_TEST

// Two nodes whose concave demand curves (5 W segments, marginal gain 100 / (1 + x / 5 W))
// differ by 2% in level: the steeper one gets what the continuous curves give it, about
// 0.02 x 155 W = 3.1 W more, not a whole segment (ClusterConfig::curve_segments: the
// curves are read as continuous where the water level cuts them).
// Below 16 segments (beyond 20,000 nodes by default) the split is left out for speed: with
// curves of eight 25 W segments and a budget that cuts them mid-segment (325 W above the
// floors: six segments each and 25 W) and a node 5% steeper (about 9 W more on the
// continuous curves), the steeper node gets the whole 25 W at 8 segments, parts of 6.25 W at
// 16 (split in 4).
START_TEST(small_differences_move_few_watts) {
  const auto run = [](double budget_w, std::size_t segments, double width_w, int count,
                      double steeper) {
    ClusterConfig c = two_nodes(budget_w);
    c.hysteresis = 0.0;
    c.noise_guard_k = 0.0;
    c.model_guard_k = 0.0;
    c.curve_segments = segments;
    ClusterController cc(c);
    std::vector<HandNode> nodes = {{"a"}, {"b"}};
    for (std::size_t i = 0; i < 2; ++i)
      for (int k = 0; k < count; ++k)
        nodes[i].segments.push_back({width_w, (i == 0 ? steeper : 1.0) * 100.0 / (k + 1.0)});
    for (double t = 0.0; t < 6.0; t += 1.0) round_trip(cc, nodes, t);
    const double a = cc.node_status(0, 6.0).target_w, b = cc.node_status(1, 6.0).target_w;
    ck_assert_double_eq_tol(a + b, budget_w, 1e-6);
    return a - b;
  };
  const double fine = run(505.0, 0, 5.0, 40, 1.02);
  ck_assert_msg(fine > 2.0 && fine < 4.0, "a - b = %g W with 32 segments", fine);
  const double split = run(525.0, 16, 25.0, 8, 1.05);
  ck_assert_msg(split > 5.0 && split < 20.0, "a - b = %g W with 16 segments", split);
  const double whole = run(525.0, 8, 25.0, 8, 1.05);
  ck_assert_msg(whole > 24.0, "a - b = %g W with 8 segments", whole);
}
END_TEST

START_TEST(hysteresis_keeps_grants_on_small_differences) {
  ck_assert_double_eq(ClusterConfig{}.hysteresis, 0.3);
  // a: 6 then 3 per watt; b: 2 then 1. a gets 300 W, b 200 W (at its curve's knee).
  const auto settle = [](double hysteresis, std::vector<HandNode> &nodes) {
    ClusterConfig c = two_nodes();
    c.hysteresis = hysteresis;
    c.hysteresis_settle_s = 0.0;  // settled jobs (hysteresis_grows_as_jobs_settle: young ones)
    auto cc = std::make_unique<ClusterController>(c);
    nodes = {{"a"}, {"b"}};
    for (HandNode &n : nodes) n.two_step = true;
    nodes[0].slope = 3.0;
    nodes[1].slope = 1.0;
    std::vector<GrantMessage> g;
    for (double t = 0.0; t < 6.0; t += 1.0) g = round_trip(*cc, nodes, t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
    return cc;
  };
  // b's gains rise to 10 then 5: above its held watts 5, below a's held 3: a ratio 5/3,
  // below (1 + h) / (1 - h) = 3. Nothing moves, step after step.
  {
    std::vector<HandNode> nodes;
    auto cc = settle(0.5, nodes);
    nodes[1].slope = 5.0;
    for (double t = 6.0; t < 14.0; t += 1.0) {
      const std::vector<GrantMessage> g = round_trip(*cc, nodes, t);
      ck_assert_msg(std::fabs(grant_of(g, "a") - 300.0) < 1e-5, "t %g: a %g", t,
                    grant_of(g, "a"));
      ck_assert_msg(std::fabs(grant_of(g, "b") - 200.0) < 1e-5, "t %g: b %g", t,
                    grant_of(g, "b"));
    }
  }
  // Well above the factor (15 / 3 = 5): the watts move.
  {
    std::vector<HandNode> nodes;
    auto cc = settle(0.5, nodes);
    nodes[1].slope = 15.0;
    std::vector<GrantMessage> g;
    for (double t = 6.0; t < 10.0; t += 1.0) {
      g = round_trip(*cc, nodes, t);
      ck_assert(cc->total_in_force_bound_w(t + 0.5) <= 500.0 + 1e-9);
    }
    ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
  }
  // Without hysteresis, the small difference moves them too.
  {
    std::vector<HandNode> nodes;
    auto cc = settle(0.0, nodes);
    nodes[1].slope = 5.0;
    std::vector<GrantMessage> g;
    for (double t = 6.0; t < 10.0; t += 1.0) g = round_trip(*cc, nodes, t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
  }
  // The factor's range.
  for (double bad : {-0.1, 0.9, 1.0, kNaN}) {
    ClusterConfig c = two_nodes();
    c.hysteresis = bad;
    ck_assert_contains(ClusterController::check_config(c), "hysteresis");
    ck_assert(!ClusterController(c).ok());
  }
  for (double good : {0.0, 0.5, 0.89}) {
    ClusterConfig c = two_nodes();
    c.hysteresis = good;
    ck_assert_std_str_eq(ClusterController::check_config(c), "");
  }
  // The noise guard's allowances.
  for (double bad : {-0.1, 10.5, kNaN}) {
    ClusterConfig c = two_nodes();
    c.noise_guard_k = bad;
    ck_assert_contains(ClusterController::check_config(c), "noise_guard_k");
    c = two_nodes();
    c.model_guard_k = bad;
    ck_assert_contains(ClusterController::check_config(c), "model_guard_k");
  }
}
END_TEST

// A node's hysteresis grows from 0 to the configured one over its power-aware jobs' first
// hysteresis_settle_s seconds, and starts again from 0 when its set of jobs changes.
START_TEST(hysteresis_grows_as_jobs_settle) {
  ck_assert_double_eq(ClusterConfig{}.hysteresis_settle_s, 120.0);
  ClusterConfig c = two_nodes();
  c.hysteresis = 0.5;
  c.hysteresis_settle_s = 20.0;
  ClusterController cc(c);
  std::vector<HandNode> nodes = {{"a"}, {"b"}};
  for (HandNode &n : nodes) {
    n.two_step = true;
    n.confidence = 1.0;
  }
  nodes[0].slope = 3.0;
  nodes[1].slope = 1.0;
  std::vector<GrantMessage> g;
  // Young jobs: a's and b's grants follow their curves (a 300 W, b 200 W, at b's knee).
  for (double t = 0.0; t < 4.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(grant_of(g, "a"), 300.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 200.0, 1e-5);
  // Half settled (first report at t = 0.5): half the hysteresis; in the status too.
  g = round_trip(cc, nodes, 10.0);
  ck_assert_double_eq_tol(cc.node_status(0, 10.5).hysteresis, 0.25, 1e-9);
  ck_assert_double_eq_tol(cc.node_status(1, 10.5).hysteresis, 0.25, 1e-9);
  // b steeper while a is young: b's 5 against a's held 3 beats (1 + h) / (1 - h) at h 0.2
  // (a factor 1.5), so the watts move.
  {
    ClusterController young(c);
    std::vector<HandNode> y = nodes;
    for (HandNode &n : y) n.seq = 0, n.have_lease = false;
    for (double t = 0.0; t < 4.0; t += 1.0) g = round_trip(young, y, t);
    y[1].slope = 5.0;
    for (double t = 4.0; t < 8.0; t += 1.0) g = round_trip(young, y, t);
    ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
    ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
  }
  // Settled (t >= 20.5): the whole hysteresis. b's gains rise to 14 then 7: 7 x (1 - h)
  // against a's held 3 x (1 + h), a ratio 7/3 below 3. Nothing moves, step after step.
  for (double t = 11.0; t < 25.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(cc.node_status(0, 25.0).hysteresis, 0.5, 1e-12);
  nodes[1].slope = 7.0;
  for (double t = 25.0; t < 33.0; t += 1.0) {
    g = round_trip(cc, nodes, t);
    ck_assert_msg(std::fabs(grant_of(g, "a") - 300.0) < 1e-5, "t %g: a %g", t, grant_of(g, "a"));
    ck_assert_msg(std::fabs(grant_of(g, "b") - 200.0) < 1e-5, "t %g: b %g", t, grant_of(g, "b"));
  }
  // A new job on a: its estimate is young, a's holdings are no longer favoured, and b's
  // 7 x (1 - 0.5) beats a's 3: the watts move to b.
  nodes[0].job = "a.1";
  for (double t = 33.0; t < 37.0; t += 1.0) {
    g = round_trip(cc, nodes, t);
    ck_assert(cc.total_in_force_bound_w(t + 0.5) <= 500.0 + 1e-9);
  }
  ck_assert_double_eq_tol(cc.node_status(0, 37.5).hysteresis, 0.5 * 4.0 / 20.0, 1e-9);
  ck_assert_double_eq_tol(cc.node_status(1, 37.5).hysteresis, 0.5, 1e-12);
  ck_assert_double_eq_tol(grant_of(g, "a"), 200.0, 1e-5);
  ck_assert_double_eq_tol(grant_of(g, "b"), 300.0, 1e-5);
  // A node that is not steered has no hysteresis; steered again, it starts from 0.
  nodes[1].steerable = false;
  g = round_trip(cc, nodes, 37.0);
  ck_assert_double_eq(cc.node_status(1, 37.5).hysteresis, 0.0);
  nodes[1].steerable = true;
  g = round_trip(cc, nodes, 38.0);
  ck_assert_double_eq_tol(cc.node_status(1, 43.5).hysteresis, 0.5 * 5.0 / 20.0, 1e-9);
  // Its agent restarts (a new incarnation, its estimates anew): from 0 again.
  for (double t = 39.0; t < 60.0; t += 1.0) g = round_trip(cc, nodes, t);
  ck_assert_double_eq_tol(cc.node_status(0, 60.0).hysteresis, 0.5, 1e-12);
  nodes[0].incarnation = 1;
  nodes[0].seq = 0;
  g = round_trip(cc, nodes, 60.0);
  ck_assert_double_eq_tol(cc.node_status(0, 62.5).hysteresis, 0.5 * 2.0 / 20.0, 1e-9);
  // 0: the whole hysteresis at once; the setting's range.
  c.hysteresis_settle_s = 0.0;
  ClusterController at_once(c);
  std::vector<HandNode> o = {{"a"}, {"b"}};
  round_trip(at_once, o, 0.0);
  ck_assert_double_eq(at_once.node_status(0, 0.0).hysteresis, 0.5);
  for (double bad : {-1.0, 86401.0, kNaN, kInf}) {
    c.hysteresis_settle_s = bad;
    ck_assert_contains(ClusterController::check_config(c), "hysteresis_settle_s");
  }
}
END_TEST

START_TEST(deterministic) {
  const auto run = [] {
    ClusterController cc(two_nodes());
    std::vector<HandNode> nodes = {{"a"}, {"b"}};
    nodes[0].slope = 1.3;
    std::vector<double> out;
    for (double t = 0.0; t < 10.0; t += 1.0)
      for (const GrantMessage &g : round_trip(cc, nodes, t)) out.push_back(g.grant_w);
    return out;
  };
  ck_assert(run() == run());
}
END_TEST

// ---------------------------------------------------------------- noise guard

// Runs `rounds` steps of 20 nodes whose demand is linear with a slope drawn afresh each report
// around its own level (log-normal noise, sd 0.4); returns the last step's grants.
std::vector<GrantMessage> noisy_rounds(ClusterController &cc, std::vector<HandNode> &nodes,
                                       const std::vector<double> &level, int rounds,
                                       unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.4);
  std::vector<GrantMessage> grants;
  for (int k = 0; k < rounds; ++k) {
    for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i].slope = level[i] * std::exp(noise(rng));
    grants = round_trip(cc, nodes, static_cast<double>(k));
  }
  return cc.step(static_cast<double>(rounds));
}

std::vector<HandNode> twenty_nodes(ClusterConfig &c, double budget_w) {
  c.budget_w = budget_w;
  std::vector<HandNode> nodes;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "n" + std::to_string(i);
    c.nodes.push_back({name, 100.0, 300.0, kNoGroup});
    nodes.emplace_back("x");
    nodes.back().name = name;
  }
  return nodes;
}

// The nodes within noise at time t (but `skip`): how many, and their lowest and highest
// targets (kInf and 0 when none).
struct WithinNoise {
  std::size_t count = 0;
  double lo = kInf;
  double hi = 0.0;
};

WithinNoise within_noise_targets(const ClusterController &cc, std::size_t nodes, double t,
                                 std::size_t skip = std::numeric_limits<std::size_t>::max()) {
  WithinNoise r;
  for (std::size_t i = 0; i < nodes; ++i) {
    const ClusterNodeStatus st = cc.node_status(i, t);
    if (i == skip || !st.within_noise) continue;
    ++r.count;
    r.lo = std::min(r.lo, st.target_w);
    r.hi = std::max(r.hi, st.target_w);
  }
  return r;
}

// twenty_nodes with 180 W each, no hysteresis and the guard at k noise spreads.
std::vector<HandNode> guarded_twenty(ClusterConfig &c, double k) {
  std::vector<HandNode> nodes = twenty_nodes(c, 20 * 180.0);
  c.hysteresis = 0.0;
  c.noise_guard_k = k;
  return nodes;
}

// The noise guard's median is taken over the levels every thread found: split over threads
// of a node or more each, the guard gives the same verdicts and grants as on one thread.
START_TEST(noise_guard_the_same_on_threads) {
  std::vector<std::string> runs[2];
  for (int t = 0; t < 2; ++t) {
    ClusterConfig c;
    std::vector<HandNode> nodes = guarded_twenty(c, 1.0);
    c.step_threads = t == 0 ? 1 : 4;
    c.step_thread_min_nodes = 3;  // 4 threads of 5 nodes
    ClusterController cc(c);
    ck_assert(cc.ok());
    std::vector<double> level(20, 1.0);
    level[3] = 3.0;  // one node clearly steeper
    for (const GrantMessage &g : noisy_rounds(cc, nodes, level, 30, 5))
      runs[t].push_back(grant_text(g));
    std::size_t within = 0;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const ClusterNodeStatus st = cc.node_status(i, 30.0);
      within += st.within_noise ? 1 : 0;
      runs[t].push_back(std::to_string(i) + (st.within_noise ? " within " : " beyond ") +
                        std::to_string(st.level_diff));
    }
    ck_assert_uint_ge(within, 5);  // the guard is at work
  }
  ck_assert_uint_eq(runs[0].size(), runs[1].size());
  for (std::size_t i = 0; i < runs[0].size(); ++i)
    ck_assert_msg(runs[0][i] == runs[1][i], "'%s' on one thread, '%s' on four", runs[0][i].c_str(),
                  runs[1][i].c_str());
}
END_TEST

// Equal nodes whose estimates differ only by noise: with the guard the budget is split
// evenly and status says so; without it, linear demand curves give the noisiest nodes all.
START_TEST(noise_guard_keeps_the_even_split_within_noise) {
  for (double k : {2.0, 1.0, 0.0}) {
    ClusterConfig c;
    std::vector<HandNode> nodes = guarded_twenty(c, k);
    ClusterController cc(c);
    ck_assert(cc.ok());
    const std::vector<GrantMessage> g =
        noisy_rounds(cc, nodes, std::vector<double>(20, 1.0), 40, 11);
    // The nodes within noise (about 19 in 20 at 2 sds) all get the same target; the rest,
    // the tails of the noise, get what their difference beyond it earns them.
    const WithinNoise w = within_noise_targets(cc, nodes.size(), 40.0);
    ck_assert_double_le(sum_grants(g), c.budget_w + 1e-6);
    if (k > 0.0) {
      // About 19 in 20 at 2 spreads, 2 in 3 at 1.
      ck_assert_uint_ge(w.count, k >= 2.0 ? 15 : 10);
      ck_assert_double_lt(w.hi - w.lo, 1e-6);
      ck_assert_double_gt(w.lo, k >= 2.0 ? 150.0 : 130.0);
      ck_assert(std::isfinite(cc.node_status(0, 40.0).level_noise));
    } else {
      // Off: nobody is within noise, and the linear curves hand whole nodes' ranges to the
      // noisiest: targets spread from floor to maximum.
      ck_assert_uint_eq(w.count, 0);
      double lo = kInf, hi = 0.0;
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        lo = std::min(lo, cc.node_status(i, 40.0).target_w);
        hi = std::max(hi, cc.node_status(i, 40.0).target_w);
      }
      ck_assert_double_gt(hi - lo, 150.0);
    }
  }
}
END_TEST

// Nodes whose curves have all but ended below their fair share (a short real part, then
// gains of 1e-60 and 1e-120 in turn: what a node's moving average leaves of a saturated
// domain's curve) have no demand level: the guard neither pins them at the median (their
// log levels jump by 138 from period to period, a noise that would take in any difference)
// nor counts them in it, and the busy nodes get the watts they do not use.
START_TEST(noise_guard_ignores_negligible_gains) {
  ClusterConfig c;
  std::vector<HandNode> nodes = guarded_twenty(c, ClusterConfig{}.noise_guard_k);
  ClusterController cc(c);
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.4);
  std::vector<GrantMessage> g;
  for (int k = 0; k < 30; ++k) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (i % 2 == 0) {
        nodes[i].slope = std::exp(noise(rng));  // busy: linear, noisy around 1 per watt
      } else {
        const double tail = k % 2 ? 1e-60 : 1e-120;
        nodes[i].segments = {{30.0, 10.0}, {170.0, tail}};
      }
    }
    g = round_trip(cc, nodes, static_cast<double>(k));
  }
  g = cc.step(30.0);
  ck_assert_double_le(sum_grants(g), c.budget_w + 1e-6);
  double busy_w = 0.0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const ClusterNodeStatus st = cc.node_status(i, 30.0);
    if (i % 2 == 1) {
      // Its real 30 W, not its fair share.
      ck_assert_msg(std::isnan(st.level_diff) && !st.within_noise, "%s: level diff %g, %s",
                    st.name.c_str(), st.level_diff, st.within_noise ? "pinned" : "free");
      ck_assert_msg(std::fabs(st.target_w - 130.0) < 1e-6, "%s: %g W", st.name.c_str(),
                    st.target_w);
    } else {
      ck_assert(std::isfinite(st.level_diff));
      busy_w += st.target_w;
    }
  }
  // The quiet nodes' 10 x 50 W below their fair shares go to the busy ones.
  ck_assert_double_ge(busy_w, 10 * 230.0 - 1e-6);
}
END_TEST

// A node that really is steeper (5x, beyond its noise) still gets more than the even share,
// and is not said to be within noise; the rest split what is left evenly.
START_TEST(noise_guard_keeps_real_differences) {
  for (double k : {2.0, 1.0}) {
    ClusterConfig c;
    std::vector<HandNode> nodes = guarded_twenty(c, k);
    ClusterController cc(c);
    std::vector<double> level(20, 1.0);
    level[3] = 5.0;
    noisy_rounds(cc, nodes, level, 40, 12);
    const ClusterNodeStatus steep = cc.node_status(3, 40.0);
    ck_assert(!steep.within_noise);
    ck_assert_double_gt(steep.level_diff, std::log(5.0) - 1.0);
    ck_assert_double_ge(steep.target_w, 299.0);
    const WithinNoise w = within_noise_targets(cc, nodes.size(), 40.0, 3);
    ck_assert_uint_ge(w.count, k >= 2.0 ? 15 : 10);
    ck_assert_double_lt(w.hi - w.lo, 1e-6);
  }
}
END_TEST

// With hysteresis, nodes that were steeper for a while and then became alike again (within
// noise, step after step) go back to the even split: their watts are favoured around their
// fair share, not around what they held (which kept the split made while they differed:
// the five nodes that had been steeper kept 300 W each).
START_TEST(noise_guard_even_split_survives_hysteresis) {
  ClusterConfig c;
  std::vector<HandNode> nodes = twenty_nodes(c, 20 * 180.0);
  c.hysteresis_settle_s = 0.0;  // the whole hysteresis (0.5) from the start
  c.noise_guard_k = 2.0;        // alike nodes are within noise about 19 steps in 20
  ClusterController cc(c);
  std::vector<double> level(20, 1.0);
  for (std::size_t i = 0; i < 5; ++i) level[i] = 20.0;
  noisy_rounds(cc, nodes, level, 20, 31);
  for (std::size_t i = 0; i < 5; ++i) ck_assert_double_ge(cc.node_status(i, 20.0).target_w, 299.0);
  std::fill(level.begin(), level.end(), 1.0);
  noisy_rounds(cc, nodes, level, 60, 32);
  const WithinNoise w = within_noise_targets(cc, nodes.size(), 60.0);
  ck_assert_uint_ge(w.count, 15);
  ck_assert_msg(w.hi - w.lo < 10.0 && w.lo > 170.0, "targets within noise from %g W to %g W", w.lo,
                w.hi);
}
END_TEST

// A difference that is persistent but smaller than two spreads of the period-to-period
// noise (a node 1.6 times steeper, log 0.47, noise sd 0.4): at the default allowance of one
// spread it still earns the node more watts (its level, averaged over the rounds, is above
// the rest's every time), where an allowance of two spreads pinned it to the even split.
START_TEST(noise_guard_default_follows_persistent_differences) {
  const auto steep_and_rest = [](double k) {
    ClusterConfig c;
    std::vector<HandNode> nodes = guarded_twenty(c, k);
    ClusterController cc(c);
    std::vector<double> level(20, 1.0);
    level[3] = 1.6;
    double steep = 0.0, rest = 0.0;
    for (int r = 0; r < 20; ++r) {
      noisy_rounds(cc, nodes, level, 10, 100 + r);
      steep += cc.node_status(3, 10.0).target_w / 20.0;
      for (std::size_t i = 0; i < nodes.size(); ++i)
        if (i != 3) rest += cc.node_status(i, 10.0).target_w / (19.0 * 20.0);
    }
    return std::pair<double, double>{steep, rest};
  };
  const auto [steep, rest] = steep_and_rest(ClusterConfig{}.noise_guard_k);
  const auto [steep2, rest2] = steep_and_rest(2.0);
  ck_assert_msg(steep > rest + 50.0, "default: the steeper node got %g W on average, the rest %g W",
                steep, rest);
  ck_assert_msg(steep > steep2 + 25.0,
                "default: the steeper node got %g W on average, at two spreads %g W (rest %g W)",
                steep, steep2, rest2);
}
END_TEST

// The guard also counts what the estimates do not know: a node whose level is 1.8 times the
// others' (with little noise) gets more watts when its estimates are sure (confidence 1), and
// the even split when they are the prior's alone (confidence 0: software counters without a
// progress signal), where a factor 1.8 is within the memory share's uncertainty.
START_TEST(noise_guard_counts_what_estimates_do_not_know) {
  for (double confidence : {1.0, 0.0}) {
    ClusterConfig c;
    std::vector<HandNode> nodes = twenty_nodes(c, 20 * 180.0);
    c.hysteresis = 0.0;
    ClusterController cc(c);
    std::mt19937 rng(21);
    std::normal_distribution<double> noise(0.0, 0.03);
    for (int k = 0; k < 40; ++k) {
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        nodes[i].confidence = confidence;
        nodes[i].slope = (i == 3 ? 1.8 : 1.0) * std::exp(noise(rng));
      }
      round_trip(cc, nodes, static_cast<double>(k));
    }
    cc.step(40.0);
    const ClusterNodeStatus st = cc.node_status(3, 40.0);
    const double other = cc.node_status(5, 40.0).target_w;
    if (confidence > 0.0) {
      ck_assert(!st.within_noise);
      ck_assert_double_gt(st.target_w, other + 50.0);
    } else {
      ck_assert(st.within_noise);
      ck_assert_double_lt(std::fabs(st.target_w - other), 1e-6);
    }
  }
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_cluster_controller");
  TCase *config = tcase_create("config");
  tcase_add_test(config, refuses_bad_configurations);
  suite_add_tcase(s, config);
  TCase *moves = tcase_create("moves");
  tcase_add_test(moves, floors_until_nodes_report_then_water_filling);
  tcase_add_test(moves, decrease_before_increase);
  tcase_add_test(moves, a_dip_waits_for_a_second_step);
  tcase_add_test(moves, dips_held_only_where_decreases_are_slow);
  tcase_add_test(moves, a_falling_budget_keeps_the_grants_at_the_budget);
  tcase_add_test(moves, budget_drop_obeyed_within_one_step);
  tcase_add_test(moves, leases_renewed_every_step);
  tcase_add_test(moves, silent_nodes_stay_counted);
  tcase_add_test(moves, nodes_without_steered_work);
  tcase_add_test(moves, idle_nodes_held_at_their_idle_cap);
  tcase_add_test(moves, a_restarted_controller_raises_nothing_over_the_old_leases);
  tcase_add_test(moves, idle_cap_above_floor_refused);
  tcase_add_test(moves, plain_nodes_even_or_usage);
  tcase_add_test(moves, power_aware_never_below_fair_share_for_nothing);
  tcase_add_test(moves, fair_share_is_the_same_share_of_every_nodes_range);
  tcase_add_test(moves, group_limits_hold);
  tcase_add_test(moves, reports_are_checked);
  tcase_add_test(moves, an_agent_whose_clock_stepped_back_is_heard_from_its_new_session);
  tcase_add_test(moves, deterministic);
  tcase_add_test(moves, release_hands_on_confirmed_watts);
  tcase_add_test(moves, hysteresis_keeps_grants_on_small_differences);
  tcase_add_test(moves, hysteresis_grows_as_jobs_settle);
  tcase_add_test(moves, demand_curves_coarsened_to_curve_segments);
  tcase_add_test(moves, noise_guard_keeps_the_even_split_within_noise);
  tcase_add_test(moves, noise_guard_keeps_real_differences);
  tcase_add_test(moves, noise_guard_even_split_survives_hysteresis);
  tcase_add_test(moves, small_differences_move_few_watts);
  tcase_add_test(moves, noise_guard_ignores_negligible_gains);
  tcase_add_test(moves, noise_guard_default_follows_persistent_differences);
  tcase_add_test(moves, noise_guard_counts_what_estimates_do_not_know);
  suite_add_tcase(s, moves);
  TCase *safety = tcase_create("safety");
  tcase_set_timeout(safety, 300);
  tcase_add_test(safety, random_protocol_keeps_the_budget);
  tcase_add_test(safety, random_protocol_with_release_keeps_the_budget);
  tcase_add_test(safety, step_into_a_kept_vector_sends_the_same_grants);
  tcase_add_test(safety, random_protocol_with_reclaim);
  tcase_add_test(safety, random_mixes_keep_the_shares);
  suite_add_tcase(s, safety);
  // The same grants on 1 and on 2-4 step threads: also run under ThreadSanitizer
  // (tests/tools/test_thread_sanitizer.sh runs this case alone).
  TCase *threads = tcase_create("threads");
  tcase_set_timeout(threads, 300);
  tcase_add_test(threads, noise_guard_the_same_on_threads);
  tcase_add_test(threads, step_threads_send_the_same_grants);
  suite_add_tcase(s, threads);
  return pgtest::run_suite(s);
}
