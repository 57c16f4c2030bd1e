// Scenario files: the shipped ones load, defaults apply, and every bad file is refused with
// a message naming the file, the line and column, the key and the problem.
#include <cmath>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>

// Check after the standard headers: its fail() macro breaks the iostream headers.
#include <check.h>

#include "sim/policy_factories.hpp"
#include "sim/scenario.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad::sim;

namespace {

const char kGood[] = R"(name: tiny
duration_s: 60
budget:
  watts: 300
socket_types:
  xeon:
    tdp_w: 200
    p0_w: 60
node_templates:
  one:
    sockets:
      - services:
          - {workload: bert, servers: 2, load: 0.5}
groups:
  - nodes:
      - {template: one, count: 2}
)";

// The error message for `text`, or "" if it parses.
std::string error_of(const std::string &text) {
  try {
    parse_scenario(text, "bad.yaml");
  } catch (const ScenarioError &e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string text, const std::string &from, const std::string &to) {
  const std::size_t at = text.find(from);
  ck_assert_msg(at != std::string::npos, "test bug: '%s' not in the text", from.c_str());
  return text.replace(at, from.size(), to);
}

std::string srcdir() {
  const char *dir = std::getenv("PG_SRCDIR");
  return dir ? dir : ".";
}

}  // namespace

START_TEST(good_file_gets_defaults) {
  const ClusterSpec s = parse_scenario(kGood, "good.yaml");
  ck_assert_std_str_eq(s.name, "tiny");
  ck_assert_uint_eq(s.nodes.size(), 2);
  ck_assert_uint_eq(s.sockets.size(), 2);
  ck_assert_double_eq_tol(s.sockets[0].min_cap_w, 90.0, 1e-9);  // 0.45 x TDP
  ck_assert_double_eq_tol(s.sockets[0].max_cap_w, 200.0, 1e-9);
  ck_assert_double_eq_tol(s.tick_s, 0.1, 1e-12);
  ck_assert_double_eq_tol(s.warmup_s, 6.0, 1e-12);  // at most 10% of the duration
  ck_assert(s.hardware_counters);
  ck_assert_double_eq_tol(s.budget.at_w(30.0), 300.0, 1e-9);
  // bert preset: 120 ms; 2 servers at load 0.5 -> 8.33 requests per second.
  ck_assert_double_eq_tol(s.services[0].mean_rate_rps, 0.5 * 2 / 0.120, 1e-9);
  ck_assert_uint_eq(s.groups.size(), 1);
}
END_TEST

START_TEST(shipped_scenarios_load) {
  for (const char *name : {"dual-socket", "dual-socket-plain", "single-socket-accel", "renewable-day"}) {
    const std::string path = srcdir() + "/scenarios/" + name + ".yaml";
    const ClusterSpec s = load_scenario(path);
    ck_assert_std_str_eq(s.name, name);
    ck_assert(s.check().empty());
    ck_assert(s.budget.min_w() >= s.sum_min_caps_w());
  }
  const ClusterSpec dual = load_scenario(srcdir() + "/scenarios/dual-socket.yaml");
  ck_assert_uint_eq(dual.nodes.size(), 64);
  ck_assert_uint_eq(dual.sockets.size(), 128);
  // Severe: the budget is below what the sockets would draw, at most 60% of TDP.
  ck_assert(dual.budget.min_w() <= 0.6 * dual.sum_max_caps_w() + 1e-6);
  const ClusterSpec day = load_scenario(srcdir() + "/scenarios/renewable-day.yaml");
  ck_assert(day.budget.points_w.size() > 5);
  ck_assert(day.budget.linear);
}
END_TEST

