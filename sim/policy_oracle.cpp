// The clairvoyant policies: water-filling (libgradient TreeAllocator) on the true
// latency-vs-power curves under the nested limits (cluster -> group -> node -> socket).
//
// oracle: every control period, with the arrival rates of that moment (burst state and
// diurnal phase included); a socket's curve is rebuilt only when one of its rates moved by
// more than 0.5% since it was last built (the curves are the expensive part).
// static-oracle: one set of curves from the run's average rates (hindsight), so the
// allocation changes only when the budget does: the best allocation that ignores time.
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "libgradient/allocator.hpp"
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
        caps_(spec.sockets.size(), 0.0) {
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
    return hindsight_ ? "true curves at average rates" : "true curves at current rates";
  }

 private:
  void reallocate(ClusterIo &io) {
    budget_w_ = io.budget_w();
    next_s_ = io.now_s() + spec_.control_period_s;
    for (std::size_t i = 0; i < rates_.size(); ++i)
      rates_[i] = hindsight_ ? truth_.average_rate_rps(i) : truth_.rate_rps(i);
    for (std::size_t k = 0; k < spec_.sockets.size(); ++k) {
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

  const ClusterSpec &spec_;
  const Truth &truth_;
  bool hindsight_;
  OracleModel model_;
  AllocTree tree_;
  TreeAllocator allocator_;
  std::vector<double> rates_, built_rates_;
  std::vector<NodeId> leaf_of_socket_;
  std::vector<double> caps_;
  double budget_w_ = -1.0;
  double next_s_ = 0.0;
};

}  // namespace

std::unique_ptr<Policy> make_oracle_policy(const ClusterSpec &spec, const Truth &truth,
                                           bool hindsight) {
  return std::make_unique<OraclePolicy>(spec, truth, hindsight);
}

}  // namespace powergrad::sim
