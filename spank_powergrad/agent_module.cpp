// powergrad_agent.so's entry points (see agent_module.hpp). The arguments are parsed again
// here, into this module's own state: the thin plugin has already refused bad ones.
#include "spank_powergrad/agent_module.hpp"

#include <string>
#include <vector>

#include "spank_powergrad/spank_glue.hpp"

extern "C" {
extern const char powergrad_agent_build[];
const char powergrad_agent_build[] = PG_AGENT_MODULE_BUILD;
int powergrad_agent_slurmd_init(spank_t sp, int ac, char **av);
int powergrad_agent_slurmd_exit(spank_t sp, int ac, char **av);
}

namespace {

bool parse_args(int ac, char **av) {
  std::vector<std::string> args;
  for (int i = 0; i < ac; ++i) args.emplace_back(av[i] ? av[i] : "");
  powergrad::ConfigParse parsed = powergrad::parse_plugin_args(args);
  if (!parsed.ok()) {
    for (const std::string &e : parsed.errors) powergrad::log_error("%s", e.c_str());
    return false;
  }
  powergrad::spank_state().config = parsed.config;
  return true;
}

}  // namespace

int powergrad_agent_slurmd_init(spank_t sp, int ac, char **av) {
  // slurmd keeps running whatever happens here: the node then runs unmanaged.
  return powergrad::guarded_soft("slurmd init", [&]() -> int {
    if (!parse_args(ac, av)) {
      powergrad::log_error("node agent not started: bad arguments; power management is off");
      return 0;
    }
    return powergrad::agent_slurmd_init(sp);
  });
}

int powergrad_agent_slurmd_exit(spank_t sp, int /*ac*/, char ** /*av*/) {
  return powergrad::guarded_soft("slurmd exit",
                                 [&]() -> int { return powergrad::agent_slurmd_exit(sp); });
}
