// The hierarchical (cluster) controller: splits the cluster budget over groups (racks, PDUs)
// and nodes by their reported demand curves, and moves power safely, as leases.
//
// The slurmctld plugin and the simulator drive it the same way: on_report() for every node
// report that arrives, set_budget() when the admin or the supply changes the budget, and
// step() once per period, sending the GrantMessages it returns. Pure C++: time is an input,
// no I/O, no threads, deterministic.
//
// Every configured node is managed: whatever runs there, its caps stay within what this
// controller counts for it. Its share of the budget follows from what it runs (the last
// report says: idle, plain work only, or steered work).
//
// Each step:
// 1. every node becomes a leaf of an AllocTree under its groups:
//    - no report yet: its floor;
//    - idle (no jobs): its idle cap (idle_w, at most its floor), or the sum of its domains'
//      minimum caps if that is higher (hardware cannot be capped lower);
//    - no steered work (plain jobs, i.e. not power-aware, and monitor jobs only): with
//      PlainShare::even its fair share (the budget split evenly over the nodes' ranges: every
//      node at the same share of its range above its floor, within group limits); with
//      PlainShare::usage what it needs (need_w: its draw plus headroom, all of it while it presses
//      against its caps), not below its floor nor above its fair share. Never steered by gradient,
//      never more;
//    - steered work (power-aware jobs): its need (so clamped) plus its demand curve up to its
//      maximum. Up to its fair share, the curve's watts are worth at least a tiny gain
//      (kSpareGain, below any real one): a power-aware node is held below its fair share only
//      when its watts went to power-aware work with a higher gradient, never to leave them
//      unused (opting in never costs a node its fair share for nothing);
//    - silent (no report for silent_after_s): as its last report, but never raised (with
//      reclaim_after_lease: its floor);
// 2. the tree is water-filled (TreeAllocator), each steered leaf's curve weighted for
//    hysteresis around what the node holds (favour_incumbent, config.hysteresis, growing
//    to it while the node's power-aware jobs are young: config.hysteresis_settle_s): the
//    targets;
// 3. power moves safely. For every node the controller keeps the cap that can be in force
//    (in_force_bound_w): the largest of what the node last confirmed (its lease's grant and
//    its caps) and every grant sent since, which it may have applied; its maximum until its
//    first report. A target at or below that bound is sent as is (decreases, always at
//    once: a budget drop is obeyed within one step). A target above it is a raise, granted
//    only from slack: as far as the sum of bounds stays within the budget and every group's
//    limit, steepest marginal gain first. So raises wait for decreases to be confirmed.
//    (Raises keep 1e-9 x budget of slack unused, so that sums in any order stay within.)
//    While the bounds sum above the budget or a group's limit, no node is granted more than
//    it holds for sure (held_w), even within its bound: a node under another controller's
//    lease counts its floor in its bound (that lease may end) but does not hold it, and one
//    not heard from yet holds at least its idle cap. A lease falls back to the lower of the
//    floor and its grant.
//    On nodes slow to confirm their decreases (ClusterConfig::slow_confirm_periods): while
//    within the budget and the limits, a decrease of a node with a curve (steered, or plain
//    above its need: kPlainSpareGain) waits for a second step's target (a dip the next step
//    undoes only costs the watts while they travel); while over them, decreases are cut to
//    what the budget and the limits need, as no raise can be granted until they are
//    confirmed.
// 4. every node gets a grant (renewing its lease: expiry now + lease_s), with a new seq.
// Between steps, release() grants the raises that waited for slack as soon as reports
// confirm the decreases that make room (nodes obey drops at once: NodeController::enforce),
// under the same rules.
//
// Safety invariant (tested with loss, delay, reordering and silent nodes): when each node's
// caps stay within its newest accepted lease (NodeController guarantees it), every node's
// caps in force are at most its in_force_bound_w; reports only ever lower bounds; no step
// raises any bound while the sum
// of bounds exceeds the budget or a group limit, nor past them, nor then raises a node above
// what it holds for sure (so that what is in force, within the budget under an earlier
// controller's leases, stays within it after a restart). So once the sum of bounds is
// within the budget (after the first reports, or after a budget drop has been confirmed), the
// caps in force never exceed the budget or any group limit.
//
// A node that does not answer keeps being counted at its bound (at least its last confirmed
// lease, and every grant sent since, even expired ones) until it reports again, unless
// reclaim_after_lease is set: then leases that have ended (plus clock_skew_s, plus one
// period for the agent to apply the end) no longer count, and a silent node is counted at
// its floor once all have. That is only safe where a node that stops answering is down or
// still runs its agent (a network partition), not where the agent hangs with caps above
// its floor: hence off by default.
// A node agent that restarts must not raise its caps above those in force until its first
// grant (the node agent holds them: its static grant is at most the caps in force), and
// refuse grants sent before it started (NodeController does, given started_at_s): the
// controller counts the node at least at what it last confirmed and every grant sent since,
// never at caps it does not know about.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "libgradient/allocator.hpp"
#include "libgradient/control_messages.hpp"
#include "libgradient/level_noise.hpp"
#include "libgradient/name_index.hpp"

