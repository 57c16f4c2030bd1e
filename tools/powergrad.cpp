// powergrad: PowerGrad's command for users and admins.
//   powergrad report [-j JOBS] [-u USERS] [-S START] [-E END] [--format table|json|csv]
// reads PowerGrad's per-job records from Slurm accounting (sacct) and prints them;
//   powergrad report -j JOBID --plot FILE.svg
// draws the job's power series (written by the controller at the job's end) as SVG;
//   powergrad status [--json] / powergrad set-budget WATTS
// talk to the controller in slurmctld over an admin session of the protocol (munge).
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "controller/ctld_config.hpp"
#include "jobreport/series.hpp"
#include "protocol/auth.hpp"
#include "tools/admin.hpp"
#include "tools/job_report.hpp"
#include "tools/release_node.hpp"
#include "tools/series_plot.hpp"

namespace {

const char *kUsage =
    "usage: powergrad report [-j JOBS] [-u USERS] [-S START] [-E END]\n"
    "                        [--format table|json|csv] [--sacct PATH]\n"
    "       powergrad report -j JOBID --plot FILE.svg [--series-dir DIR] [--conf PATH]\n"
    "       powergrad status [--json] [--controller HOST:PORT] [--conf PATH]\n"
    "       powergrad set-budget WATTS [--controller HOST:PORT] [--conf PATH]\n"
    "       powergrad release-node [--state-dir DIR] [--sysfs-root DIR] [--forget]\n"
    "       powergrad release-node --plugstack FILE [--forget]\n"
    "       powergrad check-config [FILE] [--nodes HOSTLIST]\n"
    "\n"
    "  report   PowerGrad's per-job records (energy, power, caps, gradient, counters, as\n"
    "           far as recorded) of power-aware jobs, from sacct's AdminComment.\n"
    "           -j, -u, -S, -E are passed to sacct (see sacct(1)); --sacct names the\n"
    "           sacct program (default: sacct from PATH).\n"
    "           --plot FILE.svg draws one job's power, cap and grant over time from the\n"
    "           series the controller wrote when the job ended (SeriesDir= of\n"
    "           powergrad.conf, default StateSaveLocation/powergrad/series; or --series-dir).\n"
    "  status   the controller's budget, groups and nodes (grant, power, gradient, jobs,\n"
    "           lease age); --json prints the controller's JSON. Anyone may ask.\n"
    "  set-budget WATTS\n"
    "           change the cluster budget (root, SlurmUser and powergrad.conf's AdminUsers).\n"
    "           The controller's address is Listen= of powergrad.conf (next to slurm.conf:\n"
    "           $SLURM_CONF, or --conf, or $POWERGRAD_CONF), or --controller HOST:PORT.\n"
    "  release-node\n"
    "           on a node whose plugin was removed (no agent runs): put back the admin's\n"
    "           power settings the agent saved in its state folder (default /run/powergrad;\n"
    "           root). A node whose agent runs is released by taking it out of\n"
    "           powergrad.conf's groups. --plugstack FILE: every state folder the\n"
    "           plugin's lines in FILE name, and the default one; --forget: then remove\n"
    "           the folders.\n"
    "  check-config [FILE]\n"
    "           validate a powergrad.conf (default: the one status reads) offline, with\n"
    "           the controller's own parser and messages: the file, its BudgetSchedule=,\n"
    "           AdminUsers on this host and, with --nodes (the nodes of slurm.conf, a\n"
    "           Slurm hostlist), its groups, node lines, floors and limits. Prints a\n"
    "           summary and exits 0 when the controller would run on it, else prints\n"
    "           FILE:LINE: problem and exits 1.\n";

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

// slurm.conf's value of KEY (case-insensitive, first occurrence), or "".
std::string slurm_conf_value(const std::string &key);

// Where the controller writes the per-job series: --series-dir, else powergrad.conf's
// SeriesDir=/StateDir=, else slurm.conf's StateSaveLocation/powergrad/series.
std::string series_dir_for(const std::string &given, const std::string &conf) {
  if (!given.empty()) return given;
  const std::string path = conf.empty() ? powergrad::default_powergrad_conf_path() : conf;
  powergrad::ConfigResult r = powergrad::load_controller_config(path);
  const powergrad::ControllerFileConfig file = r.config ? *r.config : powergrad::ControllerFileConfig{};
  return powergrad::resolve_series_dir(file, slurm_conf_value("StateSaveLocation"));
}

int plot(const std::vector<std::string> &jobs, const std::string &svg_path,
         const std::string &series_dir, const std::string &conf) {
  if (jobs.size() != 1) throw std::string("--plot needs exactly one job: -j JOBID");
  const std::string &j = jobs[0];
  char *end = nullptr;
  const unsigned long id = std::strtoul(j.c_str(), &end, 10);
  if (j.empty() || *end != '\0' || id == 0 || id > 0xffffffffUL) {
    throw std::string("--plot: -j '" + j + "' is not one job id");
  }
  const std::string dir = series_dir_for(series_dir, conf);
  if (dir.empty()) {
    std::cerr << "powergrad: cannot tell where the power series are: no SeriesDir= in "
                 "powergrad.conf and no StateSaveLocation in slurm.conf (give --series-dir DIR)\n";
    return 1;
  }
  const std::string file = powergrad::series_file_path(dir, static_cast<uint32_t>(id));
  std::ifstream in(file);
  if (!in) {
    const int e = errno;
    std::cerr << "powergrad: no power series for job " << id << ": cannot read " << file << ": "
              << std::strerror(e)
              << (e == ENOENT ? " (the controller writes it a few seconds after a power-aware job "
                                "ends; old ones are pruned, see SeriesKeep= in powergrad.conf(5))"
                              : "")
              << '\n';
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const powergrad::SeriesParse parsed = powergrad::parse_series_csv(ss.str());
  if (!parsed.points) {
    std::cerr << "powergrad: " << file << ": " << parsed.error << '\n';
    return 1;
  }
  const std::string err = powergrad::write_series_plot(svg_path, static_cast<uint32_t>(id), *parsed.points);
  if (!err.empty()) {
    std::cerr << "powergrad: " << err << '\n';
    return 1;
  }
  std::cout << "powergrad: job " << id << ": " << parsed.points->size() << " points from " << file
            << " plotted to " << svg_path << '\n';
  return 0;
}

int report(int argc, char **argv) {
  std::string format = "table", sacct = "sacct", plot_path, series_dir, conf;
  std::vector<std::string> jobs;
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
      if (a == "-j") jobs.push_back(v);
    } else if (a == "--plot") {
      plot_path = value("--plot");
    } else if (a == "--series-dir") {
      series_dir = value("--series-dir");
    } else if (a == "--conf") {
      conf = value("--conf");
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
  if (!plot_path.empty()) return plot(jobs, plot_path, series_dir, conf);
  if (!series_dir.empty()) throw std::string("--series-dir is only for --plot");
  const std::string delimiter = powergrad::make_sacct_delimiter();
  std::vector<std::string> cmd = {sacct};
  const std::vector<std::string> args = powergrad::sacct_report_args(delimiter);
  cmd.insert(cmd.end(), args.begin(), args.end());
  cmd.insert(cmd.end(), pass.begin(), pass.end());
  std::string out;
  const int rc = run_capture(cmd, out);
  if (rc != 0) {
    std::cerr << "powergrad: " << sacct << " failed (exit status " << rc << ")\n";
    return 1;
  }
  const powergrad::SacctParse parsed = powergrad::parse_sacct_report(out, delimiter);
  for (const auto &e : parsed.errors)
    std::cerr << "powergrad: " << powergrad::escape_control(e) << '\n';
  if (format == "json") {
    std::cout << powergrad::format_report_json(parsed.rows);
  } else if (format == "csv") {
    std::cout << powergrad::format_report_csv(parsed.rows);
  } else {
    std::cout << powergrad::format_report_table(parsed.rows);
  }
  return parsed.errors.empty() ? 0 : 1;
}

// slurm.conf's value of KEY (case-insensitive, first occurrence), or "".
std::string slurm_conf_value(const std::string &key) {
  const char *sc = std::getenv("SLURM_CONF");
  std::ifstream f(sc && *sc ? sc : "/etc/slurm/slurm.conf");
  std::string line;
  auto lower = [](std::string x) {
    for (char &c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return x;
  };
  const std::string want = lower(key) + "=";
  while (std::getline(f, line)) {
    line = line.substr(0, line.find('#'));
    const size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    if (lower(line.substr(b, want.size())) != want) continue;
    std::string v = line.substr(b + want.size());
    const size_t e = v.find_first_of(" \t");
    return e == std::string::npos ? v : v.substr(0, e);
  }
  return "";
}

struct AdminArgs {
  bool json = false;
  std::string controller, conf;
  double timeout_s = 10.0;
  std::vector<std::string> positional;
};

AdminArgs parse_admin_args(int argc, char **argv, bool allow_json) {
  AdminArgs a;
  for (int i = 0; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&](const char *name) -> std::string {
      if (i + 1 >= argc) throw std::string(std::string(name) + " needs a value");
      return argv[++i];
    };
    if (s == "--json" && allow_json) {
      a.json = true;
    } else if (s == "--controller") {
      a.controller = value("--controller");
    } else if (s == "--conf") {
      a.conf = value("--conf");
    } else if (s == "--timeout") {
      const std::string v = value("--timeout");
      char *end = nullptr;
      a.timeout_s = std::strtod(v.c_str(), &end);
      if (*end != '\0' || !(a.timeout_s > 0) || a.timeout_s > 3600)
        throw std::string("--timeout '" + v + "': expected seconds (0 to 3600)");
    } else if (s == "-h" || s == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (!s.empty() && s[0] == '-' && !(s.size() > 1 && std::isdigit(static_cast<unsigned char>(s[1])))) {
      throw std::string("unknown option '" + s + "'");
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

powergrad::AdminRequestOptions request_options(const AdminArgs &a) {
  powergrad::AdminRequestOptions o;
  std::string err;
  if (!a.controller.empty()) {
    auto addr = powergrad::parse_host_port(a.controller, &err);
    if (!addr) throw std::string("--controller " + err);
    o.address = *addr;
  } else {
    const std::string conf = a.conf.empty() ? powergrad::default_powergrad_conf_path() : a.conf;
    auto addr = powergrad::address_from_conf(conf, &err);
    if (!addr) {
      std::cerr << "powergrad: cannot find the controller's address: " << err
                << " (give --controller HOST:PORT)\n";
      std::exit(1);
    }
    o.address = *addr;
    if (o.address.host.empty()) {
      // Listening on every address: reach it on slurmctld's host (SlurmctldHost=NAME(ADDR)).
      std::string h = slurm_conf_value("SlurmctldHost");
      if (h.empty()) h = slurm_conf_value("ControlMachine");
      const size_t open = h.find('(');
      if (open != std::string::npos && h.back() == ')') h = h.substr(open + 1, h.size() - open - 2);
      o.address.host = h.empty() ? "127.0.0.1" : h;
    }
  }
  o.timeout_s = a.timeout_s;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) o.client_name = host;
  for (char &c : o.client_name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  }
  // The controller runs as root or SlurmUser: trust WELCOMEs from those only.
  o.controller_uids = {0};
  const std::string su = slurm_conf_value("SlurmUser");
  if (!su.empty() && su != "root") {
    if (passwd *pw = getpwnam(su.c_str())) o.controller_uids.push_back(pw->pw_uid);
  }
  return o;
}

int status(int argc, char **argv) {
  const AdminArgs a = parse_admin_args(argc, argv, true);
  if (!a.positional.empty()) throw std::string("status: unexpected argument '" + a.positional[0] + "'");
  const powergrad::AdminRequestOptions o = request_options(a);
  powergrad::proto::MungeAuthenticator auth(powergrad::proto::munge_socket_from_env());
  std::string err;
  auto reply = powergrad::run_admin_request(o, auth, powergrad::proto::AdminStatusRequest{}, &err);
  if (!reply) {
    std::cerr << "powergrad: status: " << err << '\n'
              << "powergrad: status: is slurmctld up with PrEpPlugins=prep/powergrad? While the "
                 "controller cannot listen (e.g. another program holds the port), it retries and "
                 "slurmctld's log says why: 'powergrad: ... cannot listen on "
              << o.address.host << ":" << o.address.port << ": ...'\n";
    return 1;
  }
  const auto *st = std::get_if<powergrad::proto::AdminStatus>(&*reply);
  if (!st) {
    std::cerr << "powergrad: status: unexpected answer from the controller ("
              << powergrad::proto::type_name(powergrad::proto::type_of(*reply)) << ")\n";
    return 1;
  }
  if (a.json) {
    std::cout << st->json << '\n';
    return 0;
  }
  auto v = powergrad::json::parse(st->json, &err);
  if (!v) {
    std::cerr << "powergrad: status: the controller sent malformed JSON: " << err << '\n';
    return 1;
  }
  std::cout << powergrad::format_status_table(*v);
  return 0;
}

int set_budget(int argc, char **argv) {
  const AdminArgs a = parse_admin_args(argc, argv, false);
  if (a.positional.size() != 1) throw std::string("set-budget needs one argument: WATTS");
  const std::string w = a.positional[0];
  char *end = nullptr;
  errno = 0;
  const double watts = std::strtod(w.c_str(), &end);
  if (w.empty() || *end != '\0' || errno != 0 || !std::isfinite(watts) || watts < 0) {
    throw std::string("set-budget: '" + w + "' is not a number of watts");
  }
  const powergrad::AdminRequestOptions o = request_options(a);
  powergrad::proto::MungeAuthenticator auth(powergrad::proto::munge_socket_from_env());
  std::string err;
  auto reply = powergrad::run_admin_request(o, auth, powergrad::proto::AdminSetBudget{watts}, &err);
  if (!reply) {
    std::cerr << "powergrad: set-budget: " << err << '\n';
    return 1;
  }
  const auto *r = std::get_if<powergrad::proto::AdminResult>(&*reply);
  if (!r) {
    std::cerr << "powergrad: set-budget: unexpected answer from the controller\n";
    return 1;
  }
  using powergrad::proto::AdminCode;
  if (r->code == static_cast<uint16_t>(AdminCode::ok)) {
    std::cout << "powergrad: " << r->message << '\n';
    return 0;
  }
  const char *what = r->code == static_cast<uint16_t>(AdminCode::permission_denied) ? "refused (permission denied)"
                     : r->code == static_cast<uint16_t>(AdminCode::invalid)         ? "refused (invalid)"
                                                                                     : "failed";
  std::cerr << "powergrad: set-budget " << what << ": " << r->message << '\n';
  return 1;
}

int check_config(int argc, char **argv) {
  std::string path;
  std::optional<std::string> nodes_expr;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nodes") {
      if (i + 1 >= argc) throw std::string("--nodes needs a hostlist");
      nodes_expr = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      throw std::string("check-config: unknown option '" + a + "'");
    } else if (path.empty()) {
      path = a;
    } else {
      throw std::string("check-config: one file at a time ('" + a + "')");
    }
  }
  if (path.empty()) path = powergrad::default_powergrad_conf_path();
  std::optional<std::vector<std::string>> nodes;
  if (nodes_expr) {
    nodes = powergrad::expand_hostlist(*nodes_expr);
    if (!nodes || nodes->empty())
      throw std::string("--nodes: '" + *nodes_expr + "' is not a Slurm hostlist");
  }
  const powergrad::ConfigCheck c =
      powergrad::check_controller_config(path, nodes ? &*nodes : nullptr, 1);
  if (!c.ok()) {
    std::cerr << c.error << '\n';
    return 1;
  }
  const powergrad::ControllerFileConfig &f = *c.file;
  char budget[64];
  std::snprintf(budget, sizeof budget, "%g W", f.budget_w);
  std::cout << path << ": OK: budget " << budget << ", " << f.groups.size() << " groups, "
            << f.node_overrides.size() << " node lines, listen " << f.listen_host << ':'
            << f.listen_port;
  if (c.schedule) std::cout << ", schedule " << c.schedule->entries.size() << " entries";
  if (c.cluster) {
    std::cout << "; " << c.cluster->nodes.size() << " managed nodes";
    if (!c.unmanaged.empty()) std::cout << ", " << c.unmanaged.size() << " unmanaged";
  } else {
    std::cout << "; nodes not checked (give --nodes HOSTLIST)";
  }
  std::cout << '\n';
  return 0;
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
    if (cmd == "status") return status(argc - 2, argv + 2);
    if (cmd == "set-budget") return set_budget(argc - 2, argv + 2);
    if (cmd == "release-node") return powergrad::release_node(argc - 2, argv + 2);
    if (cmd == "check-config") return check_config(argc - 2, argv + 2);
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
