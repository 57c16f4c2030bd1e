// Gradient model v2: what one more watt on a power domain is worth to one job, as a concave
// gain curve, estimated online from what the node can measure.
//
// The model. A job's time per unit of work at core frequency f is T(f) = Tc f0/f + Tm: a
// part that scales with frequency and a part (memory stalls) that does not. With m the
// memory share of run time at the current frequency f_now and x = f / f_now, its speed
// relative to now is
//
//   r(x) = x / ((1 - m) + m x),      dr/dx = (1 - m) / ((1 - m) + m x)^2.
//
// The domain's power follows the cubic model P = P0 + k f^3, so x(P) = ((P - P0) /
// (P_now - P0))^(1/3) until the domain reaches its top frequency, where further watts buy
// nothing. r(P) is concave (diminishing returns), which gives the water-filling allocators
// curvature to work with. At the current power, dr/dP = (1 - m) / (3 (P_now - P0)): the
// counter model of estimator.hpp.
//
// Where m comes from, combined by their confidences (precision-weighted):
// - prior: the counter model, m = memory-stall cycles / unhalted cycles, smoothed; without a
//   stall counter, a default share with a wide spread (it then carries almost no weight);
// - online regression: the busy time per unit of work, y, is linear in u = 1/f (y = A u + B,
//   B/(A u + B) = m). Points are the operating points the system visits (its own cap moves,
//   and deliberate perturbations), weighted towards recent ones (exponential forgetting).
//   Work is instructions when hardware counters exist (y = task-clock / instructions,
//   f = cycles / task-clock); with software counters only, the job's own progress signal
//   (y = task-clock / progress, f from the domain's power through the power model; periods
//   are pooled into one point until min_progress_per_point of progress, because progress
//   counts whole requests). Without either, no regression runs and the estimate says so
//   (source default_prior).
// - perturbation: when confidence is low and a speed signal exists, the model asks for a
//   small cap perturbation (wants_perturbation); the node controller applies it within its
//   grant, which spreads the regression's points.
//
// What a watt is worth (the gain's unit), by the job's mode:
// - throughput: the relative speed-up, times the job's share of the domain (a job on a
//   quarter of the cores counts a quarter), times throughput_weight;
// - latency: the latency saved given the service's load. With busy fraction rho (task-clock
//   / (interval x CPUs)) and c parallel servers, the number of requests in the system is
//   about L(rho) = (c - 1) rho + rho / (1 - rho) (exact for M/M/1 at c = 1; for c > 1 the
//   busy servers plus an M/M/1-like queue). By Little's law, sum L over services is the
//   request-weighted latency per unit of time, so a watt is worth dL/dP, in request-seconds
//   saved per second per watt. The service's offered load stays as the cap moves: at a speed
//   r its busy fraction is L_top / r (L_top: the busy fraction at the top frequency,
//   smoothed), and its CPUs draw dynamic power for that share of the time, so the domain's
//   dynamic power at frequency f is D_full (busy fraction) (f / f_max)^3. A watt therefore
//   buys more speed than at a fixed busy fraction (P ~ f^3), up to 3/2 times as much for a
//   compute-bound service, and the service reaches its top frequency at D_full L_top, below
//   the power a fully busy domain would need. D_full is measured with cycles (the period's
//   power, busy fraction and frequency), else taken from the power model. rho is clamped
//   to max_busy_fraction (0.98): a saturated service reads rho = 1 however far it is
//   overloaded, so its weight is that of rho = 0.98 (far above any unsaturated service),
//   and L is continued linearly beyond the clamp so the gain stays concave and finite.
//   That weight is the steady state's, which a queue reaches only over its relaxation time,
//   about S / (1 - rho)^2 for requests of S seconds: minutes for a busy service of
//   second-long requests. Within a horizon H (backlog_horizon_s), a unit of speed changes the
//   requests in the system by at most the extra requests it completes, capacity x H / 2 on
//   average (capacity: requests a second with every server busy, c / S). So the weight of a
//   unit of speed, dL / d ln r, is at most capacity x H / 2 (the transient bound). The
//   capacity is measured from the load's counting noise (see update_capacity in the .cpp);
//   until it is known, no bound. It binds for services of long requests near saturation,
//   and for a saturated one it replaces the clamp's weight: a backlog of LLM requests,
//   which keeps its service busy long after the load has fallen, no longer outweighs a
//   service of millisecond requests that a few watts keep stable. Short requests have
//   capacities of hundreds a second, far above the clamp's weight.
// - monitor and off (not power-aware): estimated and reported, never steered: gain 0.
//
// Pure and deterministic: no clock, no I/O, no randomness (the node controller owns the
// perturbation's random sign). Bad input never throws: it is reported in the estimate.
#pragma once

