#!/usr/bin/env python3
"""Run a list of kazoo operations against one ZooKeeper server and print JSON results.

Usage: kazoo_run.py HOST:PORT [CLIENT_OPTIONS_JSON] < ops.json

CLIENT_OPTIONS_JSON, when given, is a JSON object of KazooClient keyword arguments
(sasl_options, auth_data as [[scheme, credential], ...]); the output then starts with
{"start": STATE}, STATE being "CONNECTED" or the KeeperState the connection attempt ended
in ("AUTH_FAILED" for a refused SASL login), and no operation runs unless connected.

Input: a JSON list of operations, e.g.
  [{"op": "create", "path": "/a", "data": "x", "ephemeral": false, "sequence": false,
    "makepath": false},
   {"op": "get", "path": "/a"}, {"op": "set", "path": "/a", "data": "y", "version": -1},
   {"op": "children", "path": "/"}, {"op": "exists", "path": "/a"},
   {"op": "delete", "path": "/a", "version": -1, "recursive": false},
   {"op": "watch", "path": "/a", "kind": "data"},   # kind: data | children | exists
   {"op": "events", "count": 1, "timeout": 5},     # wait for N watch events, return all
   {"op": "sync", "path": "/"},
   {"op": "server_version"},                       # KazooClient.server_version() (reads envi)
   {"op": "command", "cmd": "ruok"},               # KazooClient.command(b"ruok")
   {"op": "multi", "ops": [{"op": "create", ...}, {"op": "set", ...},
                           {"op": "delete", ...}, {"op": "check", "path": ..., "version": 0}]},
   {"op": "create", "path": "/a", "acl": [[31, "sasl", "bob"]]},   # ACL: [perms, scheme, id]
   {"op": "get_acls", "path": "/a"},           # -> {"acl": [[perms, scheme, id]...], "aversion": n}
                                               #    ("sort": true sorts the entries)
   {"op": "set_acls", "path": "/a", "acl": [[1, "world", "anyone"]], "version": -1},
   {"op": "add_auth", "scheme": "digest", "credential": "bob:pw"},
   {"op": "whoami"}]                           # -> sorted [[scheme, user], ...]

Output: a JSON list with one entry per operation: {"ok": RESULT} or {"error": "NoNodeError"}.
Stats keep only what does not depend on the server's clock, zxids or session ids:
version, cversion, aversion, dataLength, numChildren, ephemeral (bool). Children are
sorted unless "sort": false. Data is decoded as UTF-8 (with replacement).
"""
import json
import signal
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.protocol.serialization import int_struct, read_string
from kazoo.protocol.states import KeeperState
from kazoo.security import ACL, Id


class WhoAmI:
    """ZooKeeper 3.7+'s whoAmI request (opcode 107), which kazoo has no call for. (Not an
    empty namedtuple: kazoo skips the response of a request object that is falsy.)"""

    type = 107

    def serialize(self):
        return bytearray()

    @classmethod
    def deserialize(cls, bytes, offset):
        count = int_struct.unpack_from(bytes, offset)[0]
        offset += int_struct.size
        infos = []
        for _ in range(max(count, 0)):
            scheme, offset = read_string(bytes, offset)
            user, offset = read_string(bytes, offset)
            infos.append([scheme, user])
        return infos


def acl_list(items):
    return [ACL(perms, Id(scheme, ident)) for perms, scheme, ident in items]


def stat_json(stat):
    if stat is None:
        return None
    return {
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "dataLength": stat.dataLength,
        "numChildren": stat.numChildren,
        "ephemeral": stat.ephemeralOwner != 0,
    }


def multi_result(r):
    if isinstance(r, Exception):
        return {"error": type(r).__name__}
    if hasattr(r, "czxid"):
        return stat_json(r)
    return r


def data_bytes(op):
    return op.get("data", "").encode()


