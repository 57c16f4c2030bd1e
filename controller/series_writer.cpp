#include "controller/series_writer.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace powergrad {

SeriesWriter::SeriesWriter(Settings settings, JobPowerLedger &ledger, WallClock wall, Log log)
    : settings_(std::move(settings)),
      ledger_(ledger),
      wall_(std::move(wall)),
      log_(std::move(log)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "pg-series");
    run();
  });
}

SeriesWriter::~SeriesWriter() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> g(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
}

void SeriesWriter::finished(std::vector<std::pair<std::uint32_t, JobSeries>> done) {
  if (done.empty()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto &[id, s] : done) {
      if (queue_.size() >= settings_.max_queued) {
        ++stats_.dropped;
        continue;
      }
      Task t;
      t.job_id = id;
      t.series = std::move(s);
      queue_.push_back(std::move(t));
    }
  }
  cv_.notify_all();
}

void SeriesWriter::checkpoint() {
  if (settings_.running_dir.empty()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (checkpoint_queued_) return;
    checkpoint_queued_ = true;
    Task t;
    t.is_checkpoint = true;
    queue_.push_back(std::move(t));
  }
  cv_.notify_all();
}

double SeriesWriter::checkpoint_interval_s() const {
  std::lock_guard<std::mutex> g(mu_);
  return std::max(settings_.checkpoint_base_s, 10.0 * stats_.last_checkpoint_s);
}

SeriesWriter::Stats SeriesWriter::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  Stats s = stats_;
  s.queued = queue_.size();
  return s;
}

bool SeriesWriter::idle_within(double timeout_s) {
  std::unique_lock<std::mutex> g(mu_);
  return cv_.wait_for(g, std::chrono::duration<double>(timeout_s),
                      [&] { return queue_.empty() && !busy_; });
}

bool SeriesWriter::stop_within(double timeout_s) {
  if (!thread_.joinable()) return true;
  std::unique_lock<std::mutex> g(mu_);
  stopping_ = true;
  cv_.notify_all();
  if (!cv_.wait_for(g, std::chrono::duration<double>(timeout_s), [&] { return done_; })) {
    g.unlock();
    thread_.detach();
    return false;
  }
  g.unlock();
  thread_.join();
  return true;
}

void SeriesWriter::run() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    cv_.wait(g, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, and all done
    Task t = std::move(queue_.front());
    queue_.pop_front();
    if (t.is_checkpoint) checkpoint_queued_ = false;
    busy_ = true;
    g.unlock();
    try {
      if (t.is_checkpoint) {
        write_checkpoint();
      } else {
        write_finished(t);
      }
    } catch (const std::exception &e) {
      log_(true, std::string("power series: ") + e.what());
    } catch (...) {
      log_(true, "power series: unknown error");
    }
    g.lock();
    busy_ = false;
    cv_.notify_all();
  }
  done_ = true;
  cv_.notify_all();
}

void SeriesWriter::write_finished(const Task &t) {
  if (settings_.series_dir.empty()) return;
  const std::string err = write_series_file(settings_.series_dir, t.job_id, t.series);
  bool ok = err.empty();
  if (ok) {
    // Its saved copy, if any, is out of date: it must not replace this after a restart.
    if (!settings_.running_dir.empty())
      (void)::unlink(series_file_path(settings_.running_dir, t.job_id).c_str());
  } else {
    log_(true, "job " + std::to_string(t.job_id) + ": power series not written: " + err);
  }
  bool last_of_batch = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    ++(ok ? stats_.written : stats_.failed);
    last_of_batch = queue_.empty() || queue_.front().is_checkpoint;
  }
  if (last_of_batch) {
    std::string perr;
    prune_series_dir(settings_.series_dir, settings_.keep_files, settings_.keep_days, wall_(),
                     &perr);
    if (!perr.empty()) log_(true, "series folder: " + perr);
  }
}

void SeriesWriter::write_checkpoint() {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::uint32_t> ids = ledger_.unfinished_ids();
  const std::string err = save_running_series(
      settings_.running_dir, ids, [this](std::uint32_t id) { return ledger_.series(id); });
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard<std::mutex> g(mu_);
    ++stats_.checkpoints;
    stats_.last_checkpoint_s = took;
    stats_.last_checkpoint_ok = err.empty();
  }
  if (err != checkpoint_error_) {
    if (err.empty()) {
      log_(false, "power series of running jobs saved again in " + settings_.running_dir);
    } else {
      log_(true, "power series of running jobs not saved: " + err +
                     " (a restart of slurmctld would lose them)");
    }
    checkpoint_error_ = err;
  }
}

}  // namespace powergrad
