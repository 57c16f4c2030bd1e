// Where PowerGrad's SPANK plugin keeps a node's state, read from plugstack.conf as Slurm
// reads it ("required|optional PATH ARGS...", "include GLOB", '#' comments). Used when the
// plugin leaves a host (`powergrad release-node --plugstack`, the package's removal): every
// state folder an agent may have used there is found, with the sysfs root it capped, so
// saved caps can be given back without the agent. With %n in state_dir (several slurmd on
// one host), the folders that exist are found by glob and each one's node name read back
// from its path.
#pragma once

#include <string>
#include <vector>

namespace powergrad {

struct PlugstackLine {
  std::string file;  // the file the line is in (after includes)
  int line = 0;
  std::string plugin;             // the plugin's path as written
  std::vector<std::string> args;  // its arguments
};

struct NodeFolders {
  std::string node;        // "" when state_dir has no %n
  std::string state_dir;   // absolute, %n expanded
  std::string sysfs_root;  // absolute, %n expanded
  std::string origin;      // "FILE:LINE" of the plugstack line
};

struct PlugstackScan {
  std::vector<NodeFolders> folders;   // one per folder, no duplicates
  std::vector<std::string> problems;  // "FILE:LINE: ..." for what could not be read or used
  bool plugin_named = false;          // some line names spank_powergrad.so
};

// Every line of `path` and of the files its includes name (glob, relative to the including
// file's folder), in order. A missing or unreadable file is a problem; includes nest to
// depth 8.
std::vector<PlugstackLine> read_plugstack(const std::string &path,
                                          std::vector<std::string> &problems);

// The state folders (and sysfs roots) of every line that loads spank_powergrad.so.
PlugstackScan scan_powergrad_folders(const std::string &plugstack_path);

// state_dir with %n (as plugin_config expands it): the folders on disk that match, each
// with its node name. `pattern` without %n gives itself (node "") whether or not it exists.
struct PatternMatch {
  std::string node;
  std::string path;
};
std::vector<PatternMatch> match_node_pattern(const std::string &pattern, std::string *why);

}  // namespace powergrad
