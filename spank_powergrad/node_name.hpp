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

}  // namespace powergrad
