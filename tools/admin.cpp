#include "tools/admin.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "controller/budget_state.hpp"
#include "controller/ctld_config.hpp"
#include "protocol/client_endpoint.hpp"

namespace powergrad {

namespace {

double monotonic_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string num(const json::Value &o, const std::string &key, int decimals) {
  auto v = o.num(key);
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
  return buf;
}

std::string gradient(const json::Value &o) {
  auto v = o.num("gradient");
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", *v);
  return buf;
}

std::string table(const std::vector<std::vector<std::string>> &rows) {
  std::vector<std::size_t> width;
  for (const auto &r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto &r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size()) out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

}  // namespace

std::optional<ControllerAddress> parse_host_port(const std::string &text, std::string *error) {
  const std::size_t colon = text.rfind(':');
  ControllerAddress a;
  if (colon != std::string::npos && colon > 0) {
    a.host = text.substr(0, colon);
    a.port = text.substr(colon + 1);
    if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') {
      a.host = a.host.substr(1, a.host.size() - 2);
    }
  }
  const bool digits = !a.port.empty() && a.port.size() <= 5 &&
                      std::all_of(a.port.begin(), a.port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (a.host.empty() || !digits || std::atoi(a.port.c_str()) < 1 || std::atoi(a.port.c_str()) > 65535) {
    if (error) *error = "'" + text + "' is not HOST:PORT";
    return std::nullopt;
  }
  return a;
}

std::string default_powergrad_conf_path() {
  if (const char *e = std::getenv("POWERGRAD_CONF"); e && *e) return e;
  const char *sc = std::getenv("SLURM_CONF");
  const std::string slurm_conf = sc && *sc ? sc : "/etc/slurm/slurm.conf";
  const std::size_t slash = slurm_conf.rfind('/');
  return (slash == std::string::npos ? std::string(".") : slurm_conf.substr(0, slash)) +
         "/powergrad.conf";
}

std::optional<ControllerAddress> address_from_conf(const std::string &conf_path,
                                                   std::string *error) {
  ConfigResult r = load_controller_config(conf_path);
  if (!r.config) {
    if (error) *error = r.error;
    return std::nullopt;
  }
  ControllerAddress a;
  a.host = r.config->listen_host;
  if (a.host == "0.0.0.0" || a.host == "::" || a.host == "*") a.host.clear();
  a.port = std::to_string(r.config->listen_port);
  return a;
}

std::optional<proto::Message> run_admin_request(const AdminRequestOptions &options,
                                                proto::Authenticator &auth,
                                                const proto::Message &request,
                                                std::string *error) {
  using CKind = proto::ClientEvent::Kind;
  proto::ClientConfig cc;
  cc.host = options.address.host;
  cc.port = options.address.port;
  cc.hello.role = proto::PeerRole::admin;
  cc.hello.name = options.client_name.empty() ? "powergrad" : options.client_name;
  cc.hello.incarnation = 1;
  cc.hello.controller_uids = options.controller_uids;
  cc.connect_timeout_s = options.timeout_s;
  cc.handshake_timeout_s = options.timeout_s;
  proto::ClientEndpoint client(cc, auth);
  const std::string where = options.address.host + ":" + options.address.port;
  const double deadline = monotonic_s() + options.timeout_s;
  bool sent = false;
  while (monotonic_s() < deadline) {
    for (proto::ClientEvent &e : client.poll_once(monotonic_s(), 100)) {
      switch (e.kind) {
        case CKind::connected: {
          const proto::Status st = client.send(request);
          if (!st.ok()) {
            if (error) *error = "cannot send the request to the controller at " + where + ": " + st.to_string();
            return std::nullopt;
          }
          sent = true;
          break;
        }
        case CKind::message:
          if (std::holds_alternative<proto::ErrorMessage>(e.message)) {
            const auto &m = std::get<proto::ErrorMessage>(e.message);
            if (error) *error = "the controller at " + where + " closed the session: " + m.message;
            return std::nullopt;
          }
          return std::move(e.message);
        case CKind::disconnected:
        case CKind::attempt_failed:
          if (error) {
            *error = std::string(sent ? "lost the controller at " : "cannot reach the controller at ") +
                     where + ": " + e.status.to_string();
          }
          return std::nullopt;
      }
    }
  }
  if (error) *error = "no answer from the controller at " + where + " within " +
                      std::to_string(static_cast<int>(options.timeout_s)) + " s";
  return std::nullopt;
}

std::string format_status_table(const json::Value &s) {
  std::ostringstream out;
  out << "budget: " << num(s, "budget_w", 1) << " W (caps that can be in force: "
      << num(s, "in_force_w", 1) << " W; unallocated last period: " << num(s, "unallocated_w", 1)
      << " W)\n";
  if (const json::Value *rb = s.get("runtime_budget"); rb && rb->type == json::Value::Type::object) {
    out << "budget set at run time: " << num(*rb, "budget_w", 1) << " W by uid " << num(*rb, "uid", 0)
        << " (powergrad.conf says " << num(s, "config_budget_w", 1) << " W)\n";
  }
  out << "period: " << num(s, "period_s", 2) << " s, lease: " << num(s, "lease_s", 2) << " s";
  if (const std::string ps = s.str("plain_share"); !ps.empty())
    out << ", plain jobs' share: " << ps;
  out << "\n";
  if (const json::Value *ls = s.get("listen"); ls && ls->type == json::Value::Type::object) {
    // Shown when the address was taken for a while: power control was off meanwhile.
    const auto failed = ls->num("failed_attempts");
    if (failed && *failed > 0) {
      out << "listening: yes, on " << ls->str("address") << " since "
          << local_time_text(ls->num("since").value_or(0.0)) << ", after "
          << num(*ls, "failed_attempts", 0) << " failed attempts from "
          << local_time_text(ls->num("failing_since").value_or(0.0))
          << " (power control was off meanwhile; last error: " << ls->str("last_error") << ")\n";
    }
  }
  if (const std::string cr = s.str("config_refused"); !cr.empty())
    out << "configuration: the last reconfigure was refused, the one in force stays: " << cr
        << "\n";
  if (const json::Value *lp = s.get("loop"); lp && lp->type == json::Value::Type::object) {
    out << "control loop: " << num(*lp, "periods", 0) << " periods, step "
        << num(*lp, "step_last_ms", 1) << " ms (mean " << num(*lp, "step_mean_ms", 1) << ", max "
        << num(*lp, "step_max_ms", 1) << "), " << num(*lp, "late_periods", 0)
        << " late by over half a period, " << num(*lp, "connections", 0) << " connections";
    if (lp->num("released_grants"))
      out << ", " << num(*lp, "released_grants", 0) << " grants between periods";
    out << "\n";
  }
  if (const json::Value *sch = s.get("schedule"); sch && sch->type == json::Value::Type::string) {
    out << "schedule: " << sch->string << " (scheduled budget " << num(s, "scheduled_budget_w", 1)
        << " W)\n";
  }
  const json::Value *groups = s.get("groups");
  if (groups && groups->type == json::Value::Type::array && !groups->array.empty()) {
    std::vector<std::vector<std::string>> rows = {{"GROUP", "PARENT", "LIMIT_W", "IN_FORCE_W", "NODES"}};
    for (const json::Value &g : groups->array) {
      const std::string parent = g.str("parent");
      rows.push_back({g.str("name"), parent.empty() ? "-" : parent, num(g, "limit_w", 1),
                      num(g, "in_force_w", 1), num(g, "nodes", 0)});
    }
    out << "\n" << table(rows);
  }
  std::vector<std::vector<std::string>> rows = {{"NODE", "GROUP", "STATE", "WORK", "GRANT_W",
                                                 "FAIR_W", "POWER_W", "CAPS_W", "GRADIENT", "SPLIT",
                                                 "JOBS", "LEASE_AGE_S"}};
  const json::Value *nodes = s.get("nodes");
  if (nodes && nodes->type == json::Value::Type::array) {
    for (const json::Value &n : nodes->array) {
      const json::Value *c = n.get("connected");
      const json::Value *r = n.get("reported");
      const json::Value *sil = n.get("silent");
      std::string state = "unseen";
      if (sil && sil->boolean) {
        state = "silent";
      } else if (c && c->boolean) {
        state = r && r->boolean ? "reporting" : "connected";
      } else if (r && r->boolean) {
        state = "disconnected";
      }
      std::string jobs;
      if (const json::Value *j = n.get("jobs"); j && j->type == json::Value::Type::array) {
        for (const json::Value &id : j->array) {
          if (!jobs.empty()) jobs += ',';
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.0f", id.number);
          jobs += buf;
        }
      }
      const std::string group = n.str("group");
      const std::string work = n.str("work");
      rows.push_back({n.str("name"), group.empty() ? "-" : group, state, work.empty() ? "-" : work,
                      num(n, "grant_w", 1), num(n, "fair_share_w", 1), num(n, "power_w", 1),
                      num(n, "caps_w", 1), gradient(n),
                      n.str("split").empty() ? "-" : n.str("split"), jobs.empty() ? "-" : jobs,
                      num(n, "lease_age_s", 1)});
    }
  }
  out << "\n" << table(rows);
  // What each node can do: how it caps, counts and measures (NODE_CAPS from its agent).
  if (nodes && nodes->type == json::Value::Type::array && !nodes->array.empty()) {
    std::vector<std::vector<std::string>> hrows = {
        {"NODE", "CAPS", "COUNTERS", "ENERGY", "CAP_RANGE_W", "CLAMPS", "RESTORE_FAILS"}};
    std::vector<std::string> reasons;
    bool unknown = false;
    for (const json::Value &n : nodes->array) {
      const json::Value *c = n.get("caps");
      if (!c || c->type != json::Value::Type::object) {
        hrows.push_back({n.str("name"), "?", "?", "?", "-", "-", "-"});
        unknown = true;
        continue;
      }
      const std::string backend = c->str("backend");
      const bool caps = backend != "none";
      hrows.push_back({n.str("name"), caps ? backend : "none (monitor)", c->str("counters"),
                       c->str("energy"),
                       caps ? num(*c, "min_w", 1) + ".." + num(*c, "max_w", 1) : "-",
                       caps ? num(*c, "clamps", 0) : "-", num(*c, "restore_failures", 0)});
      if (!caps) reasons.push_back(n.str("name") + ": cannot cap: " + c->str("reason"));
    }
    out << "\n" << table(hrows);
    for (const std::string &r : reasons) out << r << "\n";
    if (unknown) {
      out << "? : no capability report yet (agent not connected, or older than this version)\n";
    }
  }
  if (s.str("jobs_shown") == "own") {
    out << "JOBS lists your own jobs only (slurm.conf has PrivateData=jobs)\n";
  }
  // Outside the groups: not managed, not in the budget.
  if (const json::Value *um = s.get("unmanaged");
      um && um->type == json::Value::Type::array && !um->array.empty()) {
    std::vector<std::vector<std::string>> urows = {{"UNMANAGED NODE", "AGENT SEEN"}};
    for (const json::Value &u : um->array) {
      const json::Value *at = u.get("connected_at");
      urows.push_back({u.str("name"), at && at->type == json::Value::Type::number ? "yes" : "no"});
    }
    out << "\nnot managed (outside powergrad.conf's groups, not in the budget):\n" << table(urows);
  }
  return out.str();
}

}  // namespace powergrad
