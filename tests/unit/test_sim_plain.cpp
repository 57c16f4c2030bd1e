// Plain (not power-aware) services in the simulator: every policy keeps the invariants
// (budget never exceeded, caps in range, no request lost uncounted) with them; powergrad and
// the oracles never steer them (a node with only plain services stays at its fair share, their
// latency is about what the even split gives them); the baselines ignore the flag; the
// reports tell the two kinds apart.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <sstream>  // before check.h, whose fail() macro breaks the iostream headers
#include <string>
#include <vector>

// clang-format off: check.h after the standard headers (its fail() macro breaks them)
#include <check.h>
// clang-format on

#include "libgradient/baselines.hpp"
#include "libgradient/cluster_controller.hpp"
#include "sim/cap_helpers.hpp"
#include "sim/oracle_model.hpp"
#include "sim/policies.hpp"
#include "sim/policy_factories.hpp"
#include "sim/report.hpp"
#include "sim/scenario.hpp"
#include "sim/simulation.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad::sim;

namespace {

// Four 2-socket nodes ([92, 205] W per socket), budget 55% of the maxima: 225.5 W per node,
// below what every node draws uncapped. Node 2 has only plain services (BERT, compute-bound;
// DLRM, memory-bound); node 3 has a plain DLRM sharing socket 0 with a power-aware ResNet-50.
const char kSmall[] = R"(name: small-plain
duration_s: 240
warmup_s: 30
budget:
  share_of_max: 0.55
socket_types:
  x:
    tdp_w: 205
    p0_w: 60
    min_cap_w: 92
node_templates:
  aware:
    sockets:
      - services:
          - {workload: resnet50, servers: 4, load: 0.75}
      - services:
          - {workload: llm-decode, servers: 4, load: 0.7}
  plain:
    sockets:
      - services:
          - {workload: bert, servers: 4, load: 0.72, power_aware: false}
      - services:
          - {workload: dlrm, servers: 4, load: 0.6, power_aware: false}
  shared:
    sockets:
      - services:
          - {workload: resnet50, servers: 4, load: 0.72}
          - {workload: dlrm, servers: 4, load: 0.6, power_aware: false}
      - services:
          - {workload: lstm, servers: 4, load: 0.7}
groups:
  - limit_share_of_max: 0.7
    nodes:
      - {template: aware, count: 2}
      - {template: plain, count: 1}
      - {template: shared, count: 1}
)";
constexpr std::size_t kPlainNode = 2;
constexpr double kFairNodeW = 0.55 * 4 * 410.0 / 4;  // 225.5 W: the budget split evenly
constexpr double kFairSocketW = kFairNodeW / 2;

// The same text with every service power-aware.
std::string all_aware(std::string text) {
  const std::string flag = ", power_aware: false";
  for (std::size_t at; (at = text.find(flag)) != std::string::npos;) text.erase(at, flag.size());
  return text;
}

const ClusterSpec &small_spec() {
  static const ClusterSpec spec = parse_scenario(kSmall, "small-plain.yaml");
  return spec;
}

// One run per policy of kSmall, kept for the test's other uses (runs are deterministic).
// (The name is a plain char pointer: a std::string made for the call would be a temporary,
// and GCC 16 then warns that the returned reference may dangle.)
const RunResult &small_run(const char *policy) {
  static std::map<std::string, RunResult> runs;
  auto it = runs.find(policy);
  if (it == runs.end()) it = runs.emplace(policy, simulate(small_spec(), policy)).first;
  return it->second;
}

const WorkloadResult *find_workload(const RunResult &r, const std::string &name, bool power_aware) {
  for (const WorkloadResult &w : r.workloads)
    if (w.name == name && w.power_aware == power_aware) return &w;
  return nullptr;
}

void assert_invariants(const ClusterSpec &spec, const RunResult &r, const std::string &what) {
  ck_assert_msg(r.budget_violations == 0, "%s: %llu budget violations", what.c_str(),
                static_cast<unsigned long long>(r.budget_violations));
  ck_assert_msg(r.cap_bound_violations == 0, "%s: caps out of range", what.c_str());
  ck_assert_msg(r.arrivals == r.completed + r.rejected + r.timed_out + r.in_flight,
                "%s: requests lost", what.c_str());
  ck_assert(r.arrivals > 0);
  // Every recorded completion is in exactly one class and one workload entry.
  ck_assert_uint_eq(r.plain.completed + r.power_aware.completed, r.latency.count());
  std::uint64_t by_workload = 0;
  for (const WorkloadResult &w : r.workloads) by_workload += w.completed;
  ck_assert_uint_eq(by_workload, r.latency.count());
  for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
    double lo = 0.0, hi = 0.0;
    for (std::size_t k : spec.nodes[n].sockets) {
      lo += spec.sockets[k].min_cap_w;
      hi += spec.sockets[k].max_cap_w;
    }
    ck_assert(r.node_max_caps_w[n] >= lo - 1e-6 && r.node_max_caps_w[n] <= hi + 1e-6);
  }
}

