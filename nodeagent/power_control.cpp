#include "nodeagent/power_control.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>

#include "hardware/cpufreq.hpp"
#include "hardware/emulated_counter_source.hpp"
#include "hardware/perf_counter_source.hpp"
#include "hardware/sysfs_file.hpp"

namespace powergrad {

std::string saved_caps_path(const std::string &state_dir) {
  return state_dir + "/" + kSavedCapsFile;
}

std::string managed_marker_path(const std::string &state_dir) {
  return state_dir + "/" + kManagedFile;
}

namespace {

// This boot's id (Linux: a random UUID per boot), "" when it cannot be read.
std::string boot_id(const std::string &procfs_root) {
  hw::Result<hw::SysfsFile> f = hw::SysfsFile::open(
      hw::join_path(procfs_root, "sys/kernel/random/boot_id"), hw::SysfsFile::Access::read_only);
  if (!f.ok()) return "";
  hw::Result<std::string> id = f.value().read_line();
  return id.ok() ? id.value() : "";
}

// The boot id a managed marker records ("boot_id ID" line), "" if none.
std::string marker_boot_id(const std::string &text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.compare(0, 8, "boot_id ") == 0) return line.substr(8);
  return "";
}

// Per-core split between jobs sharing a package: a lowered job gets the admin's frequency
// back only when its gain share leads the others' by more than this (see apply_freq).
constexpr double kFreqHysteresis = 0.15;

hw::SocketPowerOptions socket_options(const PowerControlConfig &c) {
  hw::SocketPowerOptions o;
  o.sysfs_root = c.sysfs_root;
  o.open_hsmp = c.open_hsmp;
  return o;
}

std::string fmt_w(double w) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", w);
  return buf;
}

// "12.0" -> 12.
std::uint32_t job_id_of(const std::string &key) {
  return static_cast<std::uint32_t>(std::strtoul(key.c_str(), nullptr, 10));
}

}  // namespace

const char *to_string(NodeManagement m) {
  switch (m) {
    case NodeManagement::local:
      return "local";
    case NodeManagement::controller:
      return "controller";
  }
  return "?";
}

PowerControl::PowerControl(PowerControlConfig config, AgentLog log)
    : config_(std::move(config)),
      log_(std::move(log)),
      sockets_(socket_options(config_)),
      cpufreq_(config_.sysfs_root) {}

PowerControl::~PowerControl() = default;

std::vector<JobEnergySummary> PowerControl::job_summaries() const {
  std::lock_guard<std::mutex> g(ledger_mu_);
  return ledger_.summaries();
}

const hw::SecureDir *PowerControl::state_dir() {
  if (config_.state || !state_error_.empty()) return config_.state.get();
  hw::Result<hw::SecureDir> d = hw::SecureDir::open(config_.state_dir);
  if (d.ok()) {
    config_.state = std::make_shared<const hw::SecureDir>(std::move(d.value()));
  } else {
    state_error_ = d.message();
    log_(AgentLogLevel::error, "state folder " + config_.state_dir + " refused: " + state_error_ +
                                   "; caps are left alone on " + config_.node_name);
  }
  return config_.state.get();
}

void PowerControl::recover() {
  const hw::SecureDir *dir = state_dir();
  if (!dir) {
    control_blocked_ = true;  // nowhere to keep the admin's settings: never change them
    return;
  }
  const bool marked = dir->exists(kManagedFile);
  if (marked && config_.management == NodeManagement::controller) {
    managed_ = true;
    const hw::Result<std::string> text = dir->read_file(kManagedFile, 4096);
    const std::string then = text.ok() ? marker_boot_id(text.value()) : "";
    const std::string now = boot_id(config_.procfs_root);
    if (!then.empty() && !now.empty() && then != now) {
      rebooted_ = true;
      log_(AgentLogLevel::info,
           "node " + config_.node_name + " was rebooted while managed (boot id " + then + ", now " +
               now +
               "): its caps are the firmware's, not what the controller counts; every domain "
               "is held at its floor until the controller's first grant");
      set_managed(true);  // this boot's id from now on
    }
    adopt_saved_file();
    return;
  }
  restore_from_file("left by a previous agent (crash recovery)");
  // Without a controller the node is no longer in a cluster budget.
  if (marked && !control_blocked_) set_managed(false);
}

void PowerControl::set_managed(bool on) {
  managed_ = on;
  const std::string path = managed_marker_path(config_.state_dir);
  const hw::SecureDir *dir = state_dir();
  const std::string boot = on ? boot_id(config_.procfs_root) : "";
  const hw::Status s =
      !dir ? hw::Status::failure("no state folder: " + state_error_)
      : on ? dir->write_file_atomic(
                 kManagedFile, "managed by the cluster controller of " + config_.node_name + "\n" +
                                   (boot.empty() ? "" : "boot_id " + boot + "\n"))
           : dir->remove(kManagedFile);
  if (!s.ok()) {
    log_(AgentLogLevel::error, std::string("cannot ") + (on ? "write " : "remove ") + path + ": " +
                                   s.message() +
                                   (on ? " (an agent started after a slurmd crash would not know "
                                         "the node is managed)"
                                       : ""));
  }
}

// A managed node's caps stay as they are when its agent starts: the controller counts them
// until this agent reports. The admin's settings that an earlier agent saved are what a
// release must put back, so they are taken over, not restored.
void PowerControl::adopt_saved_file() {
  const std::string path = saved_caps_path(config_.state_dir);
  const hw::SecureDir *dir = state_dir();
  if (!dir || !dir->exists(kSavedCapsFile)) return;
  auto loaded = hw::load_snapshot_at(*dir, kSavedCapsFile);
  if (!loaded.ok()) {
    log_(AgentLogLevel::error, "cannot read the saved caps " + path + ": " + loaded.message() +
                                   "; caps are left alone on " + config_.node_name +
                                   " until the file is restored or removed by hand");
    control_blocked_ = true;
    return;
  }
  saved_ = loaded.value();
  log_(AgentLogLevel::info, "the admin's settings saved by an earlier agent stay on record in " +
                                path + "; caps in force are kept on managed node " +
                                config_.node_name + " (never raised without a grant)");
}