#include <cstddef>
#include <limits>
#include <optional>
#include <string>

#include "libgradient/control_messages.hpp"
#include "libgradient/estimator.hpp"
#include "libgradient/gain_curve.hpp"
#include "libgradient/types.hpp"

namespace powergrad {

// Slope dL/drho of the mean number of requests in an M/M/c queue (c = servers, rounded,
// at least 1) at per-server utilisation rho in [0, 0.999): the latency weight of a watt.
double mmc_requests_slope(double rho, double servers);

struct GradientModelParams {
  // The counter model used as prior (validity checks, confidence of one sample).
  CounterModelParams counter;
  // Memory share assumed without a stall counter, and its spread (sd). The spread also
  // defines confidence: an estimate as uncertain as this has confidence 0.
  double default_memory_share = 0.5;
  double default_memory_share_sd = 0.35;
  // Spread of the stall-counter prior: stall cycles are a proxy for the frequency-insensitive
  // time, not the thing itself. Divided by sqrt(sample confidence).
  double counter_memory_share_sd = 0.10;
  // Weight of the newest sample in the moving averages of the prior and of the load, in
  // (0, 1]. The load is averaged as the busy fraction at the top frequency, which the caps do
  // not move (see update()), so heavy smoothing filters the arrival noise without lagging
  // behind the controller's own moves. Rises and falls are followed alike: an estimate that
  // followed rises faster would sit above the load by an amount that grows with the arrival
  // noise, and on a cluster of equal services it would hand watts to whichever node had the
  // latest burst (issue 12's homogeneous clusters, where that lost to the even split).
  double prior_smoothing_weight = 0.3;
  double busy_smoothing_weight = 0.05;
  // Load changes (a burst of arrivals, its end, a job's phase): a fast average of the load
  // (weight load_change_fast_weight) is followed as well, and when it lies more than
  // load_change_sds spreads of its own difference from the slow average away, the slow
  // average jumps to it, so a real change is followed within a few periods instead of the
  // slow average's 1 / busy_smoothing_weight. The spread is measured (moving mean square of
  // the difference, weight busy_smoothing_weight), so the noise of arrivals, whatever the
  // request size, practically never triggers it. 0 switches the detector off.
  double load_change_fast_weight = 0.25;
  double load_change_sds = 4.0;
  // How far the latency model counts the load's spread from period to period. A cap only
  // just above the power the mean load needs at the top clock throttles every period that
  // is busier than the mean: for a service of few long requests (an LLM's, a second or more,
  // a few a second) the busy fraction of a period moves by half its mean, and the requests
  // running in the busy periods are slowed. The model's gain is then the mean of its gain at
  // the loads mean + z sd (five-point Gauss-Hermite; sd: the moving root mean square of
  // each period's load about the average, weight busy_smoothing_weight, times this factor,
  // at most the mean), with the queueing weight of the mean load. Only where hardware
  // counters give the clock: estimated from the power, the clock's error would count as
  // spread (with software counters it cost vm-progress and vm-bursty a third and most of
  // their share of the oracle's gain). 0: the mean load only.
  double load_spread_k = 1.0;
  // Weight of the newest period in the moving average of the domain's dynamic power at the
  // top frequency with every CPU busy (the latency power model, see marginal_gain_at), in
  // (0, 1]; measured with hardware counters (cycles give the frequency), else from the
  // power model.
  double power_fit_weight = 0.2;
  // With a progress signal (software counters), periods are pooled into one regression
  // point until the job has made this much progress (e.g. requests served): a ratio of
  // small counts is noisy and biased, so a service of long requests (a few a second) gives
  // a point every several periods instead of a biased point every period.
  double min_progress_per_point = 40.0;
  // Regression points lose half their weight every this many seconds.
  double regression_half_life_s = 60.0;
  // The regression weighs in only with at least this many (effective) points and a spread
  // of u = 1/f of at least this share of its mean.
  double min_regression_points = 4.0;
  double min_relative_spread = 0.005;
  // Below this confidence, and with a speed signal to learn from, ask for a perturbation.
  double perturb_below_confidence = 0.6;
  // Busy fraction clamp for the latency weight (see above).
  double max_busy_fraction = 0.98;
  // The horizon of the transient bound, in seconds (see above): about how long a grant holds
  // before the controllers revisit it. On random clusters not tuned on (README, issue 12),
  // 5 s and 10 s did best, 2 s lost on some and 20-40 s kept less of the gain. 0: no bound.
  double backlog_horizon_s = 10.0;
  // Lower bound on P - P0 (as in the counter model): near the floor the difference is noise.
  double min_dynamic_power_w = 2.0;
  // RAPL holds a cap below about half of TDP inefficiently (clock modulation instead of a
  // lower frequency): speed drops by an extra low_cap_slowdown per TDP of cap below
  // low_cap_knee x TDP (at 0.45 TDP with knee 0.5 and slowdown 1: 5%), which the counters do
  // not show as a lower frequency. The gain curves then carry it: a watt below the knee is
  // worth that much more. On by default at half of TDP, where RAPL's control is documented to
  // get inefficient; low_cap_knee 0 leaves it out (hardware whose caps act through the
  // frequency all the way down). README, issue 12: what it gains and what a wrong knee costs.
  double low_cap_knee = 0.5;
  double low_cap_slowdown = 1.0;
  // A domain counts as held by its cap (and so as slowed below the knee) while it draws
  // within this share of the cap in force (readings are noisy, and the cap moves within a
  // period).
  double cap_binding_tolerance = 0.03;
  // The top clock, learned. The power model's f_max is a guess (the node agent cannot read a
  // package's all-core top: cpufreq's cpuinfo_max_freq is the one-core turbo), and a
  // latency job's gain curve ends at the top clock, so on a socket whose real top is higher
  // its last watts would be offered no gain. With hardware counters, a period in which the
  // domain draws clearly less than its cap (by more than cap_binding_tolerance) while the
  // job is busy at least this share of the time shows the clock the hardware gives it
  // unhindered (cycles / task-clock); the highest such clock, where above f_max, becomes
  // the curve's top. Busy enough, so that a lightly loaded part's higher turbo bins (fewer
  // cores active) are not taken for its all-core top. Above 1: never learned.
  double top_clock_min_busy = 0.6;
  // Exchange rate of throughput gains into the common currency (1: one unit of relative
  // speed-up counts like one request-second saved per second).
  double throughput_weight = 1.0;
  // Plain work beside steered work (used by NodeController). A package's clock is one for
  // all its jobs, so a watt given to a package with steered jobs also speeds up the plain
  // jobs on it, and the objective (the cluster's mean latency over all requests) counts
  // their requests alike. A plain job on a domain with steered work is therefore modelled as
  // a latency service (JobObservation::value_as_latency) and its gain counts in the
  // domain's curve at this weight; it is still not steered (protected as before, and its
  // own gain_per_w stays 0). 0: plain work is not valued. A plain batch job (busy all the
  // time) then counts like a service past saturation: where plain jobs beside steered ones
  // are batch work, 0 (or --power-aware=throughput for them) is right (a batch job cannot
  // be told from a service past saturation: both are busy all the time). Why 0.5 (README,
  // issue 12; random sets 71-99): harm in 111 runs against 119 unvalued, 116 at 0.25 and
  // 116 at 1, where the mean gained as much as at 0.5 but more runs fell behind in p99.
  double plain_beside_weight = 0.5;
  // A job whose sample is unusable keeps its state, at decaying confidence, for at most this
  // many consecutive periods; then its estimate becomes invalid (and it is not steered).
  int max_stale_periods = 3;
};

// The job's power domain (a socket / RAPL package) over the sampling interval.
struct DomainView {
  PowerModel model;  // P0, TDP, top frequency; alpha is used only without hardware counters
  double min_cap_w = 0.0;
  double max_cap_w = 0.0;
  // Measured average power of the whole domain over the interval; not finite or negative:
  // unknown (the sample's energy_j is used if present).
  double power_w = 0.0;
  // The cap in force; not finite or <= 0: unknown. RAPL's low-cap slowdown (cap_speed) acts
  // only while the cap binds: a domain that draws clearly less than its cap (by more than
  // GradientModelParams::cap_binding_tolerance) runs at its own clocks, and its measured busy
  // time is not taken as slowed. Unknown: counted as binding.
  double cap_w = std::numeric_limits<double>::quiet_NaN();
};

// One job on one domain over one sampling interval.
struct JobObservation {
  JobMode mode = JobMode::latency;
  CounterSample counters;  // deltas over the interval; task_clock_s always
  // Application progress per second (e.g. requests served), if the job exposes one: the
  // speed signal when hardware counters are missing.
  std::optional<double> progress_rate;
  // Busy fraction in [0, 1]; when absent, counters.task_clock_s / (interval_s * cpus).
  std::optional<double> busy_fraction;
  double cpus = 1.0;      // CPUs the job has on this domain
  double share = 1.0;     // its share of the domain's CPUs, in (0, 1]
  double servers = 1.0;   // requests it serves in parallel here (latency mode; see above)
  bool emulated = false;  // the counters come from an emulator: reported as such
  // Only with mode off: the job shares its domain with steered work, and its model runs as
  // a latency service's so that plain_gain_at() can value it (plain_beside_weight).
  bool value_as_latency = false;
};

// The model's state after an update: what the node reports and steers by.
struct JobGradient {
  // Raw relative speed-up per watt at the current power (dr/dP), with validity, confidence
  // (in [0, 1]), source and, when invalid, the reason.
  GradientEstimate speedup;
  // Marginal gain per watt at the current power, in `unit` (see the header comment); 0 when
  // not steerable.
  double gain_per_w = 0.0;
  GradientUnit unit = GradientUnit::relative_speedup_per_w;
  double memory_share = 0.0;       // estimated m at the current frequency
  double memory_share_sd = 0.0;    // its spread
  double busy_fraction = 0.0;      // smoothed rho
  // Requests a second with every server busy at the top frequency, from the load's counting
  // noise (latency mode; the transient bound's); 0: not known yet.
  double capacity_rps = 0.0;
  double regression_points = 0.0;  // effective number of (decayed) regression points
  double regression_weight = 0.0;  // share of m that comes from the regression, in [0, 1]
  CounterKind counters = CounterKind::none;
  // m's prior is the stall-counter share (hardware counters); false: the default share.
  bool prior_from_counters = false;
  bool steerable = false;  // latency/throughput mode with a valid estimate
  bool wants_perturbation = false;
  // The share of gain_per_w that scales with the frequency (1 - m): all of it above the
  // low-cap knee; below it the low-cap slowdown's part does not depend on m. The noise
  // guards scale the memory share's uncertainty by it (level_noise.hpp model_level_sd).
  double frequency_share = 1.0;
};

class GradientModel {
 public:
  explicit GradientModel(const GradientModelParams &params = {});

