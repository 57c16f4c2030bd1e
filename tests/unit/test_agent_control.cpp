// The node agent's control period on a fake dual-socket Intel tree (hardware/testing), with
// emulated counters and the power emulator advancing energy from the caps in force: caps
// move under a grant below what the domains want and stay within it, the admin's settings
// are saved before the first change and come back byte for byte, plain steps change
// nothing, a saved-caps file left by a crash is restored at start, per-step energy adds up.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "hardware/power_emulator.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "nodeagent/power_control.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/agent_fixture.hpp"

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

}  // namespace

// Issue 11: the state files were opened again by path. The state folder swapped for a
// symlink after the control was set up: the admin's settings are still saved in, read from
// and removed from the folder that was checked.
START_TEST(saved_caps_go_through_the_checked_state_folder) {
  Fixture f;
  const auto before = f.settings();
  auto pc = f.control(250.0);
  pc->recover();  // opens and checks the state folder
  const std::string moved = f.dir.path() + "/moved";
  const std::string decoy = f.dir.path() + "/decoy";
  ck_assert_int_eq(::mkdir(decoy.c_str(), 0700), 0);
  ck_assert_int_eq(::rename(f.state.c_str(), moved.c_str()), 0);
  ck_assert_int_eq(::symlink(decoy.c_str(), f.state.c_str()), 0);
  double now = 0.0;
  run(f, *pc, {step(12, JobMode::throughput, 100)}, now, 4);
  ck_assert(f.caps_sum_w() <= 250.0 + 1e-6);
  ck_assert_int_eq(::access((moved + "/saved-caps").c_str(), F_OK), 0);
  ck_assert_int_ne(::access((decoy + "/saved-caps").c_str(), F_OK), 0);
  run(f, *pc, {}, now, 1);
  ck_assert(f.settings() == before);
  ck_assert_int_ne(::access((moved + "/saved-caps").c_str(), F_OK), 0);
}
END_TEST

// The emulate= file decides what root's agent reports: it is read only from folders no one
// else may write, and only when no one else may write it.
START_TEST(an_emulate_file_others_may_write_is_refused) {
  Fixture f;
  ck_assert_int_eq(::chmod(f.emulate.c_str(), 0666), 0);
  auto pc = f.control(250.0);
  double now = 0.0;
  run(f, *pc, {step(12, JobMode::throughput, 100)}, now, 2);
  ck_assert(f.logged("emulate file: " + f.emulate + ": refused: writable by group or others"));
  ck_assert(f.logged("job 12.0: no workload in " + f.emulate));
  ck_assert_int_eq(::chmod(f.emulate.c_str(), 0644), 0);
  ck_assert_int_eq(::chmod(f.dir.path().c_str(), 0777), 0);
  run(f, *pc, {step(12, JobMode::throughput, 100), step(13, JobMode::throughput, 101)}, now, 2);
  ck_assert(f.logged("emulate file: " + f.emulate + ": refused: '" + f.dir.path() +
                     "' is writable by others"));
  ck_assert_int_eq(::chmod(f.dir.path().c_str(), 0700), 0);
}
END_TEST

START_TEST(caps_move_within_grant_and_come_back_exactly) {
  Fixture f;
  const auto before = f.settings();
  auto pc = f.control(250.0);
  double now = 0.0;
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  run(f, *pc, steps, now, 6);
  ck_assert(!pc->monitor_only());
  ck_assert(f.saved_file());
  ck_assert_msg(f.cap_w(0) < 205.0 && f.cap_w(1) < 205.0, "caps %f %f", f.cap_w(0), f.cap_w(1));
  ck_assert_msg(f.cap_w(0) + f.cap_w(1) <= 250.0 + 1e-6, "sum %f", f.cap_w(0) + f.cap_w(1));
  ck_assert(f.logged("counters=emulated"));
  ck_assert(f.logged("saved to " + f.state + "/saved-caps before the first change"));
  // The steps leave: caps come back byte for byte, the file goes.
  run(f, *pc, {}, now, 1);
  ck_assert(!f.saved_file());
  ck_assert(f.settings() == before);
  ck_assert(f.logged("caps restored on n1 (no power-aware step left)"));
  ck_assert(f.logged("job 12.0 on n1: energy_j="));
  // Summaries: energy attributed (each job alone on its package gets all of its energy).
  const std::vector<JobEnergySummary> s = pc->job_summaries();
  ck_assert_uint_eq(s.size(), 2);
  for (const JobEnergySummary &j : s) {
    ck_assert(!j.running);
    ck_assert_msg(j.energy_j > 5 * 50.0, "%s energy %f", j.key.c_str(), j.energy_j);
    ck_assert_double_eq_tol(j.seconds, 5.0, 1e-9);
    ck_assert(j.cap_min_w && j.cap_max_w && j.cap_mean_w());
    ck_assert(*j.cap_min_w < 205.0);
    ck_assert_std_str_eq(j.counters, "emulated");
  }
}
END_TEST