// The scenarios written for issue 12 load and say what they claim to test.
START_TEST(generalisation_scenarios_load) {
  for (const char *name :
       {"hetero-epyc-xeon", "llm-serving-regions", "demand-response", "homogeneous-tight",
        "loose-budget", "low-load-spare", "large-mixed-sizes", "vm-bursty", "vm-progress",
        "homogeneous-vm", "homogeneous-floor", "plain-bursty", "shared-sockets"}) {
    const ClusterSpec s = load_scenario(srcdir() + "/scenarios/" + name + ".yaml");
    ck_assert_std_str_eq(s.name, name);
    ck_assert(s.check().empty());
  }
  // Heterogeneous: a 280 W socket with a higher P0 share next to a 205 W one.
  const ClusterSpec het = load_scenario(srcdir() + "/scenarios/hetero-epyc-xeon.yaml");
  ck_assert_uint_eq(het.socket_types.size(), 2);
  const SocketTypeSpec &epyc = het.socket_types[1], &xeon = het.socket_types[0];
  ck_assert_double_eq_tol(epyc.max_cap_w, 280.0, 1e-9);
  ck_assert_double_eq_tol(xeon.max_cap_w, 205.0, 1e-9);
  ck_assert(epyc.p0_w / epyc.tdp_w > xeon.p0_w / xeon.tdp_w + 0.05);
  // Regions in anti-phase: the west services set only the phase and inherit the cycle.
  const ClusterSpec llm = load_scenario(srcdir() + "/scenarios/llm-serving-regions.yaml");
  ck_assert_uint_eq(llm.groups.size(), 2);
  for (std::size_t g = 0; g < 2; ++g) {
    ck_assert(std::isfinite(llm.groups[g].limit_w));
    for (std::size_t n : llm.groups[g].nodes)
      for (std::size_t k : llm.nodes[n].sockets)
        for (std::size_t v : llm.sockets[k].services) {
          const ArrivalSpec &a = llm.services[v].arrivals;
          ck_assert_double_eq_tol(a.diurnal_amplitude, 0.4, 1e-12);
          ck_assert_double_eq_tol(a.diurnal_period_s, 3600.0, 1e-12);
          ck_assert_double_eq_tol(a.diurnal_phase_s, g == 0 ? 0.0 : 1800.0, 1e-12);
        }
  }
  ck_assert(llm.budget.at_w(0) < llm.groups[0].limit_w + llm.groups[1].limit_w);
  // Demand response: -30% for 10 minutes, then back.
  const ClusterSpec dr = load_scenario(srcdir() + "/scenarios/demand-response.yaml");
  ck_assert_double_eq_tol(dr.budget.at_w(700.0), 0.7 * dr.budget.at_w(300.0), 1e-6);
  ck_assert_double_eq_tol(dr.budget.at_w(1050.0), dr.budget.at_w(449.0), 1e-9);
  ck_assert_double_eq_tol(dr.budget.at_w(450.0), dr.budget.at_w(1049.0), 1e-9);
  // VM-like: software counters, 0.5 s delay, bursts; a partial service map stays mmpp.
  const ClusterSpec vm = load_scenario(srcdir() + "/scenarios/vm-bursty.yaml");
  ck_assert(!vm.hardware_counters);
  ck_assert_double_eq_tol(vm.transport_delay_s, 0.5, 1e-12);
  bool short_bursts = false;
  for (const ServiceSpec &svc : vm.services) {
    ck_assert(svc.arrivals.kind == ArrivalSpec::Kind::mmpp);
    ck_assert_double_eq_tol(svc.arrivals.burst_factor, 1.4, 1e-12);
    short_bursts = short_bursts || svc.arrivals.burst_mean_s == 5.0;
  }
  ck_assert(short_bursts);
  const ClusterSpec big = load_scenario(srcdir() + "/scenarios/large-mixed-sizes.yaml");
  ck_assert_uint_eq(big.nodes.size(), 512);
  // VM-like with progress: software counters, most services report progress, the two
  // memory-bound stacks (DLRM on its own socket, LSTM) do not.
  const ClusterSpec prog = load_scenario(srcdir() + "/scenarios/vm-progress.yaml");
  ck_assert(!prog.hardware_counters);
  std::size_t with = 0, without = 0;
  for (const ServiceSpec &svc : prog.services) (svc.progress_signal ? with : without) += 1;
  ck_assert_uint_gt(with, 2 * without);
  ck_assert_uint_gt(without, 0);
  // Homogeneous VMs: one workload on every socket, all of it reporting progress, software
  // counters, a transport delay.
  const ClusterSpec hvm = load_scenario(srcdir() + "/scenarios/homogeneous-vm.yaml");
  ck_assert(!hvm.hardware_counters);
  ck_assert(hvm.transport_delay_s > 0.0);
  for (const ServiceSpec &svc : hvm.services) {
    ck_assert(svc.progress_signal);
    ck_assert_uint_eq(svc.workload, hvm.services.front().workload);
  }
}
END_TEST

