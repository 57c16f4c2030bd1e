#include "jobreport/series.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "posix/atomic_file.hpp"

namespace powergrad {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double mean_known(double a, double b) {
  const bool ka = std::isfinite(a), kb = std::isfinite(b);
  if (ka && kb) return (a + b) / 2.0;
  if (ka) return a;
  if (kb) return b;
  return kNaN;
}

// decimals: 2 or 3.
std::string num(double v, int decimals) {
  if (!std::isfinite(v)) return "";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

bool parse_field(const std::string &s, double &out) {
  if (s.empty()) {
    out = kNaN;
    return true;
  }
  char *end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && errno == 0 && std::isfinite(out);
}

}  // namespace

SeriesPoint merge_points(const SeriesPoint &a, const SeriesPoint &b) {
  SeriesPoint m;
  m.t_s = (a.t_s + b.t_s) / 2.0;
  m.power_w = mean_known(a.power_w, b.power_w);
  m.cap_w = mean_known(a.cap_w, b.cap_w);
  m.grant_w = mean_known(a.grant_w, b.grant_w);
  return m;
}

JobSeries::JobSeries(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 2)) {
  points_.reserve(std::min<std::size_t>(capacity_, 64));
}

void JobSeries::store(const SeriesPoint &p) {
  if (points_.size() >= capacity_) {
    // Full: merge neighbouring pairs (an odd last point stays as it is) and halve the
    // resolution from now on.
    std::vector<SeriesPoint> merged;
    merged.reserve(capacity_);
    for (std::size_t i = 0; i + 1 < points_.size(); i += 2) merged.push_back(merge_points(points_[i], points_[i + 1]));
    if (points_.size() % 2) merged.push_back(points_.back());
    points_ = std::move(merged);
    stride_ *= 2;
  }
  points_.push_back(p);
}

void JobSeries::add(const SeriesPoint &p) {
  if (stride_ == 1 && pending_n_ == 0) {
    store(p);
    return;
  }
  // Accumulate `stride_` periods into one point (sums, then means of the known values).
  if (pending_n_ == 0) {
    pending_ = SeriesPoint{0.0, 0.0, 0.0, 0.0};
    std::fill(std::begin(pending_known_), std::end(pending_known_), 0);
  }
  pending_.t_s += p.t_s;
  const double *v[3] = {&p.power_w, &p.cap_w, &p.grant_w};
  double *acc[3] = {&pending_.power_w, &pending_.cap_w, &pending_.grant_w};
  for (int k = 0; k < 3; ++k) {
    if (std::isfinite(*v[k])) {
      *acc[k] += *v[k];
      ++pending_known_[k];
    }
  }
  ++pending_n_;
  if (pending_n_ >= stride_) {
    SeriesPoint out;
    out.t_s = pending_.t_s / static_cast<double>(pending_n_);
    out.power_w = pending_known_[0] ? pending_.power_w / static_cast<double>(pending_known_[0]) : kNaN;
    out.cap_w = pending_known_[1] ? pending_.cap_w / static_cast<double>(pending_known_[1]) : kNaN;
    out.grant_w = pending_known_[2] ? pending_.grant_w / static_cast<double>(pending_known_[2]) : kNaN;
    pending_n_ = 0;
    store(out);
  }
}

std::vector<SeriesPoint> JobSeries::points() const {
  std::vector<SeriesPoint> out = points_;
  if (pending_n_ > 0) {
    SeriesPoint p;
    p.t_s = pending_.t_s / static_cast<double>(pending_n_);
    p.power_w = pending_known_[0] ? pending_.power_w / static_cast<double>(pending_known_[0]) : kNaN;
    p.cap_w = pending_known_[1] ? pending_.cap_w / static_cast<double>(pending_known_[1]) : kNaN;
    p.grant_w = pending_known_[2] ? pending_.grant_w / static_cast<double>(pending_known_[2]) : kNaN;
    out.push_back(p);
  }
  return out;
}

JobSeries JobSeries::from_points(const std::vector<SeriesPoint> &pts, std::size_t stride,
                                 std::size_t capacity) {
  JobSeries s(capacity);
  for (const SeriesPoint &p : pts) s.store(p);
  s.stride_ = std::max<std::size_t>(s.stride_, 1) * std::max<std::size_t>(stride, 1);
  return s;
}

std::string series_to_csv(std::uint32_t job_id, const JobSeries &s) {
  std::ostringstream o;
  o << "# powergrad series v=1 job=" << job_id << " stride=" << s.stride() << "\n";
  o << "time_s,power_w,cap_w,grant_w\n";
  for (const SeriesPoint &p : s.points()) {
    o << num(p.t_s, 3) << ',' << num(p.power_w, 2) << ',' << num(p.cap_w, 2) << ','
      << num(p.grant_w, 2) << '\n';
  }
  return o.str();
}

