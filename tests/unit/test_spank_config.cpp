// The SPANK plugin's Slurm-free parts: --power-aware values, plugstack.conf arguments,
// node name discovery for multiple-slurmd hosts.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "libgradient/job_mode.hpp"
#include "spank_powergrad/node_name.hpp"
#include "spank_powergrad/plugin_config.hpp"
#include "spank_powergrad/plugstack_scan.hpp"
#include "spank_powergrad/slurmd_args.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

START_TEST(mode_named_values) {
  ck_assert(*parse_job_mode("latency").mode == JobMode::latency);
  ck_assert(*parse_job_mode("throughput").mode == JobMode::throughput);
  ck_assert(*parse_job_mode("monitor").mode == JobMode::monitor);
  ck_assert(*parse_job_mode("off").mode == JobMode::off);
  ck_assert(*parse_job_mode("THROUGHPUT").mode == JobMode::throughput);
  ck_assert(*parse_job_mode("no").mode == JobMode::off);
}
END_TEST

START_TEST(mode_missing_value_is_default) {
  // srun --power-aware (null), sbatch --power-aware reaching a step as "(null)", and "".
  ck_assert(*parse_job_mode(nullptr).mode == JobMode::latency);
  ck_assert(*parse_job_mode("(null)").mode == JobMode::latency);
  ck_assert(*parse_job_mode("").mode == JobMode::latency);
  ck_assert(*parse_job_mode("on", JobMode::throughput).mode == JobMode::throughput);
  ck_assert(*parse_job_mode(nullptr, JobMode::monitor).mode == JobMode::monitor);
}
END_TEST

START_TEST(mode_bad_value_names_it_and_choices) {
  ModeParse m = parse_job_mode("fast");
  ck_assert(!m.mode);
  ck_assert(m.error.find("'fast'") != std::string::npos);
  ck_assert(m.error.find("latency, throughput, monitor, off") != std::string::npos);
  // A huge value is cut in the message, not echoed whole.
  ModeParse big = parse_job_mode(std::string(5000, 'x').c_str());
  ck_assert(!big.mode);
  ck_assert_uint_lt(big.error.size(), 200);
}
END_TEST

START_TEST(mode_names_round_trip) {
  for (JobMode m : {JobMode::off, JobMode::latency, JobMode::throughput, JobMode::monitor}) {
    ck_assert(*parse_job_mode(to_string(m)).mode == m);
    ck_assert(*job_mode_from_name(to_string(m)) == m);
  }
  // Records and messages take the printed names only: no aliases, no case folding, and
  // the wire's former name of plain jobs is not one of them.
  for (const char *bad : {"Latency", "on", "no", "", "unmanaged", "latency "})
    ck_assert_msg(!job_mode_from_name(bad), "'%s' accepted as a recorded mode", bad);
  ck_assert(is_power_aware(JobMode::monitor) && !is_steered(JobMode::monitor));
  ck_assert(!is_power_aware(JobMode::off) && !is_steered(JobMode::off));
  ck_assert(is_steered(JobMode::latency) && is_steered(JobMode::throughput));
}
END_TEST

// Whether slurmd will daemonize after the plugin's init, from its command line.
START_TEST(slurmd_foreground_from_its_command_line) {
  using V = std::vector<std::string>;
  ck_assert(slurmd_stays_in_foreground(V{"slurmd", "-D", "-N", "n1", "-f", "/etc/slurm.conf"}));
  ck_assert(slurmd_stays_in_foreground(V{"slurmd", "-Dvvv"}));
  ck_assert(slurmd_stays_in_foreground(V{"slurmd", "-vD"}));
  ck_assert(slurmd_stays_in_foreground(V{"/usr/sbin/slurmd", "--systemd"}));
  ck_assert(slurmd_stays_in_foreground(V{"slurmd", "--conf-server=h:6817", "-D"}));
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd"}));
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "-N", "n1", "-f", "/etc/slurm.conf"}));
  // A 'D' inside an option's argument is no -D.
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "-N", "-D"}));
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "-ND1"}));
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "-f", "/D", "-L", "-D"}));
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "--conf", "-D"}));
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "-FD"}));  // -F's attached argument
  ck_assert(!slurmd_stays_in_foreground(V{"slurmd", "--", "-D"}));
  ck_assert(!slurmd_stays_in_foreground(V{}));
  // This test's own command line has no -D.
  const V self = own_cmdline();
  ck_assert(!self.empty());
  ck_assert(!slurmd_stays_in_foreground(self));
}
END_TEST

