// powergrad.conf and the budget schedule: parsing, errors that name file/line/problem, and
// the ClusterController configuration built from them for slurm.conf's nodes.
#include <sched.h>

#include <cmath>
#include <ctime>
#include <string>
#include <vector>

// Check after the standard headers: its macros break some of them.
#include <check.h>

#include "controller/ctld_config.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

const char *kGood = R"(# example
Budget=4000  ControlPeriod=0.5
LeaseTime=4
Listen=127.0.0.1:7000
AdminUsers=root,alice
NodeFloor=60 NodeMax=350
Group=row Limit=3500
Group=rack1 Nodes=n[1-2] Limit=1200 Parent=row
Group=rack2 Nodes=n[3-4] Parent=row   # no own limit
Node=n[1,3] Floor=80 Max=400
)";

ControllerFileConfig parse_ok(const std::string &text) {
  ConfigResult r = parse_controller_config(text, "pg.conf");
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  return *r.config;
}

std::string parse_error(const std::string &text) {
  ConfigResult r = parse_controller_config(text, "pg.conf");
  ck_assert_msg(!r.config, "accepted: %s", text.c_str());
  return r.error;
}

}  // namespace

START_TEST(good_file_parses) {
  ControllerFileConfig c = parse_ok(kGood);
  ck_assert(c.budget_w == 4000 && c.period_s == 0.5 && c.lease_s == 4);
  ck_assert_std_str_eq(c.listen_host, "127.0.0.1");
  ck_assert_uint_eq(c.listen_port, 7000);
  ck_assert_uint_eq(c.admin_users.size(), 2);
  ck_assert(c.node_floor_w == 60 && c.node_max_w == 350);
  ck_assert_uint_eq(c.groups.size(), 3);
  ck_assert_std_str_eq(c.groups[1].parent, "row");
  ck_assert_uint_eq(c.groups[1].nodes.size(), 2);
  ck_assert_std_str_eq(c.groups[1].nodes[1], "n2");
  ck_assert(c.groups[2].limit_w < 0);
  ck_assert_uint_eq(c.node_overrides.size(), 1);
  ck_assert_std_str_eq(c.node_overrides[0].nodes[1], "n3");
}
END_TEST

START_TEST(defaults_and_case) {
  ControllerFileConfig c = parse_ok("budget=100\n");
  ck_assert(c.period_s == 1.0 && c.lease_s == 5.0);
  ck_assert_uint_eq(c.listen_port, 6830);
  ck_assert_std_str_eq(c.admin_users[0], "root");
  // Controller tuning: ClusterConfig's own defaults.
  ck_assert(c.hysteresis == ClusterConfig{}.hysteresis && c.hysteresis == 0.3);
  ck_assert_uint_eq(c.curve_segments, 0);
  ClusterConfigResult r = build_cluster_config(c, {"n1"}, 1);
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  ck_assert(r.config->hysteresis == 0.3);
  ck_assert(c.hysteresis_settle_s == ClusterConfig{}.hysteresis_settle_s &&
            r.config->hysteresis_settle_s == 120.0);
  ck_assert_uint_eq(r.config->curve_segments, 0);
  ck_assert_uint_eq(c.step_threads, 0);
  // 0: resolved by the process's CPUs, at most 4 (this process may run on at least one).
  ck_assert_uint_eq(r.config->step_threads, affinity_step_threads());
  ck_assert_uint_ge(r.config->step_threads, 1);
  ck_assert_uint_le(r.config->step_threads, kAutoStepThreads);
  // Narrowed to one CPU (as taskset or a cgroup would): one thread.
  cpu_set_t saved, one;
  ck_assert_int_eq(sched_getaffinity(0, sizeof saved, &saved), 0);
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &saved)) {
      CPU_SET(cpu, &one);
      break;
    }
  ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
  const unsigned narrowed = affinity_step_threads();
  ck_assert_int_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
  ck_assert_uint_eq(narrowed, 1);
}
END_TEST