// The true rates the oracles read: fixed, one per service.
class FixedRates final : public Truth {
 public:
  double rate_rps(std::size_t s) const override { return r[s]; }
  double average_rate_rps(std::size_t s) const override { return r[s]; }
  std::vector<double> r;
};

// A cluster that only keeps the caps a policy sets, at a budget of a share of the maxima.
class CapsIo final : public ClusterIo {
 public:
  CapsIo(const ClusterSpec &s, double budget_share)
      : caps(s.sockets.size(), 0.0), share(budget_share), spec_(s) {}
  const ClusterSpec &spec() const override { return spec_; }
  double now_s() const override { return now; }
  double budget_w() const override { return share * spec_.sum_max_caps_w(); }
  double read_energy_j(std::size_t) override { return 0.0; }
  CounterReading read_counters(std::size_t) override { return {}; }
  double cap_w(std::size_t k) const override { return caps[k]; }
  void set_cap_w(std::size_t k, double w) override { caps[k] = w; }
  void set_core_limit_hz(std::size_t, double) override {}
  std::vector<double> caps;
  double now = 0.0;
  double share;

 private:
  const ClusterSpec &spec_;
};

// Two socket types (a 250 W and a 150 W one, floors 120 W and 73 W) and a group whose limit
// binds at high budgets. Node 0 (big sockets) has only plain services that draw more than
// any fair share here.
const char kHetero[] = R"(name: hetero-plain
duration_s: 60
warmup_s: 10
budget:
  share_of_max: 0.52
socket_types:
  big:
    tdp_w: 250
    p0_w: 51
    min_cap_w: 120
  small:
    tdp_w: 150
    p0_w: 32
    min_cap_w: 73
node_templates:
  plain:
    sockets:
      - type: big
        services:
          - {workload: bert, servers: 8, load: 0.9, power_aware: false}
      - type: big
        services:
          - {workload: resnet50, servers: 8, load: 0.9, power_aware: false}
  big:
    sockets:
      - type: big
        services:
          - {workload: dlrm, servers: 8, load: 0.8}
  small:
    sockets:
      - type: small
        services:
          - {workload: lstm, servers: 4, load: 0.7}
      - type: small
        services:
          - {workload: bert, servers: 4, load: 0.6}
groups:
  - nodes:
      - {template: plain, count: 1}
      - {template: big, count: 2}
  - limit_share_of_max: 0.6
    nodes:
      - {template: small, count: 4}
)";

// A node's fair share as the cluster controller counts it (every node at the same share of
// its range, within group limits), configured as the simulator's powergrad policy does.
std::vector<double> controller_fair_shares(const ClusterSpec &spec, double budget_w) {
  powergrad::ClusterConfig c = powergrad_cluster_config(spec);
  c.budget_w = budget_w;
  const powergrad::ClusterController cc(c);
  std::vector<double> out;
  for (std::size_t i = 0; i < spec.nodes.size(); ++i)
    out.push_back(cc.node_status(i, 0.0).fair_share_w);
  return out;
}

}  // namespace

