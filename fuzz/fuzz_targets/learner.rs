//! Bytes from a ZooKeeper leader: the learner-port framing, the learner state machine
//! (handshake, sync, the serialized database a SNAP streams, following), fed whole and in
//! two pieces. It must never panic, whatever the leader sends.
#![no_main]

use geokeeper_core::learner::{Learner, LearnerStart};
use geokeeper_core::proto::quorum::split_packet;
use geokeeper_core::proto::Record;
use geokeeper_core::snapshot_stream::DatabaseStream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((p, _))) = split_packet(data, 1 << 16) {
        // One encode-and-decode round, then stable; unchanged unless a string held 4-byte
        // UTF-8 (Java writes it as surrogates, read back as U+FFFD: see README.md).
        let again = |p: &geokeeper_core::proto::quorum::QuorumPacket| {
            split_packet(&p.to_bytes(), 1 << 16)
                .ok()
                .flatten()
                .map(|x| x.0)
                .expect("re-decodes")
        };
        let once = again(&p);
        assert_eq!(again(&once), once);
        if !data.iter().any(|&b| b >= 0xf0) {
            assert_eq!(once, p);
        }
    }
    let _ = DatabaseStream::new(1 << 16).feed(data);
    let start = LearnerStart {
        server_id: 7,
        last_zxid: 0,
        accepted_epoch: 0,
        current_epoch: 0,
    };
    let cut = data.first().map_or(0, |&b| b as usize).min(data.len());
    let (mut l, _) = Learner::new(start, 1 << 16);
    let mut events = Vec::new();
    let mut pending = data[..cut].to_vec();
    if let Ok(used) = l.receive(&pending, &mut events) {
        pending.drain(..used);
        pending.extend_from_slice(&data[cut..]);
        let _ = l.receive(&pending, &mut events);
    }
});
