// Sockets and byte streams: non-blocking TCP, a framing reader, a bounded send queue.
//
// Nothing here blocks except name resolution (getaddrinfo, for host names rather than
// numeric addresses). Memory per connection is bounded by the message types it may receive
// next (FrameReader) and a configured send limit (SendQueue): an unauthenticated peer can
// make a controller buffer at most one HELLO.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame.hpp"
#include "protocol/status.hpp"

#include "posix/unique_fd.hpp"

namespace powergrad::proto {

struct SocketAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string to_string() const;  // "127.0.0.1:6944", "[::1]:6944"
};

// Resolves host and port (a number or a service name) to TCP addresses, in getaddrinfo's
// order. An empty host means the wildcard address (for listening). Errors: bad_address.
Status resolve_tcp(const std::string &host, const std::string &port, bool passive,
                   std::vector<SocketAddress> &out);

// A listening TCP socket, non-blocking and close-on-exec, SO_REUSEADDR (a restarted
// controller must rebind at once). With an empty host it binds [::] dual-stack where the
// kernel allows, else 0.0.0.0. Port "0" picks a free port (see local_port).
Status listen_tcp(const std::string &host, const std::string &port, int backlog, UniqueFd &out);

// Accepts one pending connection, non-blocking and close-on-exec, with TCP_NODELAY (frames
// are small and latency matters more than segment count) and SO_KEEPALIVE. `again` is true
// when nothing is pending.
Status accept_tcp(int listen_fd, UniqueFd &out, SocketAddress &peer, bool &again);

// Starts a non-blocking connect. `in_progress`: wait for POLLOUT, then connect_result().
Status start_connect(const SocketAddress &to, UniqueFd &out, bool &in_progress);
// The outcome of a connect that was in progress (SO_ERROR).
Status connect_result(int fd);

std::uint16_t local_port(int fd);

// Reassembles frames from a byte stream. Its buffer grows only to the size of the frame it
// is assembling, and that frame's header has already been checked against the types
// accepted at this point of the conversation (set_accepted): a peer that declares an
// oversize or unexpected frame is refused after 32 bytes, before its payload is read.
class FrameReader {
 public:
  explicit FrameReader(TypeSet accepted) : accepted_(accepted) {}

  void set_accepted(TypeSet accepted) { accepted_ = accepted; }
  const TypeSet &accepted() const { return accepted_; }

  enum class Fill { data, again, eof, error };
  // One read() from `fd` into free buffer space. data: bytes arrived; again: nothing to read
  // now (or no space until the buffered frames are taken); eof: the peer closed; error: see
  // `error`.
  Fill fill(int fd, Status &error);
  // Copies as many of the n bytes as fit now; returns how many. Tests and the fuzzer use it
  // to drive the reader without a socket.
  std::size_t feed(const std::uint8_t *data, std::size_t n);

  enum class Next { frame, need_more, error };
  // The next complete frame. `data` stays valid until the next fill/feed. After an error the
  // stream cannot be resynchronised: the caller closes the connection.
  Next next(const std::uint8_t *&data, std::size_t &size, Status &error);

  std::size_t last_read() const { return last_read_; }  // bytes of the last Fill::data
  std::size_t buffered() const { return end_ - begin_; }
  std::size_t capacity() const { return buf_.size(); }
  // The most this reader may hold for the types it accepts now.
  std::size_t limit() const;

 private:
  // Makes room for the frame being assembled; returns the free tail's size.
  std::size_t prepare_space();

  TypeSet accepted_;
  std::vector<std::uint8_t> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t pending_frame_ = 0;  // size of the frame whose header is buffered, else 0
  std::size_t last_read_ = 0;
  bool failed_ = false;
  Status failure_;
};

// Bytes waiting to be written, bounded. A peer that stops reading fills it, and the owner
// drops that peer rather than buffering without end.
class SendQueue {
 public:
  explicit SendQueue(std::size_t limit_bytes) : limit_(limit_bytes) {}

  // Appends a complete frame, or refuses with send_buffer_full (nothing appended).
  Status push(std::string_view frame);
  // Writes as much as the socket takes. ok: all written or the socket is full (see
  // empty()); an error otherwise (the peer is gone).
  Status flush(int fd);
  bool empty() const { return offset_ == data_.size(); }
  std::size_t size() const { return data_.size() - offset_; }

 private:
  std::size_t limit_;
  std::string data_;
  std::size_t offset_ = 0;
};

}  // namespace powergrad::proto
