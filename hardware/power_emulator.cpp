#include "hardware/power_emulator.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <exception>

#include "hardware/powercap.hpp"
#include "libgradient/format.hpp"

namespace powergrad::hw {

namespace {

// energy_uj is 0400 in a faithful tree. Root writes it anyway; an unprivileged owner (tests
// run as a normal user) gets write access by briefly adding the owner's write bit: the
// descriptor keeps it after the mode is put back.
Result<UniqueFd> open_energy_for_writing(const std::string &path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (fd.valid()) return fd;
  if (errno != EACCES) return errno_error(path, "cannot open for writing", errno);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_uid != ::geteuid()) {
    return errno_error(path, "cannot open for writing (not root, not the owner)", EACCES);
  }
  if (::chmod(path.c_str(), (st.st_mode & 07777) | S_IWUSR) != 0) {
    return errno_error(path, "cannot make writable", errno);
  }
  fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
  const int err = errno;
  ::chmod(path.c_str(), st.st_mode & 07777);
  if (!fd.valid()) return errno_error(path, "cannot open for writing", err);
  return fd;
}

}  // namespace

std::string PowerEmulatorConfig::check() const {
  const std::string model = socket.check();
  if (!model.empty()) return "socket model: " + model;
  if (!(settle_s >= 0.0) || !std::isfinite(settle_s)) return "settle_s must be >= 0";
  for (double w : {default_demand_w, dram_w, uncore_w, platform_w}) {
    if (!(w >= 0.0) || !std::isfinite(w)) return "powers must be finite and >= 0";
  }
  return "";
}

PowerEmulator::PowerEmulator(std::string sysfs_root, PowerEmulatorConfig config)
    : sysfs_root_(std::move(sysfs_root)), config_(config) {}

Status PowerEmulator::open() try {
  const std::string why = config_.check();
  if (!why.empty()) return Status::failure("power emulator: " + why, EINVAL);
  zones_.clear();
  names_.clear();
  hsmp_.reset();
  Result<std::unique_ptr<HsmpSockets>> hsmp = discover_hsmp_hwmon(sysfs_root_);
  if (hsmp.ok()) hsmp_ = std::move(hsmp).value();
  // Discovery through the real class: the emulator sees the tree the agent sees.
  PowercapTree tree(sysfs_root_);
  Status s = tree.discover();
  if (!s.ok() && !hsmp_) return s;
  auto attach_hsmp = [this](Zone &z, int socket) -> Status {
    if (!hsmp_ || socket < 0 || socket >= hsmp_->sockets()) return Status::success();
    z.hsmp_socket = socket;
    std::string input = hsmp_->where(socket);  // .../hwmonN/power1_cap
    input = input.substr(0, input.find_last_of('/')) + "/power1_input";
    Result<UniqueFd> fd = open_energy_for_writing(input);
    if (!fd.ok()) return fd.status();
    z.hsmp_power_fd = std::move(fd).value();
    return Status::success();
  };
  if (!s.ok()) {
    // HSMP only: one zone per socket, power1_input is all it reports.
    for (int sock = 0; sock < hsmp_->sockets(); ++sock) {
      Zone z;
      z.name = "hsmp:" + std::to_string(sock);
      z.label = "package-" + std::to_string(sock);
      z.package = true;
      z.demand_w = config_.default_demand_w > 0.0 ? config_.default_demand_w : config_.socket.tdp_w;
      Status a = attach_hsmp(z, sock);
      if (!a.ok()) return a;
      names_.push_back(z.name);
      zones_.push_back(std::move(z));
    }
    return Status::success();
  }
  for (const auto &pz : tree.zones()) {
    Zone z;
    z.name = pz.name();
    z.label = pz.label();
    z.parent = pz.parent();
    z.path = pz.path();
    z.package = pz.kind() == ZoneKind::package && pz.parent().empty();
    z.max_range_uj = pz.max_energy_range_uj();
    const std::string energy = join_path(z.path, "energy_uj");
    Result<UniqueFd> fd = open_energy_for_writing(energy);
    if (!fd.ok()) return fd.status();
    z.energy_fd = std::move(fd).value();
    Result<SysfsFile> reader = SysfsFile::open(energy, SysfsFile::Access::read_only);
    if (!reader.ok()) return reader.status();
    Result<std::uint64_t> start = reader->read_u64();
    if (!start.ok()) return start.status();
    z.start_uj = static_cast<double>(start.value());
    z.demand_w = config_.default_demand_w > 0.0 ? config_.default_demand_w : config_.socket.tdp_w;
    if (const PowercapConstraint *lt = pz.constraint(ConstraintKind::long_term)) {
      Result<SysfsFile> lf = SysfsFile::open(
          join_path(z.path, "constraint_" + std::to_string(lt->index()) + "_power_limit_uw"),
          SysfsFile::Access::read_only);
      if (lf.ok()) {
        z.limit = std::move(lf).value();
        z.has_limit = true;
      }
    }
    Result<SysfsFile> ef =
        SysfsFile::open(join_path(z.path, "enabled"), SysfsFile::Access::read_only);
    if (ef.ok()) z.enabled = std::move(ef).value();
    if (z.package && !z.has_limit) {
      Status a = attach_hsmp(z, pz.package_id().value_or(-1));
      if (!a.ok()) return a;
    }
    names_.push_back(z.name);
    zones_.push_back(std::move(z));
  }
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("power emulator: ") + e.what(), ENOMEM);
}

