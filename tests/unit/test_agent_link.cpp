// The node agent's side of the controller protocol, with a loopback ControllerEndpoint
// standing in for the cluster controller and the fake munge realm: the period's report
// arrives, a grant is applied as a lease (caps within it, confirmed by the next report), a
// lease that ends without renewal drops the node to its floor on its own, and the link
// reconnects after a controller restart. Also: the restore before a new job when the end
// of the last one was missed, "unknown" energy without powercap, and the rate-limited log
// of a restore that keeps failing.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "hardware/power_emulator.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "nodeagent/controller_link.hpp"
#include "nodeagent/job_energy.hpp"
#include "nodeagent/power_control.hpp"
#include "protocol/controller_endpoint.hpp"
#include "protocol/fake_auth.hpp"
#include "spank_powergrad/plugin_config.hpp"
#include "spank_powergrad/slurm_conf.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/agent_fixture.hpp"

using namespace powergrad;
namespace hwt = powergrad::hw::testing;

namespace {

using Node = pgtest::AgentFixture;

RegisteredStep step(uint32_t job, JobMode mode, pid_t pid) {
  return pgtest::agent_step(job, mode, pid);
}

// The controller side: a loopback endpoint with the fake realm.
struct Controller {
  std::shared_ptr<proto::FakeMungeRealm> realm;
  proto::FakeAuthenticator auth;
  std::unique_ptr<proto::ControllerEndpoint> ep;
  std::vector<NodeReport> reports;
  std::vector<proto::NodeCaps> caps;
  // Behaves as an older controller: closes the session on NODE_CAPS with this code
  // (bad_type: older than NODE_CAPS; trailing_bytes: older than its restore_failures field).
  bool old_version = false;
  proto::Errc refusal = proto::Errc::bad_type;
  int opened = 0, closed = 0;

  explicit Controller(std::shared_ptr<proto::FakeMungeRealm> r)
      : realm(std::move(r)), auth(realm, 0, 0) {}
  void open(const std::string &port = "0") {
    proto::ControllerConfig cc;
    cc.listen_host = "127.0.0.1";
    cc.listen_port = port;
    cc.policy = proto::ServerPolicy::standard(0);
    const proto::Status s = proto::ControllerEndpoint::open(cc, auth, ep);
    ck_assert_msg(s.ok(), "%s", s.to_string().c_str());
  }
  void poll(double now_s) {
    if (!ep) return;
    for (const proto::ControllerEvent &e : ep->poll_once(now_s, 2)) {
      if (e.kind == proto::ControllerEvent::Kind::session_opened) ++opened;
      if (e.kind == proto::ControllerEvent::Kind::session_closed) ++closed;
      if (e.kind == proto::ControllerEvent::Kind::message) {
        if (const auto *r = std::get_if<NodeReport>(&e.message)) reports.push_back(*r);
        if (const auto *c = std::get_if<proto::NodeCaps>(&e.message)) {
          caps.push_back(*c);
          if (old_version)
            ep->close(e.connection, proto::Status::error(refusal, "NODE_CAPS refused"));
        }
      }
    }
  }
  void grant(const GrantMessage &g) {
    const proto::ConnectionId id = ep->node_connection("n1");
    ck_assert_uint_ne(id, 0);
    const proto::Status s = ep->send(id, proto::Message{g});
    ck_assert_msg(s.ok(), "%s", s.to_string().c_str());
  }
};

ControllerLinkConfig link_config(std::uint16_t port) {
  ControllerLinkConfig lc;
  lc.host = "127.0.0.1";
  lc.port = std::to_string(port);
  lc.node_name = "n1";
  lc.incarnation = 7;
  lc.controller_uids = {0};
  lc.backoff.initial_s = 0.1;
  lc.backoff.max_s = 0.4;
  lc.jitter_seed = 3;
  return lc;
}

// Both ends take turns for `rounds` rounds at monotonic time *mono (advanced 10 ms each);
// grants the link receives are collected.
std::vector<GrantMessage> pump(ControllerLink &link, Controller &ctl, double *mono, int rounds) {
  std::vector<GrantMessage> grants;
  for (int i = 0; i < rounds; ++i) {
    for (const GrantMessage &g : link.poll(*mono, 2)) grants.push_back(g);
    ctl.poll(*mono);
    *mono += 0.01;
  }
  return grants;
}

bool pump_until(ControllerLink &link, Controller &ctl, double *mono,
                bool (*done)(ControllerLink &, Controller &)) {
  for (int i = 0; i < 400; ++i) {
    pump(link, ctl, mono, 1);
    if (done(link, ctl)) return true;
  }
  return false;
}

bool session_up(ControllerLink &link, Controller &ctl) {
  return link.connected() && ctl.ep && ctl.ep->node_connection("n1") != 0;
}

// A node whose link has an open session with a loopback controller (fake realm), and the
// clocks a test advances: mono for the link, wall (seconds since the epoch) for leases.
struct Linked {
  Node n;
  std::shared_ptr<proto::FakeMungeRealm> realm = std::make_shared<proto::FakeMungeRealm>();
  Controller ctl{realm};
  proto::FakeAuthenticator node_auth{realm, 0, 0};
  std::uint16_t port = 0;
  std::unique_ptr<ControllerLink> link;
  double mono = 0.0;
  double wall = 1.0e9;

