// Gradient model v2: the counter prior, load weighting, the online regression (hardware and
// software counters), the concave gain curve, perturbation requests and bad input.
#include <check.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "libgradient/gradient_model.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const PowerModel kModel{60.0, 205.0, 3.4e9, 1.0};

DomainView domain(double power_w) { return DomainView{kModel, 90.0, 205.0, power_w}; }

// A job that T(f) = tc / f + tm describes (seconds per instruction, tc in cycles), on
// `cpus` CPUs busy `busy` of the interval, at frequency f. Hardware counters unless
// `software`; then the progress rate is instructions per second (when `progress`).
struct Workload {
  double tc = 1.0;    // cycles per instruction that scale with f
  double tm = 0.0;    // seconds per instruction that do not
  double busy = 1.0;  // busy fraction
  double cpus = 1.0;

  double time_per_instr(double f) const { return tc / f + tm; }
  double memory_share(double f) const { return tm / time_per_instr(f); }

  JobObservation observe(double f, JobMode mode, bool software = false,
                         bool progress = false) const {
    JobObservation o;
    o.mode = mode;
    o.cpus = cpus;
    CounterSample &c = o.counters;
    c.interval_s = 1.0;
    c.task_clock_s = busy * cpus;
    const double instr = c.task_clock_s / time_per_instr(f);
    if (!software) {
      c.cycles = c.task_clock_s * f;
      c.instructions = instr;
      c.stall_cycles = *c.cycles * memory_share(f);
      c.ref_cycles = *c.cycles;
    }
    if (progress) o.progress_rate = instr / c.interval_s;
    return o;
  }
};

// A workload with memory share m at frequency f.
Workload with_share(double m, double f, double busy = 1.0) {
  Workload w;
  w.tc = 1.0;
  w.tm = m / (1.0 - m) * (w.tc / f);
  w.busy = busy;
  return w;
}

// The frequency the power model gives at power p (alpha 1).
double freq_at(double p) { return kModel.freq_at_hz(p); }

double g_closed_form(double m, double p) { return (1.0 - m) / (3.0 * (p - kModel.p0_w)); }

// The domain's power as the model has it (alpha 1) for CPUs busy `busy` of the time at
// frequency f, not capped: P0 + (TDP - P0) busy (f / f_max)^3.
double power_at(double busy, double f) {
  const double x = f / kModel.f_max_hz;
  return kModel.p0_w + (kModel.tdp_w - kModel.p0_w) * busy * x * x * x;
}

// The physics the latency model assumes, solved here on its own: a service measured at power
// p_now (frequency freq_at(p_now)) with memory share m and busy fraction rho there keeps its
// offered load as the cap moves; at frequency f its busy fraction is rho r(f_now) / r(f)
// (r: speed) and the domain's dynamic power is proportional to busy fraction x f^3. Returns
// the busy fraction at domain power p (bisection on the frequency).
double busy_at_power(double p, double p_now, double m, double rho) {
  const double f_now = freq_at(p_now);
  const auto time_per_instr = [&](double f) {  // tc = 1 cycle, tm from m at f_now
    return 1.0 / f + m / (1.0 - m) / f_now;
  };
  const auto busy = [&](double f) { return rho * time_per_instr(f) / time_per_instr(f_now); };
  const double k = (p_now - kModel.p0_w) / (rho * f_now * f_now * f_now);
  const auto dyn = [&](double f) { return k * std::min(1.0, busy(f)) * f * f * f; };
  double lo = 1e6, hi = kModel.f_max_hz;
  if (dyn(hi) <= p - kModel.p0_w) return busy(hi);
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (dyn(mid) < p - kModel.p0_w ? lo : hi) = mid;
  }
  return busy(0.5 * (lo + hi));
}

// Requests in an M/M/c system at per-server utilisation r (textbook formula with P0).
double mmc_requests(double r, int c) {
  const double a = c * r;
  double sum = 0.0, term = 1.0;
  for (int k = 0; k < c; ++k) {
    sum += term;
    term *= a / (k + 1);
  }
  const double p0 = 1.0 / (sum + term / (1.0 - r));  // term = a^c / c!
  return a + p0 * term * r / ((1.0 - r) * (1.0 - r));
}

// The frequency model alone, without RAPL's low-cap slowdown (on by default below half of
// TDP): the closed forms below are of that model.
GradientModelParams cubic_only() {
  GradientModelParams p;
  p.low_cap_knee = 0.0;
  return p;
}

}  // namespace

// ---------------------------------------------------------------- prior and weighting

START_TEST(prior_is_the_counter_model) {
  for (double m : {0.1, 0.5, 0.8}) {
    for (double p : {100.0, 150.0}) {
      GradientModel model(cubic_only());
      const double f = freq_at(p);
      const JobGradient &g =
          model.update(with_share(m, f).observe(f, JobMode::throughput), domain(p));
      ck_assert(g.speedup.valid);
      ck_assert(g.steerable);
      ck_assert(g.counters == CounterKind::hardware);
      ck_assert(g.speedup.source == GradientSource::counter_model);
      ck_assert_double_eq_tol(g.memory_share, m, 1e-12);
      ck_assert_double_eq_tol(g.speedup.value, g_closed_form(m, p), 1e-12);
      ck_assert_double_eq_tol(g.gain_per_w, g.speedup.value, 1e-12);  // share 1, weight 1
      ck_assert(g.unit == GradientUnit::relative_speedup_per_w);
      ck_assert(g.speedup.confidence > 0.6);  // counters: no perturbation needed
      ck_assert(!g.wants_perturbation);
    }
  }
}
END_TEST

START_TEST(throughput_weighted_by_share) {
  GradientModel model;
  const double f = freq_at(150.0);
  JobObservation o = with_share(0.3, f).observe(f, JobMode::throughput);
  o.share = 0.25;
  const JobGradient &g = model.update(o, domain(150.0));
  ck_assert_double_eq_tol(g.gain_per_w, 0.25 * g_closed_form(0.3, 150.0), 1e-12);
  GradientModelParams params;
  params.throughput_weight = 2.0;
  GradientModel doubled(params);
  ck_assert_double_eq_tol(doubled.update(o, domain(150.0)).gain_per_w,
                          0.5 * g_closed_form(0.3, 150.0), 1e-12);
}
END_TEST

