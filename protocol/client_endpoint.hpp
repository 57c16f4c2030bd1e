// The client's side of the protocol: one connection to the controller, kept open.
//
// The node agent thread in slurmd calls poll_once() in its loop (passing its own fds, such
// as the step channel, as `extra`); the admin command calls it until its answer arrives.
// The endpoint connects, sends a HELLO, checks the WELCOME, then carries messages; when
// anything fails it closes and tries again after an exponential, jittered backoff. It never
// reads a clock nor sleeps: the caller passes now_s (monotonic seconds) and every deadline
// (next attempt, connect and handshake timeouts) is judged against it.
//
// Losing the controller is reported (disconnected / attempt_failed events) and nothing
// else: the caller's lease rules decide what the node does meanwhile.
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/auth.hpp"
#include "protocol/backoff.hpp"
#include "protocol/channel.hpp"
#include "protocol/handshake.hpp"
#include "protocol/messages.hpp"
#include "protocol/net.hpp"
#include "protocol/status.hpp"

namespace powergrad::proto {

struct ClientConfig {
  std::string host;  // the controller (numeric addresses resolve without DNS)
  std::string port;
  ClientParams hello;  // role, name, incarnation, and whose WELCOME to trust
  BackoffParams backoff;
  std::uint64_t jitter_seed = 0;  // 0: from the kernel
  double connect_timeout_s = 5.0;
  double handshake_timeout_s = 10.0;  // from HELLO sent to WELCOME checked
  std::size_t max_send_queue_bytes = 1u << 20;
};

struct ClientEvent {
  enum class Kind {
    connected,       // the session is open: `session` says with which id and rights
    message,         // an authenticated message from the controller
    disconnected,    // an open session ended (status says why); reconnecting per backoff
    attempt_failed,  // a connect or handshake failed (status says why); next attempt at
                     // next_attempt_at_s
  };
  Kind kind = Kind::attempt_failed;
  Message message;
  Status status;
  SessionInfo session;
  double next_attempt_at_s = 0.0;
};
const char *event_kind_name(ClientEvent::Kind kind);

class ClientEndpoint {
 public:
  enum class State { waiting, connecting, handshaking, established };

  // The authenticator must outlive the endpoint. The first attempt happens at the first
  // poll_once.
  ClientEndpoint(ClientConfig config, Authenticator &auth);

  // One round: starts an attempt when one is due, waits in poll() at most max_wait_ms (less
  // when a deadline falls due sooner), reads, verifies, writes. `extra` fds are polled too
  // and their revents filled in. Never throws.
  std::vector<ClientEvent> poll_once(double now_s, int max_wait_ms,
                                     std::vector<pollfd> *extra = nullptr);

  // Seals and queues a message (REPORT or ERROR for nodes; ADMIN_STATUS_REQ,
  // ADMIN_SET_BUDGET or ERROR for admin clients), trying to write it at once. Errors:
  // not_connected, unexpected_type, an encoding error (nothing sent); send_buffer_full or
  // closed (the session is dropped; the next poll_once reports it).
  Status send(const Message &message);

  // Drops the connection now (the controller gets a sealed ERROR when a session is open);
  // the next attempt follows the backoff.
  void disconnect(const Status &why, double now_s);

  State state() const { return state_; }
  bool established() const { return state_ == State::established; }
  const SessionInfo &session() const { return session_; }
  double next_attempt_at_s() const { return next_attempt_at_s_; }
  unsigned failures() const { return backoff_.failures(); }

 private:
  void start_attempt(double now_s, std::vector<ClientEvent> &events);
  void send_hello(double now_s, std::vector<ClientEvent> &events);
  void on_readable(double now_s, std::vector<ClientEvent> &events);
  bool on_frame(const std::uint8_t *data, std::size_t size, double now_s,
                std::vector<ClientEvent> &events);
  void drop(const Status &why, double now_s, std::vector<ClientEvent> *events,
            bool tell_peer = true);

  ClientConfig config_;
  Authenticator &auth_;
  Backoff backoff_;
  ClientHandshake handshake_;
  State state_ = State::waiting;
  UniqueFd fd_;
  FrameReader reader_;
  SendQueue out_;
  SecureChannel channel_;
  SessionInfo session_;
  double next_attempt_at_s_ = -1.0e300;  // the first poll_once attempts at once
  double deadline_s_ = 0.0;              // of connecting / handshaking
  double last_now_s_ = 0.0;
  std::uint64_t attempts_ = 0;
  std::vector<ClientEvent> pending_;
  std::string scratch_;
};

}  // namespace powergrad::proto
