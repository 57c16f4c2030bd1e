#include "nodeagent/step_channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace powergrad {

namespace {

std::string errno_text(const std::string &what, int err) {
  return what + ": " + std::strerror(err);
}

bool make_address(const std::string &path, sockaddr_un &addr, std::string &error) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    error = "socket path '" + path + "' is empty or longer than " +
            std::to_string(sizeof addr.sun_path - 1) + " bytes";
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  return rc > 0 && (p.revents & events);
}

void answer(int fd, const std::string &text) {
  // A peer that went away is no concern of ours: MSG_NOSIGNAL keeps SIGPIPE out of slurmd.
  (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

StepChannelServer StepChannelServer::open(const std::string &path, uid_t allowed_uid) {
  StepChannelServer s;
  s.path_ = path;
  s.allowed_uid_ = allowed_uid;
  sockaddr_un addr;
  if (!make_address(path, addr, s.error_)) return s;
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    s.error_ = errno_text("socket", errno);
    return s;
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      s.error_ = "'" + path + "' exists and is not a socket: not replacing it";
      return s;
    }
    // A socket someone still answers on belongs to a running agent (e.g. two slurmd on
    // one host with the same state_dir): never steal it. Otherwise it is stale.
    if (step_socket_in_use(path)) {
      s.error_ = "'" + path +
                 "' is in use by a running node agent (several slurmd with one state_dir? "
                 "put %n in state_dir)";
      return s;
    }
    ::unlink(path.c_str());
  }
  // Created 0600 from the start: no window in which others could connect.
  const mode_t old = ::umask(0177);
  const int rc = ::bind(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old);
  if (rc != 0) {
    s.error_ = errno_text("bind " + path, bind_errno);
    return s;
  }
  // Every task of a step registers at its launch: room for the tasks of a big node at once.
  if (::listen(fd.get(), 1024) != 0) {
    s.error_ = errno_text("listen " + path, errno);
    ::unlink(path.c_str());
    return s;
  }
  s.fd_ = std::move(fd);
  return s;
}

StepChannelServer::~StepChannelServer() {
  if (fd_) ::unlink(path_.c_str());
}

std::vector<ReceivedStepEvent> StepChannelServer::drain(int timeout_ms) {
  return drain(timeout_ms, Apply());
}

std::vector<ReceivedStepEvent> StepChannelServer::drain(int timeout_ms, const Apply &apply) {
  std::vector<ReceivedStepEvent> out;
  if (!fd_) return out;
  for (;;) {
    UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) break;  // EAGAIN: nothing more pending (or a transient error: next period)
    ReceivedStepEvent r;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      r.parse.error = errno_text("SO_PEERCRED", errno);
      out.push_back(r);
      continue;
    }
    r.peer_uid = cred.uid;
    r.peer_pid = cred.pid;
    if (cred.uid != allowed_uid_) {
      r.parse.error = "refused connection from uid " + std::to_string(cred.uid) + " (pid " +
                      std::to_string(cred.pid) + ")";
      // Drop its message unread: closing with unread data would reset the connection and
      // the peer would never see why it was refused.
      if (wait_for(c.get(), POLLIN, timeout_ms)) {
        char discard[kMaxStepEventBytes + 1];
        (void)::recv(c.get(), discard, sizeof discard, MSG_DONTWAIT);
      }
      answer(c.get(), "error: not allowed");
      out.push_back(r);
      continue;
    }
    if (!wait_for(c.get(), POLLIN, timeout_ms)) {
      r.parse.error = "no message within " + std::to_string(timeout_ms) + " ms";
      out.push_back(r);
      continue;
    }
    char buf[kMaxStepEventBytes + 1];
    const ssize_t n = ::recv(c.get(), buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
    if (n == 0) continue;  // connected and left without a word (a liveness probe)
    if (n < 0) {
      r.parse.error = errno_text("recv", errno);
    } else if (static_cast<size_t>(n) > kMaxStepEventBytes) {
      r.parse.error = "message of " + std::to_string(n) + " bytes is over the limit";
    } else {
      r.parse = parse_step_event(std::string(buf, static_cast<size_t>(n)));
    }
    if (r.parse.event && apply) r.applied_error = apply(*r.parse.event);
    answer(c.get(), !r.parse.event             ? "error: " + r.parse.error
                    : !r.applied_error.empty() ? "error: " + r.applied_error
                                               : std::string("ok"));
    out.push_back(r);
  }
  return out;
}

bool step_socket_in_use(const std::string &path) {
  sockaddr_un addr;
  std::string error;
  if (!make_address(path, addr, error)) return false;
  UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  return probe && ::connect(probe.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
}

std::string send_step_event(const std::string &path, const StepEvent &event, int timeout_ms) {
  sockaddr_un addr;
  std::string error;
  if (!make_address(path, addr, error)) return error;
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_text("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    // A full backlog gives EAGAIN on Unix sockets; an absent agent ENOENT/ECONNREFUSED.
    return errno_text("connect " + path, errno);
  }
  // Whoever listens must be root or slurmd's uid (our real uid): an "ok" from anyone else
  // would be believed by root.
  ucred server{};
  socklen_t len = sizeof server;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &server, &len) != 0)
    return errno_text("SO_PEERCRED " + path, errno);
  if (server.uid != 0 && server.uid != ::getuid()) {
    return "refused: the socket " + path + " is served by uid " + std::to_string(server.uid) +
           " (pid " + std::to_string(server.pid) + "), not by root or slurmd's uid";
  }
  const std::string msg = format_step_event(event);
  if (::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL) < 0) {
    // The agent may refuse (and close) before reading: its answer is still there to read.
    const int send_errno = errno;
    char buf[256];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n > 0) return std::string(buf, static_cast<size_t>(n));
    return errno_text("send", send_errno);
  }
  if (!wait_for(fd.get(), POLLIN, timeout_ms)) {
    return "no answer from the node agent within " + std::to_string(timeout_ms) + " ms";
  }
  char buf[256];
  const ssize_t n = ::recv(fd.get(), buf, sizeof buf - 1, 0);
  if (n < 0) return errno_text("recv", errno);
  const std::string reply(buf, static_cast<size_t>(n));
  return reply == "ok" ? "" : reply;
}

}  // namespace powergrad
