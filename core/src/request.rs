//! A client request decoded from its opcode and body: the typed form the server, the
//! proxy and the tests share. Decoding happens on the connection's task, off the
//! single-threaded core; a body that does not decode still travels, as
//! [`Request::Malformed`], so its MarshallingError reply keeps its place in the session's
//! order.

use bytes::{Bytes, BytesMut};

use crate::proto::records::*;
use crate::proto::{DecodeError, JuteWrite, OpCode, Reader, Record};

/// One operation inside a multi or multiRead (`MultiOperationRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// create, create2 and createContainer share the record; `op` says which.
    Create {
        op: OpCode,
        req: CreateRequest,
    },
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetChildren(GetChildrenRequest),
    GetData(GetDataRequest),
}

impl MultiOp {
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create { op, .. } => *op,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { req, .. } => &req.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    fn encode(&self, w: &mut BytesMut) {
        // A create whose flags are no CreateMode can only have come in under a createTTL
        // header (a create header refuses them, see `decode_multi`): it goes back out the
        // same way, or a proxy forwarding it would turn that op's BadArguments into a
        // MarshallingError for the whole multi.
        if let MultiOp::Create { req, .. } = self {
            if !(0..=4).contains(&req.flags) {
                MultiHeader {
                    r#type: OpCode::CreateTtl as i32,
                    done: false,
                    err: -1,
                }
                .encode(w);
                return CreateTtlRequest {
                    path: req.path.clone(),
                    data: req.data.clone(),
                    acl: req.acl.clone(),
                    flags: req.flags,
                    ttl: -1,
                }
                .encode(w);
            }
        }
        MultiHeader {
            r#type: self.opcode() as i32,
            done: false,
            err: -1,
        }
        .encode(w);
        match self {
            MultiOp::Create { req, .. } => req.encode(w),
            MultiOp::CreateTtl(r) => r.encode(w),
            MultiOp::Delete(r) => r.encode(w),
            MultiOp::SetData(r) => r.encode(w),
            MultiOp::Check(r) => r.encode(w),
            MultiOp::GetChildren(r) => r.encode(w),
            MultiOp::GetData(r) => r.encode(w),
        }
    }
}

/// Why a multi body was refused (`MultiOperationRecord.deserialize`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultiDecodeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("Invalid type of op: {0}")]
    InvalidOp(i32),
    #[error("Received an invalid flag value: {0} to convert to a CreateMode")]
    BadFlags(i32),
    #[error("Mixing read and write operations (transaction and read ops) in a multi request is not allowed")]
    Mixed,
}

/// Decodes the ops of a multi or multiRead, up to the `done` header.
pub fn decode_multi(body: &[u8]) -> Result<Vec<MultiOp>, MultiDecodeError> {
    decode_multi_reader(Reader::new(body))
}

