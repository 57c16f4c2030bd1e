# powergrad: the command for users and admins (report, status, set-budget).
noinst_LTLIBRARIES += tools/libtools.la
tools_libtools_la_SOURCES = tools/job_report.cpp tools/job_report.hpp \
	tools/json.cpp tools/json.hpp tools/admin.cpp tools/admin.hpp \
	tools/series_plot.cpp tools/series_plot.hpp
tools_libtools_la_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS)
tools_libtools_la_LIBADD = jobreport/libjobreport.la

bin_PROGRAMS += tools/powergrad
tools_powergrad_SOURCES = tools/powergrad.cpp tools/release_node.cpp tools/release_node.hpp
tools_powergrad_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS)
# libpgcontroller parses powergrad.conf (Slurm's hostlist API, from libslurm).
# release-node restores a node's saved settings with the node agent's own code.
tools_powergrad_LDADD = tools/libtools.la controller/libpgcontroller.la \
	nodeagent/libnodeagent.la spank_powergrad/libspankcore.la libgradient/libgradient.la \
	$(HARDWARE_LIBS) $(PROTO_LIBS) $(SLURM_LIBS)
dist_man_MANS += doc/powergrad.1 doc/powergrad.conf.5
EXTRA_DIST += etc/powergrad.conf etc/powergrad-budget.conf etc/grafana-powergrad.json