// The oracles bind plain work by the fair share the cluster controller gives it: the same
// share of every node's range (within group limits), split evenly over the node's sockets,
// not the even cap level of `uniform` (which on mixed socket types gives a big socket less
// of its range than a small one). At every budget the plain node gets what it draws, up to
// that share.
START_TEST(fair_shares_are_the_cluster_controllers) {
  const ClusterSpec spec = parse_scenario(kHetero, "hetero-plain.yaml");
  FixedRates truth;
  for (const ServiceSpec &s : spec.services) truth.r.push_back(s.mean_rate_rps);
  const OracleModel model(spec);
  double draw = 0.0;  // what the plain node's sockets draw, each within its range
  for (std::size_t k : spec.nodes[0].sockets)
    draw += std::clamp(model.uncapped_power_w(k, truth.r), spec.sockets[k].min_cap_w,
                       spec.sockets[k].max_cap_w);
  bool limit_bound = false, differs_from_uniform = false, share_binds = false;
  for (double share : {0.49, 0.52, 0.6, 0.75, 0.9, 1.0}) {
    CapsIo io(spec, share);
    const std::vector<double> fair = controller_fair_shares(spec, io.budget_w());
    const powergrad::AllocResult uniform =
        powergrad::allocate_uniform(io.budget_w(), socket_ranges(spec));
    ck_assert(uniform.feasible);
    for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
      double uni = 0.0;
      for (std::size_t k : spec.nodes[n].sockets) uni += uniform.grants_w[k];
      differs_from_uniform = differs_from_uniform || std::fabs(fair[n] - uni) > 5.0;
    }
    double small = 0.0;
    for (std::size_t n : spec.groups[1].nodes) small += fair[n];
    ck_assert(small <= spec.groups[1].limit_w + 1e-6);
    limit_bound = limit_bound || small > spec.groups[1].limit_w - 1e-6;
    share_binds = share_binds || draw > fair[0] + 10.0;
    const double want = std::min(draw, fair[0]);
    for (const char *policy : {"oracle", "static-oracle", "delayed-oracle"}) {
      auto p = make_policy(policy, spec, truth);
      p->start(io);
      ck_assert(pgtest::sum_in_order(io.caps) <= io.budget_w() + 1e-9);
      double held = 0.0;
      for (std::size_t k : spec.nodes[0].sockets) held += io.caps[k];
      ck_assert_msg(std::fabs(held - want) < 1e-6,
                    "%s, budget %g of the maxima: plain node at %g W, want %g W (draw %g W, "
                    "fair share %g W)",
                    policy, share, held, want, draw, fair[0]);
    }
  }
  ck_assert(limit_bound);           // the group's limit was exercised
  ck_assert(differs_from_uniform);  // the two definitions were told apart
  ck_assert(share_binds);           // and the share held the plain node below its draw
}
END_TEST

START_TEST(invariants_hold_with_plain_services_for_every_policy) {
  const ClusterSpec &spec = small_spec();
  std::size_t plain = 0;
  for (const ServiceSpec &s : spec.services) plain += s.power_aware ? 0 : 1;
  ck_assert_uint_eq(plain, 3);
  for (const std::string &policy : policy_names()) {
    const RunResult &r = small_run(policy.c_str());
    assert_invariants(spec, r, policy);
    ck_assert_uint_eq(r.dropped(), 0);
    ck_assert(r.plain.completed > 0 && r.power_aware.completed > 0);
    // Per-kind results: BERT only plain, DLRM only plain (on two nodes), ResNet-50 only
    // power-aware.
    ck_assert_ptr_nonnull(find_workload(r, "bert", false));
    ck_assert_ptr_null(find_workload(r, "bert", true));
    ck_assert_ptr_nonnull(find_workload(r, "dlrm", false));
    ck_assert_ptr_nonnull(find_workload(r, "resnet50", true));
    ck_assert_ptr_null(find_workload(r, "resnet50", false));
    ck_assert_uint_eq(find_workload(r, "bert", false)->completed + find_workload(r, "dlrm", false)->completed,
                      r.plain.completed);
  }
}
END_TEST

// The node with only plain services is never given more than its fair share, and (as both
// its sockets want more) is held there, each socket at about its even half: not steered up
// nor down to feed the power-aware nodes.
START_TEST(plain_node_held_at_its_fair_share) {
  const ClusterSpec &spec = small_spec();
  for (const char *policy : {"uniform", "powergrad", "oracle", "static-oracle", "delayed-oracle"}) {
    const RunResult &r = small_run(policy);
    ck_assert_msg(r.node_max_caps_w[kPlainNode] <= kFairNodeW + 1e-6, "%s: plain node up to %g W",
                  policy, r.node_max_caps_w[kPlainNode]);
    for (std::size_t k : spec.nodes[kPlainNode].sockets)
      ck_assert_msg(std::fabs(r.socket_caps[k].mean_w - kFairSocketW) < 2.0,
                    "%s: plain socket %zu at %g W on average", policy, k, r.socket_caps[k].mean_w);
  }
}
END_TEST