fn decode_multi_reader(mut r: Reader<'_>) -> Result<Vec<MultiOp>, MultiDecodeError> {
    let mut ops = Vec::new();
    let mut kind: Option<bool> = None;
    loop {
        let h = MultiHeader::decode(&mut r)?;
        if h.done {
            break;
        }
        let op = match OpCode::from_i32(h.r#type) {
            Some(op @ (OpCode::Create | OpCode::Create2 | OpCode::CreateContainer)) => {
                let req = CreateRequest::decode(&mut r)?;
                // `MultiOperationRecord` builds the op from its CreateMode: bad flags and
                // TTL modes (which need createTTL's ttl) fail the whole multi; the
                // container mode makes it a createContainer, whatever the header said.
                match req.flags {
                    0..=3 => MultiOp::Create { op, req },
                    4 => MultiOp::Create {
                        op: OpCode::CreateContainer,
                        req,
                    },
                    f => return Err(MultiDecodeError::BadFlags(f)),
                }
            }
            Some(OpCode::CreateTtl) => {
                let t = CreateTtlRequest::decode(&mut r)?;
                match t.flags {
                    5 | 6 => MultiOp::CreateTtl(t),
                    // A non-TTL mode makes a plain create and the ttl is dropped.
                    f => MultiOp::Create {
                        op: if f == 4 {
                            OpCode::CreateContainer
                        } else {
                            OpCode::Create
                        },
                        req: CreateRequest {
                            path: t.path,
                            data: t.data,
                            acl: t.acl,
                            flags: f,
                        },
                    },
                }
            }
            Some(OpCode::Delete) => MultiOp::Delete(DeleteRequest::decode(&mut r)?),
            Some(OpCode::SetData) => MultiOp::SetData(SetDataRequest::decode(&mut r)?),
            Some(OpCode::Check) => MultiOp::Check(CheckVersionRequest::decode(&mut r)?),
            Some(OpCode::GetChildren) => MultiOp::GetChildren(GetChildrenRequest::decode(&mut r)?),
            Some(OpCode::GetData) => MultiOp::GetData(GetDataRequest::decode(&mut r)?),
            _ => return Err(MultiDecodeError::InvalidOp(h.r#type)),
        };
        match kind {
            None => kind = Some(op.is_read()),
            Some(k) if k != op.is_read() => return Err(MultiDecodeError::Mixed),
            _ => {}
        }
        ops.push(op);
    }
    Ok(ops)
}

pub fn encode_multi(ops: &[MultiOp], w: &mut BytesMut) {
    for op in ops {
        op.encode(w);
    }
    MultiHeader {
        r#type: -1,
        done: true,
        err: -1,
    }
    .encode(w);
}

/// A decoded client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15), createContainer (19).
    Create {
        op: OpCode,
        req: CreateRequest,
    },
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    /// deleteContainer (20): ZooKeeper reads its body as the bare UTF-8 path.
    DeleteContainer(String),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    GetEphemerals(GetEphemeralsRequest),
    Sync(SyncRequest),
    Ping,
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    AddWatch(AddWatchRequest),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    Auth(AuthPacket),
    Sasl(GetSaslRequest),
    WhoAmI,
    CloseSession,
    /// An opcode no 3.8 server knows (or createSession sent as a request).
    Unknown(i32),
    /// A known opcode whose body did not decode.
    Malformed {
        op: OpCode,
        reason: String,
    },
}

impl Request {
    /// Decodes the body that follows a RequestHeader with opcode `op`.
    pub fn decode(op: i32, body: &[u8]) -> Request {
        Self::decode_with_max_len(op, body, usize::MAX)
    }

    /// [`Request::decode`], refusing any buffer or string longer than `max_len`
    /// (`jute.maxbuffer` + extrasize) as ZooKeeper does: the request is then Malformed
    /// and answered with MarshallingError.
    pub fn decode_with_max_len(op: i32, body: &[u8], max_len: usize) -> Request {
        let Some(code) = OpCode::from_i32(op) else {
            return Request::Unknown(op);
        };
        match Self::decode_known(code, body, max_len) {
            Ok(r) => r,
            Err(reason) => Request::Malformed { op: code, reason },
        }
    }

    fn decode_known(op: OpCode, body: &[u8], max_len: usize) -> Result<Request, String> {
        let body = || Reader::new(body).with_max_len(max_len);
        let multi = || decode_multi_reader(body()).map_err(|e| e.to_string());
        fn rec<T: Record>(mut r: Reader<'_>) -> Result<T, String> {
            T::decode(&mut r).map_err(|e| e.to_string())
        }
        Ok(match op {
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => Request::Create {
                op,
                req: rec(body())?,
            },
            OpCode::CreateTtl => Request::CreateTtl(rec(body())?),
            OpCode::Delete => Request::Delete(rec(body())?),
            OpCode::DeleteContainer => Request::DeleteContainer(
                std::str::from_utf8(body().rest())
                    .map_err(|e| e.to_string())?
                    .to_owned(),
            ),
            OpCode::Exists => Request::Exists(rec(body())?),
            OpCode::GetData => Request::GetData(rec(body())?),
            OpCode::SetData => Request::SetData(rec(body())?),
            OpCode::GetAcl => Request::GetAcl(rec(body())?),
            OpCode::SetAcl => Request::SetAcl(rec(body())?),
            OpCode::GetChildren => Request::GetChildren(rec(body())?),
            OpCode::GetChildren2 => Request::GetChildren2(rec(body())?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(rec(body())?),
            OpCode::GetEphemerals => Request::GetEphemerals(rec(body())?),
            OpCode::Sync => Request::Sync(rec(body())?),
            OpCode::Ping => Request::Ping,
            OpCode::Check => Request::Check(rec(body())?),
            OpCode::Multi => Request::Multi(multi()?),
            OpCode::MultiRead => Request::MultiRead(multi()?),
            OpCode::Reconfig => Request::Reconfig(rec(body())?),
            OpCode::CheckWatches => Request::CheckWatches(rec(body())?),
            OpCode::RemoveWatches => Request::RemoveWatches(rec(body())?),
            OpCode::AddWatch => Request::AddWatch(rec(body())?),
            OpCode::SetWatches => Request::SetWatches(rec(body())?),
            OpCode::SetWatches2 => Request::SetWatches2(rec(body())?),
            OpCode::Auth => Request::Auth(rec(body())?),
            OpCode::Sasl => Request::Sasl(rec(body())?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::CreateSession | OpCode::Notification | OpCode::Error => {
                Request::Unknown(op as i32)
            }
        })
    }

    /// Whether the request becomes a transaction (goes through prepare → log → apply).
    pub fn is_write(&self) -> bool {
        match self {
            Request::Create { .. }
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::DeleteContainer(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::Reconfig(_)
            | Request::CloseSession => true,
            Request::Malformed { op, .. } => is_write_op(*op),
            _ => false,
        }
    }

    /// Encodes the body (the part after the RequestHeader), for clients and proxies.
    pub fn encode_body(&self, w: &mut BytesMut) {
        match self {
            Request::Create { req, .. } => req.encode(w),
            Request::CreateTtl(r) => r.encode(w),
            Request::Delete(r) => r.encode(w),
            Request::DeleteContainer(p) => w.extend_from_slice(p.as_bytes()),
            Request::Exists(r) => r.encode(w),
            Request::GetData(r) => r.encode(w),
            Request::SetData(r) => r.encode(w),
            Request::GetAcl(r) => r.encode(w),
            Request::SetAcl(r) => r.encode(w),
            Request::GetChildren(r) => r.encode(w),
            Request::GetChildren2(r) => r.encode(w),
            Request::GetAllChildrenNumber(r) => r.encode(w),
            Request::GetEphemerals(r) => r.encode(w),
            Request::Sync(r) => r.encode(w),
            Request::Check(r) => r.encode(w),
            Request::Multi(ops) | Request::MultiRead(ops) => encode_multi(ops, w),
            Request::Reconfig(r) => r.encode(w),
            Request::CheckWatches(r) => r.encode(w),
            Request::RemoveWatches(r) => r.encode(w),
            Request::AddWatch(r) => r.encode(w),
            Request::SetWatches(r) => r.encode(w),
            Request::SetWatches2(r) => r.encode(w),
            Request::Auth(r) => r.encode(w),
            Request::Sasl(r) => r.encode(w),
            Request::Ping
            | Request::WhoAmI
            | Request::CloseSession
            | Request::Unknown(_)
            | Request::Malformed { .. } => {}
        }
    }
}

/// Opcodes that change state (`Request.isValid` + the write ops of PrepRequestProcessor).
pub fn is_write_op(op: OpCode) -> bool {
    matches!(
        op,
        OpCode::Create
            | OpCode::Create2
            | OpCode::CreateContainer
            | OpCode::CreateTtl
            | OpCode::Delete
            | OpCode::DeleteContainer
            | OpCode::SetData
            | OpCode::SetAcl
            | OpCode::Check
            | OpCode::Multi
            | OpCode::Reconfig
            | OpCode::CloseSession
            | OpCode::CreateSession
    )
}

/// A whole request frame body (RequestHeader + record) for `op`, for test clients.
pub fn frame(xid: i32, op: OpCode, req: &Request) -> Bytes {
    let mut w = BytesMut::new();
    w.put_int(0);
    w.put_int(xid);
    w.put_int(op as i32);
    req.encode_body(&mut w);
    let len = (w.len() - 4) as i32;
    w[0..4].copy_from_slice(&len.to_be_bytes());
    w.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_round_trips_and_refuses_mixing() {
        let ops = vec![
            MultiOp::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: "/a".into(),
                    data: Some(Bytes::from_static(b"x")),
                    acl: crate::acl::open_acl_unsafe(),
                    flags: 0,
                },
            },
            MultiOp::Check(CheckVersionRequest {
                path: "/a".into(),
                version: 3,
            }),
        ];
        let mut w = BytesMut::new();
        encode_multi(&ops, &mut w);
        assert_eq!(decode_multi(&w).unwrap(), ops);
        let mixed = vec![
            ops[1].clone(),
            MultiOp::GetData(GetDataRequest {
                path: "/a".into(),
                watch: false,
            }),
        ];
        let mut w = BytesMut::new();
        encode_multi(&mixed, &mut w);
        assert_eq!(decode_multi(&w), Err(MultiDecodeError::Mixed));
    }

    proptest::proptest! {
        /// Any body under any opcode decodes to a request or to Malformed/Unknown, never a
        /// panic, and a decoded request encodes back to a body that decodes the same once
        /// its strings have been through Java's encoding (a character outside the BMP goes
        /// out as two surrogates, which read back as U+FFFD, as ZooKeeper reads them).
        #[test]
        fn arbitrary_bodies_never_panic(op in -20i32..120, body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let r = Request::decode(op, &body);
            if !matches!(r, Request::Unknown(_) | Request::Malformed { .. }) {
                let again = |r: &Request| {
                    let mut w = BytesMut::new();
                    r.encode_body(&mut w);
                    Request::decode(op, &w)
                };
                let once = again(&r);
                proptest::prop_assert_eq!(&again(&once), &once);
                if !body.iter().any(|&b| b >= 0xf0) {
                    proptest::prop_assert_eq!(once, r);
                }
            }
        }
    }

    proptest::proptest! {
        /// A multi body whose first op header is valid (any op type, done or not) and whose
        /// rest is random: the decoder reaches every op's record and never panics, and what
        /// decodes is stable through encode and decode.
        #[test]
        fn multi_bodies_never_panic(
            t in proptest::sample::select(vec![-1, 1, 2, 4, 5, 8, 13, 15, 19, 21, 99]),
            done in proptest::prelude::any::<bool>(),
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let mut w = BytesMut::new();
            MultiHeader { r#type: t, done, err: -1 }.encode(&mut w);
            w.extend_from_slice(&rest);
            if let Ok(ops) = decode_multi(&w) {
                let again = |ops: &[MultiOp]| {
                    let mut w = BytesMut::new();
                    encode_multi(ops, &mut w);
                    decode_multi(&w)
                };
                let once = again(&ops).expect("re-decodes");
                proptest::prop_assert_eq!(again(&once).expect("re-decodes"), once);
            }
        }
    }

    /// Under a createTTL header a non-TTL mode makes a plain create, even with flags no
    /// CreateMode has (`Op.create(..., flags, ttl)`); re-encoded, it must stay that.
    #[test]
    fn a_create_from_a_ttl_header_with_bad_flags_round_trips() {
        let mut w = BytesMut::new();
        MultiHeader {
            r#type: OpCode::CreateTtl as i32,
            done: false,
            err: -1,
        }
        .encode(&mut w);
        CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: crate::acl::open_acl_unsafe(),
            flags: 1536,
            ttl: 9,
        }
        .encode(&mut w);
        MultiHeader {
            r#type: -1,
            done: true,
            err: -1,
        }
        .encode(&mut w);
        let ops = decode_multi(&w).unwrap();
        assert!(
            matches!(&ops[..], [MultiOp::Create { op: OpCode::Create, req }] if req.flags == 1536)
        );
        let mut again = BytesMut::new();
        encode_multi(&ops, &mut again);
        assert_eq!(decode_multi(&again).unwrap(), ops);
    }

    #[test]
    fn unknown_and_malformed_are_kept_in_order() {
        assert_eq!(Request::decode(999, &[]), Request::Unknown(999));
        assert!(matches!(
            Request::decode(1, &[0, 0]),
            Request::Malformed {
                op: OpCode::Create,
                ..
            }
        ));
    }
}
