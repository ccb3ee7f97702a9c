//! Building v2 batches: for Strom's producer, tests, benchmarks and the
//! broker's own internal records. The broker never rebuilds producers' batches.

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{Compression, ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_LEN, LOG_OVERHEAD};

/// One record to put in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Key bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Accumulates records and writes one uncompressed v2 batch with a valid CRC.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp: i64,
    records: Vec<OwnedRecord>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

impl BatchBuilder {
    /// Starts a batch whose records default to timestamp `base_timestamp`.
    pub fn new(base_timestamp: i64) -> Self {
        BatchBuilder {
            base_timestamp,
            records: Vec::new(),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }

    /// Adds a record stamped with the batch's base timestamp.
    pub fn record(self, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let ts = self.base_timestamp;
        self.push(OwnedRecord {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
            timestamp: ts,
        })
    }

    /// Adds a fully specified record.
    pub fn push(mut self, record: OwnedRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Sets the idempotent-producer fields.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch transactional and optionally a control batch.
    pub fn transactional(mut self, control: bool) -> Self {
        self.attributes |= ATTR_TRANSACTIONAL;
        if control {
            self.attributes |= ATTR_CONTROL;
        }
        self
    }

    /// Compresses the records with `codec` (the batch header stays plain).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.attributes = (self.attributes & !0x07) | codec.attribute_bits();
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Writes the batch with base offset 0.
    pub fn build(&self) -> Vec<u8> {
        let base_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .min()
            .unwrap_or(self.base_timestamp);
        let max_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(self.base_timestamp);
        let mut body = Vec::new();
        let mut rec = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            rec.clear();
            rec.push(0); // record attributes
            put_varint(&mut rec, r.timestamp - base_ts);
            put_varint(&mut rec, i as i64);
            put_bytes(&mut rec, r.key.as_deref());
            put_bytes(&mut rec, r.value.as_deref());
            put_varint(&mut rec, r.headers.len() as i64);
            for (k, v) in &r.headers {
                put_bytes(&mut rec, Some(k.as_bytes()));
                put_bytes(&mut rec, v.as_deref());
            }
            put_varint(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let mut attributes = self.attributes;
        let body = compress(&mut attributes, body);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        let batch_length = (HEADER_LEN - LOG_OVERHEAD + body.len()) as i32;
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(2); // magic
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
        out.extend_from_slice(&attributes.to_be_bytes());
        let last_delta = self.records.len().saturating_sub(1) as i32;
        out.extend_from_slice(&last_delta.to_be_bytes());
        out.extend_from_slice(&base_ts.to_be_bytes());
        out.extend_from_slice(&max_ts.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&(self.records.len() as i32).to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Compresses the records section as the attributes say; on a codec failure
/// (not expected for in-memory buffers) the batch falls back to uncompressed.
fn compress(attributes: &mut i16, body: Vec<u8>) -> Vec<u8> {
    let codec = match *attributes & 0x07 {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => return body,
    };
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.extend_from_slice(&body);
        Ok(())
    };
    let r = match codec {
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
        Compression::None => return body,
    };
    match r {
        Ok(()) => out.to_vec(),
        Err(_) => {
            *attributes &= !0x07;
            body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{for_each_record, BatchHeader};

    #[test]
    fn every_codec_round_trips() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = BatchBuilder::new(5).compression(codec);
            for i in 0..100 {
                b = b.record(Some(b"key"), Some(format!("value {i}").as_bytes()));
            }
            let bytes = b.build();
            let h = BatchHeader::parse_and_verify(&bytes).expect("valid batch");
            assert_eq!(h.compression(), Some(codec));
            let mut seen = Vec::new();
            for_each_record(&bytes, |r| seen.push(r.value.map(<[u8]>::to_vec))).expect("decodes");
            let want: Vec<_> = (0..100)
                .map(|i| Some(format!("value {i}").into_bytes()))
                .collect();
            assert_eq!(seen, want, "{codec:?}");
        }
    }
}
