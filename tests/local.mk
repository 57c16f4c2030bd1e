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
	tests/unit/test_agent_energy tests/unit/test_agent_control tests/unit/test_agent_config \
	tests/unit/test_agent_hsmp
TESTS += tests/unit/test_agent_energy tests/unit/test_agent_control tests/unit/test_agent_config \
	tests/unit/test_agent_hsmp
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

tests_unit_test_agent_hsmp_SOURCES = tests/unit/test_agent_hsmp.cpp
tests_unit_test_agent_hsmp_CPPFLAGS = $(UNIT_CPPFLAGS)
tests_unit_test_agent_hsmp_LDADD = nodeagent/libnodeagent.la hardware/libhardware_testing.la \
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
	tests/e2e/test_node_power.sh \
	tests/e2e/test_debian_packages.sh
if ENABLE_E2E
TESTS += $(E2E_TESTS)
endif
EXTRA_DIST += $(E2E_TESTS) tests/e2e/lib.sh tests/cluster/pgcluster tests/cluster/README.md

# `powergrad report` with a stand-in sacct and job names that try to forge rows (no cluster).
TESTS += tests/tools/test_report_forged_names.sh
EXTRA_DIST += tests/tools/test_report_forged_names.sh

# scripts/random-clusters.py, the random-cluster harness, on three small clusters (no cluster).
TESTS += tests/tools/test_random_clusters.sh
EXTRA_DIST += tests/tools/test_random_clusters.sh

# ThreadSanitizer: the unit tests of the parts that share data between threads, built in a
# second build with -fsanitize=thread (configured like this one, in a temporary folder) and
# run. Skipped in the ASan build (the two sanitizers' flags cannot be mixed).
TESTS += tests/tools/test_thread_sanitizer.sh
EXTRA_DIST += tests/tools/test_thread_sanitizer.sh

# `powergrad check-config` on good and bad files (no cluster).
TESTS += tests/tools/test_check_config.sh
EXTRA_DIST += tests/tools/test_check_config.sh

# The thin SPANK plugin and the agent's module, loaded by a stand-in for Slurm (no cluster).
check_PROGRAMS += tests/tools/spank_host
tests_tools_spank_host_SOURCES = tests/tools/spank_host.c
tests_tools_spank_host_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS)
# The plugin resolves the spank_* and slurm_* functions from this program.
tests_tools_spank_host_LDFLAGS = -rdynamic
TESTS += tests/tools/test_plugin_split.sh
EXTRA_DIST += tests/tools/test_plugin_split.sh tests/tools/pg_preload_once.c

# ---------------------------------------------------- the Slurm version matrix
# scripts/run-tests.sh tests every supported Slurm version. Slurm 22.05 (Debian 12's, this
# machine's) runs `make check`: every test. Slurm 24.11 and 26.05 (built and run inside the
# Debian root that carries each) run `make check-matrix`: every unit test (tests/unit/) and
# the end-to-end suites of MATRIX_E2E_TESTS, and build nothing else (no fuzz targets).
MATRIX_E2E_TESTS = \
	tests/e2e/test_walking_skeleton.sh \
	tests/e2e/test_node_power.sh \
	tests/e2e/test_controller_power.sh \
	tests/e2e/test_controller_admin.sh \
	tests/e2e/test_controller_faults.sh \
	tests/e2e/test_controller_load.sh \
	tests/e2e/test_controller_metrics.sh \
	tests/e2e/test_controller_reload.sh \
	tests/e2e/test_debian_packages.sh
# End-to-end suites that need the controller plugin (prep_powergrad.so), which is built only
# against the version's configured Slurm source tree (configure --with-slurm-source). On a
# version configured without one (its source is not on the mirror: Slurm 26.05.5 today)
# check-matrix leaves them out, and the matrix table shows them as n/a, not as skipped.
CTLD_PLUGIN_E2E_TESTS = \
	tests/e2e/test_walking_skeleton.sh \
	tests/e2e/test_controller_power.sh \
	tests/e2e/test_controller_admin.sh \
	tests/e2e/test_controller_faults.sh \
	tests/e2e/test_budget_whole_cluster.sh \
	tests/e2e/test_controller_prep.sh \
	tests/e2e/test_controller_load.sh \
	tests/e2e/test_amd_hsmp.sh \
	tests/e2e/test_controller_metrics.sh \
	tests/e2e/test_controller_reload.sh
