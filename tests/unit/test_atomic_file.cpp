// The shared atomic-write helper (posix/atomic_file.hpp) and the files written with it: the
// run-time budget (controller) and job power series (jobreport). A file replaced this way is
// whole or absent after any failure, has the mode asked for whatever the umask, leaves no
// temporary file behind, and writers in several threads never see each other's halves.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// After the standard headers: its fail() macro would break std::basic_ios::fail().
#include <check.h>

#include "controller/budget_state.hpp"
#include "jobreport/series.hpp"
#include "posix/atomic_file.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

std::string temp_folder() {
  char tmpl[] = "/tmp/pg-atomic-XXXXXX";
  ck_assert_ptr_nonnull(::mkdtemp(tmpl));
  return tmpl;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Files of `dir` whose name contains ".tmp".
int temporaries(const std::string &dir) {
  int n = 0;
  const std::string cmd = "ls -a " + dir;
  FILE *p = ::popen(cmd.c_str(), "r");
  char line[512];
  while (p && std::fgets(line, sizeof line, p))
    n += std::string(line).find(".tmp") != std::string::npos;
  if (p) ::pclose(p);
  return n;
}

}  // namespace

START_TEST(writes_whole_text_with_the_mode_asked_for) {
  const std::string dir = temp_folder();
  const std::string path = dir + "/f";
  const mode_t old = ::umask(077);
  AtomicWrite w = write_file_atomic(path, "first\n", 0644);
  ck_assert_msg(w.ok(), "%s", w.error.c_str());
  std::string big(3 << 20, 'x');  // larger than a pipe or a page: many writes
  w = write_file_atomic(path, big, 0644);
  ::umask(old);
  ck_assert_msg(w.ok(), "%s", w.error.c_str());
  ck_assert_uint_eq(slurp(path).size(), big.size());
  struct stat st {};
  ck_assert_int_eq(::stat(path.c_str(), &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0644);  // not 0600: the umask does not decide
  ck_assert_int_eq(temporaries(dir), 0);
}
END_TEST

// A write that cannot finish (the file size limit: EFBIG) fails, names the file and the
// cause, leaves the old file as it was and no temporary file.
START_TEST(a_failed_write_leaves_the_old_file) {
  const std::string dir = temp_folder();
  const std::string path = dir + "/budget";
  ck_assert(write_file_atomic(path, "old text\n", 0644).ok());
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit saved {};
  ck_assert_int_eq(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ck_assert_int_eq(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const AtomicWrite w = write_file_atomic(path, std::string(10000, 'y'), 0644);
  ck_assert_int_eq(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  ck_assert(!w.ok());
  ck_assert_int_eq(w.errno_value, EFBIG);
  ck_assert_contains(w.error, dir);
  ck_assert_std_str_eq(slurp(path), "old text\n");
  ck_assert_int_eq(temporaries(dir), 0);

  // A folder that does not exist: an error, nothing created.
  const AtomicWrite w2 = write_file_atomic(dir + "/none/f", "x", 0600);
  ck_assert(!w2.ok());
  ck_assert_int_eq(w2.errno_value, ENOENT);
}
END_TEST

// Threads of one daemon replacing the same file: every read sees one writer's whole text.
// (With a fixed temporary name, two writers truncated and renamed each other's file.)
START_TEST(concurrent_writers_never_mix) {
  const std::string dir = temp_folder();
  const std::string path = dir + "/budget.state";
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, bad_reads{0}, reads{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        RuntimeBudget b;
        b.budget_w = 100.0 * (t + 1) + i;
        b.config_budget_w = 800;
        b.uid = static_cast<std::uint32_t>(t);
        b.set_at_s = 1764000000 + i;
        if (!write_runtime_budget(path, b).empty()) failures++;
      }
    });
  }
  std::thread reader([&] {
    while (!stop) {
      std::string err;
      if (::access(path.c_str(), F_OK) != 0) continue;
      reads++;
      if (!read_runtime_budget(path, &err)) bad_reads++;
    }
  });
  for (auto &w : writers) w.join();
  stop = true;
  reader.join();
  ck_assert_int_eq(failures.load(), 0);
  ck_assert_int_gt(reads.load(), 0);
  ck_assert_int_eq(bad_reads.load(), 0);
  ck_assert_int_eq(temporaries(dir), 0);
  std::string err;
  ck_assert(read_runtime_budget(path, &err).has_value());
  struct stat st {};
  ck_assert_int_eq(::stat(path.c_str(), &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0644);  // powergrad status reads it as any user
}
END_TEST

START_TEST(series_files_are_replaced_whole) {
  const std::string dir = temp_folder();
  JobSeries s;
  for (int i = 0; i < 500; ++i) s.add({1764000000.0 + i, 100.0 + i % 7, 120.0, 130.0});
  ck_assert_std_str_eq(write_series_file(dir, 42, s), "");
  std::string err;
  auto back = read_series_file(series_file_path(dir, 42), &err);
  ck_assert_msg(back.has_value(), "%s", err.c_str());
  ck_assert_uint_eq(back->points().size(), s.points().size());
  ck_assert_uint_gt(s.points().size(), 100);
  ck_assert_int_eq(temporaries(dir), 0);
}
END_TEST

int main() {
  Suite *s = suite_create("atomic_file");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, writes_whole_text_with_the_mode_asked_for);
  tcase_add_test(tc, a_failed_write_leaves_the_old_file);
  tcase_add_test(tc, concurrent_writers_never_mix);
  tcase_add_test(tc, series_files_are_replaced_whole);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
