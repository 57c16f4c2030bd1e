// The local channel from slurmstepd to the node agent in slurmd: a Unix SOCK_SEQPACKET
// socket that only root may use. The socket file is created 0600 in a root-only folder, and
// every connection's peer credentials (SO_PEERCRED) are checked as well: a task of a user
// job can never register or unregister anything.
//
// One connection carries one StepEvent and its one-line answer ("ok" or "error: ...").
// Both sides use short time limits: a slow or absent agent must never hold up a stepd.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "nodeagent/step_event.hpp"
#include "posix/unique_fd.hpp"

namespace powergrad {

struct ReceivedStepEvent {
  StepEventParse parse;  // the event, or why it was refused (also: wrong peer uid)
  std::string applied_error;  // a valid event the receiver did not take (drain with apply)
  uid_t peer_uid = 0;
  pid_t peer_pid = 0;
};

class StepChannelServer {
 public:
  // Binds `path` (replacing a stale socket file there), mode 0600, listening, non-blocking.
  // Only `allowed_uid` (root in production; tests may pass their own uid) may talk to it.
  // On failure returns a server whose ok() is false and error() names the path and errno.
  static StepChannelServer open(const std::string &path, uid_t allowed_uid = 0);

  bool ok() const { return static_cast<bool>(fd_); }
  const std::string &error() const { return error_; }
  int fd() const { return fd_.get(); }  // poll() it for POLLIN
  const std::string &path() const { return path_; }

  // Accepts every pending connection, reads its event (waiting at most timeout_ms per
  // connection), answers it, and returns what was received. Refusals are returned too,
  // so the caller can log them; they have parse.event empty.
  std::vector<ReceivedStepEvent> drain(int timeout_ms = 100);
  // The same, but a valid event's answer is what `apply` says of it: "" (answered "ok") or
  // why it was not taken (answered "error: ..."), so the stepd knows at once. `apply` runs on
  // the calling thread before the answer is sent; events it refused have `applied_error` set.
  using Apply = std::function<std::string(const StepEvent &)>;
  std::vector<ReceivedStepEvent> drain(int timeout_ms, const Apply &apply);

  StepChannelServer(StepChannelServer &&) = default;
  StepChannelServer &operator=(StepChannelServer &&) = default;
  ~StepChannelServer();

 private:
  StepChannelServer() = default;
  UniqueFd fd_;
  std::string path_;
  std::string error_;
  uid_t allowed_uid_ = 0;
};

// Sends one event to the agent at `path` and waits at most timeout_ms for its answer.
// Returns "" when the agent accepted it, else the reason (agent absent, refused, timed out).
// Whether a node agent answers on the socket at `path` (a stale socket file does not).
bool step_socket_in_use(const std::string &path);

// The listening peer must run as root or as this process's real uid (SO_PEERCRED):
// anything else is refused unasked. slurmstepd uses send_step_event_checked
// (agent_socket.hpp), which also checks the folders and the socket file first.
std::string send_step_event(const std::string &path, const StepEvent &event, int timeout_ms = 200);

}  // namespace powergrad
