#include "nodeagent/power_control.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <exception>

#include "hardware/cpufreq.hpp"
#include "hardware/emulated_counter_source.hpp"
#include "hardware/perf_counter_source.hpp"
#include "hardware/sysfs_file.hpp"

namespace powergrad {

std::string saved_caps_path(const std::string &state_dir) { return state_dir + "/saved-caps"; }

namespace {

std::string fmt_w(double w) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", w);
  return buf;
}

JobMode job_mode(const std::string &mode) {
  if (mode == "latency") return JobMode::latency;
  if (mode == "throughput") return JobMode::throughput;
  if (mode == "monitor") return JobMode::monitor;
  return JobMode::unmanaged;
}

// "12.0" -> 12.
std::uint32_t job_id_of(const std::string &key) {
  return static_cast<std::uint32_t>(std::strtoul(key.c_str(), nullptr, 10));
}

}  // namespace

PowerControl::PowerControl(PowerControlConfig config, AgentLog log)
    : config_(std::move(config)), log_(std::move(log)), tree_(config_.sysfs_root) {}

PowerControl::~PowerControl() = default;

std::vector<JobEnergySummary> PowerControl::job_summaries() const {
  std::lock_guard<std::mutex> g(ledger_mu_);
  return ledger_.summaries();
}

void PowerControl::recover() {
  const std::string path = saved_caps_path(config_.state_dir);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  auto loaded = hw::load_snapshot_file(path);
  if (!loaded.ok()) {
    // Never overwrite what may be the admin's only record of their settings.
    control_blocked_ = true;
    log_(AgentLogLevel::error, "cannot read the saved caps " + path + ": " + loaded.message() +
                                   "; caps are left alone on " + config_.node_name +
                                   " until the file is restored or removed by hand");
    return;
  }
  hw::Status s = tree_.discover();
  if (s.ok()) s = tree_.restore(loaded.value().powercap);
  if (!s.ok()) {
    control_blocked_ = true;
    log_(AgentLogLevel::error, "cannot restore the saved caps " + path + ": " + s.message() +
                                   "; the file is kept and caps are left alone");
    return;
  }
  hw::Status r = hw::remove_snapshot_file(path);
  log_(AgentLogLevel::info, "caps restored on " + config_.node_name + " from " + path +
                                " left by a previous agent (crash recovery)" +
                                (r.ok() ? "" : "; removing the file failed: " + r.message()));
}

void PowerControl::setup_hardware() {
  hardware_ready_ = true;
  hw::Status s = tree_.discover();
  if (!s.ok()) {
    log_(AgentLogLevel::info, "no power domains on " + config_.node_name + " (" + s.message() +
                                  "): monitor mode, caps are never touched");
    return;
  }
  for (const std::string &note : tree_.notes()) log_(AgentLogLevel::debug, "powercap: " + note);
  bool all_controllable = true;
  for (std::size_t i = 0; i < tree_.zones().size(); ++i) {
    const hw::PowercapZone &z = tree_.zones()[i];
    if (z.kind() != hw::ZoneKind::package || !z.parent().empty()) continue;
    if (!z.has_energy()) {
      log_(AgentLogLevel::info,
           "zone " + z.name() + " has no readable energy (" + z.energy_refusal() + "): skipped");
      continue;
    }
    Domain d;
    d.zone = i;
    d.zone_name = z.name();
    d.label = z.label();
    d.counter.emplace(z.max_energy_range_uj());
    if (!z.controllable()) {
      all_controllable = false;
      log_(AgentLogLevel::info, "zone " + z.name() + " cannot be capped: " + z.control_refusal());
    }
    domains_.push_back(std::move(d));
  }
  if (domains_.empty()) {
    log_(AgentLogLevel::info, "no package power domains on " + config_.node_name +
                                  ": monitor mode, caps are never touched");
    return;
  }
  auto topo = hw::read_cpu_topology(config_.sysfs_root);
  if (topo.ok()) {
    const auto pkg = tree_.zones()[domains_[0].zone].package_id();
    const std::size_t n = topo.value().cpus_of_package(pkg ? *pkg : 0).size();
    if (n > 0) cores_per_domain_ = static_cast<int>(n);
  }
  if (!all_controllable) {
    log_(AgentLogLevel::info, "monitor mode on " + config_.node_name +
                                  ": some power domains cannot be capped, caps are never touched");
    return;
  }
  double sum_min = 0.0, sum_max = 0.0;
  for (const Domain &d : domains_) {
    auto pd = tree_.zones()[d.zone].power_domain();
    if (!pd.ok()) {
      log_(AgentLogLevel::info, "monitor mode on " + config_.node_name + ": " + pd.message());
      return;
    }
    sum_min += pd.value().min_cap_w;
    sum_max += pd.value().max_cap_w;
  }
  NodeControllerParams params;
  params.static_grant_w = config_.grant_w ? *config_.grant_w : sum_max;
  params.floor_w = std::min(config_.floor_w ? *config_.floor_w : sum_min, *params.static_grant_w);
  controller_ = std::make_unique<NodeController>(config_.node_name, params);
  monitor_only_ = false;
  log_(AgentLogLevel::info,
       "power control on " + config_.node_name + ": " + std::to_string(domains_.size()) +
           " package domain(s), range " + fmt_w(sum_min) + ".." + fmt_w(sum_max) + " W, grant " +
           fmt_w(*params.static_grant_w) + " W, floor " + fmt_w(params.floor_w) + " W");
}

