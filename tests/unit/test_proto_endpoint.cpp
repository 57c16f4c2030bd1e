// Controller and client endpoints over loopback TCP with the fake munge, driven in one
// thread with injected time: sessions by role and uid, reports and grants, admin requests
// and their permission check, forged / replayed / truncated / oversize / out-of-role
// frames closing a session, timeouts, replacement, reconnect with backoff.
#include <check.h>
#include <poll.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>

#include "protocol/client_endpoint.hpp"
#include "protocol/controller_endpoint.hpp"
#include "protocol/fake_auth.hpp"
#include "protocol/roles.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/test_proto_util.hpp"

using namespace pgproto_test;

namespace {

constexpr uid_t kSlurmUid = 64030;
constexpr uid_t kUserUid = 1000;
constexpr uid_t kAdminUid = 1001;
constexpr double kStepS = 0.01;

using Kind = ControllerEvent::Kind;
using CKind = ClientEvent::Kind;

struct Harness {
  std::shared_ptr<FakeMungeRealm> realm = std::make_shared<FakeMungeRealm>(300.0);
  FakeAuthenticator ctl_auth{realm, kSlurmUid, kSlurmUid};
  FakeAuthenticator root{realm, 0, 0};
  FakeAuthenticator user{realm, kUserUid, 100};
  FakeAuthenticator admin{realm, kAdminUid, 100};
  std::unique_ptr<ControllerEndpoint> ctl;
  std::string host = "127.0.0.1";
  std::string port;
  double now = 1000.0;
  std::vector<ControllerEvent> ctl_events;
  std::vector<std::unique_ptr<ClientEndpoint>> clients;
  std::map<ClientEndpoint *, std::vector<ClientEvent>> client_events;

  ControllerConfig config() {
    ControllerConfig c;
    c.listen_host = host;
    c.listen_port = port.empty() ? "0" : port;
    c.policy = ServerPolicy::standard(kSlurmUid, {kAdminUid});
    return c;
  }

  void open(ControllerConfig c) {
    ck_assert_status_ok(ControllerEndpoint::open(std::move(c), ctl_auth, ctl));
    port = std::to_string(ctl->port());
  }
  void open() { open(config()); }

  ClientEndpoint &client(Authenticator &auth, PeerRole role, const std::string &name) {
    ClientConfig c;
    c.host = host;
    c.port = port;
    c.hello.role = role;
    c.hello.name = name;
    c.hello.incarnation = 5;
    c.hello.controller_uids = {0, kSlurmUid};
    c.jitter_seed = 1 + clients.size();
    clients.push_back(std::make_unique<ClientEndpoint>(c, auth));
    return *clients.back();
  }

  void step() {
    now += kStepS;
    for (auto &c : clients)
      for (ClientEvent &e : c->poll_once(now, 2)) client_events[c.get()].push_back(std::move(e));
    if (ctl)
      for (ControllerEvent &e : ctl->poll_once(now, 2)) ctl_events.push_back(std::move(e));
  }

  bool run_until(const std::function<bool()> &done, int max_steps = 400) {
    for (int i = 0; i < max_steps; ++i) {
      if (done()) return true;
      step();
    }
    return done();
  }

  const ControllerEvent *ctl_event(Kind k, std::size_t nth = 0) const {
    for (const ControllerEvent &e : ctl_events)
      if (e.kind == k && nth-- == 0) return &e;
    return nullptr;
  }
  const ClientEvent *client_event(ClientEndpoint &c, CKind k, std::size_t nth = 0) {
    for (const ClientEvent &e : client_events[&c])
      if (e.kind == k && nth-- == 0) return &e;
    return nullptr;
  }
};

// A client that speaks raw bytes after a real handshake, to send what a well-behaved
// ClientEndpoint never would.
struct RawClient {
  UniqueFd fd;
  SecureChannel channel;
  FrameReader reader{client_accepts_before_session()};

  void connect(Harness &h) {
    std::vector<SocketAddress> addrs;
    ck_assert_status_ok(resolve_tcp(h.host, h.port, false, addrs));
    bool in_progress = false;
    ck_assert_status_ok(start_connect(addrs[0], fd, in_progress));
    ck_assert(h.run_until([&] {
      pollfd p{fd.get(), POLLOUT, 0};
      return ::poll(&p, 1, 0) == 1;
    }));
  }

