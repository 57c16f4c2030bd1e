// Baseline settings (powergrad-sim --set): keys and values are checked with messages naming
// them, the defaults are libgradient's and give the same numbers as no setting, and a
// setting changes what the baseline does (a longer usage period reacts later to a load
// change; a larger pool release margin releases less).
#include <string>
#include <vector>

// Check after the standard headers: its fail() macro breaks the iostream headers.
#include <check.h>

#include "sim/baseline_settings.hpp"
#include "sim/policies.hpp"
#include "sim/scenario.hpp"
#include "sim/simulation.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad::sim;

namespace {

// Exact sensors the test sets directly; caps recorded (as in test_sim_policies).
class FakeIo final : public ClusterIo {
 public:
  explicit FakeIo(const ClusterSpec &spec)
      : spec_(spec),
        caps_(spec.sockets.size(), 0.0),
        energy_(spec.sockets.size(), 0.0),
        power_(spec.sockets.size(), 0.0) {}
  const ClusterSpec &spec() const override { return spec_; }
  double now_s() const override { return now_; }
  double budget_w() const override { return budget_; }
  double read_energy_j(std::size_t socket) override { return energy_[socket]; }
  CounterReading read_counters(std::size_t) override { return {}; }
  double cap_w(std::size_t socket) const override { return caps_[socket]; }
  void set_cap_w(std::size_t socket, double cap_w) override { caps_[socket] = cap_w; }
  void set_core_limit_hz(std::size_t, double) override {}

  // Runs the policy tick by tick (0.1 s) until t_s, each socket drawing power_[k].
  void run_until(Policy &p, double t_s) {
    while (now_ < t_s - 1e-9) {
      now_ = static_cast<double>(++ticks_) * 0.1;
      for (std::size_t k = 0; k < energy_.size(); ++k) energy_[k] += power_[k] * 0.1;
      p.tick(*this);
    }
  }

  const ClusterSpec &spec_;
  std::vector<double> caps_, energy_, power_;
  double now_ = 0.0;
  long ticks_ = 0;
  double budget_ = 0.0;
};

class FakeTruth final : public Truth {
 public:
  double rate_rps(std::size_t) const override { return 1.0; }
  double average_rate_rps(std::size_t) const override { return 1.0; }
};

// 2 nodes of 2 sockets [92, 205] W, one service each.
const char kCluster[] =
    "duration_s: 30\nbudget:\n  watts: 600\nsocket_types:\n  x:\n    tdp_w: 205\n    p0_w: 60\n"
    "    min_cap_w: 92\nnode_templates:\n  t:\n    sockets:\n"
    "      - services:\n          - {workload: resnet50, servers: 4, load: 0.8}\n"
    "      - services:\n          - {workload: dlrm, servers: 4, load: 0.8}\n"
    "groups:\n  - nodes:\n      - {template: t, count: 2}\n";

ClusterSpec with_settings(const std::vector<std::string> &settings) {
  ClusterSpec spec = parse_scenario(kCluster, "s.yaml");
  for (const std::string &s : settings) {
    const std::string why = apply_baseline_setting(spec.baselines, s);
    ck_assert_msg(why.empty(), "%s: %s", s.c_str(), why.c_str());
  }
  return spec;
}

// When node 0's caps first fall below 150 W, its load having dropped at t = 35 s.
double usage_reaction_s(const std::vector<std::string> &settings) {
  const ClusterSpec spec = with_settings(settings);
  FakeIo io(spec);
  io.budget_ = 600.0;
  FakeTruth truth;
  auto p = make_policy("usage", spec, truth);
  p->start(io);
  io.power_ = {149.5, 149.5, 149.5, 149.5};  // every node at its cap: nothing moves
  io.run_until(*p, 35.0);
  for (double c : io.caps_) ck_assert_double_eq_tol(c, 150.0, 1e-9);
  io.power_[0] = io.power_[1] = 100.0;
  while (io.now_ < 200.0) {
    io.run_until(*p, io.now_ + 0.1);
    if (io.caps_[0] < 150.0 - 1e-6) return io.now_;
  }
  return -1.0;
}

}  // namespace

START_TEST(defaults_are_libgradients) {
  const BaselineSettings s;
  ck_assert_double_eq(s.usage.balance_interval_s, powergrad::UsageParams{}.balance_interval_s);
  ck_assert_double_eq(s.pool.release_margin_w, 1.5);
  ck_assert_double_eq(s.pool.interval_s, 2.0);
  ck_assert(s.changed.empty());
  ck_assert_contains(baseline_settings_help(), "usage.period_s");
  ck_assert_contains(baseline_settings_help(), "pool.release_margin_w");
}
END_TEST