void PowerControl::setup_counters() {
  counters_ready_ = true;
  if (config_.counters == "emulated") {
    hw::EmulatedSourceConfig ec;
    ec.cores_per_zone = cores_per_domain_;
    auto src = hw::EmulatedCounterSource::create(
        ec, std::make_shared<hw::SysfsHardwareView>(config_.sysfs_root));
    if (src.ok())
      counters_ = std::move(src.value());
    else
      log_(AgentLogLevel::error, "emulated counters unavailable: " + src.message());
  } else {
    hw::PerfCounterOptions po;
    po.sysfs_root = config_.sysfs_root;
    po.proc_root = config_.procfs_root;
    po.allow_hardware = config_.counters != "software";
    auto src = hw::PerfCounterSource::create(po);
    if (!src.ok()) {
      log_(AgentLogLevel::error, "perf counters unavailable: " + src.message());
    } else if (config_.counters == "perf" && src.value()->mode() != hw::CounterMode::hardware) {
      log_(AgentLogLevel::error, "counters=perf asked but hardware events are unavailable (" +
                                     src.value()->fallback_reason() +
                                     "): running without counters");
    } else {
      counters_ = std::move(src.value());
    }
  }
  if (counters_) counters_name_ = hw::to_string(counters_->mode());
  log_(AgentLogLevel::info, counters_ ? counters_->describe() : "counters=none");
}

void PowerControl::start_step(const RegisteredStep &rs, Step &st, double now_s) {
  st.id = next_id_++;
  st.mode = rs.mode;
  st.domains.clear();
  for (std::size_t i = 0; i < domains_.size(); ++i) st.domains.push_back(i);
  st.cpus = std::max<double>(1.0, static_cast<double>(rs.pids.size()));
  hw::CounterTarget target;
  target.pids.assign(rs.pids.begin(), rs.pids.end());
  if (counters_ && counters_->mode() == hw::CounterMode::emulated) {
    // Read again at each new step, so tests may write the file just before submitting.
    auto text = hw::read_small_file(config_.emulate_path, 1 << 20);
    if (!text.ok()) {
      log_(AgentLogLevel::error, "emulate file: " + text.message());
    } else {
      EmulationSpecsParse p = parse_emulation_specs(text.value());
      if (p.ok())
        specs_ = p.specs;
      else
        log_(AgentLogLevel::error, "emulate file " + config_.emulate_path + ": " + p.error);
    }
    const std::optional<std::string> spec = specs_.find(job_id_of(rs.key()));
    if (!spec) {
      log_(AgentLogLevel::info, "job " + rs.key() + ": no workload in " + config_.emulate_path +
                                    ": emulated with the default workload");
    }
    target.emulation = spec.value_or("");
    auto w = hw::parse_emulated_workload(target.emulation);
    if (w.ok()) {
      st.cpus = w.value().busy_cpus;
      st.domains.clear();
      for (std::size_t i = 0; i < domains_.size(); ++i) {
        if (domains_[i].zone_name == w.value().zone) st.domains.push_back(i);
      }
    }
  }
  if (counters_) {
    hw::Status s = counters_->add_job(st.id, target, now_s);
    st.counting = s.ok();
    if (!s.ok()) log_(AgentLogLevel::error, "job " + rs.key() + ": counters: " + s.message());
  }
  st.pids = rs.pids;
  std::lock_guard<std::mutex> g(ledger_mu_);
  ledger_.begin(rs.key(), rs.mode, st.counting ? counters_name_ : "none");
}

void PowerControl::finish_step(const std::string &key) {
  auto it = steps_.find(key);
  if (it == steps_.end()) return;
  if (counters_ && it->second.counting) counters_->remove_job(it->second.id);
  steps_.erase(it);
  std::optional<JobEnergySummary> s;
  {
    std::lock_guard<std::mutex> g(ledger_mu_);
    s = ledger_.finish(key);
  }
  if (s) log_(AgentLogLevel::info, format_job_summary(*s, config_.node_name));
}

