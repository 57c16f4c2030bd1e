#include "sim/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace powergrad::sim {

namespace {

std::uint64_t bits_of(double x) {
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

const double kLowest_s = std::ldexp(1.0, LatencyHistogram::kMinExponent);
const double kHighest_s = std::ldexp(1.0, LatencyHistogram::kMaxExponent);
const std::uint64_t kBaseIndex = bits_of(kLowest_s) >> (52 - LatencyHistogram::kSubBits);

}  // namespace

std::size_t LatencyHistogram::bucket_of(double latency_s) {
  if (!(latency_s >= kLowest_s)) return 0;  // also NaN
  if (latency_s >= kHighest_s) return kBuckets - 1;
  return static_cast<std::size_t>((bits_of(latency_s) >> (52 - kSubBits)) - kBaseIndex);
}

double LatencyHistogram::bucket_low_s(std::size_t bucket) {
  const int exponent = kMinExponent + static_cast<int>(bucket >> kSubBits);
  const double mantissa = 1.0 + static_cast<double>(bucket & ((1u << kSubBits) - 1)) /
                                    static_cast<double>(1u << kSubBits);
  return std::ldexp(mantissa, exponent);
}

void LatencyHistogram::add(double latency_s) {
  if (!(latency_s >= kLowest_s) || latency_s >= kHighest_s) ++clamped_;
  ++counts_[bucket_of(latency_s)];
  ++count_;
  sum_s_ += latency_s;
}

void LatencyHistogram::merge(const LatencyHistogram &other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  clamped_ += other.clamped_;
  sum_s_ += other.sum_s_;
}

void LatencyHistogram::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = clamped_ = 0;
  sum_s_ = 0.0;
}

double LatencyHistogram::quantile_s(double q) const {
  if (count_ == 0) return 0.0;
  q = q < 0.0 ? 0.0 : (q > 1.0 ? 1.0 : q);
  std::uint64_t rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      const double low = bucket_low_s(b);
      const double high = bucket_low_s(b + 1);
      return 0.5 * (low + high);
    }
  }
  return kHighest_s;
}

}  // namespace powergrad::sim