namespace powergrad {

inline constexpr std::size_t kNoGroup = std::numeric_limits<std::size_t>::max();

// What nodes whose jobs are all plain (not power-aware) get.
enum class PlainShare {
  usage,  // what they draw (plus headroom) up to their fair share
  even,   // their fair share
};
const char *to_string(PlainShare share);

// The marginal gain given to a power-aware node's watts up to its fair share where its own
// curve is lower (or has ended): far below any real gain (1e-12 per watt), so those watts
// go to it only when no steeper work wants them.
inline constexpr double kSpareGain = 1e-12;
// The marginal gain of a plain node's watts between its need and its fair share
// (PlainShare::usage): below kSpareGain, so they go to it only when no power-aware node
// wants them, not even up to its own fair share.
inline constexpr double kPlainSpareGain = 1e-13;

struct ClusterGroupConfig {
  std::string name;
  // The group's own limit (a PDU's or rack's rating); +infinity: none.
  double max_w = std::numeric_limits<double>::infinity();
  std::size_t parent = kNoGroup;  // an earlier group's index, or kNoGroup (the cluster)
};

struct ClusterNodeConfig {
  std::string name;      // as the node reports it (Slurm's node name)
  double floor_w = 0.0;  // guaranteed: what the node falls back to without a lease
  double max_w = 0.0;    // the most it can draw (counted so until it reports)
  std::size_t group = kNoGroup;
  // The cap while it runs no job, in [0, floor_w]; NaN: floor_w.
  double idle_w = std::numeric_limits<double>::quiet_NaN();
};

struct ClusterConfig {
  double budget_w = 0.0;
  std::vector<ClusterGroupConfig> groups;  // parents before children
  std::vector<ClusterNodeConfig> nodes;
  double period_s = 1.0;        // control period of the controller and of the node agents
  double lease_s = 5.0;         // grants expire this long after they are sent (>= period_s)
  double silent_after_s = 3.0;  // no report for this long: silent (not raised)
  double clock_skew_s = 0.5;    // margin on lease expiries between controller and nodes
  // Hysteresis between nodes (see favour_incumbent in the .cpp): watts move from a node to
  // another only when the taker's marginal gain is (1 + h) / (1 - h) times the giver's. In
  // [0, 0.9); 0: none. Damps the flapping of noisy estimates at equal gains. 0.3 (a factor
  // of 1.86) with noise_weight 0.05: against 0.5 (a factor of 3) with 0.1, harm in 29, 45 and
  // 49 runs of the random clusters of generator seeds 71-79, 81-89 and 91-99 instead of 33,
  // 47 and 52 (428-432 runs each), the mean within 0.03 points, and the scenario table at
  // least as good (README). The slower guard holds alike nodes that noise had set apart
  // (rnd75-19, rnd72-3); the lower hysteresis lets a real difference move the watts again.
  // Within noise (noise_guard_k) the even split is what to hold on to, not what a node
  // happens to hold: the watts are favoured around a point moved from its holdings towards
  // its fair share by q^2 of the way, q the moving share of steps it was within noise
  // (weight noise_weight). A node that stays within noise is held to the even split (its
  // curve ties with the other such nodes' there); one whose real difference is noisy, in
  // and out of noise, keeps most of what its difference earned it. Around its holdings
  // alone, an uneven split made while levels differed, or were young, stayed for as long
  // as the nodes were alike: in the simulator's homogeneous-floor (busy 0.93 of the time at
  // the even share) nodes held 125 W or 130 W for minutes around a fair share of 128.8 W.
  double hysteresis = 0.3;
  // A node's hysteresis grows from 0 to `hysteresis` over the first hysteresis_settle_s
  // seconds of its power-aware jobs (counted again from 0 when the set of such jobs on it
  // changes, when it stops being steered and when its agent restarts; from the controller's
  // start, for the jobs running then). What a node holds
  // while its estimates settle (a load average of some 20 periods, a regression with a
  // minute's half-life) was decided on estimates that were still moving; holding on to it
  // only delays the watts' move to where the settled estimates send them (in the
  // simulator's large-mixed-sizes, nodes that looked steep in the first 25 s kept most of
  // their watts for the rest of the run: 75% of the oracle's gain, 81% with this, the other
  // scenarios unchanged within noise). 0: the whole hysteresis at once.
  double hysteresis_settle_s = 120.0;
  // Noise guard (no harm from chasing noise): each steered node's demand level, the log of
  // its marginal gain at its fair share, is tracked with its noise (its spread around its
  // own moving average, weight noise_weight: level_noise.hpp). In a step,
  // a node's level is compared with the median level of the steered nodes: the part of the
  // difference within noise_guard_k noise sds is taken out (its curve is scaled by that
  // much), the rest is kept (soft thresholding). Nodes whose differences are all within
  // their noise thus get curves of one level, and the water-filling splits evenly between
  // them; real differences still move watts, less the noise. 0: off.
  // One spread, not two: the hysteresis between nodes already keeps watts from following
  // differences of less than a factor (1 + h) / (1 - h), so a wider allowance pinned nodes
  // whose differences were real and persistent but noisy from period to period (services
  // of few, long requests: in the simulator's llm-serving-regions, seeds 1-3, powergrad got
  // 61% of the oracle's gain at 2 spreads and 67% at 1, while the homogeneous cluster still
  // split evenly, 0.2% mean and 1.0% p99 better than `uniform`).
  double noise_guard_k = 1.0;
  double noise_weight = 0.05;  // with hysteresis 0.3 (see there); 0.1 before
  // The guard's allowance also counts what the nodes' estimates do not know: from the
  // spread of a memory share at confidence 0, each report's jobs give the model's share of
  // the level's spread (level_noise.hpp model_level_sd). Weak estimates (software counters
  // without a progress signal) then move watts only on large differences. Half the
  // estimator's prior spread (GradientModelParams::default_memory_share_sd, 0.35): every
  // node starts from the same prior, so part of the error is common to all and does not
  // separate two nodes. In the simulator, vm-bursty lost 1.7% p99 to `uniform` without this
  // term; with the whole prior spread, a cluster of one software-counter service pinned
  // every node and lost 0.5% mean to `uniform`. 0: the guard counts the noise alone.
  double model_prior_sd = 0.175;
  // How many of the model's spreads the allowance counts (with noise_guard_k's measured
  // noise, in quadrature). The model's error does not average out from period to period
  // the way noise does, so it gets the wider allowance. In [0, 10].
  double model_guard_k = 2.0;
  // Most segments of a node's demand curve the allocator works with (reports with more are
  // coarsened, curve_ops.hpp coarsen): allocation time grows with the segments. 0: by the
  // number of nodes, 32 up to 2,000 nodes, 16 up to 20,000, 8 beyond.
  // Where the water level is likely to cut a curve (the node's fair share and its last
  // target) its segment is split in max(2, curve_segments / 4) parts whose slopes follow the
  // line through the segments' midpoints (curve_ops.hpp refine_near): the marginal gain is
  // read as continuous there, so that a small difference between two nodes' levels moves a
  // few watts, not a whole segment. With 32 segments over a 280 W package's 120-280 W range
  // a segment is 5 W: in the simulator's homogeneous-floor (9 W a node above the floors,
  // busy 0.93 of the time) nodes got 125 W or 130 W, for a fair share of 128.8 W. Only
  // with at least 16 segments (up to 20,000 nodes by default): at 8 the split segments
  // made the allocator's work half as large again, and a step over 100,000 nodes took
  // 64-103 ms instead of 41-62 ms (bench/bench_alloc.cpp, cluster_step_100k_ms, alternating).
  std::size_t curve_segments = 0;
  // Slow moves. A watt taken from a node is nobody's until the node's report confirms the
  // decrease (and then until the raise it makes room for reaches its taker). Where that is
  // quick, lowering a node all the way to its target costs nothing much; where it is slow, it
  // leaves watts unused for that long. A node is slow to confirm when its decreases take at
  // least slow_confirm_periods periods to be confirmed (from the lowered grant's sending to
  // the report of the lowered caps, a moving average: ClusterNodeStatus::confirm_s; a node
  // not lowered yet is not slow). 0: every node counts as slow; negative: none. On a slow
  // node:
  // - a dip waits (nodes with a curve: steered ones, and plain ones above their need): while
  //   the bounds sum within the budget and every group's limit, its grant is lowered only to
  //   the higher of its last two targets. A dip that the next step undoes only costs the
  //   watts while they travel; a lasting decrease goes through one period later. Budget drops
  //   and group limits are obeyed at once;
  // - a decrease is cut to what the budget needs: while the bounds sum above the budget or a
  //   group's limit (a budget drop not yet confirmed), no node is raised, so nodes whose
  //   targets rose keep what they hold; the slow nodes whose targets fell are lowered by only
  //   as much as the budget and the limits need, each by the same share of the way from what
  //   it may hold to its target. All the way, the grants would sum below the budget by every
  //   raise that waits until the decreases are confirmed, and under a budget that keeps
  //   falling (a ramp: each step another drop) they never are.
  // Why a third of a period: where a decrease takes that long to be confirmed, an undone
  // dip leaves its watts unused for the confirmation and then the raise's delivery, half a
  // period or more, while a held lasting decrease costs one period of what the move gains, a
  // fraction of what its watts are worth. A node agent on the cluster's network confirms
  // within milliseconds, and the simulator's one-tick transport (0.1 s ticks, 1 s periods)
  // within a fifth of a period.
  // In the simulator, with a 1 s transport delay (2 s to confirm), steered nodes' targets
  // moved some 50 W a second back and forth on a 6.4 kW budget (plain-bursty) and the caps
  // held 99.0% of the budget (shared-sockets: 99.4%); 99.7% with both. Applied to every
  // node, where a move is confirmed within 0.1 s, the held dips cost 0.4-1.2 points of the
  // oracle's gain (single-socket-accel, large-mixed-sizes, llm-serving-regions) and the cut
  // decreases 0.6 point in a falling budget (renewable-day, where the watts come back
  // within a tick). At a whole period, random clusters with 0.2-0.3 s delays (0.4-0.6 s to
  // confirm) held 99.0-99.4% of the budget; at a third, 99.6-99.8%. The cost: one of them
  // (overloaded queues under a diurnal load) 1.4 points of its 21% gain over the better
  // baseline (mean of eight seeds; from -6.9 to +0.9 points on one seed), and renewable-day
  // 0.6 point of the oracle's gain (its 0.2 s ticks make a decrease take 0.4 s to confirm).
  double slow_confirm_periods = 1.0 / 3.0;
  PlainShare plain_share = PlainShare::usage;
  std::uint64_t epoch = 1;      // must rise with every controller start
  bool reclaim_after_lease = false;
  // Threads step() and release() may use for their per-node loops (the bounds, the leaf
  // curves, the leases) and the allocation (TreeAllocator::set_threads): 0 takes the machine's
  // hardware threads, at most kAutoStepThreads (slurmctld's controller resolves 0 itself, by the
  // CPUs the process may run on); 1 keeps every loop on the calling thread. Each thread takes at
  // least step_thread_min_nodes nodes, so that a cluster of fewer than twice that many never starts
  // one. The result does not depend on the count: each node's work in these loops reads only its
  // own state and values fixed before the loop, and the loops' outputs are gathered in node order.
  // Should a thread not start (the process at its limit), its nodes are done on the calling thread.
  unsigned step_threads = 0;
  std::size_t step_thread_min_nodes = 4096;
};

// The most threads step_threads = 0 picks.
constexpr unsigned kAutoStepThreads = 4;
// The most threads step_threads may ask for.
constexpr unsigned kMaxStepThreads = 64;

struct ClusterNodeStatus {
  std::string name;
  std::size_t group = kNoGroup;
  double floor_w = 0.0;
  double max_w = 0.0;
  double idle_w = 0.0;        // the cap it is held at while idle
  double fair_share_w = 0.0;  // the same share of every node's range (within group limits)
  bool reported = false;
  bool silent = false;
  double last_report_s = -std::numeric_limits<double>::infinity();
  double target_w = 0.0;                                        // last step's allocation
  double granted_w = std::numeric_limits<double>::quiet_NaN();  // last grant sent; NaN: none
  double in_force_bound_w = 0.0;  // the cap that can be in force (see above)
  // How long its decreases take to be confirmed: from the lowered grant's sending to the
  // report of the lowered caps, a moving average (NaN: none yet). See slow_confirm_periods.
  double confirm_s = std::numeric_limits<double>::quiet_NaN();
  // From the last report (NaN / false / 0 before one).
  double power_w = std::numeric_limits<double>::quiet_NaN();
  double caps_w = std::numeric_limits<double>::quiet_NaN();
  double need_w = std::numeric_limits<double>::quiet_NaN();
  bool idle = true;
  bool steerable = false;
  std::size_t jobs = 0;             // distinct jobs in the last report
  std::uint64_t confirmed_seq = 0;  // seq of this controller's grant the node runs under; 0: none
  // The noise guard (ClusterConfig::noise_guard_k): whether the node's demand level is within
  // its noise of the steered nodes' median (its curve then counts at the median: the even
  // split), its level's difference from that median and the noise sd of that level (natural
  // log units; NaN while unknown, e.g. not steered).
  bool within_noise = false;
  double level_diff = std::numeric_limits<double>::quiet_NaN();
  double level_noise = std::numeric_limits<double>::quiet_NaN();
  // The hysteresis its holdings get now (ClusterConfig::hysteresis_settle_s): below
  // ClusterConfig::hysteresis while its power-aware jobs are young.
  double hysteresis = 0.0;
};

class ClusterController {
 public:
  // Checks the configuration (see check_config); a refused one leaves ok() false, error()
  // naming the problem, and the controller inert (step() returns no grants).
  explicit ClusterController(ClusterConfig config);

