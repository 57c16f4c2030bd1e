// AMD EPYC socket limits through HSMP, and the socket power layer that chooses a node's cap
// backend: Genoa-shaped trees (amd_hsmp_hwmon devices beside energy-only powercap zones), the
// ioctl path over a fake mailbox (firmware clamps, refusals), exact restore, the saved-file
// keys, energy from HSMP socket power, counter wrap on AMD's range, the emulator on AMD
// trees, and the reasons a node cannot cap (Intel control type disabled, permission).
#include <check.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <memory>
#include <string>

#include "hardware/hsmp.hpp"
#include "hardware/power_emulator.hpp"
#include "hardware/snapshot_file.hpp"
#include "hardware/socket_power.hpp"
#include "hardware/testing/fake_hsmp.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad;
using namespace powergrad::hw;
namespace fx = powergrad::hw::testing;

namespace {

std::string cap_file(const std::string &root, int socket) {
  return fx::hsmp_hwmon_path(root, socket) + "/power1_cap";
}

SocketPowerOptions opts(const std::string &root) {
  SocketPowerOptions o;
  o.sysfs_root = root;
  return o;
}

SocketPowerOptions ioctl_opts(const std::string &root, std::shared_ptr<fx::FakeHsmpState> st) {
  SocketPowerOptions o = opts(root);
  o.open_hsmp = [st]() -> Result<std::unique_ptr<HsmpDevice>> {
    return std::unique_ptr<HsmpDevice>(new fx::FakeHsmpDevice(st));
  };
  return o;
}

}  // namespace

START_TEST(uapi_message_layout_and_ids) {
  // What the ioctl hands the kernel must be struct hsmp_message byte for byte.
  ck_assert_uint_eq(sizeof(HsmpMessage), 44);
  ck_assert_uint_eq(offsetof(HsmpMessage, args), 8);
  ck_assert_uint_eq(offsetof(HsmpMessage, sock_ind), 40);
  ck_assert_uint_eq(static_cast<unsigned>(HsmpMsg::get_socket_power), 4);
  ck_assert_uint_eq(static_cast<unsigned>(HsmpMsg::set_socket_power_limit), 5);
  ck_assert_uint_eq(static_cast<unsigned>(HsmpMsg::get_socket_power_limit), 6);
  ck_assert_uint_eq(static_cast<unsigned>(HsmpMsg::get_socket_power_limit_max), 7);
  // No device on this machine: a clear cause, not a crash.
  auto dev = open_hsmp_device("/nonexistent/hsmp");
  ck_assert(!dev.ok());
  ck_assert(pghw::contains(dev.message(), "no driver"));
}
END_TEST

START_TEST(genoa_hwmon_is_chosen_and_measured_by_powercap) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-genoa"));
  SocketPower sp(opts(dir.path()));
  ck_assert_hw_ok(sp.discover());
  const Capability c = sp.capability();
  ck_assert_int_eq(static_cast<int>(c.backend), static_cast<int>(CapBackend::hsmp_hwmon));
  ck_assert_int_eq(static_cast<int>(c.energy), static_cast<int>(EnergySource::powercap));
  ck_assert_std_str_eq(c.caps_text(), "caps: hsmp-hwmon");
  ck_assert_uint_eq(sp.domains().size(), 2);
  // The k10temp device (hwmon0) is not taken for a socket.
  for (int s = 0; s < 2; ++s) {
    SocketDomain &d = sp.domains()[static_cast<std::size_t>(s)];
    ck_assert_std_str_eq(d.name(), "intel-rapl:" + std::to_string(s));
    ck_assert_int_eq(d.package_id().value_or(-1), s);
    ck_assert(d.controllable());
    ck_assert(d.read_energy_uj().ok());
    ck_assert_uint_eq(d.max_energy_range_uj(), 65532610987ull);
    auto pd = d.power_domain();
    ck_assert_hw_ok(pd);
    ck_assert_double_eq_tol(pd.value().max_cap_w, 400.0, 1e-9);
    ck_assert_double_eq_tol(pd.value().min_cap_w, 100.0, 1e-9);  // 25% of power1_cap_max
    ck_assert_double_eq_tol(pd.value().cap_w, 360.0, 1e-9);
  }
}
END_TEST

