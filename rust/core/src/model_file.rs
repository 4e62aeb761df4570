//! The model file: what a trained model stores, how it is written, opened and checked.
//!
//! A model is one image in the container of [`crate::format`] (built in memory, or memory-mapped
//! from a file) holding: [`Params`]; information gain and gain ratio per feature and the feature
//! order; every class's training count and tie-break rank; the IGTree; optionally the instance
//! base (TRIBL2, IB1) and the training tokens (`--keep-tokens`); the symbol table (instance-file
//! models); an opaque tokenizer blob and UTF-8 JSON metadata.
//!
//! Opening checks the image as far as a [`Check`] says and resolves every section into typed
//! views once; queries then read the views without looking anything up. [`Check::Header`] costs
//! the same for a model of any size: the header, the section table, the small sections' checksums
//! and the arrays' lengths. [`Check::Full`] (and [`ModelFile::verify`]) adds every checksum and
//! every structural invariant of the tries.
//!
//! Lazy verification: a model opened with [`Check::Header`] checks the checksums of a trie's
//! sections (the IGTree's, or the instance base's with its tails) once, when the first query that
//! reads that trie asks for it ([`ModelFile::checked_igtree`], [`ModelFile::checked_instance_base`]):
//! one pass of xxh3 over those bytes, so random damage is a clean error, never a silently wrong
//! answer. Measured on a 1.8M-token W=16 model (page cache warm): 2-7 ms for the IGTree (11 MB),
//! 13-15 ms for the instance base (61 MB), against 0.65 s for [`ModelFile::verify`]; it reads every
//! page of a memory-mapped trie once. Bytes that pass the checksums but break the structure (a file forged with
//! recomputed checksums) give [`Error::BadModel`] or an answer from the forged data: the reads are
//! bounds-checked ([`crate::trie::Corrupt`]), so no byte pattern makes a query read out of bounds,
//! loop or panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::atomic::Stop;
use crate::build::InstanceBase;
use crate::cache::CacheWeights;
use crate::classes::ClassStats;
use crate::error::{Error, Result};
use crate::format::{
    self, AlignedBytes, Check, Image, ImageWriter, Kind, Section, SectionTable, TrieSections,
    KN_SECTIONS, PROVENANCE_SECTIONS, SIZE_GROUPS, TAIL_OFFSETS,
};
use crate::ids::{IdVec, Ids};
use crate::instances::check_width;
use crate::kneser_ney::{KneserNey, KneserNeyView};
use crate::knn::InstanceBaseView;
use crate::offsets::{OffsetsView, PackedOffsets};
use crate::provenance::{PackedPositions, PositionsView, ProvenanceView};
use crate::shard::{check_tokens, read_tokens, token_sections};
use crate::trie::{Corrupt, EncodedTrie, TrieView};
use crate::vocabulary::{Symbols, Vocabulary};
use crate::weights::{FeatureWeights, Weighting};

/// Scalar parameters of a model (the Params section: six u64 in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Context width W.
    pub width: usize,
    /// Number of symbol ids (token ids plus padding, or instance-file symbols).
    pub n_symbols: u32,
    /// Padding symbol id.
    pub pad: u32,
    /// Number of training instances.
    pub n_instances: u64,
    /// Weighting that ordered the features.
    pub weighting: Weighting,
    /// Whether symbols are token ids (else a stored symbol table).
    pub token_ids: bool,
}

impl Params {
    fn encode(&self) -> [u64; 6] {
        [
            self.width as u64,
            self.n_symbols as u64,
            self.pad as u64,
            self.n_instances,
            self.weighting.code() as u64,
            self.token_ids as u64,
        ]
    }

    fn decode(words: &[u64]) -> std::result::Result<Self, String> {
        let [width, n_symbols, pad, n_instances, weighting, token_ids] = words else {
            return Err("the Params section has a wrong length".into());
        };
        check_width(*width).map_err(|e| e.to_string())?;
        // At least padding and one class; ids below UNKNOWN.
        if *n_symbols < 2 || *n_symbols > u32::MAX as u64 - 1 || *pad >= *n_symbols {
            return Err("the symbol count or padding id is out of range".into());
        }
        Ok(Params {
            width: *width as usize,
            n_symbols: *n_symbols as u32,
            pad: *pad as u32,
            n_instances: *n_instances,
            weighting: Weighting::from_code(*weighting as u32)
                .ok_or("unknown weighting code in the Params section")?,
            token_ids: match token_ids {
                0 => false,
                1 => true,
                _ => return Err("bad vocabulary kind in the Params section".into()),
            },
        })
    }
}