  // Empty if the configuration is usable, else the first problem, naming it: a bad number,
  // a duplicate or empty node name, a group index out of order, lease_s below period_s, the
  // nodes' floors summing above the budget or above a group's limit, an idle cap above its
  // node's floor.
  static std::string check_config(const ClusterConfig &config);

  bool ok() const { return error_.empty(); }
  const std::string &error() const { return error_; }

  // Takes a node's report. Returns empty if accepted, else why not: unknown node, not newer
  // than the last accepted (incarnation, report_seq) (see new_session), bad numbers or an
  // invalid curve.
  std::string on_report(const NodeReport &report, double now_s);
  // The same for a caller that has looked the node up already: index is node_index of
  // report.node (a different node's index is refused, not taken for it).
  std::string on_report(const NodeReport &report, double now_s, std::size_t index);

  // A node's agent opened a new session with this incarnation (its start time: a new agent,
  // or the same one reconnecting). Reports are ordered by (incarnation, report_seq), so an
  // agent that started with an older incarnation than the last accepted report's (its clock
  // stepped back across a restart) would have every report refused for its whole life while
  // the node ran on caps the controller never learns. The transport keeps one session per
  // node (the newer wins, the older's frames come before it), so the first report of the
  // new session's incarnation is taken whatever the order, and ordered from there. Returns
  // true when that incarnation is older than the last accepted one (worth a log line).
  // Unknown nodes are ignored.
  bool new_session(const std::string &node, std::uint64_t incarnation);

