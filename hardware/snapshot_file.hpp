// The admin's hardware settings, saved before PowerGrad's first change and given back later.
// The node agent keeps them in a state file that must survive a slurmd crash (kill -9):
// written atomically (temporary file, fsync, rename, fsync of the folder) and read back by a
// strict parser that refuses anything it does not fully understand, so a damaged file never
// becomes half a restore.
//
// Text format, one setting per line (key=value, no spaces), '#' comments and blank lines
// allowed before the end line:
//   format=powergrad-hw-snapshot/1
//   powercap.intel-rapl:0.enabled=1
//   powercap.intel-rapl:0.constraint_0.name=long_term
//   powercap.intel-rapl:0.constraint_0.power_limit_uw=205000000
//   powercap.intel-rapl:0.constraint_0.time_window_us=999424
//   cpufreq.cpu3.scaling_max_freq_khz=3400000
//   hsmp.socket1.power_cap_uw=320000000
//   end=5
// `end` carries the number of setting lines: a truncated file has no end line or a wrong
// count and is refused as truncated.
#pragma once

#include <string>
#include <string_view>

#include "hardware/cpufreq.hpp"
#include "hardware/hsmp.hpp"
#include "hardware/powercap.hpp"
#include "hardware/result.hpp"
#include "hardware/secure_dir.hpp"

namespace powergrad::hw {

struct HardwareSnapshot {
  PowercapSnapshot powercap;
  CpufreqSnapshot cpufreq;
  HsmpSnapshot hsmp;  // AMD socket limits (HSMP); written only when there are some
  bool empty() const {
    return powercap.zones.empty() && cpufreq.cpus.empty() && hsmp.sockets.empty();
  }
};

std::string serialize_snapshot(const HardwareSnapshot &snapshot);

// Errors name the line ("line 4: ..."). Refused: unknown keys, duplicates, values that are
// not plain decimal numbers (or 0/1 for enabled), zone names with '/' or "..", a missing or
// wrong end line, anything after it, a format version other than 1, more than 1 MiB.
Result<HardwareSnapshot> parse_snapshot(std::string_view text);

// Atomic replace of `path` (mode 0600).
Status save_snapshot_file(const std::string &path, const HardwareSnapshot &snapshot);

// Replaces `path` with `text` so that a crash leaves the old or the new file, never a part:
// written to a new file beside it (mode 0600, O_EXCL, no symlink followed), every byte
// (short writes continue), fsync, rename over `path`, fsync of the folder.
Status write_file_atomic(const std::string &path, const std::string &text);

// Reads and parses `path`. Refuses a file that is not a regular file (symlinks are not
// followed), is not owned by the effective user, or is writable by group or others, and a
// folder that others may write into (unless sticky): whoever can write the state file
// decides what root writes into sysfs. A missing file is an error with errno ENOENT.
Result<HardwareSnapshot> load_snapshot_file(const std::string &path);

// Removes `path` (no error if it is already gone) and syncs its folder.
Status remove_snapshot_file(const std::string &path);

// The same in a folder opened once and checked (secure_dir.hpp): the node agent's state
// folder, whose files are never opened again by path. load refuses what load_snapshot_file
// refuses; a missing file is an error with errno ENOENT.
Result<HardwareSnapshot> load_snapshot_at(const SecureDir &dir, const std::string &name);
Status save_snapshot_at(const SecureDir &dir, const std::string &name,
                        const HardwareSnapshot &snapshot);

}  // namespace powergrad::hw
