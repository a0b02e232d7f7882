//! Four-letter words on the client port, against Apache ZooKeeper 3.8 and geokeeper side by
//! side. Both servers get the same clients doing the same things (two sessions, nodes, an
//! ephemeral, data and child watches); then every word is asked of both, and the answers
//! must have the same shape line by line once what legitimately differs is normalised:
//! numbers, addresses, session ids, dates, directories, the version string (which must
//! start with `3.8.` on both), the JVM's `envi` values. `mntr` may leave out keys that
//! mean nothing in geokeeper, but the keys it prints come in ZooKeeper's order.
//!
//! Also: the default whitelist (`srvr` only) and ZooKeeper's refusal text, words 3.8 does
//! not know (`reqs`), `stmk`/`gtmk`, and kazoo's `server_version()`, which parses `envi`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use support::gk::Geokeeper;
use support::java_zk::{four_letter, kazoo, JavaZk};
use support::rawzk::RawZk;

/// Every word ZooKeeper 3.8 answers (`hash` and `telnet close` aside, see below).
const WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "conf", "cons", "envi", "dirs", "wchs", "wchc", "wchp", "dump", "isro",
    "gtmk", "mntr", "crst", "srst", "hash",
];

// ---------------------------------------------------------------------------------------
// The same clients on both servers
// ---------------------------------------------------------------------------------------

fn anyone() -> Acl {
    Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }
}

fn create(z: &mut RawZk, path: &str, data: &[u8], flags: i32) {
    let x = z.call(
        OpCode::Create,
        &Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: Some(data.to_vec().into()),
                acl: vec![anyone()],
                flags,
            },
        },
    );
    assert_eq!(
        x.reply.expect("create reply").header.err,
        0,
        "create {path}"
    );
}

fn get_data(z: &mut RawZk, path: &str, watch: bool) {
    z.call(
        OpCode::GetData,
        &Request::GetData(GetDataRequest {
            path: path.into(),
            watch,
        }),
    );
}

fn exists(z: &mut RawZk, path: &str, watch: bool) {
    z.call(
        OpCode::Exists,
        &Request::Exists(ExistsRequest {
            path: path.into(),
            watch,
        }),
    );
}

fn children(z: &mut RawZk, path: &str, watch: bool) {
    z.call(
        OpCode::GetChildren,
        &Request::GetChildren(GetChildrenRequest {
            path: path.into(),
            watch,
        }),
    );
}

fn set_data(z: &mut RawZk, path: &str, data: &[u8]) {
    z.call(
        OpCode::SetData,
        &Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(data.to_vec().into()),
            version: -1,
        }),
    );
}

/// Two sessions: /a (5 bytes) and /a/b (100 bytes), an ephemeral /e, data watches on /a,
/// /a/b and the missing /nonexist, a child watch on /a; one data watch fires (/a/b is
/// changed), so the second session watches nothing any more. The clients stay connected
/// while the words are asked.
fn populate(addr: SocketAddr) -> (RawZk, RawZk) {
    let mut one = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("session one");
    let mut two = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("session two");
    create(&mut one, "/a", b"hello", 0);
    create(&mut one, "/a/b", &[b'x'; 100], 0);
    create(&mut two, "/e", b"eph", 1);
    get_data(&mut one, "/a", true);
    exists(&mut one, "/nonexist", true);
    children(&mut one, "/a", true);
    get_data(&mut two, "/a/b", true);
    set_data(&mut one, "/a/b", &[b'y'; 100]);
    // Session two reads its event before the next request's reply.
    exists(&mut two, "/a", false);
    (one, two)
}

// ---------------------------------------------------------------------------------------
// Normalising
// ---------------------------------------------------------------------------------------

/// The version string, which must name a 3.8 release on both servers: everything from
/// `3.8.` to the end of `, built on … UTC` becomes `<version>`.
fn normalize_version(line: &str) -> String {
    let Some(start) = line.find("3.8.") else {
        return line.to_string();
    };
    let Some(built) = line[start..].find(", built on ") else {
        return line.to_string();
    };
    let rest = &line[start + built..];
    let end = rest.find(" UTC").map(|i| i + 4).unwrap_or(rest.len());
    format!("{}<version>{}", &line[..start], &rest[end..])
}

