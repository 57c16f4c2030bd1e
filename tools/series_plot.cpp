#include "tools/series_plot.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace powergrad {

namespace {

constexpr double kWidth = 820, kHeight = 380;
constexpr double kLeft = 70, kRight = 150, kTop = 40, kBottom = 50;

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string label(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

// A "nice" tick step covering span with about n ticks.
double tick_step(double span, int n) {
  if (!(span > 0)) return 1.0;
  const double raw = span / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) return m * mag;
  }
  return 10.0 * mag;
}

struct Line {
  const char *cls, *name, *color, *dash;
  double SeriesPoint::*field;
};

}  // namespace

std::string series_plot_svg(std::uint32_t job_id, const std::vector<SeriesPoint> &points) {
  const Line lines[] = {
      {"power", "power", "#1f77b4", "", &SeriesPoint::power_w},
      {"cap", "cap", "#d62728", "6 4", &SeriesPoint::cap_w},
      {"grant", "grant", "#7f7f7f", "2 3", &SeriesPoint::grant_w},
  };
  const double t0 = points.empty() ? 0.0 : points.front().t_s;
  const double t1 = points.empty() ? 1.0 : std::max(points.back().t_s, t0 + 1.0);
  double wmax = 0.0;
  for (const SeriesPoint &p : points) {
    for (const Line &l : lines) {
      if (std::isfinite(p.*(l.field))) wmax = std::max(wmax, p.*(l.field));
    }
  }
  const double ystep = tick_step(wmax > 0 ? wmax * 1.05 : 100.0, 5);
  const double ymax = std::max(ystep, std::ceil((wmax > 0 ? wmax * 1.05 : 100.0) / ystep) * ystep);
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto X = [&](double t) { return kLeft + (t - t0) / (t1 - t0) * pw; };
  auto Y = [&](double w) { return kTop + ph - std::clamp(w / ymax, 0.0, 1.0) * ph; };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kLeft << "\" y=\"24\" font-size=\"15\" font-weight=\"bold\">job " << job_id
      << ": power and cap over time (" << points.size() << " points)</text>\n";
  // Axes, grid and ticks.
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << num(pw) << "\" height=\""
      << num(ph) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  for (double w = 0; w <= ymax + 1e-9; w += ystep) {
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << num(kLeft + pw) << "\" y1=\"" << num(Y(w))
        << "\" y2=\"" << num(Y(w)) << "\" stroke=\"#ddd\"/>\n"
        << "<text x=\"" << kLeft - 6 << "\" y=\"" << num(Y(w) + 4)
        << "\" font-size=\"11\" text-anchor=\"end\">" << label(w) << "</text>\n";
  }
  const double xstep = tick_step(t1 - t0, 8);
  for (double t = 0; t <= t1 - t0 + 1e-9; t += xstep) {
    svg << "<text x=\"" << num(X(t0 + t)) << "\" y=\"" << num(kTop + ph + 16)
        << "\" font-size=\"11\" text-anchor=\"middle\">" << label(t) << "</text>\n";
  }
  svg << "<text x=\"" << num(kLeft + pw / 2) << "\" y=\"" << num(kHeight - 10)
      << "\" font-size=\"12\" text-anchor=\"middle\">seconds since the job's first sample</text>\n"
      << "<text x=\"16\" y=\"" << num(kTop + ph / 2) << "\" font-size=\"12\" transform=\"rotate(-90 16 "
      << num(kTop + ph / 2) << ")\" text-anchor=\"middle\">watts</text>\n";

  // The lines, broken where a value is unknown; a lone point still shows as a dot.
  int legend = 0;
  for (const Line &l : lines) {
    bool any = false;
    std::vector<std::vector<const SeriesPoint *>> runs(1);
    for (const SeriesPoint &p : points) {
      if (std::isfinite(p.*(l.field))) {
        runs.back().push_back(&p);
        any = true;
      } else if (!runs.back().empty()) {
        runs.emplace_back();
      }
    }
    if (!any) continue;
    for (const auto &run : runs) {
      if (run.empty()) continue;
      if (run.size() == 1) {
        svg << "<circle class=\"" << l.cls << "\" cx=\"" << num(X(run[0]->t_s)) << "\" cy=\""
            << num(Y(run[0]->*(l.field))) << "\" r=\"2\" fill=\"" << l.color << "\"/>\n";
        continue;
      }
      svg << "<polyline class=\"" << l.cls << "\" fill=\"none\" stroke=\"" << l.color
          << "\" stroke-width=\"" << (l.cls[0] == 'p' ? "2" : "1.5") << "\"";
      if (*l.dash) svg << " stroke-dasharray=\"" << l.dash << "\"";
      svg << " points=\"";
      for (std::size_t i = 0; i < run.size(); ++i) {
        svg << (i ? " " : "") << num(X(run[i]->t_s)) << "," << num(Y(run[i]->*(l.field)));
      }
      svg << "\"/>\n";
    }
    const double ly = kTop + 14 + 20 * legend++;
    const double lx = kLeft + pw + 14;
    svg << "<line x1=\"" << num(lx) << "\" x2=\"" << num(lx + 24) << "\" y1=\"" << num(ly) << "\" y2=\""
        << num(ly) << "\" stroke=\"" << l.color << "\" stroke-width=\"2\"";
    if (*l.dash) svg << " stroke-dasharray=\"" << l.dash << "\"";
    svg << "/>\n<text x=\"" << num(lx + 30) << "\" y=\"" << num(ly + 4) << "\" font-size=\"12\">"
        << l.name << " (W)</text>\n";
  }
  if (legend == 0) {
    svg << "<text x=\"" << num(kLeft + pw / 2) << "\" y=\"" << num(kTop + ph / 2)
        << "\" font-size=\"13\" text-anchor=\"middle\">no power readings</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string write_series_plot(const std::string &path, std::uint32_t job_id,
                              const std::vector<SeriesPoint> &points) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) return "cannot write " + path + ": " + std::strerror(errno);
  f << series_plot_svg(job_id, points);
  f.close();
  if (!f) return "cannot write " + path + ": " + std::strerror(errno);
  return "";
}

}  // namespace powergrad
