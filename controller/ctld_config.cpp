#include "controller/ctld_config.hpp"

#include <pwd.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "libgradient/format.hpp"

extern "C" {
#include <slurm/slurm.h>
}

namespace powergrad {

namespace {

constexpr double kMaxWatts = 1e9;  // a gigawatt: anything larger is a typo

std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string where(const std::string &path, int line) {
  return path + ":" + std::to_string(line) + ": ";
}

bool parse_number(const std::string &v, double lo, double hi, double &out) {
  if (v.empty()) return false;
  char *end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(d) || d < lo || d > hi) return false;
  out = d;
  return true;
}

// A whole number in [lo, hi] (parse_number's syntax, no fraction).
bool parse_whole(const std::string &v, double lo, double hi, double &out) {
  double d = 0;
  if (!parse_number(v, lo, hi, d) || d != std::floor(d)) return false;
  out = d;
  return true;
}

// Splits a line into Key=Value words (comments removed). Returns false with `error` set on a
// word without '='.
bool split_words(const std::string &raw, std::vector<std::pair<std::string, std::string>> &out,
                 std::string &error) {
  std::string line = raw.substr(0, raw.find('#'));
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "'" + word + "' is not Key=Value";
      return false;
    }
    out.emplace_back(lower(word.substr(0, eq)), word.substr(eq + 1));
  }
  return true;
}

bool valid_name(const std::string &s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

bool parse_listen(const std::string &v, std::string &host, uint16_t &port) {
  const size_t colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  double p = 0;
  if (!parse_whole(v.substr(colon + 1), 1, 65535, p)) return false;
  host = v.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  port = static_cast<uint16_t>(p);
  return !host.empty();
}

}  // namespace

std::optional<std::vector<std::string>> expand_hostlist(const std::string &expr) {
  if (expr.empty()) return std::nullopt;
  for (char c : expr) {
    if (std::isspace(static_cast<unsigned char>(c))) return std::nullopt;
  }
  // Unbalanced brackets: Slurm's parser would log and guess; refuse instead.
  if (std::count(expr.begin(), expr.end(), '[') != std::count(expr.begin(), expr.end(), ']')) {
    return std::nullopt;
  }
  // auto: hostlist_t is a pointer up to 23.05 and a struct (used by pointer) since 23.11.
  auto *hl = slurm_hostlist_create(expr.c_str());
  if (!hl) return std::nullopt;
  std::vector<std::string> names;
  while (char *h = slurm_hostlist_shift(hl)) {
    names.emplace_back(h);
    free(h);
  }
  slurm_hostlist_destroy(hl);
  if (names.empty()) return std::nullopt;
  for (const std::string &n : names) {
    if (!valid_name(n)) return std::nullopt;
  }
  return names;
}

