// B0 uniform and B1 usage-based, on libgradient's implementations.
#include <memory>
#include <stdexcept>
#include <vector>

#include "libgradient/baselines.hpp"
#include "sim/cap_helpers.hpp"
#include "sim/policy_factories.hpp"

namespace powergrad::sim {

namespace {

// B0: the budget split evenly over sockets (libgradient allocate_uniform); recomputed when
// the budget changes.
class UniformPolicy final : public Policy {
 public:
  explicit UniformPolicy(const ClusterSpec &spec) : ranges_(socket_ranges(spec)) {}

  void start(ClusterIo &io) override { apply(io); }
  void tick(ClusterIo &io) override {
    if (io.budget_w() != budget_w_) apply(io);
  }
  std::string inputs() const override { return "budget only"; }

 private:
  void apply(ClusterIo &io) {
    budget_w_ = io.budget_w();
    const AllocResult r = allocate_uniform(budget_w_, ranges_);
    if (!r.feasible) throw std::runtime_error("uniform: " + r.error);
    std::vector<double> caps = r.grants_w;
    enforce_group_limits(io.spec(), caps);
    apply_caps(io, caps);
  }

  std::vector<PowerRange> ranges_;
  double budget_w_ = -1.0;
};

// B1: Slurm's former power plugin rules per node (libgradient UsageBalancer, with
// spec.baselines.usage: it rebalances every 30 s by default), fed every control period with
// each node's power over that period; a node's cap is split evenly over its sockets. Reacts
// in the same tick when the budget falls below the caps in force.
class UsagePolicy final : public Policy {
 public:
  explicit UsagePolicy(const ClusterSpec &spec)
      : spec_(spec),
        balancer_(spec.baselines.usage),
        last_energy_j_(spec.sockets.size(), 0.0),
        readings_(spec.nodes.size()),
        caps_(spec.sockets.size(), 0.0) {
    for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
      for (std::size_t k : spec.nodes[n].sockets) {
        readings_[n].min_w += spec.sockets[k].min_cap_w;
        readings_[n].max_w += spec.sockets[k].max_cap_w;
      }
      readings_[n].power_w = 0.0;  // no reading yet: "may grow to max"
    }
  }

  void start(ClusterIo &io) override {
    for (std::size_t k = 0; k < spec_.sockets.size(); ++k) last_energy_j_[k] = io.read_energy_j(k);
    last_read_s_ = io.now_s();
    balance(io);
  }

  void tick(ClusterIo &io) override {
    const double now = io.now_s();
    if (now - last_read_s_ >= spec_.control_period_s - 1e-9) {
      read_power(io, now);
      balance(io);
    } else if (sum_caps(io) > io.budget_w()) {
      balance(io);  // budget dropped: the balancer rebalances at once for safety
    }
  }
  std::string inputs() const override { return "node power readings"; }

 private:
  void read_power(ClusterIo &io, double now) {
    const double dt = now - last_read_s_;
    for (std::size_t n = 0; n < spec_.nodes.size(); ++n) {
      double joules = 0.0;
      for (std::size_t k : spec_.nodes[n].sockets) {
        const double e = io.read_energy_j(k);
        joules += e - last_energy_j_[k];
        last_energy_j_[k] = e;
      }
      readings_[n].power_w = joules / dt;
      readings_[n].seconds_since_job_start = now;  // services start at t = 0
    }
    last_read_s_ = now;
  }

  static double sum_caps(const ClusterIo &io) {
    double sum = 0.0;
    for (std::size_t k = 0; k < io.spec().sockets.size(); ++k) sum += io.cap_w(k);
    return sum;
  }

  void balance(ClusterIo &io) {
    const AllocResult r = balancer_.step(io.now_s(), io.budget_w(), readings_);
    if (!r.feasible) throw std::runtime_error("usage: " + r.error);
    for (std::size_t n = 0; n < spec_.nodes.size(); ++n) split_node_cap(spec_, n, r.grants_w[n], caps_);
    enforce_group_limits(spec_, caps_);
    apply_caps(io, caps_);
  }

  const ClusterSpec &spec_;
  UsageBalancer balancer_;
  std::vector<double> last_energy_j_;
  std::vector<UsageReading> readings_;
  std::vector<double> caps_;
  double last_read_s_ = 0.0;
};

}  // namespace

std::unique_ptr<Policy> make_uniform_policy(const ClusterSpec &spec) {
  return std::make_unique<UniformPolicy>(spec);
}

std::unique_ptr<Policy> make_usage_policy(const ClusterSpec &spec) {
  return std::make_unique<UsagePolicy>(spec);
}

}  // namespace powergrad::sim