  Linked() {
    ctl.open();
    port = ctl.ep->port();
    link = std::make_unique<ControllerLink>(link_config(port), node_auth, n.logger());
    ck_assert(pump_until(*link, ctl, &mono, session_up));
  }
  // One agent period of 1 s: the emulator advances, the period runs, its report goes to the
  // controller (after the first period, which only starts the measurements, the caps in
  // force without measurements: NodeController::announce).
  void period(PowerControl &pc, const std::vector<RegisteredStep> &steps) {
    ck_assert(n.emu->advance(1.0).ok());
    wall += 1.0;
    pc.period(steps, wall - 1.0e9, wall);
    if (pc.last_report()) ck_assert(link->send_report(*pc.last_report()));
    pump(*link, ctl, &mono, 5);
  }
};

}  // namespace

START_TEST(report_grant_lease_expiry_and_reconnect) {
  Linked t;
  Node &n = t.n;
  Controller &ctl = t.ctl;
  ControllerLink &link = *t.link;
  double &mono = t.mono;
  double &wall = t.wall;  // the lease clock (wall-clock seconds)
  const std::uint16_t port = t.port;
  ck_assert_int_eq(ctl.opened, 1);
  ck_assert_int_ge(n.count("connected to the controller at 127.0.0.1:" + std::to_string(port)), 1);

  // Periods under the static grant (250 W): each report arrives at the controller.
  auto pc = n.control(250.0, 7);
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  auto period = [&]() { t.period(*pc, steps); };
  for (int i = 0; i < 4; ++i) period();
  ck_assert_uint_ge(ctl.reports.size(), 3);
  const NodeReport &r0 = ctl.reports.back();
  ck_assert_std_str_eq(r0.node, "n1");
  ck_assert_uint_eq(r0.incarnation, 7);
  ck_assert_uint_eq(r0.lease_epoch, 0);  // no grant from a controller yet
  ck_assert(r0.caps_w <= 250.0 + 1e-6);
  ck_assert(!r0.jobs.empty());
  ck_assert_uint_eq(link.reports_sent(), 4);
  // The first: the caps in force and the jobs, nothing measured; the need is the maximum.
  const NodeReport &first = ctl.reports.front();
  ck_assert(std::isnan(first.power_w));
  ck_assert(!first.idle && !first.steerable);
  ck_assert_uint_eq(first.jobs.size(), 2);
  ck_assert(!first.jobs[0].valid && !first.jobs[1].valid);
  ck_assert_double_eq(first.need_w, first.max_w);
  ck_assert(first.caps_w <= 250.0 + 1e-6);

  // A grant of 150 W: taken as the lease; the caps fit it from the next period on, and the
  // report after it confirms the lease and the lowered caps.
  GrantMessage g;
  g.node = "n1";
  g.grant_w = 150.0;
  g.floor_w = 110.0;
  g.lease_s = 5.0;
  g.expires_at_s = wall + 5.0;
  g.epoch = 1;
  g.seq = 1;
  ctl.grant(g);
  std::vector<GrantMessage> got = pump(link, ctl, &mono, 10);
  ck_assert_uint_eq(got.size(), 1);
  ck_assert_uint_eq(link.grants_received(), 1);
  ck_assert_std_str_eq(pc->on_grant(got[0], wall), "");
  ck_assert_int_eq(n.count("controller grant on n1: lease (1, 1): grant 150.0 W, floor 110.0 W"),
                   1);
  period();
  ck_assert_msg(n.caps_sum_w() <= 150.0 + 1e-6, "caps %f", n.caps_sum_w());
  const NodeReport &r1 = ctl.reports.back();
  ck_assert_uint_eq(r1.lease_epoch, 1);
  ck_assert_uint_eq(r1.lease_seq, 1);
  ck_assert(!r1.lease_expired);
  ck_assert_msg(r1.caps_w <= 150.0 + 1e-6 && std::fabs(r1.caps_w - n.caps_sum_w()) < 1e-3,
                "report caps %f, in force %f", r1.caps_w, n.caps_sum_w());
  // The same grant again (a duplicate) is refused and changes nothing.
  ck_assert(!pc->on_grant(got[0], wall).empty());

  // No renewal: once the lease ends, the node falls to its floor on its own.
  for (int i = 0; i < 3; ++i) {
    period();
    ck_assert(n.caps_sum_w() <= 150.0 + 1e-6);
  }
  for (int i = 0; i < 3; ++i) period();
  ck_assert_msg(n.caps_sum_w() <= 110.0 + 1e-6, "caps after the lease %f", n.caps_sum_w());
  ck_assert(ctl.reports.back().lease_expired);
  ck_assert(ctl.reports.back().caps_w <= 110.0 + 1e-6);

  // The controller restarts: the link notices, backs off, and opens a new session on the
  // new endpoint at the same address; reports flow again.
  ctl.ep.reset();
  for (int i = 0; i < 20 && link.connected(); ++i) pump(link, ctl, &mono, 1);
  ck_assert(!link.connected());
  ck_assert_int_ge(n.count("lost the controller at 127.0.0.1:"), 1);
  ck_assert(!link.send_report(*pc->last_report()));  // dropped, not queued
  ctl.open(std::to_string(port));
  ck_assert(pump_until(link, ctl, &mono, session_up));
  ck_assert_uint_eq(link.sessions_opened(), 2);
  const std::size_t before = ctl.reports.size();
  period();
  ck_assert_uint_eq(ctl.reports.size(), before + 1);
  // The restarted controller's grant (a new epoch) replaces the expired lease.
  g.epoch = 2;
  g.seq = 1;
  g.grant_w = 180.0;
  g.expires_at_s = wall + 5.0;
  ctl.grant(g);
  got = pump(link, ctl, &mono, 10);
  ck_assert_uint_eq(got.size(), 1);
  ck_assert_std_str_eq(pc->on_grant(got[0], wall), "");
  period();
  ck_assert_uint_eq(ctl.reports.back().lease_epoch, 2);
  ck_assert(!ctl.reports.back().lease_expired);
  ck_assert(n.caps_sum_w() <= 180.0 + 1e-6);
  pc->shutdown();
}
END_TEST

