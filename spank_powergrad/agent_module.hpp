// The node agent lives in a module of its own, powergrad_agent.so, installed beside
// spank_powergrad.so. Only slurmd loads it (slurmd_loader.cpp, from slurm_spank_init in the
// slurmd context): srun, sbatch, salloc and every slurmstepd load the thin SPANK plugin
// alone, without the agent's code and its libraries (libpfm4, libmunge, libcrypto). Loading
// those cost every srun tens of milliseconds (issue 11; bench/srun_overhead.sh).
//
// The interface is C and small: the module gets the plugin's arguments as Slurm gave them
// and parses them itself, so no C++ object crosses between the two.
#pragma once

extern "C" {
#include <slurm/spank.h>
}

namespace powergrad {

constexpr const char *kAgentModuleFile = "powergrad_agent.so";

// What the two must agree on: changed whenever the hooks' meaning changes. The module
// exports it with the package version as `powergrad_agent_build`; the plugin refuses a
// module of another build.
#define PG_AGENT_MODULE_ABI "1"
#define PG_AGENT_MODULE_BUILD PG_PACKAGE_VERSION "/abi" PG_AGENT_MODULE_ABI

// The module's hooks: the slurmd context's slurm_spank_init and slurm_spank_slurmd_exit.
using AgentHook = int (*)(spank_t sp, int ac, char **av);
constexpr const char *kAgentInitSymbol = "powergrad_agent_slurmd_init";
constexpr const char *kAgentExitSymbol = "powergrad_agent_slurmd_exit";
constexpr const char *kAgentBuildSymbol = "powergrad_agent_build";

// In the module (slurmd.cpp): start and stop the node agent.
int agent_slurmd_init(spank_t sp);
int agent_slurmd_exit(spank_t sp);

}  // namespace powergrad
