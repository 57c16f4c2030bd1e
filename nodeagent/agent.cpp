#include "nodeagent/agent.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "nodeagent/step_channel.hpp"

namespace powergrad {

std::string step_socket_path(const std::string &state_dir) { return state_dir + "/agent.sock"; }

std::string prepare_private_dir(const std::string &dir, uid_t owner) {
  if (dir.empty() || dir[0] != '/') return "state folder '" + dir + "' is not an absolute path";
  // Create missing parents 0755 and the folder itself 0700.
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    const std::string part = dir.substr(0, pos);
    const mode_t mode = pos == std::string::npos ? 0700 : 0755;
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) {
      return "cannot create '" + part + "': " + std::strerror(errno);
    }
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return "cannot stat '" + dir + "': " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "state folder '" + dir + "' is not a directory";
  if (st.st_uid != owner) {
    return "state folder '" + dir + "' is owned by uid " + std::to_string(st.st_uid) + ", not " +
           std::to_string(owner);
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return "state folder '" + dir + "' is writable by group or others";
  }
  return "";
}

bool pid_alive(const std::string &procfs_root, pid_t pid) {
  std::ifstream f(procfs_root + "/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  // The state follows the last ')' (the command name may contain anything).
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  const char state = line[close + 2];
  return state != 'Z' && state != 'X';
}

NodeAgent::NodeAgent(AgentConfig config, AgentLog log, std::optional<PowerControlConfig> power)
    : config_(std::move(config)), log_(std::move(log)), power_config_(std::move(power)) {}

NodeAgent::~NodeAgent() { stop(); }

std::string NodeAgent::start() {
  if (running()) return "";
  const std::string err = prepare_private_dir(config_.state_dir, ::geteuid());
  if (!err.empty()) return err;
  auto server = std::make_unique<StepChannelServer>(
      StepChannelServer::open(step_socket_path(config_.state_dir), ::geteuid()));
  if (!server->ok()) return server->error();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return std::string("eventfd: ") + std::strerror(errno);
  server_ = std::move(server);
  if (power_config_ && !power_) {
    PowerControlConfig pc = *power_config_;
    pc.node_name = config_.node_name;
    pc.state_dir = config_.state_dir;
    pc.procfs_root = config_.procfs_root;
    power_ = std::make_unique<PowerControl>(pc, log_);
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::exception &e) {
    server_.reset();
    ::close(wake_fd_);
    wake_fd_ = -1;
    return std::string("cannot start the agent thread: ") + e.what();
  }
  return "";
}

void NodeAgent::stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  server_.reset();
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
    wake_fd_ = -1;
  }
}

std::vector<JobEnergySummary> NodeAgent::job_summaries() const {
  return power_ ? power_->job_summaries() : std::vector<JobEnergySummary>{};
}

std::vector<RegisteredStep> NodeAgent::steps() const {
  std::lock_guard<std::mutex> g(mu_);
  return registry_.steps();
}

void NodeAgent::run() {
  using clock = std::chrono::steady_clock;
  const auto period_len = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(config_.period_s > 0 ? config_.period_s : 1.0));
  log_(AgentLogLevel::info, "node agent started on " + config_.node_name + " (state " +
                                config_.state_dir + ", period " + std::to_string(config_.period_s) +
                                " s)");
  const auto t0 = clock::now();
  auto guard = [this](const char *what, auto &&body) {
    try {
      body();
    } catch (const std::exception &e) {
      log_(AgentLogLevel::error, std::string(what) + " failed: " + e.what());
    } catch (...) {
      log_(AgentLogLevel::error, std::string(what) + " failed");
    }
  };
  if (power_) guard("restoring saved caps", [this] { power_->recover(); });
  auto next = clock::now() + period_len;
  for (;;) {
    try {
      const auto now = clock::now();
      const auto wait_ms =
          next > now ? std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1
                     : 0;
      pollfd fds[2] = {{server_->fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      const int rc = ::poll(fds, 2, static_cast<int>(wait_ms));
      if (rc > 0 && (fds[1].revents & POLLIN)) break;
      if (rc > 0 && (fds[0].revents & POLLIN)) handle_events();
      if (clock::now() >= next) {
        period();
        if (power_) {
          const double now_s = std::chrono::duration<double>(clock::now() - t0).count();
          power_->period(steps(), now_s);
        }
        next += period_len;
        // After a long stall (slurmd suspended, clock jump) do not run a burst of periods.
        if (next < clock::now()) next = clock::now() + period_len;
      }
    } catch (const std::exception &e) {
      log_(AgentLogLevel::error, std::string("agent period failed: ") + e.what());
    } catch (...) {
      log_(AgentLogLevel::error, "agent period failed");
    }
  }
  if (power_) guard("restoring caps at stop", [this] { power_->shutdown(); });
  log_(AgentLogLevel::info, "node agent on " + config_.node_name + " stopped");
}

void NodeAgent::handle_events() {
  for (const ReceivedStepEvent &r : server_->drain()) {
    if (!r.parse.event) {
      log_(AgentLogLevel::error, "refused step message: " + r.parse.error);
      continue;
    }
    const StepEvent &e = *r.parse.event;
    std::string err;
    {
      std::lock_guard<std::mutex> g(mu_);
      err = registry_.apply(e, static_cast<double>(periods_.load()) * config_.period_s);
    }
    const std::string what = "job " + std::to_string(e.job_id) + "." + e.step;
    if (!err.empty()) {
      log_(AgentLogLevel::error, what + ": " + err);
    } else if (e.op == StepOp::task_start) {
      log_(AgentLogLevel::info, what + " task pid " + std::to_string(e.pid) +
                                    " registered with the agent (mode=" + e.mode + ")");
    } else {
      log_(AgentLogLevel::debug, what + ": " + to_string(e.op));
    }
  }
}

void NodeAgent::period() {
  std::vector<std::string> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    dropped = registry_.reap([this](pid_t p) { return pid_alive(config_.procfs_root, p); });
  }
  for (const std::string &key : dropped) {
    log_(AgentLogLevel::info, "job " + key + " unregistered: its processes are gone");
  }
  periods_++;
}

}  // namespace powergrad
