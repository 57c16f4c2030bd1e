// The local (node) controller: lease rules, water-filling across domains in a closed loop,
// damping, grant drops, perturbation, protection of work that is not steered, the report,
// and the safety invariant on random sequences.
#include <check.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "libgradient/curve_ops.hpp"
#include "libgradient/node_controller.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;
using pgtest::sum_in_order;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const PowerModel kModel{60.0, 205.0, 3.4e9, 1.0};
constexpr double kMin = 90.0;
constexpr double kMax = 205.0;

GrantMessage grant(double grant_w, std::uint64_t seq, double now_s, double lease_s = 5.0,
                   double floor_w = 180.0, std::uint64_t epoch = 1) {
  GrantMessage g;
  g.node = "n1";
  g.grant_w = grant_w;
  g.floor_w = floor_w;
  g.expires_at_s = now_s + lease_s;
  g.lease_s = lease_s;
  g.epoch = epoch;
  g.seq = seq;
  return g;
}

// A socket with one job, simulated: the job's time per instruction is T(f) = 1/f + tm, with
// tm chosen for memory share m at the top frequency; the socket draws P0 + a alpha f^3 up to
// its cap.
struct SimDomain {
  double m = 0.3;
  double alpha = 1.0;
  JobMode mode = JobMode::throughput;
  double busy = 1.0;
  bool software = false;
  bool progress = false;
  bool has_job = true;
  double share = 1.0;
};

struct Plant {
  std::vector<SimDomain> doms;
  std::vector<double> caps;  // in force; NaN before the first decision

  explicit Plant(std::vector<SimDomain> d) : doms(std::move(d)), caps(doms.size(), kNaN) {}

  double power(std::size_t d) const {
    const double uncapped = kModel.p0_w + (kModel.tdp_w - kModel.p0_w) * doms[d].alpha;
    const double cap = std::isnan(caps[d]) ? kMax : caps[d];
    return std::min(cap, uncapped);
  }
  double freq(std::size_t d) const {
    PowerModel m = kModel;
    m.alpha = doms[d].alpha;
    return m.freq_at_hz(power(d));
  }

  NodeInputs inputs(double now_s) const {
    NodeInputs in;
    in.now_s = now_s;
    for (std::size_t d = 0; d < doms.size(); ++d) {
      DomainInput di;
      di.name = "pkg" + std::to_string(d);
      di.min_cap_w = kMin;
      di.max_cap_w = kMax;
      di.cap_w = caps[d];
      di.power_w = power(d);
      di.model = kModel;
      in.domains.push_back(di);
      const SimDomain &s = doms[d];
      if (!s.has_job) continue;
      const double f = freq(d);
      const double tm = s.m / (1.0 - s.m) / kModel.f_max_hz;
      const double t = 1.0 / f + tm;
      JobInput job;
      job.key = "job" + std::to_string(d);
      job.mode = s.mode;
      JobDomainInput jd;
      jd.domain = d;
      jd.cpus = 8.0;
      jd.share = s.share;
      CounterSample &c = jd.counters;
      c.interval_s = 1.0;
      c.task_clock_s = s.busy * 8.0;
      if (!s.software) {
        c.cycles = c.task_clock_s * f;
        c.instructions = c.task_clock_s / t;
        c.stall_cycles = *c.cycles * (tm / t);
      }
      if (s.progress) jd.progress_rate = c.task_clock_s / t;
      job.domains.push_back(jd);
      in.jobs.push_back(job);
    }
    return in;
  }

  NodeDecision step(NodeController &nc, double now_s) {
    NodeDecision d = nc.step(inputs(now_s));
    if (d.ok) caps = d.caps_w;
    return d;
  }
};

