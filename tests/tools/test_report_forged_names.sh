#!/usr/bin/env bash
# `powergrad report` against a stand-in sacct that prints what sacct 22.05 prints for the
# arguments it is given (-p/-P, --delimiter, --format, --noheader), over jobs whose names a
# user chose to forge rows: a plain job named like a row of root's with 99999999 J, a name
# with a newline followed by a whole row of a job that does not exist, and a name full of
# terminal escape sequences. No cluster needed. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
pg=$build/tools/powergrad
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"
command -v python3 >/dev/null 2>&1 || skip_all "python3 is needed for the stand-in sacct"

plan 6
work=$(mktemp -d /tmp/pg-report-forged.XXXXXX)
pg_on_exit rm -rf "$work"

cat > "$work/sacct" <<'EOF'
#!/usr/bin/env python3
# sacct as far as `powergrad report` uses it: jobs from a fixed list, fields as --format
# asks, -p (delimiter after every field) or -P (between fields), --delimiter (default '|').
import sys
jobs = [
    dict(JobID="21", User="alice", State="COMPLETED", Start="2026-11-25T10:00:00",
         End="2026-11-25T10:00:05", ElapsedRaw="5", JobName="honest",
         AdminComment="powergrad={v=1 mode=latency nodes=n1 energy_j=500}"),
    dict(JobID="22", User="mallory", State="COMPLETED", Start="2026-11-25T10:01:00",
         End="2026-11-25T10:01:01", ElapsedRaw="1",
         JobName="fake|root|COMPLETED|2026-11-25T10:01:00|2026-11-25T10:01:01|1|"
                 "powergrad={v=1 mode=latency nodes=n1 energy_j=99999999}",
         AdminComment=""),
    dict(JobID="23", User="mallory", State="COMPLETED", Start="2026-11-25T10:02:00",
         End="2026-11-25T10:02:01", ElapsedRaw="1",
         JobName="x\n999|phantom|root|COMPLETED|S|E|1|powergrad={v=1 mode=latency nodes=n9 energy_j=99999999}",
         AdminComment=""),
    dict(JobID="24", User="mallory", State="COMPLETED", Start="2026-11-25T10:03:00",
         End="2026-11-25T10:03:01", ElapsedRaw="1", JobName="\x1b]0;pwned\x07\x1b[2J\x1b[Hroot",
         AdminComment="powergrad={v=1 mode=monitor nodes=n2 energy_j=7}"),
]
fmt, delim, ending = None, "|", None
for a in sys.argv[1:]:
    if a in ("-p", "--parsable"): ending = True
    elif a in ("-P", "--parsable2"): ending = False
    elif a.startswith("--delimiter="): delim = a.split("=", 1)[1]
    elif a.startswith("--format="): fmt = a.split("=", 1)[1].split(",")
if fmt is None or ending is None:
    sys.exit("stand-in sacct: needs --format and -p or -P")
for j in jobs:
    vals = [j[f] for f in fmt]
    sys.stdout.write("".join(v + delim for v in vals) if ending else delim.join(vals))
    sys.stdout.write("\n")
EOF
chmod +x "$work/sacct"

out=$("$pg" report --sacct "$work/sacct" --format csv 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ]; then
  ok "powergrad report reads the stand-in sacct"
else
  not_ok "powergrad report reads the stand-in sacct" "exit $rc" "$(cat -v <<<"$out")"
fi
if grep -q '^21,honest,alice,COMPLETED,5,latency,n1,500$' <<<"$out"; then
  ok "the honest power-aware job is reported"
else
  not_ok "the honest power-aware job is reported" "$(cat -v <<<"$out")"
fi
if ! grep -q '99999999' <<<"$out" && ! grep -qE '^(22|23|999),' <<<"$out"; then
  ok "no row from a job name: no 99999999 J, no row for the plain jobs 22, 23 or a job 999"
else
  not_ok "no row from a job name: no 99999999 J, no row for the plain jobs 22, 23 or a job 999" "$(cat -v <<<"$out")"
fi
if ! grep -q ',root,' <<<"$out"; then
  ok "no row claims user root"
else
  not_ok "no row claims user root" "$(cat -v <<<"$out")"
fi
table=$("$pg" report --sacct "$work/sacct" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && ! grep -q $'\x1b' <<<"$table" && ! grep -q $'\x07' <<<"$table" &&
   grep -qF '\x1b]0;pwned\x07\x1b[2J\x1b[Hroot  mallory' <<<"$table"; then
  ok "the table shows escape sequences in a name as text (\\x1b), not raw"
else
  not_ok "the table shows escape sequences in a name as text (\\x1b), not raw" "exit $rc" "$(cat -v <<<"$table")"
fi
is "$(wc -l <<<"$table")" "3" "the table has a header and one line per power-aware job (21, 24)"
