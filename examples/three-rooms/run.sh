#!/usr/bin/env bash
# Three rooms on one machine: the write site (room A) and two remote rooms (B and C), each
# 25 ms from the others, every "host" on a loopback address of its own, and one client
# proxy per room. Arrows point from a subscriber to what it follows over the QUIC relay
# (the committed transactions flow back along them); each remote room has one WAN stream.
#
#   room A (write site)          room B                             room C
#   leader .11                   observer-b1 .21 (room relay)       observer-c1 .31
#     leaderServes=no              relay udp :2190                      │
#     relay udp :2190 ◄── WAN ──── ┘        ▲                           │
#           ▲                      observer-b2 .22                      │
#           └──────────────────────────── WAN ──────────────────────────┘
#   proxy-a .15                  proxy-b .25                        proxy-c .35
#
# (.11 is 127.0.0.11 with the default --base-ip.) b2 follows b1 and, once b1 is gone,
# room A directly over room B's WAN link. The leader takes no client sessions
# (leaderServes=no): every proxy lists every server, its own room's first, and learns
# which serve. A proxy's connections to another room's servers cross the WAN too (delayed
# TCP links). With --zk, room A is a 3-participant Apache ZooKeeper 3.8 ensemble (zk-1..3
# on .11-.13, leaderServes=no: its leader takes no clients, its followers do) and a
# geokeeper gateway (.14, leaderServes=no) that joins it as an observer and publishes to
# rooms B and C.
#
# Once every server serves (the observers in sync) and every proxy sees its servers, it
# prints one `name=host:port` line per client endpoint on stdout (leader, [zk-1..3,
# gateway,] proxy-a, proxy-b, proxy-c, observer-b1, observer-b2, observer-c1), then runs
# until Ctrl-C / SIGTERM, stops everything it started and exits 0. A process that dies
# meanwhile (an observer you killed to watch the proxy move its sessions) is reported on
# stderr and the rest keep running. Each process's pid is in DIR/NAME.pid (leader, zk-1..3,
# gateway, wan, b1, b2, c1, proxy-a, proxy-b, proxy-c). Progress and errors go to stderr;
# on a failed start it prints the log of what failed and exits 1. (Started in the
# background by another script, SIGINT is ignored on entry and bash cannot trap it: stop it
# with SIGTERM then, or start it with `env --default-signal=INT`.)
#
#   examples/three-rooms/run.sh               # geokeeper leader in room A
#   examples/three-rooms/run.sh --zk          # Apache ZooKeeper ensemble + gateway in room A
#
# Options:
#   --zk             room A is a Java ZooKeeper ensemble and a gateway (needs java and
#                    Debian's zookeeper package: apt-get install zookeeper)
#   --base-ip IP     hosts are IP+1 (leader or zk-1), +2, +3 (zk-2, zk-3), +4 (gateway),
#                    +5 (proxy-a), +6 (room A's end of the WAN); +10 (room B's end of
#                    the WAN), +11 (b1), +12 (b2), +15 (proxy-b); +20 (room C's end of
#                    the WAN), +21 (c1), +25 (proxy-c); default 127.0.0.10
#   --port N         client ports N (servers and proxies), relay ports N+9, the WAN's
#                    links to client ports N+100+k (k: the target's +k above),
#                    quorum ports N+707, election ports N+1707; default 2181
#   --delay MS       one-way WAN delay between any two rooms, each direction; default 25
#   --dir DIR        work directory (configurations, certificates, data, logs, pid files);
#                    created if missing, must be empty, kept on exit. Default: a temporary
#                    directory, removed on exit unless --keep
#   --keep           keep the temporary work directory
#   --timeout SECS   how long to wait for everything to serve; default 120
#
# Environment: GEOKEEPER_BIN and WAN_LINK_BIN point at prebuilt binaries; without them the
# script runs `cargo build --release --bin geokeeper --example wan_link` (in
# $CARGO_TARGET_DIR, or target/). GEOKEEPER_LOG sets the servers' and proxies' log level
# (info).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/rooms.sh
source "$ROOT/examples/lib/rooms.sh"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# The arguments above; host numbers up to +25 are added to --base-ip.
parse_args 25 "$@"

