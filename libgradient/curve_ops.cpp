#include "libgradient/curve_ops.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace powergrad {

GainCurve merge_curves(const std::vector<GainCurve> &curves) {
  std::vector<GainSegment> all;
  for (const GainCurve &c : curves) {
    if (!c.valid()) continue;
    all.insert(all.end(), c.segments().begin(), c.segments().end());
  }
  // Stable: equal slopes keep their order, so the result does not depend on sort internals.
  std::stable_sort(all.begin(), all.end(),
                   [](const GainSegment &a, const GainSegment &b) { return a.slope > b.slope; });
  return GainCurve::from_segments(std::move(all));
}

GainCurve drop_front(const GainCurve &curve, double width_w) {
  if (!(width_w > 0.0) || !curve.valid()) return curve;
  std::vector<GainSegment> kept;
  double skip = width_w;
  for (const GainSegment &s : curve.segments()) {
    if (skip >= s.width_w) {
      skip -= s.width_w;
      continue;
    }
    kept.push_back({s.width_w - skip, s.slope});
    skip = 0.0;
  }
  return GainCurve::from_segments(std::move(kept));
}

GainCurve coarsen(const GainCurve &curve, std::size_t max_segments) {
  if (!curve.valid() || max_segments == 0 || curve.segments().size() <= max_segments) return curve;
  const double total = curve.width_w();
  const double block = total / static_cast<double>(max_segments);
  std::vector<GainSegment> out;
  out.reserve(max_segments);
  double gain = 0.0;    // of the block being filled
  double filled = 0.0;  // watts in it so far
  for (const GainSegment &s : curve.segments()) {
    double left = s.width_w;
    while (left > 0.0) {
      const double take = out.size() + 1 == max_segments ? left : std::min(left, block - filled);
      gain += take * s.slope;
      filled += take;
      left -= take;
      if (out.size() + 1 < max_segments && !(filled < block)) {
        out.push_back({filled, gain / filled});
        gain = filled = 0.0;
      }
    }
  }
  if (filled > 0.0) out.push_back({filled, gain / filled});
  // The means are non-increasing up to rounding, which from_segments tolerates.
  return GainCurve::from_segments(std::move(out));
}

GainCurve prepend(const GainCurve &curve, double width_w, double slope) {
  if (!(width_w > 0.0) || !std::isfinite(width_w) || !curve.valid()) return curve;
  const double first = curve.segments().empty() ? 0.0 : curve.segments().front().slope;
  const double s = std::isfinite(slope) ? std::max(slope, first) : first;
  std::vector<GainSegment> segments;
  segments.reserve(curve.segments().size() + 1);
  segments.push_back({width_w, s});
  segments.insert(segments.end(), curve.segments().begin(), curve.segments().end());
  return GainCurve::from_segments(std::move(segments));
}

GainCurve favour_incumbent(const GainCurve &curve, double held_w, double h) {
  if (!curve.valid() || !(h > 0.0)) return curve;
  h = std::min(h, 0.9);
  std::vector<GainSegment> segs;
  segs.reserve(curve.segments().size() + 1);
  double pos = 0.0;
  for (const GainSegment &g : curve.segments()) {
    const double a = pos;
    const double b = pos + g.width_w;
    pos = b;
    if (b <= held_w) {
      segs.push_back({g.width_w, g.slope * (1.0 + h)});
    } else if (a >= held_w) {
      segs.push_back({g.width_w, g.slope * (1.0 - h)});
    } else {
      segs.push_back({held_w - a, g.slope * (1.0 + h)});
      segs.push_back({b - held_w, g.slope * (1.0 - h)});
    }
  }
  GainCurve out = GainCurve::from_segments(std::move(segs));
  return out.valid() ? out : curve;
}

}  // namespace powergrad