void assert_safe(const NodeInputs &in, const NodeDecision &d, double grant_w) {
  ck_assert_msg(d.ok, "step failed: %s", d.error.c_str());
  ck_assert_uint_eq(d.caps_w.size(), in.domains.size());
  double min_sum = 0.0;
  for (const DomainInput &dom : in.domains) min_sum += dom.min_cap_w;
  for (std::size_t i = 0; i < d.caps_w.size(); ++i) {
    ck_assert_msg(d.caps_w[i] >= in.domains[i].min_cap_w && d.caps_w[i] <= in.domains[i].max_cap_w,
                  "domain %zu: cap %.17g outside [%g, %g]", i, d.caps_w[i], in.domains[i].min_cap_w,
                  in.domains[i].max_cap_w);
  }
  if (grant_w >= min_sum) {
    ck_assert_msg(sum_in_order(d.caps_w) <= grant_w, "caps %.17g above the grant %.17g",
                  sum_in_order(d.caps_w), grant_w);
  } else {
    for (std::size_t i = 0; i < d.caps_w.size(); ++i)
      ck_assert_double_eq(d.caps_w[i], in.domains[i].min_cap_w);
    ck_assert(!d.warnings.empty());
  }
  // apply_order: a permutation, decreases (relative to the caps in force) first.
  std::vector<std::size_t> seen = d.apply_order;
  std::sort(seen.begin(), seen.end());
  for (std::size_t i = 0; i < seen.size(); ++i) ck_assert_uint_eq(seen[i], i);
  const auto change = [&](std::size_t i) {
    const double in_force = in.domains[i].cap_w;
    return std::isfinite(in_force) && in_force > 0.0 ? d.caps_w[i] - in_force
                                                     : -std::numeric_limits<double>::infinity();
  };
  for (std::size_t k = 1; k < d.apply_order.size(); ++k)
    ck_assert(change(d.apply_order[k - 1]) <= change(d.apply_order[k]));
}

}  // namespace

// ---------------------------------------------------------------- curve operations

START_TEST(curve_operations) {
  const GainCurve a = GainCurve::from_segments({{10, 3}, {10, 1}});
  const GainCurve b = GainCurve::from_segments({{5, 2}, {5, 0.5}});
  const GainCurve m = merge_curves({a, b, GainCurve::from_segments({{1, 1}, {1, 2}})});
  ck_assert(m.valid());  // the invalid third curve is skipped
  ck_assert_double_eq(m.width_w(), 30.0);
  ck_assert_double_eq(m.gain_at(30.0), a.gain_at(20.0) + b.gain_at(10.0));
  ck_assert_double_eq(m.marginal_at(10.0), 2.0);  // 10 W at 3, then 5 W at 2
  ck_assert_double_eq(m.gain_at(15.0), 40.0);

  const GainCurve d = drop_front(a, 12.0);
  ck_assert_double_eq(d.width_w(), 8.0);
  ck_assert_double_eq(d.marginal_at(0.0), 1.0);
  ck_assert(drop_front(a, 25.0).segments().empty());
  ck_assert_double_eq(drop_front(a, -1.0).width_w(), 20.0);

  const GainCurve p = prepend(a, 5.0, 1.0);  // raised to 3 to stay concave
  ck_assert_double_eq(p.width_w(), 25.0);
  ck_assert_double_eq(p.segments().front().slope, 3.0);
  ck_assert_double_eq(prepend(a, 5.0, 4.0).segments().front().slope, 4.0);
  ck_assert_double_eq(prepend(GainCurve{}, 5.0, 2.0).gain_at(5.0), 10.0);

  std::vector<GainSegment> many;
  for (int k = 0; k < 32; ++k) many.push_back({1.5 + (k % 3), 10.0 - 0.3 * k});
  const GainCurve fine = GainCurve::from_segments(many);
  const GainCurve coarse = coarsen(fine, 8);
  ck_assert(coarse.valid());
  ck_assert_uint_eq(coarse.segments().size(), 8);
  ck_assert_double_eq_tol(coarse.width_w(), fine.width_w(), 1e-9);
  const double block = fine.width_w() / 8.0;
  for (int k = 1; k <= 8; ++k)  // the same gain at every block boundary
    ck_assert_double_eq_tol(coarse.gain_at(k * block), fine.gain_at(k * block), 1e-9);
  ck_assert(coarsen(fine, 0).segments().size() == fine.segments().size());
  ck_assert(coarsen(a, 8).segments().size() == 2);
}
END_TEST

// ---------------------------------------------------------------- lease

