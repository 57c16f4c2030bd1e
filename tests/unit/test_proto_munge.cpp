// The real munge: a private munged in a temporary folder (own key, socket and seed), and
// the protocol's MungeAuthenticator and handshake against it: credential round trip, uid
// checks across real uids, replay, tamper and expiry rejection.
//
// Needs root (munged runs as the munge user via runuser; one test runs a client as nobody)
// and the munge package. Without them the runner prints why and exits 77 (skipped).
#include <check.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "protocol/auth.hpp"
#include "protocol/handshake.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/test_proto_util.hpp"

using namespace pgproto_test;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

std::string g_dir;     // the temporary folder
std::string g_socket;  // munged's socket in it
pid_t g_munged = -1;

// Runs argv, returns its exit status (-1 if it could not run). Output goes to `log`.
int run(const std::vector<std::string> &argv, const std::string &log) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    FILE *f = std::fopen(log.c_str(), "a");
    if (f != nullptr) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char *> args;
    for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string why_skip() {
  if (geteuid() != 0) return "not root: a private munged must run as the munge user (runuser)";
  for (const char *p : {"/usr/sbin/munged", "/usr/sbin/mungekey", "/usr/sbin/runuser"})
    if (access(p, X_OK) != 0)
      return std::string(p) + " missing (Debian packages munge, util-linux)";
  if (getpwnam("munge") == nullptr) return "no 'munge' user";
  if (getpwuid(kNobody) == nullptr) return "no uid 65534 (nobody)";
  return {};
}

// The same steps as tests/cluster/pgcluster: own key, socket folder reachable by all (o+x),
// private seed and pid files, munged as the munge user. munged daemonizes once its socket
// is ready, so when runuser returns it answers.
bool start_munged(std::string &why) {
  char tmpl[] = "/tmp/pgproto-munge.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    why = std::string("mkdtemp: ") + std::strerror(errno);
    return false;
  }
  g_dir = tmpl;
  chmod(g_dir.c_str(), 0755);
  const std::string m = g_dir + "/munge";
  const passwd *pw = getpwnam("munge");
  if (mkdir(m.c_str(), 0755) != 0 || chown(m.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    why = "cannot make " + m + ": " + std::strerror(errno);
    return false;
  }
  g_socket = m + "/munge.socket";
  const std::string log = g_dir + "/setup.log";
  if (run({"runuser", "-u", "munge", "--", "mungekey", "--create", "--keyfile=" + m + "/munge.key"},
          log) != 0) {
    why = "mungekey failed (see " + log + ")";
    return false;
  }
  if (run({"runuser", "-u", "munge", "--", "munged", "--socket=" + g_socket,
           "--key-file=" + m + "/munge.key", "--pid-file=" + m + "/munged.pid",
           "--log-file=" + m + "/munged.log", "--seed-file=" + m + "/munged.seed"},
          log) != 0) {
    why = "munged did not start (see " + log + " and " + m + "/munged.log)";
    return false;
  }
  FILE *pidf = std::fopen((m + "/munged.pid").c_str(), "r");
  int pid = -1;
  if (pidf != nullptr) {
    if (std::fscanf(pidf, "%d", &pid) != 1) pid = -1;
    std::fclose(pidf);
  }
  g_munged = pid;
  if (g_munged <= 0) {
    why = "no pid in " + m + "/munged.pid";
    return false;
  }
  return true;
}

void stop_munged() {
  if (g_munged > 0 && kill(g_munged, SIGTERM) == 0) {
    for (int i = 0; i < 100 && kill(g_munged, 0) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!g_dir.empty()) run({"rm", "-rf", g_dir}, "/dev/null");
}

// Runs fn in a child process as nobody; returns the child's exit status.
template <class Fn>
int as_nobody(Fn fn) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(kNogroup) != 0 || setuid(kNobody) != 0) _exit(90);
    _exit(fn());
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool write_all(int fd, const std::string &s) {
  const std::uint32_t n = static_cast<std::uint32_t>(s.size());
  if (write(fd, &n, sizeof n) != sizeof n) return false;
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t w = write(fd, s.data() + off, s.size() - off);
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, std::string &s) {
  std::uint32_t n = 0;
  if (read(fd, &n, sizeof n) != sizeof n || n > (1u << 20)) return false;
  s.resize(n);
  std::size_t off = 0;
  while (off < n) {
    const ssize_t r = read(fd, &s[off], n - off);
    if (r <= 0) return false;
    off += static_cast<std::size_t>(r);
  }
  return true;
}

ServerPolicy policy() { return ServerPolicy::standard(0); }

ClientParams params(PeerRole role) {
  ClientParams p;
  p.role = role;
  p.name = role == PeerRole::node ? "n1" : "login1";
  p.incarnation = 7;
  p.controller_uids = {0};
  return p;
}

}  // namespace

