// The saved-settings state file: text format, strict parser, atomic save, safe load, and a
// crash-restart restore on a fake machine.
#include <check.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "hardware/snapshot_file.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad::hw;
namespace fx = powergrad::hw::testing;

namespace {

HardwareSnapshot sample_snapshot() {
  HardwareSnapshot s;
  PowercapZoneSnapshot z0;
  z0.zone = "intel-rapl:0";
  z0.enabled = true;
  z0.constraints.push_back({0, "long_term", 205000000, 999424});
  z0.constraints.push_back({1, "short_term", 246000000, 2440});
  PowercapZoneSnapshot dram;
  dram.zone = "intel-rapl:0:0";
  dram.enabled = false;
  dram.constraints.push_back({0, "long_term", 0, 976});
  PowercapZoneSnapshot peak;
  peak.zone = "intel-rapl:1";
  peak.constraints.push_back({2, "peak_power", 121000000, std::nullopt});
  s.powercap.zones = {z0, dram, peak};
  s.cpufreq.cpus = {{0, 3400000}, {7, 2100000}};
  return s;
}

const char *kValid =
    "# comment\n"
    "format=powergrad-hw-snapshot/1\n"
    "powercap.intel-rapl:0.enabled=1\n"
    "powercap.intel-rapl:0.constraint_0.power_limit_uw=150000000\n"
    "\n"
    "cpufreq.cpu3.scaling_max_freq_khz=2000000\n"
    "end=3\n";

std::string parse_error(const std::string &text) {
  Result<HardwareSnapshot> r = parse_snapshot(text);
  ck_assert_msg(!r.ok(), "accepted:\n%s", text.c_str());
  return r.message();
}

std::string with_line(const std::string &line) {
  return "format=powergrad-hw-snapshot/1\n" + line + "\nend=1\n";
}

}  // namespace

START_TEST(round_trip) {
  const HardwareSnapshot s = sample_snapshot();
  const std::string text = serialize_snapshot(s);
  ck_assert_contains(text, "format=powergrad-hw-snapshot/1\n");
  ck_assert_contains(text, "powercap.intel-rapl:0.constraint_0.power_limit_uw=205000000\n");
  ck_assert_contains(text, "cpufreq.cpu7.scaling_max_freq_khz=2100000\n");
  ck_assert_contains(text, "end=15\n");
  Result<HardwareSnapshot> back = parse_snapshot(text);
  ck_assert_hw_ok(back);
  ck_assert_std_str_eq(serialize_snapshot(back.value()), text);
  ck_assert_int_eq(back->powercap.zones.size(), 3);
  ck_assert(!back->powercap.zones[2].enabled.has_value());
  ck_assert_int_eq(back->powercap.zones[2].constraints[0].index, 2);
  ck_assert(!back->powercap.zones[2].constraints[0].time_window_us.has_value());
  ck_assert_uint_eq(back->cpufreq.cpus[1].scaling_max_freq_khz, 2100000);

  Result<HardwareSnapshot> v = parse_snapshot(kValid);
  ck_assert_hw_ok(v);
  ck_assert_uint_eq(v->powercap.zones[0].constraints[0].power_limit_uw.value(), 150000000);

  HardwareSnapshot empty;
  ck_assert(parse_snapshot(serialize_snapshot(empty))->empty());
}
END_TEST

START_TEST(every_truncation_is_refused) {
  const std::string text = serialize_snapshot(sample_snapshot());
  // A state file cut anywhere (a crash mid-write without the atomic rename, a full disk)
  // must never parse as a smaller snapshot.
  for (std::size_t n = 0; n < text.size(); ++n) {
    Result<HardwareSnapshot> r = parse_snapshot(text.substr(0, n));
    ck_assert_msg(!r.ok(), "accepted a file truncated to %zu of %zu bytes", n, text.size());
  }
}
END_TEST

