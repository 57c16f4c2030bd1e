#include "sim/simulation.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

#include "sim/policies.hpp"
#include "sim/policy.hpp"
#include "sim/rng.hpp"
#include "sim/service.hpp"
#include "sim/socket_model.hpp"

namespace powergrad::sim {

namespace {

// The MMPP state of one service.
struct BurstState {
  Rng rng;
  bool burst = false;
  double next_switch_s;
  BurstState(std::uint64_t seed, const ArrivalSpec &a) : rng(seed) {
    next_switch_s = a.kind == ArrivalSpec::Kind::mmpp ? rng.exponential() * a.calm_mean_s
                                                      : std::numeric_limits<double>::infinity();
  }
  void advance_to(double t_s, const ArrivalSpec &a) {
    while (next_switch_s <= t_s) {
      burst = !burst;
      next_switch_s += rng.exponential() * (burst ? a.burst_mean_s : a.calm_mean_s);
    }
  }
};

// Noisy readings over true cumulative values. Each reading's increment since the previous
// one gets relative noise with sd noise_per_s / sqrt(interval): sd scales as a 1-s reading's.
struct NoisyCumulative {
  double true_w = 0.0;  // true value at the last read
  double reported = 0.0;
  double last_s = -1.0;
  double read(double now_s, double true_now, double noise_1s, Rng &rng) {
    const double dt = now_s - last_s;
    if (last_s < 0.0 || dt <= 0.0) {
      if (last_s < 0.0) {
        reported = true_now;
        true_w = true_now;
        last_s = now_s;
      }
      return reported;
    }
    const double delta = true_now - true_w;
    const double factor = 1.0 + noise_1s / std::sqrt(dt) * rng.normal();
    reported += delta * std::max(0.0, factor);
    true_w = true_now;
    last_s = now_s;
    return reported;
  }
};

class Run final : public ClusterIo, public Truth {
 public:
  Run(const ClusterSpec &spec, std::atomic<double> *progress)
      : spec_(spec), progress_(progress), sensor_rng_(stream_seed(spec.seed, Stream::sensors, 0)) {
    const std::size_t n_services = spec.services.size();
    services_.reserve(n_services);
    bursts_.reserve(n_services);
    for (std::size_t i = 0; i < n_services; ++i) {
      const ServiceSpec &s = spec.services[i];
      const WorkloadSpec &w = spec.workloads[s.workload];
      ServiceParams p;
      p.servers = s.servers;
      p.mean_size_s = w.service_time_s;
      p.size_cv = w.cv;
      p.queue_limit = s.queue_limit;
      p.timeout_s = s.timeout_s;
      p.record_after_s = spec.warmup_s;
      services_.emplace_back(p, stream_seed(spec.seed, Stream::arrivals, i));
      bursts_.emplace_back(stream_seed(spec.seed, Stream::burst_state, i), s.arrivals);
    }
    rates_.assign(n_services, 0.0);
    burst_watch_.assign(n_services, BurstWatch{});
    average_rates_.assign(n_services, 0.0);
    group_of_service_.assign(n_services, 0);
    sockets_.reserve(spec.sockets.size());
    for (std::size_t k = 0; k < spec.sockets.size(); ++k) {
      sockets_.push_back(make_socket_model(spec, k));
      const std::vector<std::size_t> &svcs = spec.sockets[k].services;
      for (std::size_t j = 0; j < svcs.size(); ++j) group_of_service_[svcs[j]] = j;
    }
    energy_readers_.resize(spec.sockets.size());
    counter_readers_.resize(n_services);
    std::size_t most = 1;
    for (const SocketSpec &sock : spec.sockets) most = std::max(most, sock.services.size());
    busy_.resize(most);
    compute_average_rates();
  }

