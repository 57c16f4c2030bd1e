// powergrad: libgradient's controllers, driven exactly as the plugins drive them.
//
// One NodeController per simulated node (the node agent in slurmd) and one ClusterController
// (slurmctld); only hardware, transport and time are simulated.
// - Every control period, at the same instant on every node (t = k x period), each node
//   controller gets NodeInputs built from what a real agent can read: per socket the average
//   power over the period from the noisy RAPL energy counter and the cap in force; per
//   service (one job per service, on its socket's domain) the counter deltas of its cores:
//   cycles, instructions, memory-stall and reference cycles with hardware counters,
//   task-clock only with `counters: software`. A service's job is in latency mode, or
//   mode off for a service with `power_aware: false`, as the node agent passes plain jobs:
//   measured and protected, never steered (a node with only such jobs reports no steerable
//   work, and the cluster controller holds it at its plain share; beside power-aware work
//   its latency counts in its socket's gain, GradientModelParams::plain_beside_weight,
//   `--set powergrad.plain_beside_weight=`). The busy fraction is left to the
//   controller (task-clock / (interval x CPUs)); an application progress rate (requests
//   served per second) is passed only for services with `progress_signal: true`, and the
//   service's parallel servers only with `agent_knows_servers: true` (otherwise the library's
//   default, 1). The agent's power model per socket is the node agent's generic one
//   (P0 = 0.29 x max cap, TDP = max cap, 3.4 GHz, alpha 1: a real agent knows the caps'
//   range, not the socket's P0, clock or its workloads' activity). The decision's caps are written
//   in decision.apply_order; decision.report goes to the transport.
// - The cluster controller is configured from the scenario: budget, groups with their
//   limits, each node's floor = the sum of its sockets' minimum caps and max = the sum of
//   their maximum caps, the plain share (`plain_share`); period = control_period_s, lease
//   5 periods, silent after 3. It takes every report that has arrived (on_report), follows
//   the budget (set_budget whenever it changes), and steps once per period, half a period
//   after the nodes (so each step uses the reports of the nodes' latest step, and its grants
//   reach the nodes before their next one); when the budget falls below what the controller
//   counts as possibly in force, it steps at once as well (reacts to a budget drop within
//   one period).
// - An agent comes up at its floor and, as the node agent at its first period, reports at
//   once with no measurement (NodeController::announce): the cluster controller then counts
//   the node by its floor, not its maximum, and grants it its share at its first step; a
//   grant before the node's first step is split evenly over its sockets.
// - As the node agent does, a node obeys a grant below its caps as soon as it arrives
//   (NodeController::enforce), uses a grant that rose above its last one at once too, and
//   sends the confirming report at once; whenever reports
//   arrive, the cluster controller hands the confirmed watts on (ClusterController::release)
//   instead of waiting for its next step.
// - Transport: grants and reports are delivered transport_delay_s after they are sent, but
//   never before the next tick (the scenario default 0 means one tick). Delivery is in order
//   and lossless here (the library's tests cover loss and reordering).
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "libgradient/cluster_controller.hpp"
#include "libgradient/node_controller.hpp"
#include "sim/cap_helpers.hpp"
#include "sim/policy_factories.hpp"