// The same node, power-aware, is steered by powergrad and the oracle (BERT's socket takes
// watts from DLRM's): so the test above would see steering if there were some.
START_TEST(the_same_node_power_aware_is_steered) {
  const ClusterSpec spec = parse_scenario(all_aware(kSmall), "small-aware.yaml");
  const std::size_t bert = spec.nodes[kPlainNode].sockets[0], dlrm = spec.nodes[kPlainNode].sockets[1];
  for (const char *policy : {"powergrad", "oracle"}) {
    const RunResult r = simulate(spec, policy);
    assert_invariants(spec, r, policy);
    ck_assert_uint_eq(r.plain.completed, 0);
    ck_assert_msg(r.socket_caps[bert].mean_w > kFairSocketW + 8.0, "%s: BERT's socket at %g W",
                  policy, r.socket_caps[bert].mean_w);
    ck_assert_msg(r.socket_caps[dlrm].mean_w < kFairSocketW - 15.0, "%s: DLRM's socket at %g W",
                  policy, r.socket_caps[dlrm].mean_w);
  }
}
END_TEST

// plain_share (powergrad.conf PlainShare=): with the plain node's services lightly loaded,
// `usage` holds it at what it draws, well below its fair share; `even` at its fair share.
// Never above it either way.
START_TEST(plain_share_usage_or_even) {
  std::string light = kSmall;
  for (const auto &[from, to] : {std::pair<std::string, std::string>{"bert, servers: 4, load: 0.72", "bert, servers: 4, load: 0.2"},
                                 {"- {workload: dlrm, servers: 4, load: 0.6, power_aware: false}\n  shared:",
                                  "- {workload: dlrm, servers: 4, load: 0.2, power_aware: false}\n  shared:"}}) {
    const std::size_t at = light.find(from);
    ck_assert(at != std::string::npos);
    light.replace(at, from.size(), to);
  }
  for (const bool even : {false, true}) {
    const ClusterSpec spec =
        parse_scenario(std::string(even ? "plain_share: even\n" : "") + light, "light.yaml");
    ck_assert(spec.plain_share == (even ? ClusterSpec::PlainShare::even : ClusterSpec::PlainShare::usage));
    for (const char *policy : {"powergrad", "oracle"}) {
      const RunResult r = simulate(spec, policy);
      assert_invariants(spec, r, policy);
      ck_assert_msg(r.node_max_caps_w[kPlainNode] <= kFairNodeW + 1e-6, "%s: plain node up to %g W",
                    policy, r.node_max_caps_w[kPlainNode]);
      double mean = 0.0;
      for (std::size_t k : spec.nodes[kPlainNode].sockets) mean += r.socket_caps[k].mean_w;
      if (even)
        ck_assert_msg(mean > kFairNodeW - 2.0, "%s, even: plain node at %g W", policy, mean);
      else
        ck_assert_msg(mean < kFairNodeW - 20.0, "%s, usage: plain node at %g W", policy, mean);
    }
  }
}
END_TEST

// Not steered means not starved: plain services' latency under powergrad and the oracles is
// about what the even split (uniform) gives them.
START_TEST(plain_latency_about_uniform) {
  const RunResult &uniform = small_run("uniform");
  for (const char *policy : {"powergrad", "oracle", "static-oracle", "delayed-oracle"}) {
    const RunResult &r = small_run(policy);
    ck_assert_msg(r.plain.mean_latency_s <= 1.10 * uniform.plain.mean_latency_s,
                  "%s: plain mean %g s, uniform %g s", policy, r.plain.mean_latency_s,
                  uniform.plain.mean_latency_s);
    ck_assert_msg(r.plain.p99_latency_s <= 1.20 * uniform.plain.p99_latency_s,
                  "%s: plain p99 %g s, uniform %g s", policy, r.plain.p99_latency_s,
                  uniform.plain.p99_latency_s);
  }
}
END_TEST

// uniform, usage and pool know nothing of jobs: the flag changes none of their numbers.
START_TEST(baselines_ignore_the_flag) {
  const ClusterSpec aware = parse_scenario(all_aware(kSmall), "small-aware.yaml");
  for (const char *policy : {"uniform", "usage", "pool"}) {
    const RunResult &p = small_run(policy);
    const RunResult a = simulate(aware, policy);
    ck_assert_uint_eq(p.completed, a.completed);
    ck_assert_msg(p.latency.sum_s() == a.latency.sum_s(), "%s: latency differs", policy);
    ck_assert(p.energy_j == a.energy_j);
    ck_assert_uint_eq(a.power_aware.completed, a.latency.count());
  }
}
END_TEST

