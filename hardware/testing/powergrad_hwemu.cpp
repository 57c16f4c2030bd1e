// powergrad-hwemu: fake node hardware for the end-to-end tests.
//
//   powergrad-hwemu make-tree --root DIR --machine KIND [--socket-w W]
//       builds a fake sysfs tree (KIND: intel-server, intel-client, amd-server, amd-genoa,
//       amd-genoa-nohwmon, no-powercap); --socket-w sets an amd-genoa socket's HSMP limit
//       and maximum (power1_cap, power1_cap_max)
//   powergrad-hwemu run --root DIR [--period-s 0.1] [--duration-s S] [--demand-file F]
//                       [--tdp-w 205] [--p0-w 60] [--settle-s 0.3] [--pid-file F]
//       advances energy_uj in DIR from the caps in force until SIGTERM/SIGINT (or S seconds);
//       the demand file ("<zone>=<watts>" lines) is re-read whenever it changes.
// Exit status: 0 on success, 1 on a runtime error, 2 on a usage error; errors on stderr
// prefixed "powergrad-hwemu:".
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "hardware/power_emulator.hpp"
#include "hardware/sysfs_file.hpp"
#include "hardware/testing/fake_sysfs.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

double monotonic_s() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int usage(const char *why) {
  std::fprintf(stderr,
               "powergrad-hwemu: %s\n"
               "usage: powergrad-hwemu make-tree --root DIR --machine KIND [--socket-w W]\n"
               "       powergrad-hwemu run --root DIR [--period-s S] [--duration-s S]\n"
               "                           [--demand-file F] [--tdp-w W] [--p0-w W]\n"
               "                           [--settle-s S] [--pid-file F]\n"
               "KIND: %s\n",
               why, powergrad::hw::testing::machine_kinds());
  return 2;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "powergrad-hwemu: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char **argv) {
  using namespace powergrad::hw;
  if (argc < 2) return usage("no command");
  const std::string command = argv[1];
  std::map<std::string, std::string> opts;
  for (int i = 2; i < argc; ++i) {
    const std::string key = argv[i];
    if (key.compare(0, 2, "--") != 0 || i + 1 >= argc) {
      return usage(("bad argument '" + key + "'").c_str());
    }
    opts[key.substr(2)] = argv[++i];
  }
  auto number = [&](const char *key, double fallback, double *out) {
    auto it = opts.find(key);
    if (it == opts.end()) {
      *out = fallback;
      return true;
    }
    return parse_double(it->second, out);
  };
  if (opts.count("root") == 0) return usage("--root is required");
  const std::string root = opts["root"];

  if (command == "make-tree") {
    for (const auto &[k, v] : opts) {
      if (k != "root" && k != "machine" && k != "socket-w") {
        return usage(("unknown option --" + k).c_str());
      }
    }
    if (opts.count("machine") == 0) return usage("--machine is required");
    double socket_w = 0.0;
    if (!number("socket-w", 0.0, &socket_w) || socket_w < 0.0) {
      return usage("--socket-w takes a number of watts");
    }
    Status s = testing::make_dirs(root);
    if (s.ok()) s = testing::build_machine(root, opts["machine"], socket_w);
    return s.ok() ? 0 : fail(s.message());
  }
  if (command != "run") return usage(("unknown command '" + command + "'").c_str());
  for (const auto &[k, v] : opts) {
    if (k != "root" && k != "period-s" && k != "duration-s" && k != "demand-file" && k != "tdp-w" &&
        k != "p0-w" && k != "settle-s" && k != "pid-file") {
      return usage(("unknown option --" + k).c_str());
    }
  }
  double period_s = 0, duration_s = 0;
  PowerEmulatorConfig config;
  if (!number("period-s", 0.1, &period_s) || period_s <= 0.0 || period_s > 60.0) {
    return usage("--period-s must be in (0, 60]");
  }
  if (!number("duration-s", 0.0, &duration_s) || duration_s < 0.0) {
    return usage("--duration-s must be >= 0 (0: until signalled)");
  }
  if (!number("tdp-w", config.socket.tdp_w, &config.socket.tdp_w) ||
      !number("p0-w", config.socket.p0_w, &config.socket.p0_w) ||
      !number("settle-s", config.settle_s, &config.settle_s)) {
    return usage("--tdp-w, --p0-w and --settle-s take numbers");
  }
  const std::string why = config.check();
  if (!why.empty()) return usage(why.c_str());

  PowerEmulator emulator(root, config);
  Status s = emulator.open();
  if (!s.ok()) return fail(s.message());
  if (opts.count("pid-file")) {
    s = testing::write_text(opts["pid-file"], std::to_string(::getpid()) + "\n", 0644);
    if (!s.ok()) return fail(s.message());
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  const std::string demand_file = opts.count("demand-file") ? opts["demand-file"] : "";
  struct timespec demand_mtime {};
  const double start = monotonic_s();
  double last = start;
  while (!g_stop) {
    if (!demand_file.empty()) {
      struct stat st {};
      if (::stat(demand_file.c_str(), &st) == 0 && (st.st_mtim.tv_sec != demand_mtime.tv_sec ||
                                                    st.st_mtim.tv_nsec != demand_mtime.tv_nsec)) {
        demand_mtime = st.st_mtim;
        s = emulator.load_demand_file(demand_file);
        if (!s.ok()) std::fprintf(stderr, "powergrad-hwemu: %s\n", s.message().c_str());
      }
    }
    const double now = monotonic_s();
    s = emulator.advance(now - last);
    last = now;
    if (!s.ok()) return fail(s.message());
    if (duration_s > 0.0 && now - start >= duration_s) break;
    const double nap = period_s;
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(nap);
    ts.tv_nsec = static_cast<long>((nap - static_cast<double>(ts.tv_sec)) * 1e9);
    nanosleep(&ts, nullptr);
  }
  return 0;
}
