#include "protocol/controller_endpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "protocol/channel.hpp"
#include "protocol/roles.hpp"

namespace powergrad::proto {

namespace {

// After accept() runs out of file descriptors, the listener stays readable: stop polling it
// for a moment instead of spinning on it.
constexpr double kAcceptPauseS = 0.1;
constexpr int kAcceptsPerRound = 256;

int wait_ms(double now_s, double deadline_s, int max_wait_ms) {
  if (!(deadline_s < std::numeric_limits<double>::infinity())) return max_wait_ms;
  const double ms = std::ceil((deadline_s - now_s) * 1000.0);
  if (!(ms > 0.0)) return 0;
  return ms < max_wait_ms ? static_cast<int>(ms) : max_wait_ms;
}

std::string sanitize(const std::string &text) {
  std::string out;
  for (char c : text) {
    if (out.size() == kMaxMessageLen) break;
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u == '\t' || (u >= 0x20 && u != 0x7f) ? c : '?');
  }
  return out;
}

}  // namespace

struct ControllerEndpoint::Conn {
  Conn(ConnectionId id_, UniqueFd fd_, std::string address_, double now_s, std::size_t send_limit)
      : id(id_),
        fd(std::move(fd_)),
        address(std::move(address_)),
        opened_at_s(now_s),
        last_rx_s(now_s),
        reader(server_accepts_before_session()),
        out(send_limit) {}

  ConnectionId id;
  UniqueFd fd;
  std::string address;
  double opened_at_s;
  double last_rx_s;
  FrameReader reader;
  SendQueue out;
  bool established = false;
  SecureChannel channel;
  PeerIdentity peer;
  // Admin sessions: a request was handed out and its answer is not queued yet (nothing more
  // is read meanwhile).
  bool awaiting_answer = false;
  bool is_admin() const { return established && peer.role == PeerRole::admin; }
};

const char *event_kind_name(ControllerEvent::Kind kind) {
  switch (kind) {
    case ControllerEvent::Kind::session_opened:
      return "session_opened";
    case ControllerEvent::Kind::message:
      return "message";
    case ControllerEvent::Kind::request_denied:
      return "request_denied";
    case ControllerEvent::Kind::session_closed:
      return "session_closed";
    case ControllerEvent::Kind::refused:
      return "refused";
    case ControllerEvent::Kind::endpoint_error:
      return "endpoint_error";
  }
  return "unknown";
}

Status ControllerEndpoint::open(ControllerConfig config, Authenticator &auth,
                                std::unique_ptr<ControllerEndpoint> &out) {
  try {
    UniqueFd fd;
    Status st = listen_tcp(config.listen_host, config.listen_port, config.backlog, fd);
    if (!st.ok()) return st;
    out.reset(new ControllerEndpoint(std::move(config), auth, std::move(fd)));
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory opening the controller endpoint");
  }
}

ControllerEndpoint::ControllerEndpoint(ControllerConfig config, Authenticator &auth,
                                       UniqueFd listener)
    : config_(std::move(config)), auth_(auth), listener_(std::move(listener)) {}

ControllerEndpoint::~ControllerEndpoint() = default;

std::uint16_t ControllerEndpoint::port() const { return local_port(listener_.get()); }

ConnectionId ControllerEndpoint::node_connection(const std::string &node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? 0 : it->second;
}

const PeerIdentity *ControllerEndpoint::peer(ConnectionId id) const {
  auto it = conns_.find(id);
  return it != conns_.end() && it->second->established ? &it->second->peer : nullptr;
}

void ControllerEndpoint::erase(ConnectionId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn &c = *it->second;
  if (c.established && c.peer.role == PeerRole::node) {
    auto n = nodes_.find(c.peer.name);
    if (n != nodes_.end() && n->second == id) nodes_.erase(n);
  }
  conns_.erase(it);
}

