// A job's power over time, for `powergrad report --plot`: a bounded series of
// (time, power, cap, grant) points the controller builds from the node reports it
// receives (one point per control period while the job runs), written at the job's end
// as a small CSV file, and read back by the report command.
//
// Bounded: at most `capacity` points (default 720). When a point arrives and the series is
// full, neighbouring pairs are merged (time, power, cap and grant averaged, the merged
// point covering both periods), so the series keeps covering the whole job at half the
// resolution; later points are then added at that coarser step (`stride` periods per
// point, doubling at each merge). Memory and file size stay bounded whatever the job's
// length: a 720-point series is about 30 kB of CSV. The controller keeps a running job's
// series in memory, and saves it every minute and at its stop in a folder of its state
// (save_running_series, StateDir/series-running): at its next start it takes the series of
// the jobs slurmctld still knows back (load_running_series), so a restart loses at most the
// minute before a crash and the time slurmctld was down.
//
// File format (CSV, '#' lines are comments):
//   # powergrad series v=1 job=1234 stride=1
//   time_s,power_w,cap_w,grant_w
//   1764000000.000,212.5,240.0,250.0
// time_s is wall-clock seconds since the epoch; power_w the job's power summed over its
// nodes (a node's power shared equally among the jobs on it), cap_w likewise for the
// caps in force, grant_w for the controller's grants; an unknown value is empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace powergrad {

struct SeriesPoint {
  double t_s = 0.0;
  double power_w = 0.0;  // NaN: unknown
  double cap_w = 0.0;    // NaN: unknown
  double grant_w = 0.0;  // NaN: unknown
};

class JobSeries {
 public:
  static constexpr std::size_t kDefaultCapacity = 720;
  explicit JobSeries(std::size_t capacity = kDefaultCapacity);

  // Adds one period's point. With stride > 1 (after merges), `stride` consecutive points
  // are averaged into one before it is stored.
  void add(const SeriesPoint &p);

  // Stored points plus the partial one being accumulated (if any), in time order.
  std::vector<SeriesPoint> points() const;
  std::size_t capacity() const { return capacity_; }
  std::size_t stride() const { return stride_; }  // periods per stored point
  bool empty() const { return points_.empty() && pending_n_ == 0; }

  // Rebuilds a series from stored points (a file); more than capacity are merged down.
  static JobSeries from_points(const std::vector<SeriesPoint> &pts, std::size_t stride,
                               std::size_t capacity = kDefaultCapacity);

 private:
  void store(const SeriesPoint &p);
  std::size_t capacity_;
  std::size_t stride_ = 1;
  std::vector<SeriesPoint> points_;
  SeriesPoint pending_{};
  std::size_t pending_n_ = 0;
  std::size_t pending_known_[3] = {0, 0, 0};
};

// Merges two points into one (mean of each known value; unknown if neither knows it).
SeriesPoint merge_points(const SeriesPoint &a, const SeriesPoint &b);

std::string series_to_csv(std::uint32_t job_id, const JobSeries &s);

struct SeriesParse {
  std::optional<std::vector<SeriesPoint>> points;
  std::uint32_t job_id = 0;  // from the header comment, 0 if absent
  std::size_t stride = 1;
  std::string error;  // "line N: problem"
};
SeriesParse parse_series_csv(const std::string &text);

// The file of a job in a series folder: DIR/JOBID.csv.
std::string series_file_path(const std::string &dir, std::uint32_t job_id);

// Writes DIR/JOBID.csv atomically (temporary file + rename, mode 0644), creating DIR (and
// its parents, mode 0755) if needed. Returns "" or the problem, naming the path.
std::string write_series_file(const std::string &dir, std::uint32_t job_id, const JobSeries &s);

// Reads a series file back (the points and stride it was written with; *job_id, if given,
// the job its header names, 0 if none). nullopt with *error (naming the path) if it cannot
// be read or parsed.
std::optional<JobSeries> read_series_file(const std::string &path, std::string *error,
                                          std::uint32_t *job_id = nullptr);

// The series of running jobs, kept across restarts of slurmctld in their own folder
// (StateDir/series-running), in the same format: writes each job's series as DIR/JOBID.csv
// (atomically, write_series_file) and removes DIR's other JOBID.csv files (jobs whose series
// has since been handed over, or that are gone). Returns "" or the first problem.
std::string save_running_series(const std::string &dir,
                                const std::vector<std::pair<std::uint32_t, JobSeries>> &series);
// The same, one job at a time, so that no copy of every series is held at once: `fetch`
// gives a copy of a job's series (empty: nothing to save for it any more, its file goes).
std::string save_running_series(const std::string &dir, const std::vector<std::uint32_t> &ids,
                                const std::function<JobSeries(std::uint32_t)> &fetch);

struct RunningSeriesLoad {
  std::vector<std::pair<std::uint32_t, JobSeries>> series;  // jobs in `known`, by job id
  std::size_t removed = 0;          // files removed: jobs not known, unreadable, leftovers
  std::vector<std::string> errors;  // unreadable files (removed), folder problems
};
// Reads back the series save_running_series wrote in DIR for the jobs in `known` (the jobs
// slurmctld still knows, running or ended); their files stay until the next save. Files of
// other jobs, files that cannot be parsed or whose header names another job, and leftover
// temporary files are removed. A
// missing folder is not an error (nothing was saved).
RunningSeriesLoad load_running_series(const std::string &dir, const std::set<std::uint32_t> &known);

// Keeps at most keep_files series files in dir (the newest by modification time) and, when
// keep_days > 0, none older than that. Only files named NUMBER.csv are touched. Returns the
// number removed; problems go to *error (if given).
std::size_t prune_series_dir(const std::string &dir, std::size_t keep_files, double keep_days,
                             double now_s, std::string *error = nullptr);

}  // namespace powergrad
