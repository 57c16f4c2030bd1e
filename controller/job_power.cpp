#include "controller/job_power.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace powergrad {

std::optional<std::uint32_t> job_id_of_key(const std::string &key) {
  std::uint64_t id = 0;
  std::size_t i = 0;
  for (; i < key.size() && key[i] >= '0' && key[i] <= '9'; ++i) {
    id = id * 10 + static_cast<std::uint64_t>(key[i] - '0');
    if (id > 0xffffffffull) return std::nullopt;
  }
  if (i == 0 || id == 0) return std::nullopt;
  if (i < key.size() && key[i] != '.' && key[i] != '_' && key[i] != '+') return std::nullopt;
  return static_cast<std::uint32_t>(id);
}

std::size_t JobPowerLedger::on_report(const NodeReport &report, double now_s, std::size_t slot) {
  if (slot >= nodes_.size() || nodes_[slot].node != report.node) {
    const auto [it, added] = node_slots_.try_emplace(report.node, nodes_.size());
    if (added) {
      nodes_.emplace_back();
      nodes_.back().node = report.node;
    }
    slot = it->second;
  }
  NodeLast &n = nodes_[slot];
  n.at_s = now_s;
  n.power_w = report.power_w;
  n.caps_w = report.caps_w;
  n.jobs.clear();
  std::vector<std::optional<std::uint32_t>> &ids = entry_ids_;
  ids.clear();
  for (const JobSummary &s : report.jobs) {
    const auto id = job_id_of_key(s.job);
    ids.push_back(id);
    if (!id) continue;
    auto j = std::lower_bound(n.jobs.begin(), n.jobs.end(), *id,
                              [](const NodeJob &a, std::uint32_t b) { return a.id < b; });
    if (j == n.jobs.end() || j->id != *id) j = n.jobs.insert(j, NodeJob{*id, 0u, 0.0, 0});
    const auto kind = static_cast<unsigned>(s.counters);
    if (s.counters != CounterKind::none && kind < 32) j->counters |= 1u << kind;
    if (s.valid && std::isfinite(s.speedup_per_w)) {
      j->gradient_sum += s.speedup_per_w;
      ++j->gradient_n;
    }
  }

  // The steps' own accounting (repeated on each of a step's entries: the first one counts,
  // so they are taken last to first).
  std::lock_guard<std::mutex> g(mu_);
  for (std::size_t e = report.jobs.size(); e-- > 0;) {
    const JobSummary &s = report.jobs[e];
    const auto id = ids[e];
    if (!id) continue;
    Acc &a = jobs_[*id];
    a.measured[report.node][s.job] =
        StepAccounting{s.energy_j, s.avg_w, s.cap_min_w, s.cap_mean_w, s.cap_max_w, s.elapsed_s};
    a.last_sample_s = std::max(a.last_sample_s, now_s);  // seen: not to be pruned yet
  }
  return slot;
}

void JobPowerLedger::apply_measured(const Acc &a, JobFigures &f) {
  if (a.measured.empty()) return;
  bool energy_known = true, caps_known = true;
  double energy = 0.0, power = 0.0, seconds = 0.0, cmin = 0.0, cmean = 0.0, cmax = 0.0;
  for (const auto &[node, steps] : a.measured) {
    double n_energy = 0.0, n_seconds = 0.0, n_cmin = 0.0, n_cmean = 0.0, n_cmax = 0.0;
    bool n_caps = false;
    for (const auto &[key, st] : steps) {
      if (!std::isfinite(st.energy_j) || !std::isfinite(st.elapsed_s) || st.elapsed_s < 0.0) {
        energy_known = false;
      } else {
        n_energy += st.energy_j;
      }
      if (std::isfinite(st.elapsed_s)) n_seconds = std::max(n_seconds, st.elapsed_s);
      if (std::isfinite(st.cap_min_w) && std::isfinite(st.cap_mean_w) && std::isfinite(st.cap_max_w)) {
        // Steps of one job on a node share its domains: the largest caps are the job's.
        n_cmin = n_caps ? std::max(n_cmin, st.cap_min_w) : st.cap_min_w;
        n_cmean = n_caps ? std::max(n_cmean, st.cap_mean_w) : st.cap_mean_w;
        n_cmax = n_caps ? std::max(n_cmax, st.cap_max_w) : st.cap_max_w;
        n_caps = true;
      } else {
        caps_known = false;
      }
    }
    energy += n_energy;
    if (n_seconds > 0.0) power += n_energy / n_seconds;
    seconds = std::max(seconds, n_seconds);
    cmin += n_cmin;
    cmean += n_cmean;
    cmax += n_cmax;
  }
  if (energy_known && seconds > 0.0) {
    f.energy_j = energy;
    f.seconds = seconds;
    f.avg_w = power;
    f.measured_energy = true;
  }
  if (caps_known) {
    f.cap_min_w = cmin;
    f.cap_mean_w = cmean;
    f.cap_max_w = cmax;
    f.measured_caps = true;
  }
}

