#include "spank_powergrad/plugin_config.hpp"

#include <cstdlib>

#include "spank_powergrad/node_name.hpp"

namespace powergrad {

namespace {

bool parse_log_level(const std::string &v, LogLevel &out) {
  if (v == "quiet") {
    out = LogLevel::quiet;
  } else if (v == "info") {
    out = LogLevel::info;
  } else if (v == "debug") {
    out = LogLevel::debug;
  } else {
    return false;
  }
  return true;
}

// An absolute path without "..", at most max_len characters.
bool good_path(const std::string &v, std::size_t max_len) {
  return !v.empty() && v[0] == '/' && v.find("..") == std::string::npos && v.size() <= max_len;
}

// A plain number, the whole value, within [lo, hi] (NaN and the infinities never are).
bool parse_number(const std::string &v, double lo, double hi, double &out) {
  if (v.empty()) return false;
  char *end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (*end != '\0' || !(x >= lo && x <= hi)) return false;
  out = x;
  return true;
}

// Watts: a plain positive number up to 100 kW (a node, not a cluster).
bool parse_watts(const std::string &v, double &out) {
  double w = 0.0;
  if (!parse_number(v, 0.0, 100000.0, w) || !(w > 0.0)) return false;
  out = w;
  return true;
}

// A number from 0 to 1 into `out`, or "off", which stores `off_value`.
bool parse_share_or_off(const std::string &v, double off_value, double &out) {
  if (v != "off") return parse_number(v, 0.0, 1.0, out);
  out = off_value;
  return true;
}

}  // namespace

const char *plugin_arg_keys() {
  return "controller, counters, default_mode, emulate, floor, grant, load_spread, log_level, "
         "low_cap_knee, low_cap_slowdown, period, plain_beside, procfs_root, state_dir, "
         "sysfs_root, top_clock_busy";
}

std::string split_host_port(const std::string &text, std::string &host, std::string &port) {
  std::string h, p;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return "expected [ADDRESS]:PORT";
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return "expected HOST:PORT";
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string::npos) return "an IPv6 address goes in brackets: [ADDRESS]:PORT";
  }
  if (h.empty() || h.size() > 253) return "the host is empty or longer than 253 characters";
  for (char c : h) {
    const bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_' || c == ':';
    if (!good) return "the host holds a character that is not allowed in a host name or address";
  }
  char *end = nullptr;
  const unsigned long n = std::strtoul(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || n == 0 || n > 65535)
    return "the port must be a number between 1 and 65535";
  host = h;
  port = p;
  return "";
}

std::string expand_node_tokens(const std::string &value, const std::string &node_name) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 1 < value.size() && (value[i + 1] == 'n' || value[i + 1] == '%')) {
      out += value[i + 1] == 'n' ? node_name : "%";
      ++i;
    } else {
      out += value[i];
    }
  }
  return out;
}

std::optional<std::string> expand_node_path(const std::string &value, const std::string &node_name,
                                            std::string *why) {
  auto fail = [why](const std::string &w) -> std::optional<std::string> {
    if (why) *why = w;
    return std::nullopt;
  };
  if (value.find("%n") != std::string::npos) {
    const std::string problem = node_name_problem(node_name);
    if (!problem.empty()) return fail("node name '" + node_name + "' refused: " + problem);
  }
  const std::string out = expand_node_tokens(value, node_name);
  if (out.empty() || out[0] != '/') return fail("'" + out + "' is not an absolute path");
  // No ".." component, whatever the name: the checks at parse time saw the value before.
  for (std::size_t pos = 0; pos != std::string::npos;) {
    const std::size_t next = out.find('/', pos + 1);
    const std::string part = out.substr(pos + 1, next == std::string::npos ? next : next - pos - 1);
    if (part == "..") return fail("'" + out + "' holds a '..' component");
    pos = next;
  }
  return out;
}