void ControllerEndpoint::drop(Conn &c, const Status &why, std::vector<ControllerEvent> *events,
                              bool tell_peer) {
  if (tell_peer) {
    std::string frame;
    if (c.established) {
      ErrorMessage m;
      m.code = static_cast<std::uint16_t>(why.code);
      m.message = sanitize(why.message);
      if (!c.channel.seal(m, frame).ok()) frame.clear();
    } else {
      frame = refusal_frame(why);
    }
    // Best effort: the peer learns why if its socket has room; we close regardless.
    if (!frame.empty() && c.out.push(frame).ok()) (void)c.out.flush(c.fd.get());
  }
  if (events != nullptr) {
    ControllerEvent e;
    e.kind = c.established ? ControllerEvent::Kind::session_closed : ControllerEvent::Kind::refused;
    e.connection = c.id;
    e.address = c.address;
    e.peer = c.peer;
    e.status = why;
    events->push_back(std::move(e));
  }
  erase(c.id);
}

void ControllerEndpoint::close(ConnectionId id, const Status &why) {
  auto it = conns_.find(id);
  if (it != conns_.end()) drop(*it->second, why, nullptr);
}

Status ControllerEndpoint::send(ConnectionId id, const Message &message) {
  try {
    auto it = conns_.find(id);
    if (it == conns_.end())
      return Status::error(Errc::not_connected, "no connection " + std::to_string(id));
    Conn &c = *it->second;
    if (!c.established) return Status::error(Errc::no_session, "connection has no session yet");
    const MsgType type = type_of(message);
    if (!server_sends(c.peer.role).contains(type))
      return Status::error(
          Errc::unexpected_type,
          std::string(type_name(type)) + " cannot go to a " + role_name(c.peer.role) + " session");
    if (type == MsgType::grant && std::get<GrantMessage>(message).node != c.peer.name)
      return Status::error(Errc::binding_mismatch,
                           "GRANT for node '" + std::get<GrantMessage>(message).node +
                               "' on the session of node '" + c.peer.name + "'");
    scratch_.clear();
    Status st = c.channel.seal(message, scratch_);
    if (!st.ok()) return st;
    st = c.out.push(scratch_);
    if (st.ok()) st = c.out.flush(c.fd.get());
    if (!st.ok()) {
      drop(c, st, &pending_, st.code == Errc::send_buffer_full);
      return st;
    }
    if (c.is_admin() && c.awaiting_answer) {
      // Answered: its next request is taken once this answer has left (poll_once).
      c.awaiting_answer = false;
      resumed_.insert(id);
    }
    return st;
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory sending a message");
  }
}

