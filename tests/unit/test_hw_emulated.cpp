// The emulated counter source: workload specs, counts from the model T(f) = Tc f0/f + Tm and
// the caps in force (cap -> frequency through libgradient's PowerModel), and caps read from
// a fake powercap/cpufreq tree written by the real classes.
#include <check.h>

#include <cerrno>
#include <cmath>
#include <memory>
#include <string>

#include "hardware/cpufreq.hpp"
#include "hardware/emulated_counter_source.hpp"
#include "hardware/powercap.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad;
using namespace powergrad::hw;
namespace fx = powergrad::hw::testing;

namespace {

struct Rig {
  std::shared_ptr<FixedHardwareView> view = std::make_shared<FixedHardwareView>();
  std::unique_ptr<EmulatedCounterSource> src;
};

Rig rig(EmulatedSourceConfig config = {}) {
  Rig r;
  auto made = EmulatedCounterSource::create(config, r.view);
  ck_assert_msg(made.ok(), "%s", made.ok() ? "" : made.message().c_str());
  r.src = std::move(made).value();
  return r;
}

CounterTarget job(const std::string &spec, std::vector<int> cpus = {}) {
  CounterTarget t;
  t.pids = {12345};
  t.emulation = spec;
  t.cpus = std::move(cpus);
  return t;
}

double stall_share(double m, double f0, double f) { return m / ((1.0 - m) * f0 / f + m); }

}  // namespace

START_TEST(workload_specs) {
  Result<EmulatedWorkload> d = parse_emulated_workload("");
  ck_assert_hw_ok(d);
  ck_assert_double_eq(d->memory_share, 0.3);
  ck_assert_std_str_eq(d->zone, "intel-rapl:0");
  Result<EmulatedWorkload> w = parse_emulated_workload(
      "memory_share=0.7, activity=0.8;busy_cpus=2 ipc=1.5,zone=intel-rapl:1");
  ck_assert_hw_ok(w);
  ck_assert_double_eq(w->memory_share, 0.7);
  ck_assert_double_eq(w->activity, 0.8);
  ck_assert_double_eq(w->busy_cpus, 2.0);
  ck_assert_double_eq(w->ipc, 1.5);
  ck_assert_std_str_eq(w->zone, "intel-rapl:1");
  ck_assert_hw_ok(parse_emulated_workload(format_emulated_workload(w.value())));

  ck_assert_contains(parse_emulated_workload("memory=0.5").message(), "unknown key 'memory'");
  ck_assert_contains(parse_emulated_workload("memory_share=lots").message(), "must be a number");
  ck_assert_contains(parse_emulated_workload("memory_share=1.5").message(), "memory_share");
  ck_assert_contains(parse_emulated_workload("activity=0").message(), "activity");
  ck_assert_contains(parse_emulated_workload("busy_cpus=-1").message(), "busy_cpus");
  ck_assert_contains(parse_emulated_workload("memory_share").message(), "key=value");
  ck_assert_contains(parse_emulated_workload("zone=../x").message(), "path traversal");
  ck_assert_contains(parse_emulated_workload("ipc=nan").message(), "ipc");
}
END_TEST

START_TEST(source_says_it_is_emulated) {
  Rig r = rig();
  ck_assert(r.src->mode() == CounterMode::emulated);
  ck_assert_contains(r.src->describe(), "counters=emulated");
  ck_assert_contains(r.src->describe(), "not measured");
  EmulatedSourceConfig bad;
  bad.cores_per_zone = 0;
  ck_assert_hw_errno(EmulatedCounterSource::create(bad, std::make_shared<FixedHardwareView>()),
                     EINVAL);
  bad = EmulatedSourceConfig{};
  bad.socket.tdp_w = 10.0;  // below P0
  ck_assert_contains(EmulatedCounterSource::create(bad, std::make_shared<FixedHardwareView>()).message(),
                "socket model");
  ck_assert_hw_errno(EmulatedCounterSource::create({}, nullptr), EINVAL);
}
END_TEST

