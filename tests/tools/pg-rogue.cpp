// pg-rogue: a misbehaving client for end-to-end tests of the controller's protocol checks
// (tests/e2e/test_controller_faults.sh). It speaks PowerGrad's protocol with the real
// classes (protocol/), munge included, and then breaks it on purpose:
//
//   pg-rogue HOST:PORT hello [--role node|admin] [--name NAME]
//       an honest HELLO (credential of the calling uid from $POWERGRAD_MUNGE_SOCKET's
//       munged): prints "welcome session=ID uid=UID" or "refused CODE: TEXT"
//   pg-rogue HOST:PORT replay-hello
//       an admin session (any uid may open one), then the very same HELLO bytes again on a
//       new connection: prints the first outcome, then the second's
//   pg-rogue HOST:PORT replay-seq
//       an admin session; ADMIN_STATUS_REQ sealed once and sent twice (same sequence
//       number): prints "first: answered", then how the second ended
//   pg-rogue HOST:PORT tamper
//       an admin session; one ADMIN_STATUS_REQ with one bit of its MAC flipped
//   pg-rogue HOST:PORT truncated
//       a HELLO whose header declares 8 bytes fewer payload than its fields need
//   pg-rogue HOST:PORT partial
//       the first half of a HELLO frame, then end of stream
//   pg-rogue HOST:PORT oversize
//       a HELLO header declaring a 64 MiB payload, then a few bytes
//   pg-rogue HOST:PORT flood-garbage SECONDS
//       for SECONDS, as fast as it can: connect, send 64 bytes that are no frame, close;
//       prints "garbage: N connections in S s"
//   pg-rogue HOST:PORT flood-set-budget SECONDS
//       an admin session of the calling uid; for SECONDS, ADMIN_SET_BUDGET requests in
//       batches of 64, each batch's answers read; prints "set-budget: N requests in S s,
//       N1 ok, N2 permission denied"
//   pg-rogue HOST:PORT flood-status SESSIONS SECONDS
//       SESSIONS admin sessions of the calling uid; for SECONDS, ADMIN_STATUS_REQ on every
//       session as fast as the sockets take them, never reading an answer (the attack of
//       issue 11); prints "status: N sessions (M refused), R requests sent in S s, C
//       sessions closed by the controller"
//   pg-rogue HOST:PORT flood-hello SECONDS
//       for SECONDS, as fast as it can: connect, send an honest admin HELLO (a fresh munge
//       credential of the calling uid: the controller must decode it), close without waiting
//       for the answer; prints "hello: N connections in S s"
//   pg-rogue HOST:PORT hold-pending COUNT SECONDS
//       opens COUNT connections that never send a HELLO and holds them for SECONDS;
//       prints "pending: N opened, M refused or closed by the controller"
//
// The flood and hold commands connect from $PG_ROGUE_SOURCE (an IPv4 address) when set.
//
// Every outcome line names the protocol's error code (protocol/status.hpp) when the
// controller sent one, "closed" when it just closed. Exit 0 when the command ran (whatever
// the controller answered), 1 on a local error, 2 on a usage error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "protocol/auth.hpp"
#include "protocol/channel.hpp"
#include "protocol/frame.hpp"
#include "protocol/handshake.hpp"
#include "protocol/messages.hpp"
#include "protocol/status.hpp"

namespace proto = powergrad::proto;

namespace {

[[noreturn]] void die(const std::string &m) {
  std::fprintf(stderr, "pg-rogue: %s\n", m.c_str());
  std::exit(1);
}

class Conn {
 public:
  Conn(const std::string &host, const std::string &port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *res = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
      die("cannot resolve " + host + ":" + port);
    fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || connect(fd_, res->ai_addr, res->ai_addrlen) != 0) {
      freeaddrinfo(res);
      die("cannot connect to " + host + ":" + port + ": " + std::strerror(errno));
    }
    freeaddrinfo(res);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn &) = delete;
  Conn &operator=(const Conn &) = delete;

