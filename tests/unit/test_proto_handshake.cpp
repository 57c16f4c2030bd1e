// The session handshake with the fake munge: who may open what, and every way a HELLO or
// a WELCOME can be replayed, expired, tampered with, lifted or forged.
#include <check.h>

#include <memory>

#include "protocol/fake_auth.hpp"
#include "protocol/handshake.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/test_proto_util.hpp"

using namespace pgproto_test;

namespace {

constexpr uid_t kSlurmUid = 64030;
constexpr uid_t kUserUid = 1000;
constexpr uid_t kAdminUid = 1001;

struct World {
  std::shared_ptr<FakeMungeRealm> realm = std::make_shared<FakeMungeRealm>(300.0);
  FakeAuthenticator controller{realm, kSlurmUid, kSlurmUid};
  FakeAuthenticator node_root{realm, 0, 0};
  FakeAuthenticator user{realm, kUserUid, 100};
  FakeAuthenticator admin{realm, kAdminUid, 100};
  ServerPolicy policy = ServerPolicy::standard(kSlurmUid, {kAdminUid});
};

ClientParams node_params(const std::string &name = "n1") {
  ClientParams p;
  p.role = PeerRole::node;
  p.name = name;
  p.incarnation = 1700000000;
  p.controller_uids = {0, kSlurmUid};
  return p;
}

ClientParams admin_params() {
  ClientParams p = node_params("login1");
  p.role = PeerRole::admin;
  p.incarnation = 0;
  return p;
}

std::string hello_from(ClientHandshake &hs, Authenticator &auth) {
  std::string frame;
  const Status st = hs.start(auth, frame);
  ck_assert_msg(st.ok(), "start: %s", st.to_string().c_str());
  return frame;
}

Status accept(World &w, const std::string &hello, AcceptedSession &out) {
  return accept_hello(w.controller, w.policy, bytes_of(hello), hello.size(), out);
}

Status finish(ClientHandshake &hs, Authenticator &auth, const std::string &frame, SecureChannel &ch,
              SessionInfo &info) {
  return hs.finish(auth, bytes_of(frame), frame.size(), ch, info);
}

// Re-encodes a HELLO frame after changing its decoded fields.
std::string rewrite_hello(const std::string &frame, void (*change)(Hello &)) {
  Frame f;
  ck_assert_status_ok(decode(frame, f));
  Hello h = std::get<Hello>(f.message);
  change(h);
  std::string out;
  ck_assert_status_ok(encode_frame(h, 0, 0, nullptr, out));
  return out;
}

}  // namespace

START_TEST(test_node_session) {
  World w;
  ClientHandshake hs(node_params());
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello_from(hs, w.node_root), acc));
  ck_assert(acc.peer.role == PeerRole::node);
  ck_assert_std_str_eq(acc.peer.name, "n1");
  ck_assert_uint_eq(acc.peer.incarnation, 1700000000);
  ck_assert_uint_eq(acc.peer.uid, 0);
  ck_assert(!acc.peer.may_admin);  // node sessions never administer
  ck_assert(acc.peer.session_id != 0);
  SecureChannel ch;
  SessionInfo info;
  ck_assert_status_ok(finish(hs, w.node_root, acc.welcome_frame, ch, info));
  ck_assert_uint_eq(info.session_id, acc.peer.session_id);
  ck_assert_uint_eq(info.uid, 0);
  ck_assert_uint_eq(info.controller_uid, kSlurmUid);
  // Both sides now hold the same keys.
  std::string f;
  ck_assert_status_ok(ch.seal(sample_report(), f));
  Frame got;
  ck_assert_status_ok(acc.channel.open(bytes_of(f), f.size(), got));
  f.clear();
  ck_assert_status_ok(acc.channel.seal(sample_grant(), f));
  ck_assert_status_ok(ch.open(bytes_of(f), f.size(), got));
  ck_assert_uint_eq(got.header.seq, 2);  // the WELCOME was the server's 1
}
END_TEST

START_TEST(test_slurm_user_node) {
  World w;
  FakeAuthenticator slurm_node(w.realm, kSlurmUid, kSlurmUid);
  ClientHandshake hs(node_params());
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello_from(hs, slurm_node), acc));
  ck_assert_uint_eq(acc.peer.uid, kSlurmUid);
}
END_TEST

