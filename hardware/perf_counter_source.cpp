// Only libpfm4's header for the perf ABI (see pfm_events.cpp).
#include "hardware/perf_counter_source.hpp"

#include <fcntl.h>
#include <perfmon/pfmlib_perf_event.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <set>

#include "hardware/sysfs_file.hpp"

namespace powergrad::hw {

namespace {

// What an open event counts. Hardware slots map to CounterRole; the software ones are
// always there.
enum class Slot {
  cycles,
  instructions,
  stall_cycles,
  ref_cycles,
  llc_misses,
  task_clock,
  context_switches
};
constexpr int kSlots = 7;

Slot slot_of(CounterRole role) {
  switch (role) {
    case CounterRole::cycles:
      return Slot::cycles;
    case CounterRole::instructions:
      return Slot::instructions;
    case CounterRole::stall_cycles:
      return Slot::stall_cycles;
    case CounterRole::ref_cycles:
      return Slot::ref_cycles;
    case CounterRole::llc_misses:
      return Slot::llc_misses;
  }
  return Slot::cycles;
}

bool is_hardware(Slot s) { return s != Slot::task_clock && s != Slot::context_switches; }

struct EventTemplate {
  Slot slot;
  std::string name;  // for messages
  perf_event_attr attr;
};

// Software events are kernel ABI constants, the same everywhere: no PMU encoding needed, and
// they keep working when libpfm4 cannot initialise.
EventTemplate software_event(Slot slot, std::uint64_t config, const char *name, bool count_kernel) {
  EventTemplate t;
  t.slot = slot;
  t.name = name;
  std::memset(&t.attr, 0, sizeof t.attr);
  t.attr.size = sizeof t.attr;
  t.attr.type = PERF_TYPE_SOFTWARE;
  t.attr.config = config;
  t.attr.exclude_kernel = count_kernel ? 0 : 1;
  t.attr.exclude_hv = 1;
  return t;
}

int open_event(perf_event_attr attr, pid_t pid, int cpu, unsigned long flags) {
  attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
  attr.disabled = 0;
  // Per task: count children and threads created after attaching. Cgroup events are per CPU
  // and take no inherit.
  attr.inherit = (flags & PERF_FLAG_PID_CGROUP) ? 0 : 1;
  return static_cast<int>(perf_event_open(&attr, pid, cpu, -1, flags | PERF_FLAG_FD_CLOEXEC));
}

struct OpenEvent {
  Slot slot;
  UniqueFd fd;
  PerfCount last;
};

struct Job {
  CounterTarget target;
  std::vector<OpenEvent> events;
  std::set<pid_t> tids;
  double last_s = 0.0;
};

// value, time_enabled, time_running in one read.
bool read_event(int fd, PerfCount *out) {
  std::uint64_t v[3];
  ssize_t n;
  do {
    n = ::read(fd, v, sizeof v);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof v)) return false;
  *out = PerfCount{v[0], v[1], v[2]};
  return true;
}

}  // namespace

struct PerfCounterSource::Impl {
  PerfCounterOptions options;
  CounterMode mode = CounterMode::software;
  std::string fallback_reason;
  std::string user_only_reason;
  const PmuEventSet *event_set = nullptr;
  std::vector<std::string> dropped;
  std::vector<EventTemplate> templates;
  std::map<CounterJobId, Job> jobs;

  // Opens every template on (pid, cpu). A hardware event that fails is left out; task-clock
  // failing is an error. ESRCH (task gone) is returned as such for the caller to skip.
  Status open_all(Job &job, pid_t pid, int cpu, unsigned long flags, const std::string &what) {
    std::vector<OpenEvent> opened;
    for (const auto &t : templates) {
      const int fd = open_event(t.attr, pid, cpu, flags);
      if (fd < 0) {
        const int err = errno;
        if (err == ESRCH) return Status::failure(what + ": no such task", ESRCH);
        if (is_hardware(t.slot)) continue;  // that role stays unset; noted at probe time
        return Status::failure(errno_error(what, "perf_event_open(" + t.name + ") failed", err));
      }
      OpenEvent e;
      e.slot = t.slot;
      e.fd.reset(fd);
      (void)read_event(fd, &e.last);  // counting started at open: usually all zero
      opened.push_back(std::move(e));
    }
    for (auto &e : opened) job.events.push_back(std::move(e));
    return Status::success();
  }

