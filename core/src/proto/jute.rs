//! Jute, ZooKeeper's record serialization: big-endian integers, `int`-length-prefixed
//! buffers and strings (length −1 means null), `int`-count-prefixed vectors.
//!
//! Decoding never panics and never trusts a length: every length is checked against the
//! bytes actually present before anything is allocated, so a hostile 2 GiB length costs
//! nothing but an error.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("invalid length {len} at offset {offset}")]
    BadLength { offset: usize, len: i64 },
    #[error("string at offset {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    #[error("invalid value for {field}: {value}")]
    BadValue { field: &'static str, value: i64 },
    /// A buffer or string longer than `jute.maxbuffer` + `zookeeper.jute.maxbuffer.extrasize`
    /// (`BinaryInputArchive.checkLength`), whatever is left in the frame.
    #[error("Unreasonable length = {len}")]
    Unreasonable { offset: usize, len: i64 },
}

/// A cursor over one record's bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The longest buffer or string accepted (see [`Reader::with_max_len`]).
    max_len: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            max_len: usize::MAX,
        }
    }

    /// Refuses any buffer or string longer than `max_len` as [`DecodeError::Unreasonable`],
    /// as ZooKeeper's `BinaryInputArchive` does above `jute.maxbuffer` + extrasize. Without
    /// it only the bytes present bound a length.
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        // Java's DataInput.readBoolean: any non-zero byte is true.
        Ok(self.take(1)?[0] != 0)
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A length prefix; −1 is null. Any other negative value, or one larger than what is
    /// left, is an error before anything is allocated.
    fn read_len(&mut self) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len >= 0 && len as usize > self.max_len {
            return Err(DecodeError::Unreasonable {
                offset,
                len: len as i64,
            });
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(DecodeError::BadLength {
                offset,
                len: len as i64,
            });
        }
        Ok(Some(len as usize))
    }

    /// A `buffer`; null decodes as `None`.
    pub fn read_buffer_opt(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.read_len()? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?)),
        }
    }

    /// A `buffer`; null decodes as empty, as ZooKeeper's server treats it.
    pub fn read_buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        Ok(self.read_buffer_opt()?.unwrap_or(&[]))
    }

    pub fn read_bytes(&mut self) -> Result<Bytes, DecodeError> {
        Ok(Bytes::copy_from_slice(self.read_buffer()?))
    }

    /// A `ustring`; null decodes as `None`. Bytes that are not UTF-8 become U+FFFD, as
    /// `BinaryInputArchive.readString` (`new String(bytes, UTF_8)`) reads them: ZooKeeper
    /// then refuses such a path as invalid (BadArguments) or finds no node, it does not
    /// fail to decode.
    pub fn read_string_opt(&mut self) -> Result<Option<String>, DecodeError> {
        match self.read_buffer_opt()? {
            None => Ok(None),
            Some(b) => Ok(Some(java_string_from_utf8(b))),
        }
    }

    /// A `ustring`; null decodes as the empty string.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        Ok(self.read_string_opt()?.unwrap_or_default())
    }

    /// A vector's element count; null is `None`. The count is checked against the bytes
    /// left assuming each element takes at least `min_elem` bytes.
    pub fn read_vec_len(&mut self, min_elem: usize) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || (n as usize).saturating_mul(min_elem.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength {
                offset,
                len: n as i64,
            });
        }
        Ok(Some(n as usize))
    }

    /// A `vector<T>`; null decodes as empty.
    pub fn read_vec<T>(
        &mut self,
        min_elem: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.read_vec_len(min_elem)?.unwrap_or(0);
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }

    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        self.read_vec(4, |r| r.read_string())
    }
}

/// Bytes read as Java's `new String(bytes, UTF_8)` reads them (the JDK's
/// `String.decodeUTF8_UTF16`): valid UTF-8 as is, and each malformed sequence as one
/// U+FFFD, with the JDK's idea of where a malformed sequence ends. It differs from
/// `String::from_utf8_lossy` there: an encoded surrogate (`ED A0 80`, what Java's own
/// writer emits for characters outside the BMP) is one U+FFFD, not three.
pub fn java_string_from_utf8(b: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(b) {
        return s.to_owned();
    }
    const REPL: char = '\u{FFFD}';
    let cont = |x: u8| x & 0xc0 == 0x80;
    let bits = |x: u8| (x & 0x3f) as u32;
    let (n, mut i) = (b.len(), 0);
    let mut out = String::with_capacity(n + 8);
    while i < n {
        let b1 = b[i];
        i += 1;
        if b1 < 0x80 {
            out.push(b1 as char);
        } else if b1 >> 5 == 0b110 && b1 & 0x1e != 0 {
            if i == n {
                out.push(REPL);
                break;
            }
            if cont(b[i]) {
                out.push(char::from_u32(((b1 & 0x1f) as u32) << 6 | bits(b[i])).unwrap_or(REPL));
                i += 1;
            } else {
                out.push(REPL);
            }
        } else if b1 >> 4 == 0b1110 {
            let overlong = |b2: u8| b1 == 0xe0 && b2 & 0xe0 == 0x80;
            if i + 1 < n {
                let (b2, b3) = (b[i], b[i + 1]);
                if overlong(b2) || !cont(b2) || !cont(b3) {
                    out.push(REPL);
                    i += if overlong(b2) || !cont(b2) { 0 } else { 1 };
                } else {
                    let c = ((b1 & 0x0f) as u32) << 12 | bits(b2) << 6 | bits(b3);
                    // A surrogate is malformed, all three bytes of it.
                    out.push(char::from_u32(c).unwrap_or(REPL));
                    i += 2;
                }
                continue;
            }
            out.push(REPL);
            if i < n && (overlong(b[i]) || !cont(b[i])) {
                continue;
            }
            break;
        } else if b1 >> 3 == 0b11110 {
            let bad2 = |b2: u8| {
                b1 > 0xf4
                    || (b1 == 0xf0 && !(0x90..=0xbf).contains(&b2))
                    || (b1 == 0xf4 && b2 & 0xf0 != 0x80)
                    || !cont(b2)
            };
            if i + 2 < n {
                let (b2, b3, b4) = (b[i], b[i + 1], b[i + 2]);
                let c = ((b1 & 0x07) as u32) << 18 | bits(b2) << 12 | bits(b3) << 6 | bits(b4);
                if !cont(b2) || !cont(b3) || !cont(b4) || !(0x10000..=0x10ffff).contains(&c) {
                    out.push(REPL);
                    i += if bad2(b2) {
                        0
                    } else if !cont(b3) {
                        1
                    } else {
                        2
                    };
                } else {
                    out.push(char::from_u32(c).unwrap_or(REPL));
                    i += 3;
                }
                continue;
            }
            out.push(REPL);
            if b1 > 0xf4 || (i < n && bad2(b[i])) {
                continue;
            }
            i += 1;
            if i < n && !cont(b[i]) {
                continue;
            }
            break;
        } else {
            out.push(REPL);
        }
    }
    out
}

