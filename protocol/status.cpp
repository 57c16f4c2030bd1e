#include "protocol/status.hpp"

namespace powergrad::proto {

const char *errc_name(Errc code) {
  switch (code) {
    case Errc::ok:
      return "ok";
    case Errc::truncated:
      return "truncated";
    case Errc::bad_magic:
      return "bad_magic";
    case Errc::bad_version:
      return "bad_version";
    case Errc::bad_type:
      return "bad_type";
    case Errc::bad_flags:
      return "bad_flags";
    case Errc::bad_reserved:
      return "bad_reserved";
    case Errc::oversize:
      return "oversize";
    case Errc::trailing_bytes:
      return "trailing_bytes";
    case Errc::payload_truncated:
      return "payload_truncated";
    case Errc::string_too_long:
      return "string_too_long";
    case Errc::bad_string:
      return "bad_string";
    case Errc::array_too_long:
      return "array_too_long";
    case Errc::non_finite:
      return "non_finite";
    case Errc::bad_enum:
      return "bad_enum";
    case Errc::bad_bool:
      return "bad_bool";
    case Errc::bad_value:
      return "bad_value";
    case Errc::bad_mac:
      return "bad_mac";
    case Errc::bad_session:
      return "bad_session";
    case Errc::replayed:
      return "replayed";
    case Errc::unexpected_type:
      return "unexpected_type";
    case Errc::no_session:
      return "no_session";
    case Errc::permission_denied:
      return "permission_denied";
    case Errc::not_managed:
      return "not_managed";
    case Errc::auth_unavailable:
      return "auth_unavailable";
    case Errc::cred_invalid:
      return "cred_invalid";
    case Errc::cred_expired:
      return "cred_expired";
    case Errc::cred_rewound:
      return "cred_rewound";
    case Errc::cred_replayed:
      return "cred_replayed";
    case Errc::cred_unauthorized:
      return "cred_unauthorized";
    case Errc::auth_failed:
      return "auth_failed";
    case Errc::uid_not_allowed:
      return "uid_not_allowed";
    case Errc::binding_mismatch:
      return "binding_mismatch";
    case Errc::io_error:
      return "io_error";
    case Errc::closed:
      return "closed";
    case Errc::send_buffer_full:
      return "send_buffer_full";
    case Errc::timeout:
      return "timeout";
    case Errc::not_connected:
      return "not_connected";
    case Errc::too_many_connections:
      return "too_many_connections";
    case Errc::rate_limited:
      return "rate_limited";
    case Errc::bad_address:
      return "bad_address";
    case Errc::internal:
      return "internal";
  }
  return "unknown";
}

const char *errc_name(std::uint16_t code) { return errc_name(static_cast<Errc>(code)); }

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(errc_name(code)) + ": " + message;
}

}  // namespace powergrad::proto
