// AMD socket power limits through the Host System Management Port (HSMP): the SMU firmware's
// mailbox on EPYC families 19h and 1Ah (Milan, Genoa, Bergamo, Siena, Turin), driven by the
// kernel's amd_hsmp driver. Two ways in, one interface (HsmpSockets):
// - hwmon (Linux >= 6.14): one device per socket named "amd_hsmp_hwmon" under
//   <root>/class/hwmon/hwmonN, with power1_input (socket power), power1_cap (the limit,
//   0644) and power1_cap_max, all in microwatts (the driver converts from the firmware's
//   milliwatts, so values are whole milliwatts). Plain sysfs, like powercap.
// - ioctl: /dev/hsmp, HSMP_IOCTL_CMD with a struct hsmp_message (message ids 04h-07h:
//   GET_SOCKET_POWER, SET_SOCKET_POWER_LIMIT, GET_SOCKET_POWER_LIMIT, ..._MAX, in mW).
//   Root only. The device sits behind HsmpDevice so tests inject a fake.
// The firmware keeps the limit within its own range: a request above the maximum or below
// the platform's floor (cTDP minimum) is clamped, not refused, so what is read back after a
// write is what holds.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hardware/result.hpp"
#include "hardware/sysfs_file.hpp"

namespace powergrad::hw {

// The uapi's struct hsmp_message, field for field (arch/x86/include/uapi/asm/amd_hsmp.h).
constexpr int kHsmpMaxArgs = 8;
struct HsmpMessage {
  std::uint32_t msg_id = 0;
  std::uint16_t num_args = 0;
  std::uint16_t response_sz = 0;
  std::uint32_t args[kHsmpMaxArgs] = {};
  std::uint16_t sock_ind = 0;
};

// The message ids PowerGrad sends (the uapi's enum hsmp_message_ids).
enum class HsmpMsg : std::uint32_t {
  test = 1,                        // args[0] + 1 comes back: the mailbox answers
  get_socket_power = 4,            // -> args[0] mW
  set_socket_power_limit = 5,      // args[0] mW ->
  get_socket_power_limit = 6,      // -> args[0] mW
  get_socket_power_limit_max = 7,  // -> args[0] mW
};

// One HSMP mailbox. send() fills msg.args with the response; errors carry the errno
// (EPERM/EACCES: not root or not allowed; ENOMSG: message not supported by this firmware;
// ETIMEDOUT: the SMU did not answer; EINVAL: bad socket).
class HsmpDevice {
 public:
  virtual ~HsmpDevice() = default;
  virtual Status send(HsmpMessage &msg) = 0;
  virtual std::string describe() const = 0;  // "/dev/hsmp"
};

// Opens the real device (O_RDWR: the driver refuses SET messages on a read-only open).
Result<std::unique_ptr<HsmpDevice>> open_hsmp_device(const std::string &path = "/dev/hsmp");

// How a node's caps are written.
enum class CapBackend { none, rapl, hsmp_hwmon, hsmp_ioctl };
const char *to_string(CapBackend backend);  // "none", "rapl", "hsmp-hwmon", "hsmp-ioctl"

// Socket power limits, one entry per socket (index = HSMP socket = physical package id).
class HsmpSockets {
 public:
  virtual ~HsmpSockets() = default;
  virtual CapBackend backend() const = 0;
  virtual int sockets() const = 0;
  virtual Result<std::uint64_t> limit_uw(int socket) const = 0;
  virtual Result<std::uint64_t> limit_max_uw(int socket) const = 0;
  virtual Result<std::uint64_t> power_uw(int socket) const = 0;
  // Writes the limit as given (callers clamp); the firmware rounds to mW and clamps.
  virtual Status set_limit_uw(int socket, std::uint64_t limit_uw) = 0;
  virtual bool writable(int socket) const = 0;
  virtual std::string write_refusal(int socket) const = 0;
  virtual std::string where(int socket) const = 0;  // for messages: the file or device
};

// The admin's socket limits, saved before PowerGrad's first change (snapshot_file.hpp).
struct HsmpSocketSnapshot {
  int socket = 0;
  std::uint64_t power_cap_uw = 0;
};
struct HsmpSnapshot {
  std::vector<HsmpSocketSnapshot> sockets;
};

// The hwmon devices named amd_hsmp_hwmon under <sysfs_root>/class/hwmon. Sockets are
// numbered in the order of the devices' parents (devices/platform/AMDI0097:0N with ACPI,
// one amd_hsmp platform device for all sockets otherwise, then by hwmon number: the driver
// registers sockets in order). ENOENT when there is none.
Result<std::unique_ptr<HsmpSockets>> discover_hsmp_hwmon(const std::string &sysfs_root);

// The ioctl path over a device, for `sockets` sockets: each must answer
// GET_SOCKET_POWER_LIMIT_MAX (else the error names the socket and the cause).
Result<std::unique_ptr<HsmpSockets>> make_hsmp_ioctl(std::shared_ptr<HsmpDevice> device,
                                                     int sockets);

// "why a write or a message failed", phrased for the log and the capability report.
std::string hsmp_errno_cause(int errno_value);

}  // namespace powergrad::hw
