#include "hardware/hsmp.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <exception>
#include <tuple>

#include "posix/unique_fd.hpp"

// The kernel's uapi header when the build machine has it (Debian 12's linux-libc-dev does);
// otherwise the same layout and request number, defined here. Either way HsmpMessage must
// match struct hsmp_message byte for byte: it is handed to the ioctl as is.
#if __has_include(<asm/amd_hsmp.h>)
#include <asm/amd_hsmp.h>
#define PG_HAVE_UAPI_HSMP 1
#endif

namespace powergrad::hw {

namespace {

#ifdef PG_HAVE_UAPI_HSMP
static_assert(sizeof(HsmpMessage) == sizeof(struct hsmp_message), "hsmp_message size");
static_assert(offsetof(HsmpMessage, num_args) == offsetof(struct hsmp_message, num_args), "");
static_assert(offsetof(HsmpMessage, response_sz) == offsetof(struct hsmp_message, response_sz), "");
static_assert(offsetof(HsmpMessage, args) == offsetof(struct hsmp_message, args), "");
static_assert(offsetof(HsmpMessage, sock_ind) == offsetof(struct hsmp_message, sock_ind), "");
static_assert(static_cast<std::uint32_t>(HsmpMsg::set_socket_power_limit) ==
                  HSMP_SET_SOCKET_POWER_LIMIT,
              "");
static_assert(static_cast<std::uint32_t>(HsmpMsg::get_socket_power_limit_max) ==
                  HSMP_GET_SOCKET_POWER_LIMIT_MAX,
              "");
static_assert(static_cast<std::uint32_t>(HsmpMsg::get_socket_power) == HSMP_GET_SOCKET_POWER, "");
const unsigned long kHsmpIoctl = HSMP_IOCTL_CMD;
#else
// _IOWR(0xF8, 0, struct hsmp_message)
const unsigned long kHsmpIoctl = _IOWR(0xF8, 0, HsmpMessage);
#endif
static_assert(sizeof(HsmpMessage) == 44, "struct hsmp_message is 44 bytes on x86-64");

class IoctlDevice final : public HsmpDevice {
 public:
  IoctlDevice(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  Status send(HsmpMessage &msg) override {
    int rc;
    do {
      rc = ::ioctl(fd_.get(), kHsmpIoctl, &msg);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      const int err = errno;
      return Status::failure(errno_error(path_,
                                         "HSMP message " + std::to_string(msg.msg_id) +
                                             " for socket " + std::to_string(msg.sock_ind) +
                                             " failed (" + hsmp_errno_cause(err) + ")",
                                         err));
    }
    return Status::success();
  }
  std::string describe() const override { return path_; }

 private:
  std::string path_;
  UniqueFd fd_;
};

std::uint64_t mw_to_uw(std::uint32_t mw) { return static_cast<std::uint64_t>(mw) * 1000u; }

class IoctlSockets final : public HsmpSockets {
 public:
  IoctlSockets(std::shared_ptr<HsmpDevice> dev, int sockets)
      : dev_(std::move(dev)), sockets_(sockets) {}
  CapBackend backend() const override { return CapBackend::hsmp_ioctl; }
  int sockets() const override { return sockets_; }
  Result<std::uint64_t> limit_uw(int s) const override {
    return get(s, HsmpMsg::get_socket_power_limit);
  }
  Result<std::uint64_t> limit_max_uw(int s) const override {
    return get(s, HsmpMsg::get_socket_power_limit_max);
  }
  Result<std::uint64_t> power_uw(int s) const override { return get(s, HsmpMsg::get_socket_power); }
  Status set_limit_uw(int s, std::uint64_t uw) override {
    if (s < 0 || s >= sockets_) return Status::failure(where(s) + ": no such socket", EINVAL);
    const std::uint64_t mw = uw / 1000u;
    if (mw > 0xffffffffu) return Status::failure(where(s) + ": limit out of range", ERANGE);
    HsmpMessage m;
    m.msg_id = static_cast<std::uint32_t>(HsmpMsg::set_socket_power_limit);
    m.num_args = 1;
    m.sock_ind = static_cast<std::uint16_t>(s);
    m.args[0] = static_cast<std::uint32_t>(mw);
    return dev_->send(m);
  }
  bool writable(int) const override { return true; }
  std::string write_refusal(int) const override { return ""; }
  std::string where(int s) const override {
    return dev_->describe() + " socket " + std::to_string(s);
  }