  // Feeds one interval; returns the new state (also current()). An unusable observation
  // (interval not positive, bad power model, non-finite counters) keeps the previous state
  // for up to max_stale_periods, then makes the estimate invalid, with the reason.
  const JobGradient &update(const JobObservation &obs, const DomainView &domain);
  const JobGradient &current() const { return current_; }

  // Marginal (weighted) gain per watt at domain power `power_w`, from the current state:
  // non-increasing in power_w, >= 0, finite; 0 when not steerable.
  double marginal_gain_at(double power_w) const;
  // For a plain job last updated with value_as_latency: the marginal gain a latency service
  // at its load would have at domain power `power_w` (as marginal_gain_at: non-increasing,
  // >= 0, finite); 0 for every other job.
  double plain_gain_at(double power_w) const;
  // Whether its latency curve counts the load's spread (load_spread_k) now.
  bool counts_load_spread() const;
  // The job's gain over domain power [from_w, to_w], relative to from_w: marginal_gain_at
  // sampled at the midpoints of `steps` equal steps (a concave GainCurve; empty when
  // to_w <= from_w; invalid only for bad arguments).
  GainCurve curve(double from_w, double to_w, std::size_t steps) const;

  // Forgets everything, as if just constructed.
  void reset();
  const GradientModelParams &params() const { return params_; }

