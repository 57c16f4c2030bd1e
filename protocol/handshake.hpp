// Opening a session: one munge credential each way, then HMAC keys (channel.hpp).
//
//   client                                         controller
//   HELLO  seq 0, session 0, zero trailer  ------>
//     role, name, incarnation, nonce N (16 random bytes),
//     credential C1 = munge(binding "powergrad/hello/v1", role, name, incarnation, N)
//                                                  decode C1 with munge (replayed, expired,
//                                                  rewound, tampered: refused); its payload
//                                                  must equal the binding of the HELLO's
//                                                  fields; uid U from munge must be allowed
//                                                  for the role (node: root or SlurmUser);
//                                                  session id S (random, != 0), key K
//                                                  (32 bytes from getrandom)
//          <------  WELCOME seq 1, session S, HMAC with the server->client key from K
//     credential C2 = munge restricted to uid U ("powergrad/welcome/v1", S, K, N, role,
//     name, U, gid, may_admin)
//   decode C2 (only uid U can); its encoder's uid must be root or SlurmUser (anyone can
//   make a credential, only the controller's uid makes a valid WELCOME); N, role, name and
//   S must match; then the WELCOME's own MAC must verify with K.
//
// After that both sides hold K and the session's peer identity: the controller knows the
// client's uid from C1 (what an admin session may do is decided from it), the client knows
// it reached the real controller. A captured HELLO replayed to the controller fails in
// munged's replay cache; a HELLO raced ahead of the real one gets a WELCOME nobody but U
// can read. Any refusal gets an unauthenticated ERROR frame (session 0) and a close.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/auth.hpp"
#include "protocol/channel.hpp"
#include "protocol/messages.hpp"
#include "protocol/status.hpp"

namespace powergrad::proto {

// Who is at the other end of an established session, as munge vouched for it.
struct PeerIdentity {
  PeerRole role = PeerRole::node;
  std::string name;  // node name (node role) or client host (admin role), from the HELLO
  std::uint64_t incarnation = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  bool may_admin = false;  // admin role and an admin uid: may change the budget
  std::uint64_t session_id = 0;
};

// The controller's rules for HELLOs.
struct ServerPolicy {
  std::vector<uid_t> node_uids;   // may open node sessions: root and SlurmUser
  std::vector<uid_t> admin_uids;  // admin sessions of these uids may change things

  // root and SlurmUser may do both; extra_admin_uids (PowerGrad's admin users) may change
  // things through admin sessions. Everyone may open an admin session to read status.
  static ServerPolicy standard(uid_t slurm_user_uid, std::vector<uid_t> extra_admin_uids = {});
};

struct AcceptedSession {
  PeerIdentity peer;
  SecureChannel channel;      // server side; its first sequence number went to the WELCOME
  std::string welcome_frame;  // send this
};

// Controller side: checks one complete HELLO frame and, when everything holds, opens the
// session. Errors: any decode_frame error; unexpected_type (not a HELLO); bad_session or
// bad_mac (HELLO not at session 0 / seq 0 / zero trailer); the authenticator's cred_* and
// auth_* codes; binding_mismatch; uid_not_allowed; internal.
Status accept_hello(Authenticator &auth, const ServerPolicy &policy, const std::uint8_t *frame,
                    std::size_t size, AcceptedSession &out);

// An unauthenticated ERROR frame (session 0) telling a client why its HELLO was refused.
std::string refusal_frame(const Status &why);

struct ClientParams {
  PeerRole role = PeerRole::node;
  std::string name;
  std::uint64_t incarnation = 0;
  std::vector<uid_t> controller_uids;  // whose WELCOME is trusted: root and SlurmUser
};

struct SessionInfo {
  std::uint64_t session_id = 0;
  uid_t uid = static_cast<uid_t>(-1);  // ours, as the controller saw it
  bool may_admin = false;
  uid_t controller_uid = static_cast<uid_t>(-1);
};

class ClientHandshake {
 public:
  explicit ClientHandshake(ClientParams params) : params_(std::move(params)) {}

  // A HELLO frame with a fresh nonce and a fresh credential (one munge encode). Each call
  // starts over: only the WELCOME answering the latest HELLO is accepted.
  Status start(Authenticator &auth, std::string &hello_frame);

  // Checks one complete frame received in answer (one munge decode). A WELCOME that holds
  // gives the channel; an ERROR refusing the HELLO gives its code and text (marked
  // unauthenticated: it is advice, not proof). Errors as accept_hello, plus
  // unexpected_type, bad_session, uid_not_allowed for a WELCOME not from the controller.
  Status finish(Authenticator &auth, const std::uint8_t *frame, std::size_t size,
                SecureChannel &channel, SessionInfo &info);

  const ClientParams &params() const { return params_; }

 private:
  ClientParams params_;
  std::array<std::uint8_t, kNonceSize> nonce_{};
  bool started_ = false;
};

}  // namespace powergrad::proto
