// Concave gain curves as piecewise-linear functions of the watts given above a floor.
//
// A curve is a list of segments, each `width_w` watts wide with a constant marginal gain
// `slope` (gain per watt). Slopes never increase from one segment to the next (concavity,
// i.e. diminishing returns) and are never negative. A constant gradient is one segment; an
// empty curve gains nothing anywhere.
//
// Factories never throw: bad input yields a curve with valid() == false and error() saying
// why, which the allocators report as an infeasible child.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

// For the few small functions of per-segment loops that must be inlined to be fast (the
// compiler's heuristics leave some out of long loops).
#ifndef PG_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define PG_ALWAYS_INLINE __attribute__((always_inline))
#else
#define PG_ALWAYS_INLINE
#endif
#endif

namespace powergrad {

struct GainSegment {
  double width_w = 0.0;
  double slope = 0.0;  // marginal gain per watt over this segment
};

struct CurvePoint {
  double power_w = 0.0;
  double gain = 0.0;
};

class GainCurve {
 public:
  GainCurve() = default;

  // Segments in order of increasing power. Zero-width segments are dropped and neighbours of
  // equal slope merged. A slope above its predecessor by no more than a relative 1e-9 (float
  // noise) is taken as equal; a larger increase, a negative or non-finite slope or width
  // makes the curve invalid.
  static GainCurve from_segments(std::vector<GainSegment> segments);
  // Constant marginal gain `gradient` over `width_w` watts.
  static GainCurve linear(double gradient, double width_w);
  // Gains at increasing powers; only differences matter, the first point is offset 0. Points
  // must have strictly increasing power and form a concave, non-decreasing polyline.
  static GainCurve from_points(const std::vector<CurvePoint> &points);
  // Marginal gains sampled at consecutive steps of `step_w` watts. Samples need not be
  // monotone (measured or simulated data are noisy): the curve uses their least concave
  // majorant, i.e. adjacent violators are pooled into their width-weighted mean, which keeps
  // the total gain. Negative samples count as 0 (a watt can be left unused at no cost).
  static GainCurve from_marginal_samples(const std::vector<double> &marginal_per_w, double step_w);
  // Samples `marginal_at(offset_w)` at the midpoints of `steps` equal steps over
  // [0, width_w], then as from_marginal_samples.
  static GainCurve from_marginal(const std::function<double(double)> &marginal_at, double width_w,
                                 std::size_t steps);

  bool valid() const { return error_.empty(); }
  const std::string &error() const { return error_; }
  const std::vector<GainSegment> &segments() const { return segments_; }
  // Total width covered by the segments.
  double width_w() const;
  // Gain of the first offset_w watts (clamped to [0, width_w()]).
  double gain_at(double offset_w) const;
  // Slope of the segment that the watt after offset_w falls in; 0 past the end.
  double marginal_at(double offset_w) const;

  // Rebuilding in place, for curves rebuilt every period (keeps the curve's memory): clear(),
  // then add() segments in order; the curve is then exactly what from_segments would make of
  // them (once a segment is refused the curve is invalid and further add() calls do nothing,
  // until the next clear()).
  void clear();
  void add(const GainSegment &segment);
  void swap(GainCurve &other) noexcept;

  // Relative tolerance for "slope increased", so that curves computed in floating point
  // (from points, from a model) are not rejected for a last-bit rise.
  static constexpr double kSlopeRelTolerance = 1e-9;

 private:
  static GainCurve invalid(std::string why);
  // add() for a segment it refuses: makes the curve invalid, saying why.
  void refuse(const GainSegment &segment, std::size_t index);

  std::vector<GainSegment> segments_;
  std::string error_;
  std::size_t added_ = 0;  // segments given to add() since clear(): for error messages
};

// Inline: curves are rebuilt segment by segment every period (the cluster controller).
inline void GainCurve::add(const GainSegment &s) {
  if (!error_.empty()) return;
  const std::size_t i = added_++;
  if (!std::isfinite(s.width_w) || s.width_w < 0.0 || !std::isfinite(s.slope) || s.slope < 0.0)
    return refuse(s, i);
  if (s.width_w == 0.0) return;
  if (segments_.empty()) {
    segments_.push_back(s);
    return;
  }
  GainSegment &last = segments_.back();
  double slope = s.slope;
  if (slope > last.slope) {
    if (slope - last.slope > kSlopeRelTolerance * last.slope) return refuse(s, i);
    slope = last.slope;
  }
  if (slope == last.slope)
    last.width_w += s.width_w;
  else
    segments_.push_back({s.width_w, slope});
}

// Inline, and the errors swapped only when there is one: the cluster controller swaps a
// rebuilt curve into its tree for every node every period (swapping two empty strings costs
// more than the rest).
inline void GainCurve::swap(GainCurve &other) noexcept {
  segments_.swap(other.segments_);
  if (!error_.empty() || !other.error_.empty()) error_.swap(other.error_);
  std::swap(added_, other.added_);
}

// The segments GainCurve::add would keep, each passed to `next` once no later add() can
// change it (the last one is held back until finish()): a curve that is only read once, in
// order, by a next step need not be stored. After a segment add() would refuse, valid() is
// false and nothing more is passed on.
template <typename Next>
class SegmentStream {
 public:
  explicit SegmentStream(Next next) : next_(std::forward<Next>(next)) {}
  PG_ALWAYS_INLINE void add(const GainSegment &s) {  // as GainCurve::add
    if (!valid_) return;
    if (!std::isfinite(s.width_w) || s.width_w < 0.0 || !std::isfinite(s.slope) || s.slope < 0.0) {
      valid_ = false;
      return;
    }
    if (s.width_w == 0.0) return;
    if (!held_) {
      last_ = s;
      held_ = true;
      return;
    }
    double slope = s.slope;
    if (slope > last_.slope) {
      if (slope - last_.slope > GainCurve::kSlopeRelTolerance * last_.slope) {
        valid_ = false;
        return;
      }
      slope = last_.slope;
    }
    if (slope == last_.slope) {
      last_.width_w += s.width_w;
    } else {
      next_(last_);
      last_ = {s.width_w, slope};
    }
  }
  void finish() {
    if (valid_ && held_) next_(last_);
    held_ = false;
  }
  bool valid() const { return valid_; }

 private:
  Next next_;
  GainSegment last_;
  bool held_ = false;
  bool valid_ = true;
};

}  // namespace powergrad
