//! Walking the records inside a batch. Cold path only: offset-for-timestamp
//! lookups need the per-record timestamps, which may sit inside compressed data.

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
use thiserror::Error;

use crate::batch::{BatchError, BatchHeader, Compression, HEADER_LEN};

/// Why the records of a batch could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The batch header itself is bad.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The compression code is not one Kafka defines.
    #[error("unknown compression codec in attributes {0:#x}")]
    UnknownCodec(i16),
    /// Decompression failed.
    #[error("cannot decompress record batch: {0}")]
    Decompress(String),
    /// A record's varints or lengths run past the data.
    #[error("malformed record inside batch at offset {0}")]
    Malformed(i64),
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

fn decompress(codec: Compression, data: Bytes) -> Result<Bytes, RecordError> {
    use bytes::Buf;
    let mut data = data;
    let r = match codec {
        Compression::None => return Ok(data),
        Compression::Gzip => Gzip::decompress(&mut data, |b| Ok(b.copy_to_bytes(b.remaining()))),
        Compression::Snappy => {
            Snappy::decompress(&mut data, |b| Ok(b.copy_to_bytes(b.remaining())))
        }
        Compression::Lz4 => Lz4::decompress(&mut data, |b| Ok(b.copy_to_bytes(b.remaining()))),
        Compression::Zstd => Zstd::decompress(&mut data, |b| Ok(b.copy_to_bytes(b.remaining()))),
    };
    r.map_err(|e| RecordError::Decompress(e.to_string()))
}

/// One record inside a batch, borrowed from the (decompressed) batch data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp.
    pub timestamp: i64,
    /// Key bytes, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value bytes, `None` for a null value (tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order: name bytes (UTF-8 by convention) and value.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

fn get_bytes<'a>(data: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = get_varint(data, pos)?;
    if len < 0 {
        return Some(None);
    }
    let end = pos.checked_add(len as usize)?;
    let b = data.get(*pos..end)?;
    *pos = end;
    Some(Some(b))
}

/// Calls `f` for every record of a batch, decompressing if needed. Used by
/// clients and on the broker's cold paths only (internal topics replayed at
/// start-up, offset-for-timestamp lookups); the broker's hot path never
/// looks inside batches.
pub fn for_each_record(batch: &[u8], f: impl FnMut(RecordView<'_>)) -> Result<(), RecordError> {
    let h = BatchHeader::parse(batch)?;
    let codec = h
        .compression()
        .ok_or(RecordError::UnknownCodec(h.attributes))?;
    let records = &batch[HEADER_LEN..h.total_len()];
    if codec == Compression::None {
        return walk(&h, records, f);
    }
    let data = decompress(codec, Bytes::copy_from_slice(records))?;
    walk(&h, &data, f)
}

/// Like [`for_each_record`], for a batch held in `Bytes`: `f` also gets the
/// buffer the views point into, so a consumer can keep keys and values as
/// `Bytes::slice_ref` of it without copying (uncompressed batches share the
/// fetched buffer itself).
pub fn for_each_record_shared(
    batch: &Bytes,
    mut f: impl FnMut(&Bytes, RecordView<'_>),
) -> Result<(), RecordError> {
    let h = BatchHeader::parse(batch)?;
    let codec = h
        .compression()
        .ok_or(RecordError::UnknownCodec(h.attributes))?;
    let data = decompress(codec, batch.slice(HEADER_LEN..h.total_len()))?;
    walk(&h, &data, |r| f(&data, r))
}

fn walk(
    h: &BatchHeader,
    data: &[u8],
    mut f: impl FnMut(RecordView<'_>),
) -> Result<(), RecordError> {
    let mut pos = 0usize;
    let bad = || RecordError::Malformed(h.base_offset);
    for _ in 0..h.records_count {
        let len = get_varint(data, &mut pos).ok_or_else(bad)?;
        let start = pos;
        if len < 0 || start + len as usize > data.len() {
            return Err(bad());
        }
        pos += 1; // record attributes
        let ts_delta = get_varint(data, &mut pos).ok_or_else(bad)?;
        let off_delta = get_varint(data, &mut pos).ok_or_else(bad)?;
        let key = get_bytes(data, &mut pos).ok_or_else(bad)?;
        let value = get_bytes(data, &mut pos).ok_or_else(bad)?;
        let count = get_varint(data, &mut pos).ok_or_else(bad)?;
        // Each header takes at least two bytes: a larger count is a lie.
        let end = start + len as usize;
        if count < 0 || count as usize > end.saturating_sub(pos) / 2 {
            return Err(bad());
        }
        let mut headers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = get_bytes(data, &mut pos)
                .ok_or_else(bad)?
                .unwrap_or_default();
            let v = get_bytes(data, &mut pos).ok_or_else(bad)?;
            headers.push((name, v));
        }
        let timestamp = if h.attributes & crate::ATTR_LOG_APPEND_TIME != 0 {
            h.max_timestamp
        } else {
            h.base_timestamp.saturating_add(ts_delta)
        };
        f(RecordView {
            offset: h.base_offset + off_delta,
            timestamp,
            key,
            value,
            headers,
        });
        pos = start + len as usize;
    }
    Ok(())
}

/// The first record in `batch` whose timestamp is `>= ts`, as (offset, timestamp).
///
/// For `LogAppendTime` batches every record carries the batch's max timestamp.
pub fn first_offset_at_or_after(batch: &[u8], ts: i64) -> Result<Option<(i64, i64)>, RecordError> {
    let h = BatchHeader::parse(batch)?;
    if h.max_timestamp < ts {
        return Ok(None);
    }
    if h.attributes & crate::ATTR_LOG_APPEND_TIME != 0 {
        return Ok(Some((h.base_offset, h.max_timestamp)));
    }
    let mut found = None;
    for_each_record(batch, |r| {
        if found.is_none() && r.timestamp >= ts {
            found = Some((r.offset, r.timestamp));
        }
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchBuilder, OwnedRecord};

    #[test]
    fn iterates_records() {
        let mut bytes = BatchBuilder::new(5)
            .record(Some(b"a"), Some(b"1"))
            .record(None, None)
            .build();
        BatchHeader::set_base_offset(&mut bytes, 7);
        let mut seen = Vec::new();
        for_each_record(&bytes, |r| {
            seen.push((
                r.offset,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ))
        })
        .expect("ok");
        assert_eq!(
            seen,
            vec![
                (7, Some(b"a".to_vec()), Some(b"1".to_vec())),
                (8, None, None)
            ]
        );
    }

    #[test]
    fn finds_first_record_by_timestamp() {
        let mut b = BatchBuilder::new(100);
        for (i, ts) in [100, 300, 200, 400].iter().enumerate() {
            b = b.push(OwnedRecord {
                value: Some(vec![i as u8]),
                timestamp: *ts,
                ..Default::default()
            });
        }
        let mut bytes = b.build();
        BatchHeader::set_base_offset(&mut bytes, 10);
        assert_eq!(
            first_offset_at_or_after(&bytes, 0).expect("ok"),
            Some((10, 100))
        );
        assert_eq!(
            first_offset_at_or_after(&bytes, 150).expect("ok"),
            Some((11, 300))
        );
        assert_eq!(
            first_offset_at_or_after(&bytes, 350).expect("ok"),
            Some((13, 400))
        );
        assert_eq!(first_offset_at_or_after(&bytes, 401).expect("ok"), None);
    }
}
