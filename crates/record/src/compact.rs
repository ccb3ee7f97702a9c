//! What the log cleaner needs from a batch: its records' keys and offsets,
//! and a copy of the batch with only some of its records kept.
//!
//! A cleaned batch keeps what consumers and producers rely on: its base
//! offset and last offset delta (so the last sequence of a producer stays
//! where it was, as Kafka's cleaner does), its producer fields, codec,
//! leader epoch and timestamp type; only the records section, the record
//! count, the max timestamp and the CRC change. Kept records are copied as
//! they are, except that their timestamp delta is rewritten when the batch
//! gets a *delete horizon* (KIP-534): attribute bit 6 says that
//! `base_timestamp` holds the time after which the batch's tombstones (or,
//! for a control batch, the marker) may be removed, and record timestamps
//! are re-based on it so every record keeps its absolute timestamp.

use std::ops::ControlFlow;

use crate::batch::{BatchHeader, Compression, HEADER_LEN, LOG_OVERHEAD};
use crate::build::{compress, put_varint};
use crate::decompress::Decoders;
use crate::records::RecordError;
use crate::walk::{varint64, walk, RawRecord};

/// Attribute bit: `base_timestamp` holds the batch's delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

impl BatchHeader {
    /// The time after which this batch's tombstones or marker may be
    /// removed by the cleaner, when a clean has set it.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }
}

/// One record as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanRecord<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Key bytes, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// False for a tombstone (null value).
    pub has_value: bool,
}

/// What [`Compactor::filter`] made of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtered {
    /// Every record is kept and nothing changes: the batch can be copied as it is.
    Unchanged,
    /// Some records were dropped, or the delete horizon was set: the new
    /// batch is in the output buffer.
    Rewritten {
        /// Records kept.
        kept: u32,
    },
    /// No record is kept.
    NoneKept,
}

/// Reusable state for walking and rewriting batches: the decoders and
/// buffers of one cleaner thread, so a clean allocates little per batch.
#[derive(Debug, Default)]
pub struct Compactor {
    decoders: Decoders,
    /// Decompressed records of the batch being read.
    data: Vec<u8>,
    /// Records section of the batch being written, before compression.
    body: Vec<u8>,
    /// Byte ranges in the records section of the records being kept.
    kept: Vec<(usize, usize)>,
}

/// The records section of `batch`, decompressed into `data` when needed.
fn records_of<'a>(
    decoders: &mut Decoders,
    data: &'a mut Vec<u8>,
    batch: &'a [u8],
    h: &BatchHeader,
    limit: usize,
) -> Result<&'a [u8], RecordError> {
    let codec = h
        .compression()
        .ok_or(RecordError::UnknownCodec(h.attributes))?;
    let section = &batch[HEADER_LEN..h.total_len()];
    if codec == Compression::None {
        return Ok(section);
    }
    decoders.decompress(codec, section, data, limit)?;
    Ok(&data[..])
}

impl Compactor {
    /// A compactor with empty buffers.
    pub fn new() -> Compactor {
        Compactor::default()
    }

    /// Calls `f` for every record of `batch`, decompressing into a reused
    /// buffer no larger than `limit`.
    pub fn for_each(
        &mut self,
        batch: &[u8],
        limit: usize,
        mut f: impl FnMut(CleanRecord<'_>),
    ) -> Result<(), RecordError> {
        let h = BatchHeader::parse(batch)?;
        let data = records_of(&mut self.decoders, &mut self.data, batch, &h, limit)?;
        walk(data, h.records_count, |_, r: &RawRecord<'_>| {
            f(CleanRecord {
                offset: h.base_offset + r.offset_delta as i64,
                key: r.key,
                has_value: r.value.is_some(),
            });
            ControlFlow::Continue(())
        })
        .map_err(|error| RecordError::Malformed {
            base_offset: h.base_offset,
            error,
        })
    }