START_TEST(test_credential_round_trip) {
  MungeAuthenticator auth(g_socket);
  std::string cred;
  ck_assert_status_ok(auth.encode(std::string("pay\0load", 8), std::nullopt, cred));
  ck_assert(cred.rfind("MUNGE:", 0) == 0);
  ck_assert_status_ok(check_text(cred, kMaxCredentialLen, TextKind::credential));
  CredentialInfo info;
  ck_assert_status_ok(auth.decode(cred, info));
  ck_assert(info.payload == std::string("pay\0load", 8));
  ck_assert_uint_eq(info.uid, 0);
  ck_assert_uint_eq(info.gid, 0);
  // The payload travels encrypted (the WELCOME's is a session key): ask unmunge.
  std::string other;
  ck_assert_status_ok(auth.encode("secret", std::nullopt, other));
  const std::string path = g_dir + "/cred.txt";
  FILE *f = std::fopen(path.c_str(), "w");
  ck_assert(f != nullptr);
  std::fputs(other.c_str(), f);
  std::fclose(f);
  const std::string out = g_dir + "/unmunge.out";
  run({"unmunge", "-S", g_socket, "-i", path, "-m", out}, g_dir + "/unmunge.log");
  FILE *m = std::fopen(out.c_str(), "r");
  ck_assert_msg(m != nullptr, "unmunge wrote no metadata");
  char line[256];
  std::string cipher;
  while (std::fgets(line, sizeof line, m) != nullptr)
    if (std::strncmp(line, "CIPHER:", 7) == 0) cipher = line;
  std::fclose(m);
  ck_assert_contains(cipher, "aes128");
}
END_TEST

START_TEST(test_replay_rejected) {
  MungeAuthenticator auth(g_socket);
  std::string cred;
  ck_assert_status_ok(auth.encode("once", std::nullopt, cred));
  CredentialInfo info;
  ck_assert_status_ok(auth.decode(cred, info));
  const Status st = auth.decode(cred, info);
  ck_assert_errc(st, Errc::cred_replayed);
  ck_assert_contains(st.message, "munge_decode");
}
END_TEST

START_TEST(test_tamper_rejected) {
  MungeAuthenticator auth(g_socket);
  std::string cred;
  ck_assert_status_ok(auth.encode("tamper me", std::nullopt, cred));
  for (std::size_t pos : {cred.size() / 2, cred.size() - 10, std::size_t(12)}) {
    std::string bad = cred;
    bad[pos] = bad[pos] == 'A' ? 'B' : 'A';
    CredentialInfo info;
    ck_assert_errc(auth.decode(bad, info), Errc::cred_invalid);
  }
  CredentialInfo info;
  ck_assert_errc(auth.decode("MUNGE:notacredential:", info), Errc::cred_invalid);
}
END_TEST

START_TEST(test_expired_rejected) {
  MungeAuthenticator short_lived(g_socket, 1);
  std::string cred;
  ck_assert_status_ok(short_lived.encode("brief", std::nullopt, cred));
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  CredentialInfo info;
  ck_assert_errc(short_lived.decode(cred, info), Errc::cred_expired);
}
END_TEST

START_TEST(test_uid_restriction) {
  MungeAuthenticator auth(g_socket);
  std::string cred;
  ck_assert_status_ok(auth.encode("for nobody", kNobody, cred));
  // Root is not nobody: munged refuses (no root exception).
  CredentialInfo info;
  ck_assert_errc(auth.decode(cred, info), Errc::cred_unauthorized);
  const int rc = as_nobody([&] {
    MungeAuthenticator mine(g_socket);
    CredentialInfo i;
    const Status st = mine.decode(cred, i);
    if (!st.ok()) {
      std::fprintf(stderr, "nobody: %s\n", st.to_string().c_str());
      return 1;
    }
    return i.payload == "for nobody" && i.uid == 0 ? 0 : 2;
  });
  ck_assert_int_eq(rc, 0);
}
END_TEST

START_TEST(test_munged_unreachable) {
  MungeAuthenticator auth(g_dir + "/no-such.socket");
  std::string cred;
  ck_assert_errc(auth.encode("x", std::nullopt, cred), Errc::auth_unavailable);
  CredentialInfo info;
  ck_assert_errc(auth.decode("MUNGE:abc:", info), Errc::auth_unavailable);
}
END_TEST

START_TEST(test_handshake_root_node) {
  MungeAuthenticator auth(g_socket);
  ClientHandshake hs(params(PeerRole::node));
  std::string hello;
  ck_assert_status_ok(hs.start(auth, hello));
  AcceptedSession acc;
  ck_assert_status_ok(accept_hello(auth, policy(), bytes_of(hello), hello.size(), acc));
  ck_assert_uint_eq(acc.peer.uid, 0);
  SecureChannel ch;
  SessionInfo info;
  ck_assert_status_ok(
      hs.finish(auth, bytes_of(acc.welcome_frame), acc.welcome_frame.size(), ch, info));
  ck_assert_uint_eq(info.session_id, acc.peer.session_id);
  std::string f;
  ck_assert_status_ok(ch.seal(sample_report(), f));
  Frame got;
  ck_assert_status_ok(acc.channel.open(bytes_of(f), f.size(), got));
  // The same HELLO again: munged's replay cache refuses it.
  ck_assert_errc(accept_hello(auth, policy(), bytes_of(hello), hello.size(), acc),
                 Errc::cred_replayed);
}
END_TEST

