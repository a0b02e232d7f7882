//! The transaction log in ZooKeeper's own format, so that ZooKeeper's tools read what we
//! write and we read what ZooKeeper wrote (`FileTxnLog`):
//!
//! ```text
//! dataLogDir/version-2/log.<hex zxid of the first entry>
//!   FileHeader { int magic "ZKLG"; int version 2; long dbid 0 }
//!   repeat { long adler32(entry); int len; byte[len] entry; byte 'B' }
//!   zeros up to the preallocated length
//! ```
//!
//! `entry` is TxnHeader + txn (+ the 3.8 digest): exactly the bytes the pipeline hands
//! over in [`LogEntry`]. Writes are grouped: one `append` call is one write and one fsync
//! for the whole batch.
//!
//! Where geokeeper is stricter than ZooKeeper, on purpose:
//! * preallocation reserves real blocks (`posix_fallocate`), so a full disk makes the
//!   *extension* fail before any entry bytes are written, and the log never holds a
//!   half-written batch it would have to explain;
//! * a torn tail (a crash mid-write) is cut back to the last whole entry, in the newest
//!   file only; a bad entry followed by good ones is corruption and stops recovery with
//!   the file and offset named;
//! * a gap in the zxid sequence is an error naming it (ZooKeeper replays across it).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{info, warn};

use crate::proto::txn::LogEntry;
use crate::storage::TxnLog;

/// "ZKLG" as a big-endian int (`FileTxnLog.TXNLOG_MAGIC`).
pub const TXNLOG_MAGIC: i32 = 0x5A4B_4C47;
pub const VERSION: i32 = 2;
const HEADER_LEN: u64 = 16;
/// End-of-record marker.
const EOR: u8 = b'B';

/// `Util.makeLogName`.
pub fn log_name(zxid: i64) -> String {
    format!("log.{zxid:x}")
}

/// `Util.getZxidFromName`: the hex after the first dot, anything after a second dot
/// ignored, as ZooKeeper parses it.
pub fn zxid_from_name(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    let hex = parts.next()?;
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|v| *v <= i64::MAX as u64)
        .map(|v| v as i64)
}

