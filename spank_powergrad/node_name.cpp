#include "spank_powergrad/node_name.hpp"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <vector>

namespace powergrad {

std::string node_name_from_cmdline(const std::string &cmdline) {
  std::vector<std::string> argv;
  std::string cur;
  for (char c : cmdline) {
    if (c == '\0') {
      argv.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) argv.push_back(cur);
  for (size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "-N" && i + 1 < argv.size()) return argv[i + 1];
    if (argv[i].size() > 2 && argv[i].compare(0, 2, "-N") == 0) return argv[i].substr(2);
  }
  return "";
}

std::string this_slurmd_node_name() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string name = node_name_from_cmdline(cmdline);
  if (!name.empty()) return name;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) return "unknown";
  std::string h(host);
  return h.substr(0, h.find('.'));
}

std::string node_name_problem(const std::string &name) {
  if (name.empty()) return "the node name is empty";
  if (name.size() > 64) return "the node name is longer than 64 characters";
  for (char c : name) {
    const bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    if (!good) return "the node name holds a character other than A-Z, a-z, 0-9, '.', '_', '-'";
  }
  if (name[0] == '.' || name[0] == '-')
    return "the node name starts with '" + name.substr(0, 1) + "'";
  return "";
}

std::string stepd_node_name(const char *env_value) {
  if (env_value && *env_value) return env_value;
  return this_slurmd_node_name();
}

}  // namespace powergrad
