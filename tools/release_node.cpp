#include "tools/release_node.hpp"

#include <cerrno>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "nodeagent/agent.hpp"
#include "nodeagent/power_control.hpp"
#include "nodeagent/step_channel.hpp"

namespace powergrad {

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
  // Root writes the admin's settings back from this folder: it must be as safe as the
  // agent requires (every folder root's, none writable by others), and is then worked
  // from by descriptor.
  hw::Result<hw::SecureDir> opened = hw::SecureDir::open(pc.state_dir);
  if (!opened.ok()) {
    if (opened.errno_value() == ENOENT) {
      std::cout << "powergrad: release-node: no state folder " << pc.state_dir
                << ": the node holds its admin's settings\n";
      return 0;
    }
    std::cerr << "powergrad: release-node: state folder " << pc.state_dir
              << " refused: " << opened.message() << '\n';
    return 1;
  }
  auto dir = std::make_shared<const hw::SecureDir>(std::move(opened.value()));
  pc.state = dir;
  if (step_socket_in_use(dir->fd_path(kStepSocketFile))) {
    std::cerr << "powergrad: release-node: a node agent runs with state folder " << pc.state_dir
              << " (slurmd has the plugin): take the node out of powergrad.conf's groups and "
                 "restart slurmctld to release it, or stop slurmd first\n";
    return 1;
  }
  const std::string saved = saved_caps_path(pc.state_dir);
  if (!dir->exists(kSavedCapsFile)) {
    // Nothing changed since the settings were last given back; only PowerGrad's marks go.
    for (const char *f : {kManagedFile, kStepsFile}) (void)dir->remove(f);
    std::cout << "powergrad: release-node: no saved settings in " << pc.state_dir
              << ": the node holds its admin's settings\n";
    return 0;
  }
  std::vector<std::string> lines;
  PowerControl control(pc, [&](AgentLogLevel, const std::string &m) { lines.push_back(m); });
  control.recover();  // a node that is not managed: the saved settings are restored exactly
  for (const std::string &l : lines) std::cout << "powergrad: " << l << '\n';
  if (dir->exists(kSavedCapsFile)) {
    std::cerr << "powergrad: release-node: the saved settings in " << saved
              << " could not be restored (see above); the file is kept\n";
    return 1;
  }
  (void)dir->remove(kStepsFile);
  std::cout << "powergrad: release-node: the admin's settings are back; the node is no longer "
               "managed by PowerGrad\n";
  return 0;
}

}  // namespace powergrad
