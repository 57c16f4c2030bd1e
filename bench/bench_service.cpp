// The controller service's whole period (ControllerService::period, controller/
// controller_service.cpp): the budget schedule, ClusterController::step, the grants handed to
// the endpoint, and the per-job ledger's sample, as slurmctld's pg-controller thread runs it
// once a period. The cluster and its reports are cluster_step_100k_ms's (bench_cluster.hpp),
// and every node runs one job step whose job spans 4 nodes, reporting its gradient and
// accounting as node agents do. Reports reach the service as the endpoint hands them over
// (ControllerService::handle, not timed); no node has a session open, so the grants are
// looked up and not sent (sending is the endpoint's, measured by pg-loadgen: README,
// "Scale"). Prints `bench: service_period_<size>_ms <median> ms` and `#` lines saying how.
// At 100,000 nodes also the handling of one period's reports (`service_reports_100k_ms`) and
// the slurmctld plugin's job records for the ledger's 25,000 jobs: the pass that builds
// them outside slurmctld's locks (`job_records_25k_ms`) and their store under its job write
// lock (`job_records_locked_25k_ms`: the C++ side; the adapter adds a job lookup and a copy
// per job), and the pass with RecordInterval=30, the default (`job_records_25k_interval_ms`).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_cluster.hpp"
#include "controller/controller_service.hpp"
#include "controller/job_records.hpp"
#include "protocol/controller_endpoint.hpp"
#include "protocol/fake_auth.hpp"

using namespace powergrad;

namespace {

// The job records' benchmarks (run_job_records).
constexpr const char *kRecords = "job_records_25k_ms";
constexpr const char *kRecordsLocked = "job_records_locked_25k_ms";
constexpr const char *kRecordsInterval = "job_records_25k_interval_ms";

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

struct BenchClock : ServiceClock {
  double mono = 100.0;
  double wall = 1.8e9;
  double monotonic_s() override { return mono; }
  double wall_s() override { return wall; }
};

// The job records of the running jobs (slurmctld_powergrad/plugin.cpp, once a period), for
// the jobs of the ledger a run of the service filled: a pass builds each job's AdminComment
// from its figures outside slurmctld's locks (RecordPlan::add), then stores those that
// changed under slurmctld's job write lock. Every running job's changes each period (its
// energy grows): so here every job's AdminComment is another tool's text without a record
// yet. The store is timed as it is (the planned comment copied) and as it was (each comment
// built again under the lock).
void run_job_records(const JobPowerLedger &ledger) {
  const std::vector<std::uint32_t> ids = ledger.unfinished_ids();
  const std::string other = "other tool's text";
  const auto view_of = [&](std::uint32_t id) {
    JobView v;
    v.job_id = id;
    v.mode = "latency";
    v.nodes =
        "n[" + std::to_string(4 * (id - 1000)) + "-" + std::to_string(4 * (id - 1000) + 3) + "]";
    v.admin_comment = other;
    v.figures = ledger.figures(id);
    return v;
  };
  std::vector<double> pass_ms, store_ms, rebuild_ms;
  std::size_t stored = 0;
  for (int rep = 0; rep < 5; ++rep) {
    RecordPlan plan;
    auto t = std::chrono::steady_clock::now();
    for (const std::uint32_t id : ids) plan.add(view_of(id));
    pass_ms.push_back(ms_since(t));
    t = std::chrono::steady_clock::now();
    for (const std::uint32_t id : ids) {
      if (const std::string *c = plan.planned(id, other)) {
        char *copy = strdup(c->c_str());  // what the adapter stores and frees
        stored += copy != nullptr;
        free(copy);
      }
    }
    store_ms.push_back(ms_since(t));
    t = std::chrono::steady_clock::now();
    for (const std::uint32_t id : ids) {
      if (std::optional<std::string> c = updated_admin_comment(view_of(id))) {
        char *copy = strdup(c->c_str());
        free(copy);
      }
    }
    rebuild_ms.push_back(ms_since(t));
  }
  if (stored != 5 * ids.size()) {
    std::fprintf(stderr, "bench_service: %zu comments stored of %zu\n", stored, 5 * ids.size());
    std::exit(1);
  }
  std::sort(pass_ms.begin(), pass_ms.end());
  std::sort(store_ms.begin(), store_ms.end());
  std::sort(rebuild_ms.begin(), rebuild_ms.end());
  std::printf(
      "# %s: the plugin's job records for the ledger's %zu jobs, every one changed: the pass "
      "outside slurmctld's locks (figures, AdminComment built and planned); 5 passes, min "
      "%.3f ms, max %.3f ms\n",
      kRecords, ids.size(), pass_ms.front(), pass_ms.back());
  std::printf("bench: %s %.3f ms\n", kRecords, pass_ms[pass_ms.size() / 2]);
  std::printf(
      "# %s: storing them under slurmctld's job write lock (the planned comments copied); "
      "min %.3f ms, max %.3f ms; built again there instead, as before RecordPlan: median "
      "%.3f ms, min %.3f ms, max %.3f ms\n",
      kRecordsLocked, store_ms.front(), store_ms.back(), rebuild_ms[rebuild_ms.size() / 2],
      rebuild_ms.front(), rebuild_ms.back());
  std::printf("bench: %s %.3f ms\n", kRecordsLocked, store_ms[store_ms.size() / 2]);

  // With RecordInterval=30 (the default): a running job's record is checked at most every
  // 30 s. The mean pass over 120 one-second periods, every job's record already there.
  RecordRefresh refresh(30.0);
  std::vector<std::string> comments(ids.size());
  for (std::size_t k = 0; k < ids.size(); ++k) {
    JobView v = view_of(ids[k]);
    comments[k] = updated_admin_comment(v).value_or(v.admin_comment);
    // The jobs started spread over the last 30 s, as on a cluster in its steady state.
    refresh.checked(ids[k], -static_cast<double>(k % 30));
  }
  std::size_t checked = 0;
  const auto t = std::chrono::steady_clock::now();
  for (int period = 0; period < 120; ++period) {
    RecordPlan plan;
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if (!refresh.due(ids[k], comments[k], period)) continue;
      JobView v = view_of(ids[k]);
      v.admin_comment = comments[k];
      plan.add(v);
      refresh.checked(ids[k], period);
      ++checked;
    }
  }
  const double per_period_ms = ms_since(t) / 120.0;
  std::printf(
      "# %s: the same pass with RecordInterval=30 (the default), every job's record "
      "already written, the jobs' last checks spread over 30 s: mean over 120 periods; "
      "%.1f jobs checked a period\n",
      kRecordsInterval, static_cast<double>(checked) / 120.0);
  std::printf("bench: %s %.3f ms\n", kRecordsInterval, per_period_ms);
  std::fflush(stdout);
}