/// Everything a model file holds, as training made it.
pub(crate) struct Contents<'a> {
    pub params: Params,
    pub weights: &'a FeatureWeights,
    pub order: &'a [usize],
    pub stats: &'a ClassStats,
    pub igtree: &'a EncodedTrie,
    pub instance_base: Option<&'a InstanceBase>,
    pub tokens: Option<(&'a IdVec, &'a [u64])>,
    /// Owned: written last, each array freed once it is in the image.
    pub kneser_ney: Option<KneserNey>,
    /// The provenance index over the Kneser-Ney text, and the opaque origins of its blocks.
    pub provenance: Option<(&'a PackedPositions, &'a [u8])>,
    pub vocabulary: &'a Vocabulary,
    pub tokenizer: &'a [u8],
    pub metadata: &'a str,
}

/// Typed views of an image's sections.
struct Views<'a> {
    igtree: TrieView<'a>,
    instance_base: Option<InstanceBaseView<'a>>,
    info_gain: &'a [f64],
    gain_ratio: &'a [f64],
    feature_order: &'a [u32],
    class_counts: &'a [u64],
    class_rank: &'a [u32],
    symbols: Symbols<'a>,
    training_tokens: Option<(Ids<'a>, &'a [u64])>,
    kneser_ney: Option<KneserNeyView<'a>>,
    provenance: Option<ProvenanceView<'a>>,
    cache_weights: Option<CacheWeights>,
    tokenizer: &'a [u8],
    metadata: &'a str,
}

/// The sections of the parts of a model whose checksums are verified lazily, at first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    IgTree,
    InstanceBase,
    TrainingTokens,
    KneserNey,
    Provenance,
}

impl Part {
    fn sections(self) -> Vec<Section> {
        let trie = |s: TrieSections| {
            let mut v = vec![s.labels16, s.labels32, s.dist_bytes];
            v.extend(s.children);
            v.extend(s.dist_offsets);
            v.extend(s.totals);
            v
        };
        match self {
            Part::IgTree => trie(TrieSections::IGTREE),
            Part::InstanceBase => {
                let mut v = trie(TrieSections::BASE);
                v.extend(TAIL_OFFSETS);
                v.extend([Section::TailValues16, Section::TailValues32]);
                v
            }
            Part::TrainingTokens => {
                vec![Section::Tokens16, Section::Tokens32, Section::BlockLengths]
            }
            Part::KneserNey => KN_SECTIONS.into_iter().filter(|s| s.is_bulk()).collect(),
            Part::Provenance => PROVENANCE_SECTIONS
                .into_iter()
                .filter(|s| s.is_bulk())
                .collect(),
        }
    }
}

/// Whether a part's checksums were verified, and how that came out (once per part).
type Verified = OnceLock<std::result::Result<(), String>>;

/// An opened model file: its image, checked, and typed views of its sections.
pub struct ModelFile {
    /// Borrow `image` and `class_by_rank`, whose bytes never move or change while `self` lives:
    /// handed out only at the lifetime of `&self`.
    views: Views<'static>,
    /// Class id of every tie-break rank (the inverse of the ClassRank section).
    class_by_rank: Vec<u32>,
    params: Params,
    sections: SectionTable,
    /// The lazy verification of the IGTree, the instance base, the training tokens, the
    /// Kneser-Ney statistics and the provenance index.
    verified: [Verified; 5],
    image: Image,
    /// Where the image came from, for error messages.
    origin: PathBuf,
}

impl ModelFile {
    /// Opens a model file by memory-mapping it, checked as far as `check` says. The file must not
    /// be truncated or rewritten in place while the model is open (see [`Image::map`]); memlm's
    /// own writers replace files by renaming, which is safe. [`ModelFile::read`] does not map.
    pub fn load(path: &Path, check: Check) -> Result<ModelFile> {
        ModelFile::open(Image::map(path)?, check, path.to_path_buf())
    }

    /// Opens a model file by reading it into memory (not mapped: later changes to the file do not
    /// affect the model), checked as far as `check` says.
    pub fn read(path: &Path, check: Check) -> Result<ModelFile> {
        ModelFile::open(Image::read(path)?, check, path.to_path_buf())
    }

    /// Reads a model from an in-memory image (as [`ModelFile::as_bytes`] gives it), checked in full.
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelFile> {
        ModelFile::from_bytes_with(bytes, Check::Full)
    }

