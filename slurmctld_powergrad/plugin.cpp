// prep_powergrad.so: PowerGrad's cluster controller, hosted in slurmctld as a PrEp plugin
// (PrEpPlugins=prep/powergrad, next to a site's prep/script). Slurm loads PrEp plugins in
// slurmctld and in slurmd; in slurmd it does nothing. In slurmctld, init() starts a
// controller thread that reads powergrad.conf, listens for node agents and the admin
// command, and runs the cluster controller every control period (ControllerService); fini()
// stops it. The PrEp entry points themselves are in slurm_adapter.c (they take Slurm's
// internal types); they call comment_for_job at each power-aware job's end (and start, if
// asked for). No exception may leave this file, and slurmctld's locks are held only to copy
// or store job fields.
//
// A configuration that cannot be used (missing, a bad line, a node slurm.conf does not
// know, floors above the budget) is logged with the file, line and reason, and the plugin
// stays inert: no power control, job records still kept. A listen address that is taken
// (a restarting slurmctld may still hold it, or another program) is tried again after 1 s,
// 2 s, ... up to every 30 s for as long as slurmctld runs (controller/listen_retry.hpp),
// job records kept meanwhile.
// init() never fails: slurmctld treats a failing PrEp plugin as fatal.
//
// Running jobs' power series live in memory (JobPowerLedger); the thread saves them every
// minute and when it stops in StateDir/series-running, and takes them back at its start for
// the jobs slurmctld still knows (see load_running_series), so a restart of slurmctld does
// not lose the points before it.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

extern "C" {
#include <slurm/slurm.h>
}

#include "controller/controller_service.hpp"
#include "controller/ctld_config.hpp"
#include "controller/job_power.hpp"
#include "controller/job_records.hpp"
#include "controller/listen_retry.hpp"
#include "controller/series_writer.hpp"
#include "jobreport/series.hpp"
#include "posix/atomic_file.hpp"
#include "posix/unique_fd.hpp"
#include "protocol/auth.hpp"
#include "protocol/controller_endpoint.hpp"
#include "protocol/mac.hpp"
#include "slurmctld_powergrad/slurm_adapter.h"

extern "C" {
extern const char plugin_name[];
extern const char plugin_type[];
extern const uint32_t plugin_version;
const char plugin_name[] = "PowerGrad cluster power controller";
const char plugin_type[] = "prep/powergrad";
// The installed Slurm's version (configure): Slurm loads a PrEp plugin only if this equals
// its own major.minor.micro, and the source tree's headers may be of another micro version.
const uint32_t plugin_version = PG_SLURM_PLUGIN_VERSION;

int init(void);
int fini(void);
}