    /// Decides for every record of `batch` whether to keep it and, unless
    /// all are kept unchanged, writes the cleaned batch to `out` (replacing
    /// its contents).
    ///
    /// `horizon` is the delete horizon to set when the batch has none yet
    /// and, after filtering, holds a tombstone (or `force_horizon` says so:
    /// a control batch whose marker may go once the horizon passes).
    pub fn filter(
        &mut self,
        batch: &[u8],
        limit: usize,
        horizon: i64,
        force_horizon: bool,
        mut keep: impl FnMut(&CleanRecord<'_>) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<Filtered, RecordError> {
        let h = BatchHeader::parse(batch)?;
        let data = records_of(&mut self.decoders, &mut self.data, batch, &h, limit)?;
        let base = data.as_ptr() as usize;
        self.kept.clear();
        let mut all = true;
        let mut tombstones = false;
        let kept = &mut self.kept;
        walk(data, h.records_count, |_, r: &RawRecord<'_>| {
            let rec = CleanRecord {
                offset: h.base_offset + r.offset_delta as i64,
                key: r.key,
                has_value: r.value.is_some(),
            };
            if keep(&rec) {
                let start = r.body.as_ptr() as usize - base;
                kept.push((start, start + r.body.len()));
                tombstones |= !rec.has_value;
            } else {
                all = false;
            }
            ControlFlow::Continue(())
        })
        .map_err(|error| RecordError::Malformed {
            base_offset: h.base_offset,
            error,
        })?;
        let set_horizon =
            h.delete_horizon_ms().is_none() && (tombstones || (force_horizon && h.is_control()));
        if self.kept.is_empty() {
            return Ok(Filtered::NoneKept);
        }
        if all && !set_horizon {
            return Ok(Filtered::Unchanged);
        }
        let log_append_time = h.attributes & crate::ATTR_LOG_APPEND_TIME != 0;
        let new_base = if set_horizon {
            horizon
        } else {
            h.base_timestamp
        };
        self.body.clear();
        let mut max_ts = i64::MIN;
        for &(start, end) in &self.kept {
            let body = &data[start..end];
            // attributes (1 byte), then the timestamp delta varlong.
            let mut p = 1;
            let delta = varint64(body, &mut p).unwrap_or(0);
            let ts = h.base_timestamp.wrapping_add(delta);
            max_ts = max_ts.max(ts);
            if set_horizon {
                let new_delta = ts.wrapping_sub(new_base);
                let len = 1 + varint_len(new_delta) + (body.len() - p);
                put_varint(&mut self.body, len as i64);
                self.body.push(body[0]);
                put_varint(&mut self.body, new_delta);
                self.body.extend_from_slice(&body[p..]);
            } else {
                put_varint(&mut self.body, body.len() as i64);
                self.body.extend_from_slice(body);
            }
        }
        let mut attributes = h.attributes;
        if set_horizon {
            attributes |= ATTR_DELETE_HORIZON;
        }
        let section = compress(&mut attributes, std::mem::take(&mut self.body));
        out.clear();
        out.reserve(HEADER_LEN + section.len());
        out.extend_from_slice(&batch[..HEADER_LEN]);
        out.extend_from_slice(&section);
        self.body = Vec::new();
        let batch_length = (out.len() - LOG_OVERHEAD) as i32;
        let max_timestamp = if log_append_time {
            h.max_timestamp
        } else {
            max_ts
        };
        out[8..12].copy_from_slice(&batch_length.to_be_bytes());
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        out[27..35].copy_from_slice(&new_base.to_be_bytes());
        out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        out[57..61].copy_from_slice(&(self.kept.len() as i32).to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(Filtered::Rewritten {
            kept: self.kept.len() as u32,
        })
    }
}

/// Bytes the zigzag varint encoding of `v` takes.
fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.max(1).leading_zeros() as usize).div_ceil(7)
}

/// The header of `batch` with its records removed: Kafka's "retain empty"
/// batch, kept so the last sequence and epoch of a producer (or the last
/// offset of a cleaning round) survive a clean. Records count 0, no codec,
/// everything else (offsets, producer fields, timestamps) as it was.
pub fn empty_batch(batch: &[u8]) -> Result<[u8; HEADER_LEN], RecordError> {
    let h = BatchHeader::parse(batch)?;
    let mut out = [0u8; HEADER_LEN];
    out.copy_from_slice(&batch[..HEADER_LEN]);
    out[8..12].copy_from_slice(&((HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
    let attributes = h.attributes & !0x07;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests;
