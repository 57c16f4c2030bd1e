// Control reaction to a budget drop (issue 5): one ClusterController and N NodeControllers in
// one process, driven as sim/policy_powergrad.cpp drives them (the simulator's powergrad
// policy), with synthetic plants instead of the simulator's queues:
// - time advances in ticks of 0.1 period; messages are delivered at the next tick, in order,
//   none lost;
// - on a grant: NodeController::on_grant, then enforce() (a drop obeyed, a rise used), whose
//   caps are applied at once and whose report is sent at once; reports that arrive go to
//   on_report(), then release() runs and its grants are sent;
// - every node steps every period (t = k x period), the controller half a period later; a
//   budget change is passed on with set_budget() at the tick it happens, and the controller
//   steps at once when total_in_force_bound_w() exceeds the new budget.
// Each node has 2 domains (min cap 90 W, max 205 W, P0 60 W), each running one steered
// throughput job whose counters follow the socket's clock at its cap: T(f) = 1/f + tm, memory
// share and activity factor drawn per domain; a domain draws min(cap, P0 + (TDP - P0) alpha).
// After the nodes settle under a budget that binds, the budget drops by 30%. Measured: the
// time from the drop until the sum of the caps every node has applied (written to its plant)
// is within the new budget and stays so (watched for 4 periods), in control periods (tick
// resolution, 0.1 period; the transport's one-tick delay is the least possible), worst of four
// drop instants within the period (at a node step, between steps, at a controller step, and
// after it). Prints `bench: budget_drop_reaction_periods <p>` for 1,000 nodes, then
// `bench: budget_drop_reaction_10k_periods <p>` for 10,000, with `#` lines saying how.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "libgradient/cluster_controller.hpp"
#include "libgradient/node_controller.hpp"

using namespace powergrad;

namespace {

constexpr double kPeriodS = 1.0;
constexpr int kTicksPerPeriod = 10;
constexpr double kTickS = kPeriodS / kTicksPerPeriod;
constexpr int kControllerPhase = kTicksPerPeriod / 2;  // half a period after the nodes
constexpr double kMinCapW = 90.0;
constexpr double kMaxCapW = 205.0;
constexpr double kP0W = 60.0;
constexpr double kFmaxHz = 3.4e9;
constexpr double kCpus = 8.0;
constexpr int kDomains = 2;
constexpr double kDropShare = 0.30;
constexpr int kWatchPeriods = 4;  // after the drop

struct Plant {
  double m = 0.3;      // memory share of the time per instruction at the top clock
  double alpha = 1.0;  // activity factor
  double cap_w = kMinCapW;

  double power_w() const { return std::min(cap_w, kP0W + (kMaxCapW - kP0W) * alpha); }
  PowerModel model() const { return PowerModel{kP0W, kMaxCapW, kFmaxHz, alpha}; }
};

struct Node {
  Node(const std::string &name, const NodeControllerParams &p) : ctl(name, p) {}
  NodeController ctl;
  Plant plant[kDomains];
};

template <typename T>
struct InFlight {
  long at_tick;
  T msg;
};

// Everything that evolves: copied to try several drop instants from one settled state.
struct World {
  explicit World(const ClusterConfig &config) : cluster(config) {}
  ClusterController cluster;
  std::vector<Node> nodes;
  std::unordered_map<std::string, std::size_t> index;
  std::deque<InFlight<GrantMessage>> grants;
  std::deque<InFlight<NodeReport>> reports;
  double budget_w = 0.0;  // what the controller was last told

