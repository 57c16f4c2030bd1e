#include "sim/spec.hpp"

#include <algorithm>
#include <cmath>

#include "libgradient/format.hpp"

namespace powergrad::sim {

double ArrivalSpec::calm_factor() const {
  if (kind != Kind::mmpp) return 1.0;
  const double burst_share = burst_mean_s / (burst_mean_s + calm_mean_s);
  return (1.0 - burst_share * burst_factor) / (1.0 - burst_share);
}

double ArrivalSpec::diurnal_factor(double t_s) const {
  if (diurnal_amplitude == 0.0) return 1.0;
  return 1.0 + diurnal_amplitude *
                   std::sin(6.283185307179586 * (t_s - diurnal_phase_s) / diurnal_period_s);
}

double BudgetSpec::at_w(double t_s) const {
  if (points_w.empty()) return 0.0;
  if (t_s <= points_w.front().first) return points_w.front().second;
  // Few points (a day of hourly supply at most): a linear search is fine; the simulator
  // caches the value per tick anyway.
  for (std::size_t i = 1; i < points_w.size(); ++i) {
    if (t_s < points_w[i].first) {
      const auto &a = points_w[i - 1];
      const auto &b = points_w[i];
      if (!linear) return a.second;
      return a.second + (b.second - a.second) * (t_s - a.first) / (b.first - a.first);
    }
  }
  return points_w.back().second;
}

double BudgetSpec::min_w() const {
  double m = kNoLimit;
  for (const auto &p : points_w) m = std::min(m, p.second);
  return m;
}

double ClusterSpec::sum_min_caps_w() const {
  double sum = 0.0;
  for (const SocketSpec &s : sockets) sum += s.min_cap_w;
  return sum;
}

double ClusterSpec::sum_max_caps_w() const {
  double sum = 0.0;
  for (const SocketSpec &s : sockets) sum += s.max_cap_w;
  return sum;
}

double ClusterSpec::top_freq_hz(std::size_t service) const {
  const ServiceSpec &svc = services[service];
  const double f_max = type_of(svc.socket).f_max_hz;
  const double licence = workloads[svc.workload].top_freq_hz;
  return licence > 0.0 ? std::min(licence, f_max) : f_max;
}

std::string ClusterSpec::check() const {
  if (!(duration_s > 0.0)) return "duration_s must be positive";
  if (!(tick_s > 0.0) || tick_s > duration_s) return "tick_s must be in (0, duration_s]";
  if (!(control_period_s >= tick_s)) return "control_period_s must be at least tick_s";
  if (const std::string why = check_baseline_settings(baselines); !why.empty()) return why;
  if (sockets.empty()) return "no sockets";
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    const SocketSpec &s = sockets[i];
    if (!(s.min_cap_w > 0.0 && s.min_cap_w <= s.max_cap_w))
      return "socket " + s.name + ": cap range [" + format_w(s.min_cap_w) + ", " +
             format_w(s.max_cap_w) + "] is empty";
    if (s.services.empty()) return "socket " + s.name + " runs no service";
  }
  for (const ServiceSpec &svc : services) {
    if (!(svc.load > 0.0) || svc.servers < 1) return "service " + svc.name + ": bad load/servers";
  }
  if (budget.points_w.empty()) return "no budget";
  if (budget.min_w() < sum_min_caps_w())
    return "the budget falls to " + format_w(budget.min_w()) +
           ", below the sum of the sockets' minimum caps " + format_w(sum_min_caps_w()) +
           ": no policy could stay under it";
  for (const GroupSpec &g : groups) {
    double floor = 0.0;
    for (std::size_t n : g.nodes)
      for (std::size_t s : nodes[n].sockets) floor += sockets[s].min_cap_w;
    if (g.limit_w < floor)
      return "group " + g.name + ": limit " + format_w(g.limit_w) +
             " is below its sockets' minimum caps " + format_w(floor);
  }
  return {};
}

}  // namespace powergrad::sim
