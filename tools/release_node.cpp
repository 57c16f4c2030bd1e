#include "tools/release_node.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "nodeagent/agent.hpp"
#include "nodeagent/agent_socket.hpp"
#include "nodeagent/power_control.hpp"
#include "nodeagent/step_channel.hpp"
#include "spank_powergrad/plugstack_scan.hpp"

namespace powergrad {

namespace {

// --forget: the agent's files that mean nothing once the settings are back, then the folder
// when nothing else is in it (the saved settings are never among them: they go only when
// restored).
void forget_folder(const hw::SecureDir &dir, const std::string &path) {
  for (const char *f : {kStepSocketFile, kManagedFile, kStepsFile}) (void)dir.remove(f);
  if (::rmdir(path.c_str()) == 0) {
    std::cout << "powergrad: release-node: removed the state folder " << path << '\n';
  } else if (errno != ENOENT) {
    std::cout << "powergrad: release-node: the state folder " << path
              << " is kept: " << std::strerror(errno) << '\n';
  }
}

// One node's folders. Returns the exit status.
int release_one(const std::string &state_dir, const std::string &sysfs_root,
                const std::string &node, bool forget) {
  PowerControlConfig pc;
  pc.management = NodeManagement::local;
  pc.state_dir = state_dir;
  pc.sysfs_root = sysfs_root;
  pc.node_name = node.empty() ? "this node" : node;
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
    if (forget) forget_folder(*dir, pc.state_dir);
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
  std::cout << "powergrad: release-node: the admin's settings are back in " << pc.sysfs_root
            << "; the node is no longer managed by PowerGrad\n";
  if (forget) forget_folder(*dir, pc.state_dir);
  return 0;
}

}  // namespace

int release_node(int argc, char **argv) {
  std::string state_dir = "/run/powergrad", sysfs_root = "/sys", plugstack;
  bool forget = false, folder_given = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::string("release-node: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--state-dir") {
      state_dir = value();
      folder_given = true;
    } else if (a == "--sysfs-root") {
      sysfs_root = value();
      folder_given = true;
    } else if (a == "--plugstack") {
      plugstack = value();
    } else if (a == "--forget") {
      forget = true;
    } else {
      throw std::string("release-node: unknown option '" + a +
                        "' (--state-dir DIR, --sysfs-root DIR, --plugstack FILE, --forget)");
    }
  }
  if (!plugstack.empty() && folder_given)
    throw std::string(
        "release-node: --plugstack finds the folders; it excludes --state-dir "
        "and --sysfs-root");
  if (plugstack.empty()) {
    if (state_dir.empty() || state_dir[0] != '/')
      throw std::string("release-node: --state-dir must be an absolute path");
    if (sysfs_root.empty() || sysfs_root[0] != '/')
      throw std::string("release-node: --sysfs-root must be an absolute path");
    return release_one(state_dir, sysfs_root, "", forget);
  }
  // Every folder an agent of this host may have used: those of the plugstack lines that load
  // the plugin, and the default folder always (the admin may have taken the line out first).
  const PlugstackScan scan = scan_powergrad_folders(plugstack);
  for (const std::string &p : scan.problems)
    std::cout << "powergrad: release-node: note: " << p << '\n';
  std::vector<NodeFolders> folders = scan.folders;
  bool default_listed = false;
  for (const NodeFolders &f : folders) default_listed |= f.state_dir == "/run/powergrad";
  if (!default_listed) folders.push_back(NodeFolders{"", "/run/powergrad", "/sys", "default"});
  int status = 0;
  for (const NodeFolders &f : folders) {
    std::cout << "powergrad: release-node: " << (f.node.empty() ? "" : "node " + f.node + ": ")
              << f.state_dir << " (" << f.origin << ")\n";
    const int rc = release_one(f.state_dir, f.sysfs_root, f.node, forget);
    if (rc > status) status = rc;
  }
  return status;
}

}  // namespace powergrad
