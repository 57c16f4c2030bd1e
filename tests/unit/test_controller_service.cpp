// The controller's service loop (controller/controller_service.hpp) without
// slurmctld: a real ControllerEndpoint on loopback, the fake munge, a fake clock, and
// ClientEndpoints playing a node agent and admin commands of different uids.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

// Check after the standard headers: its fail() macro breaks <istream>.
#include <check.h>

#include "controller/controller_service.hpp"
#include "libgradient/gain_curve.hpp"
#include "protocol/client_endpoint.hpp"
#include "protocol/controller_endpoint.hpp"
#include "protocol/fake_auth.hpp"
#include "protocol/frame.hpp"
#include "protocol/handshake.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tools/admin.hpp"
#include "tools/json.hpp"

using namespace powergrad;
using namespace powergrad::proto;

namespace {

constexpr uid_t kSlurmUid = 64030;
constexpr uid_t kUserUid = 1000;
constexpr uid_t kAdminUid = 1001;

struct FakeClock : ServiceClock {
  double mono = 100.0;
  double wall = 1.8e9;
  double monotonic_s() override { return mono; }
  double wall_s() override { return wall; }
};

ClusterConfig two_nodes(double budget_w) {
  ClusterConfig c;
  c.budget_w = budget_w;
  c.period_s = 1.0;
  c.lease_s = 5.0;
  c.epoch = 7;
  c.groups.push_back({"rack1", 500.0, kNoGroup});
  c.nodes.push_back({"n1", 50.0, 300.0, 0});
  c.nodes.push_back({"n2", 50.0, 300.0, kNoGroup});
  return c;
}

struct Harness {
  std::shared_ptr<FakeMungeRealm> realm = std::make_shared<FakeMungeRealm>(300.0);
  FakeAuthenticator ctl_auth{realm, kSlurmUid, kSlurmUid};
  FakeAuthenticator root{realm, 0, 0};
  FakeAuthenticator user{realm, kUserUid, 100};
  FakeAuthenticator admin{realm, kAdminUid, 100};
  FakeClock clock;
  JobPowerLedger ledger;
  std::unique_ptr<ControllerEndpoint> endpoint;
  std::unique_ptr<ControllerService> service;
  std::vector<std::string> logs;
  std::vector<ServiceLogLevel> levels;  // of each line in logs
  std::string port;
  std::vector<std::unique_ptr<ClientEndpoint>> clients;
  std::vector<std::vector<ClientEvent>> events;

  explicit Harness(ServiceSettings settings = {}, double budget_w = 400.0) {
    ControllerConfig ec;
    ec.listen_host = "127.0.0.1";
    ec.listen_port = "0";
    ec.policy = ServerPolicy::standard(kSlurmUid, {kAdminUid});
    ck_assert_msg(ControllerEndpoint::open(ec, ctl_auth, endpoint).ok(), "endpoint opens");
    port = std::to_string(endpoint->port());
    service = std::make_unique<ControllerService>(
        settings, ClusterController(two_nodes(budget_w)), *endpoint, clock, ledger,
        [this](ServiceLogLevel level, const std::string &m) {
          logs.push_back(m);
          levels.push_back(level);
        });
  }

  std::size_t client(Authenticator &auth, PeerRole role, const std::string &name,
                     std::uint64_t incarnation = 5) {
    ClientConfig c;
    c.host = "127.0.0.1";
    c.port = port;
    c.hello.role = role;
    c.hello.name = name;
    c.hello.incarnation = incarnation;
    c.hello.controller_uids = {0, kSlurmUid};
    c.jitter_seed = 1 + clients.size();
    clients.push_back(std::make_unique<ClientEndpoint>(c, auth));
    events.emplace_back();
    return clients.size() - 1;
  }

  void step() {
    clock.mono += 0.01;
    clock.wall += 0.01;
    realm->set_now(clock.mono);
    for (std::size_t i = 0; i < clients.size(); ++i)
      for (ClientEvent &e : clients[i]->poll_once(clock.mono, 2)) events[i].push_back(std::move(e));
    service->run_once(2);
  }

  bool run_until(const std::function<bool()> &done, int max_steps = 600) {
    for (int i = 0; i < max_steps; ++i) {
      if (done()) return true;
      step();
    }
    return done();
  }

  template <class T>
  const T *message(std::size_t c, std::size_t nth = 0) {
    for (const ClientEvent &e : events[c]) {
      if (e.kind != ClientEvent::Kind::message) continue;
      if (const T *m = std::get_if<T>(&e.message)) {
        if (nth-- == 0) return m;
      }
    }
    return nullptr;
  }

  bool logged(const std::string &part) const {
    for (const std::string &l : logs)
      if (pgtest::contains(l, part)) return true;
    return false;
  }
  // The level of the first line holding `part` (info if none).
  ServiceLogLevel level_of(const std::string &part) const {
    for (std::size_t i = 0; i < logs.size(); ++i)
      if (pgtest::contains(logs[i], part)) return levels[i];
    return ServiceLogLevel::info;
  }

  json::Value status_as(Authenticator &auth) {
    const std::size_t c = client(auth, PeerRole::admin, "login1");
    ck_assert(run_until([&] { return clients[c]->established(); }));
    ck_assert(clients[c]->send(AdminStatusRequest{}).ok());
    ck_assert(run_until([&] { return message<AdminStatus>(c) != nullptr; }));
    std::string err;
    auto v = json::parse(message<AdminStatus>(c)->json, &err);
    ck_assert_msg(v.has_value(), "status JSON parses: %s", err.c_str());
    return *v;
  }

  AdminResult set_budget_as(Authenticator &auth, double w) {
    const std::size_t c = client(auth, PeerRole::admin, "login1");
    ck_assert(run_until([&] { return clients[c]->established(); }));
    ck_assert(clients[c]->send(AdminSetBudget{w}).ok());
    ck_assert(run_until([&] { return message<AdminResult>(c) != nullptr; }));
    return *message<AdminResult>(c);
  }
};

NodeReport report_from(const std::string &node, std::uint64_t seq, const GrantMessage *lease,
                       double now_s, std::uint64_t incarnation = 5) {
  NodeReport r;
  r.node = node;
  r.incarnation = incarnation;
  r.report_seq = seq;
  r.sent_at_s = now_s;
  if (lease) {
    r.lease_epoch = lease->epoch;
    r.lease_seq = lease->seq;
    r.lease_grant_w = lease->grant_w;
    r.lease_expires_at_s = lease->expires_at_s;
  }
  r.effective_grant_w = lease ? lease->grant_w : 50.0;
  r.min_w = 50.0;
  r.max_w = 300.0;
  r.need_w = 80.0;
  r.caps_w = r.effective_grant_w;
  r.power_w = 100.0;
  r.idle = false;
  r.steerable = true;
  r.demand = GainCurve::linear(0.01, 220.0);
  JobSummary j;
  j.job = "42.0";
  j.mode = JobMode::latency;
  j.counters = CounterKind::software;
  j.speedup_per_w = 0.004;
  j.valid = true;
  r.jobs.push_back(j);
  return r;
}

}  // namespace

