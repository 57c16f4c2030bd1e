// The power emulator advancing energy_uj in fake trees from the caps in force, read back
// through the real powercap classes; and the powergrad-hwemu tool the end-to-end tests use.
#include <check.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "hardware/power_emulator.hpp"
#include "hardware/powercap.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad::hw;
namespace fx = powergrad::hw::testing;

namespace {

PowerEmulatorConfig immediate() {
  PowerEmulatorConfig c;
  c.settle_s = 0.0;  // caps act at once: exact numbers
  return c;
}

std::uint64_t energy_file(const std::string &root, const std::string &zone) {
  std::uint64_t v = 0;
  const std::string text = pghw::slurp(fx::zone_path(root, zone) + "/energy_uj");
  ck_assert_msg(parse_u64(text.substr(0, text.find('\n')), &v), "energy_uj '%s'", text.c_str());
  return v;
}

int run_tool(const std::vector<std::string> &args) {
  const char *builddir = std::getenv("PG_BUILDDIR");
  const std::string tool =
      std::string(builddir && *builddir ? builddir : ".") + "/hardware/testing/powergrad-hwemu";
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char *> argv;
    argv.push_back(const_cast<char *>(tool.c_str()));
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(tool.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

START_TEST(energy_follows_the_cap) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowerEmulator emu(dir.path(), immediate());
  ck_assert_hw_ok(emu.open());
  ck_assert_int_eq(emu.zone_names().size(), 4);
  const std::uint64_t start = energy_file(dir.path(), "intel-rapl:0");

  // Demand TDP (every core busy) under the admin's PL1 = TDP: 205 W.
  ck_assert_hw_ok(emu.advance(1.0));
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:0").value(), 205.0, 1e-9);
  ck_assert_uint_eq(energy_file(dir.path(), "intel-rapl:0") - start, 205000000);

  // The agent lowers the cap with the real classes; the reader sees 120 W.
  PowercapTree tree(dir.path());
  ck_assert_hw_ok(tree.discover());
  PowercapZone *pkg = tree.find("intel-rapl:0").value();
  ck_assert_hw_ok(pkg->apply_long_term_limit_uw(120000000));
  EnergyCounter counter(pkg->max_energy_range_uj());
  ck_assert_hw_ok(counter.update(pkg->read_energy_uj().value(), 0.0));
  ck_assert_hw_ok(emu.advance(0.5));
  auto delta = counter.update(pkg->read_energy_uj().value(), 0.5);
  ck_assert_hw_ok(delta);
  ck_assert_uint_eq(delta->value(), 60000000);  // 120 W x 0.5 s
  ck_assert_double_eq_tol(emu.energy_j("intel-rapl:0").value(), 265.0, 1e-6);
  // Package 1 keeps its cap.
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:1").value(), 205.0, 1e-9);
  // dram draws its fixed share; its limit is disabled.
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:0:0").value(), 12.0, 1e-9);

  // Disabled zone: the cap is not enforced.
  ck_assert_hw_ok(pkg->set_enabled(false));
  ck_assert_hw_ok(emu.advance(0.1));
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:0").value(), 205.0, 1e-9);
}
END_TEST

START_TEST(demand_below_the_cap_is_what_is_drawn) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowerEmulator emu(dir.path(), immediate());
  ck_assert_hw_ok(emu.open());
  ck_assert_hw_ok(emu.set_demand_w("intel-rapl:1", 90.0));
  ck_assert_hw_ok(emu.advance(1.0));
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:1").value(), 90.0, 1e-9);
  ck_assert_hw_errno(emu.set_demand_w("intel-rapl:0:0", 10.0), EINVAL);  // not a package
  ck_assert_hw_errno(emu.set_demand_w("intel-rapl:5", 10.0), ENOENT);
  ck_assert_hw_errno(emu.set_demand_w("intel-rapl:1", -1.0), EINVAL);
  ck_assert_hw_errno(emu.set_demand_w("../x", 1.0), EINVAL);
  ck_assert_hw_errno(emu.advance(-1.0), EINVAL);
}
END_TEST

START_TEST(cap_settles_with_a_lag) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowerEmulatorConfig config;
  config.settle_s = 0.3;
  PowerEmulator emu(dir.path(), config);
  ck_assert_hw_ok(emu.open());
  ck_assert_hw_ok(emu.advance(0.1));  // settled at the admin's 205 W
  PowercapTree tree(dir.path());
  ck_assert_hw_ok(tree.discover());
  ck_assert_hw_ok(tree.find("intel-rapl:0").value()->apply_long_term_limit_uw(100000000));
  ck_assert_hw_ok(emu.advance(0.3));
  const double expected = 205.0 - 105.0 * (1.0 - std::exp(-1.0));
  ck_assert_double_eq_tol(emu.enforced_limit_w("intel-rapl:0").value(), expected, 1e-9);
  for (int i = 0; i < 30; ++i) ck_assert_hw_ok(emu.advance(0.1));
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:0").value(), 100.0, 0.01);
}
END_TEST

START_TEST(energy_wraps_at_the_range) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  const std::uint64_t range = 262143328850;
  pghw::spit(fx::zone_path(dir.path(), "intel-rapl:0") + "/energy_uj",
             std::to_string(range - 100000000) + "\n", 0400);
  PowerEmulator emu(dir.path(), immediate());
  ck_assert_hw_ok(emu.open());
  PowercapTree tree(dir.path());
  ck_assert_hw_ok(tree.discover());
  PowercapZone *pkg = tree.find("intel-rapl:0").value();
  EnergyCounter counter(pkg->max_energy_range_uj());
  ck_assert_hw_ok(counter.update(pkg->read_energy_uj().value(), 0.0));
  ck_assert_hw_ok(emu.advance(1.0));  // +205 J: past the range
  const std::uint64_t after = pkg->read_energy_uj().value();
  ck_assert_uint_lt(after, 205000000);
  // The wrap is modulo (range + 1): the counter gives back exactly what was drawn.
  auto delta = counter.update(after, 1.0);
  ck_assert_hw_ok(delta);
  ck_assert_uint_eq(delta->value(), 205000000);
  // No stale digits after the shorter value.
  ck_assert_std_str_eq(pghw::slurp(fx::zone_path(dir.path(), "intel-rapl:0") + "/energy_uj"),
                       std::to_string(after) + "\n");
}
END_TEST

