#include "libgradient/cluster_controller.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <utility>

#include "libgradient/curve_ops.hpp"
#include "libgradient/format.hpp"
#include "libgradient/numeric.hpp"
#include "libgradient/parallel.hpp"

namespace powergrad {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Smallest raise release() sends on its own (a raise that completes a target always goes).
constexpr double kMinReleaseW = 0.5;

// From this many raises on, order_raises() sorts them by radix.
constexpr std::size_t kRadixMin = 256;

// Sent grants kept per node; older ones are merged conservatively (later seq, larger grant,
// later expiry), which can only raise the bound.
constexpr std::size_t kMaxSentGrants = 64;

// Demand curves are refined near the water level's cut from this many segments up
// (ClusterConfig::curve_segments).
constexpr std::size_t kMinRefinedSegments = 16;

std::string group_label(const ClusterConfig &c, std::size_t g) {
  if (!c.groups[g].name.empty()) return "group '" + c.groups[g].name + "'";
  return "group #" + std::to_string(g);
}

}  // namespace

const char *to_string(PlainShare share) {
  switch (share) {
    case PlainShare::usage:
      return "usage";
    case PlainShare::even:
      return "even";
  }
  return "?";
}

std::string ClusterController::check_config(const ClusterConfig &c) {
  if (!finite_nonnegative(c.budget_w))
    return "budget " + format_w(c.budget_w) + " is negative or not finite";
  if (!std::isfinite(c.period_s) || c.period_s <= 0.0) return "period_s must be positive";
  if (!std::isfinite(c.lease_s) || c.lease_s < c.period_s)
    return "lease_s (" + format_number(c.lease_s) +
           " s) must be at least period_s: leases would end between renewals";
  if (!finite_nonnegative(c.silent_after_s)) return "silent_after_s must be >= 0";
  if (!finite_nonnegative(c.clock_skew_s)) return "clock_skew_s must be >= 0";
  if (!(c.hysteresis >= 0.0 && c.hysteresis < 0.9)) return "hysteresis must be in [0, 0.9)";
  if (!(c.hysteresis_settle_s >= 0.0 && c.hysteresis_settle_s <= 86400.0))
    return "hysteresis_settle_s must be in [0, 86400]";
  if (!std::isfinite(c.slow_confirm_periods)) return "slow_confirm_periods must be a finite number";
  if (!(c.noise_guard_k >= 0.0 && c.noise_guard_k <= 10.0))
    return "noise_guard_k must be in [0, 10]";
  if (!(c.model_guard_k >= 0.0 && c.model_guard_k <= 10.0))
    return "model_guard_k must be in [0, 10]";
  if (!(c.noise_weight > 0.0 && c.noise_weight <= 1.0)) return "noise_weight must be in (0, 1]";
  if (!(c.model_prior_sd >= 0.0 && c.model_prior_sd <= 1.0))
    return "model_prior_sd must be in [0, 1]";
  if (c.step_threads > kMaxStepThreads)
    return "step_threads " + std::to_string(c.step_threads) + " is above " +
           std::to_string(kMaxStepThreads);
  if (c.step_thread_min_nodes < 1) return "step_thread_min_nodes must be at least 1";
  for (std::size_t g = 0; g < c.groups.size(); ++g) {
    const ClusterGroupConfig &grp = c.groups[g];
    if (grp.parent != kNoGroup && grp.parent >= g)
      return group_label(c, g) + ": parent must be an earlier group";
    if (std::isnan(grp.max_w) || grp.max_w < 0.0)
      return group_label(c, g) + ": limit " + format_w(grp.max_w) + " is negative or not a number";
  }
  std::unordered_map<std::string, std::size_t> seen;
  std::vector<double> group_floor(c.groups.size(), 0.0);
  double floors = 0.0;
  for (std::size_t i = 0; i < c.nodes.size(); ++i) {
    const ClusterNodeConfig &node = c.nodes[i];
    const std::string label = "node " + std::to_string(i) + " ('" + node.name + "')";
    if (node.name.empty()) return "node " + std::to_string(i) + ": empty name";
    if (!seen.emplace(node.name, i).second) return label + ": duplicate name";
    if (std::string why = PowerRange{node.floor_w, node.max_w}.check(); !why.empty())
      return label + ": " + why;
    if (!std::isnan(node.idle_w) && !(node.idle_w >= 0.0 && node.idle_w <= node.floor_w))
      return label + ": idle cap " + format_w(node.idle_w) + " is not within 0.." +
             format_w(node.floor_w) + " (its floor)";
    if (node.group != kNoGroup && node.group >= c.groups.size())
      return label + ": group " + std::to_string(node.group) + " does not exist";
    floors += node.floor_w;
    for (std::size_t g = node.group; g != kNoGroup; g = c.groups[g].parent)
      group_floor[g] += node.floor_w;
  }
  if (floors > c.budget_w)
    return "node floors sum to " + format_w(floors) + ", above the budget " + format_w(c.budget_w) +
           ": leases could not fall back safely";
  for (std::size_t g = 0; g < c.groups.size(); ++g)
    if (group_floor[g] > c.groups[g].max_w)
      return group_label(c, g) + ": its nodes' floors sum to " + format_w(group_floor[g]) +
             ", above its limit " + format_w(c.groups[g].max_w);
  return {};
}

ClusterController::ClusterController(ClusterConfig config) : config_(std::move(config)) {
  error_ = check_config(config_);
  if (!error_.empty()) return;
  const std::size_t n = config_.nodes.size();
  nodes_.resize(n);
  group_begin_.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    by_name_.insert(config_.nodes[i].name);  // index i: check_config refused duplicates
    floor_sum_w_ += config_.nodes[i].floor_w;
    group_begin_[i] = group_list_.size();
    for (std::size_t g = config_.nodes[i].group; g != kNoGroup; g = config_.groups[g].parent)
      group_list_.push_back(g);
  }
  group_begin_[n] = group_list_.size();
  std::vector<NodeId> gid(config_.groups.size());
  for (std::size_t g = 0; g < config_.groups.size(); ++g) {
    const ClusterGroupConfig &grp = config_.groups[g];
    gid[g] = tree_.add_group(grp.parent == kNoGroup ? AllocTree::kRoot : gid[grp.parent], 0.0,
                             grp.max_w, grp.name);
  }
  leaf_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const ClusterNodeConfig &node = config_.nodes[i];
    leaf_[i] = tree_.add_leaf(node.group == kNoGroup ? AllocTree::kRoot : gid[node.group],
                              node.floor_w, node.floor_w, GainCurve{}, node.name);
  }
  compute_fair_shares();
  cpus_ = std::max(1u, std::thread::hardware_concurrency());
  allocator_.set_threads(step_threads(n), config_.step_thread_min_nodes);
}

