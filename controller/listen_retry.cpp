#include "controller/listen_retry.hpp"

#include <cmath>
#include <cstdio>

#include "controller/budget_state.hpp"

namespace powergrad {

namespace {

proto::BackoffParams params(double first_s, double max_s) {
  proto::BackoffParams p;
  p.initial_s = first_s;
  p.max_s = max_s;
  p.multiplier = 2.0;
  p.jitter = 0.0;
  return p;
}

std::string seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f s", s);
  return b;
}

// At the longest delay only every this many attempts is logged.
constexpr unsigned kLogEveryAtMax = 10;

}  // namespace

ListenRetry::ListenRetry(double first_delay_s, double max_delay_s)
    : backoff_(params(first_delay_s, max_delay_s), 1), max_delay_s_(max_delay_s) {}

std::unique_ptr<proto::ControllerEndpoint> ListenRetry::attempt(
    const proto::ControllerConfig &config, proto::Authenticator &auth, double mono_s, double wall_s,
    std::string *log_line) {
  if (log_line) log_line->clear();
  state_.address = config.listen_host + ":" + config.listen_port;
  std::unique_ptr<proto::ControllerEndpoint> endpoint;
  const proto::Status st = proto::ControllerEndpoint::open(config, auth, endpoint);
  if (st.ok()) {
    state_.listening = true;
    state_.listening_since_s = wall_s;
    backoff_.reset();
    return endpoint;
  }
  state_.listening = false;
  state_.last_error = st.to_string();
  if (state_.failed_attempts++ == 0) state_.failing_since_s = wall_s;
  last_delay_s_ = backoff_.next_delay_s();
  next_try_s_ = mono_s + last_delay_s_;
  if (!log_line) return nullptr;
  const unsigned n = state_.failed_attempts;
  if (n == 1) {
    *log_line = "cannot listen on " + state_.address + ": " + state_.last_error +
                "; power control is off until it can: node agents cannot report (they fall "
                "back to their floors as their leases end) and `powergrad status` cannot reach "
                "the controller meanwhile; trying again in " +
                seconds(last_delay_s_) + ", then less often, up to every " + seconds(max_delay_s_);
  } else if (last_delay_s_ < max_delay_s_ || n % kLogEveryAtMax == 0) {
    *log_line = "still cannot listen on " + state_.address + " (" + std::to_string(n) +
                " attempts since " + local_time_text(state_.failing_since_s) +
                "): " + state_.last_error +
                "; power control stays off and `powergrad status` "
                "cannot reach the controller; next try in " +
                seconds(last_delay_s_) +
                (last_delay_s_ < max_delay_s_
                     ? std::string()
                     : " (logged every " + std::to_string(kLogEveryAtMax) + " attempts)");
  }
  return nullptr;
}

}  // namespace powergrad
