//! The cost of turning client bytes into a typed request, paid once per request on the
//! connection's task before anything reaches the core: `split_frame` (find the length
//! prefix, cut the frame) then `decode_request` (RequestHeader, then the opcode's body),
//! for the requests that dominate a ZooKeeper workload (getData, a 100-byte setData, a
//! create, a multi of check + create + setData), and `decode_connect` for the handshake.
//! The frames are built with the crate's own encoders, so they are exactly what a client
//! sends and change with the records if those ever change.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use geokeeper_core::acl::open_acl_unsafe;
use geokeeper_core::proto::frame::{
    decode_connect, decode_request, max_record_len, split_frame, DEFAULT_MAX_BUFFER,
};
use geokeeper_core::proto::records::{
    CheckVersionRequest, ConnectRequest, CreateRequest, GetDataRequest, SetDataRequest,
};
use geokeeper_core::proto::{JuteWrite, OpCode, Record};
use geokeeper_core::request::{frame, MultiOp, Request};

const PATH: &str = "/app/svc42/node4242";

fn value() -> Bytes {
    Bytes::from(vec![b'v'; 100])
}

fn create_request() -> CreateRequest {
    CreateRequest {
        path: PATH.into(),
        data: Some(value()),
        acl: open_acl_unsafe(),
        flags: 0,
    }
}

fn set_data_request() -> SetDataRequest {
    SetDataRequest {
        path: PATH.into(),
        data: Some(value()),
        version: 7,
    }
}

/// The request frames, length prefix included, as they arrive on the socket.
fn request_frames() -> Vec<(&'static str, OpCode, Bytes)> {
    let get_data = Request::GetData(GetDataRequest {
        path: PATH.into(),
        watch: true,
    });
    let create = Request::Create {
        op: OpCode::Create,
        req: create_request(),
    };
    // The usual shape of a multi: guard on a version, then write.
    let multi = Request::Multi(vec![
        MultiOp::Check(CheckVersionRequest {
            path: "/app/svc42".into(),
            version: 3,
        }),
        MultiOp::Create {
            op: OpCode::Create,
            req: create_request(),
        },
        MultiOp::SetData(set_data_request()),
    ]);
    vec![
        (
            "getData",
            OpCode::GetData,
            frame(1, OpCode::GetData, &get_data),
        ),
        (
            "setData_100B",
            OpCode::SetData,
            frame(2, OpCode::SetData, &Request::SetData(set_data_request())),
        ),
        (
            "create_100B",
            OpCode::Create,
            frame(3, OpCode::Create, &create),
        ),
        (
            "multi_3_ops",
            OpCode::Multi,
            frame(4, OpCode::Multi, &multi),
        ),
    ]
}

/// A 3.4+ client's ConnectRequest (with the trailing readOnly byte), framed.
fn connect_frame() -> Bytes {
    let mut w = BytesMut::new();
    w.put_int(0);
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30_000,
        session_id: 0,
        passwd: Bytes::from(vec![0u8; 16]),
        read_only: false,
    }
    .encode(&mut w);
    let len = (w.len() - 4) as i32;
    w[0..4].copy_from_slice(&len.to_be_bytes());
    w.freeze()
}

fn bench(c: &mut Criterion) {
    let max_len = max_record_len(DEFAULT_MAX_BUFFER, None);
    let mut g = c.benchmark_group("decode_request");
    for (name, op, bytes) in request_frames() {
        // What is timed must be a real decode, not the Malformed fallback.
        let (body, _) = split_frame(&bytes, DEFAULT_MAX_BUFFER).unwrap().unwrap();
        let (h, req) = decode_request(body, max_len).unwrap();
        assert_eq!(h.r#type, op as i32);
        assert!(
            !matches!(req, Request::Malformed { .. } | Request::Unknown(_)),
            "{name}: {req:?}"
        );
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let (body, used) = split_frame(black_box(&bytes), DEFAULT_MAX_BUFFER)
                    .unwrap()
                    .unwrap();
                (used, decode_request(body, max_len).unwrap())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode_connect");
    let bytes = connect_frame();
    let (body, _) = split_frame(&bytes, DEFAULT_MAX_BUFFER).unwrap().unwrap();
    assert!(
        decode_connect(body, max_len).unwrap().1,
        "readOnly byte present"
    );
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("connect", |b| {
        b.iter(|| {
            let (body, used) = split_frame(black_box(&bytes), DEFAULT_MAX_BUFFER)
                .unwrap()
                .unwrap();
            (used, decode_connect(body, max_len).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
