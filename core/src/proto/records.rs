//! The client-protocol records of ZooKeeper 3.8: everything in the jute modules
//! `org.apache.zookeeper.data` (ids, ACLs, stats) and `org.apache.zookeeper.proto`
//! (connect handshake, request/reply headers, every request and response body).
//!
//! Each record is a plain struct with public snake_case fields in jute order and a
//! [`Record`] implementation. Types map as: `int`→`i32`, `long`→`i64`, `boolean`→`bool`,
//! `ustring`→`String`, `buffer`→[`Bytes`], `vector<T>`→`Vec<T>`.
//!
//! Null handling: jute writes a null buffer, string or vector as length −1. Strings,
//! vectors and most buffers decode null as empty. Znode data is the exception: ZooKeeper
//! keeps `null` data apart from empty data (a Java client's `create(path, null, ..)`
//! stores null and `getData` returns null), so data fields are `Option<Bytes>`.

use bytes::{Bytes, BytesMut};

use super::jute::{DecodeError, JuteWrite, Reader, Record};

/// A value that can be a field of a jute record: knows how to write and read itself and
/// the fewest bytes its encoding can take (which bounds vector pre-allocation, so a
/// hostile element count cannot make the decoder allocate more than the input justifies).
pub trait JuteField: Sized {
    /// Lower bound on the encoded size of one value.
    const MIN_LEN: usize;
    fn put(&self, w: &mut BytesMut);
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl JuteField for i32 {
    const MIN_LEN: usize = 4;
    fn put(&self, w: &mut BytesMut) {
        w.put_int(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32()
    }
}

impl JuteField for i64 {
    const MIN_LEN: usize = 8;
    fn put(&self, w: &mut BytesMut) {
        w.put_long(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i64()
    }
}

impl JuteField for bool {
    const MIN_LEN: usize = 1;
    fn put(&self, w: &mut BytesMut) {
        w.put_bool(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bool()
    }
}

/// `ustring`: a null string decodes as empty.
impl JuteField for String {
    const MIN_LEN: usize = 4;
    fn put(&self, w: &mut BytesMut) {
        w.put_string(self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_string()
    }
}

/// `buffer`: a null buffer decodes as empty.
impl JuteField for Bytes {
    const MIN_LEN: usize = 4;
    fn put(&self, w: &mut BytesMut) {
        w.put_buffer(self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bytes()
    }
}

/// `buffer` where null matters: znode data. ZooKeeper keeps a null payload apart from an
/// empty one (`create /x` in zkCli stores null and getData answers length −1), so the
/// records that carry znode data use `Option<Bytes>`, `None` being null.
impl JuteField for Option<Bytes> {
    const MIN_LEN: usize = 4;
    fn put(&self, w: &mut BytesMut) {
        w.put_buffer_opt(self.as_deref());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_buffer_opt()?.map(Bytes::copy_from_slice))
    }
}

/// `vector<T>`: an `int` count then the elements; a null vector decodes as empty.
impl<T: JuteField> JuteField for Vec<T> {
    const MIN_LEN: usize = 4;
    fn put(&self, w: &mut BytesMut) {
        w.put_int(self.len() as i32);
        for e in self {
            e.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_vec(T::MIN_LEN, T::get)
    }
}

/// A `vector<T>` whose null is kept apart from empty (a QuorumPacket's authinfo: a Java
/// leader refuses a forwarded request whose vector is null).
impl<T: JuteField> JuteField for Option<Vec<T>> {
    const MIN_LEN: usize = 4;
    fn put(&self, w: &mut BytesMut) {
        match self {
            None => w.put_int(-1),
            Some(v) => v.put(w),
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let Some(n) = r.read_vec_len(T::MIN_LEN)? else {
            return Ok(None);
        };
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::get(r)?);
        }
        Ok(Some(v))
    }
}

/// Sum of field sizes, usable in a `const` (the record macro's `MIN_LEN`).
#[doc(hidden)]
pub const fn min_len_sum(parts: &[usize]) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < parts.len() {
        total += parts[i];
        i += 1;
    }
    total
}

/// Declares jute records: each struct gets public fields, the usual derives, a
/// [`Record`] implementation that reads and writes the fields in declaration order, and a
/// [`JuteField`] implementation so it can be nested in other records and vectors.
///
/// Paths in the expansion are relative to the invoking module's parent, so this may only
/// be invoked from a sibling of `records` (a module directly under `proto`).
macro_rules! jute_record {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl super::jute::Record for $name {
            fn encode(&self, w: &mut ::bytes::BytesMut) {
                $( super::records::JuteField::put(&self.$field, w); )*
            }
            fn decode(
                r: &mut super::jute::Reader<'_>,
            ) -> ::std::result::Result<Self, super::jute::DecodeError> {
                Ok($name {
                    $( $field: super::records::JuteField::get(r)?, )*
                })
            }
        }

        impl super::records::JuteField for $name {
            const MIN_LEN: usize = super::records::min_len_sum(&[
                $( <$ty as super::records::JuteField>::MIN_LEN, )*
            ]);
            fn put(&self, w: &mut ::bytes::BytesMut) {
                super::jute::Record::encode(self, w)
            }
            fn get(
                r: &mut super::jute::Reader<'_>,
            ) -> ::std::result::Result<Self, super::jute::DecodeError> {
                <Self as super::jute::Record>::decode(r)
            }
        }
    )*};
}

pub(crate) use jute_record;

// ---------------------------------------------------------------------------------------
// module org.apache.zookeeper.data
// ---------------------------------------------------------------------------------------

jute_record! {
    /// An identity: an auth scheme and an id within it (`world:anyone`, `digest:u:hash`).
    pub struct Id {
        scheme: String,
        id: String,
    }

    /// One access-control entry: permission bits (see [`super::perms`]) granted to an id.
    pub struct Acl {
        perms: i32,
        id: Id,
    }

    /// A znode's metadata as clients see it. Always [`Stat::ENCODED_LEN`] bytes.
    pub struct Stat {
        /// zxid of the create.
        czxid: i64,
        /// zxid of the last data change.
        mzxid: i64,
        /// Creation time, ms since the epoch.
        ctime: i64,
        /// Last modification time, ms since the epoch.
        mtime: i64,
        /// Data version.
        version: i32,
        /// Child-list version.
        cversion: i32,
        /// ACL version.
        aversion: i32,
        /// Owning session id if ephemeral, else 0.
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        /// zxid of the last child-list change.
        pzxid: i64,
    }

    /// A znode's metadata as the server persists it (snapshots): [`Stat`] without
    /// `data_length` and `num_children`, which are derived. Always 60 bytes.
    pub struct StatPersisted {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        pzxid: i64,
    }

    /// One authenticated identity of a session, as `whoAmI` reports it.
    pub struct ClientInfo {
        auth_scheme: String,
        /// User name or other id (for example an IP address).
        user: String,
    }
}

impl Stat {
    /// Encoded size of a [`Stat`]: six `long`s and five `int`s.
    pub const ENCODED_LEN: usize = 68;
}

impl StatPersisted {
    /// Encoded size of a [`StatPersisted`]: six `long`s and three `int`s.
    pub const ENCODED_LEN: usize = 60;
}

const _: () = assert!(Stat::ENCODED_LEN == <Stat as JuteField>::MIN_LEN);
const _: () = assert!(StatPersisted::ENCODED_LEN == <StatPersisted as JuteField>::MIN_LEN);

impl Stat {
    /// The client view of a persisted stat, given the two derived fields.
    pub fn from_persisted(p: &StatPersisted, data_length: i32, num_children: i32) -> Stat {
        Stat {
            czxid: p.czxid,
            mzxid: p.mzxid,
            ctime: p.ctime,
            mtime: p.mtime,
            version: p.version,
            cversion: p.cversion,
            aversion: p.aversion,
            ephemeral_owner: p.ephemeral_owner,
            data_length,
            num_children,
            pzxid: p.pzxid,
        }
    }
}

// ---------------------------------------------------------------------------------------
// module org.apache.zookeeper.proto: the connect handshake
// ---------------------------------------------------------------------------------------

/// The first packet a client sends on a connection.
///
/// `read_only` is not part of the jute definition: 3.4+ clients append it after the
/// record, older clients do not. Decoding treats it as optional (absent → `false`);
/// encoding always writes it. Use [`ConnectRequest::decode_with_read_only_flag`] to learn
/// whether the client sent it (ZooKeeper answers such "old clients" without the trailing
/// `readOnly` in the [`ConnectResponse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: bool,
}

impl ConnectRequest {
    /// Decodes the request and reports whether the trailing `readOnly` byte was present.
    pub fn decode_with_read_only_flag(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let time_out = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_bytes()?;
        let present = r.remaining() > 0;
        let read_only = if present { r.read_bool()? } else { false };
        Ok((
            ConnectRequest {
                protocol_version,
                last_zxid_seen,
                time_out,
                session_id,
                passwd,
                read_only,
            },
            present,
        ))
    }
}

impl Record for ConnectRequest {
    fn encode(&self, w: &mut BytesMut) {
        w.put_int(self.protocol_version);
        w.put_long(self.last_zxid_seen);
        w.put_int(self.time_out);
        w.put_long(self.session_id);
        w.put_buffer(&self.passwd);
        w.put_bool(self.read_only);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self::decode_with_read_only_flag(r)?.0)
    }
}

