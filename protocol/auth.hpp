// Credentials from the cluster's trust root: munge in production, a fake in unit tests.
//
// The handshake uses an Authenticator twice per session and never again: the client's
// HELLO carries a credential proving its uid, and the controller's WELCOME carries one,
// restricted to that uid, holding the session key. munge costs ~200 us per credential
// here (a round trip to munged each), which is why per-frame authentication is an HMAC.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "protocol/status.hpp"

namespace powergrad::proto {

// What a valid credential vouches for.
struct CredentialInfo {
  std::string payload;
  uid_t uid = static_cast<uid_t>(-1);  // of the process that encoded it
  gid_t gid = static_cast<gid_t>(-1);
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;

  // Makes a credential carrying `payload` under the calling process's uid and gid. The
  // payload is encrypted (it may be a session key). With restrict_uid, only a process of
  // that uid can decode it (munge's UID restriction).
  // Errors: auth_unavailable (daemon not reachable), auth_failed. Never throws.
  virtual Status encode(std::string_view payload, std::optional<uid_t> restrict_uid,
                        std::string &credential) = 0;

  // Checks a credential and returns what it vouches for. Errors: cred_invalid (tampered or
  // not a credential), cred_expired, cred_rewound, cred_replayed (second decode),
  // cred_unauthorized (restricted to another uid), auth_unavailable, auth_failed.
  // Never throws.
  virtual Status decode(const std::string &credential, CredentialInfo &info) = 0;
};

// munge through libmunge. One context per call, so an instance may be used from several
// threads.
class MungeAuthenticator : public Authenticator {
 public:
  // socket_path: munged's socket; empty for libmunge's default (/run/munge/munge.socket.2).
  // ttl_s: lifetime of the credentials this side encodes; 0 for munged's default (300 s).
  explicit MungeAuthenticator(std::string socket_path = {}, int ttl_s = 0)
      : socket_path_(std::move(socket_path)), ttl_s_(ttl_s) {}

  Status encode(std::string_view payload, std::optional<uid_t> restrict_uid,
                std::string &credential) override;
  Status decode(const std::string &credential, CredentialInfo &info) override;

  const std::string &socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  int ttl_s_ = 0;
};

// The munge socket PowerGrad should use: $POWERGRAD_MUNGE_SOCKET if set and non-empty
// (the local test cluster and unit tests run a private munged), else empty (the default).
std::string munge_socket_from_env();

}  // namespace powergrad::proto