ConfigParse parse_plugin_args(const std::vector<std::string> &args) {
  ConfigParse out;
  for (const std::string &arg : args) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) {
      out.errors.push_back("plugin argument '" + arg +
                           "' is not of the form key=value (keys: " + plugin_arg_keys() + ")");
      continue;
    }
    const std::string key = arg.substr(0, eq);
    const std::string value = arg.substr(eq + 1);
    if (key == "default_mode") {
      ModeParse m = parse_job_mode(value.c_str());
      if (!m.mode || value.empty()) {
        out.errors.push_back("plugin argument default_mode='" + value +
                             "': expected off, latency, throughput or monitor");
      } else {
        out.config.default_mode = *m.mode;
      }
    } else if (key == "log_level") {
      if (!parse_log_level(value, out.config.log_level)) {
        out.errors.push_back("plugin argument log_level='" + value +
                             "': expected quiet, info or debug");
      }
    } else if (key == "state_dir") {
      if (value.empty() || value[0] != '/' || value.find("..") != std::string::npos ||
          value.size() > 80) {
        out.errors.push_back("plugin argument state_dir='" + value +
                             "': expected an absolute path of at most 80 characters without '..'");
      } else {
        out.config.state_dir = value;
      }
    } else if (key == "period") {
      if (!parse_number(value, 0.1, 60.0, out.config.period_s))
        out.errors.push_back("plugin argument period='" + value +
                             "': expected seconds between 0.1 and 60");
    } else if (key == "sysfs_root" || key == "procfs_root") {
      if (!good_path(value, 200)) {
        out.errors.push_back("plugin argument " + key + "='" + value +
                             "': expected an absolute path of at most 200 characters without '..'");
      } else {
        (key == "sysfs_root" ? out.config.sysfs_root : out.config.procfs_root) = value;
      }
    } else if (key == "grant" || key == "floor") {
      double w = 0.0;
      if (!parse_watts(value, w)) {
        out.errors.push_back("plugin argument " + key + "='" + value +
                             "': expected watts, a number above 0 and at most 100000");
      } else {
        (key == "grant" ? out.config.grant_w : out.config.floor_w) = w;
      }
    } else if (key == "counters") {
      if (value != "auto" && value != "perf" && value != "software" && value != "emulated") {
        out.errors.push_back("plugin argument counters='" + value +
                             "': expected auto, perf, software or emulated");
      } else {
        out.config.counters = value;
      }
    } else if (key == "emulate") {
      if (!good_path(value, 200)) {
        out.errors.push_back("plugin argument emulate='" + value +
                             "': expected an absolute path of at most 200 characters without '..'");
      } else {
        out.config.emulate_path = value;
      }
    } else if (key == "low_cap_knee" || key == "low_cap_slowdown") {
      const bool knee = key == "low_cap_knee";
      if (!parse_number(value, 0.0, knee ? 1.0 : 10.0,
                        knee ? out.config.low_cap_knee : out.config.low_cap_slowdown))
        out.errors.push_back("plugin argument " + key + "='" + value + "': expected " +
                             (knee ? "a share of TDP from 0 to 1 (0: no low-cap slowdown)"
                                   : "a slowdown per TDP from 0 to 10"));
    } else if (key == "load_spread") {
      if (!parse_number(value, 0.0, 10.0, out.config.load_spread))
        out.errors.push_back("plugin argument load_spread='" + value +
                             "': expected a factor from 0 to 10 (0: the mean load only)");
    } else if (key == "top_clock_busy") {
      if (!parse_share_or_off(value, 2.0, out.config.top_clock_busy))
        out.errors.push_back("plugin argument top_clock_busy='" + value +
                             "': expected a busy share from 0 to 1, or off");
    } else if (key == "plain_beside") {
      if (!parse_share_or_off(value, 0.0, out.config.plain_beside))
        out.errors.push_back("plugin argument plain_beside='" + value +
                             "': expected a weight from 0 to 1, or off");
    } else if (key == "controller") {
      std::string host, port;
      const std::string why = value == "none" ? "" : split_host_port(value, host, port);
      if (!why.empty()) {
        out.errors.push_back("plugin argument controller='" + value + "': " + why +
                             " (or none for the static grant only)");
      } else {
        out.config.controller = value;
      }
    } else {
      out.errors.push_back("unknown plugin argument '" + key + "' (known: " + plugin_arg_keys() +
                           ")");
    }
  }
  // Arguments that only make sense together.
  if (out.config.grant_w && out.config.floor_w && *out.config.floor_w > *out.config.grant_w) {
    out.errors.push_back("plugin argument floor='" + std::to_string(*out.config.floor_w) +
                         "' is above grant='" + std::to_string(*out.config.grant_w) +
                         "': the floor must not exceed the grant");
  }
  if (out.config.counters == "emulated" && out.config.emulate_path.empty()) {
    out.errors.push_back(
        "plugin argument counters=emulated needs emulate=PATH (the jobs' workload specs)");
  }
  if (out.config.counters != "emulated" && !out.config.emulate_path.empty()) {
    out.errors.push_back("plugin argument emulate='" + out.config.emulate_path +
                         "' is only used with counters=emulated");
  }
  return out;
}

}  // namespace powergrad
