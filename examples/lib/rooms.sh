# Shell helpers shared by examples/two-rooms/run.sh and examples/three-rooms/run.sh
# (sourced, not run): logging, the children's registry (each in a session of its own,
# stopped last-started-first), four-letter words, waiting with a deadline, and the relay
# PEM lines of a node. The scripts set DIR, KEEP, TIMEOUT and CLIENT_PORT before they use
# them.

# --- processes --------------------------------------------------------------------------
# Each child runs in a session of its own (setsid), so a Ctrl-C in the terminal reaches
# only the script, which stops them in order; its pid is its process group's id, and is
# written to DIR/NAME.pid.
PIDS=()
NAMES=()
LOGS=()
GONE=() # 1 once a child's exit has been reported
READY=0
SLEEPER=

log() { printf '==> %s\n' "$*" >&2; }

die() {
    log "$*"
    exit 1
}

number() { [[ $1 =~ ^[0-9]+$ ]] || die "$2: not a number: $1"; }

# The room scripts' arguments (see their headers), checked: sets ZK, BASE_IP, PORT, DELAY,
# DIR, KEEP, TIMEOUT and IP1..IP4 (the --base-ip octets). $1 is the highest number the
# script adds to the last octet (see `host`); the rest are the script's arguments. Help
# and mistakes go to the script's own `usage`.
parse_args() {
    local top=$1
    shift
    ZK=0 BASE_IP=127.0.0.10 PORT=2181 DELAY=25 DIR= KEEP=0 TIMEOUT=120
    while [ $# -gt 0 ]; do
        case $1 in
        --zk) ZK=1 ;;
        --base-ip) BASE_IP=${2:?--base-ip needs an address}; shift ;;
        --port) PORT=${2:?--port needs a number}; shift ;;
        --delay) DELAY=${2:?--delay needs milliseconds}; shift ;;
        --dir) DIR=${2:?--dir needs a directory}; shift ;;
        --keep) KEEP=1 ;;
        --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift ;;
        -h | --help) usage 0 ;;
        *) log "unknown argument: $1"; usage ;;
        esac
        shift
    done
    number "$PORT" --port
    number "$DELAY" --delay
    number "$TIMEOUT" --timeout
    [ "$PORT" -ge 1 ] && [ $((PORT + 1707)) -le 65535 ] || die "--port must be in 1..$((65535 - 1707))"
    IFS=. read -r IP1 IP2 IP3 IP4 <<<"$BASE_IP"
    local o
    for o in "$IP1" "$IP2" "$IP3" "$IP4"; do
        [[ $o =~ ^[0-9]+$ ]] && [ "$o" -le 255 ] || die "--base-ip: not an IPv4 address: $BASE_IP"
    done
    [ "$IP4" -le $((254 - top)) ] ||
        die "--base-ip: its last number must leave room for +$top (at most $((254 - top)))"
}

# The address of host number $1 (added to the last octet of --base-ip).
host() { printf '%s.%s.%s.%s' "$IP1" "$IP2" "$IP3" $((IP4 + $1)); }

start() { # name log command...
    local name=$1 out=$2
    shift 2
    setsid "$@" </dev/null >"$out" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
    LOGS+=("$out")
    GONE+=(0)
    echo "$!" >"$DIR/$name.pid"
}

stop_all() {
    local i p deadline
    [ -z "$SLEEPER" ] || kill "$SLEEPER" 2>/dev/null || true
    # The last started first (proxies, then the remote rooms, then the WAN, then room A):
    # nothing is left following a dead upstream.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM -- "-${PIDS[i]}" 2>/dev/null || kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        p=${PIDS[i]}
        while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$p" 2>/dev/null; then
            log "${NAMES[i]} did not stop on SIGTERM: SIGKILL"
        fi
        # Whatever is left of its group (a JVM's children, a process stuck in shutdown).
        kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}

on_exit() {
    local rc=$?
    # A second Ctrl-C must not cut the stopping short and leave servers behind.
    trap - EXIT
    trap '' INT TERM HUP
    stop_all
    if [ "$KEEP" = 1 ]; then
        log "kept $DIR"
    else
        [ -z "$DIR" ] || rm -rf "$DIR"
    fi
    exit "$rc"
}

# The log tail of every child that is not running any more (or of all, with "all").
report() {
    local i
    for i in "${!PIDS[@]}"; do
        if [ "${1:-}" = all ] || ! kill -0 "${PIDS[i]}" 2>/dev/null; then
            log "${NAMES[i]}: ${LOGS[i]} (last 40 lines):"
            tail -n 40 "${LOGS[i]}" >&2 || true
        fi
    done
}

all_running() {
    local i
    for i in "${!PIDS[@]}"; do
        kill -0 "${PIDS[i]}" 2>/dev/null || return 1
    done
}

# A four-letter word's answer (the server closes the connection after it).
four() { # host word [port]
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf %s "$3" >&3 && cat <&3' \
        _ "$1" "${3:-$CLIENT_PORT}" "$2" 2>/dev/null
}

# Polls `what` (a function) until it succeeds; gives up with the logs when a child has
# exited or after TIMEOUT seconds from the start.
wait_for() { # description function args...
    local what=$1
    shift
    until "$@"; do
        if ! all_running; then
            report
            die "a process exited while waiting for $what"
        fi
        if [ "$SECONDS" -ge "$TIMEOUT" ]; then
            report all
            die "timed out after ${TIMEOUT}s waiting for $what"
        fi
        sleep 0.2
    done
}

# grep reads all of the answer (no -q): with pipefail, a `four` cut short by SIGPIPE
# would count as a failed probe.
synced() { four "$1" mntr | grep "^zk_observer_synced[[:space:]]1\$" >/dev/null; }

mode_is() { four "$1" srvr | grep "^Mode: $2\$" >/dev/null; }

not_serving() { four "$1" srvr | grep "not currently serving" >/dev/null; }

state_is() { four "$1" mntr | grep "^zk_server_state[[:space:]]$2\$" >/dev/null; }

healthy_upstreams() { # proxy-host n
    four "$1" mntr | grep "^zk_proxy_upstreams_healthy[[:space:]]$2\$" >/dev/null
}

# A node's room and relay PEM files (geokeeper certs puts key and chain in one file,
# which serves as both).
relay_stores() { # node-name room
    printf 'room=%s\nrelay.ssl.cert=%s\nrelay.ssl.key=%s\nrelay.ssl.ca=%s\n' \
        "$2" "$DIR/certs/$1.pem" "$DIR/certs/$1.pem" "$DIR/certs/ca.pem"
}