// job_records: then run_job_records over the ledger the run filled.
void run_service_period(const char *name, const char *reports_name, std::size_t nodes, int reps,
                        bool job_records) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ClusterConfig config = bench::step_cluster(nodes, rng);
  config.hysteresis_settle_s = 0.0;  // settled, as cluster_step_100k_ms

  auto realm = std::make_shared<proto::FakeMungeRealm>(300.0);
  proto::FakeAuthenticator auth(realm, 64030, 64030);
  proto::ControllerConfig ec;
  ec.listen_host = "127.0.0.1";
  ec.listen_port = "0";
  ec.policy = proto::ServerPolicy::standard(64030, {});
  std::unique_ptr<proto::ControllerEndpoint> endpoint;
  if (!proto::ControllerEndpoint::open(ec, auth, endpoint).ok()) {
    std::fprintf(stderr, "bench_service: cannot listen on loopback\n");
    std::exit(1);
  }
  BenchClock clock;
  JobPowerLedger ledger;
  std::size_t errors = 0;
  ControllerService service({}, ClusterController(config), *endpoint, clock, ledger,
                            [&](ServiceLogLevel level, const std::string &msg) {
                              if (level == ServiceLogLevel::error && errors++ < 3)
                                std::fprintf(stderr, "bench_service: %s\n", msg.c_str());
                            });

  std::vector<GrantMessage> last(nodes);
  std::vector<std::uint64_t> report_seq(nodes, 0);
  std::vector<proto::ControllerEvent> events(nodes);
  std::vector<double> handle_ms;
  const auto feed_reports = [&] {
    for (std::size_t i = 0; i < nodes; ++i) {
      NodeReport r =
          bench::step_report(config.nodes[i], last[i], ++report_seq[i], clock.wall - 0.5, rng);
      JobSummary j;
      j.job = std::to_string(1000 + i / 4) + ".0";
      j.mode = JobMode::latency;
      j.counters = CounterKind::hardware;
      j.speedup_per_w = j.gain_per_w = r.demand.marginal_at(0.0);
      j.confidence = 0.8;
      j.busy_fraction = 0.5 + 0.5 * unit(rng);
      j.source = GradientSource::counter_model;
      j.valid = true;
      j.elapsed_s = static_cast<double>(report_seq[i]);
      j.energy_j = r.power_w * j.elapsed_s;
      j.avg_w = r.power_w;
      j.cap_min_w = j.cap_mean_w = j.cap_max_w = r.caps_w;
      r.jobs = {j, j};  // one entry per domain, as a node agent sends them
      r.jobs[1].domain = 1;
      events[i].kind = proto::ControllerEvent::Kind::message;
      events[i].message = std::move(r);
    }
    const auto start = std::chrono::steady_clock::now();
    service.handle(events);
    handle_ms.push_back(ms_since(start));
  };

  const auto &cc = service.controller();
  std::vector<double> ms;
  for (int rep = 0; rep < reps + 1; ++rep) {  // the first period warms up (no reports yet)
    if (rep > 0) feed_reports();
    const auto start = std::chrono::steady_clock::now();
    service.period();
    const double period_ms = ms_since(start);
    if (errors > 0) std::exit(1);
    if (service.last_step_grants().size() != nodes) {
      std::fprintf(stderr, "bench_service: %zu grants for %zu nodes\n",
                   service.last_step_grants().size(), nodes);
      std::exit(1);
    }
    last = service.last_step_grants();  // every node confirms its grant in its next report
    if (rep > 0) ms.push_back(period_ms);
    clock.mono += config.period_s;
    clock.wall += config.period_s;
  }
  const std::size_t jobs = ledger.unfinished_ids().size();
  std::sort(ms.begin(), ms.end());
  std::printf(
      "# %s: ControllerService::period, %zu nodes in %zu groups (as cluster_step_100k_ms: "
      "a new 8-segment curve per node and period, jobs settled), %zu jobs in the ledger; "
      "%zu step thread(s); %d periods after 1 warm-up; min %.3f ms, max %.3f ms\n",
      name, nodes, bench::kGroups, jobs, cc.step_thread_count(), reps, ms.front(), ms.back());
  std::printf("bench: %s %.3f ms\n", name, ms[ms.size() / 2]);
  std::sort(handle_ms.begin(), handle_ms.end());
  std::printf(
      "# %s: ControllerService::handle of one period's %zu reports (2 job entries each) as "
      "the endpoint hands them over, on the same thread between periods; min %.3f ms, max "
      "%.3f ms\n",
      reports_name, nodes, handle_ms.front(), handle_ms.back());
  std::printf("bench: %s %.3f ms\n", reports_name, handle_ms[handle_ms.size() / 2]);

  if (job_records) run_job_records(ledger);
  std::fflush(stdout);
}

}  // namespace

// With an argument, only the benchmarks whose names contain it.
int main(int argc, char **argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  const auto wanted = [&](const char *name) {
    return only.empty() || std::string(name).find(only) != std::string::npos;
  };
  std::printf(
      "# bench_service: median wall time of the controller service's period; clock: "
      "std::chrono::steady_clock; machine: %u hardware threads; compiler: %s\n",
      std::thread::hardware_concurrency(), __VERSION__);
  std::fflush(stdout);
  if (wanted("service_period_10k_ms") || wanted("service_reports_10k_ms"))
    run_service_period("service_period_10k_ms", "service_reports_10k_ms", 10000, 21, false);
  // The job records need the ledger of a 100,000-node run.
  const bool job_records = wanted(kRecords) || wanted(kRecordsLocked) || wanted(kRecordsInterval);
  if (wanted("service_period_100k_ms") || wanted("service_reports_100k_ms") || job_records)
    run_service_period("service_period_100k_ms", "service_reports_100k_ms", 100000, 11,
                       job_records);
  return 0;
}