    /// Reads a model from an in-memory image, checked as far as `check` says (as a file is by
    /// [`ModelFile::load`]).
    pub fn from_bytes_with(bytes: &[u8], check: Check) -> Result<ModelFile> {
        let mut image = AlignedBytes::try_zeroed(bytes.len()).ok_or_else(|| {
            Error::InvalidInput(format!("{} bytes do not fit in memory", bytes.len()))
        })?;
        image.as_mut_slice().copy_from_slice(bytes);
        ModelFile::open(Image::Owned(image), check, "<bytes>".into())
    }

    /// Writes `contents` into a new image (in memory) and opens it.
    pub(crate) fn write(contents: Contents) -> Result<ModelFile> {
        let params = contents.params.encode();
        let order: Vec<u32> = contents.order.iter().map(|&f| f as u32).collect();
        let (symbol_offsets, symbol_bytes) = contents.vocabulary.packed();
        let mut data: Vec<(Section, &[u8])> = vec![
            (Section::Params, bytemuck::cast_slice(&params)),
            (
                Section::InfoGain,
                bytemuck::cast_slice(&contents.weights.info_gain),
            ),
            (
                Section::GainRatio,
                bytemuck::cast_slice(&contents.weights.gain_ratio),
            ),
            (Section::FeatureOrder, bytemuck::cast_slice(&order)),
            (
                Section::ClassCounts,
                bytemuck::cast_slice(&contents.stats.counts),
            ),
            (
                Section::ClassRank,
                bytemuck::cast_slice(&contents.stats.rank),
            ),
        ];
        data.extend(trie_sections(contents.igtree, TrieSections::IGTREE));
        if let Some(base) = contents.instance_base {
            data.extend(trie_sections(&base.trie, TrieSections::BASE));
            data.extend(offset_sections(&base.tail_offsets, TAIL_OFFSETS));
            data.push(match &base.tail_values {
                IdVec::U16(v) => (Section::TailValues16, bytemuck::cast_slice(&v[..])),
                IdVec::U32(v) => (Section::TailValues32, bytemuck::cast_slice(&v[..])),
            });
        }
        if let Some((tokens, block_lengths)) = contents.tokens {
            data.extend(token_sections(tokens, block_lengths));
        }
        let provenance_params;
        if let Some((positions, origins)) = contents.provenance {
            provenance_params = [positions.bits as u64, positions.len as u64];
            data.extend([
                (
                    Section::ProvParams,
                    bytemuck::cast_slice(&provenance_params),
                ),
                (
                    Section::ProvPositions,
                    bytemuck::cast_slice(&positions.words),
                ),
                (Section::ProvOrigins, origins),
            ]);
        }
        data.extend([
            (
                Section::SymbolOffsets,
                bytemuck::cast_slice(&symbol_offsets),
            ),
            (Section::SymbolBytes, &symbol_bytes[..]),
            (Section::Tokenizer, contents.tokenizer),
            (Section::Metadata, contents.metadata.as_bytes()),
        ]);
        let mut kneser_ney = contents.kneser_ney;
        let mut layout: Vec<(Section, usize)> = data.iter().map(|&(s, b)| (s, b.len())).collect();
        if let Some(kn) = &mut kneser_ney {
            kneser_ney_sections(kn, false, &mut |s, b| layout.push((s, b.len())));
        }
        let mut writer = ImageWriter::new(Kind::Model, &layout);
        for &(_, bytes) in &data {
            writer.put(bytes);
        }
        // The statistics last, each array freed once it is in: they are never held twice.
        if let Some(kn) = &mut kneser_ney {
            kneser_ney_sections(kn, true, &mut |_, b| writer.put(b));
        }
        let image = writer.finish();
        let file = ModelFile::open(
            Image::Owned(image),
            Check::Header,
            "<built in memory>".into(),
        )?;
        // Written from the trained tries just now: nothing to verify.
        file.mark_verified();
        Ok(file)
    }

    fn open(image: Image, check: Check, origin: PathBuf) -> Result<ModelFile> {
        let bad = |reason| Error::BadModel {
            path: origin.clone(),
            reason,
        };
        // SAFETY: the bytes of an `Image` (a heap buffer or a read-only map) stay where they are
        // when the image moves, and are never written after it is made. The image is stored in the
        // returned `ModelFile` next to the views that borrow it, and those views are only handed
        // out at the lifetime of `&ModelFile`.
        let bytes: &'static [u8] =
            unsafe { std::slice::from_raw_parts(image.bytes().as_ptr(), image.bytes().len()) };
        let sections = format::decode(bytes, Kind::Model, check).map_err(bad)?;
        let params = array(bytes, &sections, Section::Params)
            .and_then(Params::decode)
            .map_err(bad)?;
        let class_by_rank = class_by_rank(bytes, &sections, params.n_symbols).map_err(bad)?;
        // SAFETY: as above: `class_by_rank` is moved into the `ModelFile` and never changed, and
        // its heap buffer does not move with it.
        let classes: &'static [u32] =
            unsafe { std::slice::from_raw_parts(class_by_rank.as_ptr(), class_by_rank.len()) };
        let views = Views::resolve(bytes, &sections, &params, classes, check).map_err(bad)?;
        let file = ModelFile {
            views,
            class_by_rank,
            params,
            sections,
            verified: Default::default(),
            image,
            origin,
        };
        if check == Check::Full {
            file.mark_verified();
        }
        Ok(file)
    }

