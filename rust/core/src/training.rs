//! Training: the options a user chooses (checked before any corpus is read) and the pipeline from
//! instances to a model: class statistics and tie-break ranks ([`crate::classes`]) → feature
//! weights and order ([`crate::weights`]) → the IGTree and, when asked, the instance base
//! ([`crate::build`]) → the model file ([`crate::model_file`]). Instances come from token blocks
//! ([`train_tokens`]) or a TiMBL column file ([`train_instance_file`]).
//!
//! A cluster build splits the pipeline: workers count the classes of their shards and compute the
//! feature weights' terms over ranges of values ([`crate::classes::ClassCounts`],
//! [`crate::weights::GainTerms`]), which [`Reduction`] adds up in corpus and value order (the
//! statistics one process computes, bit for bit), then build and spill the tries' partitions
//! ([`crate::build::spill_partition`]); the process that assembles the model passes both to
//! [`train_tokens`], which then builds no statistics and no partition itself.

use std::path::{Path, PathBuf};

use crate::build::{
    build_igtree, build_instance_base, plan_partitions, BuildOptions, Progress, Ticker, TrieKind,
};
use crate::cache::{fit_weights, CacheWeights, DocumentCache, CACHE_ORDERS};
use crate::classes::{ClassCounts, ClassStats};
use crate::columns;
use crate::error::{Error, Result};
use crate::ids::IdVec;
use crate::ids::Ids;
use crate::instances::{check_width, Instances, TokenWindows};
use crate::kneser_ney::KneserNey;
use crate::model::Model;
use crate::model_file::{Contents, ModelFile, Params};
use crate::provenance;
use crate::query::Algorithm;
use crate::vocabulary::Vocabulary;
use crate::weights::{feature_order, FeatureWeights, GainTerms, Weighting};

/// Everything a build takes besides the instances.
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
    /// The Kneser-Ney scoring statistics of a token model (None: the model scores with
    /// Witten-Bell).
    pub kneser_ney: Option<KneserNeyFrom<'a>>,
    /// The origins of the blocks (opaque bytes) when the model is to have a provenance index over
    /// the Kneser-Ney text (None: no index).
    pub provenance: Option<&'a [u8]>,
    /// What a cluster build's workers computed: the statistics, reduced, and the spilled
    /// partitions of each trie, assembled here (None: everything is computed here).
    pub reduced: Option<(&'a Reduction, Spilled<'a>)>,
}

/// Where a token model's Kneser-Ney statistics come from.
pub enum KneserNeyFrom<'a> {
    /// The token blocks (ids below the padding id, and block lengths), computed from once the tries
    /// are built and the instances dropped, so that the two never hold memory at once.
    Text(Ids<'a>, &'a [u64]),
    /// Computed already ([`kneser_ney_statistics`]: a cluster build computes them while its workers
    /// build the tries), checked to be those of these token blocks.
    Computed(Box<KneserNey>, Ids<'a>, &'a [u64]),
}

/// The statistics of a cluster build, reduced from what its workers computed: class counts per
/// shard (in corpus order) and feature-weight terms per task (a range of values and some features,
/// in value order).
#[derive(Clone, Debug)]
pub struct Reduction {
    /// The classes of the whole corpus.
    pub class_counts: ClassCounts,
    /// Both weights of every feature.
    pub weights: FeatureWeights,
    /// Per feature, the values that occur and how many instances hold each (ascending).
    histograms: Vec<(Vec<u32>, Vec<u64>)>,
}

impl Reduction {
    /// Reduces the class counts of consecutive shards and the weights' terms of `tasks`, each over
    /// a range of values, in value order (see [`ClassCounts::concatenated`],
    /// [`FeatureWeights::from_terms`]).
    pub fn new(shards: Vec<ClassCounts>, tasks: &[GainTerms]) -> Result<Reduction> {
        let class_counts = ClassCounts::concatenated(shards)?;
        let weights =
            FeatureWeights::from_terms(tasks, &ClassStats::from_counts(class_counts.clone()))?;
        let histograms = (0..weights.info_gain.len())
            .map(|f| {
                let terms = tasks.iter().map(|t| &t.features[f]);
                let values = terms
                    .clone()
                    .flat_map(|t| t.values.iter().copied())
                    .collect();
                (
                    values,
                    terms.flat_map(|t| t.counts.iter().copied()).collect(),
                )
            })
            .collect();
        Ok(Reduction {
            class_counts,
            weights,
            histograms,
        })
    }

