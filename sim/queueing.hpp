// Closed forms of queueing theory: the tests check the simulated queues against them, and the
// oracle policy uses them as its "true curves" (latency as a function of service speed).
#pragma once

namespace powergrad::sim {

// Erlang C: probability that an arrival waits in an M/M/c queue with offered load
// a = lambda / mu (in servers). 1 when a >= c (unstable).
double erlang_c(int servers, double offered_load);

// M/M/c mean sojourn (wait + service). +inf when unstable.
double mmc_mean_sojourn_s(int servers, double arrival_rps, double service_rate_rps);

// M/M/c FCFS: P(sojourn > t).
double mmc_sojourn_tail(int servers, double arrival_rps, double service_rate_rps, double t_s);

// The q-quantile of the M/M/c sojourn (bisection on mmc_sojourn_tail). +inf when unstable.
double mmc_sojourn_quantile_s(int servers, double arrival_rps, double service_rate_rps, double q);

// M/G/c mean sojourn by the Allen-Cunneen approximation: the M/M/c wait scaled by
// (1 + cv^2) / 2 (exact for c = 1: Pollaczek-Khinchine). +inf when unstable.
double mgc_mean_sojourn_s(int servers, double arrival_rps, double mean_service_s,
                          double service_cv);

}  // namespace powergrad::sim