  Status attach_pid(Job &job, pid_t pid) {
    if (pid <= 0) return Status::failure("invalid pid " + std::to_string(pid), EINVAL);
    // perf per-task events count one thread; inherit only covers threads created later. A
    // PID that already runs threads gets one event per existing thread.
    std::vector<pid_t> tids;
    const std::string task_dir = join_path(options.proc_root, std::to_string(pid) + "/task");
    Result<std::vector<std::string>> entries = list_directory(task_dir);
    if (entries.ok()) {
      for (const auto &e : entries.value()) {
        std::uint64_t tid = 0;
        if (parse_u64(e, &tid) && tid > 0 && tid < (1u << 31))
          tids.push_back(static_cast<pid_t>(tid));
      }
    } else if (entries.errno_value() == ENOENT) {
      return Status::success();  // gone before we got to it: nothing to count
    }
    if (tids.empty()) tids.push_back(pid);
    for (pid_t tid : tids) {
      if (job.tids.count(tid)) continue;
      Status s = open_all(job, tid, -1, 0, "task " + std::to_string(tid));
      if (!s.ok() && s.errno_value() != ESRCH) return s;
      if (s.ok()) job.tids.insert(tid);
    }
    return Status::success();
  }

  Status attach_cgroup(Job &job) {
    Result<std::string> dir =
        resolve_cgroup_dir(options.cgroup_root, options.cgroup_layout, job.target.cgroup);
    if (!dir.ok()) return dir.status();
    std::vector<int> cpus = job.target.cpus;
    if (cpus.empty()) {
      const std::string online = join_path(options.sysfs_root, "devices/system/cpu/online");
      Result<std::string> text = read_small_file(online, 4096);
      if (!text.ok()) return text.status();
      Result<std::vector<int>> parsed = parse_cpu_list(text.value());
      if (!parsed.ok()) return Status::failure(online + ": " + parsed.message(), EINVAL);
      cpus = parsed.value();
    }
    UniqueFd cg(::open(dir.value().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.valid()) return Status::failure(errno_error(dir.value(), "cannot open cgroup", errno));
    for (int cpu : cpus) {
      Status s = open_all(job, cg.get(), cpu, PERF_FLAG_PID_CGROUP,
                          dir.value() + " on cpu " + std::to_string(cpu));
      if (!s.ok()) return s;
    }
    return Status::success();
  }
};

std::optional<double> scaled_delta(const PerfCount &before, const PerfCount &after,
                                   double *running_fraction) {
  // Unsigned differences: the kernel's counts only grow.
  const std::uint64_t dv = after.value - before.value;
  const std::uint64_t de = after.time_enabled_ns - before.time_enabled_ns;
  const std::uint64_t dr = after.time_running_ns - before.time_running_ns;
  if (running_fraction != nullptr) *running_fraction = 1.0;
  if (de == 0) return 0.0;  // the task did not run (or the cgroup was idle on that CPU)
  if (dr == 0) {
    if (running_fraction != nullptr) *running_fraction = 0.0;
    return std::nullopt;
  }
  const double fraction = std::min(1.0, static_cast<double>(dr) / static_cast<double>(de));
  if (running_fraction != nullptr) *running_fraction = fraction;
  return static_cast<double>(dv) / fraction;
}

Result<std::string> resolve_cgroup_dir(const std::string &cgroup_root, CgroupLayout layout,
                                       const std::string &relative_path) {
  Status s = check_relative_path(relative_path, "cgroup path");
  if (!s.ok()) return s.error();
  std::string rel = relative_path;
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  std::vector<std::string> bases;
  if (layout != CgroupLayout::v1) {
    if (path_exists(join_path(cgroup_root, "cgroup.controllers"))) bases.push_back(cgroup_root);
    const std::string unified = join_path(cgroup_root, "unified");
    if (path_exists(join_path(unified, "cgroup.controllers"))) bases.push_back(unified);
  }
  if (layout != CgroupLayout::v2) bases.push_back(join_path(cgroup_root, "perf_event"));
  std::string tried;
  for (const auto &base : bases) {
    const std::string dir = join_path(base, rel);
    if (is_directory(dir)) return dir;
    tried += (tried.empty() ? "" : ", ") + dir;
  }
  return Error{
      "cgroup '" + rel + "' not found (tried: " +
          (tried.empty() ? std::string("no cgroup hierarchy under ") + cgroup_root : tried) + ")",
      ENOENT};
}

PerfCounterSource::PerfCounterSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PerfCounterSource::~PerfCounterSource() = default;

Result<std::unique_ptr<PerfCounterSource>> PerfCounterSource::create(
    PerfCounterOptions options) try {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);

