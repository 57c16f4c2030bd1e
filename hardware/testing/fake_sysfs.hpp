// Fake sysfs trees for tests: temporary folders shaped like real machines, with the real
// file names, values of the kind real hardware reports, and the real permissions
// (energy_uj 0400, limits 0644, read-only attributes 0444). The real classes are pointed at
// them through their sysfs-root argument.
//
// Shape (as the kernel lays it out): zones are folders under
//   <root>/devices/virtual/powercap/intel-rapl/intel-rapl:N[/intel-rapl:N:M]
// with symbolic links <root>/class/powercap/intel-rapl:N[:M] -> ../../devices/virtual/...;
// CPUs under <root>/devices/system/cpu (online, cpuN/topology/physical_package_id,
// cpuN/cpufreq -> ../cpufreq/policyN).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "hardware/result.hpp"

namespace powergrad::hw::testing {

// A folder under $TMPDIR (or /tmp), removed with everything in it when destroyed.
class TempDir {
 public:
  static Result<TempDir> create(const std::string &prefix = "powergrad-hw");
  TempDir() = default;
  ~TempDir();
  TempDir(TempDir &&other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir &operator=(TempDir &&other) noexcept;
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// Removes a tree (not following symbolic links).
Status remove_tree(const std::string &path);

// Server: package-N zones with long_term (PL1 = TDP) and short_term (PL2) constraints and,
// as Intel servers expose them, a dram sub-zone (energy unit fixed at 15.3 uJ); no core or
// uncore zones.
struct IntelServerSpec {
  int packages = 2;
  int cpus_per_package = 4;
  std::uint64_t tdp_uw = 205000000;         // constraint_0_max_power_uw and PL1
  std::uint64_t short_term_uw = 246000000;  // PL2, 1.2 x TDP
  // constraint_1_max_power_uw as firmware reports it; 0 means the field is empty.
  std::uint64_t short_term_max_uw = 0;
  bool dram = true;
  std::uint64_t dram_max_uw = 39000000;
};

// Client (laptop/desktop): package-0 with long_term, short_term and peak_power (PL4)
// constraints, sub-zones core, uncore (and dram), and a psys platform zone intel-rapl:1.
// The core/uncore max_power_uw attributes exist but cannot be read (the kernel answers
// ENODATA); the fake makes them unreadable by making them folders.
struct IntelClientSpec {
  int cpus = 8;
  std::uint64_t tdp_uw = 28000000;
  std::uint64_t short_term_uw = 64000000;
  std::uint64_t peak_uw = 121000000;
  bool dram = true;
  bool psys = true;
};

// AMD (Zen, kernel >= 5.8): the intel-rapl control type with package-N zones that have
// energy only (unit 15.26 uJ), no constraint files; optionally the driver's "core" sub-zone.
struct AmdServerSpec {
  int packages = 1;
  int cpus_per_package = 8;
  bool core_subzone = false;
};

// AMD EPYC Genoa (family 19h, models 10h-1Fh), dual socket, on a kernel whose amd_hsmp driver
// has the hwmon interface (Linux >= 6.14): the energy-only powercap package zones of
// build_amd_server, and one hwmon device named amd_hsmp_hwmon per socket at
// devices/platform/AMDI0097:0N/hwmon/hwmonM (ACPI probing, as on Genoa platforms) with
// power1_input (0444), power1_cap (0644) and power1_cap_max (0444) in microwatts, whole
// milliwatts as the driver converts them; class/hwmon/hwmonM links to it. hwmon0 is a
// k10temp sensor, as real EPYC nodes have, so discovery must pick devices by name.
struct AmdGenoaSpec {
  int packages = 2;
  int cpus_per_package = 4;
  std::uint64_t cap_uw = 360000000;      // power1_cap: the admin's limit (EPYC 9654: TDP 360 W)
  std::uint64_t cap_max_uw = 400000000;  // power1_cap_max (its cTDP maximum)
  std::uint64_t power_uw = 95000000;     // power1_input at rest
  bool hwmon = true;                     // false: an older kernel, HSMP only through /dev/hsmp
  bool powercap = true;  // false: no AMD RAPL energy zones (energy from HSMP socket power)
};

struct CpufreqSpec {
  int cpus = 4;
  std::uint64_t min_khz = 800000;
  std::uint64_t max_khz = 3400000;
  std::string driver = "intel_pstate";
  std::string governor = "powersave";
};

Status build_intel_server(const std::string &root, const IntelServerSpec &spec = {});
Status build_intel_client(const std::string &root, const IntelClientSpec &spec = {});
Status build_amd_server(const std::string &root, const AmdServerSpec &spec = {});
Status build_amd_genoa(const std::string &root, const AmdGenoaSpec &spec = {});
// CPUs and their topology only: a VM like this machine (no powercap, no cpufreq).
Status build_no_powercap(const std::string &root, int cpus = 2);
// devices/system/cpu/{online,possible,present}, cpuN/topology/physical_package_id.
Status build_cpu_topology(const std::string &root, int cpus, int cpus_per_package);
// One cpufreq policy per CPU, as intel_pstate and acpi-cpufreq usually make them.
Status build_cpufreq(const std::string &root, const CpufreqSpec &spec = {});

// A whole machine by name, for the end-to-end tools: "intel-server" (2 sockets),
// "intel-client", "amd-server" (1 socket, energy only), "amd-genoa" (2 sockets, HSMP hwmon),
// "amd-genoa-nohwmon" (2 sockets, HSMP through /dev/hsmp only: measured, not capped, on a
// test tree), "no-powercap". Topology and cpufreq included (except no-powercap, which has
// neither powercap nor cpufreq). socket_w > 0 sets an amd-genoa socket's power1_cap and
// power1_cap_max (suites written for 205 W sockets run unchanged on AMD-shaped trees).
Status build_machine(const std::string &root, const std::string &kind, double socket_w = 0.0);
const char *machine_kinds();
// <root>/class/hwmon/hwmonN of socket s in an amd-genoa tree.
std::string hsmp_hwmon_path(const std::string &root, int socket);

// <root>/class/powercap/<zone>
std::string zone_path(const std::string &root, const std::string &zone);
// <root>/devices/system/cpu/cpuN/cpufreq
std::string cpufreq_path(const std::string &root, int cpu);

// Small file helpers for tests.
Result<std::string> read_text(const std::string &path);
Status write_text(const std::string &path, const std::string &text, mode_t mode = 0644);
Status make_dirs(const std::string &path);

}  // namespace powergrad::hw::testing
