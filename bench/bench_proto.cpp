// Report ingest rate of the controller's protocol endpoint on one core.
//
// N simulated node agents (default 1000) open sessions with one ControllerEndpoint over
// loopback TCP (handshakes through the fake munge: munge's ~200 us per credential is a
// one-time cost per session, not what is measured here). Then a child process, holding
// the N client sockets and their session keys, sends rounds of one REPORT per node,
// sealing each on the fly, while the parent's single thread runs poll_once(): poll(), read,
// reassemble frames, check session, HMAC-SHA256 and sequence number, decode the NodeReport.
// The figure is reports fully received, verified and decoded per wall-clock second of the
// receiver; its CPU time is reported too.
//   bench_proto [NODES [ROUNDS]]   (defaults 1000 and 200)
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "protocol/controller_endpoint.hpp"
#include "protocol/fake_auth.hpp"
#include "protocol/handshake.hpp"
#include "protocol/roles.hpp"

using namespace powergrad;
using namespace powergrad::proto;

namespace {

constexpr uid_t kSlurmUid = 64030;

double mono_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double cpu_s(const rusage &ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "bench_proto: %s\n", what.c_str());
  std::exit(1);
}

// A typical report: two jobs, a 16-step demand curve (NodeControllerParams::curve_steps).
NodeReport typical_report(const std::string &node) {
  NodeReport r;
  r.node = node;
  r.incarnation = 1700000000;
  r.sent_at_s = 1000.0;
  r.lease_epoch = 1;
  r.lease_seq = 1;
  r.lease_grant_w = 300;
  r.lease_expires_at_s = 1010;
  r.effective_grant_w = 300;
  r.min_w = 80;
  r.max_w = 400;
  r.need_w = 120;
  r.caps_w = 300;
  r.power_w = 280;
  r.idle = false;
  r.steerable = true;
  std::vector<GainSegment> segs;
  for (int i = 0; i < 16; ++i) segs.push_back({17.5, 0.02 / (1 + i)});
  r.demand = GainCurve::from_segments(segs);
  for (int j = 0; j < 2; ++j) {
    JobSummary s;
    s.job = std::to_string(4000 + j) + ".0";
    s.domain = static_cast<std::size_t>(j);
    s.mode = JobMode::latency;
    s.counters = CounterKind::software;
    s.gain_per_w = 0.01;
    s.unit = GradientUnit::latency_s_saved_per_w;
    s.speedup_per_w = 0.004;
    s.confidence = 0.8;
    s.memory_share = 0.3;
    s.busy_fraction = 0.6;
    s.source = GradientSource::combined;
    s.valid = true;
    r.jobs.push_back(s);
  }
  return r;
}

struct Agent {
  UniqueFd fd;
  SecureChannel channel;
  std::string name;
};

// Blocking helpers for the setup only (the measured path is the endpoint's).
void set_blocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) die("fcntl");
}

bool write_all(int fd, const std::string &s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// The child: N sessions' worth of node agents, one REPORT each per round.
// It keeps its sockets open until the parent has read everything (the parent closes the
// pipe), so that a session closing during the run means a real failure.
[[noreturn]] void send_reports(std::vector<Agent> &agents, int rounds, int go_fd) {
  char go;
  if (::read(go_fd, &go, 1) != 1) _exit(3);
  std::vector<NodeReport> reports;
  for (const Agent &a : agents) reports.push_back(typical_report(a.name));
  std::string frame;
  for (int round = 1; round <= rounds; ++round) {
    for (std::size_t i = 0; i < agents.size(); ++i) {
      reports[i].report_seq = static_cast<std::uint64_t>(round);
      frame.clear();
      if (!agents[i].channel.seal(reports[i], frame).ok()) _exit(4);
      if (!write_all(agents[i].fd.get(), frame)) _exit(5);
    }
  }
  while (::read(go_fd, &go, 1) > 0) {
  }
  _exit(0);
}

}  // namespace

