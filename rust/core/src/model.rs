//! A trained model: parameters, feature weights, the IGTree, the symbol table, viewed in one image
//! that is either built in memory or memory-mapped from a model file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::build::{build_igtree, build_instance_base, BuildOptions, InstanceBase};
use crate::classes::ClassStats;
use crate::error::{Error, Result};
use crate::format::{
    self, AlignedBytes, Check, Image, Kind, Section, SectionData, SectionTable, TrieSections,
    TAIL_OFFSETS,
};
use crate::ids::{IdVec, Ids};
use crate::instances::{check_width, Context, Instances};
use crate::knn::InstanceBaseView;
use crate::offsets::{OffsetsView, PackedOffsets};
use crate::scoring::{Score, Scores};
use crate::shard::{read_tokens, token_sections};
use crate::trie::{EncodedTrie, TrieView, ROOT};
use crate::weights::{feature_order, FeatureWeights, Weighting};

pub use crate::vocabulary::{Vocabulary, PAD_SYMBOL, UNKNOWN};

const PARAM_COUNT: usize = 6;

/// Scalar parameters of a model (the Params section).
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
    fn encode(&self) -> [u64; PARAM_COUNT] {
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
        check_width(*width as usize).map_err(|e| e.to_string())?;
        if *n_symbols == 0 || *n_symbols > u32::MAX as u64 - 1 || *pad >= *n_symbols {
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

/// Where a query's descent in the IGTree stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// The last matched node.
    pub node: u32,
    /// How many features (in weight order) were matched on the way to it.
    pub depth: u32,
}

/// A trained memory-based language model, ready for queries.
pub struct Model {
    backing: Image,
    sections: SectionTable,
    params: Params,
    order: Vec<usize>,
    /// `unmatched_weight[d]`: summed weight of the features not matched at depth `d`.
    unmatched_weight: Vec<f64>,
    /// Feature weights in weight order.
    ordered_weights: Vec<f64>,
    /// Class id of every tie-break rank (the inverse of the ClassRank section).
    class_by_rank: Vec<u32>,
    has_instance_base: bool,
    symbol_index: OnceLock<HashMap<String, u32>>,
}

/// What goes into a model besides the instances.
pub struct TrainSpec<'a> {
    pub vocabulary: Vocabulary,
    pub weighting: Weighting,
    /// Opaque tokenizer blob stored in the file (empty for instance-file models).
    pub tokenizer: &'a [u8],
    /// Opaque UTF-8 JSON stored in the file.
    pub metadata: &'a str,
    /// Whether to store the unpruned instance base too (needed by TRIBL2 and IB1).
    pub instance_base: bool,
    /// Memory budget of the trie construction, spill folder, progress reports.
    pub build: BuildOptions<'a>,
    /// The training text's token ids and block lengths, to store in the model so that `memlm merge`
    /// can add text to it later (None: not stored).
    pub keep_tokens: Option<(&'a IdVec, &'a [u64])>,
}

