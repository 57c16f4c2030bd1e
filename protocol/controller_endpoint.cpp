#include "protocol/controller_endpoint.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iterator>
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
constexpr int kEventsPerRound = 1024;
constexpr std::uint64_t kListenerTag = 0;  // epoll data of the listener (0 is no connection)

std::string host_of(const std::string &address) { return address.substr(0, address.rfind(':')); }

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
  std::uint32_t watched = 0;  // the events registered with epoll
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
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerTag;
    if (!ep || ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0)
      return Status::error(Errc::io_error, std::string("epoll: ") + std::strerror(errno));
    out.reset(new ControllerEndpoint(std::move(config), auth, std::move(fd), std::move(ep)));
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory opening the controller endpoint");
  }
}

ControllerEndpoint::ControllerEndpoint(ControllerConfig config, Authenticator &auth,
                                       UniqueFd listener, UniqueFd epoll)
    : config_(std::move(config)),
      auth_(auth),
      listener_(std::move(listener)),
      epoll_(std::move(epoll)) {}

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
  if (!c.established) forget_unhelloed(c);
  admins_.erase(id);
  conns_.erase(it);  // closing the socket takes it out of epoll
}

void ControllerEndpoint::watch(Conn &c) {
  // An admin session with a request in work is not read (its socket fills, it waits).
  std::uint32_t want = c.is_admin() && (c.awaiting_answer || !c.out.empty()) ? 0u : EPOLLIN;
  if (!c.out.empty()) want |= EPOLLOUT;
  if (want == c.watched) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) == 0) c.watched = want;
}

void ControllerEndpoint::forget_unhelloed(const Conn &c) {
  unhelloed_.erase({c.opened_at_s, c.id});
  auto h = pending_per_host_.find(host_of(c.address));
  if (h != pending_per_host_.end() && --h->second == 0) pending_per_host_.erase(h);
}

void ControllerEndpoint::establish(Conn &c, double now_s) {
  forget_unhelloed(c);
  c.established = true;
  if (c.is_admin()) {
    admins_.insert(c.id);
    if (config_.admin_idle_timeout_s > 0.0) note_deadline(now_s + config_.admin_idle_timeout_s);
  }
  if (config_.idle_timeout_s > 0.0) note_deadline(now_s + config_.idle_timeout_s);
}

double ControllerEndpoint::next_deadline() const {
  double d = next_idle_check_s_;
  if (!unhelloed_.empty()) d = std::min(d, unhelloed_.begin()->first + config_.handshake_timeout_s);
  return d;
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
    watch(c);
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
    const std::string host = host_of(address);
    const auto ph = pending_per_host_.find(host);
    const std::size_t pending_here = ph == pending_per_host_.end() ? 0 : ph->second;
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
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
      ControllerEvent e;
      e.kind = ControllerEvent::Kind::endpoint_error;
      e.address = address;
      e.status = Status::error(Errc::io_error, std::string("epoll: ") + std::strerror(errno));
      events.push_back(std::move(e));
      continue;
    }
    auto conn =
        std::make_unique<Conn>(id, std::move(fd), address, now_s, config_.max_send_queue_bytes);
    conn->watched = EPOLLIN;
    unhelloed_.insert({now_s, id});
    ++pending_per_host_[host];
    conns_.emplace(id, std::move(conn));
  }
}