START_TEST(args_defaults_and_known_keys) {
  ConfigParse none = parse_plugin_args({});
  ck_assert(none.ok());
  ck_assert(none.config.default_mode == JobMode::off);
  ck_assert(valueless_mode(none.config.default_mode) == JobMode::latency);
  ck_assert(valueless_mode(JobMode::throughput) == JobMode::throughput);
  ConfigParse off = parse_plugin_args({"default_mode=off"});
  ck_assert(off.errors.empty());
  ck_assert(off.config.default_mode == JobMode::off);
  ck_assert(none.config.log_level == LogLevel::info);
  ConfigParse p = parse_plugin_args({"default_mode=throughput", "log_level=debug"});
  ck_assert(p.ok());
  ck_assert(p.config.default_mode == JobMode::throughput);
  ck_assert(p.config.log_level == LogLevel::debug);
}
END_TEST

START_TEST(args_unknown_key_is_named) {
  ConfigParse p = parse_plugin_args({"log_level=info", "perido=2"});
  ck_assert(!p.ok());
  ck_assert_uint_eq(p.errors.size(), 1);
  ck_assert(p.errors[0].find("unknown plugin argument 'perido'") != std::string::npos);
}
END_TEST

START_TEST(args_bad_values_are_named) {
  ConfigParse p = parse_plugin_args({"log_level=loud", "default_mode=fast", "novalue", "=x"});
  ck_assert_uint_eq(p.errors.size(), 4);
  ck_assert(p.errors[0].find("log_level='loud'") != std::string::npos);
  ck_assert(p.errors[1].find("default_mode='fast': expected off, latency, throughput or monitor") !=
            std::string::npos);
  ck_assert(p.errors[2].find("'novalue' is not of the form key=value") != std::string::npos);
  ck_assert(p.errors[3].find("'=x'") != std::string::npos);
}
END_TEST

START_TEST(args_state_dir_and_period) {
  ConfigParse d = parse_plugin_args({});
  ck_assert_std_str_eq(d.config.state_dir, "/run/powergrad");
  ck_assert(d.config.period_s == 1.0);
  ConfigParse p = parse_plugin_args({"state_dir=/var/lib/pg/%n", "period=0.5"});
  ck_assert(p.ok());
  ck_assert_std_str_eq(p.config.state_dir, "/var/lib/pg/%n");
  ck_assert(p.config.period_s == 0.5);
  ConfigParse bad =
      parse_plugin_args({"state_dir=relative", "state_dir=/a/../b", "period=0", "period=fast",
                         "period=61", "state_dir=/" + std::string(90, 'x')});
  ck_assert_uint_eq(bad.errors.size(), 6);
  ck_assert(bad.errors[0].find("state_dir='relative'") != std::string::npos);
  ck_assert(bad.errors[2].find("period='0': expected seconds between 0.1 and 60") !=
            std::string::npos);
}
END_TEST

START_TEST(args_low_cap_slowdown) {
  ConfigParse d = parse_plugin_args({});
  ck_assert(d.config.low_cap_knee == 0.5 && d.config.low_cap_slowdown == 1.0);
  ConfigParse p = parse_plugin_args({"low_cap_knee=0", "low_cap_slowdown=2.5"});
  ck_assert(p.ok());
  ck_assert(p.config.low_cap_knee == 0.0 && p.config.low_cap_slowdown == 2.5);
  ConfigParse bad = parse_plugin_args({"low_cap_knee=1.5", "low_cap_knee=-0.1",
                                       "low_cap_knee=", "low_cap_slowdown=11",
                                       "low_cap_slowdown=nan", "low_cap_slowdown=1x"});
  ck_assert_uint_eq(bad.errors.size(), 6);
  ck_assert(bad.errors[0].find("low_cap_knee='1.5': expected a share of TDP from 0 to 1") !=
            std::string::npos);
  ck_assert(bad.errors[2].find("low_cap_knee=''") != std::string::npos);
  ck_assert(bad.errors[3].find("low_cap_slowdown='11': expected a slowdown per TDP from 0 to 10") !=
            std::string::npos);
  ck_assert(bad.errors[4].find("low_cap_slowdown='nan'") != std::string::npos);
  ck_assert(bad.errors[5].find("low_cap_slowdown='1x'") != std::string::npos);
}
END_TEST

