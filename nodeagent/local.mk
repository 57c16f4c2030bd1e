# The node agent's Slurm-free parts: step events from slurmstepd, the registry of steps on
# the node, and the root-only Unix socket between them.
noinst_LTLIBRARIES += nodeagent/libnodeagent.la
nodeagent_libnodeagent_la_SOURCES = \
	nodeagent/step_event.cpp nodeagent/step_event.hpp \
	nodeagent/step_registry.cpp nodeagent/step_registry.hpp \
	nodeagent/step_channel.cpp nodeagent/step_channel.hpp \
	nodeagent/agent_socket.cpp nodeagent/agent_socket.hpp \
	nodeagent/agent.cpp nodeagent/agent.hpp nodeagent/agent_log.hpp \
	nodeagent/job_energy.cpp nodeagent/job_energy.hpp \
	nodeagent/emulation_specs.cpp nodeagent/emulation_specs.hpp \
	nodeagent/power_control.cpp nodeagent/power_control.hpp \
	nodeagent/controller_link.cpp nodeagent/controller_link.hpp
nodeagent_libnodeagent_la_CPPFLAGS = $(AM_CPPFLAGS) $(MUNGE_CFLAGS) $(CRYPTO_CFLAGS)
# The controller link speaks the protocol: its library comes with the agent's.
nodeagent_libnodeagent_la_LIBADD = protocol/libpgproto.la $(MUNGE_LIBS) $(CRYPTO_LIBS)