    /// Records that every part's checksums are verified.
    fn mark_verified(&self) {
        for v in &self.verified {
            let _ = v.set(Ok(()));
        }
    }

    /// Verifies every checksum and every structural invariant (what `memlm verify` runs).
    pub fn verify(&self) -> Result<()> {
        format::decode(self.as_bytes(), Kind::Model, Check::Full)
            .and_then(|_| self.views.validate(&self.params))
            .map_err(|reason| self.bad(reason))?;
        self.mark_verified();
        Ok(())
    }

    /// [`Error::BadModel`] for this file.
    pub(crate) fn bad(&self, reason: String) -> Error {
        Error::BadModel {
            path: self.origin.clone(),
            reason,
        }
    }

    /// [`Error::BadModel`] for a structure a query found broken.
    #[cold]
    pub(crate) fn corrupt(&self, c: Corrupt) -> Error {
        self.bad(format!(
            "the model file is corrupt ({}): run `memlm verify` on it",
            c.0
        ))
    }

    /// Verifies the checksums of `part`'s sections at its first use (once; the outcome is kept).
    #[inline]
    fn verify_part(&self, part: Part) -> Result<()> {
        let cell = &self.verified[part as usize];
        let outcome = match cell.get() {
            Some(outcome) => outcome,
            None => cell.get_or_init(|| self.checksum_part(part)),
        };
        outcome.clone().map_err(|reason| self.bad(reason))
    }

    #[cold]
    fn checksum_part(&self, part: Part) -> std::result::Result<(), String> {
        self.sections
            .verify(self.as_bytes(), Kind::Model, &part.sections())
    }

    /// Whether the IGTree's checksums were checked already (so that [`ModelFile::checked_igtree`]
    /// costs nothing more): a caller holding a lock may want to release it for the first check.
    pub fn igtree_checked(&self) -> bool {
        self.verified[Part::IgTree as usize].get().is_some()
    }