PowerEmulator::Zone *PowerEmulator::zone(const std::string &name) {
  for (auto &z : zones_) {
    if (z.name == name) return &z;
  }
  return nullptr;
}

const PowerEmulator::Zone *PowerEmulator::zone(const std::string &name) const {
  for (const auto &z : zones_) {
    if (z.name == name) return &z;
  }
  return nullptr;
}

Status PowerEmulator::set_demand_w(const std::string &name, double watts) {
  Status ok = check_zone_name(name);
  if (!ok.ok()) return ok;
  Zone *z = zone(name);
  if (z == nullptr) return Status::failure("power emulator: no zone " + name, ENOENT);
  if (!z->package) {
    return Status::failure("power emulator: " + name + " is not a package zone", EINVAL);
  }
  if (!std::isfinite(watts) || watts < 0.0 || watts > 100000.0) {
    return Status::failure("power emulator: demand of " + name + " must be in [0, 100000] W",
                           EINVAL);
  }
  z->demand_w = watts;
  return Status::success();
}

Status PowerEmulator::load_demand_file(const std::string &path) try {
  Result<std::string> text = read_small_file(path, 65536);
  if (!text.ok()) return text.status();
  std::size_t line_no = 0, pos = 0;
  const std::string &t = text.value();
  while (pos < t.size()) {
    const auto nl = t.find('\n', pos);
    std::string line = t.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? t.size() : nl + 1;
    ++line_no;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    double watts = 0.0;
    if (eq == std::string::npos || !parse_double(line.substr(eq + 1), &watts)) {
      return Status::failure(path + ": line " + std::to_string(line_no) +
                                 ": expected <zone>=<watts>, got '" + line + "'",
                             EINVAL);
    }
    Status s = set_demand_w(line.substr(0, eq), watts);
    if (!s.ok()) {
      return Status::failure(path + ": line " + std::to_string(line_no) + ": " + s.message(),
                             s.errno_value());
    }
  }
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("power emulator: ") + e.what(), ENOMEM);
}

std::optional<double> PowerEmulator::cap_w(const Zone &z) const {
  if (z.hsmp_socket >= 0) {
    // HSMP: the SMU holds the socket at its limit, always in force.
    Result<std::uint64_t> limit = hsmp_->limit_uw(z.hsmp_socket);
    if (!limit.ok()) return std::nullopt;
    return static_cast<double>(limit.value()) / 1e6;
  }
  if (!z.has_limit) return std::nullopt;
  if (z.enabled.is_open()) {
    Result<std::uint64_t> on = z.enabled.read_u64();
    if (on.ok() && on.value() == 0) return std::nullopt;
  }
  Result<std::uint64_t> limit = z.limit.read_u64();
  if (!limit.ok()) return std::nullopt;
  return static_cast<double>(limit.value()) / 1e6;
}

