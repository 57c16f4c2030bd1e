// Only libpfm4's header: it carries its own copy of the perf_event ABI, and including
// <linux/perf_event.h> as well redefines every perf type.
#include "hardware/pfm_events.hpp"

#include <perfmon/pfmlib_perf_event.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace powergrad::hw {

namespace {

// Memory-stall events, by generation (names as libpfm4 4.13 knows them):
// - Intel Skylake and later: CYCLE_ACTIVITY:STALLS_L3_MISS, execution stalled while an L3
//   miss is outstanding (event A3, umask 06, cmask 6): the share of cycles waiting on DRAM.
// - Intel Sandy Bridge .. Broadwell have no L3-miss stall event; STALLS_L2_PENDING (stalled
//   with an L2 miss outstanding) is the closest and overstates the DRAM share somewhat.
// - AMD Zen 4: CYCLES_NO_RETIRE:NOT_COMPLETE_MISSING_LOAD, cycles where retirement waits on
//   a load that missed the data cache.
// - AMD Zen 1-3 have no retire-stall-on-load event; the load-queue-full dispatch stall is
//   a proxy (memory-bound code fills the load queue) and underestimates latency-bound
//   pointer chasing.
// LLC misses: Intel's architectural LONGEST_LAT_CACHE:MISS (LLC_MISSES on Sandy Bridge);
// AMD's L3 is counted by a separate L3 PMU per CCX, so core-side demand fills from DRAM
// stand in for it. Reference cycles (constant rate while unhalted, for cycles/ref ~
// APERF/MPERF): UNHALTED_REFERENCE_CYCLES on Intel, P0-frequency cycles on Zen 4, none
// before.
const char *const kIntelStallL3 = "execution stalled while an L3 miss is outstanding";
const char *const kIntelStallL2 = "execution stalled while an L2 miss is outstanding (proxy)";
const char *const kZen4Stall = "retirement waiting on a load that missed the data cache";
const char *const kZenStallProxy = "dispatch stalled on a full load queue (proxy)";

const std::vector<PmuEventSet> kTable = {
    {"snb", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LLC_MISSES", kIntelStallL2},
    {"snb_ep", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LLC_MISSES", kIntelStallL2},
    {"ivb", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS",
     kIntelStallL2},
    {"ivb_ep", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS",
     kIntelStallL2},
    {"hsw", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS",
     kIntelStallL2},
    {"hsw_ep", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS",
     kIntelStallL2},
    {"bdw", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS",
     kIntelStallL2},
    {"bdw_ep", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P",
     "CYCLE_ACTIVITY:STALLS_L2_PENDING", "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS",
     kIntelStallL2},
    {"skl", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P", "CYCLE_ACTIVITY:STALLS_L3_MISS",
     "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS", kIntelStallL3},
    {"skx", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P", "CYCLE_ACTIVITY:STALLS_L3_MISS",
     "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS", kIntelStallL3},
    {"clx", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P", "CYCLE_ACTIVITY:STALLS_L3_MISS",
     "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS", kIntelStallL3},
    {"icl", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P", "CYCLE_ACTIVITY:STALLS_L3_MISS",
     "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS", kIntelStallL3},
    {"icx", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P", "CYCLE_ACTIVITY:STALLS_L3_MISS",
     "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS", kIntelStallL3},
    {"spr", "intel", "UNHALTED_CORE_CYCLES", "INST_RETIRED:ANY_P", "CYCLE_ACTIVITY:STALLS_L3_MISS",
     "UNHALTED_REFERENCE_CYCLES", "LONGEST_LAT_CACHE:MISS", kIntelStallL3},
    {"amd64_fam17h_zen1", "amd", "CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS",
     "DISPATCH_RESOURCE_STALL_CYCLES_1:LOAD_QUEUE_RSRC_STALL", nullptr, nullptr, kZenStallProxy},
    {"amd64_fam17h_zen2", "amd", "CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS",
     "DISPATCH_RESOURCE_STALL_CYCLES_1:LOAD_QUEUE_RSRC_STALL", nullptr,
     "DATA_CACHE_REFILLS_FROM_SYSTEM:LS_MABRESP_LCL_DRAM:LS_MABRESP_RMT_DRAM", kZenStallProxy},
    {"amd64_fam19h_zen3", "amd", "CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS",
     "DISPATCH_RESOURCE_STALL_CYCLES_1:LOAD_QUEUE_RSRC_STALL", nullptr,
     "DEMAND_DATA_CACHE_FILLS_FROM_SYSTEM:MEM_IO_LCL:MEM_IO_RMT", kZenStallProxy},
    {"amd64_fam19h_zen4", "amd", "CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS",
     "CYCLES_NO_RETIRE:NOT_COMPLETE_MISSING_LOAD", "P0_FREQ_CYCLES_NOT_IN_HALT:P0_FREQ_CYCLES",
     "DEMAND_DATA_CACHE_FILLS_FROM_SYSTEM:DRAM_IO_NEAR:DRAM_IO_FAR", kZen4Stall},
};

int g_pfm_init_result = PFM_SUCCESS;
std::once_flag g_pfm_once;

}  // namespace

const char *to_string(CounterRole role) {
  switch (role) {
    case CounterRole::cycles:
      return "cycles";
    case CounterRole::instructions:
      return "instructions";
    case CounterRole::stall_cycles:
      return "stall_cycles";
    case CounterRole::ref_cycles:
      return "ref_cycles";
    case CounterRole::llc_misses:
      return "llc_misses";
  }
  return "?";
}

const std::vector<PmuEventSet> &pmu_event_table() { return kTable; }

const PmuEventSet *find_event_set(std::string_view pmu) {
  for (const auto &set : kTable) {
    if (pmu == set.pmu) return &set;
  }
  return nullptr;
}

const char *event_name(const PmuEventSet &set, CounterRole role) {
  switch (role) {
    case CounterRole::cycles:
      return set.cycles;
    case CounterRole::instructions:
      return set.instructions;
    case CounterRole::stall_cycles:
      return set.stall_cycles;
    case CounterRole::ref_cycles:
      return set.ref_cycles;
    case CounterRole::llc_misses:
      return set.llc_misses;
  }
  return nullptr;
}

std::string qualified_event(const PmuEventSet &set, CounterRole role) {
  const char *name = event_name(set, role);
  if (name == nullptr) return "";
  return std::string(set.pmu) + "::" + name;
}

Status initialize_libpfm() {
  std::call_once(g_pfm_once, [] { g_pfm_init_result = pfm_initialize(); });
  if (g_pfm_init_result != PFM_SUCCESS) {
    return Status::failure(
        std::string("libpfm4: pfm_initialize failed: ") + pfm_strerror(g_pfm_init_result), ENODEV);
  }
  return Status::success();
}

Result<std::vector<std::string>> present_core_pmus() {
  Status init = initialize_libpfm();
  if (!init.ok()) return init.error();
  std::vector<std::string> out;
  int i;
  pfm_for_all_pmus(i) {
    pfm_pmu_info_t info;
    std::memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (pfm_get_pmu_info(static_cast<pfm_pmu_t>(i), &info) != PFM_SUCCESS) continue;
    if (info.is_present && info.type == PFM_PMU_TYPE_CORE) out.push_back(info.name);
  }
  return out;
}

Result<const PmuEventSet *> detect_event_set() {
  Result<std::vector<std::string>> pmus = present_core_pmus();
  if (!pmus.ok()) return pmus.error();
  std::string seen;
  for (const auto &name : pmus.value()) {
    if (const PmuEventSet *set = find_event_set(name)) return set;
    seen += (seen.empty() ? "" : ", ") + name;
  }
  return Error{"libpfm4: no event table for the present core PMU(s): " +
                   (seen.empty() ? std::string("none detected") : seen),
               ENOENT};
}

Status encode_event(const std::string &event, bool count_kernel, perf_event_attr *attr,
                    std::string *canonical) {
  Status init = initialize_libpfm();
  if (!init.ok()) return init;
  std::memset(attr, 0, sizeof *attr);
  pfm_perf_encode_arg_t arg;
  std::memset(&arg, 0, sizeof arg);
  arg.attr = attr;
  arg.size = sizeof arg;
  char *fstr = nullptr;
  if (canonical != nullptr) arg.fstr = &fstr;
  const int plm = PFM_PLM3 | (count_kernel ? PFM_PLM0 : 0);
  const int ret = pfm_get_os_event_encoding(event.c_str(), plm, PFM_OS_PERF_EVENT_EXT, &arg);
  if (ret != PFM_SUCCESS) {
    std::free(fstr);
    return Status::failure("libpfm4: cannot encode event '" + event + "': " + pfm_strerror(ret),
                           ENOENT);
  }
  attr->size = sizeof *attr;
  if (canonical != nullptr) *canonical = fstr != nullptr ? fstr : "";
  std::free(fstr);
  return Status::success();
}

}  // namespace powergrad::hw
