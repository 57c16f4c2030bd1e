// Powercap (RAPL) zones on fake trees shaped like real machines: discovery, energy and its
// wrap-around, limits with clamping and a floor, read-only and missing files, bad zone
// names, and exact restore of the admin's settings.
#include <check.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <string>
#include <vector>

#include "hardware/powercap.hpp"
#include "hardware/testing/fake_sysfs.hpp"
#include "hardware/testing/hw_check.hpp"
#include "tests/unit/check_strings.hpp"

using namespace powergrad;
using namespace powergrad::hw;
namespace fx = powergrad::hw::testing;

namespace {

constexpr std::uint64_t kIntelPackageRange = 262143328850;

PowercapTree discovered(const std::string &root) {
  PowercapTree tree(root);
  ck_assert_hw_ok(tree.discover());
  return tree;
}

PowercapZone *zone(PowercapTree &tree, const std::string &name) {
  Result<PowercapZone *> z = tree.find(name);
  ck_assert_msg(z.ok(), "no zone %s: %s", name.c_str(), z.ok() ? "" : z.message().c_str());
  return z.value();
}

std::string file(const std::string &root, const std::string &zone_name, const std::string &f) {
  return fx::zone_path(root, zone_name) + "/" + f;
}

// Every settings file of a zone, for byte-exact comparisons.
std::vector<std::string> settings_files(const std::string &root, const std::string &z) {
  std::vector<std::string> out = {file(root, z, "enabled")};
  for (int n = 0; n < 3; ++n) {
    for (const char *f : {"_power_limit_uw", "_time_window_us"}) {
      const std::string p = file(root, z, "constraint_" + std::to_string(n) + f);
      if (access(p.c_str(), F_OK) == 0) out.push_back(p);
    }
  }
  return out;
}

}  // namespace

START_TEST(intel_server_discovery) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  ck_assert_int_eq(tree.zones().size(), 4);  // 2 packages, 2 dram
  ck_assert_int_eq(tree.packages().size(), 2);
  ck_assert(tree.control_type_enabled().value_or(false));
  const char *names[] = {"intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1", "intel-rapl:1:0"};
  for (int i = 0; i < 4; ++i) ck_assert_std_str_eq(tree.zones()[i].name(), names[i]);

  PowercapZone *pkg1 = zone(tree, "intel-rapl:1");
  ck_assert_std_str_eq(pkg1->label(), "package-1");
  ck_assert(pkg1->kind() == ZoneKind::package);
  ck_assert_int_eq(pkg1->package_id().value_or(-1), 1);
  ck_assert_std_str_eq(pkg1->parent(), "");
  ck_assert(pkg1->has_energy());
  ck_assert_uint_eq(pkg1->max_energy_range_uj(), kIntelPackageRange);
  ck_assert(pkg1->controllable());
  ck_assert_int_eq(pkg1->constraints().size(), 2);
  const PowercapConstraint *lt = pkg1->constraint(ConstraintKind::long_term);
  const PowercapConstraint *st = pkg1->constraint(ConstraintKind::short_term);
  ck_assert_ptr_nonnull(lt);
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(lt->index(), 0);
  ck_assert_int_eq(st->index(), 1);
  ck_assert_uint_eq(lt->max_power_uw().value_or(0), 205000000);
  ck_assert(!st->max_power_uw().has_value());  // firmware left PL2's maximum at 0
  ck_assert_uint_eq(lt->power_limit_uw().value(), 205000000);
  ck_assert_uint_eq(lt->time_window_us().value(), 999424);
  ck_assert_uint_eq(st->time_window_us().value(), 2440);

  PowercapZone *dram = zone(tree, "intel-rapl:1:0");
  ck_assert(dram->kind() == ZoneKind::dram);
  ck_assert_std_str_eq(dram->parent(), "intel-rapl:1");
  ck_assert(!dram->package_id().has_value());
  ck_assert_uint_eq(dram->max_energy_range_uj(), 65712999613);
  ck_assert(!dram->enabled().value());

  Result<PowerDomain> d = pkg1->power_domain();
  ck_assert_hw_ok(d);
  ck_assert_std_str_eq(d->name, "intel-rapl:1");
  ck_assert_double_eq_tol(d->max_cap_w, 205.0, 1e-9);
  ck_assert_double_eq_tol(d->min_cap_w, 51.25, 1e-9);  // the 25% floor
  ck_assert_double_eq_tol(d->cap_w, 205.0, 1e-9);
  ck_assert_std_str_eq((PowerRange{d->min_cap_w, d->max_cap_w}.check()), "");
}
END_TEST