void JobPowerLedger::sample(double now_s, const GrantLookup &grant_w) {
  double dt = 0.0;
  if (std::isfinite(last_sample_s_)) dt = std::clamp(now_s - last_sample_s_, 0.0, stale_after_s_);
  last_sample_s_ = now_s;

  std::unordered_map<std::uint32_t, PeriodSum> &period = period_;
  period.clear();
  for (std::size_t i = 0; i < nodes_.size();) {
    const NodeLast &n = nodes_[i];
    if (now_s - n.at_s > stale_after_s_) {
      // Its place goes to the last node; the callers' hints for both are checked by name.
      node_slots_.erase(n.node);
      if (i + 1 < nodes_.size()) {
        nodes_[i] = std::move(nodes_.back());
        node_slots_[nodes_[i].node] = i;
      }
      nodes_.pop_back();
      continue;
    }
    if (!n.jobs.empty()) {
      const double share = 1.0 / static_cast<double>(n.jobs.size());
      const double grant = grant_w ? grant_w(n.node) : std::numeric_limits<double>::quiet_NaN();
      for (const NodeJob &j : n.jobs) {
        PeriodSum &p = period[j.id];
        if (std::isfinite(n.power_w)) {
          p.power_w += n.power_w * share;
        } else {
          p.power_known = false;
        }
        if (std::isfinite(n.caps_w)) {
          p.cap_w += n.caps_w * share;
        } else {
          p.cap_known = false;
        }
        if (std::isfinite(grant)) {
          p.grant_w += grant * share;
        } else {
          p.grant_known = false;
        }
        p.counters |= j.counters;
        p.gradient_sum += j.gradient_sum;
        p.gradient_n += j.gradient_n;
      }
    }
    ++i;
  }

  // The jobs' places are found before the lock is taken: only this thread adds or removes
  // jobs, so its lookups may run beside the readers' (slurmctld's job hooks, under its job
  // write lock, wait for no more than the updates below). Jobs not there yet are added under
  // the lock.
  std::vector<Staged> &staged = staged_;
  staged.clear();
  for (const auto &[id, p] : period) {
    const auto it = jobs_.find(id);
    staged.push_back({it == jobs_.end() ? nullptr : &it->second, id, &p});
  }
  std::lock_guard<std::mutex> g(mu_);
  for (Staged &st : staged) {
    if (!st.acc) st.acc = &jobs_[st.id];
    Acc &a = *st.acc;
    const PeriodSum &p = *st.sum;
    JobFigures &f = a.f;
    ++f.samples;
    a.last_sample_s = now_s;
    if (p.power_known) {
      f.energy_j += p.power_w * dt;
      f.seconds += dt;
      if (f.seconds > 0.0) f.avg_w = f.energy_j / f.seconds;
    }
    f.cap_min_w = std::isnan(f.cap_min_w) ? p.cap_w : std::min(f.cap_min_w, p.cap_w);
    f.cap_max_w = std::isnan(f.cap_max_w) ? p.cap_w : std::max(f.cap_max_w, p.cap_w);
    a.cap_sum_w += p.cap_w;
    ++a.cap_samples;
    f.cap_mean_w = a.cap_sum_w / static_cast<double>(a.cap_samples);
    if (p.gradient_n > 0) {
      a.gradient_sum += p.gradient_sum / static_cast<double>(p.gradient_n);
      ++a.gradient_samples;
      f.gradient = a.gradient_sum / static_cast<double>(a.gradient_samples);
    }
    if (!a.series_taken) {
      SeriesPoint pt;
      pt.t_s = now_s;
      pt.power_w = p.power_known ? p.power_w : std::numeric_limits<double>::quiet_NaN();
      pt.cap_w = p.cap_known ? p.cap_w : std::numeric_limits<double>::quiet_NaN();
      pt.grant_w = p.grant_known ? p.grant_w : std::numeric_limits<double>::quiet_NaN();
      a.series.add(pt);
      a.last_series_s = now_s;
    }
    if ((a.counters | p.counters) != a.counters || f.counters.empty()) {
      a.counters |= p.counters;
      f.counters.clear();
      for (unsigned k = 0; k < 32; ++k) {
        if (!(a.counters & (1u << k))) continue;
        if (!f.counters.empty()) f.counters += '+';
        f.counters += to_string(static_cast<CounterKind>(k));
      }
    }
  }
}

