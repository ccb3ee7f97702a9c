use proptest::prelude::*;

use super::*;
use crate::testing::{batch, batch_around, fix_crc, put_varint, record};
use crate::{for_each_record, BatchBuilder, OwnedRecord};

const NOW: i64 = 1_700_000_000_000;

fn policy() -> ValidationPolicy {
    ValidationPolicy {
        now_ms: NOW,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        create_time: true,
        compacted: false,
        max_message_bytes: 1 << 20,
    }
}

fn check_with(b: &[u8], p: &ValidationPolicy) -> Result<(), ValidationError> {
    let h = BatchHeader::parse_and_verify(b).expect("a whole batch with its CRC");
    Validator::new().validate(b, &h, p)
}

fn check(b: &[u8]) -> Result<(), ValidationError> {
    check_with(b, &policy())
}

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn fault(r: Result<(), ValidationError>) -> Option<(u32, RecordFault)> {
    match r {
        Err(ValidationError::Record { index, fault }) => Some((index, fault)),
        _ => None,
    }
}

#[test]
fn accepts_what_clients_write_with_every_codec() {
    for codec in ALL {
        let mut b = BatchBuilder::new(NOW).compression(codec);
        for i in 0..50u8 {
            b = b.push(OwnedRecord {
                key: (i % 3 != 0).then(|| vec![i; 3]),
                value: (i % 5 != 0).then(|| vec![i; 100]),
                headers: vec![("h".into(), Some(vec![i])), ("ü".into(), None)],
                timestamp: NOW + i as i64,
            });
        }
        assert_eq!(check(&b.build()), Ok(()), "{codec:?}");
    }
}

/// The issue's two reproductions, as batches.
#[test]
fn refuses_the_issues_examples() {
    let garbage = [0xde, 0xad, 0xbe, 0xef].repeat(4);
    let snappy = batch_around(&garbage, 1, Compression::Snappy.attribute_bits(), NOW);
    assert!(matches!(
        check(&snappy),
        Err(ValidationError::Decompress(DecompressError::Corrupt {
            codec: "snappy",
            ..
        }))
    ));
    // Record length 1000 for a 10-byte record.
    let mut lie = vec![0xd0, 0x0f];
    lie.extend_from_slice(&record(0, 0, Some(b"k"), Some(b"v"), &[])[1..]);
    assert!(matches!(
        fault(check(&batch(Compression::None, &lie, 1, NOW))),
        Some((
            0,
            RecordFault::Malformed(Malformed::RecordLength { length: 1000, .. })
        ))
    ));
}

/// Bodies that lie, each checked uncompressed and under every codec.
#[test]
fn refuses_malformed_records_under_every_codec() {
    let good = record(0, 0, Some(b"k"), Some(b"v"), &[]);
    let body = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut body = vec![0u8, 0, 0];
        f(&mut body);
        let mut r = Vec::new();
        put_varint(&mut r, body.len() as i64);
        r.extend(body);
        r
    };
    let value_minus_5 = body(&|b| {
        put_varint(b, -1);
        put_varint(b, -5);
        put_varint(b, 0);
    });
    let key_past_end = body(&|b| {
        put_varint(b, 50);
        b.extend_from_slice(b"k");
    });
    let header_key_null = body(&|b| {
        put_varint(b, -1);
        put_varint(b, -1);
        put_varint(b, 1);
        put_varint(b, -1);
        put_varint(b, -1);
    });
    let header_value_minus_2 = body(&|b| {
        put_varint(b, -1);
        put_varint(b, -1);
        put_varint(b, 1);
        put_varint(b, 1);
        b.push(b'h');
        put_varint(b, -2);
    });
    let header_count_lie = body(&|b| {
        put_varint(b, -1);
        put_varint(b, -1);
        put_varint(b, 40);
        b.extend_from_slice(&[0, 0]);
    });
    let header_count_negative = body(&|b| {
        put_varint(b, -1);
        put_varint(b, -1);
        put_varint(b, -3);
    });
    let overlong_varint = body(&|b| b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]));
    let mut too_long = good.clone();
    too_long[0] += 2; // zigzag: one more byte
    too_long.push(0);
    let cases: Vec<(&str, Vec<u8>, i32, Malformed)> = vec![
        ("value -5", value_minus_5, 1, Malformed::ValueLength(-5)),
        ("key past end", key_past_end, 1, Malformed::KeyLength(50)),
        (
            "null header key",
            header_key_null,
            1,
            Malformed::HeaderKeyLength(-1),
        ),
        (
            "header value -2",
            header_value_minus_2,
            1,
            Malformed::HeaderValueLength(-2),
        ),
        (
            "header count lie",
            header_count_lie,
            1,
            Malformed::HeaderCount(40),
        ),
        (
            "header count -3",
            header_count_negative,
            1,
            Malformed::HeaderCount(-3),
        ),
        ("overlong varint", overlong_varint, 1, Malformed::Varint),
        (
            "length too long",
            too_long,
            1,
            Malformed::LengthMismatch {
                declared: good.len(),
                used: good.len() - 1,
            },
        ),
        (
            "count says 2",
            good.clone(),
            2,
            Malformed::MissingRecords {
                declared: 2,
                found: 1,
            },
        ),
        (
            "trailing bytes",
            [good.clone(), vec![0, 0, 0]].concat(),
            1,
            Malformed::ExtraBytes(3),
        ),
    ];
    for codec in ALL {
        for (name, section, count, what) in &cases {
            let got = fault(check(&batch(codec, section, *count, NOW)));
            assert_eq!(
                got.map(|(_, f)| f),
                Some(RecordFault::Malformed(*what)),
                "{name} under {codec:?}"
            );
        }
    }
}

