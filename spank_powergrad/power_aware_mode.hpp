// The user's --power-aware[=MODE] choice: parsing and naming, free of Slurm so it is
// unit-tested on its own.
#pragma once

#include <optional>
#include <string>

namespace powergrad {

enum class PowerAwareMode {
  off,         // not power-aware: measured as node load, never steered
  latency,     // latency-sensitive service: gradients weighted by the latency a watt saves
  throughput,  // batch/offline work: gradients in raw speed-up per watt
  monitor,     // measured and reported, caps never changed on its behalf
};

// The mode `--power-aware` means when given without a value.
constexpr PowerAwareMode kDefaultPowerAwareMode = PowerAwareMode::latency;

struct ModeParse {
  std::optional<PowerAwareMode> mode;  // set on success
  std::string error;                   // set on failure: names the value and the choices
};

// Parses the option's argument. `value` may be null or empty (option given without a
// value) and may be the literal "(null)": sbatch/salloc forward a missing optional value to
// the steps that way (Slurm 22.05). Those give `default_mode`. Case-insensitive; "on",
// "yes" and "1" are accepted as the default mode, "no" and "0" as off.
ModeParse parse_power_aware_mode(const char *value,
                                 PowerAwareMode default_mode = kDefaultPowerAwareMode);

// What a job gets when it says nothing: the plugin's default_mode= (off unless the admin
// makes every job power-aware). `--power-aware` without a value then means that mode, or
// latency when the default is off.
constexpr PowerAwareMode valueless_mode(PowerAwareMode default_mode) {
  return default_mode == PowerAwareMode::off ? kDefaultPowerAwareMode : default_mode;
}

const char *mode_name(PowerAwareMode mode);

// The list shown in errors and in `srun --help`.
const char *mode_choices();

}  // namespace powergrad
