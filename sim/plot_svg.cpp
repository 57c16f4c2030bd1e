#include "sim/plot_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace powergrad::sim {

namespace {

const char *const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", x);
  return buf;
}

std::string label(double x) {
  char buf[32];
  if (std::fabs(x) >= 1e4 || (std::fabs(x) < 1e-2 && x != 0.0))
    std::snprintf(buf, sizeof buf, "%.2g", x);
  else
    std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

// One panel: data coordinates to pixels, axes, grid, lines.
class Panel {
 public:
  Panel(std::ostringstream &svg, double top, double height, double t_max, double y_min,
        double y_max, bool log_y, const std::string &title, const std::string &y_unit)
      : svg_(svg), top_(top), height_(height), t_max_(t_max), log_y_(log_y) {
    if (log_y_) {
      y_min = std::max(y_min, 1e-6);
      y_max = std::max(y_max, y_min * 10.0);
      y_lo_ = std::log10(y_min);
      y_hi_ = std::log10(y_max);
    } else {
      if (y_max <= y_min) y_max = y_min + 1.0;
      const double pad = 0.05 * (y_max - y_min);
      y_lo_ = y_min - pad;
      y_hi_ = y_max + pad;
    }
    svg_ << "<text x=\"" << kLeft << "\" y=\"" << num(top - 8) << "\" font-size=\"14\" font-weight=\"bold\">"
         << title << "</text>\n";
    svg_ << "<rect x=\"" << kLeft << "\" y=\"" << num(top) << "\" width=\"" << kWidth
         << "\" height=\"" << num(height) << "\" fill=\"none\" stroke=\"#333\"/>\n";
    for (int i = 0; i <= 4; ++i) {
      const double v = y_lo_ + (y_hi_ - y_lo_) * i / 4.0;
      const double y = top_ + height_ - height_ * i / 4.0;
      svg_ << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft + kWidth << "\" y1=\"" << num(y) << "\" y2=\""
           << num(y) << "\" stroke=\"#ddd\"/>\n";
      svg_ << "<text x=\"" << kLeft - 6 << "\" y=\"" << num(y + 4) << "\" font-size=\"11\" text-anchor=\"end\">"
           << label(log_y_ ? std::pow(10.0, v) : v) << "</text>\n";
    }
    for (int i = 0; i <= 6; ++i) {
      const double t = t_max_ * i / 6.0;
      const double x = kLeft + kWidth * i / 6.0;
      svg_ << "<text x=\"" << num(x) << "\" y=\"" << num(top_ + height_ + 14)
           << "\" font-size=\"11\" text-anchor=\"middle\">" << label(t) << "</text>\n";
    }
    svg_ << "<text x=\"14\" y=\"" << num(top_ + height_ / 2) << "\" font-size=\"11\" transform=\"rotate(-90 14 "
         << num(top_ + height_ / 2) << ")\" text-anchor=\"middle\">" << y_unit << "</text>\n";
  }

  void line(const std::vector<double> &t, const std::vector<double> &y, const char *color,
            double width, bool dashed) {
    svg_ << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"" << width << "\""
         << (dashed ? " stroke-dasharray=\"5,3\"" : "") << " points=\"";
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (!std::isfinite(y[i]) || (log_y_ && y[i] <= 0.0)) continue;
      svg_ << num(x_of(t[i])) << ',' << num(y_of(y[i])) << ' ';
    }
    svg_ << "\"/>\n";
  }

  static constexpr double kLeft = 80.0;
  static constexpr double kWidth = 820.0;

 private:
  double x_of(double t) const { return kLeft + kWidth * t / t_max_; }
  double y_of(double v) const {
    const double u = log_y_ ? std::log10(v) : v;
    const double f = (u - y_lo_) / (y_hi_ - y_lo_);
    return top_ + height_ * (1.0 - std::clamp(f, -0.02, 1.02));
  }

  std::ostringstream &svg_;
  double top_, height_, t_max_;
  bool log_y_;
  double y_lo_ = 0.0, y_hi_ = 1.0;
};

void legend(std::ostringstream &svg, double y, const std::vector<std::string> &names,
            const std::vector<const char *> &colors) {
  double x = Panel::kLeft;
  for (std::size_t i = 0; i < names.size(); ++i) {
    svg << "<line x1=\"" << num(x) << "\" x2=\"" << num(x + 18) << "\" y1=\"" << num(y) << "\" y2=\""
        << num(y) << "\" stroke=\"" << colors[i] << "\" stroke-width=\"2\"/>\n";
    svg << "<text x=\"" << num(x + 22) << "\" y=\"" << num(y + 4) << "\" font-size=\"11\">" << names[i]
        << "</text>\n";
    x += 30 + 7.0 * static_cast<double>(names[i].size());
  }
}

}  // namespace

