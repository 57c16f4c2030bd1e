# Benchmarks: built and run by `make bench` only (EXTRA_PROGRAMS are not built by `make`).
EXTRA_PROGRAMS += bench/bench_alloc
BENCH_BINS += bench/bench_alloc
CLEANFILES += $(BENCH_BINS)

bench_bench_alloc_SOURCES = bench/bench_alloc.cpp
bench_bench_alloc_LDADD = libgradient/libgradient.la