#[test]
fn refuses_out_of_order_offsets_attributes_and_binary_header_keys() {
    let two = |a: Vec<u8>, b: Vec<u8>| [a, b].concat();
    let swapped = two(
        record(1, 0, None, Some(b"a"), &[]),
        record(0, 0, None, Some(b"b"), &[]),
    );
    assert_eq!(
        fault(check(&batch(Compression::Zstd, &swapped, 2, NOW))),
        Some((
            0,
            RecordFault::OffsetDelta {
                found: 1,
                expected: 0
            }
        ))
    );
    let repeated = two(
        record(0, 0, None, Some(b"a"), &[]),
        record(0, 0, None, Some(b"b"), &[]),
    );
    assert!(matches!(
        fault(check(&batch(Compression::None, &repeated, 2, NOW))),
        Some((
            1,
            RecordFault::OffsetDelta {
                found: 0,
                expected: 1
            }
        ))
    ));
    let mut attrs = record(0, 0, None, Some(b"a"), &[]);
    attrs[1] = 0x80;
    assert_eq!(
        fault(check(&batch(Compression::None, &attrs, 1, NOW))),
        Some((0, RecordFault::Attributes(0x80)))
    );
    for key in [&[0xff, 0xfe][..], b"a\0b"] {
        let binary = record(0, 0, None, None, &[(key, None)]);
        assert_eq!(
            fault(check(&batch(Compression::Lz4, &binary, 1, NOW))),
            Some((0, RecordFault::HeaderKey)),
            "{key:?}"
        );
    }
}

#[test]
fn refuses_header_problems() {
    let one = record(0, 0, None, Some(b"v"), &[]);
    let with = |attrs: i16| batch_around(&one, 1, attrs, NOW);
    let problem = |b: Vec<u8>| match check(&b) {
        Err(ValidationError::Batch(p)) => Some(p),
        _ => None,
    };
    assert_eq!(
        problem(with(0x40)),
        Some(BatchProblem::UnknownAttributes(0x40))
    );
    assert_eq!(
        problem(with(0x100)),
        Some(BatchProblem::UnknownAttributes(0x100))
    );
    assert_eq!(problem(with(5)), Some(BatchProblem::UnknownCodec(5)));
    assert_eq!(problem(with(0x30)), Some(BatchProblem::Control));
    assert_eq!(
        problem(with(0x10)),
        Some(BatchProblem::TransactionalWithoutProducer)
    );
    assert_eq!(
        check(&with(0x08)),
        Err(ValidationError::ClientLogAppendTime)
    );
    let mut seqless = with(0);
    seqless[43..51].copy_from_slice(&7i64.to_be_bytes()); // producer id 7, sequence -1
    fix_crc(&mut seqless);
    assert_eq!(
        problem(seqless),
        Some(BatchProblem::NoSequence {
            producer_id: 7,
            base_sequence: -1
        })
    );
    let mut delta = with(0);
    delta[23..27].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut delta);
    assert!(matches!(
        problem(delta),
        Some(BatchProblem::LastOffsetDelta { .. })
    ));
    let empty = batch_around(&[], 1, 0, NOW);
    let mut empty = empty;
    empty[57..61].copy_from_slice(&0i32.to_be_bytes());
    empty[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut empty);
    assert!(matches!(
        BatchHeader::parse(&empty).map(|_| ()),
        Err(crate::BatchError::Inconsistent(_))
    ));
}