    /// The IGTree, its sections' checksums verified (at the first call, once: see the module doc).
    #[inline]
    pub fn checked_igtree(&self) -> Result<TrieView<'_>> {
        self.verify_part(Part::IgTree)?;
        Ok(self.views.igtree)
    }

    /// The instance base (None when the model stores none), its sections' checksums verified at
    /// the first call.
    #[inline]
    pub fn checked_instance_base(&self) -> Result<Option<InstanceBaseView<'_>>> {
        match self.views.instance_base {
            Some(base) => {
                self.verify_part(Part::InstanceBase)?;
                Ok(Some(base))
            }
            None => Ok(None),
        }
    }

    /// The Kneser-Ney statistics (None for models trained from instance files), their sections'
    /// checksums verified at the first call.
    #[inline]
    pub fn checked_kneser_ney(&self) -> Result<Option<KneserNeyView<'_>>> {
        match self.views.kneser_ney {
            Some(kn) => {
                self.verify_part(Part::KneserNey)?;
                Ok(Some(kn))
            }
            None => Ok(None),
        }
    }

    /// Whether the model has a provenance index (not verified: see
    /// [`ModelFile::checked_provenance`]).
    pub fn has_provenance(&self) -> bool {
        self.views.provenance.is_some()
    }

    /// The provenance index (None unless the model was trained with one) with the Kneser-Ney text
    /// it indexes, checksums verified at the first call.
    pub fn checked_provenance(&self) -> Result<Option<(ProvenanceView<'_>, KneserNeyView<'_>)>> {
        let (Some(provenance), Some(kn)) = (self.views.provenance, self.checked_kneser_ney()?)
        else {
            return Ok(None);
        };
        self.verify_part(Part::Provenance)?;
        Ok(Some((provenance, kn)))
    }

    /// The document cache's weights, when the model has them (fitted at training time).
    pub fn cache_weights(&self) -> Option<CacheWeights> {
        self.views.cache_weights
    }

    /// The training tokens and block lengths (None when the model did not keep them), checksums
    /// verified and ids checked against the vocabulary at the first call.
    pub fn checked_training_tokens(&self) -> Result<Option<(Ids<'_>, &[u64])>> {
        let Some(tokens) = self.views.training_tokens else {
            return Ok(None);
        };
        self.verify_part(Part::TrainingTokens)?;
        check_tokens(tokens, self.params.pad).map_err(|reason| self.bad(reason))?;
        Ok(Some(tokens))
    }

    /// Scalar parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The IGTree as stored, not verified (queries use [`ModelFile::checked_igtree`]).
    #[inline]
    pub fn igtree(&self) -> TrieView<'_> {
        self.views.igtree
    }

    /// The unpruned instance base as stored, when the model has one, not verified (queries use
    /// [`ModelFile::checked_instance_base`]).
    #[inline]
    pub fn instance_base(&self) -> Option<InstanceBaseView<'_>> {
        self.views.instance_base
    }

    /// Features in weight order.
    pub fn feature_order(&self) -> &[u32] {
        self.views.feature_order
    }

    /// The weights of the model's weighting, per feature.
    pub fn weights(&self) -> &[f64] {
        match self.params.weighting {
            Weighting::GainRatio => self.views.gain_ratio,
            Weighting::InfoGain => self.views.info_gain,
        }
    }

    /// Both kinds of weights.
    pub fn feature_weights(&self) -> FeatureWeights {
        FeatureWeights {
            info_gain: self.views.info_gain.to_vec(),
            gain_ratio: self.views.gain_ratio.to_vec(),
        }
    }

    /// Training frequency of every class.
    pub fn class_counts(&self) -> &[u64] {
        self.views.class_counts
    }

    /// Tie-break rank of every class.
    pub fn class_rank(&self) -> &[u32] {
        self.views.class_rank
    }

    /// Class id of every tie-break rank (the inverse of [`ModelFile::class_rank`]).
    pub fn class_by_rank(&self) -> &[u32] {
        &self.class_by_rank
    }

    /// The symbols.
    pub fn symbols(&self) -> &Symbols<'_> {
        &self.views.symbols
    }

    /// The training text's token ids and block lengths, when the model was trained to keep them, as
    /// stored (not verified: see [`ModelFile::checked_training_tokens`]).
    pub fn training_tokens(&self) -> Option<(Ids<'_>, &[u64])> {
        self.views.training_tokens
    }

    /// The opaque tokenizer blob (empty when the model has none).
    pub fn tokenizer_blob(&self) -> &[u8] {
        self.views.tokenizer
    }

    /// The opaque metadata JSON.
    pub fn metadata(&self) -> &str {
        self.views.metadata
    }

    /// Bytes of the image per part of [`SIZE_GROUPS`], then the rest ("other").
    pub fn size_breakdown(&self) -> Vec<(&'static str, usize)> {
        let mut parts: Vec<(&'static str, usize)> = SIZE_GROUPS
            .iter()
            .map(|(name, sections)| (*name, sections.iter().map(|&s| self.sections.size(s)).sum()))
            .collect();
        let listed: usize = parts.iter().map(|p| p.1).sum();
        parts.push(("other", self.as_bytes().len() - listed));
        parts
    }

    /// The whole image, as [`ModelFile::save`] writes it.
    pub fn as_bytes(&self) -> &[u8] {
        self.image.bytes()
    }

    /// Writes the model file atomically; `stop` is asked just before the rename (see
    /// [`crate::atomic::AtomicFile::commit`]).
    pub fn save(&self, path: &Path, stop: Option<Stop<'_>>) -> Result<()> {
        crate::atomic::write_atomic(path, self.as_bytes(), stop)
    }
}

