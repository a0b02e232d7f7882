#!/usr/bin/env bash
# Two rooms on one machine: a write site (room A) and a remote room (room B) 25 ms away,
# every "host" on a loopback address of its own. Arrows point from the subscriber to what it
# follows over the QUIC relay; the committed transactions flow back along them.
#
#   room A                      the WAN                         room B
#   leader 127.0.0.11:2181 ◄─── wan_link 127.0.0.20:2190 ◄───── observer-b1 127.0.0.21:2181
#     relay udp :2190           udp, 25 ms each way               relay udp :2190
#                                                                       ▲
#                                                                 observer-b2 127.0.0.22:2181
#
# The leader is a standalone geokeeper publishing its committed stream over the QUIC relay;
# b1 follows it through the WAN link and re-publishes to b2 (a room relay). With --zk, room
# A is a 3-participant Apache ZooKeeper 3.8 ensemble (zk-1..3 on 127.0.0.11-13) and a
# geokeeper gateway (127.0.0.14) that joins it as an observer and publishes to b1.
#
# Once every server serves (the observers in sync) it prints one `name=host:port` line per
# client endpoint on stdout (leader, [zk-1..3, gateway,] observer-b1, observer-b2), then
# runs until Ctrl-C / SIGTERM, stops everything it started and exits 0. Progress and
# errors go to stderr; on a failed start it prints the log of what failed and exits 1.
# (Started in the background by another script, SIGINT is ignored on entry and bash cannot
# trap it: stop it with SIGTERM then, or start it with `env --default-signal=INT`.)
#
#   examples/two-rooms/run.sh                 # geokeeper leader in room A
#   examples/two-rooms/run.sh --zk            # Apache ZooKeeper ensemble + gateway in room A
#
# Options:
#   --zk             room A is a Java ZooKeeper ensemble and a gateway (needs java and
#                    Debian's zookeeper package: apt-get install zookeeper)
#   --base-ip IP     hosts are IP+1 (leader or zk-1), +2, +3 (zk-2, zk-3), +4 (gateway),
#                    +10 (room B's end of the WAN link), +11 (b1), +12 (b2);
#                    default 127.0.0.10
#   --port N         client ports N, relay ports N+9, quorum ports N+707, election ports
#                    N+1707; default 2181 (so 2190, 2888, 3888)
#   --delay MS       one-way WAN delay, each direction; default 25
#   --dir DIR        work directory (configurations, certificates, data, logs); created
#                    if missing, must be empty, kept on exit. Default: a temporary
#                    directory, removed on exit unless --keep
#   --keep           keep the temporary work directory
#   --timeout SECS   how long to wait for everything to serve; default 120
#
# Environment: GEOKEEPER_BIN and WAN_LINK_BIN point at prebuilt binaries; without them the
# script runs `cargo build --release --bin geokeeper --example wan_link` (in
# $CARGO_TARGET_DIR, or target/). GEOKEEPER_LOG sets the servers' log level (info).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/rooms.sh
source "$ROOT/examples/lib/rooms.sh"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# The arguments above; host numbers up to +12 are added to --base-ip.
parse_args 12 "$@"

CLIENT_PORT=$PORT
RELAY_PORT=$((PORT + 9))
QUORUM_PORT=$((PORT + 707))
ELECTION_PORT=$((PORT + 1707))
LEADER_IP=$(host 1)
GATEWAY_IP=$(host 4)
WAN_IP=$(host 10)
B1_IP=$(host 11)
B2_IP=$(host 12)
# Node ids: the leader 1 (zk-1..3 are 1..3 and the gateway 4 with --zk), b1 21, b2 22.
B1_ID=21
B2_ID=22
GATEWAY_ID=4

# --- binaries ---------------------------------------------------------------------------
if [ -z "${GEOKEEPER_BIN:-}" ] || [ -z "${WAN_LINK_BIN:-}" ]; then
    log "cargo build --release --bin geokeeper --example wan_link"
    (cd "$ROOT" && cargo build --release --quiet --bin geokeeper --example wan_link) >&2
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    GEOKEEPER_BIN=${GEOKEEPER_BIN:-$TARGET/release/geokeeper}
    WAN_LINK_BIN=${WAN_LINK_BIN:-$TARGET/release/examples/wan_link}