  // Changes the budget from the next step. Refused (empty string on success; the old budget
  // stays) when not finite, negative, or below the sum of the nodes' floors.
  std::string set_budget(double budget_w, double now_s);
  double budget_w() const { return config_.budget_w; }

  // One period: see the header comment. One grant per configured node, in configuration
  // order. No grants when !ok().
  std::vector<GrantMessage> step(double now_s);
  // The same, into `grants` (replaced): a caller that keeps the vector from period to
  // period reuses it and its grants' names instead of building and freeing a new array of
  // grants each time (about 9 MB at 100,000 nodes).
  void step(double now_s, std::vector<GrantMessage> &grants);

  // Between steps, when reports have confirmed decreases: the raises the last step could
  // not grant for lack of slack (target above the cap that can be in force), granted now as
  // far as the slack and the group limits allow, steepest marginal gain first, under the
  // same rules as step(). Grants only for the nodes raised (with a new seq and lease).
  // Call it after on_report(); cheap when nothing is pending.
  std::vector<GrantMessage> release(double now_s);
  // Whether the last step() or release() left a raise waiting for slack (a target more than
  // half a watt above the grant; the raise margin leaves less than that): O(1), so that a
  // service may test it after every batch of reports before it calls release().
  bool raises_waiting() const;

  // The segments per demand curve in use (curve_segments, or its default by node count).
  std::size_t curve_segments() const;
  // The threads step() uses (ClusterConfig::step_threads and step_thread_min_nodes); release()
  // uses as many for its bounds, and for its leases as their count calls for.
  std::size_t step_thread_count() const { return step_threads(nodes_.size()); }

