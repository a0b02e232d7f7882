//! The client port's framing: every packet is a 4-byte big-endian length and that many
//! bytes. The first frame of a connection is a [`ConnectRequest`]; every later one is a
//! [`RequestHeader`] followed by the body of its opcode.
//!
//! These functions are pure, so that the driver ([`crate::net`]), the fuzz targets and the
//! property tests all exercise the same code. They tell apart "incomplete, read more"
//! (`Ok(None)`) from "invalid, close the connection" (`Err`), and never allocate from a
//! length they were sent.

use crate::proto::records::{ConnectRequest, RequestHeader};
use crate::proto::{DecodeError, Reader, Record};
use crate::request::Request;

/// `jute.maxbuffer`'s default (`BinaryInputArchive.maxBuffer`): 0xfffff bytes.
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// The longest buffer or string a record may hold (`BinaryInputArchive.checkLength`):
/// `jute.maxbuffer` plus `zookeeper.jute.maxbuffer.extrasize`, which defaults to
/// `jute.maxbuffer` and is never less than 1024.
pub fn max_record_len(max_buffer: usize, extra_size: Option<usize>) -> usize {
    max_buffer.saturating_add(extra_size.unwrap_or(max_buffer).max(1024))
}

/// A frame that closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `NIOServerCnxn.readLength`: a negative length, or one above `jute.maxbuffer`.
    #[error("Len error. A message with advertised length of {len} is either a malformed message or too large to process (length is greater than jute.maxbuffer={max})")]
    Len { len: i32, max: usize },
}

impl FrameError {
    /// ZooKeeper's text for the log, naming the peer (`/127.0.0.1:50412`) as it does.
    pub fn message_from(&self, peer: &str) -> String {
        match self {
            FrameError::Len { len, max } => format!(
                "Len error. A message from /{peer} with advertised length of {len} is either a malformed message or too large to process (length is greater than jute.maxbuffer={max})"
            ),
        }
    }
}

/// The length of the frame that starts `buf`: `Ok(None)` until its 4-byte prefix is
/// there. A length outside `0..=max_buffer` is an error.
pub fn frame_len(buf: &[u8], max_buffer: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < 0 || len as usize > max_buffer {
        return Err(FrameError::Len {
            len,
            max: max_buffer,
        });
    }
    Ok(Some(len as usize))
}

/// The first whole frame in `buf` and the number of bytes it takes there (prefix
/// included), or `Ok(None)` if more bytes are needed.
pub fn split_frame(buf: &[u8], max_buffer: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    match frame_len(buf, max_buffer)? {
        Some(len) if buf.len() - 4 >= len => Ok(Some((&buf[4..4 + len], 4 + len))),
        _ => Ok(None),
    }
}

/// The first frame: a ConnectRequest, and whether the client sent the trailing
/// `readOnly` byte (3.4+ clients do). An error closes the connection without a reply.
pub fn decode_connect(
    frame: &[u8],
    max_record_len: usize,
) -> Result<(ConnectRequest, bool), DecodeError> {
    ConnectRequest::decode_with_read_only_flag(&mut Reader::new(frame).with_max_len(max_record_len))
}

