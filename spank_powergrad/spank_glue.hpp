// Shared by the per-context files of the SPANK plugin: Slurm's header, the plugin's
// process-wide state, and logging with the plugin's prefix.
#pragma once

// spank.h declares some symbols outside its own extern "C" block.
extern "C" {
#include <slurm/spank.h>
}

#include <cstdarg>
#include <exception>
#include <optional>

#include "libgradient/job_mode.hpp"
#include "spank_powergrad/plugin_config.hpp"

namespace powergrad {

// One instance per process that loaded the plugin (srun, sbatch, salloc, slurmd or one
// slurmstepd). SPANK hooks run on one thread, so no lock.
struct SpankState {
  PluginConfig config;
  // The --power-aware choice seen in this process, if the option was given. The option
  // callback may run twice in slurmstepd, so it only ever overwrites this value.
  std::optional<JobMode> mode;
};

SpankState &spank_state();

// The job's mode: its --power-aware choice, or the plugin's default_mode without one.
inline JobMode job_mode(const SpankState &st) { return st.mode.value_or(st.config.default_mode); }

// Every message carries the "powergrad: " prefix. info() obeys log_level=quiet.
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Per-context handlers (one file each), called by the dispatch in plugin.cpp.
int client_init(spank_t sp);           // srun, sbatch, salloc
int client_init_post_opt(spank_t sp);  // srun, sbatch, salloc
int slurmd_init(spank_t sp, int ac, char **av);  // slurmd: loads the agent's module
int slurmd_exit(spank_t sp, int ac, char **av);  // slurmd
int stepd_init(spank_t sp);            // slurmstepd
int stepd_user_init(spank_t sp);       // slurmstepd
int stepd_task_post_fork(spank_t sp);  // slurmstepd, as root
int stepd_task_exit(spank_t sp);       // slurmstepd, as root
int stepd_exit(spank_t sp);            // slurmstepd

// Registers --power-aware[=MODE] in contexts where options exist.
int register_power_aware_option(spank_t sp);

// Runs a hook's body so that no exception ever crosses back into Slurm: a failure in
// PowerGrad must not take down slurmd, slurmstepd, srun or the user's job. -1 on failure.
template <typename F>
int guarded(const char *hook, F &&body) {
  try {
    return body();
  } catch (const std::exception &e) {
    log_error("%s: %s", hook, e.what());
  } catch (...) {
    log_error("%s: unknown failure", hook);
  }
  return -1;
}

// Failures after init must not fail the user's job: they degrade to "not steered".
template <typename F>
int guarded_soft(const char *hook, F &&body) {
  const int rc = guarded(hook, body);
  return rc < 0 ? 0 : rc;
}

}  // namespace powergrad
