//! Data-directory tools: dumps of logs and snapshots (like ZooKeeper's TxnLogToolkit and
//! SnapshotFormatter, with a JSON option), a log checker that can cut a torn tail, and
//! purge (like zkCleanup.sh / PurgeTxnLog).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use geokeeper_core::datadir::{load, purge, version_dir};
use geokeeper_core::proto::txn::{TxnBody, TxnEntry};
use geokeeper_core::proto::OpCode;
use geokeeper_core::snapshot;
use geokeeper_core::txnlog::{self, log_files, scan_file};

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn data_text(d: &Option<bytes::Bytes>) -> String {
    match d {
        None => "null".into(),
        Some(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A one-line description of a transaction body, as TxnLogToolkit prints it.
fn body_text(b: &TxnBody) -> String {
    match b {
        TxnBody::Create(t) | TxnBody::Create2(t) => format!(
            "{},{},{:?},{},{}",
            t.path,
            data_text(&t.data),
            t.acl,
            t.ephemeral,
            t.parent_cversion
        ),
        TxnBody::CreateContainer(t) => format!(
            "{},{},{:?},{}",
            t.path,
            data_text(&t.data),
            t.acl,
            t.parent_cversion
        ),
        TxnBody::CreateTtl(t) => format!(
            "{},{},{:?},{},{}",
            t.path,
            data_text(&t.data),
            t.acl,
            t.parent_cversion,
            t.ttl
        ),
        TxnBody::Delete(t) | TxnBody::DeleteContainer(t) => format!("'{}", t.path),
        TxnBody::SetData(t) | TxnBody::Reconfig(t) => {
            format!("{},{},{}", t.path, data_text(&t.data), t.version)
        }
        TxnBody::SetAcl(t) => format!("'{},{:?},{}", t.path, t.acl, t.version),
        TxnBody::Check(t) => format!("'{},{}", t.path, t.version),
        TxnBody::CreateSession(t) => format!("{}", t.time_out),
        TxnBody::CloseSession(t) => format!(
            "v{{{}}}",
            t.paths2_delete
                .iter()
                .map(|p| format!("'{p}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        TxnBody::Error(t) => format!("{}", t.err),
        TxnBody::Multi(ops) => ops
            .iter()
            .map(|o| format!("{}:{}", op_name(o.txn_type()), body_text(o)))
            .collect::<Vec<_>>()
            .join(";"),
    }
}

fn op_name(t: i32) -> &'static str {
    OpCode::from_i32(t).map(|o| o.name()).unwrap_or("unknown")
}

/// `geokeeper log dump FILE [--json]`.
pub fn log_dump(file: &Path, json: bool) -> ExitCode {
    let scan = match scan_file(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !json {
        println!(
            "ZooKeeper Transactional Log File with dbid 0 txnlog format version {}",
            txnlog::VERSION
        );
    }
    for e in &scan.entries {
        let entry = match TxnEntry::decode(&e.bytes) {
            Ok(t) => t,
            Err(err) => {
                eprintln!(
                    "offset {}: transaction {:#x} does not decode: {err}",
                    e.offset, e.zxid
                );
                return ExitCode::from(1);
            }
        };
        let h = &entry.header;
        if json {
            println!(
                "{{\"time\":{},\"session\":\"0x{:x}\",\"cxid\":\"0x{:x}\",\"zxid\":\"0x{:x}\",\"type\":{},\"op\":{},\"txn\":{},\"digest\":{},\"bytes\":\"{}\"}}",
                h.time,
                h.client_id,
                h.cxid,
                h.zxid,
                h.r#type,
                json_str(op_name(h.r#type)),
                json_str(&body_text(&entry.body)),
                entry.digest.as_ref().map_or("null".into(), |d| d.tree_digest.to_string()),
                hex(&e.bytes)
            );
        } else {
            println!(
                "{} session 0x{:x} cxid 0x{:x} zxid 0x{:x} {} {}",
                h.time,
                h.client_id,
                h.cxid,
                h.zxid,
                op_name(h.r#type),
                body_text(&entry.body)
            );
        }
    }
    if let Some(why) = scan.torn {
        eprintln!(
            "Last transaction was partial: {why} at offset {}",
            scan.valid_end
        );
        return ExitCode::from(1);
    }
    if !json {
        println!("EOF reached after {} txns.", scan.entries.len());
    }
    ExitCode::SUCCESS
}

/// `geokeeper snapshot dump FILE [--json]`.
pub fn snapshot_dump(file: &Path, json: bool) -> ExitCode {
    let l = match snapshot::load(file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let paths = l.tree.walk();
    if json {
        let mut o = String::from("{\"zxid\":");
        let _ = write!(o, "\"0x{:x}\",\"nodes\":[", l.zxid);
        for (i, p) in paths.iter().enumerate() {
            let Some(n) = l.tree.get(p) else { continue };
            let s = n.to_stat();
            if i > 0 {
                o.push(',');
            }
            let _ = write!(
                o,
                "{{\"path\":{},\"data\":{},\"czxid\":\"0x{:x}\",\"mzxid\":\"0x{:x}\",\"pzxid\":\"0x{:x}\",\"ctime\":{},\"mtime\":{},\"version\":{},\"cversion\":{},\"aversion\":{},\"ephemeralOwner\":\"0x{:x}\",\"dataLength\":{},\"numChildren\":{},\"acl\":{}}}",
                json_str(p),
                n.data.as_ref().map_or("null".into(), |d| json_str(&String::from_utf8_lossy(d))),
                s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion, n.stat.ephemeral_owner, s.data_length, s.num_children, n.acl
            );
        }
        o.push_str("],\"sessions\":[");
        for (i, (id, t)) in l.sessions.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"id\":\"0x{id:x}\",\"timeout\":{t}}}");
        }
        o.push_str("]}");
        println!("{o}");
        return ExitCode::SUCCESS;
    }
    // SnapshotFormatter prints `DataTree.getNodeCount()`, which counts the root twice (it
    // is stored under "" and "/").
    println!("ZNode Details (count={}):", l.tree.node_count() + 1);
    for p in &paths {
        let Some(n) = l.tree.get(p) else { continue };
        let s = n.to_stat();
        println!("----");
        println!("{p}");
        println!("  cZxid = {:#016x}", s.czxid);
        println!("  ctime = {}", s.ctime);
        println!("  mZxid = {:#016x}", s.mzxid);
        println!("  mtime = {}", s.mtime);
        println!("  pZxid = {:#016x}", s.pzxid);
        // The stored cversion (creates only), as SnapshotFormatter prints StatPersisted.
        println!("  cversion = {}", n.stat.cversion);
        println!("  dataVersion = {}", s.version);
        println!("  aclVersion = {}", s.aversion);
        println!("  ephemeralOwner = {:#016x}", n.stat.ephemeral_owner);
        println!("  dataLength = {}", s.data_length);
    }
    println!("----");
    println!("Session Details (sid, timeout, ephemeralCount):");
    for (id, t) in &l.sessions {
        println!("{id:#016x}, {t}, {}", l.tree.ephemerals_of(*id).len());
    }
    println!("----");
    println!("Last zxid: {:#x}", l.zxid);
    ExitCode::SUCCESS
}

/// A data directory's `version-2`, or `dir` itself when it is one.
fn files_dir(dir: &Path) -> std::path::PathBuf {
    if dir.join("version-2").is_dir() {
        version_dir(dir)
    } else {
        dir.to_owned()
    }
}

/// `geokeeper log check DIR [--truncate]`: reads every log file of a data directory (or a
/// `version-2` directory) and reports the first bad record, if any; then loads the newest
/// good snapshot and replays the log after it exactly as startup does
/// ([`geokeeper_core::datadir::load`]), so a directory startup refuses is never "ok".
pub fn log_check(
    dir: &Path,
    snap_dir: Option<&Path>,
    truncate: bool,
    trust_empty: bool,
) -> ExitCode {
    let snap_dir = files_dir(snap_dir.unwrap_or(dir));
    let dir = files_dir(dir);
    let files = match log_files(&dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let mut total = 0usize;
    let mut last = None;
    for (i, (_, path)) in files.iter().enumerate() {
        match scan_file(path) {
            Ok(scan) => {
                total += scan.entries.len();
                if let Some(e) = scan.entries.last() {
                    last = Some(e.zxid);
                }
                if let Some(why) = scan.torn {
                    let newest = i + 1 == files.len();
                    println!(
                        "{}: first bad record at offset {}: {why}{}",
                        path.display(),
                        scan.valid_end,
                        if newest {
                            " (a torn tail: the newest file ends mid-write)"
                        } else {
                            " (not the newest file: damage)"
                        }
                    );
                    if truncate && newest {
                        match txnlog::repair_tail(&dir) {
                            Ok(Some((p, at, _))) => {
                                println!("{}: cut back to offset {at}", p.display())
                            }
                            Ok(None) => {}
                            Err(e) => {
                                eprintln!("{e}");
                                return ExitCode::from(2);
                            }
                        }
                        continue;
                    }
                    return ExitCode::from(1);
                }
            }
            Err(e) => {
                println!("{e}");
                return ExitCode::from(1);
            }
        }
    }
    let restored = match load(&snap_dir, &dir, trust_empty) {
        Ok(r) => r,
        Err(e) => {
            println!("startup would refuse this directory: {e}");
            return ExitCode::from(1);
        }
    };
    let from = match restored.snapshot_zxid {
        Some(z) => format!("snapshot {z:#x} + {} replayed", restored.replayed),
        None => format!("no snapshot, {} replayed", restored.replayed),
    };
    match last {
        Some(z) => println!(
            "ok: {total} transactions in {} files, last zxid {z:#x}; {from}, tree at zxid {:#x}",
            files.len(),
            restored.tree.last_zxid()
        ),
        None => println!(
            "ok: no transactions in {} files; {from}, tree at zxid {:#x}",
            files.len(),
            restored.tree.last_zxid()
        ),
    }
    ExitCode::SUCCESS
}

/// `geokeeper purge`: keeps the newest `count` snapshots and the logs they need.
pub fn purge_cmd(data_log_dir: &Path, snap_dir: &Path, count: usize) -> ExitCode {
    match purge(&version_dir(snap_dir), &version_dir(data_log_dir), count) {
        Ok(removed) => {
            for p in removed {
                println!("Removing file: {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
