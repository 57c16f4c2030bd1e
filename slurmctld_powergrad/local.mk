# slurmctld_powergrad.so: the cluster controller inside slurmctld (SlurmctldPlugstack).

# Slurm-free controller logic, also linked into the unit tests.
noinst_LTLIBRARIES += slurmctld_powergrad/libctldcore.la
# Slurm's hostlist functions (public API) come from libslurm in tests and tools, and from
# slurmctld itself when the plugin is loaded: this library does not link them.
slurmctld_powergrad_libctldcore_la_SOURCES = \
	slurmctld_powergrad/job_records.cpp slurmctld_powergrad/job_records.hpp \
	slurmctld_powergrad/ctld_config.cpp slurmctld_powergrad/ctld_config.hpp \
	slurmctld_powergrad/job_power.cpp slurmctld_powergrad/job_power.hpp \
	slurmctld_powergrad/budget_state.cpp slurmctld_powergrad/budget_state.hpp \
	slurmctld_powergrad/controller_service.cpp slurmctld_powergrad/controller_service.hpp
slurmctld_powergrad_libctldcore_la_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS)
slurmctld_powergrad_libctldcore_la_LIBADD = jobreport/libjobreport.la \
	spank_powergrad/libspankcore.la protocol/libpgproto.la libgradient/libgradient.la \
	$(MUNGE_LIBS) $(CRYPTO_LIBS)

if BUILD_SLURMCTLD_PLUGIN
plugin_LTLIBRARIES += slurmctld_powergrad/slurmctld_powergrad.la
slurmctld_powergrad_slurmctld_powergrad_la_SOURCES = \
	slurmctld_powergrad/plugin.cpp \
	slurmctld_powergrad/slurm_adapter.c slurmctld_powergrad/slurm_adapter.h
# Slurm's configured source tree first: its config.h, then its internal headers.
slurmctld_powergrad_slurmctld_powergrad_la_CPPFLAGS = $(SLURM_SRC_CPPFLAGS) \
	-I$(top_srcdir) $(SLURM_CPPFLAGS)
slurmctld_powergrad_slurmctld_powergrad_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version \
	-shared -Wl,--version-script=$(top_srcdir)/slurmctld_powergrad/slurmctld_powergrad.map
slurmctld_powergrad_slurmctld_powergrad_la_LIBADD = slurmctld_powergrad/libctldcore.la $(PTHREAD_LIBS)
endif
EXTRA_DIST += slurmctld_powergrad/slurmctld_powergrad.map
dist_man_MANS += doc/slurmctld_powergrad.8
