#!/usr/bin/env bash
# The gateway side by side with a Java observer of the same Apache ZooKeeper 3.8 ensemble,
# on this machine: three participants and a Java observer started with `java -cp` from
# Debian's jars, and a geokeeper gateway following the same leader. Each figure is measured
# on both observers, alternating (Java, geokeeper) for --rounds rounds, with
# `geokeeper bench` (the same load generator, the same op mix, --server-pid for the server's
# CPU per operation). Then the SNAP join: ZNODES znodes are written through the leader, and
# each observer is started alone on an empty data directory and timed to in-sync; its
# memory then (the Java observer's live heap after a full GC, the gateway's whole resident
# set).
#
#   ./scripts/bench-gateway.sh                    # 2 rounds x 10 s, 1,000,000 znodes
#   ROUNDS=1 DURATION=5s ZNODES=100000 ./scripts/bench-gateway.sh
#
# Needs the loopback addresses 127.0.0.21-25 with ports 2181, 2888 and 3888 free.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ZNODES=${ZNODES:-1000000}
WORK=${WORK:-target/bench-gateway}

log() { printf '==> %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
installed zookeeper || missing+=(zookeeper)
command -v jcmd >/dev/null 2>&1 || missing+=(default-jdk-headless)
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "cargo build --release"
cargo build --release --quiet
GK=$PWD/target/release/geokeeper

rm -rf "$WORK"
mkdir -p "$WORK/log4j"
WORK=$(realpath "$WORK")
cat >"$WORK/log4j/log4j.properties" <<'EOF'
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
EOF
J=/usr/share/java
CP="$WORK/log4j:$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/slf4j-log4j12.jar:$J/log4j-1.2.jar"
# The measured observer gets what `bench compare` gives ZooKeeper (G1, a 4 GiB heap); the
# participants, which only carry the writes, 1 GiB each.
JFLAGS=(-Xshare:auto -XX:-UsePerfData -Djava.awt.headless=true -Dzookeeper.jmx.log4j.disable=true -XX:+UseG1GC)

SERVERS="server.1=127.0.0.21:2888:3888
server.2=127.0.0.22:2888:3888
server.3=127.0.0.23:2888:3888
server.4=127.0.0.24:2888:3888:observer"
LEADER_CANDIDATES=(127.0.0.21 127.0.0.22 127.0.0.23)
OBS=127.0.0.24
GW=127.0.0.25
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

four() { # four-letter word $2 at $1:2181
    exec 3<>"/dev/tcp/$1/2181" || return 1
    printf '%s' "$2" >&3
    cat <&3
    exec 3<&-
}

start_java() { # id heap [extra cfg]
    local id=$1 heap=$2 extra=${3:-}
    local d=$WORK/zk$id ip=127.0.0.$((20 + id))
    mkdir -p "$d/data"
    echo "$id" >"$d/data/myid"
    printf 'tickTime=2000\ninitLimit=30\nsyncLimit=5\ndataDir=%s\nclientPort=2181\nclientPortAddress=%s\n4lw.commands.whitelist=*\nadmin.enableServer=false\n%s\n%s\n' \
        "$d/data" "$ip" "$SERVERS" "$extra" >"$d/zoo.cfg"
    java "${JFLAGS[@]}" "-Xmx$heap" -cp "$CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >"$d/out.log" 2>&1 &
    echo $!
}

start_gateway() {
    local d=$WORK/gw
    mkdir -p "$d/data"
    echo 5 >"$d/data/myid"
    printf 'tickTime=2000\ninitLimit=30\nsyncLimit=5\npeerType=observer\ndataDir=%s\nclientPort=2181\nclientPortAddress=%s\n4lw.commands.whitelist=*\n%s\nserver.5=%s:2888:3888:observer\n' \
        "$d/data" "$GW" "$SERVERS" "$GW" >"$d/zoo.cfg"
    GEOKEEPER_LOG=warn "$GK" serve -c "$d/zoo.cfg" >"$d/out.log" 2>&1 &
    echo $!
}

wait_until() { # seconds, command...
    local until=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$until" ] || { log "timed out: $*"; return 1; }
        sleep 0.05
    done
}
java_observing() { four $OBS srvr | grep -q 'Mode: observer'; }
gateway_synced() { four $GW mntr | grep -q 'zk_observer_synced	1'; }
leader() { for ip in "${LEADER_CANDIDATES[@]}"; do four "$ip" srvr 2>/dev/null | grep -q 'Mode: leader' && { echo "$ip"; return; }; done; return 1; }

log "starting the ensemble (3 participants), a Java observer and the gateway"
for id in 1 2 3; do PIDS+=("$(start_java $id 1g)"); done
wait_until 120 leader
LEADER=$(leader)
OBS_PID=$(start_java 4 4g peerType=observer)
PIDS+=("$OBS_PID")
GW_PID=$(start_gateway)
PIDS+=("$GW_PID")
wait_until 120 java_observing
wait_until 120 gateway_synced

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# The keys, once, through the leader.
"$GK" bench --hosts "$LEADER:2181" --mix get=1 --duration 1s --warmup 0s >/dev/null 2>&1
sleep 1
for round in $(seq 1 "$ROUNDS"); do
    for w in "reads-if1:--mix get=1 --in-flight 1" "reads-if16:--mix get=1 --in-flight 16" "writes-if1:--mix set=1 --in-flight 1"; do
        label=${w%%:*}
        # shellcheck disable=SC2086
        set -- ${w#*:}
        log "round $round: $label on the Java observer"
        line=$("$GK" bench --hosts "$OBS:2181" --server-pid "$OBS_PID" --no-prepare --warmup "$WARMUP" --duration "$DURATION" "$@" 2>/dev/null | tail -1)
        printf '{"label":"%s","server":"java","run":%s}\n' "$label" "$line" >>"$RESULTS"
        log "round $round: $label on the gateway"
        line=$("$GK" bench --hosts "$GW:2181" --server-pid "$GW_PID" --no-prepare --warmup "$WARMUP" --duration "$DURATION" "$@" 2>/dev/null | tail -1)
        printf '{"label":"%s","server":"gateway","run":%s}\n' "$label" "$line" >>"$RESULTS"
    done
done

log "writing $ZNODES znodes of 100 B through the leader"
"$GK" bench populate --hosts "$LEADER:2181" --count "$ZNODES" --value-size 100 >"$WORK/populate.log" 2>&1
kill -9 "$OBS_PID" "$GW_PID" 2>/dev/null || true
wait "$OBS_PID" "$GW_PID" 2>/dev/null || true
rm -rf "$WORK/zk4" "$WORK/gw"

log "the Java observer joins (SNAP of $ZNODES znodes)"
t0=$(date +%s.%N)
OBS_PID=$(start_java 4 4g peerType=observer)
PIDS+=("$OBS_PID")
wait_until 600 java_observing
t1=$(date +%s.%N)
jcmd "$OBS_PID" GC.run >/dev/null
JAVA_HEAP=$(jcmd "$OBS_PID" GC.heap_info | sed -n 's/.*used \([0-9]*\)K.*/\1/p' | head -1)
JAVA_NODES=$(four $OBS srvr | sed -n 's/Node count: //p')
kill -9 "$OBS_PID"
wait "$OBS_PID" 2>/dev/null || true

log "the gateway joins (SNAP of $ZNODES znodes)"
t2=$(date +%s.%N)
GW_PID=$(start_gateway)
PIDS+=("$GW_PID")
wait_until 600 gateway_synced
t3=$(date +%s.%N)
GW_RSS=$(sed -n 's/VmRSS:[^0-9]*\([0-9]*\) kB/\1/p' "/proc/$GW_PID/status")
GW_NODES=$(four $GW srvr | sed -n 's/Node count: //p')
GW_SYNC_MS=$(four $GW mntr | sed -n 's/zk_observer_sync_time_ms\t//p')

python3 - "$RESULTS" "$t0" "$t1" "$t2" "$t3" "$JAVA_HEAP" "$GW_RSS" "$JAVA_NODES" "$GW_NODES" "$GW_SYNC_MS" "$ROUNDS" "$DURATION" <<'EOF'
import json, sys
path, t0, t1, t2, t3, jheap, grss, jn, gn, gsync, rounds, dur = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
def mean(label, server, f):
    xs = [f(r["run"]) for r in runs if r["label"] == label and r["server"] == server]
    return sum(xs) / len(xs)
op = {"reads-if1": "get", "reads-if16": "get", "writes-if1": "set"}
print(f"gateway vs Java observer, {rounds} rounds x {dur}, 32 sessions, 100 B values, 1,000 keys (means)")
print("| workload | figure | Java observer | gateway | ratio | goal |")
print("|---|---|---|---|---|---|")
for label, goals in [("reads-if1", (">=2", "<=0.5", "<=0.3")), ("reads-if16", (">=2", "<=0.5", "<=0.3")), ("writes-if1", ("", "<=1", ""))]:
    o = op[label]
    rows = [
        ("ops/s", lambda r: r["ops_per_s"], "{:,.0f}", goals[0]),
        ("p99", lambda r: r["by_op"][o]["p99_us"], "{:,.0f} µs", goals[1]),
        ("server CPU s / 1k ops", lambda r: r["server_cpu_s_per_1k_ops"], "{:.4f}", goals[2]),
    ]
    for name, f, fmt, goal in rows:
        j, g = mean(label, "java", f), mean(label, "gateway", f)
        print(f"| {label} | {name} | {fmt.format(j)} | {fmt.format(g)} | {g / j:.2f} | {goal} |")
js, gs = float(t1) - float(t0), float(t3) - float(t2)
print(f"| SNAP join, {jn} / {gn} nodes | start to in sync | {js:.2f} s | {gs:.2f} s (sync itself {gsync} ms) | {gs / js:.2f} | <=0.5 |")
print(f"| | memory | {int(jheap) / 1024:,.0f} MiB live heap | {int(grss) / 1024:,.0f} MiB resident | {int(grss) / int(jheap):.2f} | <=0.5 |")
EOF