    /// The class statistics.
    pub fn stats(&self) -> ClassStats {
        ClassStats::from_counts(self.class_counts.clone())
    }

    /// The feature order under `weighting`.
    pub fn order(&self, weighting: Weighting) -> Vec<usize> {
        feature_order(self.weights.get(weighting))
    }

    /// The partitions of the trie of `kind` under `weighting`, each holding at most `capacity`
    /// instances (see [`plan_partitions`]).
    pub fn partitions(
        &self,
        kind: TrieKind,
        weighting: Weighting,
        capacity: u64,
    ) -> Vec<std::ops::Range<u32>> {
        let order = self.order(weighting);
        plan_partitions(kind, &order, &self.stats(), capacity, |f| {
            let mut histogram = vec![0u64; self.class_counts.counts.len()];
            let (values, counts) = &self.histograms[f];
            for (&v, &c) in values.iter().zip(counts) {
                histogram[v as usize] = c;
            }
            histogram
        })
    }
}

/// The files a cluster build's workers spilled the partitions of each trie to, in the order of
/// their value ranges.
#[derive(Clone, Copy, Default)]
pub struct Spilled<'a> {
    pub igtree: &'a [PathBuf],
    /// Empty when the model has no instance base.
    pub instance_base: &'a [PathBuf],
}

impl Model {
    /// Trains a model on `instances`, which are dropped as soon as the tries are built. The
    /// progress callback of `spec.build` hears every phase (feature weights, the IGTree, the
    /// instance base) and may stop the build: its error is returned, and nothing is kept.
    pub fn train<'a, I: Instances>(instances: I, spec: TrainSpec<'a>) -> Result<Model> {
        if instances.is_empty() {
            return Err(Error::InvalidInput(
                "no training instances: the corpus is empty".into(),
            ));
        }
        let width = instances.width();
        check_width(width)?;
        let n_symbols = spec.vocabulary.symbol_count();
        let (stats, weights, spilled) = match spec.reduced {
            None => {
                let mut ticker = Ticker::start(
                    spec.build.progress,
                    "computing feature weights",
                    width as u64,
                )?;
                let stats = ClassStats::new(&instances, n_symbols);
                let weights =
                    FeatureWeights::compute(&instances, &stats, |done| ticker.set(done as u64))?;
                ticker.finish()?;
                (stats, weights, None)
            }
            Some((reduced, spilled)) => {
                let counts = &reduced.class_counts;
                if counts.counts.len() != n_symbols
                    || counts.total() != instances.len() as u64
                    || reduced.weights.info_gain.len() != width
                {
                    return Err(Error::InvalidInput(format!(
                        "the reduced statistics are of {} instances over {} symbols at width {}, \
                         not of these {} instances over {n_symbols} symbols at width {width}",
                        counts.total(),
                        counts.counts.len(),
                        reduced.weights.info_gain.len(),
                        instances.len()
                    )));
                }
                (reduced.stats(), reduced.weights.clone(), Some(spilled))
            }
        };
        let order = feature_order(weights.get(spec.weighting));
        let options = |spilled: Option<&'a [PathBuf]>| BuildOptions {
            spilled,
            ..spec.build
        };
        let igtree = build_igtree(
            &instances,
            &order,
            &stats,
            options(spilled.map(|s| s.igtree)),
        )?;
        let base = match spec.instance_base {
            true => Some(build_instance_base(
                &instances,
                &order,
                &stats,
                options(spilled.map(|s| s.instance_base)),
            )?),
            false => None,
        };
        let n_instances = instances.len() as u64;
        drop(instances);
        let pad = spec.vocabulary.pad();
        let kneser_ney = match spec.kneser_ney {
            Some(KneserNeyFrom::Text(tokens, block_lengths)) => Some(kneser_ney_statistics(
                tokens,
                block_lengths,
                width,
                pad,
                spec.build.progress,
            )?),
            Some(KneserNeyFrom::Computed(kn, tokens, block_lengths)) => {
                if !kn.is_of(tokens, block_lengths, width, pad) {
                    return Err(Error::InvalidInput(
                        "the Kneser-Ney statistics given are not those of this text at this width"
                            .into(),
                    ));
                }
                Some(*kn)
            }
            None => None,
        };
        let positions = match (spec.provenance, &kneser_ney) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::InvalidInput(
                    "a provenance index needs a model of token ids".into(),
                ))
            }
            (Some(_), Some(kn)) => {
                let ticker = Ticker::start(spec.build.progress, "indexing provenance", 1)?;
                let pad = spec.vocabulary.pad();
                let positions = provenance::build(kn.text.view(), width, &order, pad)?;
                ticker.finish()?;
                Some(positions)
            }
        };
        let params = Params {
            width,
            n_symbols: n_symbols as u32,
            pad: spec.vocabulary.pad(),
            n_instances,
            weighting: spec.weighting,
            token_ids: matches!(spec.vocabulary, Vocabulary::TokenIds { .. }),
        };
        let file = ModelFile::write(Contents {
            params,
            weights: &weights,
            order: &order,
            stats: &stats,
            igtree: &igtree,
            instance_base: base.as_ref(),
            tokens: spec.keep_tokens,
            kneser_ney,
            provenance: positions.as_ref().zip(spec.provenance),
            vocabulary: &spec.vocabulary,
            tokenizer: spec.tokenizer,
            metadata: spec.metadata,
        })?;
        Ok(Model::new(file))
    }
}

