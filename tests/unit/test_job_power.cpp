// Per-job power figures (controller/job_power.hpp), the AdminComment record they
// go into (job_records.hpp), and the admin command's parsing and formatting (tools/).
#include <check.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "controller/job_power.hpp"
#include "controller/job_records.hpp"
#include "jobreport/record.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tools/admin.hpp"
#include "tools/job_report.hpp"
#include "tools/json.hpp"

using namespace powergrad;

namespace {

JobSummary summary(const std::string &job, CounterKind counters, double speedup, bool valid = true) {
  JobSummary s;
  s.job = job;
  s.counters = counters;
  s.speedup_per_w = speedup;
  s.valid = valid;
  return s;
}

// The grants of a map, as the controller service looks them up (NaN: a node not in it).
JobPowerLedger::GrantLookup grants_of(const std::map<std::string, double> &grants) {
  return [&grants](const std::string &n) {
    const auto it = grants.find(n);
    return it == grants.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
  };
}

NodeReport node(const std::string &name, double power_w, double caps_w,
                std::vector<JobSummary> jobs) {
  NodeReport r;
  r.node = name;
  r.power_w = power_w;
  r.caps_w = caps_w;
  r.jobs = std::move(jobs);
  return r;
}

// A summary carrying the step's own accounting on its node.
JobSummary measured(const std::string &job, std::size_t domain, double energy_j, double elapsed_s,
                    double cap_min_w, double cap_mean_w, double cap_max_w) {
  JobSummary s = summary(job, CounterKind::emulated, 0.01);
  s.domain = domain;
  s.energy_j = energy_j;
  s.elapsed_s = elapsed_s;
  s.avg_w = elapsed_s > 0.0 ? energy_j / elapsed_s : std::nan("");
  s.cap_min_w = cap_min_w;
  s.cap_mean_w = cap_mean_w;
  s.cap_max_w = cap_max_w;
  return s;
}

// What the service's thread leaves behind after driving a ledger through a workload: the
// series handed over (job id and points, in order) and every job's figures at the end.
struct DriveResult {
  std::vector<std::pair<std::uint32_t, std::size_t>> handed_over;
  std::map<std::uint32_t, double> energy_j;
  std::map<std::uint32_t, std::size_t> samples;
};

// 60 jobs on 6 nodes over 240 periods of 1 s: job j runs on node j % 6 (and its neighbour
// for even j) from period 3j to 3j + 30. Each period: the nodes' reports, a sample, the
// finished series taken (slurmctld's running jobs given) and pruning, as the plugin's
// thread does them.
// after_period, when given, is called at the end of each period with its time.
DriveResult drive(JobPowerLedger &l, const std::function<void(int)> &after_period = {}) {
  DriveResult r;
  const std::map<std::string, double> grants = {{"n0", 200.0}, {"n1", 210.0}, {"n2", 220.0},
                                                {"n3", 230.0}, {"n4", 240.0}, {"n5", 250.0}};
  for (int t = 0; t < 240; ++t) {
    std::set<std::uint32_t> running, known;
    for (std::uint32_t j = 1; j <= 60; ++j) {
      if (t >= static_cast<int>(3 * j) && t < static_cast<int>(3 * j + 30)) running.insert(j);
      if (t >= static_cast<int>(3 * j)) known.insert(j);
    }
    for (int n = 0; n < 6; ++n) {
      std::vector<JobSummary> jobs;
      for (std::uint32_t j : running) {
        const int home = static_cast<int>(j % 6);
        if (home == n || (j % 2 == 0 && (home + 1) % 6 == n))
          jobs.push_back(summary(std::to_string(j) + ".0", CounterKind::hardware, 0.001 * j));
      }
      l.on_report(node("n" + std::to_string(n), 100.0 + 10.0 * n, 150.0 + 5.0 * n, jobs), t);
    }
    l.sample(t, grants_of(grants));
    for (auto &kv : l.take_finished_series(t, 2.0, &running))
      r.handed_over.emplace_back(kv.first, kv.second.points().size());
    l.prune(t, 60.0, &known, 30.0);
    if (after_period) after_period(t);
  }
  for (std::uint32_t j = 1; j <= 60; ++j) {
    if (const std::optional<JobFigures> f = l.figures(j)) {
      r.energy_j[j] = f->energy_j;
      r.samples[j] = f->samples;
    }
  }
  return r;
}

}  // namespace

