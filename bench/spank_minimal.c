/* The least a SPANK plugin can be: one option, no work (bench/srun_overhead.sh builds it to
 * show what Slurm itself spends on having any SPANK plugin in plugstack.conf). */
#include <slurm/spank.h>

SPANK_PLUGIN(minimal, 1);

static int cb(int val, const char *optarg, int remote) { return 0; }

static struct spank_option opt = {"minimal-option", "MODE", "a do-nothing option", 2, 0, cb};

int slurm_spank_init(spank_t sp, int ac, char **av) {
  spank_context_t c = spank_context();
  if (c == S_CTX_LOCAL || c == S_CTX_ALLOCATOR || c == S_CTX_REMOTE)
    spank_option_register(sp, &opt);
  return 0;
}
