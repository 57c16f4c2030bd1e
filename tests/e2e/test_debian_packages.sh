#!/usr/bin/env bash
# End-to-end: PowerGrad's Debian packages (debian/). From a copy of this source tree:
#   - dpkg-buildpackage builds powergrad, powergrad-spank-plugin and (with the controller
#     plugin, as the build under test has it) powergrad-slurmctld-plugin; lintian shows no
#     error; every package depends on exactly the installed Slurm's upstream version;
#   - apt-get installs them; the plugins are in Debian's Slurm plugin folder;
#   - the walking-skeleton and controller-power suites run against the installed plugins and
#     command (PG_INSTALLED_PLUGIN_DIR, lib.sh's pg_parts), not the build tree's (without
#     the controller plugin: the node-power suite);
#   - removal: refused while slurmd runs the node agent and while slurmctld runs the
#     controller (neither can unload a plugin); after the agents were killed with their
#     caps applied, `apt-get purge` gives every node back its admin's settings byte for
#     byte (the prerm finds the state folders through plugstack.conf), and leaves no file of
#     the packages, no state folder and no controller state behind. TAP.
# Needs root, dpkg-dev, debhelper and lintian (scripts/install-deps.sh installs them). It
# installs and purges packages on this machine: it refuses to run where they are installed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
hwemu=$build/hardware/testing/powergrad-hwemu
pkgs="powergrad powergrad-spank-plugin powergrad-slurmctld-plugin"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (installs and purges packages)"
for tool in dpkg-buildpackage dh lintian apt-get dpkg-architecture python3; do
  command -v "$tool" >/dev/null 2>&1 || skip_all "$tool is missing (scripts/install-deps.sh installs it)"
done
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"
installed_pkgs() {
  local p
  for p in $pkgs; do
    dpkg-query -W -f='${db:Status-Status} ' "$p" 2>/dev/null | grep -qv '^not-installed' && echo "$p"
  done
  return 0
}
[ -z "$(installed_pkgs)" ] ||
  skip_all "PowerGrad's packages are installed here ($(installed_pkgs | tr '\n' ' ')): this test installs and purges them"

# The controller's package is built when the build under test has the controller plugin,
# from the same configured Slurm source tree.
ctld=yes
slurm_src=$(sed -n 's/^SLURM_SRC_DIR = //p' "$build/Makefile" 2>/dev/null || true)
[ -f "$build/slurmctld_powergrad/.libs/prep_powergrad.so" ] && [ -n "$slurm_src" ] || ctld=no

pg_cluster_test_setup debpkg
plan 13

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
plugdir=/usr/lib/$multiarch/slurm-wlm
slurm_version=$(dpkg-query -W -f='${source:Upstream-Version}' libslurm-dev)
next_version=$(awk -F. '{ printf "%s.%s.%d~", $1, $2, $3 + 1 }' <<<"$slurm_version")
work=$(mktemp -d /var/tmp/pg-debpkg.XXXXXX)
pg_on_exit eval 'pg_test_failed && diag "package build kept for inspection: $work" || rm -rf "$work"'

# Whatever happens, nothing stays installed: the cluster goes down first (a running agent
# or controller makes the removal refuse, by design).
purge_left() {
  local left
  left=$(installed_pkgs | tr '\n' ' ')
  [ -n "$left" ] || return 0
  "$PGCLUSTER" down >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $left >/dev/null 2>&1 ||
    diag "cleanup: could not purge $left"
}
pg_on_exit purge_left

# --- build
src=$work/powergrad-0.1.0
mkdir -p "$src"
if git -C "$PG_TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$PG_TOP" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$src")
else
  tar -C "$PG_TOP" --exclude='./build*' --exclude=./autom4te.cache -cf - . | tar -C "$src" -xf -
fi
profile=()
[ "$ctld" = yes ] || profile=(-Ppkg.powergrad.noctld)
if (cd "$src" && PG_SLURM_SOURCE=$slurm_src DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
      dpkg-buildpackage -b -us -uc "${profile[@]}") > "$work/build.log" 2>&1; then
  ok "dpkg-buildpackage built the packages (controller plugin: $ctld)"
else
  not_ok "dpkg-buildpackage built the packages (controller plugin: $ctld)" "$(tail -n 30 "$work/build.log")"
  bail_out "no packages"