std::size_t ClusterController::step_threads(std::size_t n) const {
  const std::size_t want =
      config_.step_threads > 0 ? config_.step_threads : std::min(cpus_, kAutoStepThreads);
  return std::max<std::size_t>(1, std::min(want, n / config_.step_thread_min_nodes));
}

template <typename F>
void ClusterController::for_chunks(std::size_t n, std::size_t threads, F &&f) {
  if (scratch_.size() < threads) scratch_.resize(threads);
  parallel_tasks(threads, threads, [&](std::size_t t, std::size_t) {
    f(n * t / threads, n * (t + 1) / threads, scratch_[t]);
  });
}

// The budget split evenly: every node at the same share f of its range above its floor
// (a node of four sockets gets four times what one of one socket gets), within the group
// limits: a group whose limit binds holds its limit, split among its nodes the same way, and
// the rest goes to the others at a common higher share. (Equal linear curves in the
// allocator would split per node instead: a node of one socket got as many watts above its
// floor as one of four, and the four-socket node of a group at its limit was starved;
// issue 12's random clusters.) Bisection on f at each level of the group tree: O(nodes x
// depth x 60), run only when the budget or the configuration changes.
void ClusterController::compute_fair_shares() {
  const std::size_t n = config_.nodes.size();
  const std::size_t ng = config_.groups.size();
  const std::size_t root = ng;  // index of the cluster in the child lists
  std::vector<std::vector<std::size_t>> leaves(ng + 1), groups(ng + 1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t g = config_.nodes[i].group;
    leaves[g == kNoGroup ? root : g].push_back(i);
  }
  for (std::size_t g = 0; g < ng; ++g) {
    const std::size_t p = config_.groups[g].parent;
    groups[p == kNoGroup ? root : p].push_back(g);
  }
  const auto width = [&](std::size_t i) {
    return std::max(0.0, config_.nodes[i].max_w - config_.nodes[i].floor_w);
  };
  std::function<double(std::size_t, double)> take;  // group g's take at share f (below)
  // What the nodes under group g take at share f: within the limits of the groups below g
  // (g's own limit is the caller's).
  std::function<double(std::size_t, double)> within = [&](std::size_t g, double f) {
    double t = 0.0;
    for (std::size_t i : leaves[g]) t += config_.nodes[i].floor_w + f * width(i);
    for (std::size_t c : groups[g]) t += take(c, f);
    return t;
  };
  take = [&](std::size_t g, double f) { return std::min(within(g, f), config_.groups[g].max_w); };
  std::function<void(std::size_t, double)> split = [&](std::size_t g, double budget) {
    double lo = 0.0, hi = 1.0;
    if (within(g, 1.0) <= budget) {
      lo = 1.0;
    } else {
      for (int it = 0; it < 60; ++it) {
        const double mid = 0.5 * (lo + hi);
        (within(g, mid) <= budget ? lo : hi) = mid;
      }
    }
    for (std::size_t i : leaves[g]) fair_share_w_[i] = config_.nodes[i].floor_w + lo * width(i);
    for (std::size_t c : groups[g]) split(c, take(c, lo));
  };
  // Every node is under the root, and the floors fit the budget and every group's limit
  // (check_config and set_budget refuse anything else), so split sets every share.
  fair_share_w_.assign(n, 0.0);
  split(root, config_.budget_w);
}

double ClusterController::idle_w(std::size_t i) const {
  const ClusterNodeConfig &cfg = config_.nodes[i];
  return std::isnan(cfg.idle_w) ? cfg.floor_w : cfg.idle_w;
}

std::size_t ClusterController::node_index(const std::string &name) const {
  const std::size_t i = by_name_.find(name);
  return i == NameIndex::npos ? kNoIndex : i;
}

// A lease that ends at expires_at_s (controller clock) can still hold caps up until then
// plus the clock skew, plus one period: an agent applies the end of its lease at its next
// step, and until then the caps it set stay in force.
double ClusterController::counts_until(double expires_at_s) const {
  return expires_at_s + config_.clock_skew_s + config_.period_s;
}

bool ClusterController::silent(const NodeState &s, double now_s) const {
  return s.reported && now_s - s.last_report_s > config_.silent_after_s;
}

// Whether a grant sent to a node could be in force there now or later: see the rules in
// in_force_bound_w. Grants that cannot are dropped from the front (they are in seq order).
bool ClusterController::may_hold(const NodeState &s, const SentGrant &g, double now_s) const {
  if (!s.reported) return true;
  if (config_.reclaim_after_lease && !(counts_until(g.expires_at_s) > now_s)) return false;
  if (s.lease_ours) return g.seq > s.last.lease_seq;
  return g.sent_at_s + config_.clock_skew_s >= s.last.started_at_s;
}

void ClusterController::trim_sent(NodeState &s, double now_s) const {
  while (!s.sent.empty() && !may_hold(s, s.sent.front(), now_s)) s.sent.pop_front();
  while (s.sent.size() > kMaxSentGrants) {
    const SentGrant a = s.sent.front();
    s.sent.pop_front();
    SentGrant &b = s.sent.front();  // later seq and send time: counted whenever a would be
    b.grant_w = std::max(a.grant_w, b.grant_w);
    b.expires_at_s = std::max(a.expires_at_s, b.expires_at_s);
  }
}

// The cap that can be in force on a node:
// - before its first report: its maximum;
// - under a lease of ours (the report confirms seq s): that lease's grant and the caps it
//   reported (above the grant only at its minimum caps), and every grant sent after s:
//   the node may have taken any of them since the report, and an agent that hangs keeps
//   what it applied, expired or not. Grants up to s it can no longer take (it refuses
//   older seqs, and a restarted agent refuses grants sent before it started);
// - otherwise (no lease of ours yet, e.g. after an agent restart): its reported caps and
//   lease, its floor, and every grant sent since its agent started;
// - with reclaim_after_lease, nodes are trusted to end their leases on time: grants whose
//   lease has ended (plus skew and a period) stop counting, and an ended confirmed lease
//   leaves the node at its floor (or its minimum caps, if higher).
double ClusterController::in_force_bound_w(std::size_t node, double now_s) const {
  if (!ok() || node >= nodes_.size()) return 0.0;
  const ClusterNodeConfig &cfg = config_.nodes[node];
  const NodeState &s = nodes_[node];
  if (!s.reported) return cfg.max_w;
  const NodeReport &r = s.last;
  double bound;
  if (s.lease_ours) {
    bound = std::max(r.lease_grant_w, r.caps_w);
    if (config_.reclaim_after_lease && !(counts_until(r.lease_expires_at_s) > now_s))
      bound = std::max(cfg.floor_w, r.min_w);
  } else {
    bound = std::max({r.caps_w, r.lease_grant_w, cfg.floor_w});
  }
  return with_sent_grants(s, bound, now_s);
}