START_TEST(controller_tuning_keys) {
  ControllerFileConfig c = parse_ok(
      "Budget=100\nHysteresis=0.25 CurveSegments=64 HysteresisSettleTime=30\n"
      "StepThreads=2\n");
  ck_assert(c.hysteresis == 0.25);
  ck_assert(c.hysteresis_settle_s == 30.0);
  ck_assert_uint_eq(c.curve_segments, 64);
  ClusterConfigResult r = build_cluster_config(c, {"n1", "n2"}, 1);
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  ck_assert(r.config->hysteresis == 0.25);
  ck_assert(r.config->hysteresis_settle_s == 30.0);
  ck_assert(parse_ok("Budget=100\nhysteresissettletime=0\n").hysteresis_settle_s == 0.0);
  ck_assert(parse_ok("Budget=100\nHysteresisSettleTime=86400\n").hysteresis_settle_s == 86400.0);
  ck_assert_uint_eq(r.config->curve_segments, 64);
  ck_assert_uint_eq(c.step_threads, 2);
  ck_assert_uint_eq(r.config->step_threads, 2);
  ck_assert_uint_eq(parse_ok("Budget=100\nstepthreads=0\n").step_threads, 0);
  ck_assert_uint_eq(parse_ok("Budget=100\nStepThreads=64\n").step_threads, 64);
  // Bounds: 0 and just below 0.9; 0 (by cluster size), 1 and 1024 segments.
  ck_assert(parse_ok("Budget=100\nhysteresis=0\n").hysteresis == 0.0);
  ck_assert(parse_ok("Budget=100\nHYSTERESIS=0.899\n").hysteresis == 0.899);
  ck_assert_uint_eq(parse_ok("Budget=100\nCurveSegments=0\n").curve_segments, 0);
  ck_assert_uint_eq(parse_ok("Budget=100\nCurveSegments=1\n").curve_segments, 1);
  ck_assert_uint_eq(parse_ok("Budget=100\ncurvesegments=1024\n").curve_segments, 1024);
  // A running job's record: every 30 s unless set; 0 (every period) up to an hour.
  ck_assert(parse_ok("Budget=100\n").record_interval_s == 30.0);
  ck_assert(parse_ok("Budget=100\nRecordInterval=0\n").record_interval_s == 0.0);
  ck_assert(parse_ok("Budget=100\nrecordinterval=3600\n").record_interval_s == 3600.0);
  ck_assert(parse_ok("Budget=100\nRecordInterval=2.5\n").record_interval_s == 2.5);
  struct {
    const char *text;
    const char *error;
  } cases[] = {
      {"Budget=100\nHysteresis=0.9\n", "pg.conf:2: Hysteresis='0.9': expected a number from 0"},
      {"Budget=100\nHysteresis=1\n", "pg.conf:2: Hysteresis='1'"},
      {"Budget=100\nHysteresis=-0.1\n", "pg.conf:2: Hysteresis='-0.1'"},
      {"Budget=100\nHysteresis=nan\n", "pg.conf:2: Hysteresis='nan'"},
      {"Budget=100\nHysteresis=\n", "pg.conf:2: Hysteresis=''"},
      {"Budget=100\nHysteresisSettleTime=-1\n",
       "pg.conf:2: HysteresisSettleTime='-1': expected seconds from 0 to 86400"},
      {"Budget=100\nHysteresisSettleTime=86401\n", "pg.conf:2: HysteresisSettleTime='86401'"},
      {"Budget=100\nHysteresisSettleTime=nan\n", "pg.conf:2: HysteresisSettleTime='nan'"},
      {"Budget=100\nHysteresisSettleTime=2m\n", "pg.conf:2: HysteresisSettleTime='2m'"},
      {"Budget=100\n\nCurveSegments=1025\n", "pg.conf:3: CurveSegments='1025': expected a whole"},
      {"Budget=100\nCurveSegments=-1\n", "pg.conf:2: CurveSegments='-1'"},
      {"Budget=100\nCurveSegments=2.5\n", "pg.conf:2: CurveSegments='2.5'"},
      {"Budget=100\nCurveSegments=many\n", "pg.conf:2: CurveSegments='many'"},
      {"Budget=100\nStepThreads=65\n",
       "pg.conf:2: StepThreads='65': expected a whole number from 1 to 64, or 0 (by the CPUs, "
       "at most 4)"},
      {"Budget=100\nStepThreads=-1\n", "pg.conf:2: StepThreads='-1'"},
      {"Budget=100\nStepThreads=1.5\n", "pg.conf:2: StepThreads='1.5'"},
      {"Budget=100\nStepThreads=all\n", "pg.conf:2: StepThreads='all'"},
      {"Budget=100\nHysteresis=0.1\nHysteresis=0.2\n", "pg.conf:3: 'hysteresis' is set twice"},
      {"Budget=100\nRecordInterval=3601\n",
       "pg.conf:2: RecordInterval='3601': expected seconds from 0 (every control period) to 3600"},
      {"Budget=100\nRecordInterval=-1\n", "pg.conf:2: RecordInterval='-1'"},
      {"Budget=100\nRecordInterval=1m\n", "pg.conf:2: RecordInterval='1m'"},
      {"Budget=100\nRecordInterval=nan\n", "pg.conf:2: RecordInterval='nan'"},
  };
  for (const auto &t : cases) {
    const std::string err = parse_error(t.text);
    ck_assert_msg(err.find(t.error) != std::string::npos, "'%s' -> '%s', want '%s'", t.text,
                  err.c_str(), t.error);
  }
}
END_TEST

