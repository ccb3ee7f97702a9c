//! Reading the records inside a batch: clients, and the broker's cold
//! paths (offset-for-timestamp lookups, replays of internal topics). The
//! structure is checked by the same walk as produce validation, and
//! decompression is bounded the same way.

use std::ops::ControlFlow;

use bytes::Bytes;
use thiserror::Error;

use crate::batch::{BatchError, BatchHeader, Compression, HEADER_LEN};
use crate::decompress::{Decoders, DecompressError};
use crate::walk::{walk, RawRecord, WalkError};

/// The most a batch is decompressed to when read: a batch a broker accepted
/// under a `max.message.bytes` of up to 16 MiB stays below it.
pub const READ_DECOMPRESSED_LIMIT: usize = 1 << 30;

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
    Decompress(#[from] DecompressError),
    /// A record's varints or lengths do not add up.
    #[error("malformed record inside batch at offset {base_offset}: {error}")]
    Malformed {
        /// The batch's base offset.
        base_offset: i64,
        /// Where and what.
        error: WalkError,
    },
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

fn decompressed(h: &BatchHeader, records: &[u8]) -> Result<Vec<u8>, RecordError> {
    let codec = h
        .compression()
        .ok_or(RecordError::UnknownCodec(h.attributes))?;
    let mut out = Vec::new();
    Decoders::default().decompress(codec, records, &mut out, READ_DECOMPRESSED_LIMIT)?;
    Ok(out)
}

/// Calls `f` for every record of a batch, decompressing if needed. Used by
/// clients and on the broker's cold paths only (internal topics replayed at
/// start-up, offset-for-timestamp lookups).
pub fn for_each_record(batch: &[u8], f: impl FnMut(RecordView<'_>)) -> Result<(), RecordError> {
    let h = BatchHeader::parse(batch)?;
    let records = &batch[HEADER_LEN..h.total_len()];
    if h.compression() == Some(Compression::None) {
        return views(&h, records, f);
    }
    let data = decompressed(&h, records)?;
    views(&h, &data, f)
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
    let records = batch.slice(HEADER_LEN..h.total_len());
    let data = if h.compression() == Some(Compression::None) {
        records
    } else {
        Bytes::from(decompressed(&h, &records)?)
    };
    views(&h, &data, |r| f(&data, r))
}

fn views(
    h: &BatchHeader,
    data: &[u8],
    mut f: impl FnMut(RecordView<'_>),
) -> Result<(), RecordError> {
    let log_append_time = h.attributes & crate::ATTR_LOG_APPEND_TIME != 0;
    walk(data, h.records_count, |_, r: &RawRecord<'_>| {
        f(RecordView {
            offset: h.base_offset + r.offset_delta as i64,
            timestamp: if log_append_time {
                h.max_timestamp
            } else {
                h.base_timestamp.wrapping_add(r.timestamp_delta)
            },
            key: r.key,
            value: r.value,
            headers: r.headers().collect(),
        });
        ControlFlow::Continue(())
    })
    .map_err(|error| RecordError::Malformed {
        base_offset: h.base_offset,
        error,
    })
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