#[test]
fn compacted_topics_refuse_null_keys_record_by_record() {
    let section = [
        record(0, 0, Some(b"k"), Some(b"v"), &[]),
        record(1, 0, None, Some(b"v"), &[]),
        record(2, 0, Some(b"k"), None, &[]),
        record(3, 0, None, None, &[]),
    ]
    .concat();
    let b = batch(Compression::Snappy, &section, 4, NOW);
    assert_eq!(check(&b), Ok(()), "keys are optional when not compacted");
    let compacted = ValidationPolicy {
        compacted: true,
        ..policy()
    };
    let h = BatchHeader::parse_and_verify(&b).expect("valid");
    let mut v = Validator::new();
    let r = v.validate(&b, &h, &compacted);
    assert!(
        matches!(
            r,
            Err(ValidationError::Refused {
                count: 2,
                first_index: 1,
                first: RecordProblemKind::NoKey,
                timestamps: false
            })
        ),
        "{r:?}"
    );
    let listed: Vec<u32> = v.record_problems().iter().map(|p| p.index).collect();
    assert_eq!(listed, vec![1, 3]);
    // The next batch starts with a clean list.
    let ok = batch(
        Compression::None,
        &record(0, 0, Some(b"k"), None, &[]),
        1,
        NOW,
    );
    let h = BatchHeader::parse_and_verify(&ok).expect("valid");
    assert_eq!(v.validate(&ok, &h, &compacted), Ok(()));
    assert!(v.record_problems().is_empty());
}

#[test]
fn timestamps_must_be_within_the_topic_window() {
    let hour = 3_600_000;
    let section = [
        record(0, 0, None, Some(b"now"), &[]),
        record(1, hour + 1, None, Some(b"future"), &[]),
        record(2, -2 * hour, None, Some(b"past"), &[]),
    ]
    .concat();
    let b = batch(Compression::Gzip, &section, 3, NOW);
    let r = check(&b);
    assert!(
        matches!(
            r,
            Err(ValidationError::Refused {
                count: 1,
                first_index: 1,
                timestamps: true,
                ..
            })
        ),
        "{r:?}"
    );
    let strict = ValidationPolicy {
        timestamp_before_max_ms: hour,
        ..policy()
    };
    let h = BatchHeader::parse_and_verify(&b).expect("valid");
    let mut v = Validator::new();
    assert!(matches!(
        v.validate(&b, &h, &strict),
        Err(ValidationError::Refused { count: 2, .. })
    ));
    assert_eq!(
        v.record_problems()[1],
        RecordProblem {
            index: 2,
            kind: RecordProblemKind::Timestamp {
                timestamp: NOW - 2 * hour,
                lower: NOW - hour,
                upper: NOW + hour
            }
        }
    );
    // LogAppendTime topics stamp the records: nothing to check.
    let append = ValidationPolicy {
        create_time: false,
        ..strict
    };
    assert_eq!(check_with(&b, &append), Ok(()));
    // No timestamp (-1) is never out of range.
    let none = batch(Compression::None, &record(0, 0, None, None, &[]), 1, -1);
    assert_eq!(check_with(&none, &strict), Ok(()));
}