std::string write_plot_svg(const std::string &path, const ClusterSpec &spec,
                           const std::vector<RunResult> &runs) {
  if (runs.empty()) return "no runs to plot";
  const double t_max = spec.duration_s / 3600.0 >= 2.0 ? spec.duration_s / 3600.0 : spec.duration_s;
  const bool hours = spec.duration_s / 3600.0 >= 2.0;
  const double t_scale = hours ? 1.0 / 3600.0 : 1.0;
  const std::string t_unit = hours ? "h" : "s";

  std::ostringstream svg;
  const double panel_h = 220.0;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"940\" height=\"860\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"80\" y=\"22\" font-size=\"16\" font-weight=\"bold\">" << spec.name << " (time in "
      << t_unit << ")</text>\n";

  // Panel 1: budget and total power.
  double p_min = 1e300, p_max = 0.0;
  for (const RunResult &r : runs)
    for (const WindowPoint &w : r.windows) {
      p_min = std::min({p_min, w.power_w, w.budget_w});
      p_max = std::max({p_max, w.power_w, w.budget_w});
    }
  Panel power(svg, 60, panel_h, t_max, p_min, p_max, false, "Budget (black) and total power per policy", "W");
  std::vector<std::string> names;
  std::vector<const char *> colors;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<double> t, y;
    for (const WindowPoint &w : runs[i].windows) {
      t.push_back(w.t_s * t_scale);
      y.push_back(w.power_w);
    }
    const char *color = kColors[i % 10];
    power.line(t, y, color, 1.5, false);
    names.push_back(runs[i].policy);
    colors.push_back(color);
  }
  {
    std::vector<double> t, y;
    for (const WindowPoint &w : runs.front().windows) {
      t.push_back(w.t_s * t_scale);
      y.push_back(w.budget_w);
    }
    power.line(t, y, "#000", 2.0, false);
  }
  legend(svg, 60 + panel_h + 30, names, colors);

  // Panel 2: caps per node of one policy.
  const RunResult *focus = &runs.front();
  for (const char *preferred : {"usage", "oracle", "powergrad"})
    for (const RunResult &r : runs)
      if (r.policy == preferred) focus = &r;
  const std::size_t shown = std::min<std::size_t>(16, spec.nodes.size());
  double c_min = 1e300, c_max = 0.0;
  for (const auto &row : focus->node_caps_w)
    for (std::size_t n = 0; n < shown; ++n) {
      c_min = std::min(c_min, row[n]);
      c_max = std::max(c_max, row[n]);
    }
  Panel caps(svg, 350, panel_h, t_max, c_min, c_max, false,
             "Node caps (" + focus->policy + ", first " + std::to_string(shown) + " nodes)", "W");
  for (std::size_t n = 0; n < shown; ++n) {
    std::vector<double> t, y;
    for (std::size_t k = 0; k < focus->windows.size(); ++k) {
      t.push_back(focus->windows[k].t_s * t_scale);
      y.push_back(focus->node_caps_w[k][n]);
    }
    caps.line(t, y, kColors[n % 10], 1.0, n >= 10);
  }

  // Panel 3: latency.
  double l_min = 1e300, l_max = 0.0;
  for (const RunResult &r : runs)
    for (const WindowPoint &w : r.windows)
      if (w.completed > 0) {
        l_min = std::min(l_min, w.mean_latency_s);
        l_max = std::max(l_max, w.p99_latency_s);
      }
  Panel lat(svg, 620, panel_h, t_max, l_min * 0.8, l_max * 1.2, true,
            "Latency per policy: mean (solid), p99 (dashed)", "s");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<double> t, mean, p99;
    for (const WindowPoint &w : runs[i].windows) {
      t.push_back(w.t_s * t_scale);
      mean.push_back(w.completed ? w.mean_latency_s : NAN);
      p99.push_back(w.completed ? w.p99_latency_s : NAN);
    }
    lat.line(t, mean, kColors[i % 10], 1.5, false);
    lat.line(t, p99, kColors[i % 10], 1.0, true);
  }
  svg << "</svg>\n";

  std::ofstream out(path);
  if (!out) return "cannot write " + path;
  out << svg.str();
  out.close();
  if (!out) return "error writing " + path;
  return {};
}

}  // namespace powergrad::sim