START_TEST(args_load_spread) {
  ck_assert(parse_plugin_args({}).config.load_spread == 1.0);
  ConfigParse p = parse_plugin_args({"load_spread=0"});
  ck_assert(p.ok() && p.config.load_spread == 0.0);
  ck_assert(parse_plugin_args({"load_spread=2.5"}).config.load_spread == 2.5);
  ConfigParse bad = parse_plugin_args({"load_spread=-1", "load_spread=11", "load_spread=x"});
  ck_assert_uint_eq(bad.errors.size(), 3);
  ck_assert(bad.errors[0].find("load_spread='-1': expected a factor from 0 to 10") !=
            std::string::npos);
  ck_assert(bad.errors[2].find("load_spread='x'") != std::string::npos);
}
END_TEST

START_TEST(args_plain_beside) {
  ck_assert(parse_plugin_args({}).config.plain_beside == 0.5);
  ConfigParse p = parse_plugin_args({"plain_beside=1"});
  ck_assert(p.ok() && p.config.plain_beside == 1.0);
  ck_assert(parse_plugin_args({"plain_beside=off"}).config.plain_beside == 0.0);
  ck_assert(parse_plugin_args({"plain_beside=0"}).config.plain_beside == 0.0);
  ConfigParse bad = parse_plugin_args({"plain_beside=1.5", "plain_beside=-0.1", "plain_beside=no"});
  ck_assert_uint_eq(bad.errors.size(), 3);
  ck_assert(bad.errors[0].find("plain_beside='1.5': expected a weight from 0 to 1, or off") !=
            std::string::npos);
  ck_assert(bad.errors[2].find("plain_beside='no'") != std::string::npos);
}
END_TEST

START_TEST(args_top_clock_busy) {
  ck_assert(parse_plugin_args({}).config.top_clock_busy == 0.6);
  ConfigParse p = parse_plugin_args({"top_clock_busy=0.9"});
  ck_assert(p.ok() && p.config.top_clock_busy == 0.9);
  ck_assert(parse_plugin_args({"top_clock_busy=off"}).config.top_clock_busy > 1.0);
  ConfigParse bad =
      parse_plugin_args({"top_clock_busy=1.5", "top_clock_busy=-0.1", "top_clock_busy=Off"});
  ck_assert_uint_eq(bad.errors.size(), 3);
  ck_assert(bad.errors[0].find("top_clock_busy='1.5': expected a busy share from 0 to 1, or off") !=
            std::string::npos);
  ck_assert(bad.errors[2].find("top_clock_busy='Off'") != std::string::npos);
}
END_TEST

START_TEST(node_tokens_expand) {
  ck_assert_std_str_eq(expand_node_tokens("/run/pg/%n/state", "n3"), "/run/pg/n3/state");
  ck_assert_std_str_eq(expand_node_tokens("%n-%n", "a"), "a-a");
  ck_assert_std_str_eq(expand_node_tokens("100%%/%x/%", "a"), "100%/%x/%");
}
END_TEST

// Issue 11: a job's environment named the node (SLURM_STEP_NODELIST=n2 or ../../x) and root
// registered the job's tasks with that node's agent. The node name comes from slurmstepd's
// own environment only, and only a name Slurm could give goes into a path.
START_TEST(node_names_are_checked_before_they_go_into_paths) {
  for (const char *good : {"n1", "node-12", "rack3.n04", "a_b", "N", "x1234567890"}) {
    ck_assert_msg(node_name_problem(good).empty(), "%s: %s", good, node_name_problem(good).c_str());
  }
  ck_assert_contains(node_name_problem(""), "empty");
  ck_assert_contains(node_name_problem(".."), "starts with '.'");
  ck_assert_contains(node_name_problem("."), "starts with '.'");
  ck_assert_contains(node_name_problem(".hidden"), "starts with '.'");
  ck_assert_contains(node_name_problem("-N"), "starts with '-'");
  ck_assert_contains(node_name_problem("../../x"), "character other than");
  ck_assert_contains(node_name_problem("n1/../n2"), "character other than");
  ck_assert_contains(node_name_problem("n[1-2]"), "character other than");
  ck_assert_contains(node_name_problem("n 1"), "character other than");
  ck_assert_contains(node_name_problem(std::string("n1\0x", 4)), "character other than");
  ck_assert_contains(node_name_problem(std::string(65, 'n')), "longer than 64");

  std::string why;
  ck_assert_std_str_eq(*expand_node_path("/run/pg/%n", "n3", &why), "/run/pg/n3");
  ck_assert(!expand_node_path("/run/pg/%n", "../../tmp/x", &why));
  ck_assert_contains(why, "node name '../../tmp/x' refused");
  ck_assert(!expand_node_path("/run/pg/%n/state", "..", &why));
  ck_assert(!expand_node_path("/run/pg/%n", "", &why));
  // No %n: the name is not used in the path.
  ck_assert_std_str_eq(*expand_node_path("/run/powergrad", "whatever/..", &why), "/run/powergrad");
  ck_assert(!expand_node_path("relative/%n", "n1", &why));
  ck_assert_contains(why, "not an absolute path");

  // slurmstepd's own SLURMD_NODENAME, never the job's environment; unset: this host.
  ck_assert_std_str_eq(stepd_node_name("n1"), "n1");
  ck_assert_std_str_eq(stepd_node_name(nullptr), this_slurmd_node_name());
  ck_assert_std_str_eq(stepd_node_name(""), this_slurmd_node_name());
}
END_TEST