// dual-socket-plain is dual-socket with a quarter of its services plain, nothing else.
START_TEST(dual_socket_plain_is_dual_socket_with_a_quarter_plain) {
  const ClusterSpec dual = load_scenario(srcdir() + "/scenarios/dual-socket.yaml");
  const ClusterSpec plain = load_scenario(srcdir() + "/scenarios/dual-socket-plain.yaml");
  ck_assert_uint_eq(plain.services.size(), dual.services.size());
  ck_assert_uint_eq(plain.sockets.size(), dual.sockets.size());
  ck_assert_double_eq_tol(plain.budget.at_w(0.0), dual.budget.at_w(0.0), 1e-9);
  std::size_t n_plain = 0;
  bool compute_bound = false, memory_bound = false, shares_a_socket = false;
  for (std::size_t i = 0; i < plain.services.size(); ++i) {
    const ServiceSpec &p = plain.services[i], &d = dual.services[i];
    ck_assert(d.power_aware);
    ck_assert_std_str_eq(p.name, d.name.c_str());
    ck_assert_std_str_eq(plain.workloads[p.workload].name, dual.workloads[d.workload].name.c_str());
    ck_assert(p.load == d.load);  // the same draws: same order of nodes and services
    ck_assert(p.mean_rate_rps == d.mean_rate_rps);
    ck_assert_int_eq(p.servers, d.servers);
    ck_assert_uint_eq(p.socket, d.socket);
    if (p.power_aware) continue;
    ++n_plain;
    const double m = plain.workloads[p.workload].memory_share;
    compute_bound = compute_bound || m < 0.3;
    memory_bound = memory_bound || m >= 0.5;
    for (std::size_t o : plain.sockets[p.socket].services)
      shares_a_socket = shares_a_socket || plain.services[o].power_aware;
  }
  ck_assert_uint_eq(4 * n_plain, plain.services.size());
  ck_assert(compute_bound && memory_bound && shares_a_socket);
}
END_TEST

START_TEST(unknown_key_names_file_line_and_key) {
  const std::string e = error_of(replace(kGood, "    p0_w: 60", "    p0_w: 60\n    tdp: 3"));
  ck_assert_contains(e, "bad.yaml:9:5: socket_types.xeon.tdp: unknown key");
  ck_assert_contains(e, "tdp_w");  // lists what is allowed
}
END_TEST

START_TEST(bad_number_and_range) {
  ck_assert_contains(error_of(replace(kGood, "tdp_w: 200", "tdp_w: lots")),
                     "bad.yaml:7:12: socket_types.xeon.tdp_w: expected a number, got 'lots'");
  ck_assert_contains(error_of(replace(kGood, "duration_s: 60", "duration_s: -5")),
                     "bad.yaml:2:13: duration_s: -5 is out of range");
  ck_assert_contains(error_of(replace(kGood, "load: 0.5", "load: [0.9, 0.2]")),
                     "node_templates.one.sockets[0].services[0].load: expected 0 < low <= high");
  ck_assert_contains(error_of(replace(kGood, "p0_w: 60", "p0_w: 95")),
                     "min cap 90 W is not above p0_w 95 W");
}
END_TEST

START_TEST(agent_knowledge_flags) {
  const ClusterSpec plain = parse_scenario(kGood, "good.yaml");
  ck_assert(!plain.agent_knows_servers);
  ck_assert(!plain.services[0].progress_signal);
  const ClusterSpec told = parse_scenario(
      std::string("agent_knows_servers: true\nprogress_signal: yes\n") +
          replace(kGood, "load: 0.5}", "load: 0.5, progress_signal: false}"),
      "flags.yaml");
  ck_assert(told.agent_knows_servers);
  ck_assert(!told.services[0].progress_signal);  // the service's own key wins
  ck_assert(parse_scenario(std::string("progress_signal: true\n") + kGood, "f.yaml").services[1].progress_signal);
  ck_assert_contains(error_of(replace(kGood, "load: 0.5}", "load: 0.5, progress_signal: maybe}")),
                     "node_templates.one.sockets[0].services[0].progress_signal: expected true or false, got 'maybe'");
}
END_TEST