namespace powergrad::sim {

namespace {

// The power model the node agent assumes for every package (nodeagent/power_control.cpp):
// P0 = 0.29 x the domain's maximum cap, TDP = that maximum, a 3.4 GHz top clock, alpha 1.
constexpr double kAgentP0Share = 0.29;
constexpr double kAgentFmaxHz = 3.4e9;
constexpr double kAgentAlpha = 1.0;

struct NodeAgent {
  explicit NodeAgent(const std::string &name, const NodeControllerParams &p) : ctl(name, p) {}
  NodeController ctl;
  std::vector<std::size_t> sockets;   // global socket indices, in domain order
  std::vector<std::size_t> services;  // global service indices (the node's jobs)
  std::vector<std::size_t> domain_of; // per entry of services: its domain index
  std::vector<double> last_energy_j;  // per domain
  std::vector<CounterReading> last_counters;  // per entry of services
  double last_step_s = 0.0;
};

class PowergradPolicy final : public Policy {
 public:
  explicit PowergradPolicy(const ClusterSpec &spec)
      : spec_(spec),
        period_s_(spec.control_period_s),
        delay_s_(std::max(spec.transport_delay_s, spec.tick_s)),
        cluster_(powergrad_cluster_config(spec)) {
    if (!cluster_.ok()) throw std::runtime_error("powergrad: cluster controller: " + cluster_.error());
    agents_.reserve(spec.nodes.size());
    for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
      const NodeSpec &node = spec.nodes[n];
      NodeControllerParams p;
      p.incarnation = 1;
      p.seed = spec.seed * 1000003ULL + n + 1;
      p.model.low_cap_knee = spec.baselines.powergrad_low_cap_knee;
      p.model.low_cap_slowdown = spec.baselines.powergrad_low_cap_slowdown;
      p.model.load_spread_k = spec.baselines.powergrad_load_spread_k;
      p.model.top_clock_min_busy = spec.baselines.powergrad_top_clock_min_busy;
      p.model.backlog_horizon_s = spec.baselines.powergrad_backlog_horizon_s;
      p.model.busy_smoothing_weight = spec.baselines.powergrad_busy_smoothing_weight;
      p.model.load_change_sds = spec.baselines.powergrad_load_change_sds;
      p.model.load_change_fast_weight = spec.baselines.powergrad_load_change_fast_weight;
      p.model.plain_beside_weight = spec.baselines.powergrad_plain_beside_weight;
      for (std::size_t k : node.sockets) p.floor_w += spec.sockets[k].min_cap_w;
      NodeAgent a(node.name, p);
      a.sockets = node.sockets;
      for (std::size_t d = 0; d < node.sockets.size(); ++d)
        for (std::size_t svc : spec.sockets[node.sockets[d]].services) {
          // The node controller keys its jobs by name (as the agent keys them by job.step):
          // two services under one name would be one job, the second skipped unseen.
          for (std::size_t o : a.services)
            if (spec.services[o].name == spec.services[svc].name)
              throw std::logic_error("powergrad: two services on node " + node.name +
                                     " are named " + spec.services[svc].name);
          a.services.push_back(svc);
          a.domain_of.push_back(d);
        }
      a.last_energy_j.assign(node.sockets.size(), 0.0);
      a.last_counters.resize(a.services.size());
      agents_.push_back(std::move(a));
    }
    for (std::size_t n = 0; n < spec.nodes.size(); ++n) node_index_[spec.nodes[n].name] = n;
    // The cluster controller's phase: half a period after the nodes, on a tick.
    const double half = std::round(0.5 * period_s_ / spec.tick_s) * spec.tick_s;
    cluster_next_s_ = half;
  }

  void start(ClusterIo &io) override {
    const double now = io.now_s();
    for (NodeAgent &a : agents_) {
      // An agent comes up at its floor: every socket at its minimum cap.
      for (std::size_t k : a.sockets) io.set_cap_w(k, spec_.sockets[k].min_cap_w);
      for (std::size_t d = 0; d < a.sockets.size(); ++d) a.last_energy_j[d] = io.read_energy_j(a.sockets[d]);
      for (std::size_t j = 0; j < a.services.size(); ++j) a.last_counters[j] = io.read_counters(a.services[j]);
      a.last_step_s = now;
      // Its first report, before any sample (NodeController::announce), as the node agent
      // sends at its first period: the cluster controller bounds the node by its floor and
      // grants it its share without waiting for the first step.
      NodeInputs in;
      in.now_s = now;
      in.domains = domain_inputs(io, a, nullptr, 0.0);
      for (std::size_t j = 0; j < a.services.size(); ++j) {
        const ServiceSpec &s = spec_.services[a.services[j]];
        JobInput job;
        job.key = s.name;
        job.mode = s.power_aware ? JobMode::latency : JobMode::off;
        JobDomainInput jd;
        jd.domain = a.domain_of[j];
        job.domains.push_back(jd);
        in.jobs.push_back(std::move(job));
      }
      NodeDecision dec = a.ctl.announce(in);
      if (!dec.ok)
        throw std::runtime_error("powergrad: announce on " + a.ctl.node_name() + ": " + dec.error);
      reports_.push_back({now + delay_s_, std::move(dec.report)});
    }
    budget_w_ = io.budget_w();
    next_node_s_ = now + period_s_;
  }

  void tick(ClusterIo &io) override {
    const double now = io.now_s();
    deliver(io, now);
    if (now + 1e-9 >= next_node_s_) {
      for (NodeAgent &a : agents_) step_node(io, a, now);
      next_node_s_ += period_s_;
    }
    bool step_now = false;
    if (io.budget_w() != budget_w_) {
      const std::string err = cluster_.set_budget(io.budget_w(), now);
      if (!err.empty()) throw std::runtime_error("powergrad: set_budget: " + err);
      budget_w_ = io.budget_w();
      step_now = cluster_.total_in_force_bound_w(now) > budget_w_;
    }
    if (now + 1e-9 >= cluster_next_s_) {
      step_now = true;
      cluster_next_s_ += period_s_;
    }
    if (step_now) {
      for (GrantMessage &g : cluster_.step(now)) grants_.push_back({now + delay_s_, std::move(g)});
    }
  }