  // Accounting, as of now_s (reports and steps so far).
  double in_force_bound_w(std::size_t node, double now_s) const;
  double total_in_force_bound_w(double now_s) const;  // summed in node order
  double group_in_force_bound_w(std::size_t group, double now_s) const;
  // Budget the last step left unallocated (every node at the top of its leaf range).
  double unallocated_w() const { return unallocated_w_; }
  // The last step's allocation problem, if any (the step then fell back to floors).
  const std::string &last_step_error() const { return step_error_; }

  std::size_t size() const { return config_.nodes.size(); }
  // The node's index, or kNoIndex.
  std::size_t node_index(const std::string &name) const;
  ClusterNodeStatus node_status(std::size_t node, double now_s) const;
  std::vector<ClusterNodeStatus> status(double now_s) const;
  // node_status(node, now_s).granted_w without the rest (NaN: none yet, or no such node).
  double granted_w(std::size_t node) const;
  const ClusterConfig &config() const { return config_; }

 private:
  // Renews node i's lease at grant_w (new seq, expiry now + lease_s): records it as sent.
  GrantMessage send_grant(std::size_t i, double grant_w, double now_s);
  // The same with the lease's sequence number given (step() numbers its grants in node
  // order; seq_ is moved past them by the caller).
  GrantMessage send_grant(std::size_t i, double grant_w, double now_s, std::uint64_t seq);
  // Raises from slack, shared by step() and release(): the slack under the budget given
  // the caps that can be in force (group_slack_ likewise for each group's limit); raise_
  // ordered steepest marginal gain first at each node's bound; the most node i may be
  // raised by (its want, within the budget's and its groups' slack, less raise_margin(),
  // room for sums rounded in another order); and taking that from the slacks.
  double slack_under(const std::vector<double> &bound);
  double held_w(std::size_t node, double bound_w, double now_s) const;
  void order_raises(const std::vector<double> &bound);
  // Node i's priority among the raises: its leaf's marginal gain at bound_w.
  double raise_priority(std::size_t i, double bound_w) const;
  // raise_ from by_priority_ (filled in node order): steepest first, ties in node order.
  void sort_raises();
  double raise_margin() const;
  double raise_room(std::size_t i, double want_w, double slack) const;
  void take_slack(std::size_t i, double w, double &slack);
  // ClusterConfig::slow_confirm_periods: the decreases of nodes slow to confirm (grant_
  // below free_) cut by the one share of the way that keeps every finite limit (the
  // budget, each group's) at or above the grants' sum.
  void spread_decreases();
  struct SentGrant {
    std::uint64_t seq;
    double grant_w;
    double sent_at_s;
    double expires_at_s;
  };
  // The grants sent to a node, oldest first: a queue kept contiguous, in the node's state
  // while it holds few (as it does between confirmations), else in a vector that keeps its
  // memory: no allocation per period.
  class SentGrants {
   public:
    SentGrants() = default;
    SentGrants(const SentGrants &o) { *this = o; }
    SentGrants &operator=(const SentGrants &o) {
      if (this == &o) return *this;
      head_ = end_ = 0;
      for (const SentGrant &g : o) push_back(g);
      return *this;
    }
    bool empty() const { return head_ == end_; }
    std::size_t size() const { return end_ - head_; }
    const SentGrant &front() const { return data()[head_]; }
    SentGrant &front() { return data()[head_]; }
    const SentGrant &back() const { return data()[end_ - 1]; }
    void pop_front() {
      if (++head_ == end_) head_ = end_ = 0;
    }
    void push_back(const SentGrant &g) {
      if (end_ == capacity()) {
        SentGrant *d = data();
        if (head_ > 0) {  // room at the front: move the queue down
          std::copy(d + head_, d + end_, d);
        } else {          // full: into (a larger) heap buffer
          std::vector<SentGrant> bigger(std::max<std::size_t>(2 * capacity(), kInline));
          std::copy(d + head_, d + end_, bigger.data());
          heap_.swap(bigger);
        }
        end_ -= head_;
        head_ = 0;
      }
      data()[end_++] = g;
    }
    const SentGrant *begin() const { return data() + head_; }
    const SentGrant *end() const { return data() + end_; }

