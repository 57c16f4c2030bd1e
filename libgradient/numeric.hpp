// Small numeric helpers the libgradient sources share.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace powergrad {

inline bool finite_nonnegative(double x) { return std::isfinite(x) && x >= 0.0; }

// Sums in index order: the order the allocators' budget checks assume, so that a sum
// computed here and one computed there agree to the last bit.
inline double sum_in_order(const double *x, std::size_t n) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += x[i];
  return sum;
}

inline double sum_in_order(const std::vector<double> &x) {
  return sum_in_order(x.data(), x.size());
}

// x / (x + half): 0 at 0, 1/2 at `half`, towards 1 for plenty (a confidence from an amount).
inline double saturating(double x, double half) {
  if (!(half > 0.0)) return 1.0;
  return x / (x + half);
}

// Weight of the newest sample in a moving average, in (0, 1]; a bad value means no
// smoothing (1).
inline double smoothing_weight(double w) {
  return std::isfinite(w) && w > 0.0 && w <= 1.0 ? w : 1.0;
}

// Lowers caps[i] towards to[i], each by the same share of its distance, by `amount` watts
// in total, or as far as the distances allow. Returns what is left of the amount.
inline double lower_towards(std::vector<double> &caps, const std::vector<double> &to,
                            double amount) {
  double room = 0.0;
  for (std::size_t i = 0; i < caps.size(); ++i) room += std::max(0.0, caps[i] - to[i]);
  if (!(room > 0.0) || !(amount > 0.0)) return amount;
  const double f = std::min(1.0, amount / room);
  for (std::size_t i = 0; i < caps.size(); ++i)
    if (caps[i] > to[i]) caps[i] = std::max(to[i], caps[i] - (caps[i] - to[i]) * f);
  return std::max(0.0, amount - room * f);
}

// Raises caps[i] towards to[i], each by the same share of its distance, by `amount` watts in
// total, or as far as the distances allow (lower_towards' twin). Returns what is left.
inline double raise_towards(std::vector<double> &caps, const std::vector<double> &to,
                            double amount) {
  double room = 0.0;
  for (std::size_t i = 0; i < caps.size(); ++i) room += std::max(0.0, to[i] - caps[i]);
  if (!(room > 0.0) || !(amount > 0.0)) return amount;
  const double f = std::min(1.0, amount / room);
  for (std::size_t i = 0; i < caps.size(); ++i)
    if (caps[i] < to[i]) caps[i] = std::min(to[i], caps[i] + (to[i] - caps[i]) * f);
  return std::max(0.0, amount - room * f);
}

}  // namespace powergrad