  std::string inputs() const override {
    return "node controllers (counters, energy) -> cluster controller, transport delay " +
           format_seconds(delay_s_);
  }

  std::string counters_used() const override {
    std::string used;
    auto add = [&](const char *what) { used += (used.empty() ? "" : " + ") + std::string(what); };
    if (kinds_[static_cast<int>(CounterKind::hardware)]) add("hardware");
    if (kinds_[static_cast<int>(CounterKind::software)]) add("software");
    if (kinds_[static_cast<int>(CounterKind::emulated)]) add("emulated");
    if (used.empty()) used = "none";
    if (progress_used_) used += " (progress rate)";
    return used;
  }

 private:
  template <typename T>
  struct InFlight {
    double at_s;
    T msg;
  };

  void deliver(ClusterIo &io, double now) {
    while (!grants_.empty() && grants_.front().at_s <= now + 1e-9) {
      const GrantMessage &g = grants_.front().msg;
      const auto it = node_index_.find(g.node);
      if (it != node_index_.end()) {
        NodeAgent &a = agents_[it->second];
        // A grant below the caps in force is obeyed at once and confirmed (the agent does
        // so on receipt), so the controller can hand the watts on within the period; a
        // grant that rose is used at once.
        if (a.ctl.on_grant(g, now).empty()) {
          if (std::optional<NodeDecision> dec = a.ctl.enforce(now)) {
            for (std::size_t d : dec->apply_order) io.set_cap_w(a.sockets[d], dec->caps_w[d]);
            reports_.push_back({now + delay_s_, std::move(dec->report)});
          }
        }
      }
      grants_.pop_front();
    }
    bool reported = false;
    while (!reports_.empty() && reports_.front().at_s <= now + 1e-9) {
      cluster_.on_report(reports_.front().msg, now);
      reports_.pop_front();
      reported = true;
    }
    if (reported)
      for (GrantMessage &g : cluster_.release(now)) grants_.push_back({now + delay_s_, std::move(g)});
  }

  void step_node(ClusterIo &io, NodeAgent &a, double now) {
    const double dt = now - a.last_step_s;
    if (!(dt > 0.0)) return;
    NodeInputs in;
    in.now_s = now;
    std::vector<double> energy_delta(a.sockets.size(), 0.0);
    in.domains = domain_inputs(io, a, &energy_delta, dt);
    in.jobs.resize(a.services.size());
    for (std::size_t j = 0; j < a.services.size(); ++j) {
      const std::size_t svc = a.services[j];
      const ServiceSpec &s = spec_.services[svc];
      const std::size_t d = a.domain_of[j];
      const CounterReading now_c = io.read_counters(svc);
      const CounterReading &last = a.last_counters[j];
      JobInput &job = in.jobs[j];
      job.key = s.name;
      job.mode = s.power_aware ? JobMode::latency : JobMode::off;
      JobDomainInput jd;
      jd.domain = d;
      jd.cpus = s.servers;
      jd.share = cores_share(svc);
      if (spec_.agent_knows_servers) jd.servers = s.servers;
      CounterSample &c = jd.counters;
      c.interval_s = dt;
      c.task_clock_s = now_c.task_clock_s - last.task_clock_s;
      c.energy_j = energy_delta[d];
      auto delta = [](const std::optional<double> &x, const std::optional<double> &y) -> std::optional<double> {
        if (x && y) return *x - *y;
        return std::nullopt;
      };
      c.cycles = delta(now_c.cycles, last.cycles);
      c.instructions = delta(now_c.instructions, last.instructions);
      c.stall_cycles = delta(now_c.stall_cycles, last.stall_cycles);
      c.ref_cycles = delta(now_c.ref_cycles, last.ref_cycles);
      if (now_c.progress && last.progress) {
        jd.progress_rate = (*now_c.progress - *last.progress) / dt;
        progress_used_ = true;
      }
      job.domains.push_back(std::move(jd));
      a.last_counters[j] = now_c;
    }
    a.last_step_s = now;

    NodeDecision dec = a.ctl.step(in);
    if (!dec.ok) {
      // The agent keeps the safest caps it knows: its floor (every socket at its minimum).
      ++failed_steps_;
      for (std::size_t k : a.sockets) io.set_cap_w(k, spec_.sockets[k].min_cap_w);
      return;
    }
    for (std::size_t d : dec.apply_order) io.set_cap_w(a.sockets[d], dec.caps_w[d]);
    for (const JobSummary &js : dec.report.jobs) kinds_[static_cast<int>(js.counters)] = true;
    reports_.push_back({now + delay_s_, std::move(dec.report)});
  }

