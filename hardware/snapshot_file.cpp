#include "hardware/snapshot_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <set>

#include "posix/atomic_file.hpp"

namespace powergrad::hw {

namespace {

constexpr const char *kFormatLine = "format=powergrad-hw-snapshot/1";
constexpr std::size_t kMaxBytes = 1 << 20;
constexpr std::uint64_t kMaxConstraintIndex = 7;

std::string line_error(std::size_t line, const std::string &what) {
  return "line " + std::to_string(line) + ": " + what;
}

bool valid_constraint_name(std::string_view v) {
  if (v.empty() || v.size() > 32) return false;
  return std::all_of(v.begin(), v.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

std::string dirname_of(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status sync_directory(const std::string &dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::failure(errno_error(dir, "cannot open folder to sync", errno));
  if (::fsync(fd.get()) != 0) return Status::failure(errno_error(dir, "fsync failed", errno));
  return Status::success();
}

struct Parser {
  HardwareSnapshot snap;
  std::set<std::string> seen_keys;

  PowercapZoneSnapshot &zone(const std::string &name) {
    for (auto &z : snap.powercap.zones) {
      if (z.zone == name) return z;
    }
    snap.powercap.zones.push_back({name, std::nullopt, {}});
    return snap.powercap.zones.back();
  }

  PowercapConstraintSnapshot &constraint(PowercapZoneSnapshot &z, int index) {
    for (auto &c : z.constraints) {
      if (c.index == index) return c;
    }
    PowercapConstraintSnapshot c;
    c.index = index;
    z.constraints.push_back(c);
    return z.constraints.back();
  }

  // One "key=value" setting line; an error message, or "" when accepted.
  std::string setting(const std::string &key, const std::string &value) {
    if (!seen_keys.insert(key).second) return "duplicate key '" + key + "'";
    std::uint64_t number = 0;
    const bool numeric = parse_u64(value, &number);

    if (key.compare(0, 9, "powercap.") == 0) {
      const std::string rest = key.substr(9);
      const auto dot = rest.find('.');
      if (dot == std::string::npos) return "incomplete powercap key '" + key + "'";
      const std::string zone_name = rest.substr(0, dot);
      // A zone name may hold ':' but never '.', '/' or "..": checked before any use.
      Status s = check_zone_name(zone_name);
      if (!s.ok()) return s.message();
      const std::string field = rest.substr(dot + 1);
      if (field == "enabled") {
        if (value != "0" && value != "1") return "enabled must be 0 or 1, not '" + value + "'";
        zone(zone_name).enabled = value == "1";
        return "";
      }
      if (field.compare(0, 11, "constraint_") != 0) {
        return "unknown powercap setting '" + field + "'";
      }
      const std::string c_rest = field.substr(11);
      const auto c_dot = c_rest.find('.');
      std::uint64_t index = 0;
      if (c_dot == std::string::npos || !parse_u64(c_rest.substr(0, c_dot), &index) ||
          index > kMaxConstraintIndex) {
        return "bad constraint in key '" + key + "'";
      }
      const std::string c_field = c_rest.substr(c_dot + 1);
      PowercapConstraintSnapshot &c = constraint(zone(zone_name), static_cast<int>(index));
      if (c_field == "name") {
        if (!valid_constraint_name(value)) return "bad constraint name '" + value + "'";
        c.name = value;
      } else if (c_field == "power_limit_uw") {
        if (!numeric) return "power_limit_uw must be a decimal number, not '" + value + "'";
        c.power_limit_uw = number;
      } else if (c_field == "time_window_us") {
        if (!numeric) return "time_window_us must be a decimal number, not '" + value + "'";
        c.time_window_us = number;
      } else {
        return "unknown constraint setting '" + c_field + "'";
      }
      return "";
    }
    if (key.compare(0, 11, "cpufreq.cpu") == 0) {
      const std::string rest = key.substr(11);
      const auto dot = rest.find('.');
      std::uint64_t cpu = 0;
      if (dot == std::string::npos || !parse_u64(rest.substr(0, dot), &cpu) || cpu > 65535) {
        return "bad cpu in key '" + key + "'";
      }
      if (rest.substr(dot + 1) != "scaling_max_freq_khz") {
        return "unknown cpufreq setting '" + rest.substr(dot + 1) + "'";
      }
      if (!numeric || number == 0) {
        return "scaling_max_freq_khz must be a positive decimal number, not '" + value + "'";
      }
      snap.cpufreq.cpus.push_back({static_cast<int>(cpu), number});
      return "";
    }
    if (key.compare(0, 11, "hsmp.socket") == 0) {
      const std::string rest = key.substr(11);
      const auto dot = rest.find('.');
      std::uint64_t socket = 0;
      if (dot == std::string::npos || !parse_u64(rest.substr(0, dot), &socket) || socket > 255) {
        return "bad socket in key '" + key + "'";
      }
      if (rest.substr(dot + 1) != "power_cap_uw") {
        return "unknown hsmp setting '" + rest.substr(dot + 1) + "'";
      }
      if (!numeric || number == 0) {
        return "power_cap_uw must be a positive decimal number, not '" + value + "'";
      }
      snap.hsmp.sockets.push_back({static_cast<int>(socket), number});
      return "";
    }
    return "unknown key '" + key + "'";
  }
};

}  // namespace

std::string serialize_snapshot(const HardwareSnapshot &snapshot) {
  std::string out =
      "# PowerGrad: hardware settings as the admin had them, saved before PowerGrad's first\n"
      "# change; restored when no power-aware job is left, on agent stop and after a crash.\n";
  out += kFormatLine;
  out += "\n";
  std::size_t count = 0;
  auto line = [&](const std::string &key, const std::string &value) {
    out += key + "=" + value + "\n";
    ++count;
  };
  for (const auto &z : snapshot.powercap.zones) {
    const std::string zp = "powercap." + z.zone + ".";
    if (z.enabled) line(zp + "enabled", *z.enabled ? "1" : "0");
    for (const auto &c : z.constraints) {
      const std::string cp = zp + "constraint_" + std::to_string(c.index) + ".";
      if (!c.name.empty()) line(cp + "name", c.name);
      if (c.power_limit_uw) line(cp + "power_limit_uw", std::to_string(*c.power_limit_uw));
      if (c.time_window_us) line(cp + "time_window_us", std::to_string(*c.time_window_us));
    }
  }
  for (const auto &c : snapshot.cpufreq.cpus) {
    line("cpufreq.cpu" + std::to_string(c.cpu) + ".scaling_max_freq_khz",
         std::to_string(c.scaling_max_freq_khz));
  }
  for (const auto &s : snapshot.hsmp.sockets) {
    line("hsmp.socket" + std::to_string(s.socket) + ".power_cap_uw",
         std::to_string(s.power_cap_uw));
  }
  out += "end=" + std::to_string(count) + "\n";
  return out;
}

Result<HardwareSnapshot> parse_snapshot(std::string_view text) try {
  if (text.size() > kMaxBytes) {
    return Error{"snapshot larger than " + std::to_string(kMaxBytes) + " bytes", EFBIG};
  }
  Parser p;
  bool have_format = false;
  bool have_end = false;
  std::size_t settings = 0;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      return Error{line_error(line_no + 1, "no newline at the end: the file is truncated"), EINVAL};
    }
    const std::string line(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    if (have_end) return Error{line_error(line_no, "text after the end line"), EINVAL};
    if (line.find('\0') != std::string::npos || line.find('\r') != std::string::npos) {
      return Error{line_error(line_no, "control character in line"), EINVAL};
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      return Error{line_error(line_no, "expected key=value, got '" + line + "'"), EINVAL};
    }
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key.empty() || value.empty() || key.find_first_of(" \t") != std::string::npos ||
        value.find_first_of(" \t") != std::string::npos) {
      return Error{line_error(line_no, "expected key=value without spaces, got '" + line + "'"),
                   EINVAL};
    }
    if (!have_format) {
      if (key != "format") {
        return Error{line_error(line_no, "expected the format line '" + std::string(kFormatLine) +
                                             "' first"),
                     EINVAL};
      }
      if (line != kFormatLine) {
        return Error{line_error(line_no, "unsupported snapshot format '" + value + "'"), EINVAL};
      }
      have_format = true;
      continue;
    }
    if (key == "end") {
      std::uint64_t n = 0;
      if (!parse_u64(value, &n)) return Error{line_error(line_no, "bad end count"), EINVAL};
      if (n != settings) {
        return Error{line_error(line_no, "end line counts " + std::to_string(n) +
                                             " settings but the file has " +
                                             std::to_string(settings) + ": damaged file"),
                     EINVAL};
      }
      have_end = true;
      continue;
    }
    const std::string err = p.setting(key, value);
    if (!err.empty()) return Error{line_error(line_no, err), EINVAL};
    ++settings;
  }
  if (!have_format) return Error{"empty snapshot: no format line", EINVAL};
  if (!have_end) return Error{"no end line: the file is truncated", EINVAL};
  return std::move(p.snap);
} catch (const std::exception &e) {
  return Error{std::string("snapshot parse: ") + e.what(), ENOMEM};
}

Status save_snapshot_file(const std::string &path, const HardwareSnapshot &snapshot) try {
  return write_file_atomic(path, serialize_snapshot(snapshot));
} catch (const std::exception &e) {
  return Status::failure(std::string("snapshot save: ") + e.what(), ENOMEM);
}

Status write_file_atomic(const std::string &path, const std::string &text) try {
  const AtomicWrite w = ::powergrad::write_file_atomic(path, text, 0600);
  return w.ok() ? Status::success() : Status::failure(w.error, w.errno_value);
} catch (const std::exception &e) {
  return Status::failure(path + ": " + e.what(), ENOMEM);
}

Result<HardwareSnapshot> load_snapshot_file(const std::string &path) try {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) return errno_error(path, "cannot open saved settings", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(path, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) return Error{path + ": refused: not a regular file", EPERM};
  if (st.st_uid != ::geteuid()) {
    return Error{path + ": refused: owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                     std::to_string(::geteuid()),
                 EPERM};
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{path + ": refused: writable by group or others", EPERM};
  }
  const std::string dir = dirname_of(path);
  struct stat dst {};
  if (::stat(dir.c_str(), &dst) != 0) return errno_error(dir, "cannot stat folder", errno);
  if ((dst.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (dst.st_mode & S_ISVTX) == 0) {
    return Error{dir + ": refused: folder of the saved settings is writable by group or others",
                 EPERM};
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxBytes) {
    return Error{path + ": refused: larger than 1 MiB", EFBIG};
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(path, "read failed", errno);
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxBytes) return Error{path + ": refused: larger than 1 MiB", EFBIG};
  }
  Result<HardwareSnapshot> parsed = parse_snapshot(text);
  if (!parsed.ok()) return Error{path + ": " + parsed.message(), parsed.errno_value()};
  return parsed;
} catch (const std::exception &e) {
  return Error{std::string("snapshot load: ") + e.what(), ENOMEM};
}

Status remove_snapshot_file(const std::string &path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::failure(errno_error(path, "cannot remove", errno));
  }
  return sync_directory(dirname_of(path));
}

Result<HardwareSnapshot> load_snapshot_at(const SecureDir &dir, const std::string &name) try {
  Result<std::string> text = dir.read_file(name, kMaxBytes);
  if (!text.ok()) return text.error();
  Result<HardwareSnapshot> parsed = parse_snapshot(text.value());
  if (!parsed.ok()) return Error{dir.display(name) + ": " + parsed.message(), parsed.errno_value()};
  return parsed;
} catch (const std::exception &e) {
  return Error{std::string("snapshot load: ") + e.what(), ENOMEM};
}

Status save_snapshot_at(const SecureDir &dir, const std::string &name,
                        const HardwareSnapshot &snapshot) try {
  return dir.write_file_atomic(name, serialize_snapshot(snapshot), 0600);
} catch (const std::exception &e) {
  return Status::failure(std::string("snapshot save: ") + e.what(), ENOMEM);
}

}  // namespace powergrad::hw
