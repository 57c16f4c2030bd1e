#include "protocol/net.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace powergrad::proto {

namespace {

// Small enough that ten thousand idle node connections cost little; a REPORT of a few
// jobs (under 2 KiB) fits, so a read usually brings whole frames.
constexpr std::size_t kInitialCapacity = 4096;
// A buffer grown for a large frame is given back once it is empty again.
constexpr std::size_t kShrinkAbove = 64 * 1024;

std::string errno_text(const char *what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

void set_int_option(int fd, int level, int name, int value) {
  // Best effort: a socket without NODELAY or KEEPALIVE still works.
  (void)::setsockopt(fd, level, name, &value, sizeof value);
}

}  // namespace

// ------------------------------------------------------------------------------ addresses

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto *a = reinterpret_cast<const sockaddr_in *>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto *a = reinterpret_cast<const sockaddr_in6 *>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "?";
}

Status resolve_tcp(const std::string &host, const std::string &port, bool passive,
                   std::vector<SocketAddress> &out) {
  out.clear();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  addrinfo *res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 && !passive) {
    // AI_ADDRCONFIG ignores loopback-only families: "::1" on a host without global IPv6.
    hints.ai_flags = 0;
    rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  }
  if (rc != 0)
    return Status::error(Errc::bad_address, "cannot resolve '" + host + "' port '" + port +
                                                "': " + ::gai_strerror(rc));
  try {
    for (addrinfo *ai = res; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
      SocketAddress a;
      std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
      a.len = static_cast<socklen_t>(ai->ai_addrlen);
      out.push_back(a);
    }
  } catch (const std::bad_alloc &) {
    ::freeaddrinfo(res);
    return Status::error(Errc::internal, "out of memory resolving an address");
  }
  ::freeaddrinfo(res);
  if (out.empty())
    return Status::error(Errc::bad_address,
                         "'" + host + "' port '" + port + "' has no TCP address");
  if (passive && host.empty()) {
    // Prefer the IPv6 wildcard: with IPV6_V6ONLY off it takes IPv4 connections too.
    std::stable_partition(out.begin(), out.end(),
                          [](const SocketAddress &a) { return a.addr.ss_family == AF_INET6; });
  }
  return {};
}

Status listen_tcp(const std::string &host, const std::string &port, int backlog, UniqueFd &out) {
  std::vector<SocketAddress> addrs;
  Status st = resolve_tcp(host, port, true, addrs);
  if (!st.ok()) return st;
  std::string failures;
  for (const SocketAddress &a : addrs) {
    UniqueFd fd(::socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      failures += "; " + a.to_string() + ": " + errno_text("socket", errno);
      continue;
    }
    set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
    if (a.addr.ss_family == AF_INET6 && host.empty())
      set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr *>(&a.addr), a.len) != 0) {
      failures += "; " + a.to_string() + ": " + errno_text("bind", errno);
      continue;
    }
    if (::listen(fd.get(), backlog) != 0) {
      failures += "; " + a.to_string() + ": " + errno_text("listen", errno);
      continue;
    }
    out = std::move(fd);
    return {};
  }
  return Status::error(Errc::io_error,
                       "cannot listen on '" + host + "' port '" + port + "'" + failures);
}

Status accept_tcp(int listen_fd, UniqueFd &out, SocketAddress &peer, bool &again) {
  again = false;
  peer.len = sizeof peer.addr;
  const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr *>(&peer.addr), &peer.len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    // A connection that was reset while queued is not an error of ours.
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) {
      again = true;
      return {};
    }
    return Status::error(
        err == EMFILE || err == ENFILE ? Errc::too_many_connections : Errc::io_error,
        errno_text("accept", err));
  }
  out.reset(fd);
  set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  return {};
}

Status start_connect(const SocketAddress &to, UniqueFd &out, bool &in_progress) {
  in_progress = false;
  UniqueFd fd(::socket(to.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Status::error(Errc::io_error, errno_text("socket", errno));
  set_int_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1);
  set_int_option(fd.get(), SOL_SOCKET, SO_KEEPALIVE, 1);
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr *>(&to.addr), to.len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno != EINPROGRESS)
      return Status::error(Errc::io_error,
                           "connect to " + to.to_string() + ": " + std::strerror(errno));
    in_progress = true;
  }
  out = std::move(fd);
  return {};
}

