//! Self-tests of the reference-implementation harness (tests/support/java_zk.rs): Debian's
//! Apache ZooKeeper 3.8 server driven by zkCli, the C client shell and kazoo.

mod support;

use support::java_zk::{
    cli_mt, four_letter, free_loopback_addr, kazoo, normalize_cli_mt, normalize_zkcli, zkcli,
    JavaZk,
};

fn assert_has(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected to find {needle:?} in:\n{haystack}"
    );
}

#[test]
fn free_loopback_addr_is_bindable_and_varies() {
    let a = free_loopback_addr();
    let b = free_loopback_addr();
    assert!(a.ip().is_loopback());
    assert_ne!(a, b);
    std::net::TcpListener::bind(a).expect("bind free addr");
}

#[test]
fn java_zk_four_letter_words() {
    let zk = JavaZk::start("");
    assert_eq!(four_letter(zk.addr, "ruok"), "imok");
    let srvr = four_letter(zk.addr, "srvr");
    assert_has(&srvr, "Zookeeper version: 3.8.0");
    assert_has(&srvr, "Mode: standalone");
    let conf = four_letter(zk.addr, "conf");
    assert_has(&conf, &format!("clientPort={}", zk.addr.port()));
}

#[test]
fn zkcli_script_against_java_zk() {
    let zk = JavaZk::start("extendedTypesEnabled=true");
    let raw = zkcli(
        zk.addr,
        &[
            "version",
            "create /a hello",
            "create -s /a/seq- x",
            "create -e /a/eph e",
            "create -c /cont",
            "create -t 60000 /ttl t",
            "get /a",
            "get -s /a",
            "set /a world",
            "stat /a",
            "ls /",
            "ls -s /a",
            "ls -R /a",
            "getAcl /a",
            "getEphemerals /",
            "getAllChildrenNumber /a",
            "addWatch /a",
            "set /a again",
            "create /a/child c",
            "get -w /cont",
            "create /a b",
            "get /missing",
            "delete /a",
            "delete /a/eph",
            "deleteall /a",
            "ls /",
            "whoami",
        ],
    );
    println!("---- raw zkcli output ----\n{raw}");
    let out = normalize_zkcli(&raw);
    println!("---- normalized zkcli output ----\n{out}");

    for line in [
        "ZooKeeper CLI version: 3.8.0",
        "Created /a\n",
        "Created /a/seq-0000000000\n",
        "Created /a/eph\n",
        "Created /cont\n",
        "Created /ttl\n",
        "hello\nhello\ncZxid = <zxid>\nctime = <time>\nmZxid = <zxid>\nmtime = <time>\npZxid = <zxid>\ncversion = 2\ndataVersion = 0\naclVersion = 0\nephemeralOwner = 0x0\ndataLength = 5\nnumChildren = 2\n",
        "dataVersion = 1\n",
        "[a, cont, ttl, zookeeper]\n",
        "[eph, seq-0000000000]\n",
        "/a\n/a/eph\n/a/seq-0000000000\n",
        "'world,'anyone\n: cdrwa\n",
        "[/a/eph]\n",
        "Node already exists: /a\n",
        "Node does not exist: /missing\n",
        "Node not empty: /a\n",
        "[cont, ttl, zookeeper]\n",
        "ip: 127.0.0.1\n",
        "-- watch events --\n\
         WatchedEvent state:SyncConnected type:NodeDataChanged path:/a\n\
         WatchedEvent state:SyncConnected type:NodeCreated path:/a/child\n\
         WatchedEvent state:SyncConnected type:NodeDeleted path:/a/eph\n",
    ] {
        assert_has(&out, line);
    }
    // Placeholders and noise removal.
    assert!(!out.contains("WATCHER::"), "{out}");
    assert!(!out.contains("Connecting to"), "{out}");
    assert!(!out.contains("type:None"), "{out}");
    assert!(!out.contains(&zk.addr.to_string()), "{out}");
    assert!(!out.contains(" - ERROR "), "{out}");
    // The appended flush command leaves no trace.
    assert!(!out.contains("Sync is OK"), "{out}");
}

#[test]
fn zkcli_normalization_is_stable_across_servers() {
    let script = [
        "create /n data",
        "create -e /n/e",
        "get -s /n/e",
        "stat /n",
        "ls -s /",
    ];
    let a = JavaZk::start("");
    let b = JavaZk::start("");
    let out_a = normalize_zkcli(&zkcli(a.addr, &script));
    let out_b = normalize_zkcli(&zkcli(b.addr, &script));
    println!("---- normalized ----\n{out_a}");
    assert_eq!(out_a, out_b);
    assert_has(&out_a, "ephemeralOwner = <session>\n");
}

