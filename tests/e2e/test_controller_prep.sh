#!/usr/bin/env bash
# End-to-end: the controller as a PrEp plugin next to Slurm's own prep/script. A site's
# PrologSlurmctld and EpilogSlurmctld scripts still run for every job (prep/script), while
# prep/powergrad records power-aware jobs: sacct shows the record of a job whose end ran
# the site's (asynchronous) epilog script too, and of a job that was cancelled; a plain job
# gets none. slurmd loads the plugin as well and keeps running jobs. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
ctld_dir=$build/slurmctld_powergrad/.libs
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"

pg_cluster_test_setup ctlprep
plan 7

# Under nodes/, which pgcluster keeps (the folder must hold nothing else of ours).
site=$PG_CLUSTER_DIR/nodes/site
marks=$site/marks
mkdir -p "$marks" "$site/scripts"
for s in prolog epilog; do
  # EpilogSlurmctld and PrologSlurmctld run as SlurmUser (root here) with SLURM_JOB_ID set.
  printf '#!/bin/sh\ntouch %s/%s.$SLURM_JOB_ID\n' "$marks" "$s" > "$site/scripts/$s.sh"
  chmod 755 "$site/scripts/$s.sh"
done
export PG_SPANK_PLUGIN=$spank PG_CTLD_PLUGIN_DIR=$ctld_dir
export PG_SLURM_CONF_EXTRA="PrologSlurmctld=$site/scripts/prolog.sh
EpilogSlurmctld=$site/scripts/epilog.sh"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with prep/script (site scripts) and prep/powergrad is up"
else
  not_ok "cluster with prep/script (site scripts) and prep/powergrad is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
log_ctld=$("$PGCLUSTER" log ctld)

check "slurm.conf lists prep/script before prep/powergrad" \
  grep -qx 'PrEpPlugins=prep/script,prep/powergrad' "$SLURM_CONF"

admin_comment() { sacct -n -X -j "$1" --format=AdminComment%300 | sed 's/[[:space:]]*$//; s/^[[:space:]]*//'; }
job_state() { sacct -n -X -j "$1" --format=State%20 | tr -d ' '; }

pa=$(srun --power-aware=throughput -N2 bash -c '[ "$SLURM_NODEID" = 0 ] && echo "$SLURM_JOB_ID"; true' | tail -n1)
plain=$(srun -N1 bash -c 'echo "$SLURM_JOB_ID"' | tail -n1)
cancelled=$(sbatch --parsable --power-aware=latency -N1 -o /dev/null --wrap 'sleep 300')
wait_until 30 sh -c "[ \"\$(squeue -h -j $cancelled -o %T)\" = RUNNING ]" || true
scancel "$cancelled"

scripts_ran() {
  local j
  for j in "$pa" "$plain" "$cancelled"; do
    [ -e "$marks/prolog.$j" ] && [ -e "$marks/epilog.$j" ] || return 1
  done
}
if wait_until 30 scripts_ran; then
  ok "the site's PrologSlurmctld and EpilogSlurmctld ran for every job ($pa, $plain, $cancelled)"
else
  not_ok "the site's PrologSlurmctld and EpilogSlurmctld ran for every job" "$(ls "$marks")"
fi

record_ok() { admin_comment "$1" | grep -q "powergrad={v=1 mode=$2 nodes=$3"; }
if wait_until 30 record_ok "$pa" throughput 'n\[1-2\]'; then
  ok "sacct shows the power-aware job's record ($(admin_comment "$pa"))"
else
  not_ok "sacct shows the power-aware job's record" "$(admin_comment "$pa")"
fi
if wait_until 30 record_ok "$cancelled" latency n1 && [[ $(job_state "$cancelled") == CANCELLED* ]]; then
  ok "sacct shows the cancelled power-aware job's record and state ($(admin_comment "$cancelled"))"
else
  not_ok "sacct shows the cancelled power-aware job's record and state" \
    "$(job_state "$cancelled"): $(admin_comment "$cancelled")"
fi
is "$(admin_comment "$plain")" "" "sacct shows no record for the plain job"
if grep -q 'powergrad: error\|error: powergrad' "$log_ctld"; then
  not_ok "slurmctld logged no PowerGrad error" "$(grep 'powergrad' "$log_ctld" | grep error | head -n 5)"
else
  ok "slurmctld logged no PowerGrad error"
fi