START_TEST(plain_steps_change_nothing) {
  Fixture f;
  const auto before = f.settings();
  auto pc = f.control(150.0);
  double now = 0.0;
  run(f, *pc, {step(20, JobMode::off, 100)}, now, 5);
  ck_assert(f.settings() == before);
  ck_assert(!f.saved_file());
  const std::vector<JobEnergySummary> s = pc->job_summaries();
  ck_assert_uint_eq(s.size(), 1);
  ck_assert(s[0].energy_j > 0.0);  // measured all the same (default workload on intel-rapl:0)
}
END_TEST

START_TEST(stop_restores) {
  Fixture f;
  const auto before = f.settings();
  auto pc = f.control(200.0);
  double now = 0.0;
  run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
  ck_assert(f.saved_file());
  ck_assert(f.settings() != before);
  pc->shutdown();
  ck_assert(!f.saved_file());
  ck_assert(f.settings() == before);
  ck_assert(f.logged("caps restored on n1 (agent stopping)"));
  ck_assert(f.logged("job 12.0 on n1: energy_j="));
}
END_TEST

START_TEST(crash_leftover_is_restored_at_start) {
  Fixture f;
  const auto before = f.settings();
  {
    auto pc = f.control(200.0);
    double now = 0.0;
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
    ck_assert(f.saved_file());
    // No shutdown(): the agent died (kill -9 of slurmd).
  }
  ck_assert(f.settings() != before);
  auto pc = f.control(200.0);
  pc->recover();
  ck_assert(!f.saved_file());
  ck_assert(f.settings() == before);
  ck_assert(f.logged("left by a previous agent (crash recovery)"));
}
END_TEST

// Managed nodes: held within their grant whatever runs (plain jobs, no job), caps never
// raised by an agent restart, the admin's settings back only when the node leaves
// management.
GrantMessage lease_of(double grant_w, std::uint64_t seq, double now) {
  GrantMessage g;
  g.node = "n1";
  g.grant_w = grant_w;
  g.floor_w = 120.0;
  g.lease_s = 1000.0;
  g.expires_at_s = now + 1000.0;
  g.epoch = 1;
  g.seq = seq;
  return g;
}

START_TEST(managed_node_holds_plain_and_idle_within_grant) {
  Fixture f;
  const auto before = f.settings();
  auto pc = f.control(std::nullopt, 0, NodeManagement::controller);
  double now = 0.0;
  // Before any controller grant: not managed, a plain job changes nothing.
  run(f, *pc, {step(20, JobMode::off, 100)}, now, 2);
  ck_assert(!pc->managed());
  ck_assert(f.settings() == before);
  ck_assert_std_str_eq(pc->on_grant(lease_of(250.0, 1, now), now), "");
  ck_assert(pc->managed());
  ck_assert(f.logged("is managed by the cluster controller"));
  ck_assert(::access(managed_marker_path(f.state).c_str(), F_OK) == 0);
  // A plain job (not power-aware) pressing on its caps: held within the grant all the same.
  run(f, *pc, {step(20, JobMode::off, 100)}, now, 6);
  ck_assert(f.saved_file());
  ck_assert_msg(f.caps_sum_w() <= 250.0 + 1e-6, "sum %f", f.caps_sum_w());
  // No job: still held (split evenly, ready for the next job), not given back.
  run(f, *pc, {}, now, 8);
  ck_assert(f.saved_file());
  ck_assert_msg(f.caps_sum_w() <= 250.0 + 1e-6, "sum %f", f.caps_sum_w());
  ck_assert_msg(std::fabs(f.cap_w(0) - f.cap_w(1)) < 1.0, "idle caps %f %f", f.cap_w(0),
                f.cap_w(1));
  ck_assert(!f.logged("caps restored"));
  // A new job after a "missed epilog" restores nothing on a managed node.
  ck_assert(!pc->new_job(21, {step(21, JobMode::off, 101)}));
  // Stopping leaves the caps as they are and the admin's settings on record.
  const auto held = f.settings();
  pc->shutdown();
  ck_assert(f.settings() == held);
  ck_assert(f.saved_file());
  ck_assert(f.logged("caps left as they are"));
  ck_assert(held != before);
}
END_TEST

