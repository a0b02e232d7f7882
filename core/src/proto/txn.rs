//! ZooKeeper 3.8 transaction records (jute module `org.apache.zookeeper.txn`), the
//! [`TxnBody`] enum that ties a transaction type code to its record, and [`TxnEntry`], the
//! header + body + optional digest unit that the transaction log stores and that leaders
//! send to learners in proposals.
//!
//! Decoding mirrors ZooKeeper's `SerializeUtils.deserializeTxn` (top level) and
//! `DataTree.processTxn` (operations inside a multi):
//!
//! * a top-level `create` (type 1) that is too short for `CreateTxn` is re-read as the
//!   pre-3.3 `CreateTxnV0` (no `parentCVersion`) and turned into a `CreateTxn` with
//!   `parent_cversion = -1`, which tells the apply step to fix the parent's cversion up;
//! * a top-level `closeSession` (type −11) may have no body at all (logs written before
//!   `CloseSessionTxn` existed, or with `zookeeper.closeSessionTxn.enabled=false`); it
//!   decodes as a `CloseSessionTxn` without paths;
//! * a `TxnDigest` follows the body when the writer had digests enabled; it is read if
//!   the bytes after the body hold one, and silently absent otherwise (ZooKeeper treats
//!   an EOF there as "no digest");
//! * inside a multi each `Txn`'s `data` is the encoded sub-record; only the types
//!   ZooKeeper can apply there are accepted (create, create2, createTTL,
//!   createContainer, delete, deleteContainer, setData, check, error), and the fallbacks
//!   above do not apply.

use bytes::{Bytes, BytesMut};

use super::jute::{DecodeError, JuteWrite, Reader, Record};
use super::records::{jute_record, Acl};
use super::OpCode;

/// One committed transaction as ZooKeeper serializes it (TxnHeader + txn + the 3.8
/// digest): the unit the log stores, the relay ships, a Java leader's INFORM carries and
/// every replica applies. It sits here, below the server, the log and the relay, so that
/// none of them depends on another for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub zxid: i64,
    pub bytes: Bytes,
}

jute_record! {
    /// The data tree digest after applying a transaction.
    pub struct TxnDigest {
        version: i32,
        tree_digest: i64,
    }

    /// Precedes every transaction.
    pub struct TxnHeader {
        /// The session that issued the request.
        client_id: i64,
        cxid: i32,
        zxid: i64,
        /// Wall-clock time of the leader, ms since the epoch.
        time: i64,
        /// The transaction type (an [`OpCode`] value).
        r#type: i32,
    }

    /// The pre-3.3 create record, without `parentCVersion`. Only ever decoded.
    pub struct CreateTxnV0 {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral: bool,
    }

    /// `create` and `create2`.
    pub struct CreateTxn {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral: bool,
        /// The parent's cversion after the create; −1 asks the apply step to compute it.
        parent_cversion: i32,
    }

    /// `createTTL`.
    pub struct CreateTtlTxn {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl: i64,
    }

    /// `createContainer`.
    pub struct CreateContainerTxn {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        parent_cversion: i32,
    }

    /// `delete` and `deleteContainer`.
    pub struct DeleteTxn {
        path: String,
    }

    /// `setData` and `reconfig` (whose data is the new dynamic configuration).
    pub struct SetDataTxn {
        path: String,
        data: Option<Bytes>,
        version: i32,
    }

    /// `check` inside a multi.
    pub struct CheckVersionTxn {
        path: String,
        version: i32,
    }

    /// `setACL`.
    pub struct SetAclTxn {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    }

    /// Unused by 3.8 servers; kept for completeness.
    pub struct SetMaxChildrenTxn {
        path: String,
        max: i32,
    }

    /// `createSession`: the negotiated session timeout.
    pub struct CreateSessionTxn {
        time_out: i32,
    }

    /// `closeSession`: the ephemeral nodes the session owned when it closed.
    pub struct CloseSessionTxn {
        paths2_delete: Vec<String>,
    }

    /// A failed request (top level) or failed operation (inside a multi).
    pub struct ErrorTxn {
        err: i32,
    }

    /// One operation of a [`MultiTxn`]: its type and its encoded record.
    pub struct Txn {
        r#type: i32,
        data: Bytes,
    }

    /// `multi`: the operations, each as a [`Txn`].
    pub struct MultiTxn {
        txns: Vec<Txn>,
    }
}

