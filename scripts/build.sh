#!/usr/bin/env bash
# Configures and builds PowerGrad out of tree in ./build (or $PG_BUILD_DIR), with the
# slurmctld plugin when the matching Slurm source tree is there (scripts/install-deps.sh).
# Extra arguments go to configure (e.g. --enable-asan).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${PG_BUILD_DIR:-$top/build}
src=${PG_SLURM_SRC:-/var/cache/powergrad/slurm-src}/current

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
  ./bootstrap
fi
mkdir -p "$build"
cd "$build"
args=(--prefix=/usr --sysconfdir=/etc)
if [ -f "$src/config.h" ]; then
  args+=("--with-slurm-source=$src")
fi
if [ ! -f config.status ] || [ "$top/configure" -nt config.status ] || [ $# -gt 0 ]; then
  "$top/configure" "${args[@]}" "$@"
fi
make -j"$(nproc)"
