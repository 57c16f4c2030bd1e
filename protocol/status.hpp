// Error codes and the Status value every protocol function returns instead of throwing.
//
// Codes are wire-stable: an ERROR message carries one as a u16, and logs and tests name
// them (errc_name), so a value is never reused for another meaning. The hundreds group them:
// 1xx framing, 2xx payload fields, 3xx session (MAC, sequence, state), 4xx authentication
// (munge and the handshake's own checks), 5xx transport, 9xx internal.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace powergrad::proto {

enum class Errc : std::uint16_t {
  ok = 0,

  // Framing: the fixed header and the frame's length.
  truncated = 100,       // fewer bytes than the header, or than the header declares
  bad_magic = 101,       // not a PowerGrad frame (or a stream out of step)
  bad_version = 102,     // a protocol version this build does not speak
  bad_type = 103,        // a message type that does not exist
  bad_flags = 104,       // a flag bit this version does not define
  bad_reserved = 105,    // the reserved header word is not 0
  oversize = 106,        // declared payload length above the type's limit
  trailing_bytes = 107,  // bytes left after the last field, or after the frame

  // Payload: one field at a time.
  payload_truncated = 200,  // a field runs past the end of the payload
  string_too_long = 201,
  bad_string = 202,  // empty where required, or a character the field does not allow
  array_too_long = 203,
  non_finite = 204,  // NaN or infinity where only finite numbers are allowed
  bad_enum = 205,    // an enum value this version does not define
  bad_bool = 206,    // a boolean byte other than 0 or 1
  bad_value = 207,   // out of range, or inconsistent (e.g. a gain curve that is not concave)

  // Session: authenticated frames after the handshake.
  bad_mac = 300,            // the HMAC does not match: forged, corrupted, or the wrong key
  bad_session = 301,        // the session id is not this connection's (or not 0 before one)
  replayed = 302,           // sequence number not above the last accepted one
  unexpected_type = 303,    // a type this side, role or session state does not accept
  no_session = 304,         // sealing or opening without an established session
  permission_denied = 305,  // an admin request from a uid that is not an admin
  not_managed = 306,        // a node the controller's configuration does not manage

  // Authentication: munge and the handshake's checks on what it carries.
  auth_unavailable = 400,   // munged not reachable (socket missing, daemon down)
  cred_invalid = 401,       // munge: invalid or tampered credential (EMUNGE_CRED_INVALID etc.)
  cred_expired = 402,       // munge: older than its time-to-live
  cred_rewound = 403,       // munge: encoded in the future (clock skew)
  cred_replayed = 404,      // munge: already decoded once
  cred_unauthorized = 405,  // munge: restricted to another uid
  auth_failed = 406,        // any other munge failure
  uid_not_allowed = 407,    // credential is valid but its uid may not take this role
  binding_mismatch = 408,   // credential payload does not match the message around it

  // Transport.
  io_error = 500,
  closed = 501,            // the peer closed the connection
  send_buffer_full = 502,  // the peer does not read: its queue reached the limit
  timeout = 503,
  not_connected = 504,
  too_many_connections = 505,
  bad_address = 506,   // host/port do not resolve or do not parse
  rate_limited = 507,  // a peer (a uid's admin sessions) asked more than its share

  internal = 900,  // a bug or resource exhaustion (allocation, getrandom)
};

// The code's name as in the enum ("bad_mac"); "unknown" for a value not defined here (an
// ERROR message from a newer peer may carry one).
const char *errc_name(Errc code);
const char *errc_name(std::uint16_t code);

// A result: ok, or a code with a message that says what was wrong and where
// (e.g. "report.jobs[3].reason: 300 bytes, limit 256").
struct Status {
  Errc code = Errc::ok;
  std::string message;

  bool ok() const { return code == Errc::ok; }
  static Status error(Errc code, std::string message) { return Status{code, std::move(message)}; }
  // "bad_mac: frame MAC does not match" (or "ok").
  std::string to_string() const;
};

}  // namespace powergrad::proto
