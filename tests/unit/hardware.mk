# Check runners for the hardware layer, one per module. Included from tests/local.mk.
# They run here on fake sysfs trees, libpfm4's inactive-PMU encoding and software perf
# events; none needs RAPL, cpufreq or hardware counters.
HARDWARE_UNIT_TESTS = \
	tests/unit/test_hw_powercap \
	tests/unit/test_hw_cpufreq \
	tests/unit/test_hw_snapshot \
	tests/unit/test_hw_secure_dir \
	tests/unit/test_hw_pfm_encoding \
	tests/unit/test_hw_perf \
	tests/unit/test_hw_emulated \
	tests/unit/test_hw_power_emulator \
	tests/unit/test_hw_hsmp
check_PROGRAMS += $(HARDWARE_UNIT_TESTS)
TESTS += $(HARDWARE_UNIT_TESTS)

HARDWARE_UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
HARDWARE_UNIT_LDADD = hardware/libhardware_testing.la $(HARDWARE_LIBS) $(CHECK_LIBS)

tests_unit_test_hw_powercap_SOURCES = tests/unit/test_hw_powercap.cpp
tests_unit_test_hw_powercap_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_powercap_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_cpufreq_SOURCES = tests/unit/test_hw_cpufreq.cpp
tests_unit_test_hw_cpufreq_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_cpufreq_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_snapshot_SOURCES = tests/unit/test_hw_snapshot.cpp
tests_unit_test_hw_snapshot_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_snapshot_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_secure_dir_SOURCES = tests/unit/test_hw_secure_dir.cpp
tests_unit_test_hw_secure_dir_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_secure_dir_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_pfm_encoding_SOURCES = tests/unit/test_hw_pfm_encoding.cpp
tests_unit_test_hw_pfm_encoding_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_pfm_encoding_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_perf_SOURCES = tests/unit/test_hw_perf.cpp
tests_unit_test_hw_perf_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_perf_LDADD = $(HARDWARE_UNIT_LDADD) $(PTHREAD_LIBS)

tests_unit_test_hw_emulated_SOURCES = tests/unit/test_hw_emulated.cpp
tests_unit_test_hw_emulated_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_emulated_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_power_emulator_SOURCES = tests/unit/test_hw_power_emulator.cpp
tests_unit_test_hw_power_emulator_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_power_emulator_LDADD = $(HARDWARE_UNIT_LDADD)

tests_unit_test_hw_hsmp_SOURCES = tests/unit/test_hw_hsmp.cpp
tests_unit_test_hw_hsmp_CPPFLAGS = $(HARDWARE_UNIT_CPPFLAGS)
tests_unit_test_hw_hsmp_LDADD = $(HARDWARE_UNIT_LDADD)