/// Everything a build takes besides the text, checked when made.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Context width W (token models; an instance file's width is its column count minus one).
    pub width: usize,
    /// The weighting that orders the features.
    pub weighting: Weighting,
    /// Whether the unpruned instance base (TRIBL2, IB1) is stored too.
    pub instance_base: bool,
    /// Folder for the partitions a memory-capped build spills (None: the system's).
    pub temp_dir: Option<PathBuf>,
    /// Whether the model keeps its training tokens (so that `memlm merge` can add text to it).
    pub keep_tokens: bool,
}

impl TrainOptions {
    /// Options from names and numbers as a user gives them: `width` in 1..=MAX_WIDTH, a weighting
    /// name, the algorithms the model must run (any of `tribl2`, `ib1` stores the instance base;
    /// IGTree is always built), a writable `temp_dir`.
    pub fn new<S: AsRef<str>>(
        width: i64,
        weighting: &str,
        algorithms: &[S],
        temp_dir: Option<PathBuf>,
        keep_tokens: bool,
    ) -> Result<TrainOptions> {
        let width = check_width(width)?;
        let weighting: Weighting = weighting.parse()?;
        let mut instance_base = false;
        for name in algorithms {
            let algorithm: Algorithm = name.as_ref().parse()?;
            instance_base |= algorithm.needs_instance_base();
        }
        if let Some(dir) = &temp_dir {
            check_writable_folder(dir)?;
        }
        Ok(TrainOptions {
            width,
            weighting,
            instance_base,
            temp_dir,
            keep_tokens,
        })
    }
}

impl Default for TrainOptions {
    /// W = 16, gain ratio, IGTree only.
    fn default() -> Self {
        TrainOptions {
            width: 16,
            weighting: Weighting::GainRatio,
            instance_base: false,
            temp_dir: None,
            keep_tokens: false,
        }
    }
}

/// An error unless `dir` is a folder a file can be created in: [`Error::Io`] naming `dir`, of the
/// kind the OS gives (a missing folder [`std::io::ErrorKind::NotFound`], a folder that refuses
/// new files [`std::io::ErrorKind::PermissionDenied`] or read-only ...; the binding raises the
/// OSError subclass of the errno), and [`std::io::ErrorKind::NotADirectory`] ("Not a directory",
/// ENOTDIR) for a path that is not a folder.
fn check_writable_folder(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        let not_a_folder =
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        return Err(Error::io(dir, not_a_folder));
    }
    tempfile::tempfile_in(dir)
        .map(drop)
        .map_err(|e| Error::io(dir, e))
}

