#include "sim/queueing.hpp"

#include <cmath>
#include <limits>

namespace powergrad::sim {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

double erlang_c(int servers, double offered_load) {
  if (servers < 1) return 1.0;
  const double c = servers;
  if (offered_load >= c) return 1.0;
  if (offered_load <= 0.0) return 0.0;
  // Erlang B by its stable recursion, then C from B.
  double b = 1.0;
  for (int k = 1; k <= servers; ++k) b = offered_load * b / (k + offered_load * b);
  const double rho = offered_load / c;
  return b / (1.0 - rho + rho * b);
}

double mmc_mean_sojourn_s(int servers, double arrival_rps, double service_rate_rps) {
  const double a = arrival_rps / service_rate_rps;
  if (a >= servers) return kInf;
  return erlang_c(servers, a) / (servers * service_rate_rps - arrival_rps) +
         1.0 / service_rate_rps;
}

double mmc_sojourn_tail(int servers, double arrival_rps, double service_rate_rps, double t_s) {
  const double mu = service_rate_rps;
  const double a = arrival_rps / mu;
  if (a >= servers) return 1.0;
  const double pw = erlang_c(servers, a);
  const double theta = servers * mu - arrival_rps;  // decay rate of the wait tail
  // Sojourn = wait (0 w.p. 1 - pw, else Exp(theta)) + service Exp(mu).
  if (std::fabs(theta - mu) < 1e-12 * mu)
    return std::exp(-mu * t_s) * (1.0 + pw * mu * t_s);
  return std::exp(-mu * t_s) + pw * mu / (theta - mu) * (std::exp(-mu * t_s) - std::exp(-theta * t_s));
}

double mmc_sojourn_quantile_s(int servers, double arrival_rps, double service_rate_rps,
                              double q) {
  if (arrival_rps / service_rate_rps >= servers) return kInf;
  double lo = 0.0, hi = 1.0 / service_rate_rps;
  while (mmc_sojourn_tail(servers, arrival_rps, service_rate_rps, hi) > 1.0 - q) hi *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mmc_sojourn_tail(servers, arrival_rps, service_rate_rps, mid) > 1.0 - q)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

double mgc_mean_sojourn_s(int servers, double arrival_rps, double mean_service_s,
                          double service_cv) {
  const double a = arrival_rps * mean_service_s;
  if (a >= servers) return kInf;
  const double mu = 1.0 / mean_service_s;
  const double wait_mmc = erlang_c(servers, a) / (servers * mu - arrival_rps);
  return wait_mmc * 0.5 * (1.0 + service_cv * service_cv) + mean_service_s;
}

}  // namespace powergrad::sim