// The ledger as the controller plugin shares it: the service's thread drives it while
// slurmctld's job hooks read figures() and the series writer's thread copies the
// unfinished series (JobPowerLedger's contract). The driver's results are those of a run
// without readers, and no reader sees a job's figures go back. Data races are
// ThreadSanitizer's to find: tests/tools/test_thread_sanitizer.sh runs this test under it.
START_TEST(readers_on_other_threads_while_the_ledger_runs) {
  JobPowerLedger alone(3.0);
  const DriveResult expected = drive(alone);
  ck_assert_uint_gt(expected.handed_over.size(), 10);

  JobPowerLedger l(3.0);
  std::atomic<bool> done{false};
  std::atomic<long> figure_reads{0}, series_reads{0}, went_back{0}, too_long{0};
  std::atomic<long> hook_passes{0}, writer_passes{0};  // whole passes over the jobs
  std::thread hooks([&] {
    std::map<std::uint32_t, std::size_t> seen;
    do {
      for (std::uint32_t j = 1; j <= 60; ++j) {
        const std::optional<JobFigures> f = l.figures(j);
        if (!f) continue;
        ++figure_reads;
        if (f->samples < seen[j] || !(f->energy_j >= 0.0)) ++went_back;
        seen[j] = f->samples;
      }
      ++hook_passes;
    } while (!done.load());
  });
  std::thread writer([&] {
    do {
      for (std::uint32_t id : l.unfinished_ids()) {
        if (l.series(id).points().size() > 720) ++too_long;
        ++series_reads;
      }
      ++writer_passes;
    } while (!done.load());
  });
  // Every 20 periods the driver waits for a whole pass of each reader that began after it
  // got there, so that their reads fall amid the run however the threads are scheduled
  // (jobs run at every such moment from period 20 to 200).
  const auto wait_for_readers = [&](int t) {
    if (t % 20 != 0) return;
    const long h = hook_passes.load(), w = writer_passes.load();
    while (hook_passes.load() < h + 2 || writer_passes.load() < w + 2) std::this_thread::yield();
  };
  const DriveResult got = drive(l, wait_for_readers);
  done = true;
  hooks.join();
  writer.join();

  ck_assert(got.handed_over == expected.handed_over);
  ck_assert(got.samples == expected.samples);
  ck_assert_uint_eq(got.energy_j.size(), expected.energy_j.size());
  for (const auto &kv : expected.energy_j)
    ck_assert_double_eq_tol(got.energy_j.at(kv.first), kv.second, 1e-9);
  ck_assert_int_gt(figure_reads.load(), 0);
  ck_assert_int_gt(series_reads.load(), 0);
  ck_assert_int_eq(went_back.load(), 0);
  ck_assert_int_eq(too_long.load(), 0);
}
END_TEST

START_TEST(job_ids_from_keys) {
  ck_assert_uint_eq(*job_id_of_key("1234.0"), 1234);
  ck_assert_uint_eq(*job_id_of_key("77.batch"), 77);
  ck_assert_uint_eq(*job_id_of_key("9"), 9);
  ck_assert(!job_id_of_key(""));
  ck_assert(!job_id_of_key("abc.0"));
  ck_assert(!job_id_of_key("12x"));
  ck_assert(!job_id_of_key("0.0"));
  ck_assert(!job_id_of_key("99999999999.0"));
}
END_TEST

