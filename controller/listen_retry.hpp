// The controller's listening socket, tried again while it cannot be had. A listen address
// that is taken at slurmctld's start (another program holds the port, or a slurmctld that
// just stopped still does) must not leave power control off until the next restart: the
// controller tries again after 1 s, then 2, 4, ... up to every 30 s, for as long as
// slurmctld runs, and says so in slurmctld's log.
//
// While it does not listen, node agents cannot report (they fall back to their floors as
// their leases end) and `powergrad status` cannot reach the controller: the log lines say
// so, since status cannot. Once listening, status shows how long the port was taken.
//
// No clock or sleep of its own: the caller passes the time and waits until next_try_s().
#pragma once

#include <limits>
#include <memory>
#include <string>

#include "protocol/auth.hpp"
#include "protocol/backoff.hpp"
#include "protocol/controller_endpoint.hpp"

namespace powergrad {

struct ListenState {
  std::string address;  // "HOST:PORT" as configured (an empty host: every address)
  bool listening = false;
  unsigned failed_attempts = 0;  // before listening; kept once listening, for status
  double failing_since_s = std::numeric_limits<double>::quiet_NaN();  // wall clock, or NaN
  double listening_since_s = std::numeric_limits<double>::quiet_NaN();
  std::string last_error;  // of the last failed attempt
};

class ListenRetry {
 public:
  // Delays after the first failure, doubling up to max_delay_s (no jitter: one process).
  explicit ListenRetry(double first_delay_s = 1.0, double max_delay_s = 30.0);

  // Tries to listen as `config` says. Returns the endpoint, or null when the address cannot
  // be had; then *log_line (if given) receives the line to log (empty when this attempt is
  // one of those not logged: at the longest delay, every 10th attempt is), and
  // next_try_s() is when to try again. mono_s: monotonic seconds; wall_s: the wall clock.
  std::unique_ptr<proto::ControllerEndpoint> attempt(const proto::ControllerConfig &config,
                                                     proto::Authenticator &auth, double mono_s,
                                                     double wall_s, std::string *log_line);

  // When the next attempt is due (monotonic seconds); 0 before the first.
  double next_try_s() const { return next_try_s_; }
  // The delay that followed the last failure.
  double last_delay_s() const { return last_delay_s_; }
  const ListenState &state() const { return state_; }

 private:
  proto::Backoff backoff_;
  double max_delay_s_;
  double next_try_s_ = 0.0;
  double last_delay_s_ = 0.0;
  ListenState state_;
};

}  // namespace powergrad
