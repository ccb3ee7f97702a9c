//! The cleaner's map of key → latest offset, in bounded memory.
//!
//! As Kafka's `SkimpyOffsetMap`, keys are not stored: a slot holds a
//! 128-bit hash of the key (xxh3-128) and the offset, 24 bytes in all, in
//! an open-addressed table with linear probing. Two keys with the same
//! 128-bit hash would count as one (the odds are ~n²/2¹²⁹, negligible for
//! any log; a producer able to aim for a collision can write a tombstone
//! for the key anyway). Unlike Kafka's, the table starts small and doubles
//! up to its byte budget (`log.cleaner.dedupe.buffer.size` per thread), so
//! an idle broker or a small log does not hold the whole budget.
//!
//! ```text
//! slot (24 bytes):  hash_lo u64 | hash_hi u64 | offset i64 (-1: empty)
//! ```

use xxhash_rust::xxh3::xxh3_128;

/// Bytes one slot takes.
pub const SLOT_BYTES: usize = 24;

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

const EMPTY: Slot = Slot {
    hash: [0, 0],
    offset: -1,
};

/// Smallest table: a few KiB.
const MIN_SLOTS: usize = 256;

/// Key hash → latest offset, bounded by a byte budget.
#[derive(Debug)]
pub struct OffsetMap {
    slots: Vec<Slot>,
    used: usize,
    /// Most slots the budget allows (a power of two).
    max_slots: usize,
    /// Share of slots that may be used before the table grows or is full.
    load_factor: f64,
    /// Largest offset put (or skipped over) so far; -1 when none.
    latest_offset: i64,
}

impl OffsetMap {
    /// A map that never uses more than `budget_bytes` for its table and
    /// fills slots up to `load_factor` (Kafka's
    /// `log.cleaner.io.buffer.load.factor`, 0.9).
    pub fn new(budget_bytes: usize, load_factor: f64) -> OffsetMap {
        let fit = (budget_bytes / SLOT_BYTES).max(MIN_SLOTS);
        // The largest power of two that fits the budget.
        let max_slots = 1usize << (usize::BITS - 1 - fit.leading_zeros());
        OffsetMap {
            slots: Vec::new(),
            used: 0,
            max_slots,
            load_factor: load_factor.clamp(0.1, 1.0),
            latest_offset: -1,
        }
    }

    /// Empties the map and gives its memory back.
    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.used = 0;
        self.latest_offset = -1;
    }

    /// Keys in the map.
    pub fn len(&self) -> usize {
        self.used
    }

    /// True when no key was put.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Largest offset the map covers; every record at or below it with a
    /// key was put (or the map was full when it came).
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Notes that everything up to `offset` has been looked at.
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// Share of the largest table in use.
    pub fn utilization(&self) -> f64 {
        self.used as f64 / self.max_slots as f64
    }

    /// True when one more new key would not fit.
    pub fn is_full(&self) -> bool {
        self.used + 1 > (self.max_slots as f64 * self.load_factor) as usize
    }

    /// Records `offset` as the latest for `key`. Returns false, changing
    /// nothing, when the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = hash(key);
        if self.slots.is_empty() {
            self.slots = vec![EMPTY; MIN_SLOTS.min(self.max_slots)];
        }
        let i = self.find(hash);
        if self.slots[i].offset >= 0 {
            self.slots[i].offset = offset;
            self.latest_offset = self.latest_offset.max(offset);
            return true;
        }
        if self.is_full() {
            return false;
        }
        if (self.used + 1) as f64 > self.slots.len() as f64 * self.load_factor {
            self.grow();
        }
        let i = self.find(hash);
        self.slots[i] = Slot { hash, offset };
        self.used += 1;
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset put for `key`, or -1.
    pub fn get(&self, key: &[u8]) -> i64 {
        if self.slots.is_empty() {
            return -1;
        }
        self.slots[self.find(hash(key))].offset
    }

    /// The slot holding `hash`, or the empty slot where it would go.
    fn find(&self, hash: [u64; 2]) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (hash[0] as usize) & mask;
        loop {
            let s = &self.slots[i];
            if s.offset < 0 || s.hash == hash {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table (never past `max_slots`) and re-inserts every key.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).min(self.max_slots);
        if size == self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        for s in old.into_iter().filter(|s| s.offset >= 0) {
            let i = self.find(s.hash);
            self.slots[i] = s;
        }
    }
}

fn hash(key: &[u8]) -> [u64; 2] {
    let h = xxh3_128(key);
    [h as u64, (h >> 64) as u64]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key() {
        let mut m = OffsetMap::new(1 << 20, 0.9);
        for i in 0..10_000i64 {
            assert!(m.put(format!("k{}", i % 1000).as_bytes(), i));
        }
        assert_eq!(m.len(), 1000);
        for k in 0..1000i64 {
            assert_eq!(m.get(format!("k{k}").as_bytes()), 9000 + k);
        }
        assert_eq!(m.get(b"absent"), -1);
        assert_eq!(m.latest_offset(), 9999);
    }

    #[test]
    fn refuses_new_keys_past_its_budget_but_updates_known_ones() {
        // 256 slots (the minimum), 0.5 load: 128 keys.
        let mut m = OffsetMap::new(0, 0.5);
        let mut n = 0;
        while m.put(format!("k{n}").as_bytes(), n) {
            n += 1;
        }
        assert_eq!(n, 128);
        assert!(m.is_full());
        assert!(m.put(b"k0", 1_000), "known key still updates");
        assert_eq!(m.get(b"k0"), 1_000);
        assert_eq!(m.get(format!("k{n}").as_bytes()), -1);
        assert!(m.utilization() > 0.49);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.get(b"k0"), -1);
    }

    #[test]
    fn memory_grows_with_keys_not_with_the_budget() {
        let mut m = OffsetMap::new(128 << 20, 0.9);
        for i in 0..100 {
            m.put(&[i], i as i64);
        }
        assert!(m.slots.len() * SLOT_BYTES <= 8192, "{}", m.slots.len());
        assert_eq!(m.max_slots, 4 << 20);
    }
}
