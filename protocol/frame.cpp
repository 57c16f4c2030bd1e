#include "protocol/frame.hpp"

#include <cstdio>
#include <cstring>
#include <new>

namespace powergrad::proto {

namespace {

std::uint32_t load_u32(const std::uint8_t *p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

std::uint64_t load_u64(const std::uint8_t *p) {
  return static_cast<std::uint64_t>(load_u32(p)) |
         (static_cast<std::uint64_t>(load_u32(p + 4)) << 32);
}

void store_u32(std::uint8_t *p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

void store_u64(std::uint8_t *p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace

std::size_t TypeSet::max_frame() const {
  std::size_t most = 0;
  for (std::uint8_t t = 1; t <= kMaxMsgType; ++t)
    if (contains(static_cast<MsgType>(t)))
      most = std::max(most, max_frame_size(static_cast<MsgType>(t)));
  return most;
}

std::string TypeSet::to_string() const {
  std::string s;
  for (std::uint8_t t = 1; t <= kMaxMsgType; ++t) {
    if (!contains(static_cast<MsgType>(t))) continue;
    if (!s.empty()) s += ", ";
    s += type_name(static_cast<MsgType>(t));
  }
  return s.empty() ? "nothing" : s;
}

Status parse_header(const std::uint8_t *data, std::size_t size, FrameHeader &out,
                    const TypeSet *accepted) {
  if (size < kHeaderSize)
    return Status::error(Errc::truncated, "frame of " + std::to_string(size) +
                                              " bytes is shorter than the " +
                                              std::to_string(kHeaderSize) + "-byte header");
  const std::uint32_t magic = load_u32(data);
  if (magic != kMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    return Status::error(Errc::bad_magic, std::string("magic ") + hex + " is not PGRD");
  }
  if (data[4] != kProtocolVersion)
    return Status::error(Errc::bad_version, "protocol version " + std::to_string(data[4]) +
                                                ", this side speaks " +
                                                std::to_string(kProtocolVersion));
  const std::uint8_t type = data[5];
  if (type == 0 || type > kMaxMsgType)
    return Status::error(Errc::bad_type,
                         "message type " + std::to_string(type) + " is not defined");
  const std::uint16_t flags = static_cast<std::uint16_t>(data[6] | (data[7] << 8));
  if (flags != 0)
    return Status::error(Errc::bad_flags,
                         "flags " + std::to_string(flags) + " set; version 1 defines none");
  if (load_u32(data + 12) != 0)
    return Status::error(Errc::bad_reserved, "reserved header word is not 0");
  out.type = static_cast<MsgType>(type);
  if (accepted != nullptr && !accepted->contains(out.type))
    return Status::error(Errc::unexpected_type, std::string(type_name(out.type)) +
                                                    " not accepted here (expecting " +
                                                    accepted->to_string() + ")");
  out.flags = flags;
  out.payload_len = load_u32(data + 8);
  out.seq = load_u64(data + 16);
  out.session_id = load_u64(data + 24);
  if (out.payload_len > max_payload(out.type))
    return Status::error(Errc::oversize, std::string(type_name(out.type)) + " payload of " +
                                             std::to_string(out.payload_len) + " bytes, limit " +
                                             std::to_string(max_payload(out.type)));
  return {};
}

void write_header(const FrameHeader &h, std::uint8_t *out) {
  store_u32(out, kMagic);
  out[4] = kProtocolVersion;
  out[5] = static_cast<std::uint8_t>(h.type);
  out[6] = static_cast<std::uint8_t>(h.flags & 0xff);
  out[7] = static_cast<std::uint8_t>(h.flags >> 8);
  store_u32(out + 8, h.payload_len);
  store_u32(out + 12, 0);
  store_u64(out + 16, h.seq);
  store_u64(out + 24, h.session_id);
}

Status decode_frame(const std::uint8_t *data, std::size_t size, Frame &out) {
  Status st = parse_header(data, size, out.header);
  if (!st.ok()) return st;
  const std::size_t want = frame_size(out.header.payload_len);
  if (size < want)
    return Status::error(Errc::truncated, std::string(type_name(out.header.type)) + " frame of " +
                                              std::to_string(size) + " bytes, header declares " +
                                              std::to_string(want));
  if (size > want)
    return Status::error(Errc::trailing_bytes, std::to_string(size - want) + " bytes after the " +
                                                   std::string(type_name(out.header.type)) +
                                                   " frame");
  st = decode_payload(out.header.type, data + kHeaderSize, out.header.payload_len, out.message);
  if (!st.ok()) return st;
  std::memcpy(out.mac.data(), data + kHeaderSize + out.header.payload_len, kMacSize);
  return {};
}

Status encode_frame(const Message &message, std::uint64_t seq, std::uint64_t session_id,
                    MacKey *key, std::string &out) {
  const std::size_t start = out.size();
  try {
    out.append(kHeaderSize, '\0');
    Status st = encode_payload(message, out);
    if (!st.ok()) {
      out.resize(start);
      return st;
    }
    FrameHeader h;
    h.type = type_of(message);
    h.payload_len = static_cast<std::uint32_t>(out.size() - start - kHeaderSize);
    h.seq = seq;
    h.session_id = session_id;
    auto *base = reinterpret_cast<std::uint8_t *>(&out[start]);
    write_header(h, base);
    Mac mac{};
    if (key != nullptr && !key->compute(base, kHeaderSize + h.payload_len, nullptr, 0, mac)) {
      out.resize(start);
      return Status::error(Errc::internal, "HMAC-SHA256 failed in libcrypto");
    }
    out.append(reinterpret_cast<const char *>(mac.data()), mac.size());
    return {};
  } catch (const std::bad_alloc &) {
    out.resize(start);
    return Status::error(Errc::internal, "out of memory encoding a frame");
  }
}

}  // namespace powergrad::proto