// w, or more if the node may have taken a grant sent since its report that is above it.
double ClusterController::with_sent_grants(const NodeState &s, double w, double now_s) const {
  for (const SentGrant &g : s.sent)
    if (may_hold(s, g, now_s)) w = std::max(w, g.grant_w);
  return w;
}

// What a node holds for sure, as far as raising it goes: its in-force bound, less what only
// may come into force. A node not under a lease of ours counts its floor in its bound (its
// lease may end, and it falls back to the floor of that lease); granting it that floor is
// a raise. A node not heard from yet may hold anything down to the lowest the controller
// grants (its idle cap, or its floor).
// bound_w: the node's in-force bound.
double ClusterController::held_w(std::size_t node, double bound_w, double now_s) const {
  const NodeState &s = nodes_[node];
  if (!s.reported) return idle_w(node);
  if (s.lease_ours) return bound_w;
  return with_sent_grants(s, std::max(s.last.caps_w, s.last.lease_grant_w), now_s);
}

double ClusterController::total_in_force_bound_w(double now_s) const {
  double sum = 0.0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) sum += in_force_bound_w(i, now_s);
  return sum;
}

double ClusterController::group_in_force_bound_w(std::size_t group, double now_s) const {
  double sum = 0.0;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    for (std::size_t g : node_groups(i))
      if (g == group) sum += in_force_bound_w(i, now_s);
  return sum;
}

std::string ClusterController::on_report(const NodeReport &r, double now_s) {
  if (!ok()) return "controller not configured: " + error_;
  const std::size_t i = node_index(r.node);
  if (i == kNoIndex) return "report from unknown node '" + r.node + "'";
  return on_report(r, now_s, i);
}

std::string ClusterController::on_report(const NodeReport &r, double now_s, std::size_t i) {
  if (!ok()) return "controller not configured: " + error_;
  if (i >= nodes_.size() || config_.nodes[i].name != r.node)
    return "report from '" + r.node + "' given as node " +
           (i < nodes_.size() ? "'" + config_.nodes[i].name + "'" : std::to_string(i));
  const auto who = [&r] { return "report from '" + r.node + "': "; };
  if (!std::isfinite(now_s)) return who() + "now_s is not finite";
  if (!std::isfinite(r.sent_at_s)) return who() + "send time is not finite";
  if (!finite_nonnegative(r.min_w) || !finite_nonnegative(r.max_w) ||
      !finite_nonnegative(r.need_w) || !finite_nonnegative(r.caps_w) ||
      !finite_nonnegative(r.lease_grant_w) || !finite_nonnegative(r.effective_grant_w))
    return who() + "a power figure is negative or not finite";
  if (std::isnan(r.lease_expires_at_s) || std::isnan(r.started_at_s))
    return who() + "a time is not a number";
  if (!std::isnan(r.power_w) && !finite_nonnegative(r.power_w))
    return who() + "measured power is negative or infinite";
  if (!r.demand.valid()) return who() + "demand curve: " + r.demand.error();
  NodeState &s = nodes_[i];
  if (s.reported && s.session_incarnation != r.incarnation) {
    if (r.incarnation < s.last.incarnation)
      return who() + "its incarnation " + std::to_string(r.incarnation) +
             " is older than the last accepted one (" + std::to_string(s.last.incarnation) +
             ") and not that of its newest session";
    // (No report number in the text: the service logs each distinct refusal once per node,
    // and an agent that keeps repeating old numbers would otherwise fill the log.)
    if (r.incarnation == s.last.incarnation && r.report_seq <= s.last.report_seq)
      return who() + "not newer than the last one accepted of its incarnation " +
             std::to_string(r.incarnation);
  }
  s.session_incarnation.reset();
  // A lease of ours that this controller never sent to the node is not trusted as one.
  const std::uint64_t last_sent = s.sent.empty() ? s.last_seq_sent : s.sent.back().seq;
  s.lease_ours = r.lease_epoch == config_.epoch && r.lease_seq != 0 && r.lease_seq <= last_sent;
  // A lease lowered below the caps the node last reported, and lowered caps: the agent
  // reports such a decrease as soon as it obeys it, so the time since the grant was sent is
  // what a decrease takes (slow_confirm_periods).
  if (s.lease_ours && s.reported && s.last.lease_epoch == r.lease_epoch &&
      r.lease_grant_w < s.last.lease_grant_w - 0.5 && r.lease_grant_w < s.last.caps_w - 0.5 &&
      r.caps_w < s.last.caps_w - 0.5) {
    for (const SentGrant &g : s.sent)
      if (g.seq == r.lease_seq) {
        const double took = std::max(0.0, now_s - g.sent_at_s);
        s.confirm_s = std::isnan(s.confirm_s) ? took : s.confirm_s + 0.25 * (took - s.confirm_s);
        break;
      }
  }
  // How long its power-aware jobs have been steered (node_hysteresis): an order-independent
  // signature of their keys (a job on two domains counts twice, as long as it stays there).
  {
    std::uint64_t sig = 0;
    for (const JobSummary &j : r.jobs) {
      if (j.mode == JobMode::off) continue;
      std::uint64_t h = std::hash<std::string>{}(j.job) + 0x9e3779b97f4a7c15ULL;
      h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;  // splitmix64's finaliser
      h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
      sig += h ^ (h >> 31);
    }
    const bool steered = !r.idle && r.steerable && !r.demand.segments().empty();
    if (!steered) {
      s.steered_since_s = kNaN;
      s.within_share = 0.0;
    } else if (std::isnan(s.steered_since_s) || sig != s.jobs_sig ||
               (s.reported && r.incarnation != s.last.incarnation)) {
      s.steered_since_s = now_s;
      s.within_share = 0.0;
    }
    s.jobs_sig = sig;
  }
  s.reported = true;
  s.last_report_s = now_s;
  s.last = r;
  s.leaf_curve_dirty = true;
  // The noise guard's level and its noise (level_noise.hpp).
  s.level = demand_level(i, r);
  s.noise.add(s.level, config_.noise_weight);
  {
    double wsum = 0.0, sum = 0.0;
    for (const JobSummary &j : r.jobs) {
      if (!j.valid || !(j.gain_per_w > 0.0) || !std::isfinite(j.gain_per_w)) continue;
      wsum += j.gain_per_w;
      sum += j.gain_per_w * model_level_sd(j.memory_share, j.confidence, config_.model_prior_sd);
    }
    s.model_sd = wsum > 0.0 ? sum / wsum : 0.0;
  }
  trim_sent(s, now_s);
  return {};
}