 private:
  struct Regression {
    double w = 0.0, ww = 0.0;  // sum of weights, of squared weights
    double su = 0.0, sy = 0.0, suu = 0.0, suy = 0.0, syy = 0.0;
    void decay(double factor);
    void add(double u, double y);
  };
  // m and its sd from the regression at u_now, if it can say anything.
  bool regression_estimate(double u_now, double *m, double *sd) const;
  void mark_stale(const std::string &why);

  GradientModelParams params_;
  JobGradient current_;
  int stale_periods_ = 0;

  // Prior (smoothed stall share) and whether it came from counters.
  double prior_m_ = 0.0;
  double prior_sd_ = 0.0;
  bool prior_from_counters_ = false;
  bool have_busy_ = false;
  double busy_samples_ = 0.0;  // load samples so far (see update)
  double load_top_ = 0.0;  // smoothed busy fraction at the top frequency (see update)
  double load_fast_ = 0.0;       // its fast average, and the mean square of fast - slow
  double load_diff_var_ = -1.0;  // < 0: not known yet
  double load_var_ = 0.0;        // mean square of each sample about load_top_ (load_spread_k)
  // The service's capacity (backlog_horizon_s): the last period's load, the moving mean of
  // the load and of half the squared change from period to period over unsaturated
  // periods, and how many such periods (0: none yet).
  double cap_prev_load_ = -1.0;
  double cap_load_ = 0.0, cap_dvar_ = 0.0, cap_samples_ = 0.0;
  double capacity_rps() const;  // requests a second at the top frequency; 0: unknown
  void update_capacity(bool latency, double busy, double load_top, double interval_s);
  bool spread_measured_ = false;  // the last sample's clock came from cycles
  double load_spread_sd() const;  // what load_gain_at() counts (0: the mean load only)
  void update_load(double load_top);
  // Dynamic power at the top frequency with every CPU busy (see power_fit_weight); 0: none.
  double full_dyn_w_ = 0.0;
  double m_top_ = 0.0;  // memory share at f_max (the latency power model's)
  double x_hi_ = 1.0;   // f_top / f_max
  double top_seen_hz_ = 0.0;  // the top clock learned (top_clock_min_busy); 0: none yet

