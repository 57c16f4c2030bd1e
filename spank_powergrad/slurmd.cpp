// slurmd (SPANK slurmd context, root). Slurm 22.05 never calls slurm_spank_slurmd_init:
// slurm_spank_init in this context is the start hook, slurm_spank_slurmd_exit the stop hook.
// The node agent runs here as a thread for the daemon's life.
#include <pwd.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nodeagent/agent.hpp"
#include "spank_powergrad/node_name.hpp"
#include "spank_powergrad/slurm_conf.hpp"
#include "spank_powergrad/spank_glue.hpp"

namespace powergrad {

namespace {

std::unique_ptr<NodeAgent> agent;

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

}  // namespace

int slurmd_init(spank_t /*sp*/) {
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
  agent = std::make_unique<NodeAgent>(ac, agent_log, pc, link);
  const std::string err = agent->start();
  if (!err.empty()) {
    // slurmd keeps running and jobs run unsteered: caps stay as the admin set them.
    log_error("node agent not started on %s: %s; power management is off on this node",
              node.c_str(), err.c_str());
    agent.reset();
  }
  return 0;
}

int slurmd_exit(spank_t /*sp*/) {
  if (agent) {
    agent->stop();
    agent.reset();
  }
  log_info("slurmd on node %s stopping", this_slurmd_node_name().c_str());
  return 0;
}

}  // namespace powergrad