START_TEST(status_is_open_to_every_uid) {
  Harness h;
  const json::Value s = h.status_as(h.user);
  ck_assert(s.num("budget_w").has_value());
  ck_assert_double_eq_tol(*s.num("budget_w"), 400.0, 1e-9);
  const json::Value *nodes = s.get("nodes");
  ck_assert_ptr_nonnull(nodes);
  ck_assert_uint_eq(nodes->array.size(), 2);
  ck_assert_std_str_eq(nodes->array[0].str("name"), "n1");
  ck_assert_std_str_eq(nodes->array[0].str("group"), "rack1");
  ck_assert(nodes->array[1].get("group")->is_null());
  const json::Value *groups = s.get("groups");
  ck_assert_uint_eq(groups->array.size(), 1);
  ck_assert_double_eq_tol(*groups->array[0].num("limit_w"), 500.0, 1e-9);
  ck_assert(h.logged("admin session opened: login1 uid 1000"));
}
END_TEST

START_TEST(set_budget_by_admin_and_root_changes_the_budget) {
  Harness h;
  AdminResult r = h.set_budget_as(h.admin, 250.0);
  ck_assert_uint_eq(r.code, static_cast<unsigned>(AdminCode::ok));
  ck_assert_contains(r.message, "budget set to 250.0 W (was 400.0 W)");
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 250.0, 1e-9);
  r = h.set_budget_as(h.root, 300.0);
  ck_assert_uint_eq(r.code, static_cast<unsigned>(AdminCode::ok));
  const json::Value s = h.status_as(h.user);
  ck_assert_double_eq_tol(*s.num("budget_w"), 300.0, 1e-9);
  ck_assert(h.logged("budget set to 300.0 W (was 250.0 W) by uid 0"));
}
END_TEST

START_TEST(set_budget_by_others_is_refused) {
  Harness h;
  const AdminResult r = h.set_budget_as(h.user, 100.0);
  ck_assert_uint_eq(r.code, static_cast<unsigned>(AdminCode::permission_denied));
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 400.0, 1e-9);
  ck_assert(h.run_until([&] { return h.logged("set-budget refused: uid 1000"); }));
}
END_TEST

START_TEST(set_budget_below_the_floors_is_invalid) {
  Harness h;
  const AdminResult r = h.set_budget_as(h.admin, 60.0);
  ck_assert_uint_eq(r.code, static_cast<unsigned>(AdminCode::invalid));
  ck_assert_contains(r.message, "budget 60.0 W refused: ");
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 400.0, 1e-9);
}
END_TEST

START_TEST(reports_in_grants_out_figures_kept) {
  Harness h;
  const std::size_t node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.clients[node]->established(); }));
  ck_assert(h.clients[node]->send(report_from("n1", 1, nullptr, h.clock.wall)).ok());
  // Grants every period: the node gets at least two, each within the budget.
  ck_assert(h.run_until([&] { return h.message<GrantMessage>(node, 1) != nullptr; }, 400));
  const GrantMessage g = *h.message<GrantMessage>(node, 1);
  ck_assert_std_str_eq(g.node, "n1");
  ck_assert_uint_eq(g.epoch, 7);
  ck_assert(g.grant_w >= 50.0 && g.grant_w <= 400.0);
  ck_assert(h.service->periods() >= 2);
  // Confirm the lease: status shows power, gradient, job and the lease's age.
  ck_assert(h.clients[node]->send(report_from("n1", 2, &g, h.clock.wall)).ok());
  ck_assert(h.run_until([&] {
    auto f = h.ledger.figures(42);
    return f && f->samples >= 2 && f->energy_j > 0;
  }));
  const json::Value s = h.status_as(h.user);
  const json::Value &n1 = s.get("nodes")->array[0];
  ck_assert_double_eq_tol(*n1.num("power_w"), 100.0, 1e-9);
  ck_assert_double_eq_tol(*n1.num("gradient"), 0.004, 1e-12);
  ck_assert_uint_eq(n1.get("jobs")->array.size(), 1);
  ck_assert_double_eq(n1.get("jobs")->array[0].number, 42.0);
  ck_assert(n1.num("lease_age_s").has_value());
  ck_assert(n1.get("connected")->boolean);
  const JobFigures f = *h.ledger.figures(42);
  ck_assert_std_str_eq(f.counters, "software");
  ck_assert_double_eq_tol(f.avg_w, 100.0, 1e-6);
  ck_assert_double_eq_tol(f.gradient, 0.004, 1e-12);
}
END_TEST

// NODE_CAPS: what a node can do shows in status (JSON and table), a monitor-only node with
// its reason, a node whose agent sent none with "?"; a change is logged, a repeat is not.
START_TEST(node_capabilities_show_in_status) {
  Harness h;
  const std::size_t node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.clients[node]->established(); }));
  {
    const std::string table = format_status_table(h.status_as(h.user));
    ck_assert_contains(table, "? : no capability report yet");
    ck_assert(h.status_as(h.user).get("nodes")->array[0].get("caps")->type ==
              json::Value::Type::null);
  }
  NodeCaps c;
  c.node = "n1";
  c.backend = CapsBackend::hsmp_hwmon;
  c.energy = CapsEnergy::powercap;
  c.counters = CapsCounters::hardware;
  c.domains = 2;
  c.min_w = 180.0;
  c.max_w = 800.0;
  c.clamps = 2;
  ck_assert(h.clients[node]->send(c).ok());
  ck_assert(h.clients[node]->send(report_from("n1", 1, nullptr, h.clock.wall)).ok());
  ck_assert(h.run_until([&] { return h.logged("node n1 caps: hsmp-hwmon"); }));
  const json::Value s = h.status_as(h.user);
  const json::Value *caps = s.get("nodes")->array[0].get("caps");
  ck_assert_std_str_eq(caps->str("backend"), "hsmp-hwmon");
  ck_assert_std_str_eq(caps->str("energy"), "powercap");
  ck_assert_std_str_eq(caps->str("counters"), "hardware");
  ck_assert_double_eq_tol(*caps->num("max_w"), 800.0, 1e-9);
  ck_assert_double_eq_tol(*caps->num("clamps"), 2.0, 1e-9);
  ck_assert_double_eq_tol(*caps->num("restore_failures"), 0.0, 1e-9);
  const std::string table = format_status_table(s);
  ck_assert_contains(table, "hsmp-hwmon");
  ck_assert_contains(table, "180.0..800.0");
  ck_assert_contains(table, "CLAMPS  RESTORE_FAILS");
  // The same again is not logged again. Failed restores of the admin's settings are when
  // they start, not at each one more (the agent re-sends its caps after every failed
  // restore), and show in status either way.
  ck_assert(h.clients[node]->send(c).ok());
  c.restore_failures = 4;
  ck_assert(h.clients[node]->send(c).ok());
  ck_assert(
      h.run_until([&] { return h.logged("2 clamp(s), 4 failed restore(s) of the admin's"); }));
  c.restore_failures = 5;
  ck_assert(h.clients[node]->send(c).ok());
  const auto restore_failures_shown = [&]() -> double {
    std::string err;
    const std::optional<json::Value> v = json::parse(h.service->status_json(), &err);
    ck_assert_msg(v.has_value(), "%s", err.c_str());
    const json::Value *cv = v->get("nodes")->array[0].get("caps");
    return cv->type == json::Value::Type::object ? *cv->num("restore_failures") : -1.0;
  };
  ck_assert(h.run_until([&] { return restore_failures_shown() == 5.0; }));
  {
    const json::Value s5 = h.status_as(h.user);
    ck_assert_double_eq_tol(*s5.get("nodes")->array[0].get("caps")->num("restore_failures"), 5.0,
                            1e-9);
    const std::string t5 = format_status_table(s5);
    const std::size_t row = t5.find("\nn1    hsmp-hwmon");
    ck_assert_msg(row != std::string::npos, "%s", t5.c_str());
    const std::string line = t5.substr(row + 1, t5.find('\n', row + 1) - row - 1);
    ck_assert_msg(line.size() > 2 && line.substr(line.size() - 2) == " 5", "row: %s", line.c_str());
  }
  // A change (monitor mode, why) is logged, and shows.
  c.backend = CapsBackend::none;
  c.min_w = c.max_w = 0.0;
  c.clamps = 0;
  c.reason = "permission: /sys/class/hwmon/hwmon1/power1_cap: not writable";
  ck_assert(h.clients[node]->send(c).ok());
  ck_assert(h.run_until([&] { return h.logged("node n1 caps: none (monitor): permission"); }));
  ck_assert_contains(format_status_table(h.status_as(h.user)),
                     "n1: cannot cap: permission: /sys/class/hwmon/hwmon1/power1_cap");
  int logged = 0;
  for (const std::string &l : h.logs) logged += pgtest::contains(l, "node n1 caps: ");
  ck_assert_int_eq(logged, 3);
  // Capabilities for another node on this session: refused, the session closed.
  c.node = "n2";
  ck_assert(!h.clients[node]->send(c).ok());
}
END_TEST

