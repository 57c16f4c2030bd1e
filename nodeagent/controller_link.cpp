#include "nodeagent/controller_link.hpp"

#include <cstdio>
#include <exception>
#include <variant>

namespace powergrad {

namespace {

proto::ClientConfig client_config(const ControllerLinkConfig &c) {
  proto::ClientConfig cc;
  cc.host = c.host;
  cc.port = c.port;
  cc.hello.role = proto::PeerRole::node;
  cc.hello.name = c.node_name;
  cc.hello.incarnation = c.incarnation;
  cc.hello.controller_uids = c.controller_uids;
  cc.backoff = c.backoff;
  cc.jitter_seed = c.jitter_seed;
  cc.connect_timeout_s = c.connect_timeout_s;
  cc.handshake_timeout_s = c.handshake_timeout_s;
  return cc;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", s);
  return buf;
}

}  // namespace

ControllerLink::ControllerLink(ControllerLinkConfig config, proto::Authenticator &auth,
                               AgentLog log)
    : config_(std::move(config)), log_(std::move(log)), endpoint_(client_config(config_), auth) {}

std::vector<GrantMessage> ControllerLink::poll(double now_s, int max_wait_ms,
                                               std::vector<pollfd> *extra) {
  std::vector<GrantMessage> grants;
  std::vector<proto::ClientEvent> events;
  try {
    events = endpoint_.poll_once(now_s, max_wait_ms, extra);
  } catch (const std::exception &e) {  // poll_once promises not to throw; belt and braces
    log_(AgentLogLevel::error, std::string("controller link: ") + e.what());
    return grants;
  }
  for (const proto::ClientEvent &e : events) {
    switch (e.kind) {
      case proto::ClientEvent::Kind::connected:
        ++sessions_opened_;
        log_(AgentLogLevel::info,
             "connected to the controller at " + address() + " (session " +
                 std::to_string(e.session.session_id) + ", controller uid " +
                 std::to_string(e.session.controller_uid) + ")" +
                 (failures_ > 0 ? " after " + std::to_string(failures_) + " failed attempt(s)"
                                : std::string()));
        failures_ = 0;
        caps_sent_ = false;
        caps_sent_on_session_ = false;
        break;
      case proto::ClientEvent::Kind::message:
        if (const auto *g = std::get_if<GrantMessage>(&e.message)) {
          ++grants_received_;
          grants.push_back(*g);
        } else if (const auto *err = std::get_if<proto::ErrorMessage>(&e.message)) {
          note_refusal(static_cast<proto::Errc>(err->code));
          log_(AgentLogLevel::info, "the controller at " + address() + " says: " +
                                        proto::errc_name(err->code) + ": " + err->message);
        } else {
          log_(AgentLogLevel::debug, std::string("controller sent an unexpected ") +
                                         proto::type_name(proto::type_of(e.message)));
        }
        break;
      case proto::ClientEvent::Kind::disconnected:
        note_refusal(e.status.code);
        on_failure(e, now_s, true);
        caps_sent_ = false;
        break;
      case proto::ClientEvent::Kind::attempt_failed:
        on_failure(e, now_s, false);
        break;
    }
  }
  send_caps_if_due();
  return grants;
}

void ControllerLink::note_refusal(proto::Errc code) {
  if (!caps_sent_on_session_ || caps_unsupported_) return;
  // bad_type, unexpected_type: a controller older than NODE_CAPS. trailing_bytes, oversize:
  // one older than its trailing restore_failures field (it reads the message up to reason).
  // Either closes the session on it: not sending it again keeps the node reporting there.
  if (code != proto::Errc::bad_type && code != proto::Errc::unexpected_type &&
      code != proto::Errc::trailing_bytes && code != proto::Errc::oversize)
    return;
  caps_unsupported_ = true;
  log_(AgentLogLevel::info, "the controller at " + address() +
                                " does not take NODE_CAPS as this agent sends it (an older "
                                "version, " +
                                proto::errc_name(code) +
                                "): this node's capabilities are no longer sent to it");
}

void ControllerLink::set_caps(const proto::NodeCaps &caps) {
  if (caps_ && *caps_ == caps) return;
  caps_ = caps;
  caps_sent_ = false;
  send_caps_if_due();
}

void ControllerLink::send_caps_if_due() {
  if (!caps_ || caps_sent_ || caps_unsupported_ || !endpoint_.established()) return;
  const proto::Status s = endpoint_.send(proto::Message{*caps_});
  if (!s.ok()) {
    log_(AgentLogLevel::debug, "capabilities not sent: " + s.to_string());
    return;
  }
  caps_sent_ = true;
  caps_sent_on_session_ = true;
}

std::optional<std::string> ControllerLink::take_not_managed() {
  std::optional<std::string> r;
  r.swap(not_managed_);
  return r;
}

void ControllerLink::on_failure(const proto::ClientEvent &e, double now_s, bool was_open) {
  ++failures_;
  if (e.status.code == proto::Errc::not_managed) not_managed_ = e.status.message;
  const std::string retry = "; next attempt in " + seconds(e.next_attempt_at_s - now_s) + " s";
  if (was_open) {
    // A lost session is news every time; the attempts that follow are rate-limited.
    last_failure_log_s_ = now_s;
    log_(AgentLogLevel::info, "lost the controller at " + address() + ": " + e.status.to_string() +
                                  retry + " (the node keeps its lease rules meanwhile)");
    return;
  }
  if (failures_ == 1 || now_s - last_failure_log_s_ >= config_.log_every_s) {
    last_failure_log_s_ = now_s;
    log_(AgentLogLevel::info, "cannot reach the controller at " + address() + ": " +
                                  e.status.to_string() + " (" + std::to_string(failures_) +
                                  " failed attempt(s))" + retry);
  } else {
    log_(AgentLogLevel::debug, "controller at " + address() + ": " + e.status.to_string());
  }
}

bool ControllerLink::send_report(const NodeReport &report) {
  if (!endpoint_.established()) return false;
  const proto::Status s = endpoint_.send(proto::Message{report});
  if (!s.ok()) {
    log_(AgentLogLevel::debug, "report not sent: " + s.to_string());
    return false;
  }
  ++reports_sent_;
  return true;
}

}  // namespace powergrad