fi
[ -x "$GEOKEEPER_BIN" ] || die "no geokeeper binary at $GEOKEEPER_BIN"
[ -x "$WAN_LINK_BIN" ] || die "no wan_link binary at $WAN_LINK_BIN"
if [ "$ZK" = 1 ]; then
    command -v java >/dev/null 2>&1 || die "--zk needs java (apt-get install default-jre-headless)"
    [ -f /usr/share/java/zookeeper.jar ] || die "--zk needs Debian's ZooKeeper jars (apt-get install zookeeper)"
fi

# TIMEOUT counts from here, not from the start of a build.
SECONDS=0

# --- work directory ---------------------------------------------------------------------
if [ -n "$DIR" ]; then
    mkdir -p "$DIR"
    [ -z "$(ls -A "$DIR")" ] || die "--dir $DIR is not empty"
    DIR=$(cd "$DIR" && pwd)
    KEEP=1
else
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/two-rooms.XXXXXX")
fi

trap on_exit EXIT
# Interrupted once serving: a normal end. Interrupted while starting: 130.
trap 'if [ "$READY" = 1 ]; then log "stopping"; exit 0; else exit 130; fi' INT TERM HUP

# --- certificates -----------------------------------------------------------------------
# A development CA and one key store per relay node; each certificate also names every
# address a peer connects to (b1 reaches its upstream through the WAN link's address).
NODES=(--node "b1=$B1_ID@B" --node "b2=$B2_ID@B")
if [ "$ZK" = 1 ]; then
    NODES+=(--node "gateway=$GATEWAY_ID@A")
else
    NODES+=(--node "leader=1@A")
fi
GEOKEEPER_LOG=warn "$GEOKEEPER_BIN" certs --dir "$DIR/certs" "${NODES[@]}" \
    --host "$LEADER_IP" --host "$GATEWAY_IP" --host "$WAN_IP" --host "$B1_IP" >/dev/null ||
    die "geokeeper certs failed"

# A geokeeper server: DIR/NAME/zoo.cfg from the lines on stdin, its log in
# DIR/NAME/geokeeper.log.
start_geokeeper() { # name ip [myid]
    local name=$1 ip=$2 id=${3:-} d=$DIR/$1
    mkdir -p "$d/data"
    [ -z "$id" ] || echo "$id" >"$d/data/myid"
    {
        printf 'dataDir=%s\nclientPort=%s\nclientPortAddress=%s\n4lw.commands.whitelist=*\n' \
            "$d/data" "$CLIENT_PORT" "$ip"
        cat
    } >"$d/zoo.cfg"
    start "$name" "$d/geokeeper.log" env GEOKEEPER_LOG="${GEOKEEPER_LOG:-info}" NO_COLOR=1 \
        "$GEOKEEPER_BIN" serve --config "$d/zoo.cfg"
}

# --- room A -----------------------------------------------------------------------------
ENDPOINTS=()
if [ "$ZK" = 0 ]; then
    log "room A: geokeeper leader on $LEADER_IP:$CLIENT_PORT, relay on udp $LEADER_IP:$RELAY_PORT"
    start_geokeeper leader "$LEADER_IP" <<EOF
tickTime=2000
relayPort=$RELAY_PORT
relayAddress=$LEADER_IP
relay.subscribers=$B1_ID@B
$(relay_stores leader A)
EOF
    wait_for "the leader" mode_is "$LEADER_IP" standalone
    UPSTREAM_IP=$LEADER_IP
    ENDPOINTS+=("leader=$LEADER_IP:$CLIENT_PORT")
else
    SERVERS=
    for id in 1 2 3; do
        SERVERS+="server.$id=$(host "$id"):$QUORUM_PORT:$ELECTION_PORT"$'\n'
    done
    SERVERS+="server.$GATEWAY_ID=$GATEWAY_IP:$QUORUM_PORT:$ELECTION_PORT:observer"
    mkdir -p "$DIR/log4j"
    cat >"$DIR/log4j/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
EOF
    J=/usr/share/java
    CP="$DIR/log4j:$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/slf4j-log4j12.jar:$J/log4j-1.2.jar"
    log "room A: ZooKeeper ensemble zk-1..3 on $(host 1)-$(host 3):$CLIENT_PORT"
    for id in 1 2 3; do
        d=$DIR/zk-$id
        mkdir -p "$d/data"
        echo "$id" >"$d/data/myid"
        cat >"$d/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$d/data