Status connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return Status::error(Errc::io_error, errno_text("connect", err));
  return {};
}

std::uint16_t local_port(int fd) {
  SocketAddress a;
  a.len = sizeof a.addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr *>(&a.addr), &a.len) != 0) return 0;
  if (a.addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&a.addr)->sin_port);
  if (a.addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6 *>(&a.addr)->sin6_port);
  return 0;
}

// ------------------------------------------------------------------------------ FrameReader

std::size_t FrameReader::limit() const { return std::max(kInitialCapacity, accepted_.max_frame()); }

std::size_t FrameReader::prepare_space() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (buf_.size() > kShrinkAbove) std::vector<std::uint8_t>().swap(buf_);
  }
  // Room for the frame being assembled (its size is known once its header was checked by
  // next()), else for a few small frames.
  const std::size_t need = std::max(pending_frame_, kInitialCapacity);
  if (begin_ > 0 && (end_ == buf_.size() || begin_ + need > buf_.size())) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() < begin_ + need) buf_.resize(begin_ + need);
  return buf_.size() - end_;
}

FrameReader::Fill FrameReader::fill(int fd, Status &error) {
  if (failed_) {
    error = failure_;
    return Fill::error;
  }
  std::size_t room;
  try {
    room = prepare_space();
  } catch (const std::bad_alloc &) {
    error = Status::error(Errc::internal, "out of memory for a receive buffer");
    return Fill::error;
  }
  if (room == 0) return Fill::again;
  ssize_t n;
  do {
    n = ::read(fd, buf_.data() + end_, room);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Fill::again;
    error = Status::error(errno == ECONNRESET ? Errc::closed : Errc::io_error,
                          errno_text("read", errno));
    return Fill::error;
  }
  if (n == 0) return Fill::eof;
  end_ += static_cast<std::size_t>(n);
  last_read_ = static_cast<std::size_t>(n);
  return Fill::data;
}

std::size_t FrameReader::feed(const std::uint8_t *data, std::size_t n) {
  if (failed_) return 0;
  std::size_t room;
  try {
    room = prepare_space();
  } catch (const std::bad_alloc &) {
    return 0;
  }
  const std::size_t take = std::min(room, n);
  std::memcpy(buf_.data() + end_, data, take);
  end_ += take;
  return take;
}

FrameReader::Next FrameReader::next(const std::uint8_t *&data, std::size_t &size, Status &error) {
  if (failed_) {
    error = failure_;
    return Next::error;
  }
  const std::size_t have = end_ - begin_;
  if (have < kHeaderSize) {
    pending_frame_ = 0;
    return Next::need_more;
  }
  FrameHeader h;
  Status st = parse_header(buf_.data() + begin_, have, h, &accepted_);
  if (!st.ok()) {
    failed_ = true;
    failure_ = st;
    error = st;
    return Next::error;
  }
  const std::size_t want = frame_size(h.payload_len);
  if (have < want) {
    pending_frame_ = want;
    return Next::need_more;
  }
  pending_frame_ = 0;
  data = buf_.data() + begin_;
  size = want;
  begin_ += want;
  return Next::frame;
}

// ------------------------------------------------------------------------------ SendQueue

Status SendQueue::push(std::string_view frame) {
  if (size() + frame.size() > limit_)
    return Status::error(Errc::send_buffer_full, "peer is not reading: " + std::to_string(size()) +
                                                     " bytes queued, limit " +
                                                     std::to_string(limit_));
  try {
    if (offset_ > 0 && offset_ >= data_.size() / 2) {
      data_.erase(0, offset_);
      offset_ = 0;
    }
    data_.append(frame.data(), frame.size());
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory queueing a frame");
  }
  return {};
}

Status SendQueue::flush(int fd) {
  while (!empty()) {
    const ssize_t n =
        ::send(fd, data_.data() + offset_, data_.size() - offset_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      return Status::error(errno == EPIPE || errno == ECONNRESET ? Errc::closed : Errc::io_error,
                           errno_text("send", errno));
    }
    offset_ += static_cast<std::size_t>(n);
  }
  data_.clear();
  offset_ = 0;
  return {};
}

}  // namespace powergrad::proto