void PowerControl::leave_management(const std::string &why) {
  if (!managed()) return;
  set_managed(false);
  log_(AgentLogLevel::info, "node " + config_.node_name + " leaves PowerGrad's management (" + why +
                                "): the admin's settings come back");
  if (hardware_ready_ && !monitor_only_) make_controller(false);
  // Nothing saved: nothing was changed since the settings were last given back. A failed
  // restore is retried every period (control() on a node that is not managed).
  restore_caps("the node left PowerGrad's management");
}

bool PowerControl::restore_from_file(const std::string &why) {
  const std::string path = saved_caps_path(config_.state_dir);
  const hw::SecureDir *dir = state_dir();
  if (!dir || !dir->exists(kSavedCapsFile)) return false;
  auto loaded = hw::load_snapshot_at(*dir, kSavedCapsFile);
  if (!loaded.ok()) {
    // Never overwrite what may be the admin's only record of their settings.
    if (!control_blocked_) {
      log_(AgentLogLevel::error, "cannot read the saved caps " + path + ": " + loaded.message() +
                                     "; caps are left alone on " + config_.node_name +
                                     " until the file is restored or removed by hand");
    }
    control_blocked_ = true;
    return false;
  }
  // A tree of its own: the live one's zones (indexed by domains_, with open files) stay as
  // they are whatever this finds.
  hw::SocketPower restore_tree(socket_options(config_));
  hw::Status s = restore_tree.discover();
  if (s.ok()) s = restore_tree.restore(loaded.value().powercap, loaded.value().hsmp);
  if (s.ok()) s = restore_cpufreq(loaded.value().cpufreq);
  if (!s.ok()) {
    if (!control_blocked_) {
      log_(AgentLogLevel::error, "cannot restore the saved caps " + path + ": " + s.message() +
                                     "; the file is kept and caps are left alone");
    }
    control_blocked_ = true;
    return false;
  }
  control_blocked_ = false;
  saved_.reset();
  hw::Status r = dir->remove(kSavedCapsFile);
  log_(AgentLogLevel::info, "caps restored on " + config_.node_name + " from " + path + " " + why +
                                (r.ok() ? "" : "; removing the file failed: " + r.message()));
  return true;
}

bool PowerControl::new_job(std::uint32_t job_id, const std::vector<RegisteredStep> &steps) {
  if (managed()) return false;  // its caps stay within its lease whatever runs
  for (const RegisteredStep &rs : steps) {
    if (rs.job_id != job_id && rs.power_aware()) return false;  // its caps are in use
  }
  const std::string why = "before job " + std::to_string(job_id) +
                          " with no power-aware job left (the end of the last one was missed)";
  if (saved_) return restore_caps(why);
  return restore_from_file(why);
}

std::string PowerControl::on_grant(const GrantMessage &grant, double wall_s) {
  if (!hardware_ready_) setup_hardware();
  if (!controller_) return "no power control on " + config_.node_name + " (monitor mode)";
  const NodeLease before = controller_->lease();
  std::string err = controller_->on_grant(grant, wall_s);
  if (!err.empty()) return err;
  if (!managed() && config_.management == NodeManagement::controller) {
    set_managed(true);
    log_(AgentLogLevel::info, "node " + config_.node_name +
                                  " is managed by the cluster controller: its caps stay within "
                                  "its leases whatever runs there");
  }
  const NodeLease &l = controller_->lease();
  const std::string what = "lease (" + std::to_string(l.epoch) + ", " + std::to_string(l.seq) +
                           "): grant " + fmt_w(l.grant_w) + " W, floor " + fmt_w(l.floor_w) +
                           " W, " + fmt_w(l.expires_at_s - wall_s) + " s";
  // Renewals at the same watts are routine; a change of watts or controller is worth a line.
  const bool news = !before.from_controller || before.epoch != l.epoch ||
                    std::fabs(before.grant_w - l.grant_w) >= 0.05 ||
                    std::fabs(before.floor_w - l.floor_w) >= 0.05;
  log_(news ? AgentLogLevel::info : AgentLogLevel::debug,
       "controller grant on " + config_.node_name + ": " + what);
  enforce_grant(wall_s);
  return "";
}

std::optional<NodeReport> PowerControl::take_urgent_report() {
  std::optional<NodeReport> r;
  r.swap(urgent_report_);
  return r;
}

void PowerControl::enforce_grant(double wall_s) {
  urgent_report_.reset();
  // A drop is obeyed now, not at the next period: the cluster controller gives the watts to
  // other nodes once this node confirms it no longer holds them. A rise is used now too: the
  // watts moved here would otherwise sit unused until the next period.
  std::optional<NodeDecision> dec = controller_->enforce(wall_s);
  if (!dec) return;
  for (const std::string &w : dec->warnings) log_(AgentLogLevel::debug, "controller: " + w);
  if (!dec->ok) {
    log_(AgentLogLevel::error, "controller: " + dec->error + "; caps unchanged");
    return;
  }
  std::vector<DomainInput> doms;
  if (!domain_inputs(doms)) return;
  bool power_aware = false;
  for (const auto &kv : steps_) power_aware = power_aware || is_power_aware(kv.second.mode);
  // A drop only lowers caps in force; a rise only raises them, and only if the caps in force
  // (a firmware may hold one above what was asked) stay within the grant with it.
  bool fits = true;
  if (dec->raised) {
    double after = 0.0;
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      const double cur = cap_in_force_or_max_w(d, doms);
      after += d < dec->caps_w.size() ? std::max(cur, dec->caps_w[d]) : cur;
    }
    fits = after <= dec->effective_grant_w + 1e-6;
  }
  const bool changed = fits && (managed() || power_aware) && !control_blocked_ &&
                       write_caps(*dec, doms, !dec->raised);
  NodeReport r = dec->report;
  r.caps_w = caps_in_force_sum_w(doms);
  fill_accounting(r);
  last_report_ = r;
  urgent_report_ = r;
  std::string caps;
  for (std::size_t i = 0; i < dec->caps_w.size() && i < domains_.size(); ++i) {
    caps += (i ? "," : "") + domains_[i].zone_name + "=" + fmt_w(dec->caps_w[i]);
  }
  const char *how = dec->raised ? "raised" : "lowered";
  log_(dec->raised ? AgentLogLevel::debug : AgentLogLevel::info,
       "grant on " + config_.node_name + " " + how + " to " + fmt_w(dec->effective_grant_w) +
           " W: " +
           (changed ? std::string("caps ") + how + " at once to " + caps
                    : std::string("no cap written")) +
           " (in force " + fmt_w(r.caps_w) + " W)");
}

