// pg-loadgen: many node agents' protocol sessions against a real PowerGrad controller.
//
// Each simulated node does what a node agent in slurmd does on the wire: it opens a session
// with a real munge handshake (root's credential, so run it as root or SlurmUser), sends one
// REPORT per period with its jobs and a demand curve, and obeys the GRANTs it gets: a newer
// (epoch, seq) grant sets its caps (a lowered cap is confirmed by a report at once, as the
// node agent does, so that the controller hands the watts on between periods), a lease that
// ends drops them to the floor, a restarted
// agent keeps the caps it found and refuses grants sent before it started. The caps of all
// simulated nodes are summed at every grant and every 50 ms: once every node has applied a
// grant of this run and that sum has been within the budget, it must stay there (the
// controller's safety invariant, seen from the nodes). Before, a node still at the caps it
// started with (its admin's, the maximum) holds more than the controller can count for it
// when it knows the node from an earlier run at a lower grant, as after a reboot: the sum
// could come within the budget by others' slack and then go above it by no fault of the
// controller's (seen once under ASan, 20 W over 75 kW just after the start).
//
// Churn (--churn): agents disconnect (and reconnect with the same incarnation) or restart
// (new incarnation) at random; jobs start and end (--job-life). Figures: sessions opened,
// refused and dropped by reason, reports and grants, report-to-grant latency (a report to
// the first grant after it), the invariant, and optionally the CPU, RSS and open fds of the
// controller's process (--watch-pid; the thread named pg-controller is counted apart).
//
//   pg-loadgen HOST:PORT --nodes PREFIX[FIRST-LAST] --budget W [options]
// See usage() for the options. Exit status: 0 run done and the invariant held with no session
// lost (unless --churn), 1 a check failed, 2 usage or setup error.
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "protocol/auth.hpp"
#include "protocol/channel.hpp"
#include "protocol/handshake.hpp"
#include "protocol/net.hpp"
#include "protocol/report_phase.hpp"
#include "protocol/roles.hpp"
#include "protocol/status.hpp"

using namespace powergrad;
using namespace powergrad::proto;

namespace {

double mono_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double wall_s() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void usage_error(const std::string &what) {
  std::fprintf(stderr, "pg-loadgen: %s\n", what.c_str());
  std::fprintf(stderr,
               "usage: pg-loadgen HOST:PORT --nodes PREFIX[FIRST-LAST] --budget W [options]\n"
               "  --seconds S      measure this long once every session is open and the\n"
               "                   warm-up is over (default 60)\n"
               "  --warmup S       after every session is open, run this long before measuring:\n"
               "                   the agents' reports find the controller's step in 5-8\n"
               "                   periods (default 10)\n"
               "  --period S       report interval (default 1)\n"
               "  --floor W        the nodes' floor in the controller's configuration (80)\n"
               "  --max W          the nodes' maximum (400)\n"
               "  --churn R        per agent per second: chance of a disconnect or a restart "
               "(0)\n"
               "  --job-life S     mean job length in seconds (120)\n"
               "  --max-inflight N handshakes at once (32)\n"
               "  --open-timeout S give up when the sessions are not all open by then (300)\n"
               "  --watch-pid PID  sample this process's CPU, RSS and fds once per second\n"
               "  --series FILE    write those samples and the cap sum as CSV\n"
               "  --json FILE      write the summary as JSON\n"
               "  --slurm-user U   slurm.conf's SlurmUser, whose WELCOME is trusted (root)\n"
               "  --seed N         random seed (1)\n"
               "  --report-phase follow|own|mixed\n"
               "                   follow: each agent moves its report before the controller's\n"
               "                   step, as the node agent does (protocol/report_phase.hpp);\n"
               "                   own: it keeps the random phase it started with; mixed: the\n"
               "                   first, third, ... agent follows, the others keep their own,\n"
               "                   and the latency is also given per group (follow)\n");
  std::exit(2);
}

// ------------------------------------------------------------------------ /proc sampling
struct ProcSample {
  double t = 0;             // since the run's start
  double cpu_s = 0;         // process user+system
  double thread_cpu_s = 0;  // the pg-controller thread's
  double rss_mb = 0;
  int fds = 0;
};

double stat_cpu_s(const std::string &path) {
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto rp = s.rfind(')');
  if (rp == std::string::npos) return NAN;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  unsigned long long ut = 0, st = 0;
  // Fields after the name: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) ut = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) st = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::optional<ProcSample> sample_proc(pid_t pid, double t) {
  const std::string base = "/proc/" + std::to_string(pid);
  ProcSample s;
  s.t = t;
  s.cpu_s = stat_cpu_s(base + "/stat");
  if (std::isnan(s.cpu_s)) return std::nullopt;
  std::ifstream st(base + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mb = std::atof(line.c_str() + 6) / 1024.0;
  if (DIR *d = opendir((base + "/fd").c_str())) {
    while (dirent *e = readdir(d)) s.fds += e->d_name[0] != '.';
    closedir(d);
  }
  if (DIR *d = opendir((base + "/task").c_str())) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream c(base + "/task/" + e->d_name + "/comm");
      std::string comm;
      std::getline(c, comm);
      if (comm == "pg-controller")
        s.thread_cpu_s = stat_cpu_s(base + "/task/" + e->d_name + "/stat");
    }
    closedir(d);
  }
  return s;
}