  RunResult run(const std::string &policy_name) {
    const auto wall_start = std::chrono::steady_clock::now();
    policy_ = make_policy(policy_name, spec_, *this);
    if (!policy_) throw std::runtime_error("unknown policy '" + policy_name + "'");
    result_.policy = policy_name;
    result_.counters = spec_.hardware_counters ? "hardware" : "software";

    const double dt = spec_.tick_s;
    const auto ticks = static_cast<std::uint64_t>(std::llround(spec_.duration_s / dt));
    const double plot_s = spec_.plot_interval_s > 0.0 ? spec_.plot_interval_s
                                                      : spec_.duration_s / 240.0;
    const auto ticks_per_window = std::max<std::uint64_t>(1, std::llround(plot_s / dt));
    const std::size_t grace_ticks =
        static_cast<std::size_t>(std::llround(spec_.budget.grace_s / dt)) + 1;
    std::vector<double> budget_history(grace_ticks, 0.0);

    LatencyHistogram window_latency;
    // [2 x workload + 1 if plain]
    std::vector<LatencyHistogram> workload_latency(2 * spec_.workloads.size());
    std::vector<double> node_caps(spec_.nodes.size(), 0.0), node_power(spec_.nodes.size(), 0.0);
    std::vector<double> tick_node_caps(spec_.nodes.size(), 0.0);
    result_.node_max_caps_w.assign(spec_.nodes.size(), 0.0);
    RunResult::CapStats unset;
    unset.min_w = std::numeric_limits<double>::infinity();
    result_.socket_caps.assign(spec_.sockets.size(), unset);
    std::uint64_t measured_ticks = 0;
    double measured_caps_w = 0.0, measured_budget_w = 0.0;
    double wanted_caps_w = 0.0, wanted_budget_w = 0.0;
    std::uint64_t wanted_ticks = 0;
    double win_budget = 0.0, win_caps = 0.0, win_power = 0.0;
    std::uint64_t win_ticks = 0;

    now_s_ = 0.0;
    budget_w_ = spec_.budget.at_w(0.0);
    update_rates(0.0);
    policy_->start(*this);
    result_.inputs = policy_->inputs();
    for (std::size_t k = 0; k < sockets_.size(); ++k)
      if (!(sockets_[k].cap_w() > 0.0))
        throw std::runtime_error("policy " + policy_name + " set no cap on socket " +
                                 spec_.sockets[k].name);

    for (std::uint64_t tick = 0; tick < ticks; ++tick) {
      const double t0 = static_cast<double>(tick) * dt;
      const double t1 = static_cast<double>(tick + 1) * dt;
      now_s_ = t0;
      budget_w_ = spec_.budget.at_w(t0);
      budget_history[tick % grace_ticks] = budget_w_;
      update_rates(t0);
      if (tick > 0) policy_->tick(*this);
      watch_bursts_sample(t0);
      check_invariants(budget_history, tick < grace_ticks ? tick + 1 : grace_ticks, dt);

      double caps_sum = 0.0, power_sum = 0.0;
      bool wanted = false;
      std::fill(tick_node_caps.begin(), tick_node_caps.end(), 0.0);
      const bool measured = t0 >= spec_.warmup_s;
      measured_ticks += measured ? 1 : 0;
      for (std::size_t k = 0; k < sockets_.size(); ++k) {
        SocketModel &sock = sockets_[k];
        sock.begin_tick(dt);
        const std::vector<std::size_t> &svcs = spec_.sockets[k].services;
        for (std::size_t j = 0; j < svcs.size(); ++j) {
          const std::size_t svc = svcs[j];
          const ServiceSpec &svc_spec = spec_.services[svc];
          LatencySink sink{&result_.latency, &window_latency,
                           &workload_latency[2 * svc_spec.workload + (svc_spec.power_aware ? 0 : 1)]};
          busy_[j] = services_[svc].advance(t0, t1, sock.group(j).speed, rates_[svc], sink);
        }
        sock.end_tick(dt, busy_.data());
        if (measured && !wanted && sock.cap_w() < sock.max_cap_w() &&
            sock.demand_w() > sock.cap_w() + RunResult::kWantMarginW)
          wanted = true;
        caps_sum += sock.cap_w();
        power_sum += sock.power_w();
        const std::size_t node = spec_.sockets[k].node;
        node_caps[node] += sock.cap_w();
        node_power[node] += sock.power_w();
        tick_node_caps[node] += sock.cap_w();
        if (measured) {
          RunResult::CapStats &c = result_.socket_caps[k];
          c.min_w = std::min(c.min_w, sock.cap_w());
          c.max_w = std::max(c.max_w, sock.cap_w());
          c.mean_w += sock.cap_w();
        }
      }
      for (std::size_t n = 0; n < tick_node_caps.size(); ++n)
        result_.node_max_caps_w[n] = std::max(result_.node_max_caps_w[n], tick_node_caps[n]);
      if (measured) {
        measured_caps_w += caps_sum;
        measured_budget_w += budget_w_;
      }
      if (wanted) {
        wanted_caps_w += caps_sum;
        wanted_budget_w += budget_w_;
        ++wanted_ticks;
      }
      win_budget += budget_w_;
      win_caps += caps_sum;
      win_power += power_sum;
      ++win_ticks;
      if (win_ticks == ticks_per_window || tick + 1 == ticks) {
        const double n = static_cast<double>(win_ticks);
        WindowPoint p;
        p.t_s = t1;
        p.budget_w = win_budget / n;
        p.caps_w = win_caps / n;
        p.power_w = win_power / n;
        p.mean_latency_s = window_latency.mean_s();
        p.p99_latency_s = window_latency.quantile_s(0.99);
        p.completed = window_latency.count();
        result_.windows.push_back(p);
        for (double &v : node_caps) v /= n;
        for (double &v : node_power) v /= n;
        result_.node_caps_w.push_back(node_caps);
        result_.node_power_w.push_back(node_power);
        std::fill(node_caps.begin(), node_caps.end(), 0.0);
        std::fill(node_power.begin(), node_power.end(), 0.0);
        window_latency.clear();
        win_budget = win_caps = win_power = 0.0;
        win_ticks = 0;
      }
      if (progress_ && (tick & 1023) == 0)
        progress_->store(static_cast<double>(tick) / static_cast<double>(ticks),
                         std::memory_order_relaxed);
    }

    for (std::size_t k = 0; k < RunResult::kBurstOffsetsS.size(); ++k)
      if (result_.burst_count[k] > 0)
        result_.burst_rise_w[k] =
            burst_rise_sum_w_[k] / static_cast<double>(result_.burst_count[k]);
    result_.budget_used = measured_budget_w > 0.0 ? measured_caps_w / measured_budget_w : 0.0;
    if (wanted_budget_w > 0.0) result_.budget_used_wanted = wanted_caps_w / wanted_budget_w;
    result_.wanted_share =
        measured_ticks > 0 ? static_cast<double>(wanted_ticks) / static_cast<double>(measured_ticks)
                           : 0.0;
    for (RunResult::CapStats &c : result_.socket_caps) {
      if (measured_ticks == 0) c = RunResult::CapStats{};
      else c.mean_w /= static_cast<double>(measured_ticks);
    }
    for (const Service &s : services_) {
      const ServiceCounts &c = s.counts();
      result_.arrivals += c.arrivals;
      result_.completed += c.completed;
      result_.rejected += c.rejected;
      result_.timed_out += c.timed_out;
      result_.in_flight += s.in_flight();
    }
    for (const SocketModel &s : sockets_) result_.energy_j += s.energy_j();
    const double measured_s = spec_.duration_s - spec_.warmup_s;
    result_.goodput_rps =
        measured_s > 0.0 ? static_cast<double>(result_.latency.count()) / measured_s : 0.0;
    LatencyHistogram class_latency[2];
    for (std::size_t i = 0; i < workload_latency.size(); ++i) {
      const LatencyHistogram &h = workload_latency[i];
      WorkloadResult r;
      r.name = spec_.workloads[i / 2].name;
      r.power_aware = i % 2 == 0;
      r.completed = h.count();
      r.mean_latency_s = h.mean_s();
      r.p99_latency_s = h.quantile_s(0.99);
      if (r.completed > 0) result_.workloads.push_back(r);
      class_latency[i % 2].merge(h);
    }
    for (WorkloadResult *c : {&result_.power_aware, &result_.plain}) {
      const LatencyHistogram &h = class_latency[c->power_aware ? 0 : 1];
      c->completed = h.count();
      c->mean_latency_s = h.mean_s();
      c->p99_latency_s = h.quantile_s(0.99);
    }
    if (const std::string used = policy_->counters_used(); !used.empty()) result_.counters = used;
    if (progress_) progress_->store(1.0, std::memory_order_relaxed);
    result_.wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    return std::move(result_);
  }