START_TEST(intel_client_discovery) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_client(dir.path()));
  PowercapTree tree = discovered(dir.path());
  ck_assert_int_eq(tree.zones().size(), 5);
  // intel-rapl:1 is the platform (psys) on clients, not a second package.
  ck_assert_int_eq(tree.packages().size(), 1);
  ck_assert(zone(tree, "intel-rapl:1")->kind() == ZoneKind::psys);
  ck_assert(zone(tree, "intel-rapl:0:0")->kind() == ZoneKind::core);
  ck_assert(zone(tree, "intel-rapl:0:1")->kind() == ZoneKind::uncore);
  ck_assert(zone(tree, "intel-rapl:0:2")->kind() == ZoneKind::dram);

  PowercapZone *pkg = zone(tree, "intel-rapl:0");
  ck_assert_int_eq(pkg->constraints().size(), 3);
  const PowercapConstraint *peak = pkg->constraint(ConstraintKind::peak_power);
  ck_assert_ptr_nonnull(peak);
  ck_assert_hw_errno(peak->time_window_us(), ENOENT);  // PL4 has no time window
  ck_assert(pkg->controllable());

  // core: max_power_uw exists but cannot be read, and no limit is in force: no safe bound.
  PowercapZone *core = zone(tree, "intel-rapl:0:0");
  ck_assert(!core->constraints()[0].max_power_uw().has_value());
  ck_assert(!core->controllable());
  ck_assert_contains(core->control_refusal(), "no known maximum");
  ck_assert_hw_errno(core->power_domain(), EPERM);
  ck_assert_hw_errno(core->constraints()[0].set_power_limit_uw(5000000), ERANGE);
}
END_TEST

START_TEST(amd_energy_only_zones_are_read_only) {
  auto dir = pghw::temp_dir();
  fx::AmdServerSpec spec;
  spec.core_subzone = true;
  ck_assert_hw_ok(fx::build_amd_server(dir.path(), spec));
  PowercapTree tree = discovered(dir.path());
  ck_assert_int_eq(tree.zones().size(), 2);
  PowercapZone *pkg = zone(tree, "intel-rapl:0");
  ck_assert(pkg->kind() == ZoneKind::package);
  ck_assert(pkg->has_energy());
  ck_assert_uint_eq(pkg->max_energy_range_uj(), 65532610987);
  ck_assert(pkg->constraints().empty());
  ck_assert(!pkg->controllable());
  ck_assert_contains(pkg->control_refusal(), "energy only");
  ck_assert_hw_errno(pkg->power_domain(), EPERM);
  ck_assert_hw_errno(pkg->apply_long_term_limit_uw(100000000), EPERM);
  Result<std::uint64_t> e = pkg->read_energy_uj();
  ck_assert_hw_ok(e);
  // Nothing to restore but the enable bit.
  Result<PowercapSnapshot> snap = tree.snapshot();
  ck_assert_hw_ok(snap);
  for (const auto &z : snap->zones) ck_assert(z.constraints.empty());
  ck_assert_hw_ok(tree.restore(snap.value()));
}
END_TEST

