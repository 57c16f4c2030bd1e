// The node agent's pure parts for per-job energy: attribution of a domain's energy by
// task-clock share, the per-step ledger and its summary line, and emulate= spec files.
#include <check.h>

#include <cmath>
#include <string>
#include <vector>

#include "nodeagent/emulation_specs.hpp"
#include "nodeagent/job_energy.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

START_TEST(attribute_by_task_clock_share) {
  const std::vector<double> e = attribute_energy(100.0, {1.0, 3.0});
  ck_assert_uint_eq(e.size(), 2);
  ck_assert_double_eq_tol(e[0], 25.0, 1e-9);
  ck_assert_double_eq_tol(e[1], 75.0, 1e-9);
  // Sums to the domain's energy.
  const std::vector<double> f = attribute_energy(7.5, {0.2, 0.3, 0.5, 0.0});
  ck_assert_double_eq_tol(f[0] + f[1] + f[2] + f[3], 7.5, 1e-9);
  ck_assert_double_eq(f[3], 0.0);
}
END_TEST

START_TEST(attribute_idle_and_bad_inputs) {
  // Nobody ran: idle energy belongs to no job.
  for (double v : attribute_energy(50.0, {0.0, 0.0})) ck_assert_double_eq(v, 0.0);
  for (double v : attribute_energy(NAN, {1.0})) ck_assert_double_eq(v, 0.0);
  for (double v : attribute_energy(-3.0, {1.0})) ck_assert_double_eq(v, 0.0);
  // Bad task-clock values count as 0.
  const std::vector<double> e = attribute_energy(10.0, {NAN, -1.0, 2.0});
  ck_assert_double_eq(e[0], 0.0);
  ck_assert_double_eq(e[1], 0.0);
  ck_assert_double_eq_tol(e[2], 10.0, 1e-9);
  ck_assert_uint_eq(attribute_energy(10.0, {}).size(), 0);
}
END_TEST

START_TEST(ledger_accumulates_energy_time_and_caps) {
  JobEnergyLedger l;
  l.begin("12.0", JobMode::latency, "emulated");
  l.begin("12.0", JobMode::throughput, "software");  // repeated: no effect
  l.add_energy("12.0", 100.0);
  l.add_energy("12.0", 50.0);
  l.add_energy("12.0", -5.0);  // ignored
  l.add_energy("99.0", 7.0);   // unknown: ignored
  l.add_period("12.0", 1.0, 200.0);
  l.add_period("12.0", 3.0, 100.0);
  l.add_period("12.0", 1.0, std::nullopt);  // time counts, no cap
  ck_assert(l.has("12.0"));
  std::vector<JobEnergySummary> s = l.summaries();
  ck_assert_uint_eq(s.size(), 1);
  ck_assert(s[0].running);
  ck_assert(s[0].mode == JobMode::latency);
  ck_assert_double_eq_tol(s[0].energy_j, 150.0, 1e-9);
  ck_assert_double_eq_tol(s[0].seconds, 5.0, 1e-9);
  ck_assert_double_eq_tol(s[0].avg_w(), 30.0, 1e-9);
  ck_assert_double_eq_tol(*s[0].cap_min_w, 100.0, 1e-9);
  ck_assert_double_eq_tol(*s[0].cap_max_w, 200.0, 1e-9);
  ck_assert_double_eq_tol(*s[0].cap_mean_w(), 125.0, 1e-9);  // time-weighted
  const auto done = l.finish("12.0");
  ck_assert(done && !done->running);
  ck_assert(!l.has("12.0"));
  ck_assert(!l.finish("12.0"));
  s = l.summaries();
  ck_assert_uint_eq(s.size(), 1);
  ck_assert(!s[0].running);
}
END_TEST

