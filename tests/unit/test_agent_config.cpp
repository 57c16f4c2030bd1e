// The plugin arguments the node agent's control adds: sysfs_root, procfs_root, grant,
// floor, counters, emulate. Unknown keys and bad values are refused naming them.
#include <check.h>

#include <string>

#include "spank_powergrad/plugin_config.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

START_TEST(defaults) {
  ConfigParse p = parse_plugin_args({});
  ck_assert(p.ok());
  ck_assert_std_str_eq(p.config.sysfs_root, "/sys");
  ck_assert_std_str_eq(p.config.procfs_root, "/proc");
  ck_assert(!p.config.grant_w);
  ck_assert(!p.config.floor_w);
  ck_assert_std_str_eq(p.config.counters, "auto");
  ck_assert(p.config.emulate_path.empty());
}
END_TEST

START_TEST(all_new_keys) {
  ConfigParse p =
      parse_plugin_args({"sysfs_root=/tmp/c/nodes/%n/sys", "procfs_root=/proc", "grant=250",
                         "floor=120.5", "counters=emulated", "emulate=/tmp/c/emulate.txt"});
  ck_assert_msg(p.ok(), "%s", p.ok() ? "" : p.errors[0].c_str());
  ck_assert_std_str_eq(p.config.sysfs_root, "/tmp/c/nodes/%n/sys");
  ck_assert_std_str_eq(expand_node_tokens(p.config.sysfs_root, "n2"), "/tmp/c/nodes/n2/sys");
  ck_assert_double_eq(*p.config.grant_w, 250.0);
  ck_assert_double_eq(*p.config.floor_w, 120.5);
  ck_assert_std_str_eq(p.config.counters, "emulated");
  ck_assert_std_str_eq(p.config.emulate_path, "/tmp/c/emulate.txt");
  for (const char *c : {"auto", "perf", "software"}) {
    ConfigParse q = parse_plugin_args({std::string("counters=") + c});
    ck_assert(q.ok());
    ck_assert_std_str_eq(q.config.counters, c);
  }
}
END_TEST

START_TEST(bad_values_name_the_key) {
  struct Case {
    const char *arg;
    const char *want;
  } cases[] = {
      {"sysfs_root=relative", "sysfs_root='relative'"},
      {"sysfs_root=/a/../b", "sysfs_root='/a/../b'"},
      {"procfs_root=", "procfs_root=''"},
      {"grant=0", "grant='0'"},
      {"grant=-5", "grant='-5'"},
      {"grant=12W", "grant='12W'"},
      {"floor=nan", "floor='nan'"},
      {"grant=1e9", "grant='1e9'"},
      {"counters=pmu", "counters='pmu': expected auto, perf, software or emulated"},
      {"emulate=x.txt", "emulate='x.txt'"},
  };
  for (const Case &c : cases) {
    ConfigParse p = parse_plugin_args({c.arg});
    ck_assert_msg(!p.ok(), "%s accepted", c.arg);
    ck_assert_contains(p.errors[0], c.want);
  }
  ConfigParse u = parse_plugin_args({"grnat=10"});
  ck_assert(!u.ok());
  ck_assert_contains(u.errors[0], "unknown plugin argument 'grnat'");
  ck_assert_contains(u.errors[0], "grant");
  ck_assert_contains(u.errors[0], "sysfs_root");
}
END_TEST

START_TEST(combinations) {
  ConfigParse p = parse_plugin_args({"grant=100", "floor=150"});
  ck_assert(!p.ok());
  ck_assert_contains(p.errors[0], "floor");
  ck_assert_contains(p.errors[0], "must not exceed the grant");
  // emulated counters are never chosen silently: they need their spec file...
  p = parse_plugin_args({"counters=emulated"});
  ck_assert(!p.ok());
  ck_assert_contains(p.errors[0], "counters=emulated needs emulate=PATH");
  // ...and a spec file alone does not switch them on.
  p = parse_plugin_args({"emulate=/tmp/e"});
  ck_assert(!p.ok());
  ck_assert_contains(p.errors[0], "only used with counters=emulated");
  ck_assert(parse_plugin_args({"grant=100", "floor=100"}).ok());
}
END_TEST

int main() {
  Suite *s = suite_create("agent_config");
  TCase *tc = tcase_create("args");
  tcase_add_test(tc, defaults);
  tcase_add_test(tc, all_new_keys);
  tcase_add_test(tc, bad_values_name_the_key);
  tcase_add_test(tc, combinations);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
