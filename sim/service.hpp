// One inference service: c servers (workers, one per core) taking requests first come first
// served from a bounded queue. Request-level: every request has an arrival time and a size,
// and its latency (sojourn: waiting + service) is measured when it completes.
//
// Time is advanced in steps [t0, t1) within which the service speed is constant (the
// hardware changes frequency only at tick boundaries). Inside a step the service is an exact
// discrete-event simulation: arrivals and completions happen at their own times. A request in
// service when a step ends keeps its remaining work, which the next step finishes at the new
// speed. The arrival rate is also constant per step; a rate change rescales the pending
// inter-arrival time (the residual of an exponential is exponential, so this is exact for a
// Poisson process with piecewise-constant rate, and draws nothing extra: the requests are the
// same whatever the speed, i.e. whatever the policy).
//
// Nothing is lost silently: every arrival ends as completed, rejected (queue full), timed
// out (waited longer than timeout_s when a server freed up) or in flight when the run ends.
// The waiting queue is a ring buffer that starts small and doubles when full, up to
// queue_limit. Rings of queue_limit slots (10000 by default: 160 kB per service, 0.4 GB per
// policy at 1024 nodes) made memory, cache misses and run time grow faster than the
// cluster. The queue's order and limit are the same either way; after a short warm-up no
// step allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sim/histogram.hpp"
#include "sim/rng.hpp"

namespace powergrad::sim {

struct ServiceParams {
  int servers = 1;
  double mean_size_s = 1.0;  // mean service time at speed 1
  double size_cv = 1.0;      // coefficient of variation of the service time
  std::size_t queue_limit = 10000;  // waiting requests (not counting those in service)
  double timeout_s = 0.0;           // > 0: a request still waiting after this is dropped
  double record_after_s = 0.0;      // latencies of requests arriving earlier are not recorded
};

struct ServiceCounts {
  std::uint64_t arrivals = 0;
  std::uint64_t completed = 0;
  std::uint64_t rejected = 0;   // queue full on arrival
  std::uint64_t timed_out = 0;  // waited too long
  double latency_sum_s = 0.0;   // over recorded completions
  std::uint64_t recorded = 0;
  std::uint64_t dropped() const { return rejected + timed_out; }
};

// Where recorded completions go; any may be null.
struct LatencySink {
  LatencyHistogram *total = nullptr;
  LatencyHistogram *window = nullptr;
  LatencyHistogram *workload = nullptr;
};

class Service {
 public:
  Service(const ServiceParams &params, std::uint64_t seed);

  // Advances over [t0_s, t1_s) at `speed` (work per second, > 0) with arrivals at `rate_rps`
  // (>= 0). Returns the busy server-seconds in the step.
  double advance(double t0_s, double t1_s, double speed, double rate_rps, LatencySink sink);

  const ServiceCounts &counts() const { return counts_; }
  std::size_t queued() const { return queue_size_; }
  int busy_servers() const { return busy_; }
  std::uint64_t in_flight() const { return queue_size_ + static_cast<std::uint64_t>(busy_); }
  const ServiceParams &params() const { return params_; }

 private:
  struct Waiting {
    double arrival_s;
    double size_s;
  };
  struct Server {
    double done_s;     // completion time at the current step's speed
    double left_s;     // remaining work between steps
    double arrival_s;  // of the request it serves
    bool busy;
  };

  void start(Server &server, double now_s, double arrival_s, double size_s, double speed);
  void grow_queue();
  void complete(Server &server, double now_s, LatencySink sink);

  ServiceParams params_;
  Rng rng_;
  SizeDistribution sizes_;
  std::vector<Server> servers_;
  std::vector<Waiting> queue_;  // ring buffer; its size is a power of two
  std::size_t queue_mask_ = 0;  // queue_.size() - 1
  std::size_t queue_head_ = 0;
  std::size_t queue_size_ = 0;
  int busy_ = 0;
  double rate_rps_ = 0.0;
  double next_arrival_s_;  // at rate_rps_; +inf when the rate is 0
  double unit_residual_;   // pending inter-arrival time at rate 1, kept while the rate is 0
  ServiceCounts counts_;
};

}  // namespace powergrad::sim
