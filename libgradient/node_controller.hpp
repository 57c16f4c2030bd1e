// The local (node) controller: once per period, splits the node's leased watts across its
// power domains (sockets) so that marginal gains are equal, with damping, hysteresis,
// perturbation and the lease rules; and writes the report for the cluster controller.
//
// One NodeController per node. The node agent (slurmd) and the simulator drive it the same
// way: deliver grants with on_grant(), call step() once per period with the period's
// measurements, apply the returned caps (lowered domains first: apply_order), then send
// decision.report. Pure C++: no clock (now_s is an input), no I/O, no threads; the only
// randomness (the sign of a perturbation) comes from a generator seeded by params.seed.
//
// Safety (tested on random sequences): at every step, the caps returned lie within each
// domain's [min_cap_w, max_cap_w] and sum (in index order) to at most the effective grant:
// the lease's grant_w while it runs, its floor_w once it has ended (the node falls back on
// its own). A grant drop is obeyed in the same step, whatever the damping. The one exception
// is a grant below the domains' minimum caps, which hardware cannot honour: the caps are
// then the minimums, and the decision says so in `warnings` (the report's caps_w shows it).
//
// How a step works:
// 1. every job's GradientModel (one per job and domain) takes the period's sample;
// 2. each domain gets a protected base for work that is not steered (off or monitor
//    jobs, and jobs without a usable estimate): its measured power plus headroom (its maximum
//    while that work presses against the cap), in proportion to that work's share of the
//    domain's busy CPUs (of its CPUs while none is busy), never more than the domain's
//    uniform share of the grant; the base is never perturbed. With a lease that names the
//    node's fair share (GrantMessage::share_w), that uniform share is of the fair share,
//    not of the grant: watts granted above it are for the steered work. A node with no job at all
//    protects its whole grant, split uniformly (an idle node holds its idle cap, ready for the next
//    job);
// 3. a domain's curve is the sum of its steered jobs' curves above its base, averaged over
//    periods on a fixed grid of its range (curve_smoothing_weight; rises followed faster,
//    curve_rise_weight) and cut where the domain is saturated (its power stayed clearly
//    below its cap: saturation_headroom_w above the power, watts buy nothing); the grant is
//    water-filled over the domains (allocator.hpp), optionally with hysteresis between
//    them: the target caps;
// 4. damping and hysteresis: a cap moves towards its target by at most max(max_step_w,
//    max_step_frac x range) per step, and not at all when the target is within the deadband,
//    except to use the grant: while the caps sum below it, caps the deadband holds below
//    their targets are raised towards them with what is left (a node whose grant dipped by
//    less than the deadband and came back would otherwise run below it for good), and the
//    deadband does not hold a cap below its protected base; then, if the caps exceed the
//    grant (it dropped), caps above their targets are lowered (further than the damping
//    would) until they fit;
// 5. perturbation: if a steered job's model asks for one (low confidence), one domain per
//    step, at most once per perturb_interval_s, gets +-perturb_frac of its range for this
//    step only: upwards only up to the domain's max, downwards only down to its protected
//    base; the other domains make up for it (lowered towards their protected bases for a
//    rise beyond the grant, raised towards their maximum caps by a drop), so it moves watts
//    within the node instead of leaving part of the grant unused. It is applied only where
//    both signs fit, so that its sign is a fair coin and it moves no watts on average. The
//    next step continues from the unperturbed caps.
// Between steps, enforce() obeys a grant drop at once (caps lowered, none raised) and
// writes the report that confirms it, so the cluster controller can hand the watts on
// within the period (ClusterController::release). A grant that rose above the one the last
// step fitted is used at once too (raise_at_once): the last step's water-filling, run again
// at the new grant, says where the new watts go (none lowered, each cap by at most one
// step's damping).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "libgradient/allocator.hpp"
#include "libgradient/control_messages.hpp"
#include "libgradient/gain_curve.hpp"
#include "libgradient/gradient_model.hpp"
#include "libgradient/level_noise.hpp"
#include "libgradient/types.hpp"