bool ClusterController::new_session(const std::string &node, std::uint64_t incarnation) {
  if (!ok()) return false;
  const std::size_t i = node_index(node);
  if (i == kNoIndex) return false;
  NodeState &s = nodes_[i];
  s.session_incarnation = incarnation;
  return s.reported && incarnation < s.last.incarnation;
}

std::string ClusterController::set_budget(double budget_w, double now_s) {
  if (!ok()) return "controller not configured: " + error_;
  if (!finite_nonnegative(budget_w))
    return "budget " + format_w(budget_w) + " is negative or not finite; keeping " +
           format_w(config_.budget_w);
  if (budget_w < floor_sum_w_)
    return "budget " + format_w(budget_w) + " is below the nodes' floors (" +
           format_w(floor_sum_w_) + "); keeping " + format_w(config_.budget_w);
  config_.budget_w = budget_w;
  compute_fair_shares();
  for (NodeState &s : nodes_) s.leaf_curve_dirty = true;  // their spare claims follow the share
  return {};
}

std::vector<GrantMessage> ClusterController::step(double now_s) {
  std::vector<GrantMessage> out;
  step(now_s, out);
  return out;
}

void ClusterController::step(double now_s, std::vector<GrantMessage> &out) {
  if (!ok() || !std::isfinite(now_s)) {
    out.clear();
    return;
  }
  step_error_.clear();
  const std::size_t n = nodes_.size();

  // The noise guard's levels are collected here, its verdicts given in the leaf loop below
  // (one pass over the nodes each, where they are read anyway).
  // The per-node loops run on step_threads(n) threads (ClusterConfig::step_threads).
  const bool guard = config_.noise_guard_k > 0.0;
  const std::size_t threads = step_threads(n);
  std::vector<double> &bound = bound_;
  bound.resize(n);
  for_chunks(n, threads, [&](std::size_t begin, std::size_t end, Scratch &sc) {
    sc.levels.clear();
    for (std::size_t i = begin; i < end; ++i) {
      prefetch_state(i + 4);
      trim_sent(nodes_[i], now_s);
      bound[i] = in_force_bound_w(i, now_s);
      if (guard && guarded(nodes_[i])) sc.levels.push_back(nodes_[i].level);
    }
  });
  levels_.clear();
  for (std::size_t t = 0; t < threads; ++t)
    levels_.insert(levels_.end(), scratch_[t].levels.begin(), scratch_[t].levels.end());
  const double median = guard ? guard_median() : kNaN;

  // 1. The tree: built once; each step updates its leaves' limits, and a leaf's curve only
  // when a new report or a changed floor calls for it (curves are the expensive part).
  const std::size_t max_segments = curve_segments();
  for_chunks(n, threads, [&](std::size_t begin, std::size_t end, Scratch &sc) {
    for (std::size_t i = begin; i < end; ++i) {
      prefetch_curves(i, end);
      update_leaf(i, median, max_segments, now_s, sc);
    }
  });

  // 2. Targets.
  std::vector<double> &target = target_;
  target.resize(n);
  const AllocResult res = allocator_.allocate(tree_, config_.budget_w);
  if (res.feasible) {
    for (std::size_t i = 0; i < n; ++i) target[i] = res.grants_w[leaf_[i]];
    unallocated_w_ = res.unallocated_w;
  } else {
    // Cannot happen with a checked configuration (leaf floors are within fair shares);
    // floors are always safe.
    step_error_ = res.error;
    for (std::size_t i = 0; i < n; ++i) target[i] = config_.nodes[i].floor_w;
    unallocated_w_ = config_.budget_w - floor_sum_w_;
  }

  // 3. Decreases at once; raises from slack only, steepest first.
  std::vector<double> &grant = grant_;
  grant.resize(n);
  double slack = slack_under(bound);
  const std::vector<std::size_t> &raise = raise_;  // filled by sort_raises() below
  // While the bounds sum above the budget or a group's limit (nodes not heard from since a
  // start, leases of an earlier controller, a budget drop not yet confirmed), what is in
  // force may already be at the budget: then no node is granted more than it holds for sure
  // (held_w), even within its bound. (After a restart of slurmctld, an idle node held below
  // its floor under the old controller's lease was granted its floor while the other nodes
  // still held the old leases: 615 W in force of a 600 W budget.)
  bool over = slack < 0.0;
  for (std::size_t g = 0; g < group_slack_.size(); ++g) over = over || group_slack_[g] < 0.0;
  std::vector<double> &free_to = free_;
  free_to.resize(n);
  // Per node, on the step's threads: what it may be granted without a raise, and whether
  // (and how urgently) it is to be raised.
  for_chunks(n, threads, [&](std::size_t begin, std::size_t end, Scratch &sc) {
    sc.raises.clear();
    for (std::size_t i = begin; i < end; ++i) {
      free_to[i] = bound[i];
      if (over) {
        bool node_over = slack < 0.0;
        for (std::size_t g : node_groups(i)) node_over = node_over || group_slack_[g] < 0.0;
        if (node_over) free_to[i] = std::min(free_to[i], held_w(i, bound[i], now_s));
      }
      grant[i] = std::min(target[i], free_to[i]);
      // A slow node's dip waits for a second step's target (slow_confirm_periods); nodes
      // with a curve only: steered ones, and plain ones above their need (spare watts).
      const NodeState &s = nodes_[i];
      if (!over && s.leaf_curve_set && target[i] < s.granted_w && slow_to_confirm(s))
        grant[i] = std::min(free_to[i], std::max(target[i], std::min(s.target_w, s.granted_w)));
      if (target[i] > bound[i]) sc.raises.push_back({raise_priority(i, bound[i]), i});
    }
  });
  by_priority_.clear();
  for (std::size_t t = 0; t < threads; ++t)
    by_priority_.insert(by_priority_.end(), scratch_[t].raises.begin(), scratch_[t].raises.end());
  if (over) spread_decreases();
  sort_raises();
  wait_w_ = 0.0;
  for (std::size_t i : raise) {
    const double allowed = raise_room(i, target[i] - bound[i], slack);
    if (allowed > 0.0) {
      grant[i] = std::min(target[i], bound[i] + allowed);
      take_slack(i, allowed, slack);
    }
    wait_w_ = std::max(wait_w_, target[i] - grant[i]);
  }

  // 4. Leases. Every grant of `out` is replaced (a vector kept from the last step keeps
  // its grants' memory).
  out.resize(n);
  const std::uint64_t seq = seq_;
  seq_ += n;
  for_chunks(n, threads, [&](std::size_t begin, std::size_t end, Scratch &) {
    for (std::size_t i = begin; i < end; ++i) {
      prefetch_state(i + 4);
      nodes_[i].target_w = target[i];
      out[i] = send_grant(i, grant[i], now_s, seq + i + 1);
    }
  });
}

