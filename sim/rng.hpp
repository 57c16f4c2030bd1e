// Deterministic random numbers for the simulator.
//
// The standard library's distributions are not specified bit for bit (libstdc++ and libc++
// differ), so the simulator draws from its own generator (xoshiro256**) and its own
// transforms: the same scenario and seed give the same numbers with any standard library.
//
// Every random quantity has its own stream (stream_seed), so a policy that reads its noisy
// sensors more often does not shift the arrivals another policy sees: all policies face the
// very same requests (common random numbers), which makes their differences sharper.
#pragma once

#include <cmath>
#include <cstdint>

namespace powergrad::sim {

inline std::uint64_t splitmix64(std::uint64_t &state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// What a stream is for; mixed into its seed.
enum class Stream : std::uint64_t {
  arrivals = 1,     // per service: inter-arrival times and request sizes
  burst_state = 2,  // per service: MMPP state switches
  sensors = 3,      // per policy run: measurement noise
  placement = 4,    // per scenario: loads drawn from ranges
  policy = 5,       // per policy run: a policy's own randomness (perturbations)
};

inline std::uint64_t stream_seed(std::uint64_t seed, Stream kind, std::uint64_t index) {
  std::uint64_t s = seed ^ (static_cast<std::uint64_t>(kind) * 0xd1b54a32d192ed03ULL);
  splitmix64(s);
  s ^= index * 0x8cb92ba72f3d8dd7ULL;
  return splitmix64(s);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 1) {
    for (std::uint64_t &word : s_) word = splitmix64(seed);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in the open interval (0, 1): never 0, so log() is always finite.
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  // Exponential with mean 1.
  double exponential() { return -std::log(uniform()); }
  // Standard normal (Box-Muller, keeping the second value).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double theta = 6.283185307179586 * uniform();
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }
  // Gamma with the given shape and scale 1 (mean = shape): Marsaglia and Tsang (2000), with
  // the usual boost U^(1/shape) for shape < 1.
  double gamma(double shape) {
    if (shape < 1.0) return gamma(shape + 1.0) * std::pow(uniform(), 1.0 / shape);
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  std::uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Draws positive sizes with a given mean and coefficient of variation: deterministic for
// cv = 0, exponential for cv = 1 (exactly, so M/M/c results hold), gamma otherwise.
class SizeDistribution {
 public:
  SizeDistribution() = default;
  SizeDistribution(double mean, double cv) : mean_(mean), cv_(cv) {
    if (cv > 0.0) shape_ = 1.0 / (cv * cv);
  }
  double draw(Rng &rng) const {
    if (cv_ <= 0.0) return mean_;
    if (cv_ == 1.0) return mean_ * rng.exponential();
    return mean_ * rng.gamma(shape_) / shape_;
  }
  double mean() const { return mean_; }
  double cv() const { return cv_; }

 private:
  double mean_ = 0.0;
  double cv_ = 0.0;
  double shape_ = 0.0;
};

}  // namespace powergrad::sim
