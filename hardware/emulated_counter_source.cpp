#include "hardware/emulated_counter_source.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <exception>

#include "hardware/sysfs_file.hpp"
#include "libgradient/format.hpp"

namespace powergrad::hw {

namespace {

bool in_range(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

}  // namespace

std::string EmulatedWorkload::check() const {
  if (!in_range(memory_share, 0.0, 0.999)) {
    return "memory_share must be in [0, 0.999], not " + format_number(memory_share);
  }
  if (!in_range(activity, 0.01, 1.0)) {
    return "activity must be in [0.01, 1], not " + format_number(activity);
  }
  if (!in_range(busy_cpus, 0.001, 65536.0)) {
    return "busy_cpus must be in (0, 65536], not " + format_number(busy_cpus);
  }
  if (!in_range(ipc, 0.001, 64.0)) return "ipc must be in (0, 64], not " + format_number(ipc);
  if (!in_range(stall_cycles_per_llc_miss, 1.0, 1e6)) {
    return "stall_cycles_per_llc_miss must be in [1, 1e6], not " +
           format_number(stall_cycles_per_llc_miss);
  }
  Status z = check_zone_name(zone);
  if (!z.ok()) return z.message();
  return "";
}

Result<EmulatedWorkload> parse_emulated_workload(std::string_view spec) try {
  EmulatedWorkload w;
  std::size_t pos = 0;
  while (pos < spec.size()) {
    const std::size_t end = spec.find_first_of(",; \t\n", pos);
    const std::string_view item =
        spec.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? spec.size() : end + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Error{"emulated workload: expected key=value, got '" + std::string(item) + "'",
                   EINVAL};
    }
    const std::string key(item.substr(0, eq));
    const std::string value(item.substr(eq + 1));
    if (key == "zone") {
      w.zone = value;
      continue;
    }
    double *field = key == "memory_share"                ? &w.memory_share
                    : key == "activity"                  ? &w.activity
                    : key == "busy_cpus"                 ? &w.busy_cpus
                    : key == "ipc"                       ? &w.ipc
                    : key == "stall_cycles_per_llc_miss" ? &w.stall_cycles_per_llc_miss
                                                         : nullptr;
    if (field == nullptr) {
      return Error{"emulated workload: unknown key '" + key +
                       "' (known: memory_share, activity, busy_cpus, ipc, "
                       "stall_cycles_per_llc_miss, zone)",
                   EINVAL};
    }
    if (!parse_double(value, field)) {
      return Error{"emulated workload: " + key + " must be a number, not '" + value + "'", EINVAL};
    }
  }
  const std::string why = w.check();
  if (!why.empty()) return Error{"emulated workload: " + why, EINVAL};
  return w;
} catch (const std::exception &e) {
  return Error{std::string("emulated workload: ") + e.what(), ENOMEM};
}

std::string format_emulated_workload(const EmulatedWorkload &w) {
  return "memory_share=" + format_number(w.memory_share) +
         ",activity=" + format_number(w.activity) + ",busy_cpus=" + format_number(w.busy_cpus) +
         ",ipc=" + format_number(w.ipc) +
         ",stall_cycles_per_llc_miss=" + format_number(w.stall_cycles_per_llc_miss) +
         ",zone=" + w.zone;
}

// ---------------------------------------------------------------- views

void FixedHardwareView::set_cap_w(const std::string &zone, std::optional<double> cap_w) {
  if (cap_w) {
    caps_w_[zone] = *cap_w;
  } else {
    caps_w_.erase(zone);
  }
}

void FixedHardwareView::set_core_limit_hz(int cpu, std::optional<double> hz) {
  if (hz) {
    limits_hz_[cpu] = *hz;
  } else {
    limits_hz_.erase(cpu);
  }
}

std::optional<double> FixedHardwareView::package_cap_w(const std::string &zone) {
  auto it = caps_w_.find(zone);
  if (it == caps_w_.end()) return std::nullopt;
  return it->second;
}

std::optional<double> FixedHardwareView::core_limit_hz(int cpu) {
  auto it = limits_hz_.find(cpu);
  if (it == limits_hz_.end()) return std::nullopt;
  return it->second;
}

SysfsHardwareView::SysfsHardwareView(std::string sysfs_root)
    : powercap_(sysfs_root), sockets_(sysfs_root), cpufreq_(sysfs_root) {}

void SysfsHardwareView::discover_if_needed() {
  // A fake tree may be created after the agent starts: retry a few times, then stop trying
  // (a node without cpufreq is normal).
  if ((powercap_ok_ && cpufreq_ok_ && sockets_ok_) || attempts_ >= 10) return;
  ++attempts_;
  if (!powercap_ok_) powercap_ok_ = powercap_.discover().ok();
  if (!sockets_ok_) sockets_ok_ = sockets_.discover().ok();
  if (!cpufreq_ok_) cpufreq_ok_ = cpufreq_.discover().ok();
}

std::optional<double> SysfsHardwareView::package_cap_w(const std::string &zone) {
  discover_if_needed();
  if (sockets_ok_) {
    Result<SocketDomain *> d = sockets_.find(zone);
    if (d.ok() && (d.value()->backend() == CapBackend::hsmp_hwmon ||
                   d.value()->backend() == CapBackend::hsmp_ioctl)) {
      // HSMP (AMD): the socket's limit is always in force.
      Result<PowerDomain> pd = d.value()->power_domain();
      if (!pd.ok()) return std::nullopt;
      return pd.value().cap_w;
    }
  }
  if (!powercap_ok_) return std::nullopt;
  Result<PowercapZone *> z = powercap_.find(zone);
  if (!z.ok()) return std::nullopt;
  Result<bool> on = z.value()->enabled();
  if (on.ok() && !on.value()) return std::nullopt;
  const PowercapConstraint *lt = z.value()->constraint(ConstraintKind::long_term);
  if (lt == nullptr) return std::nullopt;
  Result<std::uint64_t> limit = lt->power_limit_uw();
  if (!limit.ok()) return std::nullopt;
  return static_cast<double>(limit.value()) / 1e6;
}

std::optional<double> SysfsHardwareView::core_limit_hz(int cpu) {
  discover_if_needed();
  if (!cpufreq_ok_) return std::nullopt;
  Result<std::uint64_t> khz = cpufreq_.max_freq_khz(cpu);
  if (!khz.ok()) return std::nullopt;
  return static_cast<double>(khz.value()) * 1e3;
}

// ---------------------------------------------------------------- source

std::string EmulatedSourceConfig::check() const {
  const std::string model = socket.check();
  if (!model.empty()) return "socket model: " + model;
  if (cores_per_zone < 1) return "cores_per_zone must be at least 1";
  if (!in_range(min_hz, 1e6, socket.f_max_hz)) {
    return "min_hz must be in [1 MHz, f_max_hz], not " + format_number(min_hz);
  }
  if (!(ref_hz == 0.0 || in_range(ref_hz, 1e6, 1e11))) return "ref_hz must be 0 or positive";
  if (!in_range(noise_fraction, 0.0, 0.5)) return "noise_fraction must be in [0, 0.5]";
  if (!in_range(context_switches_per_cpu_s, 0.0, 1e7)) {
    return "context_switches_per_cpu_s must be >= 0";
  }
  return "";
}

EmulatedCounterSource::EmulatedCounterSource(EmulatedSourceConfig config,
                                             std::shared_ptr<EmulatedHardwareView> view)
    : config_(std::move(config)), view_(std::move(view)), rng_(config_.seed) {}

Result<std::unique_ptr<EmulatedCounterSource>> EmulatedCounterSource::create(
    EmulatedSourceConfig config, std::shared_ptr<EmulatedHardwareView> view) try {
  const std::string why = config.check();
  if (!why.empty()) return Error{"emulated counter source: " + why, EINVAL};
  if (!view) return Error{"emulated counter source: no hardware view", EINVAL};
  return std::unique_ptr<EmulatedCounterSource>(
      new EmulatedCounterSource(std::move(config), std::move(view)));
} catch (const std::exception &e) {
  return Error{std::string("emulated counter source: ") + e.what(), ENOMEM};
}

std::string EmulatedCounterSource::describe() const {
  return "counters=emulated (values from a workload model and the caps in force, not "
         "measured; selected by configuration)";
}

Status EmulatedCounterSource::add_job(CounterJobId job, const CounterTarget &target,
                                      double now_s) try {
  if (jobs_.count(job)) {
    return Status::failure("job " + std::to_string(job) + " is already counted", EEXIST);
  }
  Result<EmulatedWorkload> w = parse_emulated_workload(target.emulation);
  if (!w.ok()) return Status::failure("job " + std::to_string(job) + ": " + w.message(), EINVAL);
  Job j;
  j.workload = w.value();
  j.cpus = target.cpus;
  j.last_s = now_s;
  jobs_.emplace(job, std::move(j));
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("emulated add_job: ") + e.what(), ENOMEM);
}