// The oracles hold the node with only plain services at what its sockets draw, up to its
// fair share, split evenly but none above its draw; and keep the shared socket's plain base.
START_TEST(oracle_holds_plain_sockets) {
  const ClusterSpec &spec = small_spec();
  const OracleModel model(spec);
  const std::size_t bert = spec.nodes[kPlainNode].sockets[0], dlrm = spec.nodes[kPlainNode].sockets[1];
  const std::size_t shared = spec.nodes[3].sockets[0];  // ResNet-50 and a plain DLRM, 4 cores each
  ck_assert_uint_eq(spec.sockets[shared].services.size(), 2);
  FixedRates truth;
  CapsIo io(spec, 0.55);
  // Load factors of BERT's and DLRM's socket on the plain node (everything else at its mean).
  // kind: 0 the node draws less than its share; 1 DLRM's socket draws less than its half and
  // BERT's takes the rest; 2 both draw more than their half.
  struct Case {
    double bert, dlrm;
    int kind;
  };
  for (const Case c : {Case{0.2, 0.2, 0}, Case{1.0, 0.2, 1}, Case{1.0, 1.0, 2}}) {
    truth.r.clear();
    for (const ServiceSpec &s : spec.services) truth.r.push_back(s.mean_rate_rps);
    truth.r[spec.sockets[bert].services[0]] *= c.bert;
    truth.r[spec.sockets[dlrm].services[0]] *= c.dlrm;
    const double draw_bert = std::max(92.0, model.uncapped_power_w(bert, truth.r));
    const double draw_dlrm = std::max(92.0, model.uncapped_power_w(dlrm, truth.r));
    // The node's plain share, split evenly up to each socket's draw.
    double want_bert, want_dlrm;
    if (draw_bert + draw_dlrm <= kFairNodeW) {
      ck_assert_int_eq(c.kind, 0);
      want_bert = draw_bert;
      want_dlrm = draw_dlrm;
    } else if (draw_dlrm < kFairSocketW) {
      ck_assert_int_eq(c.kind, 1);
      want_dlrm = draw_dlrm;
      want_bert = std::min(draw_bert, kFairNodeW - draw_dlrm);
      ck_assert(want_bert > kFairSocketW + 1.0);  // more than its even half
    } else {
      ck_assert_int_eq(c.kind, 2);
      ck_assert(draw_bert >= kFairSocketW);
      want_bert = want_dlrm = kFairSocketW;
    }
    // plain_share: even: the node's whole fair share, whatever it draws, none below its draw.
    ClusterSpec even = spec;
    even.plain_share = ClusterSpec::PlainShare::even;
    {
      auto p = make_policy("oracle", even, truth);
      p->start(io);
      ck_assert(pgtest::sum_in_order(io.caps) <= io.budget_w() + 1e-9);
      ck_assert_double_eq_tol(io.caps[bert] + io.caps[dlrm], kFairNodeW, 1e-6);
      ck_assert(io.caps[bert] >= want_bert - 1e-6 && io.caps[dlrm] >= want_dlrm - 1e-6);
    }
    for (const char *policy : {"oracle", "static-oracle", "delayed-oracle"}) {
      auto p = make_policy(policy, spec, truth);
      p->start(io);
      ck_assert(pgtest::sum_in_order(io.caps) <= io.budget_w() + 1e-9);
      ck_assert_msg(std::fabs(io.caps[bert] - want_bert) < 1e-6 && std::fabs(io.caps[dlrm] - want_dlrm) < 1e-6,
                    "%s (%g, %g): %g + %g W, want %g + %g W", policy, c.bert, c.dlrm, io.caps[bert],
                    io.caps[dlrm], want_bert, want_dlrm);
      const double plain_w = std::clamp(model.uncapped_power_w(shared, truth.r), 92.0, kFairSocketW);
      ck_assert(io.caps[shared] >= 92.0 + 0.5 * (plain_w - 92.0) - 1e-6);
    }
  }
}
END_TEST