START_TEST(hwmon_limits_clamp_refuse_and_restore_exactly) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-genoa"));
  const std::string before0 = pghw::slurp(cap_file(dir.path(), 0));
  const std::string before1 = pghw::slurp(cap_file(dir.path(), 1));
  SocketPower sp(opts(dir.path()));
  ck_assert_hw_ok(sp.discover());
  auto pc = sp.powercap_snapshot();
  auto hs = sp.hsmp_snapshot();
  ck_assert_hw_ok(pc);
  ck_assert_hw_ok(hs);
  ck_assert_uint_eq(hs.value().sockets.size(), 2);
  ck_assert_uint_eq(hs.value().sockets[1].power_cap_uw, 360000000u);

  SocketDomain &d0 = sp.domains()[0];
  // Above power1_cap_max: clamped down to it (nothing above is ever written).
  auto r = d0.apply_limit_uw(450000000);
  ck_assert_hw_ok(r);
  ck_assert_uint_eq(r.value(), 400000000u);
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 0)), "400000000\n");
  // Below the floor: refused, nothing written.
  ck_assert_hw_errno(d0.apply_limit_uw(60000000), ERANGE);
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 0)), "400000000\n");
  ck_assert_hw_ok(sp.domains()[1].apply_limit_uw(180000000));
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 1)), "180000000\n");

  // Through the saved-caps text and back: the admin's values, byte for byte.
  HardwareSnapshot snap;
  snap.powercap = pc.value();
  snap.hsmp = hs.value();
  const std::string text = serialize_snapshot(snap);
  ck_assert(pghw::contains(text, "hsmp.socket0.power_cap_uw=360000000\n"));
  auto parsed = parse_snapshot(text);
  ck_assert_hw_ok(parsed);
  ck_assert_hw_ok(sp.restore(parsed.value().powercap, parsed.value().hsmp));
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 0)), before0);
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 1)), before1);

  // A fresh discovery (a new agent after a crash) restores as well.
  ck_assert_hw_ok(sp.domains()[0].apply_limit_uw(200000000));
  SocketPower other(opts(dir.path()));
  ck_assert_hw_ok(other.discover());
  ck_assert_hw_ok(other.restore(parsed.value().powercap, parsed.value().hsmp));
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 0)), before0);
}
END_TEST

START_TEST(snapshot_hsmp_keys_are_checked) {
  const std::string head = "format=powergrad-hw-snapshot/1\n";
  ck_assert(parse_snapshot(head + "hsmp.socket1.power_cap_uw=320000000\nend=1\n").ok());
  for (const char *bad : {"hsmp.socket1.power_cap_uw=0\n", "hsmp.socket1.power_cap_uw=-5\n",
                          "hsmp.socketx.power_cap_uw=5\n", "hsmp.socket1.boost=5\n",
                          "hsmp.socket999.power_cap_uw=5\n"}) {
    auto p = parse_snapshot(head + bad + "end=1\n");
    ck_assert_msg(!p.ok(), "accepted %s", bad);
  }
  auto dup = parse_snapshot(head +
                            "hsmp.socket0.power_cap_uw=5000\nhsmp.socket0.power_cap_uw=6000\n"
                            "end=2\n");
  ck_assert(!dup.ok());
  ck_assert(pghw::contains(dup.message(), "duplicate"));
}
END_TEST

START_TEST(read_only_cap_is_a_permission_refusal) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-genoa"));
  ck_assert_int_eq(::chmod(cap_file(dir.path(), 1).c_str(), 0444), 0);
  SocketPower sp(opts(dir.path()));
  ck_assert_hw_ok(sp.discover());
  const Capability c = sp.capability();
  ck_assert_int_eq(static_cast<int>(c.backend), static_cast<int>(CapBackend::none));
  ck_assert_msg(pghw::contains(c.reason, "permission"), "reason: %s", c.reason.c_str());
  ck_assert(pghw::contains(c.caps_text(), "caps: none (monitor): permission"));
  ck_assert(!sp.domains()[1].controllable());
  ck_assert_hw_errno(sp.domains()[1].apply_limit_uw(200000000), EPERM);
  ck_assert_std_str_eq(pghw::slurp(cap_file(dir.path(), 1)), "360000000\n");
}
END_TEST