START_TEST(machine_without_powercap) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_no_powercap(dir.path()));
  PowercapTree tree(dir.path());
  Status s = tree.discover();
  ck_assert_hw_errno(s, ENOENT);
  ck_assert_contains(s.message(), "class/powercap");
  ck_assert(tree.zones().empty());
  ck_assert(tree.packages().empty());
  ck_assert_hw_errno(tree.find("intel-rapl:0"), ENOENT);
}
END_TEST

START_TEST(zones_sorted_numerically) {
  auto dir = pghw::temp_dir();
  fx::IntelServerSpec spec;
  spec.packages = 11;
  spec.dram = false;
  spec.cpus_per_package = 1;
  ck_assert_hw_ok(fx::build_intel_server(dir.path(), spec));
  PowercapTree tree = discovered(dir.path());
  ck_assert_int_eq(tree.zones().size(), 11);
  ck_assert_std_str_eq(tree.zones()[9].name(), "intel-rapl:9");
  ck_assert_std_str_eq(tree.zones()[10].name(), "intel-rapl:10");
}
END_TEST

START_TEST(energy_delta_wraps_at_range) {
  ck_assert_uint_eq(energy_delta_uj(100, 350, 1000), 250);
  ck_assert_uint_eq(energy_delta_uj(900, 100, 1000), 201);  // 900 -> 1000 -> 0 -> 100
  ck_assert_uint_eq(energy_delta_uj(1000, 0, 1000), 1);
  ck_assert_uint_eq(energy_delta_uj(5, 5, 1000), 0);
  ck_assert_uint_eq(energy_delta_uj(kIntelPackageRange - 1000000, 4000000, kIntelPackageRange),
                    5000001);
}
END_TEST

START_TEST(energy_counter_reads_through_wrap) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  PowercapZone *pkg = zone(tree, "intel-rapl:0");
  const std::string energy = file(dir.path(), "intel-rapl:0", "energy_uj");
  EnergyCounter counter(pkg->max_energy_range_uj());

  pghw::spit(energy, std::to_string(kIntelPackageRange - 50000000) + "\n", 0400);
  Result<std::uint64_t> r = pkg->read_energy_uj();
  ck_assert_hw_ok(r);
  auto first = counter.update(r.value(), 0.0);
  ck_assert_hw_ok(first);
  ck_assert(!first->has_value());  // the first reading only primes

  // 150 W for one second across the wrap: 50 J up to the range, 100 J after it.
  pghw::spit(energy, "99999999\n", 0400);
  r = pkg->read_energy_uj();
  auto second = counter.update(r.value(), 1.0);
  ck_assert_hw_ok(second);
  ck_assert_uint_eq(second->value(), 150000000);

  // The file is kept open: a new value is seen without reopening.
  pghw::spit(energy, "299999999\n", 0400);
  auto third = counter.update(pkg->read_energy_uj().value(), 1.0);
  ck_assert_uint_eq(third->value(), 200000000);
}
END_TEST

START_TEST(energy_counter_refuses_implausible_deltas) {
  EnergyCounter counter(1000000000, 1000.0);
  ck_assert_hw_ok(counter.update(500000000, 0.0));
  // A drop with only 0.1 s elapsed would be a wrap of ~500 J: 5 kW. A torn read or a reset.
  auto r = counter.update(100, 0.1);
  ck_assert_hw_errno(r, ERANGE);
  ck_assert_contains(r.message(), "implausible");
  // Re-primed at the new reading: the next interval is fine.
  auto next = counter.update(50000100, 0.5);
  ck_assert_hw_ok(next);
  ck_assert_uint_eq(next->value(), 50000000);
  // Above the range: refused.
  ck_assert_hw_errno(counter.update(2000000000, 1.0), ERANGE);
}
END_TEST

