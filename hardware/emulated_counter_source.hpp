// An emulated counter source: per-job counter values derived from a workload model and the
// caps in force, so the node agent's closed loop can run on machines without hardware
// counters (this one). It is selected only by explicit configuration and says so
// ("counters=emulated"): its numbers are made up, never measured.
//
// Model (shared/notes/evaluation-model.md):
// - Package frequency under a cap: the cubic power model P(f) = P0 + a * A * f^3 of
//   libgradient's PowerModel, solved for f at the cap, where A is the package's activity:
//   the sum over its emulated jobs of (busy cpus / cores) * alpha. No cap: f_max.
//   A job's cores run at min(package frequency, their cpufreq scaling_max_freq).
// - Service time T(f) = Tc * f0 / f + Tm with memory share m = Tm / T(f0), f0 = f_max.
//   Memory-stall share of cycles at f: s(f) = m / ((1 - m) * f0 / f + m).
// - Per interval dt: cycles = busy * f * dt, stall_cycles = s(f) * cycles, instructions =
//   ipc * (cycles - stall_cycles), ref_cycles = busy * f_ref * dt, task_clock = busy * dt,
//   llc_misses = stall_cycles / stall_cycles_per_llc_miss.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "hardware/counter_source.hpp"
#include "hardware/cpufreq.hpp"
#include "hardware/powercap.hpp"
#include "hardware/socket_power.hpp"
#include "libgradient/types.hpp"

namespace powergrad::hw {

struct EmulatedWorkload {
  double memory_share = 0.3;  // m at f_max, in [0, 1)
  double activity = 1.0;      // alpha, in (0, 1]: memory-bound code switches less
  double busy_cpus = 1.0;     // cores the job keeps busy, > 0
  double ipc = 2.0;           // instructions per cycle when not stalled, > 0
  double stall_cycles_per_llc_miss = 200.0;
  std::string zone = "intel-rapl:0";  // the package zone whose cap applies

  std::string check() const;  // empty when usable, else why not
};

// "memory_share=0.7,activity=0.8,busy_cpus=2,ipc=1.5,zone=intel-rapl:1" (also ';' or
// whitespace between items). Keys: memory_share, activity, busy_cpus, ipc,
// stall_cycles_per_llc_miss, zone. Empty: defaults. Unknown keys and bad values are errors
// naming them.
Result<EmulatedWorkload> parse_emulated_workload(std::string_view spec);
std::string format_emulated_workload(const EmulatedWorkload &w);

// What the emulator reads from the (fake) hardware at each sample.
class EmulatedHardwareView {
 public:
  virtual ~EmulatedHardwareView() = default;
  // The long-term limit in force on a package zone in W; nullopt when none is (zone
  // disabled, missing, unreadable): the package then runs at f_max.
  virtual std::optional<double> package_cap_w(const std::string &zone) = 0;
  // The CPU's scaling_max_freq in Hz; nullopt when none.
  virtual std::optional<double> core_limit_hz(int cpu) = 0;
};

// Caps set by hand (unit tests).
class FixedHardwareView final : public EmulatedHardwareView {
 public:
  void set_cap_w(const std::string &zone, std::optional<double> cap_w);
  void set_core_limit_hz(int cpu, std::optional<double> hz);
  std::optional<double> package_cap_w(const std::string &zone) override;
  std::optional<double> core_limit_hz(int cpu) override;

 private:
  std::map<std::string, double> caps_w_;
  std::map<int, double> limits_hz_;
};

// Caps read from a powercap/cpufreq tree (a fake node's tree in the end-to-end tests), with
// the real classes: what the agent writes is what the emulated jobs feel.
class SysfsHardwareView final : public EmulatedHardwareView {
 public:
  explicit SysfsHardwareView(std::string sysfs_root);
  std::optional<double> package_cap_w(const std::string &zone) override;
  std::optional<double> core_limit_hz(int cpu) override;

 private:
  void discover_if_needed();
  PowercapTree powercap_;
  SocketPower sockets_;  // AMD: the HSMP limit of the zone's socket
  CpufreqLimits cpufreq_;
  bool powercap_ok_ = false;
  bool sockets_ok_ = false;
  bool cpufreq_ok_ = false;
  int attempts_ = 0;
};

struct EmulatedSourceConfig {
  // Socket power model (alpha is ignored: it comes from the jobs). Default: the note's
  // worked example, P0 60 W, TDP 205 W at 3.4 GHz.
  PowerModel socket{60.0, 205.0, 3.4e9, 1.0};
  int cores_per_zone = 16;
  // Lowest frequency RAPL drives the cores to (below it the hardware modulates the clock;
  // modelled as staying here).
  double min_hz = 0.8e9;
  double ref_hz = 0.0;  // reference (TSC) clock; 0: socket.f_max_hz
  double context_switches_per_cpu_s = 100.0;
  // Multiplicative Gaussian noise on every count (0: exact); deterministic from seed.
  double noise_fraction = 0.0;
  std::uint64_t seed = 1;

  std::string check() const;
};

class EmulatedCounterSource final : public CounterSource {
 public:
  // Refuses an unusable configuration or a null view.
  static Result<std::unique_ptr<EmulatedCounterSource>> create(
      EmulatedSourceConfig config, std::shared_ptr<EmulatedHardwareView> view);

  CounterMode mode() const override { return CounterMode::emulated; }
  std::string describe() const override;

  // target.emulation holds the job's workload (parse_emulated_workload); target.cpus, when
  // given, are the cores whose cpufreq limits apply. PIDs and cgroup are ignored.
  Status add_job(CounterJobId job, const CounterTarget &target, double now_s) override;
  Status add_tasks(CounterJobId job, const std::vector<pid_t> &pids) override;
  void remove_job(CounterJobId job) override;
  bool has_job(CounterJobId job) const override;
  Result<CounterReading> sample(CounterJobId job, double now_s) override;

  // The model's view of a job now (for tests and reports): core frequency, and speed
  // relative to running uncapped at f_max, T(f_max) / T(f).
  std::optional<double> frequency_hz(CounterJobId job);
  std::optional<double> relative_speed(CounterJobId job);
  const EmulatedSourceConfig &config() const { return config_; }

 private:
  struct Job {
    EmulatedWorkload workload;
    std::vector<int> cpus;
    double last_s = 0.0;
  };
  EmulatedCounterSource(EmulatedSourceConfig config, std::shared_ptr<EmulatedHardwareView> view);
  double job_frequency_hz(const Job &job);
  double noisy(double value);

  EmulatedSourceConfig config_;
  std::shared_ptr<EmulatedHardwareView> view_;
  std::map<CounterJobId, Job> jobs_;
  std::mt19937_64 rng_;
};

}  // namespace powergrad::hw