/// `0x` + hex → `0x<hex>`, runs of digits → `N`.
fn normalize_numbers(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'0' && b.get(i + 1) == Some(&b'x') {
            let n = b[i + 2..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if n > 0 {
                out.push_str("0x<hex>");
                i += 2 + n;
                continue;
            }
        }
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push('N');
            continue;
        }
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn shape_line(line: &str) -> String {
    let line = normalize_version(line);
    // conf's directories differ by temp dir; both are the version-2 directory.
    for key in ["dataDir=", "dataLogDir="] {
        if let Some(v) = line.strip_prefix(key) {
            assert!(v.ends_with("/version-2") && v.starts_with('/'), "{line}");
            return format!("{key}<dir>");
        }
    }
    normalize_numbers(&line)
}

/// The answer's lines, normalised. Lines of blocks whose order ZooKeeper leaves to hash
/// order (connections, watches, dump's elements) are sorted; `dump`'s bucket lines (how
/// many sessions fall in one tick depends on timing) are dropped.
fn shape(word: &str, text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.split('\n').map(shape_line).collect();
    match word {
        "envi" => {
            // The values are the JVM's or geokeeper's; the keys and their order match.
            lines = lines
                .into_iter()
                .map(|l| match l.split_once('=') {
                    Some((k, _)) => format!("{k}=<value>"),
                    None => l,
                })
                .collect();
        }
        "stat" => {
            let start = lines
                .iter()
                .position(|l| l == "Clients:")
                .expect("Clients:")
                + 1;
            let end = start + lines[start..].iter().position(|l| l.is_empty()).unwrap();
            lines[start..end].sort();
        }
        "cons" | "wchc" | "wchp" => {
            // One block per connection or path; compare the multiset of lines.
            let last = lines.len().saturating_sub(2);
            lines[..last].sort();
        }
        "dump" => {
            lines.retain(|l| !l.contains(" expire at "));
            lines.sort();
        }
        _ => {}
    }
    lines
}

fn ask_both(zk: &JavaZk, gk: &Geokeeper, word: &str) -> (String, String) {
    (four_letter(zk.addr, word), four_letter(gk.addr, word))
}

fn assert_same_shape(word: &str, zk: &str, gk: &str) {
    let (a, b) = (shape(word, zk), shape(word, gk));
    assert_eq!(
        a, b,
        "`{word}` differs in shape\n--- ZooKeeper ---\n{zk}\n--- geokeeper ---\n{gk}"
    );
}

/// `key\tvalue` pairs of an `mntr` answer.
fn mntr_pairs(text: &str) -> Vec<(String, String)> {
    assert!(text.ends_with('\n'), "mntr ends with a newline");
    text.lines()
        .map(|l| {
            let (k, v) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("no tab: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_word_has_zookeepers_shape() {
    let zk = JavaZk::start("");
    let gk = Geokeeper::start("4lw.commands.whitelist=*");
    let _zk_clients = populate(zk.addr);
    let _gk_clients = populate(gk.addr);

    // Each connection's last operation, as ZooKeeper names it (before crst resets them).
    let (z, g) = ask_both(&zk, &gk, "cons");
    for lop in [",lop=EXIS,", ",lop=SETD,"] {
        assert!(z.contains(lop) && g.contains(lop), "{lop}\n{z}\n{g}");
    }

    for &word in WORDS {
        if word == "mntr" {
            continue;
        }
        let (z, g) = ask_both(&zk, &gk, word);
        println!("---- {word}: ZooKeeper ----\n{z}\n---- {word}: geokeeper ----\n{g}");
        assert_same_shape(word, &z, &g);
    }

    // The version both report is a 3.8 release's, geokeeper's own after it.
    let srvr = four_letter(gk.addr, "srvr");
    assert!(
        srvr.starts_with("Zookeeper version: 3.8.4-geokeeper-"),
        "{srvr}"
    );
    // Values the two servers must agree on after the same requests.
    for word in ["srvr", "stat"] {
        let (z, g) = ask_both(&zk, &gk, word);
        for key in [
            "Zxid:",
            "Node count:",
            "Outstanding:",
            "Mode:",
            "Connections:",
        ] {
            let pick = |t: &str| t.lines().find(|l| l.starts_with(key)).map(str::to_owned);
            assert_eq!(pick(&z), pick(&g), "{word} {key}\n{z}\n{g}");
        }
    }
    let (z, g) = ask_both(&zk, &gk, "wchs");
    assert_eq!(
        z, g,
        "wchs counts the data table only, emptied watchers included"
    );
    assert_eq!(g, "2 connections watching 2 paths\nTotal watches:2\n");
    let (z, g) = ask_both(&zk, &gk, "wchp");
    assert_eq!(shape("wchp", &z), shape("wchp", &g));
    assert!(
        g.contains("/nonexist\n\t0x") && g.contains("/a\n\t0x"),
        "{g}"
    );
}

#[test]
fn mntr_keys_come_in_zookeepers_order_with_the_same_gauges() {
    let zk = JavaZk::start("");
    let gk = Geokeeper::start("4lw.commands.whitelist=*");
    let _zk_clients = populate(zk.addr);
    let _gk_clients = populate(gk.addr);

    let z = mntr_pairs(&four_letter(zk.addr, "mntr"));
    let g_text = four_letter(gk.addr, "mntr");
    println!("---- mntr: geokeeper ----\n{g_text}");
    if std::env::var_os("SHOW_ZK_MNTR").is_some() {
        println!(
            "---- mntr: ZooKeeper ----\n{}",
            four_letter(zk.addr, "mntr")
        );
    }
    let g = mntr_pairs(&g_text);
    let z_keys: Vec<&str> = z.iter().map(|(k, _)| k.as_str()).collect();
    // Every geokeeper key is one of ZooKeeper's, in ZooKeeper's order.
    let mut at = 0;
    for (k, _) in &g {
        let Some(i) = z_keys[at..].iter().position(|zk| zk == k) else {
            panic!("{k} is not in ZooKeeper's mntr, or out of its order");
        };
        at += i + 1;
    }
    let zv = |k: &str| z.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let gv = |k: &str| g.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    for k in [
        "zk_server_state",
        "zk_ephemerals_count",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_global_sessions",
        "zk_watch_count",
        "zk_approximate_data_size",
        "zk_connection_request_count",
        "zk_stale_sessions_expired",
        "zk_cnt_node_changed_watch_count",
        "zk_sum_node_changed_watch_count",
        "zk_cnt_updatelatency",
        "zk_cnt_readlatency",
        "zk_max_client_response_size",
        "zk_min_client_response_size",
        "zk_last_client_response_size",
        "zk_response_bytes",
        "zk_watch_bytes",
    ] {
        assert!(gv(k).is_some(), "geokeeper's mntr has no {k}");
        assert_eq!(zv(k), gv(k), "{k}");
    }
    for k in [
        "zk_version",
        "zk_uptime",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_avg_latency",
        "zk_p99_readlatency",
    ] {
        assert!(gv(k).is_some(), "geokeeper's mntr has no {k}");
    }
    assert!(gv("zk_version").unwrap().starts_with("3.8.4-geokeeper-"));
    let fds: u64 = gv("zk_open_file_descriptor_count")
        .unwrap()
        .parse()
        .unwrap();
    assert!(fds > 3, "open descriptors: {fds}");
}

#[test]
fn the_default_whitelist_answers_srvr_only_and_refuses_the_rest_as_zookeeper() {
    // JavaZk enables every word unless told otherwise; the later line wins.
    let zk = JavaZk::start("4lw.commands.whitelist=srvr");
    let gk = Geokeeper::start("");
    for &word in WORDS {
        let (z, g) = ask_both(&zk, &gk, word);
        if word == "srvr" {
            assert_same_shape(word, &z, &g);
        } else {
            assert_eq!(
                g,
                format!("{word} is not executed because it is not in the whitelist.\n")
            );
            assert_eq!(z, g, "{word}");
        }
    }
    // telnet's interrupt is a known word too.
    let refusal = |addr| raw_four_letter(addr, &[0xff, 0xf4, 0xff, 0xfd]);
    assert_eq!(refusal(zk.addr), refusal(gk.addr));
    assert_eq!(
        refusal(gk.addr),
        b"telnet close is not executed because it is not in the whitelist.\n"
    );
}

/// Sends raw bytes on a new connection and reads until the server closes.
fn raw_four_letter(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn unknown_words_close_silently_and_stmk_sets_the_mask_gtmk_reads() {
    let zk = JavaZk::start("");
    let gk = Geokeeper::start("4lw.commands.whitelist=*");
    for addr in [zk.addr, gk.addr] {
        // `reqs` and `kill` are not 3.8 words: a huge frame length, closed, no output.
        assert_eq!(raw_four_letter(addr, b"reqs"), b"", "reqs on {addr}");
        assert_eq!(raw_four_letter(addr, b"kill"), b"", "kill on {addr}");
        assert_eq!(
            raw_four_letter(addr, b"RUOK"),
            b"",
            "case matters on {addr}"
        );
        // Bytes after a word are ignored.
        assert_eq!(raw_four_letter(addr, b"ruokgarbage"), b"imok");
        let mut stmk = b"stmk".to_vec();
        stmk.extend_from_slice(&1234i64.to_be_bytes());
        assert_eq!(raw_four_letter(addr, &stmk), b"1234", "stmk on {addr}");
        assert_eq!(four_letter(addr, "gtmk"), "1234", "gtmk on {addr}");
    }
}

/// `hash` lists the tree digest at every 128th zxid. The digest geokeeper lists is checked
/// against ZooKeeper's own computation for the same tree: ZooKeeper, started on a copy of
/// geokeeper's data directory, replays the same transactions and must list the same value
/// (digests cover ctime/mtime, so two live servers never agree on them).
#[test]
fn hash_lists_the_tree_digest_at_every_128th_zxid() {
    let parse = |addr: SocketAddr, hash: &str| -> (String, i64) {
        let (zxid, digest) = hash
            .strip_suffix('\n')
            .and_then(|l| l.split_once(": "))
            .unwrap_or_else(|| panic!("hash on {addr}: {hash:?}"));
        let digest = digest.parse::<i64>().expect("a signed decimal digest");
        (zxid.to_string(), digest)
    };
    let base = tempfile::tempdir().expect("tempdir");
    let data = base.path().join("gk");
    let mut gk = Geokeeper::start_on(&data, "4lw.commands.whitelist=*");
    assert_eq!(four_letter(gk.addr, "hash"), "", "nothing logged yet");
    {
        // createSession is zxid 1; 127 creates take it to 0x80.
        let mut z = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).expect("session");
        for i in 0..127 {
            create(&mut z, &format!("/n{i}"), format!("v{i}").as_bytes(), 0);
        }
    }
    let (zxid, gk_digest) = parse(gk.addr, &four_letter(gk.addr, "hash"));
    assert_eq!(zxid, "80");
    gk.kill();
    // ZooKeeper on a copy of geokeeper's data directory.
    let copy = base.path().join("zk");
    std::fs::create_dir_all(copy.join("version-2")).expect("mkdir");
    for e in std::fs::read_dir(data.join("version-2")).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), copy.join("version-2").join(e.file_name())).expect("copy");
    }
    let zk = JavaZk::start_on(&copy, "4lw.commands.whitelist=*");
    let (zxid, zk_digest) = parse(zk.addr, &four_letter(zk.addr, "hash"));
    assert_eq!(zxid, "80");
    assert_eq!(
        gk_digest, zk_digest,
        "geokeeper's digest at 0x80 vs ZooKeeper's for the same transactions"
    );
}

#[test]
fn kazoo_reads_a_3_8_server_version_from_envi() {
    let zk = JavaZk::start("");
    let gk = Geokeeper::start("4lw.commands.whitelist=*");
    let ops = r#"[{"op": "server_version"}, {"op": "command", "cmd": "ruok"}]"#;
    let z = kazoo(zk.addr, ops);
    let g = kazoo(gk.addr, ops);
    assert_eq!(z.trim(), r#"[{"ok": [3, 8, 0]}, {"ok": "imok"}]"#);
    assert_eq!(g.trim(), r#"[{"ok": [3, 8, 4]}, {"ok": "imok"}]"#);
}