clientPort=$CLIENT_PORT
clientPortAddress=$(host "$id")
4lw.commands.whitelist=*
admin.enableServer=false
$SERVERS
EOF
        # Small heaps, C1 only and the serial GC: three JVMs start in seconds on 2 cores.
        start "zk-$id" "$d/zookeeper.log" java -Xmx128m -XX:+UseSerialGC \
            -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Djava.awt.headless=true \
            -Dzookeeper.jmx.log4j.disable=true -cp "$CP" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg"
    done
    java_leader() { # sets LEADER_IP
        local id
        for id in 1 2 3; do
            if mode_is "$(host "$id")" leader; then
                LEADER_IP=$(host "$id")
                return 0
            fi
        done
        return 1
    }
    for id in 1 2 3; do
        wait_for "zk-$id to serve" mode_is "$(host "$id")" '\(leader\|follower\)'
    done
    wait_for "the ensemble's leader" java_leader
    log "room A: the ensemble's leader is $LEADER_IP; gateway on $GATEWAY_IP:$CLIENT_PORT, relay on udp $GATEWAY_IP:$RELAY_PORT"
    start_geokeeper gateway "$GATEWAY_IP" "$GATEWAY_ID" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
peerType=observer
$SERVERS
relayPort=$RELAY_PORT
relayAddress=$GATEWAY_IP
relay.subscribers=$B1_ID@B
$(relay_stores gateway A)
EOF
    wait_for "the gateway to sync with the ensemble" synced "$GATEWAY_IP"
    UPSTREAM_IP=$GATEWAY_IP
    ENDPOINTS+=("leader=$LEADER_IP:$CLIENT_PORT")
    for id in 1 2 3; do
        ENDPOINTS+=("zk-$id=$(host "$id"):$CLIENT_PORT")
    done
    ENDPOINTS+=("gateway=$GATEWAY_IP:$CLIENT_PORT")
fi

# --- the WAN ----------------------------------------------------------------------------
log "WAN: udp $WAN_IP:$RELAY_PORT -> $UPSTREAM_IP:$RELAY_PORT, ${DELAY} ms each way"
start wan "$DIR/wan_link.log" "$WAN_LINK_BIN" \
    "udp,listen=$WAN_IP:$RELAY_PORT,to=$UPSTREAM_IP:$RELAY_PORT,delay=$DELAY"
wan_listening() { grep -q '^link ' "$DIR/wan_link.log"; }
wait_for "the WAN link" wan_listening

# --- room B -----------------------------------------------------------------------------
log "room B: observer-b1 on $B1_IP:$CLIENT_PORT following $WAN_IP:$RELAY_PORT, relaying on udp $B1_IP:$RELAY_PORT"
start_geokeeper b1 "$B1_IP" "$B1_ID" <<EOF
tickTime=2000
peerType=observer
relay.upstreams=$WAN_IP:$RELAY_PORT
relayPort=$RELAY_PORT
relayAddress=$B1_IP
relay.subscribers=$B2_ID@B
$(relay_stores b1 B)
EOF
wait_for "observer-b1 to sync" synced "$B1_IP"
log "room B: observer-b2 on $B2_IP:$CLIENT_PORT following b1 at $B1_IP:$RELAY_PORT"
start_geokeeper b2 "$B2_IP" "$B2_ID" <<EOF
tickTime=2000
peerType=observer
relay.upstreams=$B1_IP:$RELAY_PORT
$(relay_stores b2 B)
EOF
wait_for "observer-b2 to sync" synced "$B2_IP"

ENDPOINTS+=("observer-b1=$B1_IP:$CLIENT_PORT" "observer-b2=$B2_IP:$CLIENT_PORT")
printf '%s\n' "${ENDPOINTS[@]}"
READY=1
log "ready (work directory $DIR); Ctrl-C to stop"

# --- run until interrupted ----------------------------------------------------------------
# `wait` returns as soon as a trapped signal arrives, so the trap runs at once.
while :; do
    sleep 1 &
    SLEEPER=$!
    wait "$SLEEPER" || true
    SLEEPER=
    if ! all_running; then
        report
        log "a process exited; stopping the rest"
        exit 1
    fi
done
