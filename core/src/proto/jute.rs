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
}

/// A cursor over one record's bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
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

    /// A `ustring`; null decodes as `None`.
    pub fn read_string_opt(&mut self) -> Result<Option<String>, DecodeError> {
        let offset = self.pos;
        match self.read_buffer_opt()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| DecodeError::BadUtf8 { offset }),
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
        self.put_buffer(v.as_bytes());
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