// step()'s leaf loop for node i: its leaf's limits, and its curve when a new report or a
// changed floor calls for it. Reads and writes node i's state and leaf only.
void ClusterController::update_leaf(std::size_t i, double median, std::size_t max_segments,
                                    double now_s, Scratch &sc) {
  const ClusterNodeConfig &cfg = config_.nodes[i];
  NodeState &s = nodes_[i];
  if (config_.noise_guard_k > 0.0) guard_node(s, median);
  double low = cfg.floor_w;
  double high = cfg.floor_w;
  double share = cfg.floor_w;
  bool steered = false;
  if (s.reported && s.last.idle) {
    // Not below what its hardware can be capped to (its domains' minimum caps).
    low = high = std::max(idle_w(i), std::min(s.last.min_w, cfg.floor_w));
  } else if (s.reported) {
    const NodeReport &r = s.last;
    const double node_max = node_max_w(i, r);
    share = node_share_w(i, node_max);
    const bool plain = !(r.steerable && !r.demand.segments().empty());
    low = plain && config_.plain_share == PlainShare::even
              ? share
              : std::clamp(r.need_w, cfg.floor_w, share);
    high = low;
    if (!plain) {
      high = node_max;
      steered = true;
    } else if (config_.plain_share == PlainShare::usage && share > low) {
      high = share;  // spare watts, at kPlainSpareGain (below)
    }
    if (silent(s, now_s)) {
      // Never raised; with reclaim_after_lease, renewed at its floor only, so that its
      // watts come back once its leases end.
      const double held = std::isnan(s.granted_w) ? low : std::max(low, s.granted_w);
      high = std::min(high, held);
      if (config_.reclaim_after_lease) {
        low = high = cfg.floor_w;
        steered = false;
      }
    }
  }
  const NodeId id = leaf_[i];
  tree_.set_limits(id, low, high);
  if (!steered) {
    // A plain node's watts between its need and its fair share are anyone's first: they go
    // to it only when no power-aware node wants them (kPlainSpareGain). One segment, set
    // every step (no allocation: the scratch curve and the tree's swap their memory).
    if (high > low) {
      sc.leaf.clear();
      sc.leaf.add({high - low, kPlainSpareGain});
      tree_.swap_curve(id, sc.leaf);
      s.leaf_curve_set = true;
      s.leaf_curve_dirty = true;  // a steered curve is built anew when the node steers again
      s.leaf_curve_lo_w = low;
    } else if (s.leaf_curve_set) {
      tree_.set_curve(id, GainCurve{});
      s.leaf_curve_set = false;
    }
  } else if (!s.leaf_curve_set || s.leaf_curve_dirty || s.leaf_curve_lo_w != low ||
             (s.within_noise ? s.leaf_pin_level != guard_level_
                             : std::fabs(s.want_scale / s.leaf_scale - 1.0) > 0.01)) {
    // Built in the controller's scratch curves (no allocation once they have grown); the
    // result is swapped into the tree, whose old curve becomes scratch.
    const GainCurve *demand = &s.last.demand;
    if (demand->segments().size() > max_segments) {
      coarsen(*demand, max_segments, sc.coarse);
      demand = &sc.coarse;
    }
    const GainCurve &d = *demand;
    const double base = s.last.need_w;
    // The demand from `low` on (itself when low is its base).
    const GainCurve *shifted = &d;
    if (low < base) {
      prepend(d, base - low, d.segments().front().slope, sc.shifted);
      shifted = &sc.shifted;
    } else if (low > base) {
      drop_front(d, low - base, sc.shifted);
      shifted = &sc.shifted;
    }
    // Continuous near where the water level will cut it (ClusterConfig::curve_segments),
    // from 16 segments up.
    if (max_segments >= kMinRefinedSegments) {
      const double cut_at[2] = {share - low, s.target_w - low};
      refine_near(*shifted, cut_at, 2, max_segments / 4, sc.refined);
      shifted = &sc.refined;
    }
    // The noise guard's scale (1 when the node's level counts as it is). A node within
    // noise is pinned: its slope at the fair share becomes exactly the median level, so
    // that pinned nodes' curves tie there (a product would differ in the last bit and hand
    // one node a whole segment); the rest of its curve is scaled alike.
    double pin_at = kNaN;
    double scale = s.want_scale;
    s.leaf_pin_level = kNaN;
    if (s.within_noise && share - low < shifted->width_w()) {
      pin_at = shifted->marginal_at(std::max(0.0, share - low));
      if (pin_at > 0.0) {
        scale = guard_level_ / pin_at;
        s.leaf_pin_level = guard_level_;
      }
    }
    s.leaf_scale = s.want_scale;
    // Up to its fair share, spare watts are its own before they are nobody's (raised to
    // kSpareGain); then the hysteresis around what it holds, moved towards its fair share
    // as far as it has been within noise (ClusterConfig::hysteresis).
    const double h = std::isnan(s.granted_w) ? 0.0 : node_hysteresis(s, now_s);
    const double q = s.within_share;
    const double held = share + (s.granted_w - share) * (1.0 - q * q);
    shape_leaf_curve(sc, *shifted, pin_at, scale, share - low, h, held - low);
    tree_.swap_curve(id, sc.leaf);
    s.leaf_curve_set = true;
    s.leaf_curve_dirty = false;
    s.leaf_curve_lo_w = low;
  }
}