/// A partition memory as a user gives it: a positive number of bytes (values beyond `i64` arrive
/// saturated, and mean one partition).
pub fn check_partition_memory(bytes: i64) -> Result<u64> {
    match u64::try_from(bytes) {
        Ok(b) if b > 0 => Ok(b),
        _ => Err(Error::InvalidInput(format!(
            "partition_memory must be a positive number of bytes, got {bytes}"
        ))),
    }
}

/// Trains on blocks of token ids (`tokens`, split by `block_lengths`) below `vocab_size`, the padding
/// id. `partition_memory` caps the trie build's working memory (partitions spilled to the options'
/// `temp_dir`; None builds in one piece); `progress(phase, done, total)` hears how far it got and
/// may stop the build (see [`Progress`]). `origins`: the blocks' origins (opaque bytes), to give the
/// model a provenance index ([`crate::provenance`]); None for none. `reduced`: a cluster build's
/// statistics and spilled partitions, assembled instead of built (see [`TrainSpec::reduced`]).
/// `kneser_ney`: the text's Kneser-Ney statistics when computed already (checked to be this
/// text's; None: computed here, after the tries).
#[allow(clippy::too_many_arguments)]
pub fn train_tokens(
    tokens: IdVec,
    block_lengths: &[u64],
    vocab_size: u32,
    tokenizer: &[u8],
    metadata: &str,
    options: &TrainOptions,
    partition_memory: Option<u64>,
    progress: Option<Progress>,
    origins: Option<&[u8]>,
    reduced: Option<(&Reduction, Spilled)>,
    kneser_ney: Option<KneserNey>,
) -> Result<Model> {
    if partition_memory == Some(0) {
        check_partition_memory(0)?;
    }
    // A copy of the token ids for the Kneser-Ney statistics, computed after the tries or checked
    // against them (and stored when the model keeps its tokens): 2 or 4 bytes per token.
    let copy = tokens.clone();
    let windows = TokenWindows::new(tokens, block_lengths, options.width, vocab_size)?;
    let spec = TrainSpec {
        vocabulary: Vocabulary::TokenIds { size: vocab_size },
        weighting: options.weighting,
        tokenizer,
        metadata,
        instance_base: options.instance_base,
        build: BuildOptions {
            partition_memory,
            temp_dir: options.temp_dir.as_deref(),
            progress,
            spilled: None,
        },
        keep_tokens: options.keep_tokens.then_some((&copy, block_lengths)),
        kneser_ney: Some(match kneser_ney {
            None => KneserNeyFrom::Text(copy.view(), block_lengths),
            Some(kn) => KneserNeyFrom::Computed(Box::new(kn), copy.view(), block_lengths),
        }),
        provenance: origins,
        reduced,
    };
    Model::train(windows, spec)
}

/// The Kneser-Ney statistics of the token blocks at `width` (an error unless the ids lie below the
/// padding id `pad` and the block lengths add up to them), with the document cache's weights;
/// `progress` as for [`train_tokens`].
pub fn kneser_ney_statistics(
    tokens: Ids,
    block_lengths: &[u64],
    width: usize,
    pad: u32,
    progress: Option<Progress>,
) -> Result<KneserNey> {
    crate::shard::check_tokens((tokens, block_lengths), pad).map_err(Error::InvalidInput)?;
    let mut ticker = Ticker::start(
        progress,
        "computing Kneser-Ney statistics",
        width as u64 + 1,
    )?;
    let mut kn = KneserNey::build(tokens, block_lengths, width, pad, |level| {
        ticker.set(level as u64 + 1)
    })?;
    kn.cache = fit_cache(tokens, block_lengths, width, pad)?;
    ticker.finish()?;
    Ok(kn)
}

/// The held-out share of the training text the document cache's weights are fitted on (its last
/// blocks), at most this many tokens, and at least this many on both sides of the split.
const HELD_OUT_SHARE: f64 = 0.05;
const HELD_OUT_MAX: usize = 50_000;
const HELD_OUT_MIN: usize = 2_000;
/// The model that scores the held-out blocks: Kneser-Ney over at most this many tokens before them,
/// at a width of at most 2 (a small model, so that the fit costs little training time; the weights
/// barely depend on the model's width, docs/design/kneser-ney.md §3).
const FIT_TOKENS_MAX: usize = 300_000;
const FIT_WIDTH_MAX: usize = 2;