START_TEST(power_aware_flag) {
  const ClusterSpec all = parse_scenario(kGood, "good.yaml");
  ck_assert(all.services[0].power_aware);  // the default: every service is power-aware
  ck_assert(all.services[1].power_aware);
  const ClusterSpec plain =
      parse_scenario(replace(kGood, "load: 0.5}", "load: 0.5, power_aware: false}"), "p.yaml");
  ck_assert_uint_eq(plain.services.size(), 2);
  for (const ServiceSpec &s : plain.services) ck_assert(!s.power_aware);  // every instance
  ck_assert(parse_scenario(replace(kGood, "load: 0.5}", "load: 0.5, power_aware: yes}"), "p.yaml")
                .services[0]
                .power_aware);
  ck_assert_contains(error_of(replace(kGood, "load: 0.5}", "load: 0.5, power_aware: maybe}")),
                     "bad.yaml:13:66: node_templates.one.sockets[0].services[0].power_aware: "
                     "expected true or false, got 'maybe'");
  ck_assert_contains(error_of(replace(kGood, "load: 0.5}", "load: 0.5, power_aware: [no]}")),
                     "bad.yaml:13:66: node_templates.one.sockets[0].services[0].power_aware: "
                     "expected true or false");
  ck_assert(all.plain_share == ClusterSpec::PlainShare::usage);  // powergrad.conf's default
  ck_assert(parse_scenario(std::string("plain_share: even\n") + kGood, "p.yaml").plain_share ==
            ClusterSpec::PlainShare::even);
  ck_assert_contains(error_of(std::string("plain_share: half\n") + kGood),
                     "bad.yaml:1:14: plain_share: 'half' is not one of: usage, even");
  // Misspelt: an unknown key, not a silently power-aware service.
  ck_assert_contains(error_of(replace(kGood, "load: 0.5}", "load: 0.5, power-aware: false}")),
                     "node_templates.one.sockets[0].services[0].power-aware: unknown key");
}
END_TEST

START_TEST(bad_references) {
  ck_assert_contains(error_of(replace(kGood, "workload: bert", "workload: gpt9")),
                     "bad.yaml:13:24: node_templates.one.sockets[0].services[0].workload: unknown workload 'gpt9'");
  ck_assert_contains(error_of(replace(kGood, "template: one", "template: two")),
                     "groups[0].nodes[0].template: unknown node template 'two'");
  ck_assert_contains(error_of(replace(kGood, "      - services:", "      - type: arm\n        services:")),
                     "unknown socket type 'arm'");
}
END_TEST

START_TEST(budget_problems) {
  ck_assert_contains(error_of(replace(kGood, "watts: 300", "watts: 100")),
                     "below the sum of the sockets' minimum caps 180 W");
  ck_assert_contains(error_of(replace(kGood, "watts: 300", "watts: 300\n  share_of_max: 0.5")),
                     "budget: give exactly one of watts, share_of_max, series");
  ck_assert_contains(error_of(replace(kGood, "watts: 300", "series: [[0, 0.9], [0, 0.95]]")),
                     "budget.series[1]: times must increase");
  ck_assert_contains(error_of(replace(kGood, "watts: 300", "watts: 300\n  interpolate: cubic")),
                     "budget.interpolate: 'cubic' is not one of: step, linear");
}
END_TEST

START_TEST(yaml_syntax_and_files) {
  ck_assert_contains(error_of("name: x\n  bad: [1, 2\n"), "bad.yaml:");
  ck_assert_contains(error_of(""), "bad.yaml: the file is empty");
  ck_assert_contains(error_of("- 1\n- 2\n"), "expected a map of keys");
  try {
    load_scenario("/nonexistent/dir/x.yaml");
    ck_abort_msg("no error for a missing file");
  } catch (const ScenarioError &e) {
    ck_assert_contains(e.what(), "/nonexistent/dir/x.yaml: cannot open the file");
  }
}
END_TEST

START_TEST(presets_and_overrides) {
  const std::string text = replace(kGood, "node_templates:",
                                   "workloads:\n  fast-bert:\n    like: bert\n    service_time_ms: 30\n"
                                   "node_templates:");
  const ClusterSpec s = parse_scenario(replace(text, "workload: bert", "workload: fast-bert"), "p.yaml");
  const WorkloadSpec &w = s.workloads[s.services[0].workload];
  ck_assert_std_str_eq(w.name, "fast-bert");
  ck_assert_double_eq_tol(w.service_time_s, 0.030, 1e-12);
  ck_assert_double_eq_tol(w.memory_share, workload_preset("bert")->memory_share, 1e-12);
  ck_assert_contains(error_of(replace(text, "like: bert", "like: gpt")), "unknown preset 'gpt'");
}
END_TEST