int main(int argc, char **argv) {
  const int nodes = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 200;
  if (nodes <= 0 || rounds <= 0) die("usage: bench_proto [NODES [ROUNDS]]");
  // Two fds per session in the parent until the fork (both ends), plus slack.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < static_cast<rlim_t>(2 * nodes + 64)) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, static_cast<rlim_t>(2 * nodes + 64));
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  auto realm = std::make_shared<FakeMungeRealm>();
  FakeAuthenticator ctl_auth(realm, kSlurmUid, kSlurmUid);
  FakeAuthenticator node_auth(realm, 0, 0);
  ControllerConfig cfg;
  cfg.listen_host = "127.0.0.1";
  cfg.listen_port = "0";
  cfg.policy = ServerPolicy::standard(kSlurmUid);
  cfg.backlog = nodes + 16;
  std::unique_ptr<ControllerEndpoint> ctl;
  Status st = ControllerEndpoint::open(cfg, ctl_auth, ctl);
  if (!st.ok()) die("open: " + st.to_string());
  std::vector<SocketAddress> addrs;
  st = resolve_tcp("127.0.0.1", std::to_string(ctl->port()), false, addrs);
  if (!st.ok()) die(st.to_string());

  // Sessions: connect and HELLO all, let the controller answer, then finish each.
  const double t_hs = mono_s();
  std::vector<Agent> agents(static_cast<std::size_t>(nodes));
  std::vector<ClientHandshake> handshakes;
  handshakes.reserve(agents.size());
  double now = 0.0;
  std::size_t opened = 0;
  for (std::size_t i = 0; i < agents.size(); ++i) {
    Agent &a = agents[i];
    a.name = "node" + std::to_string(i);
    bool in_progress = false;
    st = start_connect(addrs[0], a.fd, in_progress);
    if (!st.ok()) die(st.to_string());
    ClientParams p;
    p.role = PeerRole::node;
    p.name = a.name;
    p.incarnation = 1;
    p.controller_uids = {kSlurmUid};
    handshakes.emplace_back(p);
    std::string hello;
    st = handshakes.back().start(node_auth, hello);
    if (!st.ok()) die(st.to_string());
    pollfd pf{a.fd.get(), POLLOUT, 0};
    while (::poll(&pf, 1, 0) == 0)
      for (const auto &e : ctl->poll_once(now += 0.001, 1))
        opened += e.kind == ControllerEvent::Kind::session_opened;
    set_blocking(a.fd.get());
    if (!write_all(a.fd.get(), hello)) die("HELLO write");
    if (i % 64 == 63)
      for (const auto &e : ctl->poll_once(now += 0.001, 0))
        opened += e.kind == ControllerEvent::Kind::session_opened;
  }
  while (opened < agents.size()) {
    for (const auto &e : ctl->poll_once(now += 0.001, 100)) {
      if (e.kind == ControllerEvent::Kind::session_opened) ++opened;
      if (e.kind == ControllerEvent::Kind::refused) die("refused: " + e.status.to_string());
    }
  }
  for (std::size_t i = 0; i < agents.size(); ++i) {
    FrameReader reader(client_accepts_before_session());
    const std::uint8_t *data = nullptr;
    std::size_t size = 0;
    Status err;
    while (reader.next(data, size, err) != FrameReader::Next::frame) {
      if (reader.fill(agents[i].fd.get(), err) != FrameReader::Fill::data) die("WELCOME read");
    }
    SessionInfo info;
    st = handshakes[i].finish(node_auth, data, size, agents[i].channel, info);
    if (!st.ok()) die("WELCOME: " + st.to_string());
  }
  const double hs_s = mono_s() - t_hs;

  int go[2];
  if (pipe(go) != 0) die("pipe");
  std::string frame;
  agents[0].channel.seal(typical_report(agents[0].name), frame);  // size, for the record
  const pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    ::close(go[1]);
    send_reports(agents, rounds, go[0]);
  }
  ::close(go[0]);
  for (Agent &a : agents) a.fd.reset();  // the child holds the client ends now

  const std::size_t total = static_cast<std::size_t>(nodes) * static_cast<std::size_t>(rounds);
  std::vector<std::uint64_t> last_seq(agents.size(), 0);
  std::size_t received = 0, closed = 0, out_of_order = 0;
  rusage ru0{}, ru1{};
  getrusage(RUSAGE_SELF, &ru0);
  const double t0 = mono_s();
  if (::write(go[1], "g", 1) != 1) die("start signal");
  while (received < total && closed == 0) {
    for (auto &e : ctl->poll_once(mono_s(), 1000)) {
      if (e.kind == ControllerEvent::Kind::message) {
        const auto &r = std::get<NodeReport>(e.message);
        const std::size_t i = static_cast<std::size_t>(std::atoi(r.node.c_str() + 4));
        if (r.report_seq != last_seq[i] + 1) ++out_of_order;
        last_seq[i] = r.report_seq;
        ++received;
      } else if (e.kind == ControllerEvent::Kind::session_closed) {
        ++closed;
        std::fprintf(stderr, "bench_proto: session closed: %s\n", e.status.to_string().c_str());
      }
    }
  }
  const double wall = mono_s() - t0;
  getrusage(RUSAGE_SELF, &ru1);
  const double cpu = cpu_s(ru1) - cpu_s(ru0);
  ::close(go[1]);  // lets the sender exit
  int status = 0;
  waitpid(child, &status, 0);
  if (received != total || out_of_order != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("received " + std::to_string(received) + " of " + std::to_string(total) + ", " +
        std::to_string(out_of_order) + " out of order, sender status " + std::to_string(status));

  std::printf(
      "# bench_proto: REPORT ingest of one ControllerEndpoint (one thread, poll()) on loopback "
      "TCP\n");
  std::printf(
      "# %d node sessions, opened in %.2f s through the fake munge (real munge adds ~0.4 ms "
      "each)\n",
      nodes, hs_s);
  std::printf(
      "# sender: a child process writing %d rounds x %d REPORTs (2 jobs, 16 curve segments,"
      " %zu bytes per frame), sealed on the fly\n",
      rounds, nodes, frame.size());
  std::printf(
      "# receiver: read, reassemble, check session + HMAC-SHA256 + sequence, decode NodeReport;"
      " every report arrived, in order per node\n");
  std::printf(
      "# %zu reports in %.3f s wall; receiver CPU %.3f s (user %.3f, sys %.3f) -> %.0f reports per "
      "CPU second\n",
      total, wall, cpu,
      (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
          (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6,
      (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
          (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6,
      static_cast<double>(total) / cpu);
  std::printf("bench: ingest_reports_per_s %.0f reports/s\n", static_cast<double>(total) / wall);
  return 0;
}
