//! A trained model ready for queries: the opened [`ModelFile`] and what every query needs from it
//! (the feature order, the weights in that order, the weight left unmatched at each depth).
//!
//! Queries take contexts of exactly W ids (features in column order, farthest first) made by
//! [`Model::context`] from a prefix of any length, or row-major batches of them; an id is one of
//! the model's symbols or [`UNKNOWN`]. This module holds the IGTree descent and scoring; the
//! classifiers' answers are in [`crate::query`], training in [`crate::training`].

use std::path::Path;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::cache::{CacheWeights, DocumentCache};
use crate::error::{Error, Result};
use crate::format::Check;
use crate::instances::{Context, MAX_WIDTH};
use crate::kneser_ney::{EntryOrder, KnPath, KneserNeyView, DESCENT_GROUP};
use crate::knn::InstanceBaseView;
use crate::model_file::{ModelFile, Params};
use crate::postings::Postings;
use crate::scoring::{Score, Scores};
use crate::trie::{Corrupt, TrieView, ROOT};
use crate::vocabulary::{Symbols, UNKNOWN};

/// Where a query's descent in the IGTree stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// The last matched node.
    pub node: u32,
    /// How many features (in weight order) were matched on the way to it.
    pub depth: u32,
}

/// Windows of a batch scored in the order of their nearest tokens at a time, at most
/// ([`Model::kneser_ney_batch`]; their copy takes about 4W + 44 bytes per window, 27 MiB at W = 16).
const SORTED_PART: usize = 1 << 18;
/// A smaller part is scored in its own order (sorting it would cost more than it saves).
const SORTED_PART_MIN: usize = 4096;

/// Windows per part of [`Model::most_probable_batch`] (a thread's unit of work, with its own order
/// of the large contexts' entries) at most and at least.
const MOST_PROBABLE_PART: (usize, usize) = (4096, 64);

/// A trained memory-based language model, ready for queries.
pub struct Model {
    file: ModelFile,
    /// Features in weight order.
    order: Vec<usize>,
    /// Feature weights in weight order.
    ordered_weights: Vec<f64>,
    /// `unmatched_weight[d]`: summed weight of the features not matched at depth `d`.
    unmatched_weight: Vec<f64>,
    /// Number of classes: symbols that were a target in training (no answer has more).
    class_count: usize,
    /// The Kneser-Ney statistics' ids by probability after the empty context, sorted once, at the
    /// first query that needs them ([`KneserNeyView::root_order`]).
    root_order: OnceLock<Vec<u32>>,
    /// The instance base's posting lists (None: the model has none, or they do not describe its
    /// trie), built at the first k-NN query.
    postings: OnceLock<Option<Postings>>,
}

impl Model {
    /// A model over an opened file.
    pub fn new(file: ModelFile) -> Model {
        let order: Vec<usize> = file.feature_order().iter().map(|&f| f as usize).collect();
        let weights = file.weights();
        let ordered_weights: Vec<f64> = order.iter().map(|&f| weights[f]).collect();
        let unmatched_weight = (0..=order.len())
            .map(|d| ordered_weights[d..].iter().sum())
            .collect();
        let class_count = file.class_counts().iter().filter(|&&c| c > 0).count();
        Model {
            file,
            order,
            ordered_weights,
            unmatched_weight,
            class_count,
            root_order: OnceLock::new(),
            postings: OnceLock::new(),
        }
    }

    /// Opens a model file by memory-mapping it. `check` says how much is verified before use:
    /// [`Check::Header`] costs the same for a model of any size (header, section table, the small
    /// sections, array lengths), and the first query that reads a trie verifies that trie's
    /// checksums (once: see [`crate::model_file`]). [`Check::Full`] verifies every checksum and
    /// every structural invariant of the tries at once.
    ///
    /// The file must not be truncated or rewritten in place while the model is open (the contract
    /// of every memory-mapped file: a read of a truncated page kills the process with SIGBUS);
    /// replacing it by a rename, as memlm's writers do, is safe. [`Model::read`] does not map.
    pub fn load(path: &Path, check: Check) -> Result<Model> {
        Ok(Model::new(ModelFile::load(path, check)?))
    }

    /// Opens a model file by reading it into memory: later changes to the file do not affect the
    /// model. Checked as [`Model::load`] does.
    pub fn read(path: &Path, check: Check) -> Result<Model> {
        Ok(Model::new(ModelFile::read(path, check)?))
    }

