// Reconnect delays: exponential with jitter, and no clock of its own.
//
// The caller asks for the delay after a failure and adds it to its own notion of now, so
// tests step through a whole reconnect schedule without sleeping. Jitter spreads the
// reconnects of a thousand node agents that lost the controller at the same instant (a
// slurmctld restart) over time, instead of a burst of HELLOs each costing a munge decode.
#pragma once

#include <cstdint>

namespace powergrad::proto {

struct BackoffParams {
  double initial_s = 0.5;   // delay after the first failure (before jitter)
  double max_s = 30.0;      // the delay stops growing here
  double multiplier = 2.0;  // growth per further failure
  double jitter = 0.5;      // each delay is drawn uniformly from [base x (1 - jitter), base]
};

class Backoff {
 public:
  // seed 0 draws a seed from the kernel; tests pass a fixed one.
  explicit Backoff(BackoffParams params = {}, std::uint64_t seed = 0);

  // Records one more failure and returns how long to wait before the next attempt: the
  // base initial_s x multiplier^(failures - 1), capped at max_s, then jittered. Parameters
  // out of range are clamped (no negative, NaN or infinite delay ever comes out).
  double next_delay_s();
  // After a success: the next failure starts again from initial_s.
  void reset() { failures_ = 0; }
  unsigned failures() const { return failures_; }

 private:
  double uniform01();  // [0, 1), splitmix64

  BackoffParams params_;
  std::uint64_t state_;
  unsigned failures_ = 0;
};

}  // namespace powergrad::proto
