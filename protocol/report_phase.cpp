#include "protocol/report_phase.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace powergrad::proto {

namespace {

// x folded into (-half, half] of a circle of length p.
double wrap(double x, double p) {
  double r = std::fmod(x, p);
  if (r < 0) r += p;
  if (r > 0.5 * p) r -= p;
  return r;
}

// FNV-1a: a stable spread of names over [0, 1).
double unit_hash(const std::string &s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // FNV's top bits vary little between names that differ in their last characters (node1,
  // node2, ...): mix them (splitmix64's finaliser).
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) / 9007199254740992.0;  // 2^53
}

}  // namespace

ReportPhase::ReportPhase(double period_s, const std::string &node)
    : period_s_(std::isfinite(period_s) && period_s > 0 ? period_s : 1.0),
      lead_s_((kLeadMin + (kLeadMax - kLeadMin) * unit_hash(node)) * period_s_) {}

void ReportPhase::on_grant(double t_s) {
  if (!std::isfinite(t_s)) return;
  double ph = std::fmod(t_s, period_s_);
  if (ph < 0) ph += period_s_;
  arrivals_[head_] = ph;
  head_ = (head_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
  refresh();
}

void ReportPhase::refresh() {
  // The arrival with the most others within kCluster x period (on the circle) is the centre
  // of the densest cluster; its members' circular mean is the step's phase. The grant
  // arrives after the step and after the controller has worked through the nodes before
  // this one, so the phase is a little late: the lead covers that.
  const double tol = kCluster * period_s_;
  std::size_t best = 0, best_n = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    std::size_t n = 0;
    for (std::size_t j = 0; j < count_; ++j)
      if (std::fabs(wrap(arrivals_[j] - arrivals_[i], period_s_)) <= tol) ++n;
    if (n > best_n) {
      best_n = n;
      best = i;
    }
  }
  aligned_ = best_n >= kQuorum;
  if (!aligned_) return;
  double sum = 0;
  for (std::size_t j = 0; j < count_; ++j) {
    const double d = wrap(arrivals_[j] - arrivals_[best], period_s_);
    if (std::fabs(d) <= tol) sum += d;
  }
  step_phase_s_ =
      std::fmod(arrivals_[best] + sum / static_cast<double>(best_n) + period_s_, period_s_);
}

double ReportPhase::next(double planned_s, double now_s) {
  if (!aligned_ || !std::isfinite(planned_s)) return planned_s;
  // How far the planned time is from the target (step - lead), the short way round.
  const double err = wrap(step_phase_s_ - lead_s_ - planned_s, period_s_);
  if (std::fabs(err) < kDeadband * period_s_) return planned_s;
  const double shift = std::clamp(err, -kMaxShift * period_s_, kMaxShift * period_s_);
  return std::max(planned_s + shift, now_s);
}

}  // namespace powergrad::proto