Status EmulatedCounterSource::add_tasks(CounterJobId job, const std::vector<pid_t> &) {
  if (!jobs_.count(job)) {
    return Status::failure("job " + std::to_string(job) + " is not counted", ENOENT);
  }
  return Status::success();
}

void EmulatedCounterSource::remove_job(CounterJobId job) { jobs_.erase(job); }

bool EmulatedCounterSource::has_job(CounterJobId job) const { return jobs_.count(job) != 0; }

double EmulatedCounterSource::job_frequency_hz(const Job &job) {
  const double f_max = config_.socket.f_max_hz;
  double f = f_max;
  if (std::optional<double> cap = view_->package_cap_w(job.workload.zone)) {
    double activity = 0.0;
    for (const auto &[id, other] : jobs_) {
      if (other.workload.zone == job.workload.zone) {
        activity += other.workload.busy_cpus / config_.cores_per_zone * other.workload.activity;
      }
    }
    PowerModel m = config_.socket;
    m.alpha = std::min(activity, 1.0);
    f = m.freq_at_hz(*cap);  // 0 at or below P0: RAPL cannot get there by DVFS alone
  }
  for (int cpu : job.cpus) {
    if (std::optional<double> limit = view_->core_limit_hz(cpu)) f = std::min(f, *limit);
  }
  return std::clamp(f, config_.min_hz, f_max);
}