namespace powergrad {

struct NodeControllerParams {
  GradientModelParams model;
  // The agent's start (or any number that rises with each agent start): orders reports.
  std::uint64_t incarnation = 0;
  // When the agent started (controller-synchronised clock). Grants sent before it are
  // refused: a restarted agent must not take up a grant that its previous incarnation had
  // already replaced (the controller no longer counts those once the node re-registers).
  double started_at_s = -std::numeric_limits<double>::infinity();
  // The floor before any grant arrives (a grant carries its own floor afterwards).
  double floor_w = 0.0;
  // A grant that never expires, until the first grant from a controller (the plugin's static
  // grant before a controller exists). Absent: the floor.
  std::optional<double> static_grant_w;
  // Segments per domain in the domain curves the node splits its grant by.
  std::size_t curve_steps = 32;
  // Weight of the newest period in the moving average of each domain's marginal gain
  // curve, in (0, 1] (1: no smoothing).
  double curve_smoothing_weight = 0.3;
  // The same weight where the newest marginal gain is higher (rises are followed faster
  // than falls); at most 1, at least curve_smoothing_weight.
  double curve_rise_weight = 1.0;
  // Most segments in the report's demand curve (coarsened to equal-width blocks with the
  // same gain; 0: the full merge, curve_steps per domain). The cluster allocator's time
  // grows with the segments per node.
  std::size_t report_segments = 32;
  // Hysteresis between the node's domains (curve_ops.hpp favour_incumbent): watts move
  // from one domain to another only when the taker's marginal gain beats the giver's by
  // (1 + h) / (1 - h). 0: none.
  double hysteresis = 0.0;
  // Noise guard between the node's domains, as the cluster controller's between nodes
  // (cluster_controller.hpp noise_guard_k): each steered domain's level, the log of its
  // smoothed marginal gain at its even share of the grant (of its frequency part), is tracked
  // with its spread around its own moving average (weight noise_weight); the share of a
  // domain's average difference from the domains' median that lies within noise_guard_k
  // spreads of that average (AveragedLevelNoise::average_sd) is taken out of its curve before the
  // water-filling, so domains that differ only by noise split the grant evenly. The spread
  // also counts the model's uncertainty about each job's memory share (level_noise.hpp
  // model_level_sd, with the model's default_memory_share_sd; guard_model_uncertainty),
  // except for jobs whose estimate rests on their own speed regression against the default
  // share (see node_controller.cpp). 0: off.
  double noise_guard_k = 2.0;
  double noise_weight = 0.1;
  bool guard_model_uncertainty = true;
  // Damping: most a cap moves per step, max(_w, _frac x (max - min)).
  double max_step_w = 5.0;
  double max_step_frac = 0.30;
  // Hysteresis: targets closer than max(_w, _frac x range) to the cap do not move it (but
  // for watts of the grant that no cap would use: step 4 above).
  double deadband_w = 1.0;
  double deadband_frac = 0.01;
  // enforce() also raises the caps when a grant rises (not only lowers them when it drops),
  // so that watts the cluster controller moves here are used from their arrival, not from
  // the next step (a period later on a node agent whose reports lead the controller's step).
  bool raise_at_once = true;
  // Perturbation size (share of the domain's range) and least time between two on a domain.
  double perturb_frac = 0.03;
  double perturb_interval_s = 5.0;
  // Protected base for work that is not steered: measured power (or its moving average,
  // weight 0.1, when that is higher) plus this headroom or saturation_noise_k spreads of the
  // power (steered_node_noise_k within the step of a node with steered work, below),
  // whichever is more, or the domain's maximum when the power is within
  // binding_margin_w of the cap (it wants more). A quiet period's power plus the headroom
  // alone throttled a plain service whose power swings with its arrivals in its next busy
  // period (in the simulator, a random cluster's nodes of a plain ResNet-like service lost
  // 5% of its mean latency, and the cluster 2.2% of its mean, to the even split).
  double unmanaged_headroom_w = 5.0;
  double binding_margin_w = 2.0;
  // A domain with steered work whose power stayed more than binding_margin_w below its cap
  // is saturated (its cores run at their top clock): its curve ends this far above the
  // measured power (or its moving average, weight 0.1, when that is higher and a job's
  // curve there counts its load's spread). Negative: never cut.
  double saturation_headroom_w = 10.0;
  // ... or this many spreads of the domain's measured power (its mean square deviation from
  // its moving average, weight 0.1), when that is more: a service whose power swings with its
  // arrivals is not cut at a quiet period's power (in the simulator, 2 brought the budget held
  // as caps from 98.0% to 99.1% on renewable-day and stopped a small homogeneous cluster from
  // losing 0.5% of mean latency).
  double saturation_noise_k = 2.0;
  // On a node with steered work, the protected base of work that is not steered counts this
  // many spreads of its domain's power instead (the headroom stays): the watts between go to
  // the node's steered work within the step, without crossing the network. The need the
  // node reports still counts saturation_noise_k spreads, so that the cluster's share for
  // the node does not follow each period's swing of a base held closer to the power. In the
  // simulator's random clusters (README, issue 12): nodes of a plain-only socket beside one
  // whose steered service runs near saturation (rnd77-13, seed 1) went from 888 to 563 ms of
  // mean latency (the oracle, which holds plain sockets at their mean draw: 97 ms); over 1290
  // runs, harm 122 -> 121 and runs under 80% of the oracle's gain 244 -> 239 of 848. At 0
  // or 0.5, more gain (231-233) and more harm (124-126); at 1 in the report too, runs under
  // 99.5% of the budget rose from 19 to 28 (the plain work's cap bound more often, and its
  // need swung between its draw and its fair share from period to period: watts in transit
  // between nodes).
  double steered_node_noise_k = 1.0;
  // The cap in force is taken as the controller's own last cap when within this of it;
  // otherwise someone else set it and the controller continues from the value in force.
  double cap_sync_tolerance_w = 0.5;
  std::uint64_t seed = 1;
};

// One power domain over the last period.
struct DomainInput {
  std::string name;  // e.g. "package-0"; a change of names resets the controller's state
  double min_cap_w = 0.0;
  double max_cap_w = 0.0;
  // Cap in force; not finite or <= 0: unknown (the controller then moves to its target
  // without damping).
  double cap_w = std::numeric_limits<double>::quiet_NaN();
  // Measured average power over the period; not finite or negative: unknown.
  double power_w = std::numeric_limits<double>::quiet_NaN();
  PowerModel model;  // P0, TDP, top frequency of the socket
};

// One job's presence on one domain.
struct JobDomainInput {
  std::size_t domain = 0;  // index into NodeInputs::domains
  double cpus = 1.0;       // its CPUs on that domain
  double share = 1.0;      // share of the domain's CPUs, in (0, 1]
  // Parallel request slots (latency mode; see gradient_model.hpp); 0: one per CPU it has on
  // the domain (at least 1), what a service with a worker per core has.
  double servers = 0.0;
  CounterSample counters;  // deltas over the period on those CPUs
  std::optional<double> busy_fraction;  // default: task-clock / (interval x cpus)
  std::optional<double> progress_rate;  // application progress per second, if exposed
};

struct JobInput {
  std::string key;  // unique on the node, e.g. "1234.0"; models are kept per key and domain
  JobMode mode = JobMode::latency;
  bool emulated = false;  // counters from an emulator (reported as such)
  std::vector<JobDomainInput> domains;
};

struct NodeInputs {
  double now_s = 0.0;
  std::vector<DomainInput> domains;
  std::vector<JobInput> jobs;
};

// Extension point for per-core frequency limits between jobs that share a domain: each
// steered job's share of its domain's marginal gain at the decided cap.
struct JobDomainShare {
  std::string job;
  std::size_t domain = 0;
  double gain_per_w = 0.0;  // the job's marginal gain at the domain's new cap
  double gain_share = 0.0;  // of the domain's total marginal gain there, in [0, 1]
};

struct NodeDecision {
  // False when the inputs cannot be acted on (a domain's range is bad, now_s not finite):
  // caps_w is then empty and `error` says why; the agent should keep the safest caps it
  // knows (its floor settings) and log.
  bool ok = false;
  std::string error;
  // Per domain, in input order: the caps to apply (within [min, max], sum <= grant).
  std::vector<double> caps_w;
  // Domain indices in the order to write the caps: lowered ones first, so the sum of caps in
  // force never passes through a value above both the old and the new sum.
  std::vector<std::size_t> apply_order;
  std::vector<double> target_caps_w;  // water-filled targets, before damping
  std::vector<double> protected_w;    // protected base per domain (work not steered)
  double effective_grant_w = 0.0;
  bool lease_expired = false;
  // The perturbed domain this step (its cap_w includes perturbation_w), if any.
  std::optional<std::size_t> perturbed_domain;
  double perturbation_w = 0.0;
  // From enforce(): the caps rose to a grant that rose (else they were lowered, or kept).
  bool raised = false;
  std::vector<JobDomainShare> job_shares;
  // Things that did not stop the step: jobs skipped for bad input, a grant below the
  // domains' minimum caps.
  std::vector<std::string> warnings;
  NodeReport report;
};

// The lease a node runs under.
struct NodeLease {
  bool from_controller = false;  // false: static grant or floor
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
  double grant_w = 0.0;
  double floor_w = 0.0;
  double share_w = 0.0;  // GrantMessage::share_w (0: none)
  double expires_at_s = std::numeric_limits<double>::infinity();
};

class NodeController {
 public:
  explicit NodeController(std::string node_name, const NodeControllerParams &params = {});

