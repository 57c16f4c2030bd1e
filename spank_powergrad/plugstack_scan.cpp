#include "spank_powergrad/plugstack_scan.hpp"

#include <glob.h>

#include <fstream>
#include <set>
#include <sstream>

#include "spank_powergrad/plugin_config.hpp"

namespace powergrad {

namespace {

constexpr int kMaxIncludeDepth = 8;

std::string folder_of(const std::string &path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_name(const std::string &path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Paths that match a glob pattern, sorted (glob's order); none is not an error.
std::vector<std::string> glob_paths(const std::string &pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  return out;
}

void read_into(const std::string &path, int depth, std::vector<PlugstackLine> &out,
               std::vector<std::string> &problems) {
  std::ifstream in(path);
  if (!in) {
    problems.push_back(path + ": cannot be read");
    return;
  }
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    const auto hash = text.find('#');
    if (hash != std::string::npos) text.erase(hash);
    std::istringstream words(text);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (w.empty()) continue;
    const std::string where = path + ":" + std::to_string(n);
    if (w[0] == "include") {
      if (w.size() != 2) {
        problems.push_back(where + ": include takes one path");
        continue;
      }
      if (depth >= kMaxIncludeDepth) {
        problems.push_back(where + ": includes nest deeper than " +
                           std::to_string(kMaxIncludeDepth));
        continue;
      }
      const std::string pattern = w[1][0] == '/' ? w[1] : folder_of(path) + "/" + w[1];
      for (const std::string &f : glob_paths(pattern)) read_into(f, depth + 1, out, problems);
      continue;
    }
    if ((w[0] != "required" && w[0] != "optional") || w.size() < 2) {
      problems.push_back(where + ": not 'required|optional PLUGIN [ARGS]' or 'include PATH'");
      continue;
    }
    PlugstackLine l;
    l.file = path;
    l.line = n;
    l.plugin = w[1];
    l.args.assign(w.begin() + 2, w.end());
    out.push_back(std::move(l));
  }
}

std::string glob_escape(char c) {
  return (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') ? std::string("\\") + c
                                                                     : std::string(1, c);
}

}  // namespace

std::vector<PlugstackLine> read_plugstack(const std::string &path,
                                          std::vector<std::string> &problems) {
  std::vector<PlugstackLine> out;
  read_into(path, 0, out, problems);
  return out;
}

std::vector<PatternMatch> match_node_pattern(const std::string &pattern, std::string *why) {
  if (pattern.find("%n") == std::string::npos) {
    const std::optional<std::string> p = expand_node_path(pattern, "", why);
    if (!p) return {};
    return {PatternMatch{"", *p}};
  }
  // The glob finds candidates; a candidate is kept when some name, without '/', expands the
  // pattern to exactly its path (every %n the same name), the name checked as the agent
  // checks it (expand_node_path). The name starts where the pattern's first %n is.
  std::string glob_pattern, prefix;
  bool seen_n = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 'n') {
      glob_pattern += '*';
      seen_n = true;
      ++i;
    } else if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == '%') {
      glob_pattern += '%';
      if (!seen_n) prefix += '%';
      ++i;
    } else {
      glob_pattern += glob_escape(pattern[i]);
      if (!seen_n) prefix += pattern[i];
    }
  }
  std::vector<PatternMatch> out;
  for (const std::string &p : glob_paths(glob_pattern)) {
    if (p.compare(0, prefix.size(), prefix) != 0) continue;
    const std::size_t end = p.find('/', prefix.size());
    const std::size_t longest = (end == std::string::npos ? p.size() : end) - prefix.size();
    for (std::size_t len = 1; len <= longest; ++len) {
      const std::string node = p.substr(prefix.size(), len);
      std::string problem;
      const std::optional<std::string> back = expand_node_path(pattern, node, &problem);
      if (back && *back == p) {
        out.push_back(PatternMatch{node, p});
        break;
      }
    }
  }
  return out;
}

PlugstackScan scan_powergrad_folders(const std::string &plugstack_path) {
  PlugstackScan scan;
  std::set<std::string> seen;
  for (const PlugstackLine &l : read_plugstack(plugstack_path, scan.problems)) {
    if (base_name(l.plugin) != "spank_powergrad.so") continue;
    scan.plugin_named = true;
    const std::string where = l.file + ":" + std::to_string(l.line);
    const ConfigParse parsed = parse_plugin_args(l.args);
    if (!parsed.ok()) {
      // The plugin refuses to load with these arguments, so no agent ran from this line.
      scan.problems.push_back(where + ": " + parsed.errors.front());
      continue;
    }
    const PluginConfig &c = parsed.config;
    if (c.sysfs_root.find("%n") != std::string::npos &&
        c.state_dir.find("%n") == std::string::npos) {
      scan.problems.push_back(where +
                              ": sysfs_root holds %n but state_dir does not: the node "
                              "of a state folder cannot be told");
      continue;
    }
    std::string why;
    const std::vector<PatternMatch> matches = match_node_pattern(c.state_dir, &why);
    if (matches.empty() && !why.empty()) scan.problems.push_back(where + ": state_dir " + why);
    for (const PatternMatch &m : matches) {
      const std::optional<std::string> sysfs = expand_node_path(c.sysfs_root, m.node, &why);
      if (!sysfs) {
        scan.problems.push_back(where + ": sysfs_root " + why);
        continue;
      }
      if (!seen.insert(m.path).second) continue;
      scan.folders.push_back(NodeFolders{m.node, m.path, *sysfs, where});
    }
  }
  return scan;
}

}  // namespace powergrad
