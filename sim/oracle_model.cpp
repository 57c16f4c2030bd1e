#include "sim/oracle_model.hpp"

#include <algorithm>
#include <cmath>

#include "sim/queueing.hpp"

namespace powergrad::sim {

namespace {

constexpr std::size_t kGrid = 96;
constexpr double kStableRho = 0.98;
constexpr double kUnstablePenalty = 200.0;  // service times per unit of rho above kStableRho

}  // namespace

OracleModel::OracleModel(const ClusterSpec &spec) : spec_(spec) {
  models_.reserve(spec.sockets.size());
  for (std::size_t k = 0; k < spec.sockets.size(); ++k)
    models_.push_back(make_socket_model(spec, k));
}

OracleModel::Table OracleModel::tabulate(std::size_t socket,
                                         const std::vector<double> &rates_rps) const {
  const SocketModel &m = models_[socket];
  const SocketTypeSpec &type = m.type();
  const std::vector<std::size_t> &svcs = spec_.sockets[socket].services;
  Table t;
  t.ceiling_hz.resize(kGrid);
  t.power_w.resize(kGrid);
  for (std::size_t i = 0; i < kGrid; ++i) {
    const double ceiling =
        type.f_min_hz + (type.f_max_hz - type.f_min_hz) * static_cast<double>(i) / (kGrid - 1);
    double dynamic_w = 0.0;
    for (std::size_t j = 0; j < svcs.size(); ++j) {
      const CoreGroup &g = m.group(j);
      const ServiceSpec &s = spec_.services[svcs[j]];
      const double f = m.group_freq_hz(g, ceiling);
      const double service_s = spec_.workloads[s.workload].service_time_s / SocketModel::speed_at(g, f);
      const double util = std::min(1.0, rates_rps[svcs[j]] * service_s / s.servers);
      dynamic_w += m.a_w_per_hz3() * g.core_share * g.alpha * util * f * f * f;
    }
    t.ceiling_hz[i] = ceiling;
    // Utilisation falls as frequency rises, so P(F) could dip; RAPL picks the highest F
    // under the limit, so keep the running maximum (the inverse stays monotone).
    t.power_w[i] = std::max(m.p0_w() + dynamic_w, i > 0 ? t.power_w[i - 1] : 0.0);
  }
  return t;
}

double OracleModel::ceiling_for(const Table &t, double cap_w) const {
  if (cap_w >= t.power_w.back()) return t.ceiling_hz.back();
  if (cap_w <= t.power_w.front()) return t.ceiling_hz.front();
  const auto it = std::upper_bound(t.power_w.begin(), t.power_w.end(), cap_w);
  const std::size_t hi = static_cast<std::size_t>(it - t.power_w.begin());
  const std::size_t lo = hi - 1;
  const double span = t.power_w[hi] - t.power_w[lo];
  const double x = span > 0.0 ? (cap_w - t.power_w[lo]) / span : 0.0;
  return t.ceiling_hz[lo] + x * (t.ceiling_hz[hi] - t.ceiling_hz[lo]);
}

double OracleModel::cost_at(std::size_t socket, double ceiling_hz, double cap_w, double demand_w,
                            const std::vector<double> &rates_rps) const {
  const SocketModel &m = models_[socket];
  const std::vector<std::size_t> &svcs = spec_.sockets[socket].services;
  const double slow = m.low_cap_factor(cap_w, demand_w);
  double cost = 0.0;
  for (std::size_t j = 0; j < svcs.size(); ++j) {
    const ServiceSpec &s = spec_.services[svcs[j]];
    const WorkloadSpec &w = spec_.workloads[s.workload];
    const double lambda = rates_rps[svcs[j]];
    if (lambda <= 0.0) continue;
    const double f = m.group_freq_hz(m.group(j), ceiling_hz);
    const double service_s = w.service_time_s / (SocketModel::speed_at(m.group(j), f) * slow);
    const double rho = lambda * service_s / s.servers;
    double sojourn_s;
    if (rho <= kStableRho) {
      sojourn_s = mgc_mean_sojourn_s(s.servers, lambda, service_s, w.cv);
    } else {
      const double stable_lambda = kStableRho * s.servers / service_s;
      sojourn_s = mgc_mean_sojourn_s(s.servers, stable_lambda, service_s, w.cv) +
                  kUnstablePenalty * service_s * (rho - kStableRho);
    }
    cost += lambda * sojourn_s;
  }
  return cost;
}

double OracleModel::cost(std::size_t socket, double cap_w,
                         const std::vector<double> &rates_rps) const {
  const Table t = tabulate(socket, rates_rps);
  return cost_at(socket, ceiling_for(t, cap_w), cap_w, t.power_w.back(), rates_rps);
}

double OracleModel::uncapped_power_w(std::size_t socket, const std::vector<double> &rates_rps) const {
  return tabulate(socket, rates_rps).power_w.back();
}

GainCurve OracleModel::gain_curve(std::size_t socket, const std::vector<double> &rates_rps,
                                  std::size_t steps) const {
  const SocketSpec &s = spec_.sockets[socket];
  const Table t = tabulate(socket, rates_rps);
  const double width_w = s.max_cap_w - s.min_cap_w;
  if (steps == 0 || width_w <= 0.0) return GainCurve();
  const double step_w = width_w / static_cast<double>(steps);
  std::vector<double> marginal(steps);
  double previous =
      cost_at(socket, ceiling_for(t, s.min_cap_w), s.min_cap_w, t.power_w.back(), rates_rps);
  for (std::size_t i = 0; i < steps; ++i) {
    const double p = s.min_cap_w + step_w * static_cast<double>(i + 1);
    const double c = cost_at(socket, ceiling_for(t, p), p, t.power_w.back(), rates_rps);
    marginal[i] = (previous - c) / step_w;
    previous = c;
  }
  return GainCurve::from_marginal_samples(marginal, step_w);
}

}  // namespace powergrad::sim