impl<'a> Views<'a> {
    /// Resolves and checks (in time independent of the model's size, or in full with
    /// [`Check::Full`]) every section's view.
    fn resolve(
        bytes: &'a [u8],
        sections: &SectionTable,
        params: &Params,
        classes: &'a [u32],
        check: Check,
    ) -> std::result::Result<Views<'a>, String> {
        let n = params.n_symbols;
        let feature_order = feature_order(bytes, sections, params.width)?;
        let [info_gain, gain_ratio] = feature_weights(bytes, sections, params.width)?;
        let class_counts: &[u64] = array(bytes, sections, Section::ClassCounts)?;
        if class_counts.len() != n as usize {
            return Err("class statistics do not match the symbol count".into());
        }
        let igtree = trie(bytes, sections, TrieSections::IGTREE, classes)?;
        igtree.check_lengths(n).map_err(corrupt)?;
        let views = Views {
            igtree,
            instance_base: instance_base(bytes, sections, classes, n)?,
            info_gain,
            gain_ratio,
            feature_order,
            class_counts,
            training_tokens: training_tokens(bytes, sections, params)?,
            symbols: symbols(bytes, sections, params)?,
            metadata: std::str::from_utf8(section(bytes, sections, Section::Metadata)?)
                .map_err(|_| "the metadata is not UTF-8".to_string())?,
            class_rank: array(bytes, sections, Section::ClassRank)?,
            kneser_ney: kneser_ney(bytes, sections, params)?,
            provenance: provenance(bytes, sections)?,
            cache_weights: cache_weights(bytes, sections)?,
            tokenizer: section(bytes, sections, Section::Tokenizer)?,
        };
        if check == Check::Full {
            views.validate(params)?;
        }
        Ok(views)
    }

    /// Every structural invariant of the tries and the training tokens (what [`Check::Full`] adds
    /// to the checksums).
    fn validate(&self, params: &Params) -> std::result::Result<(), String> {
        if let Some(tokens) = self.training_tokens {
            check_tokens(tokens, params.pad)?;
        }
        self.igtree.validate(params.n_symbols)?;
        if let Some(base) = &self.instance_base {
            base.validate(params.width, params.n_symbols)?;
        }
        if let Some(kn) = &self.kneser_ney {
            kn.validate(params.width, params.n_symbols)?;
        }
        if let Some(provenance) = &self.provenance {
            let kn = self
                .kneser_ney
                .ok_or("a provenance index without Kneser-Ney statistics")?;
            let order: Vec<usize> = self.feature_order.iter().map(|&f| f as usize).collect();
            provenance.validate(kn.text, kn.pad, params.width, &order)?;
        }
        Ok(())
    }
}

/// The message of an array length check that failed at open: the arrays are bulk sections, whose
/// checksums are verified later, so a damaged file shows here first.
fn corrupt(reason: String) -> String {
    format!("corrupt model file ({reason})")
}

/// The feature order, checked to be a permutation of the `width` features.
fn feature_order<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    width: usize,
) -> std::result::Result<&'a [u32], String> {
    let order: &[u32] = array(bytes, sections, Section::FeatureOrder)?;
    let mut seen = vec![false; width];
    if order.len() != width
        || order
            .iter()
            .any(|&f| f as usize >= width || std::mem::replace(&mut seen[f as usize], true))
    {
        return Err("the feature order is not a permutation of the features".into());
    }
    Ok(order)
}

/// The information gain and gain ratio of the `width` features, checked to be finite and >= 0.
fn feature_weights<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    width: usize,
) -> std::result::Result<[&'a [f64]; 2], String> {
    let read = |s: Section| -> std::result::Result<&'a [f64], String> {
        let weights: &[f64] = array(bytes, sections, s)?;
        if weights.len() != width || weights.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(format!("the {s:?} weights are invalid"));
        }
        Ok(weights)
    };
    Ok([read(Section::InfoGain)?, read(Section::GainRatio)?])
}

/// The instance base, when the file stores one, its array lengths checked.
fn instance_base<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    classes: &'a [u32],
    n_symbols: u32,
) -> std::result::Result<Option<InstanceBaseView<'a>>, String> {
    if !sections.contains(Section::BaseDistBytes) {
        return Ok(None);
    }
    let trie = trie(bytes, sections, TrieSections::BASE, classes)?;
    let base = InstanceBaseView {
        trie,
        tail_offsets: offsets(bytes, sections, TAIL_OFFSETS, trie.node_count())?,
        tail_values: ids(
            bytes,
            sections,
            Section::TailValues16,
            Section::TailValues32,
        )?,
    };
    base.check_lengths(n_symbols).map_err(corrupt)?;
    Ok(Some(base))
}

/// The training tokens a token-id model kept (None when it did not); a symbol-table model has none.
fn training_tokens<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    params: &Params,
) -> std::result::Result<Option<(Ids<'a>, &'a [u64])>, String> {
    match params.token_ids {
        true => read_tokens(bytes, sections),
        false if sections.contains(Section::BlockLengths) => {
            Err("a symbol-table model cannot hold training tokens".into())
        }
        false => Ok(None),
    }
}

/// The provenance index, when the file stores one (its sections all or none).
fn provenance<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
) -> std::result::Result<Option<ProvenanceView<'a>>, String> {
    let present = PROVENANCE_SECTIONS.map(|s| sections.contains(s));
    if present == [false; 3] {
        return Ok(None);
    }
    if present != [true; 3] {
        return Err("the provenance index is incomplete".into());
    }
    let [bits, len]: [u64; 2] = array(bytes, sections, Section::ProvParams)?
        .try_into()
        .map_err(|_| "the provenance parameters have a wrong length".to_string())?;
    let words: &[u64] = array(bytes, sections, Section::ProvPositions)?;
    Ok(Some(ProvenanceView {
        positions: PositionsView::new(bits, len, words).map_err(corrupt)?,
        origins: section(bytes, sections, Section::ProvOrigins)?,
    }))
}

