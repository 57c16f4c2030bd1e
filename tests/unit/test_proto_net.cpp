// Transport pieces without endpoints: the framing reader (partial input, bounded buffers,
// early refusal), the send queue's limit, the backoff schedule, and TCP sockets on IPv4 and
// IPv6 loopback.
#include <check.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <limits>

#include "protocol/backoff.hpp"
#include "protocol/net.hpp"
#include "protocol/roles.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/test_proto_util.hpp"

using namespace pgproto_test;

namespace {

std::string frame_of(const Message &m, std::uint64_t seq = 1) {
  std::string out;
  ck_assert_status_ok(encode_frame(m, seq, 9, nullptr, out));
  return out;
}

// Drains every complete frame; returns how many, and the last error if any.
int take_frames(FrameReader &r, std::vector<std::string> &got, Status *error = nullptr) {
  int n = 0;
  for (;;) {
    const std::uint8_t *data = nullptr;
    std::size_t size = 0;
    Status err;
    const FrameReader::Next k = r.next(data, size, err);
    if (k == FrameReader::Next::need_more) return n;
    if (k == FrameReader::Next::error) {
      if (error != nullptr) *error = err;
      return -1;
    }
    got.emplace_back(reinterpret_cast<const char *>(data), size);
    ++n;
  }
}

bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

// ------------------------------------------------------------------ FrameReader

START_TEST(test_reader_byte_by_byte) {
  FrameReader r(TypeSet{MsgType::report, MsgType::grant});
  const std::string a = frame_of(sample_report(), 1);
  const std::string b = frame_of(sample_grant(), 2);
  const std::string stream = a + b;
  std::vector<std::string> got;
  for (char c : stream) {
    ck_assert_uint_eq(r.feed(reinterpret_cast<const std::uint8_t *>(&c), 1), 1);
    ck_assert_int_ge(take_frames(r, got), 0);
  }
  ck_assert_uint_eq(got.size(), 2);
  ck_assert(got[0] == a && got[1] == b);
  ck_assert_uint_eq(r.buffered(), 0);
}
END_TEST

START_TEST(test_reader_many_in_one) {
  FrameReader r(TypeSet{MsgType::grant});
  std::string stream;
  for (int i = 1; i <= 20; ++i) stream += frame_of(sample_grant(), static_cast<std::uint64_t>(i));
  std::vector<std::string> got;
  std::size_t off = 0;
  while (off < stream.size()) {
    off += r.feed(bytes_of(stream) + off, stream.size() - off);
    ck_assert_int_ge(take_frames(r, got), 0);
  }
  ck_assert_uint_eq(got.size(), 20);
  Frame f;
  ck_assert_status_ok(decode(got[19], f));
  ck_assert_uint_eq(f.header.seq, 20);
}
END_TEST

START_TEST(test_reader_refuses_oversize_early) {
  // An unauthenticated peer declares a 4 GiB HELLO: refused after 32 bytes, and the reader
  // never grows past its small initial buffer.
  FrameReader r(TypeSet{MsgType::hello});
  HeaderFields h;
  h.type = static_cast<std::uint8_t>(MsgType::hello);
  h.payload_len = 0xffffffffll;
  const std::string header = raw_frame(h, "").substr(0, kHeaderSize);
  r.feed(bytes_of(header), header.size());
  std::vector<std::string> got;
  Status err;
  ck_assert_int_eq(take_frames(r, got, &err), -1);
  ck_assert_errc(err, Errc::oversize);
  ck_assert_uint_le(r.capacity(), 4096);
  // The stream cannot be resynchronised: the error sticks.
  ck_assert_uint_eq(r.feed(bytes_of(header), header.size()), 0);
  ck_assert_int_eq(take_frames(r, got, &err), -1);
}
END_TEST

START_TEST(test_reader_refuses_unexpected_type) {
  // Before a session the controller takes only a HELLO: a REPORT header is refused before
  // up to 460 KiB of its payload could be buffered.
  FrameReader r(server_accepts_before_session());
  const std::string f = frame_of(sample_report(50, 16));
  r.feed(bytes_of(f), kHeaderSize);
  std::vector<std::string> got;
  Status err;
  ck_assert_int_eq(take_frames(r, got, &err), -1);
  ck_assert_errc(err, Errc::unexpected_type);
  ck_assert_contains(err.message, "expecting HELLO");
  // Bad magic likewise.
  FrameReader r2(TypeSet{MsgType::grant});
  const std::string http = "GET / HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n";
  r2.feed(bytes_of(http), http.size());
  ck_assert_int_eq(take_frames(r2, got, &err), -1);
  ck_assert_errc(err, Errc::bad_magic);
}
END_TEST

START_TEST(test_reader_bounded_by_types) {
  FrameReader r(client_sends(PeerRole::node));
  ck_assert_uint_eq(r.limit(), max_frame_size(MsgType::report));
  FrameReader pre(server_accepts_before_session());
  ck_assert_uint_le(pre.limit(), 8192);  // one HELLO at most
  // A large legitimate frame grows the buffer to exactly what it needs.
  const std::string big = frame_of(sample_report(kMaxJobsPerReport, 64));
  ck_assert_uint_gt(big.size(), 64 * 1024);
  std::size_t off = 0;
  std::vector<std::string> got;
  std::size_t most = 0;
  while (off < big.size()) {
    off += r.feed(bytes_of(big) + off, std::min<std::size_t>(1000, big.size() - off));
    most = std::max(most, r.capacity());
    ck_assert_int_ge(take_frames(r, got), 0);
  }
  ck_assert_uint_eq(got.size(), 1);
  ck_assert_uint_le(most, big.size() + 4096);
  ck_assert_uint_le(most, r.limit());
  // Given back once drained.
  const std::string small = frame_of(sample_report(), 2);
  r.feed(bytes_of(small), small.size());
  ck_assert_uint_le(r.capacity(), 4096);
}
END_TEST

START_TEST(test_reader_over_socket_partial_writes) {
  int sv[2];
  ck_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);
  FrameReader r(TypeSet{MsgType::report});
  const std::string f = frame_of(sample_report(3, 5));
  std::vector<std::string> got;
  Status err;
  ck_assert(r.fill(b.get(), err) == FrameReader::Fill::again);
  for (std::size_t off : {std::size_t(0), std::size_t(7), std::size_t(40)}) {
    const std::size_t end = off == 40 ? f.size() : (off == 0 ? 7 : 40);
    ck_assert(::write(a.get(), f.data() + off, end - off) == static_cast<ssize_t>(end - off));
    ck_assert(r.fill(b.get(), err) == FrameReader::Fill::data);
    take_frames(r, got);
    if (end < f.size()) ck_assert_uint_eq(got.size(), 0);
  }
  ck_assert_uint_eq(got.size(), 1);
  ck_assert(got[0] == f);
  a.reset();
  ck_assert(r.fill(b.get(), err) == FrameReader::Fill::eof);
}
END_TEST

