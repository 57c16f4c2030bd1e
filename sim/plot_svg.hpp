// A plot of a set of runs as a self-contained SVG (no plotting dependency): three panels
// over time: (1) budget, and total power per policy; (2) caps per node for one policy (the
// first of powergrad, oracle, usage, or the first run), up to 16 nodes; (3) mean latency per
// policy (solid) and p99 (dashed), log scale.
#pragma once

#include <string>
#include <vector>

#include "sim/simulation.hpp"
#include "sim/spec.hpp"

namespace powergrad::sim {

// Writes the plot to path. Returns an empty string on success, else why it failed.
std::string write_plot_svg(const std::string &path, const ClusterSpec &spec,
                           const std::vector<RunResult> &runs);

}  // namespace powergrad::sim
