// libpfm4 event encodings for Intel and AMD PMUs this machine does not have, table-driven
// like libpfm4's own validation tests. LIBPFM_ENCODE_INACTIVE=1 lets libpfm4 encode for an
// inactive PMU, LIBPFM_FORCE_PMU makes one PMU the detected one; libpfm4 reads both only in
// pfm_initialize(), so every check runs in a fresh child process with the variables set
// before the first libpfm4 call.
#include <check.h>
#include <perfmon/pfmlib_perf_event.h>  // only libpfm4's header: it carries the perf ABI

#include <cstring>
#include <set>
#include <string>

#include "hardware/pfm_events.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad::hw;

namespace {

const std::vector<std::pair<std::string, std::string>> kInactive = {
    {"LIBPFM_ENCODE_INACTIVE", "1"}};

// Expected raw encodings, checked against the vendors' manuals: Intel SDM event/umask/cmask
// (0x3c unhalted cycles, 0xc0 instructions retired, 0x0300 reference cycles, 0x412e LLC
// misses, CYCLE_ACTIVITY 0xa3 with umask = cmask), AMD PPR PMCx076, PMCx0C0, PMCx0AE, PMCx0D6,
// PMCx043, and PMCx120 whose event-select bits 11:8 land in config bits 35:32.
struct Expected {
  const char *event;
  std::uint64_t config;
};
const Expected kExpected[] = {
    {"snb::UNHALTED_CORE_CYCLES", 0x3c},
    {"snb::CYCLE_ACTIVITY:STALLS_L2_PENDING", 0x50005a3},
    {"snb::LLC_MISSES", 0x412e},
    {"hsw::INST_RETIRED:ANY_P", 0xc0},
    {"hsw::CYCLE_ACTIVITY:STALLS_L2_PENDING", 0x50005a3},
    {"bdw_ep::LONGEST_LAT_CACHE:MISS", 0x412e},
    {"skx::UNHALTED_CORE_CYCLES", 0x3c},
    {"skx::INST_RETIRED:ANY_P", 0xc0},
    {"skx::CYCLE_ACTIVITY:STALLS_L3_MISS", 0x60006a3},
    {"skx::UNHALTED_REFERENCE_CYCLES", 0x300},
    {"skx::LONGEST_LAT_CACHE:MISS", 0x412e},
    {"icx::CYCLE_ACTIVITY:STALLS_L3_MISS", 0x60006a3},
    {"spr::CYCLE_ACTIVITY:STALLS_L3_MISS", 0x60006a3},
    {"spr::LONGEST_LAT_CACHE:MISS", 0x412e},
    {"amd64_fam17h_zen1::CYCLES_NOT_IN_HALT", 0x76},
    {"amd64_fam17h_zen2::RETIRED_INSTRUCTIONS", 0xc0},
    {"amd64_fam17h_zen2::DISPATCH_RESOURCE_STALL_CYCLES_1:LOAD_QUEUE_RSRC_STALL", 0x2ae},
    {"amd64_fam17h_zen2::DATA_CACHE_REFILLS_FROM_SYSTEM:LS_MABRESP_LCL_DRAM:LS_MABRESP_RMT_DRAM",
     0x4843},
    {"amd64_fam19h_zen3::DEMAND_DATA_CACHE_FILLS_FROM_SYSTEM:MEM_IO_LCL:MEM_IO_RMT", 0x4843},
    {"amd64_fam19h_zen4::CYCLES_NOT_IN_HALT", 0x76},
    {"amd64_fam19h_zen4::CYCLES_NO_RETIRE:NOT_COMPLETE_MISSING_LOAD", 0xa2d6},
    {"amd64_fam19h_zen4::P0_FREQ_CYCLES_NOT_IN_HALT:P0_FREQ_CYCLES", 0x100000120},
    {"amd64_fam19h_zen4::DEMAND_DATA_CACHE_FILLS_FROM_SYSTEM:DRAM_IO_NEAR:DRAM_IO_FAR", 0x4843},
};

// PMUs whose detection (LIBPFM_FORCE_PMU) picks their table row.
const char *const kForced[] = {"snb",
                               "hsw",
                               "bdw",
                               "skx",
                               "icx",
                               "spr",
                               "amd64_fam17h_zen2",
                               "amd64_fam19h_zen3",
                               "amd64_fam19h_zen4"};

void check_in_child(const std::vector<std::pair<std::string, std::string>> &env,
                    const std::function<std::string()> &fn) {
  const std::string failure = pghw::run_in_child(env, fn);
  ck_assert_msg(failure.empty(), "%s", failure.c_str());
}

}  // namespace

