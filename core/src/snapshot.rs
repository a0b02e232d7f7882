//! Snapshots in ZooKeeper's own format (`FileSnap`, `SerializeUtils`, `DataTree.serialize`):
//!
//! ```text
//! dataDir/version-2/snapshot.<hex zxid>
//!   FileHeader { int magic "ZKSN"; int version 2; long dbid -1 }
//!   int sessions; repeat { long id; int timeoutMs }
//!   int acls;     repeat { long index; vector<ACL> }
//!   repeat { ustring path ("" for the root); buffer data; long acl; StatPersisted }
//!   ustring "/"                     end of nodes
//!   long adler32(bytes so far); ustring "/"
//!   ZxidDigest { long zxid; int version; long digest }
//!   long adler32(bytes so far); ustring "/"
//! ```
//!
//! Snapshots are fuzzy, as ZooKeeper's: the file is named after the last zxid applied when
//! it started, nodes are written as the walk reaches them while requests go on, and
//! replaying the log from that zxid on makes the result exact. Unlike ZooKeeper, the ACL
//! map is written from the ACLs the walk actually met (the map precedes the nodes in the
//! file, so the nodes are spooled to a side file first), so no node can point at an ACL the
//! file lacks; and a snapshot appears under its final name only once complete and synced.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::proto::jute::{DecodeError, Reader};
use crate::proto::records::Acl;
use crate::proto::{JuteWrite, Record};
use crate::tree::{DataTree, NodeStat, NodeView};
use crate::txnlog::zxid_from_name;

/// "ZKSN" (`FileSnap.SNAP_MAGIC`).
pub const SNAP_MAGIC: i32 = 0x5A4B_534E;
pub const VERSION: i32 = 2;
/// The end of a sealed snapshot: the jute string "/" (`SnapStream.isValidCheckedStream`).
const SEAL_TAIL: [u8; 5] = [0, 0, 0, 1, b'/'];

pub fn snapshot_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

/// How snapshot files are compressed (`SnapStream.StreamMode`, chosen by the property
/// `zookeeper.snapshot.compression.method`; a file's own name says how it was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain, checked stream (`CHECKED`): `snapshot.<zxid>`.
    #[default]
    None,
    /// gzip (`GZIP`): `snapshot.<zxid>.gz`.
    Gzip,
    /// Snappy (`SNAPPY`): `snapshot.<zxid>.snappy`, xerial's stream framing; recognised by
    /// name only, not read or written.
    Snappy,
}

impl Compression {
    /// The property's value as `StreamMode.fromString` reads it: case-insensitive, and
    /// anything unknown is the plain stream.
    pub fn from_property(v: Option<&str>) -> Compression {
        match v.map(str::trim) {
            Some(m) if m.eq_ignore_ascii_case("gz") => Compression::Gzip,
            Some(m) if m.eq_ignore_ascii_case("snappy") => Compression::Snappy,
            _ => Compression::None,
        }
    }

    /// `SnapStream.getStreamMode`: the part of the name after its last dot.
    pub fn of_file(path: &Path) -> Compression {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gz") => Compression::Gzip,
            Some("snappy") => Compression::Snappy,
            _ => Compression::None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Snappy => ".snappy",
        }
    }
}

/// Valid-looking `snapshot.*` files, newest first (`FileSnap.findNValidSnapshots`).
pub fn snapshot_files(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut v = crate::txnlog::zxid_files(dir, "snapshot")?;
    v.reverse();
    Ok(v)
}

