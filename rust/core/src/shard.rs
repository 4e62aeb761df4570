//! Shards: the token ids and block lengths of a tokenised corpus, in the model container (magic
//! [`crate::format::SHARD_MAGIC`]). Tokenising is the slow part of training; shards let it run on many
//! machines, and `memlm merge` makes one model of any number of shards (and of models that kept their
//! training tokens): the model of the concatenated corpus, exactly.

use std::path::{Path, PathBuf};

use crate::atomic::Stop;
use crate::error::{Error, Result};
use crate::format::{self, Check, Image, Kind, Section, SectionData, SectionTable};
use crate::ids::{IdVec, Ids};

/// The sections that hold tokenised text: the ids and the block lengths.
pub fn token_sections<'a>(tokens: &'a IdVec, block_lengths: &'a [u64]) -> [(Section, &'a [u8]); 2] {
    let ids = match tokens {
        IdVec::U16(v) => (Section::Tokens16, bytemuck::cast_slice(&v[..])),
        IdVec::U32(v) => (Section::Tokens32, bytemuck::cast_slice(&v[..])),
    };
    [
        ids,
        (Section::BlockLengths, bytemuck::cast_slice(block_lengths)),
    ]
}

/// The tokenised text of an image, when it holds one (exactly one of the two id sections, and the
/// block lengths); [`check_tokens`] checks it against the vocabulary.
pub(crate) fn read_tokens<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
) -> std::result::Result<Option<(Ids<'a>, &'a [u64])>, String> {
    let Ok(lengths) = sections.get(Section::BlockLengths) else {
        return Ok(None);
    };
    let lengths: &[u64] = bytemuck::try_cast_slice(&bytes[lengths]).map_err(|e| e.to_string())?;
    let tokens = match (
        sections.get(Section::Tokens16),
        sections.get(Section::Tokens32),
    ) {
        (Ok(r), Err(_)) => {
            Ids::U16(bytemuck::try_cast_slice(&bytes[r]).map_err(|e| e.to_string())?)
        }
        (Err(_), Ok(r)) => {
            Ids::U32(bytemuck::try_cast_slice(&bytes[r]).map_err(|e| e.to_string())?)
        }
        _ => return Err("the file must hold exactly one of Tokens16 and Tokens32".into()),
    };
    Ok(Some((tokens, lengths)))
}

/// Checks that the block lengths add up to the tokens and every id lies below `vocab_size` (a
/// pass over all tokens: what [`Check::Full`] adds).
pub(crate) fn check_tokens(
    (tokens, block_lengths): (Ids, &[u64]),
    vocab_size: u32,
) -> std::result::Result<(), String> {
    let total = block_lengths
        .iter()
        .try_fold(0u64, |sum, &l| sum.checked_add(l));
    if total != Some(tokens.len() as u64) {
        return Err("the block lengths do not add up to the tokens".into());
    }
    if tokens.max().is_some_and(|t| t >= vocab_size) {
        return Err("a token id lies outside the tokenizer's vocabulary".into());
    }
    Ok(())
}

/// Writes tokenised text as a shard file, atomically, with the blocks' origins when given (opaque
/// bytes, for a provenance index of the model merged from it); `stop` as for
/// [`crate::atomic::AtomicFile::commit`]. `scratch`: a build's intermediate file, not synced
/// ([`crate::atomic::AtomicFile::scratch`]; `stop` is then not asked).
#[allow(clippy::too_many_arguments)]
pub fn write_shard(
    path: &Path,
    tokens: &IdVec,
    block_lengths: &[u64],
    vocab_size: u32,
    tokenizer: &[u8],
    metadata: &str,
    origins: Option<&[u8]>,
    stop: Option<Stop<'_>>,
    scratch: bool,
) -> Result<()> {
    let params = [vocab_size as u64];
    let mut data = vec![(Section::ShardParams, bytemuck::cast_slice(&params[..]))];
    data.extend(token_sections(tokens, block_lengths));
    data.extend([
        (Section::Tokenizer, tokenizer),
        (Section::Metadata, metadata.as_bytes()),
    ]);
    if let Some(origins) = origins {
        data.push((Section::ProvOrigins, origins));
    }
    let sections: Vec<SectionData> = data
        .iter()
        .map(|&(section, bytes)| SectionData { section, bytes })
        .collect();
    let bytes = format::encode(Kind::Shard, &sections);
    match scratch {
        true => crate::atomic::write_scratch(path, bytes.as_slice()),
        false => crate::atomic::write_atomic(path, bytes.as_slice(), stop),
    }
}

/// An opened shard file, memory-mapped and verified in full.
pub struct Shard {
    image: Image,
    sections: SectionTable,
    vocab_size: u32,
}

impl Shard {
    /// Opens and verifies a shard file. A model given instead, or a file that is not a regular
    /// file, is refused with one line saying so.
    pub fn open(path: &Path) -> Result<Shard> {
        let bad = |reason: String| Error::BadModel {
            path: PathBuf::from(path),
            reason,
        };
        let image = Image::map(path)?;
        let sections = format::decode(image.bytes(), Kind::Shard, Check::Full).map_err(bad)?;
        let params: &[u64] = sections
            .get(Section::ShardParams)
            .and_then(|r| bytemuck::try_cast_slice(&image.bytes()[r]).map_err(|e| e.to_string()))
            .map_err(bad)?;
        let vocab_size = match params {
            [v] if *v > 0 && *v < u32::MAX as u64 => *v as u32,
            _ => return Err(bad("the ShardParams section is invalid".into())),
        };
        let shard = Shard {
            image,
            sections,
            vocab_size,
        };
        match read_tokens(shard.image.bytes(), &shard.sections) {
            Ok(Some(tokens)) => check_tokens(tokens, vocab_size).map_err(bad)?,
            Ok(None) => return Err(bad("the shard holds no tokens".into())),
            Err(reason) => return Err(bad(reason)),
        }
        for s in [Section::Tokenizer, Section::Metadata] {
            shard.sections.get(s).map_err(bad)?;
        }
        std::str::from_utf8(shard.section(Section::Metadata))
            .map_err(|_| bad("the metadata is not UTF-8".into()))?;
        Ok(shard)
    }