START_TEST(table_is_well_formed) {
  std::set<std::string> seen;
  for (const auto &row : pmu_event_table()) {
    ck_assert_msg(seen.insert(row.pmu).second, "duplicate PMU %s", row.pmu);
    ck_assert_ptr_nonnull(row.cycles);
    ck_assert_ptr_nonnull(row.instructions);
    ck_assert_ptr_nonnull(row.stall_cycles);
    ck_assert_ptr_nonnull(row.stall_meaning);
    ck_assert_msg(std::strcmp(row.vendor, "intel") == 0 || std::strcmp(row.vendor, "amd") == 0,
                  "vendor %s", row.vendor);
    ck_assert_ptr_eq(find_event_set(row.pmu), &row);
  }
  ck_assert_ptr_null(find_event_set("no_such_pmu"));
  const PmuEventSet *zen2 = find_event_set("amd64_fam17h_zen2");
  ck_assert_std_str_eq(qualified_event(*zen2, CounterRole::ref_cycles), "");
  ck_assert_std_str_eq(qualified_event(*zen2, CounterRole::cycles),
                       "amd64_fam17h_zen2::CYCLES_NOT_IN_HALT");
}
END_TEST

START_TEST(every_table_event_encodes) {
  check_in_child(kInactive, [] {
    std::string failures;
    for (const auto &row : pmu_event_table()) {
      for (CounterRole role : kAllCounterRoles) {
        const std::string name = qualified_event(row, role);
        if (name.empty()) continue;
        perf_event_attr attr;
        std::string canonical;
        Status s = encode_event(name, true, &attr, &canonical);
        if (!s.ok()) {
          failures += s.message() + "; ";
          continue;
        }
        if (canonical.compare(0, std::strlen(row.pmu) + 2, std::string(row.pmu) + "::") != 0) {
          failures += name + ": canonical '" + canonical + "'; ";
        }
        if (attr.type != PERF_TYPE_RAW || attr.config == 0 || attr.size != sizeof attr) {
          failures += name + ": odd attr; ";
        }
      }
    }
    return failures;
  });
}
END_TEST

START_TEST(encodings_match_vendor_codes) {
  check_in_child(kInactive, [] {
    std::string failures;
    for (const auto &e : kExpected) {
      perf_event_attr attr;
      Status s = encode_event(e.event, true, &attr);
      if (!s.ok()) {
        failures += s.message() + "; ";
      } else if (attr.config != e.config) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s: config 0x%llx, expected 0x%llx; ", e.event,
                      static_cast<unsigned long long>(attr.config),
                      static_cast<unsigned long long>(e.config));
        failures += buf;
      }
    }
    return failures;
  });
}
END_TEST

START_TEST(privilege_levels) {
  check_in_child(kInactive, [] {
    perf_event_attr all, user;
    if (!encode_event("skx::UNHALTED_CORE_CYCLES", true, &all).ok()) return std::string("all");
    if (!encode_event("skx::UNHALTED_CORE_CYCLES", false, &user).ok()) return std::string("user");
    if (all.exclude_kernel || all.exclude_user)
      return std::string("user+kernel excludes something");
    if (!user.exclude_kernel || user.exclude_user) return std::string("user-only is wrong");
    return std::string();
  });
}
END_TEST

START_TEST(forced_pmu_is_detected) {
  const std::string pmu = kForced[_i];
  check_in_child({{"LIBPFM_FORCE_PMU", pmu}}, [pmu] {
    Result<const PmuEventSet *> set = detect_event_set();
    if (!set.ok()) return set.message();
    if (pmu != set.value()->pmu) return "detected " + std::string(set.value()->pmu);
    // The forced PMU is active: its events encode without ENCODE_INACTIVE.
    perf_event_attr attr;
    Status s = encode_event(qualified_event(*set.value(), CounterRole::stall_cycles), true, &attr);
    return s.ok() ? std::string() : s.message();
  });
}
END_TEST

START_TEST(unknown_events_are_errors) {
  check_in_child(kInactive, [] {
    perf_event_attr attr;
    Status s = encode_event("skx::NO_SUCH_EVENT", true, &attr);
    if (s.ok()) return std::string("accepted an unknown event");
    if (!pghw::contains(s.message(), "skx::NO_SUCH_EVENT")) return "message: " + s.message();
    s = encode_event("skx::CYCLE_ACTIVITY:NO_SUCH_UMASK", true, &attr);
    if (s.ok()) return std::string("accepted an unknown umask");
    return std::string();
  });
}
END_TEST

START_TEST(detection_on_this_machine_says_what_it_found) {
  check_in_child({}, [] {
    Result<std::vector<std::string>> pmus = present_core_pmus();
    if (!pmus.ok()) return pmus.message();
    Result<const PmuEventSet *> set = detect_event_set();
    // Either a table row, or an error naming what was found: never a silent nothing.
    if (!set.ok() && !pghw::contains(set.message(), "no event table")) return set.message();
    return std::string();
  });
}
END_TEST

Suite *pfm_suite() {
  Suite *s = suite_create("hw_pfm_encoding");
  TCase *tc = tcase_create("encoding");
  tcase_add_test(tc, table_is_well_formed);
  tcase_add_test(tc, every_table_event_encodes);
  tcase_add_test(tc, encodings_match_vendor_codes);
  tcase_add_test(tc, privilege_levels);
  tcase_add_loop_test(tc, forced_pmu_is_detected, 0,
                      static_cast<int>(sizeof kForced / sizeof kForced[0]));
  tcase_add_test(tc, unknown_events_are_errors);
  tcase_add_test(tc, detection_on_this_machine_says_what_it_found);
  suite_add_tcase(s, tc);
  return s;
}

int main() { return pghw::run_suite(pfm_suite()); }
