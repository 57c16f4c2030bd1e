// Per-job power series (jobreport/series.*), saved across restarts of slurmctld (with
// JobPowerLedger's unfinished_series/restore_series), its SVG plot (tools/series_plot.*) and
// the run-time budget's state file and restore decision (controller/budget_state.*).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

// After the C++ headers: Check defines a macro named fail.
#include <check.h>

#include "controller/budget_state.hpp"
#include "controller/ctld_config.hpp"
#include "controller/job_power.hpp"
#include "controller/series_writer.hpp"
#include "jobreport/series.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tools/series_plot.hpp"

using namespace powergrad;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Equality of a std::string (a temporary is fine) with a literal, printing both.
#define ck_assert_string_is(expr, want)                                         \
  do {                                                                                \
    const std::string ck_got_ = (expr);                                               \
    ck_assert_msg(ck_got_ == (want), "'%s' != '%s'", ck_got_.c_str(), std::string(want).c_str()); \
  } while (0)

SeriesPoint pt(double t, double p, double c = 100.0, double g = 120.0) { return {t, p, c, g}; }

std::string temp_dir() {
  char tmpl[] = "/tmp/pg-series-XXXXXX";
  const char *d = mkdtemp(tmpl);
  ck_assert(d != nullptr);
  return d;
}

std::size_t count(const std::string &text, const std::string &part) {
  std::size_t n = 0;
  for (std::size_t pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos + 1)) ++n;
  return n;
}

bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

// The names in a folder, sorted, '.'-files left out.
std::vector<std::string> names_in(const std::string &dir) {
  std::vector<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A node report with one step of each job, `power_w` on the node.
NodeReport node_report(const std::string &node, double power_w,
                       const std::vector<std::string> &jobs) {
  NodeReport r;
  r.node = node;
  r.power_w = power_w;
  r.caps_w = power_w + 50;
  for (const std::string &j : jobs) {
    JobSummary js;
    js.job = j;
    r.jobs.push_back(js);
  }
  return r;
}

}  // namespace

START_TEST(series_keeps_every_point_until_full) {
  JobSeries s(8);
  for (int i = 0; i < 8; ++i) s.add(pt(i, 10.0 * i));
  ck_assert_uint_eq(s.points().size(), 8);
  ck_assert_uint_eq(s.stride(), 1);
  ck_assert_double_eq(s.points()[7].power_w, 70.0);
}
END_TEST

START_TEST(a_full_series_merges_pairs_and_still_covers_the_whole_job) {
  JobSeries s(8);
  for (int i = 0; i < 9; ++i) s.add(pt(i, 10.0 * i));
  // 8 points merged into 4 (means of pairs), then the 9th stored: 5 points, stride 2.
  std::vector<SeriesPoint> p = s.points();
  ck_assert_uint_eq(s.stride(), 2);
  ck_assert_uint_eq(p.size(), 5);
  ck_assert_double_eq_tol(p[0].t_s, 0.5, 1e-9);
  ck_assert_double_eq_tol(p[0].power_w, 5.0, 1e-9);
  ck_assert_double_eq_tol(p[3].power_w, 65.0, 1e-9);
  ck_assert_double_eq_tol(p[4].t_s, 8.0, 1e-9);
  // Many more points: never above capacity, first and last times still the job's.
  for (int i = 9; i < 1000; ++i) s.add(pt(i, 10.0 * i));
  p = s.points();
  ck_assert_uint_le(p.size(), 9);  // capacity plus at most one partial point
  // The first point stands for the first `stride` periods, the last for the latest ones.
  ck_assert_uint_ge(s.stride(), 128);
  ck_assert_double_le(p.front().t_s, static_cast<double>(s.stride()));
  ck_assert_double_ge(p.back().t_s, 999.0 - static_cast<double>(s.stride()));
  // Means stay means: power is 10 x time everywhere.
  for (const SeriesPoint &q : p) ck_assert_double_eq_tol(q.power_w, 10.0 * q.t_s, 1e-6);
}
END_TEST

