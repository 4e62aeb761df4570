//! The encoding of class distributions (a node's (class, count) entries) as byte runs.
//!
//! Entries come most frequent first (ties: better tie-break rank first), so the first entry is the
//! node's default. Classes are stored by their tie-break rank ([`crate::classes::ClassStats::rank`]),
//! which numbers frequent classes low, as a gap: the rank minus the previous entry's rank minus one
//! (the rank itself for the first entry, and after a change of count). Per entry one LEB128 varint
//! `gap << 1 | new_count`; when `new_count` is set, the count follows as a second varint. The count
//! is implied when it equals the previous entry's, or is 1 for the first entry: most entries (counts
//! of 1, frequent classes) take one or two bytes.

use crate::trie::Corrupt;

/// Appends LEB128 `value`.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// What an entry's gap and count are relative to: the previous entry, or (for the first entry) rank
/// -1 with count 1.
#[derive(Clone, Copy, Debug)]
struct Previous {
    /// The previous rank plus one: where the next gap starts.
    next_rank: u32,
    count: u32,
}

impl Default for Previous {
    fn default() -> Self {
        Previous {
            next_rank: 0,
            count: 1,
        }
    }
}

/// Encodes one distribution, entries given as (rank, count) in stored order (count descending, then
/// rank ascending).
#[derive(Default)]
pub struct DistributionWriter {
    previous: Previous,
}

impl DistributionWriter {
    /// Appends the next entry of the current distribution.
    pub fn push(&mut self, out: &mut Vec<u8>, rank: u32, count: u32) {
        let same_count = count == self.previous.count;
        let base = if same_count {
            self.previous.next_rank
        } else {
            0
        };
        let gap = (rank - base) as u64;
        push_varint(out, gap << 1 | !same_count as u64);
        if !same_count {
            push_varint(out, count as u64);
        }
        self.previous = Previous {
            next_rank: rank + 1,
            count,
        };
    }
}

/// The (class, count) entries of one distribution's bytes.
///
/// Queries read them with [`Entries::try_next`], which reports malformed bytes as [`Corrupt`]. As
/// an [`Iterator`] (for bytes known to be well formed: a trie just built, or verified) the entries
/// end at the first malformed byte instead: never a panic.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    /// Class id of every tie-break rank.
    classes: &'a [u32],
    previous: Previous,
}

/// What [`Entries::try_next`] reports for malformed bytes.
const MALFORMED: Corrupt = Corrupt("a class distribution cannot be decoded");

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let Some(&b) = bytes.get(*at) else {
            return Err("a distribution entry is cut short".into());
        };
        value |= ((b & 0x7f) as u64) << shift;
        *at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 35 {
            return Err("a distribution varint is too long".into());
        }
    }
    Ok(value)
}

impl<'a> Entries<'a> {
    /// Reads the entries of `bytes` (one node's run); `classes` maps ranks to class ids.
    pub fn new(bytes: &'a [u8], classes: &'a [u32]) -> Self {
        Entries {
            bytes,
            classes,
            previous: Previous::default(),
        }
    }

