#include "nodeagent/job_energy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace powergrad {

std::vector<double> attribute_energy(double domain_energy_j,
                                     const std::vector<double> &task_clock_s) {
  std::vector<double> out(task_clock_s.size(), 0.0);
  if (!std::isfinite(domain_energy_j) || domain_energy_j < 0.0) return out;
  double total = 0.0;
  for (double t : task_clock_s) {
    if (std::isfinite(t) && t > 0.0) total += t;
  }
  if (total <= 0.0) return out;
  for (std::size_t i = 0; i < task_clock_s.size(); ++i) {
    const double t = task_clock_s[i];
    if (std::isfinite(t) && t > 0.0) out[i] = domain_energy_j * (t / total);
  }
  return out;
}

namespace {

std::string watts(const std::optional<double> &w) {
  if (!w) return "none";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", *w);
  return buf;
}

}  // namespace

std::string format_job_summary(const JobEnergySummary &s, const std::string &node) {
  char buf[128];
  if (s.energy_measured) {
    std::snprintf(buf, sizeof buf, "energy_j=%.1f avg_w=%.1f", s.energy_j, s.avg_w());
  } else {
    std::snprintf(buf, sizeof buf, "energy_j=unknown avg_w=unknown");
  }
  return "job " + s.key + " on " + node + ": " + buf + " cap_min_w=" + watts(s.cap_min_w) +
         " cap_mean_w=" + watts(s.cap_mean_w()) + " cap_max_w=" + watts(s.cap_max_w) +
         " counters=" + (s.counters.empty() ? "none" : s.counters);
}

void JobEnergyLedger::begin(const std::string &key, JobMode mode, const std::string &counters,
                            bool energy_measured) {
  if (running_.count(key)) return;
  JobEnergySummary s;
  s.energy_measured = energy_measured;
  s.key = key;
  s.mode = mode;
  s.counters = counters;
  running_.emplace(key, std::move(s));
}

void JobEnergyLedger::add_energy(const std::string &key, double energy_j) {
  auto it = running_.find(key);
  if (it == running_.end() || !std::isfinite(energy_j) || energy_j <= 0.0) return;
  it->second.energy_j += energy_j;
}

void JobEnergyLedger::add_period(const std::string &key, double seconds,
                                 std::optional<double> cap_w) {
  auto it = running_.find(key);
  if (it == running_.end() || !std::isfinite(seconds) || seconds <= 0.0) return;
  JobEnergySummary &s = it->second;
  s.seconds += seconds;
  if (cap_w && std::isfinite(*cap_w)) {
    s.cap_min_w = s.cap_min_w ? std::min(*s.cap_min_w, *cap_w) : *cap_w;
    s.cap_max_w = s.cap_max_w ? std::max(*s.cap_max_w, *cap_w) : *cap_w;
    s.cap_weighted_w_s += *cap_w * seconds;
    s.cap_seconds += seconds;
  }
}

std::optional<JobEnergySummary> JobEnergyLedger::finish(const std::string &key) {
  auto it = running_.find(key);
  if (it == running_.end()) return std::nullopt;
  JobEnergySummary s = std::move(it->second);
  running_.erase(it);
  s.running = false;
  if (keep_finished_ > 0) {
    finished_.push_back(s);
    while (finished_.size() > keep_finished_) finished_.pop_front();
  }
  return s;
}

std::vector<JobEnergySummary> JobEnergyLedger::summaries() const {
  std::vector<JobEnergySummary> out;
  out.reserve(running_.size() + finished_.size());
  for (const auto &kv : running_) out.push_back(kv.second);
  out.insert(out.end(), finished_.begin(), finished_.end());
  return out;
}

std::vector<std::string> JobEnergyLedger::running_keys() const {
  std::vector<std::string> out;
  for (const auto &kv : running_) out.push_back(kv.first);
  return out;
}

}  // namespace powergrad
