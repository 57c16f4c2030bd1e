// Operations on concave gain curves that the controllers need beyond gain_curve.hpp.
#pragma once

#include <cstddef>
#include <vector>

#include "libgradient/gain_curve.hpp"

namespace powergrad {

// The best total gain of W watts spread over the curves (their sup-convolution): all their
// segments, steepest first. Invalid curves are skipped. The result is concave by
// construction; its width is the sum of the widths.
GainCurve merge_curves(const std::vector<GainCurve> &curves);

// The curve without its first `width_w` watts (what a floor already gives); the whole curve
// for width_w <= 0, an empty one beyond its width.
GainCurve drop_front(const GainCurve &curve, double width_w);

// At most `max_segments` segments of equal width covering the curve's width, each with the
// mean slope of the curve over it: the same total gain at every block boundary, and still
// concave (means of a non-increasing slope over consecutive equal blocks do not increase).
// Curves with no more segments, invalid ones and max_segments == 0 are returned as they are.
GainCurve coarsen(const GainCurve &curve, std::size_t max_segments);

// `width_w` watts at `slope` followed by the curve. The slope is raised to the curve's first
// slope if below it, so the result stays concave. Returns the curve itself for width_w <= 0.
GainCurve prepend(const GainCurve &curve, double width_w, double slope);

// Hysteresis for allocations that repeat every period: the curve's watts below `held_w`
// (what its owner holds now) count (1 + h) times, those above (1 - h) times. Water-filling
// such curves moves watts from one owner to another only when the taker's marginal gain
// beats the giver's by (1 + h) / (1 - h), which damps back-and-forth moves on noisy
// estimates. Still concave. h is clamped to [0, 0.9]; h = 0 or an invalid curve: unchanged.
GainCurve favour_incumbent(const GainCurve &curve, double held_w, double h);

// The curve with every watt of its first `width_w` worth at least `min_slope`: slopes below
// it are raised to it there, and the curve is extended to `width_w` at that slope if it is
// shorter. Still concave (slopes never increase: once one is below min_slope, all later ones
// are). For a claim that only spare watts should satisfy: with a min_slope below every real
// gain, water-filling gives those watts only when nothing steeper wants them. width_w <= 0,
// min_slope <= 0 or an invalid curve: unchanged.
GainCurve raise_slopes_until(const GainCurve &curve, double width_w, double min_slope);

// The same operations writing their result into `out` (which must not be `curve`), reusing
// its memory: for controllers that rebuild many curves every period. Identical results.
void drop_front(const GainCurve &curve, double width_w, GainCurve &out);
void coarsen(const GainCurve &curve, std::size_t max_segments, GainCurve &out);
void prepend(const GainCurve &curve, double width_w, double slope, GainCurve &out);
void favour_incumbent(const GainCurve &curve, double held_w, double h, GainCurve &out);
// favour_incumbent's step for one segment g that starts at pos (advanced past it): its
// slope times 1 + h below held_w, 1 - h above, split where it crosses held_w. Inline: the
// cluster controller runs it on every segment of every steered node, every period.
inline PG_ALWAYS_INLINE void favour_segment(const GainSegment &g, double held_w, double h,
                                            double &pos, GainCurve &out) {
  const double a = pos;
  const double b = pos + g.width_w;
  pos = b;
  if (b <= held_w) {
    out.add({g.width_w, g.slope * (1.0 + h)});
  } else if (a >= held_w) {
    out.add({g.width_w, g.slope * (1.0 - h)});
  } else {
    out.add({held_w - a, g.slope * (1.0 + h)});
    out.add({b - held_w, g.slope * (1.0 - h)});
  }
}
void raise_slopes_until(const GainCurve &curve, double width_w, double min_slope, GainCurve &out);

// The curve with each segment within half its width of one of the offsets at_w[0, n_at)
// split into `parts` equal parts, whose slopes follow the line through the segments'
// midpoints: the marginal gain read as continuous near those offsets. The line is flat
// beyond the curve's first and last segment and towards a neighbour whose slope differs by
// more than a factor 1.5 (a kink: a knee, the end of what a saturated domain can use).
// Still concave. parts < 2 or an invalid curve: unchanged.
void refine_near(const GainCurve &curve, const double *at_w, std::size_t n_at, std::size_t parts,
                 GainCurve &out);

}  // namespace powergrad