START_TEST(energy_caps_gradient_counters) {
  JobPowerLedger l(3.0);
  // Job 1 alone on n1; job 1 and job 2 share n2 (half each).
  l.on_report(node("n1", 100.0, 150.0, {summary("1.0", CounterKind::software, 0.002)}), 0.0);
  l.on_report(node("n2", 80.0, 120.0,
                   {summary("1.0", CounterKind::hardware, 0.004),
                    summary("2.0", CounterKind::software, 0.0, false)}),
              0.0);
  l.sample(0.0);  // first sample: no elapsed time yet, caps recorded
  l.sample(1.0);
  l.sample(2.0);
  const JobFigures f1 = *l.figures(1);
  ck_assert_uint_eq(f1.samples, 3);
  ck_assert_double_eq_tol(f1.energy_j, 2 * (100.0 + 40.0), 1e-9);
  ck_assert_double_eq_tol(f1.seconds, 2.0, 1e-9);
  ck_assert_double_eq_tol(f1.avg_w, 140.0, 1e-9);
  ck_assert_double_eq_tol(f1.cap_min_w, 210.0, 1e-9);
  ck_assert_double_eq_tol(f1.cap_max_w, 210.0, 1e-9);
  ck_assert_double_eq_tol(f1.gradient, 0.003, 1e-12);
  ck_assert_std_str_eq(f1.counters, "software+hardware");
  const JobFigures f2 = *l.figures(2);
  ck_assert_double_eq_tol(f2.avg_w, 40.0, 1e-9);
  ck_assert(std::isnan(f2.gradient));  // no valid estimate
  ck_assert(!l.figures(3));
  // Caps change: min/mean/max follow; a stale node stops counting.
  l.on_report(node("n1", 100.0, 250.0, {summary("1.0", CounterKind::software, 0.002)}), 2.5);
  l.sample(3.0);
  const JobFigures g = *l.figures(1);
  ck_assert_double_eq_tol(g.cap_max_w, 310.0, 1e-9);
  ck_assert_double_eq_tol(g.cap_mean_w, (210.0 * 3 + 310.0) / 4, 1e-9);
  l.sample(5.9);  // n2's report is from 0.0: stale; n1 (2.5) still fresh
  ck_assert_double_eq_tol(l.figures(1)->cap_min_w, 210.0, 1e-9);
  ck_assert_uint_eq(l.figures(2)->samples, 4);  // not sampled without a fresh report
  l.prune(100.0, 10.0);
  ck_assert_uint_eq(l.job_count(), 0);
}
END_TEST

START_TEST(jobs_slurmctld_forgot_are_pruned_sooner) {
  // Jobs 1, 2 and 3 ran until t=10. Job 1 is still listed by slurmctld, 2 is not (purged
  // after MinJobAge); 3 is not listed either but its series was not handed over yet.
  JobPowerLedger l(3.0);
  for (int t = 0; t <= 10; ++t) {
    l.on_report(node("n1", 100.0, 200.0,
                     {summary("1.0", CounterKind::software, 0.002),
                      summary("2.0", CounterKind::software, 0.002)}),
                t);
    l.on_report(node("n2", 100.0, 200.0, {summary("3.0", CounterKind::software, 0.002)}), t);
    l.sample(t);
  }
  const std::set<std::uint32_t> running;
  const std::set<std::uint32_t> series_of{1, 2};
  for (const auto &[id, s] : l.take_finished_series(40.0, 2.0, &running))
    ck_assert(series_of.count(id) || id == 3);
  const std::set<std::uint32_t> known{1};
  // 20 s after the end: not yet (unknown_after_s = 30).
  l.prune(30.0, 3600.0, &known);
  ck_assert_uint_eq(l.job_count(), 3);
  // 50 s after: 2 and 3 go (their series were handed over above), 1 stays (still listed).
  l.prune(60.0, 3600.0, &known);
  ck_assert(l.figures(1).has_value());
  ck_assert(!l.figures(2).has_value());
  ck_assert(!l.figures(3).has_value());
  // Without the list (slurmctld's job list not available) only the age counts.
  JobPowerLedger m(3.0);
  m.on_report(node("n1", 100.0, 200.0, {summary("7.0", CounterKind::software, 0.002)}), 0.0);
  m.sample(0.0);
  m.prune(100.0, 3600.0, nullptr);
  ck_assert(m.figures(7).has_value());
  // A job not listed whose series was not handed over yet is kept until it is.
  const std::set<std::uint32_t> none;
  m.prune(100.0, 3600.0, &none);
  ck_assert(m.figures(7).has_value());
  ck_assert_uint_eq(m.take_finished_series(100.0, 2.0, &none).size(), 1);
  m.prune(100.0, 3600.0, &none);
  ck_assert(!m.figures(7).has_value());
}
END_TEST