// A node's state spans several cache lines, of which the bound and lease loops of step()
// read most: fetched a few nodes ahead.
void ClusterController::prefetch_state(std::size_t i) const {
  if (i >= nodes_.size()) return;
  const char *p = reinterpret_cast<const char *>(&nodes_[i]);
  for (std::size_t off = 0; off < sizeof(NodeState); off += 64) __builtin_prefetch(p + off);
}

// The curves step() reads and rebuilds live in memory of their own (each report's, each
// leaf's): fetched a few nodes ahead, so that the loop does not wait on each in turn. Only
// up to `end`, the thread's own nodes: another thread may be swapping the next nodes' leaf
// curves (reading their pointers was a data race, found by ThreadSanitizer).
void ClusterController::prefetch_curves(std::size_t i, std::size_t end) const {
  constexpr std::size_t kAhead = 4;
  const std::size_t n = std::min(end, nodes_.size());
  if (i + 2 * kAhead < n) {
    __builtin_prefetch(&nodes_[i + 2 * kAhead].last.demand);
    __builtin_prefetch(&tree_.curve(leaf_[i + 2 * kAhead]));
  }
  if (i + kAhead < n) {
    const GainSegment *d = nodes_[i + kAhead].last.demand.segments().data();
    __builtin_prefetch(d);
    __builtin_prefetch(d + 4);
    const GainSegment *l = tree_.curve(leaf_[i + kAhead]).segments().data();
    __builtin_prefetch(l, 1);
    __builtin_prefetch(l + 4, 1);
  }
}

namespace {

// The raise_slopes_until step of shape_leaf_curve: segments of the curve before it in,
// those of the raised curve out.
template <typename Out>
class RaiseStep {
 public:
  RaiseStep(double width_w, Out &out) : width_w_(width_w), out_(out) {}
  PG_ALWAYS_INLINE void operator()(const GainSegment &s) {
    if (!(width_w_ > 0.0)) return out_.add(s);  // raise_slopes_until returns the curve
    const double inside = std::clamp(width_w_ - at_, 0.0, s.width_w);
    if (inside > 0.0) out_.add({inside, std::max(s.slope, kSpareGain)});
    if (s.width_w > inside) out_.add({s.width_w - inside, s.slope});
    at_ += s.width_w;
  }
  void finish() {
    if (width_w_ > 0.0 && at_ < width_w_) out_.add({width_w_ - at_, kSpareGain});
  }

 private:
  double width_w_;
  Out &out_;
  double at_ = 0.0;
};

}  // namespace

// sc.leaf = favour_incumbent(raise_slopes_until(scaled curve, spare_w, kSpareGain),
// held_w, hysteresis), the scaled curve being `curve` with slope pin_at pinned to
// guard_level_ and the others times `scale` (when scale != 1); without favour, the raised
// curve. In one pass: SegmentStream stands in for the curves between the steps, with the
// same segments. Should a step refuse a segment, the steps run one by one, as written.
void ClusterController::shape_leaf_curve(Scratch &sc, const GainCurve &curve, double pin_at,
                                         double scale, double spare_w, double hysteresis,
                                         double held_w) {
  GainCurve &out = sc.leaf;
  out.clear();
  const bool favour = hysteresis > 0.0;
  const double h = std::min(hysteresis, 0.9);
  double pos = 0.0;
  const auto favoured = [&](const GainSegment &g) {  // favour_incumbent's loop
    if (!favour) return out.add(g);
    favour_segment(g, held_w, h, pos, out);
  };
  SegmentStream<decltype(favoured) &> raised(favoured);
  RaiseStep<decltype(raised)> raise(spare_w, raised);
  SegmentStream<decltype(raise) &> scaled(raise);
  for (const GainSegment &seg : curve.segments())
    scaled.add(scale == 1.0 ? seg
                            : GainSegment{seg.width_w,
                                          seg.slope == pin_at ? guard_level_ : seg.slope * scale});
  scaled.finish();
  raise.finish();
  raised.finish();
  if (curve.valid() && scaled.valid() && raised.valid() && out.valid()) return;

  const GainCurve *c = &curve;
  if (scale != 1.0) {
    sc.scaled.clear();
    for (const GainSegment &seg : curve.segments())
      sc.scaled.add({seg.width_w, seg.slope == pin_at ? guard_level_ : seg.slope * scale});
    c = &sc.scaled;
  }
  if (!favour) return raise_slopes_until(*c, spare_w, kSpareGain, out);
  raise_slopes_until(*c, spare_w, kSpareGain, sc.raised);
  favour_incumbent(sc.raised, held_w, hysteresis, out);
}

double ClusterController::node_hysteresis(const NodeState &s, double now_s) const {
  const double settle = config_.hysteresis_settle_s;
  if (!(settle > 0.0)) return config_.hysteresis;
  if (std::isnan(s.steered_since_s)) return 0.0;
  return config_.hysteresis * std::clamp((now_s - s.steered_since_s) / settle, 0.0, 1.0);
}

GrantMessage ClusterController::send_grant(std::size_t i, double grant_w, double now_s) {
  return send_grant(i, grant_w, now_s, ++seq_);
}

GrantMessage ClusterController::send_grant(std::size_t i, double grant_w, double now_s,
                                           std::uint64_t seq) {
  NodeState &s = nodes_[i];
  const double expires = now_s + config_.lease_s;
  s.granted_w = grant_w;
  s.sent.push_back({seq, grant_w, now_s, expires});
  s.last_seq_sent = seq;
  trim_sent(s, now_s);
  GrantMessage m;
  m.node = config_.nodes[i].name;
  m.grant_w = grant_w;
  // The node falls back to this when the lease ends: never above the grant, so that a node
  // granted less than its floor (an idle node at its idle cap) does not rise to the floor on
  // its own while the others still hold what its watts were given to.
  m.floor_w = std::min(config_.nodes[i].floor_w, grant_w);
  m.share_w = fair_share_w_[i];
  m.expires_at_s = expires;
  m.lease_s = config_.lease_s;
  m.epoch = config_.epoch;
  m.seq = seq;
  return m;
}

double ClusterController::node_max_w(std::size_t i, const NodeReport &r) const {
  const ClusterNodeConfig &cfg = config_.nodes[i];
  return std::clamp(std::min(cfg.max_w, r.max_w), cfg.floor_w, cfg.max_w);
}

