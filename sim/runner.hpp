// Runs several policies on one scenario, in parallel threads (each run is independent and
// deterministic, so the thread count never changes a number).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sim/simulation.hpp"
#include "sim/spec.hpp"

namespace powergrad::sim {

// Called about every progress_every_s of wall time with the mean fraction done.
using ProgressFn = std::function<void(double fraction_done)>;

// Results in the order of `policies`. threads = 0: one per hardware thread. Throws the
// first run's exception (after every thread has finished).
std::vector<RunResult> run_policies(const ClusterSpec &spec, const std::vector<std::string> &policies,
                                    unsigned threads = 0, const ProgressFn &progress = {},
                                    double progress_every_s = 2.0);

}  // namespace powergrad::sim