/// The `<prefix>.<hex zxid>` files of a directory (ZooKeeper's `Util.sortDataDir` input),
/// sorted by zxid; our own `.tmp` files never count.
pub fn zxid_files(dir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            continue;
        }
        if let Some(z) = zxid_from_name(name, prefix) {
            v.push((z, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// The `log.*` files of a directory, sorted by starting zxid.
pub fn log_files(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    zxid_files(dir, "log")
}

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{file}: invalid magic number {magic:#x} != {TXNLOG_MAGIC:#x} (not a ZooKeeper transaction log)")]
    BadMagic { file: PathBuf, magic: i32 },
    #[error("{file}: entry at offset {offset} is corrupt ({what}) and is followed by more entries; refusing to guess. `geokeeper log check` shows it")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
}

/// One entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    pub zxid: i64,
    pub bytes: Vec<u8>,
    /// Offset of the entry's checksum in its file.
    pub offset: u64,
}

/// What scanning one file found.
#[derive(Debug)]
pub struct FileScan {
    pub entries: Vec<ReadEntry>,
    /// Where the last whole entry ends: the file's logical end.
    pub valid_end: u64,
    /// Why reading stopped before the physical end, if it did for a reason other than the
    /// zero padding (a torn or corrupt entry at `valid_end`).
    pub torn: Option<String>,
}

fn read_all(path: &Path) -> Result<Vec<u8>, LogError> {
    let mut f = File::open(path).map_err(|source| LogError::Io {
        file: path.to_owned(),
        source,
    })?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|source| LogError::Io {
        file: path.to_owned(),
        source,
    })?;
    Ok(buf)
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Reads every whole entry of one log file. A zero length (the preallocated zeros) ends the
/// file normally. Anything else that stops reading — a short entry, a missing 'B', a bad
/// checksum — is reported in `torn` if nothing valid follows it, and is an error if
/// something does.
pub fn scan_file(path: &Path) -> Result<FileScan, LogError> {
    let buf = read_all(path)?;
    if buf.len() < HEADER_LEN as usize {
        // A file cut before its header was complete holds nothing.
        return Ok(FileScan {
            entries: Vec::new(),
            valid_end: 0,
            torn: Some("file shorter than its header".into()),
        });
    }
    let magic = be_i32(&buf[0..4]);
    if magic != TXNLOG_MAGIC {
        return Err(LogError::BadMagic {
            file: path.to_owned(),
            magic,
        });
    }
    let mut pos = HEADER_LEN as usize;
    let mut entries = Vec::new();
    let mut torn = None;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let problem = if rest.len() < 12 {
            if rest.iter().all(|b| *b == 0) {
                break;
            }
            Some("entry header cut short".to_owned())
        } else {
            let crc = be_i64(&rest[0..8]);
            let len = be_i32(&rest[8..12]);
            if len == 0 && crc == 0 {
                break;
            }
            if len <= 0 {
                Some(format!("invalid length {len}"))
            } else if rest.len() < 12 + len as usize + 1 {
                Some("entry cut short".to_owned())
            } else {
                let entry = &rest[12..12 + len as usize];
                if rest[12 + len as usize] != EOR {
                    Some("missing end-of-record byte".to_owned())
                } else if adler2::adler32_slice(entry) as i64 != crc {
                    Some("checksum mismatch".to_owned())
                } else if entry.len() < 32 {
                    Some("entry shorter than a TxnHeader".to_owned())
                } else {
                    entries.push(ReadEntry {
                        zxid: be_i64(&entry[12..20]),
                        bytes: entry.to_vec(),
                        offset: pos as u64,
                    });
                    pos += 12 + len as usize + 1;
                    None
                }
            }
        };
        if let Some(what) = problem {
            // Torn if nothing but zeros could follow; corrupt if a whole entry does.
            if follows_valid_entry(&buf, pos + 1) {
                return Err(LogError::Corrupt {
                    file: path.to_owned(),
                    offset: pos as u64,
                    what,
                });
            }
            torn = Some(what);
            break;
        }
    }
    Ok(FileScan {
        entries,
        valid_end: pos as u64,
        torn,
    })
}

/// Whether a checksummed, 'B'-terminated entry starts anywhere from `from` on: the sign
/// that a bad entry is damage inside the log rather than its torn end.
fn follows_valid_entry(buf: &[u8], from: usize) -> bool {
    let mut p = from;
    while p + 13 <= buf.len() {
        let crc = be_i64(&buf[p..p + 8]);
        let len = be_i32(&buf[p + 8..p + 12]);
        if len > 31 && crc != 0 && (crc as u64) <= u32::MAX as u64 {
            let end = p + 12 + len as usize;
            if end < buf.len()
                && buf[end] == EOR
                && adler2::adler32_slice(&buf[p + 12..end]) as i64 == crc
            {
                return true;
            }
        }
        p += 1;
    }
    false
}

/// The transaction log writer.
pub struct FileTxnLog {
    dir: PathBuf,
    current: Option<Current>,
    prealloc: u64,
    force_sync: bool,
    fsync_warn_ms: u64,
    last_zxid: i64,
    /// fsyncs slower than the warning threshold (`fsync_threshold_exceed_count`).
    pub fsync_threshold_exceeded: u64,
    commits: CommitStats,
    /// When `commits` was last logged, and what it said then.
    reported: (Instant, CommitStats),
}

/// How well group commit works: transactions per write and per fsync since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches written: one write (and, with forceSync, one fsync) each.
    pub batches: u64,
    pub entries: u64,
    pub fsyncs: u64,
}

impl std::fmt::Display for CommitStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} transactions in {} writes and {} fsyncs ({:.2} per write)",
            self.entries,
            self.batches,
            self.fsyncs,
            self.entries as f64 / self.batches.max(1) as f64
        )
    }
}

/// How often the commit counters are logged while they change.
const COMMIT_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

struct Current {
    file: File,
    /// Logical end: where the next entry goes.
    pos: u64,
    /// Allocated length.
    allocated: u64,
}

impl FileTxnLog {
    /// Opens the log directory (`dataLogDir/version-2`), creating it if needed. New
    /// entries always go to a new file, as in ZooKeeper: nothing is appended to a file a
    /// previous process wrote.
    pub fn open(
        dir: &Path,
        prealloc: u64,
        force_sync: bool,
        fsync_warn_ms: u64,
        last_zxid: i64,
    ) -> io::Result<FileTxnLog> {
        std::fs::create_dir_all(dir)?;
        Ok(FileTxnLog {
            dir: dir.to_owned(),
            current: None,
            prealloc,
            force_sync,
            fsync_warn_ms,
            last_zxid,
            fsync_threshold_exceeded: 0,
            commits: CommitStats::default(),
            reported: (Instant::now(), CommitStats::default()),
        })
    }