  // ClusterIo
  const ClusterSpec &spec() const override { return spec_; }
  double now_s() const override { return now_s_; }
  double budget_w() const override { return budget_w_; }
  double read_energy_j(std::size_t socket) override {
    const double noise = spec_.type_of(socket).power_noise;
    return energy_readers_[socket].read(now_s_, sockets_[socket].energy_j(), noise, sensor_rng_);
  }
  CounterReading read_counters(std::size_t service) override {
    const std::size_t socket = spec_.services[service].socket;
    const TrueCounters &t = sockets_[socket].counters(group_of_service_[service]);
    CounterReading r;
    r.time_s = now_s_;
    r.task_clock_s = t.task_clock_s;  // a software event: exact
    if (spec_.services[service].progress_signal)
      r.progress = static_cast<double>(services_[service].counts().completed);
    if (!spec_.hardware_counters) return r;
    const double noise = spec_.type_of(socket).counter_noise;
    CounterReaders &c = counter_readers_[service];
    r.cycles = c.cycles.read(now_s_, t.cycles, noise, sensor_rng_);
    r.instructions = c.instructions.read(now_s_, t.instructions, noise, sensor_rng_);
    r.stall_cycles = c.stall_cycles.read(now_s_, t.stall_cycles, noise, sensor_rng_);
    r.ref_cycles = c.ref_cycles.read(now_s_, t.ref_cycles, noise, sensor_rng_);
    return r;
  }
  double cap_w(std::size_t socket) const override { return sockets_[socket].cap_w(); }
  void set_cap_w(std::size_t socket, double cap_w) override {
    SocketModel &s = sockets_[socket];
    // Rounding in a policy's arithmetic must not count as a violation: 1 mW of slack.
    if (!(cap_w >= s.min_cap_w() - 1e-3 && cap_w <= s.max_cap_w() + 1e-3))
      ++result_.cap_bound_violations;
    s.set_cap_w(std::clamp(std::isfinite(cap_w) ? cap_w : s.min_cap_w(), s.min_cap_w(),
                           s.max_cap_w()));
  }
  void set_core_limit_hz(std::size_t service, double hz) override {
    sockets_[spec_.services[service].socket].set_core_limit_hz(group_of_service_[service], hz);
  }

