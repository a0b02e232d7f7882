#!/usr/bin/env bash
# Benchmarks geokeeper against Apache ZooKeeper 3.8 side by side on this machine: installs
# Debian's `zookeeper` package and a JDK (for `java` and `jcmd`) when missing, builds the
# release binary, and runs `geokeeper bench compare` with the arguments given.
#
#   ./scripts/bench-compare.sh                                  # every workload, ~20 min
#   ./scripts/bench-compare.sh --workloads reads-if1,writes-if16 --duration 30s --rounds 3
#   ./scripts/bench-compare.sh --help                           # all options
#
# Results go to stdout: a table (ratio geokeeper / ZooKeeper with each run's raw figure)
# and, last, one JSON line. Both servers' data directories go under --workdir
# (target/bench-compare by default), so they share one disk.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
installed zookeeper || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
# jcmd (ZooKeeper's live heap after a full GC) comes with a JDK, not a JRE.
command -v jcmd >/dev/null 2>&1 || missing+=(default-jdk-headless)
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "cargo build --release"
cargo build --release --quiet

# A thousand watcher sessions, each a socket in the generator and one in each server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec ./target/release/geokeeper bench compare "$@"
