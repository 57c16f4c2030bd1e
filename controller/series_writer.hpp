// Writes the per-job power series in a thread of its own, so that the controller's loop
// (grants, leases, node sessions) never waits on the disk.
//
// Two kinds of work, done in the order they were asked for:
//   - finished(): the series of jobs that have ended (JobPowerLedger::take_finished_series),
//     each written once to the series folder (write_series_file: atomic, fsync'd); the job's
//     saved running copy is removed, so that a restart cannot take the older copy back; then
//     the folder is pruned (SeriesKeep, SeriesKeepDays).
//   - checkpoint(): the series of the jobs still running, saved to the running-series folder
//     (save_running_series), copied from the ledger one job at a time at the moment of
//     writing. A checkpoint asked for while one is still queued is not queued twice.
// Since both run in one thread, in order, a checkpoint never writes back the running copy of
// a job whose final series was written before it.
//
// With 10,000 running jobs a checkpoint writes 10,000 files: checkpoint_interval_s() grows
// with the time the last one took (ten times it, at least the base interval), so that the
// disk is busy with checkpoints at most a tenth of the time.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "controller/job_power.hpp"
#include "jobreport/series.hpp"

namespace powergrad {

class SeriesWriter {
 public:
  struct Settings {
    std::string series_dir;   // finished series; "" : not written
    std::string running_dir;  // running series; "" : not saved
    std::size_t keep_files = 1000;
    double keep_days = 30;
    double checkpoint_base_s = 60.0;
    // Finished series waiting to be written, at most; more are dropped (and counted).
    std::size_t max_queued = 100000;
  };
  // error: true for problems. Called from the writer's thread.
  using Log = std::function<void(bool error, const std::string &message)>;
  using WallClock = std::function<double()>;

  SeriesWriter(Settings settings, JobPowerLedger &ledger, WallClock wall, Log log);
  // Stops the thread after the work queued so far (see stop_within).
  ~SeriesWriter();
  SeriesWriter(const SeriesWriter &) = delete;
  SeriesWriter &operator=(const SeriesWriter &) = delete;

  void finished(std::vector<std::pair<std::uint32_t, JobSeries>> done);
  void checkpoint();
  // Seconds until the next checkpoint should be asked for, from the last one's duration.
  double checkpoint_interval_s() const;
  // Finishes the queued work and ends the thread; waits at most timeout_s. false: still
  // writing (the thread is left to finish on its own; the object must then stay alive).
  bool stop_within(double timeout_s);
  // Waits at most timeout_s until everything queued so far is written (tests).
  bool idle_within(double timeout_s);

  struct Stats {
    std::size_t written = 0;  // finished series files
    std::size_t failed = 0;   // finished series not written (errors)
    std::size_t dropped = 0;  // finished series dropped: the queue was full
    std::size_t checkpoints = 0;
    double last_checkpoint_s = 0;  // how long the last checkpoint took
    bool last_checkpoint_ok = false;  // whether it saved every series it had to
    std::size_t queued = 0;
  };
  Stats stats() const;

 private:
  struct Task {
    bool is_checkpoint = false;
    std::uint32_t job_id = 0;
    JobSeries series;
  };
  void run();
  void write_finished(const Task &t);
  void write_checkpoint();

  Settings settings_;
  JobPowerLedger &ledger_;
  WallClock wall_;
  Log log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool checkpoint_queued_ = false;
  bool busy_ = false;
  bool stopping_ = false;
  bool done_ = false;
  Stats stats_;
  std::string checkpoint_error_;  // the last one's problem, logged once until it changes
  std::thread thread_;
};

}  // namespace powergrad