impl Model {
    /// Trains an IGTree model on `instances`, which are dropped as soon as the trie is built.
    pub fn train<I: Instances>(instances: I, spec: TrainSpec) -> Result<Model> {
        if instances.is_empty() {
            return Err(Error::InvalidInput(
                "no training instances: the corpus is empty".into(),
            ));
        }
        let width = instances.width();
        check_width(width)?;
        let n_symbols = spec.vocabulary.symbol_count();
        spec.build.report("computing feature weights", 0, 1);
        let stats = ClassStats::new(&instances, n_symbols);
        let weights = FeatureWeights::compute(&instances, &stats);
        spec.build.report("computing feature weights", 1, 1);
        let order = feature_order(weights.get(spec.weighting));
        let trie = build_igtree(&instances, &order, &stats, spec.build)?;
        let base = match spec.instance_base {
            true => Some(build_instance_base(&instances, &order, &stats, spec.build)?),
            false => None,
        };
        let n_instances = instances.len() as u64;
        drop(instances);
        let params = Params {
            width,
            n_symbols: n_symbols as u32,
            pad: spec.vocabulary.pad(),
            n_instances,
            weighting: spec.weighting,
            token_ids: matches!(spec.vocabulary, Vocabulary::TokenIds { .. }),
        };
        let order_u32: Vec<u32> = order.iter().map(|&f| f as u32).collect();
        let (symbol_offsets, symbol_bytes) = match &spec.vocabulary {
            Vocabulary::TokenIds { .. } => (Vec::new(), Vec::new()),
            Vocabulary::Symbols(_) => spec.vocabulary.packed(),
        };
        let params_words = params.encode();
        let mut data: Vec<(Section, &[u8])> = vec![
            (Section::Params, bytemuck::cast_slice(&params_words)),
            (Section::InfoGain, bytemuck::cast_slice(&weights.info_gain)),
            (
                Section::GainRatio,
                bytemuck::cast_slice(&weights.gain_ratio),
            ),
            (Section::FeatureOrder, bytemuck::cast_slice(&order_u32)),
            (Section::ClassCounts, bytemuck::cast_slice(&stats.counts)),
            (Section::ClassRank, bytemuck::cast_slice(&stats.rank)),
        ];
        data.extend(trie_sections(&trie, TrieSections::IGTREE));
        if let Some(base) = &base {
            data.extend(instance_base_sections(base));
        }
        if let Some((tokens, block_lengths)) = spec.keep_tokens {
            data.extend(token_sections(tokens, block_lengths));
        }
        data.extend([
            (
                Section::SymbolOffsets,
                bytemuck::cast_slice(&symbol_offsets),
            ),
            (Section::SymbolBytes, &symbol_bytes[..]),
            (Section::Tokenizer, spec.tokenizer),
            (Section::Metadata, spec.metadata.as_bytes()),
        ]);
        let sections: Vec<SectionData> = data
            .iter()
            .map(|&(section, bytes)| SectionData { section, bytes })
            .collect();
        let image = format::encode(Kind::Model, &sections);
        drop((trie, base));
        Model::from_backing(Image::Owned(image), Check::Header).map_err(|reason| Error::BadModel {
            path: PathBuf::from("<built in memory>"),
            reason,
        })
    }

