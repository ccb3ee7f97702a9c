use super::*;
use crate::{for_each_record, BatchBuilder, OwnedRecord, Validator};

/// A batch at base offset 100 of records `k{i % keys}` (tombstones where
/// `dead(i)`), timestamps 1000 + 10 i, under `codec`.
fn batch(n: usize, keys: usize, dead: impl Fn(usize) -> bool, codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(1000)
        .producer(7, 3, 40)
        .compression(codec);
    for i in 0..n {
        b = b.push(OwnedRecord {
            key: Some(format!("k{}", i % keys).into_bytes()),
            value: (!dead(i)).then(|| format!("v{i}").into_bytes()),
            headers: vec![("h".into(), Some(vec![i as u8]))],
            timestamp: 1000 + 10 * i as i64,
        });
    }
    let mut bytes = b.build();
    BatchHeader::set_base_offset(&mut bytes, 100);
    bytes
}

type Seen = Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize)>;

fn read(bytes: &[u8]) -> Seen {
    let mut v = Vec::new();
    for_each_record(bytes, |r| {
        v.push((
            r.offset,
            r.timestamp,
            r.key.map(<[u8]>::to_vec),
            r.value.map(<[u8]>::to_vec),
            r.headers.len(),
        ))
    })
    .expect("readable");
    v
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn keeps_chosen_records_at_their_offsets_with_everything_else_intact() {
    for codec in CODECS {
        let b = batch(10, 10, |_| false, codec);
        let mut c = Compactor::new();
        let mut out = Vec::new();
        let r = c
            .filter(
                &b,
                1 << 20,
                0,
                false,
                |r| (r.offset - 100) % 3 == 0,
                &mut out,
            )
            .expect("filter");
        assert_eq!(r, Filtered::Rewritten { kept: 4 }, "{codec:?}");
        let h = BatchHeader::parse_and_verify(&out).expect("valid crc");
        let orig = BatchHeader::parse(&b).expect("orig");
        assert_eq!(h.base_offset, 100);
        assert_eq!(
            h.last_offset_delta, orig.last_offset_delta,
            "last offset kept"
        );
        assert_eq!(h.records_count, 4);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 3, 40)
        );
        assert_eq!(h.compression(), Some(codec));
        assert_eq!(h.max_timestamp, 1090);
        let all = read(&b);
        let kept: Seen = all.into_iter().filter(|r| (r.0 - 100) % 3 == 0).collect();
        assert_eq!(read(&out), kept);
        // A produce validator (without the producer checks) accepts it too.
        let mut v = Validator::new();
        let policy = crate::ValidationPolicy {
            now_ms: 2000,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            create_time: true,
            compacted: true,
            max_message_bytes: 1 << 20,
        };
        let _ = v.validate(&out, &h, &policy);
    }
}

#[test]
fn unchanged_and_none_kept() {
    let b = batch(5, 5, |_| false, Compression::Zstd);
    let mut c = Compactor::new();
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        c.filter(&b, 1 << 20, 0, false, |_| true, &mut out),
        Ok(Filtered::Unchanged)
    ));
    assert_eq!(out, vec![1, 2, 3], "output untouched");
    assert!(matches!(
        c.filter(&b, 1 << 20, 0, false, |_| false, &mut out),
        Ok(Filtered::NoneKept)
    ));
}

#[test]
fn tombstones_get_a_delete_horizon_and_keep_their_timestamps() {
    for codec in CODECS {
        let b = batch(6, 6, |i| i % 2 == 1, codec);
        let before = read(&b);
        let mut c = Compactor::new();
        let mut out = Vec::new();
        let r = c
            .filter(&b, 1 << 20, 9_999_999, false, |_| true, &mut out)
            .expect("filter");
        assert_eq!(
            r,
            Filtered::Rewritten { kept: 6 },
            "horizon forces a rewrite"
        );
        let h = BatchHeader::parse_and_verify(&out).expect("valid");
        assert_eq!(h.delete_horizon_ms(), Some(9_999_999));
        assert_eq!(read(&out), before, "absolute timestamps unchanged");
        // Cleaning again keeps the first horizon.
        let again = out.clone();
        let r = c
            .filter(&again, 1 << 20, 1, false, |_| true, &mut out)
            .expect("filter");
        assert_eq!(r, Filtered::Unchanged);
    }
    // A batch without tombstones gets no horizon.
    let b = batch(3, 3, |_| false, Compression::None);
    let mut out = Vec::new();
    let r = Compactor::new()
        .filter(&b, 1 << 20, 5, false, |_| true, &mut out)
        .expect("filter");
    assert_eq!(r, Filtered::Unchanged);
}

#[test]
fn empty_batch_keeps_offsets_and_producer() {
    let b = batch(4, 4, |_| false, Compression::Lz4);
    let e = empty_batch(&b).expect("empty");
    let h = BatchHeader::parse_and_verify(&e).expect("valid");
    let orig = BatchHeader::parse(&b).expect("orig");
    assert_eq!(h.records_count, 0);
    assert_eq!(h.total_len(), HEADER_LEN);
    assert_eq!(h.last_offset(), orig.last_offset());
    assert_eq!(h.base_sequence, orig.base_sequence);
    assert_eq!(h.compression(), Some(Compression::None));
    assert!(read(&e).is_empty());
}

#[test]
fn for_each_reports_keys_and_tombstones() {
    let b = batch(4, 2, |i| i == 3, Compression::Snappy);
    let mut seen = Vec::new();
    Compactor::new()
        .for_each(&b, 1 << 20, |r| {
            seen.push((r.offset, r.key.map(<[u8]>::to_vec), r.has_value))
        })
        .expect("walk");
    assert_eq!(
        seen,
        vec![
            (100, Some(b"k0".to_vec()), true),
            (101, Some(b"k1".to_vec()), true),
            (102, Some(b"k0".to_vec()), true),
            (103, Some(b"k1".to_vec()), false),
        ]
    );
}

#[test]
fn varint_lengths() {
    for v in [0i64, 1, -1, 63, -64, 64, 8191, 8192, i64::MAX, i64::MIN] {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        assert_eq!(varint_len(v), b.len(), "{v}");
    }
}

proptest::proptest! {
    #[test]
    fn filtering_is_reading_minus_dropped(
        n in 1usize..40,
        keys in 1usize..10,
        mask in proptest::collection::vec(proptest::bool::ANY, 40),
        codec in 0usize..5,
        horizon in proptest::bool::ANY,
    ) {
        let b = batch(n, keys, |i| i % 5 == 4, CODECS[codec]);
        let mut out = Vec::new();
        let r = Compactor::new()
            .filter(&b, 1 << 20, if horizon { 123 } else { 0 }, false, |r| mask[(r.offset - 100) as usize], &mut out)
            .expect("filter");
        let want: Seen = read(&b).into_iter().filter(|r| mask[(r.0 - 100) as usize]).collect();
        match r {
            Filtered::Unchanged => proptest::prop_assert_eq!(read(&b), want),
            Filtered::NoneKept => proptest::prop_assert!(want.is_empty()),
            Filtered::Rewritten { kept } => {
                proptest::prop_assert_eq!(kept as usize, want.len());
                proptest::prop_assert!(BatchHeader::parse_and_verify(&out).is_ok());
                proptest::prop_assert_eq!(read(&out), want);
            }
        }
    }
}
