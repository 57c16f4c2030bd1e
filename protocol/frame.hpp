// Frames: a fixed header, a payload (messages.hpp), a MAC trailer.
//
// Header (32 bytes, little-endian):
//   off  size  field
//     0     4  magic        0x44524750, the bytes "PGRD"
//     4     1  version      1
//     5     1  type         MsgType
//     6     2  flags        0 (no flag is defined in version 1; any set bit is refused)
//     8     4  payload_len  bytes of payload; at most max_payload(type)
//    12     4  reserved     0 (room for a key generation if sessions ever rekey)
//    16     8  seq          per-direction sequence number; 0 only on HELLO
//    24     8  session_id   0 only on HELLO and on an ERROR refusing one
//   then payload_len bytes of payload, then 32 bytes of HMAC-SHA256 over header || payload.
//
// A frame outside a session (HELLO; an ERROR refusing a HELLO) carries a zero trailer: its
// authenticity rests on the munge credential inside (HELLO) or on nothing (that ERROR is
// advice only). Everything else is sealed and opened by a SecureChannel (channel.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/mac.hpp"
#include "protocol/messages.hpp"
#include "protocol/status.hpp"

namespace powergrad::proto {

constexpr std::uint32_t kMagic = 0x44524750u;
constexpr std::uint8_t kProtocolVersion = 1;
constexpr std::size_t kHeaderSize = 32;

struct FrameHeader {
  MsgType type = MsgType::error;
  std::uint16_t flags = 0;
  std::uint32_t payload_len = 0;
  std::uint64_t seq = 0;
  std::uint64_t session_id = 0;
};

// The whole frame's size for a given payload length.
constexpr std::size_t frame_size(std::size_t payload_len) {
  return kHeaderSize + payload_len + kMacSize;
}
// The largest frame of a type (its payload limit plus header and trailer).
inline std::size_t max_frame_size(MsgType type) { return frame_size(max_payload(type)); }

// A set of message types, for "which types may arrive here now".
class TypeSet {
 public:
  constexpr TypeSet() = default;
  constexpr TypeSet(std::initializer_list<MsgType> types) {
    for (MsgType t : types) bits_ |= bit(t);
  }
  constexpr bool contains(MsgType t) const { return (bits_ & bit(t)) != 0; }
  // The largest frame among the set's types: what a reader may have to buffer.
  std::size_t max_frame() const;
  std::string to_string() const;  // "REPORT, ERROR"

 private:
  static constexpr std::uint32_t bit(MsgType t) { return 1u << static_cast<unsigned>(t); }
  std::uint32_t bits_ = 0;
};

// Checks the fixed header at `data` (at least kHeaderSize bytes; more are ignored): magic,
// version, type, flags, reserved word, and the payload length against the type's limit,
// in that order, so the first error names the first thing wrong. With `accepted`, a type
// outside the set is refused as unexpected_type before its length is trusted.
Status parse_header(const std::uint8_t *data, std::size_t size, FrameHeader &out,
                    const TypeSet *accepted = nullptr);
void write_header(const FrameHeader &header, std::uint8_t *out);

struct Frame {
  FrameHeader header;
  Message message;
  Mac mac{};
};

// Decodes exactly one complete frame: `size` must equal the header's frame size (fewer:
// truncated; more: trailing_bytes). The MAC is returned, not checked: a SecureChannel checks
// it. Never throws; never allocates beyond the type's limits.
Status decode_frame(const std::uint8_t *data, std::size_t size, Frame &out);

// Appends a complete frame for `message`. With `key`, the trailer is the HMAC of header and
// payload; without, it is zero (HELLO; an ERROR refusing a HELLO). On error nothing is
// appended.
Status encode_frame(const Message &message, std::uint64_t seq, std::uint64_t session_id,
                    MacKey *key, std::string &out);

}  // namespace powergrad::proto
