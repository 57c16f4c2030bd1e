// The messages of the node <-> controller protocol and their payload encoding.
//
// A frame is: a 32-byte header (frame.hpp), the payload encoded here field by field
// (wire.hpp rules), and a 32-byte HMAC-SHA256 trailer (channel.hpp). The payload of each
// type has a hard upper size derived from its fields' limits (max_payload), checked against
// the header's length before a single payload byte is buffered.
//
// Payload layouts (in order; S = u32 length + bytes, F = finite f64, X = tagged f64):
//   HELLO            role u8, name S(ident,255), incarnation u64, nonce 16 bytes,
//                    credential S(credential,4096)
//   WELCOME          credential S(credential,4096)
//   REPORT           NodeReport, every field in declaration order (encode_report)
//   GRANT            GrantMessage, every field in declaration order
//   ADMIN_STATUS_REQ (empty)
//   ADMIN_STATUS     json S(json,4 MiB)
//   ADMIN_SET_BUDGET budget_w F (>= 0)
//   ADMIN_RESULT     code u16 (AdminCode), message S(text,1024)
//   ERROR            code u16 (Errc), message S(text,1024)
//   NODE_CAPS        node S(ident,255), backend u8, energy u8, counters u8, domains u16,
//                    min_w F, max_w F, clamps u64, reason S(text,1024)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "libgradient/control_messages.hpp"
#include "protocol/status.hpp"
#include "protocol/wire.hpp"

