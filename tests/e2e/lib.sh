# shellcheck shell=bash
# tests/e2e/lib.sh: shared helpers for PowerGrad's end-to-end tests (bash, TAP output).
# Source it from a test:   . "$(dirname "$0")/lib.sh"
#
# TAP
#   plan N                  print the plan line "1..N" (once, before the first test point)
#   ok DESC                 a passing test point
#   not_ok DESC [DIAG...]   a failing test point; DIAG lines are printed as "# ..."
#   check DESC CMD [ARG...] run CMD: ok when it exits 0, otherwise not_ok with its output
#   is GOT WANT DESC [DIAG...]  ok when the strings are equal, otherwise not_ok showing both
#                           (and the DIAG lines, e.g. a command's stderr)
#   skip DESC REASON        a skipped test point ("ok N - DESC # SKIP REASON")
#   skip_all REASON         "1..0 # SKIP REASON" and exit 0 (only before `plan`)
#   bail_out REASON         "Bail out! REASON" and exit 1 (cleanups still run)
#   diag MSG...             "# MSG" for every line of MSG
#   wait_until TIMEOUT_S CMD [ARG...]
#                           run CMD every 0.2 s until it succeeds (0) or TIMEOUT_S pass (1)
#   stable CMD [ARG...]     CMD's output once two runs in a row agree (at most 20 tries): a
#                           snapshot of files that change, e.g. caps an agent lowers on one
#                           package before it raises another
#   pg_on_exit CMD [ARG...] register a cleanup, run at exit in reverse order of registration
#                           (do not set an EXIT trap of your own: it would replace this one)
#   pg_test_failed          true when a test point failed (or, in cleanups, the test aborted)
#
# Exit status: a test that ran its whole plan exits 0 under `make check` (PG_BUILDDIR set:
# the TAP lines carry the results, so failures are not counted twice), and 1 on any
# failure when run by hand. A test that stops before its plan is complete exits nonzero, and
# so does one whose cluster folder holds a core file at teardown (a crashed daemon or job).
#
# Local cluster (tests/cluster/pgcluster)
#   pg_cluster_test_setup NAME
#       Call before `plan`. Skips the whole test (skip_all) when not root or when the
#       cluster's prerequisites are missing. Otherwise: a fresh PG_CLUSTER_DIR
#       (/tmp/pg-e2e-NAME.XXXXXX) and a PG_PORT_BASE no other test holds (claimed under
#       /tmp/powergrad-ports, released at exit), both exported; unsets the other PG_*
#       cluster settings (PG_CLUSTER_NODES, PG_SPANK_*, PG_CTLD_PLUGIN_DIR, PG_POWERGRAD_CONF,
#       PG_SLURM_CONF_EXTRA, SLURM_CONF...) so the test starts from defaults: set what the
#       test needs after this call; registers the teardown
#       (`pgcluster down`, release of the ports, removal of the folder unless a test point
#       failed or PG_KEEP_CLUSTER_DIR=1). Sets PGCLUSTER to the pgcluster script.
#   pg_cluster_env          eval "$(pgcluster env)" in the calling shell
#   pg_cluster_procs        print the pids (one line, space separated) of processes whose
#                           command line holds $PG_CLUSTER_DIR or that carry the cluster's
#                           marker environment (everything pgcluster starts); empty: none
#   pg_pid_alive PID        true when PID runs (zombies count as gone)
#
# Fake node hardware (powergrad-hwemu trees); PG_HW_MACHINE picks the machine the power
# suites build: intel-server (default, 2 x 205 W RAPL packages), amd-genoa (2 sockets capped
# through HSMP hwmon, built with a 205 W socket limit and maximum so the suites' figures
# hold), or mixed (n1, n3 intel-server; n2, n4 amd-genoa).
#   pg_machine_of NODE      the machine kind of node NODE
#   pg_make_tree HWEMU NODE ROOT
#                           builds NODE's tree under ROOT
#   pg_cap_file ROOT Z      the file holding package/socket Z's limit in ROOT (RAPL
#                           constraint_0_power_limit_uw, or the HSMP socket's power1_cap)
#   pg_settings_files ROOT  every settings file PowerGrad may change in ROOT (enable bits,
#                           RAPL constraints and windows, HSMP socket limits), sorted
#   pg_caps_word NODE       the capability the node's agent should report (rapl, hsmp-hwmon)
#
# Parts under test
#   pg_parts                sets build (the build tree), spank (spank_powergrad.so), ctld_dir
#                           (the folder of prep_powergrad.so) and pg (the powergrad command):
#                           the build tree's, or with PG_INSTALLED_PLUGIN_DIR set (the
#                           packages' test, test_debian_packages.sh) the installed plugins in
#                           that folder and the command in ${PG_INSTALLED_BIN:-/usr/bin}.
#                           Prints which as a diag line ("parts under test: ...").
#
# Also set: PG_TOP (source tree top: $PG_SRCDIR under make check, else found from here).
#
# Sanitizers: with PG_SANITIZE=1 (a build configured --enable-asan; scripts/run-tests.sh's
# sanitizer run) the AddressSanitizer and UBSan runtimes are preloaded (LD_PRELOAD) into
# the daemons that load the sanitized agent module and controller: through pgcluster
# (PG_DAEMON_PRELOAD) slurmctld and slurmd, not the programs they start
# (tests/tools/pg_preload_once.c says why). The SPANK plugin itself,
# which srun loads too, is built without sanitizers (configure.ac). Each
# report is written to PG_SANITIZE_LOG_DIR/asan.PID or ubsan.PID (default
# /tmp/powergrad-sanitizer); the caller counts them. Leak checking is off: most processes are Slurm's and the system's, not ours.