// A node that is not in the configuration is not managed: its session is closed with
// not_managed (its agent then gives the node its admin's settings back), logged once however
// often it comes back, and status lists it apart from the managed nodes.
START_TEST(an_unmanaged_node_is_told_and_listed_apart) {
  Harness h;
  for (std::uint64_t round = 1; round <= 2; ++round) {
    const std::size_t node = h.client(h.root, PeerRole::node, "n9");
    ck_assert(h.run_until([&] { return h.clients[node]->established(); }));
    ck_assert(h.clients[node]->send(report_from("n9", round, nullptr, h.clock.wall)).ok());
    const auto closed = [&] {
      for (const ClientEvent &e : h.events[node])
        if (e.status.code == Errc::not_managed) return true;
      return false;
    };
    ck_assert(h.run_until(closed));
    ck_assert(!h.clients[node]->established());
  }
  for (int i = 0; i < 20; ++i) h.step();
  int n = 0;
  for (const std::string &l : h.logs)
    n += pgtest::contains(l, "node 'n9' is in no group of powergrad.conf: it is not managed");
  ck_assert_int_eq(n, 1);
  std::string err;
  auto s = json::parse(h.service->status_json(), &err);
  ck_assert_msg(s.has_value(), "%s", err.c_str());
  const json::Value *um = s->get("unmanaged");
  ck_assert(um != nullptr && um->array.size() == 1);
  ck_assert_std_str_eq(um->array[0].str("name"), "n9");
  for (const json::Value &x : s->get("nodes")->array) ck_assert(x.str("name") != "n9");
}
END_TEST

START_TEST(a_refused_report_is_logged_once) {
  Harness h;
  const std::size_t node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.clients[node]->established(); }));
  // Not newer than the last one: refused, logged once for that reason.
  ck_assert(h.clients[node]->send(report_from("n1", 5, nullptr, h.clock.wall)).ok());
  ck_assert(h.clients[node]->send(report_from("n1", 5, nullptr, h.clock.wall)).ok());
  ck_assert(h.run_until([&] { return h.logged("report from n1 refused"); }));
  // Older numbers of the same incarnation are the same reason: not logged again.
  ck_assert(h.clients[node]->send(report_from("n1", 3, nullptr, h.clock.wall)).ok());
  ck_assert(h.clients[node]->send(report_from("n1", 4, nullptr, h.clock.wall)).ok());
  for (int i = 0; i < 50; ++i) h.step();
  int n = 0;
  for (const std::string &l : h.logs) n += pgtest::contains(l, "report from n1 refused");
  ck_assert_int_eq(n, 1);
}
END_TEST

// An agent restarted with an older incarnation (its clock stepped back): its new session's
// reports are taken (they were refused for the agent's whole life), and the admin is told.
START_TEST(a_new_session_with_an_older_incarnation_is_heard) {
  Harness h;
  const std::size_t old_agent = h.client(h.root, PeerRole::node, "n1", 5000);
  ck_assert(h.run_until([&] { return h.clients[old_agent]->established(); }));
  ck_assert(h.clients[old_agent]->send(report_from("n1", 40, nullptr, h.clock.wall, 5000)).ok());
  for (int i = 0; i < 20; ++i) h.step();
  ck_assert(!h.logged("report from n1 refused"));
  ck_assert(!h.logged("incarnation"));
  const std::size_t agent = h.client(h.root, PeerRole::node, "n1", 3000);
  ck_assert(h.run_until([&] { return h.clients[agent]->established(); }));
  NodeReport r = report_from("n1", 1, nullptr, h.clock.wall, 3000);
  r.caps_w = r.effective_grant_w = r.lease_grant_w = 280.0;  // found at its maximum
  ck_assert(h.clients[agent]->send(r).ok());
  ck_assert(h.clients[agent]->send(report_from("n1", 2, nullptr, h.clock.wall, 3000)).ok());
  for (int i = 0; i < 20; ++i) h.step();
  ck_assert(h.logged("node n1: its agent's incarnation (start time, 3000 us) is older"));
  ck_assert(h.level_of("its agent's incarnation") == ServiceLogLevel::error);
  ck_assert_msg(!h.logged("report from n1 refused"), "a report of the new session refused");
  // A repeat within the session is still refused.
  ck_assert(h.clients[agent]->send(report_from("n1", 2, nullptr, h.clock.wall, 3000)).ok());
  ck_assert(h.run_until([&] { return h.logged("report from n1 refused"); }));
}
END_TEST

START_TEST(the_schedule_sets_the_budget_when_it_changes) {
  ServiceSettings st;
  ScheduleResult sr = parse_budget_schedule("2020-01-01T00:00 350\n", "sched.conf");
  ck_assert_msg(sr.schedule.has_value(), "%s", sr.error.c_str());
  st.schedule = sr.schedule;
  st.schedule_path = "sched.conf";
  Harness h(st);
  ck_assert(h.run_until([&] { return h.service->periods() >= 1; }));
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 350.0, 1e-9);
  ck_assert(h.logged("budget set to 350.0 W by the schedule sched.conf (was 400.0 W)"));
  // An admin's budget holds until the schedule changes again.
  ck_assert_uint_eq(h.set_budget_as(h.admin, 200.0).code, static_cast<unsigned>(AdminCode::ok));
  const std::uint64_t p = h.service->periods();
  ck_assert(h.run_until([&] { return h.service->periods() >= p + 2; }));
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 200.0, 1e-9);
  const json::Value s = h.status_as(h.user);
  ck_assert_double_eq_tol(*s.num("scheduled_budget_w"), 350.0, 1e-9);
  ck_assert_std_str_eq(s.str("schedule"), "sched.conf");
}
END_TEST