CLIENT_PORT=$PORT
RELAY_PORT=$((PORT + 9))
QUORUM_PORT=$((PORT + 707))
ELECTION_PORT=$((PORT + 1707))
# Host numbers (added to --base-ip).
N_LEADER=1
N_GATEWAY=4
N_PROXY_A=5
N_WAN_A=6
N_WAN_B=10
N_B1=11
N_B2=12
N_PROXY_B=15
N_WAN_C=20
N_C1=21
N_PROXY_C=25
LEADER_IP=$(host $N_LEADER)
GATEWAY_IP=$(host $N_GATEWAY)
B1_IP=$(host $N_B1)
B2_IP=$(host $N_B2)
C1_IP=$(host $N_C1)
WAN_B_IP=$(host $N_WAN_B)
WAN_C_IP=$(host $N_WAN_C)
# Node ids: the leader 1 (zk-1..3 are 1..3 and the gateway 4 with --zk), b1 21, b2 22,
# c1 31.
B1_ID=21
B2_ID=22
C1_ID=31
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
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/three-rooms.XXXXXX")
fi

trap on_exit EXIT
# Interrupted once serving: a normal end. Interrupted while starting: 130.
trap 'if [ "$READY" = 1 ]; then log "stopping"; exit 0; else exit 130; fi' INT TERM HUP

# --- certificates -----------------------------------------------------------------------
# A development CA and one key store per relay node; each certificate also names every
# address a peer connects to (b1, b2 and c1 reach room A through their WAN links'
# addresses, b2 reaches b1 directly).
NODES=(--node "b1=$B1_ID@B" --node "b2=$B2_ID@B" --node "c1=$C1_ID@C")
if [ "$ZK" = 1 ]; then
    NODES+=(--node "gateway=$GATEWAY_ID@A")
else
    NODES+=(--node "leader=1@A")
fi
GEOKEEPER_LOG=warn "$GEOKEEPER_BIN" certs --dir "$DIR/certs" "${NODES[@]}" \
    --host "$LEADER_IP" --host "$GATEWAY_IP" --host "$WAN_B_IP" --host "$WAN_C_IP" \
    --host "$B1_IP" >/dev/null ||
    die "geokeeper certs failed"

# A geokeeper server: DIR/NAME/zoo.cfg from the lines on stdin, its log in
# DIR/NAME/geokeeper.log. Behind a proxy every session comes from the proxy's address (or
# the WAN link's): no per-address connection limit.
start_geokeeper() { # name ip [myid]
    local name=$1 ip=$2 id=${3:-} d=$DIR/$1
    mkdir -p "$d/data"
    [ -z "$id" ] || echo "$id" >"$d/data/myid"
    {
        printf 'dataDir=%s\nclientPort=%s\nclientPortAddress=%s\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n' \
            "$d/data" "$CLIENT_PORT" "$ip"
        cat
    } >"$d/zoo.cfg"
    start "$name" "$d/geokeeper.log" env GEOKEEPER_LOG="${GEOKEEPER_LOG:-info}" NO_COLOR=1 \
        "$GEOKEEPER_BIN" serve --config "$d/zoo.cfg"
}

# --- room A -----------------------------------------------------------------------------
ENDPOINTS=()
SUBSCRIBERS="$B1_ID@B,$B2_ID@B,$C1_ID@C"
if [ "$ZK" = 0 ]; then
    log "room A: geokeeper leader on $LEADER_IP:$CLIENT_PORT (leaderServes=no), relay on udp $LEADER_IP:$RELAY_PORT"
    start_geokeeper leader "$LEADER_IP" <<EOF
tickTime=2000
leaderServes=no
relayPort=$RELAY_PORT
relayAddress=$LEADER_IP
relay.subscribers=$SUBSCRIBERS
$(relay_stores leader A)
EOF
    wait_for "the leader" state_is "$LEADER_IP" standalone
    UPSTREAM_IP=$LEADER_IP
    ROOM_A_HOSTS=($N_LEADER)
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
    log "room A: ZooKeeper ensemble zk-1..3 on $(host 1)-$(host 3):$CLIENT_PORT (leaderServes=no)"
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
maxClientCnxns=0
leaderServes=no
$SERVERS
EOF
        # Small heaps, C1 only and the serial GC: three JVMs start in seconds on 2 cores.
        start "zk-$id" "$d/zookeeper.log" java -Xmx128m -XX:+UseSerialGC \
            -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Djava.awt.headless=true \
            -Dzookeeper.jmx.log4j.disable=true -cp "$CP" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg"
    done
    # The leader takes no clients, so its srvr says it is not serving: it is the one of
    # the three that is not a follower once two are.
    java_leader() { # sets LEADER_IP
        local id followers=0 other=
        for id in 1 2 3; do
            if mode_is "$(host "$id")" follower; then
                followers=$((followers + 1))
            else
                other=$(host "$id")
            fi
        done
        [ "$followers" = 2 ] && not_serving "$other" || return 1
        LEADER_IP=$other
    }
    wait_for "the ensemble's leader and two followers" java_leader
    log "room A: the ensemble's leader is $LEADER_IP; gateway on $GATEWAY_IP:$CLIENT_PORT (leaderServes=no), relay on udp $GATEWAY_IP:$RELAY_PORT"
    start_geokeeper gateway "$GATEWAY_IP" "$GATEWAY_ID" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