  void send_raw(const std::string &bytes) {
    ck_assert(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  }

  // Reads whatever has arrived; returns the frames, sets eof on close.
  std::vector<std::string> read(bool &eof) {
    std::vector<std::string> out;
    Status err;
    for (;;) {
      const FrameReader::Fill k = reader.fill(fd.get(), err);
      if (k == FrameReader::Fill::eof || k == FrameReader::Fill::error) eof = true;
      if (k != FrameReader::Fill::data) break;
    }
    const std::uint8_t *d;
    std::size_t n;
    while (reader.next(d, n, err) == FrameReader::Next::frame)
      out.emplace_back(reinterpret_cast<const char *>(d), n);
    return out;
  }

  void handshake(Harness &h, Authenticator &auth, PeerRole role, const std::string &name) {
    connect(h);
    ClientParams p;
    p.role = role;
    p.name = name;
    p.controller_uids = {kSlurmUid};
    ClientHandshake hs(p);
    std::string hello;
    ck_assert_status_ok(hs.start(auth, hello));
    send_raw(hello);
    std::vector<std::string> frames;
    bool eof = false;
    ck_assert(h.run_until([&] {
      auto got = read(eof);
      frames.insert(frames.end(), got.begin(), got.end());
      return !frames.empty();
    }));
    SessionInfo info;
    ck_assert_status_ok(hs.finish(auth, bytes_of(frames[0]), frames[0].size(), channel, info));
    reader.set_accepted(server_sends(role));
  }

  std::string sealed(const Message &m) {
    std::string out;
    ck_assert_status_ok(channel.seal(m, out));
    return out;
  }
};

bool ipv6_loopback_available() {
  UniqueFd l;
  return listen_tcp("::1", "0", 1, l).ok();
}

}  // namespace

START_TEST(test_node_report_and_grant) {
  Harness h;
  h.open();
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established() && h.ctl_event(Kind::session_opened); }));
  const ControllerEvent *opened = h.ctl_event(Kind::session_opened);
  ck_assert_std_str_eq(opened->peer.name, "n1");
  ck_assert_uint_eq(opened->peer.uid, 0);
  ck_assert(opened->peer.role == PeerRole::node);
  ck_assert_uint_eq(opened->peer.incarnation, 5);
  ck_assert_uint_eq(h.ctl->node_connection("n1"), opened->connection);
  ck_assert(h.client_event(node, CKind::connected) != nullptr);
  ck_assert_uint_eq(node.session().session_id, opened->peer.session_id);

  const NodeReport r = sample_report(4, 8);
  ck_assert_status_ok(node.send(r));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message) != nullptr; }));
  const ControllerEvent *msg = h.ctl_event(Kind::message);
  ck_assert_std_str_eq(msg->peer.name, "n1");
  const std::string d = diff(r, std::get<NodeReport>(msg->message));
  ck_assert_msg(d.empty(), "report field %s differs", d.c_str());

  const GrantMessage g = sample_grant();
  ck_assert_status_ok(h.ctl->send(msg->connection, g));
  ck_assert(h.run_until([&] { return h.client_event(node, CKind::message) != nullptr; }));
  const std::string dg =
      diff(g, std::get<GrantMessage>(h.client_event(node, CKind::message)->message));
  ck_assert_msg(dg.empty(), "grant field %s differs", dg.c_str());
}
END_TEST

START_TEST(test_many_reports_in_order) {
  Harness h;
  h.open();
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n7");
  ck_assert(h.run_until([&] { return node.established(); }));
  for (std::uint64_t i = 1; i <= 200; ++i) {
    NodeReport r = sample_report(2, 4);
    r.node = "n7";
    r.report_seq = i;
    ck_assert_status_ok(node.send(r));
  }
  std::size_t seen = 0;
  ck_assert(h.run_until([&] {
    seen = 0;
    for (const auto &e : h.ctl_events)
      if (e.kind == Kind::message) ++seen;
    return seen == 200;
  }));
  std::uint64_t expect = 1;
  for (const auto &e : h.ctl_events)
    if (e.kind == Kind::message)
      ck_assert_uint_eq(std::get<NodeReport>(e.message).report_seq, expect++);
}
END_TEST

