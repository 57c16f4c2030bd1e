// What slurmd's command line says about daemonizing, read from /proc/self/cmdline. Free of
// Slurm so it is unit-tested on its own.
#pragma once

#include <string>
#include <vector>

namespace powergrad {

// Whether slurmd stays in the foreground: -D (any Slurm version) or --systemd (23.11 and
// later). Parsed as slurmd's getopt_long does: option arguments (-N n1, -f FILE, -Nn1, -L
// FILE, -d PATH, -n NICE, --conf FILE, --conf-server=HOST ...) are skipped, a cluster of
// short options such as -Dvvv counts, and nothing after "--" is an option.
bool slurmd_stays_in_foreground(const std::vector<std::string> &argv);

// This process's argv, from PROCFS/self/cmdline (empty if unreadable).
std::vector<std::string> own_cmdline(const std::string &procfs_root = "/proc");

}  // namespace powergrad
