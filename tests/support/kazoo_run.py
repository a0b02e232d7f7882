#!/usr/bin/env python3
"""Run a list of kazoo operations against one ZooKeeper server and print JSON results.

Usage: kazoo_run.py HOST:PORT < ops.json

Input: a JSON list of operations, e.g.
  [{"op": "create", "path": "/a", "data": "x", "ephemeral": false, "sequence": false,
    "makepath": false},
   {"op": "get", "path": "/a"}, {"op": "set", "path": "/a", "data": "y", "version": -1},
   {"op": "children", "path": "/"}, {"op": "exists", "path": "/a"},
   {"op": "delete", "path": "/a", "version": -1, "recursive": false},
   {"op": "watch", "path": "/a", "kind": "data"},   # kind: data | children | exists
   {"op": "events", "count": 1, "timeout": 5},     # wait for N watch events, return all
   {"op": "sync", "path": "/"},
   {"op": "multi", "ops": [{"op": "create", ...}, {"op": "set", ...},
                           {"op": "delete", ...}, {"op": "check", "path": ..., "version": 0}]}]

Output: a JSON list with one entry per operation: {"ok": RESULT} or {"error": "NoNodeError"}.
Stats keep only what does not depend on the server's clock, zxids or session ids:
version, cversion, aversion, dataLength, numChildren, ephemeral (bool). Children are
sorted unless "sort": false. Data is decoded as UTF-8 (with replacement).
"""
import json
import signal
import sys
import threading

from kazoo.client import KazooClient


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
    ops = json.load(sys.stdin)
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=15)

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
            return zk.create(path, data_bytes(op), ephemeral=op.get("ephemeral", False),
                             sequence=op.get("sequence", False),
                             makepath=op.get("makepath", False))
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

    results = []
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
