// Replaces a file atomically and durably: the one way PowerGrad writes a file that must be
// whole after a crash or a power cut (saved caps and settings, the run-time budget, job power
// series). Header-only, like unique_fd.hpp, so every library can use it without linking
// another one.
//
// A temporary file beside the target (created exclusively, never following a link) gets the
// whole text (short writes continued, EINTR retried), the given mode (whatever the umask),
// fsync; then rename() over the target and fsync of the folder, so the new name is on disk
// too. Readers see the old file or the new one, never a part. On any failure the temporary
// file is removed and the target is left as it was.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "posix/unique_fd.hpp"

namespace powergrad {

struct AtomicWrite {
  std::string error;  // empty on success, else a sentence naming the file and the cause
  int errno_value = 0;
  bool ok() const { return error.empty(); }
};

namespace atomic_file_detail {

inline AtomicWrite failed(const std::string &path, const char *what, int err) {
  return AtomicWrite{path + ": " + what + ": " + std::strerror(err), err};
}

inline std::string folder_of(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace atomic_file_detail

// The same in the folder open as `dirfd` (shown as `folder` in messages): the file is
// reached through the descriptor only, never again by path, so a folder swapped after it was
// opened (and checked) cannot redirect the write.
inline AtomicWrite write_file_atomic_at(int dirfd, const std::string &folder,
                                        const std::string &name, std::string_view text,
                                        mode_t mode = 0600) {
  namespace d = atomic_file_detail;
  // Unique per process and call: threads of one daemon may write beside each other.
  static std::atomic<unsigned> serial{0};
  const std::string tmp = name + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(serial.fetch_add(1, std::memory_order_relaxed));
  const std::string shown_tmp = folder + "/" + tmp;
  ::unlinkat(dirfd, tmp.c_str(), 0);  // a leftover of an earlier crash with the same pid
  UniqueFd fd(
      ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return d::failed(shown_tmp, "cannot create", errno);
  auto give_up = [&](const char *what, int err) {
    fd.reset();
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return d::failed(shown_tmp, what, err);
  };
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return give_up("write failed", errno);
    if (n == 0) return give_up("write made no progress", EIO);
    done += static_cast<std::size_t>(n);  // a short write goes on where it stopped
  }
  if (::fchmod(fd.get(), mode) != 0) return give_up("cannot set the mode", errno);
  if (::fsync(fd.get()) != 0) return give_up("fsync failed", errno);
  if (::close(fd.release()) != 0) {
    const int err = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return d::failed(shown_tmp, "close failed", err);
  }
  if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    const int err = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return d::failed(folder + "/" + name, ("rename from " + tmp + " failed").c_str(), err);
  }
  if (::fsync(dirfd) != 0) return d::failed(folder, "fsync failed", errno);
  return {};
}

inline AtomicWrite write_file_atomic(const std::string &path, std::string_view text,
                                     mode_t mode = 0600) {
  namespace d = atomic_file_detail;
  const std::string folder = d::folder_of(path);
  const auto slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  UniqueFd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return d::failed(folder, "cannot open the folder", errno);
  return write_file_atomic_at(dir.get(), folder, name, text, mode);
}

}  // namespace powergrad
