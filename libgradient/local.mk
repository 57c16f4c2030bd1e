# libgradient: the algorithms (estimation, allocation, baselines), pure C++17 without
# syscalls, Slurm or I/O. A convenience library (PIC) linked into both Slurm plugins, the
# unit tests, the benchmarks and, later, the simulator.
noinst_LTLIBRARIES += libgradient/libgradient.la
libgradient_libgradient_la_SOURCES = \
	libgradient/types.hpp libgradient/types.cpp \
	libgradient/job_mode.hpp libgradient/job_mode.cpp \
	libgradient/format.hpp libgradient/numeric.hpp libgradient/level_noise.hpp libgradient/parallel.hpp \
	libgradient/gain_curve.hpp libgradient/gain_curve.cpp \
	libgradient/allocator.hpp libgradient/allocator.cpp \
	libgradient/estimator.hpp libgradient/estimator.cpp \
	libgradient/baselines.hpp libgradient/baselines.cpp
# The control code the plugins and the simulator share: gradient model v2, node and cluster
# controllers (with their messages), and baseline B2.
libgradient_libgradient_la_SOURCES += \
	libgradient/control_messages.hpp libgradient/control_messages.cpp \
	libgradient/curve_ops.hpp libgradient/curve_ops.cpp \
	libgradient/gradient_model.hpp libgradient/gradient_model.cpp \
	libgradient/node_controller.hpp libgradient/node_controller.cpp \
	libgradient/name_index.hpp \
	libgradient/cluster_controller.hpp libgradient/cluster_controller.cpp \
	libgradient/pool_baseline.hpp libgradient/pool_baseline.cpp
