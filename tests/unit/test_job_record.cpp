// The AdminComment record: format, merge with other tools' text, parse; and what the
// controller writes for a job.
#include <check.h>

#include <set>
#include <string>

#include "controller/job_records.hpp"
#include "jobreport/record.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

START_TEST(format_plain) {
  const std::string r = format_record({{"v", "1"}, {"mode", "latency"}, {"nodes", "n[1-2,4]"}});
  ck_assert_std_str_eq(r, "powergrad={v=1 mode=latency nodes=n[1-2,4]}");
}
END_TEST

START_TEST(format_cleans_values_and_drops_bad_keys) {
  const std::string r = format_record({{"a", "x y{z}\n"}, {"Bad-Key", "1"}, {"", "2"}});
  ck_assert_std_str_eq(r, "powergrad={a=x_y_z__}");
}
END_TEST

START_TEST(merge_keeps_other_tools_text) {
  const std::string rec = "powergrad={v=1}";
  ck_assert_std_str_eq(merge_record_into_comment("", rec), "powergrad={v=1}");
  ck_assert_std_str_eq(merge_record_into_comment("site: hot node", rec),
                       "site: hot node; powergrad={v=1}");
  // Replaced in place, text on both sides kept.
  ck_assert_std_str_eq(
      merge_record_into_comment("a; powergrad={v=1 state=running}; b", "powergrad={v=2}"),
      "a; powergrad={v=2}; b");
  // Idempotent.
  const std::string once = merge_record_into_comment("x", rec);
  ck_assert_std_str_eq(merge_record_into_comment(once, rec), once);
  // A broken (unterminated) segment of ours is replaced to the end.
  ck_assert_std_str_eq(merge_record_into_comment("x; powergrad={v=1 mo", rec),
                       "x; powergrad={v=1}");
}
END_TEST

START_TEST(parse_round_trip_and_errors) {
  std::string err;
  auto f = parse_record("other; powergrad={v=1 mode=throughput nodes=n[1-3]} tail", &err);
  ck_assert(f.has_value());
  ck_assert_uint_eq(f->size(), 3);
  ck_assert_std_str_eq(*record_value(*f, "mode"), "throughput");
  ck_assert_std_str_eq(*record_value(*f, "nodes"), "n[1-3]");
  ck_assert(!record_value(*f, "energy_j"));
  ck_assert(!parse_record("nothing here", &err));
  ck_assert(err.find("no powergrad") != std::string::npos);
  ck_assert(!parse_record("powergrad={v=1", &err));
  ck_assert(err.find("closing") != std::string::npos);
  ck_assert(!parse_record("powergrad={v=1 junk}", &err));
  ck_assert(err.find("'junk'") != std::string::npos);
}
END_TEST

START_TEST(controller_comment_for_power_aware_job) {
  JobView j;
  j.job_id = 7;
  j.mode = "latency";
  j.nodes = "n[1-2]";
  j.admin_comment = "keep me";
  auto c = updated_admin_comment(j);
  ck_assert(c.has_value());
  ck_assert_str_eq(c->c_str(), "keep me; powergrad={v=1 mode=latency nodes=n[1-2]}");
  // Nothing to write when it is already there.
  j.admin_comment = *c;
  ck_assert(!updated_admin_comment(j));
  // An admin's later text is kept when the record is rewritten.
  j.admin_comment = "powergrad={v=1 mode=latency nodes=n1}; hot aisle";
  auto moved = updated_admin_comment(j);
  ck_assert(moved.has_value());
  ck_assert_str_eq(moved->c_str(), "powergrad={v=1 mode=latency nodes=n[1-2]}; hot aisle");
}
END_TEST

START_TEST(controller_ignores_plain_and_off_jobs) {
  JobView j;
  j.nodes = "n1";
  ck_assert(!updated_admin_comment(j));
  j.mode = "off";
  ck_assert(!updated_admin_comment(j));
  j.mode = "(null)";  // sbatch --power-aware without a value
  auto c = updated_admin_comment(j);
  ck_assert(c.has_value());
  ck_assert(c->find("mode=latency") != std::string::npos);
  j.mode = "warp9";
  c = updated_admin_comment(j);
  ck_assert(c->find("mode=invalid") != std::string::npos);
}
END_TEST

