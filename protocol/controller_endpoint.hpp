// The controller's side of the protocol: one listening socket, many sessions, one thread.
//
// The controller thread in slurmctld calls poll_once() in its loop; each call waits in
// epoll for at most the time given, accepts connections, runs HELLOs through the
// handshake, verifies every frame of open sessions, writes what is queued, and returns
// what happened as events (sessions opened and closed, authenticated messages, refusals
// with their reason, ready to be logged). The endpoint never reads a clock: the caller
// passes now_s (monotonic seconds) and the timeouts are judged against it.
//
// A HELLO costs one munge decode and one encode (~200 us each here) inside poll_once;
// after that a REPORT costs one HMAC and one decode. A round costs what is ready, not what is
// connected: sockets stay registered with epoll, and timeouts are kept in order (connections
// without a HELLO by age; session idle timeouts by the earliest that can fall due), so that
// 10,000 node sessions cost no more per report than 10 (see bench/load_test.sh).
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "protocol/auth.hpp"
#include "protocol/handshake.hpp"
#include "protocol/messages.hpp"
#include "protocol/net.hpp"
#include "protocol/status.hpp"

namespace powergrad::proto {

using ConnectionId = std::uint64_t;  // 0 is never a connection

struct ControllerConfig {
  std::string listen_host;  // empty: every address (IPv6 dual-stack where possible)
  std::string listen_port;  // number or service name; "0" picks a free port (tests)
  ServerPolicy policy;
  std::size_t max_connections = 16384;
  double handshake_timeout_s = 10.0;  // a connection must complete its HELLO within this
  double idle_timeout_s = 0.0;        // > 0: close sessions that sent nothing for this long
  // What one party may cost, so that node sessions and the control period always come first.
  // Admin sessions (powergrad status, set-budget: any local user may open one) are bounded
  // per uid: sessions at once, requests per second (a token bucket shared by the uid's
  // sessions), and time without a request. Each admin session has at most one request in
  // work: its next one is read only once the answer is queued, so a peer that never reads
  // its answers holds one answer, not a queue of them.
  std::size_t max_admin_sessions_per_uid = 8;
  double admin_requests_per_s = 10.0;
  double admin_request_burst = 20.0;
  double admin_idle_timeout_s = 60.0;
  // Connections that have not sent their HELLO yet, per peer address. When the connection
  // limit is reached, the oldest of them makes room for a newcomer (a restarting node's
  // HELLO comes at once; a connection that never sends one is the one to go).
  std::size_t max_pending_per_address = 64;
  // HELLOs per peer address that open no node session (admin sessions, refused HELLOs), a
  // token bucket: each HELLO costs a munge decode, and a flood of them from one address is
  // refused (rate_limited) before munge once the bucket is empty. A HELLO that opens a node
  // session gives its token back, so nodes restarting by the thousand are never held up.
  double hellos_per_s_per_address = 20.0;
  double hello_burst_per_address = 100.0;
  // Per connection; must hold one ADMIN_STATUS frame (4 MiB of JSON).
  std::size_t max_send_queue_bytes = 8u << 20;
  // Per connection per poll round, so one busy peer cannot starve the others.
  std::size_t read_budget_bytes = 256u << 10;
  int backlog = 1024;
};

struct ControllerEvent {
  enum class Kind {
    session_opened,  // a HELLO was accepted: `peer` says who
    message,         // an authenticated message: REPORT (node), ADMIN_* request (admin)
    request_denied,  // an ADMIN_SET_BUDGET from a non-admin uid; answered permission_denied
    session_closed,  // an open session ended: peer closed, sent ERROR, timed out, replaced
                     // by a newer session of the same node, or broke the protocol (status)
    refused,         // a connection closed before a session opened (bad HELLO etc.)
    endpoint_error,  // trouble of the endpoint itself (poll, accept: e.g. out of fds)
  };
  Kind kind = Kind::endpoint_error;
  ConnectionId connection = 0;
  std::string address;  // the peer's "ip:port"
  PeerIdentity peer;    // valid for session events
  Message message;      // for message and request_denied
  Status status;        // why, for session_closed / refused / request_denied / endpoint_error
};
const char *event_kind_name(ControllerEvent::Kind kind);

class ControllerEndpoint {
 public:
  // Listens as configured. The authenticator must outlive the endpoint.
  static Status open(ControllerConfig config, Authenticator &auth,
                     std::unique_ptr<ControllerEndpoint> &out);
  ~ControllerEndpoint();
  ControllerEndpoint(const ControllerEndpoint &) = delete;
  ControllerEndpoint &operator=(const ControllerEndpoint &) = delete;