START_TEST(test_admin_status_and_budget) {
  Harness h;
  h.open();
  ClientEndpoint &adm = h.client(h.admin, PeerRole::admin, "login1");
  ck_assert(h.run_until([&] { return adm.established(); }));
  ck_assert(adm.session().may_admin);
  ck_assert_status_ok(adm.send(AdminStatusRequest{}));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message) != nullptr; }));
  const ControllerEvent *req = h.ctl_event(Kind::message);
  ck_assert_uint_eq(req->peer.uid, kAdminUid);
  ck_assert(req->peer.may_admin);
  ck_assert(std::holds_alternative<AdminStatusRequest>(req->message));
  // A large status answer (many nodes) goes through in pieces.
  AdminStatus st;
  st.json = "{\"nodes\": [";
  for (int i = 0; i < 20000; ++i)
    st.json += "{\"name\": \"n" + std::to_string(i) + "\", \"grant_w\": 250},\n";
  st.json += "{}]}";
  ck_assert_status_ok(h.ctl->send(req->connection, st));
  ck_assert(h.run_until([&] { return h.client_event(adm, CKind::message) != nullptr; }));
  ck_assert_std_str_eq(std::get<AdminStatus>(h.client_event(adm, CKind::message)->message).json,
                       st.json);

  ck_assert_status_ok(adm.send(AdminSetBudget{900.0}));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message, 1) != nullptr; }));
  const ControllerEvent *set = h.ctl_event(Kind::message, 1);
  ck_assert(std::get<AdminSetBudget>(set->message).budget_w == 900.0);
  ck_assert_status_ok(h.ctl->send(set->connection, AdminResult{0, "budget now 900 W"}));
  ck_assert(h.run_until([&] { return h.client_event(adm, CKind::message, 1) != nullptr; }));
  ck_assert_uint_eq(std::get<AdminResult>(h.client_event(adm, CKind::message, 1)->message).code, 0);
  ck_assert(h.ctl_event(Kind::request_denied) == nullptr);
}
END_TEST

START_TEST(test_non_admin_set_budget_denied) {
  Harness h;
  h.open();
  ClientEndpoint &usr = h.client(h.user, PeerRole::admin, "login1");
  ck_assert(h.run_until([&] { return usr.established(); }));
  ck_assert(!usr.session().may_admin);
  ck_assert_status_ok(usr.send(AdminSetBudget{1.0}));
  ck_assert(h.run_until([&] { return h.client_event(usr, CKind::message) != nullptr; }));
  const auto &res = std::get<AdminResult>(h.client_event(usr, CKind::message)->message);
  ck_assert_uint_eq(res.code, static_cast<unsigned>(AdminCode::permission_denied));
  ck_assert_contains(res.message, "uid 1000");
  const ControllerEvent *denied = h.ctl_event(Kind::request_denied);
  ck_assert(denied != nullptr);
  ck_assert_errc(denied->status, Errc::permission_denied);
  ck_assert_uint_eq(denied->peer.uid, kUserUid);
  ck_assert(h.ctl_event(Kind::message) == nullptr);  // never delivered as a request
  // Reading status is still allowed, on the same session.
  ck_assert_status_ok(usr.send(AdminStatusRequest{}));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message) != nullptr; }));
  ck_assert(usr.established());
}
END_TEST

START_TEST(test_node_uid_refused) {
  Harness h;
  h.open();
  ClientEndpoint &fake_node = h.client(h.user, PeerRole::node, "n1");
  ck_assert(
      h.run_until([&] { return h.client_event(fake_node, CKind::attempt_failed) != nullptr; }));
  const ClientEvent *e = h.client_event(fake_node, CKind::attempt_failed);
  ck_assert_errc(e->status, Errc::uid_not_allowed);
  ck_assert(e->next_attempt_at_s > h.now);
  const ControllerEvent *refused = h.ctl_event(Kind::refused);
  ck_assert(refused != nullptr);
  ck_assert_errc(refused->status, Errc::uid_not_allowed);
  ck_assert(!refused->address.empty());
  ck_assert(h.ctl_event(Kind::session_opened) == nullptr);
}
END_TEST