START_TEST(latency_weight_is_load_aware) {
  // The weight of a watt is the drop of the requests in the system, L(rho(P)), per watt: at
  // the current power, -dL/dP from the physics solved independently (busy_at_power).
  const double p = 150.0;
  const double f = freq_at(p);
  const double m = 0.3;
  const double g = g_closed_form(m, p);
  for (double rho : {0.2, 0.5, 0.9}) {
    GradientModel model;
    const JobGradient &e =
        model.update(with_share(m, f, rho).observe(f, JobMode::latency), domain(p));
    ck_assert(e.unit == GradientUnit::latency_s_saved_per_w);
    ck_assert_double_eq_tol(e.busy_fraction, rho, 1e-12);
    const auto l = [&](double pw) {
      const double q = busy_at_power(pw, p, m, rho);
      return q / (1.0 - q);
    };
    const double want = (l(p - 0.01) - l(p + 0.01)) / 0.02;
    ck_assert_msg(std::fabs(e.gain_per_w / want - 1.0) < 1e-3, "rho %g: gain %g, want %g", rho,
                  e.gain_per_w, want);
    // A watt buys more than at a fixed busy fraction (P ~ f^3: g rho / (1 - rho)^2), as the
    // busy fraction falls with the speed, at most 3/2 times as much.
    const double fixed_busy = g * rho / ((1 - rho) * (1 - rho));
    ck_assert(e.gain_per_w > fixed_busy && e.gain_per_w < 1.5 * fixed_busy);
    ck_assert_double_eq_tol(e.speedup.value, g, 1e-12);  // the raw gradient is unweighted
  }
  // A near-saturated service gains far more per watt than a half-loaded one with the same m.
  GradientModel hot, warm;
  const double w_hot =
      hot.update(with_share(m, f, 0.9).observe(f, JobMode::latency), domain(p)).gain_per_w;
  const double w_warm =
      warm.update(with_share(m, f, 0.5).observe(f, JobMode::latency), domain(p)).gain_per_w;
  ck_assert(w_hot > 10.0 * w_warm);
  // Saturated (busy 1): weighted as rho = 0.98, above any unsaturated load.
  GradientModel sat;
  const double w_sat =
      sat.update(with_share(m, f, 1.0).observe(f, JobMode::latency), domain(p)).gain_per_w;
  ck_assert(std::isfinite(w_sat) && w_sat > w_hot);
  // c servers: the weight scales with L'(rho), L the mean number in an M/M/c system
  // (differentiated numerically here; the library uses Erlang B's recurrence).
  const double slope8 = (mmc_requests(0.5 + 1e-5, 8) - mmc_requests(0.5 - 1e-5, 8)) / 2e-5;
  ck_assert(slope8 > 8.0 && slope8 < 8.0 + 4.0);  // between c and the old M/M/1-based bound
  GradientModel multi;
  JobObservation o = with_share(m, f, 0.5).observe(f, JobMode::latency);
  o.servers = 8.0;
  const double w_multi = multi.update(o, domain(p)).gain_per_w;
  ck_assert_double_eq_tol(w_multi / w_warm, slope8 / 4.0, 1e-6 * slope8);  // M/M/1: 1/(1-.5)^2
  ck_assert_double_eq_tol(mmc_requests_slope(0.5, 8.0), slope8, 1e-6 * slope8);
  ck_assert_double_eq_tol(mmc_requests_slope(0.9, 1.0), 100.0, 1e-9);
  // An explicit busy fraction overrides task-clock.
  GradientModel given;
  o.servers = 1.0;
  o.busy_fraction = 0.8;
  ck_assert_double_eq_tol(given.update(o, domain(p)).busy_fraction, 0.8, 1e-12);
}
END_TEST

START_TEST(monitor_and_plain_jobs_are_never_steered) {
  for (JobMode mode : {JobMode::monitor, JobMode::off}) {
    GradientModel model;
    const double f = freq_at(150.0);
    const JobGradient &g = model.update(with_share(0.2, f).observe(f, mode), domain(150.0));
    ck_assert(g.speedup.valid);  // estimated and reported
    ck_assert(g.speedup.value > 0.0);
    ck_assert(!g.steerable);
    ck_assert_double_eq(g.gain_per_w, 0.0);
    ck_assert_double_eq(model.marginal_gain_at(120.0), 0.0);
    ck_assert(!g.wants_perturbation);
    ck_assert_uint_eq(model.curve(90.0, 205.0, 8).segments().size(), 1);  // all slope 0
    ck_assert_double_eq(model.curve(90.0, 205.0, 8).gain_at(115.0), 0.0);
  }
}
END_TEST

// A plain job on a domain with steered work (JobObservation::value_as_latency): its model
// runs as a latency service's, so plain_gain_at() is what marginal_gain_at() of the same
// service in latency mode is, at every power, and for hardware and software counters; it is
// still not steered (no gain_per_w, no marginal gain, no perturbation). Without the flag, or
// in any other mode, plain_gain_at() is 0.
START_TEST(a_plain_job_beside_steered_work_is_valued_as_a_latency_service) {
  // A load that swings from period to period (0.4, 0.8) gives the service a capacity, and a
  // short horizon makes its transient bound hold: the plain model learns it too.
  GradientModelParams params;
  params.backlog_horizon_s = 0.5;
  for (bool software : {false, true}) {
    GradientModel latency(params), plain(params), unvalued(params), monitor(params);
    const double f = freq_at(150.0);
    for (int t = 0; t < 30; ++t) {
      Workload w = with_share(0.3, f, t % 2 ? 0.8 : 0.4);
      w.cpus = 4.0;
      JobObservation lo = w.observe(f, JobMode::latency, software);
      lo.servers = 4.0;
      JobObservation po = lo;
      po.mode = JobMode::off;
      po.value_as_latency = true;
      JobObservation uo = lo;
      uo.mode = JobMode::off;
      JobObservation mo = po;
      mo.mode = JobMode::monitor;
      latency.update(lo, domain(150.0));
      plain.update(po, domain(150.0));
      unvalued.update(uo, domain(150.0));
      monitor.update(mo, domain(150.0));
    }
    ck_assert(latency.current().steerable && !plain.current().steerable);
    ck_assert_double_eq(plain.current().gain_per_w, 0.0);
    ck_assert(!plain.current().wants_perturbation);
    ck_assert_double_eq_tol(plain.current().busy_fraction, latency.current().busy_fraction, 1e-12);
    int positive = 0;
    for (double p = 95.0; p <= 205.0; p += 5.0) {
      const double want = latency.marginal_gain_at(p);
      ck_assert_msg(std::fabs(plain.plain_gain_at(p) - want) <= 1e-12 * std::max(1.0, want),
                    "software %d, %g W: plain %g, latency %g", software, p, plain.plain_gain_at(p),
                    want);
      positive += want > 0.0;
      ck_assert_double_eq(plain.marginal_gain_at(p), 0.0);
      ck_assert_double_eq(unvalued.plain_gain_at(p), 0.0);
      ck_assert_double_eq(monitor.plain_gain_at(p), 0.0);
      ck_assert_double_eq(latency.plain_gain_at(p), 0.0);
    }
    ck_assert_int_gt(positive, 5);
    // reset() forgets it.
    plain.reset();
    ck_assert_double_eq(plain.plain_gain_at(120.0), 0.0);
  }
}
END_TEST

// ---------------------------------------------------------------- software counters

START_TEST(software_only_degrades_to_default_prior) {
  // 120 W with CPUs busy 60% of the time: below the top frequency by the power model.
  GradientModel model;
  const double f = freq_at(120.0);
  const JobGradient &g =
      model.update(with_share(0.2, f, 0.6).observe(f, JobMode::latency, true), domain(120.0));
  ck_assert(g.speedup.valid);
  ck_assert(g.counters == CounterKind::software);
  ck_assert(g.speedup.source == GradientSource::default_prior);
  ck_assert_double_eq(g.memory_share, 0.5);
  ck_assert_double_eq(g.speedup.confidence, 0.0);
  ck_assert(g.steerable);
  ck_assert(g.gain_per_w > 0.0);  // load awareness still works: task-clock gives rho
  ck_assert_double_eq_tol(g.busy_fraction, 0.6, 1e-12);
  // No speed signal: perturbing would teach nothing, so it does not ask.
  ck_assert(!g.wants_perturbation);
  // Emulated counters say so.
  GradientModel emu;
  JobObservation o = with_share(0.2, f).observe(f, JobMode::latency);
  o.emulated = true;
  ck_assert(emu.update(o, domain(150.0)).counters == CounterKind::emulated);
}
END_TEST

