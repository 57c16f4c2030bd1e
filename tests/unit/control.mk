# Check runners for the control code (gradient model v2, node and cluster controllers, the
# pool baseline), one per module. Included from tests/local.mk.
CONTROL_UNIT_TESTS = \
	tests/unit/test_gradient_model \
	tests/unit/test_node_controller \
	tests/unit/test_cluster_controller \
	tests/unit/test_pool_baseline \
	tests/unit/test_level_noise \
	tests/unit/test_name_index
check_PROGRAMS += $(CONTROL_UNIT_TESTS)
TESTS += $(CONTROL_UNIT_TESTS)

CONTROL_UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
CONTROL_UNIT_LDADD = libgradient/libgradient.la $(CHECK_LIBS)

tests_unit_test_gradient_model_SOURCES = tests/unit/test_gradient_model.cpp
tests_unit_test_gradient_model_CPPFLAGS = $(CONTROL_UNIT_CPPFLAGS)
tests_unit_test_gradient_model_LDADD = $(CONTROL_UNIT_LDADD)

tests_unit_test_node_controller_SOURCES = tests/unit/test_node_controller.cpp
tests_unit_test_node_controller_CPPFLAGS = $(CONTROL_UNIT_CPPFLAGS)
tests_unit_test_node_controller_LDADD = $(CONTROL_UNIT_LDADD)

tests_unit_test_cluster_controller_SOURCES = tests/unit/test_cluster_controller.cpp
tests_unit_test_cluster_controller_CPPFLAGS = $(CONTROL_UNIT_CPPFLAGS)
tests_unit_test_cluster_controller_LDADD = $(CONTROL_UNIT_LDADD)

tests_unit_test_pool_baseline_SOURCES = tests/unit/test_pool_baseline.cpp
tests_unit_test_pool_baseline_CPPFLAGS = $(CONTROL_UNIT_CPPFLAGS)
tests_unit_test_pool_baseline_LDADD = $(CONTROL_UNIT_LDADD)

tests_unit_test_level_noise_SOURCES = tests/unit/test_level_noise.cpp
tests_unit_test_level_noise_CPPFLAGS = $(CONTROL_UNIT_CPPFLAGS)
tests_unit_test_level_noise_LDADD = $(CONTROL_UNIT_LDADD)

tests_unit_test_name_index_SOURCES = tests/unit/test_name_index.cpp
tests_unit_test_name_index_CPPFLAGS = $(CONTROL_UNIT_CPPFLAGS)
tests_unit_test_name_index_LDADD = $(CONTROL_UNIT_LDADD)
