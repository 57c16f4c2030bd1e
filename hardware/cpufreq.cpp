#include "hardware/cpufreq.hpp"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <exception>

namespace powergrad::hw {

namespace {

std::string cpu_dir(const std::string &root) { return join_path(root, "devices/system/cpu"); }

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<std::uint64_t> read_u64_file(const std::string &path) {
  Result<SysfsFile> f = SysfsFile::open(path, SysfsFile::Access::read_only);
  if (!f.ok()) return f.error();
  return f->read_u64();
}

// Online CPUs from devices/system/cpu/online; when that file is missing, every cpuN folder.
Result<std::vector<int>> online_cpus(const std::string &root) {
  const std::string dir = cpu_dir(root);
  Result<std::string> online = read_small_file(join_path(dir, "online"), 4096);
  if (online.ok()) return parse_cpu_list(online.value());
  Result<std::vector<std::string>> entries = list_directory(dir);
  if (!entries.ok()) return entries.error();
  std::vector<int> cpus;
  for (const auto &e : entries.value()) {
    std::uint64_t n = 0;
    if (e.compare(0, 3, "cpu") == 0 && parse_u64(e.substr(3), &n) && n < 65536) {
      cpus.push_back(static_cast<int>(n));
    }
  }
  std::sort(cpus.begin(), cpus.end());
  return cpus;
}

}  // namespace

CpufreqLimits::CpufreqLimits(std::string sysfs_root) : sysfs_root_(std::move(sysfs_root)) {}

Status CpufreqLimits::discover() try {
  cpus_.clear();
  entries_.clear();
  notes_.clear();
  const std::string dir = cpu_dir(sysfs_root_);
  Result<std::vector<int>> online = online_cpus(sysfs_root_);
  if (!online.ok()) return online.status();
  for (int cpu : online.value()) {
    const std::string freq_dir = join_path(dir, "cpu" + std::to_string(cpu) + "/cpufreq");
    if (!is_directory(freq_dir)) {
      notes_.push_back(freq_dir + ": missing: no cpufreq driver for cpu" + std::to_string(cpu));
      continue;
    }
    Entry e;
    e.info.cpu = cpu;
    char resolved[PATH_MAX];
    if (::realpath(freq_dir.c_str(), resolved) != nullptr) {
      const std::string r = resolved;
      e.info.policy = r.substr(r.find_last_of('/') + 1);
    }
    Result<std::uint64_t> lo = read_u64_file(join_path(freq_dir, "cpuinfo_min_freq"));
    Result<std::uint64_t> hi = read_u64_file(join_path(freq_dir, "cpuinfo_max_freq"));
    if (!lo.ok() || !hi.ok() || lo.value() == 0 || lo.value() > hi.value()) {
      notes_.push_back(freq_dir + ": skipped: cpuinfo_min_freq/cpuinfo_max_freq unreadable or " +
                       "inconsistent" + (lo.ok() ? "" : " (" + lo.message() + ")") +
                       (hi.ok() ? "" : " (" + hi.message() + ")"));
      continue;
    }
    e.info.cpuinfo_min_khz = lo.value();
    e.info.cpuinfo_max_khz = hi.value();
    Result<std::uint64_t> smin = read_u64_file(join_path(freq_dir, "scaling_min_freq"));
    if (smin.ok()) e.info.scaling_min_khz = smin.value();
    Result<SysfsFile> f = SysfsFile::open(join_path(freq_dir, "scaling_max_freq"),
                                          SysfsFile::Access::read_write_if_permitted);
    if (!f.ok()) {
      notes_.push_back(f.message());
      continue;
    }
    if (!f->writable()) notes_.push_back(f->write_refusal());
    e.scaling_max = std::move(f).value();
    cpus_.push_back(e.info);
    entries_.push_back(std::move(e));
  }
  if (entries_.empty()) {
    return Status::failure(dir + ": no CPU has cpufreq (no driver loaded; normal in VMs)", ENOENT);
  }
  return Status::success();
} catch (const std::exception &ex) {
  return Status::failure(std::string("cpufreq discovery: ") + ex.what(), ENOMEM);
}

CpufreqLimits::Entry *CpufreqLimits::entry(int cpu) {
  for (auto &e : entries_) {
    if (e.info.cpu == cpu) return &e;
  }
  return nullptr;
}

const CpufreqLimits::Entry *CpufreqLimits::entry(int cpu) const {
  for (const auto &e : entries_) {
    if (e.info.cpu == cpu) return &e;
  }
  return nullptr;
}

const CpufreqCpu *CpufreqLimits::find(int cpu) const {
  const Entry *e = entry(cpu);
  return e ? &e->info : nullptr;
}

Result<std::uint64_t> CpufreqLimits::max_freq_khz(int cpu) const {
  const Entry *e = entry(cpu);
  if (e == nullptr) return Error{"cpu" + std::to_string(cpu) + ": no cpufreq", ENOENT};
  return e->scaling_max.read_u64();
}

Result<std::uint64_t> CpufreqLimits::set_max_freq_khz(int cpu, std::uint64_t khz) {
  Entry *e = entry(cpu);
  if (e == nullptr) return Error{"cpu" + std::to_string(cpu) + ": no cpufreq", ENOENT};
  const std::uint64_t value = std::clamp(khz, e->info.cpuinfo_min_khz, e->info.cpuinfo_max_khz);
  Status s = e->scaling_max.write_u64(value);
  if (!s.ok()) return s.error();
  return e->scaling_max.read_u64();
}

Result<CpufreqSnapshot> CpufreqLimits::snapshot() const try {
  CpufreqSnapshot snap;
  for (const auto &e : entries_) {
    Result<std::uint64_t> v = e.scaling_max.read_u64();
    if (!v.ok()) return v.error();
    snap.cpus.push_back({e.info.cpu, v.value()});
  }
  return snap;
} catch (const std::exception &ex) {
  return Error{std::string("cpufreq snapshot: ") + ex.what(), ENOMEM};
}

Status CpufreqLimits::restore(const CpufreqSnapshot &saved) try {
  StatusCollector errors;
  for (const auto &c : saved.cpus) {
    Entry *e = entry(c.cpu);
    if (e == nullptr) {
      errors.add(Status::failure(
          "cpu" + std::to_string(c.cpu) + ": saved cpufreq limit but the CPU has no cpufreq now",
          ENOENT));
      continue;
    }
    Status s = e->scaling_max.write_u64(c.scaling_max_freq_khz);
    if (!s.ok()) {
      errors.add(s);
      continue;
    }
    Result<std::uint64_t> back = e->scaling_max.read_u64();
    if (!back.ok()) {
      errors.add(back.status());
    } else if (back.value() != c.scaling_max_freq_khz) {
      errors.add(Status::failure(
          e->scaling_max.path() + ": restored " + std::to_string(c.scaling_max_freq_khz) +
              " kHz but the kernel reads back " + std::to_string(back.value()),
          EIO));
    }
  }
  return errors.status();
} catch (const std::exception &ex) {
  return Status::failure(std::string("cpufreq restore: ") + ex.what(), ENOMEM);
}

std::vector<int> CpuTopology::cpus_of_package(int package_id) const {
  std::vector<int> out;
  for (const auto &[cpu, pkg] : package_of_cpu) {
    if (pkg == package_id) out.push_back(cpu);
  }
  return out;
}

Result<CpuTopology> read_cpu_topology(const std::string &sysfs_root) try {
  CpuTopology topo;
  Result<std::vector<int>> online = online_cpus(sysfs_root);
  if (!online.ok()) return online.error();
  topo.online_cpus = online.value();
  for (int cpu : topo.online_cpus) {
    const std::string path = join_path(
        cpu_dir(sysfs_root), "cpu" + std::to_string(cpu) + "/topology/physical_package_id");
    Result<std::string> text = read_small_file(path, 64);
    if (!text.ok()) return text.error();
    std::uint64_t pkg = 0;
    if (!parse_u64(trimmed(text.value()), &pkg) || pkg > 65535) {
      return Error{path + ": expected a package number, read '" + trimmed(text.value()) + "'",
                   EINVAL};
    }
    topo.package_of_cpu[cpu] = static_cast<int>(pkg);
  }
  return topo;
} catch (const std::exception &ex) {
  return Error{std::string("cpu topology: ") + ex.what(), ENOMEM};
}

}  // namespace powergrad::hw