START_TEST(unknown_power_is_not_counted_as_zero) {
  JobPowerLedger l(3.0);
  l.on_report(node("n1", std::nan(""), 150.0, {summary("5.0", CounterKind::emulated, 0.01)}), 0.0);
  l.sample(0.0);
  l.sample(1.0);
  const JobFigures f = *l.figures(5);
  ck_assert_double_eq(f.seconds, 0.0);
  ck_assert(std::isnan(f.avg_w));
  ck_assert_std_str_eq(f.counters, "emulated");
}
END_TEST

START_TEST(slot_hints_are_checked_by_name) {
  // The controller service keeps where each node's report went (on_report's slot) and
  // hands it back as a hint. A stale node's place goes to another node: hints that are out
  // of range or point at another node must find the right place, never mix two nodes.
  JobPowerLedger l(3.0);
  const std::size_t sa =
      l.on_report(node("a", 100.0, 100.0, {summary("1.0", CounterKind::software, 0.01)}), 0.0);
  std::size_t sb =
      l.on_report(node("b", 200.0, 200.0, {summary("2.0", CounterKind::software, 0.01)}), 0.0);
  std::size_t sc =
      l.on_report(node("c", 300.0, 300.0, {summary("3.0", CounterKind::software, 0.01)}), 0.0);
  ck_assert(sa != sb && sb != sc && sa != sc);
  ck_assert_uint_eq(
      l.on_report(node("b", 200.0, 200.0, {summary("2.0", CounterKind::software, 0.01)}), 0.5, sb),
      sb);
  l.sample(0.5);
  sb = l.on_report(node("b", 200.0, 200.0, {summary("2.0", CounterKind::software, 0.01)}), 4.0, sb);
  sc = l.on_report(node("c", 300.0, 300.0, {summary("3.0", CounterKind::software, 0.01)}), 4.0, sc);
  l.sample(4.0);  // a is stale: its place goes to another node
  ck_assert_uint_eq(l.figures(1)->samples, 1);
  const std::size_t sc2 =
      l.on_report(node("c", 300.0, 300.0, {summary("3.0", CounterKind::software, 0.01)}), 5.0, sc);
  // d is handed a's old place, now another node's: it gets a place of its own.
  const std::size_t sd =
      l.on_report(node("d", 400.0, 400.0, {summary("4.0", CounterKind::software, 0.01)}), 5.0, sa);
  sb = l.on_report(node("b", 200.0, 200.0, {summary("2.0", CounterKind::software, 0.01)}), 5.0, sb);
  ck_assert(sd != sc2 && sd != sb && sc2 != sb);
  l.sample(5.0);
  l.sample(6.0);
  ck_assert_uint_eq(l.figures(2)->samples, 4);
  ck_assert_uint_eq(l.figures(3)->samples, 4);
  ck_assert_uint_eq(l.figures(4)->samples, 2);
  ck_assert_double_eq_tol(l.figures(2)->avg_w, 200.0, 1e-9);
  ck_assert_double_eq_tol(l.figures(3)->avg_w, 300.0, 1e-9);
  ck_assert_double_eq_tol(l.figures(4)->avg_w, 400.0, 1e-9);
  // A hint past the end, and the right one, land in the same place.
  ck_assert_uint_eq(l.on_report(node("d", 400.0, 400.0, {}), 6.0, 1000), sd);
  ck_assert_uint_eq(l.on_report(node("d", 400.0, 400.0, {}), 6.5, sd), sd);
}
END_TEST