START_TEST(ioctl_where_hwmon_is_absent_and_firmware_clamps) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-genoa-nohwmon"));
  // Without an injected device, a test tree never reaches the machine's /dev/hsmp.
  {
    SocketPower sp(opts(dir.path()));
    ck_assert_hw_ok(sp.discover());
    const Capability c = sp.capability();
    ck_assert_int_eq(static_cast<int>(c.backend), static_cast<int>(CapBackend::none));
    ck_assert(pghw::contains(c.reason, "no amd_hsmp_hwmon device"));
    ck_assert(pghw::contains(c.reason, "energy-only"));
    ck_assert_int_eq(static_cast<int>(c.energy), static_cast<int>(EnergySource::powercap));
  }
  auto st = std::make_shared<fx::FakeHsmpState>();
  st->sockets[0].floor_mw = 225000;  // this platform's cTDP minimum, not reported by HSMP
  SocketPower sp(ioctl_opts(dir.path(), st));
  ck_assert_hw_ok(sp.discover());
  ck_assert_int_eq(static_cast<int>(sp.capability().backend),
                   static_cast<int>(CapBackend::hsmp_ioctl));
  SocketDomain &d0 = sp.domains()[0];
  ck_assert_std_str_eq(d0.name(), "intel-rapl:0");
  // A request the firmware holds higher: counted, read back, and the floor follows.
  st->sent.clear();
  auto r = d0.apply_limit_uw(150000000);
  ck_assert_hw_ok(r);
  ck_assert_uint_eq(st->sent[0].msg_id, 5);
  ck_assert_uint_eq(st->sent[0].num_args, 1);
  ck_assert_uint_eq(st->sent[0].args[0], 150000);  // mW
  ck_assert_uint_eq(st->sent[0].sock_ind, 0);
  ck_assert_uint_eq(r.value(), 225000000u);
  ck_assert_uint_eq(d0.clamps(), 1);
  ck_assert_uint_eq(d0.firmware_floor_uw().value_or(0), 225000000u);
  auto pd = d0.power_domain();
  ck_assert_hw_ok(pd);
  ck_assert_double_eq_tol(pd.value().min_cap_w, 225.0, 1e-9);
  ck_assert_double_eq_tol(pd.value().cap_w, 225.0, 1e-9);
  // From now on a request below it is refused, not sent.
  st->sent.clear();
  ck_assert_hw_errno(d0.apply_limit_uw(200000000), ERANGE);
  ck_assert(st->sent.empty());
  // Within range: no clamp.
  ck_assert_hw_ok(sp.domains()[1].apply_limit_uw(300000000));
  ck_assert_uint_eq(st->sockets[1].limit_mw, 300000u);
  ck_assert_uint_eq(sp.domains()[1].clamps(), 0);
  // Exact restore through the mailbox.
  HsmpSnapshot saved;
  saved.sockets = {{0, 360000000}, {1, 360000000}};
  ck_assert_hw_ok(sp.restore({}, saved));
  ck_assert_uint_eq(st->sockets[0].limit_mw, 360000u);
  ck_assert_uint_eq(st->sockets[1].limit_mw, 360000u);
  // A saved socket that is not there any more: an error naming it, the others restored.
  saved.sockets = {{0, 350000000}, {7, 1000000}};
  Status bad = sp.restore({}, saved);
  ck_assert(!bad.ok());
  ck_assert(pghw::contains(bad.message(), "socket 7"));
  ck_assert_uint_eq(st->sockets[0].limit_mw, 350000u);
}
END_TEST

