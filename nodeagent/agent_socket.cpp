#include "nodeagent/agent_socket.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "nodeagent/step_channel.hpp"

namespace powergrad {

std::vector<uid_t> agent_uids() {
  // Root, and slurmd's uid when it is not root. (Not {0, uid} then std::unique: GCC 12 warns
  // of a memmove out of bounds in that, falsely, at -O1 with -fsanitize=thread.)
  std::vector<uid_t> uids(1, 0);
  const uid_t me = ::getuid();
  if (me != 0) uids.push_back(me);
  return uids;
}

std::string agent_socket_problem(const hw::SecureDir &dir, const std::string &name,
                                 const std::vector<uid_t> &uids) {
  struct stat st {};
  const std::string where = dir.display(name);
  if (::fstatat(dir.fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return hw::errno_error(where, "no node agent socket", errno).message;
  }
  if (!S_ISSOCK(st.st_mode)) return "'" + where + "' is not a socket";
  if (std::find(uids.begin(), uids.end(), st.st_uid) == uids.end()) {
    return "'" + where + "' is owned by uid " + std::to_string(st.st_uid) +
           ", not by root or slurmd's uid";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return "'" + where + "' is writable by group or others (mode " + mode + ")";
  }
  return "";
}

std::string send_step_event_checked(const std::string &state_dir, const StepEvent &event,
                                    int timeout_ms) {
  const std::vector<uid_t> uids = agent_uids();
  hw::SecureDirOptions opt;
  opt.trusted_uids = uids;
  hw::Result<hw::SecureDir> dir = hw::SecureDir::open(state_dir, opt);
  if (!dir.ok()) return "state folder " + state_dir + " refused: " + dir.message();
  const std::string problem = agent_socket_problem(dir.value(), kStepSocketFile, uids);
  if (!problem.empty()) return problem;
  return send_step_event(dir.value().fd_path(kStepSocketFile), event, timeout_ms);
}

}  // namespace powergrad