ConfigResult parse_controller_config(const std::string &text, const std::string &path) {
  ConfigResult r;
  ControllerFileConfig c;
  c.path = path;
  bool have_budget = false;
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  auto fail = [&](const std::string &msg) {
    r.error = where(path, line_no) + msg;
    return r;
  };
  std::set<std::string> seen_globals;
  while (std::getline(in, raw)) {
    ++line_no;
    if (raw.size() > 4096) return fail("line longer than 4096 characters");
    std::vector<std::pair<std::string, std::string>> words;
    std::string err;
    if (!split_words(raw, words, err)) return fail(err);
    if (words.empty()) continue;
    const std::string &first = words[0].first;
    if (first == "group") {
      ConfigGroup g;
      g.name = words[0].second;
      g.line = line_no;
      if (!valid_name(g.name)) return fail("Group='" + g.name + "' is not a valid group name");
      for (const auto &g2 : c.groups) {
        if (g2.name == g.name) {
          return fail("group '" + g.name + "' already defined at line " + std::to_string(g2.line));
        }
      }
      for (size_t i = 1; i < words.size(); ++i) {
        const auto &[k, v] = words[i];
        if (k == "nodes") {
          auto names = expand_hostlist(v);
          if (!names) return fail("Nodes='" + v + "' is not a valid Slurm hostlist expression");
          g.nodes = *names;
        } else if (k == "limit") {
          if (!parse_number(v, 0, kMaxWatts, g.limit_w)) {
            return fail("Limit='" + v + "' is not a number of watts");
          }
        } else if (k == "parent") {
          bool found = false;
          for (const auto &g2 : c.groups) found |= g2.name == v;
          if (!found) return fail("Parent='" + v + "' is not a group defined above this line");
          g.parent = v;
        } else {
          return fail("unknown Group attribute '" + k + "' (Nodes, Limit, Parent)");
        }
      }
      c.groups.push_back(g);
      continue;
    }
    if (first == "node") {
      ConfigNodeOverride n;
      n.line = line_no;
      auto names = expand_hostlist(words[0].second);
      if (!names)
        return fail("Node='" + words[0].second + "' is not a valid Slurm hostlist expression");
      n.nodes = *names;
      for (size_t i = 1; i < words.size(); ++i) {
        const auto &[k, v] = words[i];
        if (k == "floor") {
          if (!parse_number(v, 0, kMaxWatts, n.floor_w))
            return fail("Floor='" + v + "' is not a number of watts");
        } else if (k == "max") {
          if (!parse_number(v, 0, kMaxWatts, n.max_w))
            return fail("Max='" + v + "' is not a number of watts");
        } else if (k == "idlecap") {
          if (!parse_number(v, 0, kMaxWatts, n.idle_w))
            return fail("IdleCap='" + v + "' is not a number of watts");
        } else {
          return fail("unknown Node attribute '" + k + "' (Floor, Max, IdleCap)");
        }
      }
      if (n.floor_w >= 0 && n.max_w >= 0 && n.floor_w > n.max_w) return fail("Floor is above Max");
      if (n.idle_w >= 0 && n.floor_w >= 0 && n.idle_w > n.floor_w)
        return fail("IdleCap is above Floor (an idle node is held at most at its floor)");
      c.node_overrides.push_back(n);
      continue;
    }
    for (const auto &[k, v] : words) {
      if (k == "group" || k == "node") return fail("'" + k + "=' must start its own line");
      if (!seen_globals.insert(k).second) return fail("'" + k + "' is set twice");
      if (k == "budget") {
        if (!parse_number(v, 0, kMaxWatts, c.budget_w))
          return fail("Budget='" + v + "' is not a number of watts");
        have_budget = true;
      } else if (k == "controlperiod") {
        if (!parse_number(v, 0.1, 60, c.period_s))
          return fail("ControlPeriod='" + v + "': expected 0.1 to 60 seconds");
      } else if (k == "leasetime") {
        if (!parse_number(v, 0.1, 3600, c.lease_s))
          return fail("LeaseTime='" + v + "': expected 0.1 to 3600 seconds");
      } else if (k == "listen") {
        if (!parse_listen(v, c.listen_host, c.listen_port))
          return fail("Listen='" + v + "': expected HOST:PORT");
      } else if (k == "adminusers") {
        c.admin_users.clear();
        std::istringstream users(v);
        std::string u;
        while (std::getline(users, u, ',')) {
          if (!valid_name(u)) return fail("AdminUsers: '" + u + "' is not a user name");
          c.admin_users.push_back(u);
        }
        if (c.admin_users.empty()) return fail("AdminUsers is empty");
      } else if (k == "nodefloor") {
        if (!parse_number(v, 0, kMaxWatts, c.node_floor_w))
          return fail("NodeFloor='" + v + "' is not a number of watts");
      } else if (k == "nodemax") {
        if (!parse_number(v, 0, kMaxWatts, c.node_max_w))
          return fail("NodeMax='" + v + "' is not a number of watts");
      } else if (k == "idlecap") {
        if (!parse_number(v, 0, kMaxWatts, c.idle_cap_w))
          return fail("IdleCap='" + v + "' is not a number of watts");
      } else if (k == "plainshare") {
        std::string lv = v;
        for (char &ch : lv) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lv == "usage")
          c.plain_share = PlainShare::usage;
        else if (lv == "even")
          c.plain_share = PlainShare::even;
        else
          return fail("PlainShare='" + v + "': expected usage or even");
      } else if (k == "budgetschedule") {
        if (v.empty() || v[0] != '/')
          return fail("BudgetSchedule='" + v + "' is not an absolute path");
        c.budget_schedule = v;
      } else if (k == "statedir" || k == "seriesdir") {
        if (v.empty() || v[0] != '/')
          return fail(std::string(k == "statedir" ? "StateDir" : "SeriesDir") + "='" + v +
                      "' is not an absolute path");
        (k == "statedir" ? c.state_dir : c.series_dir) = v;
      } else if (k == "metricsfile") {
        if (v.empty() || v[0] != '/' || v.size() < 6 || v.compare(v.size() - 5, 5, ".prom") != 0)
          return fail("MetricsFile='" + v +
                      "' is not an absolute path ending in .prom (node_exporter's textfile "
                      "collector reads only *.prom)");
        c.metrics_file = v;
      } else if (k == "metricsinterval") {
        if (!parse_number(v, 1, 3600, c.metrics_interval_s))
          return fail("MetricsInterval='" + v + "': expected seconds from 1 to 3600");
      } else if (k == "recordinterval") {
        if (!parse_number(v, 0, 3600, c.record_interval_s))
          return fail("RecordInterval='" + v +
                      "': expected seconds from 0 (every control period) to 3600");
      } else if (k == "serieskeep") {
        double n = 0;
        if (!parse_whole(v, 0, 1e7, n))
          return fail("SeriesKeep='" + v + "': expected a number of files (0 to 10000000)");
        c.series_keep = static_cast<std::size_t>(n);
      } else if (k == "serieskeepdays") {
        if (!parse_number(v, 0, 36500, c.series_keep_days))
          return fail("SeriesKeepDays='" + v + "': expected days (0: no age limit)");
      } else if (k == "hysteresis") {
        if (!parse_number(v, 0, 0.9, c.hysteresis) || c.hysteresis >= 0.9)
          return fail("Hysteresis='" + v + "': expected a number from 0 up to (not including) 0.9");
      } else if (k == "hysteresissettletime") {
        if (!parse_number(v, 0, 86400, c.hysteresis_settle_s))
          return fail("HysteresisSettleTime='" + v + "': expected seconds from 0 to 86400");
      } else if (k == "curvesegments") {
        double n = 0;
        if (!parse_whole(v, 0, 1024, n))
          return fail("CurveSegments='" + v +
                      "': expected a whole number from 1 to 1024, or 0 (by cluster size)");
        c.curve_segments = static_cast<std::size_t>(n);
      } else if (k == "stepthreads") {
        double n = 0;
        if (!parse_whole(v, 0, kMaxStepThreads, n))
          return fail("StepThreads='" + v + "': expected a whole number from 1 to " +
                      std::to_string(kMaxStepThreads) + ", or 0 (by the CPUs, at most " +
                      std::to_string(kAutoStepThreads) + ")");
        c.step_threads = static_cast<unsigned>(n);
      } else {
        return fail("unknown key '" + k + "'");
      }
    }
  }
  line_no = 0;
  if (!have_budget) {
    r.error = path + ": no Budget= (the cluster budget in watts) is set";
    return r;
  }
  if (c.lease_s < c.period_s) {
    r.error =
        path + ": LeaseTime is shorter than ControlPeriod (leases would lapse between grants)";
    return r;
  }
  if (c.node_floor_w > c.node_max_w) {
    r.error = path + ": NodeFloor is above NodeMax";
    return r;
  }
  if (c.idle_cap_w > c.node_floor_w) {
    r.error = path + ": IdleCap is above NodeFloor (an idle node is held at most at its floor)";
    return r;
  }
  r.config = c;
  return r;
}