START_TEST(software_progress_regression_learns_memory_share) {
  // Software counters plus an application progress rate: the model asks for perturbations,
  // and once the powers it visits spread, the regression finds the true memory share.
  for (double m_true : {0.15, 0.5, 0.8}) {
    const double p_now = 140.0;
    const Workload w = with_share(m_true, freq_at(p_now));
    GradientModel model;
    const JobGradient *g =
        &model.update(w.observe(freq_at(p_now), JobMode::throughput, true, true), domain(p_now));
    ck_assert(g->wants_perturbation);
    ck_assert(g->speedup.source == GradientSource::default_prior);
    const double powers[] = {130.0, 150.0, 140.0, 120.0, 160.0, 140.0};
    for (int k = 0; k < 30; ++k) {
      const double p = powers[k % 6];
      g = &model.update(w.observe(freq_at(p), JobMode::throughput, true, true), domain(p));
    }
    ck_assert(g->speedup.source == GradientSource::regression);
    ck_assert_msg(std::fabs(g->memory_share - w.memory_share(freq_at(p_now))) < 0.02,
                  "m_true %g: estimated %g", w.memory_share(freq_at(p_now)), g->memory_share);
    ck_assert(g->speedup.confidence > 0.6);
    ck_assert(!g->wants_perturbation);
    ck_assert(g->regression_points > 20.0);
  }
}
END_TEST

START_TEST(software_progress_below_the_knee_learns_the_clock_alone) {
  // Below the low-cap knee a job's progress is slower than its clock says (RAPL's clock
  // modulation, cap_speed g(P)); the gain curves add that slowdown on their own. The
  // regression's points must therefore be of the clock alone: counted with the slowdown,
  // a memory-bound job would look compute-bound (its speed falling with the cap), and the
  // slowdown would be counted twice. Powers 80-100 W, below the knee (0.5 x 205 W).
  const GradientModelParams params;  // the defaults: knee 0.5, slowdown 1 per TDP
  const double knee = params.low_cap_knee * kModel.tdp_w;
  const auto g = [&](double p) {
    return 1.0 - params.low_cap_slowdown * std::max(0.0, knee - p) / kModel.tdp_w;
  };
  ck_assert(g(80.0) < 0.9);
  for (double m_true : {0.15, 0.5, 0.8}) {
    const double p_now = 90.0;
    const Workload w = with_share(m_true, freq_at(p_now));
    GradientModel model(params);
    const JobGradient *est = nullptr;
    const double powers[] = {85.0, 95.0, 90.0, 80.0, 100.0, 90.0};
    for (int k = 0; k < 60; ++k) {
      const double p = powers[k % 6];
      JobObservation o = w.observe(freq_at(p), JobMode::throughput, true, true);
      *o.progress_rate *= g(p);  // the work done is slowed by the clock modulation
      est = &model.update(o, domain(p));
    }
    const double want = w.memory_share(freq_at(p_now));
    ck_assert(est->speedup.source == GradientSource::regression);
    ck_assert_msg(std::fabs(est->memory_share - want) < 0.03, "m_true %g: estimated %g", want,
                  est->memory_share);
  }
}
END_TEST

START_TEST(progress_of_few_requests_is_pooled) {
  // Software counters and a progress signal that counts whole requests, about 3 a period
  // (a service of long requests) on a CPU that is always busy: a period completes 2, 3 or
  // 4 of them, as the requests' ends fall, whatever the clock. A ratio per period is as
  // noisy as that count; pooled to 40 requests a point, the regression finds the memory
  // share within 0.05 (per-period points do as well only where the clock hardly matters).
  const double powers[] = {120.0, 160.0, 140.0, 110.0, 150.0, 130.0};
  double sum_pooled = 0.0, sum_each = 0.0;
  for (double m_true : {0.15, 0.5, 0.8}) {
    GradientModelParams each_params;
    each_params.min_progress_per_point = 1e-9;
    GradientModel pooled, each(each_params);
    const Workload w = with_share(m_true, freq_at(140.0));
    const double instr_per_request = 0.31 / w.time_per_instr(freq_at(140.0));
    double done = 0.0;  // requests' worth of work done so far
    const JobGradient *gp = nullptr, *ge = nullptr;
    for (int k = 0; k < 900; ++k) {
      const double p = powers[(k / 20) % 6];  // the cap moves every 20 periods
      const double f = freq_at(p);
      JobObservation o = w.observe(f, JobMode::throughput, true, false);
      const double before = std::floor(done);
      done += o.counters.task_clock_s / w.time_per_instr(f) / instr_per_request;
      o.progress_rate = std::floor(done) - before;  // whole requests completed
      gp = &pooled.update(o, domain(p));
      ge = &each.update(o, domain(p));
    }
    const double want = w.memory_share(freq_at(130.0));
    const double err_pooled = std::fabs(gp->memory_share - want);
    const double err_each = std::fabs(ge->memory_share - want);
    ck_assert_msg(err_pooled < 0.05, "m %g: pooled points miss by %g", want, err_pooled);
    sum_pooled += err_pooled;
    sum_each += err_each;
  }
  ck_assert_msg(sum_pooled < 0.5 * sum_each, "pooled points miss by %g in all, per-period by %g",
                sum_pooled, sum_each);
}
END_TEST

START_TEST(hardware_regression_corrects_a_biased_prior) {
  // The stall counter under-reads the frequency-insensitive time (0.2 instead of 0.6): the
  // regression of busy time per instruction on 1/f pulls the estimate back.
  const double m_true = 0.6;
  const double p_now = 140.0;
  const Workload w = with_share(m_true, freq_at(p_now));
  GradientModel model;
  const double powers[] = {120.0, 160.0, 100.0, 180.0, 130.0, 140.0};
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(1.0, 0.01);  // 1% counter noise
  const JobGradient *g = nullptr;
  for (int k = 0; k < 120; ++k) {
    const double p = powers[k % 6];
    JobObservation o = w.observe(freq_at(p), JobMode::throughput);
    o.counters.stall_cycles = *o.counters.cycles * 0.2;
    *o.counters.instructions *= noise(rng);
    g = &model.update(o, domain(p));
    if (k == 0) ck_assert_double_eq_tol(g->memory_share, 0.2, 1e-12);
  }
  ck_assert(g->speedup.source == GradientSource::regression);
  ck_assert_msg(std::fabs(g->memory_share - m_true) < 0.05, "estimated %g", g->memory_share);
  ck_assert(g->regression_weight > 0.8);
  ck_assert(g->speedup.confidence > 0.8);
}
END_TEST