   private:
    static constexpr std::size_t kInline = 4;
    std::size_t capacity() const { return heap_.empty() ? kInline : heap_.size(); }
    SentGrant *data() { return heap_.empty() ? inline_ : heap_.data(); }
    const SentGrant *data() const { return heap_.empty() ? inline_ : heap_.data(); }
    SentGrant inline_[kInline];
    std::vector<SentGrant> heap_;  // in use when not empty
    std::size_t head_ = 0, end_ = 0;
  };
  struct NodeState {
    bool reported = false;
    bool lease_ours = false;  // the last report's lease is one of this controller's grants
    double last_report_s = -std::numeric_limits<double>::infinity();
    NodeReport last;
    // new_session(): the next report of this incarnation is taken whatever the order.
    std::optional<std::uint64_t> session_incarnation;
    SentGrants sent;
    std::uint64_t last_seq_sent = 0;
    double granted_w = std::numeric_limits<double>::quiet_NaN();
    double target_w = 0.0;
    double confirm_s = std::numeric_limits<double>::quiet_NaN();  // see ClusterNodeStatus
    // The leaf's curve in tree_: whether it holds this node's demand, and for which floor.
    bool leaf_curve_set = false;
    bool leaf_curve_dirty = true;
    double leaf_curve_lo_w = 0.0;
    // The noise guard: the demand level (log marginal gain at the fair share) of the last
    // report and its noise variance; the scale the leaf's curve was built with, the one the
    // last step wanted, and the step's verdict (see ClusterConfig::noise_guard_k).
    double level = std::numeric_limits<double>::quiet_NaN();
    LevelNoise noise;
    double model_sd = 0.0;  // the model's share of the level's spread (model_prior_sd)
    double leaf_scale = 1.0;
    double want_scale = 1.0;
    // Within noise, the leaf's curve is pinned to the median level (its slope at the fair
    // share exactly guard_level_, so that pinned nodes tie there); the level the leaf was
    // built with (NaN: not pinned).
    double leaf_pin_level = std::numeric_limits<double>::quiet_NaN();
    bool within_noise = false;
    double level_diff = std::numeric_limits<double>::quiet_NaN();
    // The moving share of steps it was within noise (weight noise_weight; 0 again when its
    // power-aware jobs change): see hysteresis.
    double within_share = 0.0;
    // Since when its current power-aware jobs (jobs_sig: their keys, in any order) are
    // steered on it, by this controller's clock (NaN: not steered).
    double steered_since_s = std::numeric_limits<double>::quiet_NaN();
    std::uint64_t jobs_sig = 0;
  };

