// Scenario parsing with yaml-cpp. Every map's keys are checked against the keys it may have,
// so a typo is an error, not a silently ignored setting; every value is checked for type and
// range where it is read, and the message names the file, the line, the key path and the
// problem.
#include "sim/scenario.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>

#include "libgradient/format.hpp"
#include "sim/rng.hpp"

namespace powergrad::sim {

namespace {

constexpr double kGHz = 1e9;

const std::vector<WorkloadSpec> &presets() {
  // Service times are per request (a batch or a query), chosen so a socket serves tens of
  // requests per second; memory shares, CVs and alphas from notes/evaluation-model.md.
  static const std::vector<WorkloadSpec> p = {
      {"resnet50", 0.060, 0.15, 0.10, 0.95, 0.0, 2.5},
      {"bert", 0.120, 0.22, 0.15, 0.90, 0.0, 2.2},
      {"lstm", 0.050, 0.50, 0.30, 0.75, 0.0, 1.6},
      {"dlrm", 0.040, 0.60, 0.80, 0.70, 0.0, 1.2},
      {"llm-prefill", 0.800, 0.15, 0.60, 1.00, 0.0, 2.8},
      {"llm-decode", 2.000, 0.80, 0.80, 0.65, 0.0, 0.8},
  };
  return p;
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node &node, const std::string &key,
                         const std::string &problem) const {
    std::ostringstream msg;
    msg << file_;
    if (node.IsDefined() && node.Mark().line >= 0)
      msg << ':' << node.Mark().line + 1 << ':' << node.Mark().column + 1;
    msg << ": " << (key.empty() ? "" : key + ": ") << problem;
    throw ScenarioError(msg.str());
  }
  [[noreturn]] void fail(const std::string &problem) const {
    throw ScenarioError(file_ + ": " + problem);
  }

  void expect_map(const YAML::Node &node, const std::string &key) const {
    if (!node.IsMap()) fail(node, key, "expected a map of keys");
  }

