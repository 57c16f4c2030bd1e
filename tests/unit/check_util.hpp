// Helpers shared by the libgradient Check runners.
#pragma once

#include <check.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace pgtest {

// Runs the suite with CK_NORMAL (prints Check's "N%: Checks: N, Failures: N, Errors: N"
// line) and returns the process exit status: 0 when every test passed.
inline int run_suite(Suite *suite) {
  SRunner *runner = srunner_create(suite);
  srunner_run_all(runner, CK_NORMAL);
  const int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? 0 : 1;
}

// Summed in index order, as the allocators' budget guarantee is stated.
inline double sum_in_order(const std::vector<double> &x) {
  double sum = 0.0;
  for (double v : x) sum += v;
  return sum;
}

inline bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

// Polls done() every 10 ms until it holds (true) or `seconds` have passed (false). Tests wait
// for conditions with long deadlines, so that a busy machine only makes them slower: what
// they assert is the outcome, never how fast it came (that is the benchmarks' business).
template <class Pred>
bool wait_until(Pred done, double seconds = 20.0) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    usleep(10000);
  }
  return true;
}

}  // namespace pgtest

// Asserts that `text` (a std::string) contains `part`, printing both when it does not.
#define ck_assert_contains(text, part)                                                \
  do {                                                                                \
    const std::string ck_text_ = (text);                                              \
    const std::string ck_part_ = (part);                                              \
    ck_assert_msg(pgtest::contains(ck_text_, ck_part_), "'%s' does not contain '%s'", \
                  ck_text_.c_str(), ck_part_.c_str());                                \
  } while (0)