START_TEST(managed_agent_restart_never_raises_then_release_restores) {
  Fixture f;
  const auto before = f.settings();
  double now = 0.0;
  {
    auto pc = f.control(std::nullopt, 1, NodeManagement::controller);
    run(f, *pc, {}, now, 1);
    ck_assert_std_str_eq(pc->on_grant(lease_of(200.0, 1, now), now), "");
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 6);
    ck_assert_msg(f.caps_sum_w() <= 200.0 + 1e-6, "sum %f", f.caps_sum_w());
    // No shutdown(): slurmd was killed; its job runs on.
  }
  const double held_w = f.caps_sum_w();
  // A new agent, no grant yet, a power-aware job that wants every watt: the caps in force
  // are the most it may use.
  auto pc = f.control(std::nullopt, 2, NodeManagement::controller);
  pc->recover();
  ck_assert(pc->managed());  // from its marker: no grant yet
  ck_assert(f.saved_file());
  ck_assert(f.logged("stay on record in " + f.state + "/saved-caps"));
  for (int i = 0; i < 6; ++i) {
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 1);
    ck_assert_msg(f.caps_sum_w() <= held_w + 1e-6, "sum %f above %f", f.caps_sum_w(), held_w);
  }
  ck_assert(f.logged("held at"));
  // The controller says the node is in no group: the admin's settings come back exactly.
  pc->leave_management("test: in no group");
  ck_assert(!pc->managed());
  ck_assert(!f.saved_file());
  ck_assert(::access(managed_marker_path(f.state).c_str(), F_OK) != 0);
  ck_assert(f.settings() == before);
  ck_assert(f.logged("leaves PowerGrad's management (test: in no group)"));
  // Released, it runs as a local node: plain jobs change nothing.
  run(f, *pc, {step(20, JobMode::off, 101)}, now, 3);
  ck_assert(f.settings() == before);
  // A grant makes it managed again.
  ck_assert_std_str_eq(pc->on_grant(lease_of(200.0, 2, now), now), "");
  ck_assert(pc->managed());
  run(f, *pc, {step(20, JobMode::off, 101)}, now, 3);
  ck_assert_msg(f.caps_sum_w() <= 200.0 + 1e-6, "sum %f", f.caps_sum_w());
  ck_assert(f.saved_file());
}
END_TEST