START_TEST(test_user_may_not_be_node) {
  World w;
  ClientHandshake hs(node_params());
  AcceptedSession acc;
  const Status st = accept(w, hello_from(hs, w.user), acc);
  ck_assert_errc(st, Errc::uid_not_allowed);
  ck_assert_contains(st.message, "uid 1000 may not open a node session");
  // The client sees the refusal as a status with the controller's code.
  const std::string refusal = refusal_frame(st);
  SecureChannel ch;
  SessionInfo info;
  const Status got = finish(hs, w.user, refusal, ch, info);
  ck_assert_errc(got, Errc::uid_not_allowed);
  ck_assert_contains(got.message, "unauthenticated");
  ck_assert(!ch.established());
}
END_TEST

START_TEST(test_admin_sessions) {
  World w;
  // Any user may open an admin session (to read status), but not change anything.
  ClientHandshake user_hs(admin_params());
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello_from(user_hs, w.user), acc));
  ck_assert(acc.peer.role == PeerRole::admin);
  ck_assert_uint_eq(acc.peer.uid, kUserUid);
  ck_assert(!acc.peer.may_admin);
  SecureChannel ch;
  SessionInfo info;
  ck_assert_status_ok(finish(user_hs, w.user, acc.welcome_frame, ch, info));
  ck_assert(!info.may_admin);
  // Configured admins, root and SlurmUser may.
  for (Authenticator *a :
       {static_cast<Authenticator *>(&w.admin), static_cast<Authenticator *>(&w.node_root),
        static_cast<Authenticator *>(&w.controller)}) {
    ClientHandshake hs(admin_params());
    AcceptedSession a_acc;
    ck_assert_status_ok(accept(w, hello_from(hs, *a), a_acc));
    ck_assert(a_acc.peer.may_admin);
    ck_assert_status_ok(finish(hs, *a, a_acc.welcome_frame, ch, info));
    ck_assert(info.may_admin);
  }
}
END_TEST

START_TEST(test_policy_standard) {
  const ServerPolicy p = ServerPolicy::standard(0, {5, 5, 0});
  ck_assert_uint_eq(p.node_uids.size(), 1);  // root once, SlurmUser=root
  ck_assert_uint_eq(p.admin_uids.size(), 2);
}
END_TEST

START_TEST(test_replayed_hello) {
  World w;
  ClientHandshake hs(node_params());
  const std::string hello = hello_from(hs, w.node_root);
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello, acc));
  ck_assert_errc(accept(w, hello, acc), Errc::cred_replayed);
}
END_TEST

START_TEST(test_expired_and_rewound_hello) {
  World w;
  ClientHandshake hs(node_params());
  std::string hello = hello_from(hs, w.node_root);
  w.realm->set_now(w.realm->now() + 301.0);
  AcceptedSession acc;
  ck_assert_errc(accept(w, hello, acc), Errc::cred_expired);
  hello = hello_from(hs, w.node_root);
  w.realm->set_now(w.realm->now() - 60.0);  // the controller's clock is behind
  ck_assert_errc(accept(w, hello, acc), Errc::cred_rewound);
}
END_TEST

START_TEST(test_tampered_credential) {
  World w;
  ClientHandshake hs(node_params());
  const std::string hello = rewrite_hello(
      hello_from(hs, w.node_root), [](Hello &h) { h.credential[h.credential.size() - 3] ^= 1; });
  AcceptedSession acc;
  ck_assert_errc(accept(w, hello, acc), Errc::cred_invalid);
}
END_TEST

START_TEST(test_binding_mismatch) {
  // A valid credential moved into a HELLO with other fields (another node name, another
  // nonce, another role) does not vouch for them.
  World w;
  void (*changes[])(Hello &) = {
      [](Hello &h) { h.name = "n2"; },
      [](Hello &h) { h.nonce[0] ^= 1; },
      [](Hello &h) { h.incarnation += 1; },
      [](Hello &h) { h.role = PeerRole::admin; },
  };
  for (auto change : changes) {
    ClientHandshake hs(node_params());
    AcceptedSession acc;
    const Status st = accept(w, rewrite_hello(hello_from(hs, w.node_root), change), acc);
    ck_assert_errc(st, Errc::binding_mismatch);
  }
}
END_TEST