START_TEST(set_limit_clamps_and_refuses_below_floor) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  PowercapZone *pkg = zone(tree, "intel-rapl:0");
  PowercapConstraint *lt = pkg->constraint(ConstraintKind::long_term);
  const std::string limit_file = file(dir.path(), "intel-rapl:0", "constraint_0_power_limit_uw");

  Result<std::uint64_t> w = lt->set_power_limit_uw(150000000);
  ck_assert_hw_ok(w);
  ck_assert_uint_eq(w.value(), 150000000);
  ck_assert_std_str_eq(pghw::slurp(limit_file), "150000000\n");

  // Above constraint_0_max_power_uw: clamped to it.
  w = lt->set_power_limit_uw(300000000);
  ck_assert_uint_eq(w.value(), 205000000);
  ck_assert_std_str_eq(pghw::slurp(limit_file), "205000000\n");

  // A shorter value leaves no stale digits behind in the (regular-file) fake.
  ck_assert_uint_eq(lt->set_power_limit_uw(60000000).value(), 60000000);
  ck_assert_std_str_eq(pghw::slurp(limit_file), "60000000\n");

  // Below 25% of 205 W: refused, nothing written.
  Result<std::uint64_t> low = lt->set_power_limit_uw(10000000);
  ck_assert_hw_errno(low, ERANGE);
  ck_assert_contains(low.message(), "below the floor");
  ck_assert_contains(low.message(), "constraint_0_power_limit_uw");
  ck_assert_std_str_eq(pghw::slurp(limit_file), "60000000\n");

  // PL2 has no documented maximum: it may go down, but never above what was in force.
  PowercapConstraint *st = pkg->constraint(ConstraintKind::short_term);
  ck_assert_uint_eq(st->upper_bound_uw(), 246000000);
  ck_assert_uint_eq(st->set_power_limit_uw(300000000).value(), 246000000);
  ck_assert_uint_eq(st->set_power_limit_uw(200000000).value(), 200000000);

  // Time windows.
  ck_assert_uint_eq(lt->set_time_window_us(500000).value(), 500000);
  ck_assert_hw_errno(lt->set_time_window_us(0), ERANGE);

  // The domain view follows.
  ck_assert_double_eq_tol(pkg->power_domain()->cap_w, 60.0, 1e-9);
}
END_TEST

START_TEST(apply_limit_enables_a_disabled_zone) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  PowercapZone *dram = zone(tree, "intel-rapl:0:0");
  ck_assert(!dram->enabled().value());
  // Disabled: the stored limit (0) is not in force; the domain reports its maximum.
  ck_assert_double_eq_tol(dram->power_domain()->cap_w, 39.0, 1e-9);
  Result<std::uint64_t> w = dram->apply_long_term_limit_uw(20000000);
  ck_assert_hw_ok(w);
  ck_assert(dram->enabled().value());
  ck_assert_std_str_eq(pghw::slurp(file(dir.path(), "intel-rapl:0:0", "enabled")), "1\n");
  ck_assert_double_eq_tol(dram->power_domain()->cap_w, 20.0, 1e-9);
}
END_TEST

START_TEST(restore_is_byte_exact) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  std::vector<std::string> files;
  for (const char *z : {"intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1", "intel-rapl:1:0"}) {
    for (const auto &f : settings_files(dir.path(), z)) files.push_back(f);
  }
  std::vector<std::string> before;
  for (const auto &f : files) before.push_back(pghw::slurp(f));

  PowercapTree tree = discovered(dir.path());
  Result<PowercapSnapshot> snap = tree.snapshot();
  ck_assert_hw_ok(snap);
  ck_assert_int_eq(snap->zones.size(), 4);

  // Change everything that can change.
  for (auto &z : tree.zones()) {
    ck_assert_hw_ok(z.set_enabled(!z.enabled().value()));
    for (auto &c : z.constraints()) {
      if (c.upper_bound_uw() > 0) ck_assert_hw_ok(c.set_power_limit_uw(c.upper_bound_uw() / 2));
      ck_assert_hw_ok(c.set_time_window_us(123456));
    }
  }
  std::size_t changed = 0;
  for (std::size_t i = 0; i < files.size(); ++i) changed += pghw::slurp(files[i]) != before[i];
  ck_assert_uint_eq(changed, files.size());
  ck_assert_hw_ok(tree.restore(snap.value()));
  for (std::size_t i = 0; i < files.size(); ++i) {
    ck_assert_msg(pghw::slurp(files[i]) == before[i], "%s differs after restore", files[i].c_str());
  }

  // A second tree (the agent after a restart) restores the same snapshot just as well.
  PowercapTree again = discovered(dir.path());
  ck_assert_hw_ok(zone(again, "intel-rapl:1")->apply_long_term_limit_uw(100000000));
  ck_assert_hw_ok(again.restore(snap.value()));
  for (std::size_t i = 0; i < files.size(); ++i) {
    ck_assert_msg(pghw::slurp(files[i]) == before[i], "%s differs", files[i].c_str());
  }
}
END_TEST