// A raw admin session of `auth`'s uid on a blocking-free socket, driven by h.step().
std::string budget_state_path() {
  char tmpl[] = "/tmp/pg-budget-XXXXXX";
  const char *d = mkdtemp(tmpl);
  ck_assert(d != nullptr);
  return std::string(d) + "/powergrad/budget";
}

START_TEST(a_run_time_budget_survives_a_restart) {
  ServiceSettings st;
  st.budget_state_path = budget_state_path();
  {
    Harness h(st);
    ck_assert_uint_eq(h.set_budget_as(h.admin, 250.0).code, static_cast<unsigned>(AdminCode::ok));
    ck_assert_int_eq(access(st.budget_state_path.c_str(), R_OK), 0);
  }
  // Restart with the same powergrad.conf Budget (400 W): the admin's 250 W applies again.
  Harness h(st);
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 250.0, 1e-9);
  ck_assert(h.logged("budget 250 W set at run time by uid 1001 at "));
  ck_assert(h.logged(" still applies; powergrad.conf says 400 W"));
  const json::Value s = h.status_as(h.user);
  ck_assert_double_eq_tol(*s.num("budget_w"), 250.0, 1e-9);
  ck_assert_std_str_eq(s.str("budget_origin"), "run-time");
  ck_assert_double_eq_tol(*s.num("config_budget_w"), 400.0, 1e-9);
  ck_assert(s.get("runtime_budget") && s.get("runtime_budget")->num("uid") &&
            *s.get("runtime_budget")->num("uid") == kAdminUid);
}
END_TEST

START_TEST(a_changed_config_budget_drops_the_run_time_budget) {
  ServiceSettings st;
  st.budget_state_path = budget_state_path();
  {
    Harness h(st);
    ck_assert_uint_eq(h.set_budget_as(h.admin, 250.0).code, static_cast<unsigned>(AdminCode::ok));
  }
  Harness h(st, 450.0);  // powergrad.conf now says 450 W
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 450.0, 1e-9);
  ck_assert(h.logged("powergrad.conf's Budget changed from 400 W to 450 W since, the configuration wins"));
  ck_assert_int_ne(access(st.budget_state_path.c_str(), F_OK), 0);
  const json::Value st2 = h.status_as(h.user);
  ck_assert_std_str_eq(st2.str("budget_origin"), "config");
}
END_TEST

START_TEST(a_run_time_budget_under_a_schedule_holds_until_its_next_change) {
  ServiceSettings st;
  st.budget_state_path = budget_state_path();
  ScheduleResult sr = parse_budget_schedule("2020-01-01T00:00 350\n", "sched.conf");
  ck_assert(sr.schedule.has_value());
  st.schedule = sr.schedule;
  st.schedule_path = "sched.conf";
  {
    Harness h(st);
    ck_assert(h.run_until([&] { return h.service->periods() >= 1; }));
    ck_assert_uint_eq(h.set_budget_as(h.admin, 200.0).code, static_cast<unsigned>(AdminCode::ok));
  }
  {
    // Same schedule value: restored, and the schedule does not override it at start.
    Harness h(st);
    ck_assert(h.run_until([&] { return h.service->periods() >= 3; }));
    ck_assert_double_eq_tol(h.service->controller().budget_w(), 200.0, 1e-9);
    ck_assert(h.logged("budget 200 W set at run time by uid 1001"));
  }
  // The schedule has moved on (a later entry now applies): the schedule wins.
  sr = parse_budget_schedule("2020-01-01T00:00 350\n2030-01-01T00:00 320\n", "sched.conf");
  st.schedule = sr.schedule;
  Harness h(st);
  h.clock.wall = 1.95e9;  // 2031
  ck_assert(h.run_until([&] { return h.service->periods() >= 2; }));
  // The restore ran in the constructor, at 1.8e9 (before 2030): value 350 then and now, so
  // it applied; the schedule's change to 320 W then ended it and removed the state file.
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 320.0, 1e-9);
  ck_assert_int_ne(access(st.budget_state_path.c_str(), F_OK), 0);
}
END_TEST

START_TEST(a_state_file_that_cannot_be_written_is_reported_to_the_admin) {
  ServiceSettings st;
  st.budget_state_path = "/proc/no/such/budget";
  Harness h(st);
  const AdminResult r = h.set_budget_as(h.admin, 250.0);
  ck_assert_uint_eq(r.code, static_cast<unsigned>(AdminCode::ok));
  ck_assert_contains(r.message, "not saved for a restart: cannot create /proc/no");
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 250.0, 1e-9);
}
END_TEST

START_TEST(periods_record_each_jobs_series_with_its_grant) {
  Harness h;
  const std::size_t n1 = h.client(h.ctl_auth, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.clients[n1]->established(); }));
  for (std::uint64_t seq = 1; seq <= 4; ++seq) {
    const std::uint64_t p = h.service->periods();
    ck_assert(h.clients[n1]->send(report_from("n1", seq, nullptr, h.clock.wall)).ok());
    ck_assert(h.run_until([&] { return h.service->periods() >= p + 1; }));
  }
  const std::vector<SeriesPoint> pts = h.ledger.series(42).points();
  ck_assert_uint_ge(pts.size(), 3);
  ck_assert_double_eq_tol(pts.back().power_w, 100.0, 1e-9);
  ck_assert_double_eq_tol(pts.back().cap_w, 50.0, 1e-9);
  ck_assert(std::isfinite(pts.back().grant_w));
  ck_assert_double_gt(pts.back().grant_w, 0.0);
}
END_TEST

struct RawSession {
  int fd = -1;
  SecureChannel channel;
  ~RawSession() {
    if (fd >= 0) close(fd);
  }
};

void open_raw_session(Harness &h, Authenticator &auth, RawSession &s) {
  s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(h.port)));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(s.fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ClientParams p;
  p.role = PeerRole::admin;
  p.name = "login1";
  p.controller_uids = {0, kSlurmUid};
  ClientHandshake hs(p);
  h.step();  // the fake munge's clock follows the harness's
  std::string hello;
  ck_assert(hs.start(auth, hello).ok());
  ck_assert_int_eq(send(s.fd, hello.data(), hello.size(), MSG_NOSIGNAL), (ssize_t)hello.size());
  std::string in;
  char buf[65536];
  FrameHeader fh;
  ck_assert(h.run_until([&] {
    ssize_t n = recv(s.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) in.append(buf, static_cast<std::size_t>(n));
    return in.size() >= kHeaderSize &&
           parse_header(reinterpret_cast<const std::uint8_t *>(in.data()), in.size(), fh).ok() &&
           in.size() >= frame_size(fh.payload_len);
  }));
  SessionInfo info;
  const Status st =
      hs.finish(auth, reinterpret_cast<const std::uint8_t *>(in.data()), in.size(), s.channel, info);
  ck_assert_msg(st.ok(), "WELCOME: %s", st.to_string().c_str());
}