  // A node to raise and its priority (raise_priority()).
  struct Raise {
    double priority;
    std::size_t node;
  };
  // Per step thread: the curves a leaf's is built in, the guarded levels it found, and the
  // nodes to raise it found.
  struct Scratch {
    GainCurve coarse, shifted, refined, leaf, scaled, raised;
    std::vector<double> levels;
    std::vector<Raise> raises;
  };

  void prefetch_state(std::size_t i) const;
  void prefetch_curves(std::size_t i, std::size_t end) const;
  // Builds sc.leaf (see the definition).
  void shape_leaf_curve(Scratch &sc, const GainCurve &curve, double pin_at, double scale,
                        double spare_w, double hysteresis, double held_w);
  // Whether node s is slow to confirm its decreases (ClusterConfig::slow_confirm_periods).
  bool slow_to_confirm(const NodeState &s) const;
  // Node s's hysteresis at now_s (ClusterConfig::hysteresis_settle_s).
  double node_hysteresis(const NodeState &s, double now_s) const;
  double counts_until(double expires_at_s) const;
  bool silent(const NodeState &s, double now_s) const;
  bool may_hold(const NodeState &s, const SentGrant &g, double now_s) const;
  double with_sent_grants(const NodeState &s, double w, double now_s) const;
  void trim_sent(NodeState &s, double now_s) const;
  void compute_fair_shares();
  // The most node i can take by report r (its configured range, cut to what it reports),
  // and its fair share within node_max_w.
  double node_max_w(std::size_t i, const NodeReport &r) const;
  double node_share_w(std::size_t i, double node_max_w) const;
  // The demand level of report r for node i (see noise_guard_k); NaN when it has none.
  double demand_level(std::size_t i, const NodeReport &r) const;
  // The noise guard: whether node s's level counts; the median of the levels_ that do
  // (sets guard_level_); s's want_scale and verdict given that median.
  static bool guarded(const NodeState &s);
  double guard_median();
  void guard_node(NodeState &s, double median) const;
  std::vector<double> levels_;  // the step's guarded levels
  double guard_level_ = 0.0;    // exp(median level) of the last guard_median()