// Random clusters with random plain services and a budget that jumps: every policy keeps the
// invariants, and no policy that honours the flag gives a node with only plain services
// more than the highest budget's even share.
START_TEST(randomized_invariants_with_plain_services) {
  std::mt19937 rng(909);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const char *workloads[] = {"resnet50", "bert", "lstm", "dlrm", "llm-prefill"};
  for (int round = 0; round < 4; ++round) {
    const int nodes = 3 + static_cast<int>(unit(rng) * 3);
    std::string t = "duration_s: 40\nwarmup_s: 4\n";
    t += std::string("counters: ") + (round % 2 ? "software" : "hardware") + "\n";
    t += "budget:\n  series_unit: share_of_max\n  series:\n";
    double top = 0.0;
    for (int k = 0; k < 5; ++k) {
      const double share = 0.46 + 0.5 * unit(rng);
      top = std::max(top, share);
      t += "    - [" + std::to_string(k * 8) + ", " + std::to_string(share) + "]\n";
    }
    t += "socket_types:\n  x:\n    tdp_w: 205\n    p0_w: 60\n    min_cap_w: 92\nnode_templates:\n";
    // Template a: random flags; template p: only plain services.
    for (const char *name : {"a", "p"}) {
      t += std::string("  ") + name + ":\n    sockets:\n";
      for (int s = 0; s < 2; ++s) {
        t += "      - services:\n";
        const int services = 1 + static_cast<int>(unit(rng) * 2);
        for (int v = 0; v < services; ++v) {
          const bool aware = name[0] == 'a' && unit(rng) < 0.6;
          t += std::string("          - {workload: ") + workloads[static_cast<int>(unit(rng) * 5)] +
               ", servers: 2, load: [0.5, 1.2], queue_limit: 50, timeout_s: 3, arrivals: {kind: mmpp}" +
               (aware ? "" : ", power_aware: false") + "}\n";
        }
      }
    }
    t += "groups:\n  - limit_share_of_max: 0.8\n    nodes:\n      - {template: p, count: 1}\n"
         "      - {template: a, count: " + std::to_string(nodes - 1) + "}\n";
    const ClusterSpec spec = parse_scenario(t, "random-plain.yaml");
    ck_assert(!spec.services[spec.sockets[0].services[0]].power_aware);
    for (const std::string &policy : policy_names()) {
      const RunResult r = simulate(spec, policy);
      assert_invariants(spec, r, "round " + std::to_string(round) + " " + policy);
      if (policy == "usage" || policy == "pool") continue;  // they ignore the flag
      const double fair = top * spec.sum_max_caps_w() / nodes;
      ck_assert_msg(r.node_max_caps_w[0] <= fair + 1e-6, "round %d %s: plain node up to %g W, fair %g W",
                    round, policy.c_str(), r.node_max_caps_w[0], fair);
    }
  }
}
END_TEST

START_TEST(reports_tell_plain_services_apart) {
  std::vector<RunResult> runs = {small_run("uniform"), small_run("powergrad")};
  std::ostringstream table, json, csv;
  write_table(table, small_spec(), runs);
  write_json(json, small_spec(), runs);
  write_csv(csv, small_spec(), runs);
  ck_assert_contains(table.str(), "3 of 9 plain");
  ck_assert_contains(table.str(), "all plain");
  ck_assert_contains(table.str(), "all power-aware");
  ck_assert_contains(table.str(), "bert (plain)");
  ck_assert_contains(table.str(), "dlrm (plain)");
  ck_assert_contains(json.str(), "\"plain_services\": 3");
  ck_assert_contains(json.str(), "\"bert (plain)\": {\"completed\": ");
  ck_assert_contains(json.str(), "\"power_aware\": false");
  ck_assert_contains(json.str(), "\"sockets\": [\n        {\"name\": ");
  ck_assert_contains(json.str(), "\"cap_mean_w\": ");
  ck_assert_contains(csv.str(), ",plain_mean_latency_s,plain_p99_latency_s,");
  // Without plain services: no such block.
  const ClusterSpec aware = parse_scenario(all_aware(kSmall), "small-aware.yaml");
  std::vector<RunResult> aware_runs = {simulate(aware, "uniform")};
  std::ostringstream aware_table;
  write_table(aware_table, aware, aware_runs);
  ck_assert(!pgtest::contains(aware_table.str(), "all plain"));
}
END_TEST

// Two alike nodes, one service each, a 0.5 s transport delay.
const char kDelayed[] = R"(name: delayed
duration_s: 60
warmup_s: 10
tick_s: 0.1
control_period_s: 1
transport_delay_s: 0.5
budget:
  share_of_max: 0.6
socket_types:
  s:
    tdp_w: 200
    p0_w: 40
    min_cap_w: 100