START_TEST(node_name_from_slurmd_cmdline) {
  using std::string;
  ck_assert_std_str_eq(node_name_from_cmdline(string("slurmd\0-D\0-N\0n3\0", 16)), "n3");
  ck_assert_std_str_eq(node_name_from_cmdline(string("/usr/sbin/slurmd\0-Nnode12\0", 26)),
                       "node12");
  ck_assert_std_str_eq(node_name_from_cmdline(string("slurmd\0-D\0", 10)), "");
  // A trailing -N without a value is not a name.
  ck_assert_std_str_eq(node_name_from_cmdline(string("slurmd\0-N\0", 10)), "");
  // The program name itself is never taken, even if it starts with -N.
  ck_assert_std_str_eq(node_name_from_cmdline(string("-Nfoo\0", 6)), "");
}
END_TEST

// A temporary folder tree for the plugstack scans; removed at the end of the test.
namespace {
struct Tree {
  std::string top;
  Tree() {
    char tmpl[] = "/tmp/pg-plugstack-XXXXXX";
    ck_assert_ptr_nonnull(::mkdtemp(tmpl));
    top = tmpl;
  }
  ~Tree() {
    std::error_code ec;
    std::filesystem::remove_all(top, ec);
  }
  void write(const std::string &rel, const std::string &text) const {
    const std::string path = top + "/" + rel;
    std::filesystem::create_directories(path.substr(0, path.rfind('/')));
    std::ofstream(path) << text;
  }
  void mkdir(const std::string &rel) const { std::filesystem::create_directories(top + "/" + rel); }
};
}  // namespace

START_TEST(plugstack_lines_and_includes) {
  Tree t;
  t.write("plugstack.conf",
          "# comment\n"
          "optional /usr/lib/other.so a=1  # trailing\n"
          "\n"
          "include plugstack.conf.d/*.conf\n"
          "required /x/spank_powergrad.so state_dir=/s period=2\n");
  t.write("plugstack.conf.d/b.conf", "required /y/b.so\n");
  t.write("plugstack.conf.d/a.conf", "required /y/a.so\nbogus line\n");
  std::vector<std::string> problems;
  const std::vector<PlugstackLine> l = read_plugstack(t.top + "/plugstack.conf", problems);
  ck_assert_uint_eq(l.size(), 4);
  ck_assert_std_str_eq(l[0].plugin, "/usr/lib/other.so");
  ck_assert_uint_eq(l[0].args.size(), 1);
  ck_assert_std_str_eq(l[1].plugin, "/y/a.so");  // include's files in glob order
  ck_assert_std_str_eq(l[2].plugin, "/y/b.so");
  ck_assert_std_str_eq(l[3].plugin, "/x/spank_powergrad.so");
  ck_assert_int_eq(l[3].line, 5);
  ck_assert_uint_eq(l[3].args.size(), 2);
  ck_assert_uint_eq(problems.size(), 1);
  ck_assert_contains(problems[0], "a.conf:2: not 'required|optional");
  problems.clear();
  (void)read_plugstack(t.top + "/missing.conf", problems);
  ck_assert_uint_eq(problems.size(), 1);
  ck_assert_contains(problems[0], "missing.conf: cannot be read");
  // An include of itself stops at the depth limit, with a problem, not a crash.
  t.write("loop.conf", "include loop.conf\n");
  problems.clear();
  (void)read_plugstack(t.top + "/loop.conf", problems);
  ck_assert_uint_eq(problems.size(), 1);
  ck_assert_contains(problems[0], "nest deeper");
}
END_TEST