  void send_all(const std::string &bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // the controller may already have closed: reading tells how
      }
      off += static_cast<size_t>(n);
    }
  }
  void shut_write() { shutdown(fd_, SHUT_WR); }
  int fd() const { return fd_; }

  // One whole frame into `out`; false on end of stream, timeout or a malformed header
  // (`why` says which).
  bool read_frame(std::string &out, std::string &why) {
    out.assign(proto::kHeaderSize, '\0');
    if (!read_exact(&out[0], proto::kHeaderSize, why)) return false;
    proto::FrameHeader h;
    const proto::Status st =
        proto::parse_header(reinterpret_cast<const std::uint8_t *>(out.data()), out.size(), h);
    if (!st.ok()) {
      why = "bad frame from the controller: " + st.to_string();
      return false;
    }
    const size_t rest = h.payload_len + proto::kMacSize;
    out.resize(proto::kHeaderSize + rest);
    return read_exact(&out[proto::kHeaderSize], rest, why);
  }

 private:
  bool read_exact(char *p, size_t n, std::string &why) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, p + got, n - got, 0);
      if (r == 0) {
        why = "closed";
        return false;
      }
      if (r < 0) {
        if (errno == EINTR) continue;
        why = (errno == EAGAIN || errno == EWOULDBLOCK) ? "timeout" : std::string("closed (") +
                                                                         std::strerror(errno) + ")";
        return false;
      }
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
};

// What an answer frame outside a session says: "refused CODE: TEXT" for an ERROR.
std::string describe_unsealed(const std::string &frame) {
  proto::Frame f;
  const proto::Status st =
      proto::decode_frame(reinterpret_cast<const std::uint8_t *>(frame.data()), frame.size(), f);
  if (!st.ok()) return "undecodable answer: " + st.to_string();
  if (const auto *e = std::get_if<proto::ErrorMessage>(&f.message))
    return std::string("refused ") + proto::errc_name(e->code) + ": " + e->message;
  return std::string("answer of type ") + std::to_string(static_cast<int>(proto::type_of(f.message)));
}

struct Session {
  proto::SecureChannel channel;
  proto::SessionInfo info;
  std::string hello;
};

proto::ClientParams params(proto::PeerRole role, const std::string &name) {
  proto::ClientParams p;
  p.role = role;
  p.name = name;
  p.incarnation = 1;
  p.controller_uids = {0};
  return p;
}

// Runs a handshake on `c`; prints and returns false when it does not give a session.
bool handshake(Conn &c, proto::Authenticator &auth, proto::ClientParams p, Session &s,
               const char *label) {
  proto::ClientHandshake hs(std::move(p));
  proto::Status st = hs.start(auth, s.hello);
  if (!st.ok()) die("cannot make a HELLO: " + st.to_string());
  c.send_all(s.hello);
  std::string answer, why;
  if (!c.read_frame(answer, why)) {
    std::printf("%s%s\n", label, why.c_str());
    return false;
  }
  st = hs.finish(auth, reinterpret_cast<const std::uint8_t *>(answer.data()), answer.size(),
                 s.channel, s.info);
  if (!st.ok()) {
    std::printf("%srefused %s: %s\n", label, proto::errc_name(st.code), st.message.c_str());
    return false;
  }
  std::printf("%swelcome session=%llu uid=%ld\n", label,
              static_cast<unsigned long long>(s.info.session_id), static_cast<long>(s.info.uid));
  return true;
}

// After a bad frame in a session: a sealed ERROR (its code) or a plain close.
std::string session_outcome(Conn &c, Session &s) {
  std::string frame, why;
  if (!c.read_frame(frame, why)) return why;
  proto::Frame f;
  const proto::Status st =
      s.channel.open(reinterpret_cast<const std::uint8_t *>(frame.data()), frame.size(), f);
  if (!st.ok()) return describe_unsealed(frame);
  if (const auto *e = std::get_if<proto::ErrorMessage>(&f.message))
    return std::string("error ") + proto::errc_name(e->code) + ": " + e->message;
  return std::string("answered (type ") + std::to_string(static_cast<int>(proto::type_of(f.message))) + ")";
}