// ------------------------------------------------------------------------ the agents
enum class State { down, connecting, hello_sent, live };

struct Agent {
  std::string name;
  State state = State::down;
  UniqueFd fd;
  std::unique_ptr<ClientHandshake> handshake;
  std::unique_ptr<FrameReader> reader;
  std::unique_ptr<SendQueue> out;
  SecureChannel channel;
  bool want_write = false;
  std::uint64_t gen = 0;  // bumped whenever the session ends: stale timer entries are skipped
  // The node's state, as a node agent would hold it.
  std::uint64_t incarnation = 0;
  std::uint64_t report_seq = 0;
  double started_at_wall = 0;
  std::uint64_t lease_epoch = 0, lease_seq = 0;
  double lease_grant_w = 0, lease_expires_wall = 0, lease_local_end_wall = 0;
  bool has_lease = false;
  double cap_w = 0;  // caps in force
  double gain = 1e-3;
  std::string job;  // empty: idle
  double job_ends = 0, idle_ends = 0;
  double unanswered_since = -1;  // mono time of the first report since the last grant
  double reconnect_at = 0;
  bool restart_pending = false;
  bool ever_opened = false;
  bool granted = false;              // has applied a grant of this run of pg-loadgen
  std::optional<ReportPhase> phase;  // as the node agent's; new with every incarnation
};

struct Stats {
  std::uint64_t opened = 0, reopened = 0, reports = 0, grants = 0, stale_grants = 0;
  std::uint64_t disconnects = 0, restarts = 0, jobs_started = 0;
  std::map<std::string, std::uint64_t> refused, dropped;
  int lost_told = 0;  // refusals and drops told one by one so far
  std::vector<float> latency_ms;
  // With --report-phase mixed: the same, of the agents that follow the step and of the others.
  std::vector<float> latency_follow_ms, latency_own_ms;
  std::uint64_t violations = 0;
  double max_excess_w = 0, max_sum_w = 0, armed_at = -1;
  double min_sum_after_armed = INFINITY;
  double sum_w_s = 0, sum_s = 0;  // time-weighted caps sum while measuring
};

struct Options {
  std::string host, port, prefix;
  long first = 0, last = -1;
  int width = 0;
  double budget = -1, seconds = 60, warmup = 10, period = 1, floor_w = 80, max_w = 400, churn = 0;
  double job_life = 120, open_timeout = 300;
  int max_inflight = 32;
  pid_t watch = 0;
  uid_t controller_uid = 0;  // SlurmUser's: whose WELCOME is trusted besides root's
  std::string series, json;
  unsigned seed = 1;
  enum class Phase { follow, own, mixed } phase = Phase::follow;
};

double num_arg(const char *opt, const char *v) {
  char *end = nullptr;
  errno = 0;
  const double d = std::strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !std::isfinite(d) || d < 0)
    usage_error(std::string(opt) + ": not a non-negative number: '" + v + "'");
  return d;
}

Options parse(int argc, char **argv) {
  Options o;
  if (argc < 2) usage_error("missing HOST:PORT");
  const std::string addr = argv[1];
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0)
    usage_error("HOST:PORT expected, got '" + addr + "'");
  o.host = addr.substr(0, colon);
  o.port = addr.substr(colon + 1);
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage_error(a + ": missing value");
    const char *v = argv[++i];
    if (a == "--nodes") {
      const std::string s = v;
      const auto lb = s.find('['), dash = s.find('-', lb), rb = s.find(']', lb);
      if (lb == std::string::npos || dash == std::string::npos || rb != s.size() - 1 || lb == 0)
        usage_error("--nodes: PREFIX[FIRST-LAST] expected, got '" + s + "'");
      o.prefix = s.substr(0, lb);
      const std::string f = s.substr(lb + 1, dash - lb - 1), l = s.substr(dash + 1, rb - dash - 1);
      o.first = std::atol(f.c_str());
      o.last = std::atol(l.c_str());
      o.width = f.size() > 1 && f[0] == '0' ? static_cast<int>(f.size()) : 0;
      if (f.empty() || l.empty() || o.last < o.first)
        usage_error("--nodes: bad range in '" + s + "'");
    } else if (a == "--budget") {
      o.budget = num_arg("--budget", v);
    } else if (a == "--warmup") {
      o.warmup = num_arg("--warmup", v);
    } else if (a == "--seconds") {
      o.seconds = num_arg("--seconds", v);
    } else if (a == "--period") {
      o.period = num_arg("--period", v);
    } else if (a == "--floor") {
      o.floor_w = num_arg("--floor", v);
    } else if (a == "--max") {
      o.max_w = num_arg("--max", v);
    } else if (a == "--churn") {
      o.churn = num_arg("--churn", v);
    } else if (a == "--job-life") {
      o.job_life = num_arg("--job-life", v);
    } else if (a == "--open-timeout") {
      o.open_timeout = num_arg("--open-timeout", v);
    } else if (a == "--max-inflight") {
      o.max_inflight = static_cast<int>(num_arg("--max-inflight", v));
    } else if (a == "--watch-pid") {
      o.watch = static_cast<pid_t>(num_arg("--watch-pid", v));
    } else if (a == "--series") {
      o.series = v;
    } else if (a == "--json") {
      o.json = v;
    } else if (a == "--slurm-user") {
      const passwd *pw = getpwnam(v);
      if (!pw) usage_error(std::string("--slurm-user: no user '") + v + "'");
      o.controller_uid = pw->pw_uid;
    } else if (a == "--report-phase") {
      const std::string m = v;
      if (m == "follow")
        o.phase = Options::Phase::follow;
      else if (m == "own")
        o.phase = Options::Phase::own;
      else if (m == "mixed")
        o.phase = Options::Phase::mixed;
      else
        usage_error("--report-phase: 'follow', 'own' or 'mixed' expected, got '" + m + "'");
    } else if (a == "--seed") {
      o.seed = static_cast<unsigned>(num_arg("--seed", v));
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (o.prefix.empty()) usage_error("--nodes is required");
  if (o.budget < 0) usage_error("--budget is required");
  if (o.period <= 0) usage_error("--period must be above 0");
  if (o.max_w <= o.floor_w) usage_error("--max must be above --floor");
  if (o.max_inflight < 1) usage_error("--max-inflight must be at least 1");
  return o;
}