// A grant below the caps in force is obeyed at once, before the next period: on_grant
// lowers the caps in the tree and leaves a report confirming the new lease, which reaches the
// controller; a grant that raises the watts is used at once the same way (no cap lowered).
START_TEST(grant_change_is_obeyed_at_once_and_confirmed) {
  Linked t;
  Node &n = t.n;
  Controller &ctl = t.ctl;
  ControllerLink &link = *t.link;
  double &mono = t.mono;
  double &wall = t.wall;
  auto pc = n.control(400.0, 7);
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::throughput, 101)};
  auto period = [&]() { t.period(*pc, steps); };
  // Nothing to enforce before the first decision.
  for (int i = 0; i < 5; ++i) period();
  ck_assert(!pc->take_urgent_report());
  const double high = n.caps_sum_w();
  ck_assert_msg(high > 200.0, "caps before the drop %f", high);
  const std::uint64_t seq_before = ctl.reports.back().report_seq;
  const std::size_t reports_before = ctl.reports.size();

  GrantMessage g;
  g.node = "n1";
  g.grant_w = 150.0;
  g.floor_w = 110.0;
  g.lease_s = 30.0;
  g.expires_at_s = wall + 30.0;
  g.epoch = 1;
  g.seq = 4;
  ctl.grant(g);
  std::vector<GrantMessage> got = pump(link, ctl, &mono, 10);
  ck_assert_uint_eq(got.size(), 1);
  ck_assert_std_str_eq(pc->on_grant(got[0], wall), "");
  // In the tree now, no period in between.
  ck_assert_msg(n.caps_sum_w() <= 150.0 + 1e-6, "caps after the drop %f", n.caps_sum_w());
  ck_assert(n.cap_w(0) >= 0.0 && n.cap_w(1) >= 0.0);
  std::optional<NodeReport> urgent = pc->take_urgent_report();
  ck_assert(urgent.has_value());
  ck_assert(!pc->take_urgent_report());  // taken once
  ck_assert_uint_eq(urgent->lease_epoch, 1);
  ck_assert_uint_eq(urgent->lease_seq, 4);
  ck_assert_uint_gt(urgent->report_seq, seq_before);
  ck_assert_msg(std::fabs(urgent->caps_w - n.caps_sum_w()) < 1e-3, "report %f, in force %f",
                urgent->caps_w, n.caps_sum_w());
  ck_assert_int_eq(n.count("grant on n1 lowered to 150.0 W: caps lowered at once"), 1);
  ck_assert(link.send_report(*urgent));
  pump(link, ctl, &mono, 5);
  ck_assert_uint_eq(ctl.reports.size(), reports_before + 1);
  ck_assert_uint_eq(ctl.reports.back().lease_seq, 4);
  ck_assert(ctl.reports.back().caps_w <= 150.0 + 1e-6);
  // The following period keeps within the grant and its report comes after the urgent one.
  period();
  ck_assert(n.caps_sum_w() <= 150.0 + 1e-6);
  ck_assert_uint_gt(ctl.reports.back().report_seq, urgent->report_seq);

  // A raise is used at once too: no cap lowered, within the new grant, and confirmed.
  const double low = n.caps_sum_w();
  const double low0 = n.cap_w(0), low1 = n.cap_w(1);
  g.grant_w = 200.0;
  g.seq = 5;
  ck_assert_std_str_eq(pc->on_grant(g, wall), "");
  std::optional<NodeReport> raised = pc->take_urgent_report();
  ck_assert(raised.has_value());
  ck_assert_msg(n.caps_sum_w() > low + 1.0, "caps after the raise %f (before %f)", n.caps_sum_w(),
                low);
  ck_assert_msg(n.caps_sum_w() <= 200.0 + 1e-6, "caps after the raise %f", n.caps_sum_w());
  ck_assert(n.cap_w(0) >= low0 - 1e-6 && n.cap_w(1) >= low1 - 1e-6);
  ck_assert_uint_eq(raised->lease_seq, 5);
  ck_assert_msg(std::fabs(raised->caps_w - n.caps_sum_w()) < 1e-3, "report %f, in force %f",
                raised->caps_w, n.caps_sum_w());
  ck_assert_int_eq(n.count("grant on n1 raised to 200.0 W: caps raised at once"), 1);
  // The same grant again (a renewal) writes and reports nothing.
  const double high2 = n.caps_sum_w();
  g.seq = 6;
  ck_assert_std_str_eq(pc->on_grant(g, wall), "");
  ck_assert(!pc->take_urgent_report());
  ck_assert_double_eq_tol(n.caps_sum_w(), high2, 1e-6);
  // A refused grant (stale seq) changes nothing either.
  g.grant_w = 100.0;
  g.seq = 3;
  ck_assert(!pc->on_grant(g, wall).empty());
  ck_assert(!pc->take_urgent_report());
  ck_assert_double_eq_tol(n.caps_sum_w(), high2, 1e-6);
  pc->shutdown();
}
END_TEST

