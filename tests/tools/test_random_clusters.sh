#!/usr/bin/env bash
# scripts/random-clusters.py, the harness behind the README's random-cluster figures: the
# same seed writes the same clusters and another seed others, every cluster it writes is one
# the simulator runs, `run` prints a line per run and a summary per set that `summary` gives
# back from the saved lines, a budget violation fails the summary, and bad input is refused
# with the problem named (exit 2), as is a simulator whose output it cannot read. No cluster
# needed. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
sim=$build/sim/powergrad-sim
rc_py=$PG_TOP/scripts/random-clusters.py
[ -x "$sim" ] || skip_all "simulator not built: $sim"
command -v python3 > /dev/null || skip_all "python3 not installed"

plan 25
work=$(mktemp -d /tmp/pg-random-clusters.XXXXXX)
pg_on_exit rm -rf "$work"

# run ARGS...: sets $out (stdout and stderr) and $rc.
run() {
  rc=0
  out=$(python3 "$rc_py" "$@" 2>&1) || rc=$?
}

run generate --seed 5 --count 3 --out "$work/a"
is "$rc" 0 "generate exits 0"
is "$(find "$work/a" -name 'rnd5-*.yaml' | wc -l)" 3 "it writes --count clusters named after the seed"
run generate --seed 5 --count 3 --out "$work/b"
if diff -r "$work/a" "$work/b" > /dev/null; then ok "the same seed writes the same files"
else not_ok "the same seed writes the same files" "$(diff -r "$work/a" "$work/b" | head -20)"; fi
run generate --seed 6 --count 3 --out "$work/c"
if ! cmp -s "$work/a/rnd5-0.yaml" <(sed 's/rnd6-/rnd5-/; s/cluster 6-/cluster 5-/' "$work/c/rnd6-0.yaml"); then
  ok "another seed writes another cluster"
else
  not_ok "another seed writes another cluster" "rnd6-0.yaml is rnd5-0.yaml renamed"
fi

run run --sim "$sim" --seeds 1 --jobs 2 --out "$work/lines.txt" "$work/a"
is "$rc" 0 "run exits 0 (no budget violation)"
lines=$(printf '%s\n' "$out" | grep -cE '^rnd5-[0-9]+ s1 (vsbest|ERROR) ' || true)
is "$lines" 3 "one line per cluster and seed"
# Every line that ran has all the figures; a refused cluster says why.
bad=$(printf '%s\n' "$out" | grep -E '^rnd5-' |
  grep -vE '^rnd5-[0-9]+ s1 vsbest [-+][0-9.]+% [-+][0-9.]+% share (nan|-?[0-9]+)% orc [-+][0-9.]+% budget [0-9.]+% wanted [0-9.]+% viol 0 orcp99 [-+][0-9.]+% orcmean [-+][0-9.]+%( burst4 [-+][0-9.]+W/[-+][0-9.]+W)?( ORACLE-HARM)?( HARM)?$' |
  grep -v 'no policy could stay under it' || true)
is "$bad" "" "each run line carries every figure (or the simulator's refusal)"
summary=$(printf '%s\n' "$out" | grep -E '^rnd5: runs ' || true)
case $summary in
  "rnd5: runs "[0-9]*" refused "[0-9]*" harm "[0-9]*" oracle-harm "[0-9]*" both "[0-9]*" budget<99.5% "[0-9]*" oracle>=3% "[0-9]*" share<80% "*" violations 0") ok "a summary line for the set" ;;
  *) not_ok "a summary line for the set" "$out" ;;
esac
run summary "$work/lines.txt"
is "$rc" 0 "summary of the saved lines exits 0"
is "$out" "$summary" "and gives the run's summary back"

# The oracle's harm is counted apart from powergrad's: a line flagged ORACLE-HARM alone is
# no harm of powergrad's, and lines written before orcmean existed say n/a.
cat > "$work/flags.txt" << 'EOF'
rndx-0 s1 vsbest -2.0% +0.0% share 50% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 -3.0% orcmean +1.0% ORACLE-HARM HARM
rndx-1 s1 vsbest +1.0% +0.0% share 90% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 -3.0% orcmean +2.0% ORACLE-HARM
rndx-2 s1 vsbest -1.0% +0.0% share 20% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0% HARM
rndx-3 s1 vsbest +1.0% +1.0% share 95% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0%
rndy-0 s1 vsbest -2.0% +0.0% share 50% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 -3.0% HARM
EOF
run summary "$work/flags.txt"
case "$rc:$out" in
  0:"rndx: runs 4 refused 0 harm 2 oracle-harm 2 both 1 budget<99.5% 0 "*) ok "the oracle's harm is counted apart, and both together" ;;
  *) not_ok "the oracle's harm is counted apart, and both together" "rc $rc: $out" ;;
esac
case "$out" in
  *"rndy: runs 1 refused 0 harm 1 oracle-harm n/a budget<99.5% 0 "*) ok "lines without the oracle's mean: its harm n/a" ;;
  *) not_ok "lines without the oracle's mean: its harm n/a" "$out" ;;
