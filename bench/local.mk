# Benchmarks: built and run by `make bench` only (EXTRA_PROGRAMS are not built by `make`).
EXTRA_PROGRAMS += bench/bench_alloc
BENCH_BINS += bench/bench_alloc
CLEANFILES += $(BENCH_BINS)

bench_bench_alloc_SOURCES = bench/bench_alloc.cpp bench/bench_cluster.hpp
bench_bench_alloc_LDADD = libgradient/libgradient.la

EXTRA_PROGRAMS += bench/bench_budget_drop
BENCH_BINS += bench/bench_budget_drop
bench_bench_budget_drop_SOURCES = bench/bench_budget_drop.cpp
bench_bench_budget_drop_LDADD = libgradient/libgradient.la

EXTRA_PROGRAMS += bench/bench_sim
BENCH_BINS += bench/bench_sim
bench_bench_sim_SOURCES = bench/bench_sim.cpp
bench_bench_sim_CPPFLAGS = $(AM_CPPFLAGS) $(YAMLCPP_CFLAGS)
bench_bench_sim_LDADD = $(SIM_LIBS)

EXTRA_PROGRAMS += bench/bench_proto
BENCH_BINS += bench/bench_proto
bench_bench_proto_SOURCES = bench/bench_proto.cpp
bench_bench_proto_LDADD = protocol/libpgproto_fake.la $(PROTO_LIBS)
EXTRA_PROGRAMS += bench/bench_agent
BENCH_BINS += bench/bench_agent
bench_bench_agent_SOURCES = bench/bench_agent.cpp
bench_bench_agent_LDADD = nodeagent/libnodeagent.la hardware/libhardware_testing.la \
	$(HARDWARE_LIBS) $(MUNGE_LIBS) $(CRYPTO_LIBS)
EXTRA_PROGRAMS += bench/bench_step_register
BENCH_BINS += bench/bench_step_register
bench_bench_step_register_SOURCES = bench/bench_step_register.cpp
bench_bench_step_register_LDADD = nodeagent/libnodeagent.la hardware/libhardware_testing.la \
	$(HARDWARE_LIBS) $(MUNGE_LIBS) $(CRYPTO_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += bench/prep_start_cost.sh bench/srun_overhead.sh bench/spank_minimal.c \
	bench/admin_flood.sh bench/hello_flood.sh bench/load_test.sh bench/soak.sh
EXTRA_PROGRAMS += bench/bench_service
BENCH_BINS += bench/bench_service
bench_bench_service_SOURCES = bench/bench_service.cpp
bench_bench_service_LDADD = controller/libpgcontroller.la protocol/libpgproto_fake.la \
	$(PROTO_LIBS) $(SLURM_LIBS)
