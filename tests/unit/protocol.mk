# Check runners for the wire protocol (protocol/), one per module, and the short fuzz run.
# Included from tests/local.mk.
PROTOCOL_UNIT_TESTS = \
	tests/unit/test_proto_codec \
	tests/unit/test_proto_channel \
	tests/unit/test_proto_exit \
	tests/unit/test_proto_handshake \
	tests/unit/test_proto_munge \
	tests/unit/test_proto_net \
	tests/unit/test_report_phase \
	tests/unit/test_proto_endpoint
check_PROGRAMS += $(PROTOCOL_UNIT_TESTS)
TESTS += $(PROTOCOL_UNIT_TESTS)
EXTRA_DIST += tests/unit/test_proto_util.hpp

PROTOCOL_UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CHECK_CFLAGS)
PROTOCOL_UNIT_LDADD = protocol/libpgproto_fake.la $(PROTO_LIBS) $(CHECK_LIBS)

tests_unit_test_proto_codec_SOURCES = tests/unit/test_proto_codec.cpp
tests_unit_test_proto_codec_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_codec_LDADD = $(PROTOCOL_UNIT_LDADD)

tests_unit_test_proto_channel_SOURCES = tests/unit/test_proto_channel.cpp
tests_unit_test_proto_channel_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_channel_LDADD = $(PROTOCOL_UNIT_LDADD)

tests_unit_test_proto_exit_SOURCES = tests/unit/test_proto_exit.cpp
tests_unit_test_proto_exit_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_exit_LDADD = $(PROTOCOL_UNIT_LDADD)

tests_unit_test_proto_handshake_SOURCES = tests/unit/test_proto_handshake.cpp
tests_unit_test_proto_handshake_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_handshake_LDADD = $(PROTOCOL_UNIT_LDADD)

# Needs root and munged (a private one, started by the test): otherwise exits 77 (skip).
tests_unit_test_proto_munge_SOURCES = tests/unit/test_proto_munge.cpp
tests_unit_test_proto_munge_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_munge_LDADD = $(PROTOCOL_UNIT_LDADD)

tests_unit_test_proto_net_SOURCES = tests/unit/test_proto_net.cpp
tests_unit_test_proto_net_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_net_LDADD = $(PROTOCOL_UNIT_LDADD)

tests_unit_test_report_phase_SOURCES = tests/unit/test_report_phase.cpp
tests_unit_test_report_phase_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_report_phase_LDADD = $(PROTOCOL_UNIT_LDADD)

tests_unit_test_proto_endpoint_SOURCES = tests/unit/test_proto_endpoint.cpp
tests_unit_test_proto_endpoint_CPPFLAGS = $(PROTOCOL_UNIT_CPPFLAGS)
tests_unit_test_proto_endpoint_LDADD = $(PROTOCOL_UNIT_LDADD)

# A short libFuzzer campaign on the decoders (TAP). Without clang + libFuzzer it is not
# listed here, and run by hand it says SKIP.
if HAVE_FUZZER
TESTS += tests/fuzz/run_fuzz.sh
check_DATA = $(FUZZ_BINS)
endif