Status PowerEmulator::write_energy(Zone &z) {
  if (z.hsmp_power_fd.valid()) {
    // power1_input: whole milliwatts in microwatts, as the driver converts them.
    const auto mw = static_cast<std::uint64_t>(std::llround(z.power_w * 1e3));
    const std::string text = std::to_string(mw * 1000u) + "\n";
    if (::pwrite(z.hsmp_power_fd.get(), text.data(), text.size(), 0) !=
            static_cast<ssize_t>(text.size()) ||
        ::ftruncate(z.hsmp_power_fd.get(), static_cast<off_t>(text.size())) != 0) {
      return Status::failure(
          errno_error(hsmp_->where(z.hsmp_socket), "power1_input write failed", errno));
    }
  }
  if (!z.energy_fd.valid()) return Status::success();
  const double total = z.start_uj + z.added_uj;
  std::uint64_t value = static_cast<std::uint64_t>(std::floor(total));
  if (z.max_range_uj > 0) value %= (z.max_range_uj + 1);
  const std::string text = std::to_string(value) + "\n";
  // In place, so the agent's open descriptor sees it (a rename would leave it reading the
  // old file forever). Readers take the first line, so the moment between pwrite and
  // ftruncate after a wrap (new text shorter) still reads right.
  if (::pwrite(z.energy_fd.get(), text.data(), text.size(), 0) !=
      static_cast<ssize_t>(text.size())) {
    return Status::failure(errno_error(join_path(z.path, "energy_uj"), "write failed", errno));
  }
  if (::ftruncate(z.energy_fd.get(), static_cast<off_t>(text.size())) != 0) {
    return Status::failure(errno_error(join_path(z.path, "energy_uj"), "truncate failed", errno));
  }
  return Status::success();
}

Status PowerEmulator::advance(double dt_s) try {
  if (!std::isfinite(dt_s) || dt_s < 0.0 || dt_s > 3600.0) {
    return Status::failure("power emulator: step must be in [0, 3600] s", EINVAL);
  }
  const double lag = config_.settle_s > 0.0 ? 1.0 - std::exp(-dt_s / config_.settle_s) : 1.0;
  double packages_w = 0.0, dram_total_w = 0.0;
  for (auto &z : zones_) {
    if (!z.package) continue;
    const std::optional<double> cap = cap_w(z);
    const double target = cap ? *cap : z.demand_w;
    z.enforced_w = z.enforced_w ? *z.enforced_w + (target - *z.enforced_w) * lag : target;
    z.power_w = std::max(0.0, std::min(z.demand_w, *z.enforced_w));
    packages_w += z.power_w;
  }
  for (auto &z : zones_) {
    if (z.package) continue;
    const Zone *parent = z.parent.empty() ? nullptr : zone(z.parent);
    const double pkg_w = parent ? parent->power_w : 0.0;
    if (z.label == "dram") {
      const std::optional<double> cap = cap_w(z);
      z.power_w = cap ? std::min(config_.dram_w, *cap) : config_.dram_w;
      dram_total_w += z.power_w;
    } else if (z.label == "uncore") {
      z.power_w = std::min(config_.uncore_w, 0.2 * pkg_w);
    } else if (z.label == "core") {
      const double uncore = std::min(config_.uncore_w, 0.2 * pkg_w);
      z.power_w = 0.75 * std::max(0.0, pkg_w - uncore);
    } else {
      z.power_w = 0.0;
    }
  }
  for (auto &z : zones_) {
    if (z.label == "psys") z.power_w = packages_w + dram_total_w + config_.platform_w;
  }
  StatusCollector errors;
  for (auto &z : zones_) {
    z.added_uj += z.power_w * dt_s * 1e6;
    errors.add(write_energy(z));
  }
  return errors.status();
} catch (const std::exception &e) {
  return Status::failure(std::string("power emulator: ") + e.what(), ENOMEM);
}

std::optional<double> PowerEmulator::power_w(const std::string &name) const {
  const Zone *z = zone(name);
  if (z == nullptr) return std::nullopt;
  return z->power_w;
}

std::optional<double> PowerEmulator::energy_j(const std::string &name) const {
  const Zone *z = zone(name);
  if (z == nullptr) return std::nullopt;
  return z->added_uj / 1e6;
}

std::optional<double> PowerEmulator::enforced_limit_w(const std::string &name) const {
  const Zone *z = zone(name);
  if (z == nullptr) return std::nullopt;
  return z->enforced_w;
}

}  // namespace powergrad::hw