impl From<CreateTxnV0> for CreateTxn {
    /// An old create as the current record; `parent_cversion = -1` makes the apply step
    /// fix the parent's cversion up, as ZooKeeper does.
    fn from(v0: CreateTxnV0) -> CreateTxn {
        CreateTxn {
            path: v0.path,
            data: v0.data,
            acl: v0.acl,
            ephemeral: v0.ephemeral,
            parent_cversion: -1,
        }
    }
}

const CREATE: i32 = OpCode::Create as i32;
const CREATE2: i32 = OpCode::Create2 as i32;
const CREATE_CONTAINER: i32 = OpCode::CreateContainer as i32;
const CREATE_TTL: i32 = OpCode::CreateTtl as i32;
const DELETE: i32 = OpCode::Delete as i32;
const DELETE_CONTAINER: i32 = OpCode::DeleteContainer as i32;
const SET_DATA: i32 = OpCode::SetData as i32;
const SET_ACL: i32 = OpCode::SetAcl as i32;
const CHECK: i32 = OpCode::Check as i32;
const MULTI: i32 = OpCode::Multi as i32;
const CREATE_SESSION: i32 = OpCode::CreateSession as i32;
const CLOSE_SESSION: i32 = OpCode::CloseSession as i32;
const ERROR: i32 = OpCode::Error as i32;
const RECONFIG: i32 = OpCode::Reconfig as i32;

/// A transaction's body, tagged by its type code.
///
/// The header's `type` must equal [`TxnBody::txn_type`]; [`TxnEntry::new`] keeps them in
/// step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxnBody {
    /// Type 1.
    Create(CreateTxn),
    /// Type 15: same record as `create`.
    Create2(CreateTxn),
    /// Type 19.
    CreateContainer(CreateContainerTxn),
    /// Type 21.
    CreateTtl(CreateTtlTxn),
    /// Type 2.
    Delete(DeleteTxn),
    /// Type 20: same record as `delete`.
    DeleteContainer(DeleteTxn),
    /// Type 5.
    SetData(SetDataTxn),
    /// Type 7.
    SetAcl(SetAclTxn),
    /// Type 13; ZooKeeper only writes it inside a multi.
    Check(CheckVersionTxn),
    /// Type 14, encoded as a [`MultiTxn`] whose elements are `Txn { type, data =
    /// encoded sub-record }`. Elements must not themselves be `Multi` (or any type
    /// ZooKeeper cannot apply inside a multi): such a body encodes but will not decode.
    Multi(Vec<TxnBody>),
    /// Type −10.
    CreateSession(CreateSessionTxn),
    /// Type −11.
    CloseSession(CloseSessionTxn),
    /// Type −1.
    Error(ErrorTxn),
    /// Type 16: a `SetDataTxn` on the dynamic config node.
    Reconfig(SetDataTxn),
}

impl TxnBody {
    /// The transaction type code (an [`OpCode`] value) this body is written under.
    pub fn txn_type(&self) -> i32 {
        match self {
            TxnBody::Create(_) => CREATE,
            TxnBody::Create2(_) => CREATE2,
            TxnBody::CreateContainer(_) => CREATE_CONTAINER,
            TxnBody::CreateTtl(_) => CREATE_TTL,
            TxnBody::Delete(_) => DELETE,
            TxnBody::DeleteContainer(_) => DELETE_CONTAINER,
            TxnBody::SetData(_) => SET_DATA,
            TxnBody::SetAcl(_) => SET_ACL,
            TxnBody::Check(_) => CHECK,
            TxnBody::Multi(_) => MULTI,
            TxnBody::CreateSession(_) => CREATE_SESSION,
            TxnBody::CloseSession(_) => CLOSE_SESSION,
            TxnBody::Error(_) => ERROR,
            TxnBody::Reconfig(_) => RECONFIG,
        }
    }