  // Software first: without task-clock there is nothing to fall back on. perf_event_paranoid
  // >= 2 refuses kernel-mode counting to unprivileged users (even for software events):
  // then count user mode only, and say so.
  EventTemplate task_clock = software_event(Slot::task_clock, PERF_COUNT_SW_TASK_CLOCK,
                                            "task-clock", impl->options.count_kernel);
  {
    int fd = open_event(task_clock.attr, 0, -1, 0);
    if (fd < 0 && (errno == EACCES || errno == EPERM) && impl->options.count_kernel) {
      impl->options.count_kernel = false;
      task_clock.attr.exclude_kernel = 1;
      fd = open_event(task_clock.attr, 0, -1, 0);
      if (fd >= 0) {
        impl->user_only_reason =
            "user mode only: perf_event_paranoid forbids counting kernel mode for this user";
      }
    }
    if (fd < 0) {
      return errno_error("perf_event_open(task-clock) on self",
                         "software events unavailable (perf_event_paranoid, seccomp?)", errno);
    }
    ::close(fd);
  }
  const bool kernel = impl->options.count_kernel;

  if (!impl->options.allow_hardware) {
    impl->fallback_reason = "hardware events disabled by configuration";
  } else {
    Result<const PmuEventSet *> set = detect_event_set();
    if (!set.ok()) {
      impl->fallback_reason = set.message();
    } else {
      std::vector<EventTemplate> hw;
      std::string failure;
      for (CounterRole role : kAllCounterRoles) {
        const std::string name = qualified_event(*set.value(), role);
        if (name.empty()) continue;
        EventTemplate t;
        t.slot = slot_of(role);
        t.name = name;
        Status enc = encode_event(name, kernel, &t.attr);
        if (!enc.ok()) {
          if (role == CounterRole::cycles || role == CounterRole::instructions) {
            failure = enc.message();
            break;
          }
          impl->dropped.push_back(name + " (" + enc.message() + ")");
          continue;
        }
        // Probe on the calling thread: an event the PMU cannot count fails here, once,
        // rather than for every job.
        const int fd = open_event(t.attr, 0, -1, 0);
        if (fd < 0) {
          const int err = errno;
          if (role == CounterRole::cycles || role == CounterRole::instructions) {
            failure = errno_error("perf_event_open(" + name + ")", "failed", err).message +
                      (err == ENOENT || err == EOPNOTSUPP || err == ENODEV
                           ? ": the PMU is not exposed to this kernel (VM?)"
                           : "");
            break;
          }
          impl->dropped.push_back(name + " (" + describe_errno(err) + ")");
          continue;
        }
        ::close(fd);
        hw.push_back(t);
      }
      if (failure.empty()) {
        impl->mode = CounterMode::hardware;
        impl->event_set = set.value();
        impl->templates = std::move(hw);
      } else {
        impl->fallback_reason = failure;
        impl->dropped.clear();
      }
    }
  }
  impl->templates.push_back(task_clock);
  impl->templates.push_back(software_event(Slot::context_switches, PERF_COUNT_SW_CONTEXT_SWITCHES,
                                           "context-switches", kernel));
  return std::unique_ptr<PerfCounterSource>(new PerfCounterSource(std::move(impl)));
} catch (const std::exception &e) {
  return Error{std::string("perf counter source: ") + e.what(), ENOMEM};
}

CounterMode PerfCounterSource::mode() const { return impl_->mode; }

std::string PerfCounterSource::describe() const {
  const std::string user_only =
      impl_->user_only_reason.empty() ? "" : "; " + impl_->user_only_reason;
  if (impl_->mode == CounterMode::hardware) {
    std::string s = std::string("counters=hardware (pmu ") + impl_->event_set->pmu +
                    "; stall event: " + impl_->event_set->stall_meaning;
    if (!impl_->dropped.empty()) {
      s += "; not counted:";
      for (const auto &d : impl_->dropped) s += " " + d;
    }
    return s + user_only + ")";
  }
  return "counters=software (hardware events unavailable: " + impl_->fallback_reason +
         "; counting task-clock and context switches only" + user_only + ")";
}

