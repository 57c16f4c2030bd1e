// The clairvoyant policies: water-filling (libgradient TreeAllocator) on the true
// latency-vs-power curves under the nested limits (cluster -> group -> node -> socket).
//
// oracle: every control period, with the arrival rates of that moment (burst state and
// diurnal phase included); a socket's curve is rebuilt only when one of its rates moved by
// more than 0.5% since it was last built (the curves are the expensive part).
// static-oracle: one set of curves from the run's average rates (hindsight), so the
// allocation changes only when the budget does: the best allocation that ignores time.
// delayed-oracle: the oracle's targets, every control period, moved as a safe controller
// can move them over the scenario's transport delay d (at least a tick): a decrease is in
// force 2 d after the rates it answers (the report's trip and the grant's), a raise 4 d
// after (also the decrease's confirmation and the raise's grant), and only as far as the
// budget and the group's limit leave room among the caps in force then (the budget
// invariant: a raise is granted from confirmed decreases only). A newer decision supersedes what an
// older one still has in transit; a budget change is obeyed at once, as the controllers obey a
// drop. What it loses to `oracle` is what the moment's rates are worth to a controller that knows
// them but must move watts safely over that network.
//
// Plain services (power_aware: false) bind the oracles as they bind the controllers, so
// that the comparison is fair: the oracle knows everything but may not steer what the
// cluster may not steer. Fair share: the cluster controller's (every node at the same share
// of its range, within group limits, split evenly over its sockets; read from a controller
// configured as the powergrad policy's, so the two cannot drift apart; with
// mixed socket types, `uniform`'s one cap level gave a 250 W socket less of its range than a
// 150 W one, and let the oracles take watts from plain work that powergrad must leave it);
// a socket's draw: its power uncapped at the rates of the moment (the true model at the top
// clock), within its range.
// - A node with only plain services gets what its sockets draw, up to the sum of their fair
//   shares (the plain share the cluster controller gives a node without steered work),
//   split evenly over its sockets but none above its draw (as the node controller splits a
//   grant over domains without steered work); with `plain_share: even`, the sum of their
//   fair shares whatever they draw (the rest spread evenly above the draws).
// - A socket with only plain services on a node with steered work is held at its draw, up
//   to its own fair share (the base the node controller protects for it).
// - A socket with plain and power-aware services is steered, but never below its minimum
//   plus the plain services' share of its cores times (its draw up to its fair share - its
//   minimum).
// The objective stays every request's latency: plain services on a steered socket ride
// along.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "libgradient/allocator.hpp"
#include "libgradient/baselines.hpp"
#include "libgradient/cluster_controller.hpp"
#include "sim/cap_helpers.hpp"
#include "sim/oracle_model.hpp"
#include "sim/policy_factories.hpp"

namespace powergrad::sim {

namespace {

constexpr std::size_t kCurveSteps = 48;
constexpr double kRebuildShare = 0.005;

enum class OracleKind { current, hindsight, delayed };

class OraclePolicy final : public Policy {
 public:
  OraclePolicy(const ClusterSpec &spec, const Truth &truth, OracleKind kind)
      : spec_(spec),
        truth_(truth),
        hindsight_(kind == OracleKind::hindsight),
        delay_s_(kind == OracleKind::delayed ? std::max(spec.transport_delay_s, spec.tick_s) : 0.0),
        applied_seq_(spec.sockets.size(), 0),
        group_of_socket_(spec.sockets.size(), 0),
        model_(spec),
        rates_(spec.services.size(), 0.0),
        built_rates_(spec.services.size(), -1.0),
        leaf_of_socket_(spec.sockets.size(), kNoNode),
        caps_(spec.sockets.size(), 0.0),
        plain_share_(spec.sockets.size(), 0.0),
        all_plain_(spec.sockets.size(), false),
        fair_(powergrad_cluster_config(spec)) {
    if (!fair_.ok()) throw std::runtime_error("oracle: fair shares: " + fair_.error());
    for (std::size_t k = 0; k < spec.sockets.size(); ++k) {
      const SocketSpec &sock = spec.sockets[k];
      int cores = spec.type_of(k).cores, plain = 0, all = 0;
      for (std::size_t svc : sock.services) {
        all += spec.services[svc].servers;
        if (!spec.services[svc].power_aware) plain += spec.services[svc].servers;
      }
      if (cores <= 0) cores = all;
      all_plain_[k] = plain == all;  // held at its plain share
      plain_share_[k] = std::min(1.0, static_cast<double>(plain) / cores);
      any_plain_ = any_plain_ || plain > 0;
    }
    for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
      bool all = true;
      for (std::size_t k : spec.nodes[n].sockets) all = all && all_plain_[k];
      if (all) plain_nodes_.push_back(n);
    }
    std::vector<NodeId> node_ids(spec.nodes.size(), kNoNode);
    for (const GroupSpec &g : spec.groups) {
      const NodeId gid = tree_.add_group(AllocTree::kRoot, 0.0, g.limit_w, g.name);
      for (std::size_t n : g.nodes) {
        node_ids[n] = tree_.add_group(gid, 0.0, kNoLimit, spec.nodes[n].name);
        for (std::size_t k : spec.nodes[n].sockets) {
          group_of_socket_[k] = spec.nodes[n].group;
          leaf_of_socket_[k] = tree_.add_leaf(node_ids[n], spec.sockets[k].min_cap_w,
                                              spec.sockets[k].max_cap_w, GainCurve(),
                                              spec.sockets[k].name);
        }
      }
    }
  }

