//! The structural walk over the records of a v2 batch, shared by the
//! broker's produce validation and by every reader of records.
//!
//! The records section (after the 61-byte header, decompressed if needed)
//! is `records_count` records back to back and nothing else:
//!
//! ```text
//! length          varint   bytes of the record after this field
//! attributes      int8     unused in v2
//! timestamp_delta varlong  from the batch's base_timestamp
//! offset_delta    varint   from the batch's base_offset
//! key_length      varint   -1 for a null key
//! key             bytes
//! value_length    varint   -1 for a null value
//! value           bytes
//! header_count    varint
//! headers         header_count × (key_length varint ≥ 0, key, value_length varint ≥ -1, value)
//! ```
//!
//! The walk checks what every client's decoder relies on: each varint ends
//! within 5 bytes (10 for the varlong) and fits its type, as Kafka's
//! `ByteUtils` reads them; lengths are -1 or more (Kafka's Java reader reads
//! any negative length as null, librdkafka stops at one without a word, so
//! only -1 means null here); every length fits in what is left of its
//! record; the record's fields use exactly its `length` bytes; there are
//! exactly `records_count` records and no byte after the last. It allocates
//! nothing and copies nothing: a record is handed out as slices of the
//! input.
//!
//! What a record may *contain* (offset deltas in order, keys on compacted
//! topics, timestamps in range) is policy, checked by `validate` on top.

use std::ops::ControlFlow;

use thiserror::Error;

/// What is structurally wrong with a record, found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Malformed {
    /// A varint runs past its record or past 5 bytes (10 for a varlong), or
    /// does not fit its type.
    #[error("a varint is truncated, longer than its type allows or out of range")]
    Varint,
    /// The record's length field is negative or larger than what is left.
    #[error("record length {length} does not fit in the {available} bytes left")]
    RecordLength {
        /// The length field.
        length: i64,
        /// Bytes left in the records section after the length field.
        available: usize,
    },
    /// A key length below -1 or past the record's end.
    #[error("key length {0} is invalid or runs past the record")]
    KeyLength(i32),
    /// A value length below -1 or past the record's end.
    #[error("value length {0} is invalid or runs past the record")]
    ValueLength(i32),
    /// A negative header count or more headers than the record has bytes for.
    #[error("header count {0} is invalid for the record's size")]
    HeaderCount(i32),
    /// A header key length below 0 (header keys are never null) or past the end.
    #[error("header key length {0} is invalid or runs past the record")]
    HeaderKeyLength(i32),
    /// A header value length below -1 or past the record's end.
    #[error("header value length {0} is invalid or runs past the record")]
    HeaderValueLength(i32),
    /// The record's fields end before its declared length.
    #[error("record declares {declared} bytes but its fields use {used}")]
    LengthMismatch {
        /// The record's length field.
        declared: usize,
        /// Bytes its fields take.
        used: usize,
    },
    /// The data ended before `records_count` records.
    #[error("the batch declares {declared} records but holds only {found}")]
    MissingRecords {
        /// `records_count` from the header.
        declared: i32,
        /// Records found.
        found: u32,
    },
    /// Bytes follow the last declared record.
    #[error("{0} bytes follow the last of the batch's records")]
    ExtraBytes(usize),
}

/// A walk failure: what and at which record (0-based index in the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("record {index}: {what}")]
pub struct WalkError {
    /// Index of the record where the walk stopped (for `ExtraBytes`, the
    /// record count).
    pub index: u32,
    /// What was wrong.
    pub what: Malformed,
}

