#include "hardware/secure_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>

#include "posix/atomic_file.hpp"

namespace powergrad::hw {

namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's MAXSYMLINKS

std::string octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::vector<uid_t> with_defaults(std::vector<uid_t> trusted) {
  if (trusted.empty()) trusted.push_back(::geteuid());
  trusted.push_back(0);
  std::sort(trusted.begin(), trusted.end());
  trusted.erase(std::unique(trusted.begin(), trusted.end()), trusted.end());
  return trusted;
}

bool trusted_owner(uid_t uid, const std::vector<uid_t> &trusted) {
  return std::find(trusted.begin(), trusted.end(), uid) != trusted.end();
}

// munge's rules for one folder of the path. "" or why not.
std::string folder_problem(const struct stat &st, const std::string &where,
                           const std::vector<uid_t> &trusted) {
  if (!S_ISDIR(st.st_mode)) return "'" + where + "' is not a folder";
  if (!trusted_owner(st.st_uid, trusted)) {
    return "'" + where + "' is owned by uid " + std::to_string(st.st_uid) +
           ", not by root or the daemon's uid: its owner could swap what is in it";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return "'" + where + "' is writable by " +
           ((st.st_mode & S_IWOTH) ? std::string("others") : std::string("its group")) + " (mode " +
           octal(st.st_mode) + ", no sticky bit): they could swap what is in it";
  }
  return "";
}

std::string file_problem(const struct stat &st, const std::string &where,
                         const std::vector<uid_t> &trusted) {
  if (!S_ISREG(st.st_mode)) return where + ": refused: not a regular file";
  if (!trusted_owner(st.st_uid, trusted)) {
    return where + ": refused: owned by uid " + std::to_string(st.st_uid) +
           ", not by root or the daemon's uid";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return where + ": refused: writable by group or others (mode " + octal(st.st_mode) + ")";
  }
  return "";
}

std::string join(const std::string &dir, const std::string &name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

std::string parent_of(const std::string &dir) {
  const std::size_t slash = dir.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
}

void split_into(const std::string &path, std::deque<std::string> &out, bool front) {
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const std::size_t slash = path.find('/', pos);
    const std::string part =
        path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (!part.empty() && part != ".") parts.push_back(part);
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  if (front) {
    out.insert(out.begin(), parts.begin(), parts.end());
  } else {
    out.insert(out.end(), parts.begin(), parts.end());
  }
}

struct Walked {
  UniqueFd fd;
  std::string resolved;
};

// The walk described in the header. `what` names the path in messages.
Result<Walked> walk(const std::string &path, const SecureDirOptions &opt,
                    const std::vector<uid_t> &trusted) {
  if (path.empty() || path[0] != '/') {
    return Error{"'" + path + "' is not an absolute path", EINVAL};
  }
  if (path.find('\0') != std::string::npos || path.size() > 4096) {
    return Error{"'" + path + "' is not a usable path", EINVAL};
  }
  // Folders opened so far, from "/" down: ".." in a symlink's target goes back up them.
  std::vector<Walked> stack;
  {
    Walked root{UniqueFd(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)), "/"};
    if (!root.fd.valid()) return errno_error("/", "cannot open", errno);
    struct stat st {};
    if (::fstat(root.fd.get(), &st) != 0) return errno_error("/", "cannot stat", errno);
    const std::string why = folder_problem(st, "/", trusted);
    if (!why.empty()) return Error{why, EPERM};
    stack.push_back(std::move(root));
  }
  std::deque<std::string> todo;
  split_into(path, todo, false);
  int links = 0;
  while (!todo.empty()) {
    const std::string name = todo.front();
    todo.pop_front();
    if (name == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    const bool last = todo.empty();
    Walked &cur = stack.back();
    const std::string where = join(cur.resolved, name);
    UniqueFd next(
        ::openat(cur.fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    bool created = false;
    if (!next.valid() && errno == ENOENT && opt.create) {
      const mode_t mode = last ? opt.dir_mode : opt.parent_mode;
      if (::mkdirat(cur.fd.get(), name.c_str(), mode) == 0) {
        created = true;
      } else if (errno != EEXIST) {
        return errno_error(where, "cannot create", errno);
      }
      next.reset(
          ::openat(cur.fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if (!next.valid()) {
      const int err = errno;
      struct stat lst {};
      if ((err == ELOOP || err == ENOTDIR) &&
          ::fstatat(cur.fd.get(), name.c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(lst.st_mode)) {
        // Made by a trusted uid (the folder holding it passed): follow it, checking its
        // target's folders too.
        if (++links > kMaxSymlinks) return Error{"'" + path + "': too many symlinks", ELOOP};
        char target[4096];
        const ssize_t n = ::readlinkat(cur.fd.get(), name.c_str(), target, sizeof target - 1);
        if (n <= 0) return errno_error(where, "cannot read symlink", n < 0 ? errno : EINVAL);
        target[n] = '\0';
        if (target[0] == '/') stack.resize(1);
        split_into(target, todo, true);
        continue;
      }
      if (err == ENOTDIR || err == ELOOP) return Error{"'" + where + "' is not a folder", ENOTDIR};
      return errno_error(where, "cannot open folder", err);
    }
    if (created) {
      // Exactly the mode asked for, whatever slurmd's umask: the folder is ours, just made.
      const mode_t mode = last ? opt.dir_mode : opt.parent_mode;
      if (::fchmod(next.get(), mode) != 0) return errno_error(where, "cannot chmod", errno);
    }
    struct stat st {};
    if (::fstat(next.get(), &st) != 0) return errno_error(where, "cannot stat", errno);
    const std::string why = folder_problem(st, where, trusted);
    if (!why.empty()) return Error{why, EPERM};
    if (last && opt.private_dir) {
      if (st.st_uid != ::geteuid()) {
        return Error{"'" + where + "' is owned by uid " + std::to_string(st.st_uid) + ", not " +
                         std::to_string(::geteuid()),
                     EPERM};
      }
      if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        return Error{
            "'" + where + "' is writable by group or others (mode " + octal(st.st_mode) + ")",
            EPERM};
      }
    }
    stack.push_back(Walked{std::move(next), where});
  }
  return std::move(stack.back());
}

}  // namespace

std::string check_secure_path(const std::string &dir, const std::vector<uid_t> &trusted_uids) {
  try {
    SecureDirOptions opt;
    Result<Walked> w = walk(dir, opt, with_defaults(trusted_uids));
    return w.ok() ? "" : w.message();
  } catch (const std::exception &e) {
    return dir + ": " + e.what();
  }
}

Result<SecureDir> SecureDir::open(const std::string &path, const SecureDirOptions &options) try {
  const std::vector<uid_t> trusted = with_defaults(options.trusted_uids);
  Result<Walked> w = walk(path, options, trusted);
  if (!w.ok()) return w.error();
  SecureDir d;
  d.fd_ = std::move(w.value().fd);
  d.resolved_ = w.value().resolved;
  d.path_ = path;
  while (d.path_.size() > 1 && d.path_.back() == '/') d.path_.pop_back();
  d.trusted_ = trusted;
  return d;
} catch (const std::exception &e) {
  return Error{path + ": " + e.what(), ENOMEM};
}

std::string SecureDir::display(const std::string &name) const { return join(path_, name); }

std::string SecureDir::fd_path(const std::string &name) const {
  return "/proc/self/fd/" + std::to_string(fd_.get()) + "/" + name;
}

Status SecureDir::check_name(const std::string &name) const {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return Status::failure(path_ + ": '" + name + "' is not a file name", EINVAL);
  }
  return Status::success();
}

bool SecureDir::exists(const std::string &name) const {
  struct stat st {};
  return check_name(name).ok() && ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<std::string> SecureDir::read_file(const std::string &name, std::size_t max_bytes) const try {
  if (Status s = check_name(name); !s.ok()) return s.error();
  const std::string where = display(name);
  UniqueFd f(
      ::openat(fd_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!f.valid()) {
    const int err = errno;
    if (err == ELOOP) return Error{where + ": refused: a symlink", ELOOP};
    return errno_error(where, "cannot open", err);
  }
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) return errno_error(where, "cannot stat", errno);
  const std::string why = file_problem(st, where, trusted_);
  if (!why.empty()) return Error{why, EPERM};
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return Error{where + ": refused: larger than " + std::to_string(max_bytes) + " bytes", EFBIG};
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(f.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(where, "read failed", errno);
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      return Error{where + ": refused: larger than " + std::to_string(max_bytes) + " bytes", EFBIG};
    }
  }
  return text;
} catch (const std::exception &e) {
  return Error{display(name) + ": " + e.what(), ENOMEM};
}

Status SecureDir::write_file_atomic(const std::string &name, const std::string &text,
                                    mode_t mode) const try {
  if (Status s = check_name(name); !s.ok()) return s;
  const AtomicWrite w = ::powergrad::write_file_atomic_at(fd_.get(), path_, name, text, mode);
  return w.ok() ? Status::success() : Status::failure(w.error, w.errno_value);
} catch (const std::exception &e) {
  return Status::failure(display(name) + ": " + e.what(), ENOMEM);
}

Status SecureDir::remove(const std::string &name) const {
  if (Status s = check_name(name); !s.ok()) return s;
  if (::unlinkat(fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
    return Status::failure(errno_error(display(name), "cannot remove", errno));
  }
  if (::fsync(fd_.get()) != 0) return Status::failure(errno_error(path_, "fsync failed", errno));
  return Status::success();
}

Result<std::string> read_trusted_file(const std::string &path,
                                      const std::vector<uid_t> &trusted_uids,
                                      std::size_t max_bytes) try {
  const std::size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == path.size() - 1) {
    return Error{"'" + path + "' is not an absolute file path", EINVAL};
  }
  SecureDirOptions opt;
  opt.trusted_uids = trusted_uids;
  Result<SecureDir> dir = SecureDir::open(parent_of(path), opt);
  if (!dir.ok()) return Error{path + ": refused: " + dir.message(), dir.errno_value()};
  Result<std::string> text = dir.value().read_file(path.substr(slash + 1), max_bytes);
  if (!text.ok()) return text.error();
  return text;
} catch (const std::exception &e) {
  return Error{path + ": " + e.what(), ENOMEM};
}

}  // namespace powergrad::hw