/// The document cache's weights ([`crate::cache`]) fitted on the last blocks of the training text,
/// scored by a Kneser-Ney model of the text before them (None when the text is too short to split).
fn fit_cache(
    tokens: Ids,
    block_lengths: &[u64],
    width: usize,
    pad: u32,
) -> Result<Option<CacheWeights>> {
    let n = tokens.len();
    let want = ((n as f64 * HELD_OUT_SHARE) as usize).min(HELD_OUT_MAX);
    let (mut held_blocks, mut held) = (block_lengths.len(), 0usize);
    while held_blocks > 0 && held < want {
        held_blocks -= 1;
        held += block_lengths[held_blocks] as usize;
    }
    if held < HELD_OUT_MIN || n - held < HELD_OUT_MIN {
        return Ok(None);
    }
    let (mut first, mut used) = (held_blocks, 0usize);
    while first > 0 && used < FIT_TOKENS_MAX {
        first -= 1;
        used += block_lengths[first] as usize;
    }
    let split = n - held;
    let fit_width = width.min(FIT_WIDTH_MAX);
    let slice =
        |range: std::ops::Range<usize>| -> Vec<u32> { range.map(|i| tokens.get(i)).collect() };
    let model = KneserNey::build(
        Ids::U32(&slice(split - used..split)),
        &block_lengths[first..held_blocks],
        fit_width,
        pad,
        |_| Ok(()),
    )?;
    let view = model.view(pad);
    // The cache sees as far as it will when scoring (at most CACHE_ORDERS - 1 tokens), the model
    // its own width: the nearest tokens of each window.
    let cache_width = width.min(CACHE_ORDERS - 1).max(fit_width);
    let (contexts, targets) = crate::instances::windows(
        &slice(split..n),
        &block_lengths[held_blocks..],
        cache_width,
        pad,
    )?;
    let mut cache = DocumentCache::new(pad as usize + 1, targets.len());
    let mut base = Vec::with_capacity(held);
    let internal =
        |c: crate::trie::Corrupt| Error::InvalidInput(format!("internal error: {}", c.0));
    for (context, &target) in contexts.chunks_exact(cache_width).zip(&targets) {
        let path = view
            .descend(&context[cache_width - fit_width..])
            .map_err(internal)?;
        base.push(view.probability(&path, target).map_err(internal)?);
    }
    let views: Vec<_> = cache
        .observe_all(&contexts, cache_width, &targets, pad)
        .collect();
    Ok(Some(fit_weights(&base, &views)))
}

/// Trains on a TiMBL column-format instance file; the model keeps the file's symbol table and its
/// width is the file's (the options' width is not used). `progress` hears how far reading the file
/// and the build got, and may stop them (see [`Progress`]).
pub fn train_instance_file(
    path: &Path,
    metadata: &str,
    options: &TrainOptions,
    progress: Option<Progress>,
) -> Result<Model> {
    let file = columns::read_training_file(path, progress)?;
    let spec = TrainSpec {
        vocabulary: Vocabulary::Symbols(file.symbols),
        weighting: options.weighting,
        tokenizer: &[],
        metadata,
        instance_base: options.instance_base,
        build: BuildOptions {
            partition_memory: None,
            temp_dir: options.temp_dir.as_deref(),
            progress,
            spilled: None,
        },
        keep_tokens: None,
        kneser_ney: None,
        provenance: None,
        reduced: None,
    };
    Model::train(file.table, spec)
}

