# spank_powergrad.so: the --power-aware option (srun/sbatch/salloc) and the node side
# (slurmd, slurmstepd).

# Slurm-free parts, also linked into the unit tests.
noinst_LTLIBRARIES += spank_powergrad/libspankcore.la
spank_powergrad_libspankcore_la_SOURCES = \
	spank_powergrad/plugin_config.cpp spank_powergrad/plugin_config.hpp \
	spank_powergrad/node_name.cpp spank_powergrad/node_name.hpp \
	spank_powergrad/slurmd_args.cpp spank_powergrad/slurmd_args.hpp \
	spank_powergrad/slurm_conf.cpp spank_powergrad/slurm_conf.hpp \
	spank_powergrad/plugstack_scan.cpp spank_powergrad/plugstack_scan.hpp

# The SPANK plugin itself is thin: srun, sbatch, salloc and every slurmstepd load it, so it
# holds the option, the step's registration with the node agent, and the loader of the
# agent's module, and links nothing heavier than libstdc++. Its few sources are compiled in
# directly, with its own flags (the agent's libraries would bring libpfm4, libmunge and
# libcrypto; and the plugin is never sanitized).
# The plugin refuses an agent module of another build (agent_module.hpp).
AGENT_MODULE_CPPFLAGS = -DPG_PACKAGE_VERSION='"$(PACKAGE_VERSION)"'
plugin_LTLIBRARIES += spank_powergrad/spank_powergrad.la
spank_powergrad_spank_powergrad_la_SOURCES = \
	spank_powergrad/plugin.cpp \
	spank_powergrad/spank_glue.cpp spank_powergrad/spank_glue.hpp \
	spank_powergrad/client.cpp \
	spank_powergrad/slurmd_loader.cpp spank_powergrad/agent_module.hpp \
	spank_powergrad/stepd.cpp \
	nodeagent/step_event.cpp nodeagent/step_channel.cpp nodeagent/agent_socket.cpp \
	hardware/result.cpp hardware/secure_dir.cpp libgradient/job_mode.cpp \
	spank_powergrad/plugin_config.cpp spank_powergrad/node_name.cpp \
	spank_powergrad/slurmd_args.cpp spank_powergrad/slurm_conf.cpp
spank_powergrad_spank_powergrad_la_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS) $(AGENT_MODULE_CPPFLAGS)
# Symbols such as spank_option_register and slurm_info come from the host process.
# Never sanitized (configure.ac: PG_CXXFLAGS_NOSAN): srun cannot carry the runtime.
spank_powergrad_spank_powergrad_la_CXXFLAGS = $(PG_CXXFLAGS_NOSAN) $(PTHREAD_CFLAGS) \
	-ffunction-sections -fdata-sections
spank_powergrad_spank_powergrad_la_LDFLAGS = $(PG_HARDEN_LDFLAGS) -module -avoid-version -shared \
	-Wl,--version-script=$(top_srcdir)/spank_powergrad/spank_powergrad.map $(THIN_PLUGIN_LDFLAGS)
# Linked as libtool links C (the compiler driver picks the C++ runtime), so that
# THIN_PLUGIN_LDFLAGS' static libstdc++ takes effect: libtool's C++ mode links the shared
# libstdc++ itself, whatever the flags say.
spank_powergrad_spank_powergrad_la_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CC $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CXXLD) $(spank_powergrad_spank_powergrad_la_CXXFLAGS) \
	$(CXXFLAGS) $(spank_powergrad_spank_powergrad_la_LDFLAGS) $(LDFLAGS) -o $@

# The node agent's module (agent_module.hpp), installed beside the plugin: loaded by slurmd
# only. It has the agent, power control, counters and the controller link.
plugin_LTLIBRARIES += spank_powergrad/powergrad_agent.la
spank_powergrad_powergrad_agent_la_SOURCES = \
	spank_powergrad/agent_module.cpp spank_powergrad/agent_module.hpp \
	spank_powergrad/spank_glue.cpp spank_powergrad/spank_glue.hpp \
	spank_powergrad/slurmd.cpp
spank_powergrad_powergrad_agent_la_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS) $(MUNGE_CFLAGS) $(AGENT_MODULE_CPPFLAGS)
spank_powergrad_powergrad_agent_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-Wl,--version-script=$(top_srcdir)/spank_powergrad/powergrad_agent.map
spank_powergrad_powergrad_agent_la_LIBADD = spank_powergrad/libspankcore.la \
	nodeagent/libnodeagent.la $(HARDWARE_LIBS) $(MUNGE_LIBS) $(CRYPTO_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += spank_powergrad/powergrad_agent.map
EXTRA_DIST += spank_powergrad/spank_powergrad.map
dist_man_MANS += doc/spank_powergrad.8