START_TEST(parse_errors_name_the_line) {
  ck_assert_contains(parse_error(""), "no format line");
  ck_assert_contains(parse_error("end=0\n"), "line 1");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/2\nend=0\n"), "unsupported");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/1\n"), "truncated");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/1\nend=0"), "truncated");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/1\nend=1\n"), "damaged");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/1\nend=0\nend=0\n"), "after the end");
  ck_assert_contains(parse_error(with_line("bogus=1")), "line 2: unknown key 'bogus'");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.enabled=2")), "0 or 1");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.colour=red")), "unknown powercap");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.constraint_9.power_limit_uw=1")),
                "bad constraint");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.constraint_0.power_limit_uw=-5")),
                "decimal number");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.constraint_0.power_limit_uw=1e8")),
                "decimal number");
  ck_assert_contains(parse_error(with_line(
                    "powercap.intel-rapl:0.constraint_0.power_limit_uw=99999999999999999999")),
                "decimal number");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.constraint_0.time_window_us=")),
                "without spaces");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.constraint_0.name=Long-Term")),
                "constraint name");
  ck_assert_contains(parse_error(with_line("powercap.intel-rapl:0.constraint_0.power_limit_uw = 5")),
                "without spaces");
  ck_assert_contains(parse_error(with_line("cpufreq.cpu1.scaling_max_freq_khz=0")), "positive");
  ck_assert_contains(parse_error(with_line("cpufreq.cpux.scaling_max_freq_khz=1")), "bad cpu");
  ck_assert_contains(parse_error(with_line("cpufreq.cpu1.scaling_min_freq_khz=1")), "unknown cpufreq");
  ck_assert_contains(parse_error(with_line("just text")), "key=value");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/1\r\nend=0\n"), "control character");
  ck_assert_contains(parse_error("format=powergrad-hw-snapshot/1\n"
                            "powercap.intel-rapl:0.enabled=1\n"
                            "powercap.intel-rapl:0.enabled=0\nend=2\n"),
                "line 3: duplicate key");
}
END_TEST

START_TEST(zone_names_with_paths_refused) {
  for (const char *key : {"powercap.../../etc.enabled=1", "powercap.a/b.enabled=1",
                          "powercap...enabled=1", "powercap.intel rapl.enabled=1"}) {
    const std::string err = parse_error(with_line(key));
    ck_assert_contains(err, "line 2");
  }
  ck_assert_contains(parse_error(with_line("powercap.a/b.enabled=1")), "path traversal");
}
END_TEST