  // Every key of `node` must be in `allowed`.
  void check_keys(const YAML::Node &node, const std::string &path,
                  std::initializer_list<const char *> allowed) const {
    expect_map(node, path);
    for (const auto &kv : node) {
      const std::string k = kv.first.Scalar();
      bool ok = false;
      for (const char *a : allowed) ok = ok || k == a;
      if (!ok) {
        std::string list;
        for (const char *a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
        fail(kv.first, join(path, k), "unknown key (expected one of: " + list + ")");
      }
    }
  }

  static std::string join(const std::string &path, const std::string &key) {
    return path.empty() ? key : path + "." + key;
  }

  double number(const YAML::Node &node, const std::string &key) const {
    if (!node.IsScalar()) fail(node, key, "expected a number");
    const std::string text = node.Scalar();
    if (text == "inf" || text == ".inf" || text == "unlimited") return kNoLimit;
    try {
      std::size_t used = 0;
      const double v = std::stod(text, &used);
      if (used != text.size() || !std::isfinite(v)) throw std::invalid_argument(text);
      return v;
    } catch (const std::exception &) {
      fail(node, key, "expected a number, got '" + text + "'");
    }
  }

  // Optional number in [lo, hi]; `fallback` when the key is absent.
  double number(const YAML::Node &map, const std::string &path, const char *key, double fallback,
                double lo, double hi) const {
    const YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return fallback;
    const double v = number(n, join(path, key));
    if (v < lo || v > hi)
      fail(n, join(path, key),
           format_number(v) + " is out of range [" + format_number(lo) + ", " + format_number(hi) + "]");
    return v;
  }

  std::string text(const YAML::Node &map, const std::string &path, const char *key,
                   const std::string &fallback) const {
    const YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return fallback;
    if (!n.IsScalar()) fail(n, join(path, key), "expected a string");
    return n.Scalar();
  }

  // Optional boolean (true/false, yes/no, on/off); `fallback` when the key is absent.
  bool flag(const YAML::Node &map, const std::string &path, const char *key, bool fallback) const {
    const YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return fallback;
    if (!n.IsScalar()) fail(n, join(path, key), "expected true or false");
    const std::string v = n.Scalar();
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
    fail(n, join(path, key), "expected true or false, got '" + v + "'");
  }

  std::string choice(const YAML::Node &map, const std::string &path, const char *key,
                     const std::string &fallback, std::initializer_list<const char *> options) const {
    const std::string v = text(map, path, key, fallback);
    std::string list;
    for (const char *o : options) {
      if (v == o) return v;
      list += std::string(list.empty() ? "" : ", ") + o;
    }
    fail(map[key], join(path, key), "'" + v + "' is not one of: " + list);
  }

 private:
  std::string file_;
};

constexpr double kBig = 1e18;

void read_workload(const Reader &r, const YAML::Node &n, const std::string &path,
                   WorkloadSpec &w) {
  r.check_keys(n, path,
               {"like", "service_time_ms", "memory_share", "cv", "alpha", "top_freq_ghz", "ipc"});
  const std::string like = r.text(n, path, "like", "");
  if (!like.empty()) {
    const WorkloadSpec *preset = workload_preset(like);
    if (!preset) {
      std::string list;
      for (const WorkloadSpec &p : presets()) list += (list.empty() ? "" : ", ") + p.name;
      r.fail(n["like"], Reader::join(path, "like"), "unknown preset '" + like + "' (presets: " + list + ")");
    }
    const std::string name = w.name;
    w = *preset;
    w.name = name;
  }
  w.service_time_s = r.number(n, path, "service_time_ms", w.service_time_s * 1e3, 1e-3, 1e7) / 1e3;
  w.memory_share = r.number(n, path, "memory_share", w.memory_share, 0.0, 0.99);
  w.cv = r.number(n, path, "cv", w.cv, 0.0, 10.0);
  w.alpha = r.number(n, path, "alpha", w.alpha, 0.05, 2.0);
  w.top_freq_hz = r.number(n, path, "top_freq_ghz", w.top_freq_hz / kGHz, 0.0, 10.0) * kGHz;
  w.ipc = r.number(n, path, "ipc", w.ipc, 0.01, 16.0);
}

void read_socket_type(const Reader &r, const YAML::Node &n, const std::string &path,
                      SocketTypeSpec &t) {
  r.check_keys(n, path,
               {"tdp_w", "p0_w", "f_max_ghz", "f_min_ghz", "min_cap_w", "max_cap_w", "settle_s",
                "low_cap_below_w", "low_cap_slowdown", "power_noise", "counter_noise", "cores"});
  t.tdp_w = r.number(n, path, "tdp_w", t.tdp_w, 1.0, 10000.0);
  t.p0_w = r.number(n, path, "p0_w", 0.3 * t.tdp_w, 0.0, t.tdp_w - 1e-3);
  t.f_max_hz = r.number(n, path, "f_max_ghz", t.f_max_hz / kGHz, 0.1, 10.0) * kGHz;
  t.f_min_hz = r.number(n, path, "f_min_ghz", std::min(t.f_min_hz, t.f_max_hz) / kGHz, 0.05,
                        t.f_max_hz / kGHz) * kGHz;
  t.max_cap_w = r.number(n, path, "max_cap_w", t.tdp_w, 1.0, 10000.0);
  t.min_cap_w = r.number(n, path, "min_cap_w", 0.45 * t.tdp_w, 0.0, t.max_cap_w);
  if (t.min_cap_w <= t.p0_w)
    r.fail(n["min_cap_w"].IsDefined() ? n["min_cap_w"] : n, Reader::join(path, "min_cap_w"),
           "min cap " + format_w(t.min_cap_w) + " is not above p0_w " + format_w(t.p0_w));
  t.settle_s = r.number(n, path, "settle_s", t.settle_s, 0.0, 60.0);
  t.low_cap_below_w = r.number(n, path, "low_cap_below_w", 0.5 * t.tdp_w, 0.0, 10000.0);
  t.low_cap_slowdown = r.number(n, path, "low_cap_slowdown", t.low_cap_slowdown, 0.0, 10.0);
  t.power_noise = r.number(n, path, "power_noise", t.power_noise, 0.0, 0.5);
  t.counter_noise = r.number(n, path, "counter_noise", t.counter_noise, 0.0, 0.5);
  t.cores = static_cast<int>(r.number(n, path, "cores", 0, 0, 4096));
}

// Reads an arrivals map over `a`: the keys the map sets replace a's values, the others keep
// them. The top-level map is read over the defaults; a service's map over the top-level
// result, so a service that sets only burst_mean_s still inherits kind and the diurnal keys.
// The merged result is checked, so an inherited value can make a service's map refused
// (`inherits`: say so in the message).
void read_arrivals(const Reader &r, const YAML::Node &n, const std::string &path, ArrivalSpec &a,
                   bool inherits) {
  r.check_keys(n, path,
               {"kind", "burst_factor", "burst_mean_s", "calm_mean_s", "diurnal_amplitude",
                "diurnal_period_s", "diurnal_phase_s"});
  const char *inherited_kind = a.kind == ArrivalSpec::Kind::mmpp ? "mmpp" : "poisson";
  a.kind = r.choice(n, path, "kind", inherited_kind, {"poisson", "mmpp"}) == "mmpp"
               ? ArrivalSpec::Kind::mmpp
               : ArrivalSpec::Kind::poisson;
  a.burst_factor = r.number(n, path, "burst_factor", a.burst_factor, 1.0, 100.0);
  a.burst_mean_s = r.number(n, path, "burst_mean_s", a.burst_mean_s, 1e-3, 1e7);
  a.calm_mean_s = r.number(n, path, "calm_mean_s", a.calm_mean_s, 1e-3, 1e7);
  if (a.kind == ArrivalSpec::Kind::mmpp && a.calm_factor() < 0.0)
    r.fail(n, path,
           "burst_factor " + format_number(a.burst_factor) + " with burst_mean_s " +
               format_number(a.burst_mean_s) + " and calm_mean_s " + format_number(a.calm_mean_s) +
               (inherits ? " (keys not set here are the top-level arrivals')" : "") +
               " would need a negative calm rate: burst_factor * burst_mean_s / (burst_mean_s + "
               "calm_mean_s) must be at most 1");
  a.diurnal_amplitude = r.number(n, path, "diurnal_amplitude", a.diurnal_amplitude, 0.0, 1.0);
  a.diurnal_period_s = r.number(n, path, "diurnal_period_s", a.diurnal_period_s, 1.0, 1e9);
  a.diurnal_phase_s = r.number(n, path, "diurnal_phase_s", a.diurnal_phase_s, -1e9, 1e9);
}

// A service's settings before placement; load may be a range drawn per instance.
struct ServiceTemplate {
  std::string workload_name;
  std::size_t workload = 0;
  int servers = 4;
  double load_lo = 0.7, load_hi = 0.7;
  ArrivalSpec arrivals;
  std::size_t queue_limit = 10000;
  double timeout_s = 0.0;
  double core_max_hz = 0.0;
  bool progress_signal = false;
  bool power_aware = true;
};

struct SocketTemplate {
  std::size_t type = 0;
  std::vector<ServiceTemplate> services;
};

struct NodeTemplate {
  std::vector<SocketTemplate> sockets;
};

template <typename T>
std::size_t index_of(const std::vector<T> &items, const std::string &name) {
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].name == name) return i;
  return items.size();
}