  // The node's domains as its agent reads them: range, cap in force and, with energy_delta
  // (the energy counters read and advanced), the power over the dt seconds since the last
  // reading (NaN without).
  std::vector<DomainInput> domain_inputs(ClusterIo &io, NodeAgent &a,
                                         std::vector<double> *energy_delta, double dt) const {
    std::vector<DomainInput> out(a.sockets.size());
    for (std::size_t d = 0; d < a.sockets.size(); ++d) {
      const std::size_t k = a.sockets[d];
      const SocketSpec &sock = spec_.sockets[k];
      DomainInput &di = out[d];
      di.name = "package-" + std::to_string(d);
      di.min_cap_w = sock.min_cap_w;
      di.max_cap_w = sock.max_cap_w;
      di.cap_w = io.cap_w(k);
      di.power_w = std::numeric_limits<double>::quiet_NaN();
      if (energy_delta) {
        const double e = io.read_energy_j(k);
        (*energy_delta)[d] = e - a.last_energy_j[d];
        a.last_energy_j[d] = e;
        di.power_w = (*energy_delta)[d] / dt;
      }
      // The node agent's generic socket model (nodeagent/power_control.cpp): it does not
      // know P0, the top clock or its workloads' activity factor.
      di.model =
          PowerModel{kAgentP0Share * sock.max_cap_w, sock.max_cap_w, kAgentFmaxHz, kAgentAlpha};
    }
    return out;
  }

  // The service's share of its socket's cores (as the simulator's socket model counts them).
  double cores_share(std::size_t svc) const {
    const SocketSpec &sock = spec_.sockets[spec_.services[svc].socket];
    int cores = spec_.type_of(spec_.services[svc].socket).cores;
    if (cores <= 0)
      for (std::size_t o : sock.services) cores += spec_.services[o].servers;
    return std::clamp(static_cast<double>(spec_.services[svc].servers) / cores, 1e-6, 1.0);
  }

  const ClusterSpec &spec_;
  double period_s_;
  double delay_s_;
  ClusterController cluster_;
  std::vector<NodeAgent> agents_;
  std::map<std::string, std::size_t> node_index_;
  std::deque<InFlight<GrantMessage>> grants_;
  std::deque<InFlight<NodeReport>> reports_;
  double budget_w_ = 0.0;
  double next_node_s_ = 0.0;
  double cluster_next_s_ = 0.0;
  bool kinds_[4] = {false, false, false, false};
  bool progress_used_ = false;
  std::size_t failed_steps_ = 0;
};

}  // namespace

ClusterConfig powergrad_cluster_config(const ClusterSpec &spec) {
  ClusterConfig c;
  c.budget_w = spec.budget.at_w(0.0);
  for (const GroupSpec &g : spec.groups) {
    ClusterGroupConfig gc;
    gc.name = g.name;
    gc.max_w = g.limit_w;
    c.groups.push_back(gc);
  }
  for (const NodeSpec &n : spec.nodes) {
    ClusterNodeConfig nc;
    nc.name = n.name;
    for (std::size_t k : n.sockets) {
      nc.floor_w += spec.sockets[k].min_cap_w;
      nc.max_w += spec.sockets[k].max_cap_w;
    }
    nc.group = n.group;
    c.nodes.push_back(nc);
  }
  c.plain_share =
      spec.plain_share == ClusterSpec::PlainShare::even ? PlainShare::even : PlainShare::usage;
  c.period_s = spec.control_period_s;
  c.lease_s = 5.0 * spec.control_period_s;
  c.silent_after_s = 3.0 * spec.control_period_s;
  c.clock_skew_s = std::min(0.5, 0.5 * spec.control_period_s);
  c.hysteresis = spec.baselines.powergrad_hysteresis;
  c.noise_guard_k = spec.baselines.powergrad_noise_guard_k;
  c.noise_weight = spec.baselines.powergrad_noise_weight;
  return c;
}

std::unique_ptr<Policy> make_powergrad_policy(const ClusterSpec &spec) {
  return std::make_unique<PowergradPolicy>(spec);
}

}  // namespace powergrad::sim