START_TEST(uncapped_counts_follow_the_model) {
  Rig r = rig();
  ck_assert_hw_ok(r.src->add_job(1, job("memory_share=0.4,busy_cpus=2,ipc=2"), 10.0));
  Result<CounterReading> c = r.src->sample(1, 12.0);
  ck_assert_hw_ok(c);
  const double f = 3.4e9;
  ck_assert_double_eq(c->sample.interval_s, 2.0);
  ck_assert_double_eq_tol(c->sample.cycles.value(), 2 * f * 2.0, 1.0);
  ck_assert_double_eq_tol(c->sample.stall_cycles.value() / c->sample.cycles.value(), 0.4, 1e-12);
  ck_assert_double_eq_tol(c->sample.instructions.value(), 2.0 * 0.6 * 2 * f * 2.0, 1.0);
  ck_assert_double_eq_tol(c->sample.ref_cycles.value(), c->sample.cycles.value(), 1.0);
  ck_assert_double_eq(c->sample.task_clock_s, 4.0);
  ck_assert(c->sample.has_hardware_counters());
  ck_assert_double_eq_tol(c->llc_misses.value(), c->sample.stall_cycles.value() / 200.0, 1e-6);
  ck_assert_double_eq_tol(r.src->relative_speed(1).value(), 1.0, 1e-12);
}
END_TEST

START_TEST(caps_lower_the_frequency_as_the_power_model_says) {
  Rig r = rig();
  // 16 busy cores of a 16-core package: activity 1, so the cap maps exactly as the note's
  // worked example (P0 60 W, TDP 205 W at 3.4 GHz): 120 W -> ~2.534 GHz.
  ck_assert_hw_ok(r.src->add_job(1, job("memory_share=0.5,busy_cpus=16"), 0.0));
  r.view->set_cap_w("intel-rapl:0", 120.0);
  const double f = r.src->frequency_hz(1).value();
  ck_assert_double_eq_tol(f / 1e9, 2.534, 0.002);
  Result<CounterReading> c = r.src->sample(1, 1.0);
  ck_assert_double_eq_tol(c->sample.cycles.value() / c->sample.ref_cycles.value(), f / 3.4e9, 1e-9);
  ck_assert_double_eq_tol(c->sample.stall_cycles.value() / c->sample.cycles.value(),
                          stall_share(0.5, 3.4e9, f), 1e-12);
  // At or below P0 the model has no frequency: the cores sit at the floor.
  r.view->set_cap_w("intel-rapl:0", 50.0);
  ck_assert_double_eq(r.src->frequency_hz(1).value(), 0.8e9);
  // Another zone's cap does not matter.
  r.view->set_cap_w("intel-rapl:0", std::nullopt);
  r.view->set_cap_w("intel-rapl:1", 70.0);
  ck_assert_double_eq(r.src->frequency_hz(1).value(), 3.4e9);
}
END_TEST

START_TEST(memory_bound_jobs_lose_less_under_a_cap) {
  // The gradient PowerGrad exploits: at the same cap, the compute-bound job slows down much
  // more than the memory-bound one.
  Rig r = rig();
  ck_assert_hw_ok(r.src->add_job(1, job("memory_share=0.1,busy_cpus=8"), 0.0));
  ck_assert_hw_ok(r.src->add_job(2, job("memory_share=0.8,busy_cpus=8,activity=0.7"), 0.0));
  r.view->set_cap_w("intel-rapl:0", 100.0);
  const double compute = r.src->relative_speed(1).value();
  const double memory = r.src->relative_speed(2).value();
  ck_assert_msg(compute < 0.85 && memory > 0.9 && memory > compute + 0.1,
                "compute-bound %.3f, memory-bound %.3f", compute, memory);
  // Both share the package: activity 8/16*1 + 8/16*0.7 = 0.85 sets the common frequency.
  PowerModel m{60.0, 205.0, 3.4e9, 0.85};
  ck_assert_double_eq_tol(r.src->frequency_hz(1).value(), m.freq_at_hz(100.0), 1.0);
  ck_assert_double_eq_tol(r.src->frequency_hz(2).value(), m.freq_at_hz(100.0), 1.0);
  // The stall share the estimator sees is higher for the memory-bound job.
  const double s1 = r.src->sample(1, 1.0)->sample.stall_cycles.value();
  const double s2 = r.src->sample(2, 1.0)->sample.stall_cycles.value();
  ck_assert(s2 > 4 * s1);
  // A job leaving raises the other's frequency (less activity under the same cap).
  r.src->remove_job(1);
  ck_assert(r.src->frequency_hz(2).value() > m.freq_at_hz(100.0));
}
END_TEST