double ClusterController::node_share_w(std::size_t i, double node_max_w) const {
  return std::max(config_.nodes[i].floor_w, std::min(fair_share_w_[i], node_max_w));
}

double ClusterController::demand_level(std::size_t i, const NodeReport &r) const {
  if (r.idle || !r.steerable || r.demand.segments().empty()) return kNaN;
  const double share = node_share_w(i, node_max_w(i, r));
  const double offset = std::max(0.0, share - r.need_w);
  // A node whose curve ends below its share wants no more than its share: no level.
  if (!(offset < r.demand.width_w())) return kNaN;
  const double g = r.demand.marginal_at(offset);
  // Nor does one whose gain there is negligible beside its own steepest (the curve's front;
  // curves are concave; kNegligibleGain): pinned at the median level, such nodes held their
  // whole fair share while busier nodes needed the watts.
  return gain_level(g, r.demand.segments().front().slope);
}

bool ClusterController::guarded(const NodeState &s) {
  return s.reported && !s.last.idle && std::isfinite(s.level) && s.noise.known();
}

double ClusterController::guard_median() {
  const double median = levels_.size() >= 2 ? median_in_place(levels_) : kNaN;
  if (std::isfinite(median)) guard_level_ = std::exp(median);
  return median;
}

void ClusterController::guard_node(NodeState &s, double median) const {
  s.want_scale = 1.0;
  s.within_noise = false;
  s.level_diff = kNaN;
  if (!std::isfinite(median) || !guarded(s)) return;
  const double d = s.level - median;
  const double t =
      std::hypot(config_.noise_guard_k * s.noise.sd(), config_.model_guard_k * s.model_sd);
  s.level_diff = d;
  s.within_noise = std::fabs(d) <= t;
  const double w = config_.noise_weight;
  s.within_share = (1.0 - w) * s.within_share + w * (s.within_noise ? 1.0 : 0.0);
  s.want_scale = guard_scale(d, t);
}

ClusterNodeStatus ClusterController::node_status(std::size_t i, double now_s) const {
  ClusterNodeStatus st;
  if (!ok() || i >= nodes_.size()) return st;
  const ClusterNodeConfig &cfg = config_.nodes[i];
  const NodeState &s = nodes_[i];
  st.name = cfg.name;
  st.group = cfg.group;
  st.floor_w = cfg.floor_w;
  st.max_w = cfg.max_w;
  st.idle_w = idle_w(i);
  st.fair_share_w = fair_share_w_[i];
  st.reported = s.reported;
  st.silent = silent(s, now_s);
  st.last_report_s = s.last_report_s;
  st.target_w = s.target_w;
  st.granted_w = s.granted_w;
  st.in_force_bound_w = in_force_bound_w(i, now_s);
  st.confirm_s = s.confirm_s;
  if (s.reported) {
    st.power_w = s.last.power_w;
    st.caps_w = s.last.caps_w;
    st.need_w = s.last.need_w;
    st.idle = s.last.idle;
    st.steerable = s.last.steerable;
    st.within_noise = s.within_noise;
    st.level_diff = s.level_diff;
    st.level_noise = std::isfinite(s.level_diff) ? s.noise.sd() : kNaN;
    st.hysteresis = s.last.steerable ? node_hysteresis(s, now_s) : 0.0;
    std::vector<const std::string *> keys;
    for (const JobSummary &j : s.last.jobs) keys.push_back(&j.job);
    std::sort(keys.begin(), keys.end(),
              [](const std::string *a, const std::string *b) { return *a < *b; });
    st.jobs = static_cast<std::size_t>(
        std::unique(keys.begin(), keys.end(),
                    [](const std::string *a, const std::string *b) { return *a == *b; }) -
        keys.begin());
    st.confirmed_seq = s.lease_ours ? s.last.lease_seq : 0;
  }
  return st;
}

double ClusterController::granted_w(std::size_t i) const {
  return ok() && i < nodes_.size() ? nodes_[i].granted_w : kNaN;
}

std::vector<ClusterNodeStatus> ClusterController::status(double now_s) const {
  std::vector<ClusterNodeStatus> all;
  all.reserve(nodes_.size());
  for (std::size_t i = 0; i < nodes_.size(); ++i) all.push_back(node_status(i, now_s));
  return all;
}

std::size_t ClusterController::curve_segments() const {
  if (config_.curve_segments > 0) return config_.curve_segments;
  const std::size_t n = config_.nodes.size();
  return n <= 2000 ? 32 : n <= 20000 ? 16 : 8;
}

std::vector<GrantMessage> ClusterController::release(double now_s) {
  std::vector<GrantMessage> out;
  if (!ok() || !std::isfinite(now_s) || !(wait_w_ > 0.0)) return out;
  const std::size_t n = nodes_.size();
  std::vector<std::size_t> &raise = raise_;
  raise.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const NodeState &s = nodes_[i];
    if (!std::isnan(s.granted_w) && s.target_w > s.granted_w) raise.push_back(i);
  }
  if (raise.empty()) {
    wait_w_ = 0.0;
    return out;
  }
  std::vector<double> &bound = bound_;
  bound.resize(n);
  for_chunks(n, step_threads(n), [&](std::size_t begin, std::size_t end, Scratch &) {
    for (std::size_t i = begin; i < end; ++i) {
      prefetch_state(i + 4);
      trim_sent(nodes_[i], now_s);
      bound[i] = in_force_bound_w(i, now_s);
    }
  });
  double slack = slack_under(bound);
  if (!(slack > raise_margin())) return out;
  order_raises(bound);
  released_.clear();
  for (std::size_t i : raise) {
    NodeState &s = nodes_[i];
    if (!(s.target_w > bound[i])) continue;  // not yet confirmed lower, or already there
    const double allowed = raise_room(i, s.target_w - bound[i], slack);
    // Tiny raises are not worth a message (unless they complete the target).
    if (!(allowed > 0.0) || (allowed < kMinReleaseW && allowed < s.target_w - bound[i])) continue;
    const double grant = bound[i] + allowed;
    if (!(grant > s.granted_w)) continue;
    take_slack(i, allowed, slack);
    released_.push_back({i, grant});
  }
  // The leases of the raises decided, numbered in that order (on threads when many).
  const std::size_t k = released_.size();
  out.resize(k);
  const std::uint64_t seq = seq_;
  seq_ += k;
  for_chunks(k, step_threads(k), [&](std::size_t begin, std::size_t end, Scratch &) {
    for (std::size_t j = begin; j < end; ++j)
      out[j] = send_grant(released_[j].first, released_[j].second, now_s, seq + j + 1);
  });
  wait_w_ = 0.0;
  for (std::size_t i : raise) wait_w_ = std::max(wait_w_, nodes_[i].target_w - nodes_[i].granted_w);
  return out;
}

