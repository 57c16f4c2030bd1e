# sim: the power-policy simulator. libsim (a convenience library: the model, the policies,
# scenario files, reports) and the command line powergrad-sim. The policies drive
# libgradient's code exactly as the plugins do; only hardware, transport and time are
# simulated.
noinst_LTLIBRARIES += sim/libsim.la
sim_libsim_la_CPPFLAGS = $(AM_CPPFLAGS) $(YAMLCPP_CFLAGS)
sim_libsim_la_SOURCES = \
	sim/rng.hpp \
	sim/histogram.hpp sim/histogram.cpp \
	sim/queueing.hpp sim/queueing.cpp \
	sim/service.hpp sim/service.cpp \
	sim/baseline_settings.hpp sim/baseline_settings.cpp \
	sim/spec.hpp sim/spec.cpp \
	sim/socket_model.hpp sim/socket_model.cpp \
	sim/scenario.hpp sim/scenario.cpp \
	sim/policy.hpp sim/policies.hpp sim/policies.cpp sim/policy_factories.hpp \
	sim/cap_helpers.hpp sim/cap_helpers.cpp \
	sim/policy_baselines.cpp \
	sim/policy_pool.cpp \
	sim/policy_powergrad.cpp \
	sim/oracle_model.hpp sim/oracle_model.cpp \
	sim/policy_oracle.cpp \
	sim/simulation.hpp sim/simulation.cpp \
	sim/runner.hpp sim/runner.cpp \
	sim/report.hpp sim/report.cpp \
	sim/plot_svg.hpp sim/plot_svg.cpp

# What every program using libsim links.
SIM_LIBS = sim/libsim.la libgradient/libgradient.la $(YAMLCPP_LIBS) $(PTHREAD_LIBS)

bin_PROGRAMS += sim/powergrad-sim
sim_powergrad_sim_CPPFLAGS = $(AM_CPPFLAGS) $(YAMLCPP_CFLAGS)
sim_powergrad_sim_SOURCES = sim/main.cpp
sim_powergrad_sim_LDADD = $(SIM_LIBS)

# Runs every scenario in scenarios/ with every policy on seeds 1, 2 and 3 and prints one
# seed-averaged table (powergrad against usage, uniform and the oracle, budget used,
# violations, drops, HARM); fails when powergrad does harm or a budget is violated. Tables,
# JSON, CSV, plots and per-seed figures in evaluation/ (relative to the build directory).
.PHONY: evaluate
evaluate: sim/powergrad-sim
	$(SHELL) $(top_srcdir)/scripts/evaluate.sh --sim ./sim/powergrad-sim --out evaluation

# Runs usage and pool over a small grid of their settings (powergrad-sim --set) per scenario
# and compares powergrad with each at its best setting (seed 1; the table in sweep/sweep.md).
.PHONY: sweep
sweep: sim/powergrad-sim
	$(SHELL) $(top_srcdir)/scripts/sweep-baselines.sh --sim ./sim/powergrad-sim --out sweep

# Writes the README's random clusters (generator seeds 71-79, 81-89, 91-99 and 101-109, 24
# each) into random-clusters/ and runs each with uniform, usage, powergrad and the oracle on
# seeds 1 and 2: a line per run, a summary per set (harm, budget, share of the oracle's gain). Fails only
# on a budget violation or a failed run; harm is a figure here, not a test
# (scripts/random-clusters.py).
RANDOM_CLUSTER_SEEDS = 71 72 73 74 75 76 77 78 79 81 82 83 84 85 86 87 88 89 \
	91 92 93 94 95 96 97 98 99 101 102 103 104 105 106 107 108 109
PYTHON3 = python3
.PHONY: evaluate-random
evaluate-random: sim/powergrad-sim
	for s in $(RANDOM_CLUSTER_SEEDS); do \
	  $(PYTHON3) $(top_srcdir)/scripts/random-clusters.py generate --seed $$s \
	    --out random-clusters/set$$s || exit 2; \
	done
	$(PYTHON3) $(top_srcdir)/scripts/random-clusters.py run --sim ./sim/powergrad-sim \
	  --out random-clusters/runs.txt \
	  $(patsubst %,random-clusters/set%,$(RANDOM_CLUSTER_SEEDS))

EXTRA_DIST += scenarios/dual-socket.yaml scenarios/dual-socket-plain.yaml \
	scenarios/single-socket-accel.yaml \
	scenarios/renewable-day.yaml \
	scenarios/hetero-epyc-xeon.yaml scenarios/llm-serving-regions.yaml \
	scenarios/demand-response.yaml scenarios/homogeneous-tight.yaml \
	scenarios/loose-budget.yaml scenarios/low-load-spare.yaml \
	scenarios/large-mixed-sizes.yaml scenarios/vm-bursty.yaml scenarios/vm-progress.yaml \
	scenarios/homogeneous-vm.yaml scenarios/homogeneous-floor.yaml \
	scenarios/plain-bursty.yaml scenarios/shared-sockets.yaml \
	doc/scenarios.md doc/results-history.md scripts/evaluate.sh scripts/evaluate-table.py \
	scripts/sweep-baselines.sh scripts/sweep-baselines-table.py \
	scripts/random-clusters.py
