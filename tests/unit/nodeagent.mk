# Check runners for the node agent's link to the cluster controller (loopback controller
# endpoint, fake munge realm) and its restore rules. Included from tests/local.mk.
NODEAGENT_UNIT_TESTS = tests/unit/test_agent_link
check_PROGRAMS += $(NODEAGENT_UNIT_TESTS)
TESTS += $(NODEAGENT_UNIT_TESTS)
tests_unit_test_agent_link_SOURCES = tests/unit/test_agent_link.cpp
tests_unit_test_agent_link_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
tests_unit_test_agent_link_LDADD = nodeagent/libnodeagent.la hardware/libhardware_testing.la \
	protocol/libpgproto_fake.la spank_powergrad/libspankcore.la $(HARDWARE_LIBS) $(MUNGE_LIBS) $(CRYPTO_LIBS) $(CHECK_LIBS)
# End-to-end (local cluster): two jobs of different gradients on one node.
if ENABLE_E2E
TESTS += tests/e2e/test_node_gradient.sh
endif
# End-to-end (local cluster, task/affinity): per-core frequency limits between bound jobs.
if ENABLE_E2E
TESTS += tests/e2e/test_node_cpufreq.sh
endif
# End-to-end (local cluster): slurmd started without -D (it daemonizes after loading plugins).
if ENABLE_E2E
TESTS += tests/e2e/test_slurmd_daemonized.sh
endif
EXTRA_DIST += tests/e2e/test_slurmd_daemonized.sh
EXTRA_DIST += tests/unit/agent_fixture.hpp
EXTRA_DIST += tests/e2e/test_node_gradient.sh
EXTRA_DIST += tests/e2e/test_node_cpufreq.sh
