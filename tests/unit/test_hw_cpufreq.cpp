// cpufreq per-core limits and CPU topology on fake trees.
#include <check.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "hardware/cpufreq.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad::hw;
namespace fx = powergrad::hw::testing;

namespace {

std::string max_file(const std::string &root, int cpu) {
  return fx::cpufreq_path(root, cpu) + "/scaling_max_freq";
}

CpufreqLimits discovered(const std::string &root) {
  CpufreqLimits limits(root);
  ck_assert_hw_ok(limits.discover());
  return limits;
}

}  // namespace

START_TEST(discovery_reads_bounds_and_policies) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_cpufreq(dir.path(), {6, 800000, 3400000}));
  CpufreqLimits limits = discovered(dir.path());
  ck_assert_int_eq(limits.cpus().size(), 6);
  const CpufreqCpu *c5 = limits.find(5);
  ck_assert_ptr_nonnull(c5);
  ck_assert_uint_eq(c5->cpuinfo_min_khz, 800000);
  ck_assert_uint_eq(c5->cpuinfo_max_khz, 3400000);
  ck_assert_std_str_eq(c5->policy, "policy5");  // cpu5/cpufreq is a link to it
  ck_assert_ptr_null(limits.find(6));
  ck_assert_uint_eq(limits.max_freq_khz(2).value(), 3400000);
  ck_assert_hw_errno(limits.max_freq_khz(17), ENOENT);
}
END_TEST

START_TEST(set_clamps_to_cpuinfo_bounds) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_cpufreq(dir.path(), {4, 800000, 3400000}));
  CpufreqLimits limits = discovered(dir.path());
  ck_assert_uint_eq(limits.set_max_freq_khz(1, 2000000).value(), 2000000);
  ck_assert_std_str_eq(pghw::slurp(max_file(dir.path(), 1)), "2000000\n");
  ck_assert_uint_eq(limits.set_max_freq_khz(1, 9000000).value(), 3400000);
  ck_assert_uint_eq(limits.set_max_freq_khz(1, 100).value(), 800000);
  ck_assert_std_str_eq(pghw::slurp(max_file(dir.path(), 1)), "800000\n");
  // Other CPUs untouched (one policy each).
  ck_assert_std_str_eq(pghw::slurp(max_file(dir.path(), 0)), "3400000\n");
  ck_assert_hw_errno(limits.set_max_freq_khz(9, 2000000), ENOENT);
}
END_TEST

START_TEST(restore_is_byte_exact) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_cpufreq(dir.path(), {4, 800000, 3400000}));
  pghw::spit(max_file(dir.path(), 3), "3100000\n");  // an admin's own setting
  CpufreqLimits limits = discovered(dir.path());
  Result<CpufreqSnapshot> snap = limits.snapshot();
  ck_assert_hw_ok(snap);
  ck_assert_int_eq(snap->cpus.size(), 4);
  ck_assert_uint_eq(snap->cpus[3].scaling_max_freq_khz, 3100000);
  for (int c = 0; c < 4; ++c) ck_assert_hw_ok(limits.set_max_freq_khz(c, 1000000 + c));
  ck_assert_hw_ok(limits.restore(snap.value()));
  for (int c = 0; c < 3; ++c) {
    ck_assert_std_str_eq(pghw::slurp(max_file(dir.path(), c)), "3400000\n");
  }
  ck_assert_std_str_eq(pghw::slurp(max_file(dir.path(), 3)), "3100000\n");

  CpufreqSnapshot gone;
  gone.cpus.push_back({42, 2000000});
  Status s = limits.restore(gone);
  ck_assert_hw_errno(s, ENOENT);
  ck_assert_contains(s.message(), "cpu42");
}
END_TEST

START_TEST(machine_without_cpufreq) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_no_powercap(dir.path(), 2));
  CpufreqLimits limits(dir.path());
  Status s = limits.discover();
  ck_assert_hw_errno(s, ENOENT);
  ck_assert_contains(s.message(), "cpufreq");
  ck_assert(limits.cpus().empty());

  CpufreqLimits nothing(dir.path() + "/does-not-exist");
  ck_assert_hw_errno(nothing.discover(), ENOENT);
}
END_TEST

