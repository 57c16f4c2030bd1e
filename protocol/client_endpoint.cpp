#include "protocol/client_endpoint.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "protocol/roles.hpp"

namespace powergrad::proto {

namespace {

int wait_ms(double now_s, double deadline_s, int max_wait_ms) {
  const double ms = std::ceil((deadline_s - now_s) * 1000.0);
  if (!(ms > 0.0)) return 0;
  return ms < max_wait_ms ? static_cast<int>(ms) : max_wait_ms;
}

}  // namespace

const char *event_kind_name(ClientEvent::Kind kind) {
  switch (kind) {
    case ClientEvent::Kind::connected:
      return "connected";
    case ClientEvent::Kind::message:
      return "message";
    case ClientEvent::Kind::disconnected:
      return "disconnected";
    case ClientEvent::Kind::attempt_failed:
      return "attempt_failed";
  }
  return "unknown";
}

ClientEndpoint::ClientEndpoint(ClientConfig config, Authenticator &auth)
    : config_(std::move(config)),
      auth_(auth),
      backoff_(config_.backoff, config_.jitter_seed),
      handshake_(config_.hello),
      reader_(client_accepts_before_session()),
      out_(config_.max_send_queue_bytes) {}

void ClientEndpoint::drop(const Status &why, double now_s, std::vector<ClientEvent> *events,
                          bool tell_peer) {
  const bool was_established = state_ == State::established;
  if (tell_peer && was_established && fd_) {
    ErrorMessage m;
    m.code = static_cast<std::uint16_t>(why.code);
    for (char c : why.message) {
      if (m.message.size() == kMaxMessageLen) break;
      const auto u = static_cast<unsigned char>(c);
      m.message.push_back(u == '\t' || (u >= 0x20 && u != 0x7f) ? c : '?');
    }
    scratch_.clear();
    if (channel_.seal(m, scratch_).ok() && out_.push(scratch_).ok()) (void)out_.flush(fd_.get());
  }
  fd_.reset();
  reader_ = FrameReader(client_accepts_before_session());
  out_ = SendQueue(config_.max_send_queue_bytes);
  channel_ = SecureChannel();
  session_ = SessionInfo();
  state_ = State::waiting;
  next_attempt_at_s_ = now_s + backoff_.next_delay_s();
  if (events != nullptr) {
    ClientEvent e;
    e.kind = was_established ? ClientEvent::Kind::disconnected : ClientEvent::Kind::attempt_failed;
    e.status = why;
    e.next_attempt_at_s = next_attempt_at_s_;
    events->push_back(std::move(e));
  }
}

void ClientEndpoint::disconnect(const Status &why, double now_s) {
  if (state_ == State::waiting) return;
  drop(why, now_s, nullptr);
}

void ClientEndpoint::start_attempt(double now_s, std::vector<ClientEvent> &events) {
  std::vector<SocketAddress> addrs;
  Status st = resolve_tcp(config_.host, config_.port, false, addrs);
  if (!st.ok()) {
    drop(st, now_s, &events);
    return;
  }
  // Rotate through the addresses (IPv6 and IPv4 of one host) from one attempt to the next.
  const SocketAddress &to = addrs[attempts_++ % addrs.size()];
  bool in_progress = false;
  st = start_connect(to, fd_, in_progress);
  if (!st.ok()) {
    drop(st, now_s, &events);
    return;
  }
  if (in_progress) {
    state_ = State::connecting;
    deadline_s_ = now_s + config_.connect_timeout_s;
    return;
  }
  send_hello(now_s, events);
}

void ClientEndpoint::send_hello(double now_s, std::vector<ClientEvent> &events) {
  std::string hello;
  Status st = handshake_.start(auth_, hello);
  if (st.ok()) st = out_.push(hello);
  if (st.ok()) st = out_.flush(fd_.get());
  if (!st.ok()) {
    drop(st, now_s, &events);
    return;
  }
  state_ = State::handshaking;
  deadline_s_ = now_s + config_.handshake_timeout_s;
}

bool ClientEndpoint::on_frame(const std::uint8_t *data, std::size_t size, double now_s,
                              std::vector<ClientEvent> &events) {
  if (state_ == State::handshaking) {
    SecureChannel ch;
    SessionInfo info;
    Status st = handshake_.finish(auth_, data, size, ch, info);
    if (!st.ok()) {
      drop(st, now_s, &events);
      return false;
    }
    channel_ = std::move(ch);
    session_ = info;
    state_ = State::established;
    reader_.set_accepted(server_sends(config_.hello.role));
    backoff_.reset();
    ClientEvent e;
    e.kind = ClientEvent::Kind::connected;
    e.session = session_;
    events.push_back(std::move(e));
    return true;
  }
  Frame f;
  Status st = channel_.open(data, size, f);
  if (!st.ok()) {
    drop(st, now_s, &events);
    return false;
  }
  if (f.header.type == MsgType::error) {
    const auto &m = std::get<ErrorMessage>(f.message);
    drop(Status::error(
             m.code == 0 ? Errc::closed : static_cast<Errc>(m.code),
             std::string("controller closed with ERROR ") + errc_name(m.code) + ": " + m.message),
         now_s, &events, false);
    return false;
  }
  if (f.header.type == MsgType::grant &&
      std::get<GrantMessage>(f.message).node != config_.hello.name) {
    drop(Status::error(Errc::binding_mismatch, "GRANT for node '" +
                                                   std::get<GrantMessage>(f.message).node +
                                                   "', this is '" + config_.hello.name + "'"),
         now_s, &events);
    return false;
  }
  ClientEvent e;
  e.kind = ClientEvent::Kind::message;
  e.message = std::move(f.message);
  e.session = session_;
  events.push_back(std::move(e));
  return true;
}

void ClientEndpoint::on_readable(double now_s, std::vector<ClientEvent> &events) {
  for (;;) {
    Status err;
    switch (reader_.fill(fd_.get(), err)) {
      case FrameReader::Fill::again:
        return;
      case FrameReader::Fill::eof:
        drop(Status::error(Errc::closed, "controller closed the connection"), now_s, &events,
             false);
        return;
      case FrameReader::Fill::error:
        drop(err, now_s, &events, false);
        return;
      case FrameReader::Fill::data:
        break;
    }
    for (;;) {
      const std::uint8_t *data = nullptr;
      std::size_t size = 0;
      const FrameReader::Next next = reader_.next(data, size, err);
      if (next == FrameReader::Next::need_more) break;
      if (next == FrameReader::Next::error) {
        drop(err, now_s, &events);
        return;
      }
      if (!on_frame(data, size, now_s, events)) return;
    }
  }
}

Status ClientEndpoint::send(const Message &message) {
  try {
    if (state_ != State::established)
      return Status::error(Errc::not_connected, "no session with the controller");
    const MsgType type = type_of(message);
    if (!client_sends(config_.hello.role).contains(type))
      return Status::error(Errc::unexpected_type, std::string(type_name(type)) +
                                                      " cannot be sent in a " +
                                                      role_name(config_.hello.role) + " session");
    if (type == MsgType::report && std::get<NodeReport>(message).node != config_.hello.name)
      return Status::error(Errc::binding_mismatch,
                           "REPORT for node '" + std::get<NodeReport>(message).node +
                               "' on the session of node '" + config_.hello.name + "'");
    if (type == MsgType::node_caps && std::get<NodeCaps>(message).node != config_.hello.name)
      return Status::error(Errc::binding_mismatch,
                           "NODE_CAPS for node '" + std::get<NodeCaps>(message).node +
                               "' on the session of node '" + config_.hello.name + "'");
    scratch_.clear();
    Status st = channel_.seal(message, scratch_);
    if (!st.ok()) return st;
    st = out_.push(scratch_);
    if (st.ok()) st = out_.flush(fd_.get());
    if (!st.ok()) drop(st, last_now_s_, &pending_, st.code == Errc::send_buffer_full);
    return st;
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory sending a message");
  }
}

std::vector<ClientEvent> ClientEndpoint::poll_once(double now_s, int max_wait_ms,
                                                   std::vector<pollfd> *extra) {
  std::vector<ClientEvent> events;
  try {
    last_now_s_ = now_s;
    events.swap(pending_);
    if ((state_ == State::connecting || state_ == State::handshaking) && !(now_s < deadline_s_))
      drop(Status::error(Errc::timeout, state_ == State::connecting
                                            ? "connecting to the controller timed out"
                                            : "no WELCOME from the controller in time"),
           now_s, &events);
    if (state_ == State::waiting && !(now_s < next_attempt_at_s_)) start_attempt(now_s, events);

    std::vector<pollfd> pfds;
    short ev = 0;
    if (fd_) {
      ev = state_ == State::connecting ? POLLOUT : POLLIN;
      if (state_ != State::connecting && !out_.empty()) ev |= POLLOUT;
      pfds.push_back({fd_.get(), ev, 0});
    }
    const std::size_t n_own = pfds.size();
    if (extra != nullptr) pfds.insert(pfds.end(), extra->begin(), extra->end());
    const double deadline = state_ == State::waiting       ? next_attempt_at_s_
                            : state_ == State::established ? std::numeric_limits<double>::infinity()
                                                           : deadline_s_;
    int timeout = events.empty() ? max_wait_ms : 0;
    if (deadline < std::numeric_limits<double>::infinity())
      timeout = std::min(timeout, wait_ms(now_s, deadline, max_wait_ms));
    const int rc = ::poll(pfds.data(), pfds.size(), timeout);
    if (rc < 0) {
      if (errno != EINTR)
        drop(Status::error(Errc::io_error, std::string("poll: ") + std::strerror(errno)), now_s,
             &events);
      return events;
    }
    if (extra != nullptr)
      for (std::size_t i = 0; i < extra->size(); ++i) (*extra)[i].revents = pfds[n_own + i].revents;
    if (rc == 0 || n_own == 0) return events;
    const short rev = pfds[0].revents;
    if (rev == 0) return events;
    if (state_ == State::connecting) {
      Status st = connect_result(fd_.get());
      if (!st.ok()) {
        drop(st, now_s, &events);
        return events;
      }
      send_hello(now_s, events);
      return events;
    }
    if (rev & POLLOUT) {
      Status st = out_.flush(fd_.get());
      if (!st.ok()) {
        drop(st, now_s, &events, false);
        return events;
      }
    }
    if (rev & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) on_readable(now_s, events);
  } catch (const std::exception &ex) {
    // Out of memory, most likely: drop the connection and retry later. Reporting it may
    // itself fail, which must not throw out of here either.
    try {
      drop(Status::error(Errc::internal, std::string("client endpoint: ") + ex.what()), now_s,
           &events, false);
    } catch (...) {
    }
  }
  return events;
}

}  // namespace powergrad::proto