START_TEST(lease_rules) {
  NodeControllerParams params;
  params.floor_w = 200.0;
  NodeController nc("n1", params);
  ck_assert_double_eq(nc.effective_grant_w(0.0), 200.0);
  ck_assert(!nc.lease_expired(1e9));  // no lease from a controller: the floor, forever
  params.static_grant_w = 300.0;
  ck_assert_double_eq(NodeController("n1", params).effective_grant_w(0.0), 300.0);

  ck_assert_std_str_eq(nc.on_grant(grant(400.0, 1, 0.0, 5.0, 190.0), 0.0), "");
  ck_assert_double_eq(nc.effective_grant_w(4.9), 400.0);
  ck_assert(nc.lease_expired(5.0));
  ck_assert_double_eq(nc.effective_grant_w(5.0), 190.0);  // the grant's floor
  // The lease ends lease_s after receipt if that is earlier than the stated expiry.
  GrantMessage late = grant(410.0, 2, 0.0, 5.0);
  late.expires_at_s = 100.0;
  ck_assert_std_str_eq(nc.on_grant(late, 1.0), "");
  ck_assert_double_eq(nc.lease().expires_at_s, 6.0);

  ck_assert_contains(nc.on_grant(grant(500.0, 2, 1.0), 1.0), "not newer");
  ck_assert_contains(nc.on_grant(grant(500.0, 1, 1.0), 1.0), "not newer");
  ck_assert_contains(nc.on_grant(grant(500.0, 3, 0.0, 2.0), 2.5), "expired");
  GrantMessage other = grant(500.0, 3, 1.0);
  other.node = "n2";
  ck_assert_contains(nc.on_grant(other, 1.0), "'n2'");
  ck_assert_contains(nc.on_grant(grant(kNaN, 3, 1.0), 1.0), "not finite");
  ck_assert_contains(nc.on_grant(grant(500.0, 3, 1.0, 0.0), 1.0), "lease length");
  ck_assert_double_eq(nc.lease().grant_w, 410.0);  // refused grants changed nothing
  // A new controller (higher epoch) starts its seqs afresh.
  ck_assert_std_str_eq(nc.on_grant(grant(350.0, 1, 2.0, 5.0, 180.0, 2), 2.0), "");
  ck_assert_double_eq(nc.effective_grant_w(2.0), 350.0);
  ck_assert_contains(nc.on_grant(grant(360.0, 9, 2.0, 5.0, 180.0, 1), 2.0), "not newer");
}
END_TEST

// ---------------------------------------------------------------- closed loop

START_TEST(moves_power_to_the_steeper_domain) {
  Plant plant({{0.1}, {0.8}});  // compute-bound on pkg0, memory-bound on pkg1
  NodeController nc("n1");
  ck_assert_std_str_eq(nc.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0), "");
  NodeDecision d;
  for (int t = 0; t < 60; ++t) {
    const NodeInputs in = plant.inputs(t);
    d = plant.step(nc, t);
    assert_safe(in, d, 300.0);
  }
  ck_assert_msg(d.caps_w[0] > d.caps_w[1] + 40.0, "caps %g, %g", d.caps_w[0], d.caps_w[1]);
  ck_assert_double_eq_tol(sum_in_order(d.caps_w), 300.0, 1e-6);
  for (std::size_t i = 0; i < 2; ++i) ck_assert(std::fabs(d.caps_w[i] - d.target_caps_w[i]) < 2.0);
  // At the targets, marginal gains are equal (up to the curves' 16 steps).
  const double g0 = nc.model("job0", 0)->marginal_gain_at(d.caps_w[0]);
  const double g1 = nc.model("job1", 1)->marginal_gain_at(d.caps_w[1]);
  ck_assert_msg(std::fabs(g0 - g1) < 0.15 * std::max(g0, g1), "marginals %g, %g", g0, g1);

  // Latency services: the loaded one wins, whatever their memory shares.
  Plant services({{0.3, 1.0, JobMode::latency, 0.4}, {0.3, 1.0, JobMode::latency, 0.9}});
  NodeController nl("n1");
  nl.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  for (int t = 0; t < 60; ++t) d = services.step(nl, t);
  ck_assert_msg(d.caps_w[1] > d.caps_w[0] + 40.0, "caps %g, %g", d.caps_w[0], d.caps_w[1]);
}
END_TEST

