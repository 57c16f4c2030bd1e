#include "controller/log_summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace powergrad {

namespace {

// The catch-all kind once max_kinds is reached.
const char *const kOtherKinds = "(other kinds)";

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", std::max(0.0, s));
  return buf;
}

}  // namespace

LogSummary::LogSummary(double interval_s, std::size_t max_kinds, std::size_t burst)
    : interval_s_(interval_s > 0.0 ? interval_s : 10.0),
      max_kinds_(std::max<std::size_t>(max_kinds, 1)),
      burst_(std::max<std::size_t>(burst, 1)) {}

bool LogSummary::admit(const std::string &kind, const std::string &message, double now_s, int tag) {
  auto it = kinds_.find(kind);
  if (it == kinds_.end()) {
    const bool full = kinds_.size() >= max_kinds_;
    it = kinds_.find(full ? kOtherKinds : kind);
    if (it == kinds_.end()) {
      Kind k;
      k.since_s = now_s;
      k.tag = tag;
      k.logged = 1;
      kinds_.emplace(full ? kOtherKinds : kind, std::move(k));
      return true;
    }
  }
  Kind &k = it->second;
  if (k.logged < burst_) {
    ++k.logged;
    return true;
  }
  ++k.suppressed;
  ++suppressed_total_;
  k.last = message;
  return false;
}

std::vector<LogSummary::Line> LogSummary::flush(double now_s) {
  std::vector<Line> lines;
  for (auto it = kinds_.begin(); it != kinds_.end();) {
    Kind &k = it->second;
    if (!(now_s - k.since_s >= interval_s_)) {
      ++it;
      continue;
    }
    if (k.suppressed == 0) {
      it = kinds_.erase(it);
      continue;
    }
    lines.push_back({it->first,
                     std::to_string(k.suppressed) + " more like this in the last " +
                         seconds(now_s - k.since_s) + " s; last: " + k.last,
                     k.tag});
    k.suppressed = 0;
    k.last.clear();
    k.since_s = now_s;
    ++it;
  }
  return lines;
}

}  // namespace powergrad
