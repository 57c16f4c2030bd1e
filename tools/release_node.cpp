#include "tools/release_node.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "nodeagent/agent.hpp"
#include "nodeagent/power_control.hpp"
#include "nodeagent/step_channel.hpp"

namespace powergrad {

namespace {

bool exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

int release_node(int argc, char **argv) {
  PowerControlConfig pc;
  pc.management = NodeManagement::local;
  pc.state_dir = "/run/powergrad";
  pc.node_name = "this node";
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::string("release-node: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--state-dir") {
      pc.state_dir = value();
    } else if (a == "--sysfs-root") {
      pc.sysfs_root = value();
    } else {
      throw std::string("release-node: unknown option '" + a +
                        "' (--state-dir DIR, --sysfs-root DIR)");
    }
  }
  if (pc.state_dir.empty() || pc.state_dir[0] != '/')
    throw std::string("release-node: --state-dir must be an absolute path");
  if (step_socket_in_use(step_socket_path(pc.state_dir))) {
    std::cerr << "powergrad: release-node: a node agent runs with state folder " << pc.state_dir
              << " (slurmd has the plugin): take the node out of powergrad.conf's groups and "
                 "restart slurmctld to release it, or stop slurmd first\n";
    return 1;
  }
  const std::string saved = saved_caps_path(pc.state_dir);
  if (!exists(saved)) {
    // Nothing changed since the settings were last given back; only PowerGrad's marks go.
    for (const std::string &p : {managed_marker_path(pc.state_dir), steps_file_path(pc.state_dir)})
      ::unlink(p.c_str());
    std::cout << "powergrad: release-node: no saved settings in " << pc.state_dir
              << ": the node holds its admin's settings\n";
    return 0;
  }
  std::vector<std::string> lines;
  PowerControl control(pc, [&](AgentLogLevel, const std::string &m) { lines.push_back(m); });
  control.recover();  // a node that is not managed: the saved settings are restored exactly
  for (const std::string &l : lines) std::cout << "powergrad: " << l << '\n';
  if (exists(saved)) {
    std::cerr << "powergrad: release-node: the saved settings in " << saved
              << " could not be restored (see above); the file is kept\n";
    return 1;
  }
  ::unlink(steps_file_path(pc.state_dir).c_str());
  std::cout << "powergrad: release-node: the admin's settings are back; the node is no longer "
               "managed by PowerGrad\n";
  return 0;
}

}  // namespace powergrad