START_TEST(ioctl_refusals_name_their_cause) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-genoa-nohwmon"));
  {
    SocketPowerOptions o = opts(dir.path());
    o.open_hsmp = []() -> Result<std::unique_ptr<HsmpDevice>> {
      return errno_error("/dev/hsmp", "cannot open (" + hsmp_errno_cause(EACCES) + ")", EACCES);
    };
    SocketPower sp(o);
    ck_assert_hw_ok(sp.discover());
    ck_assert(pghw::contains(sp.capability().reason, "permission: HSMP limits are root only"));
  }
  {
    auto st = std::make_shared<fx::FakeHsmpState>();
    st->fail_with[static_cast<std::uint32_t>(HsmpMsg::get_socket_power_limit_max)] = ETIMEDOUT;
    SocketPower sp(ioctl_opts(dir.path(), st));
    ck_assert_hw_ok(sp.discover());
    ck_assert_int_eq(static_cast<int>(sp.capability().backend), static_cast<int>(CapBackend::none));
    ck_assert(pghw::contains(sp.capability().reason, "disabled in the BIOS"));
  }
  {
    // The firmware reports no maximum: no safe upper bound, never capped.
    auto st = std::make_shared<fx::FakeHsmpState>();
    st->sockets[1].max_mw = 0;
    SocketPower sp(ioctl_opts(dir.path(), st));
    ck_assert_hw_ok(sp.discover());
    ck_assert_int_eq(static_cast<int>(sp.capability().backend), static_cast<int>(CapBackend::none));
    ck_assert(pghw::contains(sp.capability().reason, "maximum socket power limit of 0"));
  }
  {
    // A SET refused at run time (EPERM): the domain stops being capped, and says why.
    auto st = std::make_shared<fx::FakeHsmpState>();
    SocketPower sp(ioctl_opts(dir.path(), st));
    ck_assert_hw_ok(sp.discover());
    st->fail_with[static_cast<std::uint32_t>(HsmpMsg::set_socket_power_limit)] = EPERM;
    ck_assert_hw_errno(sp.domains()[0].apply_limit_uw(300000000), EPERM);
    ck_assert(!sp.domains()[0].controllable());
    ck_assert_int_eq(static_cast<int>(sp.capability().backend), static_cast<int>(CapBackend::none));
    ck_assert(pghw::contains(sp.capability().reason, "permission"));
  }
}
END_TEST

START_TEST(energy_from_hsmp_power_without_powercap) {
  auto dir = pghw::temp_dir();
  fx::AmdGenoaSpec spec;
  spec.powercap = false;
  ck_assert_hw_ok(fx::build_amd_genoa(dir.path(), spec));
  SocketPower sp(opts(dir.path()));
  ck_assert_hw_ok(sp.discover());
  ck_assert_int_eq(static_cast<int>(sp.capability().energy),
                   static_cast<int>(EnergySource::hsmp_power));
  ck_assert_uint_eq(sp.domains().size(), 2);
  ck_assert_std_str_eq(sp.domains()[1].name(), "hsmp:1");
  ck_assert_hw_errno(sp.domains()[1].read_energy_uj(), ENOENT);
  auto p = sp.domains()[1].read_power_w();
  ck_assert_hw_ok(p);
  ck_assert_double_eq_tol(p.value(), 95.0, 1e-9);
  // The emulator drives power1_input from the cap in force.
  PowerEmulatorConfig ec;
  ec.settle_s = 0.0;
  PowerEmulator emu(dir.path(), ec);
  ck_assert_hw_ok(emu.open());
  ck_assert_hw_ok(emu.set_demand_w("hsmp:1", 300.0));
  ck_assert_hw_ok(sp.domains()[1].apply_limit_uw(250000000));
  ck_assert_hw_ok(emu.advance(0.5));
  ck_assert_double_eq_tol(sp.domains()[1].read_power_w().value(), 250.0, 1e-9);
}
END_TEST

