// The node agent on AMD EPYC nodes: caps written through HSMP (amd_hsmp_hwmon on a
// Genoa-shaped tree, /dev/hsmp through a fake mailbox where hwmon is absent), energy from the
// powercap counters, the admin's socket limits saved before the first change and back byte
// for byte at job end, agent stop, after a crash and on a missed epilog; firmware clamps
// reported (range and count); and the start-up line that says what the node can do.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "hardware/testing/fake_hsmp.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "nodeagent/power_control.hpp"
#include "tests/unit/agent_fixture.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;
namespace hwt = powergrad::hw::testing;

namespace {

using Fixture = pgtest::AgentFixture;

RegisteredStep step(uint32_t job, JobMode mode, pid_t pid) {
  return pgtest::agent_step(job, mode, pid);
}

void run(Fixture &f, PowerControl &pc, const std::vector<RegisteredStep> &steps, double &now,
         int n) {
  pgtest::agent_periods(f, pc, steps, now, n);
}

std::string slurp(const std::string &p) { return Fixture::slurp(p); }

// The agent's configuration with the ioctl path on a fake mailbox holding `st`.
PowerControlConfig with_fake_hsmp(PowerControlConfig c, std::shared_ptr<hwt::FakeHsmpState> st) {
  c.open_hsmp = [st]() -> hw::Result<std::unique_ptr<hw::HsmpDevice>> {
    return std::unique_ptr<hw::HsmpDevice>(new hwt::FakeHsmpDevice(st));
  };
  return c;
}

}  // namespace

START_TEST(genoa_caps_move_within_grant_and_come_back_exactly) {
  Fixture f("amd-genoa", 205.0);
  const auto before = f.settings();
  ck_assert_uint_eq(before.count("hsmp0") + before.count("hsmp1"), 2);
  auto pc = f.control(250.0);
  double now = 0.0;
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  run(f, *pc, steps, now, 6);
  ck_assert(!pc->monitor_only());
  ck_assert(
      f.logged("caps: hsmp-hwmon (2 socket(s), 102.5..410.0 W); counters: emulated; energy: "
               "powercap on n1"));
  ck_assert_msg(f.cap_w(0) < 205.0 && f.cap_w(1) < 205.0, "caps %f %f", f.cap_w(0), f.cap_w(1));
  ck_assert_msg(f.caps_sum_w() <= 250.0 + 1e-6, "sum %f", f.caps_sum_w());
  // The compute-bound job's socket gets more than the memory-bound one's.
  ck_assert_msg(f.cap_w(0) > f.cap_w(1), "caps %f %f", f.cap_w(0), f.cap_w(1));
  // The admin's socket limits are on record before the first change.
  const std::string saved = slurp(f.state + "/saved-caps");
  ck_assert(pgtest::contains(saved, "hsmp.socket0.power_cap_uw=205000000\n"));
  ck_assert(pgtest::contains(saved, "hsmp.socket1.power_cap_uw=205000000\n"));
  // Nothing of powercap is written on an HSMP node, so nothing of it is saved.
  ck_assert(!pgtest::contains(saved, "powercap."));
  const std::optional<NodeCapabilities> caps = pc->capabilities();
  ck_assert(caps.has_value());
  ck_assert_int_eq(static_cast<int>(caps->backend),
                   static_cast<int>(proto::CapsBackend::hsmp_hwmon));
  ck_assert_int_eq(static_cast<int>(caps->energy), static_cast<int>(proto::CapsEnergy::powercap));
  ck_assert_int_eq(static_cast<int>(caps->counters),
                   static_cast<int>(proto::CapsCounters::emulated));
  ck_assert_double_eq_tol(caps->max_w, 410.0, 1e-9);
  ck_assert_uint_eq(caps->clamps, 0);
  // Energy from the powercap counters: each job alone on its socket gets its energy.
  const std::vector<JobEnergySummary> js = pc->job_summaries();
  ck_assert_uint_eq(js.size(), 2);
  for (const JobEnergySummary &j : js) ck_assert_msg(j.energy_j > 5 * 40.0, "%f", j.energy_j);
  // The steps leave: the socket limits come back byte for byte, the file goes.
  run(f, *pc, {}, now, 1);
  ck_assert(!f.saved_file());
  ck_assert(f.settings() == before);
}
END_TEST

