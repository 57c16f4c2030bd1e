// A node's socket power domains, whichever way the machine offers them: what the node agent
// measures and caps. One domain per package (socket):
// - Intel: the powercap package zone, capped through its RAPL long_term constraint (rapl);
// - AMD EPYC: the powercap package zone (energy only, as Linux exposes AMD RAPL) measures,
//   HSMP caps: the amd_hsmp_hwmon devices first (hsmp-hwmon), /dev/hsmp where they are
//   absent (hsmp-ioctl). Without a powercap zone, energy comes from HSMP socket power.
// - otherwise (VMs, no driver, locked, disabled): measured if anything can be, never capped
//   (CapBackend::none), and capability().reason says why in one line.
// Domains keep the powercap zone's name ("intel-rapl:0") when there is one, else "hsmp:N".
//
// Saved settings: the powercap zones' (as PowercapTree saves them) and the HSMP socket limits,
// restored exactly (read back and compared).
//
// HSMP's range: [floor, power1_cap_max] where floor is floor_fraction x the maximum, raised to
// what the firmware holds when it clamps a request up (its cTDP minimum is not readable):
// such a clamp is counted and the domain's minimum follows it from then on, so the agent's
// report (min_w) and the controller's curves see the range the hardware really has.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hardware/hsmp.hpp"
#include "hardware/powercap.hpp"
#include "hardware/result.hpp"
#include "libgradient/types.hpp"

namespace powergrad::hw {

enum class EnergySource { none, powercap, hsmp_power };
const char *to_string(EnergySource source);  // "none", "powercap", "hsmp-power"

struct SocketPowerOptions {
  std::string sysfs_root = "/sys";
  double floor_fraction = 0.25;
  // Opens the HSMP ioctl device; unset: /dev/hsmp when sysfs_root is "/sys", never on a fake
  // tree (tests must not reach the real machine's limits).
  std::function<Result<std::unique_ptr<HsmpDevice>>()> open_hsmp;
  bool try_hsmp = true;  // false: powercap only (as before HSMP support)
};

// What a node can do, for the start-up log and `powergrad status`.
struct Capability {
  CapBackend backend = CapBackend::none;
  EnergySource energy = EnergySource::none;
  int domains = 0;
  std::string reason;  // backend none: why, in one line; else ""
  // "caps: hsmp-hwmon" / "caps: none (monitor): <reason>"
  std::string caps_text() const;
};

class SocketDomain {
 public:
  const std::string &name() const { return name_; }    // "intel-rapl:0" or "hsmp:0"
  const std::string &label() const { return label_; }  // "package-0"
  std::optional<int> package_id() const { return package_id_; }
  CapBackend backend() const { return backend_; }
  EnergySource energy_source() const { return energy_; }
  bool has_energy() const { return energy_ != EnergySource::none; }
  const std::string &energy_refusal() const { return energy_refusal_; }
  // energy_source() == powercap: the counter and its range.
  Result<std::uint64_t> read_energy_uj() const;
  std::uint64_t max_energy_range_uj() const;
  // energy_source() == hsmp_power: the firmware's socket power (averaged by the SMU).
  Result<double> read_power_w() const;

  bool controllable() const { return refusal_.empty(); }
  const std::string &control_refusal() const { return refusal_; }
  // [floor, upper bound] of the limit and the limit in force (see PowercapZone::power_domain).
  Result<PowerDomain> power_domain() const;
  // Writes a limit (clamped to the upper bound, refused below the floor); returns the value
  // read back. A read-back other than the request (beyond rounding to a milliwatt) is a
  // firmware clamp: counted, and a clamp up raises the floor from then on.
  Result<std::uint64_t> apply_limit_uw(std::uint64_t limit_uw);
  unsigned long clamps() const { return clamps_; }
  std::optional<std::uint64_t> firmware_floor_uw() const { return fw_floor_uw_; }

 private:
  friend class SocketPower;
  std::string name_, label_;
  std::optional<int> package_id_;
  CapBackend backend_ = CapBackend::none;
  EnergySource energy_ = EnergySource::none;
  std::string energy_refusal_;
  std::string refusal_;
  PowercapZone *zone_ = nullptr;  // the package zone (energy; rapl: the limit too)
  HsmpSockets *hsmp_ = nullptr;
  int socket_ = -1;
  std::uint64_t hsmp_max_uw_ = 0;
  double floor_fraction_ = 0.25;
  std::optional<std::uint64_t> fw_floor_uw_;
  unsigned long clamps_ = 0;
};

class SocketPower {
 public:
  explicit SocketPower(SocketPowerOptions options = {});
  explicit SocketPower(const std::string &sysfs_root) : SocketPower(options_for(sysfs_root)) {}
  static SocketPowerOptions options_for(const std::string &sysfs_root) {
    SocketPowerOptions o;
    o.sysfs_root = sysfs_root;
    return o;
  }
  SocketPower(const SocketPower &) = delete;
  SocketPower &operator=(const SocketPower &) = delete;

  // Finds the package domains and chooses the cap backend. An error only when nothing at
  // all can be measured (then capability().reason says why); otherwise domains() lists
  // what there is, capped or not.
  Status discover();

  // The backend chosen at discovery, or none with the reason once a domain cannot be capped
  // (also when a write was refused later: a firmware lock found at the first write).
  Capability capability() const;
  std::vector<SocketDomain> &domains() { return domains_; }
  const std::vector<SocketDomain> &domains() const { return domains_; }
  Result<SocketDomain *> find(const std::string &name);
  const PowercapTree &powercap() const { return tree_; }
  const std::vector<std::string> &notes() const { return notes_; }

  // Every setting PowerGrad may change, for the saved-caps file: the powercap zones' on a
  // RAPL node (nothing of powercap is written on an HSMP node: its energy-only zones are
  // neither saved nor restored, since their `enabled` may read but refuse a write).
  Result<PowercapSnapshot> powercap_snapshot() const {
    if (capability_.backend != CapBackend::rapl) return PowercapSnapshot{};
    return tree_.snapshot();
  }
  Result<HsmpSnapshot> hsmp_snapshot() const;
  // Exact restore (read back and compared); keeps going after an error and reports all.
  Status restore(const PowercapSnapshot &powercap, const HsmpSnapshot &hsmp);

  // Test seam: inject the HSMP sockets (e.g. over a fake device) before discover().
  void set_hsmp_for_testing(std::unique_ptr<HsmpSockets> sockets);

 private:
  void choose_hsmp(int sockets_wanted, std::string &why_not);
  SocketPowerOptions options_;
  PowercapTree tree_;
  std::unique_ptr<HsmpSockets> hsmp_;
  bool hsmp_injected_ = false;
  std::vector<SocketDomain> domains_;
  Capability capability_;
  std::vector<std::string> notes_;
};

}  // namespace powergrad::hw
