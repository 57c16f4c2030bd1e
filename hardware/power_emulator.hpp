// A power emulator for fake powercap trees: advances energy_uj as real hardware would, from
// the caps in force and the load's demand, wrapping at max_energy_range_uj. The end-to-end
// tests run one next to each fake node (see testing/powergrad-hwemu), so the agent's closed
// loop sees energy respond to the caps it writes.
//
// Model per package zone, per step of dt:
//   cap      = constraint long_term limit when the zone is enabled, otherwise none
//   enforced = follows cap with a first-order lag (settle_s): RAPL settles in 0.2-1 s
//   power    = min(demand, enforced)   (demand: what the load would draw uncapped)
// AMD trees with amd_hsmp_hwmon devices: a package's cap is its socket's power1_cap (socket =
// package id), and power1_input follows the package's power (as the SMU reports it). Without
// powercap zones, each socket is a zone of its own named "hsmp:N" (power1_input only).
// Sub-zones: "core" and "uncore" split the package's power (uncore takes up to uncore_w,
// core 75% of the rest); "dram" draws dram_w (capped by its own limit when enabled); "psys"
// is the sum of the packages and dram plus platform_w.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hardware/hsmp.hpp"
#include "hardware/result.hpp"
#include "hardware/sysfs_file.hpp"
#include "libgradient/types.hpp"

namespace powergrad::hw {

struct PowerEmulatorConfig {
  PowerModel socket{60.0, 205.0, 3.4e9, 1.0};
  double settle_s = 0.3;
  double default_demand_w = 0.0;  // 0: socket.tdp_w (every core busy at f_max)
  double dram_w = 12.0;
  double uncore_w = 6.0;
  double platform_w = 10.0;

  std::string check() const;
};

class PowerEmulator {
 public:
  explicit PowerEmulator(std::string sysfs_root, PowerEmulatorConfig config = {});

  // Finds the tree's intel-rapl zones and opens their energy files for writing (as the
  // hardware, not through the read-only view the agent has).
  Status open();

  const std::vector<std::string> &zone_names() const { return names_; }
  // What a package would draw uncapped; refused for unknown or non-package zones.
  Status set_demand_w(const std::string &zone, double watts);
  // Lines "<zone>=<watts>", '#' comments; every zone named must exist.
  Status load_demand_file(const std::string &path);

  // One step of dt_s seconds: reads the caps, computes power, adds energy to every zone.
  Status advance(double dt_s);

  std::optional<double> power_w(const std::string &zone) const;   // average over last step
  std::optional<double> energy_j(const std::string &zone) const;  // added since open()
  std::optional<double> enforced_limit_w(const std::string &zone) const;

 private:
  struct Zone {
    std::string name, label, parent, path;
    bool package = false;
    UniqueFd energy_fd;
    std::uint64_t max_range_uj = 0;
    double start_uj = 0.0;
    double added_uj = 0.0;
    double demand_w = 0.0;
    std::optional<double> enforced_w;
    double power_w = 0.0;
    SysfsFile limit, enabled;
    bool has_limit = false;
    int hsmp_socket = -1;  // its HSMP socket, when the tree has amd_hsmp_hwmon devices
    UniqueFd hsmp_power_fd;
  };
  Zone *zone(const std::string &name);
  const Zone *zone(const std::string &name) const;
  std::optional<double> cap_w(const Zone &z) const;
  Status write_energy(Zone &z);

  std::string sysfs_root_;
  PowerEmulatorConfig config_;
  std::vector<Zone> zones_;
  std::vector<std::string> names_;
  std::unique_ptr<HsmpSockets> hsmp_;
};

}  // namespace powergrad::hw