START_TEST(test_handshake_tampered_hello) {
  MungeAuthenticator auth(g_socket);
  ClientHandshake hs(params(PeerRole::node));
  std::string hello;
  ck_assert_status_ok(hs.start(auth, hello));
  Frame f;
  ck_assert_status_ok(decode(hello, f));
  Hello h = std::get<Hello>(f.message);
  h.credential[h.credential.size() / 2] ^= 1;
  if (h.credential[h.credential.size() / 2] == ':') h.credential[h.credential.size() / 2] = 'Q';
  std::string bad;
  ck_assert_status_ok(encode_frame(h, 0, 0, nullptr, bad));
  AcceptedSession acc;
  ck_assert_errc(accept_hello(auth, policy(), bytes_of(bad), bad.size(), acc), Errc::cred_invalid);
}
END_TEST

START_TEST(test_uid_check_real_users) {
  // A HELLO made by nobody: refused as a node, accepted as a read-only admin client, and
  // only nobody can open the WELCOME.
  int to_parent[2], to_child[2];
  ck_assert(pipe(to_parent) == 0 && pipe(to_child) == 0);
  const pid_t pid = fork();
  ck_assert(pid >= 0);
  if (pid == 0) {
    close(to_parent[0]);
    close(to_child[1]);
    if (setgroups(0, nullptr) != 0 || setgid(kNogroup) != 0 || setuid(kNobody) != 0) _exit(90);
    MungeAuthenticator mine(g_socket);
    for (PeerRole role : {PeerRole::node, PeerRole::admin}) {
      ClientHandshake hs(params(role));
      std::string hello;
      if (!hs.start(mine, hello).ok() || !write_all(to_parent[1], hello)) _exit(91);
      std::string answer;
      if (!read_all(to_child[0], answer)) _exit(92);
      SecureChannel ch;
      SessionInfo info;
      const Status st = hs.finish(mine, bytes_of(answer), answer.size(), ch, info);
      if (role == PeerRole::node && st.code != Errc::uid_not_allowed) _exit(93);
      if (role == PeerRole::admin && (!st.ok() || info.may_admin || info.uid != kNobody)) {
        std::fprintf(stderr, "nobody admin finish: %s\n", st.to_string().c_str());
        _exit(94);
      }
    }
    _exit(0);
  }
  close(to_parent[1]);
  close(to_child[0]);
  MungeAuthenticator auth(g_socket);
  // Node role: refused, with the reason sent back.
  std::string hello;
  ck_assert(read_all(to_parent[0], hello));
  AcceptedSession acc;
  const Status st = accept_hello(auth, policy(), bytes_of(hello), hello.size(), acc);
  ck_assert_errc(st, Errc::uid_not_allowed);
  ck_assert_contains(st.message, "uid 65534");
  ck_assert(write_all(to_child[1], refusal_frame(st)));
  // Admin role: a session, without the right to change anything.
  ck_assert(read_all(to_parent[0], hello));
  ck_assert_status_ok(accept_hello(auth, policy(), bytes_of(hello), hello.size(), acc));
  ck_assert_uint_eq(acc.peer.uid, kNobody);
  ck_assert(!acc.peer.may_admin);
  // Root cannot read nobody's WELCOME (the key stays with nobody).
  ClientHandshake root_hs(params(PeerRole::admin));
  std::string unused;
  ck_assert_status_ok(root_hs.start(auth, unused));
  SecureChannel ch;
  SessionInfo info;
  ck_assert_errc(
      root_hs.finish(auth, bytes_of(acc.welcome_frame), acc.welcome_frame.size(), ch, info),
      Errc::cred_unauthorized);
  ck_assert(write_all(to_child[1], acc.welcome_frame));
  int status = 0;
  ck_assert(waitpid(pid, &status, 0) == pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child as nobody failed: %d",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
END_TEST

Suite *munge_suite() {
  Suite *s = suite_create("proto_munge");
  TCase *c = tcase_create("munged");
  tcase_set_timeout(c, 20);
  tcase_add_test(c, test_credential_round_trip);
  tcase_add_test(c, test_replay_rejected);
  tcase_add_test(c, test_tamper_rejected);
  tcase_add_test(c, test_expired_rejected);
  tcase_add_test(c, test_uid_restriction);
  tcase_add_test(c, test_munged_unreachable);
  tcase_add_test(c, test_handshake_root_node);
  tcase_add_test(c, test_handshake_tampered_hello);
  tcase_add_test(c, test_uid_check_real_users);
  suite_add_tcase(s, c);
  return s;
}

int main() {
  const std::string skip = why_skip();
  if (!skip.empty()) {
    std::printf("SKIP: test_proto_munge needs a private munged: %s\n", skip.c_str());
    return 77;
  }
  std::string why;
  if (!start_munged(why)) {
    std::printf("FAIL: could not start a private munged: %s\n", why.c_str());
    stop_munged();
    return 1;
  }
  std::printf("# private munged pid %d, socket %s\n", static_cast<int>(g_munged), g_socket.c_str());
  const int rc = pgtest::run_suite(munge_suite());
  stop_munged();
  return rc;
}
