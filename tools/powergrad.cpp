// powergrad: PowerGrad's command for users and admins.
//   powergrad report [-j JOBS] [-u USERS] [-S START] [-E END] [--format table|json|csv]
// reads PowerGrad's per-job records from Slurm accounting (sacct) and prints them.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "tools/job_report.hpp"

namespace {

const char *kUsage =
    "usage: powergrad report [-j JOBS] [-u USERS] [-S START] [-E END]\n"
    "                        [--format table|json|csv] [--sacct PATH]\n"
    "\n"
    "  report   PowerGrad's per-job records (energy, power, caps, gradient, counters, as\n"
    "           far as recorded) of power-aware jobs, from sacct's AdminComment.\n"
    "           -j, -u, -S, -E are passed to sacct (see sacct(1)); --sacct names the\n"
    "           sacct program (default: sacct from PATH).\n";

// Runs argv (no shell), returns its exit status and stdout; stderr passes through.
int run_capture(const std::vector<std::string> &argv, std::string &out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char *> a;
    for (const auto &s : argv) a.push_back(const_cast<char *>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    std::fprintf(stderr, "powergrad: cannot run %s: %s\n", a[0], std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  char buf[65536];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int report(int argc, char **argv) {
  std::string format = "table", sacct = "sacct";
  std::vector<std::string> pass;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char *name) -> std::string {
      if (i + 1 >= argc) throw std::string(std::string(name) + " needs a value");
      return argv[++i];
    };
    if (a == "-j" || a == "-u" || a == "-S" || a == "-E") {
      const std::string v = value(a.c_str());
      pass.push_back(a);
      pass.push_back(v);
    } else if (a == "--format") {
      format = value("--format");
      if (format != "table" && format != "json" && format != "csv") {
        throw std::string("--format '" + format + "': choose table, json or csv");
      }
    } else if (a == "--sacct") {
      sacct = value("--sacct");
    } else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      throw std::string("unknown argument '" + a + "'");
    }
  }
  std::vector<std::string> cmd = {sacct, "--parsable2", "--noheader", "--allocations",
                                  std::string("--format=") + powergrad::kReportSacctFormat};
  cmd.insert(cmd.end(), pass.begin(), pass.end());
  std::string out;
  const int rc = run_capture(cmd, out);
  if (rc != 0) {
    std::cerr << "powergrad: " << sacct << " failed (exit status " << rc << ")\n";
    return 1;
  }
  const powergrad::SacctParse parsed = powergrad::parse_sacct_report(out);
  for (const auto &e : parsed.errors) std::cerr << "powergrad: " << e << '\n';
  if (format == "json") {
    std::cout << powergrad::format_report_json(parsed.rows);
  } else if (format == "csv") {
    std::cout << powergrad::format_report_csv(parsed.rows);
  } else {
    std::cout << powergrad::format_report_table(parsed.rows);
  }
  return parsed.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
      std::cout << kUsage;
      return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "report") return report(argc - 2, argv + 2);
    std::cerr << "powergrad: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
  } catch (const std::string &e) {
    std::cerr << "powergrad: " << e << '\n';
    return 2;
  } catch (const std::exception &e) {
    std::cerr << "powergrad: " << e.what() << '\n';
    return 1;
  }
}