  std::uint16_t port() const;

  // One round of work (see the top of this file). Waits at most max_wait_ms, less when a
  // timeout falls due sooner. `extra` fds (e.g. a wake-up pipe, so another thread can stop
  // the loop) are polled too; their revents are filled in for the caller. Never throws.
  std::vector<ControllerEvent> poll_once(double now_s, int max_wait_ms,
                                         std::vector<pollfd> *extra = nullptr);

  // Seals and queues a message on an open session, and tries to write it at once: GRANT or
  // ERROR to node sessions, ADMIN_STATUS, ADMIN_RESULT or ERROR to admin sessions.
  // Errors: not_connected (no such connection), no_session, unexpected_type, an encoding
  // error (nothing sent); send_buffer_full or closed (the session is then closed, and the
  // next poll_once reports it).
  Status send(ConnectionId id, const Message &message);

  // The open session of that node, 0 if none. A node has at most one: a new session of the
  // same node name closes the older one.
  ConnectionId node_connection(const std::string &node) const;
  // The peer of an open session, nullptr if none.
  const PeerIdentity *peer(ConnectionId id) const;
  // Closes a connection (a session gets a sealed ERROR with `why` first). No event.
  void close(ConnectionId id, const Status &why);

  std::size_t connection_count() const { return conns_.size(); }

 private:
  struct Conn;
  ControllerEndpoint(ControllerConfig config, Authenticator &auth, UniqueFd listener,
                     UniqueFd epoll);

  void accept_all(double now_s, std::vector<ControllerEvent> &events);
  void on_readable(Conn &c, double now_s, std::vector<ControllerEvent> &events);
  bool drain(Conn &c, double now_s, std::vector<ControllerEvent> &events);
  bool on_frame(Conn &c, const std::uint8_t *data, std::size_t size, double now_s,
                std::vector<ControllerEvent> &events);
  void expire(double now_s, std::vector<ControllerEvent> &events);
  // An admin request of this uid may go on (a token taken), or not.
  bool take_admin_token(std::uint32_t uid, double now_s);
  // Makes room for one more connection by dropping the oldest one without a HELLO; false if
  // there is none.
  bool evict_oldest_pending(std::vector<ControllerEvent> &events);
  // Closes with an ERROR to the peer (sealed if a session is open) and an event.
  void drop(Conn &c, const Status &why, std::vector<ControllerEvent> *events,
            bool tell_peer = true);
  void erase(ConnectionId id);
  // Registers the events the connection waits for now with epoll, if they changed.
  void watch(Conn &c);
  void establish(Conn &c, double now_s);
  // Takes a connection out of the ones without a HELLO (unhelloed_, pending_per_host_).
  void forget_unhelloed(const Conn &c);
  void note_deadline(double at_s) { next_idle_check_s_ = std::min(next_idle_check_s_, at_s); }
  double next_deadline() const;

  ControllerConfig config_;
  Authenticator &auth_;
  UniqueFd listener_;
  ConnectionId next_id_ = 1;
  std::unordered_map<ConnectionId, std::unique_ptr<Conn>> conns_;
  std::unordered_map<std::string, ConnectionId> nodes_;
  // A token bucket: refilled at `rate` a second up to `burst` (full when new).
  struct Bucket {
    double tokens = -1.0;  // < 0: new
    double at_s = 0.0;
    // The level at now_s (no token taken).
    double level(double now_s, double rate, double burst) const;
    // Takes a token if there is one.
    bool take(double now_s, double rate, double burst);
  };
  std::unordered_map<std::uint32_t, Bucket> admin_buckets_;
  std::unordered_map<std::string, Bucket> hello_buckets_;  // by peer host
  bool take_hello_token(const std::string &host, double now_s);
  // Admin sessions answered since the last round: their next frames are taken once the
  // answer has left.
  std::unordered_set<ConnectionId> resumed_;
  std::vector<ControllerEvent> pending_;  // from send(), reported by the next poll_once
  double accept_paused_until_s_ = 0.0;
  bool listener_watched_ = true;
  UniqueFd epoll_;
  // Connections without a HELLO yet, oldest first, and how many per peer host.
  std::set<std::pair<double, ConnectionId>> unhelloed_;
  std::unordered_map<std::string, std::size_t> pending_per_host_;
  // Admin sessions (few: bounded per uid), and when an idle timeout may fall due next.
  std::unordered_set<ConnectionId> admins_;
  double next_idle_check_s_ = std::numeric_limits<double>::infinity();
  std::string scratch_;
};

}  // namespace powergrad::proto
