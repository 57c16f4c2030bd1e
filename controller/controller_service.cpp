#include "controller/controller_service.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

namespace powergrad {

namespace {

constexpr std::uint64_t kAllJobsViewer = ~std::uint64_t{0};
constexpr std::size_t kMaxCachedStatuses = 256;

double clock_s(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string json_string(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// A wall-clock time (seconds since the epoch) to the millisecond: %.6g would print
// 1.8e+09, which is a time only to within days.
std::string json_time(double t) {
  if (!std::isfinite(t)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", t);
  return buf;
}

std::string watts(double w) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f W", w);
  return buf;
}

}  // namespace

double SystemServiceClock::monotonic_s() { return clock_s(CLOCK_MONOTONIC); }
double SystemServiceClock::wall_s() { return clock_s(CLOCK_REALTIME); }

ControllerService::ControllerService(ServiceSettings settings, ClusterController controller,
                                     proto::ControllerEndpoint &endpoint, ServiceClock &clock,
                                     JobPowerLedger &ledger, ServiceLog log)
    : settings_(std::move(settings)),
      controller_(std::move(controller)),
      endpoint_(endpoint),
      clock_(clock),
      log_(std::move(log)),
      ledger_(ledger),
      extra_(controller_.size()) {
  if (!std::isfinite(settings_.config_budget_w)) settings_.config_budget_w = controller_.budget_w();
  restore_budget();
}

std::optional<double> ControllerService::scheduled_now(double wall_s) const {
  if (!settings_.schedule) return std::nullopt;
  return settings_.schedule->budget_at(static_cast<long>(std::floor(wall_s)));
}

void ControllerService::restore_budget() {
  if (settings_.budget_state_path.empty()) return;
  std::string err;
  const std::optional<RuntimeBudget> saved = read_runtime_budget(settings_.budget_state_path, &err);
  if (!err.empty()) {
    log(ServiceLogLevel::error, "run-time budget not restored: " + err);
    return;
  }
  const double wall = clock_.wall_s();
  const std::optional<double> sched = scheduled_now(wall);
  const BudgetRestore d = decide_budget_restore(saved, settings_.config_budget_w,
                                                settings_.schedule.has_value(), sched);
  switch (d.action) {
    case BudgetRestore::Action::none:
      return;
    case BudgetRestore::Action::drop: {
      log(ServiceLogLevel::info, d.message);
      const std::string e = remove_runtime_budget(settings_.budget_state_path);
      if (!e.empty()) log(ServiceLogLevel::error, e);
      return;
    }
    case BudgetRestore::Action::apply: {
      const std::string e = controller_.set_budget(d.budget_w, wall);
      if (!e.empty()) {
        log(ServiceLogLevel::error, "run-time budget " + watts(d.budget_w) + " from " +
                                        settings_.budget_state_path + " refused: " + e +
                                        "; dropped");
        const std::string re = remove_runtime_budget(settings_.budget_state_path);
        if (!re.empty()) log(ServiceLogLevel::error, re);
        return;
      }
      log(ServiceLogLevel::info, d.message);
      runtime_budget_ = saved;
      budget_origin_ = "run-time";
      // The schedule's current value is already accounted for: it takes over again only at
      // its next change.
      if (sched) last_scheduled_w_ = sched;
      return;
    }
  }
}

void ControllerService::log(ServiceLogLevel level, const std::string &msg) const {
  if (log_) log_(level, msg);
}

void ControllerService::run_once(int max_wait_ms, std::vector<pollfd> *extra) {
  try {
    const double mono = clock_.monotonic_s();
    int wait_ms = max_wait_ms;
    const double until_period_ms = (next_period_mono_s_ - mono) * 1000.0;
    if (until_period_ms < wait_ms) wait_ms = std::max(0, static_cast<int>(std::ceil(until_period_ms)));
    handle(endpoint_.poll_once(mono, wait_ms, extra));
    flush_peer_log();
    release_confirmed();
    const double after = clock_.monotonic_s();
    if (after >= next_period_mono_s_) {
      if (periods_ > 0 && after - next_period_mono_s_ > 0.5 * settings_.period_s) ++late_periods_;
      // The next period is one period after this one was due, not after it ran, so periods
      // do not drift; after a long stall, it restarts from now.
      next_period_mono_s_ += settings_.period_s;
      if (next_period_mono_s_ <= after) next_period_mono_s_ = after + settings_.period_s;
      period();
      step_last_s_ = std::max(0.0, clock_.monotonic_s() - after);
      step_max_s_ = std::max(step_max_s_, step_last_s_);
      step_sum_s_ += step_last_s_;
    }
  } catch (const std::exception &e) {
    log(ServiceLogLevel::error, std::string("controller round failed: ") + e.what());
  } catch (...) {
    log(ServiceLogLevel::error, "controller round failed");
  }
}

void ControllerService::log_peer_event(ServiceLogLevel level, const std::string &kind,
                                       const std::string &msg) {
  if (peer_log_.admit(kind, msg, clock_.monotonic_s(), static_cast<int>(level))) log(level, msg);
}

void ControllerService::log_node_event(ServiceLogLevel level, const std::string &kind,
                                       const std::string &msg) {
  if (node_log_.admit(kind, msg, clock_.monotonic_s(), static_cast<int>(level))) log(level, msg);
}

void ControllerService::flush_peer_log() {
  for (const LogSummary::Line &line : peer_log_.flush(clock_.monotonic_s()))
    log(static_cast<ServiceLogLevel>(line.tag), line.text);
  for (const LogSummary::Line &line : node_log_.flush(clock_.monotonic_s()))
    log(static_cast<ServiceLogLevel>(line.tag), line.text);
}

void ControllerService::handle(const std::vector<proto::ControllerEvent> &events) {
  using Kind = proto::ControllerEvent::Kind;
  // Events an unauthenticated peer or an ordinary user can cause at will are summarised
  // (log_summary.hpp); those of nodes and admins are logged one by one.
  auto trusted = [](const proto::PeerIdentity &p) {
    return p.role == proto::PeerRole::node || p.may_admin;
  };
  for (const proto::ControllerEvent &e : events) {
    // A node that connects or goes shows in status at once ("connected"), not a period later.
    if ((e.kind == Kind::session_opened || e.kind == Kind::session_closed) &&
        e.peer.role == proto::PeerRole::node)
      status_cache_.clear();
    switch (e.kind) {
      case Kind::session_opened: {
        const std::string msg =
            std::string(proto::role_name(e.peer.role)) + " session opened: " + e.peer.name +
            " uid " + std::to_string(e.peer.uid) + " from " + e.address +
            (e.peer.role == proto::PeerRole::admin
                 ? (e.peer.may_admin ? " (may change the budget)" : " (read only)")
                 : "");
        if (e.peer.role == proto::PeerRole::node) {
          log_node_event(ServiceLogLevel::info, "node session opened", msg);
          // Its reports are ordered from this session on (the transport keeps one session
          // per node): an agent that started with an older incarnation is heard too.
          if (controller_.new_session(e.peer.name, e.peer.incarnation))
            log(ServiceLogLevel::error,
                "node " + e.peer.name + ": its agent's incarnation (start time, " +
                    std::to_string(e.peer.incarnation) +
                    " us) is older than its last report's: its clock stepped back across a "
                    "restart, or another agent reports as this node; taking the reports of "
                    "its newest session");
        } else if (trusted(e.peer)) {
          log(ServiceLogLevel::info, msg);
        } else {
          log_peer_event(ServiceLogLevel::info,
                         "read-only session opened by uid " + std::to_string(e.peer.uid), msg);
        }
        break;
      }
      case Kind::message:
        on_message(e);
        break;
      case Kind::request_denied:
        log_peer_event(ServiceLogLevel::error,
                       "set-budget refused for uid " + std::to_string(e.peer.uid),
                       "set-budget refused: uid " + std::to_string(e.peer.uid) + " from " +
                           e.address + " is not an admin user");
        break;
      case Kind::session_closed: {
        // A peer that broke the protocol (framing, payload, MAC, sequence, authentication:
        // codes below 500) is an error whatever its role; an admin command that simply
        // hangs up is routine.
        const auto code = static_cast<unsigned>(e.status.code);
        const bool violation = code >= 100 && code < 500;
        const ServiceLogLevel level = violation ? ServiceLogLevel::error
                                      : e.peer.role == proto::PeerRole::node
                                          ? ServiceLogLevel::info
                                          : ServiceLogLevel::debug;
        const std::string msg = std::string(proto::role_name(e.peer.role)) +
                                " session closed: " + e.peer.name + " from " + e.address + ": " +
                                e.status.to_string();
        if (e.peer.role == proto::PeerRole::node) {
          log_node_event(
              level, std::string("node session closed: ") + proto::errc_name(e.status.code), msg);
        } else if (trusted(e.peer)) {
          log(level, msg);
        } else {
          log_peer_event(level,
                         "read-only session of uid " + std::to_string(e.peer.uid) +
                             " closed: " + proto::errc_name(e.status.code),
                         msg);
        }
        break;
      }
      case Kind::refused:
        ++refused_by_reason_[proto::errc_name(e.status.code)];
        log_peer_event(ServiceLogLevel::error,
                       std::string("refused: ") + proto::errc_name(e.status.code),
                       "connection from " + e.address + " refused: " + e.status.to_string());
        break;
      case Kind::endpoint_error:
        log_peer_event(ServiceLogLevel::error,
                       std::string("endpoint: ") + proto::errc_name(e.status.code),
                       "endpoint: " + e.status.to_string());
        break;
    }
  }
}

void ControllerService::on_message(const proto::ControllerEvent &e) {
  const double wall = clock_.wall_s();
  if (const auto *caps = std::get_if<proto::NodeCaps>(&e.message)) {
    // Only for `powergrad status`: the node's reports carry the range its grants must fit.
    const std::size_t index = controller_.node_index(caps->node);
    if (index == kNoIndex) return;  // its report is refused
    NodeExtra &x = extra_[index];
    if (!x.caps || *x.caps != *caps) {
      // The agent re-sends its caps at each failed restore (retried every period): logged
      // when something else changed, or when failures start.
      proto::NodeCaps before = x.caps ? *x.caps : proto::NodeCaps{};
      before.restore_failures = caps->restore_failures;
      if (!x.caps || before != *caps || (x.caps->restore_failures == 0 && caps->restore_failures))
        log(ServiceLogLevel::info,
            "node " + caps->node + " caps: " + proto::to_string(caps->backend) +
                (caps->backend == proto::CapsBackend::none ? " (monitor): " + caps->reason : "") +
                ", counters: " + proto::to_string(caps->counters) +
                ", energy: " + proto::to_string(caps->energy) +
                (caps->clamps ? ", " + std::to_string(caps->clamps) + " clamp(s)" : "") +
                (caps->restore_failures ? ", " + std::to_string(caps->restore_failures) +
                                              " failed restore(s) of the admin's settings"
                                        : ""));
      status_cache_.clear();
    }
    x.caps = *caps;
    return;
  }
  if (const auto *report = std::get_if<NodeReport>(&e.message)) {
    const std::size_t index = controller_.node_index(report->node);
    if (index == kNoIndex) {
      // Not in the groups: not in the budget. The agent is told, so that it gives the node
      // its admin's settings back instead of holding a lease that will never come.
      const std::string why = "node '" + report->node +
                              "' is in no group of powergrad.conf: it is not managed (not in "
                              "the budget)";
      if (!unmanaged_seen_.count(report->node))
        log(ServiceLogLevel::info, why + "; its agent is told to give it back its settings");
      unmanaged_seen_[report->node] = wall;
      endpoint_.close(e.connection, proto::Status::error(proto::Errc::not_managed, why));
      return;
    }
    const double bound_before = controller_.in_force_bound_w(index, wall);
    const std::string err = controller_.on_report(*report, wall, index);
    if (!err.empty()) {
      // Logged once per distinct reason per node, not once per period.
      std::string &last = last_report_error_[report->node];
      if (last != err) log(ServiceLogLevel::error, "report from " + report->node + " refused: " + err);
      last = err;
      return;
    }
    last_report_error_.erase(report->node);
    // A report that confirms lower caps frees watts that raises may be waiting for.
    const double bound_after = controller_.in_force_bound_w(index, wall);
    if (bound_after < bound_before) slack_freed_ = true;
    // Caps above everything this controller granted the node (rebooted with its firmware's
    // caps, an admin's write): the node is lowered at once, not at the next period.
    if (bound_after > bound_before &&
        bound_after > controller_.granted_w(index) + 1e-6)
      step_early_ = true;
    NodeExtra &x = extra_[index];
    x.ledger_slot = ledger_.on_report(*report, wall, x.ledger_slot);
    double sum = 0.0;
    std::size_t n = 0;
    x.jobs.clear();
    for (const JobSummary &s : report->jobs) {
      if (s.valid && std::isfinite(s.speedup_per_w)) {
        sum += s.speedup_per_w;
        ++n;
      }
      if (auto id = job_id_of_key(s.job)) x.jobs.push_back(*id);
    }
    std::sort(x.jobs.begin(), x.jobs.end());
    x.jobs.erase(std::unique(x.jobs.begin(), x.jobs.end()), x.jobs.end());
    x.gradient_known = n > 0;
    x.gradient = n > 0 ? sum / static_cast<double>(n) : 0.0;
    x.lease_ours = report->lease_epoch == controller_.config().epoch && report->lease_seq != 0;
    x.lease_expires_at_s = report->lease_expires_at_s;
    return;
  }
  if (std::holds_alternative<proto::AdminStatusRequest>(e.message)) {
    StatusViewer viewer;
    viewer.uid = e.peer.uid;
    viewer.all_jobs = !settings_.private_jobs || e.peer.may_admin ||
                      (settings_.sees_all_jobs && settings_.sees_all_jobs(e.peer.uid));
    const proto::Status st = endpoint_.send(e.connection, proto::AdminStatus{status_for(viewer)});
    if (!st.ok()) {
      log_peer_event(ServiceLogLevel::error,
                     std::string("cannot send status: ") + proto::errc_name(st.code),
                     "cannot send status to " + e.address + ": " + st.to_string());
    }
    return;
  }
  if (const auto *req = std::get_if<proto::AdminSetBudget>(&e.message)) {
    proto::AdminResult result;
    if (!e.peer.may_admin) {
      // The endpoint answers these itself; kept as a second line of defence.
      result.code = static_cast<std::uint16_t>(proto::AdminCode::permission_denied);
      result.message = "permission denied: uid " + std::to_string(e.peer.uid) + " is not an admin user";
    } else {
      const double old_w = controller_.budget_w();
      const std::string err = controller_.set_budget(req->budget_w, wall);
      if (err.empty()) {
        ++budget_changes_;
        result.code = static_cast<std::uint16_t>(proto::AdminCode::ok);
        result.message = "budget set to " + watts(req->budget_w) + " (was " + watts(old_w) + ")";
        budget_origin_ = "run-time";
        status_cache_.clear();  // the admin's next status shows the new budget
        RuntimeBudget rb;
        rb.budget_w = req->budget_w;
        rb.config_budget_w = settings_.config_budget_w;
        rb.uid = e.peer.uid;
        rb.set_at_s = wall;
        if (settings_.schedule) rb.scheduled_w = scheduled_now(wall);
        runtime_budget_ = rb;
        if (!settings_.budget_state_path.empty()) {
          const std::string werr = write_runtime_budget(settings_.budget_state_path, rb);
          if (!werr.empty()) result.message += "; not saved for a restart: " + werr;
        }
        log(ServiceLogLevel::info, result.message + " by uid " + std::to_string(e.peer.uid) +
                                       " from " + e.address);
      } else {
        result.code = static_cast<std::uint16_t>(proto::AdminCode::invalid);
        result.message = "budget " + watts(req->budget_w) + " refused: " + err;
        log(ServiceLogLevel::error, result.message + " (uid " + std::to_string(e.peer.uid) + ")");
      }
    }
    const proto::Status st = endpoint_.send(e.connection, result);
    if (!st.ok()) {
      log_peer_event(ServiceLogLevel::error,
                     std::string("cannot answer: ") + proto::errc_name(st.code),
                     "cannot answer " + e.address + ": " + st.to_string());
    }
    return;
  }
}

void ControllerService::apply_schedule(double wall_s) {
  if (!settings_.schedule) return;
  const std::optional<double> w = settings_.schedule->budget_at(static_cast<long>(std::floor(wall_s)));
  if (!w || (last_scheduled_w_ && *last_scheduled_w_ == *w)) return;
  last_scheduled_w_ = w;
  const double old_w = controller_.budget_w();
  if (old_w == *w) {
    budget_origin_ = "schedule";
    if (runtime_budget_) {
      runtime_budget_.reset();
      if (!settings_.budget_state_path.empty()) (void)remove_runtime_budget(settings_.budget_state_path);
    }
    return;
  }
  const std::string err = controller_.set_budget(*w, wall_s);
  if (err.empty()) {
    ++budget_changes_;
    log(ServiceLogLevel::info, "budget set to " + watts(*w) + " by the schedule " +
                                   settings_.schedule_path + " (was " + watts(old_w) + ")");
    budget_origin_ = "schedule";
    if (runtime_budget_) {
      // The schedule's change ends the admin's run-time budget, here and after a restart.
      runtime_budget_.reset();
      if (!settings_.budget_state_path.empty()) {
        const std::string re = remove_runtime_budget(settings_.budget_state_path);
        if (!re.empty()) log(ServiceLogLevel::error, re);
      }
    }
  } else {
    log(ServiceLogLevel::error, "scheduled budget " + watts(*w) + " from " +
                                    settings_.schedule_path + " refused: " + err);
  }
}

void ControllerService::period() {
  const double wall = clock_.wall_s();
  ++periods_;
  status_cache_.clear();
  apply_schedule(wall);
  controller_.step(wall, step_grants_);
  if (!controller_.last_step_error().empty() && periods_ % 60 == 1) {
    log(ServiceLogLevel::error, "allocation: " + controller_.last_step_error());
  }
  send_grants(step_grants_);
  // The step used every report so far.
  slack_freed_ = false;
  step_early_ = false;
  ledger_.sample(wall, [this](const std::string &node) {
    const std::size_t i = controller_.node_index(node);
    return i == kNoIndex ? std::numeric_limits<double>::quiet_NaN() : controller_.granted_w(i);
  });
  if (periods_ % 60 == 0) {
    std::set<std::uint32_t> known;
    const bool have = settings_.known_jobs && settings_.known_jobs(known);
    ledger_.prune(wall, settings_.forget_jobs_after_s, have ? &known : nullptr);
  }
}

void ControllerService::send_grants(const std::vector<GrantMessage> &grants) {
  for (const GrantMessage &g : grants) {
    const proto::ConnectionId c = endpoint_.node_connection(g.node);
    if (c == 0) continue;
    const proto::Status st = endpoint_.send(c, g);
    ++(st.ok() ? grants_sent_ : grant_failures_);
    if (!st.ok())
      log_node_event(ServiceLogLevel::error,
                     std::string("grant not sent: ") + proto::errc_name(st.code),
                     "cannot send grant to " + g.node + ": " + st.to_string());
  }
}

void ControllerService::release_confirmed() {
  if (!step_early_ && !(slack_freed_ && controller_.raises_waiting())) return;
  const double mono = clock_.monotonic_s();
  if (mono - last_release_mono_s_ < release_interval_s()) return;
  last_release_mono_s_ = mono;
  slack_freed_ = false;
  if (step_early_) {
    // A step lowers the node and grants every waiting raise it can as well.
    step_early_ = false;
    ++early_steps_;
    status_cache_.clear();
    controller_.step(clock_.wall_s(), step_grants_);
    send_grants(step_grants_);
    return;
  }
  const std::vector<GrantMessage> grants = controller_.release(clock_.wall_s());
  if (grants.empty()) return;
  released_grants_ += grants.size();
  status_cache_.clear();
  send_grants(grants);
}

void ControllerService::set_job_owners(std::unordered_map<std::uint32_t, std::uint32_t> owners) {
  // Refreshed every period; only viewers of their own jobs see a difference.
  if (owners != job_owners_) {
    for (auto it = status_cache_.begin(); it != status_cache_.end();)
      it = it->first == kAllJobsViewer ? std::next(it) : status_cache_.erase(it);
  }
  job_owners_ = std::move(owners);
}

const std::string &ControllerService::status_for(const StatusViewer &viewer) {
  const std::uint64_t key = viewer.all_jobs ? kAllJobsViewer : viewer.uid;
  auto it = status_cache_.find(key);
  if (it != status_cache_.end()) return it->second;
  // Bounded by the distinct uids asking within one period; a site with more than this many
  // at once pays a rebuild now and then, never unbounded memory.
  if (status_cache_.size() >= kMaxCachedStatuses) status_cache_.clear();
  ++status_builds_;
  return status_cache_.emplace(key, status_json(viewer)).first->second;
}

std::string ControllerService::status_json(const StatusViewer &viewer) const {
  const double wall = clock_.wall_s();
  const ClusterConfig &cfg = controller_.config();
  std::ostringstream o;
  o << "{\"version\":1,\"now\":" << json_time(wall)
    << ",\"budget_w\":" << json_number(controller_.budget_w())
    << ",\"scheduled_budget_w\":" << (last_scheduled_w_ ? json_number(*last_scheduled_w_) : "null")
    << ",\"budget_origin\":" << json_string(budget_origin_)
    << ",\"config_budget_w\":" << json_number(settings_.config_budget_w) << ",\"runtime_budget\":";
  if (runtime_budget_) {
    o << "{\"budget_w\":" << json_number(runtime_budget_->budget_w)
      << ",\"uid\":" << runtime_budget_->uid
      << ",\"set_at\":" << static_cast<long long>(runtime_budget_->set_at_s) << "}";
  } else {
    o << "null";
  }
  o << ",\"schedule\":" << (settings_.schedule ? json_string(settings_.schedule_path) : "null")
    << ",\"period_s\":" << json_number(cfg.period_s) << ",\"lease_s\":" << json_number(cfg.lease_s)
    << ",\"epoch\":" << cfg.epoch << ",\"plain_share\":" << json_string(to_string(cfg.plain_share))
    << ",\"in_force_w\":" << json_number(controller_.total_in_force_bound_w(wall))
    << ",\"unallocated_w\":" << json_number(controller_.unallocated_w()) << ",\"groups\":[";
  std::vector<std::size_t> group_nodes(cfg.groups.size(), 0);
  for (const ClusterNodeConfig &n : cfg.nodes) {
    if (n.group != kNoGroup) ++group_nodes[n.group];
  }
  for (std::size_t i = 0; i < cfg.groups.size(); ++i) {
    const ClusterGroupConfig &g = cfg.groups[i];
    o << (i ? "," : "") << "{\"name\":" << json_string(g.name) << ",\"parent\":"
      << (g.parent == kNoGroup ? "null" : json_string(cfg.groups[g.parent].name))
      << ",\"limit_w\":" << json_number(g.max_w)
      << ",\"in_force_w\":" << json_number(controller_.group_in_force_bound_w(i, wall))
      << ",\"nodes\":" << group_nodes[i] << "}";
  }
  o << "],\"nodes\":[";
  const std::vector<ClusterNodeStatus> nodes = controller_.status(wall);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const ClusterNodeStatus &n = nodes[i];
    const NodeExtra &x = extra_[i];
    o << (i ? "," : "") << "{\"name\":" << json_string(n.name)
      << ",\"group\":" << (n.group == kNoGroup ? "null" : json_string(cfg.groups[n.group].name))
      << ",\"connected\":" << (endpoint_.node_connection(n.name) != 0 ? "true" : "false")
      << ",\"reported\":" << (n.reported ? "true" : "false")
      << ",\"silent\":" << (n.silent ? "true" : "false")
      << ",\"floor_w\":" << json_number(n.floor_w) << ",\"max_w\":" << json_number(n.max_w)
      << ",\"idle_w\":" << json_number(n.idle_w)
      << ",\"fair_share_w\":" << json_number(n.fair_share_w) << ",\"work\":"
      << json_string(!n.reported   ? "unknown"
                     : n.idle      ? "idle"
                     : n.steerable ? "power-aware"
                                   : "plain")
      << ",\"grant_w\":" << json_number(n.granted_w) << ",\"target_w\":" << json_number(n.target_w)
      << ",\"in_force_w\":" << json_number(n.in_force_bound_w)
      << ",\"power_w\":" << json_number(n.power_w) << ",\"caps_w\":" << json_number(n.caps_w)
      << ",\"need_w\":" << json_number(n.need_w) << ",\"split\":"
      << (std::isfinite(n.level_diff) ? json_string(n.within_noise ? "even" : "gradient") : "null")
      << ",\"level_diff\":" << json_number(n.level_diff)
      << ",\"level_noise\":" << json_number(n.level_noise)
      << ",\"hysteresis\":" << json_number(n.hysteresis)
      << ",\"confirm_s\":" << json_number(n.confirm_s)
      << ",\"gradient\":" << (x.gradient_known ? json_number(x.gradient) : "null") << ",\"jobs\":[";
    bool first_job = true;
    for (const std::uint32_t id : x.jobs) {
      if (!viewer.all_jobs) {
        // PrivateData=jobs: another user's job id is not this viewer's to see.
        auto owner = job_owners_.find(id);
        if (owner == job_owners_.end() || owner->second != viewer.uid) continue;
      }
      o << (first_job ? "" : ",") << id;
      first_job = false;
    }
    o << "],\"lease_age_s\":";
    if (x.lease_ours && std::isfinite(x.lease_expires_at_s)) {
      o << json_number(std::max(0.0, wall - (x.lease_expires_at_s - cfg.lease_s)));
    } else {
      o << "null";
    }
    o << ",\"report_age_s\":"
      << (n.reported ? json_number(std::max(0.0, wall - n.last_report_s)) : "null") << ",\"caps\":";
    if (x.caps) {
      const proto::NodeCaps &c = *x.caps;
      o << "{\"backend\":" << json_string(proto::to_string(c.backend))
        << ",\"energy\":" << json_string(proto::to_string(c.energy))
        << ",\"counters\":" << json_string(proto::to_string(c.counters))
        << ",\"domains\":" << c.domains << ",\"min_w\":" << json_number(c.min_w)
        << ",\"max_w\":" << json_number(c.max_w) << ",\"clamps\":" << c.clamps
        << ",\"restore_failures\":" << c.restore_failures
        << ",\"reason\":" << (c.reason.empty() ? "null" : json_string(c.reason)) << "}";
    } else {
      o << "null";
    }
    o << "}";
  }
  // slurm.conf's nodes outside the groups, and nodes that reported but are not configured.
  std::set<std::string> unmanaged(settings_.unmanaged_nodes.begin(),
                                  settings_.unmanaged_nodes.end());
  for (const auto &kv : unmanaged_seen_) unmanaged.insert(kv.first);
  o << "],\"unmanaged\":[";
  bool first = true;
  for (const std::string &u : unmanaged) {
    o << (first ? "" : ",") << "{\"name\":" << json_string(u) << ",\"connected_at\":";
    auto it = unmanaged_seen_.find(u);
    o << (it == unmanaged_seen_.end() ? "null" : json_time(it->second)) << "}";
    first = false;
  }
  const ListenState &ls = settings_.listen;
  const bool failed = ls.failed_attempts > 0;
  o << "],\"jobs_shown\":" << (viewer.all_jobs ? "\"all\"" : "\"own\"");
  o << ",\"listen\":{\"address\":" << json_string(ls.address)
    << ",\"since\":" << json_time(ls.listening_since_s)
    << ",\"failed_attempts\":" << ls.failed_attempts
    << ",\"failing_since\":" << (failed ? json_time(ls.failing_since_s) : "null")
    << ",\"last_error\":" << (failed ? json_string(ls.last_error) : "null") << "}";
  o << ",\"config_refused\":" << (config_refused_.empty() ? "null" : json_string(config_refused_));
  char loop[256];
  std::snprintf(loop, sizeof loop,
                ",\"loop\":{\"periods\":%llu,\"late_periods\":%llu,\"step_last_ms\":%.3f,"
                "\"step_mean_ms\":%.3f,\"step_max_ms\":%.3f,\"connections\":%zu,"
                "\"released_grants\":%llu,\"early_steps\":%llu}}",
                static_cast<unsigned long long>(periods_),
                static_cast<unsigned long long>(late_periods_), step_last_s_ * 1e3,
                periods_ > 0 ? step_sum_s_ * 1e3 / static_cast<double>(periods_) : 0.0,
                step_max_s_ * 1e3, endpoint_.connection_count(),
                static_cast<unsigned long long>(released_grants_),
                static_cast<unsigned long long>(early_steps_));
  o << loop;
  return o.str();
}

}  // namespace powergrad