/// A small token model for the unit tests of the query path: 2,000 tokens below 30 in blocks.
#[cfg(test)]
pub(crate) fn test_model(width: usize, instance_base: bool) -> Model {
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let tokens: Vec<u32> = (0..2000).map(|_| (next() % 30).min(next() % 30)).collect();
    let options = TrainOptions {
        width,
        instance_base,
        ..TrainOptions::default()
    };
    train_tokens(
        IdVec::U32(tokens),
        &[500, 700, 800],
        30,
        b"",
        "{}",
        &options,
        None,
        None,
        None,
        None,
        None,
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_any_corpus() {
        let ok = TrainOptions::new(4, "info_gain", &["igtree", "ib1"], None, true).unwrap();
        assert_eq!(
            (ok.width, ok.weighting, ok.instance_base, ok.keep_tokens),
            (4, Weighting::InfoGain, true, true)
        );
        let igtree = TrainOptions::new(16, "gr", &["igtree"], None, false).unwrap();
        assert!(!igtree.instance_base);
        let none: [&str; 0] = [];
        for (width, weighting, algorithms, message) in [
            (
                0,
                "gain_ratio",
                &["igtree"][..],
                "width must be between 1 and 64, got 0",
            ),
            (65, "gain_ratio", &["igtree"], "got 65"),
            (-3, "gain_ratio", &["igtree"], "got -3"),
            (
                16,
                "foo",
                &["igtree"],
                "unknown weighting \"foo\": use 'gain_ratio' or 'info_gain'",
            ),
            (
                16,
                "gain_ratio",
                &["igtree", "knn"],
                "unknown algorithm \"knn\"",
            ),
        ] {
            let err = TrainOptions::new(width, weighting, algorithms, None, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
        assert!(TrainOptions::new(16, "gain_ratio", &none, None, false).is_ok());
        let dir = tempfile::tempdir().unwrap();
        assert!(TrainOptions::new(16, "gain_ratio", &none, Some(dir.path().into()), false).is_ok());
        let kind_of = |folder: &Path| {
            let Err(Error::Io { path, source }) =
                TrainOptions::new(16, "gain_ratio", &none, Some(folder.into()), false)
            else {
                panic!("not refused with an I/O error: {}", folder.display())
            };
            assert_eq!(path, folder);
            source.kind()
        };
        let missing = dir.path().join("no/such/folder");
        assert_eq!(kind_of(&missing), std::io::ErrorKind::NotFound);
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(kind_of(&file), std::io::ErrorKind::NotADirectory);
        assert_eq!(
            kind_of(&file.join("below")),
            std::io::ErrorKind::NotADirectory
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let closed = dir.path().join("closed");
            std::fs::create_dir(&closed).unwrap();
            std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o555)).unwrap();
            // Root may write anyway: then there is nothing to refuse.
            if std::fs::write(closed.join("probe"), b"").is_err() {
                assert_eq!(kind_of(&closed), std::io::ErrorKind::PermissionDenied);
            }
        }
    }

    #[test]
    fn kneser_ney_statistics_computed_apart_make_the_same_model_and_must_be_the_texts() {
        let tokens: Vec<u32> = (0..3000u32).map(|i| (i * 7 + i / 13) % 29).collect();
        let lengths = [1000, 0, 1500, 500];
        let train = |kneser_ney| {
            let options = TrainOptions {
                width: 3,
                ..TrainOptions::default()
            };
            let ids = IdVec::U32(tokens.clone());
            train_tokens(
                ids, &lengths, 30, b"", "{}", &options, None, None, None, None, kneser_ney,
            )
        };
        let apart = |width, lengths: &[u64]| {
            kneser_ney_statistics(Ids::U32(&tokens), lengths, width, 30, None).unwrap()
        };
        let whole = train(None).unwrap();
        let assembled = train(Some(apart(3, &lengths))).unwrap();
        assert_eq!(assembled.file().as_bytes(), whole.file().as_bytes());
        for other in [apart(2, &lengths), apart(3, &[1000, 2000])] {
            let err = train(Some(other)).err().unwrap().to_string();
            assert!(err.contains("not those of this text"), "{err}");
        }
        let err = kneser_ney_statistics(Ids::U32(&tokens), &[5], 3, 30, None).unwrap_err();
        assert!(
            err.to_string().contains("block lengths do not add up"),
            "{err}"
        );
    }

    #[test]
    fn an_instance_file_of_padding_only_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.txt");
        let train = |text: &str| {
            std::fs::write(&path, text).unwrap();
            train_instance_file(&path, "{}", &TrainOptions::default(), None)
        };
        let err = train("_ _ _\n_ _ _\n").err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: every field is the padding symbol \"_\": nothing to learn",
                path.display()
            )
        );
        // One other symbol, as a feature or as the class, is enough.
        for text in ["a _ _\n", "_ _ a\n"] {
            assert!(train(text).is_ok(), "{text:?}");
        }
    }
}