class LoadGen {
 public:
  explicit LoadGen(Options o) : o_(std::move(o)), rng_(o_.seed), auth_(munge_socket_from_env()) {}

  int run();

 private:
  using Timer = std::pair<double, std::pair<std::size_t, std::uint64_t>>;  // due, (agent, gen)

  void start_connect_agent(std::size_t i, double now);
  // why: counted by kind; detail (the system's error text), printed with the first few.
  void end_session(std::size_t i, double now, const std::string &why, bool by_us,
                   const std::string &detail = "");
  void on_readable(std::size_t i, double now);
  void on_writable(std::size_t i);
  void on_frame(std::size_t i, const std::uint8_t *data, std::size_t size, double now);
  void on_grant(std::size_t i, const GrantMessage &g, double now);
  void send_report(std::size_t i, double now, bool urgent = false);
  void send_frame(std::size_t i, const std::string &frame, double now);
  void update_epoll(std::size_t i);
  void set_cap(Agent &a, double w) {
    sum_caps_ += w - a.cap_w;
    a.cap_w = w;
  }
  void check_invariant(double now);
  void step_jobs(Agent &a, double now);
  void maybe_churn(double now, double dt);
  NodeReport make_report(Agent &a, double now);
  std::string node_name(long n) const;
  int inflight() const { return inflight_; }
  // Whether agent i moves its reports before the controller's step (--report-phase).
  bool follows_step(std::size_t i) const {
    return o_.phase == Options::Phase::follow || (o_.phase == Options::Phase::mixed && i % 2 == 0);
  }
  const char *phase_name() const {
    return o_.phase == Options::Phase::follow ? "follow"
           : o_.phase == Options::Phase::own  ? "own"
                                              : "mixed";
  }
  std::size_t granted_agents_ = 0;  // agents that have applied a grant of this run

  Options o_;
  std::mt19937_64 rng_;
  MungeAuthenticator auth_;
  std::vector<SocketAddress> addrs_;
  std::vector<Agent> agents_;
  UniqueFd ep_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  std::vector<std::size_t> connect_queue_;  // agents waiting for a handshake slot
  int inflight_ = 0;
  double sum_caps_ = 0;
  double t0_ = 0;
  bool measuring_ = false;
  std::uint64_t next_job_ = 4000000;
  Stats st_;
};

std::string LoadGen::node_name(long n) const {
  std::string num = std::to_string(n);
  if (static_cast<int>(num.size()) < o_.width) num.insert(0, o_.width - num.size(), '0');
  return o_.prefix + num;
}