def main():
    signal.alarm(120)  # never hang a test run
    hosts = sys.argv[1]
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    ops = json.load(sys.stdin)
    if options is None:
        zk = KazooClient(hosts=hosts, timeout=10.0)
        zk.start(timeout=15)
        results = []
    else:
        if "auth_data" in options:
            options["auth_data"] = [tuple(a) for a in options["auth_data"]]
        zk = KazooClient(hosts=hosts, timeout=10.0, **options)
        # kazoo reports CONNECTED before its SASL exchange and `start` would wait out its
        # whole timeout after a refused login, so the states the connection goes through
        # are recorded, and a first request (sent only once the exchange succeeded) settles
        # the outcome.
        states = []
        session_callback = zk._session_callback

        def record_state(state):
            states.append(state)
            session_callback(state)

        zk._session_callback = record_state
        zk.start_async()
        deadline = time.monotonic() + 15
        while not zk.connected and KeeperState.AUTH_FAILED not in states:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if zk.connected:
            try:
                zk.sync("/")
            except Exception:
                pass
        state = KeeperState.AUTH_FAILED if KeeperState.AUTH_FAILED in states else zk.client_state
        if state != KeeperState.CONNECTED:
            zk.stop()
            zk.close()
            print(json.dumps([{"start": str(state)}]))
            return
        results = [{"start": str(state)}]

    events = []
    cond = threading.Condition()

    def on_event(event):
        with cond:
            events.append({"type": event.type, "path": event.path})
            cond.notify_all()

    def run(op):
        kind = op["op"]
        path = op.get("path")
        if kind == "create":
            acl = acl_list(op["acl"]) if "acl" in op else None
            return zk.create(path, data_bytes(op), acl=acl, ephemeral=op.get("ephemeral", False),
                             sequence=op.get("sequence", False),
                             makepath=op.get("makepath", False))
        if kind == "get_acls":
            acls, stat = zk.get_acls(path)
            acl = [[a.perms, a.id.scheme, a.id.id] for a in acls]
            # "sort": for the expansion of `auth`, whose order follows the connection's
            # id set (hash order in ZooKeeper; order of authentication in geokeeper).
            return {"acl": sorted(acl) if op.get("sort") else acl, "aversion": stat.aversion}
        if kind == "set_acls":
            return stat_json(zk.set_acls(path, acl_list(op["acl"]), version=op.get("version", -1)))
        if kind == "add_auth":
            return zk.add_auth(op["scheme"], op["credential"])
        if kind == "whoami":
            result = zk.handler.async_result()
            zk._call(WhoAmI(), result)
            return sorted(result.get(timeout=10))
        if kind == "get":
            data, stat = zk.get(path)
            return {"data": data.decode(errors="replace"), "stat": stat_json(stat)}
        if kind == "set":
            return stat_json(zk.set(path, data_bytes(op), version=op.get("version", -1)))
        if kind == "delete":
            return zk.delete(path, version=op.get("version", -1),
                             recursive=op.get("recursive", False))
        if kind == "children":
            children = zk.get_children(path)
            return sorted(children) if op.get("sort", True) else children
        if kind == "exists":
            return stat_json(zk.exists(path))
        if kind == "sync":
            return zk.sync(path)
        if kind == "watch":
            watch_kind = op.get("kind", "data")
            if watch_kind == "data":
                zk.get(path, watch=on_event)
            elif watch_kind == "children":
                zk.get_children(path, watch=on_event)
            else:
                zk.exists(path, watch=on_event)
            return True
        if kind == "events":
            with cond:
                cond.wait_for(lambda: len(events) >= op.get("count", 1),
                              timeout=op.get("timeout", 5))
                return list(events)
        if kind == "server_version":
            return list(zk.server_version())
        if kind == "command":
            return zk.command(op["cmd"].encode())
        if kind == "multi":
            t = zk.transaction()
            for sub in op["ops"]:
                sk = sub["op"]
                if sk == "create":
                    t.create(sub["path"], data_bytes(sub), ephemeral=sub.get("ephemeral", False),
                             sequence=sub.get("sequence", False))
                elif sk == "set":
                    t.set_data(sub["path"], data_bytes(sub), version=sub.get("version", -1))
                elif sk == "delete":
                    t.delete(sub["path"], version=sub.get("version", -1))
                elif sk == "check":
                    t.check(sub["path"], sub["version"])
                else:
                    raise ValueError("unknown multi op %r" % sk)
            return [multi_result(r) for r in t.commit()]
        raise ValueError("unknown op %r" % kind)

    for op in ops:
        try:
            results.append({"ok": run(op)})
        except Exception as e:  # report the error class, go on with the next op
            results.append({"error": type(e).__name__})
    zk.stop()
    zk.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