START_TEST(restore_reports_every_problem_and_keeps_going) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  PowercapSnapshot snap = tree.snapshot().value();
  const std::string limit0 = file(dir.path(), "intel-rapl:0", "constraint_0_power_limit_uw");
  ck_assert_hw_ok(zone(tree, "intel-rapl:0")->apply_long_term_limit_uw(100000000));

  PowercapZoneSnapshot gone;
  gone.zone = "intel-rapl:7";
  gone.enabled = true;
  snap.zones.insert(snap.zones.begin(), gone);  // first, so the others follow it
  PowercapZoneSnapshot renamed;
  renamed.zone = "intel-rapl:1";
  renamed.constraints.push_back({1, "long_term", 1000000, std::nullopt});
  snap.zones.push_back(renamed);

  Status s = tree.restore(snap);
  ck_assert(!s.ok());
  ck_assert_contains(s.message(), "intel-rapl:7");
  ck_assert_contains(s.message(), "saved as 'long_term'");
  // The zones that could be restored were.
  ck_assert_std_str_eq(pghw::slurp(limit0), "205000000\n");

  // A snapshot that names a path instead of a zone never reaches the file system.
  PowercapSnapshot evil;
  evil.zones.push_back({"../../../../etc", true, {}});
  Status e = tree.restore(evil);
  ck_assert_hw_errno(e, EINVAL);
  ck_assert_contains(e.message(), "path traversal");
}
END_TEST

START_TEST(bad_zone_names_refused) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  for (const char *bad : {"..", ".", "../intel-rapl:0", "intel-rapl:0/..", "intel-rapl:0/energy_uj",
                          "/etc/passwd", "", "intel-rapl:0\n", "intel rapl", "intel-rapl:0.x"}) {
    Result<PowercapZone *> z = tree.find(bad);
    ck_assert_msg(!z.ok(), "'%s' accepted", bad);
    ck_assert_int_eq(z.errno_value(), EINVAL);
  }
  ck_assert_contains(tree.find("a/b").message(), "path traversal");
  ck_assert_contains(tree.find("..").message(), "path traversal");
  ck_assert_hw_ok(check_zone_name("intel-rapl:0:1"));
  ck_assert_hw_ok(check_zone_name("intel-rapl-mmio:0"));
  ck_assert_hw_errno(check_zone_name(std::string(65, 'a')), EINVAL);
}
END_TEST

