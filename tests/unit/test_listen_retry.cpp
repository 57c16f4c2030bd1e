// ListenRetry (controller/listen_retry.hpp): a listen address that another program holds
// is tried again with backoff (1 s doubling to 30 s) until it is free, with a log line per
// attempt (every 10th at the longest delay), and status shows the failed attempts after.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a macro `fail` that breaks <ios>.
#include <check.h>

#include "controller/controller_service.hpp"
#include "controller/listen_retry.hpp"
#include "protocol/fake_auth.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"
#include "tools/admin.hpp"
#include "tools/json.hpp"

using namespace powergrad;

namespace {

// A TCP socket listening on 127.0.0.1 on a free port: "another program holds the port".
int occupy_port(std::string &port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ck_assert_int_eq(listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len), 0);
  port = std::to_string(ntohs(a.sin_port));
  return fd;
}

struct FakeClock : ServiceClock {
  double mono = 0.0, wall = 1.8e9;
  double monotonic_s() override { return mono; }
  double wall_s() override { return wall; }
};

}  // namespace

START_TEST(a_taken_port_is_tried_again_with_backoff_until_free) {
  std::string port;
  const int holder = occupy_port(port);
  auto realm = std::make_shared<proto::FakeMungeRealm>(300.0);
  proto::FakeAuthenticator auth(realm, 0, 0);
  proto::ControllerConfig cfg;
  cfg.listen_host = "127.0.0.1";
  cfg.listen_port = port;
  ListenRetry retry(1.0, 30.0);
  double mono = 100.0, wall = 1.8e9;
  std::vector<double> delays;
  std::vector<std::string> lines;
  // 20 attempts while the port is held: none listens, each is due at the time it says.
  for (int i = 0; i < 20; ++i) {
    std::string line;
    ck_assert(!retry.attempt(cfg, auth, mono, wall, &line));
    ck_assert(!retry.state().listening);
    delays.push_back(retry.last_delay_s());
    ck_assert_double_eq_tol(retry.next_try_s(), mono + retry.last_delay_s(), 1e-9);
    if (!line.empty()) lines.push_back(line);
    const double d = retry.next_try_s() - mono;
    mono += d;
    wall += d;
  }
  const std::vector<double> want = {1, 2, 4, 8, 16, 30, 30, 30, 30, 30};
  for (std::size_t i = 0; i < want.size(); ++i) ck_assert_double_eq_tol(delays[i], want[i], 1e-9);
  ck_assert_double_eq_tol(delays.back(), 30.0, 1e-9);
  ck_assert_uint_eq(retry.state().failed_attempts, 20);
  ck_assert_double_eq_tol(retry.state().failing_since_s, 1.8e9, 1e-6);
  ck_assert_contains(retry.state().last_error, "in use");
  // The first line says what it means for nodes and for status; later ones count.
  ck_assert_contains(lines[0], "cannot listen on 127.0.0.1:" + port + ": ");
  ck_assert_contains(lines[0], "power control is off until it can");
  ck_assert_contains(lines[0], "`powergrad status` cannot reach the controller meanwhile");
  ck_assert_contains(lines[0], "trying again in 1 s");
  ck_assert_contains(lines[1], "still cannot listen on 127.0.0.1:" + port + " (2 attempts since ");
  ck_assert_contains(lines[1], "next try in 2 s");
  // Logged: attempts 1-5 (growing delay), then at 30 s only attempts 10 and 20.
  ck_assert_uint_eq(lines.size(), 5 + 2);
  ck_assert_contains(lines.back(), "(20 attempts since ");
  ck_assert_contains(lines.back(), "(logged every 10 attempts)");

  // The other program lets go: the next attempt listens.
  close(holder);
  std::string line;
  std::unique_ptr<proto::ControllerEndpoint> ep = retry.attempt(cfg, auth, mono, wall, &line);
  ck_assert(ep != nullptr);
  ck_assert_std_str_eq(std::to_string(ep->port()), port);
  ck_assert(retry.state().listening);
  ck_assert_uint_eq(retry.state().failed_attempts, 20);
  ck_assert_double_eq_tol(retry.state().listening_since_s, wall, 1e-6);

  // Status shows how long the address was taken.
  ServiceSettings st;
  st.listen = retry.state();
  ClusterConfig cc;
  cc.budget_w = 400.0;
  cc.nodes.push_back({"n1", 50.0, 300.0, kNoGroup});
  FakeClock clock;
  JobPowerLedger ledger;
  ControllerService service(st, ClusterController(cc), *ep, clock, ledger, nullptr);
  std::string err;
  auto v = json::parse(service.status_json(), &err);
  ck_assert_msg(v.has_value(), "%s", err.c_str());
  const json::Value *ls = v->get("listen");
  ck_assert_ptr_nonnull(ls);
  ck_assert_std_str_eq(ls->str("address"), "127.0.0.1:" + port);
  ck_assert_double_eq(*ls->num("failed_attempts"), 20.0);
  ck_assert_double_eq_tol(*ls->num("failing_since"), 1.8e9, 1e-3);
  ck_assert_contains(ls->str("last_error"), "in use");
  const std::string table = format_status_table(*v);
  ck_assert_contains(table, "listening: yes, on 127.0.0.1:" + port + " since ");
  ck_assert_contains(table, "after 20 failed attempts from ");
  ck_assert_contains(table, "power control was off meanwhile");
}
END_TEST

START_TEST(a_free_port_listens_at_once_and_status_says_nothing_more) {
  auto realm = std::make_shared<proto::FakeMungeRealm>(300.0);
  proto::FakeAuthenticator auth(realm, 0, 0);
  proto::ControllerConfig cfg;
  cfg.listen_host = "127.0.0.1";
  cfg.listen_port = "0";
  ListenRetry retry;
  std::string line = "x";
  auto ep = retry.attempt(cfg, auth, 0.0, 1.8e9, &line);
  ck_assert(ep != nullptr);
  ck_assert(line.empty());
  ck_assert_uint_eq(retry.state().failed_attempts, 0);
  ServiceSettings st;
  st.listen = retry.state();
  ClusterConfig cc;
  cc.budget_w = 400.0;
  cc.nodes.push_back({"n1", 50.0, 300.0, kNoGroup});
  FakeClock clock;
  JobPowerLedger ledger;
  ControllerService service(st, ClusterController(cc), *ep, clock, ledger, nullptr);
  std::string err;
  auto v = json::parse(service.status_json(), &err);
  ck_assert(v.has_value());
  ck_assert(v->get("listen")->get("failing_since")->is_null());
  ck_assert(format_status_table(*v).find("listening:") == std::string::npos);
}
END_TEST

int main() {
  Suite *s = suite_create("listen_retry");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, a_taken_port_is_tried_again_with_backoff_until_free);
  tcase_add_test(tc, a_free_port_listens_at_once_and_status_says_nothing_more);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