/// Removes the temporary files of snapshots that never finished (`snapshot.<zxid>.tmp`,
/// `snapshot.<zxid>.nodes.tmp`: the process died while writing them); returns them.
pub fn remove_unfinished(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("snapshot.") && name.ends_with(".tmp") {
            std::fs::remove_file(e.path())?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

/// A snapshot read back.
#[derive(Debug)]
pub struct Loaded {
    pub zxid: i64,
    pub tree: DataTree,
    pub sessions: Vec<(i64, i32)>,
    /// The digest trailer: (zxid, tree digest) the writer recorded, zxid 0 when empty.
    pub zxid_digest: Option<(i64, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    #[error("{0}: mismatching magic headers {1:#x} != {SNAP_MAGIC:#x}")]
    BadMagic(PathBuf, i32),
    #[error("{0}: truncated or malformed: {1}")]
    Decode(PathBuf, DecodeError),
    #[error("{0}: invalid snapshot: {1}")]
    Invalid(PathBuf, String),
    #[error("{0}: checksum mismatch (CRC corruption)")]
    Checksum(PathBuf),
}

fn stat_to_bytes(s: &NodeStat, w: &mut Vec<u8>) {
    w.extend_from_slice(&s.czxid.to_be_bytes());
    w.extend_from_slice(&s.mzxid.to_be_bytes());
    w.extend_from_slice(&s.ctime.to_be_bytes());
    w.extend_from_slice(&s.mtime.to_be_bytes());
    w.extend_from_slice(&s.version.to_be_bytes());
    w.extend_from_slice(&s.cversion.to_be_bytes());
    w.extend_from_slice(&s.aversion.to_be_bytes());
    w.extend_from_slice(&s.ephemeral_owner.to_be_bytes());
    w.extend_from_slice(&s.pzxid.to_be_bytes());
}

fn put_i32(w: &mut Vec<u8>, v: i32) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(w: &mut Vec<u8>, v: i64) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_i32(w, s.len() as i32);
    w.extend_from_slice(s.as_bytes());
}

/// Header and sessions: the part of a snapshot fixed when it starts.
pub fn encode_start(sessions: &[(i64, i32)]) -> Vec<u8> {
    let mut w = Vec::with_capacity(20 + sessions.len() * 12);
    put_i32(&mut w, SNAP_MAGIC);
    put_i32(&mut w, VERSION);
    put_i64(&mut w, -1);
    put_i32(&mut w, sessions.len() as i32);
    for (id, t) in sessions {
        put_i64(&mut w, *id);
        put_i32(&mut w, *t);
    }
    w
}

/// One node record; the root is written with path "".
pub fn encode_node(path: &str, node: &NodeView<'_>, w: &mut Vec<u8>) {
    put_str(w, if path == "/" { "" } else { path });
    match node.data {
        None => put_i32(w, -1),
        Some(d) => {
            put_i32(w, d.len() as i32);
            w.extend_from_slice(d);
        }
    }
    put_i64(w, node.acl);
    stat_to_bytes(&node.stat, w);
}

pub fn encode_acl_map(acls: &BTreeMap<i64, Arc<[Acl]>>) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    b.put_int(acls.len() as i32);
    for (id, list) in acls {
        b.put_long(*id);
        b.put_int(list.len() as i32);
        for a in list.iter() {
            a.encode(&mut b);
        }
    }
    b.to_vec()
}

/// Writes `snapshot.<zxid>` from its parts: start (header and sessions), the ACL map, the
/// node records (from `nodes`, a reader over the spooled records), then the end marker,
/// the seals and the digest trailer. The file is written as `.tmp`, synced, and renamed.
pub fn assemble(
    dir: &Path,
    zxid: i64,
    start: &[u8],
    acl_map: &[u8],
    nodes: &mut dyn Read,
    zxid_digest: (i64, i64),
    compression: Compression,
) -> io::Result<PathBuf> {
    if compression == Compression::Snappy {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "snappy snapshots are not supported (zookeeper.snapshot.compression.method: use gz or none)",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let name = format!("{}{}", snapshot_name(zxid), compression.extension());
    let final_path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    if let Err(e) = write_sealed(&tmp, start, acl_map, nodes, zxid_digest, compression) {
        // A snapshot that failed (a full disk, say) must not keep the space it took.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &final_path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(final_path)
}

/// The whole snapshot file at `path`, synced. The checksums cover the uncompressed bytes,
/// as ZooKeeper's CheckedOutputStream sits on top of the compressing one.
fn write_sealed(
    path: &Path,
    start: &[u8],
    acl_map: &[u8],
    nodes: &mut dyn Read,
    zxid_digest: (i64, i64),
    compression: Compression,
) -> io::Result<()> {
    let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let out = if compression == Compression::Gzip {
        let mut w = Checked {
            inner: flate2::write::GzEncoder::new(out, flate2::Compression::default()),
            sum: adler2::Adler32::new(),
        };
        write_body(&mut w, start, acl_map, nodes, zxid_digest)?;
        w.inner.finish()?
    } else {
        let mut w = Checked {
            inner: out,
            sum: adler2::Adler32::new(),
        };
        write_body(&mut w, start, acl_map, nodes, zxid_digest)?;
        w.inner
    };
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

fn write_body<W: Write>(
    w: &mut Checked<W>,
    start: &[u8],
    acl_map: &[u8],
    nodes: &mut dyn Read,
    zxid_digest: (i64, i64),
) -> io::Result<()> {
    w.write_all(start)?;
    w.write_all(acl_map)?;
    io::copy(nodes, w)?;
    let mut tail = Vec::new();
    put_str(&mut tail, "/");
    w.write_all(&tail)?;
    let seal1 = w.sum.checksum() as i64;
    w.write_all(&seal1.to_be_bytes())?;
    w.write_all(&SEAL_TAIL)?;
    let mut d = Vec::new();
    put_i64(&mut d, zxid_digest.0);
    put_i32(&mut d, crate::tree::DIGEST_VERSION);
    put_i64(&mut d, zxid_digest.1);
    w.write_all(&d)?;
    let seal2 = w.sum.checksum() as i64;
    w.write_all(&seal2.to_be_bytes())?;
    w.write_all(&SEAL_TAIL)
}

/// Writes a whole tree at once (a consistent, not fuzzy, snapshot): for a fresh data
/// directory, tools and tests.
pub fn write_tree(dir: &Path, tree: &DataTree, sessions: &[(i64, i32)]) -> io::Result<PathBuf> {
    write_tree_as(dir, tree, sessions, Compression::None)
}

/// `write_tree`, compressed as asked.
pub fn write_tree_as(
    dir: &Path,
    tree: &DataTree,
    sessions: &[(i64, i32)],
    compression: Compression,
) -> io::Result<PathBuf> {
    // Streamed: the walk encodes a slice of nodes whenever the writer wants more, so a
    // tree of a million znodes is never held twice (once as nodes, once as bytes).
    let acls: BTreeMap<i64, Arc<[Acl]>> = tree
        .acls
        .entries()
        .into_iter()
        .map(|(id, l)| (id, Arc::from(l)))
        .collect();
    let mut nodes = WalkReader {
        tree,
        walk: SnapshotWalk::new(tree.last_zxid()),
        buf: Vec::with_capacity(64 * 1024),
        pos: 0,
        more: true,
    };
    assemble(
        dir,
        tree.last_zxid(),
        &encode_start(sessions),
        &encode_acl_map(&acls),
        &mut nodes,
        (tree.last_zxid(), tree.digest()),
        compression,
    )
}

/// The node records of a whole tree as a reader, encoded a slice at a time.
struct WalkReader<'a> {
    tree: &'a DataTree,
    walk: SnapshotWalk,
    buf: Vec<u8>,
    pos: usize,
    more: bool,
}

impl Read for WalkReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if !self.more {
                return Ok(0);
            }
            self.buf.clear();
            self.pos = 0;
            self.more = self.walk.step(self.tree, 512, &mut self.buf);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct Checked<W: Write> {
    inner: W,
    sum: adler2::Adler32,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.write_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `SnapStream.isValidSnapshot`: a plain snapshot is long enough and ends in the "/"
/// seal (`isValidCheckedStream`); a gzip one starts with gzip's magic (`isValidGZipStream`);
/// a snappy one cannot be read here.
pub fn looks_valid(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    match Compression::of_file(path) {
        Compression::None => {}
        Compression::Gzip => {
            let mut magic = [0u8; 2];
            return f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        }
        Compression::Snappy => return false,
    }
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    if len < 10 {
        return false;
    }
    use std::io::Seek;
    if f.seek(io::SeekFrom::End(-5)).is_err() {
        return false;
    }
    let mut b = [0u8; 5];
    f.read_exact(&mut b).is_ok() && b == SEAL_TAIL
}

/// Reads and checks one snapshot file completely.
pub fn load(path: &Path) -> Result<Loaded, SnapError> {
    let name_zxid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| zxid_from_name(n, "snapshot"))
        .ok_or_else(|| {
            SnapError::Invalid(path.to_owned(), "name is not snapshot.<hex zxid>".into())
        })?;
    let mut buf = Vec::new();
    let read = File::open(path).and_then(|f| match Compression::of_file(path) {
        Compression::None => io::BufReader::new(f).read_to_end(&mut buf),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(io::BufReader::new(f)).read_to_end(&mut buf)
        }
        Compression::Snappy => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "snappy-compressed snapshots are not supported",
        )),
    });
    read.map_err(|e| SnapError::Io(path.to_owned(), e))?;
    let dec = |e| SnapError::Decode(path.to_owned(), e);
    let mut r = Reader::new(&buf);
    let magic = r.read_i32().map_err(dec)?;
    if magic != SNAP_MAGIC {
        return Err(SnapError::BadMagic(path.to_owned(), magic));
    }
    let _version = r.read_i32().map_err(dec)?;
    let _dbid = r.read_i64().map_err(dec)?;
    let n = r.read_vec_len(12).map_err(dec)?.unwrap_or(0);
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.read_i64().map_err(dec)?;
        let t = r.read_i32().map_err(dec)?;
        sessions.push((id, t));
    }
    let mut tree = DataTree::empty();
    // A node record takes at least 85 bytes (path, data length, ACL id, stat), so this
    // bounds the node count and the slot table never regrows while loading.
    tree.reserve(buf.len() / 85);
    let n = r.read_vec_len(12).map_err(dec)?.unwrap_or(0);
    for _ in 0..n {
        let id = r.read_i64().map_err(dec)?;
        let list = r.read_vec(12, Acl::decode).map_err(dec)?;
        tree.acls.restore(id, list);
    }
    loop {
        let p = r.read_string().map_err(dec)?;
        if p == "/" {
            break;
        }
        let data = r.read_buffer_opt().map_err(dec)?;
        let acl = r.read_i64().map_err(dec)?;
        let stat = NodeStat {
            czxid: r.read_i64().map_err(dec)?,
            mzxid: r.read_i64().map_err(dec)?,
            ctime: r.read_i64().map_err(dec)?,
            mtime: r.read_i64().map_err(dec)?,
            version: r.read_i32().map_err(dec)?,
            cversion: r.read_i32().map_err(dec)?,
            aversion: r.read_i32().map_err(dec)?,
            ephemeral_owner: r.read_i64().map_err(dec)?,
            pzxid: r.read_i64().map_err(dec)?,
        };
        let path_key = if p.is_empty() { "/".to_owned() } else { p };
        if !tree.restore_node(&path_key, data, acl, stat) {
            return Err(SnapError::Invalid(
                path.to_owned(),
                format!(
                    "unable to find parent {} of path {path_key}",
                    crate::tree::split_path(&path_key).0
                ),
            ));
        }
    }
    let checked = |upto: usize| adler2::adler32_slice(&buf[..upto]) as i64;
    let at = r.position();
    let seal = r.read_i64().map_err(dec)?;
    if seal != checked(at) || r.read_string().map_err(dec)? != "/" {
        return Err(SnapError::Checksum(path.to_owned()));
    }
    let mut zxid_digest = None;
    if r.remaining() > 0 {
        let dz = r.read_i64().map_err(dec)?;
        let dv = r.read_i32().map_err(dec)?;
        if dv >= 2 {
            let d = r.read_i64().map_err(dec)?;
            if dz != 0 {
                zxid_digest = Some((dz, d));
            }
        } else {
            // Digest versions before 2 held a hex string.
            let _ = r.read_string().map_err(dec)?;
        }
        let at = r.position();
        let seal = r.read_i64().map_err(dec)?;
        if seal != checked(at) || r.read_string().map_err(dec)? != "/" {
            return Err(SnapError::Checksum(path.to_owned()));
        }
    }
    if !tree.contains("/") {
        return Err(SnapError::Invalid(path.to_owned(), "no root node".into()));
    }
    tree.acls.purge_unused();
    tree.set_last_zxid(name_zxid);
    Ok(Loaded {
        zxid: name_zxid,
        tree,
        sessions,
        zxid_digest,
    })
}