std::string hostname() {
  char b[256] = {0};
  gethostname(b, sizeof b - 1);
  return b[0] ? b : "rogue";
}

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The controller's address (freeaddrinfo when done); exits when it cannot be resolved.
addrinfo *resolve_or_die(const std::string &host, const std::string &port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
    die("cannot resolve " + host + ":" + port);
  return res;
}

// Connects without Conn's error handling: a flood goes on when one connection fails.
int connect_raw(const addrinfo *ai) {
  const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // PG_ROGUE_SOURCE=IPv4: connect from that address (e.g. 127.0.0.2), as an attacker on
  // another host would, so that its connections are not counted with the nodes' address.
  if (const char *src = std::getenv("PG_ROGUE_SOURCE"); src && ai->ai_family == AF_INET) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, src, &sa.sin_addr) != 1 ||
        bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int flood_garbage(const std::string &host, const std::string &port, double seconds) {
  addrinfo *res = resolve_or_die(host, port);
  const std::string garbage(64, 'G');
  const double t0 = now_s();
  unsigned long n = 0, failed = 0;
  while (now_s() - t0 < seconds) {
    const int fd = connect_raw(res);
    if (fd < 0) {
      ++failed;
      continue;
    }
    (void)::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
    close(fd);
    ++n;
  }
  freeaddrinfo(res);
  std::printf("garbage: %lu connections in %.1f s (%lu failed to connect)\n", n, now_s() - t0,
              failed);
  return 0;
}

int flood_hello(const std::string &host, const std::string &port, double seconds,
                proto::Authenticator &auth) {
  addrinfo *res = resolve_or_die(host, port);
  const double t0 = now_s();
  unsigned long n = 0, failed = 0;
  while (now_s() - t0 < seconds) {
    proto::ClientHandshake hs(params(proto::PeerRole::admin, hostname()));
    std::string hello;
    if (!hs.start(auth, hello).ok()) die("cannot make a HELLO (munge)");
    const int fd = connect_raw(res);
    if (fd < 0) {
      ++failed;
      continue;
    }
    (void)::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
    close(fd);
    ++n;
  }
  freeaddrinfo(res);
  std::printf("hello: %lu connections in %.1f s (%lu failed to connect)\n", n, now_s() - t0,
              failed);
  return 0;
}

int hold_pending(const std::string &host, const std::string &port, int count, double seconds) {
  addrinfo *res = resolve_or_die(host, port);
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    const int fd = connect_raw(res);
    if (fd >= 0) fds.push_back(fd);
  }
  freeaddrinfo(res);
  const double t0 = now_s();
  while (now_s() - t0 < seconds) ::usleep(100000);
  std::size_t closed = 0;
  for (int fd : fds) {
    // An ERROR frame (refused, or no HELLO in time) or the end of the stream: the controller
    // let it go; EAGAIN: still held open.
    char b;
    errno = 0;
    const ssize_t r = ::recv(fd, &b, 1, MSG_DONTWAIT);
    if (r >= 0 || errno == ECONNRESET) ++closed;
    close(fd);
  }
  std::printf("pending: %zu opened, %zu refused or closed by the controller\n", fds.size(), closed);
  return 0;
}

int flood_set_budget(const std::string &host, const std::string &port, double seconds,
                     proto::Authenticator &auth) {
  Conn c(host, port);
  Session s;
  if (!handshake(c, auth, params(proto::PeerRole::admin, hostname()), s, "session: ")) return 0;
  const double t0 = now_s();
  unsigned long sent = 0, ok = 0, denied = 0, other = 0;
  while (now_s() - t0 < seconds) {
    std::string batch;
    for (int i = 0; i < 64; ++i) {
      std::string req;
      const proto::Status st = s.channel.seal(proto::AdminSetBudget{100.0 + (sent + i) % 100}, req);
      if (!st.ok()) die("cannot seal: " + st.to_string());
      batch += req;
    }
    c.send_all(batch);
    sent += 64;
    for (int i = 0; i < 64; ++i) {
      std::string frame, why;
      if (!c.read_frame(frame, why)) {
        std::printf("set-budget: session ended after %lu requests: %s\n", sent, why.c_str());
        return 0;
      }
      proto::Frame f;
      if (!s.channel.open(reinterpret_cast<const std::uint8_t *>(frame.data()), frame.size(), f)
               .ok()) {
        ++other;
        continue;
      }
      const auto *r = std::get_if<proto::AdminResult>(&f.message);
      if (r && r->code == static_cast<std::uint16_t>(proto::AdminCode::ok))
        ++ok;
      else if (r && r->code == static_cast<std::uint16_t>(proto::AdminCode::permission_denied))
        ++denied;
      else
        ++other;
    }
  }
  std::printf("set-budget: %lu requests in %.1f s, %lu ok, %lu permission denied, %lu other\n",
              sent, now_s() - t0, ok, denied, other);
  return 0;
}

