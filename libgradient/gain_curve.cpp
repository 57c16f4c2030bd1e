#include "libgradient/gain_curve.hpp"

#include <cmath>
#include <utility>

#include "libgradient/format.hpp"

namespace powergrad {

GainCurve GainCurve::invalid(std::string why) {
  GainCurve c;
  c.error_ = std::move(why);
  return c;
}

void GainCurve::clear() {
  segments_.clear();
  error_.clear();
  added_ = 0;
}

void GainCurve::refuse(const GainSegment &s, std::size_t i) {
  const std::string where = "gain curve segment " + std::to_string(i) + ": ";
  if (!std::isfinite(s.width_w) || s.width_w < 0.0)
    error_ = where + "width " + format_w(s.width_w) + " is negative or not finite";
  else if (!std::isfinite(s.slope) || s.slope < 0.0)
    error_ = where + "slope " + format_number(s.slope) + " is negative or not finite";
  else  // add() refuses nothing else: a rise above the last segment's slope
    error_ = where + "slope " + format_number(s.slope) + " rises above " +
             format_number(segments_.back().slope) + " (gains must be concave)";
  segments_.clear();
}

GainCurve GainCurve::from_segments(std::vector<GainSegment> segments) {
  GainCurve c;
  c.segments_.reserve(segments.size());
  for (const GainSegment &s : segments) {
    c.add(s);
    if (!c.valid()) break;
  }
  return c;
}

GainCurve GainCurve::linear(double gradient, double width_w) {
  return from_segments({{width_w, gradient}});
}

GainCurve GainCurve::from_points(const std::vector<CurvePoint> &points) {
  std::vector<GainSegment> segments;
  for (std::size_t i = 1; i < points.size(); ++i) {
    const CurvePoint &a = points[i - 1];
    const CurvePoint &b = points[i];
    if (!std::isfinite(a.power_w) || !std::isfinite(b.power_w) || !std::isfinite(a.gain) ||
        !std::isfinite(b.gain))
      return invalid("gain curve point " + std::to_string(i) + " is not finite");
    if (b.power_w <= a.power_w)
      return invalid("gain curve points must have strictly increasing power (point " +
                     std::to_string(i) + ")");
    const double width = b.power_w - a.power_w;
    segments.push_back({width, (b.gain - a.gain) / width});
  }
  return from_segments(std::move(segments));
}

GainCurve GainCurve::from_marginal_samples(const std::vector<double> &marginal_per_w,
                                           double step_w) {
  if (!std::isfinite(step_w) || step_w <= 0.0)
    return invalid("marginal samples: step " + format_w(step_w) + " is not positive");
  // Pool adjacent violators: a stack of blocks (total slope, sample count) whose means never
  // increase; a new sample above the block before it merges into that block.
  struct Block {
    double sum;
    double count;
  };
  std::vector<Block> blocks;
  blocks.reserve(marginal_per_w.size());
  for (std::size_t i = 0; i < marginal_per_w.size(); ++i) {
    const double m = marginal_per_w[i];
    if (!std::isfinite(m))
      return invalid("marginal sample " + std::to_string(i) + " is not finite");
    blocks.push_back({m > 0.0 ? m : 0.0, 1.0});
    while (blocks.size() >= 2) {
      const Block &top = blocks.back();
      const Block &below = blocks[blocks.size() - 2];
      if (top.sum * below.count <= below.sum * top.count) break;  // top mean <= below mean
      const Block merged{below.sum + top.sum, below.count + top.count};
      blocks.pop_back();
      blocks.back() = merged;
    }
  }
  std::vector<GainSegment> segments;
  segments.reserve(blocks.size());
  for (const Block &b : blocks) segments.push_back({b.count * step_w, b.sum / b.count});
  return from_segments(std::move(segments));
}

GainCurve GainCurve::from_marginal(const std::function<double(double)> &marginal_at, double width_w,
                                   std::size_t steps) {
  if (!marginal_at) return invalid("marginal function is empty");
  if (steps == 0) return invalid("marginal function: zero steps");
  if (!std::isfinite(width_w) || width_w <= 0.0)
    return invalid("marginal function: width " + format_w(width_w) + " is not positive");
  const double step = width_w / static_cast<double>(steps);
  std::vector<double> samples(steps);
  for (std::size_t i = 0; i < steps; ++i)
    samples[i] = marginal_at((static_cast<double>(i) + 0.5) * step);
  return from_marginal_samples(samples, step);
}

double GainCurve::width_w() const {
  double w = 0.0;
  for (const GainSegment &s : segments_) w += s.width_w;
  return w;
}

double GainCurve::gain_at(double offset_w) const {
  double gain = 0.0;
  double left = offset_w;
  for (const GainSegment &s : segments_) {
    if (!(left > 0.0)) break;
    const double take = left < s.width_w ? left : s.width_w;
    gain += take * s.slope;
    left -= take;
  }
  return gain;
}

double GainCurve::marginal_at(double offset_w) const {
  double start = 0.0;
  for (const GainSegment &s : segments_) {
    if (offset_w < start + s.width_w) return s.slope;
    start += s.width_w;
  }
  return 0.0;
}

}  // namespace powergrad
