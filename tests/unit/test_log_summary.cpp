// LogSummary (controller/log_summary.hpp): the first event of a kind is logged, the rest
// of its interval counted and summarised in one line per kind and interval.
#include <algorithm>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "controller/log_summary.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

START_TEST(first_logged_rest_counted_once_per_interval) {
  LogSummary s(10.0);
  ck_assert(s.admit("refused: bad_magic", "connection from 10.0.0.1:1 refused: bad_magic", 100.0));
  int logged = 1;
  // 6,500 a second for 30 s: 195,000 events.
  std::vector<std::string> lines;
  for (int i = 1; i < 195000; ++i) {
    const double t = 100.0 + i / 6500.0;
    if (s.admit("refused: bad_magic",
                "connection from 10.0.0.1:" + std::to_string(i) + " refused: bad_magic", t))
      ++logged;
    for (LogSummary::Line &l : s.flush(t)) lines.push_back(std::move(l.text));
  }
  ck_assert_int_eq(logged, 1);
  // One summary per 10 s interval that ended: at 110 s and 120 s (the third is still open).
  ck_assert_uint_eq(lines.size(), 2);
  ck_assert_contains(lines[0], "65000 more like this in the last 10 s; last: connection from");
  ck_assert_contains(lines[0], "refused: bad_magic");
  std::vector<LogSummary::Line> end = s.flush(140.0);
  ck_assert_uint_eq(end.size(), 1);
  ck_assert_std_str_eq(end[0].kind, "refused: bad_magic");
  ck_assert_contains(end[0].text, "refused: bad_magic");
  // Everything counted is in the summaries: 195,000 - 1 logged in full.
  std::uint64_t total = 0;
  lines.push_back(end[0].text);
  for (const std::string &l : lines) total += std::stoull(l.substr(0, l.find(' ')));
  ck_assert_uint_eq(total, 194999);
  ck_assert_uint_eq(s.suppressed_total(), 194999);
}
END_TEST

START_TEST(a_quiet_kind_starts_afresh) {
  LogSummary s(10.0);
  ck_assert(s.admit("k", "one", 0.0, 7));
  ck_assert(!s.admit("k", "two", 1.0, 8));
  std::vector<LogSummary::Line> l = s.flush(10.0);
  ck_assert_uint_eq(l.size(), 1);
  ck_assert_std_str_eq(l[0].text, "1 more like this in the last 10 s; last: two");
  ck_assert_int_eq(l[0].tag, 7);  // the first event's
  // Nothing in the next interval: the kind is forgotten, its next event logged in full.
  ck_assert_uint_eq(s.flush(20.0).size(), 0);
  ck_assert_uint_eq(s.kinds(), 0);
  ck_assert(s.admit("k", "three", 21.0));
  // A single event per interval is never summarised: nothing was held back.
  ck_assert_uint_eq(s.flush(31.0).size(), 0);
  ck_assert(s.admit("k", "four", 31.5));
}
END_TEST

START_TEST(kinds_are_apart) {
  LogSummary s(10.0);
  ck_assert(s.admit("refused: bad_magic", "a", 0.0));
  ck_assert(s.admit("refused: cred_invalid", "b", 1.0));
  ck_assert(!s.admit("refused: bad_magic", "c", 1.0));
  ck_assert(!s.admit("refused: cred_invalid", "d", 1.0));
  ck_assert(!s.admit("refused: cred_invalid", "e", 2.0));
  std::vector<std::string> l;
  for (const LogSummary::Line &x : s.flush(11.0)) l.push_back(x.text);
  std::sort(l.begin(), l.end());
  ck_assert_uint_eq(l.size(), 2);
  ck_assert_std_str_eq(l[0], "1 more like this in the last 11 s; last: c");
  ck_assert_std_str_eq(l[1], "2 more like this in the last 10 s; last: e");
}
END_TEST

START_TEST(the_number_of_kinds_is_bounded) {
  LogSummary s(10.0, 4);
  int logged = 0;
  for (int i = 0; i < 1000; ++i) logged += s.admit("kind " + std::to_string(i), "m", 0.0);
  // Four kinds of their own, then one catch-all: its first event logged, the rest counted.
  ck_assert_int_eq(logged, 5);
  ck_assert_uint_le(s.kinds(), 5);
  ck_assert_uint_eq(s.suppressed_total(), 995);
}
END_TEST

START_TEST(a_burst_is_logged_in_full_then_counted) {
  // Node events: the first 3 of a kind in full, the rest counted, one summary per interval;
  // once the kind has been quiet for an interval, it has its burst again.
  LogSummary s(10.0, 256, 3);
  int logged = 0;
  for (int i = 0; i < 100; ++i)
    logged += s.admit("node session closed", "n" + std::to_string(i), 0.1 * i);
  ck_assert_int_eq(logged, 3);
  const auto lines = s.flush(10.5);
  ck_assert_uint_eq(lines.size(), 1);
  ck_assert_std_str_eq(lines[0].text, "97 more like this in the last 10 s; last: n99");
  ck_assert(!s.admit("node session closed", "a", 11.0));  // the flood goes on: counted
  ck_assert_uint_eq(s.flush(21.0).size(), 1);
  ck_assert_uint_eq(s.flush(32.0).size(), 0);  // a quiet interval: forgotten
  ck_assert_uint_eq(s.kinds(), 0);
  ck_assert(s.admit("node session closed", "b", 33.0));
  ck_assert(s.admit("node session closed", "c", 33.0));
  ck_assert(s.admit("node session closed", "d", 33.0));
  ck_assert(!s.admit("node session closed", "e", 33.0));
}
END_TEST

int main() {
  Suite *s = suite_create("log_summary");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, first_logged_rest_counted_once_per_interval);
  tcase_add_test(tc, a_quiet_kind_starts_afresh);
  tcase_add_test(tc, kinds_are_apart);
  tcase_add_test(tc, the_number_of_kinds_is_bounded);
  tcase_add_test(tc, a_burst_is_logged_in_full_then_counted);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