/// The newest snapshot that loads, trying up to 100 newest first and saying why each
/// newer one was skipped.
pub fn load_newest(dir: &Path) -> Result<Option<Loaded>, SnapError> {
    let files = snapshot_files(dir).map_err(|e| SnapError::Io(dir.to_owned(), e))?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut last_err = None;
    for (_, path) in files.iter().take(100) {
        if Compression::of_file(path) == Compression::Snappy {
            warn!(
                "Skipping snapshot {}: snappy compression is not supported (gz is); trying an older one",
                path.display()
            );
            continue;
        }
        if !looks_valid(path) {
            warn!(
                "Invalid snapshot {} (incomplete: no end seal); trying an older one",
                path.display()
            );
            continue;
        }
        match load(path) {
            Ok(l) => {
                info!("Reading snapshot {}", path.display());
                return Ok(Some(l));
            }
            Err(e) => {
                warn!(
                    "problem reading snap file {}: {e}; trying an older one",
                    path.display()
                );
                last_err = Some(e);
            }
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Err(SnapError::Invalid(
            dir.to_owned(),
            "Not able to find valid snapshots".into(),
        )),
    }
}

/// A fuzzy snapshot in progress: a depth-first walk of the live tree, a bounded number of
/// nodes at a time, so that serializing a million znodes never stalls requests. Nodes
/// deleted before the walk reaches them are skipped and nodes created behind it are
/// missed; both are in the log after the snapshot's zxid, which restore replays.
#[derive(Debug)]
pub struct SnapshotWalk {
    pub zxid: i64,
    stack: Vec<String>,
    acls: BTreeMap<i64, Arc<[Acl]>>,
    pub nodes: u64,
}

impl SnapshotWalk {
    pub fn new(zxid: i64) -> SnapshotWalk {
        SnapshotWalk {
            zxid,
            stack: vec!["/".to_owned()],
            acls: BTreeMap::new(),
            nodes: 0,
        }
    }

    /// Encodes up to `budget` nodes into `out`; false once the walk is complete.
    pub fn step(&mut self, tree: &DataTree, budget: usize, out: &mut Vec<u8>) -> bool {
        for _ in 0..budget {
            let Some(path) = self.stack.pop() else {
                return false;
            };
            let Some(n) = tree.get(&path) else {
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(v) = self.acls.entry(n.acl) {
                if let Some(l) = tree.acls.stored(n.acl) {
                    v.insert(Arc::from(l));
                }
            }
            encode_node(&path, &n, out);
            self.nodes += 1;
            for c in n.children() {
                let mut p = String::with_capacity(path.len() + 1 + c.len());
                if path != "/" {
                    p.push_str(&path);
                }
                p.push('/');
                p.push_str(c);
                self.stack.push(p);
            }
        }
        !self.stack.is_empty()
    }

    /// The ACL map of every list the walk met, for the file's ACL section.
    pub fn acl_map(&self) -> Vec<u8> {
        encode_acl_map(&self.acls)
    }
}

/// Writes spooled node records for a snapshot in progress.
pub struct NodeSpool {
    path: PathBuf,
    w: BufWriter<File>,
}

impl NodeSpool {
    pub fn create(dir: &Path, zxid: i64) -> io::Result<NodeSpool> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.nodes.tmp", snapshot_name(zxid)));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(NodeSpool {
            path,
            w: BufWriter::with_capacity(1 << 20, f),
        })
    }

    pub fn write(&mut self, records: &[u8]) -> io::Result<()> {
        self.w.write_all(records)
    }

    /// Finishes the spool and returns a reader over it; the file is removed once the
    /// reader is dropped.
    pub fn finish(self) -> io::Result<SpoolReader> {
        let f = match self.w.into_inner() {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                return Err(e.into_error());
            }
        };
        drop(f);
        let f = File::open(&self.path)?;
        Ok(SpoolReader {
            path: self.path,
            r: io::BufReader::with_capacity(1 << 20, f),
        })
    }

    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub struct SpoolReader {
    path: PathBuf,
    r: io::BufReader<File>,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.r.read(buf)
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gzip_snapshots_round_trip_and_are_named_by_their_compression() {
        let d = tempfile::tempdir().unwrap();
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        t.create_node(
            "/a",
            Some(b"x"),
            &crate::acl::open_acl_unsafe(),
            0,
            -1,
            1,
            10,
            &mut ch,
        )
        .unwrap();
        t.set_last_zxid(1);
        let p = write_tree_as(d.path(), &t, &[(0x55, 30000)], Compression::Gzip).unwrap();
        assert_eq!(p.file_name().unwrap(), "snapshot.1.gz");
        assert!(looks_valid(&p));
        let l = load(&p).unwrap();
        assert_eq!((l.zxid, l.tree.digest()), (1, t.digest()));
        assert_eq!(l.sessions, vec![(0x55, 30000)]);
        // A plain snapshot with the same zxid is not taken for gzip, nor gzip for plain.
        let raw = std::fs::read(&p).unwrap();
        std::fs::write(d.path().join("snapshot.1"), &raw).unwrap();
        assert!(load(&d.path().join("snapshot.1")).is_err());
        assert_eq!(Compression::from_property(Some("GZ")), Compression::Gzip);
        assert_eq!(Compression::from_property(Some("lz4")), Compression::None);
        assert_eq!(Compression::from_property(None), Compression::None);
        assert!(write_tree_as(d.path(), &t, &[], Compression::Snappy).is_err());
    }

    use super::*;
    use crate::acl::{open_acl_unsafe, read_acl_unsafe};

    fn sample() -> DataTree {
        let mut t = DataTree::new();
        let mut ch = vec![];
        t.create_node("/a", Some(b"x"), &open_acl_unsafe(), 0, -1, 1, 10, &mut ch)
            .unwrap();
        t.create_node("/a/b", None, &read_acl_unsafe(), 0x55, -1, 2, 11, &mut ch)
            .unwrap();
        t.create_node(
            "/c",
            Some(&[][..]),
            &open_acl_unsafe(),
            i64::MIN,
            -1,
            3,
            12,
            &mut ch,
        )
        .unwrap();
        t.set_last_zxid(3);
        t
    }

    #[test]
    fn a_snapshot_round_trips_every_node_stat_acl_and_session() {
        let d = tempfile::tempdir().unwrap();
        let t = sample();
        let p = write_tree(d.path(), &t, &[(0x55, 30000)]).unwrap();
        assert_eq!(p.file_name().unwrap(), "snapshot.3");
        assert!(looks_valid(&p));
        let l = load(&p).unwrap();
        assert_eq!(l.sessions, vec![(0x55, 30000)]);
        assert_eq!(l.zxid, 3);
        assert_eq!(l.tree.digest(), t.digest());
        for path in t.walk() {
            let (a, b) = (t.get(&path).unwrap(), l.tree.get(&path).unwrap());
            assert_eq!(a.to_stat(), b.to_stat(), "{path}");
            assert_eq!(a.data, b.data, "{path}");
        }
        assert_eq!(
            l.tree
                .ephemerals_of(0x55)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
            vec!["/a/b".to_string()]
        );
        assert_eq!(
            l.tree.containers().cloned().collect::<Vec<_>>(),
            vec!["/c".to_string()]
        );
        let mut lt = l.tree;
        assert_eq!(&*lt.acl_of("/a/b").unwrap(), &read_acl_unsafe()[..]);
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
        let d = tempfile::tempdir().unwrap();
        let mut t = sample();
        write_tree(d.path(), &t, &[]).unwrap();
        t.set_last_zxid(9);
        let newest = write_tree(d.path(), &t, &[]).unwrap();
        let mut b = std::fs::read(&newest).unwrap();
        b[40] ^= 0xff;
        std::fs::write(&newest, &b).unwrap();
        assert_eq!(load_newest(d.path()).unwrap().unwrap().zxid, 3);
        std::fs::write(&newest, &b[..b.len() - 3]).unwrap();
        assert_eq!(load_newest(d.path()).unwrap().unwrap().zxid, 3);
    }
}