peerType=observer
leaderServes=no
$SERVERS
relayPort=$RELAY_PORT
relayAddress=$GATEWAY_IP
relay.subscribers=$SUBSCRIBERS
$(relay_stores gateway A)
EOF
    wait_for "the gateway to sync with the ensemble" synced "$GATEWAY_IP"
    UPSTREAM_IP=$GATEWAY_IP
    ROOM_A_HOSTS=(1 2 3 $N_GATEWAY)
    ENDPOINTS+=("leader=$LEADER_IP:$CLIENT_PORT")
    for id in 1 2 3; do
        ENDPOINTS+=("zk-$id=$(host "$id"):$CLIENT_PORT")
    done
    ENDPOINTS+=("gateway=$GATEWAY_IP:$CLIENT_PORT")
fi

# --- the WAN ----------------------------------------------------------------------------
# One wan_link process carries every path between rooms, each delayed DELAY ms each way:
# the relay's two WAN streams (udp, room B's and room C's end to room A's publisher), and
# the proxies' client connections to other rooms' servers (tcp: the link to host k as seen
# from room R listens on R's end of the WAN, port N+100+k).
WAN_SPECS=(
    "udp,listen=$WAN_B_IP:$RELAY_PORT,to=$UPSTREAM_IP:$RELAY_PORT,delay=$DELAY"
    "udp,listen=$WAN_C_IP:$RELAY_PORT,to=$UPSTREAM_IP:$RELAY_PORT,delay=$DELAY"
)
declare -A WAN_END=([A]=$N_WAN_A [B]=$N_WAN_B [C]=$N_WAN_C)
ROOM_HOSTS_A=("${ROOM_A_HOSTS[@]}")
ROOM_HOSTS_B=($N_B1 $N_B2)
ROOM_HOSTS_C=($N_C1)
# A proxy's upstreams: every server, its own room's first (the proxy learns which take
# clients). prefer_rooms says where sessions go while its own room has none serving: room
# A first, where it has servers that serve (a write there is local to the leader).
declare -A UPSTREAMS
for room in A B C; do
    UPSTREAMS[$room]=
    for r in "$room" A B C; do
        [ "$r" != "$room" ] || [ -z "${UPSTREAMS[$room]}" ] || continue
        hosts=ROOM_HOSTS_$r[@]
        for k in "${!hosts}"; do
            if [ "$r" = "$room" ]; then
                addr=$(host "$k"):$CLIENT_PORT
            else
                addr=$(host "${WAN_END[$room]}"):$((CLIENT_PORT + 100 + k))
                WAN_SPECS+=("tcp,listen=$addr,to=$(host "$k"):$CLIENT_PORT,delay=$DELAY")
            fi
            UPSTREAMS[$room]+="  { address = \"$addr\", room = \"$r\", weight = 10 },"$'\n'
        done
    done
done
log "WAN: ${#WAN_SPECS[@]} links, ${DELAY} ms each way: udp $WAN_B_IP:$RELAY_PORT and $WAN_C_IP:$RELAY_PORT -> $UPSTREAM_IP:$RELAY_PORT, tcp from each room's end to the client ports of the others"
start wan "$DIR/wan_link.log" "$WAN_LINK_BIN" "${WAN_SPECS[@]}"
# (The log appears once the child has started: until then, no file is no link.)
wan_listening() { [ "$(grep -c '^link ' "$DIR/wan_link.log" 2>/dev/null)" = "${#WAN_SPECS[@]}" ]; }
wait_for "the WAN links" wan_listening