#[test]
fn a_bomb_is_refused_at_the_limit_and_the_scratch_is_not_kept() {
    // One record whose value is 32 MiB of zeros, under a 64 KiB max.message.bytes.
    let mut section = Vec::new();
    let value = vec![0u8; 32 << 20];
    section.extend(record(0, 0, None, Some(&value), &[]));
    let small = ValidationPolicy {
        max_message_bytes: 64 << 10,
        ..policy()
    };
    let mut v = Validator::new();
    for codec in [
        Compression::Zstd,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let b = batch(codec, &section, 1, NOW);
        let h = BatchHeader::parse_and_verify(&b).expect("valid");
        assert_eq!(
            v.validate(&b, &h, &small),
            Err(ValidationError::Decompress(DecompressError::TooLarge {
                limit: 64 << 16
            })),
            "{codec:?}"
        );
        assert!(v.scratch.capacity() <= (64 << 16) + 4096);
    }
    // Accepted under the default limit, then the 32 MiB buffer is let go.
    let b = batch(Compression::Zstd, &section, 1, NOW);
    let h = BatchHeader::parse_and_verify(&b).expect("valid");
    assert_eq!(v.validate(&b, &h, &policy()), Ok(()));
    assert!(v.scratch.capacity() <= KEEP_SCRATCH);
    // A small batch's buffer is kept for the next one.
    let b = batch(
        Compression::Zstd,
        &record(0, 0, None, Some(b"v"), &[]),
        1,
        NOW,
    );
    let h = BatchHeader::parse_and_verify(&b).expect("valid");
    assert_eq!(v.validate(&b, &h, &policy()), Ok(()));
    let kept = v.scratch.capacity();
    assert!(kept > 0);
    assert_eq!(v.validate(&b, &h, &policy()), Ok(()));
    assert_eq!(v.scratch.capacity(), kept);
}

/// What `kafka-protocol`'s own decoder (an independent implementation)
/// reads from a batch: (offset, timestamp, key, value, headers).
type Decoded = Vec<(
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
)>;

fn ours(b: &[u8]) -> Decoded {
    let mut out = Vec::new();
    for_each_record(b, |r| {
        out.push((
            r.offset,
            r.timestamp,
            r.key.map(<[u8]>::to_vec),
            r.value.map(<[u8]>::to_vec),
            r.headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        ))
    })
    .expect("an accepted batch reads back");
    out
}

fn theirs(b: &[u8]) -> Decoded {
    let mut buf = bytes::Bytes::copy_from_slice(b);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .expect("kafka-protocol reads an accepted batch");
    set.records
        .into_iter()
        .map(|r| {
            (
                r.offset,
                r.timestamp,
                r.key.map(|k| k.to_vec()),
                r.value.map(|v| v.to_vec()),
                r.headers
                    .into_iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.to_vec())))
                    .collect(),
            )
        })
        .collect()
}

/// A valid records section of `n` small records, as bytes.
fn valid_section(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let k = [seed, i as u8];
            let h: &[(&[u8], Option<&[u8]>)] = if i % 2 == 0 {
                &[(b"hk", Some(b"hv"))]
            } else {
                &[]
            };
            record(
                i as i64,
                i as i64 * 3,
                (i % 3 != 0).then_some(&k[..]),
                Some(&k[..]),
                h,
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutate(data: &mut Vec<u8>, m: &[Mutation]) {
    for m in m {
        if data.is_empty() {
            return;
        }
        match *m {
            Mutation::Flip(i, x) => {
                let n = data.len();
                data[i % n] ^= x.max(1);
            }
            Mutation::Insert(i, x) => {
                let n = data.len();
                data.insert(i % (n + 1), x);
            }
            Mutation::Remove(i) => {
                let n = data.len();
                data.remove(i % n);
            }
            Mutation::Truncate(i) => {
                let n = data.len();
                data.truncate(i % n);
            }
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Mutated records (then compressed) and mutated compressed payloads,
    /// with the CRC recomputed: validation never panics, and whatever it
    /// accepts both our reader and kafka-protocol's read in full, alike.
    #[test]
    fn accepted_mutants_read_back_everywhere(
        n in 1usize..6,
        seed in any::<u8>(),
        codec in codec(),
        in_records in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..4),
        count_delta in -1i32..2,
    ) {
        let mut section = valid_section(n, seed);
        let count = n as i32 + if in_records { count_delta } else { 0 };
        prop_assume!(count > 0);
        let b = if in_records || codec == Compression::None {
            mutate(&mut section, &mutations);
            batch(codec, &section, count, NOW)
        } else {
            let mut payload = crate::testing::compress(codec, &section);
            mutate(&mut payload, &mutations);
            batch_around(&payload, count, codec.attribute_bits(), NOW)
        };
        let h = BatchHeader::parse_and_verify(&b).expect("valid header");
        let accepted = Validator::new().validate(&b, &h, &policy()).is_ok();
        if accepted {
            let mine = ours(&b);
            prop_assert_eq!(mine.len(), count as usize);
            prop_assert_eq!(mine, theirs(&b));
        }
    }
}