START_TEST(old_points_are_forgotten) {
  // The workload changes phase (compute- to memory-bound): with a 10 s half-life the
  // estimate follows within two minutes (the old phase's residuals slow it at first).
  GradientModelParams params;
  params.regression_half_life_s = 10.0;
  params.counter_memory_share_sd = 0.35;  // a weak prior, so the regression decides
  GradientModel model(params);
  const double p_now = 140.0;
  const double powers[] = {120.0, 160.0, 140.0};
  const Workload a = with_share(0.1, freq_at(p_now));
  const Workload b = with_share(0.7, freq_at(p_now));
  for (int k = 0; k < 60; ++k) {
    JobObservation o = a.observe(freq_at(powers[k % 3]), JobMode::throughput);
    o.counters.stall_cycles.reset();  // no stall counter: regression only
    model.update(o, domain(powers[k % 3]));
  }
  ck_assert(std::fabs(model.current().memory_share - 0.1) < 0.03);
  for (int k = 0; k < 120; ++k) {  // ends at 140 W, where b's memory share is 0.7
    JobObservation o = b.observe(freq_at(powers[k % 3]), JobMode::throughput);
    o.counters.stall_cycles.reset();
    model.update(o, domain(powers[k % 3]));
  }
  ck_assert_msg(std::fabs(model.current().memory_share - 0.7) < 0.03, "estimated %g",
                model.current().memory_share);
}
END_TEST

// ---------------------------------------------------------------- the curve

START_TEST(throughput_curve_follows_the_cubic_model) {
  const double p_now = 140.0;
  const double m = 0.3;
  GradientModel model(cubic_only());
  const double f = freq_at(p_now);
  model.update(with_share(m, f).observe(f, JobMode::throughput), domain(p_now));
  const auto r = [&](double p) {
    const double x = std::cbrt((p - kModel.p0_w) / (p_now - kModel.p0_w));
    return x / ((1.0 - m) + m * x);
  };
  const GainCurve c = model.curve(90.0, 205.0, 200);
  ck_assert(c.valid());
  ck_assert_double_eq_tol(c.width_w(), 115.0, 1e-9);
  for (std::size_t i = 1; i < c.segments().size(); ++i)
    ck_assert(c.segments()[i].slope < c.segments()[i - 1].slope);  // strictly concave here
  for (double p : {100.0, 140.0, 180.0, 205.0})
    ck_assert_double_eq_tol(c.gain_at(p - 90.0), r(p) - r(90.0), 1e-4);
  ck_assert_double_eq_tol(model.marginal_gain_at(p_now), g_closed_form(m, p_now), 1e-12);
  // Bad arguments: an invalid or empty curve, never a throw.
  ck_assert(!model.curve(kNaN, 205.0, 8).valid());
  ck_assert(!model.curve(90.0, 205.0, 0).valid());
  ck_assert(model.curve(150.0, 150.0, 8).segments().empty());
}
END_TEST

START_TEST(no_gain_past_the_top_frequency) {
  // Running at the top frequency at 150 W (a low-activity code): more cap buys nothing.
  GradientModel model;
  const double f = kModel.f_max_hz;
  const JobGradient &g =
      model.update(with_share(0.3, f).observe(f, JobMode::throughput), domain(150.0));
  ck_assert_double_eq(g.speedup.value, 0.0);
  ck_assert_double_eq(g.gain_per_w, 0.0);
  ck_assert_double_eq(model.marginal_gain_at(160.0), 0.0);
  ck_assert(model.marginal_gain_at(140.0) > 0.0);  // below, a lower cap does cost speed
  const GainCurve c = model.curve(90.0, 205.0, 115);
  ck_assert_double_eq_tol(c.gain_at(115.0), c.gain_at(60.0), 1e-12);
}
END_TEST

START_TEST(latency_curve_is_latency_saved) {
  // Gain between two powers = L(rho(P1)) - L(rho(P2)), L = rho / (1 - rho), rho(P) the busy
  // fraction the service has at domain power P (busy_at_power).
  const double p_now = 140.0;
  const double m = 0.4;
  const double rho = 0.6;
  GradientModel model;
  const double f = freq_at(p_now);
  model.update(with_share(m, f, rho).observe(f, JobMode::latency), domain(p_now));
  const auto load = [&](double p) {
    const double q = busy_at_power(p, p_now, m, rho);
    return q / (1.0 - q);
  };
  const GainCurve c = model.curve(120.0, 205.0, 400);
  ck_assert(c.valid());
  for (double p : {130.0, 160.0, 180.0})
    ck_assert_double_eq_tol(c.gain_at(p - 120.0), load(120.0) - load(p), 1e-4);
  // Past the power at which it reaches the top frequency (its busy fraction there times the
  // full-load power), nothing more.
  const double p_top = kModel.p0_w + (p_now - kModel.p0_w) /
                                         (rho * std::pow(f / kModel.f_max_hz, 3)) *
                                         busy_at_power(205.0, p_now, m, rho);
  ck_assert(p_top > 180.0 && p_top < 204.0);
  ck_assert_double_eq(model.marginal_gain_at(p_top + 0.01), 0.0);
  ck_assert(model.marginal_gain_at(p_top - 0.01) > 0.0);
  ck_assert_double_eq_tol(c.gain_at(205.0 - 120.0), c.gain_at(p_top + 0.5 - 120.0), 1e-12);
}
END_TEST

