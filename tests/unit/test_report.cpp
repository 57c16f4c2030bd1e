// `powergrad report`: sacct output in, table / CSV / JSON out. The sacct output here is
// built the way sacct prints it for sacct_report_args(): every field followed by the
// delimiter, rows ended by a newline, fields in kReportSacctFormat's order.
#include <string>
#include <vector>

// Check after the standard headers: its macros break some of them.
#include <check.h>

#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tools/job_report.hpp"

using namespace powergrad;

namespace {

struct SacctJob {
  std::string id, user, state, start, end, elapsed, name, comment;
};

std::string sacct_output(const std::vector<SacctJob> &jobs, const std::string &d) {
  std::string out;
  for (const SacctJob &j : jobs) {
    for (const std::string *f :
         {&j.id, &j.user, &j.state, &j.start, &j.end, &j.elapsed, &j.name, &j.comment})
      out += *f + d;
    out += '\n';
  }
  return out;
}

const std::string kDelim = "<pg:0123456789abcdef0123456789abcdef>";

std::vector<SacctJob> base_jobs() {
  return {
      {"12", "alice", "COMPLETED", "2026-11-25T10:00:00", "2026-11-25T10:00:05", "5", "pa-service",
       "powergrad={v=1 mode=latency nodes=n[1-2]}"},
      {"13", "bob", "COMPLETED", "2026-11-25T10:00:06", "2026-11-25T10:00:07", "1", "plain", ""},
      {"14", "carol", "FAILED", "2026-11-25T10:01:00", "2026-11-25T10:02:00", "60", "batch,x",
       "site: a|b; powergrad={v=1 mode=throughput nodes=n3 energy_j=1234.5}"},
      {"15", "dan", "CANCELLED", "S", "E", "3", "broken", "powergrad={v=1 mode"},
  };
}

}  // namespace

START_TEST(parse_keeps_power_aware_jobs_only) {
  SacctParse p = parse_sacct_report(sacct_output(base_jobs(), kDelim), kDelim);
  ck_assert_uint_eq(p.errors.size(), 0);
  ck_assert_uint_eq(p.rows.size(), 3);
  ck_assert_std_str_eq(p.rows[0].job_id, "12");
  ck_assert_std_str_eq(p.rows[0].user, "alice");
  ck_assert_int_eq(p.rows[0].elapsed_s, 5);
  ck_assert_std_str_eq(*record_value(p.rows[1].fields, "energy_j"), "1234.5");
  ck_assert_std_str_eq(p.rows[1].name, "batch,x");
  ck_assert(p.rows[2].fields.empty());
  ck_assert_contains(p.rows[2].error, "closing");
  ck_assert_uint_eq(parse_sacct_report("", kDelim).rows.size(), 0);
  ck_assert_uint_eq(parse_sacct_report("", kDelim).errors.size(), 0);
}
END_TEST

START_TEST(args_use_the_delimiter_and_end_every_field) {
  const std::string d = make_sacct_delimiter();
  ck_assert_uint_eq(d.size(), 4 + 32 + 1);
  ck_assert(d != make_sacct_delimiter());  // fresh per call
  const std::vector<std::string> a = sacct_report_args(d);
  bool parsable = false, delim = false, format = false;
  for (const std::string &x : a) {
    parsable |= x == "--parsable";  // -p: a delimiter after the last field too
    delim |= x == "--delimiter=" + d;
    format |= x == std::string("--format=") + kReportSacctFormat;
    ck_assert(x != "--parsable2");
  }
  ck_assert(parsable && delim && format);
  // JobID, which no user shapes, first.
  ck_assert_std_str_eq(std::string(kReportSacctFormat).substr(0, 6), "JobID,");
}
END_TEST