if [ -n "${_PG_E2E_LIB:-}" ]; then return 0; fi
_PG_E2E_LIB=1

PG_TOP=${PG_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PGCLUSTER=$PG_TOP/tests/cluster/pgcluster
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"


_pg_tap_n=0
_pg_tap_failed=0
_pg_tap_planned=''
_pg_tap_aborted=0
_pg_cleanups=()

plan() {
  _pg_tap_planned=$1
  echo "1..$1"
}

diag() {
  local line
  while IFS= read -r line; do printf '# %s\n' "$line"; done <<<"$*"
}

ok() {
  _pg_tap_n=$((_pg_tap_n + 1))
  echo "ok $_pg_tap_n - $*"
}

not_ok() {
  local desc=$1; shift
  _pg_tap_n=$((_pg_tap_n + 1))
  _pg_tap_failed=$((_pg_tap_failed + 1))
  echo "not ok $_pg_tap_n - $desc"
  [ $# -eq 0 ] || diag "$@"
}

stable() {
  local a b i
  a=$("$@")
  for i in $(seq 1 20); do
    b=$("$@")
    [ "$a" = "$b" ] && break
    a=$b
  done
  printf '%s\n' "$a"
}

check() {
  local desc=$1 out rc=0; shift
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    ok "$desc"
  else
    not_ok "$desc" "command: $*" "exit status $rc" "$out"
  fi
}

is() {
  local got=${1-} want=${2-} desc=${3-}
  shift "$(($# < 3 ? $# : 3))"
  if [ "$got" = "$want" ]; then
    ok "$desc"
  else
    not_ok "$desc" "got:  '$got'" "want: '$want'" "$@"
  fi
}

skip() {
  _pg_tap_n=$((_pg_tap_n + 1))
  echo "ok $_pg_tap_n - $1 # SKIP ${2:-}"
}

# A suite that cannot run says why. Under CI (CI set and not "false") or with
# PG_E2E_REQUIRED=1 that is a failure, not a skip: the runs that must prove every suite
# (CI, scripts/run-tests.sh) never pass because something was missing.
skip_all() {
  if [ "${PG_E2E_REQUIRED:-0}" = 1 ] || { [ -n "${CI:-}" ] && [ "${CI:-}" != false ]; }; then
    echo "Bail out! this end-to-end suite must run here but cannot: $*"
    _pg_tap_planned=0
    exit 1
  fi
  echo "1..0 # SKIP $*"
  _pg_tap_planned=0
  exit 0
}

bail_out() {
  echo "Bail out! $*"
  exit 1
}

wait_until() {
  local timeout=$1 deadline; shift
  deadline=$(( ${EPOCHREALTIME/./} + timeout * 1000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

pg_on_exit() {
  local q
  printf -v q '%q ' "$@"
  _pg_cleanups+=("$q")
}

# True when the test has failed so far: a failed test point, or (at exit) an incomplete
# plan or a nonzero exit status. Cleanups use it to keep evidence.
pg_test_failed() {
  [ "$_pg_tap_failed" -gt 0 ] || [ "${_pg_tap_aborted:-0}" = 1 ]
}

_pg_exit() {
  local rc=$? i
  trap - EXIT INT TERM
  # A signal may arrive while a redirection of a function call is in effect (e.g. inside
  # `wait_until ... >/dev/null`): report on the test's own stdout and stderr.
  exec 1>&"$_pg_stdout" 2>&"$_pg_stderr"
  if [ "$rc" -ne 0 ] || { [ -n "$_pg_tap_planned" ] && [ "$_pg_tap_planned" != "$_pg_tap_n" ]; }; then
    _pg_tap_aborted=1
  fi
  for ((i = ${#_pg_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_pg_cleanups[$i]}" || true
  done
  if [ -n "$_pg_tap_planned" ] && [ "$_pg_tap_planned" != "$_pg_tap_n" ]; then
    diag "planned $_pg_tap_planned test points but ran $_pg_tap_n"
    [ "$rc" -ne 0 ] || rc=1
  fi
  # Aborted by a cleanup (a core file at the cluster's teardown): nonzero as well.
  [ "${_pg_tap_aborted:-0}" != 1 ] || [ "$rc" -ne 0 ] || rc=1
  if [ "$_pg_tap_failed" -gt 0 ]; then
    diag "$_pg_tap_failed of $_pg_tap_n test points failed"
    if [ "$rc" -eq 0 ] && [ -z "${PG_BUILDDIR:-}" ]; then rc=1; fi
  fi
  exit "$rc"
}
exec {_pg_stdout}>&1 {_pg_stderr}>&2
trap _pg_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------- cluster
_PG_PORT_LOCKS=/tmp/powergrad-ports
_pg_port_lock=''

# Claims a port base (20000..32500, step 100) that no other test holds and whose ports are
# free; prints it. The claim is a directory holding the owner's pid; stale claims (owner
# gone) are taken over.
_pg_claim_port_base() {
  local slots=126 start i base lock owner listening p
  mkdir -p "$_PG_PORT_LOCKS" 2>/dev/null || true
  chmod 1777 "$_PG_PORT_LOCKS" 2>/dev/null || true
  listening=$(ss -Htan 2>/dev/null | awk '$1 == "LISTEN" { sub(/.*:/, "", $4); print $4 }' | sort -un)
  start=$(( ($$ + RANDOM) % slots ))
  for ((i = 0; i < slots; i++)); do
    base=$(( 20000 + ((start + i) % slots) * 100 ))
    lock=$_PG_PORT_LOCKS/$base
    if ! mkdir "$lock" 2>/dev/null; then
      owner=$(cat "$lock/pid" 2>/dev/null || true)
      if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
      [ -n "$owner" ] || [ "$(find "$lock" -maxdepth 0 -mmin +1 2>/dev/null)" ] || continue
      mv "$lock" "$lock.stale.$$" 2>/dev/null && rm -rf "$lock.stale.$$"
      mkdir "$lock" 2>/dev/null || continue
    fi
    echo "$$" > "$lock/pid"
    for p in $listening; do
      if [ "$p" -ge "$base" ] 2>/dev/null && [ "$p" -lt $((base + 100)) ]; then
        rm -rf "$lock"; continue 2
      fi
    done
    echo "$base"
    return 0
  done
  return 1
}

_pg_cluster_teardown() {
  local out cores
  if [ -n "${PG_CLUSTER_DIR:-}" ] && [ -d "$PG_CLUSTER_DIR" ]; then
    out=$("$PGCLUSTER" down 2>&1) || diag "pgcluster down failed:" "$out"
    # A daemon (or a job) that crashed leaves a core file in its working directory, the
    # cluster folder (kernel.core_pattern "core"): the test fails, whatever its test points
    # said. (A crash at slurmctld's exit showed only as a lost power series once.)
    cores=$(find "$PG_CLUSTER_DIR" -maxdepth 3 -type f \( -name core -o -name 'core.[0-9]*' \) \
      2>/dev/null | sort)
    if [ -n "$cores" ]; then
      diag "a process dumped core during the test (a crashed daemon or job):" "$cores"
      _pg_tap_aborted=1
    fi
    if pg_test_failed || [ "${PG_KEEP_CLUSTER_DIR:-0}" = 1 ]; then
      diag "cluster folder kept for inspection: $PG_CLUSTER_DIR"
    else
      rm -rf "$PG_CLUSTER_DIR"
    fi
  fi
  [ -z "$_pg_port_lock" ] || rm -rf "$_pg_port_lock"
}

pg_cluster_test_setup() {
  local name=${1:-test} out base
  name=${name//[^A-Za-z0-9_-]/_}
  name=${name:0:30}
  [ "$(id -u)" -eq 0 ] || skip_all "needs root (starts Slurm daemons, munged and MariaDB)"
  [ -x "$PGCLUSTER" ] || skip_all "no executable $PGCLUSTER"
  if ! out=$("$PGCLUSTER" check 2>&1); then
    skip_all "cluster prerequisites missing: $(grep -m1 -- ' - ' <<<"$out" | sed 's/^.* - //')"
  fi
  # A caller's settings must not leak into the test (e.g. PG_POWERGRAD_CONF=- from a shell
  # would leave the controller inert): the test sets what it needs after this call.
  unset PG_CLUSTER_NODES PG_SPANK_PLUGIN PG_SPANK_ARGS PG_CTLD_PLUGIN_DIR PG_SLURM_CONF_EXTRA \
    PG_POWERGRAD_CONF PG_POWERGRAD_PORT PG_TASK_PLUGIN SLURM_CONF
  base=$(_pg_claim_port_base) || bail_out "no free port base in 20000..32500"
  _pg_port_lock=$_PG_PORT_LOCKS/$base
  PG_PORT_BASE=$base
  PG_CLUSTER_DIR=$(mktemp -d "/tmp/pg-e2e-$name.XXXXXX")
  chmod 755 "$PG_CLUSTER_DIR"
  echo "$PG_CLUSTER_DIR" > "$_pg_port_lock/dir"
  export PG_CLUSTER_DIR PG_PORT_BASE
  pg_on_exit _pg_cluster_teardown
}

pg_parts() {
  build=${PG_BUILDDIR:-$PG_TOP/build}
  if [ -n "${PG_INSTALLED_PLUGIN_DIR:-}" ]; then
    spank=$PG_INSTALLED_PLUGIN_DIR/spank_powergrad.so
    ctld_dir=$PG_INSTALLED_PLUGIN_DIR
    pg=${PG_INSTALLED_BIN:-/usr/bin}/powergrad
  else
    spank=$build/spank_powergrad/.libs/spank_powergrad.so
    ctld_dir=$build/slurmctld_powergrad/.libs
    pg=$build/tools/powergrad
  fi
  diag "parts under test: $spank, $ctld_dir/prep_powergrad.so, $pg"
}

pg_machine_of() {
  case "${PG_HW_MACHINE:-intel-server}" in
    mixed)
      case "$1" in
        n2 | n4) echo amd-genoa ;;
        *) echo intel-server ;;
      esac
      ;;
    *) echo "${PG_HW_MACHINE:-intel-server}" ;;
  esac
}

pg_make_tree() {
  local m
  m=$(pg_machine_of "$2")
  case "$m" in
    amd-genoa*) "$1" make-tree --root "$3" --machine "$m" --socket-w 205 ;;
    *) "$1" make-tree --root "$3" --machine "$m" ;;
  esac
}

# The amd_hsmp_hwmon devices in hwmon order (socket order in the fixtures).
_pg_hsmp_hwmons() {
  local d
  for d in "$1"/class/hwmon/hwmon*; do
    [ "$(cat "$d/name" 2>/dev/null)" = amd_hsmp_hwmon ] && echo "$d"
  done | sort -V
}

pg_cap_file() {
  local rapl=$1/class/powercap/intel-rapl:$2/constraint_0_power_limit_uw
  if [ -e "$rapl" ]; then
    echo "$rapl"
  else
    echo "$(_pg_hsmp_hwmons "$1" | sed -n "$(($2 + 1))p")/power1_cap"
  fi
}

pg_settings_files() {
  # Either folder may be missing (no HSMP on Intel, no powercap): not an error here.
  {
    if [ -d "$1/devices/virtual/powercap" ]; then
      find "$1/devices/virtual/powercap" \( -name enabled -o -name 'constraint_*_power_limit_uw' \
        -o -name 'constraint_*_time_window_us' \) -type f
    fi
    if [ -d "$1/devices/platform" ]; then
      find "$1/devices/platform" -path '*/hwmon/hwmon*/power1_cap' -type f
    fi
  } | sort
}

pg_caps_word() {
  case "$(pg_machine_of "$1")" in
    amd-genoa) echo hsmp-hwmon ;;
    amd-genoa-nohwmon | amd-server | no-powercap) echo none ;;
    *) echo rapl ;;
  esac
}

