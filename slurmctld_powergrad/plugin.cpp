// slurmctld_powergrad.so: a SlurmctldPlugstack plugin. slurmctld calls init() at start and
// fini() at shutdown; in between a controller thread runs every period. No exception may
// leave this file, and slurmctld's locks are held only to copy or store job fields.
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <slurm/slurm.h>
}

#include "slurmctld_powergrad/job_records.hpp"
#include "slurmctld_powergrad/slurm_adapter.h"

extern "C" {
extern const char plugin_name[];
extern const char plugin_type[];
extern const uint32_t plugin_version;
const char plugin_name[] = "PowerGrad cluster power controller";
const char plugin_type[] = "slurmctld/powergrad";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

int init(void);
int fini(void);
void slurmctld_plugstack_p_get_config(void *p);
}

namespace {

using namespace std::chrono_literals;

constexpr auto kControlPeriod = 1s;

void log_info(const std::string &m) { pg_adapter_log_info(m.c_str()); }
void log_error(const std::string &m) { pg_adapter_log_error(m.c_str()); }

powergrad::JobView to_view(const pg_job_view_t *v) {
  powergrad::JobView j;
  j.job_id = v->job_id;
  j.mode = v->mode ? v->mode : "";
  j.nodes = v->nodes ? v->nodes : "";
  j.admin_comment = v->admin_comment ? v->admin_comment : "";
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

class Controller {
 public:
  void start() {
    stop_ = false;
    thread_ = std::thread([this] { run(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    log_info("controller thread started (period " +
             std::to_string(
                 std::chrono::duration_cast<std::chrono::milliseconds>(kControlPeriod).count()) +
             " ms)");
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      lk.unlock();
      try {
        period();
      } catch (const std::exception &e) {
        log_error(std::string("control period failed: ") + e.what());
      } catch (...) {
        log_error("control period failed");
      }
      lk.lock();
      cv_.wait_for(lk, kControlPeriod, [this] { return stop_; });
    }
    log_info("controller thread stopped");
  }

  // One period: copy the running power-aware jobs (read lock), decide (no lock), store
  // the comments that changed (write lock, only if any did).
  void period() {
    pg_job_view_t *views = nullptr;
    size_t n = 0;
    if (pg_adapter_snapshot_power_aware_jobs(&views, &n) != 0) return;
    std::vector<uint32_t> changed;
    for (size_t i = 0; i < n; ++i) {
      if (powergrad::updated_admin_comment(to_view(&views[i]))) changed.push_back(views[i].job_id);
    }
    pg_adapter_free_views(views, n);
    if (!changed.empty()) {
      pg_adapter_apply_comments(changed.data(), changed.size(), comment_for_job, nullptr);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

Controller *controller = nullptr;

}  // namespace

extern "C" {

int init(void) {
  try {
    pg_adapter_install_job_hooks(comment_for_job, nullptr);
    controller = new Controller();
    controller->start();
    log_info("loaded");
    return SLURM_SUCCESS;
  } catch (const std::exception &e) {
    log_error(std::string("cannot start: ") + e.what());
  } catch (...) {
    log_error("cannot start");
  }
  pg_adapter_remove_job_hooks();
  return SLURM_ERROR;
}

int fini(void) {
  try {
    if (controller) {
      controller->stop();
      delete controller;
      controller = nullptr;
    }
    pg_adapter_remove_job_hooks();
  } catch (...) {
    log_error("error while stopping");
  }
  return SLURM_SUCCESS;
}

// `scontrol show config` lists plugin settings through this; none to show yet.
void slurmctld_plugstack_p_get_config(void * /*p*/) {}

}  // extern "C"
