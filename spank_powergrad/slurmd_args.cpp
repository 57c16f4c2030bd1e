#include "spank_powergrad/slurmd_args.hpp"

#include <cstring>
#include <fstream>
#include <iterator>

namespace powergrad {

namespace {

// slurmd's short options that take an argument (22.05: "bcCd:Df:F::GhL:Mn:N:svVZ"; later
// versions add none that take one). F's argument is optional: only when attached.
bool takes_argument(char c) { return std::strchr("dfLnN", c) != nullptr; }

// Long options with a required argument (22.05 to 26.05).
bool long_takes_argument(const std::string &name) {
  for (const char *n : {"conf", "conf-server", "authinfo", "ca-cert-file", "extra", "instance-id",
                        "instance-type", "parameters"})
    if (name == n) return true;
  return false;
}

}  // namespace

bool slurmd_stays_in_foreground(const std::vector<std::string> &argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string &a = argv[i];
    if (a == "--") break;
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      const std::string body = a.substr(2);
      const auto eq = body.find('=');
      const std::string name = body.substr(0, eq);
      if (name == "systemd") return true;
      if (eq == std::string::npos && long_takes_argument(name)) ++i;
      continue;
    }
    if (a.size() < 2 || a[0] != '-') continue;  // an operand
    for (std::size_t k = 1; k < a.size(); ++k) {
      const char c = a[k];
      if (c == 'D') return true;
      if (takes_argument(c)) {
        if (k + 1 == a.size()) ++i;  // the argument is the next word
        break;                       // else the rest of this word is the argument
      }
      if (c == 'F') break;  // optional argument: the rest of the word, if any
    }
  }
  return false;
}

std::vector<std::string> own_cmdline(const std::string &procfs_root) {
  std::ifstream f(procfs_root + "/self/cmdline", std::ios::binary);
  std::vector<std::string> out;
  if (!f) return out;
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string cur;
  for (char c : all) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace powergrad