START_TEST(errors_name_file_line_and_problem) {
  struct {
    const char *text;
    const char *error;
  } cases[] = {
      {"ControlPeriod=1\n", "pg.conf: no Budget="},
      {"Budget=100\nBudgt=5\n", "pg.conf:2: unknown key 'budgt'"},
      {"Budget=abc\n", "pg.conf:1: Budget='abc' is not a number of watts"},
      {"Budget=-5\n", "Budget='-5'"},
      {"Budget=nan\n", "Budget='nan'"},
      {"Budget=100 Budget=200\n", "pg.conf:1: 'budget' is set twice"},
      {"Budget=100\nfoo\n", "pg.conf:2: 'foo' is not Key=Value"},
      {"Budget=100\nGroup=r Nodes=n[1-\n", "pg.conf:2: Nodes='n[1-' is not a valid Slurm hostlist"},
      {"Budget=100\nGroup=r Parent=nowhere\n", "pg.conf:2: Parent='nowhere' is not a group"},
      {"Budget=100\nGroup=r\nGroup=r\n", "pg.conf:3: group 'r' already defined at line 2"},
      {"Budget=100\nGroup=r Color=red\n", "unknown Group attribute 'color'"},
      {"Budget=100\nNode=n1 Floor=9 Max=5\n", "pg.conf:2: Floor is above Max"},
      {"Budget=100\nNode=n1 Watts=5\n", "unknown Node attribute 'watts'"},
      {"Budget=100 Group=x\n", "'group=' must start its own line"},
      {"Budget=100\nListen=nohost\n", "Listen='nohost': expected HOST:PORT"},
      {"Budget=100\nListen=h:70000\n", "Listen='h:70000'"},
      {"Budget=100\nControlPeriod=0\n", "ControlPeriod='0'"},
      {"Budget=100\nControlPeriod=2 LeaseTime=1\n", "LeaseTime is shorter than ControlPeriod"},
      {"Budget=100\nAdminUsers=root,,bob\n", "AdminUsers: '' is not a user name"},
      {"Budget=100\nBudgetSchedule=relative.conf\n", "not an absolute path"},
  };
  for (const auto &c : cases) {
    const std::string err = parse_error(c.text);
    ck_assert_msg(err.find(c.error) != std::string::npos, "'%s' -> '%s', want '%s'", c.text,
                  err.c_str(), c.error);
  }
  ck_assert(load_controller_config("/nonexistent/pg.conf").error.find("cannot read") !=
            std::string::npos);
}
END_TEST

START_TEST(hostlist_expansion) {
  auto a = expand_hostlist("n[1-3,7],gpu01");
  ck_assert(a.has_value());
  ck_assert_uint_eq(a->size(), 5);
  ck_assert_std_str_eq((*a)[3], "n7");
  ck_assert_std_str_eq((*a)[4], "gpu01");
  ck_assert(!expand_hostlist(""));
  ck_assert(!expand_hostlist("n[1-2"));
  ck_assert(!expand_hostlist("n 1"));
}
END_TEST

