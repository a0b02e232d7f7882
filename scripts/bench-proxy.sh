#!/usr/bin/env bash
# The per-room client proxy measured (issue 12) at 25 ms one-way between rooms: read and
# write latency through proxy B against a direct connection to its replica, throughput
# and CPU per request, and the failover of a killed replica's sessions; then the proxy in
# front of Apache ZooKeeper 3.8. Installs Debian's ZooKeeper 3.8 and a JRE if missing
# (as scripts/bench-relay.sh does), builds geokeeper and the proxy_bench example in
# release, and runs it; arguments are passed through (see examples/proxy_bench.rs).
#
#   ./scripts/bench-proxy.sh                  # the full run, ~2.5-3 minutes
#   ./scripts/bench-proxy.sh --quick          # ~1 minute, to validate
#   ./scripts/bench-proxy.sh --what failover --sessions 2000 --failover-weights 1000000:1
#   ./scripts/bench-proxy.sh --help
#
# Needs the loopback addresses 127.0.0.110-119 (any free ports on them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
installed zookeeper || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

TARGET=${CARGO_TARGET_DIR:-target}
log "cargo build --release --bin geokeeper --example proxy_bench"
cargo build --release --quiet --bin geokeeper --example proxy_bench
exec "$TARGET/release/examples/proxy_bench" "$@"
