// powergrad-sim: runs power policies on a simulated inference cluster and reports latency,
// goodput, drops, energy and budget violations per policy. See doc/scenarios.md.
//
// Exit status: 0 on success, 2 on a usage error, a bad scenario or a failed run (the
// message says which); no exception leaves main.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "sim/baseline_settings.hpp"
#include "sim/plot_svg.hpp"
#include "sim/policies.hpp"
#include "sim/report.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"

using namespace powergrad::sim;

namespace {

const char kUsage[] =
    "usage: powergrad-sim SCENARIO [--policies LIST] [--seed N] [--format table|json|csv]\n"
    "                     [--plot FILE] [--json FILE] [--csv FILE] [--duration SECONDS]\n"
    "                     [--threads N] [--quiet] [--set KEY=VALUE]...\n"
    "  --json/--csv FILE  also write that format to FILE (one run, several outputs)\n"
    "  SCENARIO        a scenario file (YAML, see doc/scenarios.md)\n"
    "  --policies LIST comma-separated, default all: ";

struct Options {
  std::string scenario;
  std::vector<std::string> policies;
  std::string format = "table";
  std::string plot;
  std::string json_file;
  std::string csv_file;
  bool has_seed = false;
  std::uint64_t seed = 0;
  double duration_s = 0.0;
  unsigned threads = 0;
  bool quiet = false;
  BaselineSettings baselines;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string usage() {
  std::string u = kUsage;
  for (std::size_t i = 0; i < policy_names().size(); ++i) u += (i ? "," : "") + policy_names()[i];
  return u +
         "\n  --set KEY=VALUE a usage, pool or powergrad setting (repeatable; defaults in ()):\n" +
         baseline_settings_help();
}

double parse_number(const std::string &option, const std::string &text, double lo, double hi) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception &) {
  }
  throw UsageError(option + ": '" + text + "' is not a number in range");
}

Options parse_args(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << usage();
      std::exit(0);
    } else if (a == "--policies") {
      std::stringstream list(value());
      std::string name;
      while (std::getline(list, name, ',')) {
        if (!is_policy_name(name)) throw UsageError("unknown policy '" + name + "'");
        o.policies.push_back(name);
      }
      if (o.policies.empty()) throw UsageError("--policies: empty list");
    } else if (a == "--seed") {
      o.seed = static_cast<std::uint64_t>(parse_number(a, value(), 0, 9.007e15));
      o.has_seed = true;
    } else if (a == "--format") {
      o.format = value();
      if (o.format != "table" && o.format != "json" && o.format != "csv")
        throw UsageError("--format: choose table, json or csv");
    } else if (a == "--plot") {
      o.plot = value();
    } else if (a == "--json") {
      o.json_file = value();
    } else if (a == "--csv") {
      o.csv_file = value();
    } else if (a == "--duration") {
      o.duration_s = parse_number(a, value(), 1e-3, 1e8);
    } else if (a == "--threads") {
      o.threads = static_cast<unsigned>(parse_number(a, value(), 1, 256));
    } else if (a == "--set") {
      if (const std::string why = apply_baseline_setting(o.baselines, value()); !why.empty())
        throw UsageError("--set " + why);
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (!a.empty() && a[0] == '-') {
      throw UsageError("unknown option " + a);
    } else if (o.scenario.empty()) {
      o.scenario = a;
    } else {
      throw UsageError("more than one scenario given");
    }
  }
  if (o.scenario.empty()) throw UsageError("no scenario file given");
  if (const std::string why = check_baseline_settings(o.baselines); !why.empty())
    throw UsageError("--set: " + why);
  if (o.policies.empty()) o.policies = policy_names();
  return o;
}

int run(int argc, char **argv) {
  const Options o = parse_args(argc, argv);
  ClusterSpec spec = load_scenario(o.scenario);
  if (o.has_seed) spec.seed = o.seed;
  spec.baselines = o.baselines;
  if (o.duration_s > 0.0) {
    spec.duration_s = o.duration_s;
    spec.warmup_s = std::min(spec.warmup_s, 0.1 * o.duration_s);
    if (const std::string why = spec.check(); !why.empty()) throw ScenarioError(o.scenario + ": " + why);
  }
  const bool tty = isatty(STDERR_FILENO);
  ProgressFn progress;
  if (!o.quiet) {
    progress = [tty](double fraction) {
      std::fprintf(stderr, tty ? "\rpowergrad-sim: %3.0f%%" : "powergrad-sim: %3.0f%% done\n",
                   100.0 * fraction);
      std::fflush(stderr);
    };
  }
  const std::vector<RunResult> runs = run_policies(spec, o.policies, o.threads, progress);
  if (!o.quiet && tty) std::fprintf(stderr, "\r                    \r");
  if (o.format == "json")
    write_json(std::cout, spec, runs);
  else if (o.format == "csv")
    write_csv(std::cout, spec, runs);
  else
    write_table(std::cout, spec, runs);
  if (!o.plot.empty()) {
    if (const std::string why = write_plot_svg(o.plot, spec, runs); !why.empty())
      throw std::runtime_error(why);
  }
  auto write_file = [&](const std::string &path, void (*writer)(std::ostream &, const ClusterSpec &,
                                                              const std::vector<RunResult> &)) {
    if (path.empty()) return;
    std::ofstream file(path);
    if (file) writer(file, spec, runs);
    file.close();
    if (!file) throw std::runtime_error("cannot write " + path);
  };
  write_file(o.json_file, write_json);
  write_file(o.csv_file, write_csv);
  std::cout.flush();
  if (!std::cout) throw std::runtime_error("error writing the output");
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError &e) {
    std::cerr << "powergrad-sim: " << e.what() << "\n" << usage();
  } catch (const ScenarioError &e) {
    std::cerr << "powergrad-sim: " << e.what() << "\n";
  } catch (const std::exception &e) {
    std::cerr << "powergrad-sim: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "powergrad-sim: unexpected error\n";
  }
  return 2;
}
