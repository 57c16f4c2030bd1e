#!/usr/bin/env bash
# Makes (once) and caches a Debian root that carries a given Slurm version, with its own
# compiler, libraries, munge, MariaDB and the configured Slurm source tree the controller
# plugin needs. Slurm's packages of a newer Debian release need that release's glibc, so
# PowerGrad is built and tested for them inside such a root (see tests/cluster/README.md).
#
#   scripts/slurm-root.sh VERSION       make or refresh the root; prints its path last
#   scripts/slurm-root.sh VERSION --slurm-source PATH
#       the same, with Slurm's source from PATH (a release tarball such as SchedMD's
#       slurm-26.05.5.tar.bz2, or an unpacked tree) instead of the mirror: it is copied into
#       the root and configured there (install-deps.sh --slurm-source), and the root's
#       controller plugin can be built again. For a mirror that lists a source package but
#       does not serve it (Debian unstable's slurm-wlm 26.05.5)
#   scripts/slurm-root.sh --path VERSION  print the root's path (no change)
#   scripts/slurm-root.sh --enter VERSION [--] CMD [ARGS...]
#       run CMD inside the (already made) root, as root, in the current folder: /proc,
#       /sys, /dev, /dev/pts, /tmp and this checkout are mounted there at the same paths
#       (left mounted for the next command; --umount removes them). The environment is
#       clean apart from PATH, HOME, LANG, TERM, CI and the caller's PG_*, POWERGRAD_*,
#       SLURM_CONF and *SAN_OPTIONS variables. For 22.05 CMD runs here, unchanged.
#   scripts/slurm-root.sh --umount VERSION  unmount what --enter mounted
#
# VERSION: 22.05 (this machine: Debian 12, no root needed, prints "/"), 24.11 (Debian 13
# "trixie"), 26.05 (Debian unstable "sid"). Roots live in $PG_ROOTS (default
# /var/cache/powergrad/roots/<codename>); every step leaves a stamp, so a second run is quick.
# Packages come from the mirror this machine's APT uses (/etc/apt). Run as root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
roots=${PG_ROOTS:-/var/cache/powergrad/roots}

usage() { sed -n '2,27p' "$0"; }
only_path=0
action=make
ver=
given_src=
cmd=()
while [ $# -gt 0 ]; do
  case "$1" in
    --path) only_path=1 ;;
    --enter) action=enter ;;
    --umount) action=umount ;;
    --slurm-source) [ $# -ge 2 ] || { echo "slurm-root: --slurm-source needs a path" >&2; exit 2; }
                    given_src=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; cmd=("$@"); break ;;
    -*) echo "slurm-root: unknown option '$1'" >&2; exit 2 ;;
    *) if [ -z "$ver" ]; then ver=$1; else cmd=("$@"); break; fi ;;
  esac
  shift
done
if [ "$action" = enter ] && [ ${#cmd[@]} -eq 0 ]; then
  echo "slurm-root: --enter VERSION needs a command" >&2
  exit 2
fi
case "$ver" in
  22.05) suite= ;;
  24.11) suite=trixie ;;
  26.05) suite=sid ;;
  '') echo "slurm-root: which Slurm version? (22.05, 24.11 or 26.05)" >&2; exit 2 ;;
  *) echo "slurm-root: unsupported Slurm version '$ver' (supported: 22.05, 24.11, 26.05)" >&2
     exit 2 ;;
esac
if [ -n "$given_src" ]; then
  [ "$action" = make ] && [ "$only_path" -eq 0 ] ||
    { echo "slurm-root: --slurm-source goes with making the root only" >&2; exit 2; }
  [ -e "$given_src" ] || { echo "slurm-root: --slurm-source $given_src: no such file or folder" >&2; exit 2; }
fi
if [ -z "$suite" ]; then
  if [ -n "$given_src" ]; then exec "$top/scripts/install-deps.sh" --slurm-source "$given_src"; fi
  case $action in
    enter) exec "${cmd[@]}" ;;
    umount) exit 0 ;;
  esac
  echo /
  exit 0
fi
root=$roots/$suite
if [ "$only_path" -eq 1 ]; then echo "$root"; exit 0; fi

# Mount points of --enter, in mounting order.
enter_mounts() { printf '%s\n' /proc /sys /dev /dev/pts /tmp "$top"; }
if [ "$action" = umount ]; then
  for m in $(enter_mounts | tac); do
    if mountpoint -q "$root$m"; then umount -l "$root$m" || true; fi
  done
  exit 0
fi
if [ "$action" = enter ]; then
  if [ ! -f "$root/.powergrad-ready" ]; then
    echo "slurm-root: no ready root for Slurm $ver in $root: run scripts/slurm-root.sh $ver" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-root: must run as root (chroot)" >&2
    exit 1
  fi
  for m in $(enter_mounts); do
    mkdir -p "$root$m"
    if mountpoint -q "$root$m"; then
      # A bind mount left by an earlier --enter shows what was there then: a checkout since
      # removed and cloned again at the same path is another folder. Mount it afresh.
      case $m in
        /proc|/sys) continue ;;
      esac
      [ "$(stat -c %d:%i "$m")" != "$(stat -c %d:%i "$root$m" 2>/dev/null)" ] || continue
      umount -l "$root$m"
    fi
    case $m in
      /proc) mount -t proc proc "$root/proc" ;;
      /sys) mount -t sysfs sysfs "$root/sys" ;;
      *) mount --bind "$m" "$root$m" ;;
    esac
  done
  envs=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "TERM=${TERM:-dumb}")
  [ -z "${CI:-}" ] || envs+=("CI=$CI")
  while IFS='=' read -r k _; do
    case $k in
      PG_*|POWERGRAD_*|SLURM_CONF|*SAN_OPTIONS) envs+=("$k=${!k}") ;;
    esac
  done < <(env)
  exec chroot "$root" env -i "${envs[@]}" PG_SLURM_ROOT="$root" \
    bash -c 'cd "$1" && shift && exec "$@"' bash "$PWD" "${cmd[@]}"
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-root: must run as root (mmdebstrap, chroot)" >&2
  exit 1
