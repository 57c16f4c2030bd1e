// `powergrad report`: sacct output in, table / CSV / JSON out.
#include <string>

// Check after the standard headers: its macros break some of them.
#include <check.h>

#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tools/job_report.hpp"

using namespace powergrad;

namespace {

const char *kSacct =
    "12|pa-service|alice|COMPLETED|2026-11-25T10:00:00|2026-11-25T10:00:05|5|"
    "powergrad={v=1 mode=latency nodes=n[1-2]}\n"
    "13|plain|bob|COMPLETED|2026-11-25T10:00:06|2026-11-25T10:00:07|1|\n"
    "14|batch,x|carol|FAILED|2026-11-25T10:01:00|2026-11-25T10:02:00|60|"
    "site: a|b; powergrad={v=1 mode=throughput nodes=n3 energy_j=1234.5}\n"
    "15|broken|dan|CANCELLED|S|E|3|powergrad={v=1 mode\n";

}  // namespace

START_TEST(parse_keeps_power_aware_jobs_only) {
  SacctParse p = parse_sacct_report(kSacct);
  ck_assert_uint_eq(p.errors.size(), 0);
  ck_assert_uint_eq(p.rows.size(), 3);
  ck_assert_std_str_eq(p.rows[0].job_id, "12");
  ck_assert_int_eq(p.rows[0].elapsed_s, 5);
  ck_assert_std_str_eq(*record_value(p.rows[1].fields, "energy_j"), "1234.5");
  ck_assert_std_str_eq(p.rows[1].name, "batch,x");
  ck_assert(p.rows[2].fields.empty());
  ck_assert_contains(p.rows[2].error, "closing");
  ck_assert_uint_eq(parse_sacct_report("garbage line\n").errors.size(), 1);
}
END_TEST

START_TEST(formats) {
  SacctParse p = parse_sacct_report(kSacct);
  const std::string table = format_report_table(p.rows);
  ck_assert_contains(table, "job_id");
  ck_assert_contains(table, "energy_j");
  ck_assert_contains(table, "job 15: powergrad record has no closing");
  const std::string csv = format_report_csv(p.rows);
  ck_assert_contains(csv, "job_id,name,user,state,elapsed_s,mode,nodes,energy_j\n");
  ck_assert_contains(csv, "12,pa-service,alice,COMPLETED,5,latency,n[1-2],\n");
  ck_assert_contains(csv, "14,\"batch,x\",carol,FAILED,60,throughput,n3,1234.5\n");
  const std::string json = format_report_json(p.rows);
  ck_assert_contains(json, "\"job_id\": \"14\"");
  ck_assert_contains(json, "\"energy_j\": 1234.5");
  ck_assert_contains(json, "\"mode\": \"throughput\"");
  ck_assert_contains(json, "\"nodes\": \"n[1-2]\"");
  ck_assert_contains(json, "\"error\": \"powergrad record has no closing '}'\"");
}
END_TEST

int main() {
  Suite *s = suite_create("report");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, parse_keeps_power_aware_jobs_only);
  tcase_add_test(tc, formats);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
