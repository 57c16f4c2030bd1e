// ck_assert_str_eq keeps the raw pointers it is given, so a temporary std::string's
// c_str() would dangle inside it. Compare std::strings through named copies instead.
#pragma once

#include <check.h>

#include <string>

#define ck_assert_std_str_eq(actual, expected)                  \
  do {                                                          \
    const std::string ck_actual_ = (actual);                    \
    const std::string ck_expected_ = (expected);                \
    ck_assert_str_eq(ck_actual_.c_str(), ck_expected_.c_str()); \
  } while (0)

#define ck_assert_std_str_ne(actual, unexpected)                  \
  do {                                                            \
    const std::string ck_actual_ = (actual);                      \
    const std::string ck_unexpected_ = (unexpected);              \
    ck_assert_str_ne(ck_actual_.c_str(), ck_unexpected_.c_str()); \
  } while (0)