START_TEST(settings_are_applied_and_recorded) {
  BaselineSettings s;
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.period_s=10"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.lower_threshold=0.85"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.upper_threshold=0.9"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.interval_s=5"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.release_margin_w=15"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.release_threshold_w=0"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.grant_step=0.15"), "");
  ck_assert_double_eq(s.usage.balance_interval_s, 10.0);
  ck_assert_double_eq(s.usage.lower_threshold, 0.85);
  ck_assert_double_eq(s.usage.upper_threshold, 0.9);
  ck_assert_double_eq(s.pool.interval_s, 5.0);
  ck_assert_double_eq(s.pool.release_margin_w, 15.0);
  ck_assert_double_eq(s.pool.release_threshold_w, 0.0);
  ck_assert_double_eq(s.pool.grant_step_frac, 0.15);
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.hysteresis=0.89"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.noise_guard_k=2"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.noise_weight=0.03"), "");
  ck_assert_double_eq(s.powergrad_hysteresis, 0.89);
  ck_assert_double_eq(s.powergrad_noise_guard_k, 2.0);
  ck_assert_double_eq(s.powergrad_noise_weight, 0.03);
  ck_assert_uint_eq(s.changed.size(), 10);
  ck_assert_std_str_eq(s.changed[0], "usage.period_s=10");
  ck_assert_std_str_eq(check_baseline_settings(s), "");
}
END_TEST

START_TEST(bad_keys_and_values_are_refused_by_name) {
  BaselineSettings s;
  const std::string unknown = apply_baseline_setting(s, "usage.period=30");
  ck_assert_contains(unknown, "'usage.period': unknown key (expected one of: usage.period_s, ");
  ck_assert_contains(apply_baseline_setting(s, "pool.margin_w=1"), "'pool.margin_w': unknown key");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.period_s=lots"),
                       "usage.period_s: expected a number, got 'lots'");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.period_s=30s"),
                       "usage.period_s: expected a number, got '30s'");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.release_margin_w="),
                       "pool.release_margin_w: expected a number, got ''");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.interval_s=inf"),
                       "pool.interval_s: expected a number, got 'inf'");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.period_s=0"),
                       "usage.period_s: 0 is out of range (0, 1e+06]");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.grant_step=1.5"),
                       "pool.grant_step: 1.5 is out of range (0, 1]");
  ck_assert_std_str_eq(apply_baseline_setting(s, "pool.release_margin_w=-1"),
                       "pool.release_margin_w: -1 is out of range [0, 10000]");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.period_s"),
                       "'usage.period_s': expected KEY=VALUE");
  // An open upper end (the cluster controller refuses a hysteresis of 0.9).
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.hysteresis=0.9"),
                       "powergrad.hysteresis: 0.9 is out of range [0, 0.9)");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.noise_weight=0"),
                       "powergrad.noise_weight: 0 is out of range (0, 1]");
  // Nothing was applied.
  ck_assert(s.changed.empty());
  ck_assert_double_eq(s.usage.balance_interval_s, 30.0);
  // Thresholds are checked together, in any order of setting, and by the spec's check.
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.lower_threshold=0.97"), "");
  ck_assert_std_str_eq(
      check_baseline_settings(s),
      "usage.lower_threshold (0.97) must not be above usage.upper_threshold (0.95)");
  ClusterSpec spec = parse_scenario(kCluster, "s.yaml");
  spec.baselines = s;
  ck_assert_contains(spec.check(), "usage.lower_threshold (0.97) must not be above");
  ck_assert_std_str_eq(apply_baseline_setting(s, "usage.upper_threshold=0.98"), "");
  ck_assert_std_str_eq(check_baseline_settings(s), "");
}
END_TEST

START_TEST(longer_usage_period_reacts_later) {
  // Jobs are not "recent" (recent_job_s 0), so the rules apply from the start. Node 0's
  // load drops at t = 35; the first balance after it lowers its caps: with a 10-s period at
  // t = 40, with the default 30 s at t = 60, with 45 s at t = 45, with 90 s at t = 90.
  ck_assert_double_eq_tol(usage_reaction_s({"usage.recent_job_s=0", "usage.period_s=10"}), 40.0,
                          1e-6);
  ck_assert_double_eq_tol(usage_reaction_s({"usage.recent_job_s=0"}), 60.0, 1e-6);
  ck_assert_double_eq_tol(usage_reaction_s({"usage.recent_job_s=0", "usage.period_s=45"}), 45.0,
                          1e-6);
  ck_assert_double_eq_tol(usage_reaction_s({"usage.recent_job_s=0", "usage.period_s=90"}), 90.0,
                          1e-6);
}
END_TEST

