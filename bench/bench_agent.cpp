// The node agent's cost per control period: CPU time of one period (reaping dead steps by
// their PIDs, energy of the power domains, every job's counters, NodeController, caps
// written, energy attributed) with 1, 8 and 32 registered power-aware jobs, as a percentage
// of one core at the default 1 s period.
//
// Hardware is emulated: a fake dual-socket Intel powercap tree in a temporary folder, its
// energy advanced by the power emulator between periods (not timed), and emulated counters
// (this machine has no hardware counters). The time is CLOCK_THREAD_CPUTIME_ID around each
// period on this thread (the agent's work is all on its own thread), summed over the timed
// periods after a warm-up; the figure is the mean CPU seconds per period / 1 s x 100.
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "hardware/power_emulator.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "nodeagent/agent.hpp"
#include "nodeagent/power_control.hpp"

using namespace powergrad;
namespace hwt = powergrad::hw::testing;

namespace {

double thread_cpu_s() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Returns the mean CPU seconds of one period, or a negative number on failure.
double measure(int jobs, int warmup, int periods) {
  auto dir = hwt::TempDir::create("pg-bench-agent");
  if (!dir.ok()) return -1.0;
  const std::string sys = dir.value().path() + "/sys";
  const std::string emulate = dir.value().path() + "/emulate";
  if (!hwt::make_dirs(sys).ok() || !hwt::build_machine(sys, "intel-server").ok()) return -1.0;
  {
    std::ofstream f(emulate);
    for (int j = 0; j < jobs; ++j) {
      // Half the jobs on each package, from compute- to memory-bound.
      f << 100 + j << " memory_share=" << 0.1 + 0.7 * (j % 8) / 7.0
        << ",busy_cpus=1,zone=intel-rapl:" << (j % 2) << "\n";
    }
  }
  hw::PowerEmulator emu(sys);
  if (!emu.open().ok()) return -1.0;
  PowerControlConfig c;
  c.node_name = "bench";
  c.state_dir = dir.value().path();
  c.sysfs_root = sys;
  c.counters = "emulated";
  c.emulate_path = emulate;
  c.grant_w = 250.0;
  PowerControl pc(c, [](AgentLogLevel, const std::string &) {});
  std::vector<RegisteredStep> steps;
  for (int j = 0; j < jobs; ++j) {
    RegisteredStep s;
    s.job_id = static_cast<std::uint32_t>(100 + j);
    s.step = "0";
    s.mode = JobMode::throughput;
    s.pids = {::getpid()};  // alive: the reap reads /proc for it as for any task
    steps.push_back(s);
  }
  double cpu_s = 0.0;
  double now = 0.0;
  for (int i = 0; i < warmup + periods; ++i) {
    if (!emu.advance(1.0).ok()) return -1.0;
    now += 1.0;
    const double t0 = thread_cpu_s();
    for (const RegisteredStep &s : steps) {
      for (pid_t p : s.pids) (void)pid_alive("/proc", p);
    }
    pc.period(steps, now);
    const double t1 = thread_cpu_s();
    if (i >= warmup) cpu_s += t1 - t0;
  }
  pc.shutdown();
  return cpu_s / periods;
}

}  // namespace

int main() {
  const int warmup = 20, periods = 300;
  std::printf(
      "# agent overhead: CPU time (CLOCK_THREAD_CPUTIME_ID) of one control period, mean of %d\n"
      "# periods after %d warm-up ones, on a fake dual-socket powercap tree with the power\n"
      "# emulator (not timed) and emulated counters; %% of one core at the 1 s period\n",
      periods, warmup);
  for (int jobs : {1, 8, 32}) {
    const double s = measure(jobs, warmup, periods);
    if (s < 0.0) {
      std::fprintf(stderr, "bench_agent: cannot set up the emulated node\n");
      return 1;
    }
    std::printf("# %d jobs: %.1f us per period\n", jobs, s * 1e6);
    std::printf("bench: agent_overhead_%djobs_pct %.4f %%\n", jobs, s / 1.0 * 100.0);
  }
  return 0;
}
