// Power domains through the Linux powercap class (RAPL): discovery, energy, limits, and the
// saved settings PowerGrad must give back.
//
// Layout read (sysfs root injectable; "/sys" in production, a fake tree in tests):
//   <root>/class/powercap/intel-rapl:N         a package (name "package-N", or "psys" on
//                                              clients: intel-rapl:1 is then the platform)
//   <root>/class/powercap/intel-rapl:N:M       its sub-zones: "core", "uncore", "dram"
// Files per zone: name, energy_uj, max_energy_range_uj, enabled, and per constraint N:
// constraint_N_name (long_term/short_term/peak_power), constraint_N_power_limit_uw,
// constraint_N_time_window_us, constraint_N_max_power_uw.
//
// AMD: recent kernels drive AMD RAPL through the same "intel-rapl" control type, but only the
// energy counters exist (the driver has no power-limit registers for AMD): package zones
// (and possibly a "core" sub-zone) with energy_uj and no constraint files. Such zones are
// discovered as read-only: energy is measured, controllable() is false and says why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hardware/result.hpp"
#include "hardware/sysfs_file.hpp"
#include "libgradient/types.hpp"

namespace powergrad::hw {

enum class ZoneKind { package, core, uncore, dram, psys, other };
enum class ConstraintKind { long_term, short_term, peak_power, other };

const char *to_string(ZoneKind kind);
const char *to_string(ConstraintKind kind);

// Zone names as the kernel makes them ("intel-rapl:0", "intel-rapl:0:1"): letters, digits,
// '-', '_' and ':' only, at most 64 bytes. Anything else, in particular '/' and "..", is
// refused: a zone name from a state file must not reach outside the powercap folder.
Status check_zone_name(std::string_view name);

struct PowercapOptions {
  // Limits below floor_fraction x the constraint's upper bound are refused, never written:
  // below about a quarter of TDP a package is under its own idle/uncore floor and RAPL can
  // only get there by clock modulation, which stalls every job on the socket. The agent's
  // allocator works inside [floor, upper bound] (see power_domain()).
  double floor_fraction = 0.25;
};

struct PowercapConstraintSnapshot {
  int index = 0;
  std::string name;  // constraint_N_name when it was saved; checked again on restore
  std::optional<std::uint64_t> power_limit_uw;
  std::optional<std::uint64_t> time_window_us;
};

// What the admin (or firmware) had set on one zone, to be given back exactly.
struct PowercapZoneSnapshot {
  std::string zone;  // "intel-rapl:0"
  std::optional<bool> enabled;
  std::vector<PowercapConstraintSnapshot> constraints;
};

struct PowercapSnapshot {
  std::vector<PowercapZoneSnapshot> zones;
};

// One constraint (a RAPL power limit with its time window) of one zone.
class PowercapConstraint {
 public:
  int index() const { return index_; }
  const std::string &name() const { return name_; }
  ConstraintKind kind() const { return kind_; }
  bool writable() const { return limit_.writable(); }

  Result<std::uint64_t> power_limit_uw() const;
  Result<std::uint64_t> time_window_us() const;

  // constraint_N_max_power_uw as read at discovery. nullopt when the file is missing,
  // unreadable (the kernel answers ENODATA or EIO for sub-zones without a power-info
  // register) or 0 (firmware left the field empty).
  std::optional<std::uint64_t> max_power_uw() const { return max_power_uw_; }
  // The highest limit PowerGrad will write: max_power_uw, or when none is known the highest
  // limit seen in force (at discovery or restored): never raise a limit beyond what the
  // admin or firmware had, without a documented maximum.
  std::uint64_t upper_bound_uw() const;
  // floor_fraction x upper_bound_uw(): requests below are refused.
  std::uint64_t floor_uw() const;

  // Writes a limit: above upper_bound_uw() it is clamped down to it; below floor_uw() it is
  // refused (nothing written). Returns the value read back afterwards: the kernel rounds to
  // the hardware's power unit (often 1/8 W), so it may differ slightly from the request.
  Result<std::uint64_t> set_power_limit_uw(std::uint64_t limit_uw);
  // Time windows are rounded by the kernel too (RAPL stores 2^Y * (1 + Z/4) time units).
  // 0 is refused. Returns the value read back.
  Result<std::uint64_t> set_time_window_us(std::uint64_t window_us);

 private:
  friend class PowercapZone;
  friend class PowercapTree;
  int index_ = 0;
  std::string name_;
  ConstraintKind kind_ = ConstraintKind::other;
  SysfsFile limit_;
  SysfsFile window_;
  bool has_window_ = false;
  std::optional<std::uint64_t> max_power_uw_;
  std::uint64_t seen_max_uw_ = 0;
  double floor_fraction_ = 0.25;
};

class PowercapZone {
 public:
  const std::string &name() const { return name_; }    // "intel-rapl:0:1"
  const std::string &label() const { return label_; }  // its `name` file: "dram"
  ZoneKind kind() const { return kind_; }
  const std::string &parent() const { return parent_; }  // "" for top-level zones
  // N of a "package-N" (or "package-N-die-M") label: the physical package id that
  // topology/physical_package_id of the CPUs names. Zone numbers are not package ids.
  std::optional<int> package_id() const { return package_id_; }
  std::optional<int> die_id() const { return die_id_; }
  const std::string &path() const { return path_; }

