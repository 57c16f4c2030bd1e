# spank_powergrad.so: the --power-aware option (srun/sbatch/salloc) and the node side
# (slurmd, slurmstepd).

# Slurm-free parts, also linked into the unit tests.
noinst_LTLIBRARIES += spank_powergrad/libspankcore.la
spank_powergrad_libspankcore_la_SOURCES = \
	spank_powergrad/plugin_config.cpp spank_powergrad/plugin_config.hpp \
	spank_powergrad/node_name.cpp spank_powergrad/node_name.hpp \
	spank_powergrad/slurmd_args.cpp spank_powergrad/slurmd_args.hpp \
	spank_powergrad/slurm_conf.cpp spank_powergrad/slurm_conf.hpp

plugin_LTLIBRARIES += spank_powergrad/spank_powergrad.la
spank_powergrad_spank_powergrad_la_SOURCES = \
	spank_powergrad/plugin.cpp \
	spank_powergrad/spank_glue.cpp spank_powergrad/spank_glue.hpp \
	spank_powergrad/client.cpp \
	spank_powergrad/slurmd.cpp \
	spank_powergrad/stepd.cpp
spank_powergrad_spank_powergrad_la_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS) $(MUNGE_CFLAGS)
# Symbols such as spank_option_register and slurm_info come from the host process.
spank_powergrad_spank_powergrad_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-Wl,--version-script=$(top_srcdir)/spank_powergrad/spank_powergrad.map
spank_powergrad_spank_powergrad_la_LIBADD = spank_powergrad/libspankcore.la \
	nodeagent/libnodeagent.la $(HARDWARE_LIBS) $(MUNGE_LIBS) $(CRYPTO_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += spank_powergrad/spank_powergrad.map
dist_man_MANS += doc/spank_powergrad.8