// A node rebooted while managed (a state_dir that survives reboots): the firmware put its
// caps back at the maximum, above the last grant the controller counts. The marker's boot
// id says so, and the agent holds every domain at its floor until the controller's first
// grant; a restart within the same boot keeps the caps in force (above).
START_TEST(a_node_rebooted_while_managed_starts_at_its_floor) {
  Fixture f;
  const std::string proc = f.dir.path() + "/proc";
  ck_assert(hwt::make_dirs(proc + "/sys/kernel/random").ok());
  auto boot = [&](const std::string &id) {
    ck_assert(hwt::write_text(proc + "/sys/kernel/random/boot_id", id + "\n").ok());
  };
  auto agent = [&](std::uint64_t incarnation) {
    PowerControlConfig c = f.config(std::nullopt, incarnation, NodeManagement::controller);
    c.procfs_root = proc;
    return std::make_unique<PowerControl>(c, f.logger());
  };
  const auto firmware = f.settings();  // the caps at power-on
  const double max_w = f.caps_sum_w();
  boot("0f5c1d7e-1111-4a2b-9c3d-aaaaaaaaaaaa");
  double now = 0.0;
  {
    auto pc = agent(1);
    pc->recover();
    run(f, *pc, {}, now, 1);
    ck_assert_std_str_eq(pc->on_grant(lease_of(200.0, 1, now), now), "");
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 4);
    ck_assert_msg(f.caps_sum_w() <= 200.0 + 1e-6, "sum %f", f.caps_sum_w());
  }
  const std::string marker = hwt::read_text(managed_marker_path(f.state)).value();
  ck_assert(pgtest::contains(marker, "boot_id 0f5c1d7e-1111-4a2b-9c3d-aaaaaaaaaaaa\n"));
  // Same boot, slurmd restarted: the caps in force are kept (not lowered to the floor).
  const double held_w = f.caps_sum_w();
  {
    auto pc = agent(2);
    pc->recover();
    run(f, *pc, {step(12, JobMode::latency, 100)}, now, 2);
    ck_assert_msg(f.caps_sum_w() > held_w - 1.0, "kept %f of %f", f.caps_sum_w(), held_w);
    ck_assert(!f.logged("rebooted while managed"));
  }
  // Reboot: a new boot id, the firmware's caps back in force.
  boot("0f5c1d7e-2222-4a2b-9c3d-bbbbbbbbbbbb");
  for (const auto &[rel, value] : firmware)
    if (rel.compare(0, 11, "intel-rapl/") == 0)
      ck_assert(hwt::write_text(f.sys + "/class/powercap/" + rel, value).ok());
  ck_assert_double_eq_tol(f.caps_sum_w(), max_w, 1e-6);
  auto pc = agent(3);
  pc->recover();
  ck_assert(pc->managed());
  ck_assert(
      f.logged("n1 was rebooted while managed (boot id 0f5c1d7e-1111-4a2b-9c3d-aaaaaaaaaaaa, "
               "now 0f5c1d7e-2222-4a2b-9c3d-bbbbbbbbbbbb)"));
  ck_assert(pgtest::contains(hwt::read_text(managed_marker_path(f.state)).value(),
                             "boot_id 0f5c1d7e-2222-4a2b-9c3d-bbbbbbbbbbbb\n"));
  // From its first period (the controller's step needs two).
  run(f, *pc, {step(12, JobMode::latency, 100)}, now, 1);
  const double floor_w = f.caps_sum_w();
  ck_assert(f.logged("caps on n1 lowered to the domains' floors"));
  ck_assert_msg(floor_w < held_w - 10.0, "at the floor: %f (held %f before)", floor_w, held_w);
  run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
  ck_assert_double_le(f.caps_sum_w(), floor_w + 1e-6);
  // The controller's grant lifts it as on any managed node.
  ck_assert_std_str_eq(pc->on_grant(lease_of(200.0, 2, now), now), "");
  run(f, *pc, {step(12, JobMode::latency, 100)}, now, 4);
  ck_assert_msg(f.caps_sum_w() > floor_w + 10.0 && f.caps_sum_w() <= 200.0 + 1e-6, "sum %f",
                f.caps_sum_w());
  // The admin's settings saved before the reboot are still those to give back.
  pc->leave_management("test: in no group");
  ck_assert(f.settings() == firmware);
}
END_TEST

START_TEST(damaged_leftover_blocks_control) {
  Fixture f;
  std::ofstream(f.state + "/saved-caps") << "format=powergrad-hw-snapshot/1\ngarbage\n";
  ::chmod((f.state + "/saved-caps").c_str(), 0600);
  const auto before = f.settings();
  auto pc = f.control(200.0);
  pc->recover();
  double now = 0.0;
  run(f, *pc, {step(12, JobMode::latency, 100)}, now, 3);
  ck_assert(f.settings() == before);  // never overwrite what may be the admin's only record
  ck_assert(f.saved_file());
  ck_assert(f.logged("cannot read the saved caps"));
}
END_TEST

START_TEST(no_powercap_is_monitor_mode) {
  auto d = hwt::TempDir::create("pg-agent-nopc");
  ck_assert(d.ok());
  const std::string sys = d.value().path() + "/sys";
  ck_assert(hwt::make_dirs(sys).ok());
  ck_assert(hwt::build_machine(sys, "no-powercap").ok());
  std::vector<std::string> log;
  PowerControlConfig c;
  c.node_name = "n9";
  c.state_dir = d.value().path();
  c.sysfs_root = sys;
  c.counters = "software";
  PowerControl pc(c, [&](AgentLogLevel, const std::string &m) { log.push_back(m); });
  RegisteredStep s = step(5, JobMode::latency, ::getpid());
  pc.period({s}, 1.0);
  pc.period({s}, 2.0);
  pc.period({}, 3.0);
  ck_assert(pc.monitor_only());
  int monitor_lines = 0, counter_lines = 0;
  for (const std::string &m : log) {
    monitor_lines += pgtest::contains(m, "monitor mode, caps are never touched");
    counter_lines += pgtest::contains(m, "counters=");
  }
  ck_assert_int_eq(monitor_lines, 1);  // logged once
  ck_assert_int_ge(counter_lines, 1);
  ck_assert_int_eq(::access((d.value().path() + "/saved-caps").c_str(), F_OK), -1);
}
END_TEST

