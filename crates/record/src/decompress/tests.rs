use std::io::Write;

use super::*;
use crate::testing::compress;

fn sample(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8)
        .collect()
}

fn run(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut d = Decoders::default();
    let mut out = Vec::new();
    d.decompress(codec, input, &mut out, limit).map(|()| out)
}

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn round_trips_what_clients_write() {
    let data = sample(300_000);
    let mut d = Decoders::default();
    let mut out = Vec::new();
    for codec in CODECS {
        // Twice through the same decoders: reset, not rebuilt, between batches.
        for _ in 0..2 {
            d.decompress(codec, &compress(codec, &data), &mut out, 1 << 20)
                .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert_eq!(out, data, "{codec:?}");
        }
    }
    // Raw snappy (librdkafka) and zstd with the content size in the header.
    let raw = snap::raw::Encoder::new()
        .compress_vec(&data)
        .expect("snappy");
    assert_eq!(
        run(Compression::Snappy, &raw, 1 << 20).expect("raw snappy"),
        data
    );
    let sized = zstd::bulk::compress(&data, 3).expect("zstd");
    assert_eq!(
        run(Compression::Zstd, &sized, 1 << 20).expect("sized zstd"),
        data
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert_eq!(run(Compression::Gzip, &gz, 1 << 20).expect("gzip"), data);
    // Exactly at the limit is fine; one byte less is not.
    for codec in CODECS {
        let c = compress(codec, &data);
        assert!(run(codec, &c, data.len()).is_ok(), "{codec:?}");
        assert_eq!(
            run(codec, &c, data.len() - 1),
            Err(DecompressError::TooLarge {
                limit: data.len() - 1
            }),
            "{codec:?}"
        );
    }
}

#[test]
fn a_zstd_bomb_stops_at_the_limit() {
    // 1 GiB of zeros in a few tens of KB, written as a stream (no content size).
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).expect("encoder");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).expect("write");
    }
    let bomb = enc.finish().expect("finish");
    assert!(bomb.len() < 64 << 10, "bomb is {} bytes", bomb.len());
    let limit = 64 << 20;
    let mut d = Decoders::default();
    let mut out = Vec::new();
    assert_eq!(
        d.decompress(Compression::Zstd, &bomb, &mut out, limit),
        Err(DecompressError::TooLarge { limit })
    );
    assert!(
        out.capacity() <= limit + 1 + 4096,
        "capacity {}",
        out.capacity()
    );
    // A frame that declares a huge size is refused before anything is decoded.
    let sized = zstd::bulk::compress(&vec![0u8; 8 << 20], 1).expect("zstd");
    let mut out = Vec::new();
    assert_eq!(
        d.decompress(Compression::Zstd, &sized, &mut out, 1 << 20),
        Err(DecompressError::TooLarge { limit: 1 << 20 })
    );
    assert!(out.capacity() < 1 << 20);
}

#[test]
fn bombs_of_every_codec_stop_at_the_limit() {
    let zeros = vec![0u8; 16 << 20];
    let limit = 1 << 20;
    for codec in CODECS {
        let bomb = compress(codec, &zeros);
        let mut out = Vec::new();
        let r = Decoders::default().decompress(codec, &bomb, &mut out, limit);
        assert_eq!(r, Err(DecompressError::TooLarge { limit }), "{codec:?}");
        assert!(
            out.capacity() <= 2 * limit + 2,
            "{codec:?}: {}",
            out.capacity()
        );
    }
    // Raw snappy whose header claims 4 GiB: refused from the header alone.
    assert_eq!(
        run(
            Compression::Snappy,
            &[0xff, 0xff, 0xff, 0xff, 0x0f, 0],
            limit
        ),
        Err(DecompressError::TooLarge { limit })
    );
}

fn is_corrupt(r: &Result<Vec<u8>, DecompressError>) -> bool {
    matches!(r, Err(DecompressError::Corrupt { .. }))
}

#[test]
fn garbage_truncation_and_trailing_bytes_are_corrupt() {
    let data = sample(50_000);
    let garbage = [0xde, 0xad, 0xbe, 0xef].repeat(4);
    for codec in CODECS {
        assert!(
            is_corrupt(&run(codec, &garbage, 1 << 20)),
            "{codec:?} garbage"
        );
        assert!(is_corrupt(&run(codec, &[], 1 << 20)), "{codec:?} empty");
        let good = compress(codec, &data);
        for cut in [1, 2, 5, 17, good.len() / 2, good.len() - 1] {
            assert!(
                is_corrupt(&run(codec, &good[..good.len() - cut], 1 << 20)),
                "{codec:?} cut {cut}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(
            is_corrupt(&run(codec, &trailing, 1 << 20)),
            "{codec:?} trailing"
        );
    }
    // Two gzip members or two zstd frames: some clients read only the first.
    for codec in [Compression::Gzip, Compression::Zstd] {
        let one = compress(codec, &data);
        let two = [one.clone(), one].concat();
        assert!(is_corrupt(&run(codec, &two, 1 << 20)), "{codec:?} twice");
    }
}

#[test]
fn bit_flips_never_panic_or_exceed_the_limit() {
    let data = sample(20_000);
    for codec in CODECS {
        let good = compress(codec, &data);
        let mut d = Decoders::default();
        let mut out = Vec::new();
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                if d.decompress(codec, &bad, &mut out, 1 << 16).is_ok() {
                    assert!(out.len() <= 1 << 16);
                }
            }
        }
        // The decoders still work after all those errors.
        d.decompress(codec, &good, &mut out, 1 << 20)
            .expect("good after bad");
        assert_eq!(out, data);
    }
}

#[test]
fn refuses_frames_some_clients_cannot_read() {
    let data = sample(200_000);
    // lz4 with linked blocks: the Java client refuses them.
    let mut enc = lz4::EncoderBuilder::new()
        .block_mode(lz4::BlockMode::Linked)
        .build(Vec::new())
        .expect("lz4");
    enc.write_all(&data).expect("lz4");
    let (linked, r) = enc.finish();
    r.expect("lz4");
    assert!(is_corrupt(&run(Compression::Lz4, &linked, 1 << 20)));
    // A xerial header with another version.
    let mut xerial = compress(Compression::Snappy, &data);
    xerial[11] = 2;
    assert!(is_corrupt(&run(Compression::Snappy, &xerial, 1 << 20)));
    // zstd's legacy and skippable frames.
    let skippable = [0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0];
    assert!(is_corrupt(&run(Compression::Zstd, &skippable, 1 << 20)));
    // A gzip header CRC that does not match; reserved flags.
    let mut gz = compress(Compression::Gzip, &data);
    gz[3] |= 0x20;
    assert!(is_corrupt(&run(Compression::Gzip, &gz, 1 << 20)));
    let mut gz = compress(Compression::Gzip, &data);
    let n = gz.len();
    gz[n - 8] ^= 1; // the trailer's CRC32
    assert!(is_corrupt(&run(Compression::Gzip, &gz, 1 << 20)));
}