fi
want="powergrad powergrad-spank-plugin"
[ "$ctld" = no ] || want="$want powergrad-slurmctld-plugin"
debs=()
missing=''
for p in $want; do
  f=$(ls "$work/${p}_"*"_$(dpkg --print-architecture).deb" 2>/dev/null | head -n1 || true)
  if [ -n "$f" ]; then debs+=("$f"); diag "$(basename "$f"): $(stat -c %s "$f") bytes, installed size $(dpkg-deb -f "$f" Installed-Size) KiB"; else missing+=" $p"; fi
done
is "${missing:-none}" none "every package was made ($want)"

out=$(lintian --fail-on error "$work"/powergrad_*.changes 2>&1) && rc=0 || rc=$?
[ -z "$out" ] || diag "lintian:" "$out"
is "$rc" 0 "lintian reports no error"

deps_ok=yes
for f in "${debs[@]}"; do
  d=$(dpkg-deb -f "$f" Depends)
  case "$(dpkg-deb -f "$f" Package)" in
    powergrad)
      # shlibs puts the library's own entry among the others: both bounds must be there.
      [[ "$d" == *"(>= $slurm_version)"* && "$d" == *"(<< $next_version)"* ]] || deps_ok="no: $d" ;;
    powergrad-spank-plugin)
      [[ "$d" == *"slurm-wlm-basic-plugins (>= $slurm_version), slurm-wlm-basic-plugins (<< $next_version)"* ]] || deps_ok="no: $d" ;;
    powergrad-slurmctld-plugin)
      [[ "$d" == *"slurmctld (>= $slurm_version), slurmctld (<< $next_version)"* ]] || deps_ok="no: $d" ;;
  esac
done
is "$deps_ok" yes "each package depends on Slurm $slurm_version exactly (any Debian revision: >= $slurm_version, << $next_version)"

# --- install
if out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]}" 2>&1); then
  ok "apt-get installed the packages"
else
  not_ok "apt-get installed the packages" "$(tail -n 20 <<<"$out")"
  bail_out "not installed"
fi
files_of() { local p; for p in $want; do dpkg -L "$p"; done | while read -r f; do [ -d "$f" ] || echo "$f"; done | sort; }
files=$(files_of)
placed=yes
for so in spank_powergrad.so powergrad_agent.so $([ "$ctld" = no ] || echo prep_powergrad.so); do
  grep -qx "$plugdir/$so" <<<"$files" || placed="no $plugdir/$so"
done
grep -qx /usr/bin/powergrad <<<"$files" || placed="no /usr/bin/powergrad"
is "$placed" yes "plugins in Debian's plugin folder $plugdir, the command in /usr/bin"

# --- the suites, against the installed parts
run_suite() {  # run_suite NAME: ok when its whole plan passed and it used the installed parts
  local name=$1 out rc planned passed failed
  out=$(PG_INSTALLED_PLUGIN_DIR=$plugdir PG_INSTALLED_BIN=/usr/bin bash "$PG_TOP/tests/e2e/$name.sh" 2>&1) && rc=0 || rc=$?
  planned=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' <<<"$out" | head -n1)
  passed=$(grep -c '^ok ' <<<"$out" || true)
  failed=$(grep -c '^not ok ' <<<"$out" || true)
  if [ "$rc" = 0 ] && [ -n "$planned" ] && [ "$planned" -gt 0 ] && [ "$passed" = "$planned" ] &&
     [ "$failed" = 0 ] && grep -q "^# parts under test: $plugdir/spank_powergrad.so" <<<"$out"; then
    ok "$name passes against the installed packages ($passed/$planned)"
  else
    not_ok "$name passes against the installed packages (exit $rc, $passed of ${planned:-?} ok, $failed not ok)" \
      "$(grep -E '^(not ok|# |Bail)' <<<"$out" | tail -n 40)"
  fi
}
if [ "$ctld" = yes ]; then
  run_suite test_walking_skeleton
  run_suite test_controller_power
else
  run_suite test_node_power
  skip "the controller-power suite against the installed packages" "no controller plugin in this build"
fi

# --- removal: a cluster on the installed plugins, caps applied
nodes_dir=$PG_CLUSTER_DIR/nodes
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  pg_make_tree "$hwemu" "$n" "$nodes_dir/$n/sys" || bail_out "powergrad-hwemu make-tree failed for $n"
done
settings_of() { local f; for f in $(pg_settings_files "$nodes_dir/$1/sys"); do echo "$f=$(cat "$f")"; done; }
admin_n1=$(settings_of n1)
admin_n2=$(settings_of n2)
: > "$nodes_dir/emulate.txt"
export PG_SPANK_PLUGIN=$plugdir/spank_powergrad.so
args="log_level=info period=0.5 state_dir=$nodes_dir/%n/state sysfs_root=$nodes_dir/%n/sys \
counters=emulated emulate=$nodes_dir/emulate.txt floor=110"
if [ "$ctld" = yes ]; then
  export PG_CTLD_PLUGIN_DIR=$plugdir
  export PG_POWERGRAD_CONF="Budget=500