ServiceTemplate read_service(const Reader &r, const YAML::Node &n, const std::string &path,
                             const ClusterSpec &spec, const ArrivalSpec &default_arrivals,
                             bool default_progress) {
  r.check_keys(n, path,
               {"workload", "servers", "load", "arrivals", "queue_limit", "timeout_s", "core_max_ghz",
                "progress_signal", "power_aware"});
  ServiceTemplate s;
  s.arrivals = default_arrivals;
  if (!n["workload"].IsDefined()) r.fail(n, path, "missing key 'workload'");
  s.workload_name = r.text(n, path, "workload", "");
  s.workload = index_of(spec.workloads, s.workload_name);
  if (s.workload == spec.workloads.size()) {
    const WorkloadSpec *preset = workload_preset(s.workload_name);
    if (!preset)
      r.fail(n["workload"], Reader::join(path, "workload"),
             "unknown workload '" + s.workload_name + "' (not in workloads:, not a preset)");
    s.workload = spec.workloads.size();  // resolved by the caller, who may add the preset
  }
  s.servers = static_cast<int>(r.number(n, path, "servers", 4, 1, 1024));
  const YAML::Node load = n["load"];
  if (load.IsSequence()) {
    if (load.size() != 2) r.fail(load, Reader::join(path, "load"), "expected [low, high]");
    s.load_lo = r.number(load[0], Reader::join(path, "load"));
    s.load_hi = r.number(load[1], Reader::join(path, "load"));
    if (!(s.load_lo > 0.0 && s.load_lo <= s.load_hi && s.load_hi <= 2.0))
      r.fail(load, Reader::join(path, "load"), "expected 0 < low <= high <= 2");
  } else {
    s.load_lo = s.load_hi = r.number(n, path, "load", 0.7, 1e-6, 2.0);
  }
  if (n["arrivals"].IsDefined())
    read_arrivals(r, n["arrivals"], Reader::join(path, "arrivals"), s.arrivals, true);
  s.queue_limit = static_cast<std::size_t>(r.number(n, path, "queue_limit", 10000, 0, 1e7));
  s.timeout_s = r.number(n, path, "timeout_s", 0.0, 0.0, 1e7);
  s.core_max_hz = r.number(n, path, "core_max_ghz", 0.0, 0.0, 10.0) * kGHz;
  s.progress_signal = r.flag(n, path, "progress_signal", default_progress);
  s.power_aware = r.flag(n, path, "power_aware", true);
  return s;
}

