# prep_powergrad.so: the cluster controller inside slurmctld, as a PrEp plugin
# (PrEpPlugins=prep/powergrad).

if BUILD_SLURMCTLD_PLUGIN
plugin_LTLIBRARIES += slurmctld_powergrad/prep_powergrad.la
slurmctld_powergrad_prep_powergrad_la_SOURCES = \
	slurmctld_powergrad/plugin.cpp \
	slurmctld_powergrad/slurm_adapter.c slurmctld_powergrad/slurm_adapter.h
# Slurm's configured source tree first: its config.h, then its internal headers
# (SLURM_SRC_CPPFLAGS has -iquote for the tree: automake's own -I of the build folder, with
# PowerGrad's config.h, comes before any -I here). The plugin declares the installed
# Slurm's version (configure checked the tree's release series).
slurmctld_powergrad_prep_powergrad_la_CPPFLAGS = $(SLURM_SRC_CPPFLAGS) \
	-I$(top_srcdir) $(SLURM_CPPFLAGS) -DPG_SLURM_PLUGIN_VERSION=$(SLURM_PLUGIN_VERSION)
slurmctld_powergrad_prep_powergrad_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version \
	-shared -Wl,--version-script=$(top_srcdir)/slurmctld_powergrad/prep_powergrad.map
slurmctld_powergrad_prep_powergrad_la_LIBADD = controller/libpgcontroller.la $(PTHREAD_LIBS)
endif
EXTRA_DIST += slurmctld_powergrad/prep_powergrad.map
dist_man_MANS += doc/prep_powergrad.8
