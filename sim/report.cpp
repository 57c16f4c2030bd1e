#include "sim/report.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

namespace powergrad::sim {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const RunResult *find(const std::vector<RunResult> &runs, const char *policy) {
  for (const RunResult &r : runs)
    if (r.policy == policy) return &r;
  return nullptr;
}

double latency(const RunResult &r, bool p99) {
  return p99 ? r.latency.quantile_s(0.99) : r.latency.mean_s();
}

// Fixed-point with `decimals` digits; "-" for non-finite values.
std::string fmt(int decimals, double x) {
  if (!std::isfinite(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

std::string percent(double x) {
  if (!std::isfinite(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.1f%%", 100.0 * x);
  return buf;
}

std::string share(double x) { return std::isfinite(x) ? fmt(0, 100.0 * x) + "%" : "-"; }

// JSON number: non-finite values become null (JSON has no NaN/inf).
std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

std::string quoted(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::size_t plain_services(const ClusterSpec &spec) {
  std::size_t n = 0;
  for (const ServiceSpec &s : spec.services) n += s.power_aware ? 0 : 1;
  return n;
}

// "dlrm", or "dlrm (plain)" for the plain services of a workload.
std::string workload_label(const WorkloadResult &w) {
  return w.power_aware ? w.name : w.name + " (plain)";
}

std::string latency_pair(const WorkloadResult &w) {
  if (w.completed == 0) return "-";
  return fmt(1, 1e3 * w.mean_latency_s) + " / " + fmt(1, 1e3 * w.p99_latency_s);
}

std::string json_latency(const WorkloadResult &w) {
  return "{\"completed\": " + std::to_string(w.completed) +
         ", \"mean_latency_s\": " + num(w.mean_latency_s) +
         ", \"p99_latency_s\": " + num(w.p99_latency_s) + "}";
}

// RunResult::burst_rise_w as {"offsets_s": [...], "rise_w": [...], "count": [...]}.
std::string json_bursts(const RunResult &r) {
  std::string o = "{\"offsets_s\": [", w = "], \"rise_w\": [", c = "], \"count\": [";
  for (std::size_t k = 0; k < RunResult::kBurstOffsetsS.size(); ++k) {
    const char *sep = k ? ", " : "";
    o += sep + num(RunResult::kBurstOffsetsS[k]);
    w += sep + num(r.burst_rise_w[k]);
    c += sep + std::to_string(r.burst_count[k]);
  }
  return o + w + c + "]}";
}

// With plain services: mean / p99 per policy of the power-aware and the plain services, and
// of each workload's services of either kind.
void write_service_table(std::ostream &out, const ClusterSpec &spec,
                         const std::vector<RunResult> &runs) {
  const std::size_t plain = plain_services(spec);
  if (plain == 0 || runs.empty()) return;
  out << "services, mean / p99 ms: " << plain << " of " << spec.services.size()
      << " plain (power_aware: false; powergrad and the oracles do not steer them)\n";
  char cell[128];
  std::snprintf(cell, sizeof cell, "%-22s", "services");
  out << cell;
  for (const RunResult &r : runs) {
    std::snprintf(cell, sizeof cell, " %17s", r.policy.c_str());
    out << cell;
  }
  out << "\n";
  auto row = [&](const std::string &label, auto pick) {
    std::snprintf(cell, sizeof cell, "%-22s", label.c_str());
    out << cell;
    for (const RunResult &r : runs) {
      const WorkloadResult *w = pick(r);
      std::snprintf(cell, sizeof cell, " %17s", w ? latency_pair(*w).c_str() : "-");
      out << cell;
    }
    out << "\n";
  };
  row("all power-aware", [](const RunResult &r) { return &r.power_aware; });
  row("all plain", [](const RunResult &r) { return &r.plain; });
  // Workloads in the order of the first run (every run records the same ones, unless a
  // policy starved a workload of completions).
  for (const WorkloadResult &w : runs.front().workloads) {
    row(workload_label(w), [&](const RunResult &r) -> const WorkloadResult * {
      for (const WorkloadResult &x : r.workloads)
        if (x.name == w.name && x.power_aware == w.power_aware) return &x;
      return nullptr;
    });
  }
}

double reduction_vs(const std::vector<RunResult> &runs, const RunResult &r, const char *ref,
                    bool p99) {
  const RunResult *base = find(runs, ref);
  return base ? reduction(latency(*base, p99), latency(r, p99)) : kNaN;
}

}  // namespace

double reduction(double reference, double value) {
  if (!(reference > 0.0) || !std::isfinite(reference) || !std::isfinite(value)) return kNaN;
  return (reference - value) / reference;
}

double oracle_share(const std::vector<RunResult> &runs, const RunResult &run, bool p99) {
  const RunResult *usage = find(runs, "usage");
  const RunResult *oracle = find(runs, "oracle");
  if (!usage || !oracle) return kNaN;
  const double gap = latency(*usage, p99) - latency(*oracle, p99);
  if (!(gap > 0.0)) return kNaN;
  return (latency(*usage, p99) - latency(run, p99)) / gap;
}

void write_table(std::ostream &out, const ClusterSpec &spec, const std::vector<RunResult> &runs) {
  char line[512];
  out << "scenario " << spec.name << " (" << spec.source << "): " << spec.nodes.size()
      << " nodes, " << spec.sockets.size() << " sockets, " << spec.services.size()
      << " services, " << fmt(0, spec.duration_s) << " s, seed " << spec.seed
      << ", counters: " << (spec.hardware_counters ? "hardware" : "software only") << "\n";
  out << "budget " << fmt(0, spec.budget.min_w()) << ".." << fmt(0, [&] {
    double m = 0.0;
    for (const auto &p : spec.budget.points_w) m = std::max(m, p.second);
    return m;
  }()) << " W of " << fmt(0, spec.sum_max_caps_w()) << " W max caps (floors "
      << fmt(0, spec.sum_min_caps_w()) << " W)\n";
  if (!spec.baselines.changed.empty()) {
    out << "baseline settings:";
    for (const std::string &c : spec.baselines.changed) out << " " << c;
    out << "\n";
  }
  std::snprintf(line, sizeof line,
                "%-14s %9s %9s %9s %9s %8s %11s %5s %7s | %8s %8s %8s %8s | %7s %7s\n", "policy",
                "mean_ms", "p50_ms", "p99_ms", "goodput", "dropped", "energy_MJ", "viol", "budget",
                "mean/B1", "p99/B1", "mean/B0", "p99/B0", "orc_mn", "orc_p99");
  out << line;
  for (const RunResult &r : runs) {
    std::snprintf(line, sizeof line,
                  "%-14s %9s %9s %9s %9s %8llu %11s %5llu %7s | %8s %8s %8s %8s | %7s %7s\n",
                  r.policy.c_str(), fmt(2, 1e3 * r.latency.mean_s()).c_str(),
                  fmt(2, 1e3 * r.latency.quantile_s(0.5)).c_str(),
                  fmt(2, 1e3 * r.latency.quantile_s(0.99)).c_str(), fmt(1, r.goodput_rps).c_str(),
                  static_cast<unsigned long long>(r.dropped()), fmt(3, r.energy_j / 1e6).c_str(),
                  static_cast<unsigned long long>(r.budget_violations),
                  (fmt(1, 100.0 * r.budget_used) + "%").c_str(),
                  percent(reduction_vs(runs, r, "usage", false)).c_str(),
                  percent(reduction_vs(runs, r, "usage", true)).c_str(),
                  percent(reduction_vs(runs, r, "uniform", false)).c_str(),
                  percent(reduction_vs(runs, r, "uniform", true)).c_str(),
                  share(oracle_share(runs, r, false)).c_str(),
                  share(oracle_share(runs, r, true)).c_str());
    out << line;
  }
  out << "(mean/B1, p99/B1: latency reduction vs usage; /B0: vs uniform; orc_*: share of the "
         "oracle's improvement over usage captured; viol: budget violations; budget: share of the "
         "budget held as caps after the warm-up; latency quantiles within 0.4%)\n";
  write_service_table(out, spec, runs);
  for (const RunResult &r : runs) {
    out << "  " << r.policy << ": decides from " << r.inputs << "; sensors " << r.counters;
    if (r.cap_bound_violations) out << "; CAPS OUT OF RANGE " << r.cap_bound_violations;
    if (r.over_budget_s > 0.0) out << "; above budget " << fmt(1, r.over_budget_s) << " s within grace";
    if (r.burst_count[0] > 0) {
      // "bursts (N): socket cap +1/+2/+4/+8 s after: +0.0/+2.9/+25.1/+26.0 W"
      std::string offsets, rises;
      for (std::size_t k = 0; k < RunResult::kBurstOffsetsS.size(); ++k) {
        const double w = r.burst_rise_w[k];
        offsets += (k ? "/+" : "+") + fmt(0, RunResult::kBurstOffsetsS[k]);
        rises += k ? "/" : "";
        rises += !std::isfinite(w)     ? std::string("-")
                 : std::fabs(w) < 0.05 ? std::string("0.0")
                                       : (w > 0.0 ? "+" : "") + fmt(1, w);
      }
      out << "; bursts (" << r.burst_count[0] << "): socket cap " << offsets
          << " s after: " << rises << " W";
    }
    out << "; " << fmt(1, r.wall_s) << " s wall\n";
  }
}

void write_json(std::ostream &out, const ClusterSpec &spec, const std::vector<RunResult> &runs) {
  out << "{\n  \"scenario\": " << quoted(spec.name) << ",\n  \"source\": " << quoted(spec.source)
      << ",\n  \"seed\": " << spec.seed << ",\n  \"duration_s\": " << num(spec.duration_s)
      << ",\n  \"nodes\": " << spec.nodes.size() << ",\n  \"sockets\": " << spec.sockets.size()
      << ",\n  \"services\": " << spec.services.size()
      << ",\n  \"plain_services\": " << plain_services(spec)
      << ",\n  \"counters\": " << quoted(spec.hardware_counters ? "hardware" : "software")
      << ",\n  \"budget_min_w\": " << num(spec.budget.min_w())
      << ",\n  \"max_caps_w\": " << num(spec.sum_max_caps_w())
      << ",\n  \"min_caps_w\": " << num(spec.sum_min_caps_w()) << ",\n  \"baseline_settings\": [";
  for (std::size_t i = 0; i < spec.baselines.changed.size(); ++i)
    out << (i ? ", " : "") << quoted(spec.baselines.changed[i]);
  out << "],\n  \"policies\": {";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult &r = runs[i];
    out << (i ? "," : "") << "\n    " << quoted(r.policy) << ": {"
        << "\n      \"mean_latency_s\": " << num(r.latency.mean_s())
        << ",\n      \"p50_latency_s\": " << num(r.latency.quantile_s(0.5))
        << ",\n      \"p99_latency_s\": " << num(r.latency.quantile_s(0.99))
        << ",\n      \"goodput_rps\": " << num(r.goodput_rps)
        << ",\n      \"dropped\": " << r.dropped() << ",\n      \"energy_j\": " << num(r.energy_j)
        << ",\n      \"budget_violations\": " << r.budget_violations
        << ",\n      \"arrivals\": " << r.arrivals << ",\n      \"completed\": " << r.completed
        << ",\n      \"rejected\": " << r.rejected << ",\n      \"timed_out\": " << r.timed_out
        << ",\n      \"in_flight_at_end\": " << r.in_flight
        << ",\n      \"cap_bound_violations\": " << r.cap_bound_violations
        << ",\n      \"over_budget_s\": " << num(r.over_budget_s)
        << ",\n      \"budget_used\": " << num(r.budget_used)
        << ",\n      \"budget_used_wanted\": " << num(r.budget_used_wanted)
        << ",\n      \"wanted_share\": " << num(r.wanted_share)
        << ",\n      \"burst_response\": " << json_bursts(r)
        << ",\n      \"reduction_vs_usage\": {\"mean\": "
        << num(reduction_vs(runs, r, "usage", false))
        << ", \"p99\": " << num(reduction_vs(runs, r, "usage", true)) << "}"
        << ",\n      \"reduction_vs_uniform\": {\"mean\": "
        << num(reduction_vs(runs, r, "uniform", false))
        << ", \"p99\": " << num(reduction_vs(runs, r, "uniform", true)) << "}"
        << ",\n      \"oracle_share\": {\"mean\": " << num(oracle_share(runs, r, false))
        << ", \"p99\": " << num(oracle_share(runs, r, true)) << "}"
        << ",\n      \"inputs\": " << quoted(r.inputs)
        << ",\n      \"counters\": " << quoted(r.counters)
        << ",\n      \"wall_s\": " << num(r.wall_s)
        << ",\n      \"power_aware_services\": " << json_latency(r.power_aware)
        << ",\n      \"plain_services\": " << json_latency(r.plain) << ",\n      \"workloads\": {";
    // Keyed "dlrm", or "dlrm (plain)" for a workload's plain services.
    for (std::size_t w = 0; w < r.workloads.size(); ++w) {
      const WorkloadResult &wr = r.workloads[w];
      out << (w ? ", " : "") << quoted(workload_label(wr)) << ": {\"completed\": " << wr.completed
          << ", \"power_aware\": " << (wr.power_aware ? "true" : "false")
          << ", \"mean_latency_s\": " << num(wr.mean_latency_s)
          << ", \"p99_latency_s\": " << num(wr.p99_latency_s) << "}";
    }
    // Each socket's cap in force after the warm-up, in the scenario's socket order.
    out << "},\n      \"sockets\": [";
    for (std::size_t k = 0; k < r.socket_caps.size() && k < spec.sockets.size(); ++k) {
      const RunResult::CapStats &c = r.socket_caps[k];
      out << (k ? "," : "") << "\n        {\"name\": " << quoted(spec.sockets[k].name)
          << ", \"node\": " << quoted(spec.nodes[spec.sockets[k].node].name)
          << ", \"cap_min_w\": " << num(c.min_w) << ", \"cap_mean_w\": " << num(c.mean_w)
          << ", \"cap_max_w\": " << num(c.max_w) << "}";
    }
    out << "]\n    }";
  }
  out << "\n  }\n}\n";
}

void write_csv(std::ostream &out, const ClusterSpec &spec, const std::vector<RunResult> &runs) {
  out << "scenario,policy,mean_latency_s,p50_latency_s,p99_latency_s,goodput_rps,dropped,energy_j,"
         "budget_violations,reduction_mean_vs_usage,reduction_p99_vs_usage,"
         "reduction_mean_vs_uniform,reduction_p99_vs_uniform,oracle_share_mean,oracle_share_p99,"
         "counters,plain_mean_latency_s,plain_p99_latency_s,power_aware_mean_latency_s,"
         "power_aware_p99_latency_s,budget_used\n";
  for (const RunResult &r : runs) {
    out << spec.name << ',' << r.policy << ',' << num(r.latency.mean_s()) << ','
        << num(r.latency.quantile_s(0.5)) << ',' << num(r.latency.quantile_s(0.99)) << ','
        << num(r.goodput_rps) << ',' << r.dropped() << ',' << num(r.energy_j) << ','
        << r.budget_violations << ',' << num(reduction_vs(runs, r, "usage", false)) << ','
        << num(reduction_vs(runs, r, "usage", true)) << ','
        << num(reduction_vs(runs, r, "uniform", false)) << ','
        << num(reduction_vs(runs, r, "uniform", true)) << ',' << num(oracle_share(runs, r, false))
        << ',' << num(oracle_share(runs, r, true)) << ',' << r.counters << ','
        << (r.plain.completed ? num(r.plain.mean_latency_s) : "") << ','
        << (r.plain.completed ? num(r.plain.p99_latency_s) : "") << ','
        << num(r.power_aware.mean_latency_s) << ',' << num(r.power_aware.p99_latency_s) << ','
        << num(r.budget_used) << '\n';
  }
}

}  // namespace powergrad::sim