START_TEST(test_forged_frame_closes_session) {
  Harness h;
  h.open();
  RawClient raw;
  raw.handshake(h, h.root, PeerRole::node, "n3");
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_opened) != nullptr; }));
  // Sealed with a key of our own making.
  SecureChannel forger;
  Key k{};
  k[0] = 1;
  ck_assert_status_ok(SecureChannel::create(raw.channel.session_id(), k, Side::client, forger));
  std::string forged;
  ck_assert_status_ok(forger.seal(sample_report(), forged));
  raw.send_raw(forged);
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::bad_mac);
  ck_assert(h.ctl_event(Kind::message) == nullptr);
  ck_assert_uint_eq(h.ctl->node_connection("n3"), 0);
  // The peer is told why (sealed ERROR), then the connection closes.
  bool eof = false;
  std::vector<std::string> frames;
  ck_assert(h.run_until([&] {
    auto got = raw.read(eof);
    frames.insert(frames.end(), got.begin(), got.end());
    return eof;
  }));
  ck_assert_uint_eq(frames.size(), 1);
  Frame f;
  ck_assert_status_ok(raw.channel.open(bytes_of(frames[0]), frames[0].size(), f));
  ck_assert_uint_eq(std::get<ErrorMessage>(f.message).code, static_cast<unsigned>(Errc::bad_mac));
}
END_TEST

START_TEST(test_replayed_frame_closes_session) {
  Harness h;
  h.open();
  RawClient raw;
  raw.handshake(h, h.root, PeerRole::node, "n4");
  NodeReport r = sample_report();
  r.node = "n4";
  const std::string f = raw.sealed(r);
  raw.send_raw(f);
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message) != nullptr; }));
  raw.send_raw(f);
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::replayed);
  ck_assert(h.ctl_event(Kind::message, 1) == nullptr);
}
END_TEST

START_TEST(test_truncated_message_not_delivered) {
  Harness h;
  h.open();
  RawClient raw;
  raw.handshake(h, h.root, PeerRole::node, "n5");
  const std::string f = raw.sealed(sample_report());
  raw.send_raw(f.substr(0, f.size() / 2));
  for (int i = 0; i < 20; ++i) h.step();
  ck_assert(h.ctl_event(Kind::message) == nullptr);  // waits for the rest
  raw.fd.reset();
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::closed);
  ck_assert(h.ctl_event(Kind::message) == nullptr);
}
END_TEST

START_TEST(test_oversize_and_out_of_role_frames) {
  Harness h;
  h.open();
  {
    RawClient raw;
    raw.handshake(h, h.root, PeerRole::node, "n6");
    HeaderFields hf;
    hf.type = static_cast<std::uint8_t>(MsgType::report);
    hf.payload_len = 1 << 30;
    hf.seq = 1;
    hf.session_id = raw.channel.session_id();
    raw.send_raw(raw_frame(hf, "").substr(0, kHeaderSize));
    ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed) != nullptr; }));
    ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::oversize);
  }
  {
    // A node session may not send admin requests: refused at the header.
    RawClient raw;
    raw.handshake(h, h.root, PeerRole::node, "n7");
    raw.send_raw(raw.sealed(AdminSetBudget{1.0}));
    ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed, 1) != nullptr; }));
    const Status &st = h.ctl_event(Kind::session_closed, 1)->status;
    ck_assert_errc(st, Errc::unexpected_type);
    ck_assert_contains(st.message, "ADMIN_SET_BUDGET");
  }
  ck_assert(h.ctl_event(Kind::message) == nullptr);
  ck_assert(h.ctl_event(Kind::request_denied) == nullptr);
}
END_TEST