START_TEST(client_and_amd_trees) {
  auto client = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_client(client.path()));
  PowerEmulatorConfig config = immediate();
  config.socket = {8.0, 28.0, 4.7e9, 1.0};
  PowerEmulator emu(client.path(), config);
  ck_assert_hw_ok(emu.open());
  ck_assert_hw_ok(emu.advance(1.0));
  const double pkg = emu.power_w("intel-rapl:0").value();
  ck_assert_double_eq_tol(pkg, 28.0, 1e-9);
  const double core = emu.power_w("intel-rapl:0:0").value();
  const double uncore = emu.power_w("intel-rapl:0:1").value();
  ck_assert(core > 0.0 && uncore > 0.0 && core + uncore < pkg);
  // psys: packages + dram + platform.
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:1").value(),
                          pkg + emu.power_w("intel-rapl:0:2").value() + 10.0, 1e-9);

  auto amd = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_amd_server(amd.path()));
  PowerEmulator amd_emu(amd.path(), immediate());
  ck_assert_hw_ok(amd_emu.open());
  ck_assert_hw_ok(amd_emu.set_demand_w("intel-rapl:0", 180.0));
  ck_assert_hw_ok(amd_emu.advance(2.0));
  // No constraints on AMD: power is the demand.
  ck_assert_double_eq_tol(amd_emu.power_w("intel-rapl:0").value(), 180.0, 1e-9);
  ck_assert_double_eq_tol(amd_emu.energy_j("intel-rapl:0").value(), 360.0, 1e-6);

  auto none = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_no_powercap(none.path()));
  PowerEmulator none_emu(none.path());
  ck_assert_hw_errno(none_emu.open(), ENOENT);
}
END_TEST

START_TEST(demand_files) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowerEmulator emu(dir.path(), immediate());
  ck_assert_hw_ok(emu.open());
  const std::string f = dir.path() + "/demand";
  pghw::spit(f, "# per package\nintel-rapl:0=150\n\nintel-rapl:1=80.5\n");
  ck_assert_hw_ok(emu.load_demand_file(f));
  ck_assert_hw_ok(emu.advance(1.0));
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:0").value(), 150.0, 1e-9);
  ck_assert_double_eq_tol(emu.power_w("intel-rapl:1").value(), 80.5, 1e-9);
  pghw::spit(f, "intel-rapl:0=150\nintel-rapl:9=1\n");
  Status s = emu.load_demand_file(f);
  ck_assert_hw_errno(s, ENOENT);
  ck_assert_contains(s.message(), "line 2");
  pghw::spit(f, "intel-rapl:0 150\n");
  ck_assert_contains(emu.load_demand_file(f).message(), "expected <zone>=<watts>");
  ck_assert_hw_errno(emu.load_demand_file(dir.path() + "/none"), ENOENT);
}
END_TEST

START_TEST(hwemu_tool) {
  auto dir = pghw::temp_dir();
  const std::string root = dir.path() + "/node1";
  ck_assert_int_eq(run_tool({"make-tree", "--root", root, "--machine", "intel-server"}), 0);
  PowercapTree tree(root);
  ck_assert_hw_ok(tree.discover());
  ck_assert_int_eq(tree.packages().size(), 2);
  ck_assert_hw_ok(tree.find("intel-rapl:0").value()->apply_long_term_limit_uw(100000000));
  const std::uint64_t before = energy_file(root, "intel-rapl:0");
  pghw::spit(dir.path() + "/demand", "intel-rapl:1=50\n");
  ck_assert_int_eq(run_tool({"run", "--root", root, "--period-s", "0.05", "--duration-s", "0.4",
                             "--settle-s", "0", "--demand-file", dir.path() + "/demand"}),
                   0);
  // About 100 W for about 0.4 s (wall time, so loose bounds).
  const double joules = static_cast<double>(energy_file(root, "intel-rapl:0") - before) / 1e6;
  ck_assert_msg(joules > 30.0 && joules < 70.0, "%.1f J in ~0.4 s at 100 W", joules);

  ck_assert_int_eq(run_tool({"make-tree", "--root", root + "x", "--machine", "cray"}), 1);
  ck_assert_int_eq(run_tool({"run", "--root", root, "--period-s", "-1"}), 2);
  ck_assert_int_eq(run_tool({"frobnicate", "--root", root}), 2);
  ck_assert_int_eq(run_tool({"run", "--root", dir.path() + "/nothing", "--duration-s", "0.1"}), 1);
}
END_TEST

Suite *power_emulator_suite() {
  Suite *s = suite_create("hw_power_emulator");
  TCase *tc = tcase_create("power_emulator");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, energy_follows_the_cap);
  tcase_add_test(tc, demand_below_the_cap_is_what_is_drawn);
  tcase_add_test(tc, cap_settles_with_a_lag);
  tcase_add_test(tc, energy_wraps_at_the_range);
  tcase_add_test(tc, client_and_amd_trees);
  tcase_add_test(tc, demand_files);
  tcase_add_test(tc, hwemu_tool);
  suite_add_tcase(s, tc);
  return s;
}

int main() { return pghw::run_suite(power_emulator_suite()); }