int flood_status(const std::string &host, const std::string &port, int sessions, double seconds,
                 proto::Authenticator &auth) {
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<std::unique_ptr<Session>> ss;
  int refused = 0;
  for (int i = 0; i < sessions; ++i) {
    auto c = std::make_unique<Conn>(host, port);
    auto s = std::make_unique<Session>();
    if (!handshake(*c, auth, params(proto::PeerRole::admin, hostname()), *s, "session: ")) {
      ++refused;
      continue;
    }
    const int fl = fcntl(c->fd(), F_GETFL);
    fcntl(c->fd(), F_SETFL, fl | O_NONBLOCK);
    conns.push_back(std::move(c));
    ss.push_back(std::move(s));
  }
  std::vector<bool> open(conns.size(), true);
  std::vector<std::string> pending(conns.size());
  const double t0 = now_s();
  unsigned long sent = 0;
  std::size_t closed = 0;
  while (now_s() - t0 < seconds && closed < conns.size()) {
    bool progress = false;
    for (std::size_t i = 0; i < conns.size(); ++i) {
      if (!open[i]) continue;
      if (pending[i].empty()) {
        const proto::Status st = ss[i]->channel.seal(proto::AdminStatusRequest{}, pending[i]);
        if (!st.ok()) die("cannot seal: " + st.to_string());
      }
      const ssize_t n = ::send(conns[i]->fd(), pending[i].data(), pending[i].size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        open[i] = false;
        ++closed;
        continue;
      }
      progress = true;
      pending[i].erase(0, static_cast<std::size_t>(n));
      if (pending[i].empty()) ++sent;
    }
    if (!progress) usleep(1000);  // every socket full: the controller is not reading them
  }
  std::printf(
      "status: %zu sessions (%d refused), %lu requests sent in %.1f s, %zu sessions "
      "closed by the controller\n",
      conns.size(), refused, sent, now_s() - t0, closed);
  return 0;
}