START_TEST(test_hello_frame_rules) {
  World w;
  ClientHandshake hs(node_params());
  std::string hello = hello_from(hs, w.node_root);
  AcceptedSession acc;
  std::string bad = hello;
  bad[24] = 1;  // session id
  ck_assert_errc(accept(w, bad, acc), Errc::bad_session);
  bad = hello;
  bad[bad.size() - 1] = 1;  // trailer must be zero
  ck_assert_errc(accept(w, bad, acc), Errc::bad_mac);
  std::string grant;
  ck_assert_status_ok(encode_frame(sample_grant(), 0, 0, nullptr, grant));
  ck_assert_errc(accept(w, grant, acc), Errc::unexpected_type);
  ck_assert_errc(accept(w, hello.substr(0, hello.size() - 1), acc), Errc::truncated);
}
END_TEST

START_TEST(test_munge_down) {
  World w;
  ClientHandshake hs(node_params());
  const std::string hello = hello_from(hs, w.node_root);
  w.realm->set_available(false);
  AcceptedSession acc;
  ck_assert_errc(accept(w, hello, acc), Errc::auth_unavailable);
  std::string frame;
  ck_assert_errc(hs.start(w.node_root, frame), Errc::auth_unavailable);
}
END_TEST

START_TEST(test_welcome_only_for_its_uid) {
  // The WELCOME's credential is restricted to the client's uid: another user who captured
  // it cannot read the session key.
  World w;
  ClientHandshake hs(admin_params());
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello_from(hs, w.admin), acc));
  ClientHandshake thief_hs(admin_params());
  std::string unused;
  ck_assert_status_ok(thief_hs.start(w.user, unused));
  SecureChannel ch;
  SessionInfo info;
  ck_assert_errc(finish(hs, w.user, acc.welcome_frame, ch, info), Errc::cred_unauthorized);
  ck_assert(!ch.established());
}
END_TEST

START_TEST(test_welcome_from_impostor) {
  // A user runs a fake controller: it can make a credential restricted to root, but not
  // one encoded by root or SlurmUser.
  World w;
  ClientHandshake hs(node_params());
  const std::string hello = hello_from(hs, w.node_root);
  FakeAuthenticator impostor_auth(w.realm, kUserUid, 100);
  ServerPolicy open_policy = w.policy;
  open_policy.node_uids.push_back(kUserUid);
  AcceptedSession acc;
  ck_assert_status_ok(accept_hello(impostor_auth, open_policy, bytes_of(hello), hello.size(), acc));
  SecureChannel ch;
  SessionInfo info;
  const Status st = finish(hs, w.node_root, acc.welcome_frame, ch, info);
  ck_assert_errc(st, Errc::uid_not_allowed);
  ck_assert_contains(st.message, "not the controller's");
}
END_TEST

START_TEST(test_welcome_for_another_hello) {
  World w;
  ClientHandshake hs(node_params());
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello_from(hs, w.node_root), acc));
  // The client has started over (new nonce) before the old WELCOME arrived.
  std::string again;
  ck_assert_status_ok(hs.start(w.node_root, again));
  SecureChannel ch;
  SessionInfo info;
  ck_assert_errc(finish(hs, w.node_root, acc.welcome_frame, ch, info), Errc::binding_mismatch);
  // A WELCOME for another node's HELLO.
  ClientHandshake other(node_params("n2"));
  AcceptedSession acc2;
  ck_assert_status_ok(accept(w, hello_from(other, w.node_root), acc2));
  ClientHandshake mine(node_params("n1"));
  std::string unused;
  ck_assert_status_ok(mine.start(w.node_root, unused));
  ck_assert_errc(finish(mine, w.node_root, acc2.welcome_frame, ch, info), Errc::binding_mismatch);
}
END_TEST