START_TEST(test_report_for_another_node) {
  // A node's session speaks for that node only.
  Harness h;
  h.open();
  RawClient raw;
  raw.handshake(h, h.root, PeerRole::node, "n1");
  NodeReport r = sample_report();
  r.node = "n2";
  raw.send_raw(raw.sealed(r));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed) != nullptr; }));
  const Status &st = h.ctl_event(Kind::session_closed)->status;
  ck_assert_errc(st, Errc::binding_mismatch);
  ck_assert_contains(st.message, "'n2'");
  ck_assert(h.ctl_event(Kind::message) == nullptr);
  // Both endpoints refuse to send such a message in the first place.
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
  ck_assert_errc(node.send(r), Errc::binding_mismatch);
  GrantMessage g = sample_grant();
  g.node = "n2";
  ck_assert_errc(h.ctl->send(h.ctl->node_connection("n1"), g), Errc::binding_mismatch);
  ck_assert(node.established());
}
END_TEST

START_TEST(test_garbage_and_handshake_timeout) {
  Harness h;
  ControllerConfig c = h.config();
  c.handshake_timeout_s = 2.0;
  h.open(c);
  RawClient garbage;
  garbage.connect(h);
  garbage.send_raw("GET / HTTP/1.1\r\nHost: controller\r\nUser-Agent: x\r\n\r\n");
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::refused) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::refused)->status, Errc::bad_magic);
  RawClient silent;
  silent.connect(h);
  for (int i = 0; i < 50; ++i) h.step();
  ck_assert(h.ctl_event(Kind::refused, 1) == nullptr);  // 0.5 s: still waiting
  ck_assert_uint_eq(h.ctl->connection_count(), 1);
  h.now += 2.0;
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::refused, 1) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::refused, 1)->status, Errc::timeout);
  ck_assert_uint_eq(h.ctl->connection_count(), 0);
}
END_TEST

START_TEST(test_idle_timeout) {
  Harness h;
  ControllerConfig c = h.config();
  c.idle_timeout_s = 5.0;
  h.open(c);
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
  h.now += 6.0;
  ck_assert(h.run_until([&] { return h.client_event(node, CKind::disconnected) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::timeout);
  ck_assert_errc(h.client_event(node, CKind::disconnected)->status, Errc::timeout);
}
END_TEST

START_TEST(test_session_replaced) {
  Harness h;
  h.open();
  ClientEndpoint &first = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return first.established(); }));
  const ConnectionId old_id = h.ctl->node_connection("n1");
  RawClient second;
  second.handshake(h, h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_opened, 1) != nullptr; }));
  ck_assert(h.ctl->node_connection("n1") != old_id);
  const ControllerEvent *closed = h.ctl_event(Kind::session_closed);
  ck_assert(closed != nullptr && closed->connection == old_id);
  ck_assert_contains(closed->status.message, "replaced");
  ck_assert(h.run_until([&] { return h.client_event(first, CKind::disconnected) != nullptr; }));
  ck_assert(h.ctl->peer(old_id) == nullptr);
  ck_assert(h.ctl->peer(h.ctl->node_connection("n1")) != nullptr);
}
END_TEST

START_TEST(test_reconnect_with_backoff) {
  Harness h;
  h.open();
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
  // The controller goes away (slurmctld restart).
  h.ctl.reset();
  ck_assert(h.run_until([&] { return h.client_event(node, CKind::disconnected) != nullptr; }));
  double last = h.client_event(node, CKind::disconnected)->next_attempt_at_s;
  ck_assert(last > h.now);
  // Every failed attempt waits longer (within the jitter), and none starts early.
  for (std::size_t i = 0; i < 4; ++i) {
    const double due = node.next_attempt_at_s();
    while (h.now + kStepS < due) {
      h.step();
      ck_assert(node.state() == ClientEndpoint::State::waiting);
    }
    ck_assert(
        h.run_until([&] { return h.client_event(node, CKind::attempt_failed, i) != nullptr; }));
    const ClientEvent *f = h.client_event(node, CKind::attempt_failed, i);
    ck_assert_errc(f->status, Errc::io_error);  // connection refused
    const double delay = f->next_attempt_at_s - h.now;
    const double base = std::min(0.5 * std::pow(2.0, static_cast<double>(i + 1)), 30.0);
    ck_assert_msg(delay <= base + kStepS && delay >= base * 0.5 - kStepS,
                  "attempt %zu: delay %g, base %g", i, delay, base);
  }
  // The controller is back on the same port: the next attempt succeeds.
  h.open();
  ck_assert(h.run_until([&] { return node.established(); }, 3000));
  ck_assert_uint_eq(node.failures(), 0);
  ck_assert(h.ctl_event(Kind::session_opened, 1) != nullptr);
}
END_TEST