START_TEST(genoa_restores_at_stop_after_crash_and_on_missed_epilog) {
  Fixture f("amd-genoa", 205.0);
  const auto before = f.settings();
  double now = 0.0;
  {
    auto pc = f.control(200.0);
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
    ck_assert(f.settings() != before);
    pc->shutdown();
    ck_assert(f.settings() == before);
    ck_assert(!f.saved_file());
  }
  {
    auto pc = f.control(200.0);
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
    ck_assert(f.saved_file());
    // No shutdown(): slurmd was killed.
  }
  ck_assert(f.settings() != before);
  {
    auto pc = f.control(200.0);
    pc->recover();
    ck_assert(f.settings() == before);
    ck_assert(f.logged("left by a previous agent (crash recovery)"));
  }
  {
    // The epilog of the last job was missed: the next job's start gives them back first.
    auto pc = f.control(200.0);
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
    ck_assert(f.settings() != before);
    ck_assert(pc->new_job(14, {step(14, JobMode::off, 102)}));
    ck_assert(f.settings() == before);
    ck_assert(!f.saved_file());
  }
}
END_TEST

START_TEST(ioctl_node_reports_the_firmware_clamp_and_never_raises_past_it) {
  Fixture f("amd-genoa-nohwmon", 0.0);
  auto st = std::make_shared<hwt::FakeHsmpState>();
  for (auto &s : st->sockets) s.limit_mw = s.max_mw = 205000;
  st->sockets[1].floor_mw = 150000;  // the platform's cTDP minimum on socket 1
  // The admin left socket 0 low: the compute-bound job's socket must rise while socket 1
  // is lowered, into its firmware floor.
  st->sockets[0].limit_mw = 100000;
  PowerControl pc(with_fake_hsmp(f.config(300.0), st), f.logger());
  double now = 0.0;
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  double worst_excess_w = 0.0;
  double prev_sum_w = 305.0;
  for (int i = 0; i < 10; ++i) {
    ck_assert(f.emu->advance(1.0).ok());
    now += 1.0;
    pc.period(steps, now);
    const double sum_w = (st->sockets[0].limit_mw + st->sockets[1].limit_mw) / 1000.0;
    // A clamp may leave the sum above the grant for a period, never above what was in force
    // (no other socket is raised on the watts the clamped one did not give up).
    ck_assert_msg(sum_w <= std::max(prev_sum_w, 300.0) + 1e-9, "period %d: %f after %f", i, sum_w,
                  prev_sum_w);
    if (i >= 3) worst_excess_w = std::max(worst_excess_w, sum_w - 300.0);
    prev_sum_w = sum_w;
  }
  ck_assert(f.logged("caps: hsmp-ioctl (2 socket(s)"));
  ck_assert(f.logged("W, the firmware holds 150.0 W (clamped to its range)"));
  ck_assert_uint_ge(st->sockets[1].limit_mw, 150000);
  // Socket 0 got what socket 1's floor left of the grant.
  ck_assert_msg(st->sockets[0].limit_mw >= 140000, "socket 0 at %u mW", st->sockets[0].limit_mw);
  ck_assert_msg(worst_excess_w <= 1e-6, "over the grant by %f W once settled", worst_excess_w);
  const std::optional<NodeCapabilities> caps = pc.capabilities();
  ck_assert(caps.has_value());
  ck_assert_int_eq(static_cast<int>(caps->backend),
                   static_cast<int>(proto::CapsBackend::hsmp_ioctl));
  ck_assert_uint_ge(caps->clamps, 1);
  // The range the node reports follows the floor the firmware showed: 51.25 + 150 W.
  ck_assert_double_eq_tol(caps->min_w, 201.25, 1e-6);
  ck_assert(pc.last_report().has_value());
  ck_assert_double_eq_tol(pc.last_report()->min_w, 201.25, 1e-6);
  // Back to the admin's values exactly at stop.
  pc.shutdown();
  ck_assert_uint_eq(st->sockets[0].limit_mw, 100000);
  ck_assert_uint_eq(st->sockets[1].limit_mw, 205000);
}
END_TEST

