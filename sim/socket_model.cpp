#include "sim/socket_model.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace powergrad::sim {

SocketModel::SocketModel(const SocketTypeSpec &type, double min_cap_w, double max_cap_w,
                         std::vector<CoreGroup> groups)
    : type_(type),
      min_cap_w_(min_cap_w),
      max_cap_w_(max_cap_w),
      a_w_per_hz3_((type.tdp_w - type.p0_w) / (type.f_max_hz * type.f_max_hz * type.f_max_hz)),
      groups_(std::move(groups)),
      counters_(groups_.size()) {
  for (CoreGroup &g : groups_) {
    g.freq_hz = g.top_hz;
    g.speed = 1.0;
  }
}

void SocketModel::set_cap_w(double cap_w) {
  cap_w_ = cap_w;
  if (!started_) {
    limit_w_ = cap_w;
    started_ = true;
  }
}

void SocketModel::set_core_limit_hz(std::size_t group, double hz) {
  if (group < groups_.size()) groups_[group].core_limit_hz = hz > 0.0 ? hz : 0.0;
}

double SocketModel::stall_share(const CoreGroup &g, double f_hz) {
  const double m = g.memory_share;
  return m / ((1.0 - m) * g.top_hz / f_hz + m);
}

double SocketModel::speed_at(const CoreGroup &g, double f_hz) {
  const double m = g.memory_share;
  return 1.0 / ((1.0 - m) * g.top_hz / f_hz + m);
}

double SocketModel::low_cap_factor(double limit_w, double demand_w) const {
  const double below_w = std::min(type_.low_cap_below_w, demand_w) - limit_w;
  if (below_w <= 0.0) return 1.0;
  return std::max(0.1, 1.0 - type_.low_cap_slowdown * below_w / type_.tdp_w);
}

double SocketModel::group_freq_hz(const CoreGroup &g, double ceiling_hz) const {
  double f = std::min(ceiling_hz, g.top_hz);
  if (g.core_limit_hz > 0.0) f = std::min(f, g.core_limit_hz);
  return std::max(f, type_.f_min_hz);
}

double SocketModel::demand_w() const {
  double dynamic_w = 0.0;
  for (const CoreGroup &g : groups_) {
    const double f = group_freq_hz(g, type_.f_max_hz);
    dynamic_w += a_w_per_hz3_ * g.core_share * g.alpha * g.util_ema * f * f * f;
  }
  return type_.p0_w + dynamic_w;
}

// The highest ceiling F in [f_min, f_max] with sum_k w_k min(F, lim_k)^3 <= dynamic_w,
// where w_k = a * share * alpha * u. Groups whose own limit is below F draw a fixed amount;
// walking the limits upwards finds the segment F falls in (a handful of groups).
double SocketModel::solve_ceiling_hz(double dynamic_w) const {
  const double f_max = type_.f_max_hz;
  if (dynamic_w <= 0.0) return type_.f_min_hz;
  struct Item {
    double limit_hz;
    double weight;
  };
  Item items[16];
  std::size_t n = 0;
  double weight_sum = 0.0;
  for (const CoreGroup &g : groups_) {
    const double w = a_w_per_hz3_ * g.core_share * g.alpha * g.util_ema;
    if (w <= 0.0) continue;
    double lim = std::min(g.top_hz, f_max);
    if (g.core_limit_hz > 0.0) lim = std::min(lim, g.core_limit_hz);
    if (n < 16) items[n++] = Item{lim, w};
    weight_sum += w;
  }
  std::sort(items, items + n, [](const Item &x, const Item &y) { return x.limit_hz < y.limit_hz; });
  double fixed_w = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double f = std::cbrt((dynamic_w - fixed_w) / weight_sum);
    if (f <= items[i].limit_hz) return std::clamp(f, type_.f_min_hz, f_max);
    fixed_w += items[i].weight * items[i].limit_hz * items[i].limit_hz * items[i].limit_hz;
    weight_sum -= items[i].weight;
    if (fixed_w >= dynamic_w) return std::clamp(items[i].limit_hz, type_.f_min_hz, f_max);
  }
  return f_max;  // every group is at its own limit: the ceiling does not bind
}

void SocketModel::begin_tick(double dt_s) {
  // First-order lag towards the cap; exact for a step change over dt.
  const double keep = type_.settle_s > 0.0 ? std::exp(-dt_s / type_.settle_s) : 0.0;
  limit_w_ = cap_w_ + (limit_w_ - cap_w_) * keep;
  const double ceiling_hz = solve_ceiling_hz(limit_w_ - type_.p0_w);
  // The demand only matters below the knee (low_cap_factor is 1 above it).
  const double slow = limit_w_ < type_.low_cap_below_w ? low_cap_factor(limit_w_, demand_w()) : 1.0;
  for (CoreGroup &g : groups_) {
    g.freq_hz = group_freq_hz(g, ceiling_hz);
    g.speed = speed_at(g, g.freq_hz) * slow;
  }
}

void SocketModel::end_tick(double dt_s, const double *busy_server_s) {
  const double keep = type_.settle_s > 0.0 ? std::exp(-dt_s / std::max(type_.settle_s, 0.25))
                                           : std::exp(-dt_s / 0.25);
  double dynamic_w = 0.0;
  const double ref_hz = type_.f_max_hz;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    CoreGroup &g = groups_[k];
    const double busy_s = busy_server_s[k];
    const double util = busy_s / (g.servers * dt_s);
    const double f = g.freq_hz;
    dynamic_w += a_w_per_hz3_ * g.core_share * g.alpha * util * f * f * f;
    g.util_ema = util + (g.util_ema - util) * keep;
    TrueCounters &c = counters_[k];
    const double cycles = busy_s * f;
    const double stall = stall_share(g, f);
    c.cycles += cycles;
    c.stall_cycles += cycles * stall;
    c.instructions += cycles * (1.0 - stall) * g.ipc;
    c.ref_cycles += busy_s * ref_hz;
    c.task_clock_s += busy_s;
  }
  power_w_ = type_.p0_w + dynamic_w;
  energy_j_ += power_w_ * dt_s;
}

SocketModel make_socket_model(const ClusterSpec &spec, std::size_t socket) {
  const SocketSpec &sock = spec.sockets[socket];
  const SocketTypeSpec &type = spec.socket_types[sock.type];
  int cores = type.cores;
  if (cores <= 0)
    for (std::size_t svc : sock.services) cores += spec.services[svc].servers;
  std::vector<CoreGroup> groups;
  groups.reserve(sock.services.size());
  for (std::size_t svc : sock.services) {
    const ServiceSpec &s = spec.services[svc];
    const WorkloadSpec &w = spec.workloads[s.workload];
    CoreGroup g;
    g.servers = s.servers;
    g.core_share = static_cast<double>(s.servers) / cores;
    g.alpha = w.alpha;
    g.memory_share = w.memory_share;
    g.top_hz = spec.top_freq_hz(svc);
    g.core_limit_hz = s.core_max_hz;
    g.ipc = w.ipc;
    g.util_ema = std::min(1.0, s.load);
    groups.push_back(g);
  }
  return SocketModel(type, sock.min_cap_w, sock.max_cap_w, std::move(groups));
}

}  // namespace powergrad::sim
