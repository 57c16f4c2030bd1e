#include "hardware/testing/fake_sysfs.hpp"

#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <optional>
#include <vector>

#include "hardware/sysfs_file.hpp"

namespace powergrad::hw::testing {

namespace {

// Energy ranges as the kernel computes them: (2^32 - 1) x the energy unit in nJ / 1000.
constexpr std::uint64_t kIntelPackageRangeUj = 262143328850;  // unit 61.035 uJ (2^-14 J)
constexpr std::uint64_t kIntelDramRangeUj = 65712999613;      // server DRAM: fixed 15.3 uJ
constexpr std::uint64_t kAmdRangeUj = 65532610987;            // unit 15.258 uJ (2^-16 J)

struct File {
  std::string name;
  std::string content;
  mode_t mode;
};

struct ConstraintSpec {
  std::string name;
  std::uint64_t limit_uw;
  std::optional<std::uint64_t> window_us;
  // nullopt: no file; 0 and up: the value; kUnreadable: a file the kernel cannot answer.
  std::optional<std::uint64_t> max_power_uw;
};
constexpr std::uint64_t kUnreadable = ~std::uint64_t{0};

int remove_entry(const char *path, const struct stat *, int, struct FTW *) {
  return ::remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

Status symlink_to(const std::string &target, const std::string &link) {
  if (::symlink(target.c_str(), link.c_str()) != 0) {
    return Status::failure(errno_error(link, "cannot create symbolic link to " + target, errno));
  }
  return Status::success();
}

Status make_control_type(const std::string &root) {
  const std::string dev = join_path(root, "devices/virtual/powercap/intel-rapl");
  Status s = make_dirs(dev);
  if (!s.ok()) return s;
  if (!(s = write_text(join_path(dev, "enabled"), "1\n", 0644)).ok()) return s;
  if (!(s = write_text(join_path(dev, "uevent"), "", 0644)).ok()) return s;
  if (!(s = make_dirs(join_path(root, "class/powercap"))).ok()) return s;
  const std::string link = join_path(root, "class/powercap/intel-rapl");
  if (path_exists(link)) return Status::success();
  return symlink_to("../../devices/virtual/powercap/intel-rapl", link);
}

// A zone folder at devices/virtual/powercap/<rel> and its class/powercap link.
Status make_zone(const std::string &root, const std::string &rel, const std::string &zone,
                 const std::string &label, std::uint64_t energy_uj, std::uint64_t range_uj,
                 bool enabled, const std::vector<ConstraintSpec> &constraints) {
  const std::string dir = join_path(root, "devices/virtual/powercap/" + rel);
  Status s = make_dirs(dir);
  if (!s.ok()) return s;
  std::vector<File> files = {
      {"name", label + "\n", 0444},
      {"energy_uj", std::to_string(energy_uj) + "\n", 0400},  // root-only since 5.10
      {"max_energy_range_uj", std::to_string(range_uj) + "\n", 0444},
      {"enabled", enabled ? "1\n" : "0\n", 0644},
      {"uevent", "", 0644},
  };
  for (std::size_t n = 0; n < constraints.size(); ++n) {
    const ConstraintSpec &c = constraints[n];
    const std::string p = "constraint_" + std::to_string(n) + "_";
    files.push_back({p + "name", c.name + "\n", 0444});
    files.push_back({p + "power_limit_uw", std::to_string(c.limit_uw) + "\n", 0644});
    if (c.window_us)
      files.push_back({p + "time_window_us", std::to_string(*c.window_us) + "\n", 0644});
    if (c.max_power_uw && *c.max_power_uw != kUnreadable) {
      files.push_back({p + "max_power_uw", std::to_string(*c.max_power_uw) + "\n", 0444});
    } else if (c.max_power_uw) {
      // The kernel answers ENODATA/EIO when reading this for sub-zones without a power-info
      // register; a folder of that name is a file that exists and cannot be read.
      if (!(s = make_dirs(join_path(dir, p + "max_power_uw"))).ok()) return s;
    }
  }
  for (const auto &f : files) {
    if (!(s = write_text(join_path(dir, f.name), f.content, f.mode)).ok()) return s;
  }
  if (!(s = make_dirs(join_path(dir, "power"))).ok()) return s;  // runtime PM, ignored
  const std::string link = join_path(root, "class/powercap/" + zone);
  return symlink_to("../../devices/virtual/powercap/" + rel, link);
}

}  // namespace

// ---------------------------------------------------------------- TempDir

Result<TempDir> TempDir::create(const std::string &prefix) {
  const char *tmp = std::getenv("TMPDIR");
  std::string templ = join_path(tmp && *tmp ? tmp : "/tmp", prefix + ".XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return errno_error(templ, "mkdtemp failed", errno);
  TempDir d;
  d.path_ = buf.data();
  return d;
}

TempDir::~TempDir() {
  if (!path_.empty()) (void)remove_tree(path_);
}

TempDir &TempDir::operator=(TempDir &&other) noexcept {
  if (this != &other) {
    if (!path_.empty()) (void)remove_tree(path_);
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

Status remove_tree(const std::string &path) {
  if (::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
    return Status::failure(errno_error(path, "cannot remove tree", errno));
  }
  return Status::success();
}

// ---------------------------------------------------------------- file helpers

Status make_dirs(const std::string &path) {
  std::string partial;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::failure(errno_error(partial, "mkdir failed", errno));
    }
  }
  return Status::success();
}

Status write_text(const std::string &path, const std::string &text, mode_t mode) {
  // Tests rewrite read-only fixture files (energy_uj is 0400): as their owner, not only as
  // root, so make an existing file writable first; the mode is set again below.
  (void)::chmod(path.c_str(), 0600);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::failure(errno_error(path, "cannot create", errno));
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::failure(errno_error(path, "write failed", errno));
  }
  if (::fchmod(fd.get(), mode) != 0)
    return Status::failure(errno_error(path, "chmod failed", errno));
  return Status::success();
}

Result<std::string> read_text(const std::string &path) { return read_small_file(path, 1 << 20); }

std::string zone_path(const std::string &root, const std::string &zone) {
  return join_path(root, "class/powercap/" + zone);
}

std::string cpufreq_path(const std::string &root, int cpu) {
  return join_path(root, "devices/system/cpu/cpu" + std::to_string(cpu) + "/cpufreq");
}

// ---------------------------------------------------------------- machines

Status build_intel_server(const std::string &root, const IntelServerSpec &spec) try {
  Status s = make_control_type(root);
  if (!s.ok()) return s;
  for (int p = 0; p < spec.packages; ++p) {
    const std::string zone = "intel-rapl:" + std::to_string(p);
    const std::vector<ConstraintSpec> constraints = {
        {"long_term", spec.tdp_uw, 999424, spec.tdp_uw},
        {"short_term", spec.short_term_uw, 2440, spec.short_term_max_uw},
    };
    s = make_zone(root, "intel-rapl/" + zone, zone, "package-" + std::to_string(p),
                  123456789 + 1000003ull * p, kIntelPackageRangeUj, true, constraints);
    if (!s.ok()) return s;
    if (spec.dram) {
      const std::string sub = zone + ":0";
      s = make_zone(root, "intel-rapl/" + zone + "/" + sub, sub, "dram", 45678901 + 7919ull * p,
                    kIntelDramRangeUj, false, {{"long_term", 0, 976, spec.dram_max_uw}});
      if (!s.ok()) return s;
    }
  }
  return build_cpu_topology(root, spec.packages * spec.cpus_per_package, spec.cpus_per_package);
} catch (const std::exception &e) {
  return Status::failure(std::string("fixture: ") + e.what(), ENOMEM);
}

Status build_intel_client(const std::string &root, const IntelClientSpec &spec) try {
  Status s = make_control_type(root);
  if (!s.ok()) return s;
  s = make_zone(root, "intel-rapl/intel-rapl:0", "intel-rapl:0", "package-0", 9876543210,
                kIntelPackageRangeUj, true,
                {{"long_term", spec.tdp_uw, 27983872, spec.tdp_uw},
                 {"short_term", spec.short_term_uw, 2440, 0},
                 {"peak_power", spec.peak_uw, std::nullopt, 0}});
  if (!s.ok()) return s;
  int sub = 0;
  for (const char *label : {"core", "uncore"}) {
    const std::string z = "intel-rapl:0:" + std::to_string(sub++);
    s = make_zone(root, "intel-rapl/intel-rapl:0/" + z, z, label, 1234567 * sub,
                  kIntelPackageRangeUj, false, {{"long_term", 0, 976, kUnreadable}});
    if (!s.ok()) return s;
  }
  if (spec.dram) {
    const std::string z = "intel-rapl:0:" + std::to_string(sub++);
    s = make_zone(root, "intel-rapl/intel-rapl:0/" + z, z, "dram", 2345678, kIntelPackageRangeUj,
                  false, {{"long_term", 0, 976, kUnreadable}});
    if (!s.ok()) return s;
  }
  if (spec.psys) {
    s = make_zone(root, "intel-rapl/intel-rapl:1", "intel-rapl:1", "psys", 3456789,
                  kIntelPackageRangeUj, false,
                  {{"long_term", 0, 27983872, 0}, {"short_term", 0, 976, 0}});
    if (!s.ok()) return s;
  }
  return build_cpu_topology(root, spec.cpus, spec.cpus);
} catch (const std::exception &e) {
  return Status::failure(std::string("fixture: ") + e.what(), ENOMEM);
}

Status build_amd_server(const std::string &root, const AmdServerSpec &spec) try {
  Status s = make_control_type(root);
  if (!s.ok()) return s;
  for (int p = 0; p < spec.packages; ++p) {
    const std::string zone = "intel-rapl:" + std::to_string(p);
    s = make_zone(root, "intel-rapl/" + zone, zone, "package-" + std::to_string(p),
                  55555555 + 31ull * p, kAmdRangeUj, false, {});
    if (!s.ok()) return s;
    if (spec.core_subzone) {
      const std::string sub = zone + ":0";
      s = make_zone(root, "intel-rapl/" + zone + "/" + sub, sub, "core", 4444444, kAmdRangeUj,
                    false, {});
      if (!s.ok()) return s;
    }
  }
  return build_cpu_topology(root, spec.packages * spec.cpus_per_package, spec.cpus_per_package);
} catch (const std::exception &e) {
  return Status::failure(std::string("fixture: ") + e.what(), ENOMEM);
}

// hwmon0 is k10temp; sockets follow from hwmon1 (the order the driver registers them).
constexpr int kFirstHsmpHwmon = 1;

std::string hsmp_hwmon_path(const std::string &root, int socket) {
  return join_path(root, "class/hwmon/hwmon" + std::to_string(kFirstHsmpHwmon + socket));
}

Status build_amd_genoa(const std::string &root, const AmdGenoaSpec &spec) try {
  if (spec.packages < 1 || spec.cpus_per_package < 1 || spec.cap_max_uw == 0) {
    return Status::failure("fixture: bad amd-genoa spec", EINVAL);
  }
  Status s;
  if (spec.powercap) {
    s = make_control_type(root);
    if (!s.ok()) return s;
    for (int p = 0; p < spec.packages; ++p) {
      const std::string zone = "intel-rapl:" + std::to_string(p);
      s = make_zone(root, "intel-rapl/" + zone, zone, "package-" + std::to_string(p),
                    77777777 + 37ull * p, kAmdRangeUj, false, {});
      if (!s.ok()) return s;
    }
  }
  if (!(s = make_dirs(join_path(root, "class/hwmon"))).ok()) return s;
  {
    const std::string dev = join_path(root, "devices/pci0000:00/0000:00:18.3/hwmon/hwmon0");
    if (!(s = make_dirs(dev)).ok()) return s;
    if (!(s = write_text(join_path(dev, "name"), "k10temp\n", 0444)).ok()) return s;
    if (!(s = write_text(join_path(dev, "temp1_input"), "41250\n", 0444)).ok()) return s;
    if (!(s = symlink_to("../../devices/pci0000:00/0000:00:18.3/hwmon/hwmon0",
                         join_path(root, "class/hwmon/hwmon0")))
             .ok())
      return s;
  }
  if (spec.hwmon) {
    const auto mw = [](std::uint64_t uw) { return std::to_string(uw / 1000u * 1000u) + "\n"; };
    for (int p = 0; p < spec.packages; ++p) {
      const std::string acpi = "AMDI0097:0" + std::to_string(p);
      const std::string hw = "hwmon" + std::to_string(kFirstHsmpHwmon + p);
      const std::string parent = join_path(root, "devices/platform/" + acpi);
      const std::string dev = join_path(parent, "hwmon/" + hw);
      if (!(s = make_dirs(dev)).ok()) return s;
      std::vector<File> files = {
          {"name", "amd_hsmp_hwmon\n", 0444},
          {"power1_input", mw(spec.power_uw), 0444},
          {"power1_cap", mw(spec.cap_uw), 0644},
          {"power1_cap_max", mw(spec.cap_max_uw), 0444},
          {"uevent", "", 0644},
      };
      for (const auto &f : files) {
        if (!(s = write_text(join_path(dev, f.name), f.content, f.mode)).ok()) return s;
      }
      if (!(s = symlink_to("../../" + acpi, join_path(dev, "device"))).ok()) return s;
      if (!(s = symlink_to("../../devices/platform/" + acpi + "/hwmon/" + hw,
                           join_path(root, "class/hwmon/" + hw)))
               .ok())
        return s;
    }
  }
  return build_cpu_topology(root, spec.packages * spec.cpus_per_package, spec.cpus_per_package);
} catch (const std::exception &e) {
  return Status::failure(std::string("fixture: ") + e.what(), ENOMEM);
}

Status build_no_powercap(const std::string &root, int cpus) {
  return build_cpu_topology(root, cpus, cpus);
}

Status build_cpu_topology(const std::string &root, int cpus, int cpus_per_package) try {
  if (cpus < 1 || cpus_per_package < 1) return Status::failure("fixture: bad cpu counts", EINVAL);
  const std::string dir = join_path(root, "devices/system/cpu");
  Status s = make_dirs(dir);
  if (!s.ok()) return s;
  const std::string all = "0-" + std::to_string(cpus - 1) + "\n";
  for (const char *f : {"online", "possible", "present"}) {
    if (!(s = write_text(join_path(dir, f), all, 0444)).ok()) return s;
  }
  for (int c = 0; c < cpus; ++c) {
    const std::string topo = join_path(dir, "cpu" + std::to_string(c) + "/topology");
    if (!(s = make_dirs(topo)).ok()) return s;
    if (!(s = write_text(join_path(topo, "physical_package_id"),
                         std::to_string(c / cpus_per_package) + "\n", 0444))
             .ok()) {
      return s;
    }
    if (!(s = write_text(join_path(topo, "core_id"), std::to_string(c % cpus_per_package) + "\n",
                         0444))
             .ok()) {
      return s;
    }
  }
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("fixture: ") + e.what(), ENOMEM);
}

Status build_cpufreq(const std::string &root, const CpufreqSpec &spec) try {
  const std::string dir = join_path(root, "devices/system/cpu");
  if (!path_exists(join_path(dir, "online"))) {
    Status s = build_cpu_topology(root, spec.cpus, spec.cpus);
    if (!s.ok()) return s;
  }
  for (int c = 0; c < spec.cpus; ++c) {
    const std::string policy = "policy" + std::to_string(c);
    const std::string pdir = join_path(dir, "cpufreq/" + policy);
    Status s = make_dirs(pdir);
    if (!s.ok()) return s;
    const std::string cpu = std::to_string(c) + "\n";
    const std::vector<File> files = {
        {"affected_cpus", cpu, 0444},
        {"related_cpus", cpu, 0444},
        {"cpuinfo_min_freq", std::to_string(spec.min_khz) + "\n", 0444},
        {"cpuinfo_max_freq", std::to_string(spec.max_khz) + "\n", 0444},
        {"cpuinfo_transition_latency", "0\n", 0444},
        {"scaling_available_governors", "performance powersave\n", 0444},
        {"scaling_cur_freq", std::to_string(spec.max_khz) + "\n", 0444},
        {"scaling_driver", spec.driver + "\n", 0444},
        {"scaling_governor", spec.governor + "\n", 0644},
        {"scaling_max_freq", std::to_string(spec.max_khz) + "\n", 0644},
        {"scaling_min_freq", std::to_string(spec.min_khz) + "\n", 0644},
        {"scaling_setspeed", "<unsupported>\n", 0644},
    };
    for (const auto &f : files) {
      if (!(s = write_text(join_path(pdir, f.name), f.content, f.mode)).ok()) return s;
    }
    const std::string cpu_dir = join_path(dir, "cpu" + std::to_string(c));
    if (!(s = make_dirs(cpu_dir)).ok()) return s;
    if (!(s = symlink_to("../cpufreq/" + policy, join_path(cpu_dir, "cpufreq"))).ok()) return s;
  }
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("fixture: ") + e.what(), ENOMEM);
}