// Each job summary in the reports carries the job's accounting (energy, average power, caps in
// force, time covered), and it arrives at the controller.
START_TEST(report_job_accounting_arrives) {
  Linked t;
  Controller &ctl = t.ctl;
  auto pc = t.n.control(250.0, 7);
  const std::vector<RegisteredStep> steps = {step(12, JobMode::throughput, 100),
                                             step(13, JobMode::latency, 101)};
  for (int i = 0; i < 6; ++i) t.period(*pc, steps);
  ck_assert_uint_ge(ctl.reports.size(), 5);
  const NodeReport &r = ctl.reports.back();
  ck_assert(!r.jobs.empty());
  std::map<std::string, JobEnergySummary> ledger;
  for (const JobEnergySummary &s : pc->job_summaries()) ledger[s.key] = s;
  int seen12 = 0, seen13 = 0;
  for (const JobSummary &j : r.jobs) {
    seen12 += j.job == "12.0";
    seen13 += j.job == "13.0";
    ck_assert_msg(ledger.count(j.job), "%s", j.job.c_str());
    const JobEnergySummary &s = ledger[j.job];
    // 5 measured periods of 1 s.
    ck_assert_double_eq_tol(j.elapsed_s, 5.0, 1e-9);
    ck_assert_double_eq_tol(j.elapsed_s, s.seconds, 1e-9);
    ck_assert_msg(std::isfinite(j.energy_j) && j.energy_j > 5 * 20.0, "%s energy %f",
                  j.job.c_str(), j.energy_j);
    ck_assert_double_eq_tol(j.energy_j, s.energy_j, 1e-6);
    ck_assert_double_eq_tol(j.avg_w, j.energy_j / j.elapsed_s, 1e-6);
    ck_assert(std::isfinite(j.cap_min_w) && std::isfinite(j.cap_mean_w) &&
              std::isfinite(j.cap_max_w));
    ck_assert(j.cap_min_w <= j.cap_mean_w + 1e-9 && j.cap_mean_w <= j.cap_max_w + 1e-9);
    ck_assert_double_eq_tol(j.cap_min_w, *s.cap_min_w, 1e-6);
    ck_assert_double_eq_tol(j.cap_max_w, *s.cap_max_w, 1e-6);
    ck_assert_double_eq_tol(j.cap_mean_w, *s.cap_mean_w(), 1e-6);
    ck_assert(j.cap_max_w <= 205.0 + 1e-6);
  }
  ck_assert_int_ge(seen12, 1);
  ck_assert_int_ge(seen13, 1);
  pc->shutdown();
}
END_TEST