std::optional<JobFigures> JobPowerLedger::figures(std::uint32_t job_id) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  JobFigures f = it->second.f;
  apply_measured(it->second, f);
  return f;
}

void JobPowerLedger::prune(double now_s, double older_than_s, const std::set<std::uint32_t> *known,
                           double unknown_after_s) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    const Acc &a = it->second;
    const double quiet = now_s - a.last_sample_s;
    const bool forgotten = known != nullptr && !known->count(it->first) &&
                           quiet > unknown_after_s && (a.series_taken || a.series.empty());
    if (quiet > older_than_s || forgotten) {
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<std::pair<std::uint32_t, JobSeries>> JobPowerLedger::take_finished_series(
    double now_s, double quiet_s, const std::set<std::uint32_t> *running) {
  std::vector<std::pair<std::uint32_t, JobSeries>> out;
  std::lock_guard<std::mutex> g(mu_);
  for (auto &[id, a] : jobs_) {
    if (a.series_taken || a.series.empty()) continue;
    if (running && running->count(id)) continue;
    if (now_s - a.last_series_s < quiet_s) continue;
    out.emplace_back(id, std::move(a.series));
    a.series = JobSeries();
    a.series_taken = true;
  }
  return out;
}

JobSeries JobPowerLedger::series(std::uint32_t job_id) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? JobSeries() : it->second.series;
}

std::vector<std::pair<std::uint32_t, JobSeries>> JobPowerLedger::unfinished_series() const {
  std::vector<std::pair<std::uint32_t, JobSeries>> out;
  std::lock_guard<std::mutex> g(mu_);
  for (const auto &[id, a] : jobs_) {
    if (!a.series_taken && !a.series.empty()) out.emplace_back(id, a.series);
  }
  return out;
}

std::vector<std::uint32_t> JobPowerLedger::unfinished_ids() const {
  std::vector<std::uint32_t> out;
  std::lock_guard<std::mutex> g(mu_);
  for (const auto &[id, a] : jobs_) {
    if (!a.series_taken && !a.series.empty()) out.push_back(id);
  }
  return out;
}

void JobPowerLedger::restore_series(std::uint32_t job_id, const JobSeries &saved, double now_s) {
  if (saved.empty()) return;
  std::lock_guard<std::mutex> g(mu_);
  Acc &a = jobs_[job_id];
  if (a.series_taken) return;
  if (a.series.empty()) {
    a.series = saved;
  } else {
    std::vector<SeriesPoint> pts = saved.points();
    const double last = pts.back().t_s;
    for (const SeriesPoint &p : a.series.points()) {
      if (p.t_s > last) pts.push_back(p);
    }
    a.series = JobSeries::from_points(pts, saved.stride(), saved.capacity());
  }
  // Not quiet yet, nor to be pruned: the time since the restart counts from now.
  a.last_series_s = std::max(a.last_series_s, now_s);
  a.last_sample_s = std::max(a.last_sample_s, now_s);
}

std::size_t JobPowerLedger::job_count() const {
  std::lock_guard<std::mutex> g(mu_);
  return jobs_.size();
}

}  // namespace powergrad