START_TEST(merging_keeps_known_values_over_unknown_ones) {
  SeriesPoint m = merge_points(pt(0, kNaN, 100, kNaN), pt(2, 50, kNaN, kNaN));
  ck_assert_double_eq(m.t_s, 1.0);
  ck_assert_double_eq(m.power_w, 50.0);
  ck_assert_double_eq(m.cap_w, 100.0);
  ck_assert(std::isnan(m.grant_w));
}
END_TEST

START_TEST(default_capacity_is_720) {
  JobSeries s;
  for (int i = 0; i < 5000; ++i) s.add(pt(i, 1));
  ck_assert_uint_le(s.points().size(), 721);
  ck_assert_uint_eq(s.capacity(), 720);
}
END_TEST

START_TEST(csv_round_trip) {
  JobSeries s;
  s.add(pt(1764000000.0, 212.5, 240.0, 250.0));
  s.add(pt(1764000001.0, kNaN, 230.0, kNaN));
  s.add(pt(1764000002.5, 199.25, 220.0, 225.0));
  const std::string csv = series_to_csv(1234, s);
  ck_assert_contains(csv, "# powergrad series v=1 job=1234 stride=1\ntime_s,power_w,cap_w,grant_w\n");
  ck_assert_contains(csv, "1764000001.000,,230.00,\n");
  const SeriesParse p = parse_series_csv(csv);
  ck_assert_msg(p.points.has_value(), "%s", p.error.c_str());
  ck_assert_uint_eq(p.job_id, 1234);
  ck_assert_uint_eq(p.points->size(), 3);
  ck_assert_double_eq_tol((*p.points)[0].power_w, 212.5, 1e-9);
  ck_assert(std::isnan((*p.points)[1].power_w));
  ck_assert(std::isnan((*p.points)[1].grant_w));
  ck_assert_double_eq_tol((*p.points)[2].t_s, 1764000002.5, 1e-6);
  ck_assert_double_eq_tol((*p.points)[2].grant_w, 225.0, 1e-9);
}
END_TEST

START_TEST(malformed_csv_is_refused_with_the_line) {
  SeriesParse p = parse_series_csv("time_s,power_w,cap_w,grant_w\n1,2,3\n");
  ck_assert(!p.points);
  ck_assert_std_str_eq(p.error, "line 2: expected 4 fields, found 3");
  p = parse_series_csv("time_s,power_w,cap_w,grant_w\n1,x,3,4\n");
  ck_assert_std_str_eq(p.error, "line 2: power_w 'x' is not a number");
  p = parse_series_csv("hello\n");
  ck_assert_contains(p.error, "line 1: expected the header");
  p = parse_series_csv("time_s,power_w,cap_w,grant_w\n5,1,1,1\n4,1,1,1\n");
  ck_assert_std_str_eq(p.error, "line 3: time goes backwards");
}
END_TEST