/// The symbols: token ids, or the file's symbol table.
fn symbols<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    params: &Params,
) -> std::result::Result<Symbols<'a>, String> {
    match params.token_ids {
        true => Ok(Symbols::token_ids(params.n_symbols, params.pad)),
        false => Symbols::table(
            params.n_symbols,
            params.pad,
            array(bytes, sections, Section::SymbolOffsets)?,
            section(bytes, sections, Section::SymbolBytes)?,
        ),
    }
}

/// The Kneser-Ney statistics, when the file stores them (token models), their lengths checked.
fn kneser_ney<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    params: &Params,
) -> std::result::Result<Option<KneserNeyView<'a>>, String> {
    if !sections.contains(Section::KnParams) {
        return Ok(None);
    }
    let kn = KneserNeyView {
        params: array(bytes, sections, Section::KnParams)?,
        constants: array(bytes, sections, Section::KnConstants)?,
        root: array(bytes, sections, Section::KnRoot)?,
        root_next: array(bytes, sections, Section::KnRootNext)?,
        labels: ids(bytes, sections, Section::KnLabels16, Section::KnLabels32)?,
        nodes: array(bytes, sections, Section::KnNodes)?,
        entry_tokens: ids(
            bytes,
            sections,
            Section::KnEntryTokens16,
            Section::KnEntryTokens32,
        )?,
        entry_probs: array(bytes, sections, Section::KnEntryProbs)?,
        leaf_labels: ids(
            bytes,
            sections,
            Section::KnLeafLabels16,
            Section::KnLeafLabels32,
        )?,
        leaves: array(bytes, sections, Section::KnLeaves)?,
        text: ids(bytes, sections, Section::KnText16, Section::KnText32)?,
        pad: params.pad,
    };
    kn.check_lengths(params.width, params.n_symbols)
        .map_err(corrupt)?;
    Ok(Some(kn))
}

/// The document cache's weights, when the file stores them (with the Kneser-Ney statistics),
/// checked to be finite, non-negative and to sum to at most 1.
fn cache_weights(
    bytes: &[u8],
    sections: &SectionTable,
) -> std::result::Result<Option<CacheWeights>, String> {
    if !(sections.contains(Section::KnCache) && sections.contains(Section::KnParams)) {
        return Ok(None);
    }
    let w: &[f64] = array(bytes, sections, Section::KnCache)?;
    match <CacheWeights>::try_from(w) {
        Ok(w) if crate::cache::valid_weights(&w) => Ok(Some(w)),
        _ => Err("the document cache's weights are invalid".into()),
    }
}

/// The class of every tie-break rank, checking that the ClassRank section is a permutation.
fn class_by_rank(
    bytes: &[u8],
    sections: &SectionTable,
    n_symbols: u32,
) -> std::result::Result<Vec<u32>, String> {
    let rank: &[u32] = array(bytes, sections, Section::ClassRank)?;
    if rank.len() != n_symbols as usize {
        return Err("class statistics do not match the symbol count".into());
    }
    let mut class_by_rank = vec![u32::MAX; rank.len()];
    for (class, &r) in rank.iter().enumerate() {
        match class_by_rank.get_mut(r as usize) {
            Some(slot) if *slot == u32::MAX => *slot = class as u32,
            _ => return Err("the class ranks are not a permutation".into()),
        }
    }
    Ok(class_by_rank)
}

fn section<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    s: Section,
) -> std::result::Result<&'a [u8], String> {
    Ok(&bytes[sections.get(s)?])
}

fn array<'a, T: bytemuck::Pod>(
    bytes: &'a [u8],
    sections: &SectionTable,
    s: Section,
) -> std::result::Result<&'a [T], String> {
    bytemuck::try_cast_slice(section(bytes, sections, s)?)
        .map_err(|e| format!("the {s:?} section cannot be read: {e}"))
}

fn offsets<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    [records, exception_items, exception_lens]: [Section; 3],
    items: usize,
) -> std::result::Result<OffsetsView<'a>, String> {
    Ok(OffsetsView {
        records: array(bytes, sections, records)?,
        items,
        exception_items: array(bytes, sections, exception_items)?,
        exception_lens: array(bytes, sections, exception_lens)?,
    })
}

