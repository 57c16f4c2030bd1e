// Results of a set of runs as a table, JSON or CSV.
#pragma once

#include <ostream>
#include <vector>

#include "sim/simulation.hpp"
#include "sim/spec.hpp"

namespace powergrad::sim {

// Relative reduction (L_ref - L) / L_ref; NaN when there is no reference.
double reduction(double reference, double value);

// Share of the oracle's improvement over `usage` a policy captures:
// (L_usage - L) / (L_usage - L_oracle). NaN without usage and oracle runs, or when the
// oracle does not improve on usage.
double oracle_share(const std::vector<RunResult> &runs, const RunResult &run, bool p99);

void write_table(std::ostream &out, const ClusterSpec &spec, const std::vector<RunResult> &runs);
void write_json(std::ostream &out, const ClusterSpec &spec, const std::vector<RunResult> &runs);
void write_csv(std::ostream &out, const ClusterSpec &spec, const std::vector<RunResult> &runs);

}  // namespace powergrad::sim