START_TEST(protocol_violations_are_logged_as_errors) {
  Harness h;
  // A frame replayed in an admin session: the session is dropped and that is an error,
  // although routine admin session ends are debug lines.
  RawSession s;
  open_raw_session(h, h.user, s);
  std::string req;
  ck_assert(s.channel.seal(AdminStatusRequest{}, req).ok());
  ck_assert_int_eq(send(s.fd, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
  ck_assert_int_eq(send(s.fd, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
  ck_assert(h.run_until([&] { return h.logged("admin session closed: login1"); }));
  ck_assert(h.logged(": replayed: "));
  ck_assert(h.level_of("admin session closed: login1") == ServiceLogLevel::error);
  // An admin command that simply hangs up: a debug line.
  RawSession t;
  open_raw_session(h, h.user, t);
  close(t.fd);
  t.fd = -1;
  ck_assert(h.run_until([&] {
    std::size_t n = 0;
    for (const std::string &l : h.logs) n += pgtest::contains(l, "admin session closed: login1");
    return n == 2;
  }));
  std::size_t seen = 0;
  for (std::size_t i = 0; i < h.logs.size(); ++i) {
    if (!pgtest::contains(h.logs[i], "admin session closed: login1")) continue;
    if (++seen == 2) ck_assert(h.levels[i] == ServiceLogLevel::debug);
  }
}
END_TEST

// Issue 11: status showed every node's job ids to any user, whatever slurm.conf's
// PrivateData says. With PrivateData=jobs a user sees the ids of their own jobs only;
// PowerGrad's admins and Slurm's operators (sees_all_jobs) see all.
START_TEST(private_data_jobs_shows_users_their_own_job_ids_only) {
  constexpr uid_t kOtherUid = 2000, kOperatorUid = 3000;
  ServiceSettings st;
  st.private_jobs = true;
  st.sees_all_jobs = [](std::uint32_t uid) { return uid == kOperatorUid; };
  Harness h(st);
  FakeAuthenticator other{h.realm, kOtherUid, 100};
  FakeAuthenticator op{h.realm, kOperatorUid, 100};
  h.service->set_job_owners({{42, kUserUid}, {43, kOtherUid}});  // 44: owner not known yet
  const std::size_t node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.clients[node]->established(); }));
  NodeReport r = report_from("n1", 1, nullptr, h.clock.wall);
  for (const char *job : {"43.0", "44.0"}) {
    JobSummary j = r.jobs[0];
    j.job = job;
    r.jobs.push_back(j);
  }
  ck_assert(h.clients[node]->send(r).ok());
  auto jobs_of = [&](Authenticator &auth, std::string *shown = nullptr) {
    const json::Value s = h.status_as(auth);
    if (shown) *shown = s.str("jobs_shown");
    std::string ids;
    for (const json::Value &id : s.get("nodes")->array[0].get("jobs")->array)
      ids += (ids.empty() ? "" : ",") + std::to_string(static_cast<long>(id.number));
    return ids;
  };
  ck_assert(h.run_until([&] { return jobs_of(h.root) == "42,43,44"; }, 200));
  std::string shown;
  ck_assert_std_str_eq(jobs_of(h.root, &shown), "42,43,44");
  ck_assert_std_str_eq(shown, "all");
  ck_assert_std_str_eq(jobs_of(h.admin), "42,43,44");  // AdminUsers
  ck_assert_std_str_eq(jobs_of(op), "42,43,44");       // a Slurm operator
  ck_assert_std_str_eq(jobs_of(h.user, &shown), "42");
  ck_assert_std_str_eq(shown, "own");
  ck_assert_std_str_eq(jobs_of(other), "43");
  const std::string table = format_status_table(h.status_as(h.user));
  ck_assert_contains(table, "JOBS lists your own jobs only (slurm.conf has PrivateData=jobs)");
  // The rest of the node's line is everyone's: power, grant, work.
  ck_assert_contains(table, "power-aware");
  // Without PrivateData=jobs everyone sees every id, as before.
  h.service->set_private_jobs(false);
  ck_assert_std_str_eq(jobs_of(h.user, &shown), "42,43,44");
  ck_assert_std_str_eq(shown, "all");
}
END_TEST

// Issue 11: garbage HELLOs and a non-admin's set-budget flood made one log line each
// (slurmctld's log grew by tens of MB in seconds). Now the first of each kind is logged and
// the rest summarised once per 10 s.
START_TEST(floods_from_peers_are_summarised_in_the_log) {
  Harness h;
  const std::size_t before = h.logs.size();
  // 200 connections that send garbage instead of a HELLO.
  for (int i = 0; i < 200; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(h.port)));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    const std::string garbage(64, 'G');
    ck_assert_int_eq(send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL), 64);
    h.step();
    close(fd);
  }
  // 200 set-budget requests of an ordinary user on one session, at 10 a second: as fast as
  // the endpoint lets one uid ask (faster closes the session: rate_limited).
  RawSession s;
  open_raw_session(h, h.user, s);
  for (int i = 0; i < 200; ++i) {
    std::string req;
    ck_assert(s.channel.seal(AdminSetBudget{100.0 + i}, req).ok());
    ck_assert_int_eq(send(s.fd, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
    h.clock.mono += 0.1;
    h.step();
  }
  for (int i = 0; i < 50; ++i) h.step();
  ck_assert_double_eq_tol(h.service->controller().budget_w(), 400.0, 1e-9);
  // The rest is counted and said once its interval ends.
  h.clock.mono += 10.0;
  h.step();
  // Each event is in the log once: in full (the first of an interval) or counted in a
  // summary line.
  std::size_t refused = 0, denied = 0, full_refused = 0, full_denied = 0;
  for (std::size_t i = before; i < h.logs.size(); ++i) {
    const std::string &l = h.logs[i];
    if (!pgtest::contains(l, " more like this in the last ")) {
      full_refused += pgtest::contains(l, "refused: bad_magic");
      full_denied += pgtest::contains(l, "set-budget refused: uid 1000");
      continue;
    }
    const std::size_t n = std::stoul(l.substr(0, l.find(' ')));
    if (pgtest::contains(l, "refused: bad_magic")) refused += n;
    if (pgtest::contains(l, "set-budget refused: uid 1000")) denied += n;
  }
  ck_assert_uint_eq(full_refused, 1);
  ck_assert_uint_eq(refused, 199);
  ck_assert_uint_ge(full_denied, 1);
  ck_assert_uint_le(full_denied, 4);  // 20 s of requests: a few 10 s intervals
  ck_assert_uint_eq(full_denied + denied, 200);
  ck_assert_uint_le(h.logs.size() - before, 20);
}
END_TEST

// Issue 11: every status request built the whole status JSON (a walk over every node), so
// sessions asking in a loop cost slurmctld in proportion. Now it is built at most once per
// period for each kind of viewer, and again at once after an admin's change.
START_TEST(status_is_built_once_per_period_for_each_viewer) {
  ServiceSettings st;
  st.private_jobs = true;
  Harness h(st);
  constexpr int kSessions = 4;  // 3 rounds: within one uid's burst of requests
  std::vector<std::size_t> users, admins;
  for (int i = 0; i < kSessions; ++i) {
    users.push_back(h.client(h.user, PeerRole::admin, "login1"));
    admins.push_back(h.client(h.root, PeerRole::admin, "login1"));
  }
  ck_assert(h.run_until([&] {
    for (std::size_t c = 0; c < h.clients.size(); ++c)
      if (!h.clients[c]->established()) return false;
    return true;
  }));
  // Just after a period, so that no period falls between the requests.
  const std::uint64_t p0 = h.service->periods();
  ck_assert(h.run_until([&] { return h.service->periods() > p0; }, 200));
  const std::uint64_t builds0 = h.service->status_builds();
  const std::uint64_t period = h.service->periods();
  for (int round = 0; round < 3; ++round) {
    for (std::size_t c : users) ck_assert(h.clients[c]->send(AdminStatusRequest{}).ok());
    for (std::size_t c : admins) ck_assert(h.clients[c]->send(AdminStatusRequest{}).ok());
    ck_assert(h.run_until(
        [&] {
          for (std::size_t c = 0; c < h.clients.size(); ++c)
            if (!h.message<AdminStatus>(c, round)) return false;
          return true;
        },
        50));
  }
  ck_assert_uint_eq(h.service->periods(), period);
  // 24 answers, two builds: one for the user's own view, one for the view of all jobs.
  ck_assert_uint_eq(h.service->status_builds() - builds0, 2);
  auto now_of = [&](std::size_t c, std::size_t nth) {
    std::string err;
    auto v = json::parse(h.message<AdminStatus>(c, nth)->json, &err);
    ck_assert(v.has_value());
    return *v->num("now");
  };
  ck_assert_double_eq(now_of(users[0], 0), now_of(users[3], 2));
  ck_assert_std_str_eq(h.message<AdminStatus>(users[0], 0)->json,
                       h.message<AdminStatus>(users[3], 1)->json);
  ck_assert(h.message<AdminStatus>(users[0], 0)->json !=
            h.message<AdminStatus>(admins[0], 0)->json);
  // A new period builds it again, with a later "now".
  ck_assert(h.run_until([&] { return h.service->periods() > period; }, 200));
  ck_assert(h.clients[users[0]]->send(AdminStatusRequest{}).ok());
  ck_assert(h.run_until([&] { return h.message<AdminStatus>(users[0], 3) != nullptr; }, 50));
  ck_assert(now_of(users[0], 3) > now_of(users[0], 2));
  // "now" to the millisecond (it was printed as 1.8e+09: a time only to within days).
  ck_assert_double_eq_tol(now_of(users[0], 3), h.clock.wall, 2.0);
  ck_assert_uint_eq(h.service->status_builds() - builds0, 3);
  // An admin's change shows at once, within the period.
  const std::uint64_t period2 = h.service->periods();
  const AdminResult r = h.set_budget_as(h.admin, 250.0);
  ck_assert_uint_eq(r.code, static_cast<unsigned>(AdminCode::ok));
  ck_assert(h.clients[users[1]]->send(AdminStatusRequest{}).ok());
  ck_assert(h.run_until([&] { return h.message<AdminStatus>(users[1], 3) != nullptr; }, 50));
  std::string err;
  auto v = json::parse(h.message<AdminStatus>(users[1], 3)->json, &err);
  ck_assert(v.has_value());
  ck_assert_uint_eq(h.service->periods(), period2);
  ck_assert_double_eq_tol(*v->num("budget_w"), 250.0, 1e-9);
}
END_TEST

// The Prometheus text (metrics_text): every family has one HELP and one TYPE line before its
// samples, names follow the conventions (powergrad_ prefix, base units, _total counters),
// and the values are status_json's.
namespace {
// name{labels} -> value, and the families' types, from an exposition text; fails the test
// on a line that is not a comment or a sample.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::set<std::string> helps;
};
Exposition parse_exposition(const std::string &text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      ck_assert_msg(e.helps.insert(name).second, "HELP twice for %s", name.c_str());
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      ck_assert_msg(e.helps.count(name), "TYPE before HELP for %s", name.c_str());
      ck_assert_msg(e.types.emplace(name, type).second, "TYPE twice for %s", name.c_str());
      ck_assert_msg(type == "gauge" || type == "counter", "type %s", type.c_str());
      ck_assert_msg(
          (type == "counter") == (name.size() > 6 && name.substr(name.size() - 6) == "_total"),
          "counters and only counters end in _total: %s", name.c_str());
      continue;
    }
    const std::size_t sp = line.rfind(' ');
    ck_assert_msg(sp != std::string::npos, "sample line: %s", line.c_str());
    const std::string key = line.substr(0, sp);
    const std::string name = key.substr(0, key.find('{'));
    ck_assert_msg(e.types.count(name), "sample of a family without TYPE: %s", line.c_str());
    ck_assert_msg(name.rfind("powergrad_", 0) == 0, "prefix: %s", name.c_str());
    for (char c : name)
      ck_assert_msg(std::islower(static_cast<unsigned char>(c)) || c == '_', "name %s",
                    name.c_str());
    char *end = nullptr;
    const double v = std::strtod(line.c_str() + sp + 1, &end);
    ck_assert_msg(end && *end == '\0' && std::isfinite(v), "value: %s", line.c_str());
    ck_assert_msg(e.samples.emplace(key, v).second, "sample twice: %s", key.c_str());
  }
  return e;
}
}  // namespace