// Two services of one workload on one socket are two services with names of their own (the
// powergrad policy's node controllers key their jobs by name; with one name the second was
// skipped as a duplicate, unseen, and its socket's power was decided without it).
START_TEST(services_of_one_workload_on_a_socket_have_their_own_names) {
  const std::string first = "          - {workload: bert, servers: 2, load: 0.5}";
  const std::string text = replace(kGood, first,
                                   first + "\n          - {workload: bert, servers: 2, load: 0.8}" +
                                       "\n          - {workload: bert, servers: 2, load: 0.3}");
  const ClusterSpec s = parse_scenario(text, "twice.yaml");
  for (const SocketSpec &sock : s.sockets) {
    std::set<std::string> names;
    for (std::size_t svc : sock.services) names.insert(s.services[svc].name);
    ck_assert_uint_eq(names.size(), sock.services.size());
  }
  ck_assert_uint_eq(s.sockets[0].services.size(), 3);
  ck_assert_std_str_eq(s.services[s.sockets[0].services[2]].name, s.sockets[0].name + ".bert.3");
  // And the powergrad policy takes such a cluster, and refuses one where names collide.
  ck_assert_ptr_nonnull(make_powergrad_policy(s).get());
  ClusterSpec same = s;
  same.services[same.sockets[0].services[1]].name = same.services[same.sockets[0].services[0]].name;
  bool refused = false;
  try {
    make_powergrad_policy(same);
  } catch (const std::logic_error &e) {
    refused = std::string(e.what()).find("are named " + same.services[0].name) != std::string::npos;
  }
  ck_assert_msg(refused, "two services under one name were not refused");
}
END_TEST

// A service's arrivals map is merged over the top-level one: the keys it sets win, the others
// (kind and the diurnal keys included) are inherited.
const char kTopArrivals[] =
    "arrivals:\n  kind: mmpp\n  burst_factor: 1.5\n  burst_mean_s: 30\n  calm_mean_s: 90\n"
    "  diurnal_amplitude: 0.4\n  diurnal_period_s: 3600\n  diurnal_phase_s: 600\n"
    "node_templates:";

START_TEST(service_arrivals_merge_over_top_level) {
  const std::string top = replace(kGood, "node_templates:", kTopArrivals);
  // No map: the top level's, as before.
  const ArrivalSpec plain = parse_scenario(top, "a.yaml").services[0].arrivals;
  ck_assert(plain.kind == ArrivalSpec::Kind::mmpp);
  ck_assert_double_eq_tol(plain.diurnal_amplitude, 0.4, 1e-12);
  // Only burst_mean_s: still mmpp, with the top level's factor, calm mean and diurnal cycle.
  const ArrivalSpec burst =
      parse_scenario(replace(top, "load: 0.5}", "load: 0.5, arrivals: {burst_mean_s: 10}}"),
                     "a.yaml")
          .services[1]
          .arrivals;
  ck_assert(burst.kind == ArrivalSpec::Kind::mmpp);
  ck_assert_double_eq_tol(burst.burst_mean_s, 10.0, 1e-12);
  ck_assert_double_eq_tol(burst.burst_factor, 1.5, 1e-12);
  ck_assert_double_eq_tol(burst.calm_mean_s, 90.0, 1e-12);
  ck_assert_double_eq_tol(burst.diurnal_amplitude, 0.4, 1e-12);
  ck_assert_double_eq_tol(burst.diurnal_period_s, 3600.0, 1e-12);
  ck_assert_double_eq_tol(burst.diurnal_phase_s, 600.0, 1e-12);
  // Only the phase (a region in anti-phase): the amplitude and period are inherited.
  const ArrivalSpec phase =
      parse_scenario(replace(top, "load: 0.5}", "load: 0.5, arrivals: {diurnal_phase_s: 2400}}"),
                     "a.yaml")
          .services[0]
          .arrivals;
  ck_assert(phase.kind == ArrivalSpec::Kind::mmpp);
  ck_assert_double_eq_tol(phase.diurnal_amplitude, 0.4, 1e-12);
  ck_assert_double_eq_tol(phase.diurnal_period_s, 3600.0, 1e-12);
  ck_assert_double_eq_tol(phase.diurnal_phase_s, 2400.0, 1e-12);
  ck_assert_double_eq_tol(phase.diurnal_factor(2400.0 + 900.0), 1.4, 1e-9);  // a quarter period on
  // kind: poisson turns the bursts off and keeps the diurnal cycle; amplitude 0 turns it off.
  const ArrivalSpec calm =
      parse_scenario(
          replace(top, "load: 0.5}", "load: 0.5, arrivals: {kind: poisson, diurnal_amplitude: 0}}"),
          "a.yaml")
          .services[0]
          .arrivals;
  ck_assert(calm.kind == ArrivalSpec::Kind::poisson);
  ck_assert_double_eq_tol(calm.diurnal_amplitude, 0.0, 1e-12);
  ck_assert_double_eq_tol(calm.burst_mean_s, 30.0, 1e-12);  // inherited, unused
  // Without a top-level map a partial one starts from the defaults.
  const ArrivalSpec alone =
      parse_scenario(replace(kGood, "load: 0.5}", "load: 0.5, arrivals: {burst_mean_s: 10}}"),
                     "a.yaml")
          .services[0]
          .arrivals;
  ck_assert(alone.kind == ArrivalSpec::Kind::poisson);
  ck_assert_double_eq_tol(alone.burst_mean_s, 10.0, 1e-12);
  ck_assert_double_eq_tol(alone.diurnal_amplitude, 0.0, 1e-12);
  const ArrivalSpec mmpp =
      parse_scenario(replace(kGood, "load: 0.5}", "load: 0.5, arrivals: {kind: mmpp}}"), "a.yaml")
          .services[0]
          .arrivals;
  ck_assert(mmpp.kind == ArrivalSpec::Kind::mmpp);
  ck_assert_double_eq_tol(mmpp.burst_factor, 2.0, 1e-12);
  ck_assert_double_eq_tol(mmpp.burst_mean_s, 20.0, 1e-12);
  ck_assert_double_eq_tol(mmpp.calm_mean_s, 100.0, 1e-12);
}
END_TEST

