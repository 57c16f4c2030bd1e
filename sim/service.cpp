#include "sim/service.hpp"

#include <limits>
#include <utility>

namespace powergrad::sim {

namespace {
constexpr double kNever = std::numeric_limits<double>::infinity();
constexpr std::size_t kInitialQueueSlots = 16;
}

Service::Service(const ServiceParams &params, std::uint64_t seed)
    : params_(params),
      rng_(seed),
      sizes_(params.mean_size_s, params.size_cv),
      servers_(static_cast<std::size_t>(params.servers > 0 ? params.servers : 1),
               Server{kNever, 0.0, 0.0, false}),
      queue_(kInitialQueueSlots),
      queue_mask_(kInitialQueueSlots - 1),
      next_arrival_s_(kNever),
      unit_residual_(rng_.exponential()) {}

void Service::start(Server &server, double now_s, double arrival_s, double size_s,
                    double speed) {
  server.busy = true;
  server.arrival_s = arrival_s;
  server.done_s = now_s + size_s / speed;
  ++busy_;
}

// Doubles the ring, its waiting requests first in order.
void Service::grow_queue() {
  std::vector<Waiting> bigger(queue_.size() * 2);
  for (std::size_t i = 0; i < queue_size_; ++i) bigger[i] = queue_[(queue_head_ + i) & queue_mask_];
  queue_ = std::move(bigger);
  queue_mask_ = queue_.size() - 1;
  queue_head_ = 0;
}

void Service::complete(Server &server, double now_s, LatencySink sink) {
  server.busy = false;
  server.done_s = kNever;
  --busy_;
  ++counts_.completed;
  if (server.arrival_s >= params_.record_after_s) {
    const double latency_s = now_s - server.arrival_s;
    counts_.latency_sum_s += latency_s;
    ++counts_.recorded;
    if (sink.total) sink.total->add(latency_s);
    if (sink.window) sink.window->add(latency_s);
    if (sink.workload) sink.workload->add(latency_s);
  }
}

double Service::advance(double t0_s, double t1_s, double speed, double rate_rps,
                        LatencySink sink) {
  // Rate change: rescale the pending inter-arrival time (memoryless, see the header).
  if (rate_rps != rate_rps_) {
    if (rate_rps_ > 0.0) unit_residual_ = (next_arrival_s_ - t0_s) * rate_rps_;
    rate_rps_ = rate_rps;
    next_arrival_s_ = rate_rps > 0.0 ? t0_s + unit_residual_ / rate_rps : kNever;
  }
  for (Server &s : servers_)
    if (s.busy) s.done_s = t0_s + s.left_s / speed;

  double busy_s = 0.0;
  double last_s = t0_s;
  const std::size_t limit = params_.queue_limit;
  for (;;) {
    // The earliest completion; c is small (cores per service), so a scan beats a heap.
    Server *first = nullptr;
    double done_s = t1_s;
    for (Server &s : servers_) {
      if (s.done_s < done_s) {
        done_s = s.done_s;
        first = &s;
      }
    }
    const double arrival_s = next_arrival_s_;
    if (arrival_s < done_s) {
      if (arrival_s >= t1_s) break;
      busy_s += busy_ * (arrival_s - last_s);
      last_s = arrival_s;
      ++counts_.arrivals;
      const double size_s = sizes_.draw(rng_);
      next_arrival_s_ = arrival_s + rng_.exponential() / rate_rps_;
      if (busy_ < static_cast<int>(servers_.size())) {
        for (Server &s : servers_) {
          if (!s.busy) {
            start(s, arrival_s, arrival_s, size_s, speed);
            break;
          }
        }
      } else if (queue_size_ < limit) {
        if (queue_size_ == queue_.size()) grow_queue();
        queue_[(queue_head_ + queue_size_) & queue_mask_] = Waiting{arrival_s, size_s};
        ++queue_size_;
      } else {
        ++counts_.rejected;
      }
    } else if (first) {
      busy_s += busy_ * (done_s - last_s);
      last_s = done_s;
      complete(*first, done_s, sink);
      while (queue_size_ > 0) {
        const Waiting w = queue_[queue_head_];
        queue_head_ = (queue_head_ + 1) & queue_mask_;
        --queue_size_;
        if (params_.timeout_s > 0.0 && done_s - w.arrival_s > params_.timeout_s) {
          ++counts_.timed_out;
          continue;
        }
        start(*first, done_s, w.arrival_s, w.size_s, speed);
        break;
      }
    } else {
      break;
    }
  }
  busy_s += busy_ * (t1_s - last_s);
  for (Server &s : servers_)
    if (s.busy) s.left_s = (s.done_s - t1_s) * speed;
  return busy_s;
}

}  // namespace powergrad::sim