START_TEST(grant_drop_obeyed_in_the_same_step) {
  Plant plant({{0.1}, {0.5}});
  NodeController nc("n1");
  nc.on_grant(grant(400.0, 1, 0.0, 1e9), 0.0);
  NodeDecision d;
  for (int t = 0; t < 30; ++t) d = plant.step(nc, t);
  ck_assert(sum_in_order(d.caps_w) > 390.0);
  nc.on_grant(grant(250.0, 2, 30.0, 1e9), 30.0);
  const NodeInputs in = plant.inputs(30.0);
  d = plant.step(nc, 30.0);
  assert_safe(in, d, 250.0);
  ck_assert(sum_in_order(d.caps_w) > 245.0);  // and not needlessly low
  // Lease expiry: the floor, in the step the lease ends.
  nc.on_grant(grant(400.0, 3, 31.0, 2.0, 185.0), 31.0);
  for (double t = 31.0; t < 33.0; t += 1.0) d = plant.step(nc, t);
  const NodeInputs at_end = plant.inputs(33.0);
  d = plant.step(nc, 33.0);
  ck_assert(d.lease_expired);
  ck_assert_double_eq(d.effective_grant_w, 185.0);
  assert_safe(at_end, d, 185.0);
  ck_assert(d.report.lease_expired);
}
END_TEST

START_TEST(damping_and_deadband) {
  NodeControllerParams params;
  params.max_step_w = 5.0;
  params.max_step_frac = 0.10;  // 11.5 W on a 115 W range
  Plant plant({{0.2}, {0.2}});
  NodeController nc("n1", params);
  nc.on_grant(grant(200.0, 1, 0.0, 1e9), 0.0);
  NodeDecision d = plant.step(nc, 0.0);
  ck_assert_double_eq_tol(d.caps_w[0], 100.0, 1e-9);  // unknown caps: straight to the target
  for (int t = 1; t < 5; ++t) d = plant.step(nc, t);
  const std::vector<double> settled = d.caps_w;
  // A 2 W larger grant moves each target by 1 W: inside the deadband, nothing moves.
  nc.on_grant(grant(202.0, 2, 5.0, 1e9), 5.0);
  d = plant.step(nc, 5.0);
  ck_assert(d.caps_w == settled);
  // A large rise: at most 11.5 W per step per domain.
  nc.on_grant(grant(400.0, 3, 6.0, 1e9), 6.0);
  std::vector<double> prev = d.caps_w;
  for (int t = 6; t < 20; ++t) {
    d = plant.step(nc, t);
    for (std::size_t i = 0; i < 2; ++i) ck_assert(d.caps_w[i] - prev[i] <= 11.5 + 1e-9);
    prev = d.caps_w;
  }
  ck_assert_double_eq_tol(d.caps_w[0], 200.0, 1e-6);
  // Someone else changed a cap: the controller continues from the cap in force.
  plant.caps[0] = 120.0;
  d = plant.step(nc, 20.0);
  ck_assert_double_eq_tol(d.caps_w[0], 131.5, 1e-9);
}
END_TEST

START_TEST(perturbation_within_the_grant) {
  // Software counters with a progress rate: low confidence, so the model asks.
  std::vector<SimDomain> doms(2);
  doms[0].software = doms[0].progress = true;
  doms[1].m = 0.5;
  Plant plant(doms);
  NodeControllerParams params;
  params.seed = 42;
  NodeController nc("n1", params);
  nc.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  int perturbed = 0;
  double last = -1e9;
  for (int t = 0; t < 40; ++t) {
    const NodeInputs in = plant.inputs(t);
    const NodeDecision d = plant.step(nc, t);
    assert_safe(in, d, 300.0);
    if (!d.perturbed_domain) continue;
    ++perturbed;
    ck_assert_uint_eq(*d.perturbed_domain, 0);
    ck_assert_double_eq_tol(std::fabs(d.perturbation_w), 0.03 * (kMax - kMin), 1e-9);
    ck_assert(t - last >= 5.0);  // at most once per perturb_interval_s
    last = t;
    ck_assert(d.caps_w[0] - d.perturbation_w >= d.protected_w[0]);
  }
  ck_assert(perturbed >= 1);
  // The perturbation spread the regression's points: the model is now confident and has
  // stopped asking (noise-free data needs only one).
  const JobGradient &g = nc.model("job0", 0)->current();
  ck_assert(g.speedup.source == GradientSource::regression);
  ck_assert(!g.wants_perturbation);
  const double f = plant.freq(0);
  const double tm = 0.3 / 0.7 / kModel.f_max_hz;
  ck_assert_double_eq_tol(g.memory_share, tm / (1.0 / f + tm), 0.01);

  // Same seed, same inputs: same decisions.
  Plant a(doms), b(doms);
  NodeController na("n1", params), nb("n1", params);
  na.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  nb.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  for (int t = 0; t < 30; ++t) ck_assert(a.step(na, t).caps_w == b.step(nb, t).caps_w);

  // No room above (grant fully used, domain at its max): the perturbation goes down.
  std::vector<SimDomain> one(1);
  one[0].software = one[0].progress = true;
  Plant full(one);
  NodeController nf("n1", params);
  nf.on_grant(grant(kMax, 1, 0.0, 1e9), 0.0);
  for (int t = 0; t < 12; ++t) {
    const NodeDecision d = full.step(nf, t);
    if (d.perturbed_domain) ck_assert(d.perturbation_w < 0.0);
    ck_assert(d.caps_w[0] <= kMax);
  }
}
END_TEST

