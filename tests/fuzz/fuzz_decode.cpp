// libFuzzer target for everything that parses bytes from the network: frames, payloads,
// the stream reassembler, and the authenticated channel. See fuzz_common.hpp for the input
// format. Crashes, sanitizer reports, leaks, allocations over libFuzzer's -malloc_limit_mb
// and broken invariants (abort) are findings.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "protocol/channel.hpp"
#include "protocol/frame.hpp"
#include "protocol/net.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace powergrad::proto;

namespace {

void check(bool cond, const char *what) {
  if (!cond) {
    std::fprintf(stderr, "fuzz_decode: invariant broken: %s\n", what);
    std::abort();
  }
}

void check_failure(const Status &st) {
  check(st.code != Errc::ok, "error status without a code");
  check(!st.message.empty(), "error status without a message");
}

// Whether `again`, a decoded payload re-encoded, is the payload at data: the same bytes, or
// for NODE_CAPS without its optional trailing field (an older agent's) those bytes and the
// field's 8 zero bytes (restore_failures decodes as 0 and is always encoded).
bool same_payload(MsgType type, const std::string &again, const std::uint8_t *data,
                  std::size_t size) {
  const char *p = reinterpret_cast<const char *>(data);
  if (again.size() == size) return again.compare(0, size, p, size) == 0;
  return type == MsgType::node_caps && again.size() == size + kU64 &&
         again.compare(0, size, p, size) == 0 &&
         again.compare(size, kU64, std::string(kU64, '\0')) == 0;
}

// A decoded frame re-encodes to the same header (but for payload_len, see same_payload) and
// payload bytes.
void check_canonical_frame(const std::uint8_t *data, std::size_t size, const Frame &f) {
  std::string again;
  const Status st = encode_frame(f.message, f.header.seq, f.header.session_id, nullptr, again);
  check(st.ok(), "a decoded frame does not encode");
  check(again.size() >= kHeaderSize + kMacSize, "re-encoded frame too short");
  const char *p = reinterpret_cast<const char *>(data);
  constexpr std::size_t kLenAt = 8, kLenEnd = 12;  // payload_len in the header
  check(again.compare(0, kLenAt, p, kLenAt) == 0 &&
            again.compare(kLenEnd, kHeaderSize - kLenEnd, p + kLenEnd, kHeaderSize - kLenEnd) == 0,
        "re-encoded header differs");
  check(
      same_payload(f.header.type, again.substr(kHeaderSize, again.size() - kHeaderSize - kMacSize),
                   data + kHeaderSize, size - kHeaderSize - kMacSize),
      "re-encoded frame differs");
}

void fuzz_frame(const std::uint8_t *data, std::size_t size) {
  Frame f;
  const Status st = decode_frame(data, size, f);
  if (!st.ok()) {
    check_failure(st);
    return;
  }
  check(size == frame_size(f.header.payload_len), "accepted frame of the wrong size");
  check(f.header.payload_len <= max_payload(f.header.type), "accepted oversize payload");
  check(type_of(f.message) == f.header.type, "message type differs from the header's");
  check_canonical_frame(data, size, f);
}

void fuzz_payload(const std::uint8_t *data, std::size_t size) {
  if (size < 1) return;
  const auto type = static_cast<MsgType>(1 + data[0] % kMaxMsgType);
  Message m;
  const Status st = decode_payload(type, data + 1, size - 1, m);
  if (!st.ok()) {
    check_failure(st);
    return;
  }
  check(type_of(m) == type, "payload decoded as another type");
  std::string again;
  check(encode_payload(m, again).ok(), "a decoded payload does not encode");
  check(same_payload(type, again, data + 1, size - 1), "re-encoded payload differs");
}

void fuzz_stream(const std::uint8_t *data, std::size_t size) {
  if (size < 1) return;
  std::uint32_t lcg = data[0] * 2654435761u + 1;
  FrameReader reader(TypeSet{MsgType::hello, MsgType::welcome, MsgType::report, MsgType::grant,
                             MsgType::admin_status_req, MsgType::admin_status,
                             MsgType::admin_set_budget, MsgType::admin_result, MsgType::error,
                             MsgType::node_caps});
  std::size_t off = 1;
  while (off < size) {
    lcg = lcg * 1103515245u + 12345u;
    const std::size_t chunk = std::min<std::size_t>(1 + (lcg >> 16) % 97, size - off);
    const std::size_t took = reader.feed(data + off, chunk);
    check(reader.capacity() <= reader.limit() + 4096, "reader buffer beyond its limit");
    off += took;
    for (;;) {
      const std::uint8_t *frame = nullptr;
      std::size_t n = 0;
      Status err;
      const FrameReader::Next k = reader.next(frame, n, err);
      if (k == FrameReader::Next::need_more) break;
      if (k == FrameReader::Next::error) {
        check_failure(err);
        return;
      }
      fuzz_frame(frame, n);
    }
    if (took == 0) return;  // full of one incomplete frame: cannot happen, but never spin
  }
}

void fuzz_channel(const std::uint8_t *data, std::size_t size) {
  SecureChannel ch;
  check(SecureChannel::create(pgfuzz::kFuzzSession, pgfuzz::fuzz_key(), Side::server, ch).ok(),
        "channel setup");
  Frame f;
  const Status st = ch.open(data, size, f);
  if (!st.ok()) {
    check_failure(st);
    return;
  }
  check(f.header.session_id == pgfuzz::kFuzzSession, "opened a frame of another session");
  check(f.header.seq > 0, "opened sequence 0");
  Frame again;
  check(ch.open(data, size, again).code == Errc::replayed, "replay accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size < 1) return 0;
  switch (data[0] % pgfuzz::kModes) {
    case 0:
      fuzz_frame(data + 1, size - 1);
      break;
    case 1:
      fuzz_payload(data + 1, size - 1);
      break;
    case 2:
      fuzz_stream(data + 1, size - 1);
      break;
    case 3:
      fuzz_channel(data + 1, size - 1);
      break;
  }
  return 0;
}
