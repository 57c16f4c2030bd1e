// The controller's table of node names (libgradient/name_index.hpp): every name found at its
// index through the table's growth, names that are not there (near misses included) not
// found, duplicates refused, and agreement with std::unordered_map on random names.
#include <check.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "libgradient/name_index.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

START_TEST(found_at_their_index_through_growth) {
  NameIndex idx;
  ck_assert_uint_eq(idx.find("n1"), NameIndex::npos);
  ck_assert_uint_eq(idx.find(""), NameIndex::npos);
  const std::size_t n = 20000;  // the table doubles about 12 times on the way
  for (std::size_t i = 0; i < n; ++i) {
    ck_assert(idx.insert("node" + std::to_string(i)));
    // What is there so far, and nothing after it.
    ck_assert_uint_eq(idx.find("node" + std::to_string(i)), i);
    ck_assert_uint_eq(idx.find("node" + std::to_string(i + 1)), NameIndex::npos);
  }
  ck_assert_uint_eq(idx.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string name = "node" + std::to_string(i);
    ck_assert_uint_eq(idx.find(name), i);
    ck_assert_str_eq(idx.name(i).c_str(), name.c_str());
    // Near misses: a prefix, one more character, another case.
    ck_assert_uint_eq(idx.find(name + "x"), NameIndex::npos);
    ck_assert_uint_eq(idx.find("Node" + std::to_string(i)), NameIndex::npos);
  }
  ck_assert_uint_eq(idx.find("node"), NameIndex::npos);
  ck_assert_uint_eq(idx.find(""), NameIndex::npos);
}
END_TEST

START_TEST(duplicates_refused) {
  NameIndex idx;
  ck_assert(idx.insert("a"));
  ck_assert(idx.insert(""));  // an empty name is a name like any other here
  ck_assert(!idx.insert("a"));
  ck_assert(!idx.insert(""));
  ck_assert_uint_eq(idx.size(), 2);
  ck_assert_uint_eq(idx.find("a"), 0);
  ck_assert_uint_eq(idx.find(""), 1);
}
END_TEST

START_TEST(agrees_with_unordered_map_on_random_names) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> len(0, 24), ch(0, 61);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const auto random_name = [&] {
    std::string s(static_cast<std::size_t>(len(rng)), 'a');
    for (char &c : s) c = alphabet[static_cast<std::size_t>(ch(rng))];
    return s;
  };
  NameIndex idx;
  std::unordered_map<std::string, std::size_t> ref;
  for (int i = 0; i < 30000; ++i) {
    const std::string name = random_name();
    const bool added = ref.emplace(name, ref.size()).second;
    ck_assert_int_eq(idx.insert(name), added);
    const std::string probe = random_name();
    const auto it = ref.find(probe);
    ck_assert_uint_eq(idx.find(probe), it == ref.end() ? NameIndex::npos : it->second);
  }
  ck_assert_uint_eq(idx.size(), ref.size());
  for (const auto &[name, i] : ref) ck_assert_uint_eq(idx.find(name), i);
}
END_TEST

int main() {
  Suite *s = suite_create("libgradient_name_index");
  TCase *tc = tcase_create("name_index");
  tcase_add_test(tc, found_at_their_index_through_growth);
  tcase_add_test(tc, duplicates_refused);
  tcase_add_test(tc, agrees_with_unordered_map_on_random_names);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