  Regression reg_;
  double y_ref_ = 0.0;  // scale of y (first point), for well-conditioned sums
  // Periods pooled into the next progress point (see min_progress_per_point): busy time,
  // busy time at the clock's speed (times cap_speed), progress, u weighted by busy time, and
  // their length.
  double pool_task_s_ = 0.0, pool_work_s_ = 0.0, pool_progress_ = 0.0, pool_u_task_ = 0.0,
         pool_s_ = 0.0;

  // Operating point of the latest update.
  bool have_point_ = false;
  JobMode mode_ = JobMode::off;  // latency also for a plain job valued as one
  bool plain_valued_ = false;    // a plain job valued as a latency service (value_as_latency)
  double share_ = 1.0;
  double servers_ = 1.0;
  double p0_w_ = 0.0;
  double dyn_now_w_ = 0.0;  // P_now - P0 (>= min_dynamic_power_w)
  double sat_dyn_w_ = 0.0;  // P - P0 at which the domain reaches its top frequency
  double tdp_w_ = 0.0;
  double load_power_w(double x, double speed = 1.0) const {
    return load_power_w(x, speed, load_top_);
  }
  double load_power_w(double x, double speed, double load) const;
  // The gain at load / power, with the low-cap slowdown's own slope or without it (the
  // gain's frequency part alone, for frequency_share): the mean over the load's spread
  // (load_spread_k) of load_gain_one().
  double load_gain_at(double dyn_w, bool cap_slope) const;
  // The gain at dynamic power dyn_w in a period whose load is `load` (the mean load's
  // queueing weight).
  double load_gain_one(double dyn_w, bool cap_slope, double load) const;
  // The relative frequency x at which the latency model's dynamic power is dyn_w (speed g
  // from the low-cap slowdown, load `load`).
  double load_speed_at(double dyn_w, double g, double load) const;
  double gain_at(double power_w, bool cap_slope) const;
  // The share of its speed a domain keeps at power (cap) power_w (low_cap_knee), and its
  // derivative.
  double cap_speed(double power_w) const;
  double cap_speed_slope(double power_w) const;
};

}  // namespace powergrad