START_TEST(node_measured_figures_are_preferred) {
  JobPowerLedger l(3.0);
  // Job 7: steps 7.batch and 7.0 on n1 (both on domain 0; 7.0 also on domain 1: its
  // accounting is repeated on that entry and counts once), 7.0 on n2. Job 8 shares n2.
  // Node-level power would give a very different estimate (n2 split in two).
  l.on_report(node("n1", 300.0, 400.0,
                   {measured("7.batch", 0, 100.0, 10.0, 80.0, 90.0, 100.0),
                    measured("7.0", 0, 900.0, 9.0, 150.0, 160.0, 170.0),
                    measured("7.0", 1, 900.0, 9.0, 150.0, 160.0, 170.0)}),
              0.0);
  l.on_report(node("n2", 200.0, 300.0,
                   {measured("7.0", 0, 500.0, 10.0, 60.0, 70.0, 80.0),
                    measured("8.0", 1, 50.0, 5.0, 55.0, 55.0, 55.0)}),
              0.0);
  l.sample(0.0);
  l.sample(1.0);
  JobFigures f = *l.figures(7);
  ck_assert(f.measured_energy);
  ck_assert(f.measured_caps);
  ck_assert_double_eq_tol(f.energy_j, 100.0 + 900.0 + 500.0, 1e-9);
  ck_assert_double_eq_tol(f.seconds, 10.0, 1e-9);
  // Per node: energy over the node's longest step; summed over the nodes.
  ck_assert_double_eq_tol(f.avg_w, 1000.0 / 10.0 + 500.0 / 10.0, 1e-9);
  // Per node the steps' largest caps (they share the job's domains); summed over nodes.
  ck_assert_double_eq_tol(f.cap_min_w, 150.0 + 60.0, 1e-9);
  ck_assert_double_eq_tol(f.cap_mean_w, 160.0 + 70.0, 1e-9);
  ck_assert_double_eq_tol(f.cap_max_w, 170.0 + 80.0, 1e-9);
  ck_assert_double_eq_tol(f.gradient, 0.01, 1e-12);  // the gradient stays the periods' mean
  ck_assert_double_eq_tol(l.figures(8)->energy_j, 50.0, 1e-9);

  // Later reports replace a step's cumulative figures; a step that ended (7.batch gone from
  // n1's report) and a node that went silent (n2) keep their last ones.
  l.on_report(node("n1", 300.0, 400.0, {measured("7.0", 0, 1800.0, 18.0, 140.0, 155.0, 170.0)}), 2.0);
  l.sample(2.0);
  l.sample(6.0);  // n2 stale
  f = *l.figures(7);
  ck_assert_double_eq_tol(f.energy_j, 100.0 + 1800.0 + 500.0, 1e-9);
  ck_assert_double_eq_tol(f.seconds, 18.0, 1e-9);
  ck_assert_double_eq_tol(f.avg_w, 1900.0 / 18.0 + 500.0 / 10.0, 1e-9);
  ck_assert_double_eq_tol(f.cap_mean_w, 155.0 + 70.0, 1e-9);

  // Entries of one step that disagree (an agent repeats them alike): the first one counts.
  JobPowerLedger d(3.0);
  d.on_report(node("n1", 300.0, 400.0,
                   {measured("9.0", 0, 600.0, 6.0, 90.0, 95.0, 100.0),
                    measured("9.0", 1, 60.0, 3.0, 10.0, 20.0, 30.0)}),
              0.0);
  d.sample(0.0);
  ck_assert_double_eq_tol(d.figures(9)->energy_j, 600.0, 1e-9);
  ck_assert_double_eq_tol(d.figures(9)->cap_max_w, 100.0, 1e-9);

  // The record written from them.
  JobView j;
  j.job_id = 7;
  j.mode = "throughput";
  j.nodes = "n[1-2]";
  j.figures = f;
  const std::string comment = updated_admin_comment(j).value_or("");
  ck_assert_str_eq(comment.c_str(),
                   "powergrad={v=1 mode=throughput nodes=n[1-2] energy_j=2400 avg_w=155.6 "
                   "cap_min_w=200.0 cap_mean_w=225.0 cap_max_w=250.0 gradient=0.01 "
                   "counters=emulated}");
}
END_TEST