  // Truth
  double rate_rps(std::size_t service) const override { return rates_[service]; }
  double average_rate_rps(std::size_t service) const override { return average_rates_[service]; }

 private:
  struct CounterReaders {
    NoisyCumulative cycles, instructions, stall_cycles, ref_cycles;
  };

  void update_rates(double t_s) {
    for (std::size_t i = 0; i < services_.size(); ++i) {
      const ServiceSpec &s = spec_.services[i];
      const ArrivalSpec &a = s.arrivals;
      double factor = a.diurnal_factor(t_s);
      if (a.kind == ArrivalSpec::Kind::mmpp) {
        const bool was = bursts_[i].burst;
        bursts_[i].advance_to(t_s, a);
        // A burst that began since the last tick (one that began and ended within a tick
        // leaves no trace in the rates either), after the warm-up: watched from its socket's
        // cap now, before the policy's tick (RunResult::burst_rise_w).
        if (bursts_[i].burst && !was && t_s >= spec_.warmup_s)
          burst_watch_[i] = BurstWatch{t_s, sockets_[s.socket].cap_w(), 0};
        factor *= bursts_[i].burst ? a.burst_factor : a.calm_factor();
      }
      rates_[i] = std::max(0.0, s.mean_rate_rps * factor);
    }
  }