 private:
  Result<std::uint64_t> get(int s, HsmpMsg id) const {
    if (s < 0 || s >= sockets_) return Error{where(s) + ": no such socket", EINVAL};
    HsmpMessage m;
    m.msg_id = static_cast<std::uint32_t>(id);
    m.response_sz = 1;
    m.sock_ind = static_cast<std::uint16_t>(s);
    Status st = dev_->send(m);
    if (!st.ok()) return st.error();
    return mw_to_uw(m.args[0]);
  }
  std::shared_ptr<HsmpDevice> dev_;
  int sockets_;
};

class HwmonSockets final : public HsmpSockets {
 public:
  struct Socket {
    std::string dir;
    SysfsFile input, cap, cap_max;
  };
  CapBackend backend() const override { return CapBackend::hsmp_hwmon; }
  int sockets() const override { return static_cast<int>(sockets_.size()); }
  Result<std::uint64_t> limit_uw(int s) const override {
    if (!valid(s)) return Error{"no HSMP socket " + std::to_string(s), EINVAL};
    return sockets_[s].cap.read_u64();
  }
  Result<std::uint64_t> limit_max_uw(int s) const override {
    if (!valid(s)) return Error{"no HSMP socket " + std::to_string(s), EINVAL};
    if (!sockets_[s].cap_max.is_open()) {
      return Error{join_path(sockets_[s].dir, "power1_cap_max") + ": not available", ENOENT};
    }
    return sockets_[s].cap_max.read_u64();
  }
  Result<std::uint64_t> power_uw(int s) const override {
    if (!valid(s)) return Error{"no HSMP socket " + std::to_string(s), EINVAL};
    if (!sockets_[s].input.is_open()) {
      return Error{join_path(sockets_[s].dir, "power1_input") + ": not available", ENOENT};
    }
    return sockets_[s].input.read_u64();
  }
  Status set_limit_uw(int s, std::uint64_t uw) override {
    if (!valid(s)) return Status::failure("no HSMP socket " + std::to_string(s), EINVAL);
    Status st = sockets_[s].cap.write_u64(uw);
    if (!st.ok() && st.errno_value() != 0) {
      return Status::failure(st.message() + " (" + hsmp_errno_cause(st.errno_value()) + ")",
                             st.errno_value());
    }
    return st;
  }
  bool writable(int s) const override { return valid(s) && sockets_[s].cap.writable(); }
  std::string write_refusal(int s) const override {
    return valid(s) ? sockets_[s].cap.write_refusal() : "no such socket";
  }
  std::string where(int s) const override {
    return valid(s) ? join_path(sockets_[s].dir, "power1_cap") : "no such socket";
  }
  std::vector<Socket> sockets_;