void PowerControl::setup_hardware() {
  hardware_ready_ = true;
  hw::Status s = sockets_.discover();
  if (!s.ok()) {
    log_(AgentLogLevel::info, "no power domains on " + config_.node_name + " (" + s.message() +
                                  "): monitor mode, caps are never touched");
    return;
  }
  for (const std::string &note : sockets_.notes()) log_(AgentLogLevel::debug, "powercap: " + note);
  bool all_controllable = true;
  for (std::size_t i = 0; i < sockets_.domains().size(); ++i) {
    const hw::SocketDomain &z = sockets_.domains()[i];
    if (!z.has_energy()) {
      log_(AgentLogLevel::info,
           "zone " + z.name() + " has no readable energy (" + z.energy_refusal() + "): skipped");
      continue;
    }
    Domain d;
    d.zone = i;
    d.zone_name = z.name();
    d.label = z.label();
    if (z.energy_source() == hw::EnergySource::powercap) d.counter.emplace(z.max_energy_range_uj());
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
    const auto pkg = sockets_.domains()[domains_[0].zone].package_id();
    const std::size_t n = topo.value().cpus_of_package(pkg ? *pkg : 0).size();
    if (n > 0) cores_per_domain_ = static_cast<int>(n);
    package_of_cpu_ = topo.value().package_of_cpu;
  }
  if (!all_controllable) {
    log_(AgentLogLevel::info, "monitor mode on " + config_.node_name +
                                  ": some power domains cannot be capped, caps are never touched");
    return;
  }
  double sum_min = 0.0, sum_max = 0.0;
  for (const Domain &d : domains_) {
    auto pd = sockets_.domains()[d.zone].power_domain();
    if (!pd.ok()) {
      log_(AgentLogLevel::info, "monitor mode on " + config_.node_name + ": " + pd.message());
      return;
    }
    sum_min += pd.value().min_cap_w;
    sum_max += pd.value().max_cap_w;
  }
  domains_min_w_ = sum_min;
  domains_max_w_ = sum_max;
  monitor_only_ = false;
  make_controller(managed());
  if (config_.cpufreq && !package_of_cpu_.empty()) {
    hw::Status cs = cpufreq_.discover();
    cpufreq_ready_ = cs.ok();
    for (const std::string &note : cpufreq_.notes()) log_(AgentLogLevel::debug, "cpufreq: " + note);
    log_(AgentLogLevel::info,
         cpufreq_ready_ ? "per-core frequency limits on " + config_.node_name + ": " +
                              std::to_string(cpufreq_.cpus().size()) + " CPU(s) with cpufreq"
                        : "no per-core frequency limits on " + config_.node_name + " (" +
                              cs.message() + ")");
  }
  adopt_freq_limits();
  const NodeControllerParams &params = controller_->params();
  log_(AgentLogLevel::info, "power control on " + config_.node_name + " (" +
                                (managed() ? "managed"
                                 : config_.management == NodeManagement::controller
                                     ? "not managed until the controller's first lease"
                                     : "no controller") +
                                "): " + std::to_string(domains_.size()) +
                                " package domain(s), range " + fmt_w(sum_min) + ".." +
                                fmt_w(sum_max) + " W, " + (managed() ? "held at " : "grant ") +
                                fmt_w(params.static_grant_w.value_or(params.floor_w)) + " W" +
                                (managed() ? " until the controller's grant" : "") + ", floor " +
                                fmt_w(params.floor_w) + " W");
}

// The node's local controller. Its grant until a controller's lease arrives: grant=, else
// every domain's maximum; on a managed node never more than the caps in force now (an agent
// that starts must not raise what the controller counts, whatever it was when the last
// agent stopped).
void PowerControl::make_controller(bool managed_node) {
  NodeControllerParams params;
  double grant = config_.grant_w ? *config_.grant_w : domains_max_w_;
  const double floor = config_.floor_w ? *config_.floor_w : domains_min_w_;
  if (managed_node) {
    double in_force = 0.0;
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      const std::optional<double> cap = cap_in_force_w(d);
      in_force += cap ? *cap : domains_max_w_ / static_cast<double>(domains_.size());
    }
    grant = std::min(grant, in_force);
    // Rebooted while managed: the caps in force are the firmware's; only the floors are
    // surely within what the controller counts.
    if (rebooted_) grant = std::min(grant, floor);
  }
  params.static_grant_w = grant;
  params.model.low_cap_knee = config_.low_cap_knee;
  params.model.low_cap_slowdown = config_.low_cap_slowdown;
  params.model.load_spread_k = config_.load_spread_k;
  params.model.top_clock_min_busy = config_.top_clock_min_busy;
  params.model.plain_beside_weight = config_.plain_beside_weight;
  params.floor_w = std::min(floor, grant);
  params.incarnation = config_.incarnation;
  params.started_at_s = config_.started_at_s;
  controller_ = std::make_unique<NodeController>(config_.node_name, params);
}

// Per-core limits an earlier agent set (below the admin's saved values) are this agent's to
// manage and give back: without this they would stay until the admin restores them by hand.
void PowerControl::adopt_freq_limits() {
  if (!cpufreq_ready_ || !saved_) return;
  for (const hw::CpufreqCpuSnapshot &c : saved_->cpufreq.cpus) {
    auto cur = cpufreq_.max_freq_khz(c.cpu);
    if (cur.ok() && cur.value() < c.scaling_max_freq_khz) freq_set_[c.cpu] = cur.value();
  }
}