START_TEST(a_pass_plans_outside_the_lock_and_stores_what_it_planned) {
  // The plugin builds a period's comments from copies of the jobs and stores them under
  // slurmctld's job write lock: the stored comment is the planned one while the job's
  // AdminComment is still what the pass saw; otherwise it must be built anew.
  RecordPlan plan;
  JobView a;
  a.job_id = 7;
  a.mode = "latency";
  a.nodes = "n[1-2]";
  a.admin_comment = "keep me";
  JobView b = a;
  b.job_id = 8;
  b.admin_comment = "keep me; powergrad={v=1 mode=latency nodes=n[1-2]}";  // up to date
  JobView off = a;
  off.job_id = 9;
  off.mode = "off";
  ck_assert(plan.add(a));
  ck_assert(!plan.add(b));
  ck_assert(!plan.add(off));
  ck_assert_uint_eq(plan.ids().size(), 1);
  ck_assert_uint_eq(plan.ids()[0], 7);
  const std::string *c = plan.planned(7, "keep me");
  ck_assert_ptr_nonnull(c);
  ck_assert_std_str_eq(*c, *updated_admin_comment(a));
  // Another tool wrote the AdminComment between the pass and the store: not this plan's.
  ck_assert_ptr_null(plan.planned(7, "keep me too"));
  ck_assert_ptr_null(plan.planned(7, ""));
  // Jobs it did not plan.
  ck_assert_ptr_null(plan.planned(8, b.admin_comment));
  ck_assert_ptr_null(plan.planned(9, "keep me"));
  // Planned twice in a pass (a job listed twice): the later plan counts, listed once.
  a.nodes = "n[1-3]";
  ck_assert(plan.add(a));
  ck_assert_uint_eq(plan.ids().size(), 1);
  ck_assert_std_str_eq(*plan.planned(7, "keep me"), *updated_admin_comment(a));
}
END_TEST

START_TEST(running_records_refreshed_every_interval) {
  RecordRefresh r(30.0);
  const std::string ours = "site: x; powergrad={v=1 mode=latency nodes=n1}";
  // Never checked: due, with or without a record of ours.
  ck_assert(r.due(5, "", 100.0));
  ck_assert(r.due(5, ours, 100.0));
  r.checked(5, 100.0);
  // Checked: not due again until the interval has passed.
  ck_assert(!r.due(5, ours, 100.5));
  ck_assert(!r.due(5, ours, 129.9));
  ck_assert(r.due(5, ours, 130.0));
  // Its record gone (an admin overwrote the comment): due at once.
  ck_assert(r.due(5, "site: x", 101.0));
  ck_assert(r.due(5, "", 101.0));
  // Other jobs are their own.
  ck_assert(r.due(6, ours, 101.0));
  // Jobs no longer running are forgotten: due again if they came back.
  r.checked(6, 101.0);
  r.keep_only(std::set<std::uint32_t>{6});
  ck_assert_uint_eq(r.size(), 1);
  ck_assert(r.due(5, ours, 102.0));
  ck_assert(!r.due(6, ours, 102.0));
  // RecordInterval=0: every period.
  r.set_interval(0.0);
  ck_assert(r.due(6, ours, 101.0));
}
END_TEST

int main() {
  Suite *s = suite_create("job_record");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, format_plain);
  tcase_add_test(tc, format_cleans_values_and_drops_bad_keys);
  tcase_add_test(tc, merge_keeps_other_tools_text);
  tcase_add_test(tc, parse_round_trip_and_errors);
  tcase_add_test(tc, controller_comment_for_power_aware_job);
  tcase_add_test(tc, controller_ignores_plain_and_off_jobs);
  tcase_add_test(tc, a_pass_plans_outside_the_lock_and_stores_what_it_planned);
  tcase_add_test(tc, running_records_refreshed_every_interval);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
