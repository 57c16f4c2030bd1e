// slurmd (SPANK slurmd context, root), in the agent's module powergrad_agent.so
// (agent_module.hpp), which the thin plugin loads in slurmd only. Slurm 22.05 never calls
// slurm_spank_slurmd_init: slurm_spank_init in this context is the start hook,
// slurm_spank_slurmd_exit the stop hook. The node agent runs here as a thread for the daemon's
// life, in the process that serves.
//
// Slurm up to 24.05 runs the plugins' init in slurmd's first process and only then
// daemonizes (slurmd.c: _slurmd_init(), then xdaemon() unless -D), and threads do not
// survive fork(): an agent started here would be lost. So when slurmd will daemonize, the
// agent starts in the daemon, from a fork handler that recognises xdaemon()'s second child.
// 24.11 and later daemonize before the plugins' init: the agent starts at once there.
#include <dlfcn.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <slurm/slurm_version.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nodeagent/agent.hpp"
#include "protocol/mac.hpp"
#include "spank_powergrad/agent_module.hpp"
#include "spank_powergrad/node_name.hpp"
#include "spank_powergrad/slurm_conf.hpp"
#include "spank_powergrad/slurmd_args.hpp"
#include "spank_powergrad/spank_glue.hpp"

namespace powergrad {

namespace {

std::unique_ptr<NodeAgent> agent;

constexpr bool kInitBeforeDaemonize = SLURM_VERSION_NUMBER < SLURM_VERSION_NUM(24, 11, 0);

// What the agent needs to start; kept until slurmd has daemonized.
struct AgentSetup {
  AgentConfig agent;
  PowerControlConfig power;
  std::optional<ControllerLinkConfig> link;
};
std::optional<AgentSetup> pending;
pid_t first_pid = 0;  // slurmd's process that ran the init
bool fork_handler_registered = false;

void agent_log(AgentLogLevel level, const std::string &msg) {
  switch (level) {
    case AgentLogLevel::error:
      log_error("%s", msg.c_str());
      break;
    case AgentLogLevel::info:
      log_info("%s", msg.c_str());
      break;
    case AgentLogLevel::debug:
      log_debug("%s", msg.c_str());
      break;
  }
}

// The controller link's settings from controller= and slurm.conf; nullopt for none (then
// `why` says so when it is not the admin's choice).
std::optional<ControllerLinkConfig> controller_link(const PluginConfig &c, std::string &why) {
  if (c.controller == "none") {
    why = "controller=none";
    return std::nullopt;
  }
  SlurmConfFacts facts;
  const std::string path = slurm_conf_path();
  const std::string err = read_slurm_conf(path, facts);
  ControllerLinkConfig lc;
  if (!c.controller.empty()) {
    split_host_port(c.controller, lc.host, lc.port);  // checked when the arguments were parsed
  } else if (!err.empty() || facts.ctld_host.empty()) {
    why = "no controller= argument and no SlurmctldHost in " + path +
          (err.empty() ? std::string() : " (" + err + ")");
    return std::nullopt;
  } else {
    lc.host = facts.ctld_host;
    lc.port = kDefaultControllerPort;
  }
  // The controller runs in slurmctld: as root or as SlurmUser.
  lc.controller_uids.push_back(0);
  if (!facts.slurm_user.empty() && facts.slurm_user != "root") {
    struct passwd pw, *found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwnam_r(facts.slurm_user.c_str(), &pw, buf.data(), buf.size(), &found) == 0 &&
        found != nullptr) {
      lc.controller_uids.push_back(found->pw_uid);
    } else {
      log_error("SlurmUser %s in %s is not a known user: only root is trusted as the controller",
                facts.slurm_user.c_str(), path.c_str());
    }
  }
  return lc;
}

void start_agent(const AgentSetup &s) {
  // Before the agent's first MAC: should slurmd end in exit() without the stop hook (a
  // fatal error), libcrypto must not be torn down under the agent's thread (protocol/mac.hpp).
  if (s.link) {
    std::string crypto_error;
    if (!proto::init_crypto_for_exit(crypto_error))
      log_error("libcrypto: %s (slurmd's exit may race the node agent)", crypto_error.c_str());
  }
  agent = std::make_unique<NodeAgent>(s.agent, agent_log, s.power, s.link);
  const std::string err = agent->start();
  if (!err.empty()) {
    // slurmd keeps running and jobs run unsteered: caps stay as the admin set them.
    log_error("node agent not started on %s: %s; power management is off on this node",
              s.agent.node_name.c_str(), err.c_str());
    agent.reset();
  }
}

// The forking process, as the fork handlers see it: recorded in the parent just before each
// fork(), read in the child (which has a copy of the parent's memory).
pid_t forking_pid = 0;
bool forking_leads_session = false;
void before_fork() {
  forking_pid = ::getpid();
  forking_leads_session = ::getsid(0) == forking_pid;
}

// Whether slurmd's first process has exited (a zombie counts as exited): xdaemon()'s first
// parent leaves at once.
bool first_process_gone() {
  if (::kill(first_pid, 0) != 0) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", static_cast<long>(first_pid));
  FILE *f = std::fopen(path, "r");
  if (!f) return true;
  char buf[512];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char *paren = std::strrchr(buf, ')');
  return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

// Runs in the child of every fork() of slurmd while the agent waits to start. xdaemon()
// forks, the first process exits, its child calls setsid() and forks again, and that second
// child serves: a child of a session leader other than slurmd's first process, which is gone.
// (slurmd forks the same way to launch slurmstepd, but only from the daemon, where nothing
// is pending any more.) The process forking here is single-threaded: no agent runs yet.
void start_after_daemonize() {
  if (!pending || !forking_leads_session || forking_pid == first_pid) return;
  try {
    // The first process is about to exit (it returned from fork() into _exit()); if it still
    // runs after a second, this is no daemonizing slurmd.
    bool gone = false;
    for (int i = 0; i < 100 && !(gone = first_process_gone()); ++i) ::usleep(10000);
    if (!gone) {
      log_error(
          "not starting the node agent in pid %ld: slurmd's first process %ld still runs "
          "(was slurmd started in the foreground? start it with -D)",
          static_cast<long>(::getpid()), static_cast<long>(first_pid));
      return;
    }
    const AgentSetup s = std::move(*pending);
    pending.reset();
    log_info("slurmd daemonized (pid %ld): starting the node agent on %s",
             static_cast<long>(::getpid()), s.agent.node_name.c_str());
    start_agent(s);
  } catch (const std::exception &e) {  // nothing may escape into slurmd's fork()
    agent.reset();
    log_error("node agent not started after slurmd daemonized: %s", e.what());
  } catch (...) {
    agent.reset();
    log_error("node agent not started after slurmd daemonized");
  }
}

// The fork handler must outlive a dlclose() of this plugin: keep the library mapped.
void pin_plugin_in_memory() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void *>(&start_after_daemonize), &info) && info.dli_fname)
    (void)::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

}  // namespace

