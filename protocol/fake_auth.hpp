// A stand-in for munge in unit tests, simulators and benchmarks: no daemon, no root, and
// every failure munge can report can be provoked on purpose.
//
// A FakeMungeRealm plays munged (one per simulated cluster): it remembers the credentials
// it issued, under random handles, with their payload, uid, gid, restriction and time.
// Decoding checks them the way munged does: unknown or altered handle -> cred_invalid,
// older than the TTL -> cred_expired, encoded in the future -> cred_rewound, second decode
// -> cred_replayed, restricted to another uid -> cred_unauthorized. Time is the realm's own
// clock, set by the test. Each FakeAuthenticator is one process identity (uid, gid).
// Production code never constructs these.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "protocol/auth.hpp"

namespace powergrad::proto {

class FakeMungeRealm {
 public:
  explicit FakeMungeRealm(double ttl_s = 300.0) : ttl_s_(ttl_s) {}

  void set_now(double now_s);
  double now() const;
  // While down, every call fails with auth_unavailable (munged stopped).
  void set_available(bool available);
  std::size_t issued() const;

 private:
  friend class FakeAuthenticator;
  struct Entry {
    std::string payload;
    uid_t uid;
    gid_t gid;
    std::optional<uid_t> restrict_uid;
    double encoded_at_s;
    bool decoded = false;
  };
  mutable std::mutex mutex_;
  double ttl_s_;
  double now_s_ = 1000.0;
  bool available_ = true;
  std::map<std::string, Entry> entries_;
};

class FakeAuthenticator : public Authenticator {
 public:
  FakeAuthenticator(std::shared_ptr<FakeMungeRealm> realm, uid_t uid, gid_t gid)
      : realm_(std::move(realm)), uid_(uid), gid_(gid) {}

  Status encode(std::string_view payload, std::optional<uid_t> restrict_uid,
                std::string &credential) override;
  Status decode(const std::string &credential, CredentialInfo &info) override;

  uid_t uid() const { return uid_; }

 private:
  std::shared_ptr<FakeMungeRealm> realm_;
  uid_t uid_;
  gid_t gid_;
};

}  // namespace powergrad::proto