START_TEST(test_send_rules) {
  Harness h;
  h.open();
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert_errc(node.send(sample_report()), Errc::not_connected);
  ck_assert(h.run_until([&] { return node.established(); }));
  ck_assert_errc(node.send(AdminSetBudget{1.0}), Errc::unexpected_type);
  ck_assert_errc(node.send(sample_grant()), Errc::unexpected_type);
  NodeReport bad = sample_report();
  bad.sent_at_s = std::numeric_limits<double>::quiet_NaN();
  ck_assert_errc(node.send(bad), Errc::non_finite);
  ck_assert(node.established());  // a local encoding error does not drop the session
  const ConnectionId id = h.ctl->node_connection("n1");
  ck_assert_errc(h.ctl->send(id, AdminStatus{"{}"}), Errc::unexpected_type);
  ck_assert_errc(h.ctl->send(id + 1000, sample_grant()), Errc::not_connected);
  ck_assert_status_ok(node.send(sample_report()));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message) != nullptr; }));
}
END_TEST

START_TEST(test_connection_limit) {
  Harness h;
  ControllerConfig c = h.config();
  c.max_connections = 1;
  h.open(c);
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
  ClientEndpoint &second = h.client(h.root, PeerRole::node, "n2");
  ck_assert(h.run_until([&] { return h.client_event(second, CKind::attempt_failed) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::refused)->status, Errc::too_many_connections);
  ck_assert(node.established());
}
END_TEST

// What one uid's admin sessions may cost (the controller must not be starved by any user).

// A peer that sends many requests without reading the answers has one request in work: the
// next one is taken only once the answer to the last has left.
START_TEST(test_admin_one_request_in_work) {
  Harness h;
  h.open();
  RawClient flood;
  flood.handshake(h, h.user, PeerRole::admin, "login1");
  std::string burst;
  for (int i = 0; i < 50; ++i) burst += flood.sealed(AdminStatusRequest{});
  flood.send_raw(burst);
  for (int i = 0; i < 100; ++i) h.step();
  ck_assert(h.ctl_event(Kind::message) != nullptr);
  ck_assert(h.ctl_event(Kind::message, 1) == nullptr);  // one, not 50
  const ConnectionId id = h.ctl_event(Kind::message)->connection;
  ck_assert_status_ok(h.ctl->send(id, AdminStatus{"{}"}));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message, 1) != nullptr; }));
  for (int i = 0; i < 50; ++i) h.step();
  ck_assert(h.ctl_event(Kind::message, 2) == nullptr);
}
END_TEST

START_TEST(test_admin_sessions_per_uid) {
  Harness h;
  ControllerConfig c = h.config();
  c.max_admin_sessions_per_uid = 2;
  h.open(c);
  ClientEndpoint &a = h.client(h.user, PeerRole::admin, "login1");
  ClientEndpoint &b = h.client(h.user, PeerRole::admin, "login1");
  ck_assert(h.run_until([&] { return a.established() && b.established(); }));
  ClientEndpoint &third = h.client(h.user, PeerRole::admin, "login1");
  ck_assert(h.run_until([&] { return h.client_event(third, CKind::attempt_failed) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::refused)->status, Errc::too_many_connections);
  ck_assert_contains(h.ctl_event(Kind::refused)->status.message, "uid 1000");
  // Another uid, and nodes, are not held back by it.
  ClientEndpoint &adm = h.client(h.admin, PeerRole::admin, "login2");
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return adm.established() && node.established(); }));
}
END_TEST

