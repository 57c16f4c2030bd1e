#include "protocol/auth.hpp"

#include <munge.h>

#include <cstdlib>
#include <memory>
#include <new>

namespace powergrad::proto {

namespace {

struct CtxDeleter {
  void operator()(munge_ctx_t ctx) const { munge_ctx_destroy(ctx); }
};
using CtxPtr = std::unique_ptr<std::remove_pointer_t<munge_ctx_t>, CtxDeleter>;

// munge reports problems with the credential itself, with the daemon and with our
// arguments through one enum; the protocol keeps the distinctions callers act on.
Errc map_munge_error(munge_err_t e) {
  switch (e) {
    case EMUNGE_SUCCESS:
      return Errc::ok;
    case EMUNGE_SOCKET:
      return Errc::auth_unavailable;
    case EMUNGE_CRED_EXPIRED:
      return Errc::cred_expired;
    case EMUNGE_CRED_REWOUND:
      return Errc::cred_rewound;
    case EMUNGE_CRED_REPLAYED:
      return Errc::cred_replayed;
    case EMUNGE_CRED_UNAUTHORIZED:
      return Errc::cred_unauthorized;
    case EMUNGE_BAD_CRED:
    case EMUNGE_BAD_VERSION:
    case EMUNGE_BAD_CIPHER:
    case EMUNGE_BAD_MAC:
    case EMUNGE_BAD_ZIP:
    case EMUNGE_BAD_REALM:
    case EMUNGE_CRED_INVALID:
      return Errc::cred_invalid;
    default:
      return Errc::auth_failed;
  }
}

Status munge_status(munge_err_t e, munge_ctx_t ctx, const char *what) {
  const char *text = ctx != nullptr ? munge_ctx_strerror(ctx) : nullptr;
  if (text == nullptr) text = munge_strerror(e);
  return Status::error(map_munge_error(e), std::string(what) + ": " + (text ? text : "?") +
                                               " (munge error " + std::to_string(e) + ")");
}

Status make_ctx(const std::string &socket_path, CtxPtr &out) {
  out.reset(munge_ctx_create());
  if (!out) return Status::error(Errc::internal, "munge_ctx_create failed (out of memory)");
  if (!socket_path.empty()) {
    const munge_err_t e = munge_ctx_set(out.get(), MUNGE_OPT_SOCKET, socket_path.c_str());
    if (e != EMUNGE_SUCCESS) return munge_status(e, out.get(), "munge socket option");
  }
  return {};
}

}  // namespace

Status MungeAuthenticator::encode(std::string_view payload, std::optional<uid_t> restrict_uid,
                                  std::string &credential) {
  try {
    CtxPtr ctx;
    Status st = make_ctx(socket_path_, ctx);
    if (!st.ok()) return st;
    // The WELCOME's payload is the session key: ask for encryption explicitly rather than
    // rely on munged's default cipher.
    munge_err_t ce = munge_ctx_set(ctx.get(), MUNGE_OPT_CIPHER_TYPE, MUNGE_CIPHER_AES128);
    if (ce != EMUNGE_SUCCESS) return munge_status(ce, ctx.get(), "munge cipher option");
    if (ttl_s_ > 0) {
      const munge_err_t e = munge_ctx_set(ctx.get(), MUNGE_OPT_TTL, ttl_s_);
      if (e != EMUNGE_SUCCESS) return munge_status(e, ctx.get(), "munge TTL option");
    }
    if (restrict_uid) {
      const munge_err_t e = munge_ctx_set(ctx.get(), MUNGE_OPT_UID_RESTRICTION, *restrict_uid);
      if (e != EMUNGE_SUCCESS) return munge_status(e, ctx.get(), "munge UID restriction");
    }
    char *cred = nullptr;
    const munge_err_t e =
        munge_encode(&cred, ctx.get(), payload.data(), static_cast<int>(payload.size()));
    if (e != EMUNGE_SUCCESS) {
      std::free(cred);
      return munge_status(e, ctx.get(), "munge_encode");
    }
    credential.assign(cred);
    std::free(cred);
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory in munge encode");
  }
}

Status MungeAuthenticator::decode(const std::string &credential, CredentialInfo &info) {
  try {
    CtxPtr ctx;
    Status st = make_ctx(socket_path_, ctx);
    if (!st.ok()) return st;
    void *buf = nullptr;
    int len = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    const munge_err_t e = munge_decode(credential.c_str(), ctx.get(), &buf, &len, &uid, &gid);
    // munge allocates the payload even for some failures (expired, replayed): always free.
    std::unique_ptr<void, decltype(&std::free)> payload(buf, &std::free);
    if (e != EMUNGE_SUCCESS) return munge_status(e, ctx.get(), "munge_decode");
    info.payload.assign(static_cast<const char *>(buf),
                        len > 0 ? static_cast<std::size_t>(len) : 0);
    info.uid = uid;
    info.gid = gid;
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory in munge decode");
  }
}

std::string munge_socket_from_env() {
  const char *s = std::getenv("POWERGRAD_MUNGE_SOCKET");
  return s != nullptr ? std::string(s) : std::string();
}

}  // namespace powergrad::proto