ConfigResult load_controller_config(const std::string &path) {
  std::ifstream f(path);
  if (!f) {
    ConfigResult r;
    r.error = path + ": cannot read: " + std::strerror(errno);
    return r;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_controller_config(ss.str(), path);
}

unsigned affinity_step_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  return cpus > 0 ? std::min(static_cast<unsigned>(cpus), kAutoStepThreads) : 0;
}

ClusterConfigResult build_cluster_config(const ControllerFileConfig &file,
                                         const std::vector<std::string> &slurm_nodes,
                                         uint64_t epoch) {
  ClusterConfigResult r;
  ClusterConfig cc;
  cc.budget_w = file.budget_w;
  cc.period_s = file.period_s;
  cc.lease_s = file.lease_s;
  cc.hysteresis = file.hysteresis;
  cc.hysteresis_settle_s = file.hysteresis_settle_s;
  cc.curve_segments = file.curve_segments;
  // StepThreads=0: the CPUs slurmctld may run on (its affinity mask, which a cgroup or
  // taskset narrows), at most kAutoStepThreads.
  cc.step_threads = file.step_threads > 0 ? file.step_threads : affinity_step_threads();
  cc.plain_share = file.plain_share;
  cc.epoch = epoch;
  std::unordered_map<std::string, size_t> group_index;
  for (const ConfigGroup &g : file.groups) {
    ClusterGroupConfig cg;
    cg.name = g.name;
    if (g.limit_w >= 0) cg.max_w = g.limit_w;
    cg.parent = g.parent.empty() ? kNoGroup : group_index.at(g.parent);
    group_index[g.name] = cc.groups.size();
    cc.groups.push_back(cg);
  }
  // Managed: the nodes the groups list, or every node when no group lists any.
  std::set<std::string> known(slurm_nodes.begin(), slurm_nodes.end()), listed;
  for (const ConfigGroup &g : file.groups) {
    for (const std::string &n : g.nodes) {
      if (!known.count(n)) {
        r.error = where(file.path, g.line) + "group '" + g.name + "' names node '" + n +
                  "', which slurm.conf does not define";
        return r;
      }
      listed.insert(n);
    }
  }
  std::unordered_map<std::string, size_t> node_index;
  for (const std::string &n : slurm_nodes) {
    if (!listed.empty() && !listed.count(n)) {
      r.unmanaged.push_back(n);
      continue;
    }
    ClusterNodeConfig nc;
    nc.name = n;
    nc.floor_w = file.node_floor_w;
    nc.max_w = file.node_max_w;
    if (file.idle_cap_w >= 0) nc.idle_w = file.idle_cap_w;
    node_index[n] = cc.nodes.size();
    cc.nodes.push_back(nc);
  }
  for (const ConfigGroup &g : file.groups) {
    for (const std::string &n : g.nodes) {
      auto it = node_index.find(n);
      ClusterNodeConfig &nc = cc.nodes[it->second];
      if (nc.group != kNoGroup) {
        r.error = where(file.path, g.line) + "node '" + n + "' is already in group '" +
                  cc.groups[nc.group].name + "' (a node belongs to one innermost group)";
        return r;
      }
      nc.group = group_index.at(g.name);
    }
  }
  for (const ConfigNodeOverride &o : file.node_overrides) {
    for (const std::string &n : o.nodes) {
      auto it = node_index.find(n);
      if (it == node_index.end()) {
        r.error =
            where(file.path, o.line) + "node '" + n + "' " +
            (known.count(n) ? "is in no group: it is not managed" : "is not defined in slurm.conf");
        return r;
      }
      ClusterNodeConfig &nc = cc.nodes[it->second];
      if (o.floor_w >= 0) nc.floor_w = o.floor_w;
      if (o.max_w >= 0) nc.max_w = o.max_w;
      if (o.idle_w >= 0) nc.idle_w = o.idle_w;
      if (!std::isnan(nc.idle_w) && nc.idle_w > nc.floor_w) {
        r.error = where(file.path, o.line) + "node '" + n + "' would have its idle cap (" +
                  format_w(nc.idle_w) + ") above its floor (" + format_w(nc.floor_w) + ")";
        return r;
      }
      if (nc.floor_w > nc.max_w) {
        r.error = where(file.path, o.line) + "node '" + n + "' would have its floor above its max";
        return r;
      }
    }
  }
  const std::string err = ClusterController::check_config(cc);
  if (!err.empty()) {
    r.error = file.path + ": " + err;
    return r;
  }
  r.config = cc;
  return r;
}

