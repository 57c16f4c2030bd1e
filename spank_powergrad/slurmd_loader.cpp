// slurmd (SPANK slurmd context) in the thin plugin: loads the node agent's module,
// powergrad_agent.so, from the folder this plugin was loaded from, and hands it the hooks.
// A module that is missing, unloadable or of another build leaves the node unmanaged with
// one error line; slurmd keeps running.
#include <dlfcn.h>

#include <cstring>
#include <string>

#include "spank_powergrad/agent_module.hpp"
#include "spank_powergrad/spank_glue.hpp"

namespace powergrad {

namespace {

AgentHook module_exit = nullptr;

// The module's path: this plugin's own folder (dladdr), as Slurm found the plugin there.
std::string module_path() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void *>(&module_path), &info) == 0 || !info.dli_fname) {
    return kAgentModuleFile;  // then the dynamic loader's search path
  }
  std::string self = info.dli_fname;
  const std::size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) +
         kAgentModuleFile;
}

}  // namespace

int slurmd_init(spank_t sp, int ac, char **av) {
  const std::string path = module_path();
  // Never unloaded: the agent's threads and fork handlers live in it (RTLD_NODELETE).
  void *handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!handle) {
    const char *why = ::dlerror();
    log_error(
        "node agent not started: cannot load %s: %s; power management is off on this "
        "node",
        path.c_str(), why ? why : "unknown error");
    return 0;
  }
  const auto *build = static_cast<const char *>(::dlsym(handle, kAgentBuildSymbol));
  auto init = reinterpret_cast<AgentHook>(::dlsym(handle, kAgentInitSymbol));
  auto exit = reinterpret_cast<AgentHook>(::dlsym(handle, kAgentExitSymbol));
  if (!build || std::strcmp(build, PG_AGENT_MODULE_BUILD) != 0 || !init || !exit) {
    log_error(
        "node agent not started: %s is of another build (%s) than this plugin (%s): "
        "install both from one build; power management is off on this node",
        path.c_str(), build ? build : "no build mark", PG_AGENT_MODULE_BUILD);
    return 0;
  }
  module_exit = exit;
  return init(sp, ac, av);
}

int slurmd_exit(spank_t sp, int ac, char **av) {
  if (!module_exit) return 0;
  const int rc = module_exit(sp, ac, av);
  module_exit = nullptr;
  return rc;
}

}  // namespace powergrad