const char *machine_kinds() {
  return "intel-server, intel-client, amd-server, amd-genoa, amd-genoa-nohwmon, no-powercap";
}

Status build_machine(const std::string &root, const std::string &kind, double socket_w) {
  Status s;
  if (socket_w != 0.0 && kind.compare(0, 9, "amd-genoa") != 0) {
    return Status::failure("a socket power is only taken for amd-genoa machines", EINVAL);
  }
  if (!(socket_w == 0.0 || (socket_w >= 10.0 && socket_w <= 1000.0))) {
    return Status::failure("socket power must be in [10, 1000] W", EINVAL);
  }
  if (kind == "intel-server") {
    IntelServerSpec spec;
    s = build_intel_server(root, spec);
    if (s.ok()) s = build_cpufreq(root, {spec.packages * spec.cpus_per_package, 800000, 3400000});
  } else if (kind == "intel-client") {
    IntelClientSpec spec;
    s = build_intel_client(root, spec);
    if (s.ok()) s = build_cpufreq(root, {spec.cpus, 400000, 4700000});
  } else if (kind == "amd-server") {
    AmdServerSpec spec;
    s = build_amd_server(root, spec);
    if (s.ok()) {
      s = build_cpufreq(root, {spec.packages * spec.cpus_per_package, 1500000, 3700000,
                               "acpi-cpufreq", "ondemand"});
    }
  } else if (kind == "amd-genoa" || kind == "amd-genoa-nohwmon") {
    AmdGenoaSpec spec;
    spec.hwmon = kind == "amd-genoa";
    if (socket_w > 0.0) {
      spec.cap_uw = spec.cap_max_uw = static_cast<std::uint64_t>(socket_w * 1000.0) * 1000u;
    }
    s = build_amd_genoa(root, spec);
    if (s.ok()) {
      s = build_cpufreq(root, {spec.packages * spec.cpus_per_package, 1500000, 3700000,
                               "acpi-cpufreq", "schedutil"});
    }
  } else if (kind == "no-powercap") {
    s = build_no_powercap(root, 2);
  } else {
    s = Status::failure("unknown machine '" + kind + "' (known: " + machine_kinds() + ")", EINVAL);
  }
  return s;
}

}  // namespace powergrad::hw::testing