std::optional<double> BudgetSchedule::budget_at(long epoch_s) const {
  if (entries.empty()) return std::nullopt;
  const time_t t = static_cast<time_t>(epoch_s);
  struct tm local;
  localtime_r(&t, &local);
  const long since_midnight = local.tm_hour * 3600L + local.tm_min * 60L + local.tm_sec;
  const long midnight = epoch_s - since_midnight;
  // The latest entry at or before t: absolute entries by their time, daily entries by their
  // most recent occurrence (today's if passed, else yesterday's).
  std::optional<double> best;
  long best_time = 0;
  for (const BudgetEntry &e : entries) {
    long when;
    if (e.daily) {
      when = midnight + e.seconds;
      if (when > epoch_s) when -= 86400;
    } else {
      when = e.seconds;
      if (when > epoch_s) continue;
    }
    if (!best || when >= best_time) {
      best = e.watts;
      best_time = when;
    }
  }
  return best;
}

std::string resolve_state_dir(const ControllerFileConfig &c, const std::string &state_save_location) {
  if (!c.state_dir.empty()) return c.state_dir;
  if (state_save_location.empty()) return "";
  std::string d = state_save_location;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + "/powergrad";
}

std::string resolve_series_dir(const ControllerFileConfig &c, const std::string &state_save_location) {
  if (!c.series_dir.empty()) return c.series_dir;
  const std::string s = resolve_state_dir(c, state_save_location);
  return s.empty() ? "" : s + "/series";
}