int usage() {
  std::fprintf(
      stderr,
      "usage: pg-rogue HOST:PORT hello [--role node|admin] [--name NAME]\n"
      "       pg-rogue HOST:PORT replay-hello|replay-seq|tamper|truncated|partial|oversize\n"
      "       pg-rogue HOST:PORT flood-garbage|flood-set-budget SECONDS\n"
      "       pg-rogue HOST:PORT flood-status SESSIONS SECONDS\n"
      "       pg-rogue HOST:PORT flood-hello SECONDS\n"
      "       pg-rogue HOST:PORT hold-pending COUNT SECONDS\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const std::string addr = argv[1], cmd = argv[2];
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return usage();
  const std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  proto::MungeAuthenticator auth(proto::munge_socket_from_env());

  if (cmd == "hello") {
    proto::PeerRole role = proto::PeerRole::node;
    std::string name = "rogue";
    for (int i = 3; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--role" && i + 1 < argc) {
        const std::string r = argv[++i];
        if (r == "node") role = proto::PeerRole::node;
        else if (r == "admin") role = proto::PeerRole::admin;
        else return usage();
      } else if (a == "--name" && i + 1 < argc) {
        name = argv[++i];
      } else {
        return usage();
      }
    }
    Conn c(host, port);
    Session s;
    handshake(c, auth, params(role, name), s, "");
    return 0;
  }
  if (cmd == "flood-garbage" || cmd == "flood-set-budget") {
    if (argc != 4) return usage();
    const double seconds = std::atof(argv[3]);
    if (!(seconds > 0 && seconds <= 600)) return usage();
    return cmd == "flood-garbage" ? flood_garbage(host, port, seconds)
                                  : flood_set_budget(host, port, seconds, auth);
  }
  if (cmd == "flood-hello") {
    if (argc != 4) return usage();
    const double seconds = std::atof(argv[3]);
    if (!(seconds > 0 && seconds <= 600)) return usage();
    return flood_hello(host, port, seconds, auth);
  }
  if (cmd == "hold-pending") {
    if (argc != 5) return usage();
    const int count = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    if (count < 1 || count > 20000 || !(seconds > 0 && seconds <= 600)) return usage();
    return hold_pending(host, port, count, seconds);
  }
  if (cmd == "flood-status") {
    if (argc != 5) return usage();
    const int sessions = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    if (sessions < 1 || sessions > 1000 || !(seconds > 0 && seconds <= 600)) return usage();
    return flood_status(host, port, sessions, seconds, auth);
  }
  if (cmd == "replay-hello") {
    Session s;
    {
      Conn c(host, port);
      if (!handshake(c, auth, params(proto::PeerRole::admin, hostname()), s, "first: ")) return 0;
    }
    Conn c2(host, port);
    c2.send_all(s.hello);
    std::string answer, why;
    std::printf("replayed: %s\n", c2.read_frame(answer, why) ? describe_unsealed(answer).c_str() : why.c_str());
    return 0;
  }
  if (cmd == "replay-seq" || cmd == "tamper") {
    Conn c(host, port);
    Session s;
    if (!handshake(c, auth, params(proto::PeerRole::admin, hostname()), s, "session: ")) return 0;
    std::string req;
    const proto::Status st = s.channel.seal(proto::AdminStatusRequest{}, req);
    if (!st.ok()) die("cannot seal: " + st.to_string());
    if (cmd == "tamper") {
      req[req.size() - 1] = static_cast<char>(req[req.size() - 1] ^ 0x01);
      c.send_all(req);
      std::printf("tampered: %s\n", session_outcome(c, s).c_str());
      return 0;
    }
    c.send_all(req);
    std::printf("first: %s\n", session_outcome(c, s).c_str());
    c.send_all(req);
    std::printf("replayed: %s\n", session_outcome(c, s).c_str());
    return 0;
  }
  if (cmd == "truncated" || cmd == "partial" || cmd == "oversize") {
    proto::ClientHandshake hs(params(proto::PeerRole::admin, hostname()));
    std::string hello;
    const proto::Status st = hs.start(auth, hello);
    if (!st.ok()) die("cannot make a HELLO: " + st.to_string());
    std::string bad;
    if (cmd == "truncated") {
      // Same bytes, but the header declares 8 bytes less payload: the last field (the
      // credential) runs past the payload's end.
      proto::FrameHeader h;
      proto::parse_header(reinterpret_cast<const std::uint8_t *>(hello.data()), hello.size(), h);
      h.payload_len -= 8;
      std::string head(proto::kHeaderSize, '\0');
      proto::write_header(h, reinterpret_cast<std::uint8_t *>(&head[0]));
      bad = head + hello.substr(proto::kHeaderSize, h.payload_len) + std::string(proto::kMacSize, '\0');
    } else if (cmd == "partial") {
      bad = hello.substr(0, hello.size() / 2);
    } else {
      proto::FrameHeader h;
      proto::parse_header(reinterpret_cast<const std::uint8_t *>(hello.data()), hello.size(), h);
      h.payload_len = 64u << 20;
      std::string head(proto::kHeaderSize, '\0');
      proto::write_header(h, reinterpret_cast<std::uint8_t *>(&head[0]));
      bad = head + hello.substr(proto::kHeaderSize, 64);
    }
    Conn c(host, port);
    c.send_all(bad);
    if (cmd == "partial") c.shut_write();
    std::string answer, why;
    std::printf("%s: %s\n", cmd.c_str(), c.read_frame(answer, why) ? describe_unsealed(answer).c_str() : why.c_str());
    return 0;
  }
  return usage();
}