START_TEST(files_are_written_and_pruned) {
  const std::string dir = temp_dir() + "/a/series";
  JobSeries s;
  s.add(pt(10, 100));
  for (std::uint32_t id = 1; id <= 5; ++id) {
    ck_assert_string_is(write_series_file(dir, id, s), "");
    const std::string f = series_file_path(dir, id);
    // Make the older ids older.
    const std::string touch = "touch -d '@" + std::to_string(1000000 + id) + "' " + f;
    ck_assert_int_eq(std::system(touch.c_str()), 0);
  }
  struct stat st{};
  ck_assert_int_eq(stat(series_file_path(dir, 5).c_str(), &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0644);
  std::ofstream(dir + "/notes.txt") << "not a series\n";
  std::string err;
  ck_assert_uint_eq(prune_series_dir(dir, 3, 0, 2000000, &err), 2);
  ck_assert_std_str_eq(err, "");
  ck_assert_int_ne(access(series_file_path(dir, 1).c_str(), F_OK), 0);
  ck_assert_int_ne(access(series_file_path(dir, 2).c_str(), F_OK), 0);
  ck_assert_int_eq(access(series_file_path(dir, 3).c_str(), F_OK), 0);
  ck_assert_int_eq(access((dir + "/notes.txt").c_str(), F_OK), 0);
  // By age: files older than one day at now = 1000004 + 1.5 days.
  ck_assert_uint_eq(prune_series_dir(dir, 100, 1.0, 1000004 + 1.5 * 86400, &err), 3);
  // Not writable: the error names the path.
  const std::string bad = write_series_file("/proc/no/such", 7, s);
  ck_assert_contains(bad, "/proc/no");
}
END_TEST

START_TEST(running_series_saved_and_loaded_back) {
  const std::string dir = temp_dir() + "/state/series-running";
  // A job past one merge (stride 2, a partial point pending) and a short one.
  JobSeries long_job(8);
  for (int i = 0; i < 11; ++i) long_job.add(pt(1000 + i, 100 + i, kNaN, 150));
  ck_assert_uint_eq(long_job.stride(), 2);
  JobSeries short_job;
  short_job.add(pt(2000, 50.25, 60, kNaN));
  // Nothing saved yet: nothing to load, no error.
  RunningSeriesLoad none = load_running_series(dir, {7, 8});
  ck_assert(none.series.empty() && none.errors.empty() && none.removed == 0);
  ck_assert_string_is(save_running_series(dir, {{7, long_job}, {8, short_job}}), "");
  ck_assert(names_in(dir) == (std::vector<std::string>{"7.csv", "8.csv"}));
  // Same format as the series folder's files.
  std::string err;
  ck_assert(read_series_file(series_file_path(dir, 8), &err).has_value());
  RunningSeriesLoad r = load_running_series(dir, {7, 8, 9});
  ck_assert_msg(r.errors.empty(), "%s", r.errors.empty() ? "" : r.errors[0].c_str());
  ck_assert_uint_eq(r.removed, 0);
  ck_assert_uint_eq(r.series.size(), 2);
  ck_assert_uint_eq(r.series[0].first, 7);
  const JobSeries &back = r.series[0].second;
  ck_assert_uint_eq(back.stride(), long_job.stride());
  const auto a = long_job.points(), b = back.points();
  ck_assert_uint_eq(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ck_assert_double_eq_tol(a[i].t_s, b[i].t_s, 1e-3);
    ck_assert_double_eq_tol(a[i].power_w, b[i].power_w, 1e-2);
    ck_assert(std::isnan(b[i].cap_w));
    ck_assert_double_eq_tol(a[i].grant_w, b[i].grant_w, 1e-2);
  }
  ck_assert_double_eq(r.series[1].second.points()[0].power_w, 50.25);
  ck_assert(std::isnan(r.series[1].second.points()[0].grant_w));
  // Loading keeps the files (the next save replaces them).
  ck_assert(names_in(dir) == (std::vector<std::string>{"7.csv", "8.csv"}));
  // A save without job 8 (its series handed over) removes its file; others are left alone.
  std::ofstream(dir + "/notes.txt") << "not a series\n";
  ck_assert_string_is(save_running_series(dir, {{7, long_job}}), "");
  ck_assert(names_in(dir) == (std::vector<std::string>{"7.csv", "notes.txt"}));
  ck_assert_string_is(save_running_series(dir, {}), "");
  ck_assert(names_in(dir) == (std::vector<std::string>{"notes.txt"}));
  // Saving into a folder that cannot be made says where.
  ck_assert_contains(save_running_series("/proc/no/such", {{7, long_job}}), "/proc/no");
}
END_TEST

START_TEST(stale_running_series_files_are_removed_at_load) {
  const std::string dir = temp_dir() + "/series-running";
  JobSeries s;
  s.add(pt(10, 100));
  ck_assert_string_is(save_running_series(dir, {{11, s}, {12, s}, {13, s}}), "");
  std::ofstream(series_file_path(dir, 14)) << "garbage\n";  // unreadable: removed
  std::ofstream(dir + "/15.csv.tmp") << "half a write";     // leftover: removed
  std::ofstream(dir + "/README") << "kept\n";               // not ours: kept
  // slurmctld knows 11 (running) and 14 only; 12 and 13 are gone.
  RunningSeriesLoad r = load_running_series(dir, {11, 14});
  ck_assert_uint_eq(r.series.size(), 1);
  ck_assert_uint_eq(r.series[0].first, 11);
  ck_assert_uint_eq(r.removed, 4);
  ck_assert_uint_eq(r.errors.size(), 1);
  ck_assert_contains(r.errors[0], series_file_path(dir, 14));
  ck_assert(names_in(dir) == (std::vector<std::string>{"11.csv", "README"}));
  // A file whose header names another job is not taken for this one.
  std::ofstream(series_file_path(dir, 16)) << series_to_csv(99, s);
  r = load_running_series(dir, {11, 16});
  ck_assert_uint_eq(r.series.size(), 1);
  ck_assert_uint_eq(r.series[0].first, 11);
  ck_assert_uint_eq(r.errors.size(), 1);
  ck_assert_contains(r.errors[0], "job 99");
  ck_assert(!exists(series_file_path(dir, 16)));
}
END_TEST

START_TEST(ledger_carries_series_over_a_restart) {
  // Before the restart: job 5 sampled three periods, job 6 one period then handed over.
  JobPowerLedger before;
  for (int i = 0; i < 3; ++i) {
    before.on_report(node_report("n1", 200 + i, {"5.0"}), 100 + i);
    if (i == 2) before.on_report(node_report("n2", 80, {"6.0"}), 102);
    before.sample(100 + i);
  }
  ck_assert_uint_eq(before.unfinished_series().size(), 2);
  std::set<std::uint32_t> running{5};
  ck_assert_uint_eq(before.take_finished_series(200, 2, &running).size(), 1);  // job 6
  const auto unfinished = before.unfinished_series();
  ck_assert_uint_eq(unfinished.size(), 1);
  ck_assert_uint_eq(unfinished[0].first, 5);
  const std::string dir = temp_dir() + "/series-running";
  ck_assert_string_is(save_running_series(dir, unfinished), "");

  // After: the new ledger takes job 5's series back and extends it.
  RunningSeriesLoad r = load_running_series(dir, {5});
  ck_assert_uint_eq(r.series.size(), 1);
  JobPowerLedger after;
  after.restore_series(5, r.series[0].second, 300);
  // Not quiet at once: the quiet time runs from the restore.
  ck_assert_uint_eq(after.take_finished_series(301, 2, nullptr).size(), 0);
  after.on_report(node_report("n1", 250, {"5.0"}), 302);
  after.sample(302);
  const auto pts = after.series(5).points();
  ck_assert_uint_eq(pts.size(), 4);
  ck_assert_double_eq_tol(pts[0].t_s, 100, 1e-3);
  ck_assert_double_eq_tol(pts[2].power_w, 202, 1e-2);
  ck_assert_double_eq_tol(pts[3].t_s, 302, 1e-3);
  ck_assert_double_eq_tol(pts[3].power_w, 250, 1e-2);
  // Points the ledger already had follow the saved ones; older ones are dropped.
  JobPowerLedger early;
  early.on_report(node_report("n1", 260, {"5.0"}), 101);
  early.sample(101);
  early.on_report(node_report("n1", 270, {"5.0"}), 303);
  early.sample(303);
  early.restore_series(5, r.series[0].second, 304);
  const auto e = early.series(5).points();
  ck_assert_uint_eq(e.size(), 4);
  ck_assert_double_eq_tol(e[3].power_w, 270, 1e-2);
  // A job that ended meanwhile is handed over once quiet, as at any job's end.
  JobPowerLedger ended;
  ended.restore_series(5, r.series[0].second, 300);
  const std::set<std::uint32_t> none_running;
  const auto done = ended.take_finished_series(303, 2, &none_running);
  ck_assert_uint_eq(done.size(), 1);
  ck_assert_uint_eq(done[0].second.points().size(), 3);
  // A series already handed over is not taken back.
  ended.restore_series(5, r.series[0].second, 304);
  ck_assert_uint_eq(ended.unfinished_series().size(), 0);
}
END_TEST

START_TEST(writer_saves_in_its_own_thread_in_order) {
  // Jobs 5 and 6 run; a checkpoint saves both; then 6 ends: its final series is written
  // and its running copy removed; a checkpoint after that does not bring the copy back.
  JobPowerLedger ledger;
  for (int i = 0; i < 3; ++i) {
    ledger.on_report(node_report("n1", 200 + i, {"5.0"}), 100 + i);
    ledger.on_report(node_report("n2", 100 + i, {"6.0"}), 100 + i);
    ledger.sample(100 + i);
  }
  const std::string root = temp_dir();
  SeriesWriter::Settings ws;
  ws.series_dir = root + "/series";
  ws.running_dir = root + "/series-running";
  std::vector<std::string> logged;
  std::mutex log_mu;
  SeriesWriter w(
      ws, ledger, [] { return 1000.0; },
      [&](bool error, const std::string &m) {
        std::lock_guard<std::mutex> g(log_mu);
        logged.push_back((error ? "E " : "I ") + m);
      });
  w.checkpoint();
  ck_assert(w.idle_within(10));
  ck_assert(names_in(ws.running_dir) == (std::vector<std::string>{"5.csv", "6.csv"}));
  ck_assert_uint_eq(w.stats().checkpoints, 1);
  ck_assert(w.stats().last_checkpoint_ok);
  const std::set<std::uint32_t> running{5};
  w.finished(ledger.take_finished_series(200, 2, &running));
  w.checkpoint();
  ck_assert(w.idle_within(10));
  ck_assert(names_in(ws.series_dir) == (std::vector<std::string>{"6.csv"}));
  ck_assert(names_in(ws.running_dir) == (std::vector<std::string>{"5.csv"}));
  const auto back = read_series_file(series_file_path(ws.series_dir, 6), nullptr);
  ck_assert(back.has_value());
  ck_assert_uint_eq(back->points().size(), 3);
  const SeriesWriter::Stats st = w.stats();
  ck_assert_uint_eq(st.written, 1);
  ck_assert_uint_eq(st.failed, 0);
  ck_assert_uint_eq(st.checkpoints, 2);
  // The interval between checkpoints is the base one while they are quick.
  ck_assert_double_eq_tol(w.checkpoint_interval_s(), 60.0, 1e-9);
  ck_assert(w.stop_within(10));
  ck_assert_uint_eq(logged.size(), 0);
  // A checkpoint that cannot save says so in the figures (slurmctld's exit logs "saved"
  // only when it did).
  SeriesWriter::Settings bad = ws;
  bad.running_dir = "/proc/no/such/folder";
  SeriesWriter wb(
      bad, ledger, [] { return 1000.0; }, [](bool, const std::string &) {});
  wb.checkpoint();
  ck_assert(wb.idle_within(10));
  ck_assert_uint_eq(wb.stats().checkpoints, 1);
  ck_assert(!wb.stats().last_checkpoint_ok);
  ck_assert(wb.stop_within(10));
}
END_TEST

START_TEST(writer_bounds_its_queue_and_reports_errors) {
  JobPowerLedger ledger;
  ledger.on_report(node_report("n1", 200, {"7.0"}), 100);
  ledger.sample(100);
  ledger.on_report(node_report("n1", 200, {"8.0"}), 100);
  ledger.sample(100);
  auto done = ledger.take_finished_series(200, 2, nullptr);
  ck_assert_uint_eq(done.size(), 2);
  SeriesWriter::Settings ws;
  ws.series_dir = "/proc/no/such/folder";  // cannot be created: every write fails
  ws.max_queued = 1;                       // the second series finds the queue full
  std::vector<std::string> logged;
  std::mutex log_mu;
  {
    SeriesWriter w(
        ws, ledger, [] { return 1000.0; },
        [&](bool error, const std::string &m) {
          std::lock_guard<std::mutex> g(log_mu);
          if (error) logged.push_back(m);
        });
    w.finished(std::move(done));
    ck_assert(w.stop_within(10));
    const SeriesWriter::Stats st = w.stats();
    ck_assert_uint_eq(st.written, 0);
    ck_assert_uint_eq(st.failed + st.dropped, 2);
    ck_assert_uint_ge(st.dropped, 0);
  }
  std::lock_guard<std::mutex> g(log_mu);
  ck_assert_uint_ge(logged.size(), 1);
  ck_assert_contains(logged[0], "power series not written");
}
END_TEST

START_TEST(svg_has_the_lines_and_labels) {
  std::vector<SeriesPoint> p;
  for (int i = 0; i < 20; ++i) p.push_back(pt(1000 + i, 100 + 5 * i, 200, i < 10 ? kNaN : 210));
  const std::string svg = series_plot_svg(77, p);
  ck_assert_contains(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
  ck_assert_contains(svg, "job 77: power and cap over time (20 points)");
  ck_assert_uint_eq(count(svg, "<polyline class=\"power\""), 1);
  ck_assert_uint_eq(count(svg, "<polyline class=\"cap\""), 1);
  ck_assert_uint_eq(count(svg, "<polyline class=\"grant\""), 1);  // only the known half
  ck_assert_contains(svg, "power (W)");
  ck_assert_contains(svg, "cap (W)");
  ck_assert_contains(svg, "seconds since the job's first sample");
  ck_assert_contains(svg, "</svg>\n");
  // The power line has one vertex per point, rising (SVG y goes down).
  const std::size_t at = svg.find("<polyline class=\"power\"");
  const std::size_t pts = svg.find("points=\"", at) + 8;
  const std::string list = svg.substr(pts, svg.find('"', pts) - pts);
  ck_assert_uint_eq(count(list, ",") , 20);
  std::istringstream in(list);
  std::string v;
  double prev_y = 1e9;
  while (in >> v) {
    const double y = std::atof(v.c_str() + v.find(',') + 1);
    ck_assert_double_lt(y, prev_y);
    prev_y = y;
  }
  // An unknown stretch breaks a line into two.
  p[5].power_w = kNaN;
  ck_assert_uint_eq(count(series_plot_svg(77, p), "<polyline class=\"power\""), 2);
  // Nothing known: no lines, and it says so.
  const std::string empty = series_plot_svg(1, {pt(1, kNaN, kNaN, kNaN)});
  ck_assert_uint_eq(count(empty, "<polyline"), 0);
  ck_assert_contains(empty, "no power readings");
}
END_TEST

START_TEST(budget_state_round_trip) {
  RuntimeBudget b;
  b.budget_w = 450;
  b.config_budget_w = 800;
  b.uid = 0;
  b.set_at_s = 1764000000;
  std::string text = format_runtime_budget(b);
  ck_assert_std_str_eq(text, "v=1 budget_w=450 config_budget_w=800 uid=0 set_at=1764000000\n");
  std::string err;
  auto p = parse_runtime_budget(text, &err);
  ck_assert_msg(p.has_value(), "%s", err.c_str());
  ck_assert_double_eq(p->budget_w, 450);
  ck_assert(!p->scheduled_w);
  b.scheduled_w = 600;
  p = parse_runtime_budget(format_runtime_budget(b), &err);
  ck_assert(p && p->scheduled_w && *p->scheduled_w == 600);
  ck_assert(!parse_runtime_budget("v=2 budget_w=1", &err));
  ck_assert_contains(err, "version");
  ck_assert(!parse_runtime_budget("v=1 budget_w=abc config_budget_w=1 uid=0 set_at=1", &err));
  ck_assert_contains(err, "budget_w");
  // Files: write, read, remove; absent is not an error.
  const std::string path = temp_dir() + "/state/budget";
  ck_assert_string_is(write_runtime_budget(path, b), "");
  p = read_runtime_budget(path, &err);
  ck_assert(p && err.empty());
  ck_assert_string_is(remove_runtime_budget(path), "");
  ck_assert(!read_runtime_budget(path, &err));
  ck_assert_std_str_eq(err, "");
  std::ofstream(path) << "junk\n";
  ck_assert(!read_runtime_budget(path, &err));
  ck_assert_contains(err, path);
}
END_TEST

START_TEST(restore_decision) {
  RuntimeBudget b;
  b.budget_w = 450;
  b.config_budget_w = 800;
  b.uid = 0;
  b.set_at_s = 1764000000;
  // Nothing saved: nothing to do.
  ck_assert(decide_budget_restore(std::nullopt, 800, false, std::nullopt).action ==
            BudgetRestore::Action::none);
  // Config unchanged: applies again, and says so.
  BudgetRestore r = decide_budget_restore(b, 800, false, std::nullopt);
  ck_assert(r.action == BudgetRestore::Action::apply);
  ck_assert_double_eq(r.budget_w, 450);
  ck_assert_contains(r.message, "budget 450 W set at run time by uid 0 at ");
  ck_assert_contains(r.message, " still applies; powergrad.conf says 800 W");
  // Config changed: the config wins.
  r = decide_budget_restore(b, 900, false, std::nullopt);
  ck_assert(r.action == BudgetRestore::Action::drop);
  ck_assert_contains(r.message, "powergrad.conf's Budget changed from 800 W to 900 W");
  // With a schedule: kept while the schedule's value is what it was, dropped once it moved.
  b.scheduled_w = 600;
  ck_assert(decide_budget_restore(b, 800, true, 600.0).action == BudgetRestore::Action::apply);
  r = decide_budget_restore(b, 800, true, 700.0);
  ck_assert(r.action == BudgetRestore::Action::drop);
  ck_assert_contains(r.message, "the budget schedule has changed since (600 W then, 700 W now)");
  // A schedule configured after the budget was set counts as a change.
  b.scheduled_w.reset();
  ck_assert(decide_budget_restore(b, 800, true, 700.0).action == BudgetRestore::Action::drop);
  // The schedule removed since: no schedule to respect, the budget applies.
  b.scheduled_w = 600;
  ck_assert(decide_budget_restore(b, 800, false, std::nullopt).action == BudgetRestore::Action::apply);
}
END_TEST

START_TEST(state_and_series_folders_from_powergrad_conf) {
  ConfigResult r = parse_controller_config("Budget=800\n", "pg.conf");
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  ck_assert_uint_eq(r.config->series_keep, 1000);
  ck_assert_double_eq(r.config->series_keep_days, 30);
  ck_assert_string_is(resolve_state_dir(*r.config, "/var/spool/slurmctld/"), "/var/spool/slurmctld/powergrad");
  ck_assert_string_is(resolve_series_dir(*r.config, "/var/spool/slurmctld"),
                      "/var/spool/slurmctld/powergrad/series");
  ck_assert_string_is(resolve_series_dir(*r.config, ""), "");
  r = parse_controller_config("Budget=800\nStateDir=/srv/pg SeriesKeep=5 SeriesKeepDays=0\n", "pg.conf");
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  ck_assert_string_is(resolve_series_dir(*r.config, "/x"), "/srv/pg/series");
  ck_assert_uint_eq(r.config->series_keep, 5);
  r = parse_controller_config("Budget=800\nSeriesDir=/srv/series\n", "pg.conf");
  ck_assert_string_is(resolve_series_dir(*r.config, "/x"), "/srv/series");
  ck_assert_string_is(resolve_state_dir(*r.config, "/x"), "/x/powergrad");
  r = parse_controller_config("Budget=800\nSeriesDir=relative\n", "pg.conf");
  ck_assert_std_str_eq(r.error, "pg.conf:2: SeriesDir='relative' is not an absolute path");
  r = parse_controller_config("Budget=800\nSeriesKeep=1.5\n", "pg.conf");
  ck_assert_contains(r.error, "pg.conf:2: SeriesKeep='1.5'");
}
END_TEST

int main() {
  Suite *s = suite_create("series");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, series_keeps_every_point_until_full);
  tcase_add_test(tc, a_full_series_merges_pairs_and_still_covers_the_whole_job);
  tcase_add_test(tc, merging_keeps_known_values_over_unknown_ones);
  tcase_add_test(tc, default_capacity_is_720);
  tcase_add_test(tc, csv_round_trip);
  tcase_add_test(tc, malformed_csv_is_refused_with_the_line);
  tcase_add_test(tc, files_are_written_and_pruned);
  tcase_add_test(tc, running_series_saved_and_loaded_back);
  tcase_add_test(tc, stale_running_series_files_are_removed_at_load);
  tcase_add_test(tc, ledger_carries_series_over_a_restart);
  tcase_add_test(tc, writer_saves_in_its_own_thread_in_order);
  tcase_add_test(tc, writer_bounds_its_queue_and_reports_errors);
  tcase_add_test(tc, svg_has_the_lines_and_labels);
  tcase_add_test(tc, budget_state_round_trip);
  tcase_add_test(tc, restore_decision);
  tcase_add_test(tc, state_and_series_folders_from_powergrad_conf);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