START_TEST(cluster_config_for_slurm_nodes) {
  ControllerFileConfig c = parse_ok(kGood);
  ClusterConfigResult r = build_cluster_config(c, {"n1", "n2", "n3", "n4", "n5"}, 7);
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  const ClusterConfig &cc = *r.config;
  ck_assert(cc.budget_w == 4000 && cc.epoch == 7 && cc.lease_s == 4);
  ck_assert_uint_eq(cc.groups.size(), 3);
  ck_assert_uint_eq(cc.groups[1].parent, 0);
  ck_assert(cc.groups[1].max_w == 1200);
  // n5 is in no group: not managed, not in the budget.
  ck_assert_uint_eq(cc.nodes.size(), 4);
  ck_assert_uint_eq(r.unmanaged.size(), 1);
  ck_assert_std_str_eq(r.unmanaged[0], "n5");
  ck_assert(cc.nodes[0].floor_w == 80 && cc.nodes[0].max_w == 400);  // Node=n[1,3]
  ck_assert(cc.nodes[1].floor_w == 60 && cc.nodes[1].max_w == 350);  // defaults
  ck_assert_uint_eq(cc.nodes[0].group, 1);
  ck_assert_uint_eq(cc.nodes[3].group, 2);
  ck_assert(std::isnan(cc.nodes[0].idle_w));  // default: its floor
  ck_assert(cc.plain_share == PlainShare::usage);
}
END_TEST

START_TEST(managed_nodes_idle_cap_and_plain_share) {
  // No group lists nodes: every node of slurm.conf is managed.
  ControllerFileConfig all = parse_ok(
      "Budget=1000\nIdleCap=40 PlainShare=Even\nNodeFloor=60\n"
      "Node=n2 Floor=80 IdleCap=70\n");
  ck_assert(all.idle_cap_w == 40 && all.plain_share == PlainShare::even);
  ClusterConfigResult r = build_cluster_config(all, {"n1", "n2", "n3"}, 1);
  ck_assert_msg(r.config.has_value(), "%s", r.error.c_str());
  ck_assert_uint_eq(r.config->nodes.size(), 3);
  ck_assert(r.unmanaged.empty());
  ck_assert(r.config->plain_share == PlainShare::even);
  ck_assert(r.config->nodes[0].idle_w == 40 && r.config->nodes[1].idle_w == 70);
  // Errors name the line and the problem.
  ck_assert_contains(parse_error("Budget=1000\nPlainShare=fair\n"),
                     "pg.conf:2: PlainShare='fair': expected usage or even");
  ck_assert_contains(parse_error("Budget=1000\nIdleCap=lots\n"),
                     "pg.conf:2: IdleCap='lots' is not a number of watts");
  ck_assert_contains(parse_error("Budget=1000\nNodeFloor=50 IdleCap=60\n"),
                     "pg.conf: IdleCap is above NodeFloor");
  ck_assert_contains(parse_error("Budget=1000\nNode=n1 Floor=50 IdleCap=60\n"),
                     "pg.conf:2: IdleCap is above Floor");
  ControllerFileConfig above = parse_ok("Budget=1000\nNodeFloor=50\nNode=n1 IdleCap=60\n");
  r = build_cluster_config(above, {"n1"}, 1);
  ck_assert_contains(r.error,
                     "pg.conf:3: node 'n1' would have its idle cap (60 W) above its floor (50 W)");
  // A Node= line for a node outside the groups: it is not managed.
  ControllerFileConfig outside = parse_ok("Budget=1000\nGroup=a Nodes=n1\nNode=n2 Floor=10\n");
  r = build_cluster_config(outside, {"n1", "n2"}, 1);
  ck_assert_contains(r.error, "pg.conf:3: node 'n2' is in no group: it is not managed");
}
END_TEST

