#!/usr/bin/env bash
# Installs every package PowerGrad needs to build, test and run its demo cluster on
# Debian 12 or 13 (or unstable), and obtains the Slurm source tree that matches the installed Slurm (needed
# only to build the slurmctld plugin, which uses Slurm's internal headers).
#
# Idempotent and non-interactive. Run as root.
#   scripts/install-deps.sh            packages + Slurm source
#   scripts/install-deps.sh --no-source  packages only
#   scripts/install-deps.sh --slurm-source PATH
#       packages, and the Slurm source from PATH instead of Debian's mirror: a release
#       tarball (e.g. SchedMD's slurm-26.05.5.tar.bz2) or an unpacked tree. It must be the
#       installed Slurm's major.minor (a different micro version is taken with a warning);
#       it is copied and configured like the fetched one. For when the mirror does not
#       serve the source package (Debian unstable's 26.05.5: listed, but not in the pool)
#   scripts/install-deps.sh --slurm VERSION
#       the same for Slurm VERSION: 22.05 is this machine's (Debian 12); 24.11 and 26.05
#       come with Debian 13 and unstable, so their packages and source tree go into the
#       Debian root scripts/slurm-root.sh makes and caches (the source tree then is in
#       ROOT/var/cache/powergrad/slurm-src/current; --slurm-source PATH goes with it)
#
# The Slurm source lands in $PG_SLURM_SRC (default /var/cache/powergrad/slurm-src) and is
# configured there with the flags Debian used, so internal structs match the daemons.
# /etc/apt is not changed: deb-src comes from a private APT configuration.
set -euo pipefail

want_source=1
slurm=
given_src=
while [ $# -gt 0 ]; do
  case "$1" in
    --no-source) want_source=0 ;;
    --slurm) [ $# -ge 2 ] || { echo "install-deps: --slurm needs a version" >&2; exit 2; }
             slurm=$2; shift ;;
    --slurm-source) [ $# -ge 2 ] || { echo "install-deps: --slurm-source needs a path" >&2; exit 2; }
             given_src=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
case "$slurm" in
  ''|22.05) ;;
  24.11|26.05) exec "$(dirname "$0")/slurm-root.sh" "$slurm" ${given_src:+--slurm-source "$given_src"} ;;
  *) echo "install-deps: unsupported Slurm version '$slurm' (22.05, 24.11 or 26.05)" >&2; exit 2 ;;
esac

