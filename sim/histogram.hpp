// Latency distribution with bounded relative error, in constant memory.
//
// Storing every latency of a 1-hour, 128-socket run would take hundreds of MB per policy, so
// latencies go into logarithmic buckets in the manner of HdrHistogram: the bucket index is
// the binary exponent and the top 7 mantissa bits of the double, so each power of two is
// split into 128 buckets of equal width. A quantile is reported as its bucket's midpoint:
// relative error at most 1/256 (0.39%) for latencies in [1 us, 36 h]; values outside are
// clamped to that range (and counted in clamped()). Mean and count are exact.
#pragma once

#include <cstdint>
#include <vector>

namespace powergrad::sim {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr int kMinExponent = -20;  // 2^-20 s ~ 0.95 us
  static constexpr int kMaxExponent = 17;   // 2^17 s ~ 36 h
  static constexpr std::size_t kBuckets =
      static_cast<std::size_t>(kMaxExponent - kMinExponent) << kSubBits;
  // Guaranteed bound on |reported quantile / bucketed value - 1| for in-range values.
  static constexpr double kRelativeError = 1.0 / (2 << kSubBits);

  LatencyHistogram() : counts_(kBuckets, 0) {}

  void add(double latency_s);
  void merge(const LatencyHistogram &other);
  void clear();

  std::uint64_t count() const { return count_; }
  double sum_s() const { return sum_s_; }
  double mean_s() const { return count_ ? sum_s_ / static_cast<double>(count_) : 0.0; }
  // The q-quantile (q in [0, 1]) of the recorded latencies: the midpoint of the bucket
  // holding the ceil(q * count)-th smallest value. 0 when empty.
  double quantile_s(double q) const;
  std::uint64_t clamped() const { return clamped_; }

  static std::size_t bucket_of(double latency_s);
  static double bucket_low_s(std::size_t bucket);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t clamped_ = 0;
  double sum_s_ = 0.0;
};

}  // namespace powergrad::sim