START_TEST(work_that_is_not_steered_is_protected) {
  std::vector<SimDomain> doms(2);
  doms[0].mode = JobMode::unmanaged;
  doms[0].alpha = 0.45;  // draws 125.25 W uncapped
  Plant plant(doms);
  NodeController nc("n1");
  nc.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  NodeDecision d;
  for (int t = 0; t < 30; ++t) d = plant.step(nc, t);
  const double uncapped = 60.0 + 145.0 * 0.45;
  ck_assert_double_eq_tol(d.protected_w[0], uncapped + 5.0, 1e-9);
  ck_assert(d.caps_w[0] >= d.protected_w[0] - 1e-9);
  ck_assert(d.caps_w[1] > d.caps_w[0]);  // the rest goes to the steered job
  ck_assert_double_eq_tol(d.report.need_w, uncapped + 5.0 + kMin, 1e-9);

  // Pressing against its cap: it may need everything, but gets at most its fair share.
  doms[0].alpha = 1.0;
  doms[0].mode = JobMode::monitor;
  Plant pressing(doms);
  NodeController np("n1");
  np.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  for (int t = 0; t < 30; ++t) d = pressing.step(np, t);
  ck_assert_double_eq_tol(d.protected_w[0], 150.0, 1e-9);
  ck_assert_double_eq_tol(d.report.need_w, kMax + kMin, 1e-9);

  // A steered job without a usable estimate is protected, not starved.
  Plant broken({{0.3}, {0.3}});
  NodeController nb("n1");
  nb.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  NodeInputs in = broken.inputs(0.0);
  in.jobs[0].domains[0].counters.interval_s = 0.0;
  d = nb.step(in);
  ck_assert(d.ok);
  ck_assert(!d.report.jobs[0].valid);
  ck_assert(d.protected_w[0] > kMin);
}
END_TEST

START_TEST(report_for_the_cluster) {
  std::vector<SimDomain> doms(2);
  doms[0].m = 0.2;
  doms[1].software = true;
  doms[1].mode = JobMode::latency;
  doms[1].busy = 0.7;
  Plant plant(doms);
  NodeControllerParams params;
  params.incarnation = 7;
  NodeController nc("n1", params);
  nc.on_grant(grant(320.0, 4, 0.0, 5.0, 185.0, 3), 0.0);
  NodeDecision d = plant.step(nc, 0.0);
  d = plant.step(nc, 1.0);
  const NodeReport &r = d.report;
  ck_assert_std_str_eq(r.node, "n1");
  ck_assert_uint_eq(r.incarnation, 7);
  ck_assert_uint_eq(r.report_seq, 2);
  ck_assert_uint_eq(r.lease_epoch, 3);
  ck_assert_uint_eq(r.lease_seq, 4);
  ck_assert_double_eq(r.lease_grant_w, 320.0);
  ck_assert_double_eq(r.lease_expires_at_s, 5.0);
  ck_assert_double_eq(r.effective_grant_w, 320.0);
  ck_assert_double_eq(r.min_w, 2 * kMin);
  ck_assert_double_eq(r.max_w, 2 * kMax);
  ck_assert_double_eq(r.need_w, 2 * kMin);
  ck_assert_double_eq(r.caps_w, sum_in_order(d.caps_w));
  ck_assert_double_eq_tol(r.power_w, plant.power(0) + plant.power(1), 1e-9);
  ck_assert(!r.idle);
  ck_assert(r.steerable);
  ck_assert(r.demand.valid());
  ck_assert_double_eq_tol(r.demand.width_w(), 2 * (kMax - kMin), 1e-9);
  ck_assert(r.demand.segments().size() <= params.report_segments);
  ck_assert_uint_eq(r.jobs.size(), 2);
  ck_assert(r.jobs[0].counters == CounterKind::hardware);
  ck_assert(r.jobs[0].source == GradientSource::counter_model);
  ck_assert(r.jobs[1].counters == CounterKind::software);
  ck_assert(r.jobs[1].unit == GradientUnit::latency_s_saved_per_w);
  ck_assert(r.jobs[1].mode == JobMode::latency);
  ck_assert_double_eq_tol(r.jobs[1].busy_fraction, 0.7, 1e-12);
  ck_assert(r.jobs[0].gain_per_w > 0.0);

  // An idle node: nothing to steer, an empty demand.
  NodeController idle("n2");
  Plant empty({SimDomain{0.3, 1.0, JobMode::throughput, 1.0, false, false, false}});
  const NodeDecision di = empty.step(idle, 0.0);
  ck_assert(di.report.idle);
  ck_assert(!di.report.steerable);
  ck_assert(di.report.demand.segments().empty());
  ck_assert_uint_eq(di.report.lease_seq, 0);
}
END_TEST

