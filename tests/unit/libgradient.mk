# Check runners for libgradient, one per module. Included from tests/local.mk.
LIBGRADIENT_UNIT_TESTS = \
	tests/unit/test_types \
	tests/unit/test_estimator \
	tests/unit/test_allocator \
	tests/unit/test_baselines
check_PROGRAMS += $(LIBGRADIENT_UNIT_TESTS)
TESTS += $(LIBGRADIENT_UNIT_TESTS)
EXTRA_DIST += tests/unit/check_util.hpp

LIBGRADIENT_UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
LIBGRADIENT_UNIT_LDADD = libgradient/libgradient.la $(CHECK_LIBS)

tests_unit_test_types_SOURCES = tests/unit/test_types.cpp
tests_unit_test_types_CPPFLAGS = $(LIBGRADIENT_UNIT_CPPFLAGS)
tests_unit_test_types_LDADD = $(LIBGRADIENT_UNIT_LDADD)

tests_unit_test_estimator_SOURCES = tests/unit/test_estimator.cpp
tests_unit_test_estimator_CPPFLAGS = $(LIBGRADIENT_UNIT_CPPFLAGS)
tests_unit_test_estimator_LDADD = $(LIBGRADIENT_UNIT_LDADD)

tests_unit_test_allocator_SOURCES = tests/unit/test_allocator.cpp
tests_unit_test_allocator_CPPFLAGS = $(LIBGRADIENT_UNIT_CPPFLAGS)
tests_unit_test_allocator_LDADD = $(LIBGRADIENT_UNIT_LDADD)

tests_unit_test_baselines_SOURCES = tests/unit/test_baselines.cpp
tests_unit_test_baselines_CPPFLAGS = $(LIBGRADIENT_UNIT_CPPFLAGS)
tests_unit_test_baselines_LDADD = $(LIBGRADIENT_UNIT_LDADD)