ScheduleResult parse_budget_schedule(const std::string &text, const std::string &path) {
  ScheduleResult r;
  BudgetSchedule s;
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  while (std::getline(in, raw)) {
    ++line_no;
    std::istringstream words(raw.substr(0, raw.find('#')));
    std::string when, watts, extra;
    if (!(words >> when)) continue;
    if (!(words >> watts) || (words >> extra)) {
      r.error = where(path, line_no) + "expected 'TIME WATTS'";
      return r;
    }
    BudgetEntry e;
    e.line = line_no;
    if (!parse_number(watts, 0, kMaxWatts, e.watts)) {
      r.error = where(path, line_no) + "'" + watts + "' is not a number of watts";
      return r;
    }
    struct tm tm;
    std::memset(&tm, 0, sizeof tm);
    const char *end = nullptr;
    if ((end = strptime(when.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) && *end == '\0') {
      e.daily = false;
    } else if (std::memset(&tm, 0, sizeof tm),
               (end = strptime(when.c_str(), "%Y-%m-%dT%H:%M", &tm)) && *end == '\0') {
      e.daily = false;
    } else if (std::memset(&tm, 0, sizeof tm),
               (end = strptime(when.c_str(), "%H:%M:%S", &tm)) && *end == '\0') {
      e.daily = true;
    } else if (std::memset(&tm, 0, sizeof tm),
               (end = strptime(when.c_str(), "%H:%M", &tm)) && *end == '\0') {
      e.daily = true;
    } else {
      r.error = where(path, line_no) + "'" + when + "' is not HH:MM[:SS] or YYYY-MM-DDTHH:MM[:SS]";
      return r;
    }
    if (e.daily) {
      e.seconds = tm.tm_hour * 3600L + tm.tm_min * 60L + tm.tm_sec;
    } else {
      tm.tm_isdst = -1;
      const time_t t = mktime(&tm);
      if (t == static_cast<time_t>(-1)) {
        r.error = where(path, line_no) + "'" + when + "' is not a valid local time";
        return r;
      }
      e.seconds = static_cast<long>(t);
    }
    s.entries.push_back(e);
  }
  if (s.entries.empty()) {
    r.error = path + ": no entries";
    return r;
  }
  r.schedule = s;
  return r;
}

ScheduleResult load_budget_schedule(const std::string &path) {
  std::ifstream f(path);
  if (!f) {
    ScheduleResult r;
    r.error = path + ": cannot read: " + std::strerror(errno);
    return r;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_budget_schedule(ss.str(), path);
}

ConfigCheck check_controller_config(const std::string &path,
                                    const std::vector<std::string> *slurm_nodes, uint64_t epoch) {
  ConfigCheck out;
  ConfigResult cr = load_controller_config(path);
  if (!cr.config) {
    out.error = cr.error;
    return out;
  }
  out.file = std::move(cr.config);
  const ControllerFileConfig &file = *out.file;
  if (!file.budget_schedule.empty()) {
    ScheduleResult sr = load_budget_schedule(file.budget_schedule);
    if (!sr.schedule) {
      out.error = sr.error;
      return out;
    }
    out.schedule = std::move(sr.schedule);
  }
  if (slurm_nodes) {
    ClusterConfigResult cc = build_cluster_config(file, *slurm_nodes, epoch);
    if (!cc.config) {
      out.error = cc.error;
      return out;
    }
    const ClusterController controller(*cc.config);
    if (!controller.ok()) {
      out.error = path + ": " + controller.error();
      return out;
    }
    out.cluster = std::move(cc.config);
    out.unmanaged = std::move(cc.unmanaged);
  }
  for (const std::string &u : file.admin_users) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd *found = nullptr;
    if (getpwnam_r(u.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
      out.error = path + ": AdminUsers: no user '" + u + "' on this host";
      return out;
    }
    out.admin_uids.push_back(found->pw_uid);
  }
  return out;
}

}  // namespace powergrad