START_TEST(pool_release_margin_is_the_headroom_kept) {
  // Socket 0 draws 100 W under its 150-W fair share, the others are at their caps: at the
  // first interval socket 0 is released to 100 W + the margin.
  for (const double margin : {1.5, 5.0, 15.0}) {
    const ClusterSpec spec = with_settings({"pool.release_margin_w=" + std::to_string(margin)});
    FakeIo io(spec);
    io.budget_ = 600.0;
    FakeTruth truth;
    auto p = make_policy("pool", spec, truth);
    p->start(io);
    io.power_ = {100.0, 150.0, 150.0, 150.0};
    io.run_until(*p, 1.9);
    ck_assert_double_eq_tol(io.caps_[0], 150.0, 1e-9);
    io.run_until(*p, 2.0);
    ck_assert_double_eq_tol(io.caps_[0], 100.0 + margin, 1e-6);
  }
  // A longer interval: nothing moves at t = 2.
  const ClusterSpec slow = with_settings({"pool.interval_s=5"});
  FakeIo io(slow);
  io.budget_ = 600.0;
  FakeTruth truth;
  auto p = make_policy("pool", slow, truth);
  p->start(io);
  io.power_ = {100.0, 150.0, 150.0, 150.0};
  io.run_until(*p, 4.9);
  ck_assert_double_eq_tol(io.caps_[0], 150.0, 1e-9);
  io.run_until(*p, 5.0);
  ck_assert_double_eq_tol(io.caps_[0], 101.5, 1e-6);
  ck_assert_contains(p->inputs(), "pool every 5 s");
}
END_TEST

START_TEST(default_values_set_give_the_same_numbers) {
  const ClusterSpec none = with_settings({});
  const ClusterSpec same =
      with_settings({"usage.period_s=30", "usage.lower_threshold=0.9", "usage.upper_threshold=0.95",
                     "pool.interval_s=2", "pool.release_margin_w=1.5", "pool.grant_step=0.05"});
  const ClusterSpec other = with_settings({"pool.release_margin_w=15", "pool.interval_s=1"});
  for (const char *policy : {"usage", "pool"}) {
    const RunResult a = simulate(none, policy), b = simulate(same, policy);
    ck_assert_double_eq(a.latency.mean_s(), b.latency.mean_s());
    ck_assert_double_eq(a.energy_j, b.energy_j);
  }
  ck_assert_double_ne(simulate(none, "pool").energy_j, simulate(other, "pool").energy_j);
}
END_TEST

START_TEST(powergrad_low_cap_knee_setting) {
  BaselineSettings s;
  ck_assert_double_eq(s.powergrad_low_cap_knee, 0.5);  // as in libgradient
  ck_assert_double_eq(s.powergrad_low_cap_slowdown, 1.0);
  ck_assert_contains(baseline_settings_help(), "powergrad.low_cap_knee");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.low_cap_knee=1.5"),
                       "powergrad.low_cap_knee: 1.5 is out of range [0, 1]");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.low_cap_slowdown=11"),
                       "powergrad.low_cap_slowdown: 11 is out of range [0, 10]");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.low_cap_knee=0"), "");
  ck_assert_std_str_eq(apply_baseline_setting(s, "powergrad.low_cap_slowdown=2"), "");
  ck_assert_double_eq(s.powergrad_low_cap_knee, 0.0);
  ck_assert_double_eq(s.powergrad_low_cap_slowdown, 2.0);
  ck_assert_uint_eq(s.changed.size(), 2);
  // Set to its default, the same numbers; a knee above the caps in force (0.9 x 205 W, the
  // budget's even share being 150 W), other numbers.
  const RunResult none = simulate(with_settings({}), "powergrad");
  const RunResult half = simulate(with_settings({"powergrad.low_cap_knee=0.5"}), "powergrad");
  const RunResult knee = simulate(with_settings({"powergrad.low_cap_knee=0.9"}), "powergrad");
  ck_assert_double_eq(none.latency.mean_s(), half.latency.mean_s());
  ck_assert_double_eq(none.energy_j, half.energy_j);
  ck_assert_double_ne(none.energy_j, knee.energy_j);
}
END_TEST

int main() {
  Suite *s = suite_create("sim_baseline_settings");
  TCase *tc = tcase_create("settings");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, defaults_are_libgradients);
  tcase_add_test(tc, settings_are_applied_and_recorded);
  tcase_add_test(tc, bad_keys_and_values_are_refused_by_name);
  tcase_add_test(tc, longer_usage_period_reacts_later);
  tcase_add_test(tc, pool_release_margin_is_the_headroom_kept);
  tcase_add_test(tc, default_values_set_give_the_same_numbers);
  tcase_add_test(tc, powergrad_low_cap_knee_setting);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
