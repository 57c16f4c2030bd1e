// slurmd (SPANK slurmd context, root). Slurm 22.05 never calls slurm_spank_slurmd_init:
// slurm_spank_init in this context is the start hook, slurm_spank_slurmd_exit the stop hook.
// The node agent runs here as a thread for the daemon's life.
#include <memory>
#include <string>

#include "nodeagent/agent.hpp"
#include "spank_powergrad/node_name.hpp"
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

}  // namespace

int slurmd_init(spank_t /*sp*/) {
  const PluginConfig &c = spank_state().config;
  const std::string node = this_slurmd_node_name();
  log_info("loaded in slurmd on node %s (default_mode=%s)", node.c_str(),
           mode_name(c.default_mode));
  AgentConfig ac;
  ac.node_name = node;
  ac.state_dir = expand_node_tokens(c.state_dir, node);
  ac.period_s = c.period_s;
  ac.procfs_root = c.procfs_root;
  PowerControlConfig pc;
  pc.sysfs_root = expand_node_tokens(c.sysfs_root, node);
  pc.counters = c.counters;
  pc.emulate_path = expand_node_tokens(c.emulate_path, node);
  pc.grant_w = c.grant_w;
  pc.floor_w = c.floor_w;
  agent = std::make_unique<NodeAgent>(ac, agent_log, pc);
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
