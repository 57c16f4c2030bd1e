# Unit tests (Check), end-to-end tests on a real local Slurm cluster (TAP shell scripts).

UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)

include tests/unit/libgradient.mk
include tests/unit/sim.mk
include tests/unit/control.mk
include tests/unit/hardware.mk
include tests/unit/protocol.mk
include tests/unit/nodeagent.mk
include tests/unit/ctld.mk

check_PROGRAMS += tests/unit/test_spank_config tests/unit/test_job_record \
	tests/unit/test_nodeagent tests/unit/test_ctld_config tests/unit/test_report \
	tests/unit/test_agent_energy tests/unit/test_agent_control tests/unit/test_agent_config
TESTS += tests/unit/test_agent_energy tests/unit/test_agent_control tests/unit/test_agent_config
TESTS += tests/unit/test_spank_config tests/unit/test_job_record tests/unit/test_nodeagent \
	tests/unit/test_ctld_config tests/unit/test_report

check_PROGRAMS += tests/unit/test_atomic_file
TESTS += tests/unit/test_atomic_file
tests_unit_test_atomic_file_SOURCES = tests/unit/test_atomic_file.cpp
tests_unit_test_atomic_file_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_atomic_file_LDADD = controller/libpgcontroller.la $(PTHREAD_LIBS) $(CHECK_LIBS)

tests_unit_test_spank_config_SOURCES = tests/unit/test_spank_config.cpp
tests_unit_test_spank_config_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_spank_config_LDADD = spank_powergrad/libspankcore.la libgradient/libgradient.la \
	$(CHECK_LIBS)

tests_unit_test_job_record_SOURCES = tests/unit/test_job_record.cpp
tests_unit_test_job_record_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_job_record_LDADD = controller/libpgcontroller.la $(CHECK_LIBS)

tests_unit_test_nodeagent_SOURCES = tests/unit/test_nodeagent.cpp
tests_unit_test_nodeagent_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_nodeagent_LDADD = nodeagent/libnodeagent.la $(HARDWARE_LIBS) $(CHECK_LIBS)

tests_unit_test_agent_energy_SOURCES = tests/unit/test_agent_energy.cpp
tests_unit_test_agent_energy_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_agent_energy_LDADD = nodeagent/libnodeagent.la $(HARDWARE_LIBS) $(CHECK_LIBS)

tests_unit_test_agent_config_SOURCES = tests/unit/test_agent_config.cpp
tests_unit_test_agent_config_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_agent_config_LDADD = spank_powergrad/libspankcore.la libgradient/libgradient.la \
	$(CHECK_LIBS)

tests_unit_test_agent_control_SOURCES = tests/unit/test_agent_control.cpp
tests_unit_test_agent_control_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_agent_control_LDADD = nodeagent/libnodeagent.la hardware/libhardware_testing.la \
	$(HARDWARE_LIBS) $(CHECK_LIBS)

tests_unit_test_ctld_config_SOURCES = tests/unit/test_ctld_config.cpp
tests_unit_test_ctld_config_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_ctld_config_LDADD = controller/libpgcontroller.la $(SLURM_LIBS) $(CHECK_LIBS)

tests_unit_test_report_SOURCES = tests/unit/test_report.cpp
tests_unit_test_report_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_report_LDADD = tools/libtools.la $(CHECK_LIBS)

# End-to-end: each brings up its own cluster (tests/cluster/pgcluster) and tears it down.
E2E_TESTS = \
	tests/e2e/test_cluster_harness.sh \
	tests/e2e/test_walking_skeleton.sh \
	tests/e2e/test_node_power.sh
TESTS += $(E2E_TESTS)
EXTRA_DIST += $(E2E_TESTS) tests/e2e/lib.sh tests/cluster/pgcluster tests/cluster/README.md

# `powergrad report` with a stand-in sacct and job names that try to forge rows (no cluster).
TESTS += tests/tools/test_report_forged_names.sh
EXTRA_DIST += tests/tools/test_report_forged_names.sh

# The thin SPANK plugin and the agent's module, loaded by a stand-in for Slurm (no cluster).
check_PROGRAMS += tests/tools/spank_host
tests_tools_spank_host_SOURCES = tests/tools/spank_host.c
tests_tools_spank_host_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS)
# The plugin resolves the spank_* and slurm_* functions from this program.
tests_tools_spank_host_LDFLAGS = -rdynamic
TESTS += tests/tools/test_plugin_split.sh
EXTRA_DIST += tests/tools/test_plugin_split.sh

# The end-to-end suites of `make check`, one a line (scripts/stress-tests.sh).
.PHONY: print-e2e-tests
print-e2e-tests:
	@for t in $(TESTS); do case $$t in tests/e2e/*) echo $$t ;; esac; done