START_TEST(service_arrivals_bad_values_are_refused) {
  const std::string top = replace(kGood, "node_templates:", kTopArrivals);
  ck_assert_contains(
      error_of(replace(top, "load: 0.5}", "load: 0.5, arrivals: {burst_mean_s: -1}}")),
      "node_templates.one.sockets[0].services[0].arrivals.burst_mean_s: -1 is out of range");
  ck_assert_contains(
      error_of(replace(top, "load: 0.5}", "load: 0.5, arrivals: {kind: bursty}}")),
      "node_templates.one.sockets[0].services[0].arrivals.kind: 'bursty' is not one of: "
      "poisson, mmpp");
  ck_assert_contains(
      error_of(replace(top, "load: 0.5}", "load: 0.5, arrivals: {diurnal_amplitude: 1.5}}")),
      "node_templates.one.sockets[0].services[0].arrivals.diurnal_amplitude: 1.5 is out of range");
  ck_assert_contains(error_of(replace(top, "load: 0.5}", "load: 0.5, arrivals: {burst_len_s: 3}}")),
                     "node_templates.one.sockets[0].services[0].arrivals.burst_len_s: unknown key");
  // Valid alone, not with what it inherits: 1.5 x 200 / (200 + 90) > 1 needs a negative calm rate.
  const std::string merged =
      error_of(replace(top, "load: 0.5}", "load: 0.5, arrivals: {burst_mean_s: 200}}"));
  ck_assert_contains(
      merged,
      "bad.yaml:21:63: node_templates.one.sockets[0].services[0].arrivals: burst_factor 1.5 "
      "with burst_mean_s 200 and calm_mean_s 90 (keys not set here are the "
      "top-level arrivals') would need a negative calm rate");
  // The top-level map alone: no word of inheritance.
  const std::string own = error_of(replace(top, "burst_mean_s: 30", "burst_mean_s: 200"));
  ck_assert_contains(own, "bad.yaml:");
  ck_assert_contains(own,
                     "arrivals: burst_factor 1.5 with burst_mean_s 200 and calm_mean_s 90 would "
                     "need a negative calm rate");
}
END_TEST

int main() {
  Suite *s = suite_create("sim_scenario");
  TCase *tc = tcase_create("scenario");
  tcase_add_test(tc, good_file_gets_defaults);
  tcase_add_test(tc, shipped_scenarios_load);
  tcase_add_test(tc, generalisation_scenarios_load);
  tcase_add_test(tc, dual_socket_plain_is_dual_socket_with_a_quarter_plain);
  tcase_add_test(tc, unknown_key_names_file_line_and_key);
  tcase_add_test(tc, bad_number_and_range);
  tcase_add_test(tc, agent_knowledge_flags);
  tcase_add_test(tc, power_aware_flag);
  tcase_add_test(tc, bad_references);
  tcase_add_test(tc, budget_problems);
  tcase_add_test(tc, yaml_syntax_and_files);
  tcase_add_test(tc, presets_and_overrides);
  tcase_add_test(tc, service_arrivals_merge_over_top_level);
  tcase_add_test(tc, service_arrivals_bad_values_are_refused);
  tcase_add_test(tc, services_of_one_workload_on_a_socket_have_their_own_names);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
