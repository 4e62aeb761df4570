//! Spilled partitions: the levels of one partition of a trie build ([`crate::build`]), kept in a
//! file until the assembly reads them back, level by level. A memory-capped build spills to unnamed
//! temporary files that vanish with it; a cluster build's workers spill to named files in a folder
//! the assembling process also sees, written atomically, so that a task that runs twice (a worker
//! killed, its task run again elsewhere) leaves one whole file.
//!
//! Layout, little-endian:
//!
//! | part | content |
//! |---|---|
//! | levels | each level below the root, one after the other: six arrays, each a u64 byte length and the bytes (labels u32, child counts u32, distribution lengths u32, distribution bytes, tail lengths u32, tail values u32; the tail arrays empty for the IGTree) |
//! | trailer | kind (1 IGTree, 2 instance base), width, first value, end value (u32 each); instances, level count and the build's fingerprint (u64 each); per level its start, byte length and xxh3-64 hash (u64 each) |
//! | footer | the trailer's offset and its xxh3-64 hash (u64 each), then the magic `MEMLMSPL` |
//!
//! The build's fingerprint (a hash of its text, its token ids and block boundaries, its feature
//! order and its class statistics, see [`crate::build`]) is checked by the assembly, so that a file
//! another build spilled (an earlier run's, another client's in the same folder) is refused even
//! when its trie, width, values and instance count match.
//!
//! A level's arrays hold one entry per kept node (the tail lengths too, in the instance base), its
//! distribution bytes add up to the lengths, its tails to the tail lengths. Reading checks the
//! magic, the hashes and every length against the file and against each other, so a truncated,
//! damaged or foreign file is an error that names it, never a crash or a huge allocation.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::atomic::AtomicFile;
use crate::build::TrieKind;
use crate::error::{Error, Result};

/// The last eight bytes of a spilled partition.
const MAGIC: &[u8; 8] = b"MEMLMSPL";
/// The footer: the trailer's offset and hash, and the magic.
const FOOTER_BYTES: u64 = 24;
/// The trailer's fixed part (four u32, three u64) and its bytes per level (three u64).
const TRAILER_FIXED_BYTES: u64 = 40;
const TRAILER_LEVEL_BYTES: u64 = 24;
/// The name messages give an unnamed temporary spill file.
const UNNAMED: &str = "<spilled partition>";

/// The kept nodes of one level (of one partition), in breadth-first order.
#[derive(Default)]
pub(crate) struct LevelOut {
    pub labels: Vec<u32>,
    pub children: Vec<u32>,
    pub dist_lens: Vec<u32>,
    pub dist_bytes: Vec<u8>,
    /// Instance base only: tail length per node, and the tails.
    pub tail_lens: Vec<u32>,
    pub tail_values: Vec<u32>,
}

impl LevelOut {
    /// The level's six arrays as bytes, in file order.
    fn arrays(&self) -> [&[u8]; 6] {
        [
            bytemuck::cast_slice(&self.labels),
            bytemuck::cast_slice(&self.children),
            bytemuck::cast_slice(&self.dist_lens),
            &self.dist_bytes,
            bytemuck::cast_slice(&self.tail_lens),
            bytemuck::cast_slice(&self.tail_values),
        ]
    }

    /// Parses a level's bytes (see the module's layout), checking every length.
    fn parse(bytes: &[u8]) -> std::result::Result<LevelOut, String> {
        let mut rest = bytes;
        let mut next = || -> std::result::Result<&[u8], String> {
            let (len, tail) = rest
                .split_first_chunk::<8>()
                .ok_or("a level ends inside an array's length")?;
            let len = usize::try_from(u64::from_le_bytes(*len)).unwrap_or(usize::MAX);
            if len > tail.len() {
                return Err("an array runs past its level".into());
            }
            let (array, after) = tail.split_at(len);
            rest = after;
            Ok(array)
        };
        let words = |bytes: &[u8]| -> std::result::Result<Vec<u32>, String> {
            if bytes.len() % 4 != 0 {
                return Err("an array of u32 whose length is not a multiple of 4".into());
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let level = LevelOut {
            labels: words(next()?)?,
            children: words(next()?)?,
            dist_lens: words(next()?)?,
            dist_bytes: next()?.to_vec(),
            tail_lens: words(next()?)?,
            tail_values: words(next()?)?,
        };
        if !rest.is_empty() {
            return Err("bytes after a level's last array".into());
        }
        level.check()?;
        Ok(level)
    }

    /// Checks that the arrays agree: one entry per node, the bytes and tails their lengths' sums.
    fn check(&self) -> std::result::Result<(), String> {
        let nodes = self.labels.len();
        let sum = |lens: &[u32]| lens.iter().map(|&l| l as u64).sum::<u64>();
        let consistent = self.children.len() == nodes
            && self.dist_lens.len() == nodes
            && sum(&self.dist_lens) == self.dist_bytes.len() as u64
            && (self.tail_lens.is_empty() || self.tail_lens.len() == nodes)
            && sum(&self.tail_lens) == self.tail_values.len() as u64;
        match consistent {
            true => Ok(()),
            false => Err("a level whose arrays disagree in length".into()),
        }
    }
}

/// What a spilled partition belongs to: which trie, of which width over how many instances, the
/// range of the first feature's values (in feature order) that its subtrees hang from, and the
/// fingerprint of its build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionOf {
    pub kind: TrieKind,
    pub width: u32,
    pub values: Range<u32>,
    pub instances: u64,
    pub build: u64,
}

/// Where a spilled level lies in its file, and its hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LevelEntry {
    start: u64,
    len: u64,
    hash: u64,
}

