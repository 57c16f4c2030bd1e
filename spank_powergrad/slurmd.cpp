// slurmd (SPANK slurmd context, root). Slurm 22.05 never calls slurm_spank_slurmd_init:
// slurm_spank_init in this context is the start hook, slurm_spank_slurmd_exit the stop hook.
#include "spank_powergrad/node_name.hpp"
#include "spank_powergrad/spank_glue.hpp"

namespace powergrad {

int slurmd_init(spank_t /*sp*/) {
  const PluginConfig &c = spank_state().config;
  log_info("loaded in slurmd on node %s (default_mode=%s)", this_slurmd_node_name().c_str(),
           mode_name(c.default_mode));
  return 0;
}

int slurmd_exit(spank_t /*sp*/) {
  log_info("slurmd on node %s stopping", this_slurmd_node_name().c_str());
  return 0;
}

}  // namespace powergrad