esac
case "$out" in
  *"all: runs 5 refused 0 harm 3 oracle-harm n/a budget<99.5% 0 oracle>=3% 5 share<80% 3 "*) ok "with two sets, a line over all of them" ;;
  *) not_ok "with two sets, a line over all of them" "$out" ;;
esac

# How far powergrad follows bursts (burst4: its and the oracle's socket cap rise 4 s into a
# burst): the summary sums powergrad's rises over the oracle's, over the runs where the
# oracle's is at least 1 W (rndz-2's is not); sets without burst4 say n/a.
cat > "$work/bursts.txt" << 'EOF'
rndz-0 s1 vsbest +1.0% +1.0% share 95% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0% burst4 +2.0W/+20.0W
rndz-1 s1 vsbest +1.0% +1.0% share 95% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0% burst4 +7.0W/+30.0W HARM
rndz-2 s1 vsbest +1.0% +1.0% share 95% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0% burst4 +9.0W/+0.5W
rndz-3 s1 vsbest +1.0% +1.0% share 95% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0%
EOF
run summary "$work/bursts.txt"
case "$rc:$out" in
  0:"rndz: runs 4 refused 0 harm 1 "*" median share 95% burst-follow 18% mean "*) ok "burst4 lines: the summary's burst-follow is powergrad's rises over the oracle's" ;;
  *) not_ok "burst4 lines: the summary's burst-follow is powergrad's rises over the oracle's" "rc $rc: $out" ;;
esac
run summary "$work/flags.txt"
case "$out" in
  *"rndx: "*" burst-follow n/a mean "*) ok "lines without burst4: burst-follow n/a" ;;
  *) not_ok "lines without burst4: burst-follow n/a" "$out" ;;
esac

# A run line that does not read stops the summary with the file, the line and the field
# (exit 2); other lines (the summary lines of a saved log) are passed over.
good='rndy-0 s1 vsbest +1.0% +1.0% share 95% orc +9.0% budget 100.0% wanted 100.00% viol 0 orcp99 +1.0% orcmean +5.0% burst4 +2.0W/+20.0W'
for bad in "s/burst4 +2.0W\/+20.0W/burst4 +2.0W+20.0W/:3: burst4 is not P W/O W" \
           "s/share 95%/share 9x5%/:3: share '9x5%' does not read as a number" \
           "s/ viol 0 / viol zero /:3: viol 'zero' does not read as a number" \
           "s/ s1 / one /:3: seed (sN) 'one' does not read as a number" \
           "s/ orc .*//:3: the line ends after 7 fields, before 'orc'"; do
  printf '%s\nrndy: runs 1 refused 0 harm 0\n%s\n' "$good" "$(printf '%s\n' "$good" | sed "${bad%%:*}")" > "$work/bad.txt"
  run summary "$work/bad.txt"
  want=${bad#*:}
  case "$rc:$out" in
    2:*"bad.txt:$want"*) ok "a malformed run line is refused by file, line and field: $want" ;;
    *) not_ok "a malformed run line is refused by file, line and field: $want" "rc $rc: $out" ;;
  esac
done
printf '%s\nrndy: runs 1 refused 0 harm 0\n' "$good" > "$work/good.txt"
run summary "$work/good.txt"
case "$rc:$out" in
  "0:rndy: runs 1 refused 0 harm 0 "*) ok "a summary line among the run lines is passed over" ;;
  *) not_ok "a summary line among the run lines is passed over" "rc $rc: $out" ;;
esac

# A violation is a safety failure: the summary says so in its exit status.
sed '1s/ viol 0 / viol 2 /' "$work/lines.txt" > "$work/violated.txt"
if grep -q ' viol 2 ' "$work/violated.txt"; then
  run summary "$work/violated.txt"
  is "$rc" 1 "a budget violation in the lines: exit 1"
else
  not_ok "a budget violation in the lines: exit 1" "the first line was not a run line: $(head -1 "$work/lines.txt")"
fi

run run --sim "$sim" --seeds one "$work/a"
case "$rc:$out" in
  2:*"--seeds 'one'"*) ok "a bad --seeds is refused by name (exit 2)" ;;
  *) not_ok "a bad --seeds is refused by name (exit 2)" "rc $rc: $out" ;;
esac
mkdir "$work/empty"
run run --sim "$sim" "$work/empty"
case "$rc:$out" in
  2:*"no scenarios"*"empty"*) ok "a directory without scenarios is refused (exit 2)" ;;
  *) not_ok "a directory without scenarios is refused (exit 2)" "rc $rc: $out" ;;
esac
printf '#!/bin/sh\necho not json\n' > "$work/fake-sim"
chmod +x "$work/fake-sim"
run run --sim "$work/fake-sim" --seeds 1 "$work/a"
case "$rc:$out" in
  2:*"rnd5-0 s1 ERROR the simulator's JSON is not what this script reads"*"3 simulator runs failed"*) ok "a simulator whose output is not JSON: each run an ERROR line, exit 2" ;;
  *) not_ok "a simulator whose output is not JSON: each run an ERROR line, exit 2" "rc $rc: $out" ;;
esac