/// A built partition: its levels below the root, in memory or spilled to a file.
pub(crate) enum Partition {
    InMemory(Vec<LevelOut>),
    Spilled {
        file: File,
        /// The file's name in messages.
        name: PathBuf,
        of: PartitionOf,
        levels: Vec<LevelEntry>,
    },
}

/// Writes the levels, the trailer and the footer; returns where each level went.
fn write_partition(
    out: &mut impl Write,
    levels: &[LevelOut],
    of: &PartitionOf,
) -> std::io::Result<Vec<LevelEntry>> {
    let mut entries = Vec::with_capacity(levels.len());
    let mut at = 0u64;
    for level in levels {
        let mut hasher = Xxh3::new();
        let start = at;
        for array in level.arrays() {
            let len = (array.len() as u64).to_le_bytes();
            for bytes in [&len[..], array] {
                out.write_all(bytes)?;
                hasher.update(bytes);
                at += bytes.len() as u64;
            }
        }
        entries.push(LevelEntry {
            start,
            len: at - start,
            hash: hasher.digest(),
        });
    }
    let mut trailer = Vec::with_capacity(
        (TRAILER_FIXED_BYTES + TRAILER_LEVEL_BYTES * levels.len() as u64) as usize,
    );
    for word in [of.kind.code(), of.width, of.values.start, of.values.end] {
        trailer.extend(word.to_le_bytes());
    }
    for word in [of.instances, entries.len() as u64, of.build] {
        trailer.extend(word.to_le_bytes());
    }
    for e in &entries {
        for word in [e.start, e.len, e.hash] {
            trailer.extend(word.to_le_bytes());
        }
    }
    out.write_all(&trailer)?;
    out.write_all(&at.to_le_bytes())?;
    out.write_all(&xxh3_64(&trailer).to_le_bytes())?;
    out.write_all(MAGIC)?;
    Ok(entries)
}

impl Partition {
    /// Spills `levels` to an unnamed temporary file in `dir` (the system's temporary folder when
    /// None), which is gone once the partition is dropped.
    pub(crate) fn spill(
        levels: Vec<LevelOut>,
        of: PartitionOf,
        dir: Option<&Path>,
    ) -> Result<Partition> {
        let dir: PathBuf = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let io = |e| Error::io(&dir, e);
        let mut file = BufWriter::new(tempfile::tempfile_in(&dir).map_err(io)?);
        let entries = write_partition(&mut file, &levels, &of).map_err(io)?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(Partition::Spilled {
            file,
            name: PathBuf::from(UNNAMED),
            of,
            levels: entries,
        })
    }

    /// Writes `levels` to the file `path`, atomically (a scratch file: see [`crate::atomic`]).
    pub(crate) fn write_file(levels: &[LevelOut], of: &PartitionOf, path: &Path) -> Result<()> {
        let mut file = AtomicFile::scratch(path)?;
        write_partition(file.writer(), levels, of).map_err(|e| Error::io(path, e))?;
        file.commit(None)
    }