// NODE_CAPS: sent once per session and again on a change; an older controller that refuses
// it (bad_type, session closed) is not sent it again, and the node keeps reporting to it.
START_TEST(capabilities_are_sent_once_and_not_to_an_older_controller) {
  Linked t;
  proto::NodeCaps c;
  c.node = "n1";
  c.backend = proto::CapsBackend::hsmp_hwmon;
  c.energy = proto::CapsEnergy::powercap;
  c.counters = proto::CapsCounters::emulated;
  c.domains = 2;
  c.min_w = 102.5;
  c.max_w = 410.0;
  t.link->set_caps(c);
  t.link->set_caps(c);  // the same again: not sent again
  pump(*t.link, t.ctl, &t.mono, 20);
  ck_assert_uint_eq(t.ctl.caps.size(), 1);
  ck_assert(t.ctl.caps[0] == c);
  c.clamps = 1;
  t.link->set_caps(c);
  pump(*t.link, t.ctl, &t.mono, 20);
  ck_assert_uint_eq(t.ctl.caps.size(), 2);
  ck_assert_uint_eq(t.ctl.caps[1].clamps, 1);
  // A failed restore of the admin's settings is a change too: sent, with its count.
  c.restore_failures = 3;
  t.link->set_caps(c);
  pump(*t.link, t.ctl, &t.mono, 20);
  ck_assert_uint_eq(t.ctl.caps.size(), 3);
  ck_assert_uint_eq(t.ctl.caps[2].restore_failures, 3);
  ck_assert_uint_eq(t.ctl.caps[2].clamps, 1);
  t.link->set_caps(c);  // the same count again: not sent again
  pump(*t.link, t.ctl, &t.mono, 20);
  ck_assert_uint_eq(t.ctl.caps.size(), 3);
  // An older controller: it closes the session on NODE_CAPS.
  t.ctl.old_version = true;
  c.clamps = 2;
  t.link->set_caps(c);
  pump(*t.link, t.ctl, &t.mono, 20);
  ck_assert_uint_eq(t.ctl.caps.size(), 4);
  ck_assert(t.link->caps_unsupported());
  ck_assert_int_eq(t.n.count("does not take NODE_CAPS"), 1);
  // The link reconnects and reports, without NODE_CAPS, and stays up.
  ck_assert(pump_until(*t.link, t.ctl, &t.mono, session_up));
  NodeReport r;
  r.node = "n1";
  r.incarnation = 7;
  r.report_seq = 1;
  r.power_w = 100.0;
  ck_assert(t.link->send_report(r));
  pump(*t.link, t.ctl, &t.mono, 50);
  ck_assert_uint_eq(t.ctl.caps.size(), 4);
  ck_assert(!t.ctl.reports.empty());
  ck_assert(t.link->connected());
}
END_TEST

// A controller that takes NODE_CAPS but not its trailing restore_failures field reads the
// message up to reason and closes the session (trailing_bytes): the agent stops sending it
// there too, and keeps reporting.
START_TEST(capabilities_not_sent_again_to_a_controller_without_restore_failures) {
  Linked t;
  t.ctl.old_version = true;
  t.ctl.refusal = proto::Errc::trailing_bytes;
  proto::NodeCaps c;
  c.node = "n1";
  c.backend = proto::CapsBackend::rapl;
  c.energy = proto::CapsEnergy::powercap;
  c.counters = proto::CapsCounters::emulated;
  c.domains = 2;
  c.min_w = 102.5;
  c.max_w = 410.0;
  c.restore_failures = 1;
  t.link->set_caps(c);
  pump(*t.link, t.ctl, &t.mono, 20);
  ck_assert_uint_eq(t.ctl.caps.size(), 1);
  ck_assert(t.link->caps_unsupported());
  ck_assert_int_eq(t.n.count("trailing_bytes): this node's capabilities are no longer sent"), 1);
  ck_assert(pump_until(*t.link, t.ctl, &t.mono, session_up));
  c.restore_failures = 2;  // a change: still not sent to this controller
  t.link->set_caps(c);
  NodeReport r;
  r.node = "n1";
  r.incarnation = 7;
  r.report_seq = 1;
  r.power_w = 100.0;
  ck_assert(t.link->send_report(r));
  pump(*t.link, t.ctl, &t.mono, 50);
  ck_assert_uint_eq(t.ctl.caps.size(), 1);
  ck_assert(!t.ctl.reports.empty());
  ck_assert(t.link->connected());
}
END_TEST

