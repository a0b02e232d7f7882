//! The body of a multi (14) or multiRead (22): MultiHeader-separated ops up to `done`.
#![no_main]

use bytes::BytesMut;
use geokeeper_core::request::{decode_multi, encode_multi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ops) = decode_multi(data) {
        let again = |ops: &[_]| {
            let mut w = BytesMut::new();
            encode_multi(ops, &mut w);
            decode_multi(&w).expect("a decoded multi encodes to one that decodes")
        };
        let once = again(&ops);
        assert_eq!(again(&once), once);
        // Strings change only if they held 4-byte UTF-8 (see the request target).
        if !data.iter().any(|&b| b >= 0xf0) {
            assert_eq!(once, ops);
        }
    }
});
