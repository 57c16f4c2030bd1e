# Check runners for the simulator (sim/), one per module. Included from tests/local.mk.
SIM_UNIT_TESTS = \
	tests/unit/test_sim_queue \
	tests/unit/test_sim_scenario \
	tests/unit/test_sim_policies \
	tests/unit/test_sim_plain \
	tests/unit/test_sim_baseline_settings
check_PROGRAMS += $(SIM_UNIT_TESTS)
TESTS += $(SIM_UNIT_TESTS)

SIM_UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS) $(YAMLCPP_CFLAGS)
SIM_UNIT_LIBS = $(SIM_LIBS) $(CHECK_LIBS)

tests_unit_test_sim_queue_SOURCES = tests/unit/test_sim_queue.cpp
tests_unit_test_sim_queue_CPPFLAGS = $(SIM_UNIT_CPPFLAGS)
tests_unit_test_sim_queue_LDADD = $(SIM_UNIT_LIBS)

tests_unit_test_sim_scenario_SOURCES = tests/unit/test_sim_scenario.cpp
tests_unit_test_sim_scenario_CPPFLAGS = $(SIM_UNIT_CPPFLAGS)
tests_unit_test_sim_scenario_LDADD = $(SIM_UNIT_LIBS)

tests_unit_test_sim_policies_SOURCES = tests/unit/test_sim_policies.cpp
tests_unit_test_sim_policies_CPPFLAGS = $(SIM_UNIT_CPPFLAGS)
tests_unit_test_sim_policies_LDADD = $(SIM_UNIT_LIBS)

tests_unit_test_sim_plain_SOURCES = tests/unit/test_sim_plain.cpp
tests_unit_test_sim_plain_CPPFLAGS = $(SIM_UNIT_CPPFLAGS)
tests_unit_test_sim_plain_LDADD = $(SIM_UNIT_LIBS)

tests_unit_test_sim_baseline_settings_SOURCES = tests/unit/test_sim_baseline_settings.cpp
tests_unit_test_sim_baseline_settings_CPPFLAGS = $(SIM_UNIT_CPPFLAGS)
tests_unit_test_sim_baseline_settings_LDADD = $(SIM_UNIT_LIBS)