START_TEST(emulator_on_genoa_follows_hsmp_caps_and_wraps_amd_range) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-genoa"));
  // Energy just below AMD's range: the next steps wrap.
  const std::string e0 = fx::zone_path(dir.path(), "intel-rapl:0") + "/energy_uj";
  ck_assert_hw_ok(fx::write_text(e0, "65532000000\n", 0400));
  PowerEmulatorConfig ec;
  ec.settle_s = 0.0;
  PowerEmulator emu(dir.path(), ec);
  ck_assert_hw_ok(emu.open());
  ck_assert_hw_ok(emu.set_demand_w("intel-rapl:0", 380.0));
  SocketPower sp(opts(dir.path()));
  ck_assert_hw_ok(sp.discover());
  SocketDomain &d0 = sp.domains()[0];
  ck_assert_hw_ok(d0.apply_limit_uw(200000000));
  EnergyCounter counter(d0.max_energy_range_uj());
  ck_assert_hw_ok(counter.update(d0.read_energy_uj().value(), 1.0));
  double total_j = 0.0;
  bool wrapped = false;
  std::uint64_t last = d0.read_energy_uj().value();
  for (int i = 0; i < 10; ++i) {
    ck_assert_hw_ok(emu.advance(1.0));
    const std::uint64_t now = d0.read_energy_uj().value();
    wrapped = wrapped || now < last;
    last = now;
    auto delta = counter.update(now, 1.0);
    ck_assert_hw_ok(delta);
    total_j += static_cast<double>(*delta.value()) * 1e-6;
  }
  ck_assert(wrapped);
  // 10 s held at the 200 W HSMP limit (demand 380 W): 2000 J across the wrap.
  ck_assert_msg(std::fabs(total_j - 2000.0) < 0.01, "total %f J", total_j);
  ck_assert_std_str_eq(pghw::slurp(fx::hsmp_hwmon_path(dir.path(), 0) + "/power1_input"),
                       "200000000\n");
}
END_TEST

START_TEST(intel_disabled_control_type_and_energy_only_amd_say_why) {
  {
    auto dir = pghw::temp_dir();
    ck_assert_hw_ok(fx::build_machine(dir.path(), "intel-server"));
    SocketPower sp(opts(dir.path()));
    ck_assert_hw_ok(sp.discover());
    ck_assert_std_str_eq(sp.capability().caps_text(), "caps: rapl");
    ck_assert_hw_ok(
        fx::write_text(dir.path() + "/devices/virtual/powercap/intel-rapl/enabled", "0\n", 0644));
    ck_assert_hw_ok(sp.discover());
    ck_assert_int_eq(static_cast<int>(sp.capability().backend), static_cast<int>(CapBackend::none));
    ck_assert_msg(pghw::contains(sp.capability().reason, "intel-rapl/enabled is 0"), "%s",
                  sp.capability().reason.c_str());
  }
  {
    auto dir = pghw::temp_dir();
    ck_assert_hw_ok(fx::build_machine(dir.path(), "amd-server"));
    SocketPower sp(opts(dir.path()));
    ck_assert_hw_ok(sp.discover());
    ck_assert(pghw::contains(sp.capability().caps_text(), "caps: none (monitor): energy-only"));
    ck_assert(sp.domains()[0].has_energy());
  }
  {
    auto dir = pghw::temp_dir();
    ck_assert_hw_ok(fx::build_machine(dir.path(), "no-powercap"));
    SocketPower sp(opts(dir.path()));
    Status s = sp.discover();
    ck_assert(!s.ok());
    ck_assert(pghw::contains(sp.capability().reason, "no HSMP"));
  }
  // make-tree's socket power is for amd-genoa only, and in range.
  auto dir = pghw::temp_dir();
  ck_assert(!fx::build_machine(dir.path(), "intel-server", 205.0).ok());
  ck_assert(!fx::build_machine(dir.path(), "amd-genoa", 5.0).ok());
}
END_TEST

int main() {
  Suite *s = suite_create("hw_hsmp");
  TCase *tc = tcase_create("hsmp");
  tcase_add_test(tc, uapi_message_layout_and_ids);
  tcase_add_test(tc, genoa_hwmon_is_chosen_and_measured_by_powercap);
  tcase_add_test(tc, hwmon_limits_clamp_refuse_and_restore_exactly);
  tcase_add_test(tc, snapshot_hsmp_keys_are_checked);
  tcase_add_test(tc, read_only_cap_is_a_permission_refusal);
  tcase_add_test(tc, ioctl_where_hwmon_is_absent_and_firmware_clamps);
  tcase_add_test(tc, ioctl_refusals_name_their_cause);
  tcase_add_test(tc, energy_from_hsmp_power_without_powercap);
  tcase_add_test(tc, emulator_on_genoa_follows_hsmp_caps_and_wraps_amd_range);
  tcase_add_test(tc, intel_disabled_control_type_and_energy_only_amd_say_why);
  suite_add_tcase(s, tc);
  return pghw::run_suite(s);
}