START_TEST(estimate_when_a_node_does_not_know) {
  JobPowerLedger l(3.0);
  // n1 measures job 9; n2 (no powercap) sends NaN energy and caps: the job's figures
  // cannot be summed over its nodes, so the node-level estimate stays.
  JobSummary unknown = summary("9.0", CounterKind::software, 0.002);
  unknown.elapsed_s = 4.0;
  l.on_report(node("n1", 100.0, 150.0, {measured("9.0", 0, 400.0, 4.0, 150.0, 150.0, 150.0)}), 0.0);
  l.on_report(node("n2", 60.0, 90.0, {unknown}), 0.0);
  l.sample(0.0);
  l.sample(2.0);
  const JobFigures f = *l.figures(9);
  ck_assert(!f.measured_energy);
  ck_assert(!f.measured_caps);
  ck_assert_double_eq_tol(f.energy_j, 2 * (100.0 + 60.0), 1e-9);
  ck_assert_double_eq_tol(f.avg_w, 160.0, 1e-9);
  ck_assert_double_eq_tol(f.cap_mean_w, 240.0, 1e-9);
  // A report of an agent that does not fill the accounting (all NaN): the estimate too.
  JobPowerLedger old(3.0);
  old.on_report(node("n1", 100.0, 150.0, {summary("10.0", CounterKind::software, 0.002)}), 0.0);
  old.sample(0.0);
  old.sample(1.0);
  ck_assert(!old.figures(10)->measured_energy);
  ck_assert_double_eq_tol(old.figures(10)->energy_j, 100.0, 1e-9);
}
END_TEST

START_TEST(record_carries_the_figures) {
  JobView j;
  j.job_id = 42;
  j.mode = "latency";
  j.nodes = "n[1-2]";
  j.admin_comment = "site: rack 7";
  auto c = updated_admin_comment(j);
  ck_assert_str_eq(c->c_str(), "site: rack 7; powergrad={v=1 mode=latency nodes=n[1-2]}");
  JobFigures f;
  f.samples = 3;
  f.energy_j = 1234.56;
  f.seconds = 10.0;
  f.avg_w = 123.456;
  f.cap_min_w = 100.0;
  f.cap_mean_w = 150.25;
  f.cap_max_w = 200.0;
  f.gradient = 0.0031234;
  f.counters = "software";
  j.figures = f;
  j.admin_comment = *c;
  c = updated_admin_comment(j);
  ck_assert_str_eq(c->c_str(),
                   "site: rack 7; powergrad={v=1 mode=latency nodes=n[1-2] energy_j=1235 "
                   "avg_w=123.5 cap_min_w=100.0 cap_mean_w=150.2 cap_max_w=200.0 "
                   "gradient=0.003123 counters=software}");
  std::string err;
  auto fields = parse_record(*c, &err);
  ck_assert(fields.has_value());
  ck_assert_std_str_eq(*record_value(*fields, "energy_j"), "1235");
  ck_assert_std_str_eq(*record_value(*fields, "counters"), "software");
  // Unchanged figures: nothing to write.
  j.admin_comment = *c;
  ck_assert(!updated_admin_comment(j));
}
END_TEST

START_TEST(json_reader) {
  std::string err;
  auto v = json::parse(R"({"a":1.5,"b":[true,false,null],"c":"x\"y\u00e9","d":{}})", &err);
  ck_assert_msg(v.has_value(), "%s", err.c_str());
  ck_assert_double_eq(*v->num("a"), 1.5);
  ck_assert_uint_eq(v->get("b")->array.size(), 3);
  ck_assert(v->get("b")->array[2].is_null());
  ck_assert_std_str_eq(v->str("c"), "x\"y\xc3\xa9");
  ck_assert(!json::parse("{\"a\":}", &err));
  ck_assert_contains(err, "offset 5");
  ck_assert(!json::parse("[1,2", &err));
  ck_assert(!json::parse("{} x", &err));
  ck_assert_contains(err, "trailing");
  std::string deep(200, '[');
  ck_assert(!json::parse(deep, &err));
  ck_assert_contains(err, "nested too deeply");
}
END_TEST

START_TEST(host_port) {
  std::string err;
  auto a = parse_host_port("ctl1:6830", &err);
  ck_assert_std_str_eq(a->host, "ctl1");
  ck_assert_std_str_eq(a->port, "6830");
  a = parse_host_port("[::1]:7000", &err);
  ck_assert_std_str_eq(a->host, "::1");
  ck_assert(!parse_host_port("ctl1", &err));
  ck_assert_contains(err, "'ctl1' is not HOST:PORT");
  ck_assert(!parse_host_port("ctl1:0", &err));
  ck_assert(!parse_host_port("ctl1:http", &err));
  ck_assert(!parse_host_port(":6830", &err));
}
END_TEST