#[test]
fn cli_mt_against_java_zk() {
    let zk = JavaZk::start("");
    let raw = cli_mt(
        zk.addr,
        &[
            "create /mt",
            "create /mt/x",
            "create +s /mt/s",
            "create +e /mt/e",
            "get /mt",
            "set /mt hello",
            "get /mt",
            "ls /mt",
            "ls2 /mt",
            "exists /mt",
            "exists /nope",
            "get /nope",
            "wexists /mt/x",
            "delete /mt/x",
            "delete /mt",
            "myid",
        ],
    );
    println!("---- raw cli_mt output ----\n{raw}");
    let out = normalize_cli_mt(&raw);
    println!("---- normalized cli_mt output ----\n{out}");
    for needle in [
        "Watcher SESSION_EVENT state = CONNECTED_STATE\n",
        "[/mt]: rc = 0\n\tname = /mt\n",
        "[/mt/s]: rc = 0\n\tname = /mt/s0000000001\n",
        "[/mt/e]: rc = 0\n\tname = /mt/e\n",
        "/mt: rc = 0\n value_len = 3\nnew\nStat:\n",
        "/mt: rc = 0\n value_len = 5\nhello\nStat:\n",
        "\tx\n",
        "Error -101 for /nope\n",
        "/nope: rc = -101\n",
        "Watcher DELETED_EVENT state = CONNECTED_STATE for path /mt/x\n",
        "/mt/x: rc = 0\n",
        "/mt: rc = -111\n",
        "bye\n",
    ] {
        assert_has(&out, needle);
    }
    assert!(!out.contains("[/]: rc"), "sentinel leaked:\n{out}");
    assert!(!out.contains("msec"), "{out}");
    assert!(raw.contains("session Id = "), "{raw}");
}

#[test]
fn kazoo_against_java_zk() {
    let zk = JavaZk::start("");
    let out = kazoo(
        zk.addr,
        r#"[
            {"op": "create", "path": "/k", "data": "v1"},
            {"op": "create", "path": "/k/s-", "sequence": true},
            {"op": "create", "path": "/k/e", "data": "eph", "ephemeral": true},
            {"op": "watch", "path": "/k", "kind": "data"},
            {"op": "watch", "path": "/k", "kind": "children"},
            {"op": "set", "path": "/k", "data": "v2"},
            {"op": "get", "path": "/k"},
            {"op": "children", "path": "/k"},
            {"op": "events", "count": 1},
            {"op": "delete", "path": "/k/e"},
            {"op": "events", "count": 2},
            {"op": "delete", "path": "/k"},
            {"op": "get", "path": "/missing"},
            {"op": "multi", "ops": [{"op": "create", "path": "/m", "data": "x"},
                                    {"op": "set", "path": "/m", "data": "y"},
                                    {"op": "check", "path": "/m", "version": 1}]},
            {"op": "exists", "path": "/m"},
            {"op": "delete", "path": "/k", "recursive": true},
            {"op": "exists", "path": "/k"}
        ]"#,
    );
    println!("---- kazoo output ----\n{out}");
    for needle in [
        r#"{"ok": "/k"}"#,
        r#"{"ok": "/k/s-0000000000"}"#,
        r#"{"ok": "/k/e"}"#,
        r#"{"ok": {"version": 1, "cversion": 2, "aversion": 0, "dataLength": 2, "numChildren": 2, "ephemeral": false}}"#,
        r#"{"ok": {"data": "v2", "stat": {"version": 1"#,
        r#"{"ok": ["e", "s-0000000000"]}"#,
        r#"{"ok": [{"type": "CHANGED", "path": "/k"}]}"#,
        r#"{"ok": [{"type": "CHANGED", "path": "/k"}, {"type": "CHILD", "path": "/k"}]}"#,
        r#"{"error": "NotEmptyError"}"#,
        r#"{"error": "NoNodeError"}"#,
        r#"{"ok": ["/m", {"version": 1, "cversion": 0, "aversion": 0, "dataLength": 1, "numChildren": 0, "ephemeral": false}, true]}"#,
        r#"{"ok": null}"#,
    ] {
        assert_has(&out, needle);
    }
}
