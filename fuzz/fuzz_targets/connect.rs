//! The first frame of a connection: the ConnectRequest, with or without the trailing
//! `readOnly` byte old clients omit.
#![no_main]

use geokeeper_core::proto::frame::{
    decode_connect, max_record_len, split_frame, DEFAULT_MAX_BUFFER,
};
use geokeeper_core::proto::records::ConnectRequest;
use geokeeper_core::proto::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max_len = max_record_len(DEFAULT_MAX_BUFFER, None);
    // As a whole frame body, and as a stream that must first be framed.
    for frame in [
        Some(data),
        split_frame(data, DEFAULT_MAX_BUFFER)
            .ok()
            .flatten()
            .map(|f| f.0),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok((req, _has_read_only)) = decode_connect(frame, max_len) {
            assert_eq!(
                ConnectRequest::from_bytes(&req.to_bytes()).as_ref(),
                Ok(&req)
            );
        }
    }
});