double EmulatedCounterSource::noisy(double value) {
  if (config_.noise_fraction <= 0.0) return value;
  std::normal_distribution<double> normal(0.0, config_.noise_fraction);
  return std::max(0.0, value * (1.0 + normal(rng_)));
}

std::optional<double> EmulatedCounterSource::frequency_hz(CounterJobId job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return std::nullopt;
  return job_frequency_hz(it->second);
}

std::optional<double> EmulatedCounterSource::relative_speed(CounterJobId job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return std::nullopt;
  const double f = job_frequency_hz(it->second);
  const double m = it->second.workload.memory_share;
  return 1.0 / ((1.0 - m) * config_.socket.f_max_hz / f + m);
}

Result<CounterReading> EmulatedCounterSource::sample(CounterJobId job, double now_s) try {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return Error{"job " + std::to_string(job) + " is not counted", ENOENT};
  Job &j = it->second;
  const double dt = std::max(0.0, now_s - j.last_s);
  j.last_s = now_s;
  const EmulatedWorkload &w = j.workload;
  const double f = job_frequency_hz(j);
  const double f0 = config_.socket.f_max_hz;
  const double stall_share = w.memory_share / ((1.0 - w.memory_share) * f0 / f + w.memory_share);
  const double ref_hz = config_.ref_hz > 0.0 ? config_.ref_hz : f0;

  const double cycles = noisy(w.busy_cpus * f * dt);
  const double stalls = std::min(cycles, noisy(stall_share * cycles));
  CounterReading r;
  r.sample.interval_s = dt;
  r.sample.cycles = cycles;
  r.sample.stall_cycles = stalls;
  r.sample.instructions = noisy(w.ipc * (cycles - stalls));
  r.sample.ref_cycles = noisy(w.busy_cpus * ref_hz * dt);
  r.sample.task_clock_s = w.busy_cpus * dt;
  r.llc_misses = noisy(stalls / w.stall_cycles_per_llc_miss);
  r.context_switches = noisy(config_.context_switches_per_cpu_s * w.busy_cpus * dt);
  r.running_fraction = 1.0;
  return r;
} catch (const std::exception &e) {
  return Error{std::string("emulated sample: ") + e.what(), ENOMEM};
}

}  // namespace powergrad::hw