SeriesParse parse_series_csv(const std::string &text) {
  SeriesParse r;
  std::vector<SeriesPoint> pts;
  std::istringstream in(text);
  std::string line;
  int no = 0;
  bool header = false;
  auto fail = [&](const std::string &why) {
    r.error = "line " + std::to_string(no) + ": " + why;
    return r;
  };
  while (std::getline(in, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line.substr(1));
      std::string w;
      while (words >> w) {
        if (w.rfind("job=", 0) == 0) r.job_id = static_cast<std::uint32_t>(std::strtoul(w.c_str() + 4, nullptr, 10));
        if (w.rfind("stride=", 0) == 0) {
          const unsigned long st = std::strtoul(w.c_str() + 7, nullptr, 10);
          r.stride = st > 0 ? st : 1;
        }
      }
      continue;
    }
    if (!header) {
      if (line != "time_s,power_w,cap_w,grant_w") return fail("expected the header 'time_s,power_w,cap_w,grant_w'");
      header = true;
      continue;
    }
    std::vector<std::string> f;
    std::string cell;
    std::istringstream cells(line);
    while (std::getline(cells, cell, ',')) f.push_back(cell);
    if (!line.empty() && line.back() == ',') f.emplace_back();
    if (f.size() != 4) return fail("expected 4 fields, found " + std::to_string(f.size()));
    SeriesPoint p;
    if (!parse_field(f[0], p.t_s) || !std::isfinite(p.t_s)) return fail("time_s '" + f[0] + "' is not a number");
    if (!parse_field(f[1], p.power_w)) return fail("power_w '" + f[1] + "' is not a number");
    if (!parse_field(f[2], p.cap_w)) return fail("cap_w '" + f[2] + "' is not a number");
    if (!parse_field(f[3], p.grant_w)) return fail("grant_w '" + f[3] + "' is not a number");
    if (!pts.empty() && p.t_s < pts.back().t_s) return fail("time goes backwards");
    pts.push_back(p);
  }
  if (!header) {
    no = std::max(no, 1);
    return fail("not a PowerGrad series (no header line)");
  }
  r.points = std::move(pts);
  return r;
}

std::string series_file_path(const std::string &dir, std::uint32_t job_id) {
  return dir + "/" + std::to_string(job_id) + ".csv";
}

namespace {

std::string make_dirs(const std::string &dir) {
  if (dir.empty()) return "no folder given";
  std::string part;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    part = dir.substr(0, pos);
    if (part.empty()) continue;
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      return "cannot create " + part + ": " + std::strerror(errno);
    }
  }
  struct stat st{};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return dir + " is not a folder";
  return "";
}

bool series_name(const char *name) {
  const std::size_t n = std::strlen(name);
  if (n < 5 || std::strcmp(name + n - 4, ".csv") != 0) return false;
  for (std::size_t i = 0; i + 4 < n; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return true;
}

// The job id of a series file's name (NUMBER.csv), 0 if it is not one.
std::uint32_t series_name_job(const char *name) {
  if (!series_name(name) || std::strlen(name) > 14) return 0;
  const unsigned long long id = std::strtoull(name, nullptr, 10);
  return id > 0xffffffffull ? 0 : static_cast<std::uint32_t>(id);
}

// A leftover of an interrupted write_series_file: NUMBER.csv.tmp.
bool series_tmp_name(const char *name) {
  const std::size_t n = std::strlen(name);
  if (n < 5 || std::strcmp(name + n - 4, ".tmp") != 0) return false;
  return series_name(std::string(name, n - 4).c_str());
}

}  // namespace

