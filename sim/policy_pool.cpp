// B2 pool-based (Penelope-style central pool), on libgradient's PoolBalancer.
//
// Per socket: the balancer (with spec.baselines.pool) runs its rules every interval_s (2 s by
// default), fed with each socket's average power over that interval (noisy RAPL energy);
// between runs it keeps the caps, and it reruns at once when the budget falls below the caps in
// force. The pool knows nothing of groups: where its caps exceed a group's limit they are lowered
// to fit (enforce_group_limits), as for the other baselines. No transport delay is modelled (the
// balancer's 2-s interval dominates; a delay would only make B2 slower).
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "libgradient/format.hpp"
#include "libgradient/pool_baseline.hpp"
#include "sim/cap_helpers.hpp"
#include "sim/policy_factories.hpp"

namespace powergrad::sim {

namespace {

class PoolPolicy final : public Policy {
 public:
  explicit PoolPolicy(const ClusterSpec &spec)
      : spec_(spec),
        balancer_params_(spec.baselines.pool),
        last_energy_j_(spec.sockets.size(), 0.0),
        readings_(spec.sockets.size()),
        caps_(spec.sockets.size(), 0.0) {
    for (std::size_t k = 0; k < spec.sockets.size(); ++k) {
      readings_[k].min_w = spec.sockets[k].min_cap_w;
      readings_[k].max_w = spec.sockets[k].max_cap_w;
      readings_[k].power_w = std::numeric_limits<double>::quiet_NaN();  // no reading yet
    }
  }

  void start(ClusterIo &io) override {
    for (std::size_t k = 0; k < spec_.sockets.size(); ++k) last_energy_j_[k] = io.read_energy_j(k);
    last_read_s_ = io.now_s();
    balance(io);
  }

  void tick(ClusterIo &io) override {
    const double now = io.now_s();
    if (now - last_read_s_ >= balancer_params_.interval_s - 1e-9) {
      const double dt = now - last_read_s_;
      for (std::size_t k = 0; k < spec_.sockets.size(); ++k) {
        const double e = io.read_energy_j(k);
        readings_[k].power_w = (e - last_energy_j_[k]) / dt;
        last_energy_j_[k] = e;
      }
      last_read_s_ = now;
    }
    balance(io);  // PoolBalancer decides whether its interval has passed
  }

  std::string inputs() const override {
    return "socket power readings (pool every " + format_number(balancer_params_.interval_s) +
           " s)";
  }

 private:
  void balance(ClusterIo &io) {
    const AllocResult r = balancer_.step(io.now_s(), io.budget_w(), readings_);
    if (!r.feasible) throw std::runtime_error("pool: " + r.error);
    caps_ = r.grants_w;
    enforce_group_limits(spec_, caps_);
    apply_caps(io, caps_);
  }

  const ClusterSpec &spec_;
  PoolParams balancer_params_;
  PoolBalancer balancer_{balancer_params_};
  std::vector<double> last_energy_j_;
  std::vector<PoolReading> readings_;
  std::vector<double> caps_;
  double last_read_s_ = 0.0;
};

}  // namespace

std::unique_ptr<Policy> make_pool_policy(const ClusterSpec &spec) {
  return std::make_unique<PoolPolicy>(spec);
}

}  // namespace powergrad::sim