  ClusterConfig config_;
  std::string error_;
  std::vector<NodeState> nodes_;
  NameIndex by_name_;  // config_.nodes' names
  // Each node's groups, innermost first: node i's are
  // group_list_[group_begin_[i], group_begin_[i + 1]).
  std::vector<std::size_t> group_begin_;
  std::vector<std::size_t> group_list_;
  struct GroupRange {
    const std::size_t *b;
    const std::size_t *e;
    const std::size_t *begin() const { return b; }
    const std::size_t *end() const { return e; }
  };
  GroupRange node_groups(std::size_t i) const {
    return {group_list_.data() + group_begin_[i], group_list_.data() + group_begin_[i + 1]};
  }
  double idle_w(std::size_t i) const;
  std::vector<double> fair_share_w_;
  double floor_sum_w_ = 0.0;
  std::uint64_t seq_ = 0;
  double unallocated_w_ = 0.0;
  double wait_w_ = 0.0;  // the largest target - grant the last step() or release() left
  std::string step_error_;
  AllocTree tree_;            // cluster -> groups -> nodes, built once
  std::vector<NodeId> leaf_;  // each node's leaf in tree_
  TreeAllocator allocator_;
  // step()'s and release()'s working memory, kept between calls.
  std::vector<Scratch> scratch_;
  unsigned cpus_ = 1;  // hardware threads (step_threads 0)
  // How many threads step() uses for n nodes (ClusterConfig::step_threads).
  std::size_t step_threads(std::size_t n) const;
  // f(begin, end, scratch) over [0, n) in `threads` contiguous chunks, chunk t with
  // scratch_[t], on up to `threads` threads (parallel_tasks); returns when all are done.
  template <typename F>
  void for_chunks(std::size_t n, std::size_t threads, F &&f);
  // step()'s per-node work in its leaf loop (the tree's limits and curve of node i).
  void update_leaf(std::size_t i, double median, std::size_t max_segments, double now_s,
                   Scratch &sc);
  std::vector<double> bound_, target_, grant_, free_, group_slack_, spread_sum_;
  std::vector<std::size_t> raise_;
  std::vector<std::pair<std::size_t, double>> released_;  // release(): node, grant
  std::vector<Raise> by_priority_;  // order_raises()' working memory
  bool radix_sort_raises();
  struct RadixItem {
    std::uint64_t key;
    std::size_t node;
  };
  std::vector<RadixItem> radix_, radix_tmp_;  // radix_sort_raises()' working memory
};

}  // namespace powergrad