    /// Opens a file that [`Partition::write_file`] wrote: its trailer is read and checked now, each
    /// level when it is taken.
    pub(crate) fn open(path: &Path) -> Result<Partition> {
        let io = |e| Error::io(path, e);
        let bad = |reason: &str| Error::BadModel {
            path: path.to_path_buf(),
            reason: format!("not a whole spilled partition of a trie build ({reason})"),
        };
        let mut file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size < FOOTER_BYTES {
            return Err(bad("shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER_BYTES as usize];
        file.seek(SeekFrom::Start(size - FOOTER_BYTES))
            .map_err(io)?;
        file.read_exact(&mut footer).map_err(io)?;
        let word = |bytes: &[u8], i: usize| {
            u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
        };
        if &footer[16..] != MAGIC {
            return Err(bad("no magic number at its end"));
        }
        let trailer_start = word(&footer, 0);
        if trailer_start > size - FOOTER_BYTES {
            return Err(bad("its trailer lies outside the file"));
        }
        let mut trailer = vec![0u8; (size - FOOTER_BYTES - trailer_start) as usize];
        file.seek(SeekFrom::Start(trailer_start)).map_err(io)?;
        file.read_exact(&mut trailer).map_err(io)?;
        if xxh3_64(&trailer) != word(&footer, 1) {
            return Err(bad("its trailer's checksum does not match"));
        }
        if (trailer.len() as u64) < TRAILER_FIXED_BYTES {
            return Err(bad("a trailer too short"));
        }
        let small =
            |i: usize| u32::from_le_bytes(trailer[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let kind = TrieKind::from_code(small(0)).ok_or_else(|| bad("an unknown kind of trie"))?;
        let of = PartitionOf {
            kind,
            width: small(1),
            values: small(2)..small(3),
            instances: word(&trailer, 2),
            build: word(&trailer, 4),
        };
        let depth = word(&trailer, 3);
        // A crafted depth must not overflow (a panic in debug builds, a wrong length in release).
        let expected = TRAILER_LEVEL_BYTES
            .checked_mul(depth)
            .and_then(|levels| levels.checked_add(TRAILER_FIXED_BYTES));
        if expected != Some(trailer.len() as u64) {
            return Err(bad("its trailer's length does not match its level count"));
        }
        let levels: Vec<LevelEntry> = trailer[TRAILER_FIXED_BYTES as usize..]
            .chunks_exact(TRAILER_LEVEL_BYTES as usize)
            .map(|e| LevelEntry {
                start: word(e, 0),
                len: word(e, 1),
                hash: word(e, 2),
            })
            .collect();
        if levels.iter().any(|e| {
            e.start
                .checked_add(e.len)
                .is_none_or(|end| end > trailer_start)
        }) {
            return Err(bad("a level lies outside the file"));
        }
        Ok(Partition::Spilled {
            file,
            name: path.to_path_buf(),
            of,
            levels,
        })
    }

    /// What a spilled partition belongs to (None in memory).
    pub(crate) fn of(&self) -> Option<&PartitionOf> {
        match self {
            Partition::InMemory(_) => None,
            Partition::Spilled { of, .. } => Some(of),
        }
    }

    pub(crate) fn depth(&self) -> usize {
        match self {
            Partition::InMemory(levels) => levels.len(),
            Partition::Spilled { levels, .. } => levels.len(),
        }
    }

    /// Level `d` (1-based depth below the root), taken out of the partition.
    pub(crate) fn take_level(&mut self, d: usize) -> Result<LevelOut> {
        match self {
            Partition::InMemory(levels) => Ok(std::mem::take(&mut levels[d - 1])),
            Partition::Spilled {
                file, name, levels, ..
            } => {
                let entry = levels[d - 1];
                let bad = |reason: String| Error::BadModel {
                    path: name.clone(),
                    reason: format!("not a whole spilled partition of a trie build ({reason})"),
                };
                let io = |e| Error::io(&*name, e);
                file.seek(SeekFrom::Start(entry.start)).map_err(io)?;
                let mut bytes = vec![0u8; entry.len as usize];
                file.read_exact(&mut bytes).map_err(io)?;
                if xxh3_64(&bytes) != entry.hash {
                    return Err(bad(format!("level {d}'s checksum does not match")));
                }
                LevelOut::parse(&bytes).map_err(|why| bad(format!("level {d}: {why}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spilled partition of two small levels, written to `path`.
    fn spilled(path: &Path) {
        let level = LevelOut {
            labels: vec![3, 4],
            children: vec![0, 0],
            dist_lens: vec![1, 2],
            dist_bytes: vec![7, 8, 9],
            ..LevelOut::default()
        };
        let of = PartitionOf {
            kind: TrieKind::IgTree,
            width: 2,
            values: 0..5,
            instances: 10,
            build: 42,
        };
        Partition::write_file(&[level], &of, path).unwrap();
    }

    #[test]
    fn a_crafted_level_count_is_an_error_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.partition");
        spilled(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        let footer = bytes.len() - FOOTER_BYTES as usize;
        let trailer_start =
            u64::from_le_bytes(bytes[footer..footer + 8].try_into().unwrap()) as usize;
        // The level count (the trailer's second u64), then the trailer's hash made to match it: only
        // the length check can refuse it. 24 * (2^63 + 1) overflows u64.
        let count = trailer_start + 16 + 8;
        bytes[count..count + 8].copy_from_slice(&((1u64 << 63) + 1).to_le_bytes());
        let hash = xxh3_64(&bytes[trailer_start..footer]);
        bytes[footer + 8..footer + 16].copy_from_slice(&hash.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = Partition::open(&path).err().expect("refused").to_string();
        assert!(
            err.contains("its trailer's length does not match its level count"),
            "{err}"
        );
    }
}