pg_cluster_env() {
  local e
  e=$("$PGCLUSTER" env) || return 1
  eval "$e"
}

pg_pid_alive() {
  local line=''
  { read -r line < "/proc/$1/stat"; } 2>/dev/null || return 1
  line=${line##*) }
  [ -n "$line" ] && [ "${line%% *}" != Z ]
}

pg_cluster_procs() {
  local p pid e found=() mark="PGCLUSTER_OWNER=${PG_CLUSTER_DIR:?}"
  while read -r pid; do
    pg_pid_alive "$pid" && found+=("$pid")
  done < <(pgrep -f -- "$PG_CLUSTER_DIR" || true)
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    { while IFS= read -r -d '' e; do
        if [ "$e" = "$mark" ]; then
          pg_pid_alive "$pid" && found+=("$pid")
          break
        fi
      done < "$p/environ"; } 2>/dev/null || true
  done
  [ ${#found[@]} -eq 0 ] || printf '%s\n' "${found[@]}" | sort -un | xargs
}

# Sanitizers (see the top of this file).
if [ "${PG_SANITIZE:-0}" = 1 ] && [ -z "${_PG_SANITIZE_ON:-}" ]; then
  # UBSan's runtime too: libtool links C++ modules with -nostdlib, so the plugins name
  # neither runtime; both come from the process.
  _pg_rt=$(readlink -f "$(${CC:-gcc} -print-file-name=libasan.so)")
  _pg_ub=$(readlink -f "$(${CC:-gcc} -print-file-name=libubsan.so)")
  if [ ! -f "$_pg_rt" ] || [ ! -f "$_pg_ub" ]; then
    echo "Bail out! PG_SANITIZE=1 but no sanitizer runtimes (libasan.so, libubsan.so) for ${CC:-gcc}"
    exit 1
  fi
  # Into the daemons only, by pgcluster (PG_DAEMON_PRELOAD): not into srun and the rest
  # (pgrep hangs with it, srun at its exit). The SPANK plugin srun loads is never sanitized.
  export PG_SANITIZE_LOG_DIR=${PG_SANITIZE_LOG_DIR:-/tmp/powergrad-sanitizer}
  mkdir -p "$PG_SANITIZE_LOG_DIR" && chmod 1777 "$PG_SANITIZE_LOG_DIR"
  # And tests/tools/pg_preload_once.c last: the daemons' children (slurmstepd) start without
  # the runtimes, whose allocator deadlocks a child forked by a multithreaded process.
  # A dot file: every other file in the directory is a sanitizer report (scripts/run-tests.sh
  # counts them as failures).
  _pg_once=$PG_SANITIZE_LOG_DIR/.pg_preload_once.so
  if [ ! -f "$_pg_once" ]; then
    _pg_tmp=$(mktemp "$PG_SANITIZE_LOG_DIR/.pg_preload_once.XXXXXX")
    ${CC:-gcc} -shared -fPIC -O2 -o "$_pg_tmp" "$PG_TOP/tests/tools/pg_preload_once.c" &&
      chmod 755 "$_pg_tmp" && mv -f "$_pg_tmp" "$_pg_once" ||
      { echo "Bail out! cannot build $PG_TOP/tests/tools/pg_preload_once.c"; exit 1; }
  fi
  export PG_DAEMON_PRELOAD=$_pg_rt:$_pg_ub:$_pg_once _PG_SANITIZE_ON=1
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$PG_SANITIZE_LOG_DIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$PG_SANITIZE_LOG_DIR/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
fi