START_TEST(test_welcome_tampered) {
  World w;
  ClientHandshake hs(node_params());
  AcceptedSession acc;
  ck_assert_status_ok(accept(w, hello_from(hs, w.node_root), acc));
  // The session id in the header no longer matches the credential's.
  std::string bad = acc.welcome_frame;
  bad[24] ^= 1;
  SecureChannel ch;
  SessionInfo info;
  ck_assert_errc(finish(hs, w.node_root, bad, ch, info), Errc::binding_mismatch);
  // The trailer is checked with the key from the credential.
  ClientHandshake hs2(node_params());
  AcceptedSession acc2;
  ck_assert_status_ok(accept(w, hello_from(hs2, w.node_root), acc2));
  bad = acc2.welcome_frame;
  bad[bad.size() - 5] ^= 1;
  ck_assert_errc(finish(hs2, w.node_root, bad, ch, info), Errc::bad_mac);
  // A second delivery of a WELCOME that was accepted is refused.
  ClientHandshake hs3(node_params());
  AcceptedSession acc3;
  ck_assert_status_ok(accept(w, hello_from(hs3, w.node_root), acc3));
  ck_assert_status_ok(finish(hs3, w.node_root, acc3.welcome_frame, ch, info));
  ck_assert_errc(finish(hs3, w.node_root, acc3.welcome_frame, ch, info), Errc::no_session);
}
END_TEST

START_TEST(test_welcome_wrong_frame) {
  World w;
  ClientHandshake hs(node_params());
  std::string unused = hello_from(hs, w.node_root);
  std::string grant;
  ck_assert_status_ok(encode_frame(sample_grant(), 1, 5, nullptr, grant));
  SecureChannel ch;
  SessionInfo info;
  ck_assert_errc(finish(hs, w.node_root, grant, ch, info), Errc::unexpected_type);
  std::string w0;
  ck_assert_status_ok(encode_frame(Welcome{"FAKEMUNGE:00:"}, 1, 0, nullptr, w0));
  ck_assert_errc(finish(hs, w.node_root, w0, ch, info), Errc::bad_session);
  // An ERROR with code 0 is still a refusal.
  std::string e0;
  ck_assert_status_ok(encode_frame(ErrorMessage{0, "nope"}, 0, 0, nullptr, e0));
  ck_assert(!finish(hs, w.node_root, e0, ch, info).ok());
  ClientHandshake fresh(node_params());
  ck_assert_errc(finish(fresh, w.node_root, e0, ch, info), Errc::no_session);
}
END_TEST

START_TEST(test_refusal_frame_sanitised) {
  const std::string f =
      refusal_frame(Status::error(Errc::cred_invalid, "bad\ncred\x01" + std::string(3000, 'x')));
  Frame got;
  ck_assert_status_ok(decode(f, got));
  const auto &e = std::get<ErrorMessage>(got.message);
  ck_assert_uint_eq(e.code, static_cast<unsigned>(Errc::cred_invalid));
  ck_assert_uint_eq(e.message.size(), kMaxMessageLen);
  ck_assert(e.message.find('\n') == std::string::npos);
  ck_assert_uint_eq(got.header.session_id, 0);
}
END_TEST

Suite *handshake_suite() {
  Suite *s = suite_create("proto_handshake");
  TCase *ok = tcase_create("sessions");
  tcase_add_test(ok, test_node_session);
  tcase_add_test(ok, test_slurm_user_node);
  tcase_add_test(ok, test_user_may_not_be_node);
  tcase_add_test(ok, test_admin_sessions);
  tcase_add_test(ok, test_policy_standard);
  suite_add_tcase(s, ok);
  TCase *h = tcase_create("hello_attacks");
  tcase_add_test(h, test_replayed_hello);
  tcase_add_test(h, test_expired_and_rewound_hello);
  tcase_add_test(h, test_tampered_credential);
  tcase_add_test(h, test_binding_mismatch);
  tcase_add_test(h, test_hello_frame_rules);
  tcase_add_test(h, test_munge_down);
  suite_add_tcase(s, h);
  TCase *wl = tcase_create("welcome_attacks");
  tcase_add_test(wl, test_welcome_only_for_its_uid);
  tcase_add_test(wl, test_welcome_from_impostor);
  tcase_add_test(wl, test_welcome_for_another_hello);
  tcase_add_test(wl, test_welcome_tampered);
  tcase_add_test(wl, test_welcome_wrong_frame);
  tcase_add_test(wl, test_refusal_frame_sanitised);
  suite_add_tcase(s, wl);
  return s;
}

int main() { return pgtest::run_suite(handshake_suite()); }