// ------------------------------------------------------------------ SendQueue

START_TEST(test_send_queue_limit) {
  int sv[2];
  ck_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);
  SendQueue q(10000);
  const std::string chunk(4000, 'x');
  ck_assert_status_ok(q.push(chunk));
  ck_assert_status_ok(q.push(chunk));
  ck_assert_errc(q.push(chunk), Errc::send_buffer_full);
  ck_assert_uint_eq(q.size(), 8000);
  // Nobody reads: the socket fills, the queue keeps the rest and never exceeds its limit.
  std::size_t pushed = 8000;
  for (int i = 0; i < 1000; ++i) {
    ck_assert_status_ok(q.flush(a.get()));
    if (q.push(chunk).ok()) pushed += chunk.size();
    ck_assert_uint_le(q.size(), 10000);
  }
  ck_assert(!q.empty());
  ck_assert_uint_gt(pushed, 10000);  // the kernel took some
  b.reset();                         // the peer is gone
  Status st;
  for (int i = 0; i < 10 && st.ok(); ++i) st = q.flush(a.get());
  ck_assert_errc(st, Errc::closed);
}
END_TEST

// ------------------------------------------------------------------ Backoff

START_TEST(test_backoff_schedule) {
  BackoffParams p;
  p.initial_s = 0.5;
  p.max_s = 8.0;
  p.multiplier = 2.0;
  p.jitter = 0.5;
  Backoff b(p, 42);
  double base = 0.5;
  for (int i = 0; i < 10; ++i) {
    const double d = b.next_delay_s();
    ck_assert_msg(d >= base * 0.5 && d <= base, "delay %g outside [%g, %g]", d, base * 0.5, base);
    base = std::min(base * 2.0, 8.0);
  }
  ck_assert_uint_eq(b.failures(), 10);
  b.reset();
  const double d = b.next_delay_s();
  ck_assert(d >= 0.25 && d <= 0.5);
  // Same seed, same schedule; other seed, other jitter.
  Backoff x(p, 7), y(p, 7), z(p, 8);
  bool differs = false;
  for (int i = 0; i < 5; ++i) {
    const double dx = x.next_delay_s();
    ck_assert(dx == y.next_delay_s());
    differs = differs || dx != z.next_delay_s();
  }
  ck_assert(differs);
}
END_TEST