void PowerControl::sync_steps(const std::vector<RegisteredStep> &steps, double now_s) {
  std::set<std::string> present;
  for (const RegisteredStep &rs : steps) {
    const std::string key = rs.key();
    present.insert(key);
    auto it = steps_.find(key);
    if (it == steps_.end()) {
      start_step(rs, steps_[key], now_s);
      continue;
    }
    std::vector<pid_t> fresh;
    for (pid_t p : rs.pids) {
      if (!it->second.pids.count(p)) fresh.push_back(p);
    }
    if (!fresh.empty() && counters_ && it->second.counting) {
      hw::Status s = counters_->add_tasks(it->second.id, fresh);
      if (!s.ok()) log_(AgentLogLevel::debug, "job " + key + ": add tasks: " + s.message());
    }
    it->second.pids = rs.pids;
  }
  std::vector<std::string> gone;
  for (const auto &kv : steps_) {
    if (!present.count(kv.first)) gone.push_back(kv.first);
  }
  for (const std::string &key : gone) finish_step(key);
}

std::optional<double> PowerControl::cap_in_force_w(std::size_t domain) const {
  auto pd = tree_.zones()[domains_[domain].zone].power_domain();
  if (!pd.ok()) return std::nullopt;
  return pd.value().cap_w;
}

void PowerControl::period(const std::vector<RegisteredStep> &steps, double now_s) {
  if (!hardware_ready_) setup_hardware();
  if (!counters_ready_) setup_counters();
  interval_s_ = last_now_s_ ? now_s - *last_now_s_ : 0.0;
  last_now_s_ = now_s;

  // Energy per domain over the period.
  for (Domain &d : domains_) {
    d.energy_j = 0.0;
    d.power_w.reset();
    auto reading = tree_.zones()[d.zone].read_energy_uj();
    if (!reading.ok()) continue;
    auto delta = d.counter->update(reading.value(), interval_s_ > 0 ? interval_s_ : 1.0);
    if (!delta.ok()) {
      log_(AgentLogLevel::debug, d.zone_name + ": " + delta.message());
    } else if (delta.value() && interval_s_ > 0.0) {
      d.energy_j = static_cast<double>(*delta.value()) * 1e-6;
      d.power_w = d.energy_j / interval_s_;
    }
  }

  sync_steps(steps, now_s);
  for (auto &kv : steps_) {
    kv.second.reading.reset();
    if (!counters_ || !kv.second.counting) continue;
    auto r = counters_->sample(kv.second.id, now_s);
    if (r.ok()) kv.second.reading = r.value();
  }

  // Energy to jobs, by task-clock share on each domain.
  if (interval_s_ > 0.0) {
    std::lock_guard<std::mutex> g(ledger_mu_);
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      std::vector<std::string> keys;
      std::vector<double> clocks;
      for (const auto &kv : steps_) {
        const Step &st = kv.second;
        if (std::find(st.domains.begin(), st.domains.end(), d) == st.domains.end()) continue;
        keys.push_back(kv.first);
        const double tc = st.reading ? st.reading->sample.task_clock_s : 0.0;
        clocks.push_back(tc / static_cast<double>(st.domains.size()));
      }
      const std::vector<double> shares = attribute_energy(domains_[d].energy_j, clocks);
      for (std::size_t i = 0; i < keys.size(); ++i) ledger_.add_energy(keys[i], shares[i]);
    }
  }

  control(now_s);

  if (interval_s_ > 0.0) {
    std::vector<std::optional<double>> caps(domains_.size());
    if (!monitor_only_) {
      for (std::size_t d = 0; d < domains_.size(); ++d) caps[d] = cap_in_force_w(d);
    }
    std::lock_guard<std::mutex> g(ledger_mu_);
    for (const auto &kv : steps_) {
      std::optional<double> cap;
      for (std::size_t d : kv.second.domains) {
        if (!caps[d]) {
          cap.reset();
          break;
        }
        cap = cap.value_or(0.0) + *caps[d];
      }
      ledger_.add_period(kv.first, interval_s_, cap);
    }
  }
}

