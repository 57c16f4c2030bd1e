// A node for the node agent's unit tests: a fake dual-socket Intel powercap tree (packages
// and dram zones) in a temporary folder, the power emulator writing energy into it from the
// caps in force, a state folder, and an emulated-workload file (job 12 compute-bound on
// package 0, job 13 memory-bound on package 1). Include after <check.h>.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "hardware/power_emulator.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "nodeagent/power_control.hpp"
#include "nodeagent/step_registry.hpp"
#include "tests/unit/check_util.hpp"

namespace pgtest {

struct AgentFixture {
  powergrad::hw::testing::TempDir dir;
  std::string sys, state, emulate;
  std::vector<std::string> log;
  std::unique_ptr<powergrad::hw::PowerEmulator> emu;

  std::string machine;
  explicit AgentFixture(std::string machine_kind = "intel-server", double socket_w = 0.0)
      : machine(std::move(machine_kind)) {
    namespace hwt = powergrad::hw::testing;
    auto d = hwt::TempDir::create("pg-agent-test");
    ck_assert(d.ok());
    dir = std::move(d.value());
    sys = dir.path() + "/sys";
    state = dir.path() + "/state";
    emulate = dir.path() + "/emulate";
    ck_assert(hwt::make_dirs(sys).ok());
    ck_assert(hwt::build_machine(sys, machine, socket_w).ok());
    ck_assert_int_eq(::mkdir(state.c_str(), 0700), 0);
    std::ofstream(emulate) << "12 memory_share=0.1,busy_cpus=4,zone=intel-rapl:0\n"
                              "13 memory_share=0.8,busy_cpus=4,zone=intel-rapl:1\n"
                              "* memory_share=0.3,busy_cpus=1\n";
    emu = std::make_unique<powergrad::hw::PowerEmulator>(sys);
    ck_assert(emu->open().ok());
  }

  powergrad::AgentLog logger() {
    return [this](powergrad::AgentLogLevel, const std::string &m) { log.push_back(m); };
  }
  // The agent's configuration on this fixture's tree (node n1, emulated counters).
  powergrad::PowerControlConfig config(
      std::optional<double> grant = 250.0, std::uint64_t incarnation = 0,
      powergrad::NodeManagement management = powergrad::NodeManagement::local) const {
    powergrad::PowerControlConfig c;
    c.management = management;
    c.node_name = "n1";
    c.state_dir = state;
    c.sysfs_root = sys;
    c.counters = "emulated";
    c.emulate_path = emulate;
    c.grant_w = grant;
    c.incarnation = incarnation;
    return c;
  }
  std::unique_ptr<powergrad::PowerControl> control(
      std::optional<double> grant = 250.0, std::uint64_t incarnation = 0,
      powergrad::NodeManagement management = powergrad::NodeManagement::local) {
    return std::make_unique<powergrad::PowerControl>(config(grant, incarnation, management),
                                                     logger());
  }

  std::string read(const std::string &rel) {
    std::ifstream f(sys + "/class/powercap/" + rel);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // Every constraint and enable file of both packages and their dram zones.
  std::map<std::string, std::string> settings() {
    std::map<std::string, std::string> out;
    for (const char *z : {"intel-rapl:0", "intel-rapl:1", "intel-rapl:0/intel-rapl:0:0",
                          "intel-rapl:1/intel-rapl:1:0"}) {
      for (const char *f : {"enabled", "constraint_0_power_limit_uw", "constraint_0_time_window_us",
                            "constraint_1_power_limit_uw", "constraint_1_time_window_us"}) {
        const std::string rel = std::string("intel-rapl/") + z + "/" + f;
        out[rel] = read(rel);
      }
    }
    // AMD (HSMP): the socket limits.
    for (int s = 0; s < 2; ++s) {
      const std::string p = hsmp_cap_path(s);
      if (::access(p.c_str(), F_OK) == 0) out["hsmp" + std::to_string(s)] = slurp(p);
    }
    return out;
  }
  bool hsmp() const { return machine.compare(0, 9, "amd-genoa") == 0; }
  std::string hsmp_cap_path(int socket) const {
    return powergrad::hw::testing::hsmp_hwmon_path(sys, socket) + "/power1_cap";
  }
  static std::string slurp(const std::string &path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  double cap_w(int pkg) {
    if (hsmp()) return std::stod(slurp(hsmp_cap_path(pkg))) * 1e-6;
    return std::stod(read("intel-rapl:" + std::to_string(pkg) + "/constraint_0_power_limit_uw")) *
           1e-6;
  }
  double caps_sum_w() { return cap_w(0) + cap_w(1); }
  bool saved_file() { return ::access((state + "/saved-caps").c_str(), F_OK) == 0; }
  int count(const std::string &part) {
    int n = 0;
    for (const std::string &m : log) n += contains(m, part);
    return n;
  }
  bool logged(const std::string &part) { return count(part) > 0; }
};

inline powergrad::RegisteredStep agent_step(std::uint32_t job, powergrad::JobMode mode, pid_t pid) {
  powergrad::RegisteredStep s;
  s.job_id = job;
  s.step = "0";
  s.mode = mode;
  s.pids = {pid};
  return s;
}

// Runs `n` agent periods of 1 s on fixture f, its emulator advancing energy in between.
inline void agent_periods(AgentFixture &f, powergrad::PowerControl &pc,
                          const std::vector<powergrad::RegisteredStep> &steps, double &now, int n) {
  for (int i = 0; i < n; ++i) {
    ck_assert(f.emu->advance(1.0).ok());
    now += 1.0;
    pc.period(steps, now);
  }
}

}  // namespace pgtest