  // Takes a grant. Returns empty if accepted, else why not (another node's, not newer than
  // the lease held (epoch, seq), already expired at now_s, sent before started_at_s, bad
  // values); a refused grant changes nothing. The lease ends at min(expires_at_s,
  // now_s + lease_s).
  std::string on_grant(const GrantMessage &grant, double now_s);
  const NodeLease &lease() const { return lease_; }
  // The lease's grant while it runs; its floor once it has ended.
  double effective_grant_w(double now_s) const;
  bool lease_expired(double now_s) const;

  // One period: see the header comment. Never throws.
  NodeDecision step(const NodeInputs &inputs);

  // Before the first step (an agent's first period has no sample yet): a report of the caps
  // in force (inputs.domains' cap_w; an unknown one counts as the domain's maximum) and of
  // the domains' range, with no measurement. It lets the cluster controller bound the node
  // by those caps rather than by its maximum, and grant it its share a period sooner than
  // the first step's report would. Its need is the domains' maximum (not known yet; the
  // cluster controller holds a node's need to its fair share), and it is idle when
  // inputs.jobs is empty. Until the first step, enforce() splits the grant evenly over the
  // domains (allocate_uniform): caps lowered to a grant that drops, raised towards the even
  // split of one that rises. Caps are not changed here (decision.caps_w repeats them). Not
  // ok (with the error) when a domain's range is bad, now_s is not finite, or after a step.
  // Never throws.
  NodeDecision announce(const NodeInputs &inputs);

