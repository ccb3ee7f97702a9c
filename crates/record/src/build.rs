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

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
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
        let mut w = BatchWriter::new(base_ts, 0);
        for r in &self.records {
            w.append(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &r.headers,
            );
        }
        if self.records.is_empty() {
            w.max_timestamp = self.base_timestamp;
        }
        w.finish(
            self.attributes,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
        )
    }
}

/// Encodes records straight into a batch buffer as they arrive (the
/// producer's accumulator), then writes the header in place: one copy of
/// each key and value, none at the end unless the batch is compressed.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    /// Header space (filled by `finish`) followed by the encoded records.
    buf: Vec<u8>,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    b.map_or(1, |b| varint_len(b.len() as i64) + b.len())
}

impl BatchWriter {
    /// An empty batch whose timestamps are deltas from `base_timestamp`
    /// (the first record's, as Kafka's producers do); `capacity` is a hint
    /// in bytes.
    pub fn new(base_timestamp: i64, capacity: usize) -> BatchWriter {
        BatchWriter::with_buffer(Vec::new(), base_timestamp, capacity)
    }

    /// Like [`BatchWriter::new`], writing into `buf` (cleared first): a
    /// producer hands back the buffers of acknowledged batches, so the
    /// memory is reused instead of faulted in afresh for every batch.
    pub fn with_buffer(mut buf: Vec<u8>, base_timestamp: i64, capacity: usize) -> BatchWriter {
        buf.clear();
        buf.reserve(HEADER_LEN + capacity);
        buf.resize(HEADER_LEN, 0);
        BatchWriter {
            buf,
            base_timestamp,
            max_timestamp: base_timestamp,
            count: 0,
        }
    }

    /// Appends one record; returns the bytes it took.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Option<Vec<u8>>)],
    ) -> usize {
        let before = self.buf.len();
        let ts_delta = timestamp - self.base_timestamp;
        let offset_delta = i64::from(self.count);
        let mut body = 1 // attributes
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + bytes_len(key)
            + bytes_len(value)
            + varint_len(headers.len() as i64);
        for (k, v) in headers {
            body += bytes_len(Some(k.as_bytes())) + bytes_len(v.as_deref());
        }
        let out = &mut self.buf;
        out.reserve(body + 5);
        put_varint(out, body as i64);
        out.push(0);
        put_varint(out, ts_delta);
        put_varint(out, offset_delta);
        put_bytes(out, key);
        put_bytes(out, value);
        put_varint(out, headers.len() as i64);
        for (k, v) in headers {
            put_bytes(out, Some(k.as_bytes()));
            put_bytes(out, v.as_deref());
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.buf.len() - before
    }

    /// Records appended so far.
    pub fn count(&self) -> i32 {
        self.count
    }

    /// Size of the batch so far, header included (before compression).
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Writes the header (and compresses the records when `attributes`
    /// name a codec); base offset 0.
    pub fn finish(
        self,
        attributes: i16,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Vec<u8> {
        let mut attributes = attributes;
        let mut out = if attributes & 0x07 == 0 {
            self.buf
        } else {
            let body = compress(&mut attributes, self.buf[HEADER_LEN..].to_vec());
            let mut out = Vec::with_capacity(HEADER_LEN + body.len());
            out.resize(HEADER_LEN, 0);
            out.extend_from_slice(&body);
            out
        };
        let batch_length = (out.len() - LOG_OVERHEAD) as i32;
        let last_delta = (self.count - 1).max(0);
        let h = &mut out[..HEADER_LEN];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        h[16] = 2; // magic
        h[21..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&last_delta.to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Compresses the records section as the attributes say; on a codec failure
/// (not expected for in-memory buffers) the batch falls back to uncompressed.
pub(crate) fn compress(attributes: &mut i16, body: Vec<u8>) -> Vec<u8> {
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

    /// A batch written into a recycled buffer (a producer reuses the
    /// buffers of acknowledged batches) is the batch a fresh buffer gets.
    #[test]
    fn a_recycled_buffer_yields_the_same_batch() {
        let write = |w: &mut BatchWriter| {
            for i in 0..10u8 {
                w.append(1000 + i64::from(i), Some(&[i]), Some(&[i; 50]), &[]);
            }
        };
        let mut fresh = BatchWriter::new(1000, 64);
        write(&mut fresh);
        let expected = fresh.finish(0, -1, -1, -1);
        let mut dirty = BatchWriter::new(5, 4096);
        dirty.append(5, Some(b"old"), Some(&[0xee; 3000]), &[]);
        let old = dirty.finish(0, 9, 9, 9);
        let mut reused = BatchWriter::with_buffer(old, 1000, 64);
        write(&mut reused);
        assert_eq!(reused.finish(0, -1, -1, -1), expected);
    }

    #[test]
    fn writer_matches_builder_and_counts_its_bytes() {
        let headers = [
            ("h".to_string(), Some(b"v".to_vec())),
            ("n".to_string(), None),
        ];
        let mut w = BatchWriter::new(1000, 64);
        let mut b = BatchBuilder::new(1000).producer(7, 1, 40);
        let mut before = w.size();
        for i in 0..300i64 {
            // Tombstones, empty and 300-byte values (two-byte lengths).
            let value = (i % 11 != 4).then(|| vec![b'x'; (i * 7 % 500) as usize]);
            let key = (i % 3 != 0).then(|| format!("k{i}").into_bytes());
            let hs = if i % 5 == 0 { &headers[..] } else { &[] };
            let ts = 1000 + (i * 37) % 200 - 50; // some before the base: negative deltas
            let took = w.append(ts, key.as_deref(), value.as_deref(), hs);
            assert_eq!(w.size() - before, took);
            before = w.size();
            b = b.push(OwnedRecord {
                key,
                value,
                headers: hs.to_vec(),
                timestamp: ts,
            });
        }
        let written = w.finish(0, 7, 1, 40);
        let h = BatchHeader::parse_and_verify(&written).expect("valid batch");
        assert_eq!(
            (h.records_count, h.base_sequence, h.producer_id),
            (300, 40, 7)
        );
        let summary = |batch: &[u8]| {
            let mut out = Vec::new();
            for_each_record(batch, |r| {
                out.push((
                    r.timestamp,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::len),
                    r.headers.len(),
                ))
            })
            .expect("decodes");
            out
        };
        assert_eq!(summary(&written), summary(&b.build()));
    }

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
