#include "controller/budget_state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "posix/atomic_file.hpp"

namespace powergrad {

namespace {

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

std::string watts(double w) {
  char b[64];
  std::snprintf(b, sizeof b, "%g W", w);
  return b;
}

bool same_w(double a, double b) { return std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b)); }

std::string make_parent(const std::string &path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "";
  const std::string dir = path.substr(0, slash);
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    const std::string part = dir.substr(0, pos);
    if (part.empty()) continue;
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      return "cannot create " + part + ": " + std::strerror(errno);
  }
  return "";
}

}  // namespace

std::string local_time_text(double epoch_s) {
  const time_t t = static_cast<time_t>(std::floor(epoch_s));
  tm lt{};
  localtime_r(&t, &lt);
  char b[64];
  strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &lt);
  return b;
}

std::string format_runtime_budget(const RuntimeBudget &b) {
  std::string s = "v=1 budget_w=" + num(b.budget_w) + " config_budget_w=" + num(b.config_budget_w) +
                  " uid=" + std::to_string(b.uid) + " set_at=" + num(b.set_at_s);
  if (b.scheduled_w) s += " scheduled_w=" + num(*b.scheduled_w);
  return s + "\n";
}

std::optional<RuntimeBudget> parse_runtime_budget(const std::string &text, std::string *error) {
  auto fail = [&](const std::string &why) -> std::optional<RuntimeBudget> {
    if (error) *error = why;
    return std::nullopt;
  };
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    const std::size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0) return fail("'" + w + "' is not KEY=VALUE");
    kv[w.substr(0, eq)] = w.substr(eq + 1);
  }
  if (kv["v"] != "1") return fail("unknown version '" + kv["v"] + "' (expected v=1)");
  auto number = [&](const char *key, double &out) -> bool {
    auto it = kv.find(key);
    if (it == kv.end()) return false;
    char *end = nullptr;
    errno = 0;
    out = std::strtod(it->second.c_str(), &end);
    return !it->second.empty() && *end == '\0' && errno == 0 && std::isfinite(out) && out >= 0;
  };
  RuntimeBudget b;
  double uid = 0, sw = 0;
  if (!number("budget_w", b.budget_w)) return fail("budget_w is missing or not a number of watts");
  if (!number("config_budget_w", b.config_budget_w))
    return fail("config_budget_w is missing or not a number of watts");
  if (!number("uid", uid) || uid != std::floor(uid) || uid > 4294967295.0) return fail("uid is missing or not a uid");
  if (!number("set_at", b.set_at_s)) return fail("set_at is missing or not a time");
  b.uid = static_cast<std::uint32_t>(uid);
  if (kv.count("scheduled_w")) {
    if (!number("scheduled_w", sw)) return fail("scheduled_w is not a number of watts");
    b.scheduled_w = sw;
  }
  return b;
}

BudgetRestore decide_budget_restore(const std::optional<RuntimeBudget> &saved,
                                    double config_budget_w, bool has_schedule,
                                    std::optional<double> scheduled_now_w) {
  BudgetRestore r;
  if (!saved) return r;
  const std::string what = "budget " + watts(saved->budget_w) + " set at run time by uid " +
                           std::to_string(saved->uid) + " at " + local_time_text(saved->set_at_s);
  if (!same_w(saved->config_budget_w, config_budget_w)) {
    r.action = BudgetRestore::Action::drop;
    r.message = what + " dropped: powergrad.conf's Budget changed from " +
                watts(saved->config_budget_w) + " to " + watts(config_budget_w) +
                " since, the configuration wins";
    return r;
  }
  if (has_schedule) {
    const bool same = saved->scheduled_w && scheduled_now_w
                          ? same_w(*saved->scheduled_w, *scheduled_now_w)
                          : !saved->scheduled_w && !scheduled_now_w;
    if (!same) {
      r.action = BudgetRestore::Action::drop;
      r.message = what + " dropped: the budget schedule has changed since (" +
                  (saved->scheduled_w ? watts(*saved->scheduled_w) : std::string("none")) + " then, " +
                  (scheduled_now_w ? watts(*scheduled_now_w) : std::string("none")) + " now)";
      return r;
    }
  }
  r.action = BudgetRestore::Action::apply;
  r.budget_w = saved->budget_w;
  r.message = what + " still applies; powergrad.conf says " + watts(config_budget_w);
  if (has_schedule && scheduled_now_w) r.message += ", the schedule " + watts(*scheduled_now_w);
  return r;
}

std::optional<RuntimeBudget> read_runtime_budget(const std::string &path, std::string *error) {
  if (error) error->clear();
  std::ifstream f(path);
  if (!f) {
    if (errno != ENOENT && error) *error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  std::string why;
  auto b = parse_runtime_budget(ss.str(), &why);
  if (!b && error) *error = path + ": " + why;
  return b;
}

std::string write_runtime_budget(const std::string &path, const RuntimeBudget &b) {
  if (std::string e = make_parent(path); !e.empty()) return e;
  const AtomicWrite w = write_file_atomic(path, format_runtime_budget(b), 0644);
  return w.ok() ? "" : "cannot write the run-time budget: " + w.error;
}

std::string remove_runtime_budget(const std::string &path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return "cannot remove " + path + ": " + std::strerror(errno);
  return "";
}

}  // namespace powergrad