// The forgeries of issue 11: a plain job whose name imitates a row of root's with a huge
// energy figure, a name with a newline that would make a row of a job that does not exist,
// and escape sequences in a name.
START_TEST(forged_names_do_not_make_rows) {
  std::vector<SacctJob> jobs = base_jobs();
  // As sacct 22.05 printed it with the old format (JobID,JobName,User,...): this name made
  // the report show "root" and 99999999 J for job 16.
  jobs.push_back({"16", "mallory", "COMPLETED", "2026-11-25T11:00:00", "2026-11-25T11:00:01", "1",
                  "fake|root|COMPLETED|2026-11-25T11:00:00|2026-11-25T11:00:01|1|"
                  "powergrad={v=1 mode=latency nodes=n1 energy_j=99999999}",
                  ""});
  // A newline and a whole imitation row, with '|' and with a guessed delimiter.
  jobs.push_back({"17", "mallory", "COMPLETED", "2026-11-25T11:00:00", "2026-11-25T11:00:01", "1",
                  "x\n999|x|root|COMPLETED|S|E|1|powergrad={v=1 mode=latency nodes=n9 "
                  "energy_j=99999999}\n998<pg:00000000000000000000000000000000>root",
                  ""});
  // A power-aware job of mallory's with escape sequences in its name.
  jobs.push_back({"18", "mallory", "COMPLETED", "2026-11-25T11:00:00", "2026-11-25T11:00:01", "1",
                  "\x1b]0;pwned\x07\x1b[2J\x1b[1;1Hroot\r\xc2\x9b"
                  "31m",
                  "powergrad={v=1 mode=throughput nodes=n2 energy_j=7}"});
  // And one whose newline name and record are both its own.
  jobs.push_back({"19", "mallory", "COMPLETED", "S", "E", "2", "two\nlines",
                  "powergrad={v=1 mode=latency nodes=n1 energy_j=5}"});
  SacctParse p = parse_sacct_report(sacct_output(jobs, kDelim), kDelim);
  ck_assert_uint_eq(p.errors.size(), 0);
  ck_assert_uint_eq(p.rows.size(), 5);  // 12, 14, 15, 18, 19
  for (const JobReportRow &r : p.rows) {
    ck_assert(r.job_id != "16" && r.job_id != "17" && r.job_id != "999" && r.job_id != "998");
    const auto e = record_value(r.fields, "energy_j");
    ck_assert(!e || *e != "99999999");
    ck_assert(r.user != "root");
  }
  ck_assert_std_str_eq(p.rows[3].job_id, "18");
  ck_assert_std_str_eq(p.rows[3].user, "mallory");
  ck_assert_std_str_eq(*record_value(p.rows[3].fields, "energy_j"), "7");
  ck_assert_std_str_eq(p.rows[4].name, "two\nlines");

  const std::string table = format_report_table(p.rows);
  ck_assert(table.find('\x1b') == std::string::npos);
  ck_assert(table.find('\r') == std::string::npos);
  ck_assert(table.find('\x07') == std::string::npos);
  ck_assert(table.find("\xc2\x9b") == std::string::npos);
  ck_assert_contains(table, "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[1;1Hroot\\r\\u009b31m");
  ck_assert_contains(table, "two\\nlines");
  // One header line and one line per row: a name cannot add lines.
  std::size_t lines = 0;
  for (char c : table) lines += c == '\n';
  ck_assert_uint_eq(lines, 1 + 5 + 1);  // + job 15's error line
  const std::string csv = format_report_csv(p.rows);
  ck_assert_contains(csv, "19,\"two\nlines\",mallory,COMPLETED,2,");
  const std::string json = format_report_json(p.rows);
  ck_assert_contains(json, "\"name\": \"two\\nlines\"");
  ck_assert(json.find('\x1b') == std::string::npos);
}
END_TEST

START_TEST(output_of_another_shape_is_refused) {
  const std::string good = sacct_output(base_jobs(), kDelim);
  // Old-style output (another delimiter), a missing field, a row not on its own line.
  for (const std::string &bad : {std::string("12|pa|alice|COMPLETED|S|E|5|powergrad={v=1}\n"),
                                 good.substr(0, good.find(kDelim)) + "\n",
                                 good.substr(0, good.size() - 1) + "x\n", "12" + kDelim + good}) {
    SacctParse p = parse_sacct_report(bad, kDelim);
    ck_assert_uint_eq(p.rows.size(), 0);
    ck_assert_uint_eq(p.errors.size(), 1);
  }
  std::vector<SacctJob> jobs = base_jobs();
  jobs[1].id = "13\x1b[2J";
  SacctParse p = parse_sacct_report(sacct_output(jobs, kDelim), kDelim);
  ck_assert_uint_eq(p.rows.size(), 0);
  ck_assert_contains(p.errors[0], "row 2 has job id '13\\x1b[2J'");
}
END_TEST

START_TEST(escape_control_characters) {
  ck_assert_std_str_eq(escape_control("plain text, 100%"), "plain text, 100%");
  ck_assert_std_str_eq(escape_control("caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80"),
                       "caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80");
  ck_assert_std_str_eq(escape_control("a\nb\tc\rd\\e"), "a\\nb\\tc\\rd\\\\e");
  ck_assert_std_str_eq(escape_control(std::string("\x1b[31m\x7f\x00x", 8)), "\\x1b[31m\\x7f\\x00x");
  ck_assert_std_str_eq(escape_control("\xc2\x9b"
                                      "1m \xc2\xa0"),
                       "\\u009b1m \xc2\xa0");
  // Not UTF-8: a lone continuation byte, an overlong '/', a surrogate, a cut sequence.
  ck_assert_std_str_eq(escape_control("\x9b\xc0\xaf\xed\xa0\x80\xe6\xbc"),
                       "\\x9b\\xc0\\xaf\\xed\\xa0\\x80\\xe6\\xbc");
}
END_TEST

START_TEST(formats) {
  SacctParse p = parse_sacct_report(sacct_output(base_jobs(), kDelim), kDelim);
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
  tcase_add_test(tc, args_use_the_delimiter_and_end_every_field);
  tcase_add_test(tc, forged_names_do_not_make_rows);
  tcase_add_test(tc, output_of_another_shape_is_refused);
  tcase_add_test(tc, escape_control_characters);
  tcase_add_test(tc, formats);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