if [ -n "$given_src" ]; then
  [ "$want_source" -eq 1 ] || { echo "install-deps: --slurm-source and --no-source exclude each other" >&2; exit 2; }
  [ -e "$given_src" ] || { echo "install-deps: --slurm-source $given_src: no such file or folder" >&2; exit 2; }
  given_src=$(cd "$(dirname "$given_src")" && pwd)/$(basename "$given_src")
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get install)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential g++ autoconf automake libtool autoconf-archive pkg-config
  slurm-wlm slurmctld slurmd slurm-client slurmdbd libslurm-dev
  munge libmunge-dev libssl-dev libpfm4-dev check libyaml-cpp-dev
  mariadb-server mariadb-client
  dpkg-dev procps psmisc iproute2 python3 ccache
  clang
  # The metrics suite: promtool, a real Prometheus and node_exporter's textfile collector.
  prometheus prometheus-node-exporter
  # The packages' suite (debian/, tests/e2e/test_debian_packages.sh).
  debhelper lintian
)
# libFuzzer comes with clang's runtime package, named after the clang major version the
# distribution's default clang is (Debian 12: 14, Debian 13: 19).
clang_major=$(apt-cache depends clang 2>/dev/null |
  sed -n 's/.*Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n1 || true)
if [ -z "$clang_major" ]; then
  apt-get update -q >/dev/null
  clang_major=$(apt-cache depends clang 2>/dev/null |
    sed -n 's/.*Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n1 || true)
fi
if [ -n "$clang_major" ]; then
  PKGS+=("libclang-rt-$clang_major-dev")
else
  echo "install-deps: cannot tell the clang version of this distribution: fuzz targets will not build" >&2
fi

# Slurm's daemons by name (pgrep -x takes one name of at most 15 characters at a time).
slurm_daemon_pids() {
  local d
  for d in slurmctld slurmd slurmdbd; do pgrep -x "$d" || true; done
}
# Daemons running before the installation are not ours to stop.
pids_before=" $(slurm_daemon_pids | tr '\n' ' ') "

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# Debian's package scripts may try to start daemons; nothing of ours relies on them, and the
# demo/test cluster starts its own under a private folder. When packages were installed,
# stop the daemons that appeared meanwhile, except those of a test cluster (pgcluster marks
# its daemons' environment with PGCLUSTER_OWNER), which may start at any time.
if [ ${#missing[@]} -gt 0 ]; then
  for pid in $(slurm_daemon_pids); do
    case "$pids_before" in *" $pid "*) continue ;; esac
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -q '^PGCLUSTER_OWNER='; then
      continue
    fi
    kill "$pid" 2>/dev/null || true
  done
fi

[ "$want_source" -eq 1 ] || exit 0

SRC_ROOT=${PG_SLURM_SRC:-/var/cache/powergrad/slurm-src}
ver=$(dpkg-query -W -f='${Version}' slurmctld)
stamp="$SRC_ROOT/.powergrad-configured-$ver"
work="$SRC_ROOT/work"
if [ -n "$given_src" ]; then
  # The admin's Slurm source, copied into $work (their tree is left as it is) once it is
  # found good; until then the tree configured before stays. Its version must be the
  # installed one's major.minor; another micro version builds, with a warning.
  new="$SRC_ROOT/work.given"
  rm -rf "$new"
  mkdir -p "$new"
  trap 'rm -rf "$new"' EXIT
  if [ -d "$given_src" ]; then
    echo "install-deps: copying Slurm source from $given_src"
    cp -a "$given_src" "$new/slurm-given"
  else
    echo "install-deps: unpacking Slurm source $given_src"
    tar -C "$new" -xf "$given_src" ||
      { echo "install-deps: cannot unpack $given_src (a Slurm release tarball?)" >&2; exit 1; }
  fi
  srcdir=$(find "$new" -maxdepth 2 -mindepth 1 -type f -name META -printf '%h\n' | head -n1)
  if [ -z "$srcdir" ] || [ ! -x "$srcdir/configure" ] || [ ! -f "$srcdir/src/slurmctld/slurmctld.h" ]; then
    echo "install-deps: $given_src is not a Slurm source tree (no META, configure or src/slurmctld)" >&2
    exit 1
  fi
  meta() { awk -v k="$1:" 'tolower($1) == tolower(k) { print $2; exit }' "$srcdir/META"; }
  src_ver="$(meta Major).$(meta Minor).$(meta Micro)"
  inst_ver=${ver#*:}
  inst_ver=${inst_ver%%-*}
  if [ "${src_ver%.*}" != "$(echo "$inst_ver" | cut -d. -f1,2)" ]; then
    echo "install-deps: $given_src is Slurm $src_ver, but the installed slurmctld is $inst_ver:" \
         "the controller plugin needs the source of Slurm ${inst_ver%.*}" >&2
    exit 1
  fi
  if [ "$src_ver" != "$inst_ver" ]; then
    echo "install-deps: WARNING: $given_src is Slurm $src_ver, the installed slurmctld is" \
         "$inst_ver: the controller plugin is built against $src_ver's internal headers (the" \
         "same release series; configure warns too). Use the source of $inst_ver if you can." >&2
  fi
  rm -rf "$work" "$stamp" "$SRC_ROOT/current"
  mv "$new" "$work"
  trap - EXIT
  srcdir=$work/${srcdir#"$new"/}
  echo "install-deps: Slurm source $src_ver (given) for the installed $ver"
else
  if [ -f "$stamp" ]; then
    echo "install-deps: Slurm source $ver already configured in $SRC_ROOT"
    exit 0
  fi

  echo "install-deps: fetching Slurm source $ver"
  aptdir="$SRC_ROOT/.apt"
  rm -rf "$aptdir"
  mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
  # deb-src twins of the machine's own deb entries (same mirrors, suites, keys).
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -e 's/^Types:.*/Types: deb-src/' "$f" > "$aptdir/sources.list.d/$(basename "$f")"
  done
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$aptdir/sources.list.d/from-sources-list.list" || true
  fi
  cat > "$aptdir/apt.conf" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$aptdir/sources.list.d";
Dir::State::Lists "$aptdir/lists";
Dir::Cache "$aptdir/cache";
CONF
  export APT_CONFIG="$aptdir/apt.conf"
  apt-get update -q
  rm -rf "$work" "$SRC_ROOT/current"
  mkdir -p "$work"
  if ! ( cd "$work" && apt-get source -q --only-source "slurm-wlm=$ver" ); then
    # Some mirrors keep only the upstream tarball of a source package (seen for Debian 13's
    # 24.11.5): take that one file, checked against the hash the source index gives. The
    # upstream tree has the same sources; only Debian's packaging files are missing, and
    # the configure flags below are Debian's.
    echo "install-deps: the full source package is not on the mirror; using its upstream tarball"
    # (in an empty folder: apt leaves out the files it finds already downloaded)
    mkdir -p "$work/.uris"
    line=$(cd "$work/.uris" && apt-get source -q --print-uris --only-source "slurm-wlm=$ver" |
           grep -E "^'[^']*\.orig\.tar\.[a-z0-9]+' " | head -n1)
    if [ -z "$line" ]; then
      echo "install-deps: no upstream tarball of slurm-wlm=$ver in the source index" >&2
      exit 1
    fi
    uri=$(echo "$line" | cut -d"'" -f2)
    file=$(echo "$line" | awk '{print $2}')
    hash=$(echo "$line" | awk '{print $4}')
    want=${hash#SHA256:}
    # apt-get source may have fetched it already before failing on the other files.
    if [ ! -f "$work/$file" ] || [ "$(sha256sum "$work/$file" | cut -d' ' -f1)" != "$want" ]; then
      rm -f "$work/$file"
      /usr/lib/apt/apt-helper download-file "$uri" "$work/$file" "$hash"
    fi
    if [ "$(sha256sum "$work/$file" | cut -d' ' -f1)" != "$want" ]; then
      echo "install-deps: $file does not match the source index's $hash" >&2
      exit 1
    fi
    tar -C "$work" -xf "$work/$file"
  fi
  unset APT_CONFIG
  srcdir=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'slurm-*' | head -n1)
  if [ -z "$srcdir" ]; then
    echo "install-deps: apt-get source slurm-wlm=$ver gave no source tree" >&2
    exit 1
  fi
fi

# Configure with the flags of Debian's rules (debian/rules: dh_auto_configure -- ...), so
# that config.h and the structs of the internal headers match the installed slurmctld.
echo "install-deps: configuring Slurm source in $srcdir"
(
  cd "$srcdir"
  # Debian: dh_auto_configure -- --sysconfdir=/etc/slurm --with-munge --enable-pam
  #   --without-rpath --disable-debug --enable-multiple-slurmd --with-pmix=... (pmix, pam
  #   and the optional libraries only change plugins we do not build, not struct layouts).
  ./configure --build="$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" --prefix=/usr \
    --includedir=/usr/include --mandir=/usr/share/man --infodir=/usr/share/info \
    --sysconfdir=/etc/slurm --localstatedir=/var --runstatedir=/run \
    --libdir="/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)" \
    --with-munge --without-rpath --disable-debug --enable-multiple-slurmd \
    > config.log.powergrad 2>&1 || { tail -30 config.log.powergrad >&2; exit 1; }
)
ln -sfn "$srcdir" "$SRC_ROOT/current"
touch "$stamp"
echo "install-deps: Slurm source ready: $SRC_ROOT/current"