/// Writing side: appends to a `BytesMut`.
pub trait JuteWrite {
    fn put_bool(&mut self, v: bool);
    fn put_int(&mut self, v: i32);
    fn put_long(&mut self, v: i64);
    fn put_buffer(&mut self, v: &[u8]);
    fn put_buffer_opt(&mut self, v: Option<&[u8]>);
    fn put_string(&mut self, v: &str);
    fn put_string_vec(&mut self, v: &[String]);
}

impl JuteWrite for BytesMut {
    fn put_bool(&mut self, v: bool) {
        self.put_u8(v as u8);
    }
    fn put_int(&mut self, v: i32) {
        self.put_i32(v);
    }
    fn put_long(&mut self, v: i64) {
        self.put_i64(v);
    }
    fn put_buffer(&mut self, v: &[u8]) {
        self.put_i32(v.len() as i32);
        self.put_slice(v);
    }
    fn put_buffer_opt(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.put_i32(-1),
            Some(b) => self.put_buffer(b),
        }
    }
    fn put_string(&mut self, v: &str) {
        // `BinaryOutputArchive.stringToByteBuffer` encodes each UTF-16 unit on its own: a
        // character outside the BMP goes out as its two surrogates, three bytes each.
        if !v.bytes().any(|b| b >= 0xf0) {
            return self.put_buffer(v.as_bytes());
        }
        let mut b = Vec::with_capacity(v.len() + v.len() / 2);
        for c in v.chars() {
            if (c as u32) < 0x10000 {
                b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            } else {
                for u in c.encode_utf16(&mut [0; 2]) {
                    let u = *u as u32;
                    b.extend(
                        [
                            0xe0 | (u >> 12),
                            0x80 | ((u >> 6) & 0x3f),
                            0x80 | (u & 0x3f),
                        ]
                        .map(|x| x as u8),
                    );
                }
            }
        }
        self.put_buffer(&b);
    }
    fn put_string_vec(&mut self, v: &[String]) {
        self.put_i32(v.len() as i32);
        for s in v {
            self.put_string(s);
        }
    }
}

/// A jute record: one definition shared by server, relay, proxy and tests.
pub trait Record: Sized {
    fn encode(&self, w: &mut BytesMut);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }

    /// Decodes a record that must span all of `buf`... or leave trailing bytes, which
    /// ZooKeeper ignores as well (it reads records from a stream).
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_decode_like_java() {
        // Expected values from `new String(bytes, UTF_8)` on OpenJDK 17.
        let cases: &[(&[u8], &str)] = &[
            (b"\xed\xa0\x80", "\u{FFFD}"),
            (b"\xc0\xaf", "\u{FFFD}\u{FFFD}"),
            (b"\xf0\x9f\x98", "\u{FFFD}"),
            (b"\xf0\x9f\x98A", "\u{FFFD}A"),
            (b"\xe0\x80A", "\u{FFFD}\u{FFFD}A"),
            (b"\xffA", "\u{FFFD}A"),
            (b"\xf4\x90\x80\x80", "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            (b"\xf0\x9f\x98\x80/", "\u{1F600}/"),
        ];
        for (bytes, want) in cases {
            assert_eq!(java_string_from_utf8(bytes), *want, "{bytes:02x?}");
        }
    }

    #[test]
    fn strings_outside_the_bmp_are_written_as_java_writes_them() {
        let mut b = BytesMut::new();
        b.put_string("/\u{1F600}");
        assert_eq!(&b[..], b"\0\0\0\x07/\xed\xa0\xbd\xed\xb8\x80");
        // and read back as Java reads its own output: one U+FFFD per surrogate
        let mut r = Reader::new(&b);
        assert_eq!(r.read_string().unwrap(), "/\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        let mut b = BytesMut::new();
        b.put_i32(i32::MAX);
        assert!(matches!(
            Reader::new(&b).read_buffer(),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            Reader::new(&b).read_vec(1, |r| r.read_i32()),
            Err(DecodeError::BadLength { .. })
        ));
        let mut b = BytesMut::new();
        b.put_i32(-7);
        assert!(Reader::new(&b).read_buffer().is_err());
    }

    #[test]
    fn null_buffer_and_string() {
        let mut b = BytesMut::new();
        b.put_buffer_opt(None);
        b.put_string("héllo");
        let mut r = Reader::new(&b);
        assert_eq!(r.read_buffer_opt().unwrap(), None);
        assert_eq!(r.read_string().unwrap(), "héllo");
        assert_eq!(r.remaining(), 0);
    }
}
