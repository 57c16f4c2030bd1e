// srun, sbatch and salloc (SPANK local and allocator contexts, as the user): the
// --power-aware option is registered and validated here, and the choice is put into the
// job's control environment, where slurmctld (job record) and prolog/epilog see it.
#include <cstring>

#include "spank_powergrad/spank_glue.hpp"

namespace powergrad {

namespace {

// Called by Slurm while it parses options: here in srun/sbatch/salloc with remote == 0, and
// again in slurmstepd with remote == 1 (twice there). Returns nonzero to reject the value.
int power_aware_cb(int /*val*/, const char *optarg, int remote) {
  SpankState &st = spank_state();
  ModeParse m = parse_job_mode(optarg, valueless_mode(st.config.default_mode));
  if (!m.mode) {
    if (remote) {
      // srun/sbatch validated it already; a value that still fails here came from an
      // incompatible client. Never fail a job over it: run it unsteered.
      log_error("%s; running this step without power management", m.error.c_str());
      st.mode = JobMode::off;
      return 0;
    }
    log_error("%s", m.error.c_str());
    return -1;
  }
  st.mode = m.mode;
  return 0;
}

char opt_name[] = "power-aware";
char opt_arginfo[] = "MODE";
char opt_usage[] =
    "Run under PowerGrad power management. MODE: latency (default: a latency-sensitive "
    "service), throughput (batch work), monitor (measure and report only), off.";

struct spank_option power_aware_option = {opt_name, opt_arginfo, opt_usage, 2, 0, power_aware_cb};

}  // namespace

int register_power_aware_option(spank_t sp) {
  const spank_err_t rc = spank_option_register(sp, &power_aware_option);
  if (rc != ESPANK_SUCCESS) {
    log_error("cannot register --%s: %s", opt_name, spank_strerror(rc));
    return -1;
  }
  return 0;
}

int client_init(spank_t sp) { return register_power_aware_option(sp); }

int client_init_post_opt(spank_t sp) {
  // No --power-aware: the admin's default_mode (off unless every job is power-aware).
  const JobMode mode = job_mode(spank_state());
  if (mode == JobMode::off) return 0;
  // A new allocation carries the mode to slurmctld; inside an existing allocation this is
  // refused by Slurm for the job (the step still gets the option on the nodes), which is fine.
  const spank_err_t rc = spank_job_control_setenv(sp, "POWERGRAD", to_string(mode), 1);
  if (rc != ESPANK_SUCCESS && rc != ESPANK_NOT_AVAIL) {
    log_debug("job control environment not set: %s", spank_strerror(rc));
  }
  return 0;
}

}  // namespace powergrad
