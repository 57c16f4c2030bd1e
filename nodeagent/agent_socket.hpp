// slurmstepd's side of the step channel: finding the node agent's socket in state_dir
// without trusting anything a user could have placed on the way. slurmstepd runs as root
// and believes the agent's "ok": a socket that a user made (or a folder a user could swap)
// would let that user decide which steps root registers, and where.
//
// Before talking: every folder of state_dir must be root's (or slurmd's uid's) and not
// writable by group or others unless sticky (hardware/secure_dir.hpp); the socket itself a
// socket owned by root or slurmd's uid and not writable by group or others; it is reached
// through the opened folder's descriptor, and the peer that answers must run as root or
// slurmd's uid (SO_PEERCRED of the listening agent, checked by send_step_event). Anything
// else is refused with the reason; the caller logs it and the step runs unsteered.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "hardware/secure_dir.hpp"
#include "nodeagent/step_event.hpp"

namespace powergrad {

// The agent's socket in its state folder.
constexpr const char *kStepSocketFile = "agent.sock";

// Who may own the agent's folders and socket, and run the agent, as seen from this
// process: root and this process's real uid (slurmstepd's is slurmd's).
std::vector<uid_t> agent_uids();

// "" when `name` in `dir` is a socket owned by one of `uids` and not writable by group or
// others; else why not.
std::string agent_socket_problem(const hw::SecureDir &dir, const std::string &name,
                                 const std::vector<uid_t> &uids);

// Sends `event` to the node agent whose state folder is `state_dir` after the checks above;
// "" when the agent accepted it, else why not (refused checks name the folder or file).
std::string send_step_event_checked(const std::string &state_dir, const StepEvent &event,
                                    int timeout_ms = 200);

}  // namespace powergrad