if BUILD_SLURMCTLD_PLUGIN
MATRIX_CTLD_PLUGIN = yes
else
MATRIX_CTLD_PLUGIN = no
endif

# The sanitizer run (scripts/run-tests.sh, a build configured --enable-asan): every unit
# test, and these suites with the sanitized plugins loaded in the real daemons. (Controller
# power once hung here: its job's srun did not return; the daemons' children now start
# without the sanitizer runtimes, tests/tools/pg_preload_once.c, and it passes.)
SANITIZE_E2E_TESTS = \
	tests/e2e/test_node_power.sh \
	tests/e2e/test_controller_power.sh \
	tests/e2e/test_controller_faults.sh \
	tests/e2e/test_controller_load.sh \
	tests/e2e/test_controller_metrics.sh \
	tests/e2e/test_controller_reload.sh

.PHONY: check-matrix check-sanitize matrix-lists
check-matrix: matrix-lists
	$(MAKE) $(AM_MAKEFLAGS) check check_DATA= TESTS="`sed -n 's/^short: //p' matrix-lists.txt`"
check-sanitize: matrix-lists
	$(MAKE) $(AM_MAKEFLAGS) check check_DATA= TESTS="`sed -n 's/^sanitize: //p' matrix-lists.txt`"

# matrix-lists.txt: what `make check` runs (all:), what check-matrix runs (short:: every
# tests/unit/ runner of TESTS, the plugin's load test, and MATRIX_E2E_TESTS) and leaves out for want of the
# controller plugin (na:), and what check-sanitize runs (sanitize:); read by
# scripts/run-tests.sh's table.
matrix-lists:
	@short=; na=; \
	for t in $(TESTS); do \
	  case $$t in tests/unit/*|tests/tools/test_plugin_split.sh) short="$$short $$t" ;; esac; \
	done; \
	for t in $(MATRIX_E2E_TESTS); do \
	  case " $(CTLD_PLUGIN_E2E_TESTS) " in \
	    *" $$t "*) if test $(MATRIX_CTLD_PLUGIN) = no; then na="$$na $$t"; continue; fi ;; \
	  esac; \
	  short="$$short $$t"; \
	done; \
	sanitize=; \
	for t in $(TESTS); do case $$t in tests/unit/*) sanitize="$$sanitize $$t" ;; esac; done; \
	for t in $(SANITIZE_E2E_TESTS); do \
	  case " $(CTLD_PLUGIN_E2E_TESTS) " in \
	    *" $$t "*) if test $(MATRIX_CTLD_PLUGIN) = no; then continue; fi ;; \
	  esac; \
	  sanitize="$$sanitize $$t"; \
	done; \
	{ echo "all: "$(TESTS); echo "short:$$short"; echo "na:$$na"; echo "sanitize:$$sanitize"; } > matrix-lists.txt
CLEANFILES += matrix-lists.txt

# The end-to-end suites of `make check`, one a line (scripts/stress-tests.sh).
.PHONY: print-e2e-tests
print-e2e-tests:
	@for t in $(TESTS); do case $$t in tests/e2e/*) echo $$t ;; esac; done

# Headers the unit tests share, and the summary the test command prints (scripts/run-tests.sh).
EXTRA_DIST += tests/unit/check_strings.hpp tests/summary.sh
# make distcheck: the tarball configured as a user would (plugins under its own prefix, the
# controller plugin against the same Slurm source tree as this build, if any), built, and
# its unit and tool tests run; the end-to-end suites need root and a local cluster and run
# from the checkout (make check).
AM_DISTCHECK_CONFIGURE_FLAGS = --disable-e2e --with-plugindir='$${libdir}/slurm-wlm' \
	--with-slurm-source=$(SLURM_SRC_DIR)
