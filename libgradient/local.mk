# libgradient: the algorithms (estimation, allocation, baselines), pure C++17 without
# syscalls, Slurm or I/O. A convenience library (PIC) linked into both Slurm plugins, the
# unit tests, the benchmarks and, later, the simulator.
noinst_LTLIBRARIES += libgradient/libgradient.la
libgradient_libgradient_la_SOURCES = \
	libgradient/types.hpp libgradient/types.cpp \
	libgradient/format.hpp \
	libgradient/gain_curve.hpp libgradient/gain_curve.cpp \
	libgradient/allocator.hpp libgradient/allocator.cpp \
	libgradient/estimator.hpp libgradient/estimator.cpp \
	libgradient/baselines.hpp libgradient/baselines.cpp
