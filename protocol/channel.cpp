#include "protocol/channel.hpp"

#include <cstring>
#include <limits>
#include <new>

namespace powergrad::proto {

bool derive_direction_key(const Key &master, std::uint64_t session_id, bool client_to_server,
                          Key &out) {
  std::string label =
      client_to_server ? "powergrad/v1/client->server/" : "powergrad/v1/server->client/";
  for (int i = 0; i < 8; ++i) label.push_back(static_cast<char>(session_id >> (8 * i)));
  Mac mac;
  const bool ok = hmac_sha256(master, label.data(), label.size(), mac);
  static_assert(sizeof(Mac) == sizeof(Key), "direction keys are one HMAC-SHA256 output");
  std::memcpy(out.data(), mac.data(), out.size());
  wipe(mac.data(), mac.size());
  return ok;
}

Status SecureChannel::create(std::uint64_t session_id, const Key &master, Side side,
                             SecureChannel &out) {
  if (session_id == 0) return Status::error(Errc::bad_session, "session id 0 is reserved");
  try {
    Key c2s, s2c;
    const bool derived = derive_direction_key(master, session_id, true, c2s) &&
                         derive_direction_key(master, session_id, false, s2c);
    auto c2s_key = std::make_unique<MacKey>(c2s);
    auto s2c_key = std::make_unique<MacKey>(s2c);
    wipe(c2s.data(), c2s.size());
    wipe(s2c.data(), s2c.size());
    if (!derived || !c2s_key->ok() || !s2c_key->ok())
      return Status::error(Errc::internal,
                           "HMAC-SHA256 key setup failed: " + c2s_key->error() + s2c_key->error());
    SecureChannel ch;
    ch.session_id_ = session_id;
    ch.send_ = side == Side::client ? std::move(c2s_key) : std::move(s2c_key);
    ch.recv_ = side == Side::client ? std::move(s2c_key) : std::move(c2s_key);
    out = std::move(ch);
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory setting up a session");
  }
}

Status SecureChannel::seal(const Message &message, std::string &out) {
  if (!established()) return Status::error(Errc::no_session, "no session to seal a frame with");
  if (send_seq_ == std::numeric_limits<std::uint64_t>::max())
    return Status::error(Errc::no_session, "sequence numbers exhausted; open a new session");
  Status st = encode_frame(message, send_seq_ + 1, session_id_, send_.get(), out);
  if (st.ok()) ++send_seq_;
  return st;
}

Status SecureChannel::open(const std::uint8_t *data, std::size_t size, Frame &out) {
  if (!established()) return Status::error(Errc::no_session, "no session to open a frame with");
  Status st = parse_header(data, size, out.header);
  if (!st.ok()) return st;
  const std::size_t want = frame_size(out.header.payload_len);
  if (size != want)
    return Status::error(size < want ? Errc::truncated : Errc::trailing_bytes,
                         std::string(type_name(out.header.type)) + " frame of " +
                             std::to_string(size) + " bytes, header declares " +
                             std::to_string(want));
  if (out.header.session_id != session_id_)
    return Status::error(Errc::bad_session,
                         "frame for session " + std::to_string(out.header.session_id) +
                             ", this connection's is " + std::to_string(session_id_));
  const std::size_t signed_len = kHeaderSize + out.header.payload_len;
  std::memcpy(out.mac.data(), data + signed_len, kMacSize);
  if (!recv_->verify(data, signed_len, nullptr, 0, out.mac))
    return Status::error(Errc::bad_mac,
                         std::string(type_name(out.header.type)) + " seq " +
                             std::to_string(out.header.seq) +
                             ": MAC does not match (forged, altered, or another key)");
  if (out.header.seq <= recv_seq_)
    return Status::error(Errc::replayed, std::string(type_name(out.header.type)) + " seq " +
                                             std::to_string(out.header.seq) +
                                             " is not above the last accepted " +
                                             std::to_string(recv_seq_));
  recv_seq_ = out.header.seq;
  return decode_payload(out.header.type, data + kHeaderSize, out.header.payload_len, out.message);
}

}  // namespace powergrad::proto
