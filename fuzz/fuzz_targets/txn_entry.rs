//! One transaction log entry (TxnHeader + body + optional digest), as the log, the relay
//! and a Java leader's INFORM carry it.
#![no_main]

use geokeeper_core::proto::txn::TxnEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = TxnEntry::decode(data) {
        let again = |e: &TxnEntry| TxnEntry::decode(&e.to_bytes()).expect("re-decodes");
        let once = again(&e);
        assert_eq!(again(&once), once);
        // Strings change only if they held 4-byte UTF-8 (see the request target).
        if !data.iter().any(|&b| b >= 0xf0) {
            assert_eq!(once, e);
        }
    }
});