    /// Group-commit counters since the log was opened.
    pub fn commit_stats(&self) -> CommitStats {
        self.commits
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ends the current file; the next entry starts `log.<its zxid>` (`rollLog`).
    pub fn roll(&mut self) {
        self.current = None;
    }

    fn create(&mut self, first_zxid: i64) -> io::Result<()> {
        let name = self.dir.join(log_name(first_zxid));
        info!("Creating new log file: {}", log_name(first_zxid));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&name)?;
        let mut hdr = [0u8; HEADER_LEN as usize];
        hdr[0..4].copy_from_slice(&TXNLOG_MAGIC.to_be_bytes());
        hdr[4..8].copy_from_slice(&VERSION.to_be_bytes());
        file.write_all_at(&hdr, 0)?;
        let mut c = Current {
            file,
            pos: HEADER_LEN,
            allocated: HEADER_LEN,
        };
        // The header and the new directory entry must survive a crash before any entry
        // in the file is acknowledged.
        Self::reserve(&mut c, self.prealloc, 0)?;
        c.file.sync_all()?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.current = Some(c);
        Ok(())
    }

    /// Makes sure `need` more bytes fit after `pos`, growing the file by whole
    /// `preAllocSize` steps with real blocks, as ZooKeeper's `FilePadding` grows it.
    fn reserve(c: &mut Current, prealloc: u64, need: u64) -> io::Result<()> {
        if c.pos + need + 4096 < c.allocated {
            return Ok(());
        }
        let step = prealloc.max(4096);
        let mut target = c.allocated.max(HEADER_LEN) + step;
        while target < c.pos + need + 4096 {
            target += step;
        }
        fallocate(&c.file, c.allocated, target - c.allocated)?;
        c.allocated = target;
        Ok(())
    }
}

impl Drop for FileTxnLog {
    fn drop(&mut self) {
        if self.commits != self.reported.1 {
            info!("txnlog group commit since start: {}", self.commits);
        }
    }
}

