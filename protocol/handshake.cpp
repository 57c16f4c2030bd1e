#include "protocol/handshake.hpp"

#include <algorithm>
#include <new>

#include "protocol/frame.hpp"
#include "protocol/mac.hpp"
#include "protocol/wire.hpp"

namespace powergrad::proto {

namespace {

constexpr char kHelloContext[] = "powergrad/hello/v1";
constexpr char kWelcomeContext[] = "powergrad/welcome/v1";
// Our binding payloads are a few hundred bytes; anything much larger is not ours.
constexpr std::size_t kMaxBindingSize = 1024;

// Wipes a string's bytes (it held a key) before it is freed.
struct WipeOnExit {
  std::string &s;
  ~WipeOnExit() { wipe(s.data(), s.size()); }
};

std::string uid_list(const std::vector<uid_t> &uids) {
  std::string s;
  for (uid_t u : uids) s += (s.empty() ? "" : ", ") + std::to_string(u);
  return s.empty() ? "none" : s;
}

bool contains(const std::vector<uid_t> &uids, uid_t uid) {
  return std::find(uids.begin(), uids.end(), uid) != uids.end();
}

Status hello_binding(PeerRole role, const std::string &name, std::uint64_t incarnation,
                     const std::array<std::uint8_t, kNonceSize> &nonce, std::string &out) {
  out.clear();
  WireWriter w(out);
  w.bytes(kHelloContext, sizeof kHelloContext - 1);
  w.u8(static_cast<std::uint8_t>(role));
  w.str(name, kMaxNameLen, TextKind::ident, "hello.name");
  w.u64(incarnation);
  w.bytes(nonce.data(), nonce.size());
  return w.status();
}

struct WelcomeBinding {
  std::uint64_t session_id = 0;
  Key key{};
  std::array<std::uint8_t, kNonceSize> nonce{};
  PeerRole role = PeerRole::node;
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  bool may_admin = false;
};

Status encode_welcome_binding(const WelcomeBinding &b, std::string &out) {
  out.clear();
  WireWriter w(out);
  w.bytes(kWelcomeContext, sizeof kWelcomeContext - 1);
  w.u64(b.session_id);
  w.bytes(b.key.data(), b.key.size());
  w.bytes(b.nonce.data(), b.nonce.size());
  w.u8(static_cast<std::uint8_t>(b.role));
  w.str(b.name, kMaxNameLen, TextKind::ident, "welcome.name");
  w.u32(static_cast<std::uint32_t>(b.uid));
  w.u32(static_cast<std::uint32_t>(b.gid));
  w.boolean(b.may_admin);
  return w.status();
}

Status decode_welcome_binding(const std::string &payload, WelcomeBinding &b) {
  if (payload.size() > kMaxBindingSize)
    return Status::error(Errc::binding_mismatch, "WELCOME credential payload of " +
                                                     std::to_string(payload.size()) +
                                                     " bytes is not a PowerGrad WELCOME");
  WireReader r(reinterpret_cast<const std::uint8_t *>(payload.data()), payload.size());
  char context[sizeof kWelcomeContext - 1];
  r.bytes(context, sizeof context, "welcome.context");
  if (r.ok() && !std::equal(context, context + sizeof context, kWelcomeContext))
    return Status::error(Errc::binding_mismatch,
                         "WELCOME credential does not carry a PowerGrad WELCOME");
  b.session_id = r.u64("welcome.session_id");
  r.bytes(b.key.data(), b.key.size(), "welcome.key");
  r.bytes(b.nonce.data(), b.nonce.size(), "welcome.nonce");
  const std::uint8_t role = r.u8("welcome.role");
  b.role = static_cast<PeerRole>(role);
  b.name = r.str(kMaxNameLen, TextKind::ident, "welcome.name");
  b.uid = static_cast<uid_t>(r.u32("welcome.uid"));
  b.gid = static_cast<gid_t>(r.u32("welcome.gid"));
  b.may_admin = r.boolean("welcome.may_admin");
  r.expect_end("welcome credential payload");
  if (!r.ok())
    return Status::error(Errc::binding_mismatch,
                         "WELCOME credential payload: " + r.status().to_string());
  return {};
}

Status with_context(Status st, const std::string &context) {
  if (!st.ok()) st.message = context + st.message;
  return st;
}

}  // namespace

ServerPolicy ServerPolicy::standard(uid_t slurm_user_uid, std::vector<uid_t> extra_admin_uids) {
  ServerPolicy p;
  p.node_uids = {0};
  if (slurm_user_uid != 0) p.node_uids.push_back(slurm_user_uid);
  p.admin_uids = p.node_uids;
  for (uid_t u : extra_admin_uids)
    if (!contains(p.admin_uids, u)) p.admin_uids.push_back(u);
  return p;
}

Status accept_hello(Authenticator &auth, const ServerPolicy &policy, const std::uint8_t *frame,
                    std::size_t size, AcceptedSession &out) {
  try {
    Frame f;
    Status st = decode_frame(frame, size, f);
    if (!st.ok()) return st;
    if (f.header.type != MsgType::hello)
      return Status::error(
          Errc::unexpected_type,
          std::string(type_name(f.header.type)) + " before the session is open (expecting HELLO)");
    if (f.header.session_id != 0 || f.header.seq != 0)
      return Status::error(Errc::bad_session, "HELLO must carry session 0 and sequence 0");
    const Mac zero{};
    if (f.mac != zero) return Status::error(Errc::bad_mac, "HELLO trailer must be zero");
    const Hello &hello = std::get<Hello>(f.message);
    const std::string who =
        std::string("HELLO from ") + role_name(hello.role) + " '" + hello.name + "' (claimed): ";

    CredentialInfo cred;
    st = auth.decode(hello.credential, cred);
    if (!st.ok()) return with_context(st, who + "credential: ");

    std::string expected;
    st = hello_binding(hello.role, hello.name, hello.incarnation, hello.nonce, expected);
    if (!st.ok()) return with_context(st, who);
    if (cred.payload != expected)
      return Status::error(Errc::binding_mismatch,
                           who +
                               "credential payload does not match the HELLO's fields "
                               "(credential lifted from another message)");

    const bool admin_uid = contains(policy.admin_uids, cred.uid);
    if (hello.role == PeerRole::node && !contains(policy.node_uids, cred.uid))
      return Status::error(Errc::uid_not_allowed, who + "uid " + std::to_string(cred.uid) +
                                                      " may not open a node session (allowed: " +
                                                      uid_list(policy.node_uids) + ")");

    WelcomeBinding b;
    std::string err;
    do {
      if (!random_bytes(&b.session_id, sizeof b.session_id, err))
        return Status::error(Errc::internal, err);
    } while (b.session_id == 0);
    if (!random_bytes(b.key.data(), b.key.size(), err)) return Status::error(Errc::internal, err);
    b.nonce = hello.nonce;
    b.role = hello.role;
    b.name = hello.name;
    b.uid = cred.uid;
    b.gid = cred.gid;
    b.may_admin = hello.role == PeerRole::admin && admin_uid;

    std::string binding;
    WipeOnExit wipe_binding{binding};
    st = encode_welcome_binding(b, binding);
    if (!st.ok()) {
      wipe(b.key.data(), b.key.size());
      return with_context(st, who);
    }
    Welcome welcome;
    st = auth.encode(binding, cred.uid, welcome.credential);
    if (!st.ok()) {
      wipe(b.key.data(), b.key.size());
      return with_context(st, "WELCOME credential: ");
    }
    AcceptedSession acc;
    st = SecureChannel::create(b.session_id, b.key, Side::server, acc.channel);
    wipe(b.key.data(), b.key.size());
    if (!st.ok()) return st;
    st = acc.channel.seal(welcome, acc.welcome_frame);
    if (!st.ok()) return with_context(st, "WELCOME: ");
    acc.peer.role = hello.role;
    acc.peer.name = hello.name;
    acc.peer.incarnation = hello.incarnation;
    acc.peer.uid = cred.uid;
    acc.peer.gid = cred.gid;
    acc.peer.may_admin = b.may_admin;
    acc.peer.session_id = b.session_id;
    out = std::move(acc);
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory accepting a HELLO");
  } catch (const std::exception &e) {
    return Status::error(Errc::internal, std::string("accepting a HELLO: ") + e.what());
  }
}

std::string refusal_frame(const Status &why) {
  ErrorMessage m;
  m.code = static_cast<std::uint16_t>(why.ok() ? Errc::internal : why.code);
  // Only allowed characters, and within the limit, so that the ERROR always encodes.
  for (char c : why.message) {
    if (m.message.size() == kMaxMessageLen) break;
    const auto u = static_cast<unsigned char>(c);
    m.message.push_back(u == '\t' || (u >= 0x20 && u != 0x7f) ? c : '?');
  }
  std::string out;
  try {
    if (!encode_frame(m, 0, 0, nullptr, out).ok()) out.clear();
  } catch (...) {
    out.clear();
  }
  return out;
}

Status ClientHandshake::start(Authenticator &auth, std::string &hello_frame) {
  try {
    std::string err;
    if (!random_bytes(nonce_.data(), nonce_.size(), err)) return Status::error(Errc::internal, err);
    started_ = true;
    Hello h;
    h.role = params_.role;
    h.name = params_.name;
    h.incarnation = params_.incarnation;
    h.nonce = nonce_;
    std::string binding;
    Status st = hello_binding(h.role, h.name, h.incarnation, h.nonce, binding);
    if (!st.ok()) return st;
    st = auth.encode(binding, std::nullopt, h.credential);
    if (!st.ok()) return with_context(st, "HELLO credential: ");
    hello_frame.clear();
    return encode_frame(h, 0, 0, nullptr, hello_frame);
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory making a HELLO");
  }
}

Status ClientHandshake::finish(Authenticator &auth, const std::uint8_t *frame, std::size_t size,
                               SecureChannel &channel, SessionInfo &info) {
  try {
    if (!started_) return Status::error(Errc::no_session, "no HELLO was sent");
    Frame f;
    Status st = decode_frame(frame, size, f);
    if (!st.ok()) return st;
    if (f.header.type == MsgType::error && f.header.session_id == 0) {
      const auto &e = std::get<ErrorMessage>(f.message);
      // Code 0 would read as success: a refusal is never that.
      const Errc code = e.code == 0 ? Errc::auth_failed : static_cast<Errc>(e.code);
      return Status::error(code, std::string("controller refused the HELLO (unauthenticated "
                                             "answer): ") +
                                     errc_name(e.code) + ": " + e.message);
    }
    if (f.header.type != MsgType::welcome)
      return Status::error(Errc::unexpected_type, std::string(type_name(f.header.type)) +
                                                      " in answer to HELLO (expecting WELCOME)");
    if (f.header.session_id == 0 || f.header.seq != 1)
      return Status::error(Errc::bad_session, "WELCOME must carry a session id and sequence 1");
    const auto &welcome = std::get<Welcome>(f.message);

    CredentialInfo cred;
    st = auth.decode(welcome.credential, cred);
    if (!st.ok()) return with_context(st, "WELCOME credential: ");
    std::string &payload = cred.payload;
    WipeOnExit wipe_payload{payload};
    if (!contains(params_.controller_uids, cred.uid))
      return Status::error(
          Errc::uid_not_allowed,
          "WELCOME credential made by uid " + std::to_string(cred.uid) +
              ", not the controller's (allowed: " + uid_list(params_.controller_uids) + ")");
    WelcomeBinding b;
    st = decode_welcome_binding(payload, b);
    if (!st.ok()) return st;
    struct KeyWipe {
      Key &k;
      ~KeyWipe() { wipe(k.data(), k.size()); }
    } key_wipe{b.key};
    if (!equal_ct(b.nonce.data(), nonce_.data(), nonce_.size()))
      return Status::error(Errc::binding_mismatch, "WELCOME answers another HELLO (nonce differs)");
    if (b.role != params_.role || b.name != params_.name)
      return Status::error(
          Errc::binding_mismatch,
          "WELCOME is for " + std::string(role_name(b.role)) + " '" + b.name + "', not for us");
    if (b.session_id != f.header.session_id)
      return Status::error(Errc::binding_mismatch,
                           "WELCOME header's session id differs from its credential's");
    SecureChannel ch;
    st = SecureChannel::create(b.session_id, b.key, Side::client, ch);
    if (!st.ok()) return st;
    Frame verified;
    st = ch.open(frame, size, verified);
    if (!st.ok()) return with_context(st, "WELCOME: ");
    channel = std::move(ch);
    info.session_id = b.session_id;
    info.uid = b.uid;
    info.may_admin = b.may_admin;
    info.controller_uid = cred.uid;
    started_ = false;  // a second WELCOME for the same HELLO is not accepted
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory checking a WELCOME");
  } catch (const std::exception &e) {
    return Status::error(Errc::internal, std::string("checking a WELCOME: ") + e.what());
  }
}

}  // namespace powergrad::proto