START_TEST(unreachable_controller_is_logged_rate_limited) {
  Node n;
  auto realm = std::make_shared<proto::FakeMungeRealm>();
  // A port nobody listens on: open and close a listener to find one.
  Controller probe(realm);
  probe.open();
  const std::uint16_t port = probe.ep->port();
  probe.ep.reset();
  proto::FakeAuthenticator node_auth(realm, 0, 0);
  ControllerLinkConfig lc = link_config(port);
  lc.log_every_s = 60.0;
  ControllerLink link(lc, node_auth, n.logger());
  // 150 s of attempts (backoff at most 0.4 s): hundreds of failures, three lines.
  for (double t = 0.0; t < 150.0; t += 0.05) (void)link.poll(t, 0);
  ck_assert(!link.connected());
  ck_assert_int_eq(n.count("cannot reach the controller at 127.0.0.1:"), 3);
}
END_TEST

START_TEST(grant_in_monitor_mode_is_refused) {
  auto d = hwt::TempDir::create("pg-agent-link-mon");
  ck_assert(d.ok());
  const std::string sys = d.value().path() + "/sys";
  ck_assert(hwt::make_dirs(sys).ok());
  ck_assert(hwt::build_machine(sys, "no-powercap").ok());
  PowerControlConfig c;
  c.node_name = "n1";
  c.state_dir = d.value().path();
  c.sysfs_root = sys;
  c.counters = "software";
  std::vector<std::string> log;
  PowerControl pc(c, [&](AgentLogLevel, const std::string &m) { log.push_back(m); });
  GrantMessage g;
  g.node = "n1";
  g.grant_w = 100.0;
  g.lease_s = 5.0;
  g.expires_at_s = 100.0;
  g.epoch = 1;
  g.seq = 1;
  ck_assert_contains(pc.on_grant(g, 10.0), "monitor mode");
  // Monitor mode still reports every period (no caps, power unknown without powercap).
  RegisteredStep s = step(5, JobMode::latency, ::getpid());
  pc.period({s}, 1.0);
  pc.period({s}, 2.0);
  ck_assert(pc.last_report().has_value());
  ck_assert(!pc.last_report()->idle);
  ck_assert(!pc.last_report()->steerable);
  ck_assert(std::isnan(pc.last_report()->power_w));
  // A, item 4: the step's summary says its energy is unknown, not 0.
  pc.period({}, 3.0);
  bool unknown = false;
  for (const std::string &m : log) {
    if (pgtest::contains(m, "job 5.0 on n1: energy_j=unknown avg_w=unknown")) unknown = true;
    ck_assert_msg(!pgtest::contains(m, "energy_j=0.0"), "%s", m.c_str());
  }
  ck_assert(unknown);
}
END_TEST

START_TEST(new_job_restores_when_the_last_end_was_missed) {
  Node n;
  const auto before = n.settings();
  auto pc = n.control(250.0, 7);
  double now = 0.0;
  for (int i = 0; i < 4; ++i) {
    ck_assert(n.emu->advance(1.0).ok());
    now += 1.0;
    pc->period({step(12, JobMode::throughput, 100)}, now);
  }
  ck_assert(n.saved_file());
  ck_assert(n.settings() != before);
  // Another power-aware job still runs: its caps stay.
  ck_assert(
      !pc->new_job(14, {step(12, JobMode::throughput, 100), step(14, JobMode::latency, 102)}));
  ck_assert(n.saved_file());
  // Job 12 is gone without the period that would have noticed: job 14 starts from the
  // admin's settings.
  ck_assert(pc->new_job(14, {step(14, JobMode::latency, 102)}));
  ck_assert(!n.saved_file());
  ck_assert(n.settings() == before);
  ck_assert_int_eq(n.count("caps restored on n1 (before job 14 with no power-aware job left"), 1);
  // Control continues: the new job's period saves the admin's settings again first.
  for (int i = 0; i < 3; ++i) {
    ck_assert(n.emu->advance(1.0).ok());
    now += 1.0;
    pc->period({step(14, JobMode::throughput, 102)}, now);
  }
  ck_assert(n.saved_file());
  pc->shutdown();
  ck_assert(n.settings() == before);
}
END_TEST

START_TEST(new_job_restores_a_leftover_file) {
  Node n;
  const auto before = n.settings();
  {
    auto pc = n.control(250.0, 7);  // dies without restoring, as a crashed agent would
    double now = 0.0;
    for (int i = 0; i < 4; ++i) {
      ck_assert(n.emu->advance(1.0).ok());
      now += 1.0;
      pc->period({step(12, JobMode::throughput, 100)}, now);
    }
    ck_assert(n.saved_file());
  }
  auto pc = n.control(250.0, 7);
  ck_assert(n.settings() != before);
  ck_assert(pc->new_job(20, {step(20, JobMode::off, 200)}));
  ck_assert(!n.saved_file());
  ck_assert(n.settings() == before);
  ck_assert_int_eq(n.count("from " + n.state + "/saved-caps before job 20"), 1);
  // Nothing left to restore: no further restore.
  ck_assert(!pc->new_job(21, {}));
}
END_TEST