namespace {

namespace proto = powergrad::proto;
using powergrad::UniqueFd;

// Overrides the location of powergrad.conf (PrEp plugins get no arguments).
constexpr const char *kConfEnv = "POWERGRAD_CONF";
// "1": also record each power-aware job at its start (the PrEp start hook, which sends every
// job through CONFIGURING; see prep_p_required in slurm_adapter.c). Off by default: the
// controller thread records a running job within one control period anyway.
constexpr const char *kStartHookEnv = "POWERGRAD_START_HOOK";
constexpr double kInertPeriodS = 1.0;
// How often the running jobs' series are saved: a crash of slurmctld loses at most this.
constexpr double kSaveRunningSeriesS = 60.0;
// How long the last save of the running jobs' series may take when the controller stops
// (slurmctld's exit, a reconfigure), and how long slurmctld's exit waits for the controller
// thread (which ends with that save). A busy disk can take seconds to write a few files;
// slurmctld saves its own state synchronously before, so its exit only waits this long when
// the disk is that slow. (At exit slurmctld has closed its log: what happens then is not
// logged; a reconfigure logs the save.)
constexpr double kStopSaveS = 10.0;
constexpr double kExitStopS = 15.0;

void log_info(const std::string &m) { pg_adapter_log_info(m.c_str()); }
void log_error(const std::string &m) { pg_adapter_log_error(m.c_str()); }
void log_debug(const std::string &m) { pg_adapter_log_debug(m.c_str()); }

// Figures of running and recently ended jobs; read by slurmctld's job hooks. Never destroyed:
// slurmctld's threads may still run a hook while the process exits.
powergrad::JobPowerLedger &job_ledger = *new powergrad::JobPowerLedger;

powergrad::JobView to_view(const pg_job_view_t *v) {
  powergrad::JobView j;
  j.job_id = v->job_id;
  j.mode = v->mode ? v->mode : "";
  j.nodes = v->nodes ? v->nodes : "";
  j.admin_comment = v->admin_comment ? v->admin_comment : "";
  j.figures = job_ledger.figures(v->job_id);
  return j;
}

// Runs under slurmctld's job write lock (called by the adapter).
extern "C" char *comment_for_job(const pg_job_view_t *v, void * /*arg*/) {
  try {
    auto c = powergrad::updated_admin_comment(to_view(v));
    if (!c) return nullptr;
    return strdup(c->c_str());
  } catch (...) {
    return nullptr;  // never unwind into slurmctld
  }
}

// Runs under slurmctld's job write lock (pg_adapter_apply_comments, once a period): the
// comment the period's pass planned outside the lock (arg: its RecordPlan), or one built
// anew if the job's AdminComment changed since the pass read it.
extern "C" char *comment_from_plan(const pg_job_view_t *v, void *arg) {
  try {
    const auto *plan = static_cast<const powergrad::RecordPlan *>(arg);
    if (const std::string *c = plan->planned(v->job_id, v->admin_comment ? v->admin_comment : ""))
      return strdup(c->c_str());
    return comment_for_job(v, nullptr);
  } catch (...) {
    return nullptr;  // never unwind into slurmctld
  }
}

std::string config_path() {
  if (const char *e = std::getenv(kConfEnv); e && *e) return e;
  std::string slurm_conf;
  if (char *p = pg_adapter_slurm_conf_path()) {
    slurm_conf = p;
    free(p);
  }
  if (slurm_conf.empty()) {
    const char *e = std::getenv("SLURM_CONF");
    slurm_conf = e && *e ? e : "/etc/slurm/slurm.conf";
  }
  const size_t slash = slurm_conf.rfind('/');
  return (slash == std::string::npos ? std::string(".") : slurm_conf.substr(0, slash)) +
         "/powergrad.conf";
}

std::string fmt_w(double w) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f W", w);
  return b;
}

