// How a job wants to be treated: the one job-mode type of PowerGrad, with its one parser and
// one printer. The SPANK plugin parses the user's --power-aware[=MODE] with it, the node agent
// carries it from the step to the node controller, the controller reads it back from the
// job's environment, and the wire protocol sends its numeric value (the order below is part
// of protocol version 1: append only).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace powergrad {

enum class JobMode {
  latency,     // a service: a watt is worth the latency it saves at the service's load
  throughput,  // batch work: a watt is worth the relative speed-up it buys
  monitor,     // measured and reported, never steered (its watts are protected, not traded)
  off,         // not power-aware: counts toward the node's power need, never perturbed
};

// The mode `--power-aware` means when given without a value (and the admin set no default).
constexpr JobMode kDefaultJobMode = JobMode::latency;

// The name of a mode: "latency", "throughput", "monitor", "off". What every record, message
// and report prints, and what job_mode_from_name() reads back.
const char *to_string(JobMode mode);

// Exactly one of the names to_string() prints, else nothing (no aliases, no case folding):
// for PowerGrad's own records and messages, where anything else is a defect or tampering.
std::optional<JobMode> job_mode_from_name(std::string_view name);

struct ModeParse {
  std::optional<JobMode> mode;  // set on success
  std::string error;            // set on failure: names the value and the choices
};

// Parses what a user or admin wrote (--power-aware's argument, default_mode=, the job's
// POWERGRAD environment value). `value` may be null or empty (option given without a value)
// and may be the literal "(null)": sbatch/salloc forward a missing optional value to the
// steps that way (Slurm 22.05). Those give `default_mode`. Case-insensitive; "on", "yes" and
// "1" are accepted as the default mode, "no" and "0" as off.
ModeParse parse_job_mode(const char *value, JobMode default_mode = kDefaultJobMode);

// The list shown in errors and in `srun --help`.
const char *job_mode_choices();

// What a job gets when it says nothing is the plugin's default_mode= (off unless the admin
// makes every job power-aware). `--power-aware` without a value then means that mode, or
// latency when the default is off.
constexpr JobMode valueless_mode(JobMode default_mode) {
  return default_mode == JobMode::off ? kDefaultJobMode : default_mode;
}

// Power-aware: the job asked for PowerGrad (measured, reported; steered unless monitor).
constexpr bool is_power_aware(JobMode m) { return m != JobMode::off; }
// Steered: the controllers may move its watts by gradient.
constexpr bool is_steered(JobMode m) { return m == JobMode::latency || m == JobMode::throughput; }

}  // namespace powergrad