START_TEST(failing_restore_is_logged_rate_limited) {
  Node n;
  const auto before = n.settings();
  auto pc = n.control(250.0, 7);
  double now = 0.0;
  for (int i = 0; i < 4; ++i) {
    ck_assert(n.emu->advance(1.0).ok());
    now += 1.0;
    pc->period({step(12, JobMode::throughput, 100)}, now);
  }
  ck_assert(n.saved_file());
  // Every write to a regular file fails (EFBIG) while the file size limit is 0: the restore
  // keeps failing. (Check forks each test: the limit dies with this process.)
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit saved_limit;
  ck_assert_int_eq(::getrlimit(RLIMIT_FSIZE, &saved_limit), 0);
  struct rlimit zero = saved_limit;
  zero.rlim_cur = 0;
  ck_assert_int_eq(::setrlimit(RLIMIT_FSIZE, &zero), 0);
  for (int i = 0; i < 150; ++i) {
    now += 1.0;
    pc->period({}, now);
  }
  ck_assert_int_eq(::setrlimit(RLIMIT_FSIZE, &saved_limit), 0);
  // 150 failures over 150 s: the first, then one a minute.
  ck_assert_int_eq(n.count("restoring the saved caps on n1 failed"), 3);
  ck_assert_int_eq(n.count("(121 failures so far)"), 1);
  ck_assert(n.saved_file());
  now += 1.0;
  pc->period({}, now);
  ck_assert_int_eq(n.count("restoring the saved caps on n1 succeeded after 150 failed attempt(s)"),
                   1);
  ck_assert(!n.saved_file());
  ck_assert(n.settings() == before);
}
END_TEST

// A failed restore of the admin's settings raises the count the node's capabilities carry,
// which the link sends to the controller (agent.cpp hands it the capabilities every
// period). The count is cumulative: a later success resets the log's count, not this one.
START_TEST(failed_restores_are_counted_in_the_capabilities) {
  Linked t;
  const auto before = t.n.settings();
  auto pc = t.n.control(250.0, 7);
  const auto send_caps = [&] {
    const std::optional<NodeCapabilities> caps = pc->capabilities();
    ck_assert(caps.has_value());
    t.link->set_caps(*caps);
    pump(*t.link, t.ctl, &t.mono, 20);
  };
  const std::vector<RegisteredStep> job = {step(12, JobMode::throughput, 100)};
  for (int i = 0; i < 4; ++i) t.period(*pc, job);
  ck_assert(t.n.saved_file());
  send_caps();
  ck_assert_uint_eq(pc->capabilities()->restore_failures, 0);
  ck_assert_uint_ge(t.ctl.caps.size(), 1);
  ck_assert_uint_eq(t.ctl.caps.back().restore_failures, 0);
  // The job ends while every write to a regular file fails (file size limit 0, as in
  // failing_restore_is_logged_rate_limited): each period's restore fails. Nothing is
  // checked until the limit is lifted (Check's own files are regular files).
  const auto failing_periods = [&](int n) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved_limit;
    ck_assert_int_eq(::getrlimit(RLIMIT_FSIZE, &saved_limit), 0);
    struct rlimit zero = saved_limit;
    zero.rlim_cur = 0;
    ck_assert_int_eq(::setrlimit(RLIMIT_FSIZE, &zero), 0);
    std::vector<std::uint64_t> counts;
    for (int i = 0; i < n; ++i) {
      t.wall += 1.0;
      pc->period({}, t.wall - 1.0e9, t.wall);
      const std::optional<NodeCapabilities> caps = pc->capabilities();
      counts.push_back(caps ? caps->restore_failures : 9999);
    }
    ck_assert_int_eq(::setrlimit(RLIMIT_FSIZE, &saved_limit), 0);
    return counts;
  };
  std::vector<std::uint64_t> counts = failing_periods(3);
  ck_assert_uint_eq(counts.size(), 3);
  ck_assert_uint_eq(counts[0], 1);
  ck_assert_uint_eq(counts[1], 2);
  ck_assert_uint_eq(counts[2], 3);
  ck_assert(t.n.saved_file());
  ck_assert_int_eq(t.n.count("restoring the saved caps on n1 failed"), 1);
  const std::size_t sent = t.ctl.caps.size();
  send_caps();
  ck_assert_uint_eq(t.ctl.caps.size(), sent + 1);
  ck_assert_uint_eq(t.ctl.caps.back().restore_failures, 3);
  // The next restore succeeds: the settings are back, the count stays.
  t.period(*pc, {});
  ck_assert(!t.n.saved_file());
  ck_assert(t.n.settings() == before);
  ck_assert_int_eq(t.n.count("succeeded after 3 failed attempt(s)"), 1);
  ck_assert_uint_eq(pc->capabilities()->restore_failures, 3);
  send_caps();
  ck_assert_uint_eq(t.ctl.caps.size(), sent + 1);  // unchanged: not sent again
  // Another job, another failing restore: counted on top (the log starts again at 1).
  for (int i = 0; i < 3; ++i) t.period(*pc, job);
  ck_assert(t.n.saved_file());
  counts = failing_periods(2);
  ck_assert_uint_eq(counts.size(), 2);
  ck_assert_uint_eq(counts[0], 4);
  ck_assert_uint_eq(counts[1], 5);
  ck_assert_int_eq(t.n.count("restoring the saved caps on n1 failed"), 2);
  ck_assert_int_eq(t.n.count("failures so far"), 0);
  send_caps();
  ck_assert_uint_eq(t.ctl.caps.back().restore_failures, 5);
  t.period(*pc, {});
  ck_assert(t.n.settings() == before);
  ck_assert_int_eq(t.n.count("succeeded after 2 failed attempt(s)"), 1);
  ck_assert_uint_eq(pc->capabilities()->restore_failures, 5);
}
END_TEST