  void start(ClusterIo &io) override { reallocate(io, true); }

  void tick(ClusterIo &io) override {
    const bool period_over = io.now_s() + 1e-9 >= next_s_;
    const bool budget_changed = io.budget_w() != budget_w_;
    if (budget_changed) {
      reallocate(io, true);
    } else if (period_over && !hindsight_) {
      reallocate(io, false);
    }
    if (delay_s_ > 0.0) deliver(io);
  }

  std::string inputs() const override {
    std::string what = hindsight_ ? "true curves at average rates" : "true curves at current rates";
    if (delay_s_ > 0.0)
      what += ", moved over a " + format_seconds(delay_s_) + " transport (decreases first)";
    if (any_plain_) what += ", plain services held at what they draw up to a fair share";
    return what;
  }

 private:
  struct Move {
    double at_s;
    std::size_t socket;
    double cap_w;
    std::uint64_t seq;
  };

  // at_once: in force now (the start, a budget change, and every oracle but the delayed
  // one); otherwise in transit (schedule).
  void reallocate(ClusterIo &io, bool at_once) {
    budget_w_ = io.budget_w();
    next_s_ = io.now_s() + spec_.control_period_s;
    for (std::size_t i = 0; i < rates_.size(); ++i)
      rates_[i] = hindsight_ ? truth_.average_rate_rps(i) : truth_.rate_rps(i);
    if (any_plain_) hold_plain_sockets();
    for (std::size_t k = 0; k < spec_.sockets.size(); ++k) {
      if (all_plain_[k]) continue;  // held: its curve plays no part
      bool stale = false;
      for (std::size_t svc : spec_.sockets[k].services)
        if (std::fabs(rates_[svc] - built_rates_[svc]) > kRebuildShare * rates_[svc]) stale = true;
      if (!stale) continue;
      tree_.set_curve(leaf_of_socket_[k], model_.gain_curve(k, rates_, kCurveSteps));
      for (std::size_t svc : spec_.sockets[k].services) built_rates_[svc] = rates_[svc];
    }
    const AllocResult r = allocator_.allocate(tree_, budget_w_);
    if (!r.feasible) throw std::runtime_error("oracle: " + r.error);
    for (std::size_t k = 0; k < caps_.size(); ++k) caps_[k] = r.grants_w[leaf_of_socket_[k]];
    ++seq_;
    if (delay_s_ > 0.0 && !at_once) {
      schedule(io);
      return;
    }
    apply_caps(io, caps_);
    // What was in transit is superseded.
    in_transit_.clear();
    std::fill(applied_seq_.begin(), applied_seq_.end(), seq_);
  }

  // The delayed oracle's moves of this decision: a raise 4 d from now, anything else 2 d.
  void schedule(ClusterIo &io) {
    const double now = io.now_s();
    for (std::size_t k = 0; k < caps_.size(); ++k) {
      const bool raise = caps_[k] > io.cap_w(k);
      in_transit_.push_back({now + (raise ? 4.0 : 2.0) * delay_s_, k, caps_[k], seq_});
    }
  }

  // The moves due by now, decreases first; a raise only as far as the budget and its group's
  // limit leave room among the caps in force. A move older than one already in force on its
  // socket is dropped. in_transit_ is in decision order (appended so, kept so), and so is due.
  void deliver(ClusterIo &io) {
    const double now = io.now_s();
    std::vector<Move> due;
    std::size_t kept = 0;
    for (const Move &m : in_transit_) {
      if (m.at_s <= now + 1e-9) {
        due.push_back(m);
      } else {
        in_transit_[kept++] = m;
      }
    }
    in_transit_.resize(kept);
    if (due.empty()) return;
    // The caps in force, in all and per group, kept as the moves change them.
    double total_w = 0.0;
    std::vector<double> group_w(spec_.groups.size(), 0.0);
    for (std::size_t k = 0; k < caps_.size(); ++k) {
      total_w += io.cap_w(k);
      group_w[group_of_socket_[k]] += io.cap_w(k);
    }
    // A little short of the limits, so that sums in any order stay within them.
    const double margin = 1e-9 * std::max(1.0, io.budget_w());
    for (int pass = 0; pass < 2; ++pass) {
      for (const Move &m : due) {
        if (m.seq < applied_seq_[m.socket]) continue;
        const double cap = io.cap_w(m.socket);
        const bool raise = m.cap_w > cap;
        if (raise != (pass == 1)) continue;
        double to = m.cap_w;
        const std::size_t g = group_of_socket_[m.socket];
        if (raise) {
          double room = io.budget_w() - total_w;
          if (std::isfinite(spec_.groups[g].limit_w))
            room = std::min(room, spec_.groups[g].limit_w - group_w[g]);
          to = cap + std::max(0.0, std::min(m.cap_w - cap, room - margin));
        }
        applied_seq_[m.socket] = m.seq;
        if (to == cap) continue;
        io.set_cap_w(m.socket, to);
        total_w += io.cap_w(m.socket) - cap;
        group_w[g] += io.cap_w(m.socket) - cap;
      }
    }
  }

