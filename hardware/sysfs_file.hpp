// File access for sysfs attributes (and the fake trees tests build in temporary folders):
// RAII descriptors, attributes kept open and read/written with pread/pwrite at offset 0,
// path-name checks. Nothing here knows about power or frequency.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hardware/result.hpp"

#include "posix/unique_fd.hpp"

namespace powergrad::hw {

// One sysfs attribute, opened once. sysfs regenerates an attribute's text on every read at
// offset 0, so pread(fd, ..., 0) gives a fresh value without reopening; a store must arrive
// in one write at offset 0. Move-only.
class SysfsFile {
 public:
  enum class Access { read_only, read_write_if_permitted };

  SysfsFile() = default;

  // Opens `path`. With read_write_if_permitted the file is opened for writing only when its
  // mode has a write bit: kernfs refuses to open a 0444 attribute for writing even for root,
  // and doing the same keeps fake trees faithful when tests run as root. If opening for
  // writing fails (not root, locked down), the file is opened read-only and writable() is
  // false, with the reason in write_refusal().
  static Result<SysfsFile> open(const std::string &path, Access access);

  const std::string &path() const { return path_; }
  bool is_open() const { return fd_.valid(); }
  bool writable() const { return writable_; }
  const std::string &write_refusal() const { return write_refusal_; }

  // The attribute's first line, without the newline. Errors name the file and errno.
  Result<std::string> read_line() const;
  // A decimal unsigned value (the only format powercap and cpufreq use for numbers).
  Result<std::uint64_t> read_u64() const;
  // Writes `text` followed by a newline in one pwrite at offset 0. On a regular file (a fake
  // tree) the file is then truncated to that length: unlike sysfs, a shorter value would
  // otherwise leave stale bytes behind the new one.
  Status write_line(const std::string &text) const;
  Status write_u64(std::uint64_t value) const;

 private:
  std::string path_;
  UniqueFd fd_;
  bool writable_ = false;
  bool truncate_after_write_ = false;
  std::string write_refusal_;
};

// Parses a whole string as a decimal unsigned 64-bit number (no sign, no spaces).
bool parse_u64(std::string_view text, std::uint64_t *out);
// Parses a whole string as a finite double.
bool parse_double(std::string_view text, double *out);

// `a/b`, without doubling slashes.
std::string join_path(const std::string &a, const std::string &b);

// Entry names in a folder (no "." and ".."), sorted; errors name the folder.
Result<std::vector<std::string>> list_directory(const std::string &path);

bool path_exists(const std::string &path);
bool is_directory(const std::string &path);

// A path component that is safe to append under a root we chose: non-empty, at most 255
// bytes, no '/', no NUL, not "." or "..". `what` names the thing in the message.
Status check_path_component(std::string_view name, const char *what);

// A relative path whose every component passes check_path_component (leading slashes are
// allowed and ignored, so "/slurm/job_1" and "slurm/job_1" are the same).
Status check_relative_path(std::string_view path, const char *what);

// The kernel's cpulist format, e.g. "0-3,8,10-11" (sysfs `online`, `related_cpus`).
Result<std::vector<int>> parse_cpu_list(std::string_view text);
std::string format_cpu_list(const std::vector<int> &cpus);

// Reads a small whole file (at most max_bytes) in one go; errors name the file.
Result<std::string> read_small_file(const std::string &path, std::size_t max_bytes = 65536);

}  // namespace powergrad::hw
