#include "protocol/mac.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace powergrad::proto {

namespace {

// Fetched once for the process (a fetch walks OpenSSL's provider tables; doing it per
// frame would cost more than the MAC). Never freed: it lives as long as libcrypto.
EVP_MAC *hmac_algorithm() {
  static EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

std::string openssl_error(const char *what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = "no OpenSSL error queued";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return std::string(what) + ": " + buf;
}

}  // namespace

MacKey::MacKey(const Key &key) {
  EVP_MAC *alg = hmac_algorithm();
  if (alg == nullptr) {
    error_ = openssl_error("HMAC is not available from libcrypto");
    return;
  }
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(alg);
  if (ctx == nullptr) {
    error_ = openssl_error("EVP_MAC_CTX_new");
    return;
  }
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_init(ctx, key.data(), key.size(), params) != 1) {
    error_ = openssl_error("EVP_MAC_init with HMAC-SHA256");
    EVP_MAC_CTX_free(ctx);
    return;
  }
  ctx_ = ctx;
}

MacKey::~MacKey() {
  // EVP_MAC_CTX_free cleanses the HMAC key schedule it holds.
  if (ctx_ != nullptr) EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX *>(ctx_));
}

bool MacKey::compute(const std::uint8_t *a, std::size_t na, const std::uint8_t *b, std::size_t nb,
                     Mac &out) {
  out.fill(0);
  if (ctx_ == nullptr) return false;
  auto *ctx = static_cast<EVP_MAC_CTX *>(ctx_);
  // A NULL key re-initialises with the key set at construction (OpenSSL 3: EVP_MAC_init).
  std::size_t len = 0;
  if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1 || EVP_MAC_update(ctx, a, na) != 1 ||
      (nb > 0 && EVP_MAC_update(ctx, b, nb) != 1) ||
      EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
    ERR_clear_error();
    out.fill(0);
    return false;
  }
  return true;
}

bool MacKey::verify(const std::uint8_t *a, std::size_t na, const std::uint8_t *b, std::size_t nb,
                    const Mac &expected) {
  Mac got;
  if (!compute(a, na, b, nb, got)) return false;
  return equal_ct(got.data(), expected.data(), got.size());
}

bool hmac_sha256(const Key &key, const void *data, std::size_t size, Mac &out) {
  MacKey k(key);
  return k.ok() && k.compute(static_cast<const std::uint8_t *>(data), size, nullptr, 0, out);
}

bool init_crypto_for_exit(std::string &error) {
  if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) != 1) {
    error = openssl_error("OPENSSL_init_crypto");
    return false;
  }
  return true;
}

bool random_bytes(void *out, std::size_t size, std::string &error) {
  auto *p = static_cast<std::uint8_t *>(out);
  while (size > 0) {
    const ssize_t n = ::getrandom(p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = std::string("getrandom: ") + std::strerror(errno);
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool equal_ct(const void *a, const void *b, std::size_t size) {
  return CRYPTO_memcmp(a, b, size) == 0;
}

void wipe(void *data, std::size_t size) { OPENSSL_cleanse(data, size); }

}  // namespace powergrad::proto