START_TEST(summary_energy_unknown) {
  JobEnergyLedger l;
  l.begin("3.0", JobMode::latency, "software", false);
  l.add_period("3.0", 2.0, std::nullopt);
  auto s = l.finish("3.0");
  ck_assert(s.has_value());
  ck_assert_std_str_eq(format_job_summary(*s, "n2"),
                       "job 3.0 on n2: energy_j=unknown avg_w=unknown cap_min_w=none "
                       "cap_mean_w=none cap_max_w=none counters=software");
}
END_TEST

START_TEST(controller_argument_and_slurm_conf) {
  ConfigParse p = parse_plugin_args({"controller=ctl.example:6830"});
  ck_assert(p.ok());
  ck_assert_std_str_eq(p.config.controller, "ctl.example:6830");
  ck_assert(parse_plugin_args({"controller=none"}).ok());
  ck_assert(parse_plugin_args({"controller=[::1]:7000"}).ok());
  ck_assert(parse_plugin_args({}).config.controller.empty());  // default: from slurm.conf
  for (const char *bad :
       {"controller=", "controller=host", "controller=host:0", "controller=host:70000",
        "controller=::1:7000", "controller=a b:1", "controller=h:12x"}) {
    ConfigParse b = parse_plugin_args({bad});
    ck_assert_msg(!b.ok(), "%s accepted", bad);
    ck_assert_contains(b.errors[0], "plugin argument controller=");
  }
  std::string host, port;
  ck_assert_std_str_eq(split_host_port("[fe80::1]:6830", host, port), "");
  ck_assert_std_str_eq(host, "fe80::1");
  ck_assert_std_str_eq(port, "6830");

  SlurmConfFacts f = parse_slurm_conf(
      "# cluster\nClusterName=x\nslurmctldhost=ctl1(10.1.2.3)  # primary\n"
      "SlurmctldHost=ctl2\nSlurmUser=slurm\n");
  ck_assert_std_str_eq(f.ctld_host, "10.1.2.3");
  ck_assert_std_str_eq(f.slurm_user, "slurm");
  ck_assert_std_str_eq(parse_slurm_conf("SlurmctldHost=head\n").ctld_host, "head");
  ck_assert_std_str_eq(parse_slurm_conf("ControlMachine=old\nControlAddr=1.2.3.4\n").ctld_host,
                       "1.2.3.4");
  ck_assert(parse_slurm_conf("#SlurmctldHost=x\n").ctld_host.empty());
}
END_TEST

int main() {
  Suite *s = suite_create("agent_link");
  TCase *tc = tcase_create("link");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, report_grant_lease_expiry_and_reconnect);
  tcase_add_test(tc, grant_change_is_obeyed_at_once_and_confirmed);
  tcase_add_test(tc, report_job_accounting_arrives);
  tcase_add_test(tc, capabilities_are_sent_once_and_not_to_an_older_controller);
  tcase_add_test(tc, capabilities_not_sent_again_to_a_controller_without_restore_failures);
  tcase_add_test(tc, unreachable_controller_is_logged_rate_limited);
  tcase_add_test(tc, grant_in_monitor_mode_is_refused);
  tcase_add_test(tc, new_job_restores_when_the_last_end_was_missed);
  tcase_add_test(tc, new_job_restores_a_leftover_file);
  tcase_add_test(tc, failing_restore_is_logged_rate_limited);
  tcase_add_test(tc, failed_restores_are_counted_in_the_capabilities);
  tcase_add_test(tc, summary_energy_unknown);
  tcase_add_test(tc, controller_argument_and_slurm_conf);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