START_TEST(save_and_load_file) {
  auto dir = pghw::temp_dir();
  const std::string path = dir.path() + "/saved-settings";
  ck_assert_hw_errno(load_snapshot_file(path), ENOENT);
  ck_assert_hw_ok(save_snapshot_file(path, sample_snapshot()));
  struct stat st {};
  ck_assert_int_eq(stat(path.c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  Result<HardwareSnapshot> back = load_snapshot_file(path);
  ck_assert_hw_ok(back);
  ck_assert_std_str_eq(serialize_snapshot(back.value()), serialize_snapshot(sample_snapshot()));
  // Replacing keeps exactly one file, no temporaries left behind.
  HardwareSnapshot other;
  other.cpufreq.cpus.push_back({1, 1000000});
  ck_assert_hw_ok(save_snapshot_file(path, other));
  ck_assert_int_eq(load_snapshot_file(path)->cpufreq.cpus.size(), 1);
  auto entries = list_directory(dir.path());
  ck_assert_int_eq(entries->size(), 1);
  ck_assert_hw_ok(remove_snapshot_file(path));
  ck_assert_hw_ok(remove_snapshot_file(path));  // already gone: fine
  ck_assert_hw_errno(load_snapshot_file(path), ENOENT);
}
END_TEST

START_TEST(load_refuses_unsafe_files) {
  auto dir = pghw::temp_dir();
  const std::string path = dir.path() + "/saved";
  ck_assert_hw_ok(save_snapshot_file(path, sample_snapshot()));

  ck_assert_int_eq(chmod(path.c_str(), 0620), 0);
  Result<HardwareSnapshot> r = load_snapshot_file(path);
  ck_assert_hw_errno(r, EPERM);
  ck_assert_contains(r.message(), "writable by group or others");
  ck_assert_int_eq(chmod(path.c_str(), 0600), 0);

  const std::string link = dir.path() + "/link";
  ck_assert_int_eq(symlink(path.c_str(), link.c_str()), 0);
  ck_assert_hw_errno(load_snapshot_file(link), ELOOP);  // O_NOFOLLOW

  ck_assert_int_eq(chmod(dir.path().c_str(), 0777), 0);
  r = load_snapshot_file(path);
  ck_assert_hw_errno(r, EPERM);
  ck_assert_contains(r.message(), "folder");
  ck_assert_int_eq(chmod(dir.path().c_str(), 01777), 0);  // sticky, like /tmp: accepted
  ck_assert_hw_ok(load_snapshot_file(path));
  ck_assert_int_eq(chmod(dir.path().c_str(), 0700), 0);

  ck_assert_hw_errno(load_snapshot_file(dir.path()), EPERM);  // a folder, not a file

  pghw::spit(path, "format=powergrad-hw-snapshot/1\nend=3\n", 0600);
  r = load_snapshot_file(path);
  ck_assert_hw_errno(r, EINVAL);
  ck_assert_contains(r.message(), path);
  ck_assert_contains(r.message(), "line 2");

  if (geteuid() == 0) {
    ck_assert_int_eq(chown(path.c_str(), 65534, 65534), 0);
    r = load_snapshot_file(path);
    ck_assert_hw_errno(r, EPERM);
    ck_assert_contains(r.message(), "owned by uid 65534");
  }
}
END_TEST

START_TEST(restore_after_agent_crash) {
  // The agent saves the admin's settings, changes caps, dies (kill -9); a new agent finds the
  // state file and restores: every settings file is back byte for byte.
  auto machine = pghw::temp_dir();
  auto state = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(machine.path(), "intel-server"));
  const std::string state_file = state.path() + "/hw-settings";
  const std::string limit =
      fx::zone_path(machine.path(), "intel-rapl:1") + "/constraint_0_power_limit_uw";
  const std::string window =
      fx::zone_path(machine.path(), "intel-rapl:1") + "/constraint_1_time_window_us";
  const std::string dram_enabled = fx::zone_path(machine.path(), "intel-rapl:0:0") + "/enabled";
  const std::string freq = fx::cpufreq_path(machine.path(), 5) + "/scaling_max_freq";
  const std::string before[] = {pghw::slurp(limit), pghw::slurp(window), pghw::slurp(dram_enabled),
                                pghw::slurp(freq)};
  {
    PowercapTree tree(machine.path());
    CpufreqLimits cpufreq(machine.path());
    ck_assert_hw_ok(tree.discover());
    ck_assert_hw_ok(cpufreq.discover());
    HardwareSnapshot snap{tree.snapshot().value(), cpufreq.snapshot().value(), {}};
    ck_assert_hw_ok(save_snapshot_file(state_file, snap));
    ck_assert_hw_ok(tree.find("intel-rapl:1").value()->apply_long_term_limit_uw(90000000));
    ck_assert_hw_ok(tree.find("intel-rapl:1")
                        .value()
                        ->constraint(ConstraintKind::short_term)
                        ->set_time_window_us(10000));
    ck_assert_hw_ok(tree.find("intel-rapl:0:0").value()->apply_long_term_limit_uw(20000000));
    ck_assert_hw_ok(cpufreq.set_max_freq_khz(5, 1200000));
  }
  ck_assert_std_str_eq(pghw::slurp(limit), "90000000\n");
  {
    Result<HardwareSnapshot> saved = load_snapshot_file(state_file);
    ck_assert_hw_ok(saved);
    PowercapTree tree(machine.path());
    CpufreqLimits cpufreq(machine.path());
    ck_assert_hw_ok(tree.discover());
    ck_assert_hw_ok(cpufreq.discover());
    ck_assert_hw_ok(tree.restore(saved->powercap));
    ck_assert_hw_ok(cpufreq.restore(saved->cpufreq));
    ck_assert_hw_ok(remove_snapshot_file(state_file));
  }
  ck_assert_std_str_eq(pghw::slurp(limit), before[0]);
  ck_assert_std_str_eq(pghw::slurp(window), before[1]);
  ck_assert_std_str_eq(pghw::slurp(dram_enabled), before[2]);
  ck_assert_std_str_eq(pghw::slurp(freq), before[3]);
}
END_TEST

Suite *snapshot_suite() {
  Suite *s = suite_create("hw_snapshot");
  TCase *tc = tcase_create("snapshot");
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, every_truncation_is_refused);
  tcase_add_test(tc, parse_errors_name_the_line);
  tcase_add_test(tc, zone_names_with_paths_refused);
  tcase_add_test(tc, save_and_load_file);
  tcase_add_test(tc, load_refuses_unsafe_files);
  tcase_add_test(tc, restore_after_agent_crash);
  suite_add_tcase(s, tc);
  return s;
}

int main() { return pghw::run_suite(snapshot_suite()); }
