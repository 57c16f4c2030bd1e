#include "hardware/powercap.hpp"

#include <algorithm>
#include <cerrno>
#include <exception>
#include <tuple>

#include "libgradient/format.hpp"

namespace powergrad::hw {

namespace {

constexpr int kMaxConstraints = 8;  // RAPL has 2 (package: long/short), 3 with PL4

std::string watts(std::uint64_t uw) { return format_w(static_cast<double>(uw) / 1e6); }

// "intel-rapl:3" -> (3, nullopt), "intel-rapl:3:1" -> (3, 1); false for anything else
// (the control type folder "intel-rapl", "intel-rapl-mmio:0", "dtpm", ...).
bool parse_rapl_zone_name(const std::string &name, std::uint64_t *package,
                          std::optional<std::uint64_t> *sub) {
  static const std::string prefix = "intel-rapl:";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const std::string rest = name.substr(prefix.size());
  const auto colon = rest.find(':');
  if (colon == std::string::npos) {
    sub->reset();
    return parse_u64(rest, package);
  }
  std::uint64_t s = 0;
  if (!parse_u64(rest.substr(0, colon), package) || !parse_u64(rest.substr(colon + 1), &s)) {
    return false;
  }
  *sub = s;
  return true;
}

ZoneKind kind_from_label(const std::string &label, std::optional<int> *package_id,
                         std::optional<int> *die_id) {
  if (label.compare(0, 8, "package-") == 0) {
    // "package-0" or, on multi-die parts, "package-0-die-1".
    const std::string rest = label.substr(8);
    const auto dash = rest.find("-die-");
    std::uint64_t p = 0, d = 0;
    if (dash == std::string::npos) {
      if (parse_u64(rest, &p) && p < 65536) *package_id = static_cast<int>(p);
    } else if (parse_u64(rest.substr(0, dash), &p) && parse_u64(rest.substr(dash + 5), &d) &&
               p < 65536 && d < 65536) {
      *package_id = static_cast<int>(p);
      *die_id = static_cast<int>(d);
    }
    return ZoneKind::package;
  }
  if (label == "core") return ZoneKind::core;
  if (label == "uncore") return ZoneKind::uncore;
  if (label == "dram") return ZoneKind::dram;
  if (label == "psys") return ZoneKind::psys;
  return ZoneKind::other;
}

ConstraintKind constraint_kind(const std::string &name) {
  if (name == "long_term") return ConstraintKind::long_term;
  if (name == "short_term") return ConstraintKind::short_term;
  if (name == "peak_power") return ConstraintKind::peak_power;
  return ConstraintKind::other;
}

}  // namespace

const char *to_string(ZoneKind kind) {
  switch (kind) {
    case ZoneKind::package:
      return "package";
    case ZoneKind::core:
      return "core";
    case ZoneKind::uncore:
      return "uncore";
    case ZoneKind::dram:
      return "dram";
    case ZoneKind::psys:
      return "psys";
    case ZoneKind::other:
      break;
  }
  return "other";
}

const char *to_string(ConstraintKind kind) {
  switch (kind) {
    case ConstraintKind::long_term:
      return "long_term";
    case ConstraintKind::short_term:
      return "short_term";
    case ConstraintKind::peak_power:
      return "peak_power";
    case ConstraintKind::other:
      break;
  }
  return "other";
}

Status check_zone_name(std::string_view name) {
  Status s = check_path_component(name, "powercap zone name");
  if (!s.ok()) return s;
  if (name.size() > 64) {
    return Status::failure("powercap zone name '" + std::string(name.substr(0, 64)) +
                               "...' refused: longer than 64 bytes",
                           EINVAL);
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == ':';
    if (!ok) {
      return Status::failure("powercap zone name '" + std::string(name) +
                                 "' refused: only letters, digits, '-', '_' and ':' are allowed",
                             EINVAL);
    }
  }
  return Status::success();
}

// ---------------------------------------------------------------- PowercapConstraint

Result<std::uint64_t> PowercapConstraint::power_limit_uw() const { return limit_.read_u64(); }

Result<std::uint64_t> PowercapConstraint::time_window_us() const {
  if (!has_window_) {
    return Error{limit_.path() + ": constraint " + std::to_string(index_) + " has no time window",
                 ENOENT};
  }
  return window_.read_u64();
}

std::uint64_t PowercapConstraint::upper_bound_uw() const {
  return max_power_uw_ ? *max_power_uw_ : seen_max_uw_;
}

std::uint64_t PowercapConstraint::floor_uw() const {
  return static_cast<std::uint64_t>(static_cast<double>(upper_bound_uw()) * floor_fraction_);
}

Result<std::uint64_t> PowercapConstraint::set_power_limit_uw(std::uint64_t limit_uw) {
  const std::uint64_t upper = upper_bound_uw();
  if (upper == 0) {
    return Error{limit_.path() +
                     ": refused: no maximum power is known (constraint max_power_uw missing or "
                     "0) and no limit is in force to bound it",
                 ERANGE};
  }
  const std::uint64_t floor = floor_uw();
  if (limit_uw < floor) {
    return Error{limit_.path() + ": refused: " + watts(limit_uw) + " is below the floor of " +
                     watts(floor) + " (" + format_number(floor_fraction_ * 100.0) +
                     "% of the upper bound " + watts(upper) + ")",
                 ERANGE};
  }
  const std::uint64_t value = std::min(limit_uw, upper);
  Status s = limit_.write_u64(value);
  if (!s.ok()) {
    // The file opened for writing but the kernel refused the value: on RAPL that is the
    // lock bit firmware can set in the power-limit register.
    if (limit_.writable() && (s.errno_value() == EACCES || s.errno_value() == EPERM)) {
      return Error{s.message() + " (the limit may be locked by the BIOS)", s.errno_value()};
    }
    return s.error();
  }
  return limit_.read_u64();
}

Result<std::uint64_t> PowercapConstraint::set_time_window_us(std::uint64_t window_us) {
  if (!has_window_) {
    return Error{limit_.path() + ": constraint " + std::to_string(index_) + " has no time window",
                 ENOENT};
  }
  if (window_us == 0) return Error{window_.path() + ": refused: a time window of 0 us", ERANGE};
  Status s = window_.write_u64(window_us);
  if (!s.ok()) return s.error();
  return window_.read_u64();
}

// ---------------------------------------------------------------- PowercapZone

Result<std::uint64_t> PowercapZone::read_energy_uj() const {
  if (!energy_.is_open()) return Error{energy_refusal_, EACCES};
  return energy_.read_u64();
}

Result<bool> PowercapZone::enabled() const {
  if (!enabled_.is_open()) return Error{join_path(path_, "enabled") + ": not available", ENOENT};
  Result<std::uint64_t> v = enabled_.read_u64();
  if (!v.ok()) return v.error();
  if (v.value() > 1) {
    return Error{enabled_.path() + ": expected 0 or 1, read " + std::to_string(v.value()), EINVAL};
  }
  return v.value() == 1;
}

Status PowercapZone::set_enabled(bool on) {
  if (!enabled_.is_open()) {
    return Status::failure(join_path(path_, "enabled") + ": not available", ENOENT);
  }
  return enabled_.write_u64(on ? 1 : 0);
}

PowercapConstraint *PowercapZone::constraint(ConstraintKind kind) {
  for (auto &c : constraints_) {
    if (c.kind() == kind) return &c;
  }
  return nullptr;
}

const PowercapConstraint *PowercapZone::constraint(ConstraintKind kind) const {
  for (const auto &c : constraints_) {
    if (c.kind() == kind) return &c;
  }
  return nullptr;
}

bool PowercapZone::controllable() const { return control_refusal_.empty(); }

void PowercapZone::evaluate_control() {
  control_refusal_.clear();
  if (constraints_.empty()) {
    control_refusal_ = path_ +
                       ": no constraint files: the kernel exposes energy only for this zone "
                       "(AMD RAPL has no power-limit registers in the driver); measured, not "
                       "controlled";
    return;
  }
  const PowercapConstraint *lt = constraint(ConstraintKind::long_term);
  if (lt == nullptr) {
    control_refusal_ = path_ + ": no long_term constraint";
    return;
  }
  if (!lt->writable()) {
    control_refusal_ = lt->limit_.write_refusal();
    return;
  }
  if (lt->upper_bound_uw() == 0) {
    control_refusal_ = path_ + ": constraint " + std::to_string(lt->index()) +
                       " has no known maximum (max_power_uw missing or 0) and no limit in "
                       "force: no safe upper bound";
  }
}

Result<std::uint64_t> PowercapZone::apply_long_term_limit_uw(std::uint64_t limit_uw) {
  if (!controllable()) return Error{control_refusal_, EPERM};
  PowercapConstraint *lt = constraint(ConstraintKind::long_term);
  Result<std::uint64_t> written = lt->set_power_limit_uw(limit_uw);
  if (!written.ok()) return written;
  Result<bool> on = enabled();
  if (on.ok() && !on.value()) {
    // A limit on a disabled zone is stored but does not act: the zone is enabled with it.
    Status s = set_enabled(true);
    if (!s.ok()) {
      const bool refused = s.errno_value() == EACCES || s.errno_value() == EPERM;
      return Error{path_ + ": the zone is disabled (enabled=0) and enabling it failed: " +
                       s.message() + (refused ? " (locked by the BIOS?)" : ""),
                   s.errno_value()};
    }
  }
  return written;
}

Result<PowercapZoneSnapshot> PowercapZone::snapshot() const {
  PowercapZoneSnapshot snap;
  snap.zone = name_;
  if (enabled_.is_open()) {
    Result<bool> on = enabled();
    // Some zones (AMD energy-only) have an `enabled` file the kernel cannot answer; there is
    // then nothing to restore for it either.
    if (on.ok()) snap.enabled = on.value();
  }
  for (const auto &c : constraints_) {
    PowercapConstraintSnapshot cs;
    cs.index = c.index();
    cs.name = c.name();
    Result<std::uint64_t> limit = c.power_limit_uw();
    if (limit.ok()) cs.power_limit_uw = limit.value();
    if (c.has_window_) {
      Result<std::uint64_t> window = c.time_window_us();
      if (window.ok()) cs.time_window_us = window.value();
    }
    if (cs.power_limit_uw || cs.time_window_us) snap.constraints.push_back(cs);
  }
  return snap;
}

Status PowercapZone::restore(const PowercapZoneSnapshot &saved) {
  StatusCollector errors;
  if (saved.zone != name_) {
    return Status::failure("snapshot of zone '" + saved.zone + "' given to zone " + name_, EINVAL);
  }
  auto write_exact = [&errors](const SysfsFile &file, std::uint64_t value) {
    Status s = file.write_u64(value);
    if (!s.ok()) {
      errors.add(s);
      return;
    }
    Result<std::uint64_t> back = file.read_u64();
    if (!back.ok()) {
      errors.add(back.status());
    } else if (back.value() != value) {
      errors.add(Status::failure(file.path() + ": restored " + std::to_string(value) +
                                     " but the kernel reads back " + std::to_string(back.value()),
                                 EIO));
    }
  };
  for (const auto &cs : saved.constraints) {
    auto it = std::find_if(constraints_.begin(), constraints_.end(),
                           [&](const PowercapConstraint &c) { return c.index() == cs.index; });
    if (it == constraints_.end()) {
      errors.add(Status::failure(
          path_ + ": saved constraint " + std::to_string(cs.index) + " does not exist any more",
          ENOENT));
      continue;
    }
    if (!cs.name.empty() && !it->name().empty() && cs.name != it->name()) {
      errors.add(Status::failure(path_ + ": constraint " + std::to_string(cs.index) + " is '" +
                                     it->name() + "' but was saved as '" + cs.name +
                                     "': not restored",
                                 EINVAL));
      continue;
    }
    if (cs.time_window_us) {
      if (!it->has_window_) {
        errors.add(Status::failure(
            path_ + ": constraint " + std::to_string(cs.index) + " has no time window to restore",
            ENOENT));
      } else {
        write_exact(it->window_, *cs.time_window_us);
      }
    }
    if (cs.power_limit_uw) {
      write_exact(it->limit_, *cs.power_limit_uw);
      // The admin's value is by definition acceptable: never refuse to go back up to it.
      it->seen_max_uw_ = std::max(it->seen_max_uw_, *cs.power_limit_uw);
    }
  }
  if (saved.enabled) write_exact(enabled_, *saved.enabled ? 1 : 0);
  evaluate_control();
  return errors.status();
}

Result<PowerDomain> PowercapZone::power_domain() const {
  if (!controllable()) return Error{control_refusal_, EPERM};
  const PowercapConstraint *lt = constraint(ConstraintKind::long_term);
  Result<std::uint64_t> limit = lt->power_limit_uw();
  if (!limit.ok()) return limit.error();
  PowerDomain d;
  d.name = name_;
  d.min_cap_w = static_cast<double>(lt->floor_uw()) / 1e6;
  d.max_cap_w = static_cast<double>(lt->upper_bound_uw()) / 1e6;
  Result<bool> on = enabled();
  d.cap_w = (on.ok() && !on.value()) ? d.max_cap_w : static_cast<double>(limit.value()) / 1e6;
  return d;
}

// ---------------------------------------------------------------- energy

std::uint64_t energy_delta_uj(std::uint64_t previous_uj, std::uint64_t current_uj,
                              std::uint64_t max_energy_range_uj) {
  if (current_uj >= previous_uj) return current_uj - previous_uj;
  return (max_energy_range_uj - previous_uj) + current_uj + 1;
}

Result<std::optional<std::uint64_t>> EnergyCounter::update(std::uint64_t reading_uj,
                                                           double interval_s) {
  if (max_range_uj_ != 0 && reading_uj > max_range_uj_) {
    last_uj_.reset();
    return Error{"energy reading " + std::to_string(reading_uj) + " uJ is above the range " +
                     std::to_string(max_range_uj_) + " uJ",
                 ERANGE};
  }
  if (!last_uj_) {
    last_uj_ = reading_uj;
    return std::optional<std::uint64_t>();
  }
  const std::uint64_t delta = energy_delta_uj(*last_uj_, reading_uj, max_range_uj_);
  const double limit_uj = max_plausible_w_ * std::max(interval_s, 0.0) * 1e6;
  if (static_cast<double>(delta) > limit_uj) {
    const std::uint64_t previous = *last_uj_;
    last_uj_ = reading_uj;
    return Error{"implausible energy delta " + std::to_string(delta) + " uJ over " +
                     format_number(interval_s) + " s (from " + std::to_string(previous) + " to " +
                     std::to_string(reading_uj) +
                     " uJ): a counter reset or torn read, not a wrap; sample dropped",
                 ERANGE};
  }
  last_uj_ = reading_uj;
  return std::optional<std::uint64_t>(delta);
}

// ---------------------------------------------------------------- PowercapTree

PowercapTree::PowercapTree(std::string sysfs_root, PowercapOptions options)
    : sysfs_root_(std::move(sysfs_root)), options_(options) {}

std::string PowercapTree::powercap_dir() const { return join_path(sysfs_root_, "class/powercap"); }

Status PowercapTree::discover() {
  PowercapTree fresh(sysfs_root_, options_);
  Status s = fresh.discover_into_empty();
  if (!s.ok()) return s;
  zones_ = std::move(fresh.zones_);
  control_type_enabled_ = fresh.control_type_enabled_;
  notes_ = std::move(fresh.notes_);
  return s;
}

Status PowercapTree::discover_into_empty() try {
  const std::string dir = powercap_dir();
  if (!is_directory(dir)) {
    return Status::failure(
        dir +
            ": no such folder: the kernel has no powercap class, or intel_rapl_msr is not "
            "loaded (normal in VMs)",
        ENOENT);
  }
  Result<std::vector<std::string>> entries = list_directory(dir);
  if (!entries.ok()) return entries.status();

  {
    Result<SysfsFile> ct =
        SysfsFile::open(join_path(dir, "intel-rapl/enabled"), SysfsFile::Access::read_only);
    if (ct.ok()) {
      Result<std::uint64_t> v = ct->read_u64();
      if (v.ok()) control_type_enabled_ = v.value() != 0;
    }
  }

  struct Found {
    std::uint64_t package;
    std::optional<std::uint64_t> sub;
    std::string name;
  };
  std::vector<Found> found;
  for (const auto &entry : entries.value()) {
    std::uint64_t package = 0;
    std::optional<std::uint64_t> sub;
    if (parse_rapl_zone_name(entry, &package, &sub)) {
      if (check_zone_name(entry).ok()) found.push_back({package, sub, entry});
    } else if (entry.compare(0, 16, "intel-rapl-mmio:") == 0) {
      notes_.push_back(join_path(dir, entry) +
                       ": skipped: the MMIO interface to the same package limits as the MSR "
                       "zone; writing both would fight");
    }
  }
  // Numeric order: intel-rapl:10 after intel-rapl:9, packages before their sub-zones.
  std::sort(found.begin(), found.end(), [](const Found &a, const Found &b) {
    return std::make_tuple(a.package, a.sub.has_value(), a.sub.value_or(0)) <
           std::make_tuple(b.package, b.sub.has_value(), b.sub.value_or(0));
  });

  for (const auto &f : found) {
    PowercapZone zone;
    zone.name_ = f.name;
    zone.path_ = join_path(dir, f.name);
    if (f.sub) zone.parent_ = "intel-rapl:" + std::to_string(f.package);

    Result<std::string> label = read_small_file(join_path(zone.path_, "name"), 256);
    if (!label.ok()) {
      notes_.push_back(zone.path_ + ": skipped: " + label.message());
      continue;
    }
    std::string text = label.value();
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    zone.label_ = text;
    zone.kind_ = kind_from_label(text, &zone.package_id_, &zone.die_id_);

    Result<SysfsFile> range =
        SysfsFile::open(join_path(zone.path_, "max_energy_range_uj"), SysfsFile::Access::read_only);
    if (range.ok()) {
      Result<std::uint64_t> v = range->read_u64();
      if (v.ok()) zone.max_energy_range_uj_ = v.value();
    }
    Result<SysfsFile> energy =
        SysfsFile::open(join_path(zone.path_, "energy_uj"), SysfsFile::Access::read_only);
    if (energy.ok()) {
      zone.energy_ = std::move(energy).value();
    } else {
      zone.energy_refusal_ = energy.message();
      if (energy.errno_value() == EACCES) {
        zone.energy_refusal_ +=
            " (energy_uj is readable by root only since Linux 5.10, "
            "CVE-2020-8694)";
      }
      notes_.push_back(zone.energy_refusal_);
    }
    if (zone.energy_.is_open() && zone.max_energy_range_uj_ == 0) {
      notes_.push_back(zone.path_ +
                       ": max_energy_range_uj missing or 0: wrap-around cannot be "
                       "handled; energy deltas across a wrap will be refused");
    }

    Result<SysfsFile> enabled = SysfsFile::open(join_path(zone.path_, "enabled"),
                                                SysfsFile::Access::read_write_if_permitted);
    if (enabled.ok()) zone.enabled_ = std::move(enabled).value();

    for (int n = 0; n < kMaxConstraints; ++n) {
      const std::string prefix = join_path(zone.path_, "constraint_" + std::to_string(n) + "_");
      if (!path_exists(prefix + "power_limit_uw")) break;
      PowercapConstraint c;
      c.index_ = n;
      c.floor_fraction_ = options_.floor_fraction;
      Result<std::string> cname = read_small_file(prefix + "name", 256);
      if (cname.ok()) {
        std::string s = cname.value();
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        c.name_ = s;
        c.kind_ = constraint_kind(s);
      }
      Result<SysfsFile> limit =
          SysfsFile::open(prefix + "power_limit_uw", SysfsFile::Access::read_write_if_permitted);
      if (!limit.ok()) {
        notes_.push_back(limit.message());
        continue;
      }
      c.limit_ = std::move(limit).value();
      Result<SysfsFile> window =
          SysfsFile::open(prefix + "time_window_us", SysfsFile::Access::read_write_if_permitted);
      if (window.ok()) {
        c.window_ = std::move(window).value();
        c.has_window_ = true;
      }
      Result<SysfsFile> maxp =
          SysfsFile::open(prefix + "max_power_uw", SysfsFile::Access::read_only);
      if (maxp.ok()) {
        Result<std::uint64_t> v = maxp->read_u64();
        if (v.ok() && v.value() > 0) {
          c.max_power_uw_ = v.value();
        } else if (!v.ok()) {
          notes_.push_back(v.message() + ": no maximum known for this constraint");
        }
      }
      Result<std::uint64_t> current = c.limit_.read_u64();
      if (current.ok()) c.seen_max_uw_ = current.value();
      zone.constraints_.push_back(std::move(c));
    }
    zone.evaluate_control();
    zones_.push_back(std::move(zone));
  }
  if (zones_.empty()) {
    return Status::failure(dir + ": no intel-rapl zones (RAPL driver not loaded?)", ENOENT);
  }
  return Status::success();
} catch (...) {
  return Status::failure(current_exception_message("powercap discovery"), ENOMEM);
}

std::vector<PowercapZone *> PowercapTree::packages() {
  std::vector<PowercapZone *> out;
  for (auto &z : zones_) {
    if (z.parent().empty() && z.kind() == ZoneKind::package) out.push_back(&z);
  }
  return out;
}

Result<PowercapZone *> PowercapTree::find(std::string_view name) {
  Status s = check_zone_name(name);
  if (!s.ok()) return s.error();
  for (auto &z : zones_) {
    if (z.name() == name) return &z;
  }
  return Error{join_path(powercap_dir(), std::string(name)) + ": no such zone", ENOENT};
}

Result<const PowercapZone *> PowercapTree::find(std::string_view name) const {
  Status s = check_zone_name(name);
  if (!s.ok()) return s.error();
  for (const auto &z : zones_) {
    if (z.name() == name) return &z;
  }
  return Error{join_path(powercap_dir(), std::string(name)) + ": no such zone", ENOENT};
}

Result<PowercapSnapshot> PowercapTree::snapshot() const try {
  PowercapSnapshot snap;
  for (const auto &z : zones_) {
    Result<PowercapZoneSnapshot> zs = z.snapshot();
    if (!zs.ok()) return zs.error();
    if (zs->enabled || !zs->constraints.empty()) snap.zones.push_back(std::move(zs).value());
  }
  return snap;
} catch (...) {
  return Error{current_exception_message("powercap snapshot"), ENOMEM};
}

Status PowercapTree::restore(const PowercapSnapshot &saved) try {
  StatusCollector errors;
  for (const auto &zs : saved.zones) {
    Result<PowercapZone *> zone = find(zs.zone);
    if (!zone.ok()) {
      errors.add(zone.status());
      continue;
    }
    errors.add(zone.value()->restore(zs));
  }
  return errors.status();
} catch (...) {
  return Status::failure(current_exception_message("powercap restore"), ENOMEM);
}

}  // namespace powergrad::hw
