// Per-core frequency ceilings through cpufreq, for separating jobs that share a socket
// (RAPL caps a whole package; scaling_max_freq caps the cores of one job), and the CPU
// topology that maps cores to packages (and so to powercap zones).
//
// Layout read (sysfs root injectable):
//   <root>/devices/system/cpu/online                         "0-63"
//   <root>/devices/system/cpu/cpuN/topology/physical_package_id
//   <root>/devices/system/cpu/cpuN/cpufreq -> ../cpufreq/policyM
//   .../policyM/{scaling_max_freq, scaling_min_freq, cpuinfo_min_freq, cpuinfo_max_freq,
//                related_cpus}   all in kHz
// Several CPUs may share one policy (acpi-cpufreq on some machines, most ARM parts): a
// write to one of them changes all of them. policy() names it so callers can tell.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hardware/result.hpp"
#include "hardware/sysfs_file.hpp"

namespace powergrad::hw {

struct CpufreqCpuSnapshot {
  int cpu = 0;
  std::uint64_t scaling_max_freq_khz = 0;
};

struct CpufreqSnapshot {
  std::vector<CpufreqCpuSnapshot> cpus;
};

struct CpufreqCpu {
  int cpu = 0;
  std::string policy;  // "policy3", the folder the cpufreq link points to
  std::uint64_t cpuinfo_min_khz = 0;
  std::uint64_t cpuinfo_max_khz = 0;
  // scaling_min_freq at discovery (the admin's floor); 0 when unreadable.
  std::uint64_t scaling_min_khz = 0;
};

class CpufreqLimits {
 public:
  explicit CpufreqLimits(std::string sysfs_root = "/sys");

  // Opens scaling_max_freq of every online CPU that has cpufreq. A machine without cpufreq
  // (VMs, this build machine) gives an ENOENT error; CPUs without it are noted and skipped.
  Status discover();

  const std::vector<CpufreqCpu> &cpus() const { return cpus_; }
  const CpufreqCpu *find(int cpu) const;
  const std::vector<std::string> &notes() const { return notes_; }

  Result<std::uint64_t> max_freq_khz(int cpu) const;
  // Clamps to [cpuinfo_min_freq, cpuinfo_max_freq] and writes; returns the value read back.
  // (Kernels before 5.3 refuse a max below scaling_min_freq with EINVAL; newer ones let the
  // max win. Either way the read-back value is what is in force.)
  Result<std::uint64_t> set_max_freq_khz(int cpu, std::uint64_t khz);

  Result<CpufreqSnapshot> snapshot() const;
  // Writes each saved value back exactly and checks it reads back the same.
  Status restore(const CpufreqSnapshot &saved);

 private:
  struct Entry {
    CpufreqCpu info;
    SysfsFile scaling_max;
  };
  Entry *entry(int cpu);
  const Entry *entry(int cpu) const;

  std::string sysfs_root_;
  std::vector<CpufreqCpu> cpus_;
  std::vector<Entry> entries_;
  std::vector<std::string> notes_;
};

// Online CPUs and the physical package each belongs to (topology/physical_package_id).
struct CpuTopology {
  std::vector<int> online_cpus;
  std::map<int, int> package_of_cpu;  // cpu -> physical package id
  // CPUs of one package, in order.
  std::vector<int> cpus_of_package(int package_id) const;
};

Result<CpuTopology> read_cpu_topology(const std::string &sysfs_root = "/sys");

}  // namespace powergrad::hw