fi

log=$roots/$suite.log
mkdir -p "$roots"
say() { echo "slurm-root[$suite]: $*" | tee -a "$log" >&2; }
step_start=0
begin() { step_start=$(date +%s); say "$1"; }
done_step() { say "$1 took $(( $(date +%s) - step_start )) s"; }

# The mirror of this machine's Debian entries (first URI of a deb822 file, or of a one-line
# 'deb' entry), so no other host is contacted.
mirror() {
  local u
  u=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
      awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$u" ] && [ -f /etc/apt/sources.list ]; then
    u=$(grep -E '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v -- '-security' |
        head -n1 || true)
  fi
  [ -n "$u" ] || { echo "slurm-root: no Debian mirror found in /etc/apt" >&2; exit 1; }
  echo "$u"
}
url=$(mirror)

mounted=()
cleanup() {
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
mount_proc() {
  if ! mountpoint -q "$root/proc"; then
    mount -t proc proc "$root/proc"
    mounted+=("$root/proc")
  fi
}

# 1. The base system: mmdebstrap, whose apt fetches the packages in parallel (debootstrap
# fetches one at a time: 334 s for trixie against mmdebstrap's 127 s, measured on a busy
# machine). dpkg inside the root skips fsync (force-unsafe-io, as Debian's container images
# do): a root left half made by a crash has no stamp and is made again.
if [ ! -f "$root/.powergrad-base" ]; then
  if ! command -v mmdebstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
  fi
  begin "mmdebstrap --variant=minbase $suite from $url"
  rm -rf "$root"
  # Debian unstable's Release files carry a Valid-Until date that a mirror snapshot may
  # have passed: the packages are still signed and checked.
  mmdebstrap --variant=minbase --mode=root --dpkgopt=force-unsafe-io \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    "$suite" "$root" "deb $url $suite main" >> "$log" 2>&1 ||
    { tail -20 "$log" >&2; say "mmdebstrap failed (log: $log)"; exit 1; }
  # Daemons must not start inside the root at install time (tests start their own).
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  touch "$root/.powergrad-base"
  done_step "mmdebstrap"
fi

# 2. Packages, then the configured Slurm source: install-deps.sh, run inside the root. It
# writes its stamps, so this step is quick when nothing changed.
begin "packages and Slurm source (install-deps.sh inside the root)"
mount_proc
mkdir -p "$root/opt/powergrad-scripts"
cp "$top/scripts/install-deps.sh" "$root/opt/powergrad-scripts/"
# /etc/resolv.conf: the root resolves the mirror like this machine does.
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
in_root() {
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
in_root bash /opt/powergrad-scripts/install-deps.sh --no-source >> "$log" 2>&1 ||
  { tail -30 "$log" >&2; say "installing packages failed inside the root (log: $log)"; exit 1; }
rm -f "$root/.powergrad-no-source"
src_args=()
given_failed=0
if [ -n "$given_src" ]; then
  # The admin's Slurm source, copied where install-deps.sh inside the root sees it (it
  # unpacks or copies it again into its own folder, so this copy goes afterwards).
  given_dir=$root/var/cache/powergrad/slurm-src/given
  rm -rf "$given_dir"
  mkdir -p "$given_dir"
  cp -a "$given_src" "$given_dir/"
  src_args=(--slurm-source "/var/cache/powergrad/slurm-src/given/$(basename "$given_src")")
  say "Slurm source from $given_src"
fi
log_size=$(stat -c %s "$log")
if in_root bash /opt/powergrad-scripts/install-deps.sh "${src_args[@]}" >> "$log" 2>&1; then
  # (a given source of another micro version is used with a warning: show it here too)
  tail -c +$((log_size + 1)) "$log" | grep '^install-deps: WARNING' >&2 || true
elif [ -n "$given_src" ]; then
  tail -8 "$log" >&2
  say "ERROR: the Slurm source $given_src could not be used (log: $log): the controller" \
      "plugin cannot be built in this root"
  touch "$root/.powergrad-no-source"
  given_failed=1
else
  # The daemons, tools and SPANK plugin still build and run; only the controller plugin
  # (Slurm's internal headers) does not, and configure says so.
  tail -8 "$log" >&2
  say "WARNING: Slurm's source for $ver could not be fetched from $url (log: $log): the" \
      "controller plugin cannot be built in this root; give it with --slurm-source PATH"
  # The reason, for scripts/run-tests.sh's table: apt's last failed fetch (e.g. a 404).
  { grep -E '^E: Failed to fetch' "$log" || grep -E '^E: ' "$log" || true; } |
    tail -n1 > "$root/.powergrad-no-source"
fi
[ -z "$given_src" ] || rm -rf "$given_dir"
done_step "packages and Slurm source"
touch "$root/.powergrad-ready"
say "ready: Slurm $(chroot "$root" dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?')"
[ "$given_failed" -eq 0 ] || exit 1
echo "$root"
