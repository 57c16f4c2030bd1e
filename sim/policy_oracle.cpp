// The clairvoyant policies: water-filling (libgradient TreeAllocator) on the true
// latency-vs-power curves under the nested limits (cluster -> group -> node -> socket).
//
// oracle: every control period, with the arrival rates of that moment (burst state and
// diurnal phase included); a socket's curve is rebuilt only when one of its rates moved by
// more than 0.5% since it was last built (the curves are the expensive part).
// static-oracle: one set of curves from the run's average rates (hindsight), so the
// allocation changes only when the budget does: the best allocation that ignores time.
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

class OraclePolicy final : public Policy {
 public:
  OraclePolicy(const ClusterSpec &spec, const Truth &truth, bool hindsight)
      : spec_(spec),
        truth_(truth),
        hindsight_(hindsight),
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
        for (std::size_t k : spec.nodes[n].sockets)
          leaf_of_socket_[k] = tree_.add_leaf(node_ids[n], spec.sockets[k].min_cap_w,
                                              spec.sockets[k].max_cap_w, GainCurve(),
                                              spec.sockets[k].name);
      }
    }
  }

  void start(ClusterIo &io) override { reallocate(io); }

  void tick(ClusterIo &io) override {
    const bool period_over = io.now_s() + 1e-9 >= next_s_;
    const bool budget_changed = io.budget_w() != budget_w_;
    if ((period_over && !hindsight_) || budget_changed) reallocate(io);
  }

  std::string inputs() const override {
    std::string what = hindsight_ ? "true curves at average rates" : "true curves at current rates";
    if (any_plain_) what += ", plain services held at what they draw up to a fair share";
    return what;
  }

 private:
  void reallocate(ClusterIo &io) {
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
    apply_caps(io, caps_);
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
  return std::make_unique<OraclePolicy>(spec, truth, hindsight);
}

}  // namespace powergrad::sim