std::optional<JobSeries> read_series_file(const std::string &path, std::string *error,
                                          std::uint32_t *job_id) {
  std::ifstream f(path);
  if (!f) {
    if (error) *error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  const SeriesParse parsed = parse_series_csv(ss.str());
  if (!parsed.points) {
    if (error) *error = path + ": " + parsed.error;
    return std::nullopt;
  }
  if (job_id) *job_id = parsed.job_id;
  return JobSeries::from_points(*parsed.points, parsed.stride);
}

std::string save_running_series(const std::string &dir,
                                const std::vector<std::pair<std::uint32_t, JobSeries>> &series) {
  std::vector<std::uint32_t> ids;
  std::map<std::uint32_t, const JobSeries *> by_id;
  for (const auto &[id, s] : series) {
    ids.push_back(id);
    by_id[id] = &s;
  }
  return save_running_series(dir, ids, [&](std::uint32_t id) { return *by_id.at(id); });
}

std::string save_running_series(const std::string &dir, const std::vector<std::uint32_t> &ids,
                                const std::function<JobSeries(std::uint32_t)> &fetch) {
  std::string first_error;
  std::set<std::uint32_t> keep;  // a job whose series failed to save keeps its older file
  for (std::uint32_t id : ids) {
    const JobSeries s = fetch(id);
    if (s.empty()) continue;
    keep.insert(id);
    const std::string e = write_series_file(dir, id, s);
    if (!e.empty() && first_error.empty()) first_error = e;
  }
  DIR *d = ::opendir(dir.c_str());
  if (!d) {
    if (errno != ENOENT && first_error.empty())
      first_error = "cannot read " + dir + ": " + std::strerror(errno);
    return first_error;
  }
  std::vector<std::string> stale;
  while (dirent *e = ::readdir(d)) {
    const std::uint32_t id = series_name_job(e->d_name);
    if (id != 0 && !keep.count(id)) stale.push_back(dir + "/" + e->d_name);
  }
  ::closedir(d);
  for (const std::string &p : stale) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT && first_error.empty())
      first_error = "cannot remove " + p + ": " + std::strerror(errno);
  }
  return first_error;
}

RunningSeriesLoad load_running_series(const std::string &dir,
                                      const std::set<std::uint32_t> &known) {
  RunningSeriesLoad r;
  DIR *d = ::opendir(dir.c_str());
  if (!d) {
    if (errno != ENOENT) r.errors.push_back("cannot read " + dir + ": " + std::strerror(errno));
    return r;
  }
  std::vector<std::pair<std::uint32_t, std::string>> files;
  std::vector<std::string> remove;
  while (dirent *e = ::readdir(d)) {
    const std::uint32_t id = series_name_job(e->d_name);
    const std::string p = dir + "/" + e->d_name;
    if (id != 0) {
      files.emplace_back(id, p);
    } else if (series_tmp_name(e->d_name)) {
      remove.push_back(p);
    }
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  for (const auto &[id, p] : files) {
    if (!known.count(id)) {
      remove.push_back(p);
      continue;
    }
    std::string err;
    std::uint32_t header_id = 0;
    std::optional<JobSeries> s = read_series_file(p, &err, &header_id);
    if (s && header_id != 0 && header_id != id) {
      err = p + ": holds the series of job " + std::to_string(header_id);
      s.reset();
    }
    if (!s) {
      r.errors.push_back(err + " (removed)");
      remove.push_back(p);
      continue;
    }
    r.series.emplace_back(id, std::move(*s));
  }
  for (const std::string &p : remove) {
    if (::unlink(p.c_str()) == 0) {
      ++r.removed;
    } else if (errno != ENOENT) {
      r.errors.push_back("cannot remove " + p + ": " + std::strerror(errno));
    }
  }
  return r;
}

std::string write_series_file(const std::string &dir, std::uint32_t job_id, const JobSeries &s) {
  if (std::string e = make_dirs(dir); !e.empty()) return e;
  const AtomicWrite w =
      write_file_atomic(series_file_path(dir, job_id), series_to_csv(job_id, s), 0644);
  return w.ok() ? "" : "cannot write the power series: " + w.error;
}

std::size_t prune_series_dir(const std::string &dir, std::size_t keep_files, double keep_days,
                             double now_s, std::string *error) {
  DIR *d = ::opendir(dir.c_str());
  if (!d) {
    if (error && errno != ENOENT) *error = "cannot read " + dir + ": " + std::strerror(errno);
    return 0;
  }
  struct Entry {
    double mtime;
    std::string path;
  };
  std::vector<Entry> files;
  while (dirent *e = ::readdir(d)) {
    if (!series_name(e->d_name)) continue;
    const std::string p = dir + "/" + e->d_name;
    struct stat st{};
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    files.push_back({static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec * 1e-9, p});
  }
  ::closedir(d);
  std::sort(files.begin(), files.end(), [](const Entry &a, const Entry &b) {
    return a.mtime != b.mtime ? a.mtime > b.mtime : a.path > b.path;  // newest first
  });
  std::size_t removed = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const bool too_many = i >= keep_files;
    const bool too_old = keep_days > 0 && now_s - files[i].mtime > keep_days * 86400.0;
    if (!too_many && !too_old) continue;
    if (::unlink(files[i].path.c_str()) == 0) {
      ++removed;
    } else if (error) {
      *error = "cannot remove " + files[i].path + ": " + std::strerror(errno);
    }
  }
  return removed;
}

}  // namespace powergrad