START_TEST(job_shares_split_a_shared_domain) {
  Plant plant(std::vector<SimDomain>{{0.1}});
  NodeInputs in = plant.inputs(0.0);
  in.jobs[0].domains[0].share = 0.5;
  JobInput second = in.jobs[0];
  second.key = "jobB";
  CounterSample &c = second.domains[0].counters;
  c.stall_cycles = *c.cycles * 0.7;
  in.jobs.push_back(second);
  NodeController nc("n1");
  nc.on_grant(grant(150.0, 1, 0.0, 1e9), 0.0);
  const NodeDecision d = nc.step(in);
  ck_assert(d.ok);
  ck_assert_uint_eq(d.job_shares.size(), 2);
  ck_assert_double_eq_tol(d.job_shares[0].gain_share + d.job_shares[1].gain_share, 1.0, 1e-12);
  ck_assert(d.job_shares[0].gain_share > d.job_shares[1].gain_share);
  ck_assert_std_str_eq(d.job_shares[1].job, "jobB");
}
END_TEST

START_TEST(bad_input_is_refused_or_skipped) {
  Plant plant({{0.3}, {0.3}});
  NodeController nc("n1");
  nc.on_grant(grant(300.0, 1, 0.0, 1e9), 0.0);
  NodeInputs in = plant.inputs(0.0);
  in.domains[1].min_cap_w = 300.0;
  NodeDecision d = nc.step(in);
  ck_assert(!d.ok);
  ck_assert(d.caps_w.empty());
  ck_assert_contains(d.error, "domain 1 (pkg1)");
  in = plant.inputs(0.0);
  in.now_s = kNaN;
  ck_assert_contains(nc.step(in).error, "now_s");
  in = plant.inputs(0.0);
  in.jobs[0].domains[0].domain = 5;
  in.jobs[1].domains.push_back(in.jobs[1].domains[0]);
  in.jobs.push_back(JobInput{});
  d = nc.step(in);
  ck_assert(d.ok);
  ck_assert_uint_eq(d.warnings.size(), 3);
  ck_assert_contains(d.warnings[0], "does not exist");
  ck_assert_contains(d.warnings[1], "listed twice");
  ck_assert_contains(d.warnings[2], "without a key");
  // No domains at all: nothing to do, safely.
  NodeInputs none;
  d = nc.step(none);
  ck_assert(d.ok);
  ck_assert(d.caps_w.empty());
}
END_TEST

// ---------------------------------------------------------------- the invariant

