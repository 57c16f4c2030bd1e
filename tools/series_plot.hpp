// `powergrad report -j JOBID --plot FILE.svg`: a job's power series (jobreport/series.hpp)
// drawn as a self-contained SVG, in the style of the simulator's plots (sim/plot_svg.*)
// without linking the simulator: power (solid), cap in force (dashed) and the controller's
// grant (dotted) in watts, over seconds since the series' first point. Unknown values
// break the lines.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jobreport/series.hpp"

namespace powergrad {

// The SVG text. Each line is one or more <polyline class="power|cap|grant" ...>; a line
// with no known value is left out (and from the legend).
std::string series_plot_svg(std::uint32_t job_id, const std::vector<SeriesPoint> &points);

// Writes it to path; "" or the problem, naming the path.
std::string write_series_plot(const std::string &path, std::uint32_t job_id,
                              const std::vector<SeriesPoint> &points);

}  // namespace powergrad
