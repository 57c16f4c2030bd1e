# libpgcontroller: the cluster controller's Slurm-free parts (powergrad.conf, budget state,
# job records and power figures, the controller service loop). Linked by the controller
# plugin (slurmctld_powergrad/), the powergrad command (tools/) and the unit tests.
noinst_LTLIBRARIES += controller/libpgcontroller.la
# Slurm's hostlist functions (public API) come from libslurm in tests and tools, and from
# slurmctld itself when the plugin is loaded: this library does not link them.
controller_libpgcontroller_la_SOURCES = \
	controller/job_records.cpp controller/job_records.hpp \
	controller/ctld_config.cpp controller/ctld_config.hpp \
	controller/job_power.cpp controller/job_power.hpp \
	controller/budget_state.cpp controller/budget_state.hpp \
	controller/controller_service.cpp controller/controller_service.hpp \
	controller/service_metrics.cpp \
	controller/log_summary.cpp controller/log_summary.hpp \
	controller/listen_retry.cpp controller/listen_retry.hpp \
	controller/series_writer.cpp controller/series_writer.hpp
controller_libpgcontroller_la_CPPFLAGS = $(AM_CPPFLAGS) $(SLURM_CPPFLAGS)
controller_libpgcontroller_la_LIBADD = jobreport/libjobreport.la \
	protocol/libpgproto.la libgradient/libgradient.la \
	$(MUNGE_LIBS) $(CRYPTO_LIBS)