START_TEST(series_per_job_and_handed_over_once_after_the_end) {
  JobPowerLedger l(3.0);
  std::map<std::string, double> grants = {{"n1", 300.0}, {"n2", 200.0}};
  for (int t = 0; t < 5; ++t) {
    // Job 7 alone on n1, jobs 7 and 8 share n2.
    l.on_report(node("n1", 240.0, 260.0, {summary("7.0", CounterKind::software, 0.01)}), t);
    l.on_report(node("n2", 100.0, 180.0, {summary("7.0", CounterKind::software, 0.01),
                                          summary("8.0", CounterKind::software, 0.01)}),
                t);
    l.sample(t, grants_of(grants));
  }
  std::vector<SeriesPoint> p7 = l.series(7).points();
  ck_assert_uint_eq(p7.size(), 5);
  ck_assert_double_eq_tol(p7[4].t_s, 4.0, 1e-9);
  ck_assert_double_eq_tol(p7[4].power_w, 240.0 + 50.0, 1e-9);
  ck_assert_double_eq_tol(p7[4].cap_w, 260.0 + 90.0, 1e-9);
  ck_assert_double_eq_tol(p7[4].grant_w, 300.0 + 100.0, 1e-9);
  ck_assert_double_eq_tol(l.series(8).points()[0].grant_w, 100.0, 1e-9);
  // Still running for slurmctld, or too recent: not handed over.
  std::set<std::uint32_t> running = {7, 8};
  ck_assert_uint_eq(l.take_finished_series(100.0, 2.0, &running).size(), 0);
  ck_assert_uint_eq(l.take_finished_series(5.0, 2.0, nullptr).size(), 0);
  running = {8};
  auto done = l.take_finished_series(100.0, 2.0, &running);
  ck_assert_uint_eq(done.size(), 1);
  ck_assert_uint_eq(done[0].first, 7);
  ck_assert_uint_eq(done[0].second.points().size(), 5);
  // Once only; later samples of a handed-over job do not start a new series.
  ck_assert_uint_eq(l.take_finished_series(200.0, 2.0, &running).size(), 0);
  l.on_report(node("n1", 240.0, 260.0, {summary("7.0", CounterKind::software, 0.01)}), 300.0);
  l.sample(300.0, grants_of(grants));
  ck_assert(l.series(7).empty());
  // Without grants the grant column is unknown.
  JobPowerLedger m(3.0);
  m.on_report(node("n1", 240.0, 260.0, {summary("9.0", CounterKind::software, 0.01)}), 0.0);
  m.sample(0.0);
  ck_assert(std::isnan(m.series(9).points()[0].grant_w));
}
END_TEST

START_TEST(status_table) {
  std::string err;
  auto v = json::parse(
      R"({"version":1,"budget_w":600,"in_force_w":480,"unallocated_w":20,"period_s":1,"lease_s":5,
          "schedule":null,"scheduled_budget_w":null,"plain_share":"usage",
          "groups":[{"name":"rack1","parent":null,"limit_w":500,"in_force_w":300,"nodes":2}],
          "nodes":[{"name":"n1","group":"rack1","connected":true,"reported":true,"silent":false,
                    "work":"power-aware","fair_share_w":200,
                    "grant_w":180.5,"power_w":150,"caps_w":180.5,"gradient":0.0042,"split":"even",
                    "jobs":[42,43],
                    "lease_age_s":0.4},
                   {"name":"n2","group":null,"connected":false,"reported":false,"silent":false,
                    "work":"unknown","fair_share_w":200,
                    "grant_w":null,"power_w":null,"caps_w":null,"gradient":null,"jobs":[],
                    "lease_age_s":null}],
          "unmanaged":[{"name":"n7","connected_at":1700000000},{"name":"n8","connected_at":null}]})",
      &err);
  ck_assert_msg(v.has_value(), "%s", err.c_str());
  const std::string t = format_status_table(*v);
  ck_assert_contains(t, "budget: 600.0 W (caps that can be in force: 480.0 W");
  ck_assert_contains(t, "GROUP  PARENT  LIMIT_W  IN_FORCE_W  NODES\nrack1  -       500.0    300.0       2\n");
  ck_assert_contains(t, "period: 1.00 s, lease: 5.00 s, plain jobs' share: usage\n");
  ck_assert_contains(t,
                     "NODE  GROUP  STATE      WORK         GRANT_W  FAIR_W  POWER_W  CAPS_W  "
                     "GRADIENT  SPLIT  JOBS   LEASE_AGE_S\n");
  ck_assert_contains(t,
                     "n1    rack1  reporting  power-aware  180.5    200.0   150.0    180.5   "
                     "0.0042    even   42,43  0.4\n");
  ck_assert_contains(t,
                     "n2    -      unseen     unknown      -        200.0   -        -       "
                     "-         -      -      -\n");
  ck_assert_contains(t,
                     "not managed (outside powergrad.conf's groups, not in the budget):\n"
                     "UNMANAGED NODE  AGENT SEEN\nn7              yes\nn8              no\n");
}
END_TEST