/// One record as the walk found it, borrowed from the records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    /// The attributes byte (unused in v2; writers put 0).
    pub attributes: u8,
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` when null.
    pub value: Option<&'a [u8]>,
    /// Header count (already checked against `headers`).
    pub header_count: u32,
    /// The headers' bytes; [`Headers`] reads them without further checks.
    pub headers: &'a [u8],
    /// The whole record after its length field (the log cleaner copies
    /// kept records from it).
    pub body: &'a [u8],
}

impl<'a> RawRecord<'a> {
    /// The record's headers, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            data: self.headers,
            pos: 0,
            left: self.header_count,
        }
    }
}

/// The headers of a walked record: (key, value) pairs, value `None` when null.
#[derive(Debug, Clone)]
pub(crate) struct Headers<'a> {
    data: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The walk checked these bytes; a `None` here would mean it did not.
        let key = bytes(self.data, &mut self.pos, 0)?.unwrap_or_default();
        let value = bytes(self.data, &mut self.pos, -1)?;
        Some((key, value))
    }
}

/// An unsigned varint of at most 5 bytes that fits in 32 bits.
#[inline(always)]
fn uvarint32(d: &[u8], pos: &mut usize) -> Option<u32> {
    let b = *d.get(*pos)?;
    *pos += 1;
    if b < 0x80 {
        return Some(b as u32);
    }
    let mut v = (b & 0x7f) as u32;
    for shift in [7u32, 14, 21] {
        let b = *d.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u32) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    let b = *d.get(*pos)?;
    *pos += 1;
    // The fifth byte carries bits 28..31 only.
    if b > 0x0f {
        return None;
    }
    Some(v | (b as u32) << 28)
}

/// A zigzag varint (Kafka's `readVarint`).
#[inline(always)]
pub(crate) fn varint32(d: &[u8], pos: &mut usize) -> Option<i32> {
    let v = uvarint32(d, pos)?;
    Some((v >> 1) as i32 ^ -((v & 1) as i32))
}

/// A zigzag varlong of at most 10 bytes (Kafka's `readVarlong`).
#[inline(always)]
pub(crate) fn varint64(d: &[u8], pos: &mut usize) -> Option<i64> {
    let b = *d.get(*pos)?;
    *pos += 1;
    let mut v = (b & 0x7f) as u64;
    if b >= 0x80 {
        let mut shift = 7;
        loop {
            let b = *d.get(*pos)?;
            *pos += 1;
            if shift == 63 && b > 0x01 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }
    Some((v >> 1) as i64 ^ -((v & 1) as i64))
}

/// A length-prefixed byte string whose length is at least `min_len` (-1
/// allows null, 0 does not); `None` when the length is out of range or the
/// bytes run past `d`.
#[inline(always)]
fn bytes<'a>(d: &'a [u8], pos: &mut usize, min_len: i32) -> Option<Option<&'a [u8]>> {
    let len = varint32(d, pos)?;
    if len < min_len {
        return None;
    }
    if len < 0 {
        return Some(None);
    }
    let b = d.get(*pos..*pos + len as usize)?;
    *pos += len as usize;
    Some(Some(b))
}

/// Parses one record body (the bytes after its length field).
#[inline(always)]
fn record(body: &[u8]) -> Result<RawRecord<'_>, Malformed> {
    let mut p = 0;
    let attributes = *body.first().ok_or(Malformed::Varint)?;
    p += 1;
    let timestamp_delta = varint64(body, &mut p).ok_or(Malformed::Varint)?;
    let offset_delta = varint32(body, &mut p).ok_or(Malformed::Varint)?;
    let key = length_prefixed(body, &mut p, Malformed::KeyLength)?;
    let value = length_prefixed(body, &mut p, Malformed::ValueLength)?;
    let count = varint32(body, &mut p).ok_or(Malformed::Varint)?;
    // Each header takes at least two bytes.
    if count < 0 || count as usize > (body.len() - p) / 2 {
        return Err(Malformed::HeaderCount(count));
    }
    let headers_start = p;
    for _ in 0..count {
        let klen = varint32(body, &mut p).ok_or(Malformed::Varint)?;
        if klen < 0 || klen as usize > body.len() - p {
            return Err(Malformed::HeaderKeyLength(klen));
        }
        p += klen as usize;
        let vlen = varint32(body, &mut p).ok_or(Malformed::Varint)?;
        if vlen < -1 || (vlen > 0 && vlen as usize > body.len() - p) {
            return Err(Malformed::HeaderValueLength(vlen));
        }
        p += vlen.max(0) as usize;
    }
    if p != body.len() {
        return Err(Malformed::LengthMismatch {
            declared: body.len(),
            used: p,
        });
    }
    Ok(RawRecord {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count: count as u32,
        headers: &body[headers_start..],
        body,
    })
}

/// A key or value: its length is read first so a bad one is reported with it.
#[inline(always)]
fn length_prefixed<'a>(
    body: &'a [u8],
    p: &mut usize,
    bad: fn(i32) -> Malformed,
) -> Result<Option<&'a [u8]>, Malformed> {
    let len = varint32(body, p).ok_or(Malformed::Varint)?;
    if len < 0 {
        return if len == -1 { Ok(None) } else { Err(bad(len)) };
    }
    let b = body.get(*p..*p + len as usize).ok_or(bad(len))?;
    *p += len as usize;
    Ok(Some(b))
}

/// Walks exactly `count` records in `data` (an uncompressed records
/// section), calling `f(index, record)` for each, and checks that nothing
/// follows the last one. A `Break` from `f` ends the walk there with `Ok`
/// (the caller knows why it stopped).
#[inline]
pub(crate) fn walk<'a>(
    data: &'a [u8],
    count: i32,
    mut f: impl FnMut(u32, &RawRecord<'a>) -> ControlFlow<()>,
) -> Result<(), WalkError> {
    let mut pos = 0usize;
    let count = count.max(0) as u32;
    for index in 0..count {
        if pos == data.len() {
            return Err(WalkError {
                index,
                what: Malformed::MissingRecords {
                    declared: count as i32,
                    found: index,
                },
            });
        }
        let len = varint32(data, &mut pos).ok_or(WalkError {
            index,
            what: Malformed::Varint,
        })?;
        let available = data.len() - pos;
        if len < 0 || len as usize > available {
            return Err(WalkError {
                index,
                what: Malformed::RecordLength {
                    length: len as i64,
                    available,
                },
            });
        }
        let body = &data[pos..pos + len as usize];
        pos += len as usize;
        let r = record(body).map_err(|what| WalkError { index, what })?;
        if f(index, &r).is_break() {
            return Ok(());
        }
    }
    if pos != data.len() {
        return Err(WalkError {
            index: count,
            what: Malformed::ExtraBytes(data.len() - pos),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }

    fn put(out: &mut Vec<u8>, v: i64) {
        let mut u = zigzag(v);
        while u >= 0x80 {
            out.push((u as u8) | 0x80);
            u >>= 7;
        }
        out.push(u as u8);
    }

    #[test]
    fn varints_match_kafka_limits() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i32::MIN as i64,
        ] {
            let mut b = Vec::new();
            put(&mut b, v);
            let mut p = 0;
            assert_eq!(varint32(&b, &mut p), Some(v as i32), "{v}");
            assert_eq!(p, b.len());
        }
        for v in [0i64, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut b = Vec::new();
            put(&mut b, v);
            let mut p = 0;
            assert_eq!(varint64(&b, &mut p), Some(v), "{v}");
        }
        // 2^32 does not fit a varint; 6 bytes never do; a truncated one fails.
        let mut p = 0;
        assert_eq!(varint32(&[0x80, 0x80, 0x80, 0x80, 0x10], &mut p), None);
        let mut p = 0;
        assert_eq!(
            varint32(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut p),
            None
        );
        let mut p = 0;
        assert_eq!(varint32(&[0x80], &mut p), None);
        let mut p = 0;
        assert_eq!(varint64(&[0xff; 10], &mut p), None);
        let mut p = 0;
        let mut eleven = vec![0x80; 10];
        eleven.push(0);
        assert_eq!(varint64(&eleven, &mut p), None);
    }

    fn rec(key: Option<&[u8]>, value_len: i64, value: &[u8], headers: &[(i64, &[u8])]) -> Vec<u8> {
        let mut body = vec![0u8];
        put(&mut body, 0);
        put(&mut body, 0);
        match key {
            Some(k) => {
                put(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => put(&mut body, -1),
        }
        put(&mut body, value_len);
        body.extend_from_slice(value);
        put(&mut body, headers.len() as i64);
        for (klen, k) in headers {
            put(&mut body, *klen);
            body.extend_from_slice(k);
            put(&mut body, -1);
        }
        let mut out = Vec::new();
        put(&mut out, body.len() as i64);
        out.extend(body);
        out
    }

    fn what(data: &[u8], count: i32) -> Result<u32, Malformed> {
        let mut n = 0;
        walk(data, count, |_, _| {
            n += 1;
            ControlFlow::Continue(())
        })
        .map(|()| n)
        .map_err(|e| e.what)
    }

    #[test]
    fn walks_good_records_and_reads_headers() {
        let mut data = rec(Some(b"k"), 1, b"v", &[(1, b"h")]);
        data.extend(rec(None, -1, b"", &[]));
        let mut seen = Vec::new();
        walk(&data, 2, |i, r| {
            seen.push((i, r.key.map(<[u8]>::to_vec), r.headers().count()));
            ControlFlow::Continue(())
        })
        .expect("valid");
        assert_eq!(seen, vec![(0, Some(b"k".to_vec()), 1), (1, None, 0)]);
    }

    #[test]
    fn refuses_every_lie() {
        assert_eq!(
            what(&rec(None, -5, b"", &[]), 1),
            Err(Malformed::ValueLength(-5))
        );
        assert_eq!(
            what(&rec(None, 9, b"v", &[]), 1),
            Err(Malformed::ValueLength(9))
        );
        assert_eq!(
            what(&rec(None, 1, b"v", &[(-1, b"")]), 1),
            Err(Malformed::HeaderKeyLength(-1))
        );
        let one = rec(None, 1, b"v", &[]);
        assert_eq!(
            what(&one, 2),
            Err(Malformed::MissingRecords {
                declared: 2,
                found: 1
            })
        );
        let mut extra = one.clone();
        extra.push(0);
        assert_eq!(what(&extra, 1), Err(Malformed::ExtraBytes(1)));
        // The record-length lie of the issue: 1000 declared, 10 there.
        let mut lie = vec![0xd0, 0x0f];
        lie.extend_from_slice(&one[1..]);
        assert!(matches!(
            what(&lie, 1),
            Err(Malformed::RecordLength { length: 1000, .. })
        ));
        // A length one byte too long swallows nothing: the fields end early.
        let mut long = one.clone();
        long[0] += 2;
        long.push(0);
        assert!(matches!(
            what(&long, 1),
            Err(Malformed::LengthMismatch { .. })
        ));
        // A header count larger than the bytes could hold.
        let mut many = rec(None, 1, b"v", &[]);
        let n = many.len();
        many[n - 1] = 0x7e; // header count 63, no bytes for them
        assert_eq!(what(&many, 1), Err(Malformed::HeaderCount(63)));
        assert_eq!(
            what(&[], 1),
            Err(Malformed::MissingRecords {
                declared: 1,
                found: 0
            })
        );
    }
}
