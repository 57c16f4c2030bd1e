#!/usr/bin/env bash
# `powergrad check-config`: validates a powergrad.conf offline with the controller's own
# checks (controller/ctld_config.hpp check_controller_config, which the controller plugin
# runs at start): good files pass with a summary, every kind of bad input is refused with
# FILE:LINE and the problem, exit 1; usage errors exit 2. No cluster needed. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
pg=$build/tools/powergrad
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"

plan 12
work=$(mktemp -d /tmp/pg-check-config.XXXXXX)
pg_on_exit rm -rf "$work"

# run FILE ARGS...: sets $out (stdout and stderr) and $rc.
run() {
  rc=0
  out=$("$pg" check-config "$@" 2>&1) || rc=$?
}

example=$PG_TOP/etc/powergrad.conf
run "$example"
is "$rc" 0 "the shipped example passes"
case $out in
  *"OK: budget 4000 W, 3 groups, 1 node lines"*"nodes not checked"*) ok "its summary names budget, groups and that nodes were not checked" ;;
  *) not_ok "its summary names budget, groups and that nodes were not checked" "$out" ;;
esac

run "$example" --nodes 'n[1-32],login1'
is "$rc" 0 "with slurm.conf's nodes it still passes"
case $out in
  *"32 managed nodes, 1 unmanaged"*) ok "managed and unmanaged nodes counted" ;;
  *) not_ok "managed and unmanaged nodes counted" "$out" ;;
esac

run "$example" --nodes 'n[1-4]'
rack1_line=$(grep -n '^Group=rack1 ' "$example" | cut -d: -f1)
is "$rc:$out" "1:$example:$rack1_line: group 'rack1' names node 'n5', which slurm.conf does not define" \
  "a group naming a node slurm.conf lacks is refused with its line"

printf '# a comment\nControlPeriod=1\nBudget=abc\n' > "$work/bad-number.conf"
run "$work/bad-number.conf"
is "$rc:$out" "1:$work/bad-number.conf:3: Budget='abc' is not a number of watts" \
  "a bad value names the file, the line and the key"

printf 'Budget=4000\nFrobnicate=1\n' > "$work/unknown.conf"
run "$work/unknown.conf"
case "$rc:$out" in
  "1:$work/unknown.conf:2: unknown key 'frobnicate'") ok "an unknown key is refused with its line" ;;
  *) not_ok "an unknown key is refused with its line" "exit $rc" "$out" ;;
esac

printf 'Budget=4000\nBudgetSchedule=%s\n' "$work/schedule" > "$work/sched.conf"
printf '06:00 3000\n25:00 2000\n' > "$work/schedule"
run "$work/sched.conf"
case "$rc:$out" in
  "1:$work/schedule:2: "*) ok "a bad budget schedule is refused with its own file and line" ;;
  *) not_ok "a bad budget schedule is refused with its own file and line" "exit $rc" "$out" ;;
esac

printf 'Budget=4000\nAdminUsers=root,no-such-user-pg\n' > "$work/admins.conf"
run "$work/admins.conf"
is "$rc:$out" "1:$work/admins.conf: AdminUsers: no user 'no-such-user-pg' on this host" \
  "an admin unknown on this host is refused"

printf 'Budget=100\nNodeFloor=80\n' > "$work/floors.conf"
run "$work/floors.conf" --nodes 'n[1-2]'
case "$rc:$out" in
  "1:$work/floors.conf"*) ok "floors that do not fit in the budget are refused (with nodes)" ;;
  *) not_ok "floors that do not fit in the budget are refused (with nodes)" "exit $rc" "$out" ;;
esac

run "$work/no-such-file.conf"
case "$rc:$out" in
  "1:$work/no-such-file.conf"*) ok "a missing file is refused, named" ;;
  *) not_ok "a missing file is refused, named" "exit $rc" "$out" ;;
esac

run "$example" --bogus
is "$rc" 2 "an unknown option is a usage error (exit 2)"