START_TEST(low_cap_slowdown_below_the_knee) {
  // The defaults (low_cap_knee 0.5, low_cap_slowdown 1): below 0.5 x 205 W a domain loses
  // an extra 1 / 205 of its speed per watt of cap, g(P) = 1 - (102.5 - P) / 205. A watt below
  // the knee buys that too; above it nothing changes. Knee 0 and slowdown 0: the cubic model
  // alone.
  const double p_now = 140.0;
  const double m = 0.3;
  const double f = freq_at(p_now);
  const JobObservation o = with_share(m, f).observe(f, JobMode::throughput);
  GradientModelParams knee, no_slow, no_knee;
  ck_assert_double_eq(knee.low_cap_knee, 0.5);
  ck_assert_double_eq(knee.low_cap_slowdown, 1.0);
  no_slow.low_cap_slowdown = 0.0;
  no_knee.low_cap_knee = 0.0;
  GradientModel on(knee), cubic(no_knee), cubic2(no_slow);
  on.update(o, domain(p_now));
  cubic.update(o, domain(p_now));
  cubic2.update(o, domain(p_now));
  const auto r = [&](double p) {  // speed relative to now, cubic model
    const double x = std::cbrt((p - kModel.p0_w) / (p_now - kModel.p0_w));
    return x / ((1.0 - m) + m * x);
  };
  const auto g = [](double p) { return p < 102.5 ? 1.0 - (102.5 - p) / 205.0 : 1.0; };
  for (double p : {105.0, 140.0, 180.0})
    ck_assert_double_eq_tol(on.marginal_gain_at(p), cubic.marginal_gain_at(p), 1e-15);
  for (double p : {92.0, 95.0, 100.0, 102.0}) {
    ck_assert_double_eq_tol(on.marginal_gain_at(p), cubic.marginal_gain_at(p) * g(p) + r(p) / 205.0,
                            1e-12);
    ck_assert_double_eq(cubic2.marginal_gain_at(p), cubic.marginal_gain_at(p));
  }
  ck_assert_double_eq(on.current().frequency_share, 1.0);  // measured above the knee
  // The gain over [92, 130] W is the speed r g gained, and the knee is a drop in the marginal.
  const GainCurve c = on.curve(92.0, 130.0, 3800);
  ck_assert_double_eq_tol(c.gain_at(38.0), r(130.0) - r(92.0) * g(92.0), 1e-5);
  ck_assert(on.marginal_gain_at(102.4) > on.marginal_gain_at(102.6) + 0.9 * r(102.5) / 205.0);

  // A latency service measured above the knee: the same above it, worth more below it.
  const double rho = 0.6;
  const JobObservation lat = with_share(m, f, rho).observe(f, JobMode::latency);
  GradientModel lon(knee), lcubic(no_knee);
  lon.update(lat, domain(p_now));
  lcubic.update(lat, domain(p_now));
  ck_assert_double_eq_tol(lon.marginal_gain_at(150.0), lcubic.marginal_gain_at(150.0), 1e-15);
  ck_assert(lon.marginal_gain_at(96.0) > 1.05 * lcubic.marginal_gain_at(96.0));
  // Measured below the knee: the busy fraction is what it is; the load at the top frequency
  // is what the service would have without the slowdown, and part of the gain (the
  // slowdown's) does not depend on the memory share.
  const double p_low = 96.0;
  const double f_low = freq_at(p_low);
  const JobObservation at_low = with_share(m, f_low, 0.5).observe(f_low, JobMode::latency);
  GradientModel a(knee), b(no_knee);
  a.update(at_low, domain(p_low));
  b.update(at_low, domain(p_low));
  ck_assert_double_eq_tol(a.current().busy_fraction, b.current().busy_fraction, 1e-12);
  ck_assert(a.marginal_gain_at(p_low) > b.marginal_gain_at(p_low));
  ck_assert(a.current().frequency_share > 0.2 && a.current().frequency_share < 0.99);
  ck_assert_double_eq(b.current().frequency_share, 1.0);
  // The slowdown acts only while the cap holds the domain: measured at 96 W under a cap of
  // 150 W, the service ran at its clock's speed and its load is the one measured (as without
  // a knee); at its cap (or with the cap unknown) it is taken as slowed.
  DomainView free_dom = domain(p_low), held_dom = domain(p_low);
  free_dom.cap_w = 150.0;
  held_dom.cap_w = p_low + 1.0;  // within the binding tolerance (3%) of the cap
  GradientModel free_model(knee), held_model(knee);
  free_model.update(at_low, free_dom);
  held_model.update(at_low, held_dom);
  for (double p : {110.0, 130.0}) {
    ck_assert_double_eq_tol(free_model.marginal_gain_at(p), b.marginal_gain_at(p), 1e-12);
    ck_assert_double_eq_tol(held_model.marginal_gain_at(p), a.marginal_gain_at(p), 1e-12);
  }
  ck_assert(std::fabs(held_model.marginal_gain_at(110.0) - free_model.marginal_gain_at(110.0)) >
            0.01 * free_model.marginal_gain_at(110.0));
}
END_TEST

START_TEST(marginal_is_concave_everywhere) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int round = 0; round < 300; ++round) {
    const double p_now = 62.0 + unit(rng) * 150.0;
    const double f = std::min(kModel.f_max_hz * (0.3 + unit(rng)), 1.2 * kModel.f_max_hz);
    Workload w = with_share(unit(rng), f, unit(rng) * 1.1);
    if (w.busy > 1.0) w.busy = 1.0;
    const JobMode mode = round % 2 ? JobMode::latency : JobMode::throughput;
    JobObservation o = w.observe(f, mode, round % 3 == 0, true);
    o.servers = 1.0 + static_cast<double>(rng() % 4);
    GradientModel model;
    model.update(o, domain(p_now));
    double prev = std::numeric_limits<double>::infinity();
    for (double p = 40.0; p < 260.0; p += 0.5) {
      const double g = model.marginal_gain_at(p);
      ck_assert_msg(std::isfinite(g) && g >= 0.0, "round %d: marginal %g at %g W", round, g, p);
      ck_assert_msg(g <= prev * (1.0 + 1e-9), "round %d: marginal rises at %g W (%g > %g)", round,
                    p, g, prev);
      prev = g;
    }
    ck_assert(model.curve(90.0, 205.0, 16).valid());
  }
}
END_TEST

START_TEST(load_spread_counts_busy_periods) {
  // A service of few long requests: its busy fraction moves from period to period (here
  // 0.1 or 0.3 at random, at a clock where the domain is not capped). With the mean load
  // alone, watts above the power the mean needs at the top clock buy nothing; the busy
  // periods need more, so with the spread counted (load_spread_k, the default 1) they do,
  // less and less the further above, up to about the busiest periods' need.
  const double f = 0.8 * kModel.f_max_hz;
  const double m = 0.3;
  const auto power = [&](double busy) { return power_at(busy, f); };
  const auto fed = [&](double k, bool alternate) {
    GradientModelParams params = cubic_only();
    params.load_spread_k = k;
    GradientModel model(params);
    std::mt19937 rng(5);
    for (int i = 0; i < 200; ++i) {
      const double busy = alternate ? (rng() % 2 ? 0.3 : 0.1) : 0.2;
      model.update(with_share(m, f, busy).observe(f, JobMode::latency), domain(power(busy)));
    }
    return model;
  };
  const GradientModel steady = fed(1.0, false);
  const GradientModel spread = fed(1.0, true);
  const GradientModel mean_only = fed(0.0, true);
  // Where the mean load's curve ends (its first zero on a 0.25 W grid).
  const auto end_of = [](const GradientModel &model) {
    for (double p = 61.0; p < 205.0; p += 0.25)
      if (model.marginal_gain_at(p) == 0.0) return p;
    return 205.0;
  };
  const double sat = end_of(mean_only);
  ck_assert_msg(sat > 61.0 && sat < 200.0, "the mean load's curve ends at %g W", sat);
  // A steady load of the same mean: its curve ends there too (within its 0.25 W grid and
  // the moving average's ripple), spread or not.
  ck_assert_msg(std::fabs(end_of(steady) - sat) <= 6.0, "%g vs %g W", end_of(steady), sat);
  ck_assert(spread.counts_load_spread() && !mean_only.counts_load_spread());
  const double above = spread.marginal_gain_at(sat + 5.0);
  ck_assert_msg(above > 0.0, "no gain 5 W past the mean load's need (%g W)", sat);
  // Below the mean's need the spread changes the gain by a factor, not its order.
  const double below = spread.marginal_gain_at(sat - 20.0);
  const double below_mean = mean_only.marginal_gain_at(sat - 20.0);
  ck_assert_msg(below > 0.5 * below_mean && below < 2.0 * below_mean, "%g vs %g", below,
                below_mean);
  ck_assert(above < below);
  // Concave (non-increasing) throughout, and it ends where the spread's top point is served
  // (the five-point rule's mean + 2.86 sd, about 2.4x the mean here).
  double prev = std::numeric_limits<double>::infinity();
  for (double p = 61.0; p < 205.0; p += 0.25) {
    const double g = spread.marginal_gain_at(p);
    ck_assert_msg(std::isfinite(g) && g >= 0.0 && g <= prev * (1.0 + 1e-9), "%g at %g W", g, p);
    prev = g;
  }
  const double far = kModel.p0_w + 3.2 * (sat - kModel.p0_w);
  ck_assert_msg(far < 205.0, "%g W", far);
  ck_assert_double_eq(spread.marginal_gain_at(far), 0.0);
  // Without cycles the clock, and so each period's load, is estimated from the power: its
  // error would count as spread, so software counters leave it out.
  GradientModel software(cubic_only());
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    const double busy = rng() % 2 ? 0.3 : 0.1;
    software.update(with_share(m, f, busy).observe(f, JobMode::latency, true, true),
                    domain(power(busy)));
  }
  ck_assert(software.current().steerable && !software.counts_load_spread());
}
END_TEST

