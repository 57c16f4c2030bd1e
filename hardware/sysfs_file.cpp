#include "hardware/sysfs_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace powergrad::hw {

namespace {

constexpr long kSysfsMagic = 0x62656572;  // SYSFS_MAGIC from linux/magic.h

}  // namespace

Result<SysfsFile> SysfsFile::open(const std::string &path, Access access) {
  SysfsFile file;
  file.path_ = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) return errno_error(path, "is not an attribute file", EISDIR);

  if (access == Access::read_write_if_permitted) {
    if ((st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      file.write_refusal_ = path + ": read-only attribute (mode " + mode + ")";
    } else {
      const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
      if (fd >= 0) {
        file.fd_.reset(fd);
        file.writable_ = true;
      } else {
        file.write_refusal_ = errno_error(path, "cannot open for writing", errno).message;
      }
    }
  }
  if (!file.fd_.valid()) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return errno_error(path, "cannot open", errno);
    file.fd_.reset(fd);
  }
  if (file.writable_) {
    struct statfs fs {};
    // Real attributes live on sysfs; anything else is a fake tree made of regular files.
    file.truncate_after_write_ = ::fstatfs(file.fd_.get(), &fs) == 0 &&
                                 static_cast<long>(fs.f_type) != kSysfsMagic && S_ISREG(st.st_mode);
  }
  return file;
}

Result<std::string> SysfsFile::read_line() const {
  if (!fd_.valid()) return Error{path_ + ": not open", EBADF};
  char buf[4096];
  ssize_t n;
  do {
    n = ::pread(fd_.get(), buf, sizeof buf - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error(path_, "read failed", errno);
  std::string_view text(buf, static_cast<std::size_t>(n));
  const auto nl = text.find('\n');
  if (nl != std::string_view::npos) text = text.substr(0, nl);
  return std::string(text);
}

Result<std::uint64_t> SysfsFile::read_u64() const {
  Result<std::string> line = read_line();
  if (!line.ok()) return line.error();
  std::uint64_t value = 0;
  if (!parse_u64(line.value(), &value)) {
    return Error{path_ + ": expected a decimal unsigned number, read '" + line.value() + "'",
                 EINVAL};
  }
  return value;
}

Status SysfsFile::write_line(const std::string &text) const {
  if (!fd_.valid()) return Status::failure(path_ + ": not open", EBADF);
  if (!writable_) return Status::failure(write_refusal_, EACCES);
  const std::string data = text + "\n";
  ssize_t n;
  do {
    n = ::pwrite(fd_.get(), data.data(), data.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::failure(errno_error(path_, "write of '" + text + "' failed", errno));
  if (static_cast<std::size_t>(n) != data.size()) {
    return Status::failure(path_ + ": short write of '" + text + "'", EIO);
  }
  if (truncate_after_write_ && ::ftruncate(fd_.get(), static_cast<off_t>(data.size())) != 0) {
    return Status::failure(errno_error(path_, "truncate after write failed", errno));
  }
  return Status::success();
}

Status SysfsFile::write_u64(std::uint64_t value) const { return write_line(std::to_string(value)); }

bool parse_u64(std::string_view text, std::uint64_t *out) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return false;
  *out = v;
  return true;
}

bool parse_double(std::string_view text, double *out) {
  if (text.empty() || text.size() > 64) return false;
  // from_chars for double is not in GCC 10's libstdc++; strtod on a NUL-terminated copy.
  const std::string copy(text);
  if (copy.find_first_of(" \t\n") != std::string::npos) return false;
  char *end = nullptr;
  errno = 0;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string join_path(const std::string &a, const std::string &b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  const bool a_slash = a.back() == '/';
  const bool b_slash = b.front() == '/';
  if (a_slash && b_slash) return a + b.substr(1);
  if (a_slash || b_slash) return a + b;
  return a + "/" + b;
}

Result<std::vector<std::string>> list_directory(const std::string &path) {
  DIR *dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno_error(path, "cannot list folder", errno);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent *entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) return errno_error(path, "cannot list folder", err);
  std::sort(names.begin(), names.end());
  return names;
}

bool path_exists(const std::string &path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string &path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status check_path_component(std::string_view name, const char *what) {
  const std::string shown(name.substr(0, 80));
  if (name.empty()) return Status::failure(std::string(what) + " is empty", EINVAL);
  if (name.size() > 255) {
    return Status::failure(std::string(what) + " '" + shown + "...' is too long", EINVAL);
  }
  if (name == "." || name == "..") {
    return Status::failure(std::string(what) + " '" + shown + "' refused: path traversal", EINVAL);
  }
  if (name.find('/') != std::string_view::npos) {
    return Status::failure(
        std::string(what) + " '" + shown + "' refused: '/' not allowed (path traversal)", EINVAL);
  }
  if (name.find('\0') != std::string_view::npos) {
    return Status::failure(std::string(what) + " refused: contains a NUL byte", EINVAL);
  }
  return Status::success();
}

Status check_relative_path(std::string_view path, const char *what) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return Status::failure(std::string(what) + " is empty", EINVAL);
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() && end != path.size()) {
      return Status::failure(
          std::string(what) + " '" + std::string(path) + "' has an empty component", EINVAL);
    }
    if (!part.empty()) {
      Status s = check_path_component(part, what);
      if (!s.ok()) {
        return Status::failure(std::string(what) + " '" + std::string(path) +
                                   "' refused: component '" + std::string(part) +
                                   "' is not allowed (path traversal)",
                               EINVAL);
      }
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::success();
}

Result<std::vector<int>> parse_cpu_list(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::set<int> cpus;
  if (text.empty()) return std::vector<int>{};
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::size_t end = comma == std::string_view::npos ? text.size() : comma;
    const std::string_view item = text.substr(start, end - start);
    const std::size_t dash = item.find('-');
    std::uint64_t lo = 0, hi = 0;
    const bool ok = dash == std::string_view::npos ? parse_u64(item, &lo) && (hi = lo, true)
                                                   : parse_u64(item.substr(0, dash), &lo) &&
                                                         parse_u64(item.substr(dash + 1), &hi);
    if (!ok || lo > hi || hi > 65535) {
      return Error{"bad cpu list '" + std::string(text) + "' at '" + std::string(item) + "'",
                   EINVAL};
    }
    for (std::uint64_t c = lo; c <= hi; ++c) cpus.insert(static_cast<int>(c));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return std::vector<int>(cpus.begin(), cpus.end());
}

std::string format_cpu_list(const std::vector<int> &cpus_in) {
  std::vector<int> cpus = cpus_in;
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

Result<std::string> read_small_file(const std::string &path, std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) return errno_error(path, "cannot open", errno);
  std::string data;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(path, "read failed", errno);
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > max_bytes) {
      return Error{path + ": larger than " + std::to_string(max_bytes) + " bytes", EFBIG};
    }
  }
  return data;
}

}  // namespace powergrad::hw