START_TEST(cluster_config_errors) {
  ControllerFileConfig c = parse_ok(kGood);
  ClusterConfigResult r = build_cluster_config(c, {"n1", "n2", "n3"}, 1);
  ck_assert(
      r.error.find("pg.conf:9: group 'rack2' names node 'n4', which slurm.conf does not define") !=
      std::string::npos);
  ControllerFileConfig two = parse_ok("Budget=1000\nGroup=a Nodes=n1\nGroup=b Nodes=n[1-2]\n");
  r = build_cluster_config(two, {"n1", "n2"}, 1);
  ck_assert(r.error.find("pg.conf:3: node 'n1' is already in group 'a'") != std::string::npos);
  // Floors that cannot fit: 3 nodes x 60 W in a 100 W budget.
  ControllerFileConfig tight = parse_ok("Budget=100\nNodeFloor=60\n");
  r = build_cluster_config(tight, {"n1", "n2", "n3"}, 1);
  ck_assert(!r.config);
  ck_assert(r.error.find("pg.conf: ") == 0);
  ck_assert(r.error.find("floor") != std::string::npos);
  ControllerFileConfig unknown = parse_ok("Budget=1000\nNode=x9 Floor=1\n");
  r = build_cluster_config(unknown, {"n1"}, 1);
  ck_assert(r.error.find("pg.conf:2: node 'x9' is not defined in slurm.conf") != std::string::npos);
}
END_TEST

START_TEST(budget_schedule_daily_and_absolute) {
  setenv("TZ", "UTC", 1);
  tzset();
  ScheduleResult r = parse_budget_schedule(
      "# supply\n06:00 3000\n12:00:30 5200\n18:00 2000\n2026-12-24T13:00 999\n", "b.conf");
  ck_assert_msg(r.schedule.has_value(), "%s", r.error.c_str());
  const BudgetSchedule &s = *r.schedule;
  const long day = 1766534400;  // 2025-12-24T00:00:00Z
  ck_assert(*s.budget_at(day + 7 * 3600) == 3000);
  ck_assert(*s.budget_at(day + 12 * 3600 + 29) == 3000);
  ck_assert(*s.budget_at(day + 12 * 3600 + 30) == 5200);
  ck_assert(*s.budget_at(day + 3 * 3600) == 2000);  // yesterday's 18:00 still holds
  const long xmas = 1798070400;                     // 2026-12-24T00:00:00Z
  ck_assert(*s.budget_at(xmas + 13 * 3600 + 5) == 999);
  ck_assert(*s.budget_at(xmas + 18 * 3600) == 2000);
  ScheduleResult only_abs = parse_budget_schedule("2030-01-01T00:00 10\n", "b.conf");
  ck_assert(!only_abs.schedule->budget_at(day));  // nothing applies before the first entry
}
END_TEST

START_TEST(budget_schedule_errors) {
  ck_assert(parse_budget_schedule("25:00 10\n", "b.conf").error.find("b.conf:1: '25:00' is not") ==
            0);
  ck_assert(
      parse_budget_schedule("\n06:00\n", "b.conf").error.find("b.conf:2: expected 'TIME WATTS'") ==
      0);
  ck_assert(parse_budget_schedule("06:00 lots\n", "b.conf").error.find("'lots' is not a number") !=
            std::string::npos);
  ck_assert(parse_budget_schedule("06:00 1 2\n", "b.conf").error.find("expected") !=
            std::string::npos);
  ck_assert(parse_budget_schedule("# nothing\n", "b.conf").error.find("no entries") !=
            std::string::npos);
}
END_TEST

int main() {
  Suite *s = suite_create("ctld_config");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, good_file_parses);
  tcase_add_test(tc, defaults_and_case);
  tcase_add_test(tc, controller_tuning_keys);
  tcase_add_test(tc, errors_name_file_line_and_problem);
  tcase_add_test(tc, hostlist_expansion);
  tcase_add_test(tc, cluster_config_for_slurm_nodes);
  tcase_add_test(tc, cluster_config_errors);
  tcase_add_test(tc, managed_nodes_idle_cap_and_plain_share);
  tcase_add_test(tc, budget_schedule_daily_and_absolute);
  tcase_add_test(tc, budget_schedule_errors);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
