# Check runners for the controller's Slurm-free parts (controller/) and the
# admin command (tools/), the controller's end-to-end tests and their protocol test client
# (tests/tools/pg-rogue). Included from tests/local.mk.
CTLD_UNIT_TESTS = tests/unit/test_controller_service tests/unit/test_job_power \
	tests/unit/test_series tests/unit/test_log_summary tests/unit/test_listen_retry
check_PROGRAMS += $(CTLD_UNIT_TESTS)
TESTS += $(CTLD_UNIT_TESTS)

tests_unit_test_controller_service_SOURCES = tests/unit/test_controller_service.cpp
tests_unit_test_controller_service_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
tests_unit_test_controller_service_LDADD = tools/libtools.la controller/libpgcontroller.la \
	protocol/libpgproto_fake.la $(PROTO_LIBS) $(SLURM_LIBS) $(CHECK_LIBS)

tests_unit_test_job_power_SOURCES = tests/unit/test_job_power.cpp
tests_unit_test_job_power_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS) $(SLURM_CPPFLAGS)
tests_unit_test_job_power_LDADD = tools/libtools.la controller/libpgcontroller.la \
	$(PROTO_LIBS) $(SLURM_LIBS) $(CHECK_LIBS)

tests_unit_test_log_summary_SOURCES = tests/unit/test_log_summary.cpp
tests_unit_test_log_summary_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
tests_unit_test_log_summary_LDADD = controller/libpgcontroller.la $(PROTO_LIBS) $(CHECK_LIBS)

tests_unit_test_listen_retry_SOURCES = tests/unit/test_listen_retry.cpp
tests_unit_test_listen_retry_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
tests_unit_test_listen_retry_LDADD = tools/libtools.la controller/libpgcontroller.la \
	protocol/libpgproto_fake.la $(PROTO_LIBS) $(SLURM_LIBS) $(CHECK_LIBS)

# Per-job power series, its SVG plot, and the run-time budget's state file.
tests_unit_test_series_SOURCES = tests/unit/test_series.cpp
tests_unit_test_series_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS) $(SLURM_CPPFLAGS)
tests_unit_test_series_LDADD = tools/libtools.la controller/libpgcontroller.la \
	$(PROTO_LIBS) $(SLURM_LIBS) $(CHECK_LIBS)

if ENABLE_E2E
TESTS += tests/e2e/test_controller_admin.sh
endif
EXTRA_DIST += tests/e2e/test_controller_admin.sh

# A misbehaving protocol client for the controller's fault test (forged, replayed, truncated
# and oversized frames against the live controller in slurmctld).
check_PROGRAMS += tests/tools/pg-rogue
tests_tools_pg_rogue_SOURCES = tests/tools/pg-rogue.cpp
tests_tools_pg_rogue_LDADD = $(PROTO_LIBS)

CTLD_E2E_TESTS = tests/e2e/test_controller_power.sh tests/e2e/test_controller_faults.sh \
	tests/e2e/test_budget_whole_cluster.sh tests/e2e/test_controller_prep.sh \
	tests/e2e/test_controller_load.sh tests/e2e/test_amd_hsmp.sh \
	tests/e2e/test_controller_metrics.sh \
	tests/e2e/test_controller_reload.sh
if ENABLE_E2E
TESTS += $(CTLD_E2E_TESTS)
endif
EXTRA_DIST += $(CTLD_E2E_TESTS)

# Many node agents' sessions against the real controller (bench/load_test.sh, and the small
# e2e run in tests/e2e/test_controller_load.sh).
check_PROGRAMS += tests/tools/pg-loadgen
tests_tools_pg_loadgen_SOURCES = tests/tools/pg-loadgen.cpp
tests_tools_pg_loadgen_LDADD = $(PROTO_LIBS)