  bool has_energy() const { return energy_.is_open(); }
  // Why has_energy() is false (e.g. energy_uj is root-only since Linux 5.10).
  const std::string &energy_refusal() const { return energy_refusal_; }
  Result<std::uint64_t> read_energy_uj() const;
  std::uint64_t max_energy_range_uj() const { return max_energy_range_uj_; }

  // The zone's enable bit (RAPL: the long-term limit's enable). A limit on a disabled zone
  // is stored but not enforced.
  Result<bool> enabled() const;
  Status set_enabled(bool enabled);

  std::vector<PowercapConstraint> &constraints() { return constraints_; }
  const std::vector<PowercapConstraint> &constraints() const { return constraints_; }
  PowercapConstraint *constraint(ConstraintKind kind);
  const PowercapConstraint *constraint(ConstraintKind kind) const;

  // True when the long-term limit can be written; otherwise control_refusal() says why
  // (AMD energy-only zone, read-only files, no known maximum and no limit in force...).
  bool controllable() const;
  const std::string &control_refusal() const { return control_refusal_; }

  // Sets the long-term limit (clamped/refused as PowercapConstraint::set_power_limit_uw)
  // and enables the zone if it was disabled, so the limit is actually enforced.
  Result<std::uint64_t> apply_long_term_limit_uw(std::uint64_t limit_uw);

  // Every readable setting: enabled, and each constraint's limit and time window.
  Result<PowercapZoneSnapshot> snapshot() const;
  // Writes the saved values back exactly (no clamping: they are the admin's), time windows
  // first, then limits, then enabled; reads each back and reports any difference. Keeps
  // going after an error and reports all of them.
  Status restore(const PowercapZoneSnapshot &saved);

  // The domain as libgradient sees it: bounds [floor, upper bound] of the long-term limit,
  // cap_w the limit in force (the upper bound when the zone is disabled). power_w is left
  // 0: it comes from energy over time. An error for zones that are not controllable.
  Result<PowerDomain> power_domain() const;

 private:
  friend class PowercapTree;
  void evaluate_control();

  std::string name_, label_, parent_, path_;
  ZoneKind kind_ = ZoneKind::other;
  std::optional<int> package_id_, die_id_;
  SysfsFile energy_;
  std::string energy_refusal_;
  std::uint64_t max_energy_range_uj_ = 0;
  SysfsFile enabled_;
  std::vector<PowercapConstraint> constraints_;
  std::string control_refusal_;
};

// RAPL energy counters wrap at max_energy_range_uj. Values lie in [0, max]; the counter
// goes from max back to 0, so a wrap adds (max - previous) + current + 1. (The hardware
// counter wraps at 2^32 energy units; the kernel's max is (2^32 - 1) units, so the error is
// at most one unit, ~61 uJ, per wrap.)
std::uint64_t energy_delta_uj(std::uint64_t previous_uj, std::uint64_t current_uj,
                              std::uint64_t max_energy_range_uj);

// Successive readings of one zone into energy deltas. A reading above the range, or a delta
// implying more than max_plausible_w over the interval (a torn read of a fake tree, a
// counter reset after a CPU hotplug), is an error and re-primes the counter rather than
// reporting a wrap of hundreds of kilojoules.
class EnergyCounter {
 public:
  explicit EnergyCounter(std::uint64_t max_energy_range_uj, double max_plausible_w = 10000.0)
      : max_range_uj_(max_energy_range_uj), max_plausible_w_(max_plausible_w) {}
  // nullopt on the first reading (it only primes the counter).
  Result<std::optional<std::uint64_t>> update(std::uint64_t reading_uj, double interval_s);
  void reset() { last_uj_.reset(); }

 private:
  std::uint64_t max_range_uj_;
  double max_plausible_w_;
  std::optional<std::uint64_t> last_uj_;
};

class PowercapTree {
 public:
  explicit PowercapTree(std::string sysfs_root = "/sys", PowercapOptions options = {});

  // Finds and opens every intel-rapl zone. A machine without powercap (VMs, this build
  // machine) gives an ENOENT error naming the folder; zones that cannot be used are skipped
  // with a note (see notes()). Calling it again rediscovers from scratch; when that fails,
  // the zones found before stay as they were (their indices and open files stay valid).
  Status discover();

  const std::string &sysfs_root() const { return sysfs_root_; }
  std::string powercap_dir() const;
  std::vector<PowercapZone> &zones() { return zones_; }
  const std::vector<PowercapZone> &zones() const { return zones_; }
  // Top-level "package-N" zones, in zone order.
  std::vector<PowercapZone *> packages();
  // The zone with that name; the name is checked first (no '/', no "..").
  Result<PowercapZone *> find(std::string_view name);
  Result<const PowercapZone *> find(std::string_view name) const;
  // The control type's own `enabled` (intel-rapl/enabled): when 0, no zone limit acts.
  std::optional<bool> control_type_enabled() const { return control_type_enabled_; }
  // Things discovery skipped or found odd, one sentence each, for the log.
  const std::vector<std::string> &notes() const { return notes_; }

  Result<PowercapSnapshot> snapshot() const;
  // Restores every zone of the snapshot; a zone that no longer exists is an error (after
  // the others were restored).
  Status restore(const PowercapSnapshot &saved);

 private:
  Status discover_into_empty();

  std::string sysfs_root_;
  PowercapOptions options_;
  std::vector<PowercapZone> zones_;
  std::optional<bool> control_type_enabled_;
  std::vector<std::string> notes_;
};

}  // namespace powergrad::hw