START_TEST(transient_bound_weighs_a_backlog_by_what_it_can_complete) {
  // Two services learn their capacity while unsaturated: one of short requests, whose busy
  // fraction barely moves from period to period (0.58 or 0.62), and one of long requests
  // (0.3 or 0.85). Then both saturate (busy 1). The steady-state weight would value them
  // alike; within the horizon (backlog_horizon_s) a unit of speed is worth at most the
  // requests it completes, capacity x horizon / 2, which bounds the long-request service's
  // weight and leaves the short-request one's.
  const double f = 0.8 * kModel.f_max_hz;
  const double m = 0.3;
  const auto power = [&](double busy) { return power_at(busy, f); };
  const auto fed = [&](double horizon_s, double lo, double hi, int learn) {
    GradientModelParams params = cubic_only();
    params.backlog_horizon_s = horizon_s;
    GradientModel model(params);
    std::mt19937 rng(9);
    for (int i = 0; i < learn; ++i) {
      const double busy = rng() % 2 ? hi : lo;
      model.update(with_share(m, f, busy).observe(f, JobMode::latency), domain(power(busy)));
    }
    for (int i = 0; i < 200; ++i)
      model.update(with_share(m, f, 1.0).observe(f, JobMode::latency), domain(power(1.0)));
    return model;
  };
  const GradientModel short_bound = fed(10.0, 0.58, 0.62, 100);
  const GradientModel short_free = fed(0.0, 0.58, 0.62, 100);
  const GradientModel long_bound = fed(10.0, 0.3, 0.85, 100);
  const GradientModel long_free = fed(0.0, 0.3, 0.85, 100);
  // The capacities: 2 load / (half the mean square change x T), in the load's unit (busy
  // fraction at f_max, 1.0 / r_top of the measured one): about 3,000 and 15 a second.
  const double c_short = short_bound.current().capacity_rps;
  const double c_long = long_bound.current().capacity_rps;
  ck_assert_msg(c_short > 1000.0 && c_short < 10000.0, "short: %g requests/s", c_short);
  ck_assert_msg(c_long > 5.0 && c_long < 40.0, "long: %g requests/s", c_long);
  ck_assert_double_eq(short_free.current().capacity_rps, c_short);  // measured either way
  const double p = power(1.0) - 1.0;                                // saturated, held by its cap
  const double gs = short_bound.marginal_gain_at(p);
  const double gl = long_bound.marginal_gain_at(p);
  ck_assert(gs > 0.0 && gl > 0.0);
  // The short-request service's weight (about 2,500 at the clamp) is below its bound
  // (15,000): unchanged. The long-request one's is bounded: by capacity x 10 s / 2 instead of
  // the clamp's weight, slope(0.98) x rho with rho just above 1 (1 W below its power).
  ck_assert_double_eq_tol(gs, short_free.marginal_gain_at(p), 1e-12 * gs);
  const double ratio = gl / long_free.marginal_gain_at(p);
  const double expect = 0.5 * c_long * 10.0 / mmc_requests_slope(0.98, 1.0);
  ck_assert_msg(ratio > 0.95 * expect && ratio < 1.01 * expect, "ratio %g, expected about %g",
                ratio, expect);
  ck_assert(gl < 0.2 * gs);
  // Non-increasing over the whole range with the bound in force.
  double prev = std::numeric_limits<double>::infinity();
  for (double q = 61.0; q < 205.0; q += 0.25) {
    const double g = long_bound.marginal_gain_at(q);
    ck_assert_msg(std::isfinite(g) && g >= 0.0 && g <= prev * (1.0 + 1e-9), "%g at %g W", g, q);
    prev = g;
  }
  // Before ten unsaturated periods the capacity is not known: no bound.
  const GradientModel young = fed(10.0, 0.3, 0.85, 8);
  ck_assert_double_eq(young.current().capacity_rps, 0.0);
  ck_assert_double_eq_tol(young.marginal_gain_at(p), fed(0.0, 0.3, 0.85, 8).marginal_gain_at(p),
                          1e-12 * young.marginal_gain_at(p));
  // Saturated periods teach nothing: a service that was never below 0.9 has no capacity.
  ck_assert_double_eq(fed(10.0, 0.95, 1.0, 100).current().capacity_rps, 0.0);
}
END_TEST

// ---------------------------------------------------------------- bad input

START_TEST(bad_input_is_reported_not_thrown) {
  const double f = freq_at(150.0);
  const Workload w = with_share(0.3, f);
  {
    GradientModel model;
    JobObservation o = w.observe(f, JobMode::latency);
    o.counters.interval_s = 0.0;
    const JobGradient &g = model.update(o, domain(150.0));
    ck_assert(!g.speedup.valid);
    ck_assert(!g.steerable);
    ck_assert_contains(g.speedup.reason, "interval");
    ck_assert_double_eq(model.marginal_gain_at(150.0), 0.0);
  }
  {
    GradientModel model;
    JobObservation o = w.observe(f, JobMode::latency);
    o.counters.cycles = kNaN;
    ck_assert_contains(model.update(o, domain(150.0)).speedup.reason, "not finite");
  }
  {
    GradientModel model;
    DomainView bad = domain(150.0);
    bad.model.tdp_w = 10.0;
    ck_assert_contains(model.update(w.observe(f, JobMode::latency), bad).speedup.reason, "tdp_w");
  }
  {
    GradientModel model;
    ck_assert_contains(model.update(w.observe(f, JobMode::latency), domain(kNaN)).speedup.reason,
                       "no power reading");
    JobObservation o = w.observe(f, JobMode::latency);
    o.counters.energy_j = 150.0;  // the sample's energy stands in for a missing reading
    ck_assert(model.update(o, domain(kNaN)).speedup.valid);
  }
  {
    GradientModel model;
    JobObservation o = w.observe(f, JobMode::latency);
    o.share = 1.5;
    ck_assert_contains(model.update(o, domain(150.0)).speedup.reason, "share");
  }
}
END_TEST

START_TEST(stale_samples_decay_then_invalidate) {
  const double f = freq_at(150.0);
  GradientModel model;
  model.update(with_share(0.3, f).observe(f, JobMode::latency), domain(150.0));
  double conf = model.current().speedup.confidence;
  JobObservation bad = with_share(0.3, f).observe(f, JobMode::latency);
  bad.counters.interval_s = -1.0;
  for (int k = 0; k < 3; ++k) {
    const JobGradient &g = model.update(bad, domain(150.0));
    ck_assert(g.speedup.valid);
    ck_assert(g.speedup.confidence < conf);
    conf = g.speedup.confidence;
  }
  const JobGradient &g = model.update(bad, domain(150.0));
  ck_assert(!g.speedup.valid);
  ck_assert_contains(g.speedup.reason, "no usable sample for 4 periods");
  ck_assert(g.counters == CounterKind::hardware);  // still says what it had
  // A good sample brings it back.
  ck_assert(
      model.update(with_share(0.3, f).observe(f, JobMode::latency), domain(150.0)).speedup.valid);
  model.reset();
  ck_assert(!model.current().speedup.valid);
}
END_TEST