    /// Opens a model file by memory-mapping it. `check` says how much is verified before use:
    /// [`Check::Header`] costs the same for a model of any size (header, section table, the small
    /// sections, array lengths); the tries' pages are read only when a query touches them.
    /// [`Check::Full`] also verifies every checksum and every structural invariant of the tries.
    pub fn load(path: &Path, check: Check) -> Result<Model> {
        Model::from_backing(Image::map(path)?, check).map_err(|reason| Error::BadModel {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Reads a model from an in-memory image (as written by [`Model::save`]), verified in full.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let mut image = AlignedBytes::zeroed(bytes.len());
        image.as_mut_slice().copy_from_slice(bytes);
        Model::from_backing(Image::Owned(image), Check::Full).map_err(|reason| Error::BadModel {
            path: PathBuf::from("<bytes>"),
            reason,
        })
    }

    /// Verifies every checksum and every structural invariant (what `memlm verify` runs).
    pub fn verify(&self) -> Result<()> {
        format::decode(self.as_bytes(), Kind::Model, Check::Full)
            .and_then(|_| self.validate_tries())
            .map_err(|reason| Error::BadModel {
                path: PathBuf::from("<model>"),
                reason,
            })
    }

    /// Every structural invariant of the IGTree and the instance base (what [`Check::Full`] adds to the
    /// checksums).
    fn validate_tries(&self) -> std::result::Result<(), String> {
        if self.params.token_ids {
            read_tokens(
                self.as_bytes(),
                &self.sections,
                self.params.pad,
                Check::Full,
            )?;
        }
        let n = self.params.n_symbols;
        self.trie_checked(TrieSections::IGTREE)?.validate(n)?;
        if self.has_instance_base {
            self.instance_base_checked()?
                .validate(self.params.width, n)?;
        }
        Ok(())
    }

    fn from_backing(backing: Image, check: Check) -> std::result::Result<Model, String> {
        let sections = format::decode(backing.bytes(), Kind::Model, check)?;
        let mut model = Model {
            backing,
            sections,
            params: Params {
                width: 1,
                n_symbols: 1,
                pad: 0,
                n_instances: 0,
                weighting: Weighting::GainRatio,
                token_ids: true,
            },
            order: Vec::new(),
            unmatched_weight: Vec::new(),
            ordered_weights: Vec::new(),
            class_by_rank: Vec::new(),
            has_instance_base: false,
            symbol_index: OnceLock::new(),
        };
        model.params = Params::decode(model.array::<u64>(Section::Params)?)?;
        let (w, n) = (model.params.width, model.params.n_symbols as usize);
        let order: Vec<usize> = model
            .array::<u32>(Section::FeatureOrder)?
            .iter()
            .map(|&f| f as usize)
            .collect();
        let mut seen = vec![false; w];
        if order.len() != w
            || order
                .iter()
                .any(|&f| f >= w || std::mem::replace(&mut seen[f], true))
        {
            return Err("the feature order is not a permutation of the features".into());
        }
        for s in [Section::InfoGain, Section::GainRatio] {
            let weights = model.array::<f64>(s)?;
            if weights.len() != w || weights.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(format!("the {s:?} weights are invalid"));
            }
        }
        if model.array::<u64>(Section::ClassCounts)?.len() != n
            || model.array::<u32>(Section::ClassRank)?.len() != n
        {
            return Err("class statistics do not match the symbol count".into());
        }
        let mut class_by_rank = vec![u32::MAX; n];
        for (class, &rank) in model.array::<u32>(Section::ClassRank)?.iter().enumerate() {
            match class_by_rank.get_mut(rank as usize) {
                Some(slot) if *slot == u32::MAX => *slot = class as u32,
                _ => return Err("the class ranks are not a permutation".into()),
            }
        }
        model.class_by_rank = class_by_rank;
        model
            .trie_checked(TrieSections::IGTREE)?
            .check_lengths(n as u32)?;
        model.has_instance_base = model.sections.get(Section::BaseDistBytes).is_ok();
        if model.has_instance_base {
            model.instance_base_checked()?.check_lengths(n as u32)?;
        }
        if check == Check::Full {
            model.validate_tries()?;
        }
        if model.params.token_ids {
            read_tokens(
                model.backing.bytes(),
                &model.sections,
                model.params.pad,
                check,
            )?;
        } else if model.sections.get(Section::BlockLengths).is_ok() {
            return Err("a symbol-table model cannot hold training tokens".into());
        }
        if !model.params.token_ids {
            model.check_symbols()?;
        }
        std::str::from_utf8(model.section_bytes(Section::Metadata)?)
            .map_err(|_| "the metadata is not UTF-8".to_string())?;
        let weights = model.weights().to_vec();
        model.unmatched_weight = (0..=w)
            .map(|d| order[d..].iter().map(|&f| weights[f]).sum())
            .collect();
        model.ordered_weights = order.iter().map(|&f| weights[f]).collect();
        model.order = order;
        Ok(model)
    }

    fn section_bytes(&self, s: Section) -> std::result::Result<&[u8], String> {
        Ok(&self.backing.bytes()[self.sections.get(s)?])
    }

    fn array<T: bytemuck::Pod>(&self, s: Section) -> std::result::Result<&[T], String> {
        bytemuck::try_cast_slice(self.section_bytes(s)?)
            .map_err(|e| format!("the {s:?} section cannot be read: {e}"))
    }

    fn offsets_checked(
        &self,
        s: [Section; 3],
        items: usize,
    ) -> std::result::Result<OffsetsView<'_>, String> {
        Ok(OffsetsView {
            records: self.array(s[0])?,
            items,
            exception_items: self.array(s[1])?,
            exception_lens: self.array(s[2])?,
        })
    }

