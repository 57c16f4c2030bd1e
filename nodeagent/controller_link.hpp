// The node agent's link to the cluster controller: one protocol session (node role, munge
// handshake), kept open with reconnects on a jittered backoff. It carries the node's
// NodeReport up once per period and hands the GrantMessages that come down to the caller,
// which applies them as leases (PowerControl::on_grant). Runs on the agent thread and never
// blocks it: the socket is non-blocking, and poll() waits at most what the caller allows.
//
// Losing the controller changes nothing here but the logs: the lease rules (NodeController)
// decide what the node does meanwhile. Reports made while no session is open are dropped,
// not queued: a stale report is worth less than the next one.
//
// Logs are rate-limited: the first failed attempt, then at most one line a minute while the
// controller stays unreachable (with the number of failures), and one line when a session
// opens.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "libgradient/control_messages.hpp"
#include "nodeagent/agent_log.hpp"
#include "protocol/auth.hpp"
#include "protocol/backoff.hpp"
#include "protocol/client_endpoint.hpp"

namespace powergrad {

struct ControllerLinkConfig {
  std::string host;  // the controller's address or host name
  std::string port;  // "6830"
  std::string node_name;
  std::uint64_t incarnation = 0;
  // Whose WELCOME is trusted: root and SlurmUser.
  std::vector<uid_t> controller_uids;
  proto::BackoffParams backoff;
  std::uint64_t jitter_seed = 0;  // 0: from the kernel
  double connect_timeout_s = 5.0;
  double handshake_timeout_s = 10.0;
  double log_every_s = 60.0;  // while the controller stays unreachable
};

class ControllerLink {
 public:
  // The authenticator must outlive the link.
  ControllerLink(ControllerLinkConfig config, proto::Authenticator &auth, AgentLog log);

  // One round of the protocol at monotonic time now_s: connects when due, reads, writes;
  // waits in poll() at most max_wait_ms (with `extra` fds polled too, revents filled in).
  // Returns the grants received. Never throws.
  std::vector<GrantMessage> poll(double now_s, int max_wait_ms,
                                 std::vector<pollfd> *extra = nullptr);

  // Sends the period's report when a session is open; returns whether it was queued.
  bool send_report(const NodeReport &report);
  // The node's capabilities: sent once on every session (and again when they change) by
  // poll(). A controller that predates NODE_CAPS closes the session with bad_type: from
  // then on they are not sent to it (logged once), and status shows none for the node.
  void set_caps(const proto::NodeCaps &caps);
  bool caps_unsupported() const { return caps_unsupported_; }

  bool connected() const { return endpoint_.established(); }
  // The controller closed the session saying this node is not managed (not_managed): its
  // words, once; nullopt otherwise.
  std::optional<std::string> take_not_managed();
  std::string address() const { return config_.host + ":" + config_.port; }
  unsigned long reports_sent() const { return reports_sent_; }
  unsigned long grants_received() const { return grants_received_; }
  unsigned long sessions_opened() const { return sessions_opened_; }

 private:
  void on_failure(const proto::ClientEvent &e, double now_s, bool was_open);
  void note_refusal(proto::Errc code);
  void send_caps_if_due();

  ControllerLinkConfig config_;
  AgentLog log_;
  proto::ClientEndpoint endpoint_;
  unsigned long reports_sent_ = 0;
  unsigned long grants_received_ = 0;
  unsigned long sessions_opened_ = 0;
  unsigned long failures_ = 0;  // since the last open session
  std::optional<std::string> not_managed_;
  double last_failure_log_s_ = 0.0;
  std::optional<proto::NodeCaps> caps_;
  bool caps_sent_ = false;             // on the open session
  bool caps_sent_on_session_ = false;  // sent on the session that is open or just closed
  bool caps_unsupported_ = false;
};

}  // namespace powergrad
