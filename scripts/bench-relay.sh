#!/usr/bin/env bash
# The QUIC relay side by side with a Java observer over the same emulated 25 ms WAN:
# installs Debian's ZooKeeper 3.8 and a JDK if missing, builds geokeeper and the
# relay_bench example, and runs it (see examples/relay_bench.rs for what it measures and
# its RB_* knobs; they are passed through).
#
#   ./scripts/bench-relay.sh                       # the full run, ~10 minutes here
#   RB_QUICK=1 ./scripts/bench-relay.sh            # a few minutes, 100,000 znodes
#   RB_WHAT=standalone ./scripts/bench-relay.sh    # figures 1-4 against a geokeeper leader
#
# Needs the loopback addresses 127.0.0.60-99 (any free ports on them).
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
log "cargo build --release --bin geokeeper --example relay_bench"
cargo build --release --quiet --bin geokeeper --example relay_bench
exec "$TARGET/release/examples/relay_bench"