  // Between steps, right after on_grant(): if the caps of the last step sum above the
  // effective grant (the grant dropped, or the lease ended), the caps lowered to fit it now
  // (those above their targets first, none raised), with a report that confirms the grant,
  // so that the cluster controller can give the watts to others without waiting a period.
  // If the grant rose by more than the deadband above the one last fitted (by a step or
  // here) and the caps leave more than that unused (raise_at_once): the caps raised into it
  // (NodeDecision::raised), none lowered, as the last step's allocation puts the new grant.
  // Nothing (nullopt) otherwise, or before the first step (but after announce(): the even
  // split described there). The report repeats the last step's measurements and demand.
  // Never throws.
  std::optional<NodeDecision> enforce(double now_s);

  const std::string &node_name() const { return name_; }
  const NodeControllerParams &params() const { return params_; }
  // The model of `job` on `domain`, or null.
  const GradientModel *model(const std::string &job, std::size_t domain) const;

 private:
  struct DomainState {
    std::string name;
    bool known = false;     // base_w / output_w are meaningful
    double base_w = 0.0;    // last cap without perturbation
    double output_w = 0.0;  // last cap returned
    double last_perturb_s = -std::numeric_limits<double>::infinity();
    // Smoothed marginal gain of the domain's steered work over [grid_min_w, grid_max_w]
    // (curve_steps cells); empty without steered work.
    std::vector<double> marginal;
    double grid_min_w = 0.0;
    double grid_max_w = 0.0;
    // The noise guard's level statistics (NaN until known).
    AveragedLevelNoise noise;
    // The domain's measured power: moving average and mean square deviation (weight 0.1).
    double power_mean = std::numeric_limits<double>::quiet_NaN();
    double power_var = 0.0;
    double power_sd() const { return std::sqrt(power_var); }
  };
  struct JobKey {
    std::string job;
    std::size_t domain;
    bool operator<(const JobKey &o) const { return job != o.job ? job < o.job : domain < o.domain; }
  };
  std::uint64_t next_random();
  // The most a cap moves in one step (damping): max(max_step_w, max_step_frac x range).
  double damping_step_w(double range_w) const;
  // Targets for a grant below the last step's (enforce): the last step's water-filling at
  // that grant, or, where its protections do not all fit, the protections cut to one level.
  std::vector<double> fit_children_to_grant(double grant) const;
  // enforce() between announce() and the first step.
  std::optional<NodeDecision> enforce_even(double now_s);
  // The last report renewed for caps fitted between steps (kept as the last report).
  NodeReport report_for_enforce(const std::vector<double> &caps, double grant, double now_s,
                                bool expired);

  std::string name_;
  NodeControllerParams params_;
  NodeLease lease_;
  std::vector<DomainState> domains_;
  std::map<JobKey, GradientModel> models_;
  // The last step's outcome, for enforce().
  bool stepped_ = false;
  // announce() ran, and no step since: enforce() splits the grant evenly (enforce_even).
  bool announced_ = false;
  std::vector<double> last_mins_, last_maxs_, last_targets_;
  // The grant the last step (or raise) fitted the caps to, and the last step's water-filling
  // input (empty when it had none).
  double last_grant_ = 0.0;
  std::vector<AllocChild> last_children_;
  NodeReport last_report_;
  std::uint64_t report_seq_ = 0;
  std::uint64_t rng_;
};

}  // namespace powergrad
