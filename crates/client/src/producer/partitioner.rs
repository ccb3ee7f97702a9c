//! The default partitioner, compatible with the Java client: murmur2 of the
//! key bytes for keyed records (so Strom and Java producers put a key in the
//! same partition), sticky partitions for unkeyed ones (KIP-480/794: stay on
//! one partition until about a batch's worth of bytes went there).

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Sticky choice for unkeyed records. The per-topic part ([`StickyState`])
/// lives with the topic's other per-record state, so a record costs one
/// topic lookup, not one per concern.
#[derive(Debug, Default)]
pub struct Sticky {
    seed: u64,
}

/// One topic's sticky partition and the bytes sent to it so far (`None`
/// before the first unkeyed record).
#[derive(Debug, Default, Clone, Copy)]
pub struct StickyState(Option<(i32, usize)>);

impl Sticky {
    /// The partition for an unkeyed record of `bytes` bytes; moves to another
    /// partition once `batch_size` bytes went to the current one.
    pub fn next(
        &mut self,
        state: &mut StickyState,
        partitions: i32,
        bytes: usize,
        batch_size: usize,
    ) -> i32 {
        let n = partitions.max(1);
        if self.seed == 0 {
            self.seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1;
        }
        let fresh = |seed: &mut u64, avoid: Option<i32>| {
            // xorshift64*: cheap, good enough to spread partitions.
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            let mut p = (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as i32;
            if Some(p) == avoid && n > 1 {
                p = (p + 1) % n;
            }
            p
        };
        let (p, used) = state
            .0
            .get_or_insert_with(|| (fresh(&mut self.seed, None), 0));
        if *p >= n || *used >= batch_size {
            *p = fresh(&mut self.seed, Some(*p));
            *used = 0;
        }
        *used += bytes;
        *p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Printed by the Java client's Utils.murmur2 algorithm under the JDK.
        let cases: &[(&str, i32, i32)] = &[
            ("", 275646681, 3),
            ("a", -1563381124, 4),
            ("ab", 316155434, 2),
            ("abc", 479470107, 3),
            ("abcd", -1323649548, 2),
            ("meter-42", -1968281647, 1),
            ("Zürich", -1551140815, 1),
            ("hello world!", -1076261558, 0),
        ];
        for (key, hash, partition) in cases {
            assert_eq!(murmur2(key.as_bytes()), *hash, "{key}");
            assert_eq!(partition_for_key(key.as_bytes(), 6), *partition, "{key}");
        }
    }

    #[test]
    fn sticky_moves_after_a_batch() {
        let (mut s, mut t) = (Sticky::default(), StickyState::default());
        let first = s.next(&mut t, 6, 100, 1000);
        for _ in 0..9 {
            assert_eq!(s.next(&mut t, 6, 100, 1000), first);
        }
        assert_ne!(s.next(&mut t, 6, 100, 1000), first);
    }
}
