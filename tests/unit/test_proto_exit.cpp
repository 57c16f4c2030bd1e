// libcrypto at the process's exit. slurmctld ends in exit() with the controller thread still
// running (the plugin's exit handler stops it); a thread that is computing a MAC then must
// not find libcrypto torn down by libcrypto's own exit handler (seen in CI as a SIGSEGV of
// slurmctld at shutdown, in CRYPTO_THREAD_read_lock under MacKey). Its own program: a process
// that used libcrypto before this test would have registered libcrypto's handler early.
#include <check.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "protocol/mac.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad::proto;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<long> g_macs{0};
std::thread *g_worker = nullptr;

// The plugin's exit handler, in small: stop the thread and wait for it.
extern "C" void stop_worker() {
  g_stop = true;
  if (g_worker != nullptr && g_worker->joinable()) g_worker->join();
}

// In a child process, the plugin's order: init_crypto_for_exit(), the exit handler, then a
// thread whose MACs are libcrypto's first use; exit() while the thread still computes.
// Returns the child's wait status.
int exit_while_a_thread_macs() {
  const pid_t pid = fork();
  if (pid == 0) {
    std::string error;
    if (!init_crypto_for_exit(error)) _exit(3);
    if (std::atexit(stop_worker) != 0) _exit(4);
    g_worker = new std::thread([] {
      Key key{};
      Mac mac;
      while (!g_stop) {
        if (!hmac_sha256(key, "frame", 5, mac)) _exit(5);
        ++g_macs;
      }
    });
    while (g_macs < 100) std::this_thread::yield();
    std::exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

}  // namespace

START_TEST(a_thread_may_use_libcrypto_while_exit_runs) {
  for (int i = 0; i < 5; ++i) {
    const int st = exit_while_a_thread_macs();
    ck_assert_msg(st != -1, "fork or waitpid failed");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "run %d: the child ended with exit status %d, signal %d", i,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  }
}
END_TEST

Suite *exit_suite() {
  Suite *s = suite_create("proto_exit");
  TCase *c = tcase_create("exit");
  tcase_add_test(c, a_thread_may_use_libcrypto_while_exit_runs);
  suite_add_tcase(s, c);
  return s;
}

int main() { return pgtest::run_suite(exit_suite()); }