/// Reserves real blocks for `[offset, offset+len)`, failing with ENOSPC up front.
fn fallocate(f: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fallocate only reads its integer arguments and works on the open
    // descriptor we own for the duration of the call.
    let r =
        unsafe { libc::posix_fallocate(f.as_raw_fd(), offset as libc::off_t, len as libc::off_t) };
    if r == 0 {
        Ok(())
    } else if r == libc::EOPNOTSUPP || r == libc::EINVAL {
        // A filesystem without fallocate: extend sparsely, as ZooKeeper does.
        f.set_len(offset + len)
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

impl TxnLog for FileTxnLog {
    fn append(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if self.current.is_none() {
            self.create(first.zxid)?;
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.bytes.len() + 13).sum());
        for e in entries {
            buf.extend_from_slice(&(adler2::adler32_slice(&e.bytes) as i64).to_be_bytes());
            buf.extend_from_slice(&(e.bytes.len() as i32).to_be_bytes());
            buf.extend_from_slice(&e.bytes);
            buf.push(EOR);
        }
        let prealloc = self.prealloc;
        let Some(c) = self.current.as_mut() else {
            return Err(io::Error::other("no open log file"));
        };
        // Space first: if the disk is full this fails before a byte of the batch lands.
        Self::reserve(c, prealloc, buf.len() as u64)?;
        if let Err(e) = c.file.write_all_at(&buf, c.pos) {
            // Whatever part landed is not acknowledged; zero it so the file ends cleanly
            // where it did before this batch.
            let _ = c.file.write_all_at(&vec![0u8; buf.len()], c.pos);
            return Err(e);
        }
        if self.force_sync {
            let t = Instant::now();
            if let Err(e) = c.file.sync_data() {
                // The batch is refused, so its entries must not outlive it: left in the
                // file, those beyond a shorter next batch would be replayed after a crash.
                let _ = c.file.write_all_at(&vec![0u8; buf.len()], c.pos);
                return Err(e);
            }
            self.commits.fsyncs += 1;
            let ms = t.elapsed().as_millis() as u64;
            if ms > self.fsync_warn_ms {
                self.fsync_threshold_exceeded += 1;
                warn!(
                    "fsync-ing the write ahead log in {} took {ms}ms which will adversely effect operation latency.File size is {} bytes. See the ZooKeeper troubleshooting guide",
                    std::thread::current().name().unwrap_or("txnlog"),
                    c.allocated
                );
            }
        }
        c.pos += buf.len() as u64;
        if let Some(last) = entries.last() {
            self.last_zxid = last.zxid;
        }
        self.commits.batches += 1;
        self.commits.entries += entries.len() as u64;
        if self.reported.0.elapsed() >= COMMIT_REPORT_EVERY {
            info!("txnlog group commit since start: {}", self.commits);
            self.reported = (Instant::now(), self.commits);
        }
        Ok(())
    }

    fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    fn discard(&mut self) -> io::Result<()> {
        self.current = None;
        for (_, path) in log_files(&self.dir)? {
            info!(
                "Removing file: {} (a new tree was installed)",
                path.display()
            );
            std::fs::remove_file(&path)?;
        }
        File::open(&self.dir)?.sync_all()?;
        self.last_zxid = 0;
        Ok(())
    }

    fn read_after(&self, zxid: i64) -> Option<Vec<LogEntry>> {
        let entries = read_log(&self.dir, zxid).ok()?;
        Some(
            entries
                .into_iter()
                .map(|e| LogEntry {
                    zxid: e.zxid,
                    bytes: e.bytes.into(),
                })
                .collect(),
        )
    }

    fn roll(&mut self) {
        FileTxnLog::roll(self)
    }

    fn fsync_threshold_exceeded(&self) -> u64 {
        self.fsync_threshold_exceeded
    }
}

/// Entries with zxid > `after`, from the newest file starting at or before `after + 1` on
/// (`FileTxnIterator`). A torn tail is tolerated in the newest file only.
pub fn read_log(dir: &Path, after: i64) -> Result<Vec<ReadEntry>, LogError> {
    let files = log_files(dir).map_err(|source| LogError::Io {
        file: dir.to_owned(),
        source,
    })?;
    let start = files
        .iter()
        .rposition(|(z, _)| *z <= after + 1)
        .unwrap_or(0);
    let mut out = Vec::new();
    let n = files.len();
    for (i, (_, path)) in files.iter().enumerate().skip(start) {
        let scan = scan_file(path)?;
        if let Some(what) = &scan.torn {
            if i + 1 < n {
                // A later file exists, so this one was complete once: damage, not a tear.
                return Err(LogError::Corrupt {
                    file: path.clone(),
                    offset: scan.valid_end,
                    what: what.clone(),
                });
            }
        }
        out.extend(scan.entries.into_iter().filter(|e| e.zxid > after));
    }
    Ok(out)
}

/// Cuts a torn tail off the newest log file: zeroes everything after its last whole
/// entry, so that ZooKeeper's reader and ours both see a clean end. Returns what was cut.
pub fn repair_tail(dir: &Path) -> Result<Option<(PathBuf, u64, String)>, LogError> {
    let files = log_files(dir).map_err(|source| LogError::Io {
        file: dir.to_owned(),
        source,
    })?;
    let Some((_, path)) = files.last() else {
        return Ok(None);
    };
    let scan = scan_file(path)?;
    let Some(what) = scan.torn else {
        return Ok(None);
    };
    let io_err = |source| LogError::Io {
        file: path.clone(),
        source,
    };
    let mut f = OpenOptions::new().write(true).open(path).map_err(io_err)?;
    let len = f.seek(SeekFrom::End(0)).map_err(io_err)?;
    if scan.valid_end < HEADER_LEN {
        // Not even a header: the file never held anything.
        drop(f);
        std::fs::remove_file(path).map_err(io_err)?;
    } else {
        let zeros = vec![0u8; (len - scan.valid_end).min(1 << 20) as usize];
        let mut at = scan.valid_end;
        while at < len {
            let n = ((len - at) as usize).min(zeros.len());
            f.write_all_at(&zeros[..n], at).map_err(io_err)?;
            at += n as u64;
        }
        f.flush().map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
    }
    Ok(Some((path.clone(), scan.valid_end, what)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::txn::{CreateSessionTxn, TxnBody, TxnEntry, TxnHeader};

    fn entry(zxid: i64) -> LogEntry {
        let e = TxnEntry {
            header: TxnHeader {
                client_id: 1,
                cxid: 0,
                zxid,
                time: 1000,
                r#type: -10,
            },
            body: TxnBody::CreateSession(CreateSessionTxn { time_out: 30000 }),
            digest: None,
        };
        LogEntry {
            zxid,
            bytes: e.to_bytes(),
        }
    }

    fn zxids(v: &[ReadEntry]) -> Vec<i64> {
        v.iter().map(|e| e.zxid).collect()
    }

    #[test]
    fn names_parse_as_zookeeper_parses_them() {
        assert_eq!(log_name(0x1a), "log.1a");
        assert_eq!(zxid_from_name("log.1a", "log"), Some(0x1a));
        assert_eq!(zxid_from_name("log.38.fixed", "log"), Some(0x38));
        assert_eq!(
            zxid_from_name("snapshot.ffffffffffffffff", "snapshot"),
            None
        );
        assert_eq!(zxid_from_name("log", "log"), None);
    }

    #[test]
    fn writes_read_back_across_rolls() {
        let d = tempfile::tempdir().unwrap();
        let mut l = FileTxnLog::open(d.path(), 64 * 1024, true, 1000, 0).unwrap();
        l.append(&[entry(1), entry(2)]).unwrap();
        l.append(&[entry(3)]).unwrap();
        l.roll();
        l.append(&[entry(4)]).unwrap();
        let files = log_files(d.path()).unwrap();
        assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 4]);
        let bytes = std::fs::read(&files[0].1).unwrap();
        assert_eq!(&bytes[0..4], b"ZKLG");
        assert!(bytes.len() >= 64 * 1024, "preallocated");
        assert_eq!(zxids(&read_log(d.path(), 0).unwrap()), vec![1, 2, 3, 4]);
        assert_eq!(zxids(&read_log(d.path(), 2).unwrap()), vec![3, 4]);
        assert_eq!(zxids(&read_log(d.path(), 3).unwrap()), vec![4]);
    }

    #[test]
    fn a_torn_tail_is_cut_at_any_byte() {
        let d = tempfile::tempdir().unwrap();
        let mut l = FileTxnLog::open(d.path(), 4096, false, 1000, 0).unwrap();
        l.append(&[entry(1), entry(2), entry(3)]).unwrap();
        drop(l);
        let path = log_files(d.path()).unwrap()[0].1.clone();
        let full = std::fs::read(&path).unwrap();
        let end = scan_file(&path).unwrap().valid_end as usize;
        let start3 = scan_file(&path).unwrap().entries[2].offset as usize;
        for cut in start3 + 1..end {
            let mut b = full.clone();
            // A crash leaves the entry partly written and the rest as it was (zeros).
            for x in &mut b[cut..end] {
                *x = 0;
            }
            std::fs::write(&path, &b).unwrap();
            let r = read_log(d.path(), 0).unwrap();
            assert_eq!(zxids(&r), vec![1, 2], "cut at {cut}");
            // When the bytes written so far are all zeros there is nothing to cut.
            repair_tail(d.path()).unwrap();
            assert!(scan_file(&path).unwrap().torn.is_none(), "cut at {cut}");
            assert_eq!(zxids(&read_log(d.path(), 0).unwrap()), vec![1, 2]);
            // Truncating the file there is a tear too.
            std::fs::write(&path, &full[..cut]).unwrap();
            assert_eq!(zxids(&read_log(d.path(), 0).unwrap()), vec![1, 2]);
        }
    }

    #[test]
    fn commit_stats_count_writes_entries_and_fsyncs() {
        let d = tempfile::tempdir().unwrap();
        let mut l = FileTxnLog::open(d.path(), 4096, true, 1000, 0).unwrap();
        l.append(&[entry(1), entry(2), entry(3)]).unwrap();
        l.append(&[entry(4)]).unwrap();
        let want = CommitStats {
            batches: 2,
            entries: 4,
            fsyncs: 2,
        };
        assert_eq!(l.commit_stats(), want);
        assert!(want.to_string().contains("(2.00 per write)"), "{want}");
    }

    #[test]
    fn damage_followed_by_good_entries_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let mut l = FileTxnLog::open(d.path(), 4096, false, 1000, 0).unwrap();
        l.append(&[entry(1), entry(2), entry(3)]).unwrap();
        drop(l);
        let path = log_files(d.path()).unwrap()[0].1.clone();
        let mut b = std::fs::read(&path).unwrap();
        let off = scan_file(&path).unwrap().entries[1].offset as usize;
        b[off + 20] ^= 0xff;
        std::fs::write(&path, &b).unwrap();
        let e = read_log(d.path(), 0).unwrap_err();
        assert!(matches!(e, LogError::Corrupt { .. }), "{e}");
    }
}