    /// Reads a model from an in-memory image (as [`ModelFile::as_bytes`] gives it), verified in full.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Ok(Model::new(ModelFile::from_bytes(bytes)?))
    }

    /// Reads a model from an in-memory image, checked as far as `check` says (as [`Model::load`]
    /// checks a file).
    pub fn from_bytes_with(bytes: &[u8], check: Check) -> Result<Model> {
        Ok(Model::new(ModelFile::from_bytes_with(bytes, check)?))
    }

    /// The model file: parameters, weights, class statistics, metadata, bytes.
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// Scalar parameters.
    pub fn params(&self) -> &Params {
        self.file.params()
    }

    /// Context width W.
    pub fn width(&self) -> usize {
        self.file.params().width
    }

    /// Number of classes: symbols that were a target in training (no answer has more).
    pub fn class_count(&self) -> usize {
        self.class_count
    }

    /// Features in weight order.
    pub fn feature_order(&self) -> &[usize] {
        &self.order
    }

    /// Feature weights in weight order.
    pub(crate) fn ordered_weights(&self) -> &[f64] {
        &self.ordered_weights
    }

    /// The symbols: ids to strings and back.
    pub fn symbols(&self) -> &Symbols<'_> {
        self.file.symbols()
    }

    /// The IGTree as stored (queries read it through [`Model::checked_trie`]).
    #[inline]
    pub fn trie(&self) -> TrieView<'_> {
        self.file.igtree()
    }

    /// The IGTree, its checksums verified at the first call (see [`crate::model_file`]).
    #[inline]
    pub fn checked_trie(&self) -> Result<TrieView<'_>> {
        self.file.checked_igtree()
    }

    /// The unpruned instance base as stored, when the model has one.
    #[inline]
    pub fn instance_base(&self) -> Option<InstanceBaseView<'_>> {
        self.file.instance_base()
    }

    /// Verifies every checksum and every structural invariant (what `memlm verify` runs).
    pub fn verify(&self) -> Result<()> {
        self.file.verify()
    }

    /// The context of a target after `prefix` (ids of any length): its last W ids, left-padded
    /// with the padding id when shorter (a block start), as in training.
    #[inline]
    pub fn context(&self, prefix: &[u32]) -> Context {
        Context::new(prefix, self.width(), self.params().pad)
    }

    /// Checks that every id is one of the model's or [`UNKNOWN`].
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.params().n_symbols;
        match ids.iter().find(|&&s| s >= n && s != UNKNOWN) {
            Some(&bad) => Err(Error::outside_vocabulary(bad, "the model's", n)),
            None => Ok(()),
        }
    }

    /// Checks that `context` has the model's width and only known ids or [`UNKNOWN`].
    pub fn check_context(&self, context: &[u32]) -> Result<()> {
        if context.len() != self.width() {
            return Err(Error::wrong_width(context.len(), self.width()));
        }
        self.check_ids(context)
    }

    /// Checks that a batch of contexts with `columns` ids per row fits the model's width.
    pub fn check_columns(&self, columns: usize) -> Result<()> {
        if columns != self.width() {
            return Err(Error::wrong_width(columns, self.width()));
        }
        Ok(())
    }

    /// Checks a row-major batch of contexts (W ids each).
    pub(crate) fn check_batch(&self, contexts: &[u32]) -> Result<()> {
        let w = self.width();
        if contexts.len() % w != 0 {
            // The batch's last context is short.
            return Err(Error::wrong_width(contexts.len() % w, w));
        }
        contexts
            .par_chunks(w * 256)
            .try_for_each(|chunk| self.check_ids(chunk))
    }

    /// The contexts (row-major, W ids each) and targets of every token of every block of `tokens`
    /// (blocks of the given lengths, each left-padded): the instances training makes of that text.
    pub fn windows(&self, tokens: &[u32], block_lengths: &[u64]) -> Result<(Vec<u32>, Vec<u32>)> {
        self.check_ids(tokens)?;
        crate::instances::windows(tokens, block_lengths, self.width(), self.params().pad)
    }

    /// Descends the IGTree along `context` (tests look at the matched node).
    #[cfg(test)]
    pub(crate) fn igtree_match(&self, context: &[u32]) -> Result<Match> {
        self.check_context(context)?;
        let trie = self.checked_trie()?;
        self.descend(&trie, context).map_err(|c| self.corrupt(c))
    }

    /// [`crate::Error::BadModel`] for a structure a query found broken.
    #[cold]
    pub(crate) fn corrupt(&self, c: Corrupt) -> Error {
        self.file.corrupt(c)
    }

    #[inline]
    pub(crate) fn descend(
        &self,
        trie: &TrieView,
        context: &[u32],
    ) -> std::result::Result<Match, Corrupt> {
        let (nodes, len) = self.path(trie, context)?;
        Ok(Match {
            node: nodes[len - 1],
            depth: len as u32 - 1,
        })
    }

    /// The IGTree nodes on the descent path of `context`, root first (at most W + 1 of them).
    #[inline]
    fn path(
        &self,
        trie: &TrieView,
        context: &[u32],
    ) -> std::result::Result<([u32; MAX_WIDTH + 1], usize), Corrupt> {
        let mut nodes = [ROOT; MAX_WIDTH + 1];
        let mut len = 1;
        for &f in &self.order {
            match trie.try_child(nodes[len - 1], context[f])? {
                Some(child) => {
                    nodes[len] = child;
                    len += 1;
                }
                None => break,
            }
        }
        Ok((nodes, len))
    }

    /// IGTree distance of a match at `depth`: the summed weight of the features left unmatched.
    pub fn distance(&self, depth: u32) -> f64 {
        self.unmatched_weight[depth as usize]
    }

    /// Number of symbols a scoring distribution spreads over (all but padding).
    fn vocabulary(&self) -> usize {
        self.params().n_symbols as usize - 1
    }

    /// Whether the target is out of vocabulary: never a training class (unknown ids included).
    #[inline]
    fn oov(&self, target: u32) -> bool {
        self.file
            .class_counts()
            .get(target as usize)
            .is_none_or(|&count| count == 0)
    }

    /// The Witten-Bell probability along the IGTree path (models without Kneser-Ney statistics)
    /// and the matched depth.
    #[inline]
    fn witten_bell(
        &self,
        trie: &TrieView,
        context: &[u32],
        target: u32,
    ) -> std::result::Result<(f64, u32), Corrupt> {
        let (nodes, len) = self.path(trie, context)?;
        let p = crate::scoring::probability(trie, &nodes[..len], target, self.vocabulary())?;
        Ok((p, len as u32 - 1))
    }

    /// The Kneser-Ney probability of each target and the context length matched, for a group of
    /// windows (at most [`DESCENT_GROUP`]) descended together, then one walk back up each.
    #[inline]
    fn kneser_ney_group(
        &self,
        kn: &KneserNeyView,
        contexts: &[u32],
        targets: &[u32],
        out: &mut [(f64, u32)],
    ) -> std::result::Result<(), Corrupt> {
        let mut paths = [KnPath::EMPTY; DESCENT_GROUP];
        let paths = &mut paths[..targets.len()];
        kn.descend_group(contexts, self.width(), paths)?;
        let mut probabilities = [0.0; DESCENT_GROUP];
        let probabilities = &mut probabilities[..targets.len()];
        kn.probability_group(paths, targets, probabilities)?;
        for ((path, &p), out) in paths.iter().zip(&*probabilities).zip(out) {
            *out = (p, path.depth());
        }
        Ok(())
    }

    /// [`Model::kneser_ney_group`] of a whole batch, on all cores. A large batch is read in parts,
    /// each in the order of its windows' nearest tokens (the results put back in the batch's
    /// order), so that windows which share their nearest contexts follow one another and find them
    /// in the processor's caches: about 40% less time at W=16.
    fn kneser_ney_batch(
        &self,
        kn: &KneserNeyView,
        contexts: &[u32],
        targets: &[u32],
    ) -> std::result::Result<Vec<(f64, u32)>, Corrupt> {
        let w = self.width();
        let mut out = vec![(0.0, 0); targets.len()];
        let parts = contexts
            .chunks(w * SORTED_PART)
            .zip(targets.chunks(SORTED_PART));
        for ((contexts, targets), out) in parts.zip(out.chunks_mut(SORTED_PART)) {
            if targets.len() < SORTED_PART_MIN {
                self.kneser_ney_groups(kn, contexts, targets, out)?;
                continue;
            }
            let order = nearest_tokens_order(contexts, w);
            let mut sorted_contexts = Vec::with_capacity(contexts.len());
            for &i in &order {
                sorted_contexts.extend_from_slice(&contexts[i * w..(i + 1) * w]);
            }
            let sorted_targets: Vec<u32> = order.iter().map(|&i| targets[i]).collect();
            let mut sorted = vec![(0.0, 0); targets.len()];
            self.kneser_ney_groups(kn, &sorted_contexts, &sorted_targets, &mut sorted)?;
            for (&i, result) in order.iter().zip(sorted) {
                out[i] = result;
            }
        }
        Ok(out)
    }

    /// [`Model::kneser_ney_group`] of every group of [`DESCENT_GROUP`] windows, on all cores.
    fn kneser_ney_groups(
        &self,
        kn: &KneserNeyView,
        contexts: &[u32],
        targets: &[u32],
        out: &mut [(f64, u32)],
    ) -> std::result::Result<(), Corrupt> {
        let groups = contexts.par_chunks(self.width() * DESCENT_GROUP);
        out.par_chunks_mut(DESCENT_GROUP)
            .zip(groups.zip(targets.par_chunks(DESCENT_GROUP)))
            .with_min_len(16)
            .try_for_each(|(out, (c, t))| self.kneser_ney_group(kn, c, t, out))
    }

    /// A score from a probability and a matched depth.
    #[inline]
    fn scored(&self, (p, depth): (f64, u32), target: u32) -> Score {
        Score {
            log10: p.log10(),
            depth,
            oov: self.oov(target),
        }
    }

    /// [`Model::score_batch`] for one context and target (for tests).
    #[cfg(test)]
    pub(crate) fn score(&self, context: &[u32], target: u32) -> Result<Score> {
        self.score_batch(context, &[target]).map(|s| Score {
            log10: s.log10[0],
            depth: s.depths[0],
            oov: s.oov[0],
        })
    }

    /// Checks a scoring batch: contexts of W ids each (as [`Model::check_batch`]), one target each.
    fn check_scoring_batch(&self, contexts: &[u32], targets: &[u32]) -> Result<()> {
        self.check_batch(contexts)?;
        let rows = contexts.len() / self.width();
        if rows != targets.len() {
            return Err(Error::InvalidInput(format!(
                "{rows} contexts but {} targets",
                targets.len()
            )));
        }
        Ok(())
    }

    /// The scoring distribution's probability of every target after its context (a row-major
    /// batch, W ids each) and the context length matched, on all cores.
    fn model_probabilities(&self, contexts: &[u32], targets: &[u32]) -> Result<Vec<(f64, u32)>> {
        self.check_scoring_batch(contexts, targets)?;
        let w = self.width();
        let windows = contexts.par_chunks(w).zip(targets.par_iter());
        let probabilities: std::result::Result<Vec<(f64, u32)>, Corrupt> =
            match self.file.checked_kneser_ney()? {
                Some(kn) => self.kneser_ney_batch(&kn, contexts, targets),
                // The IGTree is read (and checked) only when there are no Kneser-Ney statistics.
                None => {
                    let trie = self.checked_trie()?;
                    windows
                        .with_min_len(256)
                        .map(|(c, &t)| self.witten_bell(&trie, c, t))
                        .collect()
                }
            };
        probabilities.map_err(|c| self.corrupt(c))
    }

    /// The score of every target after its context (a row-major batch, W ids each) under the
    /// scoring distribution ([`crate::scoring`]), on all cores. Defined for every target: one never
    /// seen as a class, [`UNKNOWN`] or any id outside the model gets the probability of an unseen
    /// class and is flagged out of vocabulary.
    pub fn score_batch(&self, contexts: &[u32], targets: &[u32]) -> Result<Scores> {
        let probabilities = self.model_probabilities(contexts, targets)?;
        Ok(probabilities
            .into_iter()
            .zip(targets)
            .map(|(p, &t)| self.scored(p, t))
            .collect())
    }

    /// [`Model::score_batch`] for the windows of one document, in order, with the document cache
    /// ([`crate::cache`]) interpolated by `weights`: each token is scored with the counts of the
    /// tokens before it, then counted. The model's probabilities on all cores, the cache on one
    /// (it is sequential).
    pub fn score_document(
        &self,
        contexts: &[u32],
        targets: &[u32],
        weights: &CacheWeights,
    ) -> Result<Scores> {
        let probabilities = self.model_probabilities(contexts, targets)?;
        let pad = self.params().pad;
        let mut cache = DocumentCache::new(self.params().n_symbols as usize, targets.len());
        let views = cache.observe_all(contexts, self.width(), targets, pad);
        Ok(views
            .zip(probabilities)
            .zip(targets)
            .map(|((view, (base, depth)), &target)| {
                self.scored((view.mix(base, weights), depth), target)
            })
            .collect())
    }

    /// [`KneserNeyView::root_order`] of the model's statistics `kn`, sorted once.
    pub(crate) fn root_order(&self, kn: &KneserNeyView) -> &[u32] {
        self.root_order.get_or_init(|| kn.root_order())
    }

    /// The posting lists of the instance base `base` (this model's, its checksums verified), built
    /// at the first call ([`crate::postings`]; one thread builds them while the others wait).
    pub(crate) fn postings(&self, base: &InstanceBaseView) -> Option<&Postings> {
        self.postings
            .get_or_init(|| Postings::build(base, self.width(), self.params().n_symbols))
            .as_ref()
    }

    /// The Kneser-Ney statistics (their checksums verified), or an error for a model without them.
    pub(crate) fn kneser_ney(&self) -> Result<KneserNeyView<'_>> {
        self.file.checked_kneser_ney()?.ok_or_else(|| {
            Error::InvalidInput(
                "this model has no Kneser-Ney statistics (it was trained from an instance file): \
                 use a classifier (igtree, tribl2, ib1)"
                    .into(),
            )
        })
    }

    /// The document cache's weights fitted at training time (None: the model has none).
    pub fn cache_weights(&self) -> Option<CacheWeights> {
        self.file.cache_weights()
    }

    /// The scoring distribution's most probable id after each context (a row-major batch, W ids
    /// each; ties: the lower id), on all cores; None for a model without Kneser-Ney statistics.
    pub fn most_probable_batch(&self, contexts: &[u32]) -> Result<Option<Vec<u32>>> {
        self.check_batch(contexts)?;
        let Some(kn) = self.file.checked_kneser_ney()? else {
            return Ok(None);
        };
        let (order, w) = (self.root_order(&kn), self.width());
        // Four parts per thread at least, each with its own order of the large contexts' entries.
        let (most, least) = MOST_PROBABLE_PART;
        let rows = contexts.len() / w;
        let part = rows
            .div_ceil(4 * rayon::current_num_threads())
            .clamp(least, most);
        let parts: std::result::Result<Vec<Vec<u32>>, Corrupt> = contexts
            .par_chunks(w * part)
            .map(|part| {
                let mut memo = EntryOrder::default();
                part.chunks_exact(w)
                    .map(|c| kn.most_probable(&kn.descend(c)?, order, &mut memo))
                    .collect()
            })
            .collect();
        let parts = parts.map_err(|c| self.corrupt(c))?;
        Ok(Some(parts.concat()))
    }

    /// The scoring distribution after `context`: a probability per symbol id, summing to 1.
    pub fn probabilities(&self, context: &[u32]) -> Result<Vec<f64>> {
        self.check_context(context)?;
        if let Some(kn) = self.file.checked_kneser_ney()? {
            return kn
                .descend(context)
                .and_then(|path| kn.probabilities(&path))
                .map_err(|c| self.corrupt(c));
        }
        let trie = self.checked_trie()?;
        let params = self.params();
        self.path(&trie, context)
            .and_then(|(nodes, len)| {
                crate::scoring::probabilities(
                    &trie,
                    &nodes[..len],
                    params.n_symbols as usize,
                    params.pad,
                )
            })
            .map_err(|c| self.corrupt(c))
    }
}