START_TEST(metrics_are_the_status_in_prometheus_form) {
  Harness h;
  const std::size_t node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.clients[node]->established(); }));
  ck_assert(h.clients[node]->send(report_from("n1", 1, nullptr, h.clock.wall)).ok());
  ck_assert(h.run_until([&] { return h.message<GrantMessage>(node, 1) != nullptr; }, 400));
  const GrantMessage g = *h.message<GrantMessage>(node, 1);
  ck_assert(h.clients[node]->send(report_from("n1", 2, &g, h.clock.wall)).ok());
  ck_assert(h.run_until([&] {
    auto f = h.ledger.figures(42);
    return f && f->samples >= 2 && f->energy_j > 0;
  }));
  ck_assert_uint_eq(h.set_budget_as(h.admin, 350.0).code, static_cast<unsigned>(AdminCode::ok));
  // A connection that never says HELLO properly is refused: counted by reason.
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(h.port)));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    const char junk[32] = "GET /metrics HTTP/1.0\r\n\r\n";
    ck_assert(::write(fd, junk, sizeof junk) == static_cast<ssize_t>(sizeof junk));
    ck_assert(h.run_until([&] { return h.logged("refused"); }));
    ::close(fd);
  }
  // n1's agent sent its caps: 3 failed restores of its admin's settings. n2's did not.
  NodeCaps caps;
  caps.node = "n1";
  caps.backend = CapsBackend::rapl;
  caps.energy = CapsEnergy::powercap;
  caps.counters = CapsCounters::software;
  caps.domains = 1;
  caps.min_w = 50.0;
  caps.max_w = 300.0;
  caps.restore_failures = 3;
  ck_assert(h.clients[node]->send(caps).ok());
  ck_assert(h.run_until([&] { return h.logged("node n1 caps: rapl"); }));
  // Both built now, from the same state (status_as's answer may be a period old).
  std::string err;
  const std::optional<json::Value> sv = json::parse(h.service->status_json(), &err);
  ck_assert_msg(sv.has_value(), "%s", err.c_str());
  const json::Value &s = *sv;
  const Exposition e = parse_exposition(h.service->metrics_text());
  const auto at = [&](const std::string &key) {
    const auto it = e.samples.find(key);
    ck_assert_msg(it != e.samples.end(), "no sample %s", key.c_str());
    return it->second;
  };
  ck_assert_double_eq_tol(at("powergrad_budget_watts"), 350.0, 1e-9);
  ck_assert_double_eq_tol(at("powergrad_budget_watts"), *s.num("budget_w"), 1e-3);
  ck_assert_double_eq_tol(at("powergrad_runtime_budget"), 1.0, 1e-12);
  ck_assert_double_eq_tol(at("powergrad_caps_in_force_watts"), *s.num("in_force_w"), 1e-6);
  ck_assert_double_eq_tol(at("powergrad_group_limit_watts{group=\"rack1\"}"), 500.0, 1e-9);
  const json::Value &n1 = s.get("nodes")->array[0];
  const std::string l1 = "{node=\"n1\",group=\"rack1\"}";
  ck_assert_double_eq_tol(at("powergrad_node_grant_watts" + l1), *n1.num("grant_w"),
                          1e-3);  // JSON: 6 significant digits
  ck_assert_double_eq_tol(at("powergrad_node_power_watts" + l1), 100.0, 1e-9);
  ck_assert_double_eq_tol(at("powergrad_node_gradient" + l1), 0.004, 1e-12);
  ck_assert_double_eq_tol(at("powergrad_node_connected" + l1), 1.0, 1e-12);
  ck_assert_double_eq_tol(at("powergrad_node_connected{node=\"n2\",group=\"\"}"), 0.0, 1e-12);
  // n2 never reported: its power is unknown and left out, not written as NaN.
  ck_assert(!e.samples.count("powergrad_node_power_watts{node=\"n2\",group=\"\"}"));
  ck_assert_double_eq_tol(at("powergrad_job_energy_joules{job=\"42\"}"),
                          h.ledger.figures(42)->energy_j, 1e-9);
  ck_assert(at("powergrad_grants_total") >= 2.0);
  ck_assert_double_eq_tol(at("powergrad_budget_changes_total"), 1.0, 1e-12);
  ck_assert_double_eq_tol(at("powergrad_control_periods_total"),
                          static_cast<double>(h.service->periods()), 1e-12);
  double refused = 0.0;
  for (const auto &kv : e.samples)
    if (kv.first.rfind("powergrad_sessions_refused_total{reason=", 0) == 0) refused += kv.second;
  ck_assert_double_eq_tol(refused, 1.0, 1e-12);
  // Failed restores: per node whose caps are known, and their sum.
  ck_assert_double_eq_tol(at("powergrad_node_restore_failures_total" + l1), 3.0, 1e-12);
  ck_assert_double_eq_tol(at("powergrad_node_restore_failures_total" + l1),
                          *n1.get("caps")->num("restore_failures"), 1e-12);
  ck_assert(s.get("nodes")->array[1].get("caps")->type == json::Value::Type::null);
  ck_assert(!e.samples.count("powergrad_node_restore_failures_total{node=\"n2\",group=\"\"}"));
  ck_assert_double_eq_tol(at("powergrad_restore_failures_total"), 3.0, 1e-12);
  ck_assert_str_eq(e.types.at("powergrad_grants_total").c_str(), "counter");
  ck_assert_str_eq(e.types.at("powergrad_node_restore_failures_total").c_str(), "counter");
  ck_assert_str_eq(e.types.at("powergrad_restore_failures_total").c_str(), "counter");
  ck_assert_str_eq(e.types.at("powergrad_budget_watts").c_str(), "gauge");
}
END_TEST