void ControllerEndpoint::accept_all(double now_s, std::vector<ControllerEvent> &events) {
  for (int i = 0; i < kAcceptsPerRound; ++i) {
    UniqueFd fd;
    SocketAddress peer;
    bool again = false;
    Status st = accept_tcp(listener_.get(), fd, peer, again);
    if (again) return;
    if (!st.ok()) {
      accept_paused_until_s_ = now_s + kAcceptPauseS;
      ControllerEvent e;
      e.kind = ControllerEvent::Kind::endpoint_error;
      e.status = st;
      events.push_back(std::move(e));
      return;
    }
    const std::string address = peer.to_string();
    const std::string host = address.substr(0, address.rfind(':'));
    std::size_t pending_here = 0;
    for (const auto &kv : conns_) {
      const Conn &o = *kv.second;
      if (!o.established && o.address.compare(0, host.size() + 1, host + ":") == 0 &&
          o.address.rfind(':') == host.size())
        ++pending_here;
    }
    if (pending_here >= config_.max_pending_per_address) {
      const Status why = Status::error(Errc::too_many_connections,
                                       "address " + host + " holds its limit of " +
                                           std::to_string(config_.max_pending_per_address) +
                                           " connections without a HELLO");
      const std::string frame = refusal_frame(why);
      (void)::send(fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ControllerEvent e;
      e.kind = ControllerEvent::Kind::refused;
      e.address = address;
      e.status = why;
      events.push_back(std::move(e));
      continue;
    }
    if (conns_.size() >= config_.max_connections) evict_oldest_pending(events);
    if (conns_.size() >= config_.max_connections) {
      const Status why = Status::error(
          Errc::too_many_connections, "controller holds its limit of " +
                                          std::to_string(config_.max_connections) + " connections");
      const std::string frame = refusal_frame(why);
      (void)::send(fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ControllerEvent e;
      e.kind = ControllerEvent::Kind::refused;
      e.address = peer.to_string();
      e.status = why;
      events.push_back(std::move(e));
      continue;
    }
    const ConnectionId id = next_id_++;
    conns_.emplace(id, std::make_unique<Conn>(id, std::move(fd), address, now_s,
                                              config_.max_send_queue_bytes));
  }
}

bool ControllerEndpoint::on_frame(Conn &c, const std::uint8_t *data, std::size_t size, double now_s,
                                  std::vector<ControllerEvent> &events) {
  c.last_rx_s = now_s;
  if (!c.established) {
    AcceptedSession acc;
    Status st = accept_hello(auth_, config_.policy, data, size, acc);
    if (!st.ok()) {
      drop(c, st, &events);
      return false;
    }
    if (acc.peer.role == PeerRole::admin) {
      std::size_t mine = 0;
      for (const auto &kv : conns_)
        if (kv.second->is_admin() && kv.second->peer.uid == acc.peer.uid) ++mine;
      if (mine >= config_.max_admin_sessions_per_uid) {
        drop(c,
             Status::error(Errc::too_many_connections,
                           "uid " + std::to_string(acc.peer.uid) + " holds its limit of " +
                               std::to_string(config_.max_admin_sessions_per_uid) +
                               " admin sessions"),
             &events);
        return false;
      }
    }
    c.established = true;
    c.channel = std::move(acc.channel);
    c.peer = std::move(acc.peer);
    c.reader.set_accepted(client_sends(c.peer.role));
    st = c.out.push(acc.welcome_frame);
    if (st.ok()) st = c.out.flush(c.fd.get());
    if (!st.ok()) {
      drop(c, st, &events, false);
      return false;
    }
    if (c.peer.role == PeerRole::node) {
      // One session per node: the newer one wins (the node restarted or reconnected, and
      // its old connection may linger half-open).
      auto [it, inserted] = nodes_.emplace(c.peer.name, c.id);
      if (!inserted) {
        const ConnectionId old = it->second;
        it->second = c.id;
        // The mapping already names the new connection, so erasing the old one keeps it.
        auto o = conns_.find(old);
        if (o != conns_.end())
          drop(*o->second,
               Status::error(Errc::closed, "replaced by a newer session of node '" + c.peer.name +
                                               "' from " + c.address),
               &events);
      }
    }
    ControllerEvent e;
    e.kind = ControllerEvent::Kind::session_opened;
    e.connection = c.id;
    e.address = c.address;
    e.peer = c.peer;
    events.push_back(std::move(e));
    return true;
  }

  ControllerEvent e;
  e.connection = c.id;
  Frame f;
  Status st = c.channel.open(data, size, f);
  if (!st.ok()) {
    drop(c, st, &events);
    return false;
  }
  if (f.header.type == MsgType::error) {
    const auto &m = std::get<ErrorMessage>(f.message);
    drop(c,
         Status::error(
             m.code == 0 ? Errc::closed : static_cast<Errc>(m.code),
             std::string("peer closed with ERROR ") + errc_name(m.code) + ": " + m.message),
         &events, false);
    return false;
  }
  if (c.is_admin() && !take_admin_token(c.peer.uid, now_s)) {
    drop(c,
         Status::error(Errc::rate_limited,
                       "uid " + std::to_string(c.peer.uid) + " sent more than " +
                           std::to_string(static_cast<int>(config_.admin_requests_per_s)) +
                           " admin requests a second"),
         &events);
    return false;
  }
  if (f.header.type == MsgType::admin_set_budget && !c.peer.may_admin) {
    // Refused here, where the uid is known, so no caller can forget the check.
    AdminResult r;
    r.code = static_cast<std::uint16_t>(AdminCode::permission_denied);
    r.message = "permission denied: uid " + std::to_string(c.peer.uid) +
                " is not a PowerGrad administrator";
    e.kind = ControllerEvent::Kind::request_denied;
    e.status = Status::error(Errc::permission_denied, r.message);
    e.address = c.address;
    e.peer = c.peer;
    e.message = std::move(f.message);
    events.push_back(std::move(e));
    scratch_.clear();
    st = c.channel.seal(r, scratch_);
    if (st.ok()) st = c.out.push(scratch_);
    if (st.ok()) st = c.out.flush(c.fd.get());
    if (!st.ok()) {
      drop(c, st, &events, false);
      return false;
    }
    return true;
  }
  if (f.header.type == MsgType::report && std::get<NodeReport>(f.message).node != c.peer.name) {
    // A node speaks for itself only: its session was opened (and munge-checked) under
    // one name, so a report about another node is refused, not filed under either.
    drop(c,
         Status::error(Errc::binding_mismatch,
                       "REPORT for node '" + std::get<NodeReport>(f.message).node +
                           "' on the session of node '" + c.peer.name + "'"),
         &events);
    return false;
  }
  if (c.is_admin()) c.awaiting_answer = true;  // nothing more is read until it is answered
  e.kind = ControllerEvent::Kind::message;
  e.address = c.address;
  e.peer = c.peer;
  e.message = std::move(f.message);
  events.push_back(std::move(e));
  return true;
}

bool ControllerEndpoint::take_admin_token(std::uint32_t uid, double now_s) {
  auto [it, fresh] = admin_buckets_.try_emplace(uid);
  Bucket &b = it->second;
  if (fresh) {
    b.tokens = config_.admin_request_burst;
    b.at_s = now_s;
  }
  b.tokens = std::min(config_.admin_request_burst,
                      b.tokens + std::max(0.0, now_s - b.at_s) * config_.admin_requests_per_s);
  b.at_s = now_s;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

bool ControllerEndpoint::evict_oldest_pending(std::vector<ControllerEvent> &events) {
  Conn *oldest = nullptr;
  for (const auto &kv : conns_) {
    Conn &o = *kv.second;
    if (!o.established && (!oldest || o.opened_at_s < oldest->opened_at_s)) oldest = &o;
  }
  if (!oldest) return false;
  drop(*oldest,
       Status::error(Errc::too_many_connections,
                     "closed without a HELLO to make room: the controller holds its limit of " +
                         std::to_string(config_.max_connections) + " connections"),
       &events);
  return true;
}

bool ControllerEndpoint::drain(Conn &c, double now_s, std::vector<ControllerEvent> &events) {
  for (;;) {
    // An admin session's next request waits until the answer to the last one has left.
    if (c.is_admin() && (c.awaiting_answer || !c.out.empty())) return true;
    const std::uint8_t *data = nullptr;
    std::size_t size = 0;
    Status err;
    switch (c.reader.next(data, size, err)) {
      case FrameReader::Next::need_more:
        return true;
      case FrameReader::Next::error:
        drop(c, err, &events);
        return false;
      case FrameReader::Next::frame:
        if (!on_frame(c, data, size, now_s, events)) return false;
        break;
    }
  }
}

void ControllerEndpoint::on_readable(Conn &c, double now_s, std::vector<ControllerEvent> &events) {
  std::size_t budget = config_.read_budget_bytes;
  for (;;) {
    Status err;
    switch (c.reader.fill(c.fd.get(), err)) {
      case FrameReader::Fill::again:
        return;
      case FrameReader::Fill::eof:
        drop(c, Status::error(Errc::closed, "peer closed the connection"), &events, false);
        return;
      case FrameReader::Fill::error:
        drop(c, err, &events, false);
        return;
      case FrameReader::Fill::data:
        break;
    }
    const std::size_t got = c.reader.last_read();
    if (!drain(c, now_s, events)) return;
    if (got >= budget) return;  // the rest waits for the next round
    budget -= got;
  }
}

void ControllerEndpoint::expire(double now_s, std::vector<ControllerEvent> &events) {
  std::vector<ConnectionId> late;
  for (const auto &[id, c] : conns_) {
    if (!c->established && now_s - c->opened_at_s > config_.handshake_timeout_s)
      late.push_back(id);
    else if (c->established && config_.idle_timeout_s > 0.0 &&
             now_s - c->last_rx_s > config_.idle_timeout_s)
      late.push_back(id);
    else if (c->is_admin() && config_.admin_idle_timeout_s > 0.0 &&
             now_s - c->last_rx_s > config_.admin_idle_timeout_s)
      late.push_back(id);
  }
  for (ConnectionId id : late) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Conn &c = *it->second;
    const Status why =
        c.established
            ? Status::error(Errc::timeout,
                            "nothing received for " + std::to_string(now_s - c.last_rx_s) + " s")
            : Status::error(Errc::timeout, "no HELLO within " +
                                               std::to_string(config_.handshake_timeout_s) + " s");
    drop(c, why, &events);
  }
}

std::vector<ControllerEvent> ControllerEndpoint::poll_once(double now_s, int max_wait_ms,
                                                           std::vector<pollfd> *extra) {
  std::vector<ControllerEvent> events;
  try {
    events.swap(pending_);
    expire(now_s, events);
    // Admin sessions whose answer was queued since: the frames they sent meanwhile are
    // already read (or wait in the socket), take the next one now.
    for (ConnectionId id : std::vector<ConnectionId>(resumed_.begin(), resumed_.end())) {
      auto it = conns_.find(id);
      if (it == conns_.end()) {
        resumed_.erase(id);
        continue;
      }
      if (!it->second->out.empty()) continue;  // its answer has not left yet
      resumed_.erase(id);
      (void)drain(*it->second, now_s, events);
    }

    pfds_.clear();
    polled_.clear();
    const bool accepting = !(now_s < accept_paused_until_s_);
    pfds_.push_back({listener_.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
    double deadline = accepting ? std::numeric_limits<double>::infinity() : accept_paused_until_s_;
    for (const auto &[id, c] : conns_) {
      // An admin session with a request in work is not read (its socket fills, it waits).
      short ev = c->is_admin() && (c->awaiting_answer || !c->out.empty()) ? 0 : POLLIN;
      if (!c->out.empty()) ev |= POLLOUT;
      pfds_.push_back({c->fd.get(), ev, 0});
      polled_.push_back(id);
      if (!c->established)
        deadline = std::min(deadline, c->opened_at_s + config_.handshake_timeout_s);
      else if (config_.idle_timeout_s > 0.0)
        deadline = std::min(deadline, c->last_rx_s + config_.idle_timeout_s);
      if (c->is_admin() && config_.admin_idle_timeout_s > 0.0)
        deadline = std::min(deadline, c->last_rx_s + config_.admin_idle_timeout_s);
    }
    const std::size_t n_own = pfds_.size();
    if (extra != nullptr) pfds_.insert(pfds_.end(), extra->begin(), extra->end());
    // Anything already reported (e.g. by send()) is returned without waiting.
    const int timeout = events.empty() ? wait_ms(now_s, deadline, max_wait_ms) : 0;
    const int rc = ::poll(pfds_.data(), pfds_.size(), timeout);
    if (rc < 0) {
      if (errno != EINTR) {
        ControllerEvent e;
        e.kind = ControllerEvent::Kind::endpoint_error;
        e.status = Status::error(Errc::io_error, std::string("poll: ") + std::strerror(errno));
        events.push_back(std::move(e));
      }
      return events;
    }
    if (extra != nullptr)
      for (std::size_t i = 0; i < extra->size(); ++i)
        (*extra)[i].revents = pfds_[n_own + i].revents;
    if (rc == 0) return events;

    if (pfds_[0].revents & POLLIN) accept_all(now_s, events);
    for (std::size_t i = 1; i < n_own; ++i) {
      const short rev = pfds_[i].revents;
      if (rev == 0) continue;
      auto it = conns_.find(polled_[i - 1]);
      if (it == conns_.end()) continue;  // closed earlier in this round (replaced)
      Conn &c = *it->second;
      if (rev & POLLOUT) {
        Status st = c.out.flush(c.fd.get());
        if (!st.ok()) {
          drop(c, st, &events, false);
          continue;
        }
      }
      if (rev & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) on_readable(c, now_s, events);
    }
  } catch (const std::exception &ex) {
    // Out of memory, most likely. Reporting it may itself fail, which must not throw out of
    // here either: the controller thread keeps running and tries again next round.
    try {
      ControllerEvent e;
      e.kind = ControllerEvent::Kind::endpoint_error;
      e.status = Status::error(Errc::internal, std::string("controller endpoint: ") + ex.what());
      events.push_back(std::move(e));
    } catch (...) {
    }
  }
  return events;
}

}  // namespace powergrad::proto
