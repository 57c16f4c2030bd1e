// SecureDir (hardware/secure_dir.hpp): every folder of the path checked as munge's
// path_is_secure does, symlinks followed only from checked folders (their targets checked
// too), and the files worked from the opened descriptor: a folder swapped afterwards
// changes nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "hardware/secure_dir.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;
using namespace powergrad::hw;

namespace {

// A fresh folder under /tmp (root's, sticky: it passes the checks), mode 0755.
std::string temp_dir() {
  char tmpl[] = "/tmp/pg-secure-dir-XXXXXX";
  const char *d = mkdtemp(tmpl);
  ck_assert_ptr_nonnull(d);
  ck_assert_int_eq(chmod(d, 0755), 0);
  return d;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool exists(const std::string &path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

}  // namespace

START_TEST(a_secure_path_opens_and_missing_folders_are_made) {
  const std::string top = temp_dir();
  SecureDirOptions opt;
  opt.create = true;
  opt.private_dir = true;
  const mode_t old = umask(0077);  // the modes are exact, whatever the umask
  Result<SecureDir> d = SecureDir::open(top + "/a/b/state", opt);
  umask(old);
  ck_assert_msg(d.ok(), "%s", d.ok() ? "" : d.message().c_str());
  struct stat st;
  ck_assert_int_eq(stat((top + "/a").c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0755);
  ck_assert_int_eq(stat((top + "/a/b/state").c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0700);
  ck_assert_std_str_eq(d.value().path(), top + "/a/b/state");
  ck_assert_std_str_eq(d.value().display("x"), top + "/a/b/state/x");
  // Again: fine, nothing to make.
  ck_assert(SecureDir::open(top + "/a/b/state/", opt).ok());
  // Without create a missing folder is ENOENT.
  Result<SecureDir> missing = SecureDir::open(top + "/a/nope");
  ck_assert(!missing.ok());
  ck_assert_int_eq(missing.errno_value(), ENOENT);
  ck_assert(!SecureDir::open("relative/path").ok());
  std::ofstream(top + "/file") << "x";
  ck_assert_contains(SecureDir::open(top + "/file").message(), "is not a folder");
  std::filesystem::remove_all(top);
}
END_TEST

// An admin's state_dir=/tmp/x/%n where /tmp/x may be written by users: refused, naming it.
START_TEST(a_user_writable_parent_is_refused) {
  const std::string top = temp_dir();
  ck_assert_int_eq(mkdir((top + "/shared").c_str(), 0777), 0);
  ck_assert_int_eq(chmod((top + "/shared").c_str(), 0777), 0);
  ck_assert_int_eq(mkdir((top + "/shared/state").c_str(), 0700), 0);
  Result<SecureDir> d = SecureDir::open(top + "/shared/state");
  ck_assert(!d.ok());
  ck_assert_contains(d.message(),
                     "'" + top + "/shared' is writable by others (mode 0777, no sticky bit)");
  ck_assert_std_str_eq(check_secure_path(top + "/shared/state", {}), d.message());
  // Group-writable likewise.
  ck_assert_int_eq(chmod((top + "/shared").c_str(), 0775), 0);
  ck_assert_contains(SecureDir::open(top + "/shared/state").message(), "is writable by its group");
  // Sticky and world-writable (like /tmp): nobody can swap another's entries: accepted.
  ck_assert_int_eq(chmod((top + "/shared").c_str(), 01777), 0);
  ck_assert(SecureDir::open(top + "/shared/state").ok());
  // A private folder must be writable by its owner alone, sticky or not.
  SecureDirOptions priv;
  priv.private_dir = true;
  ck_assert_int_eq(chmod((top + "/shared/state").c_str(), 01777), 0);
  ck_assert_contains(SecureDir::open(top + "/shared/state", priv).message(),
                     "is writable by group or others");
  std::filesystem::remove_all(top);
}
END_TEST

START_TEST(a_folder_of_an_untrusted_owner_is_refused) {
  const std::string top = temp_dir();
  ck_assert_int_eq(mkdir((top + "/a").c_str(), 0755), 0);
  if (geteuid() == 0) {
    ck_assert_int_eq(chown((top + "/a").c_str(), 65534, 65534), 0);
    ck_assert_contains(SecureDir::open(top + "/a").message(),
                       "'" + top + "/a' is owned by uid 65534, not by root or the daemon's uid");
    ck_assert_int_eq(chown((top + "/a").c_str(), 0, 0), 0);
  }
  // Whoever runs this: folders of a uid that is not trusted are refused (here our own,
  // when only another uid and root are trusted).
  SecureDirOptions other;
  other.trusted_uids = {geteuid() + 1};
  if (geteuid() != 0) {
    ck_assert_contains(SecureDir::open(top + "/a", other).message(), "is owned by uid");
  } else {
    ck_assert(SecureDir::open(top + "/a", other).ok());  // root's own: root is always trusted
  }
  std::filesystem::remove_all(top);
}
END_TEST

// Symlinks: followed from a checked folder, their targets checked too.
START_TEST(a_symlinked_component_is_checked_where_it_leads) {
  const std::string top = temp_dir();
  ck_assert_int_eq(mkdir((top + "/real").c_str(), 0755), 0);
  ck_assert_int_eq(mkdir((top + "/real/state").c_str(), 0700), 0);
  // Like /var/run -> /run: a link made by root to a safe folder works.
  ck_assert_int_eq(symlink("real", (top + "/run").c_str()), 0);
  Result<SecureDir> d = SecureDir::open(top + "/run/state");
  ck_assert_msg(d.ok(), "%s", d.ok() ? "" : d.message().c_str());
  ck_assert_std_str_eq(d.value().resolved_path(), top + "/real/state");
  ck_assert_int_eq(symlink((top + "/real").c_str(), (top + "/abs").c_str()), 0);
  ck_assert(SecureDir::open(top + "/abs/state").ok());
  ck_assert_int_eq(symlink(("../" + top.substr(5) + "/real").c_str(), (top + "/dotdot").c_str()),
                   0);
  ck_assert(SecureDir::open(top + "/dotdot/state").ok());
  // A link into a folder others may write: refused where it leads.
  ck_assert_int_eq(mkdir((top + "/open").c_str(), 0777), 0);
  ck_assert_int_eq(chmod((top + "/open").c_str(), 0777), 0);
  ck_assert_int_eq(mkdir((top + "/open/state").c_str(), 0700), 0);
  ck_assert_int_eq(symlink("open", (top + "/link").c_str()), 0);
  ck_assert_contains(SecureDir::open(top + "/link/state").message(),
                     "'" + top + "/open' is writable by others");
  // A link inside a folder others may write: refused at that folder, never followed.
  ck_assert_int_eq(symlink((top + "/real").c_str(), (top + "/open/to-real").c_str()), 0);
  ck_assert_contains(SecureDir::open(top + "/open/to-real/state").message(),
                     "'" + top + "/open' is writable by others");
  // Links in a loop.
  ck_assert_int_eq(symlink("loop2", (top + "/loop1").c_str()), 0);
  ck_assert_int_eq(symlink("loop1", (top + "/loop2").c_str()), 0);
  ck_assert_contains(SecureDir::open(top + "/loop1").message(), "too many symlinks");
  std::filesystem::remove_all(top);
}
END_TEST

// The state folder is swapped for a symlink after it was opened (by whoever could): the
// files are still written, read and removed in the folder that was checked.
START_TEST(work_goes_through_the_opened_folder_after_a_swap) {
  const std::string top = temp_dir();
  ck_assert_int_eq(mkdir((top + "/p").c_str(), 0755), 0);
  ck_assert_int_eq(mkdir((top + "/decoy").c_str(), 0700), 0);
  SecureDirOptions opt;
  opt.create = true;
  opt.private_dir = true;
  Result<SecureDir> d = SecureDir::open(top + "/p/state", opt);
  ck_assert(d.ok());
  const SecureDir &dir = d.value();
  ck_assert(dir.write_file_atomic("steps", "one\n").ok());
  ck_assert_int_eq(rename((top + "/p/state").c_str(), (top + "/p/moved").c_str()), 0);
  ck_assert_int_eq(symlink((top + "/decoy").c_str(), (top + "/p/state").c_str()), 0);
  ck_assert(dir.write_file_atomic("saved-caps", "two\n").ok());
  ck_assert(dir.write_file_atomic("steps", "three\n").ok());
  ck_assert_std_str_eq(slurp(top + "/p/moved/saved-caps"), "two\n");
  ck_assert_std_str_eq(slurp(top + "/p/moved/steps"), "three\n");
  ck_assert(!exists(top + "/decoy/saved-caps"));
  ck_assert(!exists(top + "/decoy/steps"));
  struct stat st;
  ck_assert_int_eq(stat((top + "/p/moved/saved-caps").c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0600);
  // Reading: the checked folder's file, not the decoy's.
  std::ofstream(top + "/decoy/managed") << "planted\n";
  ck_assert(!dir.exists("managed"));
  ck_assert_std_str_eq(dir.read_file("steps").value(), "three\n");
  // Removing: in the checked folder only.
  std::ofstream(top + "/decoy/steps") << "decoy\n";
  ck_assert(dir.remove("steps").ok());
  ck_assert(!exists(top + "/p/moved/steps"));
  ck_assert(exists(top + "/decoy/steps"));
  ck_assert(dir.remove("steps").ok());  // already gone: fine
  // The descriptor path reaches the checked folder too (bind/connect of the agent socket).
  ck_assert(exists(dir.fd_path("saved-caps")));
  ck_assert(!exists(dir.fd_path("managed")));
  // Names are names, not paths.
  ck_assert(!dir.write_file_atomic("../escape", "x").ok());
  ck_assert(!dir.remove("..").ok());
  ck_assert(!exists(top + "/p/escape"));
  std::filesystem::remove_all(top);
}
END_TEST

START_TEST(files_are_read_only_when_safe) {
  const std::string top = temp_dir();
  Result<SecureDir> d = SecureDir::open(top);
  ck_assert(d.ok());
  const SecureDir &dir = d.value();
  std::ofstream(top + "/good") << "ok\n";
  chmod((top + "/good").c_str(), 0644);
  ck_assert_std_str_eq(dir.read_file("good").value(), "ok\n");
  ck_assert_int_eq(dir.read_file("absent").errno_value(), ENOENT);
  ck_assert_int_eq(symlink("good", (top + "/link").c_str()), 0);
  ck_assert_contains(dir.read_file("link").message(), "refused: a symlink");
  std::ofstream(top + "/open") << "x";
  chmod((top + "/open").c_str(), 0666);
  ck_assert_contains(dir.read_file("open").message(), "refused: writable by group or others");
  ck_assert_int_eq(mkfifo((top + "/fifo").c_str(), 0600), 0);
  ck_assert_contains(dir.read_file("fifo").message(), "not a regular file");
  std::ofstream(top + "/big") << std::string(2000, 'x');
  ck_assert_int_eq(dir.read_file("big", 1000).errno_value(), EFBIG);
  if (geteuid() == 0) {
    ck_assert_int_eq(chown((top + "/good").c_str(), 65534, 65534), 0);
    ck_assert_contains(dir.read_file("good").message(), "refused: owned by uid 65534");
  }
  std::filesystem::remove_all(top);
}
END_TEST

// The emulate= file: read only from safe folders, and when safe itself.
START_TEST(trusted_files_need_safe_folders) {
  const std::string top = temp_dir();
  ck_assert_int_eq(mkdir((top + "/safe").c_str(), 0755), 0);
  std::ofstream(top + "/safe/emulate") << "12 memory_share=0.1\n";
  chmod((top + "/safe/emulate").c_str(), 0644);
  ck_assert_std_str_eq(read_trusted_file(top + "/safe/emulate").value(), "12 memory_share=0.1\n");
  ck_assert_int_eq(mkdir((top + "/open").c_str(), 0777), 0);
  ck_assert_int_eq(chmod((top + "/open").c_str(), 0777), 0);
  std::ofstream(top + "/open/emulate") << "12 memory_share=0.9\n";
  chmod((top + "/open/emulate").c_str(), 0644);
  Result<std::string> r = read_trusted_file(top + "/open/emulate");
  ck_assert(!r.ok());
  ck_assert_contains(r.message(),
                     top + "/open/emulate: refused: '" + top + "/open' is writable by others");
  chmod((top + "/safe/emulate").c_str(), 0666);
  ck_assert_contains(read_trusted_file(top + "/safe/emulate").message(),
                     "refused: writable by group or others");
  ck_assert(!read_trusted_file("relative").ok());
  std::filesystem::remove_all(top);
}
END_TEST

int main() {
  Suite *s = suite_create("hw_secure_dir");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, a_secure_path_opens_and_missing_folders_are_made);
  tcase_add_test(tc, a_user_writable_parent_is_refused);
  tcase_add_test(tc, a_folder_of_an_untrusted_owner_is_refused);
  tcase_add_test(tc, a_symlinked_component_is_checked_where_it_leads);
  tcase_add_test(tc, work_goes_through_the_opened_folder_after_a_swap);
  tcase_add_test(tc, files_are_read_only_when_safe);
  tcase_add_test(tc, trusted_files_need_safe_folders);
  suite_add_tcase(s, tc);
  if (geteuid() != 0) {
    std::printf(
        "note: not root: the checks of folders and files owned by another uid run with "
        "a trusted-uid list instead of chown\n");
  }
  return pgtest::run_suite(s);
}
