// Simulator speed: 64 nodes x 2 sockets x 1 simulated hour with every policy (in parallel
// threads, as powergrad-sim runs them), then the same per policy-hour for growing clusters.
// Prints `bench: sim_64x2_1h_s SECONDS s`, `bench: sim_<N>x2_1h_s SECONDS s` (extrapolated
// from a shorter simulated time for the large sizes, said so in a `#` line), and `#` lines
// with requests simulated per second.
// Then how run time grows with the cluster: `bench: sim_scaling_<N>x2_s SECONDS s`, the CPU
// time of one thread running the non-clairvoyant baselines and the oracle (uniform, usage,
// pool, oracle) for 120 simulated seconds at N = 128, 256, 512, 1024 nodes, and a `#` line
// with each size's time per node relative to 128 nodes (1.0 = linear growth). CPU time of
// the thread, not wall time, so that other load on the machine counts less.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "sim/policies.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "sim/simulation.hpp"

using namespace powergrad::sim;

namespace {

// The dual-socket scenario's node mix and loads (scenarios/dual-socket.yaml, as calibrated),
// `nodes` nodes in racks of 16.
ClusterSpec make_spec(int nodes, double duration_s) {
  std::string t =
      "name: bench\nduration_s: " + std::to_string(duration_s) +
      "\nwarmup_s: 60\ntick_s: 0.1\nbudget:\n  share_of_max: 0.55\n"
      "socket_types:\n  x:\n    tdp_w: 205\n    p0_w: 60\n    f_max_ghz: 3.4\n    min_cap_w: 92\n"
      "node_templates:\n"
      "  a:\n    sockets:\n      - services: [{workload: resnet50, servers: 8, load: [0.65, 0.76]}]\n"
      "      - services: [{workload: dlrm, servers: 8, load: [0.50, 0.65], arrivals: {kind: mmpp, burst_factor: 1.3, burst_mean_s: 30, calm_mean_s: 90}}]\n"
      "  b:\n    sockets:\n      - services: [{workload: bert, servers: 8, load: [0.65, 0.76]}]\n"
      "      - services: [{workload: llm-decode, servers: 8, load: [0.60, 0.85]}]\n"
      "  c:\n    sockets:\n      - services: [{workload: llm-prefill, servers: 8, load: [0.60, 0.72]}]\n"
      "      - services: [{workload: lstm, servers: 8, load: [0.60, 0.85]}]\n"
      "  d:\n    sockets:\n      - services: [{workload: resnet50, servers: 4, load: [0.65, 0.76]}, {workload: dlrm, servers: 4, load: [0.50, 0.75]}]\n"
      "      - services: [{workload: bert, servers: 4, load: [0.65, 0.76]}, {workload: lstm, servers: 4, load: [0.60, 0.85]}]\n"
      "groups:\n";
  for (int g = 0; g < nodes / 16; ++g)
    t += "  - limit_share_of_max: 0.66\n    nodes:\n      - {template: a, count: 4}\n"
         "      - {template: b, count: 4}\n      - {template: c, count: 4}\n      - {template: d, count: 4}\n";
  return parse_scenario(t, "bench");
}

double run_s(const ClusterSpec &spec, std::uint64_t *requests) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<RunResult> runs = run_policies(spec, policy_names());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  *requests = 0;
  for (const RunResult &r : runs) *requests += r.arrivals;
  return s;
}

double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Run time against cluster size, one thread (runs in sequence on the calling thread).
void scaling() {
  const std::vector<std::string> policies = {"uniform", "usage", "pool", "oracle"};
  const double sim_s = 120.0;
  double per_node_128 = 0.0;
  std::string ratios;
  for (int nodes : {128, 256, 512, 1024}) {
    const ClusterSpec spec = make_spec(nodes, sim_s);
    const double start = thread_cpu_s();
    for (const std::string &p : policies) simulate(spec, p);
    const double s = thread_cpu_s() - start;
    std::printf("bench: sim_scaling_%dx2_s %.2f s\n", nodes, s);
    std::fflush(stdout);
    const double per_node = s / nodes;
    if (nodes == 128) per_node_128 = per_node;
    char buf[64];
    std::snprintf(buf, sizeof buf, " %d:%.2f", nodes, per_node / per_node_128);
    ratios += buf;
  }
  std::printf(
      "# sim_scaling: CPU time of 1 thread for %zu policies x %.0f simulated s; time per "
      "node relative to 128 nodes:%s\n",
      policies.size(), sim_s, ratios.c_str());
}

}  // namespace

int main() {
  try {
    std::printf("# %u hardware threads; policies: %zu (", std::thread::hardware_concurrency(),
                policy_names().size());
    for (const std::string &p : policy_names()) std::printf(" %s", p.c_str());
    std::printf(" )\n");
    std::uint64_t requests = 0;
    const double s = run_s(make_spec(64, 3600.0), &requests);
    std::printf("bench: sim_64x2_1h_s %.2f s\n", s);
    std::printf("# %.1f M requests simulated, %.1f M requests/s\n", requests / 1e6, requests / 1e6 / s);
    for (int nodes : {128, 256, 512, 1024}) {
      // Run time is linear in simulated time: measure 300 s, scale to 1 h.
      const double sim_s = 300.0;
      const double t = run_s(make_spec(nodes, sim_s), &requests);
      std::printf("bench: sim_%dx2_1h_s %.1f s\n", nodes, t * 3600.0 / sim_s);
      std::printf("# %d nodes: measured %.2f s for %.0f simulated s, scaled x%.0f\n", nodes, t, sim_s,
                  3600.0 / sim_s);
    }
    scaling();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "bench_sim: %s\n", e.what());
    return 2;
  }
  return 0;
}
