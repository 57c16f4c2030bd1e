#include "spank_powergrad/slurm_conf.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace powergrad {

namespace {

std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string &s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

}  // namespace

SlurmConfFacts parse_slurm_conf(const std::string &text) {
  SlurmConfFacts out;
  std::string control_addr, control_machine;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = lower(trim(line.substr(0, eq)));
    std::string value = trim(line.substr(eq + 1));
    // A value ends at the first blank: "SlurmctldHost=a(1.2.3.4) # x" was cut above.
    const auto blank = value.find_first_of(" \t");
    if (blank != std::string::npos) value.resize(blank);
    if (value.empty()) continue;
    if (key == "slurmctldhost" && out.ctld_host.empty()) {
      const auto open = value.find('(');
      const auto close = value.find(')', open == std::string::npos ? 0 : open);
      if (open != std::string::npos && close != std::string::npos && close > open + 1) {
        out.ctld_host = value.substr(open + 1, close - open - 1);
      } else {
        out.ctld_host = value.substr(0, open);
      }
    } else if (key == "controladdr" && control_addr.empty()) {
      control_addr = value;
    } else if (key == "controlmachine" && control_machine.empty()) {
      control_machine = value;
    } else if (key == "slurmuser") {
      out.slurm_user = value;
    }
  }
  if (out.ctld_host.empty()) out.ctld_host = !control_addr.empty() ? control_addr : control_machine;
  return out;
}

std::string slurm_conf_path() {
  const char *env = std::getenv("SLURM_CONF");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("/etc/slurm/slurm.conf");
}

std::string read_slurm_conf(const std::string &path, SlurmConfFacts &out) {
  std::ifstream f(path);
  if (!f) return "cannot read " + path + ": " + std::strerror(errno);
  std::stringstream ss;
  ss << f.rdbuf();
  out = parse_slurm_conf(ss.str());
  return "";
}

}  // namespace powergrad
