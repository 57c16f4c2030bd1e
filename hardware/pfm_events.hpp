// Which PMU events PowerGrad counts, per core PMU, by libpfm4 name; and their encoding into
// perf_event_attr with pfm_get_os_event_encoding(..., PFM_OS_PERF_EVENT_EXT, ...).
//
// libpfm4 reads LIBPFM_ENCODE_INACTIVE and LIBPFM_FORCE_PMU once, in pfm_initialize(): tests
// that encode for PMUs this machine lacks set them before the first call (in a fresh
// process), as libpfm4's own validation tests do.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hardware/result.hpp"

struct perf_event_attr;  // from <perfmon/perf_event.h>, kept out of this header

namespace powergrad::hw {

enum class CounterRole { cycles, instructions, stall_cycles, ref_cycles, llc_misses };
const char *to_string(CounterRole role);
constexpr CounterRole kAllCounterRoles[] = {CounterRole::cycles, CounterRole::instructions,
                                            CounterRole::stall_cycles, CounterRole::ref_cycles,
                                            CounterRole::llc_misses};

// Events of one core PMU (libpfm4 names, without the "pmu::" prefix). nullptr: no suitable
// event on that PMU; the field stays unset in samples.
struct PmuEventSet {
  const char *pmu;  // libpfm4 PMU name: "skx", "amd64_fam19h_zen4"
  const char *vendor;
  const char *cycles;
  const char *instructions;
  const char *stall_cycles;
  const char *ref_cycles;
  const char *llc_misses;
  // What the stall event measures, so an estimate can say what it rests on.
  const char *stall_meaning;
};

const std::vector<PmuEventSet> &pmu_event_table();
const PmuEventSet *find_event_set(std::string_view pmu);
// The event name for a role, or nullptr.
const char *event_name(const PmuEventSet &set, CounterRole role);
// "pmu::EVENT" for a role, or "" when the PMU has no event for it.
std::string qualified_event(const PmuEventSet &set, CounterRole role);

// pfm_initialize(), once per process (thread-safe); the same result every call.
Status initialize_libpfm();

// Names of the present core PMUs as libpfm4 detected them ("amd64_fam19h_zen4").
Result<std::vector<std::string>> present_core_pmus();
// The first present core PMU that has an entry in the table; an error listing what was
// found otherwise.
Result<const PmuEventSet *> detect_event_set();

// Encodes a libpfm4 event string into *attr (zeroed first; size set). count_kernel adds the
// kernel privilege level (PFM_PLM0) to user (PFM_PLM3). canonical (optional) receives
// libpfm4's fully qualified event string. Errors name the event and libpfm4's reason.
Status encode_event(const std::string &event, bool count_kernel, perf_event_attr *attr,
                    std::string *canonical = nullptr);

}  // namespace powergrad::hw