const std::string &PerfCounterSource::fallback_reason() const { return impl_->fallback_reason; }
const PmuEventSet *PerfCounterSource::event_set() const { return impl_->event_set; }
const std::vector<std::string> &PerfCounterSource::dropped_events() const { return impl_->dropped; }

Status PerfCounterSource::add_job(CounterJobId job, const CounterTarget &target, double now_s) try {
  if (impl_->jobs.count(job)) {
    return Status::failure("job " + std::to_string(job) + " is already counted", EEXIST);
  }
  if (target.pids.empty() == target.cgroup.empty()) {
    return Status::failure("job " + std::to_string(job) +
                               ": give either task PIDs or a cgroup path, not both or neither",
                           EINVAL);
  }
  Job j;
  j.target = target;
  j.last_s = now_s;
  if (!target.cgroup.empty()) {
    Status s = impl_->attach_cgroup(j);
    if (!s.ok()) return s;
  } else {
    for (pid_t pid : target.pids) {
      Status s = impl_->attach_pid(j, pid);
      if (!s.ok()) return s;
    }
  }
  impl_->jobs.emplace(job, std::move(j));
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("perf add_job: ") + e.what(), ENOMEM);
}

Status PerfCounterSource::add_tasks(CounterJobId job, const std::vector<pid_t> &pids) try {
  auto it = impl_->jobs.find(job);
  if (it == impl_->jobs.end()) {
    return Status::failure("job " + std::to_string(job) + " is not counted", ENOENT);
  }
  if (!it->second.target.cgroup.empty()) {
    return Status::failure(
        "job " + std::to_string(job) + " is counted by cgroup: its tasks are already included",
        EINVAL);
  }
  for (pid_t pid : pids) {
    Status s = impl_->attach_pid(it->second, pid);
    if (!s.ok()) return s;
  }
  return Status::success();
} catch (const std::exception &e) {
  return Status::failure(std::string("perf add_tasks: ") + e.what(), ENOMEM);
}

void PerfCounterSource::remove_job(CounterJobId job) { impl_->jobs.erase(job); }

bool PerfCounterSource::has_job(CounterJobId job) const { return impl_->jobs.count(job) != 0; }

std::size_t PerfCounterSource::open_descriptors(CounterJobId job) const {
  auto it = impl_->jobs.find(job);
  return it == impl_->jobs.end() ? 0 : it->second.events.size();
}

Result<CounterReading> PerfCounterSource::sample(CounterJobId job, double now_s) try {
  auto it = impl_->jobs.find(job);
  if (it == impl_->jobs.end()) {
    return Error{"job " + std::to_string(job) + " is not counted", ENOENT};
  }
  Job &j = it->second;
  double sums[kSlots] = {};
  bool measured[kSlots] = {};
  bool unmeasured[kSlots] = {};
  double running_fraction = 1.0;
  for (auto &e : j.events) {
    PerfCount now;
    if (!read_event(e.fd.get(), &now)) {
      return errno_error("perf event of job " + std::to_string(job), "read failed", errno);
    }
    double fraction = 1.0;
    const std::optional<double> delta = scaled_delta(e.last, now, &fraction);
    e.last = now;
    const int k = static_cast<int>(e.slot);
    measured[k] = true;
    if (!delta) {
      unmeasured[k] = true;
      continue;
    }
    if (is_hardware(e.slot)) running_fraction = std::min(running_fraction, fraction);
    sums[k] += *delta;
  }
  CounterReading r;
  r.sample.interval_s = now_s - j.last_s;
  j.last_s = now_s;
  auto value = [&](Slot s) -> std::optional<double> {
    const int k = static_cast<int>(s);
    if (!measured[k] || unmeasured[k]) return std::nullopt;
    return sums[k];
  };
  r.sample.cycles = value(Slot::cycles);
  r.sample.instructions = value(Slot::instructions);
  r.sample.stall_cycles = value(Slot::stall_cycles);
  r.sample.ref_cycles = value(Slot::ref_cycles);
  r.llc_misses = value(Slot::llc_misses);
  r.context_switches = value(Slot::context_switches);
  r.sample.task_clock_s = value(Slot::task_clock).value_or(0.0) * 1e-9;  // ns
  r.running_fraction = running_fraction;
  return r;
} catch (const std::exception &e) {
  return Error{std::string("perf sample: ") + e.what(), ENOMEM};
}

}  // namespace powergrad::hw
