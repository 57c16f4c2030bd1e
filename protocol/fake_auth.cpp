#include "protocol/fake_auth.hpp"

#include <new>

#include "protocol/mac.hpp"

namespace powergrad::proto {

namespace {

constexpr double kClockSkewS = 1.0;  // what munged tolerates before calling a credential rewound

}  // namespace

void FakeMungeRealm::set_now(double now_s) {
  std::lock_guard<std::mutex> lock(mutex_);
  now_s_ = now_s;
}

double FakeMungeRealm::now() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return now_s_;
}

void FakeMungeRealm::set_available(bool available) {
  std::lock_guard<std::mutex> lock(mutex_);
  available_ = available;
}

std::size_t FakeMungeRealm::issued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

Status FakeAuthenticator::encode(std::string_view payload, std::optional<uid_t> restrict_uid,
                                 std::string &credential) {
  try {
    // A random handle like munge's opaque base64: altering any character makes it unknown.
    std::uint8_t raw[16];
    std::string err;
    if (!random_bytes(raw, sizeof raw, err)) return Status::error(Errc::internal, err);
    static const char hex[] = "0123456789abcdef";
    std::string handle = "FAKEMUNGE:";
    for (std::uint8_t b : raw) {
      handle.push_back(hex[b >> 4]);
      handle.push_back(hex[b & 15]);
    }
    handle.push_back(':');
    std::lock_guard<std::mutex> lock(realm_->mutex_);
    if (!realm_->available_) return Status::error(Errc::auth_unavailable, "fake munged is down");
    realm_->entries_[handle] =
        FakeMungeRealm::Entry{std::string(payload), uid_, gid_, restrict_uid, realm_->now_s_};
    credential = std::move(handle);
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory in fake munge encode");
  }
}

Status FakeAuthenticator::decode(const std::string &credential, CredentialInfo &info) {
  try {
    std::lock_guard<std::mutex> lock(realm_->mutex_);
    if (!realm_->available_) return Status::error(Errc::auth_unavailable, "fake munged is down");
    auto it = realm_->entries_.find(credential);
    if (it == realm_->entries_.end())
      return Status::error(Errc::cred_invalid, "fake munge: invalid credential");
    FakeMungeRealm::Entry &e = it->second;
    if (e.encoded_at_s > realm_->now_s_ + kClockSkewS)
      return Status::error(Errc::cred_rewound, "fake munge: rewound credential");
    if (realm_->now_s_ > e.encoded_at_s + realm_->ttl_s_)
      return Status::error(Errc::cred_expired, "fake munge: expired credential");
    if (e.restrict_uid && *e.restrict_uid != uid_)
      return Status::error(
          Errc::cred_unauthorized,
          "fake munge: unauthorized credential for client UID=" + std::to_string(uid_));
    if (e.decoded) return Status::error(Errc::cred_replayed, "fake munge: replayed credential");
    e.decoded = true;
    info.payload = e.payload;
    info.uid = e.uid;
    info.gid = e.gid;
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory in fake munge decode");
  }
}

}  // namespace powergrad::proto
