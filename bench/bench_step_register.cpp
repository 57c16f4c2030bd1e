// What the node agent adds to a task's launch: the round trip of a task's registration
// (slurmstepd -> agent -> answer) on the step channel, while the agent's control loop runs
// at a 0.1 s period on an emulated dual-socket node with 32 busy power-aware jobs (counters,
// NodeController, caps written every period).
//
// One "slurmstepd" registers 64 tasks one after another (as slurmstepd does, each launch
// waiting for its answer), then 4 at once do the same (several steps starting on a node).
// Each registration is a real send_step_event() to a real NodeAgent in this process, timed
// with CLOCK_MONOTONIC around the call; the tasks are real child processes. Rounds repeat
// with new job ids; figures are p50/p99/max over all registrations and the sum per 64 tasks.
// The goal (issue 11): under 5 ms at p99 with 64 tasks.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hardware/power_emulator.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "nodeagent/agent.hpp"
#include "nodeagent/step_channel.hpp"

using namespace powergrad;
namespace hwt = powergrad::hw::testing;

namespace {

double mono_s() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

StepEvent event(StepOp op, std::uint32_t job, pid_t pid) {
  StepEvent e;
  e.op = op;
  e.job_id = job;
  e.step = "0";
  e.pid = pid;
  if (op == StepOp::task_start) e.mode = JobMode::latency;
  return e;
}

}  // namespace

int main() {
  constexpr int kTasks = 64, kRounds = 20, kParallel = 4, kBusyJobs = 32;
  auto dir = hwt::TempDir::create("pg-bench-register");
  if (!dir.ok()) return 1;
  const std::string sys = dir.value().path() + "/sys";
  const std::string emulate = dir.value().path() + "/emulate";
  if (!hwt::make_dirs(sys).ok() || !hwt::build_machine(sys, "intel-server").ok()) return 1;
  {
    std::ofstream f(emulate);
    f << "* memory_share=0.3,busy_cpus=1\n";
  }
  // Children that stand for the tasks (alive for the registry's checks).
  std::vector<pid_t> tasks;
  for (int i = 0; i < kTasks * kParallel; ++i) {
    const pid_t p = ::fork();
    if (p == 0) {
      ::pause();
      ::_exit(0);
    }
    tasks.push_back(p);
  }
  hw::PowerEmulator emu(sys);
  if (!emu.open().ok()) return 1;
  std::atomic<bool> stop{false};
  std::thread emulator([&] {
    while (!stop) {
      (void)emu.advance(0.05);
      ::usleep(50000);
    }
  });

  AgentConfig ac;
  ac.node_name = "bench";
  ac.state_dir = dir.value().path() + "/state";
  ac.period_s = 0.1;
  PowerControlConfig pc;
  pc.sysfs_root = sys;
  pc.counters = "emulated";
  pc.emulate_path = emulate;
  pc.grant_w = 250.0;
  NodeAgent agent(
      ac, [](AgentLogLevel, const std::string &) {}, pc);
  if (!agent.start().empty()) return 1;
  const std::string sock = step_socket_path(ac.state_dir);
  // Busy power-aware jobs the control loop works on every period.
  for (int j = 0; j < kBusyJobs; ++j)
    (void)send_step_event(sock, event(StepOp::task_start, 9000 + j, tasks[j]), 2000);

  std::vector<double> serial, parallel, serial_sum;
  int failures = 0;
  std::uint32_t job = 100;
  for (int r = 0; r < kRounds; ++r) {
    // One stepd, 64 tasks one after another.
    const std::uint32_t j = job++;
    const double t0 = mono_s();
    for (int t = 0; t < kTasks; ++t) {
      const double a = mono_s();
      if (!send_step_event(sock, event(StepOp::task_start, j, tasks[t]), 200).empty()) failures++;
      serial.push_back(mono_s() - a);
    }
    serial_sum.push_back(mono_s() - t0);
    (void)send_step_event(sock, event(StepOp::step_end, j, 0), 200);
    // kParallel stepds at once.
    std::vector<std::thread> stepds;
    std::vector<std::vector<double>> lat(kParallel);
    std::atomic<int> par_failures{0};
    const std::uint32_t base = job;
    job += kParallel;
    for (int s = 0; s < kParallel; ++s) {
      stepds.emplace_back([&, s] {
        for (int t = 0; t < kTasks; ++t) {
          const double a = mono_s();
          if (!send_step_event(sock, event(StepOp::task_start, base + s, tasks[s * kTasks + t]),
                               200)
                   .empty())
            par_failures++;
          lat[s].push_back(mono_s() - a);
        }
      });
    }
    for (auto &t : stepds) t.join();
    failures += par_failures;
    for (auto &l : lat) parallel.insert(parallel.end(), l.begin(), l.end());
    for (int s = 0; s < kParallel; ++s)
      (void)send_step_event(sock, event(StepOp::step_end, base + s, 0), 200);
  }
  const unsigned long periods = agent.periods();
  agent.stop();
  stop = true;
  emulator.join();
  for (pid_t p : tasks) ::kill(p, SIGKILL);
  for (pid_t p : tasks) ::waitpid(p, nullptr, 0);

  std::printf(
      "# task registration round trip (send_step_event), %d rounds; the agent ran %lu\n"
      "# control periods of 0.1 s meanwhile with %d power-aware jobs on an emulated node\n",
      kRounds, periods, kBusyJobs);
  std::printf(
      "# one stepd, %d tasks in a row: p50 %.3f ms, p99 %.3f ms, max %.3f ms; whole step"
      " p50 %.2f ms\n",
      kTasks, pct(serial, 0.5) * 1e3, pct(serial, 0.99) * 1e3, pct(serial, 1.0) * 1e3,
      pct(serial_sum, 0.5) * 1e3);
  std::printf("# %d stepds at once, %d tasks each: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
              kParallel, kTasks, pct(parallel, 0.5) * 1e3, pct(parallel, 0.99) * 1e3,
              pct(parallel, 1.0) * 1e3);
  std::printf("bench: register_serial_p99_ms %.3f ms\n", pct(serial, 0.99) * 1e3);
  std::printf("bench: register_parallel_p99_ms %.3f ms\n", pct(parallel, 0.99) * 1e3);
  std::printf("bench: register_64_tasks_total_p50_ms %.2f ms\n", pct(serial_sum, 0.5) * 1e3);
  std::printf("bench: register_failures %d count\n", failures);
  return failures == 0 ? 0 : 1;
}
