#include "libgradient/gradient_model.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "libgradient/numeric.hpp"

namespace powergrad {

namespace {

bool optional_ok(const std::optional<double> &x) { return !x || finite_nonnegative(*x); }

// Floor on the regression's spread: perfectly consistent points say less than they seem to
// (the model is an approximation of the workload, not the workload).
constexpr double kMinRegressionSd = 0.01;
// Confidence lost per period while an estimate is kept on stale samples.
constexpr double kStaleConfidenceDecay = 0.7;
// Smallest relative speed the curve works with (keeps 1 / r finite far below P0).
constexpr double kMinRelativeSpeed = 1e-6;
// Periods at this busy fraction or above do not count towards the capacity (update_capacity),
// which is known after kCapacityMinSamples periods.
constexpr double kCapacityBusyMax = 0.9;
constexpr double kCapacityMinSamples = 10.0;
// A period whose busy fraction is below this does not refit the latency power model.
constexpr double kMinFitBusy = 0.05;
// The least share of its speed the low-cap slowdown leaves a domain (as a floor on the model).
constexpr double kMinCapSpeed = 0.1;
// Least spread of the load change detector (busy fraction): a load that has been exact so
// far does not jump on rounding.
constexpr double kMinLoadChangeSd = 0.002;

// Requests in an M/M/c system at per-server utilisation rho: L = c rho + Lq, with Lq from
// Erlang's C formula (the probability of waiting) times rho / (1 - rho). Erlang B by its
// stable recurrence, then C = c B / (c - a (1 - B)) with a = c rho. c is rounded to a
// whole number of servers, at least 1 (c = 1: L = rho / (1 - rho), the M/M/1 form).
double mmc_requests(double rho, int c) {
  const double a = c * rho;
  double b = 1.0;
  for (int k = 1; k <= c; ++k) b = a * b / (k + a * b);
  const double wait = c * b / (c - a * (1.0 - b));
  return a + wait * rho / (1.0 - rho);
}

}  // namespace

// dL/drho of the M/M/c form above (central difference, within [0, 0.999)).
double mmc_requests_slope(double rho, double servers) {
  const int c = static_cast<int>(std::clamp(std::round(servers), 1.0, 4096.0));
  if (c == 1) {
    // M/M/1: L = rho / (1 - rho), exactly.
    const double q = 1.0 / (1.0 - std::clamp(rho, 0.0, 0.999));
    return q * q;
  }
  const double h = 1e-4;
  const double lo = std::max(0.0, rho - h);
  const double hi = std::min(0.999, rho + h);
  if (!(hi > lo)) return 0.0;
  return (mmc_requests(hi, c) - mmc_requests(lo, c)) / (hi - lo);
}

void GradientModel::Regression::decay(double factor) {
  w *= factor;
  ww *= factor * factor;
  su *= factor;
  sy *= factor;
  suu *= factor;
  suy *= factor;
  syy *= factor;
}

void GradientModel::Regression::add(double u, double y) {
  w += 1.0;
  ww += 1.0;
  su += u;
  sy += y;
  suu += u * u;
  suy += u * y;
  syy += y * y;
}

GradientModel::GradientModel(const GradientModelParams &params) : params_(params) { reset(); }

void GradientModel::reset() {
  current_ = JobGradient{};
  current_.speedup = GradientEstimate::invalid("no sample yet");
  stale_periods_ = 0;
  prior_m_ = 0.0;
  prior_sd_ = 0.0;
  prior_from_counters_ = false;
  have_busy_ = false;
  busy_samples_ = 0.0;
  load_top_ = load_fast_ = 0.0;
  load_diff_var_ = -1.0;
  load_var_ = 0.0;
  cap_prev_load_ = -1.0;
  cap_load_ = cap_dvar_ = cap_samples_ = 0.0;
  spread_measured_ = false;
  full_dyn_w_ = m_top_ = 0.0;
  x_hi_ = 1.0;
  top_seen_hz_ = 0.0;
  reg_ = Regression{};
  y_ref_ = 0.0;
  pool_task_s_ = pool_work_s_ = pool_progress_ = pool_u_task_ = pool_s_ = 0.0;
  have_point_ = false;
  mode_ = JobMode::off;
  plain_valued_ = false;
  share_ = 1.0;
  servers_ = 1.0;
  p0_w_ = dyn_now_w_ = sat_dyn_w_ = 0.0;
}

void GradientModel::mark_stale(const std::string &why) {
  const int max_stale = std::max(0, params_.max_stale_periods);
  if (current_.speedup.valid && stale_periods_ < max_stale) {
    ++stale_periods_;
    current_.speedup.confidence *= kStaleConfidenceDecay;
    current_.wants_perturbation = false;
    return;
  }
  std::string reason = why;
  if (current_.speedup.valid)
    reason = "no usable sample for " + std::to_string(stale_periods_ + 1) + " periods: " + why;
  const CounterKind kind = current_.counters;
  current_ = JobGradient{};
  current_.speedup = GradientEstimate::invalid(std::move(reason));
  current_.counters = kind;
  stale_periods_ = 0;
  have_point_ = false;
}

bool GradientModel::regression_estimate(double u_now, double *m, double *sd) const {
  const Regression &r = reg_;
  if (!(r.w > 0.0) || !(r.ww > 0.0)) return false;
  const double n_eff = r.w * r.w / r.ww;
  if (!(n_eff >= params_.min_regression_points) || !(n_eff > 2.0)) return false;
  const double mu = r.su / r.w;
  const double my = r.sy / r.w;
  const double vu = r.suu / r.w - mu * mu;
  const double spread = params_.min_relative_spread * mu;
  if (!(vu > spread * spread) || !(vu > 0.0)) return false;
  const double cov = r.suy / r.w - mu * my;
  const double vy = r.syy / r.w - my * my;
  double a = cov / vu;
  double b = my - a * mu;
  // Residual variance per point, and the covariance of (a, b) (ordinary least squares with
  // n_eff points of spread vu).
  const double s2 = std::max(0.0, vy - a * cov) * n_eff / (n_eff - 2.0);
  const double sxx = n_eff * vu;
  const double var_a = s2 / sxx;
  const double var_b = s2 * (1.0 / n_eff + mu * mu / sxx);
  const double cov_ab = -mu * s2 / sxx;
  a = std::max(a, 0.0);
  b = std::max(b, 0.0);
  const double yhat = a * u_now + b;
  if (!(yhat > 0.0) || !std::isfinite(yhat)) return false;
  const double est = b / yhat;
  // m = b / (a u + b): dm/da = -m u / yhat, dm/db = (1 - m) / yhat.
  const double da = -est * u_now / yhat;
  const double db = (1.0 - est) / yhat;
  const double var_m = da * da * var_a + db * db * var_b + 2.0 * da * db * cov_ab;
  const double spread_m = std::sqrt(std::max(0.0, var_m)) + kMinRegressionSd;
  if (!std::isfinite(est) || !std::isfinite(spread_m)) return false;
  *m = std::clamp(est, 0.0, 1.0);
  *sd = spread_m;
  return true;
}

const JobGradient &GradientModel::update(const JobObservation &obs, const DomainView &domain) {
  const CounterSample &c = obs.counters;
  // Modelled as a latency service: a latency job, or a plain one valued as such.
  const bool lat =
      obs.mode == JobMode::latency || (obs.mode == JobMode::off && obs.value_as_latency);
  if (!std::isfinite(c.interval_s) || c.interval_s <= 0.0) {
    mark_stale("interval is not positive");
    return current_;
  }
  const PowerModel &model = domain.model;
  if (const std::string bad = model.check(); !bad.empty()) {
    mark_stale(bad);
    return current_;
  }
  if (!finite_nonnegative(c.task_clock_s) || !optional_ok(c.cycles) ||
      !optional_ok(c.instructions) || !optional_ok(c.stall_cycles) || !optional_ok(c.ref_cycles) ||
      !optional_ok(obs.progress_rate) || !optional_ok(obs.busy_fraction)) {
    mark_stale("counter values are negative or not finite");
    return current_;
  }
  if (!std::isfinite(obs.cpus) || obs.cpus <= 0.0 || !std::isfinite(obs.share) ||
      obs.share <= 0.0 || obs.share > 1.0 || !std::isfinite(obs.servers) || obs.servers < 1.0) {
    mark_stale("job layout is bad (cpus > 0, share in (0, 1], servers >= 1)");
    return current_;
  }
  std::optional<double> power;
  if (finite_nonnegative(domain.power_w))
    power = domain.power_w;
  else
    power = c.average_power_w();
  if (!power) {
    mark_stale("no power reading for the domain");
    return current_;
  }

  const CounterKind kind = obs.emulated                ? CounterKind::emulated
                           : c.has_hardware_counters() ? CounterKind::hardware
                                                       : CounterKind::software;
  const double min_dyn = std::max(params_.min_dynamic_power_w, 1e-3);
  const double p0 = model.p0_w;
  const double dyn = std::max(*power - p0, min_dyn);

  // Busy fraction (the service's load), raw; smoothed below once m is known.
  double rho = obs.busy_fraction ? *obs.busy_fraction : c.task_clock_s / (c.interval_s * obs.cpus);
  rho = std::clamp(rho, 0.0, 1.0);

  // Frequency now, and the domain's k in P = P0 + k f^3. Hardware: the busy-time frequency
  // cycles / task-clock, which also calibrates k for this domain and load. Software: the
  // power model with its alpha, for CPUs busy rho of the time (a latency service's; a
  // throughput job's are busy throughout).
  std::optional<double> f_hw;
  if (c.cycles && *c.cycles > 0.0 && c.task_clock_s > 0.0) f_hw = *c.cycles / c.task_clock_s;
  double f_now = 0.0;
  double f_top = model.f_max_hz;
  double k = 0.0;
  // Whether the cap holds the domain this period (unknown: it does).
  const double tol = std::clamp(
      std::isfinite(params_.cap_binding_tolerance) ? params_.cap_binding_tolerance : 0.0, 0.0, 1.0);
  const bool held =
      !(std::isfinite(domain.cap_w) && domain.cap_w > 0.0) || *power >= domain.cap_w * (1.0 - tol);
  if (f_hw && *power - p0 >= min_dyn) {
    f_now = *f_hw;
    if (!held && rho >= params_.top_clock_min_busy) top_seen_hz_ = std::max(top_seen_hz_, f_now);
    f_top = std::max({f_top, top_seen_hz_, f_now});  // a top above the model's f_max
    k = dyn / (f_now * f_now * f_now);
  } else {
    k = model.a_w_per_hz3() * model.alpha;
    const double busy = lat ? std::max(rho, kMinFitBusy) : 1.0;
    f_now = std::min(std::cbrt(dyn / (k * busy)), f_top);
    if (f_hw) f_now = *f_hw;
  }
  const double sat_dyn = std::max(k * f_top * f_top * f_top, dyn);
  if (!std::isfinite(k) || !(k > 0.0) || !std::isfinite(f_now) || !(f_now > 0.0)) {
    mark_stale("cannot place the domain on its power model");
    return current_;
  }

  // Prior: the stall share, smoothed.
  const double default_sd = std::max(params_.default_memory_share_sd, 1e-6);
  if (c.cycles && c.stall_cycles && *c.cycles > 0.0 &&
      *c.stall_cycles <= *c.cycles * (1.0 + params_.counter.max_stall_overshoot)) {
    const double s = std::min(1.0, *c.stall_cycles / *c.cycles);
    const double conf = saturating(*c.cycles, params_.counter.half_confidence_cycles) *
                        saturating(c.interval_s, params_.counter.half_confidence_interval_s);
    const double sd =
        std::min(default_sd, params_.counter_memory_share_sd / std::sqrt(std::max(conf, 1e-4)));
    const double wp = smoothing_weight(params_.prior_smoothing_weight);
    if (prior_from_counters_) {
      prior_m_ = wp * s + (1.0 - wp) * prior_m_;
      prior_sd_ = wp * sd + (1.0 - wp) * prior_sd_;
    } else {
      prior_m_ = s;
      prior_sd_ = sd;
    }
    prior_from_counters_ = true;
  } else if (prior_from_counters_) {
    // Counters missed a period: keep the smoothed prior, trusting it a little less.
    prior_sd_ = std::min(default_sd, prior_sd_ * 1.1);
  } else {
    prior_m_ = std::clamp(params_.default_memory_share, 0.0, 1.0);
    prior_sd_ = default_sd;
  }

  tdp_w_ = model.tdp_w;  // cap_speed's scale
  // The low-cap slowdown of this period: only while the cap holds the domain.
  const double period_speed = held ? cap_speed(*power) : 1.0;
  // Regression point: busy time per unit of work against u = f_top / f.
  const double half_life = params_.regression_half_life_s;
  bool speed_signal = false;
  bool have_point = false;
  double y = 0.0;
  double u_point = 0.0;
  double point_s = c.interval_s;  // the time the point covers (for the forgetting)
  if (c.instructions && *c.instructions > 0.0 && c.task_clock_s > 0.0 && f_hw) {
    y = c.task_clock_s / *c.instructions;
    u_point = model.f_max_hz / *f_hw;
    speed_signal = have_point = true;
  } else if (obs.progress_rate) {
    // Progress counts whole requests: a period's count is small for a service of long
    // requests (a few a second), and a ratio of small counts is noisy and biased (E[1/N] >
    // 1 / E[N], and periods that finish nothing say nothing). So periods are pooled until
    // the job has made min_progress_per_point of progress: y = pooled busy time / pooled
    // progress, at the pooled u weighted by busy time (y is linear in u, so pooling keeps
    // the line). Progress also shows RAPL's low-cap slowdown, which the gain curves add
    // on their own (cap_speed): the busy time is counted at the speed the clock alone would
    // give (times cap_speed), so the line is the clock's alone and the slowdown is not
    // counted twice. (Instructions, the hardware point, do not see the slowdown.)
    speed_signal = true;
    pool_task_s_ += c.task_clock_s;
    pool_work_s_ += c.task_clock_s * period_speed;
    pool_progress_ += *obs.progress_rate * c.interval_s;
    pool_u_task_ += model.f_max_hz / f_now * c.task_clock_s;
    pool_s_ += c.interval_s;
    if (pool_progress_ >= std::max(params_.min_progress_per_point, 1e-9) && pool_task_s_ > 0.0) {
      y = pool_work_s_ / pool_progress_;
      u_point = pool_u_task_ / pool_task_s_;
      point_s = pool_s_;
      have_point = true;
    }
    if (have_point || !(pool_s_ <= 2.0 * half_life))
      pool_task_s_ = pool_work_s_ = pool_progress_ = pool_u_task_ = pool_s_ = 0.0;
  }
  const double u_now = model.f_max_hz / f_now;
  if (have_point && std::isfinite(y) && y > 0.0 && std::isfinite(u_point) && u_point > 0.0) {
    if (!(y_ref_ > 0.0)) y_ref_ = y;
    const double factor =
        std::isfinite(half_life) && half_life > 0.0 ? std::exp2(-point_s / half_life) : 0.0;
    reg_.decay(factor);
    reg_.add(u_point, y / y_ref_);
  }
  double m_reg = 0.0;
  double sd_reg = 0.0;
  const bool have_reg = regression_estimate(u_now, &m_reg, &sd_reg);

  // Combine by precision.
  const double w_prior = 1.0 / (prior_sd_ * prior_sd_);
  const double w_reg = have_reg ? 1.0 / (sd_reg * sd_reg) : 0.0;
  const double m = std::clamp((w_prior * prior_m_ + w_reg * m_reg) / (w_prior + w_reg), 0.0, 1.0);
  const double sd = have_reg ? 1.0 / std::sqrt(w_prior + w_reg) : prior_sd_;
  const double reg_share = w_reg / (w_prior + w_reg);

  GradientSource source;
  if (reg_share > 0.5)
    source = GradientSource::regression;
  else if (reg_share > 0.2)
    source = GradientSource::combined;
  else
    source = prior_from_counters_ ? GradientSource::counter_model : GradientSource::default_prior;

  // Load in a unit that the caps do not move: the busy fraction the job would have at the
  // top frequency, rho / r(f_top / f_now). Smoothing it (rather than rho itself) filters the
  // arrival noise without lagging behind the controller's own cap moves, which change rho
  // but not the offered load.
  // Below the low-cap knee the domain runs slower than its frequency says (cap_speed): its
  // busy fraction is that much higher for the same load.
  {
    const double x_top = std::max(model.f_max_hz / f_now, 1e-6);
    const double r_top = x_top / ((1.0 - m) + m * x_top) / period_speed;
    update_load(rho / r_top);
    update_capacity(lat, rho, rho / r_top, c.interval_s);
    // The spread counts where the clock is measured: without cycles the clock, and so each
    // period's load, is estimated from the power, and its error would count as spread.
    spread_measured_ = f_hw.has_value();
    current_.busy_fraction = std::clamp(load_top_ * r_top, 0.0, 1.0);
    current_.capacity_rps = capacity_rps();
  }

  // The latency power model (load_power_w): its frequencies are relative to the nominal top
  // f_max (the unit of load_top_), up to f_top / f_max; its memory share is the one at
  // f_max; its scale, the dynamic power at f_max with every CPU busy, is measured with
  // cycles (this period's power over its busy fraction and the cube of its relative
  // frequency; periods with little work say too little), else the power model's.
  {
    const double x_top = std::max(model.f_max_hz / f_now, 1e-6);
    m_top_ = m * x_top / ((1.0 - m) + m * x_top);
    x_hi_ = std::max(1.0, f_top / model.f_max_hz);
    const double model_full_dyn =
        model.a_w_per_hz3() * model.alpha * model.f_max_hz * model.f_max_hz * model.f_max_hz;
    if (f_hw && *power - p0 >= min_dyn && rho > kMinFitBusy) {
      const double xn = f_now / model.f_max_hz;
      const double sample = dyn / (rho * xn * xn * xn);
      const double wf = smoothing_weight(params_.power_fit_weight);
      if (std::isfinite(sample) && sample > 0.0)
        full_dyn_w_ = full_dyn_w_ > 0.0 ? wf * sample + (1.0 - wf) * full_dyn_w_ : sample;
    } else if (!f_hw) {
      full_dyn_w_ = model_full_dyn;
    }
    if (!(full_dyn_w_ > 0.0)) full_dyn_w_ = model_full_dyn;
  }

  mode_ = lat ? JobMode::latency : obs.mode;
  plain_valued_ = lat && obs.mode == JobMode::off;
  share_ = obs.share;
  servers_ = obs.servers;
  p0_w_ = p0;
  dyn_now_w_ = dyn;
  sat_dyn_w_ = sat_dyn;
  // A latency service at its load reaches the top frequency at this dynamic power.
  if (lat) sat_dyn_w_ = load_power_w(x_hi_);
  have_point_ = true;
  stale_periods_ = 0;

  current_.memory_share = m;
  current_.memory_share_sd = sd;
  current_.regression_points = reg_.ww > 0.0 ? reg_.w * reg_.w / reg_.ww : 0.0;
  current_.regression_weight = reg_share;
  current_.counters = kind;
  current_.prior_from_counters = prior_from_counters_;
  current_.unit = obs.mode == JobMode::latency ? GradientUnit::latency_s_saved_per_w
                                               : GradientUnit::relative_speedup_per_w;

  GradientEstimate e;
  e.valid = true;
  e.unit = GradientUnit::relative_speedup_per_w;
  e.source = source;
  e.confidence = std::clamp(1.0 - sd / default_sd, 0.0, 1.0);
  // Raw dr/dP at the current power (0 once the domain is at its top frequency), with the
  // low-cap slowdown's part below its knee.
  e.value = (dyn < sat_dyn * (1.0 - 1e-9) ? (1.0 - m) / (3.0 * dyn) : 0.0) +
            cap_speed_slope(p0 + dyn) / cap_speed(p0 + dyn);
  current_.speedup = e;
  current_.steerable = obs.mode == JobMode::latency || obs.mode == JobMode::throughput;
  current_.gain_per_w = marginal_gain_at(p0 + dyn);
  current_.frequency_share = 1.0;
  if (current_.gain_per_w > 0.0 && cap_speed_slope(p0 + dyn) > 0.0) {
    current_.frequency_share = std::clamp(gain_at(p0 + dyn, false) / current_.gain_per_w, 0.0, 1.0);
  }
  current_.wants_perturbation =
      current_.steerable && speed_signal && e.confidence < params_.perturb_below_confidence;
  return current_;
}

// The load at the top frequency, averaged (see busy_smoothing_weight and the change
// detector of load_change_fast_weight).
void GradientModel::update_load(double load_top) {
  // The first 1 / w samples are averaged alike (a new job's estimate settles as fast as the
  // average can), later ones with weight w.
  busy_samples_ = have_busy_ ? busy_samples_ + 1.0 : 1.0;
  const double w_slow = smoothing_weight(params_.busy_smoothing_weight);
  const double wb = std::max(w_slow, 1.0 / busy_samples_);
  if (!have_busy_) {
    load_top_ = load_fast_ = load_top;  // load_diff_var_ is unknown since reset()
    have_busy_ = true;
    return;
  }
  // The spread about the average before this sample moves it (the first samples' spread
  // is averaged alike, as the load is).
  const double dev = load_top - load_top_;
  load_var_ = wb * dev * dev + (1.0 - wb) * load_var_;
  load_top_ = wb * load_top + (1.0 - wb) * load_top_;
  const double k = params_.load_change_sds;
  if (!(std::isfinite(k) && k > 0.0)) return;
  const double wf = std::max(smoothing_weight(params_.load_change_fast_weight), wb);
  load_fast_ = wf * load_top + (1.0 - wf) * load_fast_;
  const double d = load_fast_ - load_top_;
  // The spread is learnt over the first samples before it may trigger anything.
  const double var = std::max(load_diff_var_, kMinLoadChangeSd * kMinLoadChangeSd);
  if (load_diff_var_ >= 0.0 && busy_samples_ * w_slow > 1.0 && d * d > k * k * var) {
    load_top_ = load_fast_;
    return;
  }
  load_diff_var_ = load_diff_var_ >= 0.0 ? (1.0 - w_slow) * load_diff_var_ + w_slow * d * d : d * d;
}

// Capacity from the load's counting noise: with Poisson arrivals at rate lambda, requests of
// S s (service-time CV about 1) and c servers, a period of T s carries load lambda S / c on
// average and varies by lambda T E[S^2] / (c T)^2 = 2 load S / (c T), so the capacity c / S is
// 2 load / (var T). The variance is half the mean square of the change from one period to
// the next, which leaves out drifts slower than a period (bursts, diurnal swings) that the
// spread about a mean would count; periods whose busy fraction is kCapacityBusyMax or more
// are left out (a saturated period's busy fraction no longer varies with its arrivals).
// For requests longer than a period the change from period to period is smaller than the
// spread, so their capacity reads too high, by about 2 (S / T)^2: the bound is then looser
// than it should be. Noise in the measurement of the load itself (with software counters
// the clock, and so the load at the top clock, is estimated from the power) counts as
// arrivals' noise and makes it read low: the bound is then tighter.
void GradientModel::update_capacity(bool latency, double busy, double load_top, double interval_s) {
  const bool usable = latency && std::isfinite(busy) && busy < kCapacityBusyMax &&
                      std::isfinite(load_top) && load_top > 0.0;
  if (!usable) {
    cap_prev_load_ = -1.0;
    return;
  }
  if (cap_prev_load_ >= 0.0) {
    cap_samples_ += 1.0;
    const double w = std::max(smoothing_weight(params_.busy_smoothing_weight), 1.0 / cap_samples_);
    const double d = load_top - cap_prev_load_;
    cap_load_ = w * 0.5 * (load_top + cap_prev_load_) + (1.0 - w) * cap_load_;
    cap_dvar_ = w * 0.5 * d * d * interval_s + (1.0 - w) * cap_dvar_;
  }
  cap_prev_load_ = load_top;
}

double GradientModel::capacity_rps() const {
  if (cap_samples_ < kCapacityMinSamples || !(cap_dvar_ > 0.0) || !(cap_load_ > 0.0)) return 0.0;
  const double c = 2.0 * cap_load_ / cap_dvar_;
  return std::isfinite(c) ? c : 0.0;
}

// A latency service at a fixed offered load: at frequency x f_max its speed is
// r(x) = x / ((1 - m) + m x) of the speed at f_max (m: the memory share at f_max) and its
// busy fraction rho(x) = L / r(x) (L: load_top_, the busy fraction at f_max), so the
// domain's dynamic power is D(x) = D_full min(1, rho(x)) x^3 (D_full: full_dyn_w_): a faster
// service is busy for less of the time, and a watt buys more frequency than P ~ f^3 at a
// fixed busy fraction says (up to 3/2 times as much for a compute-bound service).
double GradientModel::load_power_w(double x, double speed, double load) const {
  const double r = x / ((1.0 - m_top_) + m_top_ * x) * speed;
  return full_dyn_w_ * std::min(1.0, std::max(load, 1e-6) / r) * x * x * x;
}

double GradientModel::cap_speed(double power_w) const {
  const double knee = params_.low_cap_knee * tdp_w_;
  const double s = params_.low_cap_slowdown;
  if (!(knee > 0.0) || !(s > 0.0) || !(tdp_w_ > 0.0) || !(power_w < knee)) return 1.0;
  return std::max(kMinCapSpeed, 1.0 - s * (knee - power_w) / tdp_w_);
}

double GradientModel::cap_speed_slope(double power_w) const {
  const double g = cap_speed(power_w);
  return g < 1.0 && g > kMinCapSpeed ? params_.low_cap_slowdown / tdp_w_ : 0.0;
}

// 0 when not measured, switched off, or negligible beside the mean.
double GradientModel::load_spread_sd() const {
  const double k = params_.load_spread_k;
  if (!spread_measured_ || !(std::isfinite(k) && k > 0.0) || !(load_var_ > 0.0)) return 0.0;
  const double sd = std::min(k * std::sqrt(load_var_), load_top_);
  return sd > 1e-3 * load_top_ ? sd : 0.0;
}

bool GradientModel::counts_load_spread() const {
  return mode_ == JobMode::latency && load_spread_sd() > 0.0;
}

double GradientModel::load_gain_at(double dyn_w, bool cap_slope) const {
  const double sd = load_spread_sd();
  if (!(sd > 0.0)) return load_gain_one(dyn_w, cap_slope, load_top_);
  // Five-point Gauss-Hermite for a normal spread (fewer points make the curve a staircase,
  // and the cluster's water level then sits on its flat steps).
  constexpr double kZ[5] = {-2.856970013872806, -1.355626179974266, 0.0, 1.355626179974266,
                            2.856970013872806};
  constexpr double kW[5] = {0.011257411327721, 0.222075922005613, 0.533333333333333,
                            0.222075922005613, 0.011257411327721};
  double gain = 0.0;
  for (int i = 0; i < 5; ++i)
    gain += kW[i] * load_gain_one(dyn_w, cap_slope, load_top_ + kZ[i] * sd);
  return gain;
}

// D(x) = dyn_w solved for x in [0, x_hi_] (D(x_hi_) > dyn_w): with c = load / g, the
// service is saturated (busy 1) where r(x) <= c, so D = F x^3 there, and above it
// D = F c ((1 - m) x^2 + m x^3), convex and increasing: Newton from x_hi_ comes down to the
// root without overshooting it.
double GradientModel::load_speed_at(double dyn_w, double g, double load) const {
  const double m = m_top_;
  const double f = full_dyn_w_;
  const double c = std::max(load, 1e-6) / g;
  const double x_sat = c * m >= 1.0 ? x_hi_ : std::min(x_hi_, c * (1.0 - m) / (1.0 - c * m));
  if (f * x_sat * x_sat * x_sat >= dyn_w) return std::cbrt(dyn_w / f);
  double x = x_hi_;
  for (int i = 0; i < 60; ++i) {
    const double h = f * c * ((1.0 - m) * x * x + m * x * x * x) - dyn_w;
    const double dh = f * c * (2.0 * (1.0 - m) * x + 3.0 * m * x * x);
    if (!(h > 0.0) || !(dh > 0.0)) break;
    const double next = std::max(x_sat, x - h / dh);
    const bool converged = !(next < x) || x - next <= 1e-13 * x;
    x = next;
    if (converged) break;
  }
  return x;
}

// The weight of a watt at dynamic power dyn_w in a period of load `period_load`: D solved
// for x (load_speed_at; D increases with x), then dL_q/dP = L_q'(rho) (-drho/dx) / D'(x),
// L_q the requests in the system. D' takes the unsaturated form throughout, so the
// marginal stays non-increasing across the point where the service saturates. At or above
// D(f_top / f_max) the domain runs at its top frequency: 0.
double GradientModel::load_gain_one(double dyn_w, bool cap_slope, double period_load) const {
  const double m = m_top_;
  const double load = std::max(period_load, 1e-6);
  // The low-cap slowdown at this power: speed g, so the busy fraction is load / (r g) and
  // the dynamic power at x is D(x) with that busy fraction; g' adds its own gain below the
  // knee (dr_total/dP = g dr/dx / D'(x) + r g').
  const double g = cap_speed(p0_w_ + dyn_w);
  const double dg = cap_slope ? cap_speed_slope(p0_w_ + dyn_w) : 0.0;
  if (!(full_dyn_w_ > 0.0) || !(dyn_w < load_power_w(x_hi_, g, load))) return 0.0;
  const double x = std::max(load_speed_at(dyn_w, g, load), kMinRelativeSpeed);
  const double den = (1.0 - m) + m * x;
  const double r = x / den;
  const double drdx = (1.0 - m) / (den * den);
  const double dpdx = full_dyn_w_ * load / g * (2.0 * x * (1.0 - m) + 3.0 * m * x * x);
  const double rt = r * g;
  // The queueing weight is the mean load's (at this clock): a busy period's requests wait
  // behind the queue the mean load builds.
  const double rho =
      std::min(std::max(load_top_, 1e-6) / rt, std::clamp(params_.max_busy_fraction, 0.0, 0.999));
  double slope = mmc_requests_slope(rho, servers_);
  // The transient bound: within the horizon a unit of speed changes the requests in the
  // system by at most capacity x horizon / 2 (the capacity as of the last update).
  const double horizon = params_.backlog_horizon_s;
  const double cap = current_.capacity_rps;
  if (std::isfinite(horizon) && horizon > 0.0 && cap > 0.0) {
    const double w = slope * std::max(load_top_, 1e-6) / rt;
    if (w > 0.5 * cap * horizon) slope *= 0.5 * cap * horizon / w;
  }
  const double gain = slope * load * drdx / (rt * rt) / dpdx * g +
                      (dg > 0.0 ? slope * load * r * dg / (rt * rt) : 0.0);
  return std::isfinite(gain) && gain > 0.0 ? gain : 0.0;
}

double GradientModel::marginal_gain_at(double power_w) const {
  return current_.steerable ? gain_at(power_w, true) : 0.0;
}

double GradientModel::plain_gain_at(double power_w) const {
  return plain_valued_ ? gain_at(power_w, true) : 0.0;
}

double GradientModel::gain_at(double power_w, bool cap_slope) const {
  if (!have_point_ || !(current_.steerable || plain_valued_) || !std::isfinite(power_w)) return 0.0;
  const double d = power_w - p0_w_;
  // Below P0 + min_dynamic_power_w the slope there holds (concave, finite).
  if (mode_ == JobMode::latency)
    return load_gain_at(std::max(d, std::max(params_.min_dynamic_power_w, 1e-3)), cap_slope);
  if (d >= sat_dyn_w_) return 0.0;
  const double dmin = std::max(params_.min_dynamic_power_w, 1e-3);
  double x;
  double dxdp;
  const double x0 = std::cbrt(std::max(d, dmin) / dyn_now_w_);
  if (d >= dmin) {
    x = x0;
    dxdp = x / (3.0 * d);
  } else {
    // Continued linearly below P0 + dmin with the slope it has there: concave, finite.
    dxdp = x0 / (3.0 * dmin);
    x = std::max(kMinRelativeSpeed, x0 - dxdp * (dmin - d));
  }
  const double m = current_.memory_share;
  const double den = (1.0 - m) + m * x;
  // With the low-cap slowdown g (cap_speed), relative to the speed now: r(x) g(P) / g(P_now);
  // below P0 + dmin its part holds the value it has there, like the slope above.
  const double pe = p0_w_ + std::max(d, dmin);
  const double g_now = cap_speed(p0_w_ + dyn_now_w_);
  const double drdp = ((1.0 - m) / (den * den) * dxdp * cap_speed(pe) +
                       (cap_slope ? x0 / ((1.0 - m) + m * x0) * cap_speed_slope(pe) : 0.0)) /
                      g_now;
  // Throughput: the relative speed-up (P ~ f^3: a throughput job keeps its CPUs busy).
  const double tw = std::isfinite(params_.throughput_weight) && params_.throughput_weight > 0.0
                        ? params_.throughput_weight
                        : 1.0;
  const double gain = tw * share_ * drdp;
  return std::isfinite(gain) && gain > 0.0 ? gain : 0.0;
}

GainCurve GradientModel::curve(double from_w, double to_w, std::size_t steps) const {
  if (to_w <= from_w) return GainCurve{};  // also false for NaN: from_marginal says why
  return GainCurve::from_marginal([&](double off) { return marginal_gain_at(from_w + off); },
                                  to_w - from_w, steps);
}

}  // namespace powergrad