START_TEST(plugstack_node_folders_by_pattern) {
  Tree t;
  for (const char *n : {"n1", "n2", "n10"}) t.mkdir(std::string("nodes/") + n + "/state");
  t.mkdir("nodes/n3/other");    // no state folder: not a node of the pattern
  t.mkdir("nodes/a b*/state");  // a name the agent would refuse
  t.write("plugstack.conf",
          "required /usr/lib/slurm-wlm/spank_powergrad.so state_dir=" + t.top +
              "/nodes/%n/state sysfs_root=" + t.top +
              "/nodes/%n/sys\n"
              "required spank_powergrad.so period=0.5\n"  // defaults: /run/powergrad, /sys
              "required spank_powergrad.so bad_key=1\n"
              "required other.so state_dir=/nowhere\n");
  const PlugstackScan s = scan_powergrad_folders(t.top + "/plugstack.conf");
  ck_assert(s.plugin_named);
  ck_assert_uint_eq(s.folders.size(), 4);
  std::set<std::string> nodes;
  for (std::size_t i = 0; i < 3; ++i) {
    const NodeFolders &f = s.folders[i];
    nodes.insert(f.node);
    ck_assert_std_str_eq(f.state_dir, t.top + "/nodes/" + f.node + "/state");
    ck_assert_std_str_eq(f.sysfs_root, t.top + "/nodes/" + f.node + "/sys");
    ck_assert_contains(f.origin, "plugstack.conf:1");
  }
  ck_assert(nodes == (std::set<std::string>{"n1", "n2", "n10"}));
  ck_assert_std_str_eq(s.folders[3].state_dir, "/run/powergrad");
  ck_assert_std_str_eq(s.folders[3].sysfs_root, "/sys");
  ck_assert_std_str_eq(s.folders[3].node, "");
  ck_assert_uint_eq(s.problems.size(), 1);
  ck_assert_contains(s.problems[0], "plugstack.conf:3: unknown plugin argument");
  ck_assert_contains(s.problems[0], "bad_key");

  // Glob characters in the literal part are literal; every %n is the same name.
  t.mkdir("odd[1]/n1/n1");
  t.mkdir("odd[1]/n1/n2");
  const std::vector<PatternMatch> m = match_node_pattern(t.top + "/odd[1]/%n/%n", nullptr);
  ck_assert_uint_eq(m.size(), 1);
  ck_assert_std_str_eq(m[0].node, "n1");

  // sysfs_root with %n needs state_dir with %n to tell the node.
  t.write("p2.conf", "required spank_powergrad.so sysfs_root=/x/%n\n");
  const PlugstackScan s2 = scan_powergrad_folders(t.top + "/p2.conf");
  ck_assert_uint_eq(s2.folders.size(), 0);
  ck_assert_uint_eq(s2.problems.size(), 1);
  ck_assert_contains(s2.problems[0], "sysfs_root holds %n but state_dir does not");
  const PlugstackScan s3 = scan_powergrad_folders(t.top + "/p3.conf");
  ck_assert(!s3.plugin_named);
}
END_TEST

int main() {
  Suite *s = suite_create("spank_config");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, mode_named_values);
  tcase_add_test(tc, mode_missing_value_is_default);
  tcase_add_test(tc, mode_bad_value_names_it_and_choices);
  tcase_add_test(tc, mode_names_round_trip);
  tcase_add_test(tc, slurmd_foreground_from_its_command_line);
  tcase_add_test(tc, args_defaults_and_known_keys);
  tcase_add_test(tc, args_unknown_key_is_named);
  tcase_add_test(tc, args_bad_values_are_named);
  tcase_add_test(tc, args_state_dir_and_period);
  tcase_add_test(tc, args_low_cap_slowdown);
  tcase_add_test(tc, args_load_spread);
  tcase_add_test(tc, args_top_clock_busy);
  tcase_add_test(tc, args_plain_beside);
  tcase_add_test(tc, node_tokens_expand);
  tcase_add_test(tc, node_names_are_checked_before_they_go_into_paths);
  tcase_add_test(tc, node_name_from_slurmd_cmdline);
  tcase_add_test(tc, plugstack_lines_and_includes);
  tcase_add_test(tc, plugstack_node_folders_by_pattern);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