START_TEST(random_sequences_never_exceed_the_grant) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  long checked = 0;
  for (int run = 0; run < 100; ++run) {
    const std::size_t n = 1 + rng() % 3;
    std::vector<double> lo(n), hi(n);
    for (std::size_t i = 0; i < n; ++i) {
      lo[i] = 30.0 + 60.0 * unit(rng);
      hi[i] = lo[i] + 150.0 * unit(rng);
    }
    NodeControllerParams params;
    params.seed = run;
    params.floor_w = 0.0;
    for (double l : lo) params.floor_w += l;
    NodeController nc("n1", params);
    std::vector<double> caps(n, kNaN);
    std::uint64_t seq = 0;
    double grant_w = params.floor_w;
    for (int t = 0; t < 300; ++t) {
      const double now = t + 0.1 * unit(rng);
      // Grants: random walk with sudden drops, short leases that sometimes lapse, and
      // occasionally a grant below the domains' minimum.
      if (rng() % 3 == 0) {
        const double r = unit(rng);
        if (r < 0.1)
          grant_w *= 0.3;
        else if (r < 0.15)
          grant_w = params.floor_w * unit(rng);
        else
          grant_w = std::max(0.0, grant_w + 200.0 * (unit(rng) - 0.45));
        GrantMessage g = grant(grant_w, ++seq, now, 1.0 + 4.0 * unit(rng), params.floor_w);
        nc.on_grant(g, now);
      }
      NodeInputs in;
      in.now_s = now;
      for (std::size_t i = 0; i < n; ++i) {
        DomainInput di;
        di.name = "pkg" + std::to_string(i);
        di.min_cap_w = lo[i];
        di.max_cap_w = hi[i];
        const double r = unit(rng);
        di.cap_w = r < 0.05 ? kNaN : r < 0.1 ? lo[i] + (hi[i] - lo[i]) * unit(rng) : caps[i];
        di.power_w = r > 0.95 ? kNaN
                              : std::min(std::isnan(caps[i]) ? hi[i] : caps[i],
                                         lo[i] * 0.5 + hi[i] * unit(rng));
        di.model = kModel;
        if (rng() % 20 == 0) di.model.p0_w = -1.0;  // a broken model: jobs unsteered
        in.domains.push_back(di);
      }
      const std::size_t jobs = rng() % 4;
      for (std::size_t j = 0; j < jobs; ++j) {
        JobInput job;
        job.key = "j" + std::to_string(j);
        job.mode = static_cast<JobMode>(rng() % 4);
        for (std::size_t i = 0; i < n; ++i) {
          if (rng() % 2) continue;
          JobDomainInput jd;
          jd.domain = i;
          jd.cpus = 1.0 + rng() % 16;
          jd.share = 0.1 + 0.9 * unit(rng);
          CounterSample &c = jd.counters;
          c.interval_s = rng() % 30 == 0 ? 0.0 : 1.0;
          c.task_clock_s = jd.cpus * unit(rng);
          if (rng() % 3) {
            c.cycles = c.task_clock_s * 3e9 * unit(rng);
            c.instructions = *c.cycles * 2.0 * unit(rng);
            c.stall_cycles = *c.cycles * unit(rng);
            if (rng() % 25 == 0) c.stall_cycles = kNaN;
          }
          if (rng() % 2) jd.progress_rate = 1000.0 * unit(rng);
          job.domains.push_back(jd);
        }
        in.jobs.push_back(job);
      }
      const NodeDecision d = nc.step(in);
      assert_safe(in, d, nc.effective_grant_w(now));
      ck_assert_double_eq(d.effective_grant_w, nc.effective_grant_w(now));
      ck_assert(d.report.demand.valid());
      caps = d.caps_w;
      ++checked;
    }
  }
  ck_assert_int_eq(checked, 100 * 300);
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_node_controller");
  TCase *lease = tcase_create("lease");
  tcase_add_test(lease, curve_operations);
  tcase_add_test(lease, lease_rules);
  suite_add_tcase(s, lease);
  TCase *loop = tcase_create("closed_loop");
  tcase_set_timeout(loop, 60);
  tcase_add_test(loop, moves_power_to_the_steeper_domain);
  tcase_add_test(loop, grant_drop_obeyed_in_the_same_step);
  tcase_add_test(loop, damping_and_deadband);
  tcase_add_test(loop, perturbation_within_the_grant);
  tcase_add_test(loop, work_that_is_not_steered_is_protected);
  tcase_add_test(loop, report_for_the_cluster);
  tcase_add_test(loop, job_shares_split_a_shared_domain);
  tcase_add_test(loop, bad_input_is_refused_or_skipped);
  suite_add_tcase(s, loop);
  TCase *safety = tcase_create("safety");
  tcase_set_timeout(safety, 120);
  tcase_add_test(safety, random_sequences_never_exceed_the_grant);
  suite_add_tcase(s, safety);
  return pgtest::run_suite(s);
}
