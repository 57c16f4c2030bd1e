#include "libgradient/node_controller.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "libgradient/allocator.hpp"
#include "libgradient/baselines.hpp"
#include "libgradient/curve_ops.hpp"
#include "libgradient/format.hpp"
#include "libgradient/numeric.hpp"

namespace powergrad {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// splitmix64: small, fast, and the same on every platform (unlike std distributions).
std::uint64_t splitmix64(std::uint64_t &state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Protections that do not all fit the grant are cut from the top, to one level: the most
// protected gives first, none below its minimum (the even split of the grant over each
// domain's range from its minimum to its protection: one level, clamped to each range).
// False, with `protect` as it was, when even the minimums do not fit.
bool cut_protections_to_grant(std::vector<double> &protect, const std::vector<double> &mins,
                              double grant) {
  if (!(sum_in_order(protect) > grant)) return true;
  std::vector<PowerRange> held(protect.size());
  for (std::size_t d = 0; d < protect.size(); ++d) held[d] = {mins[d], protect[d]};
  const AllocResult cut = allocate_uniform(grant, held);
  if (!cut.feasible) return false;
  protect = cut.grants_w;
  return true;
}

// Caps that sum above the grant are lowered to fit it: those above their targets first, in
// proportion to how far above they are, then (for rounding, or targets that do not fit)
// fit_to_budget down to the minimums. Within [mins, maxs]; targets must fit the grant for
// the first part alone to suffice.
void lower_to_grant(std::vector<double> &caps, const std::vector<double> &targets,
                    const std::vector<double> &mins, const std::vector<double> &maxs,
                    double grant) {
  const std::size_t n = caps.size();
  lower_towards(caps, targets, sum_in_order(caps) - grant);
  for (std::size_t d = 0; d < n; ++d) caps[d] = std::clamp(caps[d], mins[d], maxs[d]);
  fit_to_budget(caps.data(), mins.data(), n, grant);
}

bool is_newer(std::uint64_t epoch, std::uint64_t seq, const NodeLease &held) {
  if (!held.from_controller) return true;
  return epoch != held.epoch ? epoch > held.epoch : seq > held.seq;
}

// Below this many busy CPUs on a domain, the split of its busy time says nothing.
constexpr double kMinBusyCpus = 0.05;

// One steered or protected job on a domain, for this step.
struct Entry {
  const std::string *job;
  JobMode mode;
  double share;
  double cpus;  // the job's CPUs on the domain (JobDomainInput::cpus)
  const GradientModel *model;
  double servers;  // its parallel request slots there (JobObservation::servers)
};

// The warning of a step or an enforce() whose grant is below the domains' minimum caps.
std::string below_min_warning(double grant, double min_sum) {
  return "grant " + format_w(grant) + " is below the domains' minimum caps " + format_w(min_sum) +
         ": caps held at their minimum";
}

// Raises caps towards `to` by the watts the grant leaves unused (grant - held, held their
// sum), fitted to the grant and never below the caps before. Whether any cap rose.
bool raise_into_grant(std::vector<double> &caps, const std::vector<double> &to, double grant,
                      double held) {
  const std::vector<double> before = caps;
  raise_towards(caps, to, grant - held);
  fit_to_budget(caps.data(), before.data(), caps.size(), grant);
  for (std::size_t d = 0; d < caps.size(); ++d)
    if (caps[d] > before[d]) return true;
  return false;
}

// Why the inputs cannot be acted on (a time that is not finite, a domain's bad range);
// empty when they can.
std::string input_error(const NodeInputs &in) {
  if (!std::isfinite(in.now_s)) return "now_s is not finite";
  for (std::size_t d = 0; d < in.domains.size(); ++d) {
    const DomainInput &dom = in.domains[d];
    if (std::string why = PowerRange{dom.min_cap_w, dom.max_cap_w}.check(); !why.empty())
      return "domain " + std::to_string(d) + " (" + dom.name + "): " + why;
  }
  return {};
}

}  // namespace

NodeController::NodeController(std::string node_name, const NodeControllerParams &params)
    : name_(std::move(node_name)), params_(params), rng_(params.seed) {
  lease_.floor_w = finite_nonnegative(params_.floor_w) ? params_.floor_w : 0.0;
  lease_.grant_w = params_.static_grant_w && finite_nonnegative(*params_.static_grant_w)
                       ? *params_.static_grant_w
                       : lease_.floor_w;
}

std::uint64_t NodeController::next_random() { return splitmix64(rng_); }

double NodeController::damping_step_w(double range_w) const {
  return std::max(params_.max_step_w, params_.max_step_frac * range_w);
}

std::vector<double> NodeController::fit_children_to_grant(double grant) const {
  const std::size_t n = last_children_.size();
  std::vector<double> protect(n);
  for (std::size_t d = 0; d < n; ++d) protect[d] = std::max(last_mins_[d], last_children_[d].min_w);
  if (sum_in_order(protect) <= grant) {
    const AllocResult alloc = allocate(grant, last_children_);
    if (alloc.feasible) return alloc.grants_w;
  }
  if (cut_protections_to_grant(protect, last_mins_, grant)) return protect;
  std::vector<double> t = last_mins_;
  fit_to_budget(t.data(), last_mins_.data(), n, grant);
  return t;
}

std::string NodeController::on_grant(const GrantMessage &grant, double now_s) {
  if (!name_.empty() && grant.node != name_)
    return "grant for node '" + grant.node + "', this is '" + name_ + "'";
  if (!finite_nonnegative(grant.grant_w) || !finite_nonnegative(grant.floor_w) ||
      !finite_nonnegative(grant.share_w))
    return "grant, floor or share is negative or not finite";
  if (!std::isfinite(grant.expires_at_s)) return "lease expiry is not finite";
  if (!std::isfinite(grant.lease_s) || grant.lease_s <= 0.0) return "lease length is not positive";
  if (!std::isfinite(now_s)) return "now_s is not finite";
  if (!is_newer(grant.epoch, grant.seq, lease_))
    return "grant (" + std::to_string(grant.epoch) + ", " + std::to_string(grant.seq) +
           ") is not newer than the lease held (" + std::to_string(lease_.epoch) + ", " +
           std::to_string(lease_.seq) + ")";
  if (grant.expires_at_s <= now_s) return "grant expired before it arrived";
  if (grant.expires_at_s - grant.lease_s < params_.started_at_s)
    return "grant was sent before this agent started";
  lease_.from_controller = true;
  lease_.epoch = grant.epoch;
  lease_.seq = grant.seq;
  lease_.grant_w = grant.grant_w;
  lease_.floor_w = grant.floor_w;
  lease_.share_w = grant.share_w;
  lease_.expires_at_s = std::min(grant.expires_at_s, now_s + grant.lease_s);
  return {};
}

bool NodeController::lease_expired(double now_s) const {
  return lease_.from_controller && !(now_s < lease_.expires_at_s);
}

double NodeController::effective_grant_w(double now_s) const {
  return lease_expired(now_s) ? lease_.floor_w : lease_.grant_w;
}

const GradientModel *NodeController::model(const std::string &job, std::size_t domain) const {
  const auto it = models_.find(JobKey{job, domain});
  return it == models_.end() ? nullptr : &it->second;
}

NodeDecision NodeController::step(const NodeInputs &in) {
  NodeDecision out;
  if (std::string why = input_error(in); !why.empty()) {
    out.error = std::move(why);
    return out;
  }
  const double now = in.now_s;
  const std::size_t n = in.domains.size();

  // A different set of domains invalidates what the controller remembers about them.
  bool same_domains = domains_.size() == n;
  for (std::size_t d = 0; same_domains && d < n; ++d)
    same_domains = domains_[d].name == in.domains[d].name;
  if (!same_domains) {
    domains_.assign(n, DomainState{});
    for (std::size_t d = 0; d < n; ++d) domains_[d].name = in.domains[d].name;
    models_.clear();
  }

  const double grant = effective_grant_w(now);
  out.effective_grant_w = grant;
  out.lease_expired = lease_expired(now);
  // The node's fair share named by its lease in force (GrantMessage::share_w); 0: none.
  const double share_w = lease_.share_w > 0.0 && !out.lease_expired ? lease_.share_w : 0.0;

  // 1. Job models: kept per (job, domain), dropped when the job is gone. Entries point into
  // the map's nodes, which neither insertion nor moving the map relocates.
  std::map<JobKey, GradientModel> kept;
  std::vector<std::vector<Entry>> on_domain(n);
  std::vector<JobKey> order;  // report order
  // Domains with steered work, where plain jobs are valued as latency services
  // (GradientModelParams::plain_beside_weight).
  std::vector<char> has_steered(n, 0);
  const double plain_weight = params_.model.plain_beside_weight;
  const bool value_plain = std::isfinite(plain_weight) && plain_weight > 0.0;
  for (const JobInput &job : in.jobs)
    if (job.mode == JobMode::latency || job.mode == JobMode::throughput)
      for (const JobDomainInput &jd : job.domains)
        if (jd.domain < n) has_steered[jd.domain] = 1;
  for (const JobInput &job : in.jobs) {
    if (job.key.empty()) {
      out.warnings.push_back("a job without a key was skipped");
      continue;
    }
    for (const JobDomainInput &jd : job.domains) {
      if (jd.domain >= n) {
        out.warnings.push_back("job " + job.key + ": domain " + std::to_string(jd.domain) +
                               " does not exist; skipped");
        continue;
      }
      JobKey key{job.key, jd.domain};
      if (kept.count(key)) {
        out.warnings.push_back("job " + job.key + ": domain " + std::to_string(jd.domain) +
                               " listed twice; the second was skipped");
        continue;
      }
      auto node = models_.extract(key);
      GradientModel model = node.empty() ? GradientModel(params_.model) : std::move(node.mapped());
      const DomainInput &dom = in.domains[jd.domain];
      JobObservation obs;
      obs.mode = job.mode;
      obs.counters = jd.counters;
      obs.progress_rate = jd.progress_rate;
      obs.busy_fraction = jd.busy_fraction;
      obs.cpus = jd.cpus;
      obs.share = jd.share;
      obs.servers =
          jd.servers > 0.0 ? jd.servers : (std::isfinite(jd.cpus) ? std::max(1.0, jd.cpus) : 1.0);
      obs.emulated = job.emulated;
      obs.value_as_latency = value_plain && job.mode == JobMode::off && has_steered[jd.domain];
      DomainView view{dom.model, dom.min_cap_w, dom.max_cap_w, dom.power_w, dom.cap_w};
      model.update(obs, view);
      auto [it, inserted] = kept.emplace(key, std::move(model));
      (void)inserted;
      order.push_back(key);
      const double share = std::isfinite(jd.share) ? std::clamp(jd.share, 0.0, 1.0) : 0.0;
      on_domain[jd.domain].push_back(
          {&it->first.job, job.mode, share, jd.cpus, &it->second, obs.servers});
    }
  }
  models_ = std::move(kept);

  // 2. Protected bases for work that is not steered.
  std::vector<PowerRange> ranges(n);
  // base: what the step protects; report_base: what the report counts as need (see
  // NodeControllerParams::steered_node_noise_k).
  std::vector<double> mins(n), base(n), report_base(n);
  std::vector<std::vector<const GradientModel *>> steered(n);
  std::vector<double> saturated_at(n, std::numeric_limits<double>::infinity());
  double min_sum = 0.0;
  bool any_steered = false;
  for (std::size_t d = 0; d < n; ++d)
    for (const Entry &e : on_domain[d]) any_steered = any_steered || e.model->current().steerable;
  for (std::size_t d = 0; d < n; ++d) {
    const DomainInput &dom = in.domains[d];
    ranges[d] = {dom.min_cap_w, dom.max_cap_w};
    mins[d] = dom.min_cap_w;
    min_sum += dom.min_cap_w;
    double unsteered = 0.0, busy_all = 0.0, busy_unsteered = 0.0;
    bool spread = false;
    bool busy_known = true;
    for (const Entry &e : on_domain[d]) {
      // A job without a usable estimate has no measured load: the CPUs' split then.
      const JobGradient &g = e.model->current();
      const double busy = g.busy_fraction * e.cpus;
      const bool measured = g.speedup.valid && std::isfinite(busy) && busy >= 0.0;
      busy_known = busy_known && measured;
      if (measured) busy_all += busy;
      if (g.steerable) {
        steered[d].push_back(e.model);
        spread = spread || e.model->counts_load_spread();
      } else {
        unsteered += e.share;
        if (measured) busy_unsteered += busy;
      }
    }
    // The share of the domain's power that the work not steered draws: its share of the
    // domain's busy CPUs (smoothed task-clock), since a CPU draws dynamic power while busy;
    // its share of the CPUs while nothing is busy or some job's load is unknown. By the CPUs
    // alone, a plain BERT service busy on 3.2 of the 4 busy CPUs of a socket shared with two
    // light steered services (4 of its 7 CPUs) was protected at 57% of its need, and its p99
    // ran 3-13% behind `uniform`'s in a random cluster (seeds 1-4).
    double ushare = std::min(1.0, unsteered);
    if (unsteered > 0.0 && busy_known && busy_all > kMinBusyCpus)
      ushare = std::clamp(busy_unsteered / busy_all, 0.0, 1.0);
    // But the domain's clock is one for all its jobs: a watt taken from its steered work slows
    // the work that is not steered alike. So that work is protected by at least its share of
    // what a slower clock costs the domain's jobs: for a service at busy fraction rho on c
    // servers, the requests in the system rise by rho L'(rho) per unit of relative speed lost
    // (L of the M/M/c model, gradient_model.hpp; the currency of the latency gains), for a
    // steered throughput job by its relative speed (its share of the domain, times
    // throughput_weight). A busy plain service of short requests, most of the domain's
    // requests, beside light steered services of long ones is then protected nearly whole,
    // where its busy CPUs alone left it about a quarter of its need (issue 12's random
    // clusters: a plain ResNet-like service at 0.9 of 4 servers beside two LLM prefill
    // services on 16 servers ran the cluster's mean 65-69% behind the better baseline's; 0.7-1.1%
    // with this). A light plain job beside busy steered services keeps its busy share (the
    // larger of the two).
    if (unsteered > 0.0 && busy_known) {
      double sens_all = 0.0, sens_unsteered = 0.0;
      for (const Entry &e : on_domain[d]) {
        // What a slower clock costs the job, per unit of relative speed lost.
        const JobGradient &g = e.model->current();
        const double r = std::clamp(g.busy_fraction, 0.0, params_.model.max_busy_fraction);
        const double sens = g.steerable && e.mode == JobMode::throughput
                                ? params_.model.throughput_weight * e.share
                                : r * mmc_requests_slope(r, e.servers);
        if (std::isfinite(sens) && sens > 0.0) {
          sens_all += sens;
          if (!g.steerable) sens_unsteered += sens;
        }
      }
      if (sens_all > 0.0)
        ushare = std::max(ushare, std::clamp(sens_unsteered / sens_all, 0.0, 1.0));
    }
    if (!on_domain[d].empty() && steered[d].empty()) ushare = 1.0;
    // The domain's power: its moving average and spread (weight 0.1).
    DomainState &ps = domains_[d];
    if (finite_nonnegative(dom.power_w)) {
      if (std::isnan(ps.power_mean)) {
        ps.power_mean = dom.power_w;
      } else {
        const double dev = dom.power_w - ps.power_mean;
        ps.power_var = 0.9 * ps.power_var + 0.1 * dev * dev;
        ps.power_mean += 0.1 * dev;
      }
    }
    // What a finite power may reach in a busier period: this period's power (or the higher
    // of it and its moving average), plus `headroom` or saturation_noise_k spreads of the
    // power, whichever is more. Work that is not steered is protected up to it, and a
    // saturated domain's curve ends there (below).
    const auto busier_draw = [&](bool with_average, double headroom, double noise_k) {
      return (with_average ? std::max(dom.power_w, ps.power_mean) : dom.power_w) +
             std::max(headroom, noise_k * ps.power_sd());
    };
    double need = dom.max_cap_w;
    double report_need = dom.max_cap_w;
    const bool cap_known = std::isfinite(dom.cap_w) && dom.cap_w > 0.0;
    // A node with no job at all holds its whole grant (the cluster controller's idle cap)
    // evenly, so that the next job starts with it, not with the minimum caps.
    if (in.jobs.empty()) {
      ushare = 1.0;
    } else if (finite_nonnegative(dom.power_w) &&
               !(cap_known && dom.power_w >= dom.cap_w - params_.binding_margin_w)) {
      // Not a quiet period's power: a plain service whose power swings with its arrivals
      // was held at a quiet period's draw and throttled in the next busy one.
      // On a node with steered work, closer to the power within the step (the watts between
      // go to the steered work here), not in the report.
      const double headroom = std::max(0.0, params_.unmanaged_headroom_w);
      report_need = busier_draw(true, headroom, params_.saturation_noise_k);
      need = any_steered ? busier_draw(true, headroom, params_.steered_node_noise_k) : report_need;
    }
    // A domain whose power stayed clearly below its cap ran as fast as its cores go (top
    // clock, licence or per-core limits) at the load it had: watts above that buy nothing,
    // whatever a job's model says. Its steered curve ends at the power plus headroom; where
    // a job's curve counts its load's spread (GradientModelParams::load_spread_k), above
    // this period's power or its moving average, whichever is higher, so that a quiet
    // period does not cut the curve below what the busier ones need (a cut that came and
    // went with the periods moved watts back and forth every period).
    if (finite_nonnegative(dom.power_w) && cap_known &&
        dom.power_w < dom.cap_w - params_.binding_margin_w &&
        params_.saturation_headroom_w >= 0.0)
      saturated_at[d] =
          busier_draw(spread, params_.saturation_headroom_w, params_.saturation_noise_k);
    // The work's share of what it needs above the domain's minimum.
    const auto base_for = [&](double need_w) {
      const double w = std::clamp(need_w, dom.min_cap_w, dom.max_cap_w);
      return std::clamp(dom.min_cap_w + ushare * (w - dom.min_cap_w), dom.min_cap_w, dom.max_cap_w);
    };
    base[d] = base_for(need);
    report_base[d] = base_for(report_need);
  }

  const std::size_t steps = std::max<std::size_t>(1, params_.curve_steps);
  // The domain's marginal gain over its whole range [min, max], on a grid of `steps` cells
  // (the sum over its steered jobs at each cell's midpoint, plus plain_beside_weight times
  // that of its plain jobs valued as latency services), smoothed across periods: a
  // moving average of non-increasing functions is non-increasing, and it filters the noise
  // of the load and counter estimates that would otherwise move watts back and forth.
  const double wc = smoothing_weight(params_.curve_smoothing_weight);
  const double wr = std::isfinite(params_.curve_rise_weight) && params_.curve_rise_weight > wc &&
                            params_.curve_rise_weight <= 1.0
                        ? params_.curve_rise_weight
                        : wc;
  for (std::size_t d = 0; d < n; ++d) {
    DomainState &st = domains_[d];
    const DomainInput &dom = in.domains[d];
    if (steered[d].empty()) {
      st.marginal.clear();
      continue;
    }
    const double cell = (dom.max_cap_w - dom.min_cap_w) / static_cast<double>(steps);
    const bool same_grid = st.marginal.size() == steps && st.grid_min_w == dom.min_cap_w &&
                           st.grid_max_w == dom.max_cap_w;
    if (!same_grid) st.marginal.clear();
    std::vector<double> raw(steps, 0.0);
    for (std::size_t i = 0; i < steps; ++i) {
      const double at = dom.min_cap_w + (static_cast<double>(i) + 0.5) * cell;
      for (const GradientModel *m : steered[d]) raw[i] += m->marginal_gain_at(at);
      if (value_plain)
        for (const Entry &e : on_domain[d]) raw[i] += plain_weight * e.model->plain_gain_at(at);
    }
    if (st.marginal.empty()) {
      st.marginal = std::move(raw);
    } else {
      for (std::size_t i = 0; i < steps; ++i) {
        const double w = raw[i] > st.marginal[i] ? wr : wc;
        st.marginal[i] = w * raw[i] + (1.0 - w) * st.marginal[i];
      }
    }
    st.grid_min_w = dom.min_cap_w;
    st.grid_max_w = dom.max_cap_w;
  }
  const auto marginal_at = [&](std::size_t d, double power_w) {
    const DomainState &st = domains_[d];
    if (st.marginal.empty() || power_w >= saturated_at[d]) return 0.0;
    const double range = st.grid_max_w - st.grid_min_w;
    if (!(range > 0.0)) return st.marginal.front();
    const double pos = (power_w - st.grid_min_w) / range * static_cast<double>(st.marginal.size());
    const std::size_t i = pos <= 0.0 ? 0
                          : std::min(st.marginal.size() - 1, static_cast<std::size_t>(pos));
    return st.marginal[i];
  };
  const auto domain_curve = [&](std::size_t d, double from_w) {
    const double to_w = in.domains[d].max_cap_w;
    if (steered[d].empty() || !(to_w > from_w)) return GainCurve{};
    return GainCurve::from_marginal([&](double off) { return marginal_at(d, from_w + off); },
                                    to_w - from_w, steps);
  };

  // 3. Targets: water-filling above the (share-clamped) bases.
  last_children_.clear();
  std::vector<double> targets = mins;
  std::vector<double> protect = mins;
  std::vector<GainCurve> curves(n);
  const bool below_min = !(grant >= min_sum);
  if (below_min) {
    out.warnings.push_back(below_min_warning(grant, min_sum));
  } else {
    // Work that is not steered is protected up to its part of the node's fair share, not of
    // the whole grant: the watts above the share were granted for the steered work's
    // gradient. Below the share too: a grant below it is what the cluster left the node after
    // taking from its steered work (the node's report counts the plain work's need up to the
    // share), so the steered work yields first (below, where the protections do not all fit).
    const double plain_cap = share_w > 0.0 ? share_w : grant;
    const AllocResult fair = allocate_uniform(plain_cap, ranges);
    // The noise guard (NodeControllerParams::noise_guard_k): levels at the even split of
    // the grant, their spread around their own average, and the part of each domain's
    // difference from the median within its noise taken out of its curve.
    std::vector<double> scale(n, 1.0);
    // The model's share of domain d's level spread: its steered jobs' (by gain). It stands
    // for what an estimate cannot see: the stall counter's error as a proxy of the memory
    // share (hardware counters), or, with neither a stall counter nor a speed signal, the
    // whole unknown share. A job whose only knowledge is its own speed regression (software
    // counters with a progress rate) adds none: its estimate is already drawn towards the
    // default share by the regression's own spread (precision weighting), and guarding it
    // again held the even split against the evidence (vm-progress: an LLM prefill socket
    // and a decode socket split evenly, where moving watts to the prefill is worth 2% of p99).
    // The mean over domain d's steered jobs, weighted by their gains, of f(job); `none` when
    // none has a gain.
    const auto by_gain = [&](std::size_t d, double none, const auto &f) {
      double wsum = 0.0, sum = 0.0;
      for (const GradientModel *m : steered[d]) {
        const JobGradient &g = m->current();
        if (!(g.gain_per_w > 0.0) || !std::isfinite(g.gain_per_w)) continue;
        wsum += g.gain_per_w;
        sum += g.gain_per_w * f(g);
      }
      return wsum > 0.0 ? sum / wsum : none;
    };
    const auto model_sd = [&](std::size_t d) {
      if (!params_.guard_model_uncertainty) return 0.0;
      return by_gain(d, 0.0, [&](const JobGradient &g) {
        if (!g.prior_from_counters && g.regression_weight > 0.0) return 0.0;
        return model_level_sd(g.memory_share, g.speedup.confidence,
                              params_.model.default_memory_share_sd);
      });
    };
    // The share of domain d's gain that its frequency gives (its steered jobs', by gain).
    // Below the low-cap knee the slowdown adds a part that is about alike for every domain
    // there and says nothing of which one is steeper; the memory share's uncertainty lies in
    // the frequency part. So the guard judges the levels of that part, and takes the same
    // share of each whole level's difference as it takes of the part's.
    const auto frequency_share = [&](std::size_t d) {
      return by_gain(d, 1.0,
                     [](const JobGradient &g) { return std::clamp(g.frequency_share, 0.0, 1.0); });
    };
    if (params_.noise_guard_k > 0.0 && n > 1) {
      const AllocResult even = plain_cap == grant ? fair : allocate_uniform(grant, ranges);
      const double w = std::clamp(params_.noise_weight, 1e-6, 1.0);
      // Per domain: the average of its frequency part's level (what the guard judges) and
      // its whole level now (what the scale applies to).
      std::vector<double> averages, wholes;
      std::vector<double> average(n, kNaN), whole(n, kNaN);
      for (std::size_t d = 0; d < n; ++d) {
        DomainState &st = domains_[d];
        const double g =
            even.feasible && !steered[d].empty() ? marginal_at(d, even.grants_w[d]) : 0.0;
        // No level for a domain without a curve (g 0) or with a negligible gain beside its
        // steepest (gain_level; g > 0 means the domain has a curve).
        const double lw = g > 0.0 ? gain_level(g, st.marginal.front()) : kNaN;
        const double fs = frequency_share(d);
        const double l = fs < 1.0 ? lw + std::log(fs) : lw;  // fs 0: -inf, no level
        st.noise.add(std::isfinite(l) ? l : kNaN, w);
        if (std::isfinite(l) && st.noise.known()) {
          average[d] = st.noise.mean;
          averages.push_back(average[d]);
          whole[d] = lw;
          wholes.push_back(lw);
        }
      }
      if (averages.size() >= 2) {
        const double median = median_in_place(averages);
        const double whole_median = median_in_place(wholes);
        for (std::size_t d = 0; d < n; ++d)
          if (std::isfinite(average[d]))
            scale[d] = guard_scale_of_average(
                average[d] - median,
                params_.noise_guard_k * std::hypot(domains_[d].noise.average_sd(w), model_sd(d)),
                whole[d] - whole_median);
      }
    }
    for (std::size_t d = 0; d < n; ++d) {
      const double fair_w = fair.feasible ? fair.grants_w[d] : mins[d];
      protect[d] = std::clamp(base[d], mins[d], std::max(mins[d], fair_w));
    }
    // Protections that do not all fit the grant (below the node's fair share) are cut from
    // the top, to one level (cut_protections_to_grant).
    cut_protections_to_grant(protect, mins, grant);
    std::vector<AllocChild> children(n);
    for (std::size_t d = 0; d < n; ++d) {
      curves[d] = domain_curve(d, protect[d]);
      GainCurve alloc_curve = curves[d];
      if (scale[d] != 1.0) {
        std::vector<GainSegment> segs = alloc_curve.segments();
        for (GainSegment &seg : segs) seg.slope *= scale[d];
        alloc_curve = GainCurve::from_segments(std::move(segs));
      }
      if (params_.hysteresis > 0.0 && domains_[d].known && n > 1)
        alloc_curve = favour_incumbent(alloc_curve, domains_[d].base_w - protect[d], params_.hysteresis);
      children[d] = {protect[d], in.domains[d].max_cap_w, std::move(alloc_curve)};
    }
    const AllocResult alloc = allocate(grant, children);
    if (alloc.feasible) {
      targets = alloc.grants_w;
      last_children_ = std::move(children);  // for a raise between steps (enforce)
    } else {
      out.warnings.push_back("allocation failed (" + alloc.error + "); holding protected bases");
      targets = protect;
      fit_to_budget(targets.data(), mins.data(), n, grant);
    }
  }

  // 4. Damping and hysteresis, then the grant.
  std::vector<double> caps(n);
  std::vector<double> in_force(n, std::numeric_limits<double>::quiet_NaN());
  std::vector<double> fill_to(n);  // how far the deadband lets each cap fill the grant
  for (std::size_t d = 0; d < n; ++d) {
    const DomainInput &dom = in.domains[d];
    DomainState &st = domains_[d];
    const bool cap_known = std::isfinite(dom.cap_w) && dom.cap_w > 0.0;
    if (cap_known) in_force[d] = dom.cap_w;
    double current;
    if (st.known &&
        (!cap_known || std::fabs(dom.cap_w - st.output_w) <= params_.cap_sync_tolerance_w))
      current = st.base_w;
    else if (cap_known)
      current = dom.cap_w;
    else
      current = targets[d];
    current = std::clamp(current, dom.min_cap_w, dom.max_cap_w);
    const double range = dom.max_cap_w - dom.min_cap_w;
    const double step = damping_step_w(range);
    const double dead = std::max(params_.deadband_w, params_.deadband_frac * range);
    const double delta = targets[d] - current;
    double next = current;
    // The deadband does not hold a cap below its protected base: the work that is not
    // steered there is owed its base, however small the move (held 0.4 W below it while
    // the steered domain beside it sat as far above its target, an overloaded plain
    // service ran 0.5-1% slower than under `uniform`). The damping still applies: rises to
    // the base at once, with the falls damped, moved watts from the steered work to a
    // domain shared with a bursty plain service (a random cluster: 46% -> 41% better than
    // `uniform` in mean latency).
    const bool below_base = !below_min && current < protect[d] && targets[d] > current;
    if (!(std::fabs(delta) < dead) || below_base) next = current + std::clamp(delta, -step, step);
    caps[d] = std::clamp(next, dom.min_cap_w, dom.max_cap_w);
    fill_to[d] =
        std::fabs(delta) < dead ? std::clamp(targets[d], dom.min_cap_w, dom.max_cap_w) : caps[d];
  }
  if (!below_min && sum_in_order(caps) < grant) {
    // The deadband damps moves, it does not leave the grant unused: caps it holds below
    // their targets take what the others leave of the grant, up to their targets.
    raise_towards(caps, fill_to, grant - sum_in_order(caps));
    fit_to_budget(caps.data(), mins.data(), n, grant);
  }
  if (below_min) {
    caps = mins;
  } else if (sum_in_order(caps) > grant) {
    // The grant dropped (or the targets moved down faster than damping allows).
    std::vector<double> maxs(n);
    for (std::size_t d = 0; d < n; ++d) maxs[d] = in.domains[d].max_cap_w;
    lower_to_grant(caps, targets, mins, maxs, grant);
  }

  // 5. Perturbation.
  std::vector<double> applied = caps;
  if (!below_min) {
    std::size_t pick = n;
    double pick_conf = 2.0;
    for (std::size_t d = 0; d < n; ++d) {
      if (now - domains_[d].last_perturb_s < params_.perturb_interval_s) continue;
      for (const GradientModel *m : steered[d]) {
        const JobGradient &g = m->current();
        if (g.wants_perturbation && g.speedup.confidence < pick_conf) {
          pick = d;
          pick_conf = g.speedup.confidence;
        }
      }
    }
    if (pick < n) {
      const DomainInput &dom = in.domains[pick];
      const double delta = params_.perturb_frac * (dom.max_cap_w - dom.min_cap_w);
      if (std::isfinite(delta) && delta > 0.0) {
        const bool up_first = (next_random() & 1u) != 0;
        // The other domains make up for it, so a perturbation moves watts within the node
        // instead of leaving part of the grant unused (at the full grant only downward ones
        // fit, and they would hold the node perturb_frac x range / perturb_interval_s per
        // perturbing domain below its grant on average): a rise is paid for by lowering the
        // others towards their protected bases, a drop hands its watts to the others up to
        // their maximum caps, each in proportion to its room. A rise that fits in the
        // grant's unused watts takes those, as before.
        const auto try_sign = [&](bool up) -> std::optional<std::vector<double>> {
          std::vector<double> trial = caps;
          trial[pick] += up ? delta : -delta;
          if (up && trial[pick] > dom.max_cap_w) return std::nullopt;
          if (!up && trial[pick] < protect[pick]) return std::nullopt;
          // How far the others may go: down to their protected bases for a rise, up to their
          // maximum caps for a drop; the perturbed domain stays where it now is.
          std::vector<double> bound(n);
          for (std::size_t d = 0; d < n; ++d)
            bound[d] = d == pick ? trial[pick] : up ? protect[d] : in.domains[d].max_cap_w;
          if (up) {
            const double excess = sum_in_order(trial) - grant;
            if (excess > 0.0) {
              // In proportion first, then exactly (rounding), as lower_to_grant does.
              lower_towards(trial, bound, excess);
              if (!fit_to_budget(trial.data(), bound.data(), n, grant)) return std::nullopt;
            }
          } else {
            std::vector<double> raised = trial;
            raise_towards(raised, bound,
                          std::min(delta, std::max(0.0, grant - sum_in_order(trial))));
            if (sum_in_order(raised) <= grant) trial = std::move(raised);
          }
          return trial;
        };
        // Only where both signs fit, so that the sign is a fair coin and the perturbation
        // moves no watts on average. Falling back to the sign that fits moved watts one way
        // every time: a domain whose neighbours sat at their protected bases was perturbed
        // only downwards, and one whose neighbour's rise was paid by it only lost watts.
        // In a random cluster of three nodes (software counters, a near-saturated BERT
        // service beside an LLM prefill with a progress signal) that cost the BERT service
        // 1.6 W half of the periods: 21.9% worse than `uniform` in mean latency.
        std::optional<std::vector<double>> rise = try_sign(true);
        std::optional<std::vector<double>> drop = rise ? try_sign(false) : std::nullopt;
        if (rise && drop) {
          applied = std::move(up_first ? *rise : *drop);
          out.perturbation_w = up_first ? delta : -delta;
          out.perturbed_domain = pick;
          domains_[pick].last_perturb_s = now;
        }
      }
    }
  }

  // Outputs and state.
  out.ok = true;
  out.caps_w = applied;
  out.target_caps_w = targets;
  out.protected_w = protect;
  out.apply_order.resize(n);
  for (std::size_t d = 0; d < n; ++d) out.apply_order[d] = d;
  const auto change = [&](std::size_t d) {
    // Unknown cap in force: treated as a decrease (written first), the safe assumption.
    return std::isfinite(in_force[d]) ? applied[d] - in_force[d]
                                      : -std::numeric_limits<double>::infinity();
  };
  std::stable_sort(out.apply_order.begin(), out.apply_order.end(),
                   [&](std::size_t a, std::size_t b) { return change(a) < change(b); });
  for (std::size_t d = 0; d < n; ++d) {
    domains_[d].known = true;
    domains_[d].base_w = caps[d];
    domains_[d].output_w = applied[d];
  }
  for (std::size_t d = 0; d < n; ++d) {
    double total = 0.0;
    std::vector<double> gains;
    for (const Entry &e : on_domain[d]) {
      const double g = e.model->current().steerable ? e.model->marginal_gain_at(applied[d]) : 0.0;
      gains.push_back(g);
      total += g;
    }
    for (std::size_t k = 0; k < on_domain[d].size(); ++k) {
      if (!on_domain[d][k].model->current().steerable) continue;
      out.job_shares.push_back(
          {*on_domain[d][k].job, d, gains[k], total > 0.0 ? gains[k] / total : 0.0});
    }
  }

  last_mins_ = mins;
  last_grant_ = grant;
  last_maxs_.resize(n);
  for (std::size_t d = 0; d < n; ++d) last_maxs_[d] = in.domains[d].max_cap_w;
  last_targets_ = targets;

  // The report.
  NodeReport &r = out.report;
  r.node = name_;
  r.incarnation = params_.incarnation;
  r.started_at_s = params_.started_at_s;
  r.report_seq = ++report_seq_;
  r.sent_at_s = now;
  if (lease_.from_controller) {
    r.lease_epoch = lease_.epoch;
    r.lease_seq = lease_.seq;
  }
  r.lease_grant_w = lease_.grant_w;
  r.lease_expires_at_s = lease_.expires_at_s;
  r.lease_expired = out.lease_expired;
  r.effective_grant_w = grant;
  double max_sum = 0.0;
  double need = 0.0;
  double power = 0.0;
  std::vector<GainCurve> report_curves(n);
  // With steered work and a lease that names the node's fair share, the need and the curve
  // are counted from the bases held to the fair share's even split, as the step protects
  // them (with the grant at or above the fair share, exactly the step's): the need above it
  // buys nothing at this node (its watts go to the steered curve), and reported as need it
  // came before the curve at the cluster, at the curve's steepest slope. A node whose plain
  // work pressed against its caps then swung by its whole excess from one period to the
  // next (in the simulator, two nodes of a random cluster by 56 W each second in
  // anti-phase, 16% worse than `uniform` in mean latency). Below the fair share the bases
  // are held to it, not to the grant, so that the need does not follow the grant down.
  if (any_steered && !below_min && share_w > 0.0) {
    const AllocResult fair = allocate_uniform(share_w, ranges);
    if (fair.feasible)
      for (std::size_t d = 0; d < n; ++d)
        report_base[d] = std::clamp(report_base[d], mins[d], std::max(mins[d], fair.grants_w[d]));
  }
  for (std::size_t d = 0; d < n; ++d) {
    const DomainInput &dom = in.domains[d];
    max_sum += dom.max_cap_w;
    need += report_base[d];
    if (finite_nonnegative(dom.power_w))
      power += dom.power_w;
    else
      power = std::numeric_limits<double>::quiet_NaN();
    report_curves[d] =
        !below_min && protect[d] == report_base[d] ? curves[d] : domain_curve(d, report_base[d]);
  }
  r.min_w = min_sum;
  r.max_w = max_sum;
  r.need_w = need;
  r.caps_w = sum_in_order(applied);
  r.power_w = power;
  r.idle = in.jobs.empty();
  r.demand = coarsen(merge_curves(report_curves), params_.report_segments);
  r.steerable = false;
  for (const JobKey &key : order) {
    const GradientModel &m = models_.at(key);
    const JobGradient &g = m.current();
    JobSummary s;
    s.job = key.job;
    s.domain = key.domain;
    for (const Entry &e : on_domain[key.domain])
      if (*e.job == key.job) s.mode = e.mode;
    s.counters = g.counters;
    s.gain_per_w = g.gain_per_w;
    s.unit = g.unit;
    s.speedup_per_w = g.speedup.value;
    s.confidence = g.speedup.confidence;
    s.memory_share = g.memory_share;
    s.busy_fraction = g.busy_fraction;
    s.source = g.speedup.source;
    s.valid = g.speedup.valid;
    s.reason = g.speedup.reason;
    r.steerable = r.steerable || g.steerable;
    r.jobs.push_back(std::move(s));
  }
  last_report_ = r;
  stepped_ = true;
  announced_ = false;
  return out;
}

NodeDecision NodeController::announce(const NodeInputs &in) {
  NodeDecision out;
  if (stepped_) {
    out.error = "announce after a step: the steps' reports carry the node's measurements";
    return out;
  }
  if (std::string why = input_error(in); !why.empty()) {
    out.error = std::move(why);
    return out;
  }
  const double now = in.now_s;
  const std::size_t n = in.domains.size();
  // What enforce_even() works from until the first step: the domains' ranges and the caps
  // in force (the step starts from the caps in force too: no domain is `known` yet).
  std::vector<double> caps(n);
  last_mins_.assign(n, 0.0);
  last_maxs_.assign(n, 0.0);
  domains_.assign(n, DomainState{});
  for (std::size_t d = 0; d < n; ++d) {
    const DomainInput &dom = in.domains[d];
    last_mins_[d] = dom.min_cap_w;
    last_maxs_[d] = dom.max_cap_w;
    // An unknown cap in force may be anything the hardware allows: its maximum.
    caps[d] = finite_nonnegative(dom.cap_w) ? dom.cap_w : dom.max_cap_w;
    domains_[d].name = dom.name;
    domains_[d].output_w = caps[d];
  }
  announced_ = true;
  const double grant = effective_grant_w(now);
  out.ok = true;
  out.caps_w = caps;
  out.target_caps_w = caps;
  out.effective_grant_w = grant;
  out.lease_expired = lease_expired(now);
  out.apply_order.resize(n);
  for (std::size_t d = 0; d < n; ++d) out.apply_order[d] = d;

  NodeReport &r = out.report;
  r.node = name_;
  r.incarnation = params_.incarnation;
  r.started_at_s = params_.started_at_s;
  r.min_w = sum_in_order(last_mins_);
  r.max_w = sum_in_order(last_maxs_);
  r.need_w = r.max_w;
  r.power_w = std::numeric_limits<double>::quiet_NaN();
  r.idle = in.jobs.empty();
  r.steerable = false;
  for (const JobInput &job : in.jobs) {
    if (job.key.empty()) continue;
    for (const JobDomainInput &jd : job.domains) {
      if (jd.domain >= n) continue;
      JobSummary js;
      js.job = job.key;
      js.domain = jd.domain;
      js.mode = job.mode;
      js.reason = "no sample yet";
      r.jobs.push_back(std::move(js));
    }
  }
  last_report_ = r;
  out.report = report_for_enforce(caps, grant, now, out.lease_expired);
  return out;
}

// The last report, renewed for caps fitted between steps: its measurements and demand
// repeated, the lease and caps of now.
NodeReport NodeController::report_for_enforce(const std::vector<double> &caps, double grant,
                                              double now_s, bool expired) {
  NodeReport r = last_report_;
  r.report_seq = ++report_seq_;
  r.sent_at_s = now_s;
  r.lease_epoch = lease_.from_controller ? lease_.epoch : 0;
  r.lease_seq = lease_.from_controller ? lease_.seq : 0;
  r.lease_grant_w = lease_.grant_w;
  r.lease_expires_at_s = lease_.expires_at_s;
  r.lease_expired = expired;
  r.effective_grant_w = grant;
  r.caps_w = sum_in_order(caps);
  last_report_ = r;
  return r;
}

// Between announce() and the first step: nothing is measured yet, so the grant is split
// evenly. A drop lowers each cap to at most its even share (at once, all of it: the drop
// must be obeyed); a rise raises the caps towards their even shares, within the grant.
std::optional<NodeDecision> NodeController::enforce_even(double now_s) {
  const std::size_t n = domains_.size();
  if (last_mins_.size() != n || last_maxs_.size() != n) return std::nullopt;
  std::vector<double> caps(n);
  std::vector<PowerRange> ranges(n);
  for (std::size_t d = 0; d < n; ++d) {
    caps[d] = domains_[d].output_w;
    ranges[d] = {last_mins_[d], last_maxs_[d]};
  }
  const double grant = effective_grant_w(now_s);
  const double held = sum_in_order(caps);
  const double dead = std::max(params_.deadband_w, 1e-9 * grant);
  const bool drop = held > grant;
  const bool rise = !drop && params_.raise_at_once && grant - held > dead;
  if (!drop && !rise) return std::nullopt;
  NodeDecision out;
  out.ok = true;
  out.effective_grant_w = grant;
  out.lease_expired = lease_expired(now_s);
  const std::vector<double> before = caps;
  const AllocResult even = allocate_uniform(grant, ranges);
  if (!even.feasible) {
    // Below the domains' minimum caps.
    out.warnings.push_back(below_min_warning(grant, sum_in_order(last_mins_)));
    caps = last_mins_;
    out.target_caps_w = last_mins_;
  } else if (drop) {
    for (std::size_t d = 0; d < n; ++d)
      caps[d] = std::max(last_mins_[d], std::min(caps[d], even.grants_w[d]));
    out.target_caps_w = even.grants_w;
  } else {
    if (!raise_into_grant(caps, even.grants_w, grant, held)) return std::nullopt;
    out.target_caps_w = even.grants_w;
  }
  out.raised = rise;
  out.caps_w = caps;
  out.apply_order.resize(n);
  for (std::size_t d = 0; d < n; ++d) out.apply_order[d] = d;
  // Lowered ones first.
  std::stable_sort(
      out.apply_order.begin(), out.apply_order.end(),
      [&](std::size_t a, std::size_t b) { return caps[a] - before[a] < caps[b] - before[b]; });
  for (std::size_t d = 0; d < n; ++d) domains_[d].output_w = caps[d];
  out.report = report_for_enforce(caps, grant, now_s, out.lease_expired);
  return out;
}

std::optional<NodeDecision> NodeController::enforce(double now_s) {
  if (!std::isfinite(now_s)) return std::nullopt;
  if (!stepped_) return announced_ ? enforce_even(now_s) : std::nullopt;
  const std::size_t n = domains_.size();
  if (last_mins_.size() != n || last_targets_.size() != n || last_maxs_.size() != n)
    return std::nullopt;
  std::vector<double> caps(n);
  for (std::size_t d = 0; d < n; ++d) caps[d] = domains_[d].output_w;
  const double grant = effective_grant_w(now_s);
  const double min_sum = sum_in_order(last_mins_);
  const double held = sum_in_order(caps);
  const bool drop = held > grant;
  // A rise: the watts above the caps go where the last step's curves put them at the new
  // grant (the same water-filling, hysteresis included), each cap by at most one step's
  // damping. Less than the deadband waits for the next step.
  const double dead = std::max(params_.deadband_w, 1e-9 * grant);
  const bool rise = !drop && params_.raise_at_once && last_children_.size() == n &&
                    grant > last_grant_ + dead && grant - held > dead;
  if (!drop && !rise) {
    last_grant_ = std::min(last_grant_, grant);  // a rise is counted from the lowest since
    return std::nullopt;
  }

  NodeDecision out;
  out.ok = true;
  out.effective_grant_w = grant;
  out.lease_expired = lease_expired(now_s);
  std::vector<double> targets = last_targets_;
  if (rise) {
    const AllocResult alloc = allocate(grant, last_children_);
    if (!alloc.feasible) return std::nullopt;
    std::vector<double> to(n);
    for (std::size_t d = 0; d < n; ++d) {
      const double step = damping_step_w(last_maxs_[d] - last_mins_[d]);
      to[d] = std::clamp(std::min(alloc.grants_w[d], caps[d] + step), caps[d], last_maxs_[d]);
    }
    const std::vector<double> before = caps;
    if (!raise_into_grant(caps, to, grant, held)) return std::nullopt;
    targets = alloc.grants_w;
    for (std::size_t d = 0; d < n; ++d) domains_[d].base_w += caps[d] - before[d];
  } else if (!(grant >= min_sum)) {
    out.warnings.push_back(below_min_warning(grant, min_sum));
    caps = last_mins_;
  } else {
    // Targets that fit the new grant. With the last step's water-filling input, the step's
    // own rule at the new grant: the watts come from the steered work above its protection
    // (by its curves), and protections that do not all fit are cut to one level, the most
    // protected first. Without it, the old targets, lowered to the grant.
    if (sum_in_order(targets) > grant) {
      if (last_children_.size() == n)
        targets = fit_children_to_grant(grant);
      else
        fit_to_budget(targets.data(), last_mins_.data(), n, grant);
    }
    lower_to_grant(caps, targets, last_mins_, last_maxs_, grant);
    // Never above what was in force (the clamp to the minimums aside).
    for (std::size_t d = 0; d < n; ++d)
      caps[d] = std::max(last_mins_[d], std::min(caps[d], domains_[d].output_w));
  }
  last_grant_ = grant;
  out.raised = rise;
  out.caps_w = caps;
  out.target_caps_w = targets;
  out.apply_order.resize(n);
  for (std::size_t d = 0; d < n; ++d) out.apply_order[d] = d;
  for (std::size_t d = 0; d < n; ++d) {
    if (!rise) domains_[d].base_w = std::min(domains_[d].base_w, caps[d]);
    domains_[d].output_w = caps[d];
  }
  last_targets_ = targets;

  out.report = report_for_enforce(caps, grant, now_s, out.lease_expired);
  return out;
}

}  // namespace powergrad