START_TEST(cpu_without_cpufreq_and_read_only_file) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_cpufreq(dir.path(), {3, 800000, 3400000}));
  ck_assert_int_eq(unlink(fx::cpufreq_path(dir.path(), 1).c_str()), 0);  // the link
  ck_assert_int_eq(chmod(max_file(dir.path(), 2).c_str(), 0444), 0);
  CpufreqLimits limits = discovered(dir.path());
  ck_assert_int_eq(limits.cpus().size(), 2);
  ck_assert_ptr_null(limits.find(1));
  bool noted = false;
  for (const auto &n : limits.notes()) noted = noted || pghw::contains(n, "cpu1/cpufreq");
  ck_assert(noted);
  Result<std::uint64_t> w = limits.set_max_freq_khz(2, 2000000);
  ck_assert_hw_errno(w, EACCES);
  ck_assert_contains(w.message(), "scaling_max_freq");
  ck_assert_std_str_eq(pghw::slurp(max_file(dir.path(), 2)), "3400000\n");
}
END_TEST

START_TEST(bad_values_are_errors) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_cpufreq(dir.path(), {2, 800000, 3400000}));
  // Inverted bounds: that CPU is skipped, not trusted.
  pghw::spit(fx::cpufreq_path(dir.path(), 1) + "/cpuinfo_min_freq", "4000000\n", 0444);
  CpufreqLimits limits = discovered(dir.path());
  ck_assert_int_eq(limits.cpus().size(), 1);
  pghw::spit(max_file(dir.path(), 0), "fast\n");
  ck_assert_hw_errno(limits.max_freq_khz(0), EINVAL);
  ck_assert_hw_errno(limits.snapshot(), EINVAL);
}
END_TEST

START_TEST(topology_maps_cpus_to_packages) {
  auto dir = pghw::temp_dir();
  fx::IntelServerSpec spec;
  spec.cpus_per_package = 3;
  ck_assert_hw_ok(fx::build_intel_server(dir.path(), spec));
  Result<CpuTopology> topo = read_cpu_topology(dir.path());
  ck_assert_hw_ok(topo);
  ck_assert_int_eq(topo->online_cpus.size(), 6);
  ck_assert_int_eq(topo->package_of_cpu.at(4), 1);
  const std::vector<int> p1 = topo->cpus_of_package(1);
  ck_assert_int_eq(p1.size(), 3);
  ck_assert_int_eq(p1[0], 3);
  ck_assert(topo->cpus_of_package(2).empty());

  pghw::spit(dir.path() + "/devices/system/cpu/online", "0-2,4\n", 0444);
  topo = read_cpu_topology(dir.path());
  ck_assert_int_eq(topo->online_cpus.size(), 4);
  pghw::spit(dir.path() + "/devices/system/cpu/online", "0-x\n", 0444);
  ck_assert_hw_errno(read_cpu_topology(dir.path()), EINVAL);
}
END_TEST

START_TEST(cpu_list_format) {
  Result<std::vector<int>> l = parse_cpu_list("0-3,8,10-11\n");
  ck_assert_hw_ok(l);
  ck_assert_int_eq(l->size(), 7);
  ck_assert_std_str_eq(format_cpu_list(l.value()), "0-3,8,10-11");
  ck_assert_std_str_eq(format_cpu_list({5, 1, 2, 3, 5}), "1-3,5");
  ck_assert(parse_cpu_list("")->empty());
  for (const char *bad : {"3-1", "a", "1,,2", "-1", "0-70000", "1-"}) {
    ck_assert_msg(!parse_cpu_list(bad).ok(), "'%s' accepted", bad);
  }
}
END_TEST

Suite *cpufreq_suite() {
  Suite *s = suite_create("hw_cpufreq");
  TCase *tc = tcase_create("cpufreq");
  tcase_add_test(tc, discovery_reads_bounds_and_policies);
  tcase_add_test(tc, set_clamps_to_cpuinfo_bounds);
  tcase_add_test(tc, restore_is_byte_exact);
  tcase_add_test(tc, machine_without_cpufreq);
  tcase_add_test(tc, cpu_without_cpufreq_and_read_only_file);
  tcase_add_test(tc, bad_values_are_errors);
  tcase_add_test(tc, topology_maps_cpus_to_packages);
  tcase_add_test(tc, cpu_list_format);
  suite_add_tcase(s, tc);
  return s;
}

int main() { return pghw::run_suite(cpufreq_suite()); }