 private:
  bool valid(int s) const { return s >= 0 && s < static_cast<int>(sockets_.size()); }
};

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// "hwmon12" -> 12
std::uint64_t hwmon_number(const std::string &name) {
  std::uint64_t n = 0;
  if (name.compare(0, 5, "hwmon") == 0 && parse_u64(name.substr(5), &n)) return n;
  return ~0ull;
}

}  // namespace

const char *to_string(CapBackend backend) {
  switch (backend) {
    case CapBackend::none:
      return "none";
    case CapBackend::rapl:
      return "rapl";
    case CapBackend::hsmp_hwmon:
      return "hsmp-hwmon";
    case CapBackend::hsmp_ioctl:
      return "hsmp-ioctl";
  }
  return "none";
}

std::string hsmp_errno_cause(int e) {
  switch (e) {
    case EPERM:
    case EACCES:
      return "permission: HSMP limits are root only";
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return "no driver: amd_hsmp not loaded, or not an EPYC of family 19h/1Ah";
    case ENOMSG:
    case EOPNOTSUPP:
      return "this firmware does not support the message";
    case ETIMEDOUT:
    case EBUSY:
      return "the SMU did not answer (HSMP disabled in the BIOS?)";
    case EINVAL:
      return "refused by the firmware or driver (bad socket or value)";
    default:
      return describe_errno(e);
  }
}

Result<std::unique_ptr<HsmpDevice>> open_hsmp_device(const std::string &path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    const int err = errno;
    return errno_error(path, "cannot open (" + hsmp_errno_cause(err) + ")", err);
  }
  return std::unique_ptr<HsmpDevice>(new IoctlDevice(path, std::move(fd)));
}

Result<std::unique_ptr<HsmpSockets>> make_hsmp_ioctl(std::shared_ptr<HsmpDevice> device,
                                                     int sockets) try {
  if (!device) return Error{"no HSMP device", EINVAL};
  if (sockets < 1 || sockets > 64) {
    return Error{device->describe() + ": " + std::to_string(sockets) + " sockets?", EINVAL};
  }
  auto s = std::make_unique<IoctlSockets>(device, sockets);
  for (int i = 0; i < sockets; ++i) {
    Result<std::uint64_t> max = s->limit_max_uw(i);
    if (!max.ok()) return max.error();
    if (max.value() == 0) {
      return Error{s->where(i) + ": the firmware reports a maximum socket power limit of 0",
                   EINVAL};
    }
  }
  return std::unique_ptr<HsmpSockets>(std::move(s));
} catch (const std::exception &e) {
  return Error{std::string("HSMP: ") + e.what(), ENOMEM};
}

Result<std::unique_ptr<HsmpSockets>> discover_hsmp_hwmon(const std::string &sysfs_root) try {
  const std::string dir = join_path(sysfs_root, "class/hwmon");
  if (!is_directory(dir)) return Error{dir + ": no such folder (no hwmon class)", ENOENT};
  Result<std::vector<std::string>> entries = list_directory(dir);
  if (!entries.ok()) return entries.error();
  struct Found {
    std::string parent;
    std::uint64_t number;
    std::string path;
  };
  std::vector<Found> found;
  for (const std::string &e : entries.value()) {
    if (!check_path_component(e, "hwmon device").ok()) continue;
    const std::string path = join_path(dir, e);
    Result<std::string> name = read_small_file(join_path(path, "name"), 256);
    if (!name.ok() || trimmed(name.value()) != "amd_hsmp_hwmon") continue;
    // The parent device: its link target's last component ("AMDI0097:01", "amd_hsmp").
    std::string parent;
    char buf[4096];
    const ssize_t n = ::readlink(join_path(path, "device").c_str(), buf, sizeof buf - 1);
    if (n > 0) {
      parent.assign(buf, static_cast<std::size_t>(n));
      const auto slash = parent.find_last_of('/');
      if (slash != std::string::npos) parent = parent.substr(slash + 1);
    }
    found.push_back({parent, hwmon_number(e), path});
  }
  if (found.empty()) return Error{dir + ": no amd_hsmp_hwmon device", ENOENT};
  std::sort(found.begin(), found.end(), [](const Found &a, const Found &b) {
    return std::tie(a.parent, a.number) < std::tie(b.parent, b.number);
  });
  auto sockets = std::make_unique<HwmonSockets>();
  for (const Found &f : found) {
    HwmonSockets::Socket s;
    s.dir = f.path;
    Result<SysfsFile> cap = SysfsFile::open(join_path(f.path, "power1_cap"),
                                            SysfsFile::Access::read_write_if_permitted);
    if (!cap.ok()) return cap.error();
    s.cap = std::move(cap).value();
    Result<SysfsFile> max =
        SysfsFile::open(join_path(f.path, "power1_cap_max"), SysfsFile::Access::read_only);
    if (max.ok()) s.cap_max = std::move(max).value();
    Result<SysfsFile> in =
        SysfsFile::open(join_path(f.path, "power1_input"), SysfsFile::Access::read_only);
    if (in.ok()) s.input = std::move(in).value();
    sockets->sockets_.push_back(std::move(s));
  }
  return std::unique_ptr<HsmpSockets>(std::move(sockets));
} catch (const std::exception &e) {
  return Error{std::string("HSMP hwmon discovery: ") + e.what(), ENOMEM};
}

}  // namespace powergrad::hw