    fn section(&self, s: Section) -> &[u8] {
        &self.image.bytes()[self.sections.get(s).expect("checked when opened")]
    }

    /// The tokenizer's vocabulary size.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The token ids and block lengths.
    pub fn tokens(&self) -> (Ids<'_>, &[u64]) {
        read_tokens(self.image.bytes(), &self.sections)
            .expect("checked when opened")
            .expect("checked when opened")
    }

    /// The opaque tokenizer blob.
    pub fn tokenizer_blob(&self) -> &[u8] {
        self.section(Section::Tokenizer)
    }

    /// The metadata JSON.
    pub fn metadata(&self) -> &str {
        std::str::from_utf8(self.section(Section::Metadata)).expect("checked when opened")
    }

    /// The blocks' origins (opaque bytes), when the shard was made with them.
    pub fn origins(&self) -> Option<&[u8]> {
        let range = self.sections.get(Section::ProvOrigins).ok()?;
        Some(&self.image.bytes()[range])
    }
}

/// The text of shards one after the other (a cluster build's corpus), read by [`concatenated`].
pub struct Concatenated {
    pub tokens: IdVec,
    pub block_lengths: Vec<u64>,
    /// The shards' vocabulary size (their padding id).
    pub vocab_size: u32,
    /// Each shard's origins section (None: it has none), when asked for (else empty).
    pub origins: Vec<Option<Vec<u8>>>,
}

/// The text of the shards at `paths` one after the other: the ids, the block lengths, the
/// vocabulary size, and, `with_origins`, each shard's origins; an error for none, or for shards of
/// different tokenizers. The one reader of a cluster build's shards (its workers' and its client's).
pub fn concatenated(paths: &[PathBuf], with_origins: bool) -> Result<Concatenated> {
    let shards = paths
        .iter()
        .map(|p| Shard::open(p))
        .collect::<Result<Vec<_>>>()?;
    let first = shards
        .first()
        .ok_or_else(|| Error::InvalidInput("no shards given".into()))?;
    let mut tokens = IdVec::for_symbols(first.vocab_size());
    let mut block_lengths = Vec::new();
    let mut origins = Vec::new();
    for (shard, path) in shards.iter().zip(paths) {
        if shard.tokenizer_blob() != first.tokenizer_blob()
            || shard.vocab_size() != first.vocab_size()
        {
            return Err(Error::InvalidInput(format!(
                "{} was tokenised with another tokenizer than {}",
                crate::error::shown(path),
                crate::error::shown(&paths[0])
            )));
        }
        let (ids, lengths) = shard.tokens();
        for i in 0..ids.len() {
            tokens.push(ids.get(i));
        }
        block_lengths.extend_from_slice(lengths);
        if with_origins {
            origins.push(shard.origins().map(<[u8]>::to_vec));
        }
    }
    Ok(Concatenated {
        tokens,
        block_lengths,
        vocab_size: first.vocab_size(),
        origins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(dir: &Path) -> PathBuf {
        let path = dir.join("a.shard");
        let ids = IdVec::U16(vec![1, 2, 3, 4]);
        write_shard(&path, &ids, &[4], 10, b"tok", "{}", None, None, false).unwrap();
        path
    }

    #[test]
    fn corrupt_shards_are_called_shards() {
        let dir = tempfile::tempdir().unwrap();
        let path = shard(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let err = Shard::open(&path).err().unwrap().to_string();
        assert!(err.contains("corrupt shard file"), "{err}");
        assert!(!err.contains("model"), "{err}");
        bytes.truncate(20);
        std::fs::write(&path, &bytes).unwrap();
        let err = Shard::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("shard file") && !err.contains("model"),
            "{err}"
        );
    }

    #[test]
    fn a_model_is_not_a_shard_and_a_folder_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = shard(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(crate::format::MAGIC);
        std::fs::write(&path, &bytes).unwrap();
        let err = Shard::open(&path).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: a memlm model, not a shard (tokenised text)",
                path.display()
            )
        );
        let err = Shard::open(dir.path()).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("{}: Is a directory", dir.path().display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_merge_input_is_told_by_its_magic_and_a_fifo_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = shard(dir.path());
        assert_eq!(Kind::of_file(&path).unwrap(), Some(Kind::Shard));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(crate::format::MAGIC);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Kind::of_file(&path).unwrap(), Some(Kind::Model));
        for other in [&b"MEMLM"[..], b"", b"plain text, longer than a magic"] {
            std::fs::write(&path, other).unwrap();
            assert_eq!(Kind::of_file(&path).unwrap(), None);
        }
        // A FIFO with no writer: refused at once (opened without blocking), as is a folder.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        for (path, reason) in [
            (fifo.as_path(), "not a regular file (a FIFO)"),
            (dir.path(), "Is a directory"),
        ] {
            let err = Kind::of_file(path).unwrap_err().to_string();
            assert_eq!(err, format!("{}: {reason}", path.display()));
            let err = Shard::open(path).err().unwrap().to_string();
            assert_eq!(err, format!("{}: {reason}", path.display()));
        }
    }

    #[test]
    fn an_empty_file_is_called_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.shard");
        std::fs::write(&path, b"").unwrap();
        let err = Shard::open(&path).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: an empty file (0 bytes), not a memlm shard file",
                path.display()
            )
        );
    }
}
