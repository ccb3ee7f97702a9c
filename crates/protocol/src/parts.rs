//! Messages written as a list of buffers: the small encoded fields between
//! record batches go into short buffers, and the batches themselves go to
//! the socket as they are, in one vectored write, instead of being copied
//! into one message buffer first.
//!
//! Why: record batches are most of the bytes of a Produce request and of a
//! Fetch response. Copying them into a frame buffer is a pass over every
//! byte that the socket write makes anyway. The client's Produce requests
//! and the broker's Fetch responses are written this way; both are checked
//! byte for byte against `kafka-protocol`'s own encoding.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes an unsigned varint (the lengths of flexible versions).
pub fn put_uvarint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Writes a string (compact when `flexible`); `None` is null.
pub fn put_str(out: &mut BytesMut, s: Option<&str>, flexible: bool) {
    match (s, flexible) {
        (None, true) => put_uvarint(out, 0),
        (None, false) => out.put_i16(-1),
        (Some(s), true) => {
            put_uvarint(out, s.len() as u64 + 1);
            out.put_slice(s.as_bytes());
        }
        (Some(s), false) => {
            out.put_i16(s.len() as i16);
            out.put_slice(s.as_bytes());
        }
    }
}

/// Writes an array's element count (compact when `flexible`).
pub fn put_count(out: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(out, n as u64 + 1);
    } else {
        out.put_i32(n as i32);
    }
}

/// Writes a nullable byte field's length (compact when `flexible`); the
/// bytes themselves follow as their own part.
pub fn put_bytes_len(out: &mut BytesMut, len: Option<usize>, flexible: bool) {
    match (len, flexible) {
        (None, true) => put_uvarint(out, 0),
        (None, false) => out.put_i32(-1),
        (Some(n), true) => put_uvarint(out, n as u64 + 1),
        (Some(n), false) => out.put_i32(n as i32),
    }
}

/// Collects a frame's parts: encoded fields go into a running buffer, large
/// byte fields become parts of their own, small ones are copied (a tiny
/// buffer costs the socket write more than copying it).
#[derive(Debug)]
pub struct Parts {
    parts: Vec<Bytes>,
    out: BytesMut,
    size: usize,
}

/// Byte fields at least this long go to the socket as their own buffer.
const OWN_PART: usize = 16 * 1024;

impl Parts {
    /// A frame whose size prefix is written by [`Parts::finish`].
    pub fn new() -> Parts {
        let mut out = BytesMut::with_capacity(256);
        out.put_i32(0);
        Parts {
            parts: Vec::new(),
            out,
            size: 0,
        }
    }

    /// The buffer the next fields are encoded into.
    pub fn out(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Appends a byte field's contents (its length is already written).
    pub fn bytes(&mut self, b: &Bytes) {
        if b.len() < OWN_PART {
            self.out.put_slice(b);
            return;
        }
        self.size += self.out.len() + b.len();
        self.parts.push(self.out.split().freeze());
        self.parts.push(b.clone());
    }

    /// The buffers to write in order, with the frame's size prefix set.
    pub fn finish(mut self) -> Vec<Bytes> {
        self.size += self.out.len();
        self.parts.push(self.out.freeze());
        // The size prefix counts everything after itself; the first part
        // is never empty (it starts with the prefix).
        let total = (self.size - 4) as i32;
        let mut first = BytesMut::from(&self.parts[0][..]);
        first[0..4].copy_from_slice(&total.to_be_bytes());
        self.parts[0] = first.freeze();
        self.parts
    }
}

impl Default for Parts {
    fn default() -> Self {
        Parts::new()
    }
}

/// Writes every buffer in order, in as few vectored writes as the socket allows.
pub async fn write_all_parts<W: AsyncWrite + Unpin>(
    write: &mut W,
    parts: &[Bytes],
) -> std::io::Result<()> {
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < parts.len() {
        if off >= parts[idx].len() {
            idx += 1;
            off = 0;
            continue;
        }
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&parts[idx][off..])
            .chain(parts[idx + 1..].iter().map(|p| &p[..]))
            .take(64)
            .map(std::io::IoSlice::new)
            .collect();
        let mut n = write.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && idx < parts.len() {
            let left = parts[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most a few bytes per call: every resumption
    /// point of the part walk is exercised.
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn parts_arrive_whole_and_in_order_through_short_writes() {
        let parts: Vec<Bytes> = (0..100u8)
            .map(|i| Bytes::from(vec![i; usize::from(i % 7)]))
            .collect();
        let mut w = Trickle(Vec::new());
        write_all_parts(&mut w, &parts).await.expect("writes all");
        assert_eq!(w.0, parts.concat());
    }

    #[test]
    fn frames_get_their_size_and_large_fields_their_own_part() {
        let big = Bytes::from(vec![7u8; OWN_PART]);
        let small = Bytes::from_static(b"abc");
        let mut p = Parts::new();
        p.out().put_i16(5);
        p.bytes(&big);
        p.bytes(&small);
        p.out().put_i8(1);
        let parts = p.finish();
        assert_eq!(parts.len(), 3, "prefix+field, big, small+tail");
        let all = parts.concat();
        assert_eq!(&all[..4], &((all.len() - 4) as i32).to_be_bytes());
        assert_eq!(all.len(), 4 + 2 + OWN_PART + 3 + 1);
    }
}