START_TEST(deterministic) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<std::pair<JobObservation, DomainView>> inputs;
  for (int k = 0; k < 50; ++k) {
    const double p = 90.0 + 100.0 * unit(rng);
    inputs.push_back({with_share(0.4, freq_at(p), unit(rng))
                          .observe(freq_at(p), JobMode::latency, k % 2 == 0, true),
                      domain(p)});
  }
  GradientModel a, b;
  for (const auto &in : inputs) {
    const JobGradient ga = a.update(in.first, in.second);
    const JobGradient gb = b.update(in.first, in.second);
    ck_assert(ga.gain_per_w == gb.gain_per_w);
    ck_assert(ga.memory_share == gb.memory_share);
    ck_assert(ga.speedup.confidence == gb.speedup.confidence);
  }
}
END_TEST

// ---------------------------------------------------------------- load smoothing

namespace {

// A service with a fixed offered load: busy `rho_top` of the time at the top frequency,
// T(f) = tc / f + tm per request (tm for memory share m at the top frequency). Observed at
// frequency f, it is busy rho_top T(f) / T(f_top), and its hardware counters agree.
Workload service_at(double rho_top, double m_top, double f) {
  Workload w;
  w.tc = 1.0;
  w.tm = m_top / (1.0 - m_top) * (w.tc / kModel.f_max_hz);
  w.busy = rho_top * w.time_per_instr(f) / w.time_per_instr(kModel.f_max_hz);
  return w;
}

}  // namespace

START_TEST(cap_change_moves_busy_fraction_without_lag) {
  // The same offered load; the cap (and so the frequency) changes. The busy fraction the
  // model reports jumps to the value consistent with the new frequency in one update,
  // although load changes themselves are smoothed heavily (weight 0.05).
  for (double m_top : {0.0, 0.3}) {
    for (const auto &powers : {std::pair<double, double>{200.0, 100.0},
                               std::pair<double, double>{100.0, 200.0}}) {
      const double rho_top = 0.5;
      GradientModel model(cubic_only());
      const double f1 = freq_at(powers.first);
      const double rho1 = service_at(rho_top, m_top, f1).busy;
      double est = 0.0;
      for (int k = 0; k < 20; ++k)
        est = model
                  .update(service_at(rho_top, m_top, f1).observe(f1, JobMode::latency),
                          domain(powers.first))
                  .busy_fraction;
      ck_assert_double_eq_tol(est, rho1, 1e-9);
      const double f2 = freq_at(powers.second);
      const double rho2 = service_at(rho_top, m_top, f2).busy;
      ck_assert_msg(std::fabs(rho2 - rho1) > 0.08, "test needs a large move (%g -> %g)", rho1,
                    rho2);
      est = model
                .update(service_at(rho_top, m_top, f2).observe(f2, JobMode::latency),
                        domain(powers.second))
                .busy_fraction;
      // One update: within 2 % of the step (the memory-share estimate, smoothed, is the only
      // lag; m = 0 is exact).
      const double tol = m_top == 0.0 ? 1e-9 : 0.02 * std::fabs(rho2 - rho1);
      ck_assert_msg(std::fabs(est - rho2) <= tol,
                    "m %g, %g W -> %g W: busy %g, want %g (was %g)", m_top, powers.first,
                    powers.second, est, rho2, rho1);
      // And it stays there.
      for (int k = 0; k < 5; ++k)
        est = model
                  .update(service_at(rho_top, m_top, f2).observe(f2, JobMode::latency),
                          domain(powers.second))
                  .busy_fraction;
      ck_assert_double_eq_tol(est, rho2, m_top == 0.0 ? 1e-9 : 0.02 * std::fabs(rho2 - rho1));
    }
  }
}
END_TEST

START_TEST(load_rises_and_falls_are_followed_alike) {
  // At a fixed frequency, without the change detector: a step of the offered load up, and
  // an equal step down, are both followed by the documented moving average (after the first
  // 1 / w samples, which are averaged alike).
  const double p = 150.0;
  const double f = freq_at(p);
  const double lo = 0.3, hi = 0.6;
  GradientModelParams params;
  params.load_change_sds = 0.0;
  const auto run = [&](double from, double to, int k) {
    GradientModel model(params);
    double est = 0.0;
    for (int i = 0; i < 30; ++i)
      est = model.update(with_share(0.3, f, from).observe(f, JobMode::latency), domain(p))
                .busy_fraction;
    ck_assert_double_eq_tol(est, from, 1e-12);
    for (int i = 0; i < k; ++i)
      est = model.update(with_share(0.3, f, to).observe(f, JobMode::latency), domain(p))
                .busy_fraction;
    return (est - from) / (to - from);  // fraction of the step covered
  };
  for (int k : {1, 3, 10}) {
    const double want = 1.0 - std::pow(1.0 - params.busy_smoothing_weight, k);
    ck_assert_double_eq_tol(run(lo, hi, k), want, 1e-9);
    ck_assert_double_eq_tol(run(hi, lo, k), want, 1e-9);
  }
  // A new job: its first samples are averaged alike.
  GradientModel fresh(params);
  double first = 0.0;
  for (double b : {0.2, 0.6, 0.4})
    first =
        fresh.update(with_share(0.3, f, b).observe(f, JobMode::latency), domain(p)).busy_fraction;
  ck_assert_double_eq_tol(first, 0.4, 1e-9);
  // Noise around a steady load leaves the estimate at the load, not above it: busy fractions
  // drawn +-0.3 around 0.5 (the noise of a service with few, long requests per period).
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> noise(-0.3, 0.3);
  GradientModel model;  // with the change detector: noise alone does not set it off
  double sum = 0.0;
  int n = 0;
  for (int i = 0; i < 3000; ++i) {
    const double est =
        model.update(with_share(0.3, f, 0.5 + noise(rng)).observe(f, JobMode::latency), domain(p))
            .busy_fraction;
    if (i >= 200) {
      sum += est;
      ++n;
    }
  }
  ck_assert_msg(std::fabs(sum / n - 0.5) < 0.01, "mean estimate %g for a load of 0.5", sum / n);
}
END_TEST