void LoadGen::update_epoll(std::size_t i) {
  Agent &a = agents_[i];
  if (!a.fd) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (a.want_write ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = i;
  epoll_ctl(ep_.get(), EPOLL_CTL_MOD, a.fd.get(), &ev);
}

void LoadGen::start_connect_agent(std::size_t i, double now) {
  Agent &a = agents_[i];
  bool in_progress = false;
  Status s = start_connect(addrs_[0], a.fd, in_progress);
  if (!s.ok()) {
    ++st_.refused[std::string("connect: ") + errc_name(s.code)];
    a.reconnect_at = now + 1.0;
    connect_queue_.push_back(i);
    return;
  }
  if (a.restart_pending || a.incarnation == 0) {
    // A new agent process: a rising incarnation, caps as found, no lease, grants from
    // before its start refused.
    // The incarnation is the start time in microseconds, as the node agent's (agent.cpp):
    // rising across restarts and across runs of pg-loadgen against the same controller (a
    // second run that numbered its agents from 1 again had every report refused as "not
    // newer", so the controller never saw the caps they started with).
    a.started_at_wall = wall_s();
    a.incarnation =
        std::max(a.incarnation + 1, static_cast<std::uint64_t>(a.started_at_wall * 1e6));
    a.report_seq = 0;
    a.has_lease = false;
    a.lease_epoch = a.lease_seq = 0;
    a.restart_pending = false;
    a.phase.emplace(o_.period, a.name);
  }
  ClientParams p;
  p.role = PeerRole::node;
  p.name = a.name;
  p.incarnation = a.incarnation;
  p.controller_uids = {0, o_.controller_uid};
  a.handshake = std::make_unique<ClientHandshake>(p);
  a.reader = std::make_unique<FrameReader>(client_accepts_before_session());
  a.out = std::make_unique<SendQueue>(4u << 20);
  a.channel = SecureChannel();
  std::string hello;
  s = a.handshake->start(auth_, hello);
  if (!s.ok()) {
    std::fprintf(stderr, "pg-loadgen: munge encode failed: %s\n", s.to_string().c_str());
    std::exit(2);
  }
  a.state = State::hello_sent;
  ++inflight_;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = i;
  epoll_ctl(ep_.get(), EPOLL_CTL_ADD, a.fd.get(), &ev);
  a.want_write = true;
  (void)a.out->push(hello);
  (void)now;
}

void LoadGen::end_session(std::size_t i, double now, const std::string &why, bool by_us,
                          const std::string &detail) {
  Agent &a = agents_[i];
  if (a.state == State::hello_sent) --inflight_;
  if (!by_us) {
    const bool live = a.state == State::live;
    if (live)
      ++st_.dropped[why];
    else
      ++st_.refused[why];
    // The first few in full, with their time: whether they came at the start, in a burst,
    // or one by one tells a busy machine from a fault.
    if (st_.lost_told < 5) {
      ++st_.lost_told;
      std::fprintf(stderr, "pg-loadgen: session of %s %s at t=%.3f s: %s%s%s%s\n",
                   a.name.c_str(), live ? "dropped" : "refused", now - t0_, why.c_str(),
                   detail.empty() ? "" : " (", detail.c_str(), detail.empty() ? "" : ")");
    }
  }
  if (a.fd) epoll_ctl(ep_.get(), EPOLL_CTL_DEL, a.fd.get(), nullptr);
  a.fd.reset();
  a.state = State::down;
  a.want_write = false;
  a.unanswered_since = -1;
  ++a.gen;
  if (!by_us) {  // the controller closed it: a node agent reconnects with backoff
    a.reconnect_at = now + 1.0 + std::uniform_real_distribution<double>(0, 1)(rng_);
    connect_queue_.push_back(i);
  }
}

void LoadGen::send_frame(std::size_t i, const std::string &frame, double now) {
  Agent &a = agents_[i];
  if (!a.out->push(frame).ok()) {
    end_session(i, now, "send queue full (controller not reading)", false);
    return;
  }
  Status s = a.out->flush(a.fd.get());
  if (!s.ok()) {
    end_session(i, now, std::string("write: ") + errc_name(s.code), false);
    return;
  }
  const bool want = !a.out->empty();
  if (want != a.want_write) {
    a.want_write = want;
    update_epoll(i);
  }
}

void LoadGen::on_writable(std::size_t i) {
  Agent &a = agents_[i];
  Status s = a.out->flush(a.fd.get());
  if (!s.ok()) {
    end_session(i, mono_s(), std::string("write: ") + errc_name(s.code), false);
    return;
  }
  if (a.out->empty()) {
    a.want_write = false;
    update_epoll(i);
  }
}

void LoadGen::on_readable(std::size_t i, double now) {
  Agent &a = agents_[i];
  const std::uint64_t gen = a.gen;
  for (int rounds = 0; rounds < 16 && a.gen == gen; ++rounds) {
    Status err;
    const auto fill = a.reader->fill(a.fd.get(), err);
    if (fill == FrameReader::Fill::again) break;
    if (fill == FrameReader::Fill::eof) {
      end_session(i, now, "closed by the controller", false);
      return;
    }
    if (fill == FrameReader::Fill::error) {
      end_session(i, now, std::string("read: ") + errc_name(err.code), false, err.message);
      return;
    }
    const std::uint8_t *data = nullptr;
    std::size_t size = 0;
    for (;;) {
      const auto n = a.reader->next(data, size, err);
      if (n == FrameReader::Next::need_more) break;
      if (n == FrameReader::Next::error) {
        end_session(i, now, std::string("frame: ") + errc_name(err.code), false);
        return;
      }
      on_frame(i, data, size, now);
      if (a.gen != gen) return;
    }
  }
}

void LoadGen::on_frame(std::size_t i, const std::uint8_t *data, std::size_t size, double now) {
  Agent &a = agents_[i];
  if (a.state == State::hello_sent) {
    SessionInfo info;
    Status s = a.handshake->finish(auth_, data, size, a.channel, info);
    if (!s.ok()) {
      end_session(i, now, std::string("handshake: ") + errc_name(s.code), false);
      return;
    }
    --inflight_;
    a.state = State::live;
    a.reader->set_accepted(server_sends(PeerRole::node));
    ++(a.ever_opened ? st_.reopened : st_.opened);
    a.ever_opened = true;
    // First report at a random phase within one period, as agents started at random times;
    // with --report-phase mixed, those that keep their own phase have them spread evenly over
    // the period (their median wait for a grant is then half a period, not a sample's).
    double first = now + std::uniform_real_distribution<double>(0, o_.period)(rng_);
    if (o_.phase == Options::Phase::mixed && !follows_step(i)) {
      const double own = static_cast<double>(agents_.size() / 2);
      const double at = (static_cast<double>(i / 2) + 0.5) / std::max(1.0, own) * o_.period;
      first = now + std::fmod(at - std::fmod(now, o_.period) + 2.0 * o_.period, o_.period);
    }
    timers_.push({first, {i, a.gen}});
    return;
  }
  Frame f;
  Status s = a.channel.open(data, size, f);
  if (!s.ok()) {
    end_session(i, now, std::string("channel: ") + errc_name(s.code), false);
    return;
  }
  if (const auto *g = std::get_if<GrantMessage>(&f.message)) {
    on_grant(i, *g, now);
  } else if (const auto *e = std::get_if<ErrorMessage>(&f.message)) {
    end_session(i, now, std::string("ERROR ") + errc_name(static_cast<Errc>(e->code)), false);
  }
}

void LoadGen::on_grant(std::size_t i, const GrantMessage &g, double now) {
  Agent &a = agents_[i];
  ++st_.grants;
  if (a.phase) a.phase->on_grant(now);
  if (a.unanswered_since >= 0) {
    if (measuring_) {
      const auto ms = static_cast<float>((now - a.unanswered_since) * 1e3);
      st_.latency_ms.push_back(ms);
      if (o_.phase == Options::Phase::mixed)
        (follows_step(i) ? st_.latency_follow_ms : st_.latency_own_ms).push_back(ms);
    }
    a.unanswered_since = -1;
  }
  if (g.node != a.name) {
    ++st_.dropped["grant for another node"];
    return;
  }
  const bool newer =
      !a.has_lease || g.epoch > a.lease_epoch || (g.epoch == a.lease_epoch && g.seq > a.lease_seq);
  const double sent_at = g.expires_at_s - g.lease_s;
  if (!newer || sent_at < a.started_at_wall) {
    ++st_.stale_grants;
    return;
  }
  const double wall = wall_s();
  a.has_lease = true;
  a.lease_epoch = g.epoch;
  a.lease_seq = g.seq;
  a.lease_grant_w = g.grant_w;
  a.lease_expires_wall = g.expires_at_s;
  a.lease_local_end_wall = std::min(g.expires_at_s, wall + g.lease_s);
  const double before_w = a.cap_w;
  set_cap(a, std::min(g.grant_w, o_.max_w));
  if (!a.granted) {
    a.granted = true;
    ++granted_agents_;
  }
  check_invariant(now);
  // As the node agent does: a lowered cap is confirmed at once, so that the controller can
  // hand the watts on between periods.
  if (a.cap_w < before_w && a.state == State::live) send_report(i, now, true);
}

void LoadGen::check_invariant(double now) {
  const double slack = 1e-6 * std::max(1.0, o_.budget);
  if (st_.armed_at < 0) {
    if (granted_agents_ == agents_.size() && sum_caps_ <= o_.budget + slack)
      st_.armed_at = now - t0_;
    return;
  }
  st_.max_sum_w = std::max(st_.max_sum_w, sum_caps_);
  st_.min_sum_after_armed = std::min(st_.min_sum_after_armed, sum_caps_);
  if (sum_caps_ > o_.budget + slack) {
    if (st_.violations < 5)
      std::fprintf(stderr, "pg-loadgen: caps sum %.3f W above the budget %.3f W at t=%.3f s\n",
                   sum_caps_, o_.budget, now - t0_);
    ++st_.violations;
    st_.max_excess_w = std::max(st_.max_excess_w, sum_caps_ - o_.budget);
  }
}

void LoadGen::step_jobs(Agent &a, double now) {
  std::exponential_distribution<double> life(1.0 / std::max(1.0, o_.job_life));
  if (!a.job.empty() && now >= a.job_ends) {
    a.job.clear();
    a.idle_ends = now + life(rng_) * 0.1;
  }
  if (a.job.empty() && now >= a.idle_ends) {
    a.job = std::to_string(next_job_++) + ".0";
    a.job_ends = now + life(rng_);
    a.gain = 1e-3 * std::exp(std::uniform_real_distribution<double>(-1.6, 1.6)(rng_));
    ++st_.jobs_started;
  }
  // A job's gradient drifts, so that the controller keeps moving watts.
  a.gain *= std::exp(std::normal_distribution<double>(0, 0.05)(rng_));
}

NodeReport LoadGen::make_report(Agent &a, double now) {
  step_jobs(a, now);
  NodeReport r;
  r.node = a.name;
  r.incarnation = a.incarnation;
  r.report_seq = ++a.report_seq;
  r.sent_at_s = wall_s();
  r.started_at_s = a.started_at_wall;
  if (a.has_lease) {
    r.lease_epoch = a.lease_epoch;
    r.lease_seq = a.lease_seq;
    r.lease_grant_w = a.lease_grant_w;
    r.lease_expires_at_s = a.lease_expires_wall;
  } else {
    r.lease_grant_w = a.cap_w;  // runs on the caps it found
    r.lease_expires_at_s = 0;
  }
  r.effective_grant_w = a.cap_w;
  r.min_w = o_.floor_w;
  r.max_w = o_.max_w;
  r.caps_w = a.cap_w;
  r.idle = a.job.empty();
  r.need_w = r.idle ? o_.floor_w : o_.floor_w + 0.1 * (o_.max_w - o_.floor_w);
  r.power_w = std::min(a.cap_w, r.need_w + 0.7 * std::max(0.0, a.cap_w - r.need_w));
  r.steerable = !r.idle;
  if (!r.idle) {
    const double span = o_.max_w - r.need_w;
    std::vector<GainSegment> segs;
    for (int k = 0; k < 16; ++k) segs.push_back({span / 16, a.gain / (1.0 + 0.3 * k)});
    r.demand = GainCurve::from_segments(segs);
    JobSummary s;
    s.job = a.job;
    s.domain = 0;
    s.mode = JobMode::latency;
    s.counters = CounterKind::software;
    s.gain_per_w = a.gain;
    s.unit = GradientUnit::latency_s_saved_per_w;
    s.speedup_per_w = a.gain * 4;
    s.confidence = 0.8;
    s.memory_share = 0.3;
    s.busy_fraction = 0.6;
    s.source = GradientSource::combined;
    s.valid = true;
    r.jobs.push_back(s);
  }
  return r;
}

void LoadGen::send_report(std::size_t i, double now, bool urgent) {
  Agent &a = agents_[i];
  std::string frame;
  Status s = a.channel.seal(make_report(a, now), frame);
  if (!s.ok()) {
    std::fprintf(stderr, "pg-loadgen: cannot seal a report: %s\n", s.to_string().c_str());
    std::exit(2);
  }
  ++st_.reports;
  // A confirmation is not a request: the grant latency is measured from periodic reports.
  if (a.unanswered_since < 0 && !urgent) a.unanswered_since = now;
  send_frame(i, frame, now);
}

void LoadGen::maybe_churn(double now, double dt) {
  if (o_.churn <= 0 || agents_.empty()) return;
  const double expected = o_.churn * dt * static_cast<double>(agents_.size());
  std::poisson_distribution<int> events(expected);
  for (int k = events(rng_); k > 0; --k) {
    const std::size_t i = std::uniform_int_distribution<std::size_t>(0, agents_.size() - 1)(rng_);
    Agent &a = agents_[i];
    if (a.state != State::live) continue;
    const bool restart = std::bernoulli_distribution(0.5)(rng_);
    end_session(i, now, "", true);
    a.restart_pending = restart;
    ++(restart ? st_.restarts : st_.disconnects);
    a.reconnect_at = now + std::uniform_real_distribution<double>(0.5, 5.0)(rng_);
    connect_queue_.push_back(i);
  }
}

int LoadGen::run() {
  Status s = resolve_tcp(o_.host, o_.port, false, addrs_);
  if (!s.ok() || addrs_.empty()) usage_error("cannot resolve " + o_.host + ":" + o_.port);
  const std::size_t n = static_cast<std::size_t>(o_.last - o_.first + 1);
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  const rlim_t want = static_cast<rlim_t>(n + 256);
  if (nofile.rlim_cur < want) {
    nofile.rlim_cur = std::min(nofile.rlim_max, want);
    setrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur < want)
      usage_error("open-file limit " + std::to_string(nofile.rlim_cur) + " is below the " +
                  std::to_string(want) + " needed (raise ulimit -n)");
  }
  ep_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!ep_) usage_error("epoll_create1 failed");
  agents_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    agents_[i].name = node_name(o_.first + static_cast<long>(i));
    agents_[i].cap_w = o_.max_w;  // the admin's caps, before any grant
    connect_queue_.push_back(i);
  }
  sum_caps_ = o_.max_w * static_cast<double>(n);

  std::FILE *series = nullptr;
  if (!o_.series.empty()) {
    series = std::fopen(o_.series.c_str(), "w");
    if (!series) usage_error("cannot write " + o_.series);
    std::fprintf(series,
                 "t_s,phase,live,caps_sum_w,reports,grants,proc_cpu_s,thread_cpu_s,rss_mb,fds\n");
  }
  std::optional<ProcSample> first_sample, open_sample, last_sample;

  t0_ = mono_s();
  double opened_all_at = -1, measure_from = INFINITY, end_at = INFINITY, next_sweep = t0_,
         next_sample = t0_;
  double last_churn = t0_;
  std::vector<epoll_event> events(1024);
  const double deadline_open = t0_ + o_.open_timeout;
  int rc = 0;
  for (;;) {
    double now = mono_s();
    // Handshake slots.
    if (!connect_queue_.empty() && inflight_ < o_.max_inflight) {
      std::vector<std::size_t> later;
      for (std::size_t idx = 0; idx < connect_queue_.size(); ++idx) {
        const std::size_t i = connect_queue_[idx];
        if (agents_[i].state != State::down) continue;
        if (inflight_ >= o_.max_inflight || agents_[i].reconnect_at > now) {
          later.push_back(i);
          continue;
        }
        start_connect_agent(i, now);
      }
      connect_queue_.swap(later);
    }
    // Timers: reports.
    while (!timers_.empty() && timers_.top().first <= now) {
      const auto [due, who] = timers_.top();
      timers_.pop();
      Agent &a = agents_[who.first];
      if (a.gen != who.second || a.state != State::live) continue;
      send_report(who.first, now);
      if (a.gen == who.second) {
        const double planned = due + o_.period;
        timers_.push({follows_step(who.first) ? a.phase->next(planned, now) : planned, who});
      }
    }
    // Lease ends, the invariant, churn, samples.
    if (now >= next_sweep) {
      const double wall = wall_s();
      for (Agent &a : agents_)
        if (a.has_lease && wall >= a.lease_local_end_wall && a.cap_w > o_.floor_w) {
          set_cap(a, std::min(a.cap_w, o_.floor_w));
          a.has_lease = false;  // the node runs on its floor until a new grant
        }
      check_invariant(now);
      if (!measuring_ && now >= measure_from) measuring_ = true;
      if (measuring_) {
        st_.sum_w_s += sum_caps_ * (now - last_churn);
        st_.sum_s += now - last_churn;
      }
      if (opened_all_at >= 0) maybe_churn(now, now - last_churn);
      last_churn = now;
      next_sweep = now + 0.05;
    }
    std::size_t live = 0;
    if (now >= next_sample) {
      for (const Agent &a : agents_) live += a.state == State::live;
      std::optional<ProcSample> ps;
      if (o_.watch > 0) {
        ps = sample_proc(o_.watch, now - t0_);
        if (!ps) {
          std::fprintf(stderr, "pg-loadgen: process %d is gone\n", static_cast<int>(o_.watch));
          rc = 1;
          break;
        }
        if (!first_sample) first_sample = ps;
        last_sample = ps;
      }
      if (series)
        std::fprintf(series, "%.3f,%s,%zu,%.3f,%llu,%llu,%.2f,%.2f,%.1f,%d\n", now - t0_,
                     opened_all_at < 0 ? "open" : "run", live, sum_caps_,
                     static_cast<unsigned long long>(st_.reports),
                     static_cast<unsigned long long>(st_.grants), ps ? ps->cpu_s : NAN,
                     ps ? ps->thread_cpu_s : NAN, ps ? ps->rss_mb : NAN, ps ? ps->fds : -1);
      if (opened_all_at < 0 && live == agents_.size()) {
        opened_all_at = now;
        measure_from = now + o_.warmup;
        end_at = measure_from + o_.seconds;
        open_sample = ps;
        std::fprintf(stderr, "pg-loadgen: %zu sessions open after %.1f s\n", live, now - t0_);
      } else if (opened_all_at < 0 && now > deadline_open) {
        std::fprintf(stderr, "pg-loadgen: only %zu of %zu sessions open after %.0f s\n", live,
                     agents_.size(), o_.open_timeout);
        rc = 1;
        break;
      }
      next_sample = now + 1.0;
    }
    if (now >= end_at) break;
    double wait = std::min(next_sweep, next_sample) - now;
    if (!timers_.empty()) wait = std::min(wait, timers_.top().first - now);
    if (!connect_queue_.empty() && inflight_ < o_.max_inflight) wait = std::min(wait, 0.01);
    const int ms = std::max(0, static_cast<int>(std::ceil(wait * 1000)));
    const int k = epoll_wait(ep_.get(), events.data(), static_cast<int>(events.size()), ms);
    now = mono_s();
    for (int e = 0; e < k; ++e) {
      const std::size_t i = events[e].data.u64;
      Agent &a = agents_[i];
      if (!a.fd) continue;
      const std::uint64_t gen = a.gen;
      if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(i, now);
      if (a.gen == gen && a.fd && (events[e].events & EPOLLOUT)) on_writable(i);
    }
  }
  if (series) std::fclose(series);

  // ------------------------------------------------------------------ summary
  const double run_s = measuring_ ? mono_s() - measure_from : 0;
  std::vector<float> lat = st_.latency_ms;
  std::sort(lat.begin(), lat.end());
  auto pct_of = [](const std::vector<float> &v, double p) -> double {
    if (v.empty()) return NAN;
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  };
  auto pct = [&](double p) { return pct_of(lat, p); };
  std::sort(st_.latency_follow_ms.begin(), st_.latency_follow_ms.end());
  std::sort(st_.latency_own_ms.begin(), st_.latency_own_ms.end());
  std::uint64_t dropped = 0, refused = 0;
  for (const auto &kv : st_.dropped) dropped += kv.second;
  for (const auto &kv : st_.refused) refused += kv.second;
  const bool held = st_.armed_at >= 0 && st_.violations == 0;
  std::printf("loadgen: nodes %zu  period %.3g s  budget %.0f W  churn %.3g/s  measured %.1f s\n",
              agents_.size(), o_.period, o_.budget, o_.churn, run_s);
  std::printf(
      "loadgen: sessions opened %llu (reopened %llu; disconnects %llu, restarts %llu by "
      "churn), refused %llu, dropped %llu\n",
      static_cast<unsigned long long>(st_.opened), static_cast<unsigned long long>(st_.reopened),
      static_cast<unsigned long long>(st_.disconnects),
      static_cast<unsigned long long>(st_.restarts), static_cast<unsigned long long>(refused),
      static_cast<unsigned long long>(dropped));
  for (const auto &kv : st_.refused)
    std::printf("loadgen:   refused: %s x%llu\n", kv.first.c_str(),
                static_cast<unsigned long long>(kv.second));
  for (const auto &kv : st_.dropped)
    std::printf("loadgen:   dropped: %s x%llu\n", kv.first.c_str(),
                static_cast<unsigned long long>(kv.second));
  std::printf("loadgen: reports %llu, grants %llu (stale %llu), jobs started %llu\n",
              static_cast<unsigned long long>(st_.reports),
              static_cast<unsigned long long>(st_.grants),
              static_cast<unsigned long long>(st_.stale_grants),
              static_cast<unsigned long long>(st_.jobs_started));
  std::printf(
      "loadgen: report-to-grant latency ms: p50 %.1f  p99 %.1f  max %.1f  (%zu samples; report "
      "phase: %s)\n",
      pct(0.5), pct(0.99), lat.empty() ? NAN : static_cast<double>(lat.back()), lat.size(),
      o_.phase == Options::Phase::follow ? "follows the controller's step"
      : o_.phase == Options::Phase::own  ? "each agent's own"
                                         : "half follow the controller's step");
  if (o_.phase == Options::Phase::mixed)
    std::printf(
        "loadgen: report-to-grant latency ms, p50: %.1f of the agents that follow the step "
        "(%zu samples), %.1f of those that keep their own phase (%zu samples)\n",
        pct_of(st_.latency_follow_ms, 0.5), st_.latency_follow_ms.size(),
        pct_of(st_.latency_own_ms, 0.5), st_.latency_own_ms.size());
  const double mean_sum = st_.sum_s > 0 ? st_.sum_w_s / st_.sum_s : NAN;
  std::printf(
      "loadgen: caps sum: within the budget from t=%.2f s; then max %.1f W, min %.1f W, "
      "mean while measured %.1f W (%.2f%% of the budget); violations %llu (max excess "
      "%.3f W)\n",
      st_.armed_at, st_.max_sum_w, st_.min_sum_after_armed, mean_sum,
      100.0 * mean_sum / std::max(1e-9, o_.budget), static_cast<unsigned long long>(st_.violations),
      st_.max_excess_w);
  double cpu_share = NAN, thread_share = NAN;
  if (open_sample && last_sample && last_sample->t > open_sample->t) {
    const double dt = last_sample->t - open_sample->t;
    cpu_share = (last_sample->cpu_s - open_sample->cpu_s) / dt;
    thread_share = (last_sample->thread_cpu_s - open_sample->thread_cpu_s) / dt;
    std::printf(
        "loadgen: watched pid %d over %.1f s: CPU %.1f%% of one core (pg-controller thread "
        "%.1f%%), RSS %.1f -> %.1f -> %.1f MB (start, all open, end), fds %d -> %d -> %d\n",
        static_cast<int>(o_.watch), dt, cpu_share * 100, thread_share * 100, first_sample->rss_mb,
        open_sample->rss_mb, last_sample->rss_mb, first_sample->fds, open_sample->fds,
        last_sample->fds);
  }
  auto jnum = [](double v) { return std::isfinite(v) ? v : -1.0; };
  if (!o_.json.empty()) {
    std::FILE *j = std::fopen(o_.json.c_str(), "w");
    if (j) {
      std::fprintf(
          j,
          "{\"nodes\":%zu,\"open_s\":%.3f,\"period_s\":%g,\"budget_w\":%g,\"churn\":%g,\"report_"
          "phase\":\"%s\","
          "\"measured_s\":%.3f,"
          "\"opened\":%llu,\"reopened\":%llu,\"refused\":%llu,\"dropped\":%llu,"
          "\"reports\":%llu,\"grants\":%llu,\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
          "\"max\":%.3f,\"n\":%zu},\"latency_follow_ms\":{\"p50\":%.3f,\"n\":%zu},"
          "\"latency_own_ms\":{\"p50\":%.3f,\"n\":%zu},\"armed_at_s\":%.3f,\"violations\":%llu,"
          "\"max_sum_w\":%.3f,\"mean_sum_w\":%.3f,\"cpu_share\":%.4f,\"thread_share\":%.4f,"
          "\"rss_mb\":[%.1f,%.1f,%.1f]}\n",
          agents_.size(), opened_all_at >= 0 ? opened_all_at - t0_ : -1.0, o_.period, o_.budget,
          o_.churn, phase_name(), run_s, static_cast<unsigned long long>(st_.opened),
          static_cast<unsigned long long>(st_.reopened), static_cast<unsigned long long>(refused),
          static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(st_.reports),
          static_cast<unsigned long long>(st_.grants), jnum(pct(0.5)), jnum(pct(0.99)),
          lat.empty() ? -1.0 : static_cast<double>(lat.back()), lat.size(),
          jnum(pct_of(st_.latency_follow_ms, 0.5)), st_.latency_follow_ms.size(),
          jnum(pct_of(st_.latency_own_ms, 0.5)), st_.latency_own_ms.size(), st_.armed_at,
          static_cast<unsigned long long>(st_.violations), st_.max_sum_w, jnum(mean_sum),
          jnum(cpu_share), jnum(thread_share), first_sample ? first_sample->rss_mb : -1.0,
          open_sample ? open_sample->rss_mb : -1.0, last_sample ? last_sample->rss_mb : -1.0);
      std::fclose(j);
    }
  }
  if (rc != 0) return rc;
  if (!held) {
    std::printf("loadgen: FAIL: the caps' sum %s\n",
                st_.armed_at < 0 ? "never came within the budget" : "went above the budget");
    return 1;
  }
  if (o_.churn == 0 && dropped > 0) {
    std::printf("loadgen: FAIL: %llu sessions dropped without churn\n",
                static_cast<unsigned long long>(dropped));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o = parse(argc, argv);
  LoadGen g(std::move(o));
  return g.run();
}
