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

void drop_front(const GainCurve &curve, double width_w, GainCurve &out) {
  if (!(width_w > 0.0) || !curve.valid()) {
    out = curve;
    return;
  }
  out.clear();
  double skip = width_w;
  for (const GainSegment &s : curve.segments()) {
    if (skip >= s.width_w) {
      skip -= s.width_w;
      continue;
    }
    out.add({s.width_w - skip, s.slope});
    skip = 0.0;
  }
}

void raise_slopes_until(const GainCurve &curve, double width_w, double min_slope, GainCurve &out) {
  if (!(width_w > 0.0) || !(min_slope > 0.0) || !std::isfinite(min_slope) || !curve.valid()) {
    out = curve;
    return;
  }
  out.clear();
  double at = 0.0;
  for (const GainSegment &s : curve.segments()) {
    const double inside = std::clamp(width_w - at, 0.0, s.width_w);
    if (inside > 0.0) out.add({inside, std::max(s.slope, min_slope)});
    if (s.width_w > inside) out.add({s.width_w - inside, s.slope});
    at += s.width_w;
  }
  if (at < width_w) out.add({width_w - at, min_slope});
}

GainCurve raise_slopes_until(const GainCurve &curve, double width_w, double min_slope) {
  GainCurve out;
  raise_slopes_until(curve, width_w, min_slope, out);
  return out;
}

GainCurve drop_front(const GainCurve &curve, double width_w) {
  GainCurve out;
  drop_front(curve, width_w, out);
  return out;
}

void coarsen(const GainCurve &curve, std::size_t max_segments, GainCurve &out) {
  if (!curve.valid() || max_segments == 0 || curve.segments().size() <= max_segments) {
    out = curve;
    return;
  }
  out.clear();
  const double total = curve.width_w();
  const double block = total / static_cast<double>(max_segments);
  std::size_t blocks = 0;  // blocks closed so far
  double gain = 0.0;       // of the block being filled
  double filled = 0.0;     // watts in it so far
  for (const GainSegment &s : curve.segments()) {
    double left = s.width_w;
    while (left > 0.0) {
      const double take = blocks + 1 == max_segments ? left : std::min(left, block - filled);
      gain += take * s.slope;
      filled += take;
      left -= take;
      if (blocks + 1 < max_segments && !(filled < block)) {
        out.add({filled, gain / filled});
        ++blocks;
        gain = filled = 0.0;
      }
    }
  }
  // The means are non-increasing up to rounding, which add() (as from_segments) tolerates.
  if (filled > 0.0) out.add({filled, gain / filled});
}

GainCurve coarsen(const GainCurve &curve, std::size_t max_segments) {
  GainCurve out;
  coarsen(curve, max_segments, out);
  return out;
}

void prepend(const GainCurve &curve, double width_w, double slope, GainCurve &out) {
  if (!(width_w > 0.0) || !std::isfinite(width_w) || !curve.valid()) {
    out = curve;
    return;
  }
  const double first = curve.segments().empty() ? 0.0 : curve.segments().front().slope;
  const double s = std::isfinite(slope) ? std::max(slope, first) : first;
  out.clear();
  out.add({width_w, s});
  for (const GainSegment &g : curve.segments()) out.add(g);
}

GainCurve prepend(const GainCurve &curve, double width_w, double slope) {
  GainCurve out;
  prepend(curve, width_w, slope, out);
  return out;
}

void favour_incumbent(const GainCurve &curve, double held_w, double h, GainCurve &out) {
  if (!curve.valid() || !(h > 0.0)) {
    out = curve;
    return;
  }
  h = std::min(h, 0.9);
  out.clear();
  double pos = 0.0;
  for (const GainSegment &g : curve.segments()) favour_segment(g, held_w, h, pos, out);
  if (!out.valid()) out = curve;
}

GainCurve favour_incumbent(const GainCurve &curve, double held_w, double h) {
  GainCurve out;
  favour_incumbent(curve, held_w, h, out);
  return out;
}

// Neighbouring segments whose slopes differ by more than this factor are a kink.
constexpr double kSmoothRatio = 1.5;

void refine_near(const GainCurve &curve, const double *at_w, std::size_t n_at, std::size_t parts,
                 GainCurve &out) {
  out.clear();
  const std::vector<GainSegment> &seg = curve.segments();
  if (!curve.valid() || parts < 2) {
    out = curve;
    return;
  }
  double a = 0.0;
  for (std::size_t j = 0; j < seg.size(); ++j) {
    const double w = seg[j].width_w;
    const double b = a + w;
    // Within half a segment of an offset (the one that holds it, and the nearer neighbour).
    bool hit = false;
    for (std::size_t t = 0; t < n_at; ++t)
      if (at_w[t] + 0.5 * w > a && at_w[t] - 0.5 * w < b) hit = true;
    if (!hit) {
      out.add(seg[j]);
      a = b;
      continue;
    }
    const double s = seg[j].slope;
    const double c = a + 0.5 * w;
    // The interpolant through the segments' midpoints, flat beyond the first and last, and
    // towards a neighbour more than kSmoothRatio steeper or flatter: a kink of the curve
    // (a saturated domain's end, a knee), not a sampled smooth one.
    const auto smooth = [&](std::size_t k) {
      return k < seg.size() && seg[k].slope <= kSmoothRatio * s && s <= kSmoothRatio * seg[k].slope;
    };
    const bool left = j > 0 && smooth(j - 1), right = smooth(j + 1);
    const double cl = left ? a - 0.5 * seg[j - 1].width_w : a;
    const double sl = left ? seg[j - 1].slope : s;
    const double cr = right ? b + 0.5 * seg[j + 1].width_w : b;
    const double sr = right ? seg[j + 1].slope : s;
    const auto m = [&](double x) {
      if (x <= c) return c > cl ? s + (sl - s) * (c - x) / (c - cl) : s;
      return cr > c ? s + (sr - s) * (x - c) / (cr - c) : s;
    };
    const double step = w / static_cast<double>(parts);
    for (std::size_t p = 0; p < parts; ++p) {
      const double u = a + step * static_cast<double>(p);
      const double v = p + 1 == parts ? b : u + step;
      double mean;
      if (u < c && v > c)
        mean = ((c - u) * m(0.5 * (u + c)) + (v - c) * m(0.5 * (c + v))) / (v - u);
      else
        mean = m(0.5 * (u + v));
      out.add({v - u, std::max(0.0, mean)});
    }
    a = b;
  }
}

}  // namespace powergrad
