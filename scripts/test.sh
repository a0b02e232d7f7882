#!/usr/bin/env bash
# The project's test command: installs what the tests need (Debian's Apache ZooKeeper
# server, Java CLI and C client; a JRE; a C compiler; kazoo and pure-sasl for python3)
# when missing, then runs the whole workspace's tests in release mode.
#
#   ./scripts/test.sh                           # everything
#   ./scripts/test.sh --test java_zk_harness    # extra args go to cargo test
#   ./scripts/test.sh -- --nocapture            # args after -- go to the test binaries
#
# GEOKEEPER_TEST_THREADS overrides the number of tests run at once in each test binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# --- Debian packages -------------------------------------------------------------------
missing=()
for pkg in zookeeper zookeeper-bin; do
    installed "$pkg" || missing+=("$pkg")
done
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The failed-fsync test builds an LD_PRELOAD shim; the full-disk test mounts a tmpfs.
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v mount >/dev/null 2>&1 || missing+=(mount)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# --- kazoo for python3 -----------------------------------------------------------------
if ! python3 -c 'import kazoo' >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    log "pip install kazoo"
    # Debian's own python3 is "externally managed" (PEP 668); a pyenv or venv one is not.
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore kazoo 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --break-system-packages kazoo
    python3 -c 'import kazoo' || { log "kazoo still not importable by $(command -v python3)"; exit 1; }
fi

# --- pure-sasl for kazoo's SASL (DIGEST-MD5) logins ---------------------------------------
if ! python3 -c 'import puresasl' >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    log "pip install pure-sasl"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore pure-sasl 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --break-system-packages pure-sasl
    python3 -c 'import puresasl' || { log "pure-sasl still not importable by $(command -v python3)"; exit 1; }
fi

# --- tests -----------------------------------------------------------------------------
# Tests start server processes (geokeeper, JVMs): one or two per core keeps timing-sensitive
# tests (session timeouts, watches) honest while using the machine.
cores=$(nproc 2>/dev/null || echo 2)
threads=${GEOKEEPER_TEST_THREADS:-$((cores < 2 ? 2 : (cores > 4 ? 4 : cores)))}

# Split "$@" into cargo's own args and the test binaries' args (after a "--").
cargo_args=()
test_args=()
seen_sep=0
for arg in "$@"; do
    if [ "$seen_sep" = 0 ] && [ "$arg" = "--" ]; then
        seen_sep=1
    elif [ "$seen_sep" = 0 ]; then
        cargo_args+=("$arg")
    else
        test_args+=("$arg")
    fi
done
case " ${test_args[*]-} " in
*" --test-threads"*) ;;
*) test_args=("--test-threads=$threads" "${test_args[@]}") ;;
esac

# --no-fail-fast: one red test binary does not hide how the others fare.
log "cargo test --workspace --release --no-fail-fast ${cargo_args[*]-} -- ${test_args[*]}"
exec cargo test --workspace --release --no-fail-fast "${cargo_args[@]}" -- "${test_args[@]}"
