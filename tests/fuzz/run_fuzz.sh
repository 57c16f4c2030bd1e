#!/bin/bash
# A short libFuzzer campaign on the protocol decoders (tests/fuzz/fuzz_decode.cpp), as TAP.
# Built by `make fuzz` (clang + libFuzzer); without it: SKIP (exit 0 under make check,
# 77 by hand). PG_FUZZ_SECONDS sets the length (default 25 s). A crash input is kept in
# $PG_BUILDDIR/tests/fuzz/ for replay: tests/fuzz/fuzz_decode CRASH_FILE
set -u
builddir=${PG_BUILDDIR:-$(pwd)}
srcdir=${PG_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
fuzz=$builddir/tests/fuzz/fuzz_decode
gen=$builddir/tests/fuzz/make_corpus
secs=${PG_FUZZ_SECONDS:-25}

skip_all() {
  echo "1..0 # SKIP $1"
  if [ -n "${PG_BUILDDIR:-}" ]; then exit 0; else exit 77; fi
}
[ -x "$fuzz" ] && [ -x "$gen" ] ||
  skip_all "fuzz_decode not built: needs clang with libFuzzer (Debian: clang libclang-rt-14-dev), then make fuzz"

echo "1..3"
work=$(mktemp -d /tmp/pg-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0

if n=$("$gen" "$work/corpus" 2>"$work/gen.err"); then
  echo "ok 1 - seed corpus: $n inputs (every message type as frame, payload, stream, sealed)"
else
  echo "not ok 1 - seed corpus generator failed"
  sed 's/^/# /' "$work/gen.err"
  failed=1
fi

if "$fuzz" -runs=0 "$work/corpus" >"$work/seeds.log" 2>&1; then
  echo "ok 2 - every seed runs through the decoders without a finding"
else
  echo "not ok 2 - a seed input fails"
  tail -20 "$work/seeds.log" | sed 's/^/# /'
  failed=1
fi

# -malloc_limit_mb: no single allocation may exceed what the limits allow (the largest
# frame is an ADMIN_STATUS of 4 MiB); -rss_limit_mb bounds the whole process.
"$fuzz" -max_total_time="$secs" -dict="$srcdir/tests/fuzz/proto.dict" -max_len=8192 \
  -malloc_limit_mb=16 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -1)
if [ "$rc" -eq 0 ]; then
  echo "ok 3 - ${runs:-?} inputs in ${secs} s, no crash, leak, timeout or oversize allocation (${cov:-cov: ?})"
else
  echo "not ok 3 - libFuzzer found a problem (exit $rc)"
  grep -E 'ERROR|SUMMARY|invariant|==[0-9]+==' "$work/fuzz.log" | head -20 | sed 's/^/# /'
  for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$a" ] || continue
    cp "$a" "$builddir/tests/fuzz/" && echo "# kept $builddir/tests/fuzz/$(basename "$a")"
  done
  failed=1
fi
grep -E '^stat::|^#[0-9]+.*DONE' "$work/fuzz.log" | sed 's/^/# /'
if [ -n "${PG_BUILDDIR:-}" ]; then exit 0; fi
exit "$failed"