node_templates:
  n:
    sockets:
      - type: s
        services:
          - {workload: resnet50, servers: 8, load: 0.6}
groups:
  - nodes:
      - {template: n, count: 2}
)";

// The delayed oracle moves the oracle's targets as a safe controller can over the transport
// delay d: a decrease in force 2 d after the decision, a raise 4 d after and only into the
// room the budget leaves; a budget change at once, as the oracle does.
START_TEST(delayed_oracle_moves_over_the_transport) {
  const ClusterSpec spec = parse_scenario(kDelayed, "delayed.yaml");
  ck_assert_uint_eq(spec.sockets.size(), 2);
  FixedRates truth;
  for (const ServiceSpec &sv : spec.services) truth.r.push_back(sv.mean_rate_rps);
  CapsIo now_io(spec, 0.6), late_io(spec, 0.6);
  auto oracle = make_policy("oracle", spec, truth);
  auto late = make_policy("delayed-oracle", spec, truth);
  ck_assert(late != nullptr);
  oracle->start(now_io);
  late->start(late_io);
  for (std::size_t k = 0; k < 2; ++k) ck_assert(std::fabs(late_io.caps[k] - now_io.caps[k]) < 1e-9);
  ck_assert(std::fabs(now_io.caps[0] - now_io.caps[1]) < 1e-6);  // alike: an even split
  // Service 0 busier, service 1 quieter from now on: the oracle moves at the next period.
  truth.r[0] *= 1.5;
  truth.r[1] *= 0.5;
  const double start0 = now_io.caps[0];
  double moved = -1.0, lowered = -1.0, raised = -1.0;
  for (int i = 1; i <= 60; ++i) {
    const double t = 0.1 * i;
    now_io.now = late_io.now = t;
    oracle->tick(now_io);
    const std::vector<double> before = late_io.caps;
    late->tick(late_io);
    ck_assert_msg(pgtest::sum_in_order(late_io.caps) <= late_io.budget_w() + 1e-9,
                  "t %g: caps %g W over the budget %g W", t, pgtest::sum_in_order(late_io.caps),
                  late_io.budget_w());
    if (moved < 0.0 && now_io.caps[0] > start0 + 1.0) moved = t;
    if (lowered < 0.0 && late_io.caps[1] < before[1] - 1e-9) lowered = t;
    if (raised < 0.0 && late_io.caps[0] > before[0] + 1e-9) raised = t;
  }
  ck_assert_msg(std::fabs(moved - 1.0) < 1e-6, "the oracle moved at %g s", moved);
  ck_assert_msg(std::fabs(lowered - 2.0) < 1e-6, "the decrease came at %g s, want 2", lowered);
  ck_assert_msg(std::fabs(raised - 3.0) < 1e-6, "the raise came at %g s, want 3", raised);
  // Then it holds the oracle's caps (the rates stay).
  for (std::size_t k = 0; k < 2; ++k)
    ck_assert_msg(std::fabs(late_io.caps[k] - now_io.caps[k]) < 1e-6, "socket %zu: %g against %g W",
                  k, late_io.caps[k], now_io.caps[k]);
  // A budget drop is obeyed at once.
  now_io.share = late_io.share = 0.55;
  now_io.now = late_io.now = 6.05;
  oracle->tick(now_io);
  late->tick(late_io);
  ck_assert(pgtest::sum_in_order(late_io.caps) <= late_io.budget_w() + 1e-9);
  for (std::size_t k = 0; k < 2; ++k) ck_assert(std::fabs(late_io.caps[k] - now_io.caps[k]) < 1e-6);
}
END_TEST

int main() {
  Suite *s = suite_create("sim_plain");
  TCase *tc = tcase_create("plain");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, invariants_hold_with_plain_services_for_every_policy);
  tcase_add_test(tc, plain_node_held_at_its_fair_share);
  tcase_add_test(tc, the_same_node_power_aware_is_steered);
  tcase_add_test(tc, plain_share_usage_or_even);
  tcase_add_test(tc, plain_latency_about_uniform);
  tcase_add_test(tc, baselines_ignore_the_flag);
  tcase_add_test(tc, oracle_holds_plain_sockets);
  tcase_add_test(tc, fair_shares_are_the_cluster_controllers);
  tcase_add_test(tc, delayed_oracle_moves_over_the_transport);
  tcase_add_test(tc, randomized_invariants_with_plain_services);
  tcase_add_test(tc, reports_tell_plain_services_apart);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
