//! Class distributions as byte runs: per entry the class (2 bytes when every symbol id fits, else 4)
//! and the count as a LEB128 varint. Entries come most frequent first, so the default leads.

/// Bytes per class id for a symbol space of `n_symbols` ids.
pub fn class_bytes(n_symbols: u32) -> usize {
    if n_symbols <= 1 << 16 {
        2
    } else {
        4
    }
}

/// Appends one entry.
pub fn push_entry(out: &mut Vec<u8>, class: u32, count: u32, class_bytes: usize) {
    out.extend_from_slice(&class.to_le_bytes()[..class_bytes]);
    let mut n = count;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Iterator over the (class, count) entries of one distribution's bytes.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    class_bytes: usize,
}

impl<'a> Entries<'a> {
    /// Reads the entries of `bytes` (one node's run).
    pub fn new(bytes: &'a [u8], class_bytes: usize) -> Self {
        Entries { bytes, class_bytes }
    }

    /// Decodes the next entry, or reports malformed bytes.
    fn next_checked(&mut self) -> Option<Result<(u32, u32), String>> {
        if self.bytes.is_empty() {
            return None;
        }
        if self.bytes.len() < self.class_bytes + 1 {
            return Some(Err("a distribution entry is cut short".into()));
        }
        let mut class = [0u8; 4];
        class[..self.class_bytes].copy_from_slice(&self.bytes[..self.class_bytes]);
        let mut count = 0u64;
        let mut at = self.class_bytes;
        let mut shift = 0;
        loop {
            let Some(&b) = self.bytes.get(at) else {
                return Some(Err("a distribution count is cut short".into()));
            };
            count |= ((b & 0x7f) as u64) << shift;
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return Some(Err("a distribution count is too long".into()));
            }
        }
        if count == 0 || count > u32::MAX as u64 {
            return Some(Err("a distribution count is out of range".into()));
        }
        self.bytes = &self.bytes[at..];
        Some(Ok((u32::from_le_bytes(class), count as u32)))
    }

    /// Checks that the bytes are whole, non-empty entries with classes below `n_symbols`.
    pub fn validate(mut self, n_symbols: u32) -> Result<(), String> {
        if self.bytes.is_empty() {
            return Err("a node has an empty distribution".into());
        }
        while let Some(entry) = self.next_checked() {
            if entry?.0 >= n_symbols {
                return Err("a distribution names a class outside the symbol table".into());
            }
        }
        Ok(())
    }
}

impl Iterator for Entries<'_> {
    type Item = (u32, u32);
    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        self.next_checked()
            .map(|e| e.expect("validated when the model was opened"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_class_widths() {
        for (cb, classes) in [
            (2usize, vec![0u32, 65535, 7]),
            (4, vec![70000, 0, u32::MAX - 1]),
        ] {
            let counts = [1u32, 300, u32::MAX];
            let mut bytes = Vec::new();
            for (&c, &n) in classes.iter().zip(&counts) {
                push_entry(&mut bytes, c, n, cb);
            }
            let got: Vec<(u32, u32)> = Entries::new(&bytes, cb).collect();
            let want: Vec<(u32, u32)> = classes.iter().copied().zip(counts).collect();
            assert_eq!(got, want);
            Entries::new(&bytes, cb).validate(u32::MAX).unwrap();
            assert!(Entries::new(&bytes[..bytes.len() - 1], cb)
                .validate(u32::MAX)
                .is_err());
        }
        assert_eq!(class_bytes(50258), 2);
        assert_eq!(class_bytes(70000), 4);
    }

    #[test]
    fn rejects_zero_counts_and_bad_classes() {
        let mut bytes = Vec::new();
        push_entry(&mut bytes, 5, 1, 2);
        assert!(Entries::new(&bytes, 2).validate(5).is_err());
        assert!(Entries::new(&[5, 0, 0], 2).validate(10).is_err());
        assert!(Entries::new(&[], 2).validate(10).is_err());
    }
}