namespace powergrad::proto {

enum class MsgType : std::uint8_t {
  hello = 1,             // client -> controller: opens a session (munge credential)
  welcome = 2,           // controller -> client: session id and key (munge credential)
  report = 3,            // node -> controller, once per period
  grant = 4,             // controller -> node
  admin_status_req = 5,  // admin client -> controller
  admin_status = 6,      // controller -> admin client: status as JSON text
  admin_set_budget = 7,  // admin client -> controller
  admin_result = 8,      // controller -> admin client: outcome of a request
  error = 9,             // either way: why the sender is about to close
  node_caps = 10,        // node -> controller: what the node can do (once per session)
};
constexpr std::uint8_t kMaxMsgType = 10;
const char *type_name(MsgType type);  // "HELLO", "REPORT", ...; "unknown" otherwise

// Who opens a session. The controller decides what a session may do from the role and the
// uid munge vouched for: node sessions need root or SlurmUser; admin sessions are open to
// every uid for status, and to admin uids for changes.
enum class PeerRole : std::uint8_t { node = 1, admin = 2 };
const char *role_name(PeerRole role);

// Outcome codes of ADMIN_RESULT.
enum class AdminCode : std::uint16_t {
  ok = 0,
  permission_denied = 1,  // the session's uid is not an admin
  invalid = 2,            // the request's values are refused (e.g. budget below the floors)
  failed = 3,             // accepted but could not be carried out
};

// ---------------------------------------------------------------------- limits
constexpr std::size_t kNonceSize = 16;
constexpr std::size_t kMaxNameLen = 255;         // node / host names (DNS: 253)
constexpr std::size_t kMaxJobKeyLen = 128;       // "1234_56+7.8" and friends
constexpr std::size_t kMaxReasonLen = 256;       // a job estimate's reason
constexpr std::size_t kMaxMessageLen = 1024;     // ERROR and ADMIN_RESULT text
constexpr std::size_t kMaxCredentialLen = 4096;  // munge credentials of our payloads are < 1 KiB
constexpr std::size_t kMaxJobsPerReport = 1024;
constexpr std::size_t kMaxCurveSegments = 1024;      // curve_steps (16) x power domains, generously
constexpr std::size_t kMaxStatusJsonLen = 4u << 20;  // 4 MiB: ~20k nodes at ~200 bytes each

// Exact upper bounds of each payload, from the field limits above.
// A job: key, domain, 5 one-byte fields (mode, counters, unit, source, valid), 5 doubles,
// reason, then its accounting: 5 doubles that may be NaN (unknown) and elapsed_s.
constexpr std::size_t kMaxJobSummaryWire = string_wire_max(kMaxJobKeyLen) + kU32 + 5 * kU8 +
                                           5 * kF64 + string_wire_max(kMaxReasonLen) +
                                           5 * kF64Ext + kF64;
constexpr std::size_t kMinJobSummaryWire =
    (kU32 + 1) + kU32 + 5 * kU8 + 5 * kF64 + kU32 + 5 * kU8 + kF64;
constexpr std::size_t kSegmentWire = 2 * kF64;
constexpr std::size_t kMaxHelloPayload =
    kU8 + string_wire_max(kMaxNameLen) + kU64 + kNonceSize + string_wire_max(kMaxCredentialLen);
constexpr std::size_t kMaxWelcomePayload = string_wire_max(kMaxCredentialLen);
constexpr std::size_t kMaxReportPayload =
    string_wire_max(kMaxNameLen) + 2 * kU64 + kF64 + kF64Ext + 2 * kU64 + kF64 + kF64Ext + kU8 +
    kF64 + 4 * kF64 + kF64Ext + 2 * kU8 + kU32 + kMaxCurveSegments * kSegmentWire + kU32 +
    kMaxJobsPerReport * kMaxJobSummaryWire;
constexpr std::size_t kMaxGrantPayload = string_wire_max(kMaxNameLen) + 5 * kF64 + 2 * kU64;
constexpr std::size_t kMaxAdminStatusPayload = string_wire_max(kMaxStatusJsonLen);
constexpr std::size_t kMaxAdminSetBudgetPayload = kF64;
constexpr std::size_t kMaxAdminResultPayload = kU16 + string_wire_max(kMaxMessageLen);
constexpr std::size_t kMaxErrorPayload = kU16 + string_wire_max(kMaxMessageLen);
// NODE_CAPS ends with restore_failures, an optional trailing field (see NodeCaps).
constexpr std::size_t kMaxNodeCapsPayload = string_wire_max(kMaxNameLen) + 3 * kU8 + kU16 +
                                            2 * kF64 + kU64 + string_wire_max(kMaxMessageLen) +
                                            kU64;

// The hard limit for a type's payload (0 for ADMIN_STATUS_REQ; 0 for an unknown type).
std::size_t max_payload(MsgType type);

// ---------------------------------------------------------------------- payloads
struct Hello {
  PeerRole role = PeerRole::node;
  std::string name;               // node: its Slurm node name; admin: the client's host, for logs
  std::uint64_t incarnation = 0;  // node: rises when the agent restarts (NodeReport's)
  std::array<std::uint8_t, kNonceSize> nonce{};  // fresh per HELLO; WELCOME must echo it
  std::string credential;  // munge: binds role, name, incarnation and nonce (handshake.hpp)
};

struct Welcome {
  std::string credential;  // munge, restricted to the client's uid: session id and key
};

struct AdminStatusRequest {};

struct AdminStatus {
  std::string json;
};

struct AdminSetBudget {
  double budget_w = 0.0;
};

struct AdminResult {
  std::uint16_t code = 0;  // AdminCode; kept raw so a newer code still decodes
  std::string message;
};

struct ErrorMessage {
  std::uint16_t code = 0;  // Errc; kept raw so a newer code still decodes
  std::string message;
};

// What a node can do (hardware/socket_power.hpp), sent once per session after the
// handshake and again when it changes. A controller older than this message answers
// bad_type and closes: the agent then stops sending it (ControllerLink).
enum class CapsBackend : std::uint8_t { none = 0, rapl = 1, hsmp_hwmon = 2, hsmp_ioctl = 3 };
enum class CapsEnergy : std::uint8_t { none = 0, powercap = 1, hsmp_power = 2 };
enum class CapsCounters : std::uint8_t { none = 0, hardware = 1, software = 2, emulated = 3 };
const char *to_string(CapsBackend v);   // "none", "rapl", "hsmp-hwmon", "hsmp-ioctl"
const char *to_string(CapsEnergy v);    // "none", "powercap", "hsmp-power"
const char *to_string(CapsCounters v);  // "none", "hardware", "software", "emulated"

struct NodeCaps {
  std::string node;
  CapsBackend backend = CapsBackend::none;
  CapsEnergy energy = CapsEnergy::none;
  CapsCounters counters = CapsCounters::none;
  std::uint16_t domains = 0;
  double min_w = 0.0;  // the caps' range, summed over the domains (0 when none)
  double max_w = 0.0;
  std::uint64_t clamps = 0;  // requests the hardware held elsewhere (HSMP firmware clamps)
  std::string reason;        // backend none: why the node cannot cap, one line
  // Times the agent could not write the admin's saved settings back, since it started
  // (never reset). A trailing optional field: always sent; a NODE_CAPS without it (an older
  // agent) decodes with 0. An older controller refuses the longer message (PROTOCOL.md).
  std::uint64_t restore_failures = 0;
  bool operator==(const NodeCaps &o) const {
    return node == o.node && backend == o.backend && energy == o.energy && counters == o.counters &&
           domains == o.domains && min_w == o.min_w && max_w == o.max_w && clamps == o.clamps &&
           reason == o.reason && restore_failures == o.restore_failures;
  }
  bool operator!=(const NodeCaps &o) const { return !(*this == o); }
};

// Alternatives in MsgType order (index + 1 == type).
using Message = std::variant<Hello, Welcome, NodeReport, GrantMessage, AdminStatusRequest,
                             AdminStatus, AdminSetBudget, AdminResult, ErrorMessage, NodeCaps>;

MsgType type_of(const Message &message);

// Appends the payload of `message` to `out`. Refuses (and appends nothing usable) what a
// decoder would reject: strings over their limit or with forbidden characters, non-finite
// numbers, too many jobs or segments, an invalid demand curve. Never throws.
Status encode_payload(const Message &message, std::string &out);

// Decodes a payload of the given type; the whole payload must be consumed. Never throws;
// never allocates more than the type's field limits allow.
Status decode_payload(MsgType type, const std::uint8_t *data, std::size_t size, Message &out);

}  // namespace powergrad::proto