/// The windows of `contexts` (`width` ids each, farthest first, fewer than 2^32 windows) in the
/// order of their three nearest tokens (nearest first; ties: the batch's order).
fn nearest_tokens_order(contexts: &[u32], width: usize) -> Vec<usize> {
    // Each key: the three nearest ids, then the window's place, in one integer.
    let key = |(i, window): (usize, &[u32])| {
        let nearest = |k: usize| window.len().checked_sub(k + 1).map_or(0, |j| window[j]);
        let ids = [nearest(0), nearest(1), nearest(2), i as u32];
        ids.iter().fold(0u128, |key, &x| key << 32 | x as u128)
    };
    let mut keys: Vec<u128> = contexts.chunks_exact(width).enumerate().map(key).collect();
    keys.par_sort_unstable();
    keys.into_iter().map(|k| k as u32 as usize).collect()
}

#[cfg(test)]
mod tests {
    use crate::training::test_model;
    use crate::vocabulary::UNKNOWN;

    #[test]
    fn unknown_and_unseen_targets_score_like_an_unseen_class_and_are_oov() {
        let model = test_model(3, false);
        let n = model.params().n_symbols;
        let counts = model.file().class_counts();
        let unseen = (0..n)
            .find(|&c| counts[c as usize] == 0)
            .expect("padding is no class");
        for prefix in [&[1u32, 2, 3][..], &[], &[UNKNOWN, 4]] {
            let context = model.context(prefix);
            let floor = model.score(&context, unseen).unwrap();
            assert!(floor.oov && floor.log10.is_finite() && floor.log10 < 0.0);
            for target in [UNKNOWN, n, n + 7] {
                assert_eq!(model.score(&context, target).unwrap(), floor);
            }
            let seen = model.score(&context, 1).unwrap();
            assert!(!seen.oov && seen.log10 > floor.log10);
            let p = model.probabilities(&context).unwrap();
            // Kneser-Ney's back-off weights are stored as f32.
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-7);
            assert!((p[1].log10() - seen.log10).abs() < 1e-9);
        }
        let contexts: Vec<u32> = [[1, 2, 3], [0, 0, 0]].concat();
        let scores = model.score_batch(&contexts, &[UNKNOWN, 1]).unwrap();
        assert_eq!(scores.oov, vec![true, false]);
        assert!(model.score_batch(&contexts, &[1]).is_err());
    }

    #[test]
    fn the_document_cache_never_raises_a_token_it_has_not_seen() {
        let model = test_model(3, false);
        let (n, pad) = (model.params().n_symbols, model.params().pad);
        // Every token once (the ids of the dense counts, and the unknown id, which takes the hashes),
        // in two blocks: the cache sees contexts again, never a token.
        let mut text: Vec<u32> = (0..n).filter(|&t| t != pad).collect();
        text.push(UNKNOWN);
        let (contexts, targets) = model.windows(&text, &[10, text.len() as u64 - 10]).unwrap();
        let plain = model.score_batch(&contexts, &targets).unwrap();
        let cached = model
            .score_document(&contexts, &targets, &[0.2, 0.2, 0.2, 0.2])
            .unwrap();
        // The first token: an empty cache, the model's probability.
        assert_eq!(cached.log10[0], plain.log10[0]);
        for i in 1..targets.len() {
            // The unigram cache saw earlier tokens, not this one: its share is 0.
            assert!(cached.log10[i] < plain.log10[i], "{i}");
        }
    }

    #[test]
    fn a_batch_read_in_the_order_of_its_nearest_tokens_scores_each_window_as_alone() {
        // Enough windows for parts in sorted order (one whole, one short part in its own order).
        let model = test_model(4, false);
        let n = super::SORTED_PART + super::SORTED_PART_MIN / 2;
        let mut state = 3u64;
        let text: Vec<u32> = (0..n + 4)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((state >> 33) % 30) as u32
            })
            .collect();
        let (contexts, targets) = model.windows(&text, &[text.len() as u64]).unwrap();
        assert!(targets.len() > super::SORTED_PART);
        let batch = model.score_batch(&contexts, &targets).unwrap();
        for i in (0..targets.len())
            .step_by(997)
            .chain([super::SORTED_PART, targets.len() - 1])
        {
            let alone = model
                .score(&contexts[4 * i..4 * i + 4], targets[i])
                .unwrap();
            assert_eq!(
                (batch.log10[i], batch.depths[i], batch.oov[i]),
                (alone.log10, alone.depth, alone.oov),
                "{i}"
            );
        }
    }

    #[test]
    fn the_document_cache_makes_a_repeated_passage_cheaper() {
        let model = test_model(3, false);
        let passage: Vec<u32> = vec![5, 9, 2, 17, 4, 4, 11, 23, 8, 1, 6, 13];
        let text = [passage.clone(), passage.clone()].concat();
        let (contexts, targets) = model.windows(&text, &[text.len() as u64]).unwrap();
        let plain = model.score_batch(&contexts, &targets).unwrap();
        let none = model
            .score_document(&contexts, &targets, &[0.0; 4])
            .unwrap();
        assert_eq!(none, plain);
        let cached = model
            .score_document(&contexts, &targets, &[0.05, 0.1, 0.05, 0.05])
            .unwrap();
        let n = passage.len();
        for i in 3..n {
            // The second time, the passage's contexts and tokens are in the cache.
            assert!(cached.log10[n + i] > plain.log10[n + i], "{i}");
        }
        assert!(cached.log10[n..].iter().sum::<f64>() > cached.log10[..n].iter().sum::<f64>());
    }
}
