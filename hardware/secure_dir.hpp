// A folder that root keeps files in (the node agent's state_dir: its step socket, the
// admin's saved settings, the running steps, the managed marker), opened once and then
// worked from by descriptor.
//
// Opening walks the path from "/" one folder at a time (openat with O_NOFOLLOW) and checks
// every folder as munge's path_is_secure does: owned by root or by one of the trusted uids
// (the daemon's own), and not writable by group or others unless the sticky bit is set (as
// on /tmp). Whoever can write a folder on the way could swap what follows it: a user who
// may write /tmp/x could replace /tmp/x/state by a symlink to a folder of their choice, and
// root would write and remove files there. A symlink on the way is followed only because
// the folder that holds it passed the check (only a trusted uid could have made it); its
// target is walked and checked the same way (at most 40 links), so /var/run -> /run works
// and a link into a folder others may write is refused.
//
// After that, files are opened, replaced and removed relative to the opened folder's
// descriptor (openat, renameat, unlinkat, fstatat), never again by path: swapping a folder
// of the path afterwards (by whoever could) changes nothing for the files. Calls that take
// no descriptor (bind, connect of a Unix socket) get fd_path(): /proc/self/fd/N/NAME, which
// the kernel resolves through the open descriptor too.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hardware/result.hpp"
#include "posix/unique_fd.hpp"

namespace powergrad::hw {

struct SecureDirOptions {
  // Who may own the folders of the path besides root; empty: the effective uid.
  std::vector<uid_t> trusted_uids;
  // Create missing folders: parents with parent_mode, the last with dir_mode (both exact,
  // not reduced by the umask).
  bool create = false;
  mode_t parent_mode = 0755;
  mode_t dir_mode = 0700;
  // The last folder must be owned by the effective uid and writable by it alone (sticky or
  // not): a private state folder.
  bool private_dir = false;
};

// Whether every folder of `dir` passes the checks above (nothing is created). Returns ""
// or the reason, naming the folder at fault.
std::string check_secure_path(const std::string &dir, const std::vector<uid_t> &trusted_uids);

class SecureDir {
 public:
  // Opens `path` (absolute) as described at the top. Errors name the folder at fault and
  // why; errno_value is ENOENT when a folder is missing (and not created).
  static Result<SecureDir> open(const std::string &path, const SecureDirOptions &options = {});

  SecureDir(SecureDir &&) = default;
  SecureDir &operator=(SecureDir &&) = default;

  int fd() const { return fd_.get(); }
  // The path as given, and as found (symlinks resolved), for messages.
  const std::string &path() const { return path_; }
  const std::string &resolved_path() const { return resolved_; }
  // path()/name, for messages.
  std::string display(const std::string &name) const;
  // /proc/self/fd/N/name: reaches name through this descriptor, for bind() and connect().
  std::string fd_path(const std::string &name) const;

  // True when `name` exists in the folder (a symlink counts; it is not followed).
  bool exists(const std::string &name) const;
  // Reads a regular file of the folder, at most max_bytes: no symlink followed, owned by a
  // trusted uid and not writable by group or others (whoever could write it would decide
  // what root does with it). A missing file is an error with errno ENOENT.
  Result<std::string> read_file(const std::string &name, std::size_t max_bytes = 1 << 20) const;
  // Replaces `name` with `text` so that a crash leaves the old or the new file: a new file
  // beside it (O_EXCL, no symlink followed, `mode`), every byte, fsync, renameat, fsync of
  // the folder.
  Status write_file_atomic(const std::string &name, const std::string &text,
                           mode_t mode = 0600) const;
  // Removes `name` (no error if it is already gone) and syncs the folder.
  Status remove(const std::string &name) const;

 private:
  SecureDir() = default;
  Status check_name(const std::string &name) const;

  UniqueFd fd_;
  std::string path_, resolved_;
  std::vector<uid_t> trusted_;
};

// Reads file `path` (absolute) when every folder of its path passes the checks above and
// the file itself is a regular file owned by a trusted uid and not writable by group or
// others: for files root reads by an admin's path (e.g. the emulate= workloads).
Result<std::string> read_trusted_file(const std::string &path,
                                      const std::vector<uid_t> &trusted_uids = {},
                                      std::size_t max_bytes = 1 << 20);

}  // namespace powergrad::hw
