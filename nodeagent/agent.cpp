#include "nodeagent/agent.hpp"

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "hardware/snapshot_file.hpp"
#include "hardware/sysfs_file.hpp"
#include "nodeagent/step_channel.hpp"

namespace powergrad {

std::string step_socket_path(const std::string &state_dir) {
  return state_dir + "/" + kStepSocketFile;
}

std::string steps_file_path(const std::string &state_dir) { return state_dir + "/" + kStepsFile; }

std::optional<std::uint64_t> pid_start_ticks(const std::string &procfs_root, pid_t pid) {
  std::ifstream f(procfs_root + "/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return std::nullopt;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // After the command: state is field 3, starttime field 22.
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
    if (i == 3 && (field == "Z" || field == "X")) return std::nullopt;
  }
  std::uint64_t ticks = 0;
  for (char c : field) {
    if (c < '0' || c > '9') return std::nullopt;
    ticks = ticks * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return ticks;
}

hw::Result<hw::SecureDir> open_state_dir(const std::string &dir) {
  hw::SecureDirOptions opt;
  opt.create = true;
  opt.parent_mode = 0755;
  opt.dir_mode = 0700;
  opt.private_dir = true;
  hw::Result<hw::SecureDir> d = hw::SecureDir::open(dir, opt);
  if (!d.ok())
    return hw::Error{"state folder '" + dir + "' refused: " + d.message(), d.errno_value()};
  return d;
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

namespace {

double wall_now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The controller's host as a numeric address, so that connection attempts never wait on
// DNS in the agent's loop (the resolver is asked once, here, on the agent thread). Returns
// the host unchanged when it cannot be resolved now: the endpoint tries again per attempt.
std::string numeric_host(const std::string &host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return host;
  char buf[NI_MAXHOST];
  std::string out = host;
  if (::getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) ==
      0)
    out = buf;
  ::freeaddrinfo(res);
  return out;
}

}  // namespace

NodeAgent::NodeAgent(AgentConfig config, AgentLog log, std::optional<PowerControlConfig> power,
                     std::optional<ControllerLinkConfig> controller,
                     std::shared_ptr<proto::Authenticator> auth)
    : config_(std::move(config)),
      // Two threads log: one line at a time, whatever the host's function does.
      log_([inner = std::move(log), mu = std::make_shared<std::mutex>()](AgentLogLevel level,
                                                                         const std::string &msg) {
        std::lock_guard<std::mutex> g(*mu);
        if (inner) inner(level, msg);
      }),
      power_config_(std::move(power)),
      controller_(std::move(controller)),
      auth_(std::move(auth)) {}

NodeAgent::~NodeAgent() { stop(); }

std::string NodeAgent::start() {
  if (running()) return "";
  hw::Result<hw::SecureDir> dir = open_state_dir(config_.state_dir);
  if (!dir.ok()) return dir.message();
  auto state = std::make_shared<const hw::SecureDir>(std::move(dir.value()));
  auto server = std::make_unique<StepChannelServer>(
      StepChannelServer::open(state->fd_path(kStepSocketFile), ::geteuid()));
  if (!server->ok()) {
    return "cannot open the step socket " + step_socket_path(config_.state_dir) + ": " +
           server->error();
  }
  state_ = state;
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return std::string("eventfd: ") + std::strerror(errno);
  work_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (work_fd_ < 0) {
    const int eventfd_errno = errno;
    ::close(wake_fd_);
    wake_fd_ = -1;
    return std::string("eventfd: ") + std::strerror(eventfd_errno);
  }
  server_ = std::move(server);
  // Rises with every start: the controller orders this agent's reports by it.
  const double started_at_s = wall_now_s();
  const auto incarnation = static_cast<std::uint64_t>(started_at_s * 1e6);
  if (power_config_ && !power_) {
    PowerControlConfig pc = *power_config_;
    pc.node_name = config_.node_name;
    pc.state_dir = config_.state_dir;
    pc.state = state_;
    pc.procfs_root = config_.procfs_root;
    pc.incarnation = incarnation;
    pc.started_at_s = started_at_s;
    // A node that reports to a controller is in its budget until the controller says not.
    if (controller_) pc.management = NodeManagement::controller;
    power_ = std::make_unique<PowerControl>(pc, log_);
  }
  if (controller_ && !auth_) {
    auth_ = std::make_shared<proto::MungeAuthenticator>(proto::munge_socket_from_env());
  }
  if (controller_) {
    controller_->node_name = config_.node_name;
    controller_->incarnation = incarnation;
  }
  try {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "pg-agent");  // in slurmd's top -H and ps -T
      run();
    });
  } catch (const std::exception &e) {
    server_.reset();
    ::close(wake_fd_);
    ::close(work_fd_);
    wake_fd_ = work_fd_ = -1;
    return std::string("cannot start the agent thread: ") + e.what();
  }
  try {
    channel_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "pg-steps");
      serve_steps();
    });
  } catch (const std::exception &e) {
    stop();
    return std::string("cannot start the step channel thread: ") + e.what();
  }
  return "";
}