/// The server's answer to a [`ConnectRequest`]. As there, the trailing `read_only` is
/// optional on decode (absent → `false`) and always written by [`Record::encode`];
/// [`ConnectResponse::encode_without_read_only`] writes the form old clients expect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: bool,
}

impl ConnectResponse {
    /// The jute record alone, without the trailing `readOnly` byte (for clients that did
    /// not send one in their [`ConnectRequest`]).
    pub fn encode_without_read_only(&self, w: &mut BytesMut) {
        w.put_int(self.protocol_version);
        w.put_int(self.time_out);
        w.put_long(self.session_id);
        w.put_buffer(&self.passwd);
    }
}

impl Record for ConnectResponse {
    fn encode(&self, w: &mut BytesMut) {
        self.encode_without_read_only(w);
        w.put_bool(self.read_only);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = r.read_i32()?;
        let time_out = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_bytes()?;
        let read_only = if r.remaining() > 0 {
            r.read_bool()?
        } else {
            false
        };
        Ok(ConnectResponse {
            protocol_version,
            time_out,
            session_id,
            passwd,
            read_only,
        })
    }
}

// ---------------------------------------------------------------------------------------
// module org.apache.zookeeper.proto: headers and everything else
// ---------------------------------------------------------------------------------------

jute_record! {
    /// Re-registers a reconnecting client's watches (opcode `setWatches`, 101).
    pub struct SetWatches {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
    }

    /// [`SetWatches`] plus persistent watches (opcode `setWatches2`, 105).
    pub struct SetWatches2 {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
        persistent_watches: Vec<String>,
        persistent_recursive_watches: Vec<String>,
    }

    /// Precedes every client request after the handshake.
    pub struct RequestHeader {
        xid: i32,
        /// The opcode ([`super::OpCode`]).
        r#type: i32,
    }

    /// Precedes each operation (and each result) inside a multi; `done` marks the end
    /// (ZooKeeper writes `type = -1, done = true, err = -1` as the terminator).
    pub struct MultiHeader {
        r#type: i32,
        done: bool,
        err: i32,
    }

    /// An `addAuth` request (opcode `auth`, 100).
    pub struct AuthPacket {
        r#type: i32,
        scheme: String,
        auth: Bytes,
    }

    /// Precedes every server reply and notification.
    pub struct ReplyHeader {
        xid: i32,
        zxid: i64,
        /// An [`super::ErrorCode`] value.
        err: i32,
    }

    pub struct GetDataRequest {
        path: String,
        watch: bool,
    }

    pub struct SetDataRequest {
        path: String,
        data: Option<Bytes>,
        version: i32,
    }

    pub struct ReconfigRequest {
        joining_servers: String,
        leaving_servers: String,
        new_members: String,
        cur_config_id: i64,
    }

    pub struct SetDataResponse {
        stat: Stat,
    }

    pub struct GetSaslRequest {
        token: Bytes,
    }

    pub struct SetSaslRequest {
        token: Bytes,
    }

    pub struct SetSaslResponse {
        token: Bytes,
    }

    /// `create` and `create2` (and `createContainer`) requests.
    pub struct CreateRequest {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        /// The `CreateMode` flags.
        flags: i32,
    }

    /// `createTTL` request.
    pub struct CreateTtlRequest {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: i64,
    }

    /// `delete` and `deleteContainer` requests.
    pub struct DeleteRequest {
        path: String,
        version: i32,
    }

    pub struct GetChildrenRequest {
        path: String,
        watch: bool,
    }

    pub struct GetAllChildrenNumberRequest {
        path: String,
    }

    pub struct GetChildren2Request {
        path: String,
        watch: bool,
    }

    /// The `check` operation of a multi.
    pub struct CheckVersionRequest {
        path: String,
        version: i32,
    }

    pub struct GetMaxChildrenRequest {
        path: String,
    }

    pub struct GetMaxChildrenResponse {
        max: i32,
    }

    pub struct SetMaxChildrenRequest {
        path: String,
        max: i32,
    }

    pub struct SyncRequest {
        path: String,
    }

    pub struct SyncResponse {
        path: String,
    }

    pub struct GetAclRequest {
        path: String,
    }

    pub struct SetAclRequest {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    }

    pub struct SetAclResponse {
        stat: Stat,
    }

    pub struct AddWatchRequest {
        path: String,
        /// 0 = persistent, 1 = persistent recursive.
        mode: i32,
    }

    /// A watch notification (sent with xid −1).
    pub struct WatcherEvent {
        /// The event type (`Watcher.Event.EventType`).
        r#type: i32,
        /// The session state (`Watcher.Event.KeeperState`).
        state: i32,
        path: String,
    }

    /// The result of a failed operation inside a multi.
    pub struct ErrorResponse {
        err: i32,
    }

    pub struct CreateResponse {
        path: String,
    }

    pub struct Create2Response {
        path: String,
        stat: Stat,
    }

    pub struct ExistsRequest {
        path: String,
        watch: bool,
    }

    pub struct ExistsResponse {
        stat: Stat,
    }

    pub struct GetDataResponse {
        data: Option<Bytes>,
        stat: Stat,
    }

    pub struct GetChildrenResponse {
        children: Vec<String>,
    }

    pub struct GetAllChildrenNumberResponse {
        total_number: i32,
    }

    pub struct GetChildren2Response {
        children: Vec<String>,
        stat: Stat,
    }

    pub struct GetAclResponse {
        acl: Vec<Acl>,
        stat: Stat,
    }

    pub struct CheckWatchesRequest {
        path: String,
        /// The `WatcherType`: 1 children, 2 data, 3 any.
        r#type: i32,
    }

    pub struct RemoveWatchesRequest {
        path: String,
        r#type: i32,
    }

    pub struct GetEphemeralsRequest {
        prefix_path: String,
    }

    pub struct GetEphemeralsResponse {
        ephemerals: Vec<String>,
    }

    pub struct WhoAmIResponse {
        client_info: Vec<ClientInfo>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use proptest::prelude::*;
    use std::fmt::Debug;

    /// Encodes, decodes, compares, and checks that every strict prefix of the encoding is
    /// an error rather than a panic or a bogus success.
    fn check<T: Record + PartialEq + Debug>(v: T) -> Bytes {
        let b = v.to_bytes();
        let mut r = Reader::new(&b);
        let back = T::decode(&mut r).expect("decode");
        assert_eq!(back, v);
        assert_eq!(r.remaining(), 0, "{v:?} left bytes unread");
        for cut in 0..b.len() {
            assert!(
                T::from_bytes(&b[..cut]).is_err(),
                "{v:?} decoded from {cut} of {} bytes",
                b.len()
            );
        }
        b
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn strs(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| s(x)).collect()
    }

    fn stat() -> Stat {
        Stat {
            czxid: 0x1_0000_0001,
            mzxid: 0x1_0000_0002,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_500,
            version: 3,
            cversion: -1,
            aversion: 2,
            ephemeral_owner: 0x7fff_0000_dead_beef,
            data_length: 5,
            num_children: 7,
            pzxid: 0x1_0000_0003,
        }
    }

    fn acls() -> Vec<Acl> {
        vec![
            Acl {
                perms: 31,
                id: Id {
                    scheme: s("world"),
                    id: s("anyone"),
                },
            },
            Acl {
                perms: 1,
                id: Id {
                    scheme: s("digest"),
                    id: s("u:h="),
                },
            },
        ]
    }

    fn data() -> Bytes {
        Bytes::from_static(b"h\x00llo")
    }

    #[test]
    fn stat_lengths() {
        assert_eq!(check(stat()).len(), Stat::ENCODED_LEN);
        assert_eq!(Stat::default().to_bytes().len(), 68);
        let p = StatPersisted {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            pzxid: 9,
        };
        assert_eq!(check(p.clone()).len(), StatPersisted::ENCODED_LEN);
        let st = Stat::from_persisted(&p, 10, 11);
        assert_eq!((st.pzxid, st.data_length, st.num_children), (9, 10, 11));
        assert_eq!(<Acl as JuteField>::MIN_LEN, 12);
        assert_eq!(<Id as JuteField>::MIN_LEN, 8);
    }

    #[test]
    fn round_trip_data_records() {
        check(Id {
            scheme: s("ip"),
            id: s("10.0.0.1"),
        });
        for a in acls() {
            check(a);
        }
        check(ClientInfo {
            auth_scheme: s("ip"),
            user: s("127.0.0.1"),
        });
    }

    #[test]
    fn round_trip_proto_records() {
        check(SetWatches {
            relative_zxid: 42,
            data_watches: strs(&["/a", "/b"]),
            exist_watches: strs(&["/c"]),
            child_watches: vec![],
        });
        check(SetWatches2 {
            relative_zxid: 43,
            data_watches: strs(&["/a"]),
            exist_watches: vec![],
            child_watches: strs(&["/b", ""]),
            persistent_watches: strs(&["/p"]),
            persistent_recursive_watches: strs(&["/r", "/r/s"]),
        });
        check(RequestHeader { xid: 7, r#type: 4 });
        check(MultiHeader {
            r#type: -1,
            done: true,
            err: -1,
        });
        check(AuthPacket {
            r#type: 0,
            scheme: s("digest"),
            auth: Bytes::from_static(b"u:p"),
        });
        check(ReplyHeader {
            xid: -1,
            zxid: -1,
            err: -101,
        });
        check(GetDataRequest {
            path: s("/x"),
            watch: true,
        });
        check(SetDataRequest {
            path: s("/x"),
            data: Some(data()),
            version: -1,
        });
        check(ReconfigRequest {
            joining_servers: s("server.4=h:2888:3888;2181"),
            leaving_servers: s("3"),
            new_members: s(""),
            cur_config_id: 0x1_0000_0000,
        });
        check(SetDataResponse { stat: stat() });
        check(GetSaslRequest { token: data() });
        check(SetSaslRequest { token: data() });
        check(SetSaslResponse { token: data() });
        check(CreateRequest {
            path: s("/x"),
            data: Some(data()),
            acl: acls(),
            flags: 3,
        });
        check(CreateTtlRequest {
            path: s("/x"),
            data: Some(data()),
            acl: acls(),
            flags: 5,
            ttl: 60_000,
        });
        check(DeleteRequest {
            path: s("/x"),
            version: 2,
        });
        check(GetChildrenRequest {
            path: s("/"),
            watch: false,
        });
        check(GetAllChildrenNumberRequest { path: s("/") });
        check(GetChildren2Request {
            path: s("/"),
            watch: true,
        });
        check(CheckVersionRequest {
            path: s("/x"),
            version: 9,
        });
        check(GetMaxChildrenRequest { path: s("/x") });
        check(GetMaxChildrenResponse { max: 10 });
        check(SetMaxChildrenRequest {
            path: s("/x"),
            max: 10,
        });
        check(SyncRequest { path: s("/x") });
        check(SyncResponse { path: s("/x") });
        check(GetAclRequest { path: s("/x") });
        check(SetAclRequest {
            path: s("/x"),
            acl: acls(),
            version: 1,
        });
        check(SetAclResponse { stat: stat() });
        check(AddWatchRequest {
            path: s("/x"),
            mode: 1,
        });
        check(WatcherEvent {
            r#type: 3,
            state: 3,
            path: s("/x"),
        });
        check(ErrorResponse { err: -110 });
        check(CreateResponse {
            path: s("/x0000000001"),
        });
        check(Create2Response {
            path: s("/x"),
            stat: stat(),
        });
        check(ExistsRequest {
            path: s("/x"),
            watch: true,
        });
        check(ExistsResponse { stat: stat() });
        check(GetDataResponse {
            data: Some(data()),
            stat: stat(),
        });
        check(GetChildrenResponse {
            children: strs(&["a", "b", "ü"]),
        });
        check(GetAllChildrenNumberResponse { total_number: 12 });
        check(GetChildren2Response {
            children: strs(&["a"]),
            stat: stat(),
        });
        check(GetAclResponse {
            acl: acls(),
            stat: stat(),
        });
        check(CheckWatchesRequest {
            path: s("/x"),
            r#type: 3,
        });
        check(RemoveWatchesRequest {
            path: s("/x"),
            r#type: 2,
        });
        check(GetEphemeralsRequest {
            prefix_path: s("/e"),
        });
        check(GetEphemeralsResponse {
            ephemerals: strs(&["/e/1", "/e/2"]),
        });
        check(WhoAmIResponse {
            client_info: vec![
                ClientInfo {
                    auth_scheme: s("ip"),
                    user: s("127.0.0.1"),
                },
                ClientInfo {
                    auth_scheme: s("sasl"),
                    user: s("zk"),
                },
            ],
        });
    }

    #[test]
    fn connect_request_bytes_with_and_without_read_only() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x0102_0304_0506_0708,
            time_out: 30_000,
            session_id: 0x1122_3344_5566_7788,
            passwd: Bytes::from_static(&[0xaa, 0xbb]),
            read_only: true,
        };
        let mut want: Vec<u8> = vec![
            0, 0, 0, 0, // protocolVersion
            1, 2, 3, 4, 5, 6, 7, 8, // lastZxidSeen
            0, 0, 0x75, 0x30, // timeOut = 30000
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // sessionId
            0, 0, 0, 2, 0xaa, 0xbb, // passwd
        ];
        let legacy = want.clone();
        want.push(1); // readOnly
        assert_eq!(req.to_bytes().as_ref(), &want[..]);
        assert_eq!(ConnectRequest::from_bytes(&want).unwrap(), req);
        let (_, present) =
            ConnectRequest::decode_with_read_only_flag(&mut Reader::new(&want)).unwrap();
        assert!(present);

        // A pre-3.4 client stops after passwd.
        let (old, present) =
            ConnectRequest::decode_with_read_only_flag(&mut Reader::new(&legacy)).unwrap();
        assert!(!present);
        assert_eq!(
            old,
            ConnectRequest {
                read_only: false,
                ..req.clone()
            }
        );
        // Encoding always appends readOnly.
        let mut again = legacy.clone();
        again.push(0);
        assert_eq!(old.to_bytes().as_ref(), &again[..]);

        // Any cut before the end of passwd is an error.
        for cut in 0..legacy.len() {
            assert!(ConnectRequest::from_bytes(&legacy[..cut]).is_err());
        }
        // Any non-zero byte is true, as in Java.
        let mut odd = legacy.clone();
        odd.push(7);
        assert!(ConnectRequest::from_bytes(&odd).unwrap().read_only);
    }

    #[test]
    fn connect_response_optional_read_only() {
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: 4000,
            session_id: -2,
            passwd: Bytes::from(vec![9u8; 16]),
            read_only: true,
        };
        let full = rsp.to_bytes();
        assert_eq!(full.len(), 4 + 4 + 8 + 4 + 16 + 1);
        assert_eq!(ConnectResponse::from_bytes(&full).unwrap(), rsp);
        let mut short = BytesMut::new();
        rsp.encode_without_read_only(&mut short);
        assert_eq!(&short[..], &full[..full.len() - 1]);
        let back = ConnectResponse::from_bytes(&short).unwrap();
        assert!(!back.read_only);
        assert_eq!(back.passwd, rsp.passwd);
        for cut in 0..short.len() {
            assert!(ConnectResponse::from_bytes(&short[..cut]).is_err());
        }
    }

    #[test]
    fn create_request_bytes() {
        let req = CreateRequest {
            path: s("/a"),
            data: Some(Bytes::from_static(b"x")),
            acl: vec![Acl {
                perms: 31,
                id: Id {
                    scheme: s("world"),
                    id: s("anyone"),
                },
            }],
            flags: 1,
        };
        let mut want = BytesMut::new();
        want.put_slice(&[0, 0, 0, 2, b'/', b'a']);
        want.put_slice(&[0, 0, 0, 1, b'x']);
        want.put_slice(&[0, 0, 0, 1, 0, 0, 0, 31]);
        want.put_slice(&[0, 0, 0, 5]);
        want.put_slice(b"world");
        want.put_slice(&[0, 0, 0, 6]);
        want.put_slice(b"anyone");
        want.put_slice(&[0, 0, 0, 1]);
        assert_eq!(req.to_bytes(), want.freeze());
    }

    #[test]
    fn nulls_decode_as_empty() {
        // CreateRequest with null path, null data and a null ACL vector.
        let mut b = BytesMut::new();
        b.put_i32(-1);
        b.put_i32(-1);
        b.put_i32(-1);
        b.put_i32(0);
        let req = CreateRequest::from_bytes(&b).unwrap();
        assert_eq!(req, CreateRequest::default());
    }

    #[test]
    fn hostile_counts_are_errors() {
        let mut b = BytesMut::new();
        b.put_i32(1_000_000_000);
        assert!(GetChildrenResponse::from_bytes(&b).is_err());
        let mut b = BytesMut::new();
        b.put_i32(0); // path ""
        b.put_i32(3); // three ACLs need ≥ 36 bytes
        b.put_slice(&[0u8; 35]);
        assert!(SetAclRequest::from_bytes(&b).is_err());
        let mut b = BytesMut::new();
        b.put_i32(-5);
        assert!(WhoAmIResponse::from_bytes(&b).is_err());
    }

    #[test]
    fn bad_utf8_decodes_as_replacement_characters() {
        let mut b = BytesMut::new();
        b.put_i32(2);
        b.put_slice(&[0xff, 0xfe]);
        assert_eq!(
            SyncRequest::from_bytes(&b).unwrap().path,
            "\u{FFFD}\u{FFFD}"
        );
    }

    macro_rules! decode_all {
        ($bytes:expr; $($t:ty),* $(,)?) => {$(
            let _ = <$t>::from_bytes($bytes);
        )*};
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            decode_all!(&bytes;
                Id, Acl, Stat, StatPersisted, ClientInfo, ConnectRequest, ConnectResponse,
                SetWatches, SetWatches2, RequestHeader, MultiHeader, AuthPacket, ReplyHeader,
                GetDataRequest, SetDataRequest, ReconfigRequest, SetDataResponse,
                GetSaslRequest, SetSaslRequest, SetSaslResponse, CreateRequest,
                CreateTtlRequest, DeleteRequest, GetChildrenRequest,
                GetAllChildrenNumberRequest, GetChildren2Request, CheckVersionRequest,
                GetMaxChildrenRequest, GetMaxChildrenResponse, SetMaxChildrenRequest,
                SyncRequest, SyncResponse, GetAclRequest, SetAclRequest, SetAclResponse,
                AddWatchRequest, WatcherEvent, ErrorResponse, CreateResponse,
                Create2Response, ExistsRequest, ExistsResponse, GetDataResponse,
                GetChildrenResponse, GetAllChildrenNumberResponse, GetChildren2Response,
                GetAclResponse, CheckWatchesRequest, RemoveWatchesRequest,
                GetEphemeralsRequest, GetEphemeralsResponse, WhoAmIResponse,
            );
        }

        #[test]
        fn small_vectors_round_trip(
            children in proptest::collection::vec("[a-z/é]{0,8}", 0..6),
            perms in any::<i32>(),
            data in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let rsp = GetChildren2Response { children, stat: stat() };
            prop_assert_eq!(GetChildren2Response::from_bytes(&rsp.to_bytes()).unwrap(), rsp);
            let req = CreateRequest {
                path: s("/p"),
                data: Some(Bytes::from(data)),
                acl: vec![Acl { perms, id: Id { scheme: s("ip"), id: s("::1") } }],
                flags: 0,
            };
            prop_assert_eq!(CreateRequest::from_bytes(&req.to_bytes()).unwrap(), req);
        }
    }
}
