// slurmstepd (SPANK remote context). One slurmstepd per job step and node; the hooks run
// as root except user_init (the user's euid). This is where a power-aware step becomes
// visible on the node: its tasks are logged now and registered with the node agent later.
#include <sys/types.h>

#include <cinttypes>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

extern "C" {
#include <slurm/slurm.h>
}

#include "nodeagent/agent_socket.hpp"
#include "spank_powergrad/node_name.hpp"
#include "spank_powergrad/spank_glue.hpp"

namespace powergrad {

namespace {

struct StepIdentity {
  uint32_t job_id = 0;
  uint32_t step_id = 0;
  std::string node;
};

std::string step_label(uint32_t step_id) {
  switch (step_id) {
    case SLURM_BATCH_SCRIPT:
      return "batch";
    case SLURM_EXTERN_CONT:
      return "extern";
    case SLURM_INTERACTIVE_STEP:
      return "interactive";
    default:
      return std::to_string(step_id);
  }
}

// This node's name, from slurmstepd itself: SLURMD_NODENAME in slurmstepd's own process
// environment (set from slurmd's configuration before plugins load; see node_name.hpp).
// Never from the job's environment (spank_getenv): a user could name another node there
// (SLURM_STEP_NODELIST=n2) and make this root process register its tasks with n2's agent,
// or put "../.." into state_dir's %n. Checked before use in a path (node_name_problem).
std::string step_node_name() { return stepd_node_name(std::getenv("SLURMD_NODENAME")); }

StepIdentity identify(spank_t sp) {
  StepIdentity id;
  spank_get_item(sp, S_JOB_ID, &id.job_id);
  spank_get_item(sp, S_JOB_STEPID, &id.step_id);
  id.node = step_node_name();
  return id;
}

bool steered() {
  const SpankState &st = spank_state();
  return job_mode(st) != JobMode::off;
}

// Tells the node agent about a task or the step's end. Every step registers, power-aware or
// not: plain jobs count toward the node's power, they are just never perturbed. A missing
// agent (not started, or PowerGrad off on this node) is logged once per step, never fatal.
void notify_agent(spank_t sp, const StepIdentity &id, StepOp op, pid_t pid) {
  static bool warned = false;
  StepEvent e;
  e.op = op;
  e.job_id = id.job_id;
  e.step = step_label(id.step_id);
  e.pid = pid;
  e.mode = job_mode(spank_state());
  std::string err;
  const std::optional<std::string> state_dir =
      expand_node_path(spank_state().config.state_dir, id.node, &err);
  if (state_dir) err = send_step_event_checked(*state_dir, e);
  if (!state_dir && !warned) {
    // Not a name Slurm gives: nothing of it goes into a path. Whatever the mode.
    warned = true;
    log_error("job %u.%s: %s: step runs unsteered", id.job_id, e.step.c_str(), err.c_str());
    return;
  }
  if (!err.empty() && !warned) {
    warned = true;
    // "error: ..." is the agent's own answer (it refused the task); anything else means no
    // answer came.
    const bool refused = err.compare(0, 7, "error: ") == 0;
    if (steered()) {
      log_error("job %u.%s on node %s: node agent %s (%s): step runs unsteered", id.job_id,
                e.step.c_str(), id.node.c_str(), refused ? "refused the task" : "unreachable",
                refused ? err.c_str() + 7 : err.c_str());
    } else {
      log_debug("node agent unreachable: %s", err.c_str());
    }
  }
}

}  // namespace

int stepd_init(spank_t sp) {
  // Registering here is what makes Slurm hand the option's value to this step.
  return register_power_aware_option(sp);
}

int stepd_user_init(spank_t sp) {
  if (!steered()) return 0;
  const StepIdentity id = identify(sp);
  uint32_t ntasks = 0;
  spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &ntasks);
  log_info("job %" PRIu32 ".%s on node %s: power-aware step, mode=%s, %" PRIu32 " local task(s)",
           id.job_id, step_label(id.step_id).c_str(), id.node.c_str(),
           to_string(job_mode(spank_state())), ntasks);
  return 0;
}

int stepd_task_post_fork(spank_t sp) {
  const StepIdentity id = identify(sp);
  pid_t pid = 0;
  uint32_t task = 0;
  spank_get_item(sp, S_TASK_PID, &pid);
  spank_get_item(sp, S_TASK_GLOBAL_ID, &task);
  if (pid > 1) notify_agent(sp, id, StepOp::task_start, pid);
  if (!steered()) return 0;
  log_info("job %" PRIu32 ".%s on node %s: task %" PRIu32 " pid %ld registered", id.job_id,
           step_label(id.step_id).c_str(), id.node.c_str(), task, static_cast<long>(pid));
  return 0;
}

int stepd_task_exit(spank_t sp) {
  const StepIdentity id = identify(sp);
  uint32_t task = 0;
  int status = 0;
  pid_t pid = 0;
  spank_get_item(sp, S_TASK_GLOBAL_ID, &task);
  spank_get_item(sp, S_TASK_EXIT_STATUS, &status);
  if (spank_get_item(sp, S_TASK_PID, &pid) == ESPANK_SUCCESS && pid > 1) {
    notify_agent(sp, id, StepOp::task_exit, pid);
  }
  if (!steered()) return 0;
  log_info("job %" PRIu32 ".%s on node %s: task %" PRIu32 " exited (status %d), unregistered",
           id.job_id, step_label(id.step_id).c_str(), id.node.c_str(), task, status);
  return 0;
}

int stepd_exit(spank_t sp) {
  const StepIdentity id = identify(sp);
  notify_agent(sp, id, StepOp::step_end, 0);
  if (!steered()) return 0;
  log_debug("job %" PRIu32 ".%s on node %s: step done", id.job_id, step_label(id.step_id).c_str(),
            id.node.c_str());
  return 0;
}

}  // namespace powergrad
