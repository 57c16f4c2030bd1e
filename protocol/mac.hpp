// HMAC-SHA256 (OpenSSL libcrypto) and kernel randomness: the two primitives the session
// layer rests on. munge authenticates the handshake only; every later frame is
// authenticated with a per-session key through this, at a few microseconds per frame
// instead of munge's ~200 us per credential.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace powergrad::proto {

constexpr std::size_t kMacSize = 32;  // HMAC-SHA256 output
constexpr std::size_t kKeySize = 32;  // session and direction keys

using Mac = std::array<std::uint8_t, kMacSize>;
using Key = std::array<std::uint8_t, kKeySize>;

// An HMAC-SHA256 key, prepared once so that each MAC costs only the hash work. Not shareable
// between threads (each connection has its own). The key bytes are wiped on destruction.
class MacKey {
 public:
  // ok() is false when OpenSSL could not set up HMAC-SHA256 (error() says why).
  explicit MacKey(const Key &key);
  ~MacKey();
  MacKey(const MacKey &) = delete;
  MacKey &operator=(const MacKey &) = delete;

  bool ok() const { return ctx_ != nullptr; }
  const std::string &error() const { return error_; }

  // MAC of the concatenation a || b (header and payload without copying them together).
  // False only when OpenSSL fails (then `out` is zero).
  bool compute(const std::uint8_t *a, std::size_t na, const std::uint8_t *b, std::size_t nb,
               Mac &out);
  // Constant-time comparison of compute(a || b) with `expected`.
  bool verify(const std::uint8_t *a, std::size_t na, const std::uint8_t *b, std::size_t nb,
              const Mac &expected);

 private:
  void *ctx_ = nullptr;  // EVP_MAC_CTX, kept opaque so OpenSSL headers stay out of ours
  std::string error_;
};

// One-shot HMAC-SHA256 (key derivation). False when OpenSSL fails.
bool hmac_sha256(const Key &key, const void *data, std::size_t size, Mac &out);

// For a process whose threads may still use libcrypto while exit() runs its handlers
// (slurmctld ends in exit() with the controller thread running): initialises libcrypto now
// and asks it not to clean itself up at exit (OPENSSL_INIT_NO_ATEXIT). Left to itself,
// libcrypto registers its clean-up at its first use, after a handler registered at start-up
// that stops such threads; handlers run in reverse order, so the clean-up would run first and
// a thread still computing a MAC would find libcrypto torn down (a crash of slurmctld at
// shutdown). Call before registering that handler: if libcrypto was initialised earlier by
// someone else, its clean-up was registered earlier too, and runs after the handler. False
// (and the reason in `error`) if libcrypto refuses.
bool init_crypto_for_exit(std::string &error);

// Fills `out` from the kernel's CSPRNG (getrandom), retrying on EINTR and short reads.
// False (and errno-based text in `error`) if the kernel refuses.
bool random_bytes(void *out, std::size_t size, std::string &error);

// Constant-time equality of two byte ranges of the same length.
bool equal_ct(const void *a, const void *b, std::size_t size);

// Overwrites memory in a way the compiler may not elide (keys, nonces).
void wipe(void *data, std::size_t size);

}  // namespace powergrad::proto
