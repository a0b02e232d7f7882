//! A connection's byte stream after the handshake: cut into frames as the driver cuts
//! them (`jute.maxbuffer`), each decoded as RequestHeader + body. Nothing may panic, and a
//! body that decodes must encode back to one that decodes the same, once its strings have
//! been through Java's encoding (characters outside the BMP go out as two surrogates and
//! read back as U+FFFD, as ZooKeeper reads them): decoding after one round trip is a fixed
//! point, and an exact one when no 4-byte UTF-8 sequence was sent.
#![no_main]

use bytes::BytesMut;
use geokeeper_core::proto::frame::{decode_request, max_record_len, split_frame};
use geokeeper_core::request::Request;
use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches both frame-length and record-length limits.
const MAX_BUFFER: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let max_len = max_record_len(MAX_BUFFER, Some(0));
    let mut rest = data;
    while let Ok(Some((frame, used))) = split_frame(rest, MAX_BUFFER) {
        rest = &rest[used..];
        let Ok((h, req)) = decode_request(frame, max_len) else {
            // The driver closes the connection here.
            return;
        };
        if matches!(req, Request::Unknown(_) | Request::Malformed { .. }) {
            continue;
        }
        let again = |r: &Request| {
            let mut w = BytesMut::new();
            r.encode_body(&mut w);
            Request::decode(h.r#type, &w)
        };
        let once = again(&req);
        assert_eq!(again(&once), once);
        if !frame.iter().any(|&b| b >= 0xf0) {
            assert_eq!(once, req);
        }
    }
});