START_TEST(cpufreq_limits_cap_a_jobs_cores) {
  Rig r = rig();
  ck_assert_hw_ok(r.src->add_job(1, job("busy_cpus=2", {2, 3}), 0.0));
  ck_assert_hw_ok(r.src->add_job(2, job("busy_cpus=2", {4, 5}), 0.0));
  r.view->set_core_limit_hz(3, 2.0e9);
  ck_assert_double_eq(r.src->frequency_hz(1).value(), 2.0e9);
  ck_assert_double_eq(r.src->frequency_hz(2).value(), 3.4e9);
}
END_TEST

START_TEST(noise_is_deterministic_per_seed) {
  EmulatedSourceConfig config;
  config.noise_fraction = 0.02;
  config.seed = 42;
  Rig a = rig(config), b = rig(config);
  ck_assert_hw_ok(a.src->add_job(1, job(""), 0.0));
  ck_assert_hw_ok(b.src->add_job(1, job(""), 0.0));
  const double ca = a.src->sample(1, 1.0)->sample.cycles.value();
  const double cb = b.src->sample(1, 1.0)->sample.cycles.value();
  ck_assert_double_eq(ca, cb);
  ck_assert(ca != 3.4e9);
  ck_assert_double_eq_tol(ca / 3.4e9, 1.0, 0.1);
}
END_TEST

START_TEST(api_errors) {
  Rig r = rig();
  ck_assert_contains(r.src->add_job(1, job("memory_share=2"), 0.0).message(), "job 1");
  ck_assert_hw_ok(r.src->add_job(1, job(""), 0.0));
  ck_assert_hw_errno(r.src->add_job(1, job(""), 0.0), EEXIST);
  ck_assert_hw_ok(r.src->add_tasks(1, {1, 2}));
  ck_assert_hw_errno(r.src->add_tasks(2, {1}), ENOENT);
  ck_assert_hw_errno(r.src->sample(2, 1.0), ENOENT);
  ck_assert(!r.src->frequency_hz(2).has_value());
  r.src->remove_job(1);
  ck_assert(!r.src->has_job(1));
}
END_TEST

START_TEST(caps_read_from_a_fake_tree) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_machine(dir.path(), "intel-server"));
  auto view = std::make_shared<SysfsHardwareView>(dir.path());
  auto made = EmulatedCounterSource::create({}, view);
  ck_assert_hw_ok(made);
  auto src = std::move(made).value();
  ck_assert_hw_ok(src->add_job(1, job("busy_cpus=16,zone=intel-rapl:1", {5}), 0.0));
  // The admin's PL1 is TDP: full speed.
  ck_assert_double_eq(src->frequency_hz(1).value(), 3.4e9);

  // What the agent writes with the real classes is what the emulated job feels.
  PowercapTree tree(dir.path());
  ck_assert_hw_ok(tree.discover());
  ck_assert_hw_ok(tree.find("intel-rapl:1").value()->apply_long_term_limit_uw(120000000));
  ck_assert_double_eq_tol(src->frequency_hz(1).value() / 1e9, 2.534, 0.002);
  ck_assert_hw_ok(tree.find("intel-rapl:1").value()->set_enabled(false));  // not enforced
  ck_assert_double_eq(src->frequency_hz(1).value(), 3.4e9);
  ck_assert_hw_ok(tree.find("intel-rapl:1").value()->set_enabled(true));

  CpufreqLimits cpufreq(dir.path());
  ck_assert_hw_ok(cpufreq.discover());
  ck_assert_hw_ok(cpufreq.set_max_freq_khz(5, 1500000));
  ck_assert_double_eq(src->frequency_hz(1).value(), 1.5e9);
}
END_TEST

Suite *emulated_suite() {
  Suite *s = suite_create("hw_emulated");
  TCase *tc = tcase_create("emulated");
  tcase_add_test(tc, workload_specs);
  tcase_add_test(tc, source_says_it_is_emulated);
  tcase_add_test(tc, uncapped_counts_follow_the_model);
  tcase_add_test(tc, caps_lower_the_frequency_as_the_power_model_says);
  tcase_add_test(tc, memory_bound_jobs_lose_less_under_a_cap);
  tcase_add_test(tc, cpufreq_limits_cap_a_jobs_cores);
  tcase_add_test(tc, noise_is_deterministic_per_seed);
  tcase_add_test(tc, api_errors);
  tcase_add_test(tc, caps_read_from_a_fake_tree);
  suite_add_tcase(s, tc);
  return s;
}

int main() { return pghw::run_suite(emulated_suite()); }