START_TEST(read_only_limit_file) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  const std::string limit = file(dir.path(), "intel-rapl:0", "constraint_0_power_limit_uw");
  ck_assert_int_eq(chmod(limit.c_str(), 0444), 0);
  PowercapTree tree = discovered(dir.path());
  PowercapZone *pkg = zone(tree, "intel-rapl:0");
  // kernfs refuses write-opening a 0444 attribute even to root; so does the layer.
  ck_assert(!pkg->constraint(ConstraintKind::long_term)->writable());
  ck_assert(!pkg->controllable());
  ck_assert_contains(pkg->control_refusal(), "constraint_0_power_limit_uw");
  ck_assert_contains(pkg->control_refusal(), "read-only");
  Result<std::uint64_t> w =
      pkg->constraint(ConstraintKind::long_term)->set_power_limit_uw(100000000);
  ck_assert_hw_errno(w, EACCES);
  ck_assert_contains(w.message(), "constraint_0_power_limit_uw");
  ck_assert_std_str_eq(pghw::slurp(limit), "205000000\n");
  // Still measured and snapshotted.
  ck_assert_hw_ok(pkg->read_energy_uj());
  ck_assert_hw_ok(tree.snapshot());
  // The other package is unaffected.
  ck_assert(zone(tree, "intel-rapl:1")->controllable());
}
END_TEST

START_TEST(missing_files_handled) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  ck_assert_int_eq(unlink(file(dir.path(), "intel-rapl:0", "constraint_0_time_window_us").c_str()),
                   0);
  ck_assert_int_eq(unlink(file(dir.path(), "intel-rapl:0", "energy_uj").c_str()), 0);
  ck_assert_int_eq(unlink(file(dir.path(), "intel-rapl:1:0", "name").c_str()), 0);
  ck_assert_int_eq(unlink(file(dir.path(), "intel-rapl:1", "constraint_0_max_power_uw").c_str()),
                   0);

  PowercapTree tree = discovered(dir.path());
  // No name file: not a zone we can classify; skipped with a note.
  ck_assert_int_eq(tree.zones().size(), 3);
  bool noted = false;
  for (const auto &n : tree.notes()) noted = noted || pghw::contains(n, "intel-rapl:1:0");
  ck_assert(noted);

  PowercapZone *pkg0 = zone(tree, "intel-rapl:0");
  ck_assert(!pkg0->has_energy());
  ck_assert_contains(pkg0->energy_refusal(), "energy_uj");
  ck_assert_hw_errno(pkg0->read_energy_uj(), EACCES);
  ck_assert_hw_errno(pkg0->constraint(ConstraintKind::long_term)->time_window_us(), ENOENT);
  ck_assert_hw_errno(pkg0->constraint(ConstraintKind::long_term)->set_time_window_us(1000), ENOENT);
  Result<PowercapZoneSnapshot> snap = pkg0->snapshot();
  ck_assert(!snap->constraints[0].time_window_us.has_value());
  ck_assert(snap->constraints[0].power_limit_uw.has_value());

  // Without max_power_uw, the upper bound is the limit that was in force.
  PowercapZone *pkg1 = zone(tree, "intel-rapl:1");
  ck_assert(pkg1->controllable());
  ck_assert_uint_eq(pkg1->constraint(ConstraintKind::long_term)->upper_bound_uw(), 205000000);
  ck_assert_uint_eq(
      pkg1->constraint(ConstraintKind::long_term)->set_power_limit_uw(250000000).value(),
      205000000);
}
END_TEST

START_TEST(garbage_values_are_errors_not_crashes) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  PowercapZone *pkg = zone(tree, "intel-rapl:0");
  pghw::spit(file(dir.path(), "intel-rapl:0", "energy_uj"), "-12\n", 0400);
  Result<std::uint64_t> e = pkg->read_energy_uj();
  ck_assert_hw_errno(e, EINVAL);
  ck_assert_contains(e.message(), "energy_uj");
  pghw::spit(file(dir.path(), "intel-rapl:0", "enabled"), "7\n");
  ck_assert_hw_errno(pkg->enabled(), EINVAL);
  pghw::spit(file(dir.path(), "intel-rapl:0", "constraint_0_power_limit_uw"),
             "99999999999999999999999\n");
  ck_assert_hw_errno(pkg->constraint(ConstraintKind::long_term)->power_limit_uw(), EINVAL);
  ck_assert_hw_errno(pkg->power_domain(), EINVAL);
}
END_TEST