    /// Decodes the next entry as (rank, count), or reports malformed bytes.
    fn next_checked(&mut self) -> Option<Result<(u32, u32), String>> {
        if self.bytes.is_empty() {
            return None;
        }
        let mut at = 0;
        let first = self.previous.next_rank == 0;
        let entry = (|| {
            let head = read_varint(self.bytes, &mut at)?;
            let (rank, count) = if head & 1 == 1 {
                let count = read_varint(self.bytes, &mut at)?;
                if count == 0 || count == self.previous.count as u64 {
                    return Err("a distribution count is zero or repeated".to_string());
                }
                if !first && count > self.previous.count as u64 {
                    return Err("a distribution is not sorted by count".to_string());
                }
                (head >> 1, count)
            } else {
                (
                    self.previous.next_rank as u64 + (head >> 1),
                    self.previous.count as u64,
                )
            };
            if rank >= self.classes.len() as u64 || count > u32::MAX as u64 {
                return Err("a distribution names a class outside the symbol table".to_string());
            }
            Ok((rank as u32, count as u32))
        })();
        match entry {
            Ok(e) => {
                self.bytes = &self.bytes[at..];
                self.previous = Previous {
                    next_rank: e.0 + 1,
                    count: e.1,
                };
                Some(Ok(e))
            }
            Err(e) => {
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }

    /// The next (class, count) entry, None after the last, or [`Corrupt`] for malformed bytes.
    #[inline]
    pub fn try_next(&mut self) -> Result<Option<(u32, u32)>, Corrupt> {
        match self.next_checked() {
            None => Ok(None),
            Some(Ok((rank, count))) => match self.classes.get(rank as usize) {
                Some(&class) => Ok(Some((class, count))),
                None => Err(MALFORMED),
            },
            Some(Err(_)) => Err(MALFORMED),
        }
    }

    /// The sum of the counts of the entries not read yet, decoding neither their classes nor
    /// checking them (malformed bytes give a wrong sum, never a panic).
    pub fn count_sum(self) -> u64 {
        let bytes = self.bytes;
        let mut count = self.previous.count as u64;
        let mut total = 0u64;
        let mut at = 0;
        while let Some(&head) = bytes.get(at) {
            at += 1;
            if head & 0x80 != 0 {
                // A gap of several bytes: only the first one's lowest bit (new count) matters.
                while bytes.get(at).is_some_and(|&b| b & 0x80 != 0) {
                    at += 1;
                }
                at += 1;
            }
            if head & 1 == 1 {
                let mut value = 0u64;
                let mut shift = 0;
                loop {
                    let Some(&b) = bytes.get(at) else {
                        return total;
                    };
                    at += 1;
                    value |= ((b & 0x7f) as u64) << (shift & 63);
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                count = value;
            }
            total = total.wrapping_add(count);
        }
        total
    }

    /// Checks that the bytes are whole, non-empty, sorted entries with classes in the table.
    pub(crate) fn validate(mut self) -> Result<(), String> {
        if self.bytes.is_empty() {
            return Err("a node has an empty distribution".into());
        }
        while let Some(entry) = self.next_checked() {
            entry?;
        }
        Ok(())
    }
}

impl Iterator for Entries<'_> {
    type Item = (u32, u32);
    /// The next entry; None after the last, and at malformed bytes (see [`Entries::try_next`]).
    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        self.try_next().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(entries: &[(u32, u32)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = DistributionWriter::default();
        for &(rank, count) in entries {
            writer.push(&mut bytes, rank, count);
        }
        bytes
    }

    #[test]
    fn round_trip_maps_ranks_to_classes() {
        // Ranks 0..4 stand for classes 40, 10, 30, 20, 70000.
        let classes = [40u32, 10, 30, 20, 70000];
        let entries = [(3u32, u32::MAX), (1, 300), (0, 2), (2, 2), (4, 2)];
        let bytes = encode(&entries);
        let got: Vec<(u32, u32)> = Entries::new(&bytes, &classes).collect();
        let want: Vec<(u32, u32)> = entries
            .iter()
            .map(|&(r, n)| (classes[r as usize], n))
            .collect();
        assert_eq!(got, want);
        Entries::new(&bytes, &classes).validate().unwrap();
        // Cut inside the first count (u32::MAX takes five bytes).
        assert!(Entries::new(&bytes[..3], &classes).validate().is_err());
    }

    #[test]
    fn count_sums_skip_the_classes() {
        let classes: Vec<u32> = (0..70_000).collect();
        let entries = [
            (3u32, 1_000_000),
            (1, 300),
            (200, 300),
            (0, 2),
            (20_000, 2),
            (4, 1),
            (60_000, 1),
        ];
        let bytes = encode(&entries);
        for read in 0..=entries.len() {
            let mut rest = Entries::new(&bytes, &classes);
            let first: u64 = rest.by_ref().take(read).map(|e| e.1 as u64).sum();
            let all: u64 = entries.iter().map(|e| e.1 as u64).sum();
            assert_eq!(first + rest.count_sum(), all, "after {read} entries");
        }
        // Cut bytes give some sum, not a panic.
        for len in 0..bytes.len() {
            let _ = Entries::new(&bytes[..len], &classes).count_sum();
        }
    }

    #[test]
    fn counts_of_one_and_equal_counts_are_implied() {
        assert_eq!(encode(&[(5, 1)]).len(), 1);
        assert_eq!(encode(&[(5, 2)]).len(), 2);
        // Equal counts store the rank gap: 100, 101, 102 cost one byte each after the first.
        assert_eq!(encode(&[(100, 3), (101, 3), (102, 3)]).len(), 5);
    }

    #[test]
    fn rejects_zero_counts_bad_ranks_and_wrong_order() {
        let classes = [1u32, 2, 3];
        assert!(Entries::new(&encode(&[(3, 1)]), &classes)
            .validate()
            .is_err());
        assert!(Entries::new(&[0, 1], &classes).validate().is_err());
        assert!(Entries::new(&[], &classes).validate().is_err());
        // Count 1 (implied) then count 2: not sorted.
        assert!(Entries::new(&[0, 1, 2], &classes).validate().is_err());
        // An explicit count equal to the implied one is not canonical.
        assert!(Entries::new(&[1, 1], &classes).validate().is_err());
    }
}