// Watts moved from one node to another reach the second as soon as the first confirms its
// lowered lease, not at the next period: the raise that waited for slack goes out between
// periods (ControllerService::release_confirmed), within the budget.
START_TEST(a_confirmed_decrease_is_handed_on_before_the_next_period) {
  Harness h;
  const std::size_t a = h.client(h.root, PeerRole::node, "n1");
  const std::size_t b = h.client(h.root, PeerRole::node, "n2");
  ck_assert(
      h.run_until([&] { return h.clients[a]->established() && h.clients[b]->established(); }));
  auto grants = [&](std::size_t c) {
    std::vector<GrantMessage> out;
    for (const ClientEvent &e : h.events[c])
      if (e.kind == ClientEvent::Kind::message)
        if (const GrantMessage *g = std::get_if<GrantMessage>(&e.message)) out.push_back(*g);
    return out;
  };
  auto report = [&](const std::string &node, std::uint64_t seq, const GrantMessage *lease,
                    double gradient) {
    NodeReport r = report_from(node, seq, lease, h.clock.wall);
    r.demand = GainCurve::linear(gradient, 250.0);
    r.jobs[0].speedup_per_w = gradient;
    return r;
  };
  // n1's work gains 50 times more per watt than n2's: it gets most of the 400 W.
  ck_assert(h.clients[a]->send(report("n1", 1, nullptr, 0.05)).ok());
  ck_assert(h.clients[b]->send(report("n2", 1, nullptr, 0.001)).ok());
  ck_assert(h.run_until([&] { return !grants(a).empty() && !grants(b).empty(); }, 400));
  // Then the gradients swap: each period both confirm their leases, and the controller
  // moves watts from n1 to n2 (gradually: hysteresis). Once a period lowers n1 by 5 W or
  // more, n2's raise waits for the watts n1 has not yet confirmed giving up.
  GrantMessage ga = grants(a).back(), gb = grants(b).back();
  ck_assert_msg(ga.grant_w > gb.grant_w + 50.0, "n1 %.1f W, n2 %.1f W", ga.grant_w, gb.grant_w);
  ck_assert_double_le(ga.grant_w + gb.grant_w, 400.0 + 1e-6);
  std::uint64_t seq = 2;
  GrantMessage lowered;
  bool moved = false;
  for (int period = 0; period < 20 && !moved; ++period) {
    ck_assert(h.clients[a]->send(report("n1", seq, &ga, 0.001)).ok());
    ck_assert(h.clients[b]->send(report("n2", seq, &gb, 0.05)).ok());
    ++seq;
    const std::uint64_t p0 = h.service->periods();
    const std::size_t na = grants(a).size();
    ck_assert(h.run_until([&] { return h.service->periods() > p0 && grants(a).size() > na; }, 400));
    lowered = grants(a).back();
    moved = lowered.grant_w < ga.grant_w - 5.0 && h.service->controller().raises_waiting();
    if (!moved) ga = lowered;
    gb = grants(b).back();
  }
  ck_assert_msg(moved, "n1 is lowered by 5 W within 20 periods (%.1f W)", lowered.grant_w);
  const GrantMessage waiting = grants(b).back();
  ck_assert_double_le(waiting.grant_w + ga.grant_w, 400.0 + 1e-6);
  const std::uint64_t periods = h.service->periods();
  const std::uint64_t released = h.service->released_grants();
  // n1 confirms the lowered lease: n2's raise follows in this period (it has just begun).
  const std::size_t nb = grants(b).size();
  ck_assert(h.clients[a]->send(report("n1", seq, &lowered, 0.001)).ok());
  ck_assert(h.run_until([&] { return grants(b).size() > nb; }, 80));  // < 1 period
  ck_assert_uint_eq(h.service->periods(), periods);
  const GrantMessage raised = grants(b).back();
  // It gets at least half of what n1 gave up (the rest may wait for the hysteresis).
  const double given = ga.grant_w - lowered.grant_w;
  ck_assert_msg(raised.grant_w > waiting.grant_w + 0.5 * given,
                "n2 raised: %.1f -> %.1f W (n1 gave %.1f W)", waiting.grant_w, raised.grant_w,
                given);
  ck_assert_double_le(raised.grant_w + lowered.grant_w, 400.0 + 1e-6);
  ck_assert_uint_eq(h.service->released_grants(), released + 1);
  ck_assert_double_le(h.service->controller().total_in_force_bound_w(h.clock.wall), 400.0 + 1e-6);
  // Status counts it.
  const json::Value s = h.status_as(h.root);
  ck_assert_double_eq(*s.get("loop")->num("released_grants"),
                      static_cast<double>(h.service->released_grants()));
}
END_TEST