void NodeAgent::stop() {
  if (thread_.joinable() || channel_thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    if (channel_thread_.joinable()) channel_thread_.join();
    if (thread_.joinable()) thread_.join();
  }
  server_.reset();
  for (int *fd : {&wake_fd_, &work_fd_}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
}

void NodeAgent::serve_steps() {
  for (;;) {
    try {
      pollfd fds[2] = {{server_->fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      const int rc = ::poll(fds, 2, -1);
      if (rc < 0 && errno != EINTR) {
        log_(AgentLogLevel::error, std::string("step channel: poll: ") + std::strerror(errno));
        ::usleep(100000);
        continue;
      }
      if (rc > 0 && (fds[1].revents & POLLIN)) break;
      if (rc > 0 && (fds[0].revents & POLLIN)) handle_events();
    } catch (const std::exception &e) {
      log_(AgentLogLevel::error, std::string("step channel failed: ") + e.what());
    } catch (...) {
      log_(AgentLogLevel::error, "step channel failed");
    }
  }
}

std::vector<RegisteredStep> NodeAgent::take_new_jobs() {
  std::vector<std::uint32_t> jobs;
  std::vector<RegisteredStep> steps;
  uint64_t n = 0;
  (void)!::read(work_fd_, &n, sizeof n);  // reset the wake-up (non-blocking), then look
  {
    std::lock_guard<std::mutex> g(mu_);
    jobs.swap(new_jobs_);
    steps = registry_.steps();
  }
  if (power_) {
    for (std::uint32_t job : jobs) {
      try {
        power_->new_job(job, steps);
      } catch (const std::exception &ex) {
        log_(AgentLogLevel::error, std::string("restore before a new job failed: ") + ex.what());
      }
    }
  }
  return steps;
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
  guard("finding running steps", [this] { restore_steps(); });
  if (controller_) {
    guard("starting the controller link", [this] {
      ControllerLinkConfig lc = *controller_;
      lc.host = numeric_host(lc.host);
      log_(AgentLogLevel::info,
           "reporting to the controller at " + controller_->host + ":" + lc.port +
               (lc.host != controller_->host ? " (" + lc.host + ")" : std::string()));
      link_ = std::make_unique<ControllerLink>(lc, *auth_, log_);
      report_phase_ = std::make_unique<proto::ReportPhase>(
          config_.period_s > 0 ? config_.period_s : 1.0, config_.node_name);
    });
  }
  auto mono_s = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
  auto next = clock::now() + period_len;
  for (;;) {
    try {
      const auto now = clock::now();
      const auto wait_ms =
          next > now ? std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1
                     : 0;
      std::vector<pollfd> fds = {{work_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      int rc = 1;
      if (link_) {
        // The link's socket is polled with ours: the thread waits in one place only.
        for (const GrantMessage &g : link_->poll(mono_s(), static_cast<int>(wait_ms), &fds)) {
          grants_received_++;
          if (report_phase_) report_phase_->on_grant(mono_s());
          const std::string err = power_ ? power_->on_grant(g, wall_now_s()) : "no power control";
          if (!err.empty()) {
            log_(AgentLogLevel::info, "controller grant refused: " + err);
          } else if (std::optional<NodeReport> r = power_->take_urgent_report()) {
            // A drop was obeyed at once: confirm it now, so the controller can give the
            // watts to other nodes within the period.
            if (link_->send_report(*r)) reports_sent_++;
          }
        }
        controller_connected_ = link_->connected();
        if (std::optional<std::string> why = link_->take_not_managed()) {
          if (power_) power_->leave_management("the controller says: " + *why);
        }
      } else {
        rc = ::poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
      }
      if (rc > 0 && (fds[1].revents & POLLIN)) break;
      if (rc > 0 && (fds[0].revents & POLLIN)) take_new_jobs();
      if (clock::now() >= next) {
        period();
        persist_steps();
        if (power_) {
          // New jobs first: a step the period sees has had its job's start handled.
          const std::vector<RegisteredStep> steps_now = take_new_jobs();
          power_->period(steps_now, mono_s(), wall_now_s());
          // What the node can do, for `powergrad status`: sent once per session, and again
          // when it changes (a firmware clamp, a lock found at the first write).
          if (link_) {
            if (std::optional<NodeCapabilities> caps = power_->capabilities())
              link_->set_caps(*caps);
          }
          if (link_ && power_->last_report() && link_->send_report(*power_->last_report())) {
            reports_sent_++;
          }
        }
        next += period_len;
        // After a long stall (slurmd suspended, clock jump) do not run a burst of periods.
        if (next < clock::now()) next = clock::now() + period_len;
        if (report_phase_) align_period(next, t0, mono_s());
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

void NodeAgent::align_period(std::chrono::steady_clock::time_point &next,
                             std::chrono::steady_clock::time_point t0, double now_s) {
  const bool was = report_aligned_;
  report_aligned_ = report_phase_->aligned();
  if (report_aligned_ != was) {
    char lead[32];
    std::snprintf(lead, sizeof lead, "%.0f ms", report_phase_->lead_s() * 1e3);
    log_(AgentLogLevel::info,
         report_aligned_
             ? std::string("reports follow the controller's period: each leaves ") + lead +
                   " before its step"
             : std::string("the controller's grants no longer come on one period: reports keep "
                           "their own phase"));
  }
  const double planned = std::chrono::duration<double>(next - t0).count();
  const double moved = report_phase_->next(planned, now_s);
  if (moved != planned)
    next = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(moved));
}

void NodeAgent::handle_events() {
  // Applied while the stepd waits for the answer: it learns at once whether its task is
  // registered. Only the registry (in memory) is touched here.
  auto apply = [this](const StepEvent &e) -> std::string {
    std::lock_guard<std::mutex> g(mu_);
    bool first_of_job = false;
    if (e.op == StepOp::task_start) {
      first_of_job = true;
      for (const RegisteredStep &s : registry_.steps()) {
        if (s.job_id == e.job_id) first_of_job = false;
      }
      // Dead steps must not keep the admin's settings from coming back (new_job).
      if (first_of_job)
        registry_.reap([this](pid_t p) { return pid_alive(config_.procfs_root, p); });
    }
    std::string err = registry_.apply(e, static_cast<double>(periods_.load()) * config_.period_s);
    registry_dirty_ = true;
    if (err.empty() && first_of_job && power_) new_jobs_.push_back(e.job_id);
    return err;
  };
  bool queued = false;
  // 50 ms: a stepd sends its event right after connecting; a silent peer holds up the others
  // no longer than that.
  for (const ReceivedStepEvent &r : server_->drain(50, apply)) {
    if (!r.parse.event) {
      log_(AgentLogLevel::error, "refused step message: " + r.parse.error);
      continue;
    }
    const StepEvent &e = *r.parse.event;
    const std::string what = "job " + std::to_string(e.job_id) + "." + e.step;
    if (!r.applied_error.empty()) {
      log_(AgentLogLevel::error, what + ": " + r.applied_error);
    } else if (e.op == StepOp::task_start) {
      queued = true;
      log_(AgentLogLevel::info, what + " task pid " + std::to_string(e.pid) +
                                    " registered with the agent (mode=" + to_string(e.mode) + ")");
    } else {
      log_(AgentLogLevel::debug, what + ": " + to_string(e.op));
    }
  }
  if (queued) {
    const uint64_t one = 1;
    (void)!::write(work_fd_, &one, sizeof one);
  }
}

void NodeAgent::persist_steps() {
  std::string text;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!registry_dirty_) return;
    registry_dirty_ = false;
    text = StepRegistry::serialize(
        registry_.steps(), [this](pid_t p) { return pid_start_ticks(config_.procfs_root, p); });
  }
  const std::string path = steps_file_path(config_.state_dir);
  const hw::Status s = state_->write_file_atomic(kStepsFile, text, 0600);
  if (!s.ok()) {
    log_(AgentLogLevel::error, "cannot keep the running steps in " + path + ": " + s.message() +
                                   " (a restarted agent would not find them)");
  }
}

void NodeAgent::restore_steps() {
  const std::string path = steps_file_path(config_.state_dir);
  if (!state_->exists(kStepsFile)) return;
  auto text = state_->read_file(kStepsFile, 4 << 20);
  if (!text.ok()) {
    log_(AgentLogLevel::error,
         "cannot read the running steps of the earlier agent: " + text.message());
    return;
  }
  const RegistryFileParse parsed = parse_registry_file(text.value());
  if (!parsed.error.empty()) {
    log_(AgentLogLevel::error, path + ": " + parsed.error + "; running steps not taken over");
    return;
  }
  std::map<std::string, std::size_t> found;
  std::size_t gone = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (const SavedTask &t : parsed.tasks) {
      // The same PID with another start time is another process: not the step's task.
      const std::optional<std::uint64_t> ticks = pid_start_ticks(config_.procfs_root, t.start.pid);
      if (!ticks || *ticks != t.start_ticks) {
        ++gone;
        continue;
      }
      const std::string err = registry_.apply(t.start, 0.0);
      if (err.empty()) {
        ++found[std::to_string(t.start.job_id) + "." + t.start.step];
      } else {
        log_(AgentLogLevel::error, path + ": " + err);
      }
    }
    registry_dirty_ = true;  // the file now says what was found
  }
  std::string what;
  for (const auto &[key, tasks] : found)
    what += (what.empty() ? "" : ", ") + key + " (" + std::to_string(tasks) + " task(s))";
  log_(AgentLogLevel::info,
       "running steps of an earlier agent on " + config_.node_name + ": " +
           (found.empty() ? std::string("none") : what) +
           (gone ? "; " + std::to_string(gone) + " task(s) had ended" : std::string()) +
           (found.empty() ? "" : "; steered again from now"));
}

void NodeAgent::period() {
  std::vector<std::string> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    dropped = registry_.reap([this](pid_t p) { return pid_alive(config_.procfs_root, p); });
    if (!dropped.empty()) registry_dirty_ = true;
  }
  for (const std::string &key : dropped) {
    log_(AgentLogLevel::info, "job " + key + " unregistered: its processes are gone");
  }
  periods_++;
}

}  // namespace powergrad