class Controller {
 public:
  void start() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    wake_read_.reset(fds[0]);
    wake_write_.reset(fds[1]);
    stop_ = false;
    done_ = std::promise<void>();
    done_future_ = done_.get_future();
    thread_ = std::thread([this] {
      // Named so that admins see it in top -H and ps -T, and pg-loadgen can count its CPU.
      pthread_setname_np(pthread_self(), "pg-controller");
      run();
      done_.set_value();
    });
  }

  // stop() for the process's exit: waits at most timeout_s for the thread (it may be waiting
  // for a lock of slurmctld that an exiting thread holds); true if it ended.
  bool stop_within(double timeout_s) {
    stop_ = true;
    wake();
    if (!thread_.joinable()) return true;
    if (done_future_.wait_for(std::chrono::duration<double>(timeout_s)) ==
        std::future_status::ready) {
      thread_.join();
      return true;
    }
    thread_.detach();
    return false;
  }

  void stop() {
    stop_ = true;
    wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // Sets up the service from powergrad.conf; on any problem logs it and returns false.
  bool setup() {
    std::string path = config_path();
    const std::optional<std::vector<std::string>> slurm_nodes = node_names();
    if (!slurm_nodes) return refuse("slurmctld's node table is not available");
    const std::vector<std::string> &nodes = *slurm_nodes;
    // Must rise with every controller start: microseconds of wall-clock time.
    const double wall = clock_.wall_s();
    const auto epoch = static_cast<uint64_t>(wall * 1e6);
    // The same checks, in the same order and words, as `powergrad check-config`.
    powergrad::ConfigCheck check = powergrad::check_controller_config(path, &nodes, epoch);
    // A bad file at a start (slurmctld 24.11 and later re-execute themselves on `scontrol
    // reconfigure`, so this is also their reload): the last configuration that was in force,
    // saved at every good start, stays in force if it still fits slurmctld's nodes.
    const std::string last_good = last_good_path();
    std::string refused_now;
    if (!check.ok()) {
      if (last_good.empty() || access(last_good.c_str(), R_OK) != 0) return refuse(check.error);
      powergrad::ConfigCheck previous =
          powergrad::check_controller_config(last_good, &nodes, epoch);
      if (!previous.ok()) return refuse(check.error);
      log_error("configuration refused: " + check.error +
                "; the last configuration in force stays (saved in " + last_good + ")");
      refused_now = check.error;
      check = std::move(previous);
      path = last_good;
    }
    const powergrad::ControllerFileConfig &file = *check.file;
    config_text_ = read_text(path);
    if (refused_now.empty() && !last_good.empty() && read_text(last_good) != config_text_) {
      const powergrad::AtomicWrite w = powergrad::write_file_atomic(last_good, config_text_, 0600);
      if (!w.ok()) log_error("cannot keep the configuration in force for restarts: " + w.error);
    }
    conf_read_at_ = pg_adapter_conf_read_at();

    powergrad::ServiceSettings settings;
    settings.period_s = file.period_s;
    settings.config_budget_w = file.budget_w;
    std::string state_save;
    if (char *p = pg_adapter_state_save_location()) {
      state_save = p;
      free(p);
    }
    const std::string state_dir = powergrad::resolve_state_dir(file, state_save);
    series_dir_ = powergrad::resolve_series_dir(file, state_save);
    running_series_dir_ = state_dir.empty() ? "" : state_dir + "/series-running";
    series_keep_ = file.series_keep;
    series_keep_days_ = file.series_keep_days;
    metrics_file_ = file.metrics_file;
    metrics_interval_s_ = file.metrics_interval_s;
    record_refresh_.set_interval(file.record_interval_s);
    if (!state_dir.empty()) {
      settings.budget_state_path = state_dir + "/budget";
    } else if (listen_.state().failed_attempts == 0) {  // said once, not at every retry
      log_error(path + ": no StateDir= and slurm.conf has no StateSaveLocation: run-time budgets "
                       "will not survive a restart");
    }
    if (series_dir_.empty() && listen_.state().failed_attempts == 0) {
      log_error(path + ": no SeriesDir= and slurm.conf has no StateSaveLocation: per-job power "
                       "series will not be written");
    }
    if (check.schedule) {
      settings.schedule = check.schedule;
      settings.schedule_path = file.budget_schedule;
    }
    settings.unmanaged_nodes = check.unmanaged;
    powergrad::ClusterController controller(*check.cluster);
    if (!controller.ok()) return refuse(path + ": " + controller.error());
    const std::vector<uid_t> &admin_uids = check.admin_uids;

    proto::ControllerConfig ec;
    ec.listen_host = file.listen_host;
    ec.listen_port = std::to_string(file.listen_port);
    ec.policy = proto::ServerPolicy::standard(static_cast<uid_t>(pg_adapter_slurm_user_uid()),
                                              admin_uids);
    ec.idle_timeout_s = 0.0;
    auth_ = std::make_unique<proto::MungeAuthenticator>(proto::munge_socket_from_env());
    std::string listen_line;
    endpoint_ = listen_.attempt(ec, *auth_, clock_.monotonic_s(), clock_.wall_s(), &listen_line);
    if (!endpoint_) {
      if (!listen_line.empty()) log_error(path + ": " + listen_line);
      listen_retry_ = true;
      return false;
    }
    settings.listen = listen_.state();
    settings.known_jobs = [](std::set<std::uint32_t> &out) {
      uint32_t *ids = nullptr;
      unsigned char *running = nullptr;
      size_t count = 0;
      if (pg_adapter_known_job_ids(&ids, &running, &count) != 0) return false;
      out.insert(ids, ids + count);
      free(ids);
      free(running);
      return true;
    };
    settings.private_jobs = pg_adapter_private_jobs() != 0;
    settings.sees_all_jobs = [](std::uint32_t uid) { return pg_adapter_sees_all_jobs(uid) != 0; };
    service_ = std::make_unique<powergrad::ControllerService>(
        settings, std::move(controller), *endpoint_, clock_, job_ledger,
        [](powergrad::ServiceLogLevel level, const std::string &m) {
          switch (level) {
            case powergrad::ServiceLogLevel::debug:
              log_debug(m);
              break;
            case powergrad::ServiceLogLevel::info:
              log_info(m);
              break;
            case powergrad::ServiceLogLevel::error:
              log_error(m);
              break;
          }
        });
    if (!refused_now.empty()) service_->set_config_refused(refused_now);
    period_s_ = file.period_s;
    log_info("controller running with " + path + ": budget " + fmt_w(file.budget_w) + ", " +
             std::to_string(check.cluster->nodes.size()) + " managed nodes" +
             (check.unmanaged.empty() ? std::string()
                                      : " (" + std::to_string(check.unmanaged.size()) +
                                            " outside the groups, not managed)") +
             ", " + std::to_string(file.groups.size()) + " groups, listening on " +
             file.listen_host + ":" + std::to_string(endpoint_->port()) +
             (settings.schedule ? ", budget schedule " + settings.schedule_path : "") +
             (series_dir_.empty() ? "" : ", job series in " + series_dir_) +
             (settings.listen.failed_attempts == 0
                  ? std::string()
                  : "; listening after " + std::to_string(settings.listen.failed_attempts) +
                        " failed attempts since " +
                        powergrad::local_time_text(settings.listen.failing_since_s) + " (" +
                        settings.listen.last_error + ")"));
    prune_series();
    restore_running_series();
    if (!series_writer_ && !(series_dir_.empty() && running_series_dir_.empty())) {
      powergrad::SeriesWriter::Settings ws;
      ws.series_dir = series_dir_;
      ws.running_dir = running_series_dir_;
      ws.keep_files = series_keep_;
      ws.keep_days = series_keep_days_;
      ws.checkpoint_base_s = kSaveRunningSeriesS;
      series_writer_ = std::make_unique<powergrad::SeriesWriter>(
          ws, job_ledger, [this] { return clock_.wall_s(); },
          [](bool error, const std::string &m) { error ? log_error(m) : log_info(m); });
    }
    return true;
  }

  void wake() {
    if (wake_write_) {
      const char c = 'x';
      (void)!write(wake_write_.get(), &c, 1);
    }
  }

  // Sleeps up to s seconds; returns early when stop() wakes the thread.
  void wait_s(double s) {
    pollfd p{wake_read_.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(s * 1000));
  }

  bool refuse(const std::string &why) {
    log_error("configuration refused: " + why +
              "; power control is off (job records are still kept)");
    return false;
  }

  void run() {
    try {
      log_info("controller thread started");
      // PrEp plugins are loaded before slurmctld reads its nodes and jobs.
      while (!stop_ && !pg_adapter_controller_ready()) wait_s(0.2);
      bool active = false;
      auto try_setup = [&] {
        listen_retry_ = false;
        try {
          active = setup();
        } catch (const std::exception &e) {
          refuse(std::string("setup failed: ") + e.what());
        }
      };
      try_setup();
      double next_records = 0.0;
      double next_metrics = 0.0;
      double next_series_save = clock_.monotonic_s() + kSaveRunningSeriesS;
      while (!stop_) {
        // Inert while the listen address is taken: job records go on, and the whole setup
        // runs again when the next attempt is due (powergrad.conf may have changed too).
        if (!active && listen_retry_ && clock_.monotonic_s() >= listen_.next_try_s()) {
          try_setup();
        }
        std::vector<pollfd> extra{{wake_read_.get(), POLLIN, 0}};
        if (active) {
          service_->run_once(200, &extra);
        } else {
          ::poll(extra.data(), extra.size(), 200);
        }
        if (extra[0].revents & POLLIN) {
          char buf[16];
          while (read(wake_read_.get(), buf, sizeof buf) > 0) {
          }
        }
        if (stop_) break;
        const double now = clock_.monotonic_s();
        if (now >= next_records) {
          next_records = now + (active ? period_s_ : kInertPeriodS);
          try {
            update_job_records();
          } catch (const std::exception &e) {
            log_error(std::string("job records: ") + e.what());
          }
        }
        if (active && pg_adapter_conf_read_at() != conf_read_at_) {
          try {
            active = reconfigure();
          } catch (const std::exception &e) {
            log_error(std::string("reconfigure failed: ") + e.what());
          }
        }
        if (active && !metrics_file_.empty() && now >= next_metrics) {
          next_metrics = now + metrics_interval_s_;
          write_metrics();
        }
        if (active && now >= next_series_save) {
          save_running_series();
          next_series_save = now + (series_writer_ ? series_writer_->checkpoint_interval_s()
                                                   : kSaveRunningSeriesS);
        }
      }
      if (active) stop_series_writer(kStopSaveS);
      service_.reset();
      endpoint_.reset();
      log_info("controller thread stopped");
    } catch (const std::exception &e) {
      log_error(std::string("controller thread stopped: ") + e.what());
    } catch (...) {
      log_error("controller thread stopped");
    }
  }

  // Copy the running power-aware jobs (read lock), decide (no lock), store the comments
  // that changed (write lock, only if any did). Then write the series of jobs that ended.
  void update_job_records() {
    if (service_) update_job_owners();
    pg_job_view_t *views = nullptr;
    size_t n = 0;
    if (pg_adapter_snapshot_power_aware_jobs(&views, &n) != 0) {
      write_finished_series(nullptr);
      return;
    }
    powergrad::RecordPlan plan;
    std::set<uint32_t> running;
    const double now = clock_.monotonic_s();
    for (size_t i = 0; i < n; ++i) {
      const pg_job_view_t &v = views[i];
      running.insert(v.job_id);
      if (!record_refresh_.due(v.job_id, v.admin_comment ? v.admin_comment : "", now)) continue;
      plan.add(to_view(&v));
      record_refresh_.checked(v.job_id, now);
    }
    record_refresh_.keep_only(running);
    pg_adapter_free_views(views, n);
    if (!plan.ids().empty()) {
      // Under the job write lock only the planned comments are copied (comment_from_plan).
      pg_adapter_apply_comments(plan.ids().data(), plan.ids().size(), comment_from_plan, &plan);
    }
    write_finished_series(&running);
  }

  // `scontrol reconfigure` (slurm.conf read again) on a slurmctld that does not re-execute
  // itself (22.05): powergrad.conf is checked with the start's checks; a bad file is
  // refused, logged with file and line, shown in status, and the configuration in force
  // stays. A good, changed file restarts the controller in this thread exactly as a
  // slurmctld restart (or 24.11's re-execution on reconfigure) does: the run-time budget and
  // the job series are saved state, nodes keep their leases and reconnect, and a new
  // controller never grants above the budget what old leases may still hold (see
  // ClusterController's in-force bound). Returns whether power control is on afterwards.
  bool reconfigure() {
    conf_read_at_ = pg_adapter_conf_read_at();
    const std::string path = config_path();
    const std::optional<std::vector<std::string>> nodes = node_names();
    if (!nodes) return true;  // try at the next reconfigure
    const powergrad::ConfigCheck check = powergrad::check_controller_config(path, &*nodes, 1);
    if (!check.ok()) {
      log_error("reconfigure: configuration refused: " + check.error +
                "; the configuration in force stays");
      service_->set_config_refused(check.error);
      return true;
    }
    if (read_text(path) == config_text_) {
      log_info("reconfigure: " + path + " unchanged");
      service_->set_config_refused("");
      return true;
    }
    log_info("reconfigure: applying " + path + " (the controller restarts)");
    stop_series_writer(kStopSaveS);
    service_.reset();
    endpoint_.reset();
    listen_retry_ = false;
    return setup();
  }

  // The names of slurm.conf's nodes as slurmctld holds them; nullopt if unavailable.
  static std::optional<std::vector<std::string>> node_names() {
    char **names = nullptr;
    size_t n = 0;
    if (pg_adapter_node_names(&names, &n) != 0) return std::nullopt;
    std::vector<std::string> out(names, names + n);
    pg_adapter_free_names(names, n);
    return out;
  }

  // StateSaveLocation/powergrad/powergrad.conf.last-good ("" without a StateSaveLocation);
  // the folder is made (0700) if missing.
  static std::string last_good_path() {
    std::string state_save;
    if (char *p = pg_adapter_state_save_location()) {
      state_save = p;
      free(p);
    }
    if (state_save.empty()) return "";
    const std::string dir = state_save + "/powergrad";
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return "";
    return dir + "/powergrad.conf.last-good";
  }

  static std::string read_text(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The metrics file, whole or not at all (rename); readable by node_exporter's user.
  void write_metrics() {
    const powergrad::AtomicWrite w =
        powergrad::write_file_atomic(metrics_file_, service_->metrics_text(), 0644);
    if (w.ok()) {
      if (!metrics_error_.empty()) log_info("metrics: " + metrics_file_ + " written again");
      metrics_error_.clear();
    } else if (w.error != metrics_error_) {
      log_error("metrics: " + w.error);
      metrics_error_ = w.error;
    }
  }

  // PrivateData=jobs (read again: `scontrol reconfigure` may change it) and, with it, who
  // owns each job, so that status shows a user only their own jobs' ids.
  void update_job_owners() {
    const bool private_jobs = pg_adapter_private_jobs() != 0;
    service_->set_private_jobs(private_jobs);
    if (!private_jobs) return;
    uint32_t *ids = nullptr, *uids = nullptr;
    size_t n = 0;
    if (pg_adapter_job_owners(&ids, &uids, &n) != 0) return;  // last period's owners stay
    std::unordered_map<uint32_t, uint32_t> owners;
    owners.reserve(n);
    for (size_t i = 0; i < n; ++i) owners[ids[i]] = uids[i];
    free(ids);
    free(uids);
    service_->set_job_owners(std::move(owners));
  }

  // A job's series is written once it is no longer running and no report has mentioned it
  // for two control periods (late reports still count); no lock of slurmctld is held.
  void write_finished_series(const std::set<uint32_t> *running) {
    if (!service_ || !series_writer_) return;
    const double quiet_s = std::max(2.0 * period_s_, 2.0);
    series_writer_->finished(job_ledger.take_finished_series(clock_.wall_s(), quiet_s, running));
  }

  // Takes back the series saved before the last stop (or crash) for the jobs slurmctld still
  // knows: a running job's goes on from it; one that ended meanwhile is written to the series
  // folder shortly, as at any job's end. Files of jobs slurmctld has forgotten are removed.
  void restore_running_series() {
    if (running_series_dir_.empty()) return;
    uint32_t *ids = nullptr;
    unsigned char *running = nullptr;
    size_t n = 0;
    if (pg_adapter_known_job_ids(&ids, &running, &n) != 0) {
      log_error("slurmctld's job list is not available: power series saved in " +
                running_series_dir_ + " not taken back (kept for the next start)");
      return;
    }
    std::set<uint32_t> known(ids, ids + n), still_running;
    for (size_t i = 0; i < n; ++i) {
      if (running[i]) still_running.insert(ids[i]);
    }
    free(ids);
    free(running);
    powergrad::RunningSeriesLoad r = powergrad::load_running_series(running_series_dir_, known);
    for (const std::string &e : r.errors) log_error("saved power series: " + e);
    const double wall = clock_.wall_s();
    size_t resumed = 0, ended = 0;
    for (const auto &[id, series] : r.series) {
      job_ledger.restore_series(id, series, wall);
      ++(still_running.count(id) ? resumed : ended);
    }
    if (resumed || ended || r.removed) {
      log_info("power series taken back from " + running_series_dir_ + ": " +
               std::to_string(resumed) + " of running jobs, " + std::to_string(ended) +
               " of jobs that ended meanwhile; " + std::to_string(r.removed) +
               " stale files (jobs slurmctld no longer knows, unreadable) removed");
    }
  }

  // Saves the series of the jobs whose series is not yet written (running, or ended a
  // moment ago), in the writer's thread; the writer logs a problem once, until saving works
  // again.
  void save_running_series() {
    if (service_ && series_writer_) series_writer_->checkpoint();
  }

  // At the thread's end: the last checkpoint, waited for at most timeout_s (slurmctld is
  // exiting). A writer still at work is left alive to finish (the process is ending).
  void stop_series_writer(double timeout_s) {
    if (!series_writer_) return;
    const auto t0 = std::chrono::steady_clock::now();
    const size_t jobs = job_ledger.unfinished_ids().size();
    save_running_series();
    if (!series_writer_->stop_within(timeout_s)) {
      log_error("power series of running jobs: still being saved after " +
                std::to_string(static_cast<int>(timeout_s)) + " s at exit");
      (void)series_writer_.release();
      return;
    }
    const bool saved = series_writer_->stats().last_checkpoint_ok;
    series_writer_.reset();
    if (saved && jobs > 0 && !running_series_dir_.empty()) {
      const double took =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", took);
      log_info("power series of " + std::to_string(jobs) + " unfinished job(s) saved in " +
               running_series_dir_ + " at the stop (" + buf + " s)");
    }
  }

  void prune_series() {
    if (series_dir_.empty()) return;
    std::string err;
    const size_t removed = powergrad::prune_series_dir(series_dir_, series_keep_, series_keep_days_,
                                                       clock_.wall_s(), &err);
    if (!err.empty()) log_error("series folder: " + err);
    if (removed) log_debug("removed " + std::to_string(removed) + " old job power series from " + series_dir_);
  }

  std::atomic<bool> stop_{false};
  bool listen_retry_ = false;
  powergrad::ListenRetry listen_;
  std::thread thread_;
  std::promise<void> done_;
  std::future<void> done_future_;
  UniqueFd wake_read_, wake_write_;
  powergrad::SystemServiceClock clock_;
  std::unique_ptr<proto::Authenticator> auth_;
  std::unique_ptr<proto::ControllerEndpoint> endpoint_;
  std::unique_ptr<powergrad::ControllerService> service_;
  double period_s_ = 1.0;
  std::string series_dir_;
  std::string running_series_dir_;  // "" : not saved
  std::unique_ptr<powergrad::SeriesWriter> series_writer_;
  size_t series_keep_ = 1000;
  double series_keep_days_ = 30;
  // MetricsFile= (Prometheus textfile, service_metrics.cpp), rewritten every
  // MetricsInterval= seconds; the last write error, logged once until it changes.
  std::string metrics_file_;
  double metrics_interval_s_ = 15;
  std::string metrics_error_;
  // RecordInterval=: when each running job's record was last checked.
  powergrad::RecordRefresh record_refresh_;
  // powergrad.conf as the controller in force read it, and when slurmctld last read
  // slurm.conf (a change means `scontrol reconfigure`).
  std::string config_text_;
  long long conf_read_at_ = 0;
};

Controller *controller = nullptr;

// slurmctld calls PrEp plugins' fini() only in builds made for leak checking: a normal
// shutdown (SIGTERM) ends in exit(). This saves the running jobs' power series then. The
// object is left alive (a thread of slurmctld may still run a hook).
extern "C" void stop_at_exit() {
  try {
    if (controller && !controller->stop_within(kExitStopS)) {
      log_error("controller thread did not stop within " +
                std::to_string(static_cast<int>(kExitStopS)) + " s at exit");
    }
  } catch (...) {
  }
}

}  // namespace