# --- rooms B and C ----------------------------------------------------------------------
log "room B: observer-b1 on $B1_IP:$CLIENT_PORT following $WAN_B_IP:$RELAY_PORT, relaying on udp $B1_IP:$RELAY_PORT"
start_geokeeper b1 "$B1_IP" "$B1_ID" <<EOF
tickTime=2000
peerType=observer
relay.upstreams=$WAN_B_IP:$RELAY_PORT;room=A
relayPort=$RELAY_PORT
relayAddress=$B1_IP
relay.subscribers=$B2_ID@B
$(relay_stores b1 B)
EOF
log "room C: observer-c1 on $C1_IP:$CLIENT_PORT following $WAN_C_IP:$RELAY_PORT"
start_geokeeper c1 "$C1_IP" "$C1_ID" <<EOF
tickTime=2000
peerType=observer
relay.upstreams=$WAN_C_IP:$RELAY_PORT;room=A
$(relay_stores c1 C)
EOF
wait_for "observer-b1 to sync" synced "$B1_IP"
log "room B: observer-b2 on $B2_IP:$CLIENT_PORT following b1 at $B1_IP:$RELAY_PORT (room A through $WAN_B_IP:$RELAY_PORT without it)"
start_geokeeper b2 "$B2_IP" "$B2_ID" <<EOF
tickTime=2000
peerType=observer
relay.upstreams=$B1_IP:$RELAY_PORT;room=B,$WAN_B_IP:$RELAY_PORT;room=A
$(relay_stores b2 B)
EOF
wait_for "observer-c1 to sync" synced "$C1_IP"
wait_for "observer-b2 to sync" synced "$B2_IP"

# --- the proxies ------------------------------------------------------------------------
declare -A PROXY_N=([A]=$N_PROXY_A [B]=$N_PROXY_B [C]=$N_PROXY_C)
declare -A PREFER=([A]='"B", "C"' [B]='"A", "C"' [C]='"A", "B"')
for room in A B C; do
    name=proxy-${room,,}
    ip=$(host "${PROXY_N[$room]}")
    d=$DIR/$name
    mkdir -p "$d"
    cat >"$d/proxy.toml" <<EOF
[server]
client_port = $CLIENT_PORT
client_address = "$ip"
room = "$room"

[proxy]
upstreams = [
${UPSTREAMS[$room]}]
prefer_rooms = [${PREFER[$room]}]
EOF
    log "room $room: $name on $ip:$CLIENT_PORT"
    start "$name" "$d/proxy.log" env GEOKEEPER_LOG="${GEOKEEPER_LOG:-info}" NO_COLOR=1 \
        "$GEOKEEPER_BIN" proxy --config "$d/proxy.toml"
done
# Every server that takes clients, healthy to every proxy: all but the leader (and with
# --zk, the gateway).
SERVING=$((${#ROOM_HOSTS_A[@]} + 3 - 1 - ZK))
for room in A B C; do
    wait_for "proxy-${room,,} to see $SERVING serving upstreams" \
        healthy_upstreams "$(host "${PROXY_N[$room]}")" "$SERVING"
done

ENDPOINTS+=(
    "proxy-a=$(host $N_PROXY_A):$CLIENT_PORT"
    "proxy-b=$(host $N_PROXY_B):$CLIENT_PORT"
    "proxy-c=$(host $N_PROXY_C):$CLIENT_PORT"
    "observer-b1=$B1_IP:$CLIENT_PORT"
    "observer-b2=$B2_IP:$CLIENT_PORT"
    "observer-c1=$C1_IP:$CLIENT_PORT"
)
printf '%s\n' "${ENDPOINTS[@]}"
READY=1
log "ready (work directory $DIR); Ctrl-C to stop"

# --- run until interrupted ----------------------------------------------------------------
# `wait` returns as soon as a trapped signal arrives, so the trap runs at once. A child
# that exits is reported once; the others keep running (killing an observer is part of
# the walk-through).
while :; do
    sleep 1 &
    SLEEPER=$!
    wait "$SLEEPER" || true
    SLEEPER=
    for i in "${!PIDS[@]}"; do
        if [ "${GONE[i]}" = 0 ] && ! kill -0 "${PIDS[i]}" 2>/dev/null; then
            GONE[i]=1
            log "${NAMES[i]} (pid ${PIDS[i]}) exited; the rest keep running (its log: ${LOGS[i]})"
        fi
    done
done