START_TEST(ledger_keeps_a_bounded_history) {
  JobEnergyLedger l(2);
  for (int i = 1; i <= 4; ++i) {
    const std::string k = std::to_string(i) + ".0";
    l.begin(k, JobMode::off, "software");
    l.finish(k);
  }
  l.begin("5.0", JobMode::monitor, "software");
  const std::vector<JobEnergySummary> s = l.summaries();
  ck_assert_uint_eq(s.size(), 3);
  ck_assert_std_str_eq(s[0].key, "5.0");  // running first
  ck_assert_std_str_eq(s[1].key, "3.0");
  ck_assert_std_str_eq(s[2].key, "4.0");
}
END_TEST

START_TEST(summary_line) {
  JobEnergySummary s;
  s.key = "12.0";
  s.counters = "emulated";
  s.energy_j = 123.44;
  s.seconds = 2.0;
  s.cap_min_w = 110.0;
  s.cap_max_w = 205.0;
  s.cap_weighted_w_s = 300.0;
  s.cap_seconds = 2.0;
  ck_assert_std_str_eq(format_job_summary(s, "n1"),
                       "job 12.0 on n1: energy_j=123.4 avg_w=61.7 cap_min_w=110.0 cap_mean_w=150.0 "
                       "cap_max_w=205.0 counters=emulated");
  JobEnergySummary none;
  none.key = "3.batch";
  ck_assert_std_str_eq(format_job_summary(none, "n2"),
                       "job 3.batch on n2: energy_j=0.0 avg_w=0.0 cap_min_w=none cap_mean_w=none "
                       "cap_max_w=none counters=none");
}
END_TEST

START_TEST(specs_parse) {
  EmulationSpecsParse p = parse_emulation_specs(
      "# workloads\n"
      "12 memory_share=0.2,busy_cpus=2\n"
      "\n"
      "  13   memory_share=0.8,zone=intel-rapl:1  \n"
      "* memory_share=0.5\n");
  ck_assert_msg(p.ok(), "%s", p.error.c_str());
  ck_assert_std_str_eq(*p.specs.find(12), "memory_share=0.2,busy_cpus=2");
  ck_assert_std_str_eq(*p.specs.find(13), "memory_share=0.8,zone=intel-rapl:1");
  ck_assert_std_str_eq(*p.specs.find(77), "memory_share=0.5");
  EmulationSpecsParse q = parse_emulation_specs("12 busy_cpus=1");
  ck_assert(q.ok());
  ck_assert(!q.specs.find(13));
  ck_assert(parse_emulation_specs("").ok());
}
END_TEST

START_TEST(specs_refuse_bad_lines) {
  EmulationSpecsParse p = parse_emulation_specs("12 memory_share=0.2\nabc memory_share=0.1\n");
  ck_assert(!p.ok());
  ck_assert_contains(p.error, "line 2");
  ck_assert_contains(p.error, "'abc'");
  p = parse_emulation_specs("12 speed=9\n");
  ck_assert(!p.ok());
  ck_assert_contains(p.error, "line 1: job 12");
  ck_assert_contains(p.error, "speed");
  p = parse_emulation_specs("12 memory_share=0.2\n12 memory_share=0.3\n");
  ck_assert_contains(p.error, "listed twice");
  p = parse_emulation_specs("* memory_share=0.2\n* memory_share=0.3\n");
  ck_assert_contains(p.error, "second '*'");
  p = parse_emulation_specs("0 memory_share=0.2\n");
  ck_assert(!p.ok());
  p = parse_emulation_specs("12 zone=../x\n");
  ck_assert(!p.ok());
}
END_TEST

int main() {
  Suite *s = suite_create("agent_energy");
  TCase *tc = tcase_create("energy");
  tcase_add_test(tc, attribute_by_task_clock_share);
  tcase_add_test(tc, attribute_idle_and_bad_inputs);
  tcase_add_test(tc, ledger_accumulates_energy_time_and_caps);
  tcase_add_test(tc, ledger_keeps_a_bounded_history);
  tcase_add_test(tc, summary_line);
  tcase_add_test(tc, specs_parse);
  tcase_add_test(tc, specs_refuse_bad_lines);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