START_TEST(report_shows_the_figures) {
  // As sacct prints it for sacct_report_args(d): every field followed by the delimiter.
  const std::string d = "<pg:00112233445566778899aabbccddeeff>";
  const std::string sacct =
      "41" + d + "alice" + d + "COMPLETED" + d + "2026-11-25T10:00:00" + d + "2026-11-25T10:00:30" +
      d + "30" + d + "pa-service" + d +
      "site: x; powergrad={v=1 mode=latency nodes=n[1-2] energy_j=5012 avg_w=167.1 "
      "cap_min_w=160.0 cap_mean_w=175.3 cap_max_w=190.0 gradient=0.003124 counters=software}" +
      d + "\n42" + d + "bob" + d + "FAILED" + d + "2026-11-25T09:00:00" + d +
      "2026-11-25T09:00:05" + d + "5" + d + "old" + d + "powergrad={v=1 mode=monitor nodes=n3}" +
      d + "\n";
  const SacctParse p = parse_sacct_report(sacct, d);
  ck_assert_uint_eq(p.rows.size(), 2);
  const std::string csv = format_report_csv(p.rows);
  ck_assert_contains(csv,
                     "job_id,name,user,state,elapsed_s,mode,nodes,energy_j,avg_w,cap_min_w,"
                     "cap_mean_w,cap_max_w,gradient,counters\n");
  ck_assert_contains(csv,
                     "41,pa-service,alice,COMPLETED,30,latency,n[1-2],5012,167.1,160.0,175.3,190.0,"
                     "0.003124,software\n");
  ck_assert_contains(csv, "42,old,bob,FAILED,5,monitor,n3,,,,,,,\n");
  const std::string js = format_report_json(p.rows);
  ck_assert_contains(js, "\"energy_j\": 5012, \"avg_w\": 167.1");
  ck_assert_contains(js, "\"counters\": \"software\"");
  std::string err;
  ck_assert_msg(json::parse(js, &err).has_value(), "report JSON parses: %s", err.c_str());
  ck_assert_contains(format_report_table(p.rows), "energy_j  avg_w");
}
END_TEST

int main() {
  Suite *s = suite_create("job_power");
  TCase *tc = tcase_create("job_power");
  tcase_add_test(tc, job_ids_from_keys);
  tcase_add_test(tc, energy_caps_gradient_counters);
  tcase_add_test(tc, jobs_slurmctld_forgot_are_pruned_sooner);
  tcase_add_test(tc, unknown_power_is_not_counted_as_zero);
  tcase_add_test(tc, node_measured_figures_are_preferred);
  tcase_add_test(tc, slot_hints_are_checked_by_name);
  tcase_add_test(tc, estimate_when_a_node_does_not_know);
  tcase_add_test(tc, record_carries_the_figures);
  tcase_add_test(tc, json_reader);
  tcase_add_test(tc, host_port);
  tcase_add_test(tc, status_table);
  tcase_add_test(tc, series_per_job_and_handed_over_once_after_the_end);
  tcase_add_test(tc, report_shows_the_figures);
  tcase_add_test(tc, readers_on_other_threads_while_the_ledger_runs);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
