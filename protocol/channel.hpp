// A session's authenticated channel: HMAC-SHA256 on every frame, with a key per direction
// and strictly increasing sequence numbers per direction.
//
// The handshake (handshake.hpp) hands both sides the same 32-byte master key inside munge
// credentials. Each direction then uses its own key, derived as
//   K_dir = HMAC-SHA256(master, "powergrad/v1/" dir "/" session_id as u64 LE)
// with dir "client->server" or "server->client", so a frame can never be reflected back to
// its sender as if the other side had sent it, and keys of different sessions never match.
//
// Sequence numbers start at 1 in each direction (the server's WELCOME is its 1) and must
// rise strictly: a replayed or reordered frame is refused. TCP delivers in order, so any
// refusal means tampering or a bug, and the caller closes the connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "protocol/frame.hpp"
#include "protocol/mac.hpp"
#include "protocol/status.hpp"

namespace powergrad::proto {

enum class Side { client, server };

class SecureChannel {
 public:
  SecureChannel() = default;  // not established: seal/open refuse with no_session

  // Derives both direction keys from `master`. The channel keeps no copy of the master.
  static Status create(std::uint64_t session_id, const Key &master, Side side, SecureChannel &out);

  bool established() const { return send_ != nullptr; }
  std::uint64_t session_id() const { return session_id_; }
  std::uint64_t last_sent_seq() const { return send_seq_; }
  std::uint64_t last_received_seq() const { return recv_seq_; }

  // Appends one sealed frame for `message`: the next sequence number, this session's id,
  // the MAC with this side's send key. On error nothing is appended and no sequence number
  // is used.
  Status seal(const Message &message, std::string &out);

  // Checks and decodes exactly one complete frame, in this order: header, length, session
  // id, MAC (before a single payload field is read), sequence number above the last
  // accepted one, then the payload. The sequence number is consumed once the MAC is good,
  // even if the payload then fails to decode.
  Status open(const std::uint8_t *data, std::size_t size, Frame &out);

 private:
  std::uint64_t session_id_ = 0;
  std::unique_ptr<MacKey> send_;
  std::unique_ptr<MacKey> recv_;
  std::uint64_t send_seq_ = 0;
  std::uint64_t recv_seq_ = 0;
};

// Both direction keys for a session (exposed for tests of the derivation).
bool derive_direction_key(const Key &master, std::uint64_t session_id, bool client_to_server,
                          Key &out);

}  // namespace powergrad::proto