// Per-core frequency limits: two steered jobs share package 0 (job 12 compute-bound on CPUs
// 0-1, job 13 memory-bound on CPUs 2-3, from their tasks' Cpus_allowed_list): job 13's CPUs
// get a lower scaling_max_freq, never below the floor nor above the admin's own value; the
// admin's values are saved with the caps and come back exactly when the jobs end.
struct FreqFixture : Fixture {
  std::string proc;
  FreqFixture() {
    proc = dir.path() + "/proc";
    std::ofstream(emulate) << "12 memory_share=0.05,busy_cpus=2,zone=intel-rapl:0\n"
                              "13 memory_share=0.9,busy_cpus=2,zone=intel-rapl:0\n"
                              "20 memory_share=0.3,busy_cpus=1,zone=intel-rapl:0\n";
    task(100, "0-1");
    task(101, "2-3");
  }
  void task(pid_t pid, const std::string &cpus) {
    const std::string d = proc + "/" + std::to_string(pid);
    ck_assert(hwt::make_dirs(d).ok());
    std::ofstream(d + "/status") << "Name:\tpython3\nState:\tR (running)\nCpus_allowed:\tf\n"
                                    "Cpus_allowed_list:\t" << cpus << "\nMems_allowed_list:\t0\n";
  }
  std::unique_ptr<PowerControl> control(double grant) {
    PowerControlConfig c;
    c.node_name = "n1";
    c.state_dir = state;
    c.sysfs_root = sys;
    c.procfs_root = proc;
    c.counters = "emulated";
    c.emulate_path = emulate;
    c.grant_w = grant;
    return std::make_unique<PowerControl>(
        c, [this](AgentLogLevel, const std::string &m) { log.push_back(m); });
  }
  std::string freq_file(int cpu) { return hwt::cpufreq_path(sys, cpu) + "/scaling_max_freq"; }
  std::uint64_t freq(int cpu) { return std::stoull(hwt::read_text(freq_file(cpu)).value()); }
  std::map<int, std::string> freqs() {
    std::map<int, std::string> out;
    for (int c = 0; c < 8; ++c) out[c] = hwt::read_text(freq_file(c)).value();
    return out;
  }
};