    /// Appends the body's record (for `Multi`, a `MultiTxn`).
    pub fn encode(&self, w: &mut BytesMut) {
        match self {
            TxnBody::Create(t) | TxnBody::Create2(t) => t.encode(w),
            TxnBody::CreateContainer(t) => t.encode(w),
            TxnBody::CreateTtl(t) => t.encode(w),
            TxnBody::Delete(t) | TxnBody::DeleteContainer(t) => t.encode(w),
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => t.encode(w),
            TxnBody::SetAcl(t) => t.encode(w),
            TxnBody::Check(t) => t.encode(w),
            TxnBody::CreateSession(t) => t.encode(w),
            TxnBody::CloseSession(t) => t.encode(w),
            TxnBody::Error(t) => t.encode(w),
            TxnBody::Multi(ops) => {
                w.put_int(ops.len() as i32);
                for op in ops {
                    w.put_int(op.txn_type());
                    // `buffer data`: a length prefix, patched once the record is written.
                    let len_at = w.len();
                    w.put_int(0);
                    let start = w.len();
                    op.encode(w);
                    let len = (w.len() - start) as i32;
                    w[len_at..start].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }

    /// This body as one element of a [`MultiTxn`].
    pub fn to_txn(&self) -> Txn {
        Txn {
            r#type: self.txn_type(),
            data: self.to_bytes(),
        }
    }

    /// Decodes a top-level body of type `txn_type` from `bytes`; trailing bytes (such as
    /// a digest) are ignored. See [`TxnBody::read`].
    pub fn decode(txn_type: i32, bytes: &[u8]) -> Result<TxnBody, DecodeError> {
        Self::read(txn_type, &mut Reader::new(bytes))
    }

    /// Reads a top-level body of type `txn_type`, leaving `r` just after it, with
    /// ZooKeeper's fallbacks for old `create` and `closeSession` bodies. Types ZooKeeper
    /// never logs (reads, pings, ...) are a [`DecodeError::BadValue`].
    pub fn read(txn_type: i32, r: &mut Reader<'_>) -> Result<TxnBody, DecodeError> {
        match txn_type {
            CREATE => {
                let start = r.clone();
                match CreateTxn::decode(r) {
                    Ok(t) => Ok(TxnBody::Create(t)),
                    Err(_) => {
                        // Perhaps a V0 create. The two records share every field but the
                        // last, so if this fails too it fails where CreateTxn did.
                        *r = start;
                        Ok(TxnBody::Create(CreateTxnV0::decode(r)?.into()))
                    }
                }
            }
            CLOSE_SESSION => {
                let start = r.clone();
                match CloseSessionTxn::decode(r) {
                    Ok(t) => Ok(TxnBody::CloseSession(t)),
                    Err(_) => {
                        // An empty (pre-CloseSessionTxn) body; whatever follows, if
                        // anything, is left for the digest reader.
                        *r = start;
                        Ok(TxnBody::CloseSession(CloseSessionTxn::default()))
                    }
                }
            }
            CREATE_SESSION => Ok(TxnBody::CreateSession(CreateSessionTxn::decode(r)?)),
            SET_ACL => Ok(TxnBody::SetAcl(SetAclTxn::decode(r)?)),
            RECONFIG => Ok(TxnBody::Reconfig(SetDataTxn::decode(r)?)),
            MULTI => {
                let ops = r.read_vec(8, |r| {
                    let op_type = r.read_i32()?;
                    let data = r.read_buffer()?;
                    Self::decode_multi_op(op_type, data)
                })?;
                Ok(TxnBody::Multi(ops))
            }
            _ => Self::read_plain(txn_type, r),
        }
    }

    /// Decodes one element of a [`MultiTxn`] (as `DataTree.processTxn` does: no
    /// fallbacks, trailing bytes ignored, only the types valid inside a multi).
    pub fn from_txn(txn: &Txn) -> Result<TxnBody, DecodeError> {
        Self::decode_multi_op(txn.r#type, &txn.data)
    }

    fn decode_multi_op(op_type: i32, data: &[u8]) -> Result<TxnBody, DecodeError> {
        match op_type {
            CREATE | CREATE2 | CREATE_TTL | CREATE_CONTAINER | DELETE | DELETE_CONTAINER
            | SET_DATA | ERROR | CHECK => Self::read_plain(op_type, &mut Reader::new(data)),
            other => Err(DecodeError::BadValue {
                field: "multi op type",
                value: other.into(),
            }),
        }
    }

    /// The types whose body is exactly one record, with no special cases.
    fn read_plain(txn_type: i32, r: &mut Reader<'_>) -> Result<TxnBody, DecodeError> {
        Ok(match txn_type {
            CREATE => TxnBody::Create(CreateTxn::decode(r)?),
            CREATE2 => TxnBody::Create2(CreateTxn::decode(r)?),
            CREATE_TTL => TxnBody::CreateTtl(CreateTtlTxn::decode(r)?),
            CREATE_CONTAINER => TxnBody::CreateContainer(CreateContainerTxn::decode(r)?),
            DELETE => TxnBody::Delete(DeleteTxn::decode(r)?),
            DELETE_CONTAINER => TxnBody::DeleteContainer(DeleteTxn::decode(r)?),
            SET_DATA => TxnBody::SetData(SetDataTxn::decode(r)?),
            CHECK => TxnBody::Check(CheckVersionTxn::decode(r)?),
            ERROR => TxnBody::Error(ErrorTxn::decode(r)?),
            other => {
                return Err(DecodeError::BadValue {
                    field: "txn type",
                    value: other.into(),
                })
            }
        })
    }
}

impl TryFrom<&MultiTxn> for TxnBody {
    type Error = DecodeError;

    /// A decoded [`MultiTxn`] as a `TxnBody::Multi`.
    fn try_from(m: &MultiTxn) -> Result<TxnBody, DecodeError> {
        m.txns
            .iter()
            .map(TxnBody::from_txn)
            .collect::<Result<Vec<_>, _>>()
            .map(TxnBody::Multi)
    }
}

/// One logged transaction: what ZooKeeper's `Util.marshallTxnEntry` writes and
/// `SerializeUtils.deserializeTxn` reads (the payload of a txn-log record and of a
/// leader's PROPOSAL packet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub body: TxnBody,
    pub digest: Option<TxnDigest>,
}

impl TxnEntry {
    /// An entry whose header type is set from the body.
    pub fn new(mut header: TxnHeader, body: TxnBody, digest: Option<TxnDigest>) -> TxnEntry {
        header.r#type = body.txn_type();
        TxnEntry {
            header,
            body,
            digest,
        }
    }

    /// Header, body, then the digest if there is one.
    pub fn encode(&self, w: &mut BytesMut) {
        self.header.encode(w);
        self.body.encode(w);
        if let Some(d) = &self.digest {
            d.encode(w);
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }

    /// Reads the header, the body its type calls for, then a digest if the remaining
    /// bytes hold one (fewer than a digest's 12 bytes means none, as in ZooKeeper; bytes
    /// after the digest are ignored).
    pub fn decode(bytes: &[u8]) -> Result<TxnEntry, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = TxnHeader::decode(&mut r)?;
        let body = TxnBody::read(header.r#type, &mut r)?;
        let digest = TxnDigest::decode(&mut r).ok();
        Ok(TxnEntry {
            header,
            body,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Id;
    use bytes::BufMut;
    use proptest::prelude::*;
    use std::fmt::Debug;

    fn check<T: Record + PartialEq + Debug>(v: T) -> Bytes {
        let b = v.to_bytes();
        let mut r = Reader::new(&b);
        assert_eq!(T::decode(&mut r).expect("decode"), v);
        assert_eq!(r.remaining(), 0);
        for cut in 0..b.len() {
            assert!(T::from_bytes(&b[..cut]).is_err(), "{v:?} cut at {cut}");
        }
        b
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn acl() -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            id: Id {
                scheme: s("world"),
                id: s("anyone"),
            },
        }]
    }

    fn create() -> CreateTxn {
        CreateTxn {
            path: s("/a"),
            data: Some(Bytes::from_static(b"x")),
            acl: acl(),
            ephemeral: false,
            parent_cversion: 3,
        }
    }

    fn header(t: i32) -> TxnHeader {
        TxnHeader {
            client_id: 0x0100_0000_0000_0001,
            cxid: 5,
            zxid: 0x2_0000_0007,
            time: 1_700_000_000_123,
            r#type: t,
        }
    }

    fn digest() -> TxnDigest {
        TxnDigest {
            version: 2,
            tree_digest: 0x0123_4567_89ab_cdef,
        }
    }

    fn all_bodies() -> Vec<TxnBody> {
        let set_data = SetDataTxn {
            path: s("/d"),
            data: Some(Bytes::from_static(b"v2")),
            version: 4,
        };
        vec![
            TxnBody::Create(create()),
            TxnBody::Create2(CreateTxn {
                ephemeral: true,
                ..create()
            }),
            TxnBody::CreateContainer(CreateContainerTxn {
                path: s("/c"),
                data: Some(Bytes::new()),
                acl: acl(),
                parent_cversion: 1,
            }),
            TxnBody::CreateTtl(CreateTtlTxn {
                path: s("/t"),
                data: Some(Bytes::from_static(b"t")),
                acl: acl(),
                parent_cversion: 2,
                ttl: 1000,
            }),
            TxnBody::Delete(DeleteTxn { path: s("/a") }),
            TxnBody::DeleteContainer(DeleteTxn { path: s("/c") }),
            TxnBody::SetData(set_data.clone()),
            TxnBody::SetAcl(SetAclTxn {
                path: s("/a"),
                acl: acl(),
                version: 1,
            }),
            TxnBody::Check(CheckVersionTxn {
                path: s("/a"),
                version: 0,
            }),
            TxnBody::Multi(vec![
                TxnBody::Create(create()),
                TxnBody::Check(CheckVersionTxn {
                    path: s("/a"),
                    version: 0,
                }),
                TxnBody::SetData(set_data.clone()),
                TxnBody::Delete(DeleteTxn { path: s("/a") }),
                TxnBody::Error(ErrorTxn { err: 0 }),
            ]),
            TxnBody::Multi(vec![]),
            TxnBody::CreateSession(CreateSessionTxn { time_out: 30_000 }),
            TxnBody::CloseSession(CloseSessionTxn {
                paths2_delete: vec![s("/e1"), s("/e2")],
            }),
            TxnBody::Error(ErrorTxn { err: -101 }),
            TxnBody::Reconfig(SetDataTxn {
                path: s("/zookeeper/config"),
                data: Some(Bytes::from_static(
                    b"server.1=a:2888:3888;2181\nversion=100000000",
                )),
                version: -1,
            }),
        ]
    }

    #[test]
    fn round_trip_txn_records() {
        check(digest());
        check(header(1));
        check(CreateTxnV0 {
            path: s("/a"),
            data: Some(Bytes::from_static(b"x")),
            acl: acl(),
            ephemeral: true,
        });
        check(create());
        check(CreateTtlTxn {
            path: s("/t"),
            data: Some(Bytes::new()),
            acl: acl(),
            parent_cversion: 0,
            ttl: 5,
        });
        check(CreateContainerTxn {
            path: s("/c"),
            data: Some(Bytes::new()),
            acl: acl(),
            parent_cversion: 0,
        });
        check(DeleteTxn { path: s("/a") });
        check(SetDataTxn {
            path: s("/a"),
            data: Some(Bytes::from_static(b"y")),
            version: 1,
        });
        check(CheckVersionTxn {
            path: s("/a"),
            version: 1,
        });
        check(SetAclTxn {
            path: s("/a"),
            acl: acl(),
            version: 1,
        });
        check(SetMaxChildrenTxn {
            path: s("/a"),
            max: 3,
        });
        check(CreateSessionTxn { time_out: 4000 });
        check(CloseSessionTxn {
            paths2_delete: vec![s("/e")],
        });
        check(ErrorTxn { err: -110 });
        check(Txn {
            r#type: 2,
            data: DeleteTxn { path: s("/a") }.to_bytes(),
        });
        check(MultiTxn {
            txns: vec![Txn {
                r#type: 2,
                data: DeleteTxn { path: s("/a") }.to_bytes(),
            }],
        });
    }

    #[test]
    fn round_trip_bodies_and_entries() {
        for body in all_bodies() {
            let bytes = body.to_bytes();
            assert_eq!(TxnBody::decode(body.txn_type(), &bytes).unwrap(), body);
            for digest in [None, Some(digest())] {
                let e = TxnEntry::new(header(0), body.clone(), digest);
                assert_eq!(e.header.r#type, body.txn_type());
                let b = e.to_bytes();
                assert_eq!(TxnEntry::decode(&b).unwrap(), e, "{body:?}");
            }
        }
    }

    #[test]
    fn truncated_entries_are_errors() {
        for body in all_bodies() {
            if matches!(body, TxnBody::CloseSession(_)) {
                continue; // an empty closeSession body is legal
            }
            let e = TxnEntry::new(header(0), body, None);
            let b = e.to_bytes();
            for cut in 0..b.len() {
                let r = TxnEntry::decode(&b[..cut]);
                // A cut V1 create may legally re-read as V0 (see create_v0_fallback).
                if let Ok(got) = r {
                    assert!(
                        matches!(&got.body, TxnBody::Create(c) if c.parent_cversion == -1),
                        "{got:?} from {cut} of {} bytes",
                        b.len()
                    );
                }
            }
        }
    }

    #[test]
    fn multi_with_create_exact_bytes() {
        let body = TxnBody::Multi(vec![TxnBody::Create(create())]);
        let mut want = BytesMut::new();
        want.put_slice(&[0, 0, 0, 1]); // one Txn
        want.put_slice(&[0, 0, 0, 1]); // Txn.type = create
        want.put_slice(&[0, 0, 0, 43]); // Txn.data length
        want.put_slice(&[0, 0, 0, 2, b'/', b'a']); // path
        want.put_slice(&[0, 0, 0, 1, b'x']); // data
        want.put_slice(&[0, 0, 0, 1]); // one ACL
        want.put_slice(&[0, 0, 0, 31]); // perms
        want.put_slice(&[0, 0, 0, 5]);
        want.put_slice(b"world");
        want.put_slice(&[0, 0, 0, 6]);
        want.put_slice(b"anyone");
        want.put_slice(&[0]); // ephemeral
        want.put_slice(&[0, 0, 0, 3]); // parentCVersion
        let want = want.freeze();
        assert_eq!(want.len(), 12 + 43);
        assert_eq!(body.to_bytes(), want);
        assert_eq!(TxnBody::decode(14, &want).unwrap(), body);

        // The same through the generic records.
        let m = MultiTxn::from_bytes(&want).unwrap();
        assert_eq!(m.txns.len(), 1);
        assert_eq!(m.txns[0].r#type, 1);
        assert_eq!(CreateTxn::from_bytes(&m.txns[0].data).unwrap(), create());
        assert_eq!(TxnBody::try_from(&m).unwrap(), body);
        assert_eq!(
            body,
            TxnBody::Multi(vec![TxnBody::from_txn(&m.txns[0]).unwrap()])
        );

        // And as a whole log entry with a digest.
        let e = TxnEntry::new(header(0), body, Some(digest()));
        let b = e.to_bytes();
        let mut expect = header(14).to_bytes().to_vec();
        expect.extend_from_slice(&want);
        expect.extend_from_slice(&[0, 0, 0, 2, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(&b[..], &expect[..]);
    }

    #[test]
    fn create_v0_fallback() {
        let v0 = CreateTxnV0 {
            path: s("/old"),
            data: Some(Bytes::from_static(b"d")),
            acl: acl(),
            ephemeral: true,
        };
        let mut b = header(CREATE).to_bytes().to_vec();
        b.extend_from_slice(&v0.to_bytes());
        let e = TxnEntry::decode(&b).unwrap();
        assert_eq!(
            e.body,
            TxnBody::Create(CreateTxn {
                path: s("/old"),
                data: Some(Bytes::from_static(b"d")),
                acl: acl(),
                ephemeral: true,
                parent_cversion: -1,
            })
        );
        assert_eq!(e.digest, None);
        // Only for `create`: create2 and creates inside a multi have no V0 form.
        assert!(TxnBody::decode(CREATE2, &v0.to_bytes()).is_err());
        let mut m = BytesMut::new();
        m.put_i32(1);
        m.put_i32(CREATE);
        m.put_buffer(&v0.to_bytes());
        assert!(TxnBody::decode(MULTI, &m).is_err());
        // A body too short even for V0 is still an error.
        assert!(TxnBody::decode(CREATE, &v0.to_bytes()[..10]).is_err());
    }

    #[test]
    fn close_session_without_body() {
        let b = header(CLOSE_SESSION).to_bytes();
        let e = TxnEntry::decode(&b).unwrap();
        assert_eq!(e.body, TxnBody::CloseSession(CloseSessionTxn::default()));
        assert_eq!(e.digest, None);
        assert_eq!(
            TxnBody::decode(CLOSE_SESSION, &[]).unwrap(),
            TxnBody::CloseSession(CloseSessionTxn::default())
        );
        // An empty paths vector and no body at all are the same thing.
        assert_eq!(
            TxnBody::decode(CLOSE_SESSION, &[0, 0, 0, 0]).unwrap(),
            TxnBody::CloseSession(CloseSessionTxn::default())
        );
    }

    #[test]
    fn digest_is_optional() {
        let e = TxnEntry::new(
            header(0),
            TxnBody::CreateSession(CreateSessionTxn { time_out: 10 }),
            Some(digest()),
        );
        let b = e.to_bytes();
        // Header, body, digest.
        assert_eq!(b.len(), 32 + 4 + 12);
        // Any partial digest reads as none, as ZooKeeper's EOF handling does.
        for cut in 36..b.len() {
            let got = TxnEntry::decode(&b[..cut]).unwrap();
            assert_eq!(got.digest, None);
            assert_eq!(got.body, e.body);
        }
        // Trailing bytes after a digest are ignored.
        let mut longer = b.to_vec();
        longer.push(0x42);
        assert_eq!(TxnEntry::decode(&longer).unwrap(), e);
    }

    #[test]
    fn rejected_types() {
        // Not a logged transaction type.
        assert!(matches!(
            TxnBody::decode(OpCode::GetData as i32, &[]),
            Err(DecodeError::BadValue { .. })
        ));
        assert!(TxnEntry::decode(&header(999).to_bytes()).is_err());
        // A multi may not nest a multi (nor sessions, setACL, reconfig).
        for bad in [MULTI, CREATE_SESSION, CLOSE_SESSION, SET_ACL, RECONFIG] {
            let inner = match bad {
                MULTI => TxnBody::Multi(vec![]),
                CREATE_SESSION => TxnBody::CreateSession(CreateSessionTxn { time_out: 1 }),
                CLOSE_SESSION => TxnBody::CloseSession(CloseSessionTxn::default()),
                SET_ACL => TxnBody::SetAcl(SetAclTxn::default()),
                _ => TxnBody::Reconfig(SetDataTxn::default()),
            };
            let b = TxnBody::Multi(vec![inner]).to_bytes();
            assert!(matches!(
                TxnBody::decode(MULTI, &b),
                Err(DecodeError::BadValue { .. })
            ));
        }
    }

    #[test]
    fn deep_nesting_cannot_recurse() {
        // 100k nested multi headers: must be a quick error, not a stack overflow.
        let mut b = BytesMut::new();
        for _ in 0..100_000 {
            b.put_i32(1);
            b.put_i32(MULTI);
            b.put_i32(i32::MAX);
        }
        assert!(TxnBody::decode(MULTI, &b).is_err());
    }

    const TYPES: &[i32] = &[
        CREATE,
        CREATE2,
        CREATE_CONTAINER,
        CREATE_TTL,
        DELETE,
        DELETE_CONTAINER,
        SET_DATA,
        SET_ACL,
        CHECK,
        MULTI,
        CREATE_SESSION,
        CLOSE_SESSION,
        ERROR,
        RECONFIG,
        0,
        3,
        100,
    ];

    proptest! {
        #[test]
        fn decoders_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            pick in 0..TYPES.len(),
            any_type in any::<i32>(),
        ) {
            let _ = TxnDigest::from_bytes(&bytes);
            let _ = TxnHeader::from_bytes(&bytes);
            let _ = CreateTxnV0::from_bytes(&bytes);
            let _ = CreateTxn::from_bytes(&bytes);
            let _ = CreateTtlTxn::from_bytes(&bytes);
            let _ = CreateContainerTxn::from_bytes(&bytes);
            let _ = DeleteTxn::from_bytes(&bytes);
            let _ = SetDataTxn::from_bytes(&bytes);
            let _ = CheckVersionTxn::from_bytes(&bytes);
            let _ = SetAclTxn::from_bytes(&bytes);
            let _ = SetMaxChildrenTxn::from_bytes(&bytes);
            let _ = CreateSessionTxn::from_bytes(&bytes);
            let _ = CloseSessionTxn::from_bytes(&bytes);
            let _ = ErrorTxn::from_bytes(&bytes);
            let _ = Txn::from_bytes(&bytes);
            if let Ok(m) = MultiTxn::from_bytes(&bytes) {
                let _ = TxnBody::try_from(&m);
            }
            let _ = TxnBody::decode(TYPES[pick], &bytes);
            let _ = TxnBody::decode(any_type, &bytes);
            let _ = TxnEntry::decode(&bytes);
            // Also behind a valid header, so the body decoders see the random bytes.
            let mut e = header(TYPES[pick]).to_bytes().to_vec();
            e.extend_from_slice(&bytes);
            let _ = TxnEntry::decode(&e);
        }

        #[test]
        fn entries_round_trip(
            pick in 0..15usize,
            zxid in any::<i64>(),
            with_digest in any::<bool>(),
        ) {
            let body = all_bodies().swap_remove(pick);
            let e = TxnEntry::new(
                TxnHeader { zxid, ..header(0) },
                body,
                with_digest.then(digest),
            );
            prop_assert_eq!(TxnEntry::decode(&e.to_bytes()).unwrap(), e);
        }
    }
}
