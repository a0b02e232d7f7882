//! Every client-port record on its own: the first byte picks the record type, the rest is
//! its bytes. A record that decodes must encode back to bytes that decode the same (after
//! one round trip when its strings held 4-byte UTF-8; see the request target).
#![no_main]

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{Reader, Record};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: Record + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(v) = T::decode(&mut Reader::new(bytes).with_max_len(4096)) {
        let again = |v: &T| T::from_bytes(&v.to_bytes()).expect("re-decodes");
        let once = again(&v);
        assert_eq!(again(&once), once);
        // Strings change only if they held 4-byte UTF-8 (see the request target).
        if !bytes.iter().any(|&b| b >= 0xf0) {
            assert_eq!(once, v);
        }
    }
}

macro_rules! pick {
    ($sel:expr, $bytes:expr; $($t:ty),* $(,)?) => {{
        const TYPES: &[&str] = &[$(stringify!($t)),*];
        let mut i = ($sel as usize) % TYPES.len();
        $(
            if i == 0 {
                round_trip::<$t>($bytes);
            }
            i = i.wrapping_sub(1);
        )*
        let _ = i;
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    pick!(sel, bytes;
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
});
