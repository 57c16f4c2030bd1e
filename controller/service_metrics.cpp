// ControllerService::metrics_text: the controller's state for Prometheus (see the header).
//
// Why a textfile and not an HTTP endpoint in slurmctld: the controller runs inside the
// scheduler. A file written every MetricsInterval= seconds (atomically, by rename) costs the
// scheduler one small write and opens no port; node_exporter's textfile collector serves it
// over HTTP from its own process, with its own TLS and authentication settings, and a slow
// or hostile scraper can never hold a thread of slurmctld.
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "controller/controller_service.hpp"

namespace powergrad {

namespace {

// A label value as the exposition format wants it: backslash, double quote and newline
// escaped.
std::string label(const std::string &v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

class Writer {
 public:
  // Starts a metric family: HELP and TYPE once.
  void family(const char *name, const char *type, const char *help) {
    o_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    name_ = name;
  }
  // One sample of the current family; left out when v is not finite (unknown).
  void sample(double v, const std::string &labels = {}) {
    if (!std::isfinite(v)) return;
    o_ << name_;
    if (!labels.empty()) o_ << '{' << labels << '}';
    o_ << ' ' << number(v) << '\n';
  }
  std::string str() const { return o_.str(); }

 private:
  std::ostringstream o_;
  std::string name_;
};

}  // namespace

std::string ControllerService::metrics_text() const {
  const double wall = clock_.wall_s();
  const ClusterConfig &cfg = controller_.config();
  Writer w;
  w.family("powergrad_budget_watts", "gauge", "Cluster power budget in force.");
  w.sample(controller_.budget_w());
  w.family("powergrad_config_budget_watts", "gauge", "Budget= of powergrad.conf.");
  w.sample(settings_.config_budget_w);
  if (last_scheduled_w_) {
    w.family("powergrad_scheduled_budget_watts", "gauge",
             "Budget the BudgetSchedule gives for now.");
    w.sample(*last_scheduled_w_);
  }
  w.family("powergrad_runtime_budget", "gauge",
           "1 while an admin's run-time budget (powergrad set-budget) is in force.");
  w.sample(runtime_budget_ ? 1.0 : 0.0);
  w.family("powergrad_caps_in_force_watts", "gauge",
           "Sum of the caps that can be in force on the managed nodes (at most the budget).");
  w.sample(controller_.total_in_force_bound_w(wall));
  w.family("powergrad_unallocated_watts", "gauge", "Budget left unallocated in the last period.");
  w.sample(controller_.unallocated_w());
  w.family("powergrad_control_period_seconds", "gauge", "ControlPeriod= of powergrad.conf.");
  w.sample(cfg.period_s);
  w.family("powergrad_lease_seconds", "gauge", "LeaseTime= of powergrad.conf.");
  w.sample(cfg.lease_s);

  w.family("powergrad_group_limit_watts", "gauge", "A group's own power limit.");
  for (const ClusterGroupConfig &g : cfg.groups)
    if (std::isfinite(g.max_w)) w.sample(g.max_w, "group=\"" + label(g.name) + "\"");
  w.family("powergrad_group_caps_in_force_watts", "gauge",
           "Sum of the caps that can be in force in a group.");
  for (std::size_t i = 0; i < cfg.groups.size(); ++i)
    w.sample(controller_.group_in_force_bound_w(i, wall),
             "group=\"" + label(cfg.groups[i].name) + "\"");

  const std::vector<ClusterNodeStatus> nodes = controller_.status(wall);
  std::vector<std::string> labels(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const ClusterNodeStatus &n = nodes[i];
    labels[i] = "node=\"" + label(n.name) + "\",group=\"" +
                (n.group == kNoGroup ? std::string() : label(cfg.groups[n.group].name)) + "\"";
  }
  const auto per_node = [&](const char *name, const char *type, const char *help,
                            const auto &value) {
    w.family(name, type, help);
    for (std::size_t i = 0; i < nodes.size(); ++i) w.sample(value(nodes[i], i), labels[i]);
  };
  const double kNaN = std::nan("");
  per_node("powergrad_node_grant_watts", "gauge", "Cap the controller granted the node.",
           [](const ClusterNodeStatus &n, std::size_t) { return n.granted_w; });
  per_node("powergrad_node_fair_share_watts", "gauge", "The node's share of an even split.",
           [](const ClusterNodeStatus &n, std::size_t) { return n.fair_share_w; });
  per_node("powergrad_node_power_watts", "gauge", "Power the node last reported.",
           [](const ClusterNodeStatus &n, std::size_t) { return n.power_w; });
  per_node("powergrad_node_caps_watts", "gauge", "Sum of the caps the node last reported.",
           [](const ClusterNodeStatus &n, std::size_t) { return n.caps_w; });
  per_node("powergrad_node_floor_watts", "gauge", "Power the node is guaranteed.",
           [](const ClusterNodeStatus &n, std::size_t) { return n.floor_w; });
  per_node("powergrad_node_max_watts", "gauge", "Most the node can draw.",
           [](const ClusterNodeStatus &n, std::size_t) { return n.max_w; });
  per_node("powergrad_node_gradient", "gauge",
           "Mean relative speed-up per watt of the node's power-aware jobs (last report).",
           [&](const ClusterNodeStatus &, std::size_t i) {
             return extra_[i].gradient_known ? extra_[i].gradient : kNaN;
           });
  per_node("powergrad_node_connected", "gauge", "1 while the node's agent holds a session.",
           [&](const ClusterNodeStatus &n, std::size_t) {
             return endpoint_.node_connection(n.name) != 0 ? 1.0 : 0.0;
           });
  per_node("powergrad_node_lease_age_seconds", "gauge", "Age of the node's current lease.",
           [&](const ClusterNodeStatus &, std::size_t i) {
             const NodeExtra &x = extra_[i];
             if (!x.lease_ours || !std::isfinite(x.lease_expires_at_s)) return kNaN;
             return std::max(0.0, wall - (x.lease_expires_at_s - cfg.lease_s));
           });
  per_node("powergrad_node_report_age_seconds", "gauge", "Time since the node's last report.",
           [&](const ClusterNodeStatus &n, std::size_t) {
             return n.reported ? std::max(0.0, wall - n.last_report_s) : kNaN;
           });
  // From the node's NODE_CAPS: left out until its agent sent them.
  const auto caps_of = [&](std::size_t i) -> const proto::NodeCaps * {
    return extra_[i].caps ? &*extra_[i].caps : nullptr;
  };
  per_node("powergrad_node_restore_failures_total", "counter",
           "Times the node's agent could not put the admin's saved settings back (since it "
           "started).",
           [&](const ClusterNodeStatus &, std::size_t i) {
             const proto::NodeCaps *c = caps_of(i);
             return c ? static_cast<double>(c->restore_failures) : kNaN;
           });

  // Each running job's figures, looked up once for both families.
  std::set<std::uint32_t> ids;
  for (const NodeExtra &x : extra_) ids.insert(x.jobs.begin(), x.jobs.end());
  std::vector<std::pair<std::string, JobFigures>> jobs;
  for (const std::uint32_t id : ids)
    if (std::optional<JobFigures> f = ledger_.figures(id))
      jobs.emplace_back("job=\"" + std::to_string(id) + "\"", std::move(*f));
  w.family("powergrad_job_energy_joules", "gauge",
           "Energy of a running power-aware job's nodes so far (shared nodes split by CPUs).");
  for (const auto &[labels_of_job, f] : jobs) w.sample(f.energy_j, labels_of_job);
  w.family("powergrad_job_average_power_watts", "gauge",
           "Average power of a running power-aware job so far.");
  for (const auto &[labels_of_job, f] : jobs) w.sample(f.avg_w, labels_of_job);

  w.family("powergrad_grants_total", "counter", "Grants sent to node agents.");
  w.sample(static_cast<double>(grants_sent_));
  w.family("powergrad_released_grants_total", "counter",
           "Grants sent between control periods: raises that waited for decreases, sent as "
           "soon as reports confirmed them.");
  w.sample(static_cast<double>(released_grants_));
  w.family("powergrad_grant_failures_total", "counter", "Grants that could not be sent.");
  w.sample(static_cast<double>(grant_failures_));
  w.family("powergrad_restore_failures_total", "counter",
           "Sum of powergrad_node_restore_failures_total over the nodes that sent their caps.");
  double restore_failures = 0.0;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (const proto::NodeCaps *c = caps_of(i))
      restore_failures += static_cast<double>(c->restore_failures);
  w.sample(restore_failures);
  w.family("powergrad_budget_changes_total", "counter",
           "Budget changes by admins (set-budget) and by the budget schedule.");
  w.sample(static_cast<double>(budget_changes_));
  w.family("powergrad_sessions_refused_total", "counter",
           "Connections closed before a session opened, by reason (the error code's name).");
  for (const auto &kv : refused_by_reason_)
    w.sample(static_cast<double>(kv.second), "reason=\"" + label(kv.first) + "\"");
  w.family("powergrad_control_periods_total", "counter", "Control periods run.");
  w.sample(static_cast<double>(periods_));
  w.family("powergrad_control_late_periods_total", "counter",
           "Control periods that began more than half a period late.");
  w.sample(static_cast<double>(late_periods_));
  w.family("powergrad_control_step_seconds", "gauge", "Duration of the last period's work.");
  w.sample(step_last_s_);
  w.family("powergrad_control_step_max_seconds", "gauge", "Longest period's work so far.");
  w.sample(step_max_s_);
  w.family("powergrad_connections", "gauge", "Open connections (node agents and admin commands).");
  w.sample(static_cast<double>(endpoint_.connection_count()));
  return w.str();
}

}  // namespace powergrad
