// The true latency-vs-power curves of the simulated sockets, for the clairvoyant policies.
//
// For a socket with cap p and its services' arrival rates, the model finds the package
// frequency ceiling RAPL would settle at (power depends on utilisation, which depends on
// speed: the model tabulates P and latency over a frequency grid and inverts P), then each
// service's mean sojourn by the M/G/c Allen-Cunneen formula. The socket's cost is
// sum_j lambda_j * W_j (requests in system, by Little's law), so minimising the sum over
// sockets minimises the request-weighted mean latency. Unstable services (rho near 1) get a
// steep linear penalty instead of infinity, so that watts that restore stability come first.
#pragma once

#include <cstddef>
#include <vector>

#include "libgradient/gain_curve.hpp"
#include "sim/socket_model.hpp"
#include "sim/spec.hpp"

namespace powergrad::sim {

class OracleModel {
 public:
  explicit OracleModel(const ClusterSpec &spec);

  // sum_j lambda_j W_j on socket k at enforced limit cap_w; rates_rps indexed by service.
  double cost(std::size_t socket, double cap_w, const std::vector<double> &rates_rps) const;
  // What socket k draws uncapped (at its top clock) at these rates.
  double uncapped_power_w(std::size_t socket, const std::vector<double> &rates_rps) const;
  // The cost reduction above the socket's min cap, sampled every (max - min) / steps watts,
  // as a concave gain curve (least concave majorant of the samples).
  GainCurve gain_curve(std::size_t socket, const std::vector<double> &rates_rps,
                       std::size_t steps) const;

 private:
  struct Table {
    std::vector<double> ceiling_hz, power_w;
  };
  Table tabulate(std::size_t socket, const std::vector<double> &rates_rps) const;
  double ceiling_for(const Table &t, double cap_w) const;
  // demand_w: the socket's power at these rates with no cap (the table's last row), which
  // bounds RAPL's low-cap slowdown (SocketModel::low_cap_factor).
  double cost_at(std::size_t socket, double ceiling_hz, double cap_w, double demand_w,
                 const std::vector<double> &rates_rps) const;

  const ClusterSpec &spec_;
  std::vector<SocketModel> models_;  // stateless use only: groups' static parameters
};

}  // namespace powergrad::sim