START_TEST(test_admin_request_rate) {
  Harness h;
  ControllerConfig c = h.config();
  c.admin_requests_per_s = 1.0;
  c.admin_request_burst = 3.0;
  h.open(c);
  ClientEndpoint &usr = h.client(h.user, PeerRole::admin, "login1");
  ck_assert(h.run_until([&] { return usr.established(); }));
  for (std::size_t i = 0; i < 3; ++i) {
    ck_assert_status_ok(usr.send(AdminStatusRequest{}));
    ck_assert(h.run_until([&] { return h.ctl_event(Kind::message, i) != nullptr; }));
    ck_assert_status_ok(h.ctl->send(h.ctl_event(Kind::message, i)->connection, AdminStatus{"{}"}));
  }
  ck_assert_status_ok(usr.send(AdminStatusRequest{}));  // the 4th within ~0.1 s
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::session_closed) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::rate_limited);
  ck_assert(h.ctl_event(Kind::message, 3) == nullptr);
  // After a pause the uid may ask again.
  h.now += 5.0;
  ClientEndpoint &later = h.client(h.user, PeerRole::admin, "login1");
  ck_assert(h.run_until([&] { return later.established(); }));
  ck_assert_status_ok(later.send(AdminStatusRequest{}));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message, 3) != nullptr; }));
}
END_TEST

START_TEST(test_admin_idle_timeout) {
  Harness h;
  ControllerConfig c = h.config();
  c.admin_idle_timeout_s = 5.0;
  h.open(c);
  ClientEndpoint &usr = h.client(h.user, PeerRole::admin, "login1");
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return usr.established() && node.established(); }));
  h.now += 6.0;
  ck_assert(h.run_until([&] { return h.client_event(usr, CKind::disconnected) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::session_closed)->status, Errc::timeout);
  ck_assert(node.established());  // node sessions keep their own rules
}
END_TEST

// Connections that never send a HELLO: a limit per address, and at the connection limit the
// oldest of them makes room for a node that does.
START_TEST(test_pending_connections_bounded) {
  Harness h;
  ControllerConfig c = h.config();
  c.max_pending_per_address = 2;
  h.open(c);
  RawClient s1, s2, s3;
  s1.connect(h);
  s2.connect(h);
  ck_assert(h.run_until([&] { return h.ctl->connection_count() == 2; }));
  s3.connect(h);
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::refused) != nullptr; }));
  ck_assert_errc(h.ctl_event(Kind::refused)->status, Errc::too_many_connections);
  ck_assert_contains(h.ctl_event(Kind::refused)->status.message, "without a HELLO");
  ck_assert_uint_eq(h.ctl->connection_count(), 2);
}
END_TEST

// HELLOs that open no node session are rate-limited per address (before munge); node
// sessions give their token back, so any number of nodes may connect at once.
START_TEST(test_hello_rate_per_address) {
  Harness h;
  ControllerConfig c = h.config();
  c.hellos_per_s_per_address = 1.0;
  c.hello_burst_per_address = 3.0;
  c.max_admin_sessions_per_uid = 100;
  h.open(c);
  // Ten nodes from one address at once, with a burst of 3: each node's token comes back.
  std::vector<ClientEndpoint *> nodes;
  for (int i = 0; i < 10; ++i)
    nodes.push_back(&h.client(h.root, PeerRole::node, "n" + std::to_string(i)));
  ck_assert(h.run_until([&] {
    for (ClientEndpoint *n : nodes)
      if (!n->established()) return false;
    return true;
  }));
  ck_assert(h.ctl_event(Kind::refused) == nullptr);
  // Five admin HELLOs: three open, the next are refused before munge.
  std::vector<ClientEndpoint *> admins;
  for (int i = 0; i < 5; ++i) admins.push_back(&h.client(h.user, PeerRole::admin, "login1"));
  auto opened = [&] {
    std::size_t n = 0;
    for (ClientEndpoint *a : admins) n += a->established();
    return n;
  };
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::refused, 1) != nullptr && opened() == 3; }));
  ck_assert_uint_eq(opened(), 3);
  ck_assert_errc(h.ctl_event(Kind::refused)->status, Errc::rate_limited);
  ck_assert_contains(h.ctl_event(Kind::refused)->status.message, "HELLOs a second");
}
END_TEST

START_TEST(test_limit_evicts_oldest_pending) {
  Harness h;
  ControllerConfig c = h.config();
  c.max_connections = 2;
  h.open(c);
  RawClient s1, s2;
  s1.connect(h);
  ck_assert(h.run_until([&] { return h.ctl->connection_count() == 1; }));
  h.step();
  s2.connect(h);
  ck_assert(h.run_until([&] { return h.ctl->connection_count() == 2; }));
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
  ck_assert(h.ctl_event(Kind::refused) != nullptr);
  ck_assert_contains(h.ctl_event(Kind::refused)->status.message, "to make room");
  bool eof = false;
  ck_assert(h.run_until([&] {
    (void)s1.read(eof);
    return eof;
  }));  // the oldest went
}
END_TEST