int agent_slurmd_init(spank_t /*sp*/) {
  const PluginConfig &c = spank_state().config;
  const std::string node = this_slurmd_node_name();
  log_info("loaded in slurmd on node %s (default_mode=%s)", node.c_str(),
           to_string(c.default_mode));
  // The node name goes into paths root works in (%n): only a name Slurm could give.
  std::string why;
  const std::optional<std::string> state_dir = expand_node_path(c.state_dir, node, &why);
  const std::optional<std::string> sysfs_root = expand_node_path(c.sysfs_root, node, &why);
  const std::optional<std::string> emulate = c.emulate_path.empty()
                                                 ? std::optional<std::string>("")
                                                 : expand_node_path(c.emulate_path, node, &why);
  if (!state_dir || !sysfs_root || !emulate) {
    log_error("node agent not started: %s; power management is off on this node", why.c_str());
    return 0;
  }
  AgentConfig ac;
  ac.node_name = node;
  ac.state_dir = *state_dir;
  ac.period_s = c.period_s;
  ac.procfs_root = c.procfs_root;
  std::string no_controller;
  std::optional<ControllerLinkConfig> link = controller_link(c, no_controller);
  if (!link) {
    log_info("node agent on %s works without a controller (%s): static grant only", node.c_str(),
             no_controller.c_str());
  }
  PowerControlConfig pc;
  pc.sysfs_root = *sysfs_root;
  pc.counters = c.counters;
  pc.emulate_path = *emulate;
  pc.grant_w = c.grant_w;
  pc.floor_w = c.floor_w;
  pc.low_cap_knee = c.low_cap_knee;
  pc.low_cap_slowdown = c.low_cap_slowdown;
  pc.load_spread_k = c.load_spread;
  pc.top_clock_min_busy = c.top_clock_busy;
  pc.plain_beside_weight = c.plain_beside;
  AgentSetup setup{ac, pc, link};
  if (kInitBeforeDaemonize && !slurmd_stays_in_foreground(own_cmdline())) {
    pending = std::move(setup);
    first_pid = ::getpid();
    if (!fork_handler_registered) {
      pin_plugin_in_memory();
      if (::pthread_atfork(before_fork, nullptr, start_after_daemonize) != 0) {
        log_error(
            "cannot register a fork handler: the node agent on %s starts now and is lost "
            "if slurmd daemonizes (start slurmd with -D)",
            node.c_str());
        start_agent(*pending);
        pending.reset();
        return 0;
      }
      fork_handler_registered = true;
    }
    log_info("slurmd on %s will daemonize (no -D): the node agent starts in the daemon",
             node.c_str());
    return 0;
  }
  start_agent(setup);
  return 0;
}

int agent_slurmd_exit(spank_t /*sp*/) {
  pending.reset();
  if (agent) {
    agent->stop();
    agent.reset();
  }
  log_info("slurmd on node %s stopping", this_slurmd_node_name().c_str());
  return 0;
}

}  // namespace powergrad