  // Hindsight averages: the burst states average to 1 by construction; the diurnal factor is
  // averaged over the run numerically.
  void compute_average_rates() {
    for (std::size_t i = 0; i < services_.size(); ++i) {
      const ServiceSpec &s = spec_.services[i];
      const int steps = 1000;
      double sum = 0.0;
      for (int k = 0; k < steps; ++k)
        sum += std::max(0.0, s.arrivals.diurnal_factor((k + 0.5) * spec_.duration_s / steps));
      average_rates_[i] = s.mean_rate_rps * sum / steps;
    }
  }

  void check_invariants(const std::vector<double> &budget_history, std::size_t valid, double dt) {
    double caps = 0.0;
    for (const SocketModel &s : sockets_) caps += s.cap_w();
    double allowed = 0.0;
    for (std::size_t i = 0; i < valid; ++i) allowed = std::max(allowed, budget_history[i]);
    const double eps = 1e-6;
    bool violated = caps > allowed + eps;
    if (caps > budget_w_ + eps) {
      result_.over_budget_s += dt;
      result_.max_over_budget_w = std::max(result_.max_over_budget_w, caps - budget_w_);
    }
    for (const GroupSpec &g : spec_.groups) {
      if (!std::isfinite(g.limit_w)) continue;
      double sum = 0.0;
      for (std::size_t n : g.nodes)
        for (std::size_t k : spec_.nodes[n].sockets) sum += sockets_[k].cap_w();
      if (sum > g.limit_w + eps) violated = true;
    }
    if (violated) ++result_.budget_violations;
  }

  const ClusterSpec &spec_;
  std::atomic<double> *progress_;
  Rng sensor_rng_;
  std::vector<Service> services_;
  std::vector<BurstState> bursts_;
  // RunResult::burst_rise_w: per service, the burst being watched (its start, its socket's
  // cap then, the next offset to sample; update_rates starts it).
  struct BurstWatch {
    double start_s = -1.0;
    double cap0_w = 0.0;
    std::size_t next = RunResult::kBurstOffsetsS.size();
  };
  std::vector<BurstWatch> burst_watch_;
  std::array<double, RunResult::kBurstOffsetsS.size()> burst_rise_sum_w_{};

  // Bursts watched: sampled at their offsets after the policy's tick, while they last.
  void watch_bursts_sample(double t_s) {
    constexpr std::size_t kN = RunResult::kBurstOffsetsS.size();
    for (std::size_t i = 0; i < burst_watch_.size(); ++i) {
      BurstWatch &w = burst_watch_[i];
      if (w.next >= kN) continue;
      if (!bursts_[i].burst) {  // ended: the later offsets are not counted
        w.next = kN;
        continue;
      }
      const double cap = sockets_[spec_.services[i].socket].cap_w();
      // (A small tolerance: the offsets land on ticks despite the ticks' rounding.)
      while (w.next < kN && t_s + 1e-9 >= w.start_s + RunResult::kBurstOffsetsS[w.next]) {
        burst_rise_sum_w_[w.next] += cap - w.cap0_w;
        ++result_.burst_count[w.next];
        ++w.next;
      }
    }
  }
  std::vector<SocketModel> sockets_;
  std::vector<std::size_t> group_of_service_;
  std::vector<double> rates_, average_rates_;
  std::vector<NoisyCumulative> energy_readers_;
  std::vector<CounterReaders> counter_readers_;
  std::vector<double> busy_;
  std::unique_ptr<Policy> policy_;
  RunResult result_;
  double now_s_ = 0.0;
  double budget_w_ = 0.0;
};

}  // namespace

RunResult simulate(const ClusterSpec &spec, const std::string &policy,
                   std::atomic<double> *progress) {
  Run run(spec, progress);
  return run.run(policy);
}

}  // namespace powergrad::sim