START_TEST(a_refused_hsmp_write_is_not_tried_again) {
  Fixture f("amd-genoa-nohwmon", 0.0);
  auto st = std::make_shared<hwt::FakeHsmpState>();
  for (auto &s : st->sockets) s.limit_mw = s.max_mw = 205000;
  PowerControl pc(with_fake_hsmp(f.config(300.0), st), f.logger());
  double now = 0.0;
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  // Refused from the first SET on (as a BIOS that locks HSMP limits answers).
  st->fail_with[static_cast<std::uint32_t>(hw::HsmpMsg::set_socket_power_limit)] = EPERM;
  run(f, pc, steps, now, 8);
  // Each socket is tried once, then never again (8 periods).
  int sets[2] = {0, 0};
  for (const hw::HsmpMessage &m : st->sent)
    if (m.msg_id == 5) ++sets[m.sock_ind & 1];
  ck_assert_int_le(sets[0], 1);
  ck_assert_int_le(sets[1], 1);
  ck_assert_int_ge(sets[0] + sets[1], 1);
  ck_assert_int_eq(f.count("this domain is not written again (caps: none)"), sets[0] + sets[1]);
  const std::optional<NodeCapabilities> caps = pc.capabilities();
  ck_assert(caps && caps->backend == proto::CapsBackend::none);
  ck_assert(pgtest::contains(caps->reason, "permission"));
  ck_assert_uint_eq(st->sockets[0].limit_mw, 205000);
  ck_assert_uint_eq(st->sockets[1].limit_mw, 205000);
}
END_TEST

START_TEST(nodes_that_cannot_cap_say_why_once) {
  {
    Fixture f("amd-server");
    auto pc = f.control(150.0);
    double now = 0.0;
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
    ck_assert(pc->monitor_only());
    ck_assert_int_eq(f.count("caps: none (monitor): energy-only powercap zones"), 1);
    ck_assert(f.logged("; counters: emulated; energy: powercap on n1"));
    const std::optional<NodeCapabilities> caps = pc->capabilities();
    ck_assert(caps && caps->backend == proto::CapsBackend::none);
    ck_assert(pgtest::contains(caps->reason, "no HSMP: "));
  }
  {
    // An HSMP limit file root cannot write: permission, in one line.
    Fixture f("amd-genoa", 205.0);
    ck_assert_int_eq(::chmod(f.hsmp_cap_path(0).c_str(), 0444), 0);
    const auto before = f.settings();
    auto pc = f.control(150.0);
    double now = 0.0;
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
    ck_assert(pc->monitor_only());
    ck_assert(f.logged("caps: none (monitor): permission: "));
    ck_assert(f.settings() == before);
    ck_assert(!f.saved_file());
  }
}
END_TEST

int main() {
  Suite *s = suite_create("agent_hsmp");
  TCase *tc = tcase_create("hsmp");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, genoa_caps_move_within_grant_and_come_back_exactly);
  tcase_add_test(tc, genoa_restores_at_stop_after_crash_and_on_missed_epilog);
  tcase_add_test(tc, ioctl_node_reports_the_firmware_clamp_and_never_raises_past_it);
  tcase_add_test(tc, a_refused_hsmp_write_is_not_tried_again);
  tcase_add_test(tc, nodes_that_cannot_cap_say_why_once);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