  // The leaves' ranges for the plain rules above, at this reallocation's budget and rates.
  void hold_plain_sockets() {
    // The cluster controller's own fair shares (the one configuration the powergrad policy
    // runs with), each node's split evenly over its sockets as the node controller splits it.
    if (const std::string why = fair_.set_budget(budget_w_, 0.0); !why.empty())
      throw std::runtime_error("oracle: fair shares: " + why);
    std::vector<double> fair_w(spec_.sockets.size(), 0.0);
    for (std::size_t n = 0; n < spec_.nodes.size(); ++n)
      split_node_cap(spec_, n, fair_.node_status(n, 0.0).fair_share_w, fair_w);
    std::vector<double> draw_w(spec_.sockets.size(), 0.0);
    for (std::size_t k = 0; k < spec_.sockets.size(); ++k) {
      if (plain_share_[k] <= 0.0) continue;
      const SocketSpec &sock = spec_.sockets[k];
      draw_w[k] = std::clamp(model_.uncapped_power_w(k, rates_), sock.min_cap_w, sock.max_cap_w);
      const double share_w = std::clamp(draw_w[k], sock.min_cap_w, std::max(sock.min_cap_w, fair_w[k]));
      if (all_plain_[k]) {
        tree_.set_limits(leaf_of_socket_[k], share_w, share_w);
      } else {
        const double base_w = sock.min_cap_w + plain_share_[k] * (share_w - sock.min_cap_w);
        tree_.set_limits(leaf_of_socket_[k], base_w, sock.max_cap_w);
      }
    }
    for (std::size_t n : plain_nodes_) {
      const std::vector<std::size_t> &sockets = spec_.nodes[n].sockets;
      double draw = 0.0, fair_sum = 0.0;
      std::vector<PowerRange> ranges;
      for (std::size_t k : sockets) {
        draw += draw_w[k];
        fair_sum += std::max(spec_.sockets[k].min_cap_w, fair_w[k]);
        ranges.push_back({spec_.sockets[k].min_cap_w, draw_w[k]});
      }
      AllocResult split = allocate_uniform(std::min(draw, fair_sum), ranges);
      if (!split.feasible) throw std::runtime_error("oracle: plain node: " + split.error);
      if (spec_.plain_share == ClusterSpec::PlainShare::even && fair_sum > draw) {
        // Its whole fair share, drawn or not: the rest spread evenly above the draws.
        for (std::size_t i = 0; i < sockets.size(); ++i)
          ranges[i] = {split.grants_w[i], spec_.sockets[sockets[i]].max_cap_w};
        split = allocate_uniform(fair_sum, ranges);
        if (!split.feasible) throw std::runtime_error("oracle: plain node: " + split.error);
      }
      for (std::size_t i = 0; i < sockets.size(); ++i)
        tree_.set_limits(leaf_of_socket_[sockets[i]], split.grants_w[i], split.grants_w[i]);
    }
  }

  const ClusterSpec &spec_;
  const Truth &truth_;
  bool hindsight_;
  double delay_s_;                          // the delayed oracle's transport delay; 0: none
  std::vector<std::uint64_t> applied_seq_;  // per socket, the decision of the move in force
  std::vector<Move> in_transit_;
  std::vector<std::size_t> group_of_socket_;
  std::uint64_t seq_ = 0;
  OracleModel model_;
  AllocTree tree_;
  TreeAllocator allocator_;
  std::vector<double> rates_, built_rates_;
  std::vector<NodeId> leaf_of_socket_;
  std::vector<double> caps_;
  std::vector<double> plain_share_;  // share of the socket's cores that serve plain services
  std::vector<bool> all_plain_;      // every service of the socket is plain
  std::vector<std::size_t> plain_nodes_;  // nodes whose every socket has only plain services
  ClusterController fair_;  // configured as powergrad's, for its fair shares only (never stepped)
  bool any_plain_ = false;
  double budget_w_ = -1.0;
  double next_s_ = 0.0;
};

}  // namespace

std::unique_ptr<Policy> make_oracle_policy(const ClusterSpec &spec, const Truth &truth,
                                           bool hindsight) {
  return std::make_unique<OraclePolicy>(spec, truth,
                                        hindsight ? OracleKind::hindsight : OracleKind::current);
}

std::unique_ptr<Policy> make_delayed_oracle_policy(const ClusterSpec &spec, const Truth &truth) {
  return std::make_unique<OraclePolicy>(spec, truth, OracleKind::delayed);
}

}  // namespace powergrad::sim