START_TEST(load_change_beyond_noise_is_followed_within_periods) {
  // A burst of arrivals (the load x1.3 for a while) under per-period noise: the change
  // detector follows the step within a few periods, where the slow average alone would
  // take about 1 / w = 20; noise alone never sets it off, so a steady load's estimate is as
  // quiet as the slow average's.
  const double p = 150.0;
  const double f = freq_at(p);
  const auto observe = [&](GradientModel &model, double busy) {
    return model.update(with_share(0.3, f, busy).observe(f, JobMode::latency), domain(p))
        .busy_fraction;
  };
  for (double noise_sd : {0.0, 0.03, 0.06}) {
    std::mt19937 rng(11);
    std::normal_distribution<double> noise(0.0, noise_sd > 0.0 ? noise_sd : 1e-12);
    GradientModelParams slow_params;
    slow_params.load_change_sds = 0.0;
    GradientModel model, slow(slow_params);
    for (int i = 0; i < 200; ++i) {
      const double b = 0.5 + noise(rng);
      observe(model, b);
      observe(slow, b);
    }
    int periods = 0, slow_periods = 0;
    for (int i = 1; i <= 40; ++i) {
      const double b = 0.65 + noise(rng);
      // Within 4 noise spreads (or 0.02) of the new load.
      const double tol = std::max(0.02, 4.0 * noise_sd * std::sqrt(0.25 / 1.75));
      if (!periods && std::fabs(observe(model, b) - 0.65) <= tol) periods = i;
      if (!slow_periods && std::fabs(observe(slow, b) - 0.65) <= tol) slow_periods = i;
    }
    ck_assert_msg(periods >= 1 && periods <= 8, "noise %g: followed after %d periods", noise_sd,
                  periods);
    ck_assert_msg(slow_periods == 0 || slow_periods > 2 * periods,
                  "noise %g: the slow average alone took %d periods, the detector %d", noise_sd,
                  slow_periods, periods);
  }
  // A steady noisy load: the estimate's spread with the detector is that of the slow
  // average (no false jumps), for noise of any size.
  for (double noise_sd : {0.02, 0.1, 0.2}) {
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0.0, noise_sd);
    GradientModelParams slow_params;
    slow_params.load_change_sds = 0.0;
    GradientModel model, slow(slow_params);
    double ss = 0.0, ss_slow = 0.0;
    int n = 0;
    for (int i = 0; i < 4000; ++i) {
      const double b = std::clamp(0.5 + noise(rng), 0.0, 1.0);
      const double e = observe(model, b) - 0.5;
      const double es = observe(slow, b) - 0.5;
      if (i >= 200) {
        ss += e * e;
        ss_slow += es * es;
        ++n;
      }
    }
    ck_assert_msg(std::sqrt(ss / n) <= 1.1 * std::sqrt(ss_slow / n),
                  "noise %g: the estimate's spread %g against the slow average's %g", noise_sd,
                  std::sqrt(ss / n), std::sqrt(ss_slow / n));
  }
}
END_TEST

// The top clock learned (GradientModelParams::top_clock_min_busy): a latency service on a
// socket whose real top (3.7 GHz) is above the model's f_max (3.4 GHz) runs there while
// the cap does not bind, then under a cap at 3.3 GHz. Where the periods at its own clock
// are known as such (cap known, drawn clearly below it, busy enough), its gain curve
// reaches past the power of 3.4 GHz at its load; where the cap was unknown (counted as
// binding), or the service busier than it was in those periods is asked for, it ends there.
START_TEST(top_clock_learned_where_the_cap_does_not_bind) {
  const double f_real = 3.7e9, f_capped = 3.3e9, m = 0.2;
  const auto power = [](double busy, double f) { return power_at(busy, f); };
  const auto run = [&](const GradientModelParams &params, bool cap_known) {
    auto model = std::make_unique<GradientModel>(params);
    for (int k = 0; k < 10; ++k) {  // at its own clock: 191 W under the 205 W cap
      DomainView d = domain(power(0.7, f_real));
      if (cap_known) d.cap_w = 205.0;
      model->update(with_share(m, f_real, 0.7).observe(f_real, JobMode::latency), d);
    }
    for (int k = 0; k < 10; ++k) {  // held by a 160 W cap
      DomainView d = domain(power(0.75, f_capped));
      d.cap_w = 160.0;
      model->update(with_share(m, f_capped, 0.75).observe(f_capped, JobMode::latency), d);
    }
    return model;
  };
  // Where the marginal gain ends (the first watt past the curve's top), from 160 W up.
  const auto end_w = [](const GradientModel &g) {
    double p = 160.0;
    while (p < 205.0 && g.marginal_gain_at(p) > 0.0) p += 0.25;
    return p;
  };
  GradientModelParams strict = cubic_only();
  strict.top_clock_min_busy = 0.8;  // the free-running periods were busy 0.7
  const auto learned = run(cubic_only(), true);
  const auto unknown_cap = run(cubic_only(), false);
  const auto too_idle = run(strict, true);
  const double end_generic = end_w(*unknown_cap);
  ck_assert_msg(end_generic > 161.0 && end_generic < 180.0, "generic end %g W", end_generic);
  ck_assert_double_eq(end_w(*too_idle), end_generic);
  // At its offered load the busy fraction scales as (1 - m) / x + m with the relative clock
  // x, so the dynamic power as (1 - m) x^2 + m x^3: 3.7 GHz draws about 1.2 times what
  // 3.4 GHz draws (m about 0.2 at either clock).
  const double end_learned = end_w(*learned);
  const double x = f_real / kModel.f_max_hz;
  const double want =
      kModel.p0_w + (end_generic - kModel.p0_w) * ((1.0 - m) * x * x + m * x * x * x);
  ck_assert_msg(end_learned > end_generic + 10.0, "learned end %g W, generic %g W", end_learned,
                end_generic);
  ck_assert_msg(std::fabs(end_learned - std::min(want, 205.0)) < 3.0, "learned end %g W, want %g",
                end_learned, want);
  ck_assert(learned->marginal_gain_at(end_generic + 1.0) > 0.0);
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_gradient_model");
  TCase *prior = tcase_create("prior_and_weighting");
  tcase_add_test(prior, prior_is_the_counter_model);
  tcase_add_test(prior, throughput_weighted_by_share);
  tcase_add_test(prior, latency_weight_is_load_aware);
  tcase_add_test(prior, monitor_and_plain_jobs_are_never_steered);
  tcase_add_test(prior, a_plain_job_beside_steered_work_is_valued_as_a_latency_service);
  tcase_add_test(prior, cap_change_moves_busy_fraction_without_lag);
  tcase_add_test(prior, load_rises_and_falls_are_followed_alike);
  tcase_add_test(prior, load_change_beyond_noise_is_followed_within_periods);
  suite_add_tcase(s, prior);
  TCase *regression = tcase_create("regression");
  tcase_add_test(regression, software_only_degrades_to_default_prior);
  tcase_add_test(regression, software_progress_regression_learns_memory_share);
  tcase_add_test(regression, hardware_regression_corrects_a_biased_prior);
  tcase_add_test(regression, old_points_are_forgotten);
  tcase_add_test(regression, software_progress_below_the_knee_learns_the_clock_alone);
  tcase_add_test(regression, progress_of_few_requests_is_pooled);
  suite_add_tcase(s, regression);
  TCase *curve = tcase_create("curve");
  tcase_set_timeout(curve, 60);
  tcase_add_test(curve, throughput_curve_follows_the_cubic_model);
  tcase_add_test(curve, top_clock_learned_where_the_cap_does_not_bind);
  tcase_add_test(curve, no_gain_past_the_top_frequency);
  tcase_add_test(curve, latency_curve_is_latency_saved);
  tcase_add_test(curve, marginal_is_concave_everywhere);
  tcase_add_test(curve, low_cap_slowdown_below_the_knee);
  tcase_add_test(curve, load_spread_counts_busy_periods);
  tcase_add_test(curve, transient_bound_weighs_a_backlog_by_what_it_can_complete);
  suite_add_tcase(s, curve);
  TCase *bad = tcase_create("bad_input");
  tcase_add_test(bad, bad_input_is_reported_not_thrown);
  tcase_add_test(bad, stale_samples_decay_then_invalidate);
  tcase_add_test(bad, deterministic);
  suite_add_tcase(s, bad);
  return pgtest::run_suite(s);
}
