// Helpers for the hardware layer's Check runners (tests/unit/test_hw_*.cpp).
#pragma once

#include <check.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "hardware/result.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "tests/unit/check_util.hpp"

namespace pghw {

using pgtest::contains;
using pgtest::run_suite;

// Asserts that a Status or Result is ok, printing its message when it is not.
#define ck_assert_hw_ok(expr)                                       \
  do {                                                              \
    const auto &ck_r_ = (expr);                                     \
    ck_assert_msg(ck_r_.ok(), "%s failed: %s", #expr,               \
                  ck_r_.ok() ? "" : ck_r_.error().message.c_str()); \
  } while (0)

// Asserts that a Status or Result failed with the given errno.
#define ck_assert_hw_errno(expr, err)                                                          \
  do {                                                                                         \
    const auto &ck_r_ = (expr);                                                                \
    ck_assert_msg(!ck_r_.ok(), "%s succeeded, expected errno %d", #expr, (err));               \
    ck_assert_msg(ck_r_.error().errno_value == (err), "%s: errno %d, expected %d (%s)", #expr, \
                  ck_r_.error().errno_value, (err), ck_r_.error().message.c_str());            \
  } while (0)

// A fresh temporary folder; the test fails if it cannot be made.
inline powergrad::hw::testing::TempDir temp_dir() {
  auto d = powergrad::hw::testing::TempDir::create("pg-hw-test");
  ck_assert_msg(d.ok(), "cannot make a temporary folder: %s", d.ok() ? "" : d.message().c_str());
  return std::move(d).value();
}

inline std::string slurp(const std::string &path) {
  auto t = powergrad::hw::testing::read_text(path);
  ck_assert_msg(t.ok(), "cannot read %s: %s", path.c_str(), t.ok() ? "" : t.message().c_str());
  return t.value();
}

inline void spit(const std::string &path, const std::string &text, mode_t mode = 0644) {
  auto s = powergrad::hw::testing::write_text(path, text, mode);
  ck_assert_msg(s.ok(), "cannot write %s: %s", path.c_str(), s.message().c_str());
}

// Runs fn in a forked child with the given environment variables set first, and returns
// what fn returned ("" for success, else a failure message). libpfm4 reads its environment
// once per process, in pfm_initialize(), so tests that force a PMU need a fresh process
// whatever CK_FORK says.
inline std::string run_in_child(const std::vector<std::pair<std::string, std::string>> &env,
                                const std::function<std::string()> &fn) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(fds[0]);
    for (const auto &[k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    const std::string out = fn();
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "child failed (status " + std::to_string(status) + "): " + out;
  }
  return out;
}

}  // namespace pghw