START_TEST(test_extra_fds_polled) {
  Harness h;
  h.open();
  int p[2];
  ck_assert(pipe(p) == 0);
  UniqueFd r(p[0]), w(p[1]);
  std::vector<pollfd> extra{{r.get(), POLLIN, 0}};
  h.ctl->poll_once(h.now, 0, &extra);
  ck_assert_int_eq(extra[0].revents, 0);
  ck_assert(::write(w.get(), "x", 1) == 1);
  // A wake-up through the pipe ends the wait early.
  h.ctl->poll_once(h.now, 5000, &extra);
  ck_assert(extra[0].revents & POLLIN);
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  extra[0].revents = 0;
  node.poll_once(h.now, 5000, &extra);
  ck_assert(extra[0].revents & POLLIN);
}
END_TEST

START_TEST(test_ipv6_loopback) {
  if (!ipv6_loopback_available()) {
    std::printf("# no IPv6 loopback here: test_ipv6_loopback checks nothing\n");
    return;
  }
  Harness h;
  h.host = "::1";
  h.open();
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
  ck_assert_contains(h.ctl_event(Kind::session_opened)->address, "[::1]");
  ck_assert_status_ok(node.send(sample_report()));
  ck_assert(h.run_until([&] { return h.ctl_event(Kind::message) != nullptr; }));
}
END_TEST

START_TEST(test_wildcard_listener_takes_ipv4) {
  Harness h;
  h.host = "";
  h.open();
  h.host = "127.0.0.1";
  ClientEndpoint &node = h.client(h.root, PeerRole::node, "n1");
  ck_assert(h.run_until([&] { return node.established(); }));
}
END_TEST

Suite *endpoint_suite() {
  Suite *s = suite_create("proto_endpoint");
  TCase *ok = tcase_create("sessions");
  tcase_set_timeout(ok, 30);
  tcase_add_test(ok, test_node_report_and_grant);
  tcase_add_test(ok, test_many_reports_in_order);
  tcase_add_test(ok, test_admin_status_and_budget);
  tcase_add_test(ok, test_non_admin_set_budget_denied);
  tcase_add_test(ok, test_node_uid_refused);
  tcase_add_test(ok, test_send_rules);
  tcase_add_test(ok, test_extra_fds_polled);
  tcase_add_test(ok, test_ipv6_loopback);
  tcase_add_test(ok, test_wildcard_listener_takes_ipv4);
  suite_add_tcase(s, ok);
  TCase *bad = tcase_create("attacks");
  tcase_set_timeout(bad, 30);
  tcase_add_test(bad, test_forged_frame_closes_session);
  tcase_add_test(bad, test_replayed_frame_closes_session);
  tcase_add_test(bad, test_truncated_message_not_delivered);
  tcase_add_test(bad, test_oversize_and_out_of_role_frames);
  tcase_add_test(bad, test_report_for_another_node);
  tcase_add_test(bad, test_garbage_and_handshake_timeout);
  tcase_add_test(bad, test_connection_limit);
  suite_add_tcase(s, bad);
  TCase *life = tcase_create("lifecycle");
  tcase_set_timeout(life, 60);
  tcase_add_test(life, test_idle_timeout);
  tcase_add_test(life, test_session_replaced);
  tcase_add_test(life, test_reconnect_with_backoff);
  tcase_add_test(life, test_admin_one_request_in_work);
  tcase_add_test(life, test_admin_sessions_per_uid);
  tcase_add_test(life, test_admin_request_rate);
  tcase_add_test(life, test_admin_idle_timeout);
  tcase_add_test(life, test_pending_connections_bounded);
  tcase_add_test(life, test_limit_evicts_oldest_pending);
  tcase_add_test(life, test_hello_rate_per_address);
  suite_add_tcase(s, life);
  return s;
}

int main() { return pgtest::run_suite(endpoint_suite()); }