// value() on an error is a defect of PowerGrad, never a null dereference: it throws
// ContractViolation naming the error (the entry points' firewalls log it), and aborts in
// --enable-debug builds.
START_TEST(result_value_on_an_error_is_a_contract_violation) {
  Result<std::uint64_t> r(Error{"intel-rapl:0/energy_uj: cannot open", ENOENT});
#ifdef PG_DEBUG
  (void)r.value();  // aborts: the test expects SIGABRT
#else
  bool thrown = false;
  try {
    (void)r.value();
  } catch (const ContractViolation &e) {
    thrown = true;
    ck_assert_contains(std::string(e.what()), "cannot open");
  }
  ck_assert(thrown);
  Result<std::uint64_t> ok_value(std::uint64_t{7});
  bool thrown_error = false;
  try {
    (void)ok_value.error();
  } catch (const ContractViolation &) {
    thrown_error = true;
  }
  ck_assert(thrown_error);
#endif
}
END_TEST

// A rediscovery that fails (the powercap folder gone, e.g. the driver unloaded) leaves the
// zones found before: the node agent indexes them and holds their files open.
START_TEST(failed_rediscovery_keeps_the_zones) {
  auto dir = pghw::temp_dir();
  ck_assert_hw_ok(fx::build_intel_server(dir.path()));
  PowercapTree tree = discovered(dir.path());
  ck_assert_int_eq(tree.zones().size(), 4);
  const std::string pc = dir.path() + "/class/powercap";
  ck_assert_int_eq(::rename(pc.c_str(), (pc + ".gone").c_str()), 0);
  Status s = tree.discover();
  ck_assert(!s.ok());
  ck_assert_contains(s.message(), "powercap");
  ck_assert_int_eq(tree.zones().size(), 4);
  ck_assert_std_str_eq(tree.zones()[2].name(), "intel-rapl:1");
  ck_assert_int_eq(tree.packages().size(), 2);
  // Its open files still read (the folder was moved, not the files).
  ck_assert_hw_ok(zone(tree, "intel-rapl:1")->read_energy_uj());
  ck_assert_int_eq(::rename((pc + ".gone").c_str(), pc.c_str()), 0);
  ck_assert_hw_ok(tree.discover());
  ck_assert_int_eq(tree.zones().size(), 4);
}
END_TEST

Suite *powercap_suite() {
  Suite *s = suite_create("hw_powercap");
  TCase *tc = tcase_create("powercap");
  tcase_add_test(tc, intel_server_discovery);
  tcase_add_test(tc, intel_client_discovery);
  tcase_add_test(tc, amd_energy_only_zones_are_read_only);
  tcase_add_test(tc, machine_without_powercap);
  tcase_add_test(tc, zones_sorted_numerically);
  tcase_add_test(tc, energy_delta_wraps_at_range);
  tcase_add_test(tc, energy_counter_reads_through_wrap);
  tcase_add_test(tc, energy_counter_refuses_implausible_deltas);
  tcase_add_test(tc, set_limit_clamps_and_refuses_below_floor);
  tcase_add_test(tc, apply_limit_enables_a_disabled_zone);
  tcase_add_test(tc, restore_is_byte_exact);
  tcase_add_test(tc, failed_rediscovery_keeps_the_zones);
#ifdef PG_DEBUG
  tcase_add_test_raise_signal(tc, result_value_on_an_error_is_a_contract_violation, SIGABRT);
#else
  tcase_add_test(tc, result_value_on_an_error_is_a_contract_violation);
#endif
  tcase_add_test(tc, restore_reports_every_problem_and_keeps_going);
  tcase_add_test(tc, bad_zone_names_refused);
  tcase_add_test(tc, read_only_limit_file);
  tcase_add_test(tc, missing_files_handled);
  tcase_add_test(tc, garbage_values_are_errors_not_crashes);
  suite_add_tcase(s, tc);
  return s;
}

int main() { return pghw::run_suite(powercap_suite()); }