extern "C" {

int init(void) {
  // slurmd loads PrEp plugins too: the controller lives in slurmctld only.
  if (!pg_adapter_in_slurmctld()) return SLURM_SUCCESS;
  try {
    const char *sh = std::getenv(kStartHookEnv);
    const bool start_hook = sh && std::strcmp(sh, "1") == 0;
    pg_adapter_set_job_hooks(comment_for_job, nullptr, start_hook ? 1 : 0);
    // Before the thread's first MAC and before stop_at_exit is registered: libcrypto must
    // outlive the thread at exit (protocol/mac.hpp).
    std::string crypto_error;
    if (!proto::init_crypto_for_exit(crypto_error))
      log_error("libcrypto: " + crypto_error +
                " (slurmctld's exit may race the controller thread)");
    controller = new Controller();
    controller->start();
    static bool at_exit_registered = false;
    if (!at_exit_registered && std::atexit(stop_at_exit) == 0) at_exit_registered = true;
    log_info(std::string("loaded") + (start_hook ? " (job start hook on)" : ""));
  } catch (const std::exception &e) {
    log_error(std::string("cannot start the controller thread: ") + e.what());
  } catch (...) {
    log_error("cannot start the controller thread");
  }
  // Never SLURM_ERROR: slurmctld exits when a PrEp plugin fails to initialise.
  return SLURM_SUCCESS;
}

int fini(void) {
  try {
    pg_adapter_clear_job_hooks();
    if (controller) {
      Controller *c = controller;
      controller = nullptr;  // stop_at_exit() has nothing left to do
      c->stop();
      delete c;
    }
  } catch (...) {
    log_error("error while stopping");
  }
  return SLURM_SUCCESS;
}

}  // extern "C"
