// The only file that defines the slurm_spank_* hooks. Each hook forwards to the handler
// of the context it runs in, and no exception ever crosses back into Slurm: a failure in
// PowerGrad must not take down slurmd, slurmstepd, srun or the user's job.
#include <string>
#include <vector>

#include "spank_powergrad/spank_glue.hpp"

extern "C" {
// SPANK_PLUGIN() would give these internal linkage in C++; the loader needs them exported.
extern const char plugin_name[];
extern const char plugin_type[];
extern const unsigned int plugin_version;
const char plugin_name[] = "powergrad";
const char plugin_type[] = "spank";
const unsigned int plugin_version = SLURM_VERSION_NUMBER;
}

namespace {

using powergrad::guarded;
using powergrad::guarded_soft;

int parse_args(int ac, char **av) {
  std::vector<std::string> args;
  for (int i = 0; i < ac; ++i) args.emplace_back(av[i] ? av[i] : "");
  powergrad::ConfigParse parsed = powergrad::parse_plugin_args(args);
  for (const std::string &e : parsed.errors) powergrad::log_error("%s", e.c_str());
  if (!parsed.ok()) {
    powergrad::log_error("refusing to load: fix the arguments in plugstack.conf");
    return -1;
  }
  powergrad::spank_state().config = parsed.config;
  return 0;
}

}  // namespace

extern "C" {

int slurm_spank_init(spank_t sp, int ac, char **av) {
  return guarded("init", [&]() -> int {
    if (parse_args(ac, av) < 0) return -1;
    switch (spank_context()) {
      case S_CTX_LOCAL:
      case S_CTX_ALLOCATOR:
        return powergrad::client_init(sp);
      case S_CTX_SLURMD:
        return powergrad::slurmd_init(sp, ac, av);
      case S_CTX_REMOTE:
        return powergrad::stepd_init(sp);
      default:
        return 0;
    }
  });
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av) {
  return guarded("init_post_opt", [&]() -> int {
    switch (spank_context()) {
      case S_CTX_LOCAL:
      case S_CTX_ALLOCATOR:
        return powergrad::client_init_post_opt(sp);
      default:
        return 0;
    }
  });
}

int slurm_spank_user_init(spank_t sp, int ac, char **av) {
  return guarded_soft("user_init", [&]() -> int {
    return spank_context() == S_CTX_REMOTE ? powergrad::stepd_user_init(sp) : 0;
  });
}

int slurm_spank_task_post_fork(spank_t sp, int ac, char **av) {
  return guarded_soft("task_post_fork", [&]() -> int {
    return spank_context() == S_CTX_REMOTE ? powergrad::stepd_task_post_fork(sp) : 0;
  });
}

int slurm_spank_task_exit(spank_t sp, int ac, char **av) {
  return guarded_soft("task_exit", [&]() -> int {
    return spank_context() == S_CTX_REMOTE ? powergrad::stepd_task_exit(sp) : 0;
  });
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
  return guarded_soft("exit", [&]() -> int {
    return spank_context() == S_CTX_REMOTE ? powergrad::stepd_exit(sp) : 0;
  });
}

int slurm_spank_slurmd_exit(spank_t sp, int ac, char **av) {
  return guarded_soft("slurmd_exit", [&]() -> int { return powergrad::slurmd_exit(sp, ac, av); });
}

}  // extern "C"