// A node that comes back with caps above everything granted to it (rebooted: the firmware's
// maximum) is lowered at once by a step between periods, not at the next period.
START_TEST(caps_above_every_grant_are_lowered_before_the_next_period) {
  Harness h;
  std::size_t a = h.client(h.root, PeerRole::node, "n1");
  const std::size_t b = h.client(h.root, PeerRole::node, "n2");
  ck_assert(
      h.run_until([&] { return h.clients[a]->established() && h.clients[b]->established(); }));
  ck_assert(h.clients[a]->send(report_from("n1", 1, nullptr, h.clock.wall)).ok());
  ck_assert(h.clients[b]->send(report_from("n2", 1, nullptr, h.clock.wall)).ok());
  ck_assert(
      h.run_until([&] { return h.message<GrantMessage>(a) && h.message<GrantMessage>(b); }, 400));
  const GrantMessage ga = *h.message<GrantMessage>(a), gb = *h.message<GrantMessage>(b);
  ck_assert(h.clients[a]->send(report_from("n1", 2, &ga, h.clock.wall)).ok());
  ck_assert(h.clients[b]->send(report_from("n2", 2, &gb, h.clock.wall)).ok());
  const std::uint64_t p0 = h.service->periods();
  ck_assert(h.run_until([&] { return h.service->periods() > p0 + 1; }, 400));
  ck_assert_uint_eq(h.service->early_steps(), 0);  // nothing above its grants so far
  ck_assert_double_le(h.service->controller().total_in_force_bound_w(h.clock.wall), 400.0 + 1e-6);
  // n1 reboots: a new agent (incarnation 6) with the firmware's 300 W in force, no lease.
  const std::uint64_t periods = h.service->periods();
  a = h.client(h.root, PeerRole::node, "n1", 6);
  ck_assert(h.run_until([&] { return h.clients[a]->established(); }, 40));
  NodeReport r = report_from("n1", 1, nullptr, h.clock.wall, 6);
  r.caps_w = r.effective_grant_w = r.lease_grant_w = 300.0;
  ck_assert(h.clients[a]->send(r).ok());
  ck_assert(h.run_until([&] { return h.message<GrantMessage>(a) != nullptr; }, 60));
  ck_assert_uint_eq(h.service->periods(), periods);
  ck_assert_uint_eq(h.service->early_steps(), 1);
  const GrantMessage lowered = *h.message<GrantMessage>(a);
  ck_assert_msg(lowered.grant_w < 300.0 - 50.0, "lowered to %.1f W", lowered.grant_w);
  // Once it confirms, the caps that can be in force are within the budget again.
  NodeReport c = report_from("n1", 2, &lowered, h.clock.wall, 6);
  ck_assert(h.clients[a]->send(c).ok());
  ck_assert(h.run_until(
      [&] { return h.service->controller().total_in_force_bound_w(h.clock.wall) <= 400.0 + 1e-6; },
      60));
  ck_assert_uint_eq(h.service->periods(), periods);
}
END_TEST

START_TEST(periods_follow_the_clock) {
  Harness h;
  // 1 s periods on a clock stepped by 10 ms: about 1 period per 100 steps.
  for (int i = 0; i < 350; ++i) h.step();
  ck_assert_uint_ge(h.service->periods(), 3);
  ck_assert_uint_le(h.service->periods(), 5);
}
END_TEST

int main() {
  Suite *s = suite_create("controller_service");
  TCase *tc = tcase_create("service");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, status_is_open_to_every_uid);
  tcase_add_test(tc, set_budget_by_admin_and_root_changes_the_budget);
  tcase_add_test(tc, set_budget_by_others_is_refused);
  tcase_add_test(tc, set_budget_below_the_floors_is_invalid);
  tcase_add_test(tc, reports_in_grants_out_figures_kept);
  tcase_add_test(tc, a_refused_report_is_logged_once);
  tcase_add_test(tc, a_new_session_with_an_older_incarnation_is_heard);
  tcase_add_test(tc, an_unmanaged_node_is_told_and_listed_apart);
  tcase_add_test(tc, node_capabilities_show_in_status);
  tcase_add_test(tc, the_schedule_sets_the_budget_when_it_changes);
  tcase_add_test(tc, periods_follow_the_clock);
  tcase_add_test(tc, a_confirmed_decrease_is_handed_on_before_the_next_period);
  tcase_add_test(tc, caps_above_every_grant_are_lowered_before_the_next_period);
  tcase_add_test(tc, metrics_are_the_status_in_prometheus_form);
  tcase_add_test(tc, a_run_time_budget_survives_a_restart);
  tcase_add_test(tc, a_changed_config_budget_drops_the_run_time_budget);
  tcase_add_test(tc, a_run_time_budget_under_a_schedule_holds_until_its_next_change);
  tcase_add_test(tc, a_state_file_that_cannot_be_written_is_reported_to_the_admin);
  tcase_add_test(tc, periods_record_each_jobs_series_with_its_grant);
  tcase_add_test(tc, protocol_violations_are_logged_as_errors);
  tcase_add_test(tc, floods_from_peers_are_summarised_in_the_log);
  tcase_add_test(tc, private_data_jobs_shows_users_their_own_job_ids_only);
  tcase_add_test(tc, status_is_built_once_per_period_for_each_viewer);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