bool ControllerEndpoint::on_frame(Conn &c, const std::uint8_t *data, std::size_t size, double now_s,
                                  std::vector<ControllerEvent> &events) {
  c.last_rx_s = now_s;
  if (!c.established) {
    const std::string host = host_of(c.address);
    if (!take_hello_token(host, now_s)) {
      drop(c,
           Status::error(Errc::rate_limited,
                         "address " + host + " sent more than " +
                             std::to_string(static_cast<int>(config_.hellos_per_s_per_address)) +
                             " HELLOs a second that opened no node session"),
           &events);
      return false;
    }
    AcceptedSession acc;
    Status st = accept_hello(auth_, config_.policy, data, size, acc);
    if (!st.ok()) {
      drop(c, st, &events);
      return false;
    }
    if (acc.peer.role == PeerRole::node) {
      // A node's session: its token goes back (nodes are never rate-limited here).
      auto b = hello_buckets_.find(host);
      if (b != hello_buckets_.end())
        b->second.tokens = std::min(config_.hello_burst_per_address, b->second.tokens + 1.0);
    }
    if (acc.peer.role == PeerRole::admin) {
      std::size_t mine = 0;
      for (ConnectionId a : admins_) {
        auto it = conns_.find(a);
        if (it != conns_.end() && it->second->peer.uid == acc.peer.uid) ++mine;
      }
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
    c.channel = std::move(acc.channel);
    c.peer = std::move(acc.peer);
    establish(c, now_s);
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

bool ControllerEndpoint::take_hello_token(const std::string &host, double now_s) {
  if (!(config_.hellos_per_s_per_address > 0.0)) return true;  // no limit
  const double rate = config_.hellos_per_s_per_address, burst = config_.hello_burst_per_address;
  if (hello_buckets_.size() > 4096) {
    // Many addresses: forget those whose bucket has filled up again (they cost nothing).
    for (auto it = hello_buckets_.begin(); it != hello_buckets_.end();)
      it = it->second.level(now_s, rate, burst) >= burst ? hello_buckets_.erase(it) : std::next(it);
  }
  return hello_buckets_[host].take(now_s, rate, burst);
}

double ControllerEndpoint::Bucket::level(double now_s, double rate, double burst) const {
  if (tokens < 0.0) return burst;
  return std::min(burst, tokens + std::max(0.0, now_s - at_s) * rate);
}

bool ControllerEndpoint::Bucket::take(double now_s, double rate, double burst) {
  tokens = level(now_s, rate, burst);
  at_s = now_s;
  if (tokens < 1.0) return false;
  tokens -= 1.0;
  return true;
}

bool ControllerEndpoint::take_admin_token(std::uint32_t uid, double now_s) {
  return admin_buckets_[uid].take(now_s, config_.admin_requests_per_s, config_.admin_request_burst);
}

bool ControllerEndpoint::evict_oldest_pending(std::vector<ControllerEvent> &events) {
  if (unhelloed_.empty()) return false;
  auto it = conns_.find(unhelloed_.begin()->second);
  if (it == conns_.end()) {  // cannot happen: erase() keeps unhelloed_ in step
    unhelloed_.erase(unhelloed_.begin());
    return false;
  }
  Conn *oldest = it->second.get();
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
  // Connections without a HELLO, oldest first.
  for (const auto &[opened, id] : unhelloed_) {
    if (!(now_s - opened > config_.handshake_timeout_s)) break;
    late.push_back(id);
  }
  // Idle sessions: a scan only when the earliest idle deadline noted may have come.
  if (now_s >= next_idle_check_s_) {
    next_idle_check_s_ = std::numeric_limits<double>::infinity();
    auto check = [&](const Conn &c) {
      if (config_.idle_timeout_s > 0.0) {
        if (now_s - c.last_rx_s > config_.idle_timeout_s) return late.push_back(c.id);
        note_deadline(c.last_rx_s + config_.idle_timeout_s);
      }
      if (c.is_admin() && config_.admin_idle_timeout_s > 0.0) {
        if (now_s - c.last_rx_s > config_.admin_idle_timeout_s) return late.push_back(c.id);
        note_deadline(c.last_rx_s + config_.admin_idle_timeout_s);
      }
    };
    if (config_.idle_timeout_s > 0.0) {
      for (const auto &kv : conns_)
        if (kv.second->established) check(*kv.second);
    } else {
      for (ConnectionId a : admins_) {
        auto it = conns_.find(a);
        if (it != conns_.end()) check(*it->second);
      }
    }
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
      if (drain(*it->second, now_s, events)) {
        auto again = conns_.find(id);
        if (again != conns_.end()) watch(*again->second);
      }
    }

    const bool accepting = !(now_s < accept_paused_until_s_);
    if (accepting != listener_watched_) {
      epoll_event ev{};
      ev.events = accepting ? EPOLLIN : 0u;
      ev.data.u64 = kListenerTag;
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener_.get(), &ev) == 0)
        listener_watched_ = accepting;
    }
    double deadline = next_deadline();
    if (!accepting) deadline = std::min(deadline, accept_paused_until_s_);
    // Anything already reported (e.g. by send()) is returned without waiting.
    const int timeout = events.empty() ? wait_ms(now_s, deadline, max_wait_ms) : 0;
    bool ready = true;
    if (extra != nullptr && !extra->empty()) {
      // The caller's fds and the epoll set in one poll(); then the ready sockets at once.
      std::vector<pollfd> pfds;
      pfds.reserve(extra->size() + 1);
      pfds.push_back({epoll_.get(), POLLIN, 0});
      pfds.insert(pfds.end(), extra->begin(), extra->end());
      const int rc = ::poll(pfds.data(), pfds.size(), timeout);
      if (rc < 0) {
        if (errno != EINTR) {
          ControllerEvent e;
          e.kind = ControllerEvent::Kind::endpoint_error;
          e.status = Status::error(Errc::io_error, std::string("poll: ") + std::strerror(errno));
          events.push_back(std::move(e));
        }
        return events;
      }
      for (std::size_t i = 0; i < extra->size(); ++i) (*extra)[i].revents = pfds[i + 1].revents;
      ready = (pfds[0].revents & POLLIN) != 0;
    }
    if (!ready) return events;
    epoll_event evs[kEventsPerRound];
    const int n = ::epoll_wait(epoll_.get(), evs, kEventsPerRound,
                               extra != nullptr && !extra->empty() ? 0 : timeout);
    if (n < 0) {
      if (errno != EINTR) {
        ControllerEvent e;
        e.kind = ControllerEvent::Kind::endpoint_error;
        e.status =
            Status::error(Errc::io_error, std::string("epoll_wait: ") + std::strerror(errno));
        events.push_back(std::move(e));
      }
      return events;
    }
    for (int i = 0; i < n; ++i) {
      const std::uint32_t rev = evs[i].events;
      if (evs[i].data.u64 == kListenerTag) {
        if (rev & EPOLLIN) accept_all(now_s, events);
        continue;
      }
      auto it = conns_.find(evs[i].data.u64);
      if (it == conns_.end()) continue;  // closed earlier in this round (replaced)
      Conn &c = *it->second;
      const ConnectionId id = c.id;
      if (rev & EPOLLOUT) {
        Status st = c.out.flush(c.fd.get());
        if (!st.ok()) {
          drop(c, st, &events, false);
          continue;
        }
      }
      if (rev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c, now_s, events);
      auto again = conns_.find(id);  // may be gone now
      if (again != conns_.end()) watch(*again->second);
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
