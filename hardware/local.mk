# hardware: the only PowerGrad code (with the transport) that touches sysfs, procfs and perf.
# Power domains (powercap/RAPL), per-core frequency limits (cpufreq), counters (libpfm4 +
# perf_event_open, or the emulator), the saved-settings state file, and the power emulator
# for fake trees. Every root path is a constructor argument, so tests run on fake trees.
noinst_LTLIBRARIES += hardware/libhardware.la
hardware_libhardware_la_SOURCES = \
	hardware/result.hpp hardware/result.cpp \
	hardware/sysfs_file.hpp hardware/sysfs_file.cpp \
	hardware/powercap.hpp hardware/powercap.cpp \
	hardware/cpufreq.hpp hardware/cpufreq.cpp \
	hardware/snapshot_file.hpp hardware/snapshot_file.cpp \
	hardware/secure_dir.hpp hardware/secure_dir.cpp \
	hardware/counter_source.hpp hardware/counter_source.cpp \
	hardware/pfm_events.hpp hardware/pfm_events.cpp \
	hardware/perf_counter_source.hpp hardware/perf_counter_source.cpp \
	hardware/emulated_counter_source.hpp hardware/emulated_counter_source.cpp \
	hardware/power_emulator.hpp hardware/power_emulator.cpp \
	hardware/hsmp.hpp hardware/hsmp.cpp \
	hardware/socket_power.hpp hardware/socket_power.cpp
hardware_libhardware_la_LIBADD = $(PFM_LIBS)

# What every program or plugin using the hardware layer links. libgradient is not folded
# into libhardware.la: the plugins link it themselves, and a convenience library inside
# another would give them two copies.
HARDWARE_LIBS = hardware/libhardware.la libgradient/libgradient.la $(PFM_LIBS)

# Test fixtures: fake sysfs trees shaped like real machines (unit and end-to-end tests).
noinst_LTLIBRARIES += hardware/libhardware_testing.la
hardware_libhardware_testing_la_SOURCES = \
	hardware/testing/fake_sysfs.hpp hardware/testing/fake_sysfs.cpp \
	hardware/testing/fake_hsmp.hpp \
	hardware/testing/hw_check.hpp

# Fake node hardware for the end-to-end tests: builds a tree, then advances its energy
# counters from the caps in force. Built by `make check` (never installed).
check_PROGRAMS += hardware/testing/powergrad-hwemu
hardware_testing_powergrad_hwemu_SOURCES = hardware/testing/powergrad_hwemu.cpp
hardware_testing_powergrad_hwemu_LDADD = hardware/libhardware_testing.la $(HARDWARE_LIBS)