START_TEST(shared_package_frequency_limits_and_exact_restore) {
  FreqFixture f;
  // The admin's own limits: cpu2 at 3.0 GHz, cpu3's floor at 1.2 GHz.
  ck_assert(hwt::write_text(f.freq_file(2), "3000000\n").ok());
  ck_assert(hwt::write_text(hwt::cpufreq_path(f.sys, 3) + "/scaling_min_freq", "1200000\n").ok());
  const auto caps_before = f.settings();
  const auto freq_before = f.freqs();
  auto pc = f.control(250.0);
  double now = 0.0;
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  std::uint64_t lowest2 = 3000000, lowest3 = 3400000;
  for (int i = 0; i < 15; ++i) {
    run(f, *pc, steps, now, 1);
    lowest2 = std::min(lowest2, f.freq(2));
    lowest3 = std::min(lowest3, f.freq(3));
    ck_assert(f.freq(2) <= 3000000 && f.freq(3) <= 3400000);
    ck_assert(f.freq(2) >= 800000 && f.freq(3) >= 1200000);
  }
  // The memory-bound job's CPUs are held lower; the compute-bound job's and package 1's are
  // untouched.
  ck_assert_msg(f.freq(2) < 3000000 && f.freq(3) < 3400000, "cpu2 %lu cpu3 %lu",
                (unsigned long)f.freq(2), (unsigned long)f.freq(3));
  ck_assert_msg(f.freq(3) > 1200000, "damped, not at the floor at once: %lu",
                (unsigned long)f.freq(3));
  for (int c : {0, 1, 4, 5, 6, 7}) ck_assert_std_str_eq(f.freqs()[c], freq_before.at(c));
  ck_assert_uint_eq(pc->freq_limits().size(), 2);
  // Saved with the caps, the admin's values.
  auto saved = hwt::read_text(f.state + "/saved-caps");
  ck_assert(saved.ok());
  ck_assert(pgtest::contains(saved.value(), "cpufreq.cpu2.scaling_max_freq_khz=3000000"));
  ck_assert(pgtest::contains(saved.value(), "cpufreq.cpu3.scaling_max_freq_khz=3400000"));

  // A plain job that may run on cpu3 releases it at once; cpu2 stays limited.
  f.task(102, "3");
  std::vector<RegisteredStep> with_plain = steps;
  with_plain.push_back(step(20, JobMode::off, 102));
  run(f, *pc, with_plain, now, 1);
  ck_assert_std_str_eq(f.freqs()[3], freq_before.at(3));
  ck_assert(f.freq(2) < 3000000);

  // The memory-bound job leaves: nothing left to separate, cpu2 goes back exactly.
  run(f, *pc, {steps[0]}, now, 1);
  ck_assert(f.freqs() == freq_before);
  ck_assert(pc->freq_limits().empty());
  ck_assert(f.saved_file());  // the caps are still in use

  // Limits again, then every job ends: caps and frequencies come back exactly.
  run(f, *pc, steps, now, 6);
  ck_assert(f.freq(2) < 3000000);
  run(f, *pc, {}, now, 1);
  ck_assert(!f.saved_file());
  ck_assert(f.freqs() == freq_before);
  ck_assert(f.settings() == caps_before);
}
END_TEST

START_TEST(frequency_limits_restored_at_stop_crash_and_missed_epilog) {
  FreqFixture f;
  const auto caps_before = f.settings();
  const auto freq_before = f.freqs();
  const std::vector<RegisteredStep> steps = {step(12, JobMode::latency, 100),
                                             step(13, JobMode::throughput, 101)};
  double now = 0.0;
  auto limited = [&] { return f.freqs() != freq_before; };
  // Agent stop.
  {
    auto pc = f.control(250.0);
    run(f, *pc, steps, now, 12);
    ck_assert(limited());
    pc->shutdown();
    ck_assert(f.freqs() == freq_before);
    ck_assert(f.settings() == caps_before);
  }
  // Crash (no shutdown), then agent start.
  {
    auto pc = f.control(250.0);
    run(f, *pc, steps, now, 12);
    ck_assert(limited());
  }
  {
    auto pc = f.control(250.0);
    pc->recover();
    ck_assert(!f.saved_file());
    ck_assert(f.freqs() == freq_before);
    ck_assert(f.settings() == caps_before);
  }
  // Missed epilog: a new job arrives with no power-aware job left.
  {
    auto pc = f.control(250.0);
    run(f, *pc, steps, now, 12);
    ck_assert(limited());
    ck_assert(pc->new_job(30, {step(30, JobMode::off, 103)}));
    ck_assert(f.freqs() == freq_before);
    ck_assert(f.settings() == caps_before);
  }
}
END_TEST

int main() {
  Suite *s = suite_create("agent_control");
  TCase *tc = tcase_create("control");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, caps_move_within_grant_and_come_back_exactly);
  tcase_add_test(tc, saved_caps_go_through_the_checked_state_folder);
  tcase_add_test(tc, an_emulate_file_others_may_write_is_refused);
  tcase_add_test(tc, plain_steps_change_nothing);
  tcase_add_test(tc, managed_node_holds_plain_and_idle_within_grant);
  tcase_add_test(tc, managed_agent_restart_never_raises_then_release_restores);
  tcase_add_test(tc, a_node_rebooted_while_managed_starts_at_its_floor);
  tcase_add_test(tc, stop_restores);
  tcase_add_test(tc, crash_leftover_is_restored_at_start);
  tcase_add_test(tc, damaged_leftover_blocks_control);
  tcase_add_test(tc, no_powercap_is_monitor_mode);
  tcase_add_test(tc, shared_package_frequency_limits_and_exact_restore);
  tcase_add_test(tc, frequency_limits_restored_at_stop_crash_and_missed_epilog);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