  double applied_caps_w() const {
    double sum = 0.0;
    for (const Node &n : nodes)
      for (const Plant &p : n.plant) sum += p.cap_w;
    return sum;
  }
};

NodeInputs node_inputs(const Node &n, double now_s) {
  NodeInputs in;
  in.now_s = now_s;
  for (int d = 0; d < kDomains; ++d) {
    const Plant &p = n.plant[d];
    DomainInput di;
    di.name = "package-" + std::to_string(d);
    di.min_cap_w = kMinCapW;
    di.max_cap_w = kMaxCapW;
    di.cap_w = p.cap_w;
    di.power_w = p.power_w();
    di.model = p.model();
    in.domains.push_back(di);
    const double f = p.model().freq_at_hz(p.power_w());
    const double tm = p.m / (1.0 - p.m) / kFmaxHz;
    const double t = 1.0 / f + tm;
    JobInput job;
    job.key = "job" + std::to_string(d);
    job.mode = JobMode::throughput;
    JobDomainInput jd;
    jd.domain = static_cast<std::size_t>(d);
    jd.cpus = kCpus;
    jd.share = 1.0;
    CounterSample &c = jd.counters;
    c.interval_s = kPeriodS;
    c.task_clock_s = kCpus * kPeriodS;
    c.cycles = c.task_clock_s * f;
    c.instructions = c.task_clock_s / t;
    c.stall_cycles = *c.cycles * (tm / t);
    c.ref_cycles = c.task_clock_s * kFmaxHz;
    c.energy_j = p.power_w() * kPeriodS;
    job.domains.push_back(jd);
    in.jobs.push_back(job);
  }
  return in;
}

void apply(Node &n, const NodeDecision &dec) {
  for (std::size_t d : dec.apply_order) n.plant[d].cap_w = dec.caps_w[d];
}

void fail(const std::string &why) {
  std::fprintf(stderr, "bench_budget_drop: %s\n", why.c_str());
  std::exit(1);
}

// One tick, in the simulator's order: deliveries, node steps, the budget, the controller.
void tick(World &w, long k, double budget_w) {
  const double now = static_cast<double>(k) * kTickS;
  while (!w.grants.empty() && w.grants.front().at_tick <= k) {
    const GrantMessage &g = w.grants.front().msg;
    Node &n = w.nodes[w.index.at(g.node)];
    if (n.ctl.on_grant(g, now).empty()) {
      if (std::optional<NodeDecision> dec = n.ctl.enforce(now)) {
        apply(n, *dec);
        w.reports.push_back({k + 1, std::move(dec->report)});
      }
    }
    w.grants.pop_front();
  }
  bool reported = false;
  while (!w.reports.empty() && w.reports.front().at_tick <= k) {
    const std::string why = w.cluster.on_report(w.reports.front().msg, now);
    if (!why.empty()) fail(why);
    w.reports.pop_front();
    reported = true;
  }
  if (reported)
    for (GrantMessage &g : w.cluster.release(now)) w.grants.push_back({k + 1, std::move(g)});
  if (k > 0 && k % kTicksPerPeriod == 0) {
    for (Node &n : w.nodes) {
      NodeDecision dec = n.ctl.step(node_inputs(n, now));
      if (!dec.ok) fail("node step: " + dec.error);
      apply(n, dec);
      w.reports.push_back({k + 1, std::move(dec.report)});
    }
  }
  bool step_now = false;
  if (budget_w != w.budget_w) {
    const std::string why = w.cluster.set_budget(budget_w, now);
    if (!why.empty()) fail("set_budget: " + why);
    w.budget_w = budget_w;
    step_now = w.cluster.total_in_force_bound_w(now) > budget_w;
  }
  if (k % kTicksPerPeriod == kControllerPhase) step_now = true;
  if (step_now)
    for (GrantMessage &g : w.cluster.step(now)) w.grants.push_back({k + 1, std::move(g)});
}

struct Reaction {
  double applied_periods = std::numeric_limits<double>::infinity();  // caps applied <= budget
  double bound_periods = std::numeric_limits<double>::infinity();    // controller's count <= budget
  double applied_before_w = 0.0;
};

void run(const char *name, std::size_t n_nodes) {
  const auto wall_start = std::chrono::steady_clock::now();
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ClusterConfig config;
  const std::size_t groups = 8;
  for (std::size_t g = 0; g < groups; ++g) config.groups.push_back({"pdu" + std::to_string(g)});
  const double floor_w = kDomains * kMinCapW;
  const double max_w = kDomains * kMaxCapW;
  for (std::size_t i = 0; i < n_nodes; ++i)
    config.nodes.push_back({"n" + std::to_string(i), floor_w, max_w, i % groups});
  const double floors = floor_w * static_cast<double>(n_nodes);
  const double span = (max_w - floor_w) * static_cast<double>(n_nodes);
  // As the simulator configures it (sim/policy_powergrad.cpp make_cluster_config).
  config.budget_w = floors + 0.6 * span;
  config.period_s = kPeriodS;
  config.lease_s = 5.0 * kPeriodS;
  config.silent_after_s = 3.0 * kPeriodS;
  config.clock_skew_s = std::min(0.5, 0.5 * kPeriodS);

  World settled(config);
  if (!settled.cluster.ok()) fail(settled.cluster.error());
  settled.budget_w = config.budget_w;
  settled.nodes.reserve(n_nodes);
  for (std::size_t i = 0; i < n_nodes; ++i) {
    NodeControllerParams p;
    p.incarnation = 1;
    p.seed = 1000003ULL + i + 1;
    p.floor_w = floor_w;
    settled.nodes.emplace_back(config.nodes[i].name, p);
    for (Plant &pl : settled.nodes.back().plant) {
      pl.m = 0.05 + 0.65 * unit(rng);
      pl.alpha = 0.75 + 0.25 * unit(rng);
    }
    settled.index.emplace(config.nodes[i].name, i);
  }
  const int settle_periods = 30;
  const long drop_base = static_cast<long>(settle_periods) * kTicksPerPeriod;
  for (long k = 0; k < drop_base; ++k) tick(settled, k, config.budget_w);
  const double new_budget_w = (1.0 - kDropShare) * config.budget_w;

  // Drop instants, in ticks after a node step: at it, between, at the controller's step, after.
  const int phases[] = {0, 2, kControllerPhase, 8};
  std::vector<Reaction> reactions;
  for (int phase : phases) {
    World w = settled;
    long k = drop_base;
    for (; k < drop_base + phase; ++k) tick(w, k, config.budget_w);
    Reaction r;
    r.applied_before_w = w.applied_caps_w();
    // Until the caps are within the new budget and stay so to the end of the window.
    const long drop = k;
    const long limit = drop + static_cast<long>(kWatchPeriods) * kTicksPerPeriod;
    long applied_over = drop - 1, bound_over = drop - 1;  // last ticks above the budget
    for (; k < limit; ++k) {
      tick(w, k, new_budget_w);
      if (w.applied_caps_w() > new_budget_w) applied_over = k;
      if (w.cluster.total_in_force_bound_w(static_cast<double>(k) * kTickS) > new_budget_w)
        bound_over = k;
    }
    const auto periods = [&](long last_over) {
      return last_over + 1 >= limit ? std::numeric_limits<double>::infinity()
                                    : static_cast<double>(last_over + 1 - drop) / kTicksPerPeriod;
    };
    r.applied_periods = periods(applied_over);
    r.bound_periods = periods(bound_over);
    reactions.push_back(r);
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  double worst = 0.0;
  std::string per_phase;
  for (std::size_t j = 0; j < reactions.size(); ++j) {
    const Reaction &r = reactions[j];
    worst = std::max(worst, r.applied_periods);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s+%.1f: %.1f (confirmed %.1f, caps before %.0f W)",
                  j ? "; " : "", phases[j] * kTickS / kPeriodS, r.applied_periods,
                  r.bound_periods, r.applied_before_w);
    per_phase += buf;
  }
  std::printf(
      "# %s: %zu nodes x %d domains, budget %.0f W -> %.0f W (-%.0f%%) after %d settling "
      "periods; drop at node step %s (periods until the caps applied are <= the new budget "
      "and stay so for the %d periods watched; confirmed: the same for the controller's "
      "total_in_force_bound_w); %.1f s wall\n",
      name, n_nodes, kDomains, config.budget_w, new_budget_w, kDropShare * 100.0,
      settle_periods, per_phase.c_str(), kWatchPeriods, wall_s);
  std::printf("bench: %s %.1f periods\n", name, worst);
  std::fflush(stdout);
}

}  // namespace

int main() {
  std::printf(
      "# bench_budget_drop: control periods from a 30%% budget drop until the sum of the caps "
      "every node has applied is within the new budget (worst of 4 drop instants within the "
      "period); ClusterController + NodeControllers driven as sim/policy_powergrad.cpp does, "
      "ticks of 0.1 period, messages delivered at the next tick\n");
  std::fflush(stdout);
  run("budget_drop_reaction_periods", 1000);
  run("budget_drop_reaction_10k_periods", 10000);
  return 0;
}