std::optional<NodeCapabilities> PowerControl::capabilities() const {
  if (!hardware_ready_) return std::nullopt;
  NodeCapabilities c;
  c.node = config_.node_name;
  c.restore_failures = restore_failures_total_;
  const hw::Capability hc = sockets_.capability();
  switch (monitor_only_ ? hw::CapBackend::none : hc.backend) {
    case hw::CapBackend::none:
      c.backend = proto::CapsBackend::none;
      break;
    case hw::CapBackend::rapl:
      c.backend = proto::CapsBackend::rapl;
      break;
    case hw::CapBackend::hsmp_hwmon:
      c.backend = proto::CapsBackend::hsmp_hwmon;
      break;
    case hw::CapBackend::hsmp_ioctl:
      c.backend = proto::CapsBackend::hsmp_ioctl;
      break;
  }
  c.energy = domains_.empty()                            ? proto::CapsEnergy::none
             : hc.energy == hw::EnergySource::hsmp_power ? proto::CapsEnergy::hsmp_power
             : hc.energy == hw::EnergySource::powercap   ? proto::CapsEnergy::powercap
                                                         : proto::CapsEnergy::none;
  if (counters_) {
    switch (counters_->mode()) {
      case hw::CounterMode::hardware:
        c.counters = proto::CapsCounters::hardware;
        break;
      case hw::CounterMode::software:
        c.counters = proto::CapsCounters::software;
        break;
      case hw::CounterMode::emulated:
        c.counters = proto::CapsCounters::emulated;
        break;
    }
  }
  c.domains = static_cast<std::uint16_t>(std::min<std::size_t>(domains_.size(), 65535));
  if (c.backend != proto::CapsBackend::none) {
    for (const Domain &d : domains_) {
      const hw::SocketDomain &sd = sockets_.domains()[d.zone];
      auto pd = sd.power_domain();
      if (pd.ok()) {
        c.min_w += pd.value().min_cap_w;
        c.max_w += pd.value().max_cap_w;
      }
      c.clamps += sd.clamps();
    }
    if (!(c.max_w >= c.min_w)) c.max_w = c.min_w;
  } else {
    c.reason = !hc.reason.empty() ? hc.reason
               : domains_.empty() ? "no package power domain with readable energy"
                                  : "some power domains cannot be capped";
    if (c.reason.size() > proto::kMaxMessageLen) c.reason.resize(proto::kMaxMessageLen);
  }
  return c;
}

void PowerControl::log_capabilities() {
  caps_logged_ = true;
  const std::optional<NodeCapabilities> c = capabilities();
  if (!c) return;
  std::string line = std::string("caps: ") + proto::to_string(c->backend);
  if (c->backend == proto::CapsBackend::none) {
    line += " (monitor): " + c->reason;
  } else {
    line += " (" + std::to_string(c->domains) + " socket(s), " + fmt_w(c->min_w) + ".." +
            fmt_w(c->max_w) + " W)";
  }
  line += "; counters: " + std::string(proto::to_string(c->counters)) +
          "; energy: " + proto::to_string(c->energy);
  log_(AgentLogLevel::info, line + " on " + config_.node_name);
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
    // Its owner decides what root's agent reports: its folders and itself must be root's
    // (or the agent's uid's) and not writable by others.
    auto text = hw::read_trusted_file(config_.emulate_path, {}, 1 << 20);
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
  if (cpufreq_ready_) st.cpus_allowed = read_cpus_allowed(st.pids);
  std::lock_guard<std::mutex> g(ledger_mu_);
  ledger_.begin(rs.key(), rs.mode, st.counting ? counters_name_ : "none", !st.domains.empty());
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
    if (cpufreq_ready_ && it->second.pids != rs.pids)
      it->second.cpus_allowed = read_cpus_allowed(rs.pids);
    it->second.pids = rs.pids;
  }
  std::vector<std::string> gone;
  for (const auto &kv : steps_) {
    if (!present.count(kv.first)) gone.push_back(kv.first);
  }
  for (const std::string &key : gone) finish_step(key);
}

std::optional<double> PowerControl::cap_in_force_w(std::size_t domain) const {
  auto pd = sockets_.domains()[domains_[domain].zone].power_domain();
  if (!pd.ok()) return std::nullopt;
  return pd.value().cap_w;
}

