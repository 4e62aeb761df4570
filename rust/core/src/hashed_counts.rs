//! Counts under 64-bit keys that are hashes already (the document cache's contexts and pairs,
//! [`crate::cache`]): an open-addressing table whose slot addresses are known before a look-up, so
//! that a caller can prefetch the slots of the keys it will need next.
//!
//! Rules:
//! - A key's home slot is its low bits; a key that is not there is in the next slots (linear
//!   probing), before the first empty one. Key 0 marks an empty slot, so key 0 is counted as key 1
//!   (one more merge of two keys, as likely as any other collision of 64-bit hashes).
//! - The table is at most half full: it doubles (every key moved to its new home) before the key
//!   that would pass half is added. Nothing is ever removed.

/// One slot: a key and its count (key 0: empty).
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    count: u32,
}

/// Counts by prehashed key (see the module doc).
#[derive(Clone)]
pub struct HashedCounts {
    slots: Vec<Slot>,
    len: usize,
}

impl Default for HashedCounts {
    fn default() -> HashedCounts {
        HashedCounts::with_capacity(0)
    }
}

/// The key as stored: 0 is the empty slot's.
#[inline]
fn stored(key: u64) -> u64 {
    key.max(1)
}

impl HashedCounts {
    /// An empty table with room for `keys` keys before it grows.
    pub fn with_capacity(keys: usize) -> HashedCounts {
        // At most 2^40 slots asked for (no caller comes near): the power of two cannot overflow.
        let slots = keys
            .min(1 << 39)
            .saturating_mul(2)
            .max(16)
            .next_power_of_two();
        HashedCounts {
            slots: vec![Slot::default(); slots],
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `key`, or the empty one where it would go.
    #[inline]
    fn find(&self, key: u64) -> usize {
        let mask = self.mask();
        let mut i = key as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.key == key || slot.key == 0 {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The count of `key` (0 when never counted).
    #[inline]
    pub fn get(&self, key: u64) -> u32 {
        self.slots[self.find(stored(key))].count
    }

    /// The count of `key` before adding one to it.
    #[inline]
    pub fn increment(&mut self, key: u64) -> u32 {
        let key = stored(key);
        let mut i = self.find(key);
        if self.slots[i].key == 0 {
            if 2 * (self.len + 1) > self.slots.len() {
                self.grow();
                i = self.find(key);
            }
            self.slots[i].key = key;
            self.len += 1;
        }
        let count = self.slots[i].count;
        self.slots[i].count = count.saturating_add(1);
        count
    }

    /// Asks the processor to fetch `key`'s home slot into its caches (a hint: no effect on the
    /// counts; nothing where the processor has no such instruction).
    #[inline]
    pub fn prefetch(&self, key: u64) {
        let slot: *const Slot = &self.slots[stored(key) as usize & self.mask()];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads nothing the program sees and never faults (SSE, which provides
        // it, is part of every x86_64 processor); the address is a live slot besides.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(slot.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Twice the slots, every key moved to its home in them.
    fn grow(&mut self) {
        let slots = vec![Slot::default(); 2 * self.slots.len()];
        let old = std::mem::replace(&mut self.slots, slots);
        for slot in old.into_iter().filter(|s| s.key != 0) {
            let i = self.find(slot.key);
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn counts_as_a_hash_map_does_through_growth_and_collisions() {
        // Keys crowded onto few home slots (low bits alike), key 0 among them, the table grown
        // several times from its smallest size.
        let mut table = HashedCounts::with_capacity(0);
        let mut reference: HashMap<u64, u32> = HashMap::new();
        let mut x = 7u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = (x >> 40) << 12 | (x >> 60);
            let key = if key % 97 == 0 { 0 } else { key };
            let before = reference.get(&key.max(1)).copied().unwrap_or(0);
            assert_eq!(table.get(key), before);
            assert_eq!(table.increment(key), before);
            *reference.entry(key.max(1)).or_insert(0) += 1;
        }
        assert_eq!(table.len, reference.len());
        assert!(2 * table.len <= table.slots.len());
        for (&key, &count) in &reference {
            assert_eq!(table.get(key), count);
        }
        assert_eq!(table.get(u64::MAX), 0);
    }

    #[test]
    fn a_prefetch_changes_nothing() {
        let mut table = HashedCounts::with_capacity(4);
        table.increment(3);
        table.prefetch(3);
        table.prefetch(0);
        table.prefetch(u64::MAX);
        assert_eq!((table.get(3), table.get(5), table.len), (1, 0, 1));
    }
}
