# protocol: the node <-> controller wire protocol. Messages and their codec, munge session
# handshake, HMAC-SHA256 channel, non-blocking TCP endpoints. A convenience library linked
# into the controller plugin, the node agent, the admin command, tests and benchmarks.
# See protocol/PROTOCOL.md for the wire format.
noinst_LTLIBRARIES += protocol/libpgproto.la
protocol_libpgproto_la_CPPFLAGS = $(AM_CPPFLAGS) $(MUNGE_CFLAGS) $(CRYPTO_CFLAGS)
protocol_libpgproto_la_SOURCES = \
	protocol/status.hpp protocol/status.cpp \
	protocol/wire.hpp protocol/wire.cpp \
	protocol/messages.hpp protocol/messages.cpp \
	protocol/mac.hpp protocol/mac.cpp \
	protocol/frame.hpp protocol/frame.cpp \
	protocol/channel.hpp protocol/channel.cpp \
	protocol/auth.hpp protocol/auth.cpp \
	protocol/handshake.hpp protocol/handshake.cpp \
	protocol/roles.hpp \
	protocol/net.hpp protocol/net.cpp \
	protocol/backoff.hpp protocol/backoff.cpp \
	protocol/report_phase.hpp protocol/report_phase.cpp \
	protocol/controller_endpoint.hpp protocol/controller_endpoint.cpp \
	protocol/client_endpoint.hpp protocol/client_endpoint.cpp
protocol_libpgproto_la_LIBADD = $(MUNGE_LIBS) $(CRYPTO_LIBS)

# The munge stand-in for tests, the simulator and benchmarks; never linked into plugins.
noinst_LTLIBRARIES += protocol/libpgproto_fake.la
protocol_libpgproto_fake_la_SOURCES = protocol/fake_auth.hpp protocol/fake_auth.cpp

# What a program using the protocol links (libgradient for GainCurve, after us).
PROTO_LIBS = protocol/libpgproto.la libgradient/libgradient.la $(MUNGE_LIBS) $(CRYPTO_LIBS)

EXTRA_DIST += protocol/PROTOCOL.md

# ------------------------------------------------------------------ fuzzing (clang only)
# `make fuzz` builds the libFuzzer target for the decoders and the seed-corpus generator
# with clang (AddressSanitizer + UBSan); tests/fuzz/run_fuzz.sh runs a short campaign. The
# sources are compiled directly, since the libtool objects are built by $(CXX) without
# the fuzzer's instrumentation.
FUZZ_CXXFLAGS = -std=c++17 -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror -Wno-unused-parameter -I$(top_srcdir) -I$(top_builddir) $(CRYPTO_CFLAGS)
FUZZ_PROTO_SRCS = \
	$(top_srcdir)/protocol/status.cpp $(top_srcdir)/protocol/wire.cpp \
	$(top_srcdir)/protocol/messages.cpp $(top_srcdir)/protocol/mac.cpp \
	$(top_srcdir)/protocol/frame.cpp $(top_srcdir)/protocol/channel.cpp \
	$(top_srcdir)/protocol/net.cpp $(top_srcdir)/libgradient/gain_curve.cpp
FUZZ_PROTO_HDRS = \
	$(top_srcdir)/protocol/status.hpp $(top_srcdir)/protocol/wire.hpp \
	$(top_srcdir)/protocol/messages.hpp $(top_srcdir)/protocol/mac.hpp \
	$(top_srcdir)/protocol/frame.hpp $(top_srcdir)/protocol/channel.hpp \
	$(top_srcdir)/protocol/net.hpp $(top_srcdir)/libgradient/control_messages.hpp \
	$(top_srcdir)/libgradient/gain_curve.hpp $(top_srcdir)/tests/fuzz/fuzz_common.hpp
FUZZ_BINS = tests/fuzz/fuzz_decode tests/fuzz/make_corpus
EXTRA_DIST += tests/fuzz/fuzz_decode.cpp tests/fuzz/make_corpus.cpp tests/fuzz/fuzz_common.hpp \
	tests/fuzz/proto.dict tests/fuzz/run_fuzz.sh
CLEANFILES += $(FUZZ_BINS)

if HAVE_FUZZER
tests/fuzz/fuzz_decode: $(top_srcdir)/tests/fuzz/fuzz_decode.cpp $(FUZZ_PROTO_SRCS) $(FUZZ_PROTO_HDRS)
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CXXLD)$(CLANGXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer \
	  $(top_srcdir)/tests/fuzz/fuzz_decode.cpp $(FUZZ_PROTO_SRCS) -o $@ $(CRYPTO_LIBS)

tests/fuzz/make_corpus: $(top_srcdir)/tests/fuzz/make_corpus.cpp $(FUZZ_PROTO_SRCS) $(FUZZ_PROTO_HDRS)
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CXXLD)$(CLANGXX) $(FUZZ_CXXFLAGS) \
	  $(top_srcdir)/tests/fuzz/make_corpus.cpp $(FUZZ_PROTO_SRCS) -o $@ $(CRYPTO_LIBS)

fuzz: $(FUZZ_BINS)
else
fuzz:
	@echo "fuzz: no clang with libFuzzer found by configure (Debian: clang libclang-rt-14-dev)"
endif
.PHONY: fuzz