void PowerControl::control(double now_s) {
  if (monitor_only_ || control_blocked_ || !controller_) return;
  bool power_aware = false;
  for (const auto &kv : steps_) power_aware = power_aware || kv.second.mode != "off";
  if (!power_aware) {
    if (saved_) restore_caps("no power-aware step left");
    return;
  }
  if (interval_s_ <= 0.0) return;
  NodeInputs in;
  in.now_s = now_s;
  for (const Domain &d : domains_) {
    auto pd = tree_.zones()[d.zone].power_domain();
    if (!pd.ok()) {
      log_(AgentLogLevel::error, "zone " + d.zone_name + ": " + pd.message());
      return;
    }
    DomainInput di;
    di.name = d.label;
    di.min_cap_w = pd.value().min_cap_w;
    di.max_cap_w = pd.value().max_cap_w;
    di.cap_w = pd.value().cap_w;
    if (d.power_w) di.power_w = *d.power_w;
    // A socket model scaled to the domain's maximum (P0 about 30% of TDP), 3.4 GHz top clock.
    di.model = PowerModel{0.29 * di.max_cap_w, di.max_cap_w, 3.4e9, 1.0};
    in.domains.push_back(di);
  }
  for (const auto &kv : steps_) {
    const Step &st = kv.second;
    if (st.domains.empty()) continue;
    JobInput ji;
    ji.key = kv.first;
    ji.mode = job_mode(st.mode);
    ji.emulated = counters_ && counters_->mode() == hw::CounterMode::emulated;
    const double n = static_cast<double>(st.domains.size());
    for (std::size_t d : st.domains) {
      JobDomainInput jd;
      jd.domain = d;
      jd.cpus = std::max(0.01, st.cpus / n);
      jd.share = std::min(1.0, std::max(0.01, jd.cpus / cores_per_domain_));
      if (st.reading) {
        CounterSample c = st.reading->sample;
        auto split = [n](std::optional<double> &v) {
          if (v) *v /= n;
        };
        c.task_clock_s /= n;
        split(c.cycles);
        split(c.instructions);
        split(c.stall_cycles);
        split(c.ref_cycles);
        c.energy_j = domains_[d].energy_j;
        jd.counters = c;
      } else {
        jd.counters.interval_s = interval_s_;
      }
      ji.domains.push_back(jd);
    }
    in.jobs.push_back(std::move(ji));
  }
  const NodeDecision dec = controller_->step(in);
  for (const std::string &w : dec.warnings) log_(AgentLogLevel::debug, "controller: " + w);
  if (!dec.ok) {
    log_(AgentLogLevel::error, "controller: " + dec.error + "; caps unchanged");
    return;
  }
  bool changed = false;
  for (std::size_t i : dec.apply_order) {
    if (i >= domains_.size() || i >= dec.caps_w.size()) continue;
    const double want_w = dec.caps_w[i];
    if (std::fabs(want_w - in.domains[i].cap_w) < 0.01) continue;
    if (!saved_ && !save_caps()) return;
    hw::PowercapZone &z = tree_.zones()[domains_[i].zone];
    // Rounded down: caps rounded to the nearest uW could sum 1 uW above the grant. (The
    // kernel rounds down again, to the hardware's power unit.)
    auto r = z.apply_long_term_limit_uw(static_cast<std::uint64_t>(std::floor(want_w * 1e6)));
    if (!r.ok()) {
      log_(AgentLogLevel::error, "cap of " + domains_[i].zone_name + ": " + r.message());
      return;  // later domains may be raises: never raise after a failed lowering
    }
    changed = true;
  }
  if (changed) {
    std::string caps;
    for (std::size_t i = 0; i < dec.caps_w.size(); ++i) {
      caps += (i ? "," : "") + domains_[i].zone_name + "=" + fmt_w(dec.caps_w[i]);
    }
    log_(AgentLogLevel::debug, "caps " + caps + " (grant " + fmt_w(dec.effective_grant_w) + " W)");
  }
}

bool PowerControl::save_caps() {
  auto snap = tree_.snapshot();
  if (!snap.ok()) {
    log_(AgentLogLevel::error,
         "cannot read the caps to save: " + snap.message() + "; caps left alone");
    return false;
  }
  hw::HardwareSnapshot hs;
  hs.powercap = snap.value();
  const std::string path = saved_caps_path(config_.state_dir);
  hw::Status s = hw::save_snapshot_file(path, hs);
  if (!s.ok()) {
    log_(AgentLogLevel::error,
         "cannot save the caps to " + path + ": " + s.message() + "; caps left alone");
    return false;
  }
  saved_ = hs;
  log_(AgentLogLevel::info,
       "caps on " + config_.node_name + " saved to " + path + " before the first change");
  return true;
}

void PowerControl::restore_caps(const std::string &why) {
  if (!saved_) return;
  hw::Status s = tree_.restore(saved_->powercap);
  if (!s.ok()) {
    log_(AgentLogLevel::error,
         "restoring the saved caps failed (" + s.message() + "); the file is kept");
    return;
  }
  saved_.reset();
  const std::string path = saved_caps_path(config_.state_dir);
  hw::Status r = hw::remove_snapshot_file(path);
  if (!r.ok()) log_(AgentLogLevel::error, "cannot remove " + path + ": " + r.message());
  log_(AgentLogLevel::info, "caps restored on " + config_.node_name + " (" + why + ")");
}

void PowerControl::shutdown() {
  std::vector<std::string> keys;
  for (const auto &kv : steps_) keys.push_back(kv.first);
  for (const std::string &k : keys) finish_step(k);
  restore_caps("agent stopping");
}

}  // namespace powergrad