    fn labels_checked(&self, s16: Section, s32: Section) -> std::result::Result<Ids<'_>, String> {
        match (self.array(s16), self.array(s32)) {
            (Ok(v), Err(_)) => Ok(Ids::U16(v)),
            (Err(_), Ok(v)) => Ok(Ids::U32(v)),
            _ => Err(format!(
                "the model must hold exactly one of {s16:?} and {s32:?}"
            )),
        }
    }

    fn trie_checked(&self, s: TrieSections) -> std::result::Result<TrieView<'_>, String> {
        let labels = self.labels_checked(s.labels16, s.labels32)?;
        Ok(TrieView {
            labels,
            children: self.offsets_checked(s.children, labels.len())?,
            dist_offsets: self.offsets_checked(s.dist_offsets, labels.len())?,
            dist_bytes: self.section_bytes(s.dist_bytes)?,
            classes: &self.class_by_rank,
            total_nodes: self.array(s.totals[0])?,
            total_counts: self.array(s.totals[1])?,
        })
    }

    fn instance_base_checked(&self) -> std::result::Result<InstanceBaseView<'_>, String> {
        let trie = self.trie_checked(TrieSections::BASE)?;
        Ok(InstanceBaseView {
            trie,
            tail_offsets: self.offsets_checked(TAIL_OFFSETS, trie.node_count())?,
            tail_values: self.labels_checked(Section::TailValues16, Section::TailValues32)?,
        })
    }

    fn check_symbols(&self) -> std::result::Result<(), String> {
        let offsets: &[u32] = self.array(Section::SymbolOffsets)?;
        let bytes = self.section_bytes(Section::SymbolBytes)?;
        if offsets.len() != self.params.n_symbols as usize + 1
            || offsets[0] != 0
            || offsets.windows(2).any(|w| w[1] < w[0])
            || *offsets.last().expect("non-empty") as usize != bytes.len()
        {
            return Err("the symbol table is inconsistent".into());
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| "the symbol table is not UTF-8".to_string())?;
        for w in offsets.windows(2) {
            if !text.is_char_boundary(w[0] as usize) {
                return Err("the symbol table splits a character".into());
            }
        }
        Ok(())
    }

    /// The IGTree.
    pub fn trie(&self) -> TrieView<'_> {
        self.trie_checked(TrieSections::IGTREE)
            .expect("validated when the model was opened")
    }

    /// The unpruned instance base, when the model stores one.
    pub fn instance_base(&self) -> Option<InstanceBaseView<'_>> {
        self.has_instance_base.then(|| {
            self.instance_base_checked()
                .expect("validated when the model was opened")
        })
    }

    /// The training text's token ids and block lengths, when the model was trained to keep them.
    pub fn training_tokens(&self) -> Option<(Ids<'_>, &[u64])> {
        if !self.params.token_ids {
            return None;
        }
        read_tokens(
            self.as_bytes(),
            &self.sections,
            self.params.pad,
            Check::Header,
        )
        .expect("checked when the model was opened")
    }

    /// Tie-break rank of every class.
    pub fn class_rank(&self) -> &[u32] {
        self.array(Section::ClassRank).expect("validated")
    }

    /// Scalar parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Context width W.
    pub fn width(&self) -> usize {
        self.params.width
    }

    /// Features in weight order.
    pub fn feature_order(&self) -> &[usize] {
        &self.order
    }

    /// The weights of the model's weighting, per feature.
    pub fn weights(&self) -> &[f64] {
        match self.params.weighting {
            Weighting::GainRatio => self.array(Section::GainRatio),
            Weighting::InfoGain => self.array(Section::InfoGain),
        }
        .expect("validated")
    }

    /// Both kinds of weights.
    pub fn feature_weights(&self) -> FeatureWeights {
        FeatureWeights {
            info_gain: self.array(Section::InfoGain).expect("validated").to_vec(),
            gain_ratio: self.array(Section::GainRatio).expect("validated").to_vec(),
        }
    }

    /// Training frequency of every class.
    pub fn class_counts(&self) -> &[u64] {
        self.array(Section::ClassCounts).expect("validated")
    }

    /// The opaque tokenizer blob (empty when the model has none).
    pub fn tokenizer_blob(&self) -> &[u8] {
        self.section_bytes(Section::Tokenizer).expect("validated")
    }

    /// The opaque metadata JSON.
    pub fn metadata(&self) -> &str {
        std::str::from_utf8(self.section_bytes(Section::Metadata).expect("validated"))
            .expect("validated")
    }

    /// Bytes of the model image per part: the IGTree's labels, children, distribution offsets and
    /// distributions, symbols, tokenizer, the instance base, and the rest (header, weights, class statistics, metadata).
    pub fn size_breakdown(&self) -> Vec<(&'static str, usize)> {
        use Section::*;
        let groups: [(&'static str, &[Section]); 8] = [
            ("labels", &[Labels16, Labels32]),
            (
                "children",
                &[ChildRecords, ChildExceptionItems, ChildExceptionLens],
            ),
            (
                "distribution offsets",
                &[
                    DistRecords,
                    DistExceptionItems,
                    DistExceptionLens,
                    TotalNodes,
                    TotalCounts,
                ],
            ),
            ("distributions", &[DistBytes]),
            ("symbols", &[SymbolOffsets, SymbolBytes]),
            ("training tokens", &[Tokens16, Tokens32, BlockLengths]),
            ("tokenizer", &[Tokenizer]),
            (
                "instance base",
                &[
                    BaseLabels16,
                    BaseLabels32,
                    BaseChildRecords,
                    BaseChildExceptionItems,
                    BaseChildExceptionLens,
                    BaseDistRecords,
                    BaseDistExceptionItems,
                    BaseDistExceptionLens,
                    BaseDistBytes,
                    BaseTotalNodes,
                    BaseTotalCounts,
                    TailRecords,
                    TailExceptionItems,
                    TailExceptionLens,
                    TailValues16,
                    TailValues32,
                ],
            ),
        ];
        let size = |s: Section| self.sections.get(s).map(|r| r.len()).unwrap_or(0);
        let mut parts: Vec<(&'static str, usize)> = groups
            .iter()
            .map(|(name, sections)| (*name, sections.iter().map(|&s| size(s)).sum()))
            .collect();
        let listed: usize = parts.iter().map(|p| p.1).sum();
        parts.push(("other", self.as_bytes().len() - listed));
        parts
    }

    /// The whole model image, as [`Model::save`] writes it.
    pub fn as_bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// Writes the model file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_atomic(path, self.as_bytes())
    }

    /// The string of symbol `id` (a decimal token id, or `_` for padding, in token-id models).
    pub fn symbol(&self, id: u32) -> std::borrow::Cow<'_, str> {
        if id == self.params.pad {
            return PAD_SYMBOL.into();
        }
        if self.params.token_ids {
            return id.to_string().into();
        }
        let offsets: &[u32] = self.array(Section::SymbolOffsets).expect("validated");
        let bytes = self.section_bytes(Section::SymbolBytes).expect("validated");
        let range = offsets[id as usize] as usize..offsets[id as usize + 1] as usize;
        std::str::from_utf8(&bytes[range])
            .expect("validated")
            .into()
    }

    /// [`Model::symbol`], or None when the model has no symbol `id`.
    pub fn symbol_checked(&self, id: u32) -> Option<std::borrow::Cow<'_, str>> {
        (id < self.params.n_symbols).then(|| self.symbol(id))
    }

    /// The id of a symbol string, or [`UNKNOWN`]: `_` is padding; token-id models read decimal ids.
    pub fn symbol_id(&self, symbol: &str) -> u32 {
        if symbol == PAD_SYMBOL {
            return self.params.pad;
        }
        if self.params.token_ids {
            return match symbol.parse::<u32>() {
                Ok(id) if id < self.params.pad => id,
                _ => UNKNOWN,
            };
        }
        let index = self.symbol_index.get_or_init(|| {
            (0..self.params.n_symbols)
                .map(|id| (self.symbol(id).into_owned(), id))
                .collect()
        });
        index.get(symbol).copied().unwrap_or(UNKNOWN)
    }

    /// The context of a target after `prefix` (ids of any length): its last W ids, left-padded
    /// with the padding id when shorter (a block start), as in training.
    #[inline]
    pub fn context(&self, prefix: &[u32]) -> Context {
        Context::new(prefix, self.params.width, self.params.pad)
    }

    /// Checks that every id is one of the model's or [`UNKNOWN`].
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids
            .iter()
            .find(|&&s| s >= self.params.n_symbols && s != UNKNOWN)
        {
            Some(bad) => Err(Error::InvalidInput(format!(
                "symbol id {bad} is outside the model's vocabulary of {} ids",
                self.params.n_symbols
            ))),
            None => Ok(()),
        }
    }

    /// Checks that `context` has the model's width and only known ids or [`UNKNOWN`].
    pub fn check_context(&self, context: &[u32]) -> Result<()> {
        if context.len() != self.params.width {
            return Err(Error::InvalidInput(format!(
                "a context must hold exactly {} symbols (the model's width), got {}",
                self.params.width,
                context.len()
            )));
        }
        self.check_ids(context)
    }

    /// Checks that a batch of contexts with `columns` ids per row fits the model's width.
    pub fn check_columns(&self, columns: usize) -> Result<()> {
        if columns != self.params.width {
            return Err(Error::InvalidInput(format!(
                "contexts have {columns} columns but the model's width is {}",
                self.params.width
            )));
        }
        Ok(())
    }

    /// Checks a row-major batch of contexts (W ids each).
    pub(crate) fn check_batch(&self, contexts: &[u32]) -> Result<()> {
        let w = self.params.width;
        if contexts.len() % w != 0 {
            return Err(Error::InvalidInput(format!(
                "a batch of contexts must have {w} columns (the model's width)"
            )));
        }
        contexts
            .par_chunks(w * 256)
            .try_for_each(|chunk| self.check_ids(chunk))
    }

    /// The contexts (row-major, W ids each) and targets of every token of every block of `tokens`
    /// (blocks of the given lengths, each left-padded): the instances training makes of that text.
    pub fn windows(&self, tokens: &[u32], block_lengths: &[u64]) -> Result<(Vec<u32>, Vec<u32>)> {
        self.check_ids(tokens)?;
        crate::instances::windows(tokens, block_lengths, self.params.width, self.params.pad)
    }

    /// Descends the IGTree along `context` (features in column order, farthest first).
    pub fn igtree_match(&self, context: &[u32]) -> Result<Match> {
        self.check_context(context)?;
        Ok(self.descend(&self.trie(), context))
    }

    #[inline]
    pub(crate) fn descend(&self, trie: &TrieView, context: &[u32]) -> Match {
        let (nodes, len) = self.path(trie, context);
        Match {
            node: nodes[len - 1],
            depth: len as u32 - 1,
        }
    }

    /// The IGTree nodes on the descent path of `context`, root first (at most W + 1 of them).
    fn path(
        &self,
        trie: &TrieView,
        context: &[u32],
    ) -> ([u32; crate::instances::MAX_WIDTH + 1], usize) {
        let mut nodes = [ROOT; crate::instances::MAX_WIDTH + 1];
        let mut len = 1;
        for &f in &self.order {
            match trie.child(nodes[len - 1], context[f]) {
                Some(child) => {
                    nodes[len] = child;
                    len += 1;
                }
                None => break,
            }
        }
        (nodes, len)
    }

    /// Number of symbols a scoring distribution spreads over (all but padding).
    fn vocabulary(&self) -> usize {
        self.params.n_symbols as usize - 1
    }

    /// The score of one context and target, without checks.
    #[inline]
    fn score_unchecked(&self, trie: &TrieView, context: &[u32], target: u32) -> Score {
        let (nodes, len) = self.path(trie, context);
        let p = crate::scoring::probability(trie, &nodes[..len], target, self.vocabulary());
        let oov = self
            .class_counts()
            .get(target as usize)
            .is_none_or(|&count| count == 0);
        Score {
            log10: p.log10(),
            depth: len as u32 - 1,
            oov,
        }
    }

    /// The score of `target` after `context` under the scoring distribution ([`crate::scoring`]).
    /// Defined for every target: one never seen as a class, [`UNKNOWN`] or any id outside the
    /// model gets the probability of an unseen class and is flagged out of vocabulary.
    pub fn score(&self, context: &[u32], target: u32) -> Result<Score> {
        self.check_context(context)?;
        Ok(self.score_unchecked(&self.trie(), context, target))
    }

    /// [`Model::score`] for a row-major batch of contexts and their targets, on all cores.
    pub fn score_batch(&self, contexts: &[u32], targets: &[u32]) -> Result<Scores> {
        self.check_batch(contexts)?;
        let w = self.params.width;
        if contexts.len() / w != targets.len() {
            return Err(Error::InvalidInput(format!(
                "{} contexts but {} targets",
                contexts.len() / w,
                targets.len()
            )));
        }
        let trie = self.trie();
        let scores: Vec<Score> = contexts
            .par_chunks(w)
            .zip(targets.par_iter())
            .with_min_len(256)
            .map(|(c, &t)| self.score_unchecked(&trie, c, t))
            .collect();
        Ok(Scores {
            log10: scores.iter().map(|s| s.log10).collect(),
            depths: scores.iter().map(|s| s.depth).collect(),
            oov: scores.iter().map(|s| s.oov).collect(),
        })
    }

    /// The whole scoring distribution after `context`: a probability per symbol id, summing to 1.
    pub fn probabilities(&self, context: &[u32]) -> Result<Vec<f64>> {
        self.check_context(context)?;
        let trie = self.trie();
        let (nodes, len) = self.path(&trie, context);
        Ok(crate::scoring::distribution(
            &trie,
            &nodes[..len],
            self.params.n_symbols as usize,
            self.params.pad,
        ))
    }

    /// Feature weights in weight order.
    pub(crate) fn ordered_weights(&self) -> &[f64] {
        &self.ordered_weights
    }

    /// IGTree distance of a match at `depth`: the summed weight of the features left unmatched.
    pub fn distance(&self, depth: u32) -> f64 {
        self.unmatched_weight[depth as usize]
    }
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

/// The sections of the instance base: its trie and the tails.
fn instance_base_sections(base: &InstanceBase) -> Vec<(Section, &[u8])> {
    let mut out = trie_sections(&base.trie, TrieSections::BASE);
    out.extend(offset_sections(&base.tail_offsets, TAIL_OFFSETS));
    out.push(match &base.tail_values {
        IdVec::U16(v) => (Section::TailValues16, bytemuck::cast_slice(&v[..])),
        IdVec::U32(v) => (Section::TailValues32, bytemuck::cast_slice(&v[..])),
    });
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
