// The Slurm node name of the slurmd this code runs in. Several slurmd may share a host
// (multiple-slurmd: `slurmd -N NAME`), so the host name alone is not enough.
#pragma once

#include <string>

namespace powergrad {

// From a slurmd command line (NUL-separated, as in /proc/self/cmdline): the value of
// `-N NAME` / `-NNAME`, or "" when absent.
std::string node_name_from_cmdline(const std::string &cmdline);

// This process's node name: the -N option of its command line, else the short host name.
std::string this_slurmd_node_name();

// A Slurm node name that is safe to put into a path (state_dir's %n): 1 to 64 characters
// of [A-Za-z0-9._-], not starting with '.' or '-' (so never "." or ".."), no '/'. Returns
// "" or why not.
std::string node_name_problem(const std::string &name);

// slurmstepd's node name from the trusted source only: SLURMD_NODENAME in slurmstepd's own
// process environment, which slurmstepd sets from the configuration slurmd hands it (its
// -N name, or slurm.conf's NodeName for this host) before any plugin runs. Never the job's
// environment (spank_getenv, S_JOB_ENV): the user chooses that one. `env_value` is
// getenv("SLURMD_NODENAME") (nullptr when unset); falls back to this_slurmd_node_name().
std::string stepd_node_name(const char *env_value);

}  // namespace powergrad
