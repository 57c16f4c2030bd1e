#!/usr/bin/env bash
# The SPANK plugin is thin and the node agent is a module of its own (issue 11: loading the
# agent's code and libraries cost every srun and slurmstepd tens of milliseconds). Checks,
# without a cluster, through tests/tools/spank_host (a stand-in for the Slurm process that
# loads the plugin): the plugin needs none of libpfm4, libmunge, libcrypto (nor the shared
# libstdc++ when configure found a static one); srun's context loads nothing more; slurmd's
# context loads the agent's module from the plugin's folder and the agent serves its socket
# on a fake tree; a plugin whose module is missing leaves slurmd running with one error line
# naming the file. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
libs=$build/spank_powergrad/.libs
spank=$libs/spank_powergrad.so
module=$libs/powergrad_agent.so
host=$build/tests/tools/spank_host
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] && [ -f "$module" ] || skip_all "plugin or agent module not built in $libs"
[ -x "$host" ] || skip_all "spank_host not built (make check builds it): $host"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"
command -v readelf >/dev/null 2>&1 || skip_all "readelf (binutils) is needed"

plan 7
work=$(mktemp -d /tmp/pg-plugin-split.XXXXXX)
chmod 755 "$work"
pg_on_exit rm -rf "$work"
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }

thin=$(needed "$spank")
heavy='libpfm|libmunge|libcrypto'
grep -q '^THIN_PLUGIN_LDFLAGS = .*libstdc++\.a' "$build/Makefile" && heavy="$heavy|libstdc\+\+"
if ! grep -qE "$heavy" <<<"$thin"; then
  ok "the SPANK plugin needs none of ${heavy//|/, } (needs: $thin)"
else
  not_ok "the SPANK plugin needs none of ${heavy//|/, }" "needs: $thin"
fi
mod=$(needed "$module")
if grep -q libmunge <<<"$mod" && grep -q libcrypto <<<"$mod"; then
  ok "the agent's module carries the agent's libraries (needs: $mod)"
else
  not_ok "the agent's module carries the agent's libraries" "needs: $mod"
fi

# srun's context: the option, nothing of the agent.
out=$("$host" "$spank" local 2>&1) || true
if grep -q 'option registered: --power-aware' <<<"$out" && grep -q 'init rc=0' <<<"$out" &&
  ! grep -qE "mapped: .*(powergrad_agent|libpfm|libmunge|libcrypto)" <<<"$out"; then
  ok "in srun's context the plugin registers --power-aware and loads nothing of the agent"
else
  not_ok "in srun's context the plugin registers --power-aware and loads nothing of the agent" "$out"
fi

# slurmd's context: the module is loaded and the agent serves on a fake tree.
"$hwemu" make-tree --root "$work/sys" --machine intel-server >/dev/null
echo "* memory_share=0.2,busy_cpus=1" > "$work/emulate.txt"
mkdir -m 700 "$work/state"
args=(period=1 "state_dir=$work/state" "sysfs_root=$work/sys" counters=emulated
  "emulate=$work/emulate.txt" grant=300 controller=none)
out=$(POWERGRAD_NODENAME=n1 "$host" -D "$spank" slurmd "$work/state/agent.sock" "${args[@]}" 2>&1) || true
if grep -q 'agent.sock appeared' <<<"$out" && grep -q 'mapped: powergrad_agent.so' <<<"$out"; then
  ok "in slurmd's context the agent's module is loaded and the agent serves its socket"
else
  not_ok "in slurmd's context the agent's module is loaded and the agent serves its socket" "$out"
fi
if grep -q 'init rc=0' <<<"$out" && grep -q 'exit rc=0' <<<"$out" &&
  grep -q 'powergrad: node agent started on ' <<<"$out" &&
  grep -q 'powergrad: node agent on .* stopped' <<<"$out"; then
  ok "the agent started, and stopped with slurmd's exit hook"
else
  not_ok "the agent started, and stopped with slurmd's exit hook" "$out"
fi

# A plugin without its module beside it: slurmd keeps running, the node is unmanaged.
mkdir "$work/alone"
cp "$spank" "$work/alone/"
out=$("$host" "$work/alone/spank_powergrad.so" slurmd - "${args[@]}" 2>&1) || true
if grep -q "error: powergrad: node agent not started: cannot load $work/alone/powergrad_agent.so: " <<<"$out" &&
  grep -q 'power management is off on this node' <<<"$out"; then
  ok "without its module the plugin says which file it could not load"
else
  not_ok "without its module the plugin says which file it could not load" "$out"
fi
if grep -q 'init rc=0' <<<"$out" && grep -q 'exit rc=0' <<<"$out"; then
  ok "without its module slurmd's hooks still succeed (slurmd keeps running)"
else
  not_ok "without its module slurmd's hooks still succeed (slurmd keeps running)" "$out"
fi
