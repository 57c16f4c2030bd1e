#include "hardware/socket_power.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <exception>
#include <map>

#include "hardware/cpufreq.hpp"
#include "libgradient/format.hpp"

namespace powergrad::hw {

namespace {

std::string watts(std::uint64_t uw) { return format_w(static_cast<double>(uw) / 1e6); }

}  // namespace

const char *to_string(EnergySource source) {
  switch (source) {
    case EnergySource::none:
      return "none";
    case EnergySource::powercap:
      return "powercap";
    case EnergySource::hsmp_power:
      return "hsmp-power";
  }
  return "none";
}

std::string Capability::caps_text() const {
  if (backend == CapBackend::none) return "caps: none (monitor): " + reason;
  return std::string("caps: ") + to_string(backend);
}

// ---------------------------------------------------------------- SocketDomain

Result<std::uint64_t> SocketDomain::read_energy_uj() const {
  if (energy_ != EnergySource::powercap || zone_ == nullptr) {
    return Error{name_ + ": no energy counter (" + to_string(energy_) + ")", ENOENT};
  }
  return zone_->read_energy_uj();
}

std::uint64_t SocketDomain::max_energy_range_uj() const {
  return zone_ != nullptr ? zone_->max_energy_range_uj() : 0;
}

Result<double> SocketDomain::read_power_w() const {
  if (hsmp_ == nullptr) return Error{name_ + ": no HSMP socket power", ENOENT};
  Result<std::uint64_t> uw = hsmp_->power_uw(socket_);
  if (!uw.ok()) return uw.error();
  return static_cast<double>(uw.value()) / 1e6;
}

Result<PowerDomain> SocketDomain::power_domain() const {
  if (!controllable()) return Error{refusal_, EPERM};
  if (backend_ == CapBackend::rapl) {
    Result<PowerDomain> d = zone_->power_domain();
    if (d.ok()) d->name = name_;
    return d;
  }
  Result<std::uint64_t> limit = hsmp_->limit_uw(socket_);
  if (!limit.ok()) return limit.error();
  PowerDomain d;
  d.name = name_;
  const double floor_uw = std::max(floor_fraction_ * static_cast<double>(hsmp_max_uw_),
                                   static_cast<double>(fw_floor_uw_.value_or(0)));
  d.max_cap_w = static_cast<double>(hsmp_max_uw_) / 1e6;
  d.min_cap_w = std::min(floor_uw / 1e6, d.max_cap_w);
  d.cap_w = std::min(static_cast<double>(limit.value()) / 1e6, d.max_cap_w);
  return d;
}

Result<std::uint64_t> SocketDomain::apply_limit_uw(std::uint64_t limit_uw) {
  if (!controllable()) return Error{refusal_, EPERM};
  if (backend_ == CapBackend::rapl) {
    Result<std::uint64_t> r = zone_->apply_long_term_limit_uw(limit_uw);
    if (!r.ok() && (r.errno_value() == EACCES || r.errno_value() == EPERM)) {
      // Refused by the kernel although the file opened for writing: the firmware lock. No
      // write is tried again; the capability report says why from now on.
      refusal_ = r.message();
    }
    return r;
  }
  const std::uint64_t upper = hsmp_max_uw_;
  const auto floor = static_cast<std::uint64_t>(std::max(
      floor_fraction_ * static_cast<double>(upper), static_cast<double>(fw_floor_uw_.value_or(0))));
  if (limit_uw < floor) {
    return Error{hsmp_->where(socket_) + ": refused: " + watts(limit_uw) +
                     " is below the floor of " + watts(floor),
                 ERANGE};
  }
  const std::uint64_t value = std::min(limit_uw, upper);
  Status s = hsmp_->set_limit_uw(socket_, value);
  if (!s.ok()) {
    if (s.errno_value() == EACCES || s.errno_value() == EPERM) refusal_ = s.message();
    return s.error();
  }
  Result<std::uint64_t> back = hsmp_->limit_uw(socket_);
  if (!back.ok()) return back;
  const std::uint64_t want_mw = value / 1000u, got_mw = back.value() / 1000u;
  if (got_mw != want_mw) {
    ++clamps_;
    if (got_mw > want_mw) {
      fw_floor_uw_ = std::max(fw_floor_uw_.value_or(0), back.value());
    } else {
      hsmp_max_uw_ = std::max<std::uint64_t>(back.value(), 1000u);
    }
  }
  return back;
}

// ---------------------------------------------------------------- SocketPower

SocketPower::SocketPower(SocketPowerOptions options)
    : options_(std::move(options)),
      tree_(options_.sysfs_root, PowercapOptions{options_.floor_fraction}) {}

void SocketPower::set_hsmp_for_testing(std::unique_ptr<HsmpSockets> sockets) {
  hsmp_ = std::move(sockets);
  hsmp_injected_ = hsmp_ != nullptr;
}

Result<SocketDomain *> SocketPower::find(const std::string &name) {
  for (auto &d : domains_) {
    if (d.name() == name) return &d;
  }
  return Error{"no power domain " + name, ENOENT};
}

void SocketPower::choose_hsmp(int sockets_wanted, std::string &why_not) {
  if (!hsmp_injected_) {
    hsmp_.reset();
    if (!options_.try_hsmp) {
      why_not = "HSMP not tried";
      return;
    }
    Result<std::unique_ptr<HsmpSockets>> hw = discover_hsmp_hwmon(options_.sysfs_root);
    if (hw.ok() && hw.value()->sockets() >= sockets_wanted) {
      hsmp_ = std::move(hw).value();
    } else {
      std::string hwmon_why = hw.ok() ? std::to_string(hw.value()->sockets()) +
                                            " amd_hsmp_hwmon device(s) for " +
                                            std::to_string(sockets_wanted) + " socket(s)"
                                      : hw.message();
      std::function<Result<std::unique_ptr<HsmpDevice>>()> open = options_.open_hsmp;
      if (!open && options_.sysfs_root == "/sys") open = [] { return open_hsmp_device(); };
      if (!open) {
        why_not = "no HSMP: " + hwmon_why + "; /dev/hsmp not tried beside a test tree";
        return;
      }
      Result<std::unique_ptr<HsmpDevice>> dev = open();
      if (!dev.ok()) {
        why_not = "no HSMP: " + hwmon_why + "; " + dev.message();
        return;
      }
      Result<std::unique_ptr<HsmpSockets>> io =
          make_hsmp_ioctl(std::shared_ptr<HsmpDevice>(std::move(dev).value()), sockets_wanted);
      if (!io.ok()) {
        why_not = "no HSMP: " + hwmon_why + "; " + io.message();
        return;
      }
      hsmp_ = std::move(io).value();
    }
  }
}

Capability SocketPower::capability() const {
  Capability c = capability_;
  for (const SocketDomain &d : domains_) {
    if (!d.controllable() && c.backend != CapBackend::none) {
      c.reason = d.refusal_;
      c.backend = CapBackend::none;
    }
  }
  return c;
}

Status SocketPower::discover() try {
  domains_.clear();
  notes_.clear();
  capability_ = Capability{};
  Status pc = tree_.discover();
  std::vector<PowercapZone *> packages;
  if (pc.ok()) {
    for (const std::string &n : tree_.notes()) notes_.push_back(n);
    packages = tree_.packages();
  }
  bool has_limits = false;
  for (PowercapZone *z : packages) has_limits = has_limits || !z->constraints().empty();

  auto add_powercap_domain = [&](PowercapZone *z) {
    SocketDomain d;
    d.name_ = z->name();
    d.label_ = z->label();
    d.package_id_ = z->package_id();
    d.zone_ = z;
    d.floor_fraction_ = options_.floor_fraction;
    if (z->has_energy()) {
      d.energy_ = EnergySource::powercap;
    } else {
      d.energy_refusal_ = z->energy_refusal();
    }
    return d;
  };

  if (has_limits) {
    // Intel RAPL (or anything with powercap limit registers): caps through the zones.
    for (PowercapZone *z : packages) {
      SocketDomain d = add_powercap_domain(z);
      d.backend_ = CapBackend::rapl;
      if (tree_.control_type_enabled() == std::optional<bool>(false)) {
        d.refusal_ = tree_.powercap_dir() +
                     "/intel-rapl/enabled is 0: the powercap control type is disabled, no "
                     "zone limit acts";
      } else if (!z->controllable()) {
        d.refusal_ = z->control_refusal();
      }
      domains_.push_back(std::move(d));
    }
    capability_.backend = CapBackend::rapl;
  } else {
    // Energy-only zones (AMD) or no powercap: HSMP caps the sockets if it is there.
    int wanted = static_cast<int>(packages.size());
    std::map<int, int> topo_packages;
    if (wanted == 0) {
      auto topo = read_cpu_topology(options_.sysfs_root);
      if (topo.ok()) {
        for (const auto &kv : topo.value().package_of_cpu) topo_packages[kv.second] = 1;
      }
      wanted = std::max<int>(1, static_cast<int>(topo_packages.size()));
    }
    std::string why_not;
    choose_hsmp(wanted, why_not);
    if (hsmp_) {
      capability_.backend = hsmp_->backend();
      for (int s = 0; s < std::min(wanted, hsmp_->sockets()); ++s) {
        SocketDomain d;
        PowercapZone *zone = nullptr;
        for (PowercapZone *z : packages) {
          if (z->package_id() == std::optional<int>(s)) zone = z;
        }
        if (zone == nullptr && s < static_cast<int>(packages.size()) &&
            !packages[static_cast<std::size_t>(s)]->package_id()) {
          zone = packages[static_cast<std::size_t>(s)];
        }
        if (zone != nullptr) {
          d = add_powercap_domain(zone);
        } else {
          d.name_ = "hsmp:" + std::to_string(s);
          d.label_ = "package-" + std::to_string(s);
          d.package_id_ = s;
          d.floor_fraction_ = options_.floor_fraction;
        }
        d.backend_ = hsmp_->backend();
        d.hsmp_ = hsmp_.get();
        d.socket_ = s;
        if (d.energy_ == EnergySource::none) {
          if (hsmp_->power_uw(s).ok()) {
            d.energy_ = EnergySource::hsmp_power;
          } else if (d.energy_refusal_.empty()) {
            d.energy_refusal_ = hsmp_->where(s) + ": no socket power reading";
          }
        }
        Result<std::uint64_t> max = hsmp_->limit_max_uw(s);
        if (!max.ok()) {
          d.refusal_ = max.message();
        } else if (max.value() == 0) {
          d.refusal_ = hsmp_->where(s) +
                       ": maximum socket power limit is 0 (firmware left it "
                       "empty): no safe upper bound";
        } else if (!hsmp_->writable(s)) {
          d.refusal_ = "permission: " + hsmp_->write_refusal(s);
        } else if (!hsmp_->limit_uw(s).ok()) {
          d.refusal_ = hsmp_->limit_uw(s).message();
        } else {
          d.hsmp_max_uw_ = max.value();
        }
        domains_.push_back(std::move(d));
      }
    } else {
      for (PowercapZone *z : packages) {
        SocketDomain d = add_powercap_domain(z);
        d.refusal_ = why_not;
        domains_.push_back(std::move(d));
      }
      capability_.reason = (packages.empty() ? (pc.ok() ? "no package zones" : pc.message())
                                             : std::string("energy-only powercap zones (AMD "
                                                           "RAPL has no limit registers)")) +
                           "; " + why_not;
    }
  }
  capability_.domains = static_cast<int>(domains_.size());
  for (const SocketDomain &d : domains_) {
    if (d.energy_ != EnergySource::none) {
      // One source names the node's: powercap wins where both exist on one node.
      if (capability_.energy == EnergySource::none || d.energy_ == EnergySource::powercap)
        capability_.energy = d.energy_;
    }
  }
  if (domains_.empty()) {
    if (capability_.reason.empty())
      capability_.reason = pc.ok() ? "no package zones" : pc.message();
    return Status::failure(capability_.reason, ENOENT);
  }
  return Status::success();
} catch (...) {
  return Status::failure(current_exception_message("socket power discovery"), ENOMEM);
}

Result<HsmpSnapshot> SocketPower::hsmp_snapshot() const {
  HsmpSnapshot snap;
  for (const SocketDomain &d : domains_) {
    if (d.hsmp_ == nullptr || !d.controllable()) continue;
    Result<std::uint64_t> v = d.hsmp_->limit_uw(d.socket_);
    if (!v.ok()) return v.error();
    snap.sockets.push_back({d.socket_, v.value()});
  }
  return snap;
}

Status SocketPower::restore(const PowercapSnapshot &powercap, const HsmpSnapshot &hsmp) try {
  StatusCollector errors;
  if (!powercap.zones.empty()) errors.add(tree_.restore(powercap));
  for (const HsmpSocketSnapshot &s : hsmp.sockets) {
    if (!hsmp_ || s.socket < 0 || s.socket >= hsmp_->sockets()) {
      errors.add(Status::failure(
          "saved HSMP limit of socket " + std::to_string(s.socket) + ": no such socket now",
          ENOENT));
      continue;
    }
    Status w = hsmp_->set_limit_uw(s.socket, s.power_cap_uw);
    if (!w.ok()) {
      errors.add(w);
      continue;
    }
    Result<std::uint64_t> back = hsmp_->limit_uw(s.socket);
    if (!back.ok()) {
      errors.add(back.status());
    } else if (back.value() != s.power_cap_uw) {
      errors.add(Status::failure(hsmp_->where(s.socket) + ": restored " +
                                     std::to_string(s.power_cap_uw) + " but it reads back " +
                                     std::to_string(back.value()),
                                 EIO));
    }
    // The admin's value is by definition acceptable: a floor learned below it stays.
    for (SocketDomain &d : domains_) {
      if (d.socket_ == s.socket && d.hsmp_max_uw_ != 0 && s.power_cap_uw > d.hsmp_max_uw_)
        d.hsmp_max_uw_ = s.power_cap_uw;
    }
  }
  return errors.status();
} catch (...) {
  return Status::failure(current_exception_message("socket power restore"), ENOMEM);
}

}  // namespace powergrad::hw