/// A request frame: its header, then its body as a [`Request`]. A header that does not
/// decode closes the connection; a body that does not decode is [`Request::Malformed`]
/// (answered with MarshallingError), an opcode no 3.8 server knows [`Request::Unknown`].
pub fn decode_request(
    frame: &[u8],
    max_record_len: usize,
) -> Result<(RequestHeader, Request), DecodeError> {
    let mut r = Reader::new(frame);
    let h = RequestHeader::decode(&mut r)?;
    let req = Request::decode_with_max_len(h.r#type, r.rest(), max_record_len);
    Ok((h, req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::CreateRequest;
    use crate::proto::{JuteWrite, OpCode};
    use bytes::BytesMut;

    #[test]
    fn lengths_at_and_past_the_limit() {
        let mut b = BytesMut::new();
        b.put_int(DEFAULT_MAX_BUFFER as i32);
        assert_eq!(
            frame_len(&b, DEFAULT_MAX_BUFFER),
            Ok(Some(DEFAULT_MAX_BUFFER))
        );
        let mut b = BytesMut::new();
        b.put_int(DEFAULT_MAX_BUFFER as i32 + 1);
        assert!(frame_len(&b, DEFAULT_MAX_BUFFER).is_err());
        let mut b = BytesMut::new();
        b.put_int(-1);
        assert!(frame_len(&b, DEFAULT_MAX_BUFFER).is_err());
        assert_eq!(frame_len(&[0, 0, 0], DEFAULT_MAX_BUFFER), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 2, 9], 10), Ok(None));
        assert_eq!(
            split_frame(&[0, 0, 0, 1, 9, 8], 10),
            Ok(Some((&[9u8][..], 5)))
        );
    }

    #[test]
    fn extrasize_defaults_to_maxbuffer_with_a_floor() {
        assert_eq!(max_record_len(DEFAULT_MAX_BUFFER, None), 2_097_150);
        assert_eq!(max_record_len(100, Some(5)), 1124);
        assert_eq!(max_record_len(100, Some(5000)), 5100);
    }

    /// The note's captured case: a create whose path claims 3,000,000 bytes is a
    /// MarshallingError ("Unreasonable length"), not a closed connection.
    #[test]
    fn an_unreasonable_length_in_a_body_is_malformed() {
        let mut b = BytesMut::new();
        b.put_int(7);
        b.put_int(OpCode::Create as i32);
        b.put_int(3_000_000);
        let (h, req) = decode_request(&b, max_record_len(DEFAULT_MAX_BUFFER, None)).unwrap();
        assert_eq!(h.xid, 7);
        match req {
            Request::Malformed { op, reason } => {
                assert_eq!(op, OpCode::Create);
                assert_eq!(reason, "Unreasonable length = 3000000");
            }
            r => panic!("{r:?}"),
        }
        // Within the limit but past the end of the frame: the same answer.
        let mut b = BytesMut::new();
        b.put_int(7);
        b.put_int(OpCode::Create as i32);
        b.put_int(2_000_000);
        let (_, req) = decode_request(&b, max_record_len(DEFAULT_MAX_BUFFER, None)).unwrap();
        assert!(matches!(req, Request::Malformed { .. }));
        // A well-formed body is untouched by the limit.
        let mut b = BytesMut::new();
        b.put_int(8);
        b.put_int(OpCode::Create as i32);
        CreateRequest {
            path: "/a".into(),
            data: None,
            acl: crate::acl::open_acl_unsafe(),
            flags: 0,
        }
        .encode(&mut b);
        let (_, req) = decode_request(&b, 1024).unwrap();
        assert!(matches!(req, Request::Create { .. }));
    }

    #[test]
    fn a_short_header_or_connect_request_is_an_error() {
        assert!(decode_request(&[0, 0, 0, 1, 0, 0], 1024).is_err());
        assert!(decode_connect(&[0; 10], 1024).is_err());
        let mut b = BytesMut::new();
        b.put_int(0);
        b.put_long(0);
        b.put_int(30_000);
        b.put_long(0);
        b.put_int(5_000_000);
        assert!(matches!(
            decode_connect(&b, max_record_len(DEFAULT_MAX_BUFFER, None)),
            Err(DecodeError::Unreasonable { .. })
        ));
    }

    proptest::proptest! {
        /// Any bytes, cut into frames as the driver cuts them, decode to a frame error, a
        /// decode error or a request: never a panic.
        #[test]
        fn any_stream_of_frames_decodes_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            max in 0usize..600,
        ) {
            let _ = decode_connect(&bytes, max);
            let mut rest = &bytes[..];
            while let Ok(Some((frame, used))) = split_frame(rest, max) {
                let _ = decode_request(frame, max);
                rest = &rest[used..];
            }
        }
    }
}