ControlPeriod=1
LeaseTime=3
NodeFloor=110
NodeMax=410
AdminUsers=root"
  export PG_SPANK_ARGS="$args controller=127.0.0.1:$((PG_PORT_BASE + 3))"
else
  export PG_SPANK_ARGS="$args controller=none grant=250"
fi
out=$("$PGCLUSTER" up 2 2>&1) || { diag "$out"; bail_out "the cluster on the installed plugins did not come up"; }
pg_cluster_env
# A power-aware job on both nodes (without a controller, the static grant applies only then).
sbatch -N2 -o /dev/null --power-aware=throughput --wrap 'srun sleep 600' >/dev/null ||
  bail_out "sbatch failed"
capped() { [ "$(settings_of n1)" != "$admin_n1" ] && [ "$(settings_of n2)" != "$admin_n2" ]; }
wait_until 90 capped || bail_out "the agents never capped the nodes"

out=$(DEBIAN_FRONTEND=noninteractive apt-get purge -y -q powergrad-spank-plugin 2>&1) && rc=0 || rc=$?
if [ "$rc" != 0 ] && [[ "$out" == *"node agent runs in slurmd"* ]] &&
   dpkg-query -W -f='${db:Status-Status}' powergrad-spank-plugin | grep -qx installed; then
  ok "removal of the SPANK plugin refused while slurmd runs the node agent"
else
  not_ok "removal of the SPANK plugin refused while slurmd runs the node agent" "exit $rc" "$out"
fi
if [ "$ctld" = yes ]; then
  out=$(DEBIAN_FRONTEND=noninteractive apt-get purge -y -q powergrad-slurmctld-plugin 2>&1) && rc=0 || rc=$?
  if [ "$rc" != 0 ] && [[ "$out" == *"runs PowerGrad's controller"* ]] &&
     dpkg-query -W -f='${db:Status-Status}' powergrad-slurmctld-plugin | grep -qx installed; then
    ok "removal of the controller plugin refused while slurmctld runs it"
  else
    not_ok "removal of the controller plugin refused while slurmctld runs it" "exit $rc" "$out"
  fi
else
  skip "removal of the controller plugin refused while slurmctld runs it" "no controller plugin"
fi

# The agents die with the caps applied (their saved settings stay in the state folders);
# then the whole cluster stops.
"$PGCLUSTER" kill-slurmd n1 KILL >/dev/null 2>&1 || true
"$PGCLUSTER" kill-slurmd n2 KILL >/dev/null 2>&1 || true
state_save=$(sed -n 's/^StateSaveLocation=//p' "$SLURM_CONF")
"$PGCLUSTER" down >/dev/null 2>&1 || diag "pgcluster down failed"
left_capped=yes
capped || left_capped="no: $(settings_of n1 | head -n 3)"
[ -e "$nodes_dir/n1/state/saved-caps" ] && [ -e "$nodes_dir/n2/state/saved-caps" ] ||
  left_capped="no saved-caps file"
[ "$ctld" = no ] || [ -d "$state_save/powergrad" ] || left_capped="no controller state in $state_save/powergrad"
is "$left_capped" yes "slurmd killed: the caps stay applied, the admin's settings saved"

out=$(SLURM_CONF=$SLURM_CONF DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $want 2>&1) && rc=0 || rc=$?
diag "$(grep 'powergrad' <<<"$out" | grep -v '^\(Removing\|Purging\)' | head -n 20)"
if [ "$rc" = 0 ] && [ "$(settings_of n1)" = "$admin_n1" ] && [ "$(settings_of n2)" = "$admin_n2" ]; then
  ok "apt-get purge gave both nodes back their admin's settings byte for byte"
else
  not_ok "apt-get purge gave both nodes back their admin's settings byte for byte" "exit $rc" "$out" \
    "$(diff <(echo "$admin_n1") <(settings_of n1))"
fi
left=''
for f in $files; do [ ! -e "$f" ] || left+=" $f"; done
for d in "$nodes_dir/n1/state" "$nodes_dir/n2/state" "$state_save/powergrad"; do
  [ ! -e "$d" ] || left+=" $d"
done
[ -z "$(installed_pkgs)" ] || left+=" dpkg:$(installed_pkgs | tr '\n' ' ')"
is "${left:-nothing}" nothing "nothing left: no file of the packages, no state folder, no controller state, no package record"