double ClusterController::slack_under(const std::vector<double> &bound) {
  double slack = config_.budget_w;
  group_slack_.resize(config_.groups.size());
  for (std::size_t g = 0; g < config_.groups.size(); ++g) group_slack_[g] = config_.groups[g].max_w;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    slack -= bound[i];
    for (std::size_t g : node_groups(i)) group_slack_[g] -= bound[i];
  }
  return slack;
}

double ClusterController::raise_priority(std::size_t i, double bound_w) const {
  const NodeState &s = nodes_[i];
  // Nodes without a curve (plain at their need) gain nothing per watt: last; plain spare
  // watts (kPlainSpareGain) come after every steered node's.
  return s.leaf_curve_set
             ? tree_.curve(leaf_[i]).marginal_at(std::max(0.0, bound_w - s.leaf_curve_lo_w))
             : 0.0;
}

void ClusterController::order_raises(const std::vector<double> &bound) {
  by_priority_.clear();
  for (std::size_t k = 0; k < raise_.size(); ++k) {
    const std::size_t i = raise_[k];
    if (k + 8 < raise_.size()) __builtin_prefetch(&tree_.curve(leaf_[raise_[k + 8]]));
    by_priority_.push_back({raise_priority(i, bound[i]), i});
  }
  sort_raises();
}

void ClusterController::sort_raises() {
  // by_priority_ is in node order: sorted by priority, then by node, it is a stable sort.
  raise_.resize(by_priority_.size());
  if (by_priority_.size() >= kRadixMin && radix_sort_raises()) return;
  std::sort(by_priority_.begin(), by_priority_.end(), [](const Raise &a, const Raise &b) {
    return a.priority != b.priority ? a.priority > b.priority : a.node < b.node;
  });
  for (std::size_t k = 0; k < raise_.size(); ++k) raise_[k] = by_priority_[k].node;
}

// order_raises()' sort for many raises, in linear time: priorities as 64-bit keys that order
// as the priorities do, steepest first (-0.0 taken as 0), sorted stably by byte from the
// lowest: ties stay in node order, so raise_ ends up exactly as the comparison sort leaves
// it. False, leaving raise_ as it was, if a priority is NaN (no order to keep).
bool ClusterController::radix_sort_raises() {
  const std::size_t m = by_priority_.size();
  radix_.resize(m);
  radix_tmp_.resize(m);
  std::size_t count[8][256] = {};
  for (std::size_t k = 0; k < m; ++k) {
    const double p = by_priority_[k].priority + 0.0;
    if (std::isnan(p)) return false;
    std::uint64_t u;
    std::memcpy(&u, &p, sizeof u);
    u = (u >> 63) ? ~u : (u | (std::uint64_t{1} << 63));  // ascending with the value
    u = ~u;                                               // descending
    radix_[k] = {u, by_priority_[k].node};
    for (int d = 0; d < 8; ++d) ++count[d][(u >> (8 * d)) & 0xff];
  }
  RadixItem *from = radix_.data();
  RadixItem *to = radix_tmp_.data();
  for (int d = 0; d < 8; ++d) {
    std::size_t *c = count[d];
    if (c[(from[0].key >> (8 * d)) & 0xff] == m) continue;  // one value of this byte: in order
    std::size_t sum = 0;
    for (std::size_t v = 0; v < 256; ++v) {
      const std::size_t n = c[v];
      c[v] = sum;
      sum += n;
    }
    for (std::size_t k = 0; k < m; ++k) to[c[(from[k].key >> (8 * d)) & 0xff]++] = from[k];
    std::swap(from, to);
  }
  for (std::size_t k = 0; k < m; ++k) raise_[k] = from[k].node;
  return true;
}

bool ClusterController::raises_waiting() const { return wait_w_ > kMinReleaseW; }

double ClusterController::raise_margin() const {
  return 1e-9 * std::max(1.0, config_.budget_w);
}

double ClusterController::raise_room(std::size_t i, double want_w, double slack) const {
  const double margin = raise_margin();
  double allowed = std::min(want_w, slack - margin);
  for (std::size_t g : node_groups(i))
    if (std::isfinite(group_slack_[g])) allowed = std::min(allowed, group_slack_[g] - margin);
  return allowed;
}

void ClusterController::take_slack(std::size_t i, double w, double &slack) {
  slack -= w;
  for (std::size_t g : node_groups(i)) group_slack_[g] -= w;
}

bool ClusterController::slow_to_confirm(const NodeState &s) const {
  const double from = config_.slow_confirm_periods;
  return from == 0.0 || (from > 0.0 && s.confirm_s >= from * config_.period_s);
}

void ClusterController::spread_decreases() {
  // Per group, then the cluster (last): the grants' sum and the slow nodes' decreases (what
  // they may hold above their grants). No node is raised here (free_ is at most its bound,
  // and at most what it holds for sure where that counts), so only the sums matter.
  const std::size_t ng = config_.groups.size();
  std::vector<double> &sum = spread_sum_;
  sum.assign(2 * (ng + 1), 0.0);
  bool any = false;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const double dec =
        free_[i] > grant_[i] && slow_to_confirm(nodes_[i]) ? free_[i] - grant_[i] : 0.0;
    any = any || dec > 0.0;
    sum[2 * ng] += grant_[i];
    sum[2 * ng + 1] += dec;
    for (std::size_t g : node_groups(i)) {
      sum[2 * g] += grant_[i];
      sum[2 * g + 1] += dec;
    }
  }
  if (!any) return;
  // The largest share of the decreases that every limit leaves room for, less the raises'
  // margin (sums in another order stay within).
  const double margin = raise_margin();
  double share = 1.0;
  for (std::size_t g = 0; g <= ng; ++g) {
    const double limit = g < ng ? config_.groups[g].max_w : config_.budget_w;
    if (std::isfinite(limit) && sum[2 * g + 1] > 0.0)
      share = std::min(share, (limit - sum[2 * g] - margin) / sum[2 * g + 1]);
  }
  if (!(share > 0.0)) return;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (free_[i] > grant_[i] && slow_to_confirm(nodes_[i]))
      grant_[i] += share * (free_[i] - grant_[i]);
}

}  // namespace powergrad
