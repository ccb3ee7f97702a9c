//! Test helpers: hand-made records sections, compressed as clients do, in
//! batches with correct CRCs.

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::Compression;
use crate::build::put_bytes;
pub(crate) use crate::build::put_varint;

/// `data` compressed as `kafka-protocol` (the Strom client's compressor) does.
pub(crate) fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.extend_from_slice(data);
        Ok(())
    };
    match codec {
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
        Compression::None => fill(&mut out),
    }
    .expect("compress");
    out.to_vec()
}

/// One well-formed record: `(key, value)` and headers, deltas as given.
pub(crate) fn record(
    offset_delta: i64,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    for b in [key, value] {
        put_bytes(&mut body, b);
    }
    put_varint(&mut body, headers.len() as i64);
    for (k, v) in headers {
        put_bytes(&mut body, Some(k));
        put_bytes(&mut body, *v);
    }
    let mut out = Vec::new();
    put_varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A batch around an already encoded (and possibly compressed) records
/// section: `count` records, `attributes`, timestamps from `base_ts`, a
/// correct CRC.
pub(crate) fn batch_around(section: &[u8], count: i32, attributes: i16, base_ts: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(61 + section.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    fix_crc(&mut b);
    b
}

/// A batch of the uncompressed records `section`, compressed with `codec`.
pub(crate) fn batch(codec: Compression, section: &[u8], count: i32, base_ts: i64) -> Vec<u8> {
    let payload = match codec {
        Compression::None => section.to_vec(),
        c => compress(c, section),
    };
    batch_around(&payload, count, codec.attribute_bits(), base_ts)
}

/// Recomputes the batch length and CRC after the bytes were changed.
pub(crate) fn fix_crc(b: &mut [u8]) {
    crate::BatchHeader::seal(b);
}