/// The one of two sections (u16 or u32 ids) that the file holds.
fn ids<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    s16: Section,
    s32: Section,
) -> std::result::Result<Ids<'a>, String> {
    match (array(bytes, sections, s16), array(bytes, sections, s32)) {
        (Ok(v), Err(_)) => Ok(Ids::U16(v)),
        (Err(_), Ok(v)) => Ok(Ids::U32(v)),
        _ => Err(format!(
            "the model must hold exactly one of {s16:?} and {s32:?}"
        )),
    }
}

fn trie<'a>(
    bytes: &'a [u8],
    sections: &SectionTable,
    s: TrieSections,
    classes: &'a [u32],
) -> std::result::Result<TrieView<'a>, String> {
    let labels = ids(bytes, sections, s.labels16, s.labels32)?;
    Ok(TrieView {
        labels,
        children: offsets(bytes, sections, s.children, labels.len())?,
        dist_offsets: offsets(bytes, sections, s.dist_offsets, labels.len())?,
        dist_bytes: section(bytes, sections, s.dist_bytes)?,
        classes,
        total_nodes: array(bytes, sections, s.totals[0])?,
        total_counts: array(bytes, sections, s.totals[1])?,
    })
}

/// The sections of one stored trie.
fn trie_sections(trie: &EncodedTrie, s: TrieSections) -> Vec<(Section, &[u8])> {
    let mut out = vec![match &trie.labels {
        IdVec::U16(v) => (s.labels16, bytemuck::cast_slice(&v[..])),
        IdVec::U32(v) => (s.labels32, bytemuck::cast_slice(&v[..])),
    }];
    out.extend(offset_sections(&trie.children, s.children));
    out.extend(offset_sections(&trie.dist_offsets, s.dist_offsets));
    out.push((s.dist_bytes, &trie.dist_bytes[..]));
    out.push((s.totals[0], bytemuck::cast_slice(&trie.total_nodes)));
    out.push((s.totals[1], bytemuck::cast_slice(&trie.total_counts)));
    out
}

/// The three sections of one set of packed offsets.
fn offset_sections(o: &PackedOffsets, sections: [Section; 3]) -> [(Section, &[u8]); 3] {
    let [records, items, lengths] = sections;
    [
        (records, bytemuck::cast_slice(&o.records)),
        (items, bytemuck::cast_slice(&o.exception_items)),
        (lengths, bytemuck::cast_slice(&o.exception_lens)),
    ]
}

/// The sections of the Kneser-Ney statistics, in file order, each handed to `put`; with `free`, each
/// array is freed once handed over (the statistics are then spent).
fn kneser_ney_sections(kn: &mut KneserNey, free: bool, put: &mut dyn FnMut(Section, &[u8])) {
    fn ids(
        v: &mut IdVec,
        s16: Section,
        s32: Section,
        free: bool,
        put: &mut dyn FnMut(Section, &[u8]),
    ) {
        match v {
            IdVec::U16(v) => put(s16, bytemuck::cast_slice(&v[..])),
            IdVec::U32(v) => put(s32, bytemuck::cast_slice(&v[..])),
        }
        if free {
            *v = IdVec::U16(Vec::new());
        }
    }
    fn array<T: bytemuck::Pod>(
        v: &mut Vec<T>,
        s: Section,
        free: bool,
        put: &mut dyn FnMut(Section, &[u8]),
    ) {
        put(s, bytemuck::cast_slice(&v[..]));
        if free {
            *v = Vec::new();
        }
    }
    put(Section::KnParams, bytemuck::cast_slice(&kn.params));
    array(&mut kn.constants, Section::KnConstants, free, put);
    array(&mut kn.root, Section::KnRoot, free, put);
    array(&mut kn.root_next, Section::KnRootNext, free, put);
    ids(
        &mut kn.labels,
        Section::KnLabels16,
        Section::KnLabels32,
        free,
        put,
    );
    array(&mut kn.nodes, Section::KnNodes, free, put);
    let tokens = (Section::KnEntryTokens16, Section::KnEntryTokens32);
    ids(&mut kn.entry_tokens, tokens.0, tokens.1, free, put);
    array(&mut kn.entry_probs, Section::KnEntryProbs, free, put);
    let labels = (Section::KnLeafLabels16, Section::KnLeafLabels32);
    ids(&mut kn.leaf_labels, labels.0, labels.1, free, put);
    array(&mut kn.leaves, Section::KnLeaves, free, put);
    ids(
        &mut kn.text,
        Section::KnText16,
        Section::KnText32,
        free,
        put,
    );
    if let Some(weights) = &kn.cache {
        put(Section::KnCache, bytemuck::cast_slice(weights));
    }
}
