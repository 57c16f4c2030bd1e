#include "protocol/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "protocol/mac.hpp"

namespace powergrad::proto {

namespace {

double finite_or(double v, double fallback) { return std::isfinite(v) ? v : fallback; }

}  // namespace

Backoff::Backoff(BackoffParams params, std::uint64_t seed) : params_(params), state_(seed) {
  if (state_ == 0) {
    std::string err;
    // Without kernel randomness the jitter is merely predictable, which is harmless.
    if (!random_bytes(&state_, sizeof state_, err) || state_ == 0) state_ = 0x9e3779b97f4a7c15ull;
  }
  params_.initial_s = std::max(0.0, finite_or(params_.initial_s, 0.5));
  params_.max_s = std::max(params_.initial_s, finite_or(params_.max_s, 30.0));
  params_.multiplier = std::max(1.0, finite_or(params_.multiplier, 2.0));
  params_.jitter = std::clamp(finite_or(params_.jitter, 0.5), 0.0, 1.0);
}

double Backoff::uniform01() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

double Backoff::next_delay_s() {
  // Grow in a loop rather than pow(): stops at max_s before it could overflow.
  double base = params_.initial_s;
  for (unsigned i = 0; i < failures_ && base < params_.max_s; ++i) base *= params_.multiplier;
  base = std::min(base, params_.max_s);
  if (failures_ < 1000) ++failures_;
  return base * (1.0 - params_.jitter * uniform01());
}

}  // namespace powergrad::proto