START_TEST(test_backoff_spreads_and_clamps) {
  // A thousand agents failing at once do not retry at once.
  BackoffParams p;
  double lo = 1e9, hi = 0;
  for (std::uint64_t seed = 1; seed <= 1000; ++seed) {
    Backoff b(p, seed);
    const double d = b.next_delay_s();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  ck_assert(hi - lo > 0.2);
  // Nonsense parameters never give a negative, NaN or infinite delay.
  BackoffParams bad;
  bad.initial_s = -1;
  bad.max_s = std::numeric_limits<double>::infinity();
  bad.multiplier = std::numeric_limits<double>::quiet_NaN();
  bad.jitter = 5;
  Backoff b(bad, 1);
  for (int i = 0; i < 2000; ++i) {
    const double d = b.next_delay_s();
    ck_assert(std::isfinite(d) && d >= 0.0);
  }
  BackoffParams huge;
  huge.initial_s = 1.0;
  huge.max_s = 60.0;
  huge.multiplier = 1e300;
  Backoff h(huge, 1);
  for (int i = 0; i < 2000; ++i) ck_assert(h.next_delay_s() <= 60.0);
}
END_TEST

// ------------------------------------------------------------------ sockets

static void check_loopback(const char *host) {
  UniqueFd listener;
  ck_assert_status_ok(listen_tcp(host, "0", 16, listener));
  const std::uint16_t port = local_port(listener.get());
  ck_assert_uint_gt(port, 0);
  std::vector<SocketAddress> addrs;
  ck_assert_status_ok(resolve_tcp(host, std::to_string(port), false, addrs));
  UniqueFd client;
  bool in_progress = false;
  ck_assert_status_ok(start_connect(addrs[0], client, in_progress));
  if (in_progress) {
    pollfd p{client.get(), POLLOUT, 0};
    ck_assert_int_eq(::poll(&p, 1, 2000), 1);
    ck_assert_status_ok(connect_result(client.get()));
  }
  UniqueFd server;
  SocketAddress peer;
  bool again = true;
  for (int i = 0; i < 100 && again; ++i) {
    pollfd p{listener.get(), POLLIN, 0};
    ::poll(&p, 1, 20);
    ck_assert_status_ok(accept_tcp(listener.get(), server, peer, again));
  }
  ck_assert(!again && server);
  ck_assert(peer.to_string().find(std::to_string(local_port(client.get()))) != std::string::npos);
  const std::string f = frame_of(sample_grant());
  SendQueue q(1 << 20);
  ck_assert_status_ok(q.push(f));
  ck_assert_status_ok(q.flush(client.get()));
  FrameReader r(TypeSet{MsgType::grant});
  std::vector<std::string> got;
  for (int i = 0; i < 100 && got.empty(); ++i) {
    pollfd p{server.get(), POLLIN, 0};
    ::poll(&p, 1, 20);
    Status err;
    r.fill(server.get(), err);
    take_frames(r, got);
  }
  ck_assert_uint_eq(got.size(), 1);
  // Nothing pending: accept says "again" rather than blocking.
  UniqueFd none;
  ck_assert_status_ok(accept_tcp(listener.get(), none, peer, again));
  ck_assert(again);
}

START_TEST(test_tcp_ipv4_loopback) { check_loopback("127.0.0.1"); }
END_TEST

START_TEST(test_tcp_ipv6_loopback) {
  if (!ipv6_loopback_available()) {
    std::printf("# no IPv6 loopback here: test_tcp_ipv6_loopback checks nothing\n");
    return;
  }
  check_loopback("::1");
}
END_TEST

START_TEST(test_bad_addresses) {
  std::vector<SocketAddress> addrs;
  ck_assert_errc(resolve_tcp("no-such-host.invalid", "1", false, addrs), Errc::bad_address);
  ck_assert_errc(resolve_tcp("127.0.0.1", "not-a-port-name", false, addrs), Errc::bad_address);
  UniqueFd l1, l2;
  ck_assert_status_ok(listen_tcp("127.0.0.1", "0", 4, l1));
  const Status st = listen_tcp("127.0.0.1", std::to_string(local_port(l1.get())), 4, l2);
  ck_assert_errc(st, Errc::io_error);
  ck_assert_contains(st.message, "bind");
}
END_TEST

START_TEST(test_connect_refused) {
  UniqueFd l;
  ck_assert_status_ok(listen_tcp("127.0.0.1", "0", 4, l));
  const std::string port = std::to_string(local_port(l.get()));
  l.reset();  // nobody listens there now
  std::vector<SocketAddress> addrs;
  ck_assert_status_ok(resolve_tcp("127.0.0.1", port, false, addrs));
  UniqueFd c;
  bool in_progress = false;
  Status st = start_connect(addrs[0], c, in_progress);
  if (st.ok() && in_progress) {
    pollfd p{c.get(), POLLOUT, 0};
    ::poll(&p, 1, 2000);
    st = connect_result(c.get());
  }
  ck_assert_errc(st, Errc::io_error);
}
END_TEST

START_TEST(test_unique_fd) {
  int sv[2];
  ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  {
    UniqueFd a(sv[0]);
    UniqueFd b(std::move(a));
    ck_assert(!a && b);
    UniqueFd c;
    c = std::move(b);
    ck_assert(c.get() == sv[0]);
  }
  ck_assert(::write(sv[0], "x", 1) < 0);  // closed exactly once, by c
  ::close(sv[1]);
}
END_TEST

Suite *net_suite() {
  Suite *s = suite_create("proto_net");
  TCase *r = tcase_create("framing");
  tcase_add_test(r, test_reader_byte_by_byte);
  tcase_add_test(r, test_reader_many_in_one);
  tcase_add_test(r, test_reader_refuses_oversize_early);
  tcase_add_test(r, test_reader_refuses_unexpected_type);
  tcase_add_test(r, test_reader_bounded_by_types);
  tcase_add_test(r, test_reader_over_socket_partial_writes);
  tcase_add_test(r, test_send_queue_limit);
  suite_add_tcase(s, r);
  TCase *b = tcase_create("backoff");
  tcase_add_test(b, test_backoff_schedule);
  tcase_add_test(b, test_backoff_spreads_and_clamps);
  suite_add_tcase(s, b);
  TCase *t = tcase_create("tcp");
  tcase_add_test(t, test_tcp_ipv4_loopback);
  tcase_add_test(t, test_tcp_ipv6_loopback);
  tcase_add_test(t, test_bad_addresses);
  tcase_add_test(t, test_connect_refused);
  tcase_add_test(t, test_unique_fd);
  suite_add_tcase(s, t);
  return s;
}

int main() { return pgtest::run_suite(net_suite()); }