ClusterSpec parse_document(const Reader &r, const YAML::Node &root, const std::string &name) {
  ClusterSpec spec;
  spec.source = name;
  if (!root.IsDefined() || root.IsNull()) r.fail("the file is empty");
  r.check_keys(root, "",
               {"name", "description", "duration_s", "tick_s", "warmup_s", "control_period_s",
                "transport_delay_s", "counters", "seed", "plot_interval_s", "budget",
                "socket_types", "workloads", "arrivals", "node_templates", "groups",
                "progress_signal", "agent_knows_servers", "plain_share"});
  spec.name = r.text(root, "", "name", name);
  spec.duration_s = r.number(root, "", "duration_s", spec.duration_s, 1e-3, 1e8);
  spec.tick_s = r.number(root, "", "tick_s", spec.tick_s, 1e-4, spec.duration_s);
  spec.warmup_s = r.number(root, "", "warmup_s", std::min(spec.warmup_s, 0.1 * spec.duration_s), 0.0,
                           spec.duration_s);
  spec.control_period_s = r.number(root, "", "control_period_s", spec.control_period_s, spec.tick_s, 1e6);
  spec.transport_delay_s = r.number(root, "", "transport_delay_s", 0.0, 0.0, 1e3);
  spec.hardware_counters = r.choice(root, "", "counters", "hardware", {"hardware", "software"}) == "hardware";
  spec.agent_knows_servers = r.flag(root, "", "agent_knows_servers", false);
  spec.plain_share = r.choice(root, "", "plain_share", "usage", {"usage", "even"}) == "even"
                         ? ClusterSpec::PlainShare::even
                         : ClusterSpec::PlainShare::usage;
  const bool default_progress = r.flag(root, "", "progress_signal", false);
  spec.seed = static_cast<std::uint64_t>(r.number(root, "", "seed", 1, 0, 9.007e15));
  spec.plot_interval_s = r.number(root, "", "plot_interval_s", 0.0, 0.0, spec.duration_s);

  if (const YAML::Node types = root["socket_types"]; types.IsDefined()) {
    r.expect_map(types, "socket_types");
    for (const auto &kv : types) {
      SocketTypeSpec t;
      t.name = kv.first.Scalar();
      read_socket_type(r, kv.second, "socket_types." + t.name, t);
      spec.socket_types.push_back(t);
    }
  }
  if (spec.socket_types.empty()) r.fail(root, "socket_types", "at least one socket type is needed");

  if (const YAML::Node workloads = root["workloads"]; workloads.IsDefined()) {
    r.expect_map(workloads, "workloads");
    for (const auto &kv : workloads) {
      WorkloadSpec w;
      w.name = kv.first.Scalar();
      if (const WorkloadSpec *p = workload_preset(w.name)) w = *p;  // a preset's name: start there
      read_workload(r, kv.second, "workloads." + w.name, w);
      spec.workloads.push_back(w);
    }
  }

  ArrivalSpec default_arrivals;
  if (root["arrivals"].IsDefined())
    read_arrivals(r, root["arrivals"], "arrivals", default_arrivals, false);

  // Node templates.
  std::map<std::string, NodeTemplate> templates;
  const YAML::Node tnode = root["node_templates"];
  if (!tnode.IsDefined()) r.fail(root, "node_templates", "missing (at least one node template)");
  r.expect_map(tnode, "node_templates");
  for (const auto &kv : tnode) {
    const std::string tname = kv.first.Scalar();
    const std::string path = "node_templates." + tname;
    r.check_keys(kv.second, path, {"sockets"});
    const YAML::Node socks = kv.second["sockets"];
    if (!socks.IsSequence() || socks.size() == 0 || socks.size() > 8)
      r.fail(kv.second, path + ".sockets", "expected a list of 1 to 8 sockets");
    NodeTemplate nt;
    for (std::size_t i = 0; i < socks.size(); ++i) {
      const std::string spath = path + ".sockets[" + std::to_string(i) + "]";
      r.check_keys(socks[i], spath, {"type", "services"});
      SocketTemplate st;
      const std::string type = r.text(socks[i], spath, "type", spec.socket_types.front().name);
      st.type = index_of(spec.socket_types, type);
      if (st.type == spec.socket_types.size())
        r.fail(socks[i]["type"], spath + ".type", "unknown socket type '" + type + "'");
      const YAML::Node svcs = socks[i]["services"];
      if (!svcs.IsSequence() || svcs.size() == 0 || svcs.size() > 16)
        r.fail(socks[i], spath + ".services", "expected a list of 1 to 16 services");
      for (std::size_t j = 0; j < svcs.size(); ++j) {
        ServiceTemplate s = read_service(r, svcs[j], spath + ".services[" + std::to_string(j) + "]",
                                         spec, default_arrivals, default_progress);
        if (s.workload == spec.workloads.size()) {  // a preset used directly: add it once
          spec.workloads.push_back(*workload_preset(s.workload_name));
        }
        st.services.push_back(s);
      }
      nt.sockets.push_back(std::move(st));
    }
    templates[tname] = std::move(nt);
  }

  // Groups and their nodes.
  const YAML::Node groups = root["groups"];
  if (!groups.IsSequence() || groups.size() == 0)
    r.fail(groups.IsDefined() ? groups : root, "groups", "expected a list of at least one group");
  Rng placement(stream_seed(spec.seed, Stream::placement, 0));
  std::vector<double> group_share(groups.size(), -1.0);
  std::vector<YAML::Node> group_nodes;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const YAML::Node g = groups[gi];
    const std::string gpath = "groups[" + std::to_string(gi) + "]";
    r.check_keys(g, gpath, {"name", "limit_w", "limit_share_of_max", "nodes"});
    GroupSpec group;
    group.name = r.text(g, gpath, "name", "group" + std::to_string(gi));
    group.limit_w = r.number(g, gpath, "limit_w", kNoLimit, 0.0, kNoLimit);
    if (g["limit_share_of_max"].IsDefined()) {
      if (g["limit_w"].IsDefined()) r.fail(g, gpath, "give limit_w or limit_share_of_max, not both");
      group_share[gi] = r.number(g, gpath, "limit_share_of_max", 1.0, 0.0, 1.0);
    }
    const YAML::Node members = g["nodes"];
    if (!members.IsSequence() || members.size() == 0)
      r.fail(g, gpath + ".nodes", "expected a list of {template, count}");
    for (std::size_t mi = 0; mi < members.size(); ++mi) {
      const std::string mpath = gpath + ".nodes[" + std::to_string(mi) + "]";
      r.check_keys(members[mi], mpath, {"template", "count"});
      const std::string tname = r.text(members[mi], mpath, "template", "");
      const auto it = templates.find(tname);
      if (it == templates.end())
        r.fail(members[mi], mpath + ".template", "unknown node template '" + tname + "'");
      const int count = static_cast<int>(r.number(members[mi], mpath, "count", 1, 1, 100000));
      for (int c = 0; c < count; ++c) {
        NodeSpec node;
        char nname[32];
        std::snprintf(nname, sizeof nname, "n%04zu", spec.nodes.size());
        node.name = nname;
        node.group = spec.groups.size();
        const std::size_t node_index = spec.nodes.size();
        for (std::size_t si = 0; si < it->second.sockets.size(); ++si) {
          const SocketTemplate &st = it->second.sockets[si];
          SocketSpec sock;
          sock.name = node.name + ".s" + std::to_string(si);
          sock.node = node_index;
          sock.type = st.type;
          sock.min_cap_w = spec.socket_types[st.type].min_cap_w;
          sock.max_cap_w = spec.socket_types[st.type].max_cap_w;
          const std::size_t sock_index = spec.sockets.size();
          for (std::size_t vi = 0; vi < st.services.size(); ++vi) {
            const ServiceTemplate &t = st.services[vi];
            ServiceSpec svc;
            svc.workload = index_of(spec.workloads, t.workload_name);
            // Unique per socket (the node agent keys its jobs by name, as a real agent's
            // job.step keys are unique): a second service of a workload gets a suffix.
            std::size_t same = 0;
            for (std::size_t o = 0; o < vi; ++o)
              if (st.services[o].workload_name == t.workload_name) ++same;
            svc.name =
                sock.name + "." + t.workload_name + (same ? "." + std::to_string(same + 1) : "");
            svc.socket = sock_index;
            svc.servers = t.servers;
            svc.load = t.load_lo + (t.load_hi - t.load_lo) * placement.uniform();
            svc.arrivals = t.arrivals;
            svc.queue_limit = t.queue_limit;
            svc.timeout_s = t.timeout_s;
            svc.core_max_hz = t.core_max_hz;
            svc.progress_signal = t.progress_signal;
            svc.power_aware = t.power_aware;
            sock.services.push_back(spec.services.size());
            spec.services.push_back(svc);
          }
          node.sockets.push_back(sock_index);
          spec.sockets.push_back(std::move(sock));
        }
        spec.nodes.push_back(std::move(node));
        group.nodes.push_back(node_index);
      }
    }
    spec.groups.push_back(std::move(group));
  }

  // Derived rates: load relative to the capacity at the workload's top frequency.
  for (std::size_t i = 0; i < spec.services.size(); ++i) {
    ServiceSpec &s = spec.services[i];
    s.mean_rate_rps = s.load * s.servers / spec.workloads[s.workload].service_time_s;
  }
  for (std::size_t gi = 0; gi < spec.groups.size(); ++gi) {
    if (group_share[gi] < 0.0) continue;
    double max_w = 0.0;
    for (std::size_t n : spec.groups[gi].nodes)
      for (std::size_t k : spec.nodes[n].sockets) max_w += spec.sockets[k].max_cap_w;
    spec.groups[gi].limit_w = group_share[gi] * max_w;
  }

  // Budget.
  const YAML::Node b = root["budget"];
  if (!b.IsDefined()) r.fail(root, "budget", "missing");
  r.check_keys(b, "budget", {"watts", "share_of_max", "series", "series_unit", "interpolate", "grace_s"});
  const int given = (b["watts"].IsDefined() ? 1 : 0) + (b["share_of_max"].IsDefined() ? 1 : 0) +
                    (b["series"].IsDefined() ? 1 : 0);
  if (given != 1) r.fail(b, "budget", "give exactly one of watts, share_of_max, series");
  const double max_w = spec.sum_max_caps_w();
  if (b["watts"].IsDefined()) {
    spec.budget.points_w.push_back({0.0, r.number(b, "budget", "watts", 0.0, 0.0, kBig)});
  } else if (b["share_of_max"].IsDefined()) {
    spec.budget.points_w.push_back({0.0, max_w * r.number(b, "budget", "share_of_max", 0.0, 0.0, 1.0)});
  } else {
    const bool share = r.choice(b, "budget", "series_unit", "share_of_max", {"share_of_max", "watts"}) == "share_of_max";
    const YAML::Node series = b["series"];
    if (!series.IsSequence() || series.size() == 0)
      r.fail(series, "budget.series", "expected a list of [time_s, value]");
    double last_t = -1.0;
    for (std::size_t i = 0; i < series.size(); ++i) {
      const std::string ppath = "budget.series[" + std::to_string(i) + "]";
      if (!series[i].IsSequence() || series[i].size() != 2) r.fail(series[i], ppath, "expected [time_s, value]");
      const double t = r.number(series[i][0], ppath);
      const double v = r.number(series[i][1], ppath);
      if (!(t > last_t)) r.fail(series[i], ppath, "times must increase");
      if (v < 0.0 || (share && v > 1.0)) r.fail(series[i], ppath, "value out of range");
      last_t = t;
      spec.budget.points_w.push_back({t, share ? v * max_w : v});
    }
  }
  spec.budget.linear = r.choice(b, "budget", "interpolate", "step", {"step", "linear"}) == "linear";
  spec.budget.grace_s = r.number(b, "budget", "grace_s", 2.0 * spec.control_period_s, 0.0, 1e6);

  if (const std::string why = spec.check(); !why.empty()) r.fail(why);
  return spec;
}

}  // namespace

const WorkloadSpec *workload_preset(const std::string &name) {
  for (const WorkloadSpec &w : presets())
    if (w.name == name) return &w;
  return nullptr;
}

namespace {

// "NAME:LINE:COLUMN: what yaml-cpp says" (no position when yaml-cpp has none).
ScenarioError yaml_error(const std::string &name, const YAML::Exception &e) {
  std::ostringstream msg;
  msg << name;
  if (e.mark.line >= 0) msg << ':' << e.mark.line + 1 << ':' << e.mark.column + 1;
  msg << ": " << e.msg;
  return ScenarioError(msg.str());
}

}  // namespace

ClusterSpec parse_scenario(const std::string &yaml_text, const std::string &name) {
  const Reader r(name);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception &e) {
    throw yaml_error(name, e);
  }
  try {
    return parse_document(r, root, name);
  } catch (const YAML::Exception &e) {
    // A structural surprise the checks above did not anticipate; still name the place.
    throw yaml_error(name, e);
  }
}

ClusterSpec load_scenario(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw ScenarioError(path + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ScenarioError(path + ": read error");
  return parse_scenario(text.str(), path);
}

}  // namespace powergrad::sim