void PowerControl::period(const std::vector<RegisteredStep> &steps, double now_s, double wall_s) {
  if (!std::isfinite(wall_s)) wall_s = now_s;
  if (!hardware_ready_) setup_hardware();
  if (!counters_ready_) setup_counters();
  if (!caps_logged_) log_capabilities();
  interval_s_ = last_now_s_ ? now_s - *last_now_s_ : 0.0;
  last_now_s_ = now_s;

  // Energy per domain over the period.
  for (Domain &d : domains_) {
    d.energy_j = 0.0;
    d.power_w.reset();
    const hw::SocketDomain &sd = sockets_.domains()[d.zone];
    if (sd.energy_source() == hw::EnergySource::hsmp_power) {
      // No energy counter: the SMU's averaged socket power, taken as the period's mean.
      auto p = sd.read_power_w();
      if (p.ok() && interval_s_ > 0.0) {
        d.power_w = p.value();
        d.energy_j = p.value() * interval_s_;
      }
      continue;
    }
    if (!d.counter) continue;
    auto reading = sd.read_energy_uj();
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

  control(now_s, wall_s);
  if (!controller_) monitor_report(wall_s);

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
  // The report's job summaries carry their accounting up to this period.
  if (last_report_) fill_accounting(*last_report_);
}

void PowerControl::control(double now_s, double wall_s) {
  (void)now_s;
  if (monitor_only_ || !controller_) return;
  bool power_aware = false;
  for (const auto &kv : steps_) power_aware = power_aware || is_power_aware(kv.second.mode);
  if (!managed() && !power_aware && saved_) restore_caps("no power-aware step left");
  if (rebooted_) {
    // Once, at the first period (the controller's steps need two): down to the floors
    // unless the controller's grant came first.
    rebooted_ = false;
    if (managed() && !control_blocked_ && !controller_->lease().from_controller) hold_floors();
  }
  if (interval_s_ <= 0.0) {
    announce(wall_s);
    return;
  }
  // A managed node's caps are held within its lease whatever runs there; a local node's are
  // written only for power-aware steps. Never over a saved-caps file we could not read; the
  // controller still runs every period, for its report and its lease.
  const bool write_caps_now = (managed() || power_aware) && !control_blocked_;
  NodeInputs in;
  in.now_s = wall_s;
  if (!domain_inputs(in.domains)) return;
  in.jobs = job_inputs();
  const NodeDecision dec = controller_->step(in);
  for (const std::string &w : dec.warnings) log_(AgentLogLevel::debug, "controller: " + w);
  if (!dec.ok) {
    log_(AgentLogLevel::error, "controller: " + dec.error + "; caps unchanged");
    return;
  }
  const bool changed = write_caps_now && write_caps(dec, in.domains, false);
  if (write_caps_now && cpufreq_ready_) {
    apply_freq_limits(dec);
  } else if (!freq_set_.empty()) {
    release_freq_limits({});
  }
  // The report says what is in force now, not what was decided: the controller counts
  // these watts, and raises others only once a lowering is confirmed here.
  last_report_ = dec.report;
  last_report_->caps_w = caps_in_force_sum_w(in.domains);
  if (changed) {
    std::string caps;
    for (std::size_t i = 0; i < dec.caps_w.size(); ++i) {
      caps += (i ? "," : "") + domains_[i].zone_name + "=" + fmt_w(dec.caps_w[i]);
    }
    log_(AgentLogLevel::debug, "caps " + caps + " (grant " + fmt_w(dec.effective_grant_w) + " W)");
  }
}

// The registered steps as the node controller takes them: per step and domain its share of
// the CPUs and its counters over the period, split evenly over its domains.
std::vector<JobInput> PowerControl::job_inputs() const {
  std::vector<JobInput> out;
  for (const auto &kv : steps_) {
    const Step &st = kv.second;
    if (st.domains.empty()) continue;
    JobInput ji;
    ji.key = kv.first;
    ji.mode = st.mode;
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
    out.push_back(std::move(ji));
  }
  return out;
}

// The first period has no sample yet: a report of the caps in force and the jobs, without
// measurements (NodeController::announce), so that the cluster controller bounds the node by
// its caps rather than by its maximum and grants it its share a period sooner. Caps above
// the grant in force (a static grant, or a lease taken before this period) are fitted to it
// now, split evenly, rather than at the first step.
void PowerControl::announce(double wall_s) {
  if (last_report_) return;
  NodeInputs in;
  in.now_s = wall_s;
  if (!domain_inputs(in.domains)) return;
  in.jobs = job_inputs();  // their counters are not used: no estimate yet
  const NodeDecision dec = controller_->announce(in);
  if (!dec.ok) {
    log_(AgentLogLevel::debug, "controller: no first report: " + dec.error);
    return;
  }
  last_report_ = dec.report;
  last_report_->caps_w = caps_in_force_sum_w(in.domains);
  enforce_grant(wall_s);
  urgent_report_.reset();  // the period's report (last_report_) is sent now anyway
}

void PowerControl::hold_floors() {
  std::vector<DomainInput> doms;
  if (!domain_inputs(doms)) return;
  NodeDecision dec;
  dec.ok = true;
  for (std::size_t d = 0; d < doms.size(); ++d) {
    dec.caps_w.push_back(doms[d].min_cap_w);
    dec.apply_order.push_back(d);
  }
  const bool changed = write_caps(dec, doms, true);
  log_(AgentLogLevel::info, "caps on " + config_.node_name +
                                (changed ? " lowered to the domains' floors (" +
                                               fmt_w(caps_in_force_sum_w(doms)) + " W in force)"
                                         : " already at the domains' floors") +
                                " until the controller's first grant");
}

bool PowerControl::domain_inputs(std::vector<DomainInput> &out) {
  out.clear();
  for (const Domain &d : domains_) {
    auto pd = sockets_.domains()[d.zone].power_domain();
    if (!pd.ok()) {
      log_(AgentLogLevel::error, "zone " + d.zone_name + ": " + pd.message());
      return false;
    }
    DomainInput di;
    di.name = d.label;
    di.min_cap_w = pd.value().min_cap_w;
    di.max_cap_w = pd.value().max_cap_w;
    di.cap_w = pd.value().cap_w;
    if (d.power_w) di.power_w = *d.power_w;
    // A socket model scaled to the domain's maximum (P0 about 30% of TDP), 3.4 GHz top clock.
    di.model = PowerModel{0.29 * di.max_cap_w, di.max_cap_w, 3.4e9, 1.0};
    out.push_back(di);
  }
  return true;
}

bool PowerControl::write_caps(const NodeDecision &dec, const std::vector<DomainInput> &domains,
                              bool lower_only) {
  bool changed = false;
  for (std::size_t i : dec.apply_order) {
    if (i >= domains_.size() || i >= dec.caps_w.size() || i >= domains.size()) continue;
    const DomainInput &di = domains[i];
    // The controller keeps its caps within the hardware's bounds; checked again here, since
    // a cap outside them is refused by the kernel or, worse, taken.
    const double want_w = dec.caps_w[i];
    if (!std::isfinite(want_w) || want_w < di.min_cap_w - 1e-6 || want_w > di.max_cap_w + 1e-6) {
      log_(AgentLogLevel::error, "cap of " + domains_[i].zone_name + ": " + fmt_w(want_w) +
                                     " W is outside " + fmt_w(di.min_cap_w) + ".." +
                                     fmt_w(di.max_cap_w) + " W: not written");
      break;  // never raise another domain after a lowering that did not happen
    }
    const std::optional<double> now_w = cap_in_force_w(i);
    const double cur_w = now_w ? *now_w : di.cap_w;
    if (std::fabs(want_w - cur_w) < 0.01) continue;
    if (lower_only && std::isfinite(cur_w) && want_w > cur_w) continue;
    hw::SocketDomain &z = sockets_.domains()[domains_[i].zone];
    // A domain whose write the hardware refused (a firmware lock found at the first write,
    // permission) is not tried again: the refusal was logged once and the capability report
    // says "caps: none" with it. Nothing else is raised either.
    if (!z.controllable()) break;
    if (!saved_ && !save_caps()) break;
    // Rounded down: caps rounded to the nearest uW could sum 1 uW above the grant. (The
    // kernel rounds down again, to the hardware's power unit.)
    const unsigned long clamps_before = z.clamps();
    const auto want_uw = static_cast<std::uint64_t>(std::floor(want_w * 1e6));
    auto r = z.apply_limit_uw(want_uw);
    if (r.ok() && z.clamps() != clamps_before) {
      // The firmware holds the socket elsewhere than asked (HSMP clamps to its own range):
      // the domain's range follows, so the next reports (min_w, caps_w) and the
      // controller's curves see what the hardware does.
      log_(AgentLogLevel::info, "cap of " + domains_[i].zone_name + ": asked " + fmt_w(want_w) +
                                    " W, the firmware holds " +
                                    fmt_w(static_cast<double>(r.value()) / 1e6) +
                                    " W (clamped to its range)");
      // Held above the request: the watts the decision counted on are not freed, so no
      // other domain is raised this period (the next one fits the new range).
      if (r.value() > want_uw) lower_only = true;
    }
    if (!r.ok()) {
      log_(AgentLogLevel::error,
           "cap of " + domains_[i].zone_name + ": " + r.message() +
               (z.controllable() ? "" : "; this domain is not written again (caps: none)"));
      break;  // later domains may be raises: never raise after a failed lowering
    }
    changed = true;
  }
  return changed;
}

double PowerControl::cap_in_force_or_max_w(std::size_t d,
                                           const std::vector<DomainInput> &domains) const {
  const std::optional<double> cap = cap_in_force_w(d);
  return cap ? *cap : (d < domains.size() ? domains[d].max_cap_w : 0.0);
}

double PowerControl::caps_in_force_sum_w(const std::vector<DomainInput> &domains) const {
  double in_force_w = 0.0;
  for (std::size_t d = 0; d < domains_.size(); ++d) in_force_w += cap_in_force_or_max_w(d, domains);
  return in_force_w;
}

void PowerControl::fill_accounting(NodeReport &report) const {
  if (report.jobs.empty()) return;
  std::map<std::string, JobEnergySummary> by_key;
  {
    std::lock_guard<std::mutex> g(ledger_mu_);
    for (JobEnergySummary &s : ledger_.summaries()) {
      if (s.running) by_key[s.key] = std::move(s);
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (JobSummary &j : report.jobs) {
    auto it = by_key.find(j.job);
    if (it == by_key.end()) continue;
    const JobEnergySummary &s = it->second;
    j.elapsed_s = s.seconds;
    j.energy_j = s.energy_measured ? s.energy_j : nan;
    j.avg_w = s.energy_measured && s.seconds > 0.0 ? s.energy_j / s.seconds : nan;
    j.cap_min_w = s.cap_min_w.value_or(nan);
    j.cap_max_w = s.cap_max_w.value_or(nan);
    j.cap_mean_w = s.cap_mean_w().value_or(nan);
  }
}

std::set<int> PowerControl::read_cpus_allowed(const std::set<pid_t> &pids) const {
  std::set<int> cpus;
  for (pid_t p : pids) {
    std::ifstream f(config_.procfs_root + "/" + std::to_string(p) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      static const std::string key = "Cpus_allowed_list:";
      if (line.compare(0, key.size(), key) != 0) continue;
      std::string v = line.substr(key.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(v.begin());
      auto list = hw::parse_cpu_list(v);
      if (list.ok()) cpus.insert(list.value().begin(), list.value().end());
      break;
    }
  }
  return cpus;
}

namespace {


}  // namespace

void PowerControl::apply_freq_limits(const NodeDecision &dec) {
  // Targets: cpu -> kHz, for the CPUs of steered steps that share a package with another
  // steered step whose marginal gain there is higher.
  std::map<int, std::uint64_t> targets;
  // CPUs whose limits stay as they are this period: a steered job on their package has no
  // estimate this period (a new step, a stale sample), so the split cannot be judged; its
  // limits are neither moved nor released until it has one again.
  std::set<int> hold;
  for (std::size_t d = 0; d < domains_.size(); ++d) {
    const std::optional<int> pkg = sockets_.domains()[domains_[d].zone].package_id();
    if (!pkg) continue;
    std::set<std::uint32_t> live;
    // The package's limited CPUs stay as they are (no decision this period).
    // A CPU that steps of two jobs (or a plain step) may run on is never held: it is
    // released at once, as below.
    auto hold_package = [&] {
      for (const auto &kv : freq_set_) {
        auto pc = package_of_cpu_.find(kv.first);
        if (pc == package_of_cpu_.end() || pc->second != *pkg) continue;
        std::set<std::uint32_t> jobs_on_cpu;
        bool plain = false;
        for (const auto &st : steps_) {
          if (!st.second.cpus_allowed.count(kv.first)) continue;
          jobs_on_cpu.insert(job_id_of(st.first));
          plain = plain || !is_steered(st.second.mode);
        }
        if (jobs_on_cpu.size() <= 1 && !plain) hold.insert(kv.first);
      }
    };
    {
      std::set<std::uint32_t> estimated;
      for (const auto &kv : steps_) {
        if (!is_steered(kv.second.mode)) continue;
        for (int cpu : kv.second.cpus_allowed) {
          auto pc = package_of_cpu_.find(cpu);
          if (pc != package_of_cpu_.end() && pc->second == *pkg) live.insert(job_id_of(kv.first));
        }
      }
      for (const JobDomainShare &js : dec.job_shares)
        if (js.domain == d && std::isfinite(js.gain_share)) estimated.insert(job_id_of(js.job));
      bool missing = false;
      for (std::uint32_t j : live) missing = missing || !estimated.count(j);
      if (live.size() >= 2 && missing) {
        hold_package();
        continue;
      }
    }
    // One entry per job: its steps (e.g. the batch step and an srun step on the same CPUs)
    // share its CPUs and add up their gain shares.
    struct Entry {
      double share = 0.0;
      std::set<int> own;
    };
    std::map<std::uint32_t, Entry> by_job;
    for (const JobDomainShare &js : dec.job_shares) {
      if (js.domain != d) continue;
      auto it = steps_.find(js.job);
      if (it == steps_.end() || !is_steered(it->second.mode)) continue;
      if (!std::isfinite(js.gain_share)) continue;
      const std::uint32_t job = job_id_of(js.job);
      Entry &e = by_job[job];
      e.share += std::max(0.0, js.gain_share);
      for (int cpu : it->second.cpus_allowed) {
        auto pc = package_of_cpu_.find(cpu);
        if (pc == package_of_cpu_.end() || pc->second != *pkg) continue;
        // Its own CPUs only: a CPU another job's step may run on (power-aware or not) is
        // never limited for this one.
        bool shared = false;
        for (const auto &kv : steps_) {
          if (job_id_of(kv.first) != job && kv.second.cpus_allowed.count(cpu)) shared = true;
        }
        if (!shared && cpufreq_.find(cpu) != nullptr) e.own.insert(cpu);
      }
    }
    std::vector<Entry> entries;
    for (auto &kv : by_job)
      if (!kv.second.own.empty()) entries.push_back(std::move(kv.second));
    // No split this period with two or more steered jobs still on the package (their shares
    // all zero, or their CPUs shared for a moment): hold, rather than release at once and
    // lower again step by step. Released when the jobs are gone (live < 2).
    if (entries.size() < 2) {
      if (live.size() >= 2) hold_package();
      continue;
    }
    double top = 0.0;
    for (const Entry &e : entries) top = std::max(top, e.share);
    if (!(top > 0.0)) {
      if (live.size() >= 2) hold_package();
      continue;
    }
    for (const Entry &e : entries) {
      const double rel = std::clamp(e.share / top, 0.0, 1.0);
      if (rel >= 1.0 - 1e-9) {
        // The top job keeps the admin's limits. One whose CPUs are limited now (it was lower
        // until this period) gets them back step by step, and only once it leads by more
        // than the hysteresis: lowering a job's frequency raises its marginal gain there,
        // so without this the two jobs' shares come level, the lowered one is released at
        // once, and the split cycles (seen every ~3 s on a busy machine).
        double runner_up = 0.0;
        for (const Entry &o : entries)
          if (&o != &e) runner_up = std::max(runner_up, o.share);
        const bool clear_lead = runner_up < (1.0 - kFreqHysteresis) * top;
        for (int cpu : e.own) {
          if (!freq_set_.count(cpu)) continue;
          if (!clear_lead) {
            hold.insert(cpu);
          } else if (auto admin = saved_cpufreq_khz(cpu)) {
            targets[cpu] = *admin;
          }
        }
        continue;
      }
      for (int cpu : e.own) {
        const hw::CpufreqCpu *info = cpufreq_.find(cpu);
        // The admin's value: on record once saved; before the first save, what is in force
        // (nothing here has changed it yet).
        std::optional<std::uint64_t> admin = saved_cpufreq_khz(cpu);
        if (!saved_) {
          auto cur = cpufreq_.max_freq_khz(cpu);
          if (cur.ok()) admin = cur.value();
        }
        if (!admin) continue;
        const std::uint64_t floor_khz =
            std::min(*admin, std::max(info->cpuinfo_min_khz, info->scaling_min_khz));
        targets[cpu] = floor_khz + static_cast<std::uint64_t>(
                                       std::llround(rel * static_cast<double>(*admin - floor_khz)));
      }
    }
  }
  if (!targets.empty() && !saved_ && !save_caps()) return;
  if (saved_ && saved_->cpufreq.cpus.empty() && !targets.empty()) {
    // Saved before per-core limits were possible: the admin's values are not on record.
    targets.clear();
  }
  std::set<int> keep;
  bool changed = false;
  for (const auto &[cpu, target] : targets) {
    const hw::CpufreqCpu *info = cpufreq_.find(cpu);
    const auto admin = saved_cpufreq_khz(cpu);
    if (info == nullptr || !admin) continue;
    const std::uint64_t floor_khz =
        std::min(*admin, std::max(info->cpuinfo_min_khz, info->scaling_min_khz));
    auto cur = cpufreq_.max_freq_khz(cpu);
    if (!cur.ok()) continue;
    const double range = static_cast<double>(info->cpuinfo_max_khz - info->cpuinfo_min_khz);
    const double step = std::max(1.0, config_.freq_max_step_frac * range);
    const double diff = static_cast<double>(target) - static_cast<double>(cur.value());
    if (std::fabs(diff) < config_.freq_deadband_frac * range && freq_set_.count(cpu)) {
      keep.insert(cpu);
      continue;
    }
    double next = static_cast<double>(cur.value()) + std::clamp(diff, -step, step);
    next = std::clamp(next, static_cast<double>(floor_khz), static_cast<double>(*admin));
    const auto want = static_cast<std::uint64_t>(std::llround(next));
    if (want >= *admin) continue;  // back at the admin's value: released below
    if (want == cur.value() && freq_set_.count(cpu)) {
      keep.insert(cpu);
      continue;
    }
    if (freq_refused_.count(cpu)) continue;
    auto r = cpufreq_.set_max_freq_khz(cpu, want);
    if (!r.ok()) {
      // Logged once; the CPU is left alone from then on.
      freq_refused_.insert(cpu);
      log_(AgentLogLevel::error, "scaling_max_freq of cpu" + std::to_string(cpu) + ": " +
                                     r.message() + "; its frequency is no longer limited");
      continue;
    }
    freq_set_[cpu] = r.value();
    keep.insert(cpu);
    changed = true;
  }
  keep.insert(hold.begin(), hold.end());
  release_freq_limits(keep);
  if (changed) {
    std::string what;
    for (const auto &[cpu, khz] : freq_set_) {
      what += (what.empty() ? "" : ",") + std::string("cpu") + std::to_string(cpu) + "=" +
              std::to_string(khz / 1000) + "MHz";
    }
    log_(AgentLogLevel::debug, "frequency limits " + what);
  }
}

void PowerControl::release_freq_limits(const std::set<int> &keep) {
  std::vector<int> done;
  for (const auto &[cpu, khz] : freq_set_) {
    (void)khz;
    if (keep.count(cpu)) continue;
    const auto admin = saved_cpufreq_khz(cpu);
    if (!admin) {
      done.push_back(cpu);
      continue;
    }
    hw::CpufreqSnapshot one;
    one.cpus.push_back({cpu, *admin});
    hw::Status s = cpufreq_.restore(one);  // exact, checked by reading back
    if (!s.ok()) {
      log_(AgentLogLevel::error, "giving cpu" + std::to_string(cpu) +
                                     " its scaling_max_freq back failed: " + s.message());
      continue;
    }
    done.push_back(cpu);
  }
  for (int cpu : done) freq_set_.erase(cpu);
}

std::optional<std::uint64_t> PowerControl::saved_cpufreq_khz(int cpu) const {
  if (!saved_) return std::nullopt;
  for (const hw::CpufreqCpuSnapshot &c : saved_->cpufreq.cpus) {
    if (c.cpu == cpu) return c.scaling_max_freq_khz;
  }
  return std::nullopt;
}

hw::Status PowerControl::restore_cpufreq(const hw::CpufreqSnapshot &saved) {
  if (saved.cpus.empty()) return hw::Status::success();
  if (!cpufreq_ready_) {
    hw::Status s = cpufreq_.discover();
    if (!s.ok()) return s;
  }
  hw::Status s = cpufreq_.restore(saved);
  if (s.ok()) freq_set_.clear();
  return s;
}

bool PowerControl::save_caps() {
  auto snap = sockets_.powercap_snapshot();
  auto hsmp = sockets_.hsmp_snapshot();
  if (!snap.ok() || !hsmp.ok()) {
    log_(AgentLogLevel::error,
         "cannot read the caps to save: " + (snap.ok() ? hsmp.message() : snap.message()) +
             "; caps left alone");
    return false;
  }
  hw::HardwareSnapshot hs;
  hs.powercap = snap.value();
  hs.hsmp = hsmp.value();
  if (cpufreq_ready_) {
    auto fs = cpufreq_.snapshot();
    if (!fs.ok()) {
      log_(AgentLogLevel::error, "cannot read the frequency limits to save: " + fs.message() +
                                     "; caps left alone");
      return false;
    }
    hs.cpufreq = fs.value();
  }
  const std::string path = saved_caps_path(config_.state_dir);
  const hw::SecureDir *dir = state_dir();
  hw::Status s = dir ? hw::save_snapshot_at(*dir, kSavedCapsFile, hs)
                     : hw::Status::failure("no state folder: " + state_error_);
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

bool PowerControl::restore_caps(const std::string &why) {
  if (!saved_) return false;
  hw::Status s = sockets_.restore(saved_->powercap, saved_->hsmp);
  if (s.ok()) s = restore_cpufreq(saved_->cpufreq);
  if (!s.ok()) {
    log_restore_failure(s.message());
    return false;
  }
  saved_.reset();
  const std::string path = saved_caps_path(config_.state_dir);
  const hw::SecureDir *dir = state_dir();
  hw::Status r =
      dir ? dir->remove(kSavedCapsFile) : hw::Status::failure("no state folder: " + state_error_);
  if (!r.ok()) log_(AgentLogLevel::error, "cannot remove " + path + ": " + r.message());
  if (restore_failures_ > 0) {
    log_(AgentLogLevel::info, "restoring the saved caps on " + config_.node_name +
                                  " succeeded after " + std::to_string(restore_failures_) +
                                  " failed attempt(s)");
    restore_failures_ = 0;
  }
  log_(AgentLogLevel::info, "caps restored on " + config_.node_name + " (" + why + ")");
  return true;
}

void PowerControl::log_restore_failure(const std::string &what) {
  // Retried every period: one line per minute is enough to see it goes on.
  const double now = last_now_s_.value_or(0.0);
  ++restore_failures_;
  ++restore_failures_total_;
  if (restore_failures_ > 1 && now - last_restore_log_s_ < 60.0) return;
  last_restore_log_s_ = now;
  log_(AgentLogLevel::error,
       "restoring the saved caps on " + config_.node_name + " failed (" + what +
           "); the file is kept and the restore retried every period" +
           (restore_failures_ > 1 ? " (" + std::to_string(restore_failures_) + " failures so far)"
                                  : std::string()));
}

void PowerControl::monitor_report(double wall_s) {
  NodeReport r;
  r.node = config_.node_name;
  r.incarnation = config_.incarnation;
  r.report_seq = ++report_seq_;
  r.sent_at_s = wall_s;
  r.started_at_s = config_.started_at_s;
  double power_w = 0.0;
  bool power_known = !domains_.empty();
  for (const Domain &d : domains_) {
    if (d.power_w)
      power_w += *d.power_w;
    else
      power_known = false;
  }
  r.power_w = power_known ? power_w : std::numeric_limits<double>::quiet_NaN();
  r.idle = steps_.empty();
  r.steerable = false;
  last_report_ = r;
}

void PowerControl::shutdown() {
  std::vector<std::string> keys;
  for (const auto &kv : steps_) keys.push_back(kv.first);
  for (const std::string &k : keys) finish_step(k);
  if (managed() && saved_) {
    // Its jobs run on under slurmstepd, and the controller counts the node at its caps
    // until an agent reports again: nothing may rise. An idle node is already held at its
    // grant (the idle cap).
    log_(AgentLogLevel::info, "agent stopping on managed node " + config_.node_name +
                                  ": caps left as they are; the admin's settings stay saved in " +
                                  saved_caps_path(config_.state_dir));
    return;
  }
  restore_caps("agent stopping");
}

}  // namespace powergrad
