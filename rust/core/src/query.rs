//! Queries: which classifier answers a context, and its answer.
//!
//! Every classifier answers with the classes that got votes, best first, and their votes:
//! - IGTree (TiMBL `-a1`) descends the pruned IGTree while the context matches (features in weight
//!   order); its answer is the last matched node's class distribution (the counts of the training
//!   instances below it, as votes) and its distance is the summed weight of the unmatched features.
//! - TRIBL2 (`-a4`) and IB1 (`-a0`) search the instance base for the k nearest distances
//!   ([`crate::knn`]); their votes are the neighbours' (weighted) class counts.
//!
//! [`Query::top_k`] classes are kept (0: all), inside the core: an answer never materialises
//! thousands of classes to keep one. [`Answer::total`] is the sum of all votes, kept or not.

use std::str::FromStr;

use rayon::prelude::*;

use crate::error::{count, Error, Result};
use crate::instances::MAX_WIDTH;
use crate::knn::{InstanceBaseView, KnnOptions, Neighbour, Search, Vote};
use crate::model::{Match, Model};
use crate::postings::Postings;
use crate::trie::Corrupt;
use crate::trie::TrieView;

/// The classifiers a model can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// TiMBL `-a1`: descend the pruned IGTree while the context matches.
    IgTree,
    /// TiMBL `-a4`: descend the instance base, then k-NN below the last matched node.
    Tribl2,
    /// TiMBL `-a0`: k-NN over every stored instance (weighted overlap).
    Ib1,
}

impl Algorithm {
    /// The names [`Algorithm::name`] prints and `parse` reads.
    pub const NAMES: [&'static str; 3] = ["igtree", "tribl2", "ib1"];

    /// The algorithm's name (`igtree`, `tribl2`, `ib1`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::IgTree => "igtree",
            Algorithm::Tribl2 => "tribl2",
            Algorithm::Ib1 => "ib1",
        }
    }

    /// Contexts a thread takes at least in a batch: IGTree answers are cheap.
    fn batch_min_len(self) -> usize {
        match self {
            Algorithm::IgTree => 512,
            _ => 1,
        }
    }

    /// Whether the algorithm searches the instance base (which a model stores only when trained so).
    pub fn needs_instance_base(self) -> bool {
        self != Algorithm::IgTree
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "igtree" => Ok(Algorithm::IgTree),
            "tribl2" => Ok(Algorithm::Tribl2),
            "ib1" => Ok(Algorithm::Ib1),
            other => Err(Error::unknown_name("algorithm", other, &Self::NAMES)),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to answer a context: the classifier, its k-NN options, how many classes to keep
/// ([`Query::top_k`]; not used by generation, where the sampling decides).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Query {
    algorithm: Algorithm,
    knn: KnnOptions,
    top_k: usize,
}

impl Query {
    /// A query; `k` (the nearest distances that vote, for TRIBL2 and IB1) must be at least 1.
    /// `top_k` classes are kept, best first (0: all).
    pub fn new(algorithm: Algorithm, k: usize, vote: Vote, top_k: usize) -> Result<Query> {
        if k == 0 {
            return Err(Error::too_small("k", 1, k));
        }
        Ok(Query {
            algorithm,
            knn: KnnOptions { k, vote },
            top_k,
        })
    }

    /// A query from names and numbers as a user gives them (the Python API and the CLI): every
    /// name and number is checked, whatever the algorithm and the vote (a value that does not
    /// apply must still be a valid one: [`Vote::parse`] for `vote` and `decay`).
    pub fn parse(algorithm: &str, k: i64, vote: &str, decay: f64, top_k: i64) -> Result<Query> {
        let algorithm = algorithm.parse()?;
        let vote = Vote::parse(vote, decay)?;
        let k = count("k", k, 1)?;
        let top_k = count("top_k", top_k, 0)?;
        Query::new(algorithm, k, vote, top_k)
    }

    /// The IGTree query that keeps `top_k` classes.
    pub fn igtree(top_k: usize) -> Query {
        Query {
            algorithm: Algorithm::IgTree,
            knn: KnnOptions::default(),
            top_k,
        }
    }

    /// The same query keeping `top_k` classes (0: all).
    pub fn with_top_k(self, top_k: usize) -> Query {
        Query { top_k, ..self }
    }

    /// The classifier.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The k-NN options (TRIBL2 and IB1).
    pub fn knn(&self) -> KnnOptions {
        self.knn
    }

    /// How many classes an answer keeps (0: all). Generation does not use it: there the sampling
    /// decides how many classes each step keeps ([`crate::Generation::new`]).
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// [`Query::top_k`] as a limit (all: `usize::MAX`).
    fn limit(&self) -> usize {
        match self.top_k {
            0 => usize::MAX,
            n => n,
        }
    }
}

/// One classifier's answer for one context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// At most `top_k` classes, the winner first.
    pub classes: Vec<u32>,
    /// Their votes: the matched node's counts (IGTree) or the neighbours' (weighted) votes.
    pub votes: Vec<f64>,
    /// The sum of all votes, kept or not (a vote's share is `vote / total`).
    pub total: f64,
    /// Context positions matched, in feature-weight order, before any k-NN search.
    pub depth: u32,
    /// IGTree: summed weight of the unmatched positions; k-NN: the nearest neighbours' distance.
    pub distance: f64,
}

/// Answers for a batch of contexts, row-major: `columns` = max(top_k, 1) classes per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerBatch {
    /// Classes per row.
    pub columns: usize,
    /// `rows x columns` classes, the winner first; -1 where a row has fewer classes.
    pub classes: Vec<i64>,
    /// Their votes (0 where there is no class).
    pub votes: Vec<f64>,
    /// Per row: the sum of all votes (empty when not asked for: [`Model::answer_batch_with`]).
    pub totals: Vec<f64>,
    /// Per row: matched depth.
    pub depths: Vec<u32>,
    /// Per row: distance.
    pub distances: Vec<f64>,
}

/// The parts of an answer besides its classes.
struct Summary {
    total: f64,
    depth: u32,
    distance: f64,
}

/// What a query reads: the IGTree, or the instance base (both verified at first use) with its
/// posting lists where it has them (built before any batch's parallel loop).
#[derive(Clone, Copy)]
enum Source<'a> {
    IgTree(TrieView<'a>),
    Base(InstanceBaseView<'a>, Option<&'a Postings>),
}

impl Model {
    /// The answer of `query` for one context of exactly W ids (see [`Model::context`] for a prefix
    /// of any length).
    pub fn answer(&self, context: &[u32], query: &Query) -> Result<Answer> {
        let mut answer = Answer::default();
        self.answer_into(context, query, &mut answer)?;
        Ok(answer)
    }

    /// [`Model::answer`] into `answer`, reusing its buffers.
    pub fn answer_into(&self, context: &[u32], query: &Query, answer: &mut Answer) -> Result<()> {
        self.check_context(context)?;
        let source = self.source(query.algorithm)?;
        self.fill_answer(context, query, source, answer)
            .map_err(|c| self.corrupt(c))
    }

    /// [`Model::answer`] for every context of a row-major batch (W ids each), on all cores.
    pub fn answers(&self, contexts: &[u32], query: &Query) -> Result<Vec<Answer>> {
        self.check_batch(contexts)?;
        let source = self.source(query.algorithm)?;
        contexts
            .par_chunks(self.width())
            .with_min_len(query.algorithm.batch_min_len())
            .map(|context| {
                let mut answer = Answer::default();
                self.fill_answer(context, query, source, &mut answer)?;
                Ok(answer)
            })
            .collect::<std::result::Result<_, Corrupt>>()
            .map_err(|c| self.corrupt(c))
    }

    /// [`Model::answer`] for a row-major batch of contexts (W ids each), on all cores, in dense
    /// arrays of max(top_k, 1) classes per row (so `top_k` 0 keeps one here), at most as many as
    /// the model has classes (symbols seen as a target in training).
    pub fn answer_batch(&self, contexts: &[u32], query: &Query) -> Result<AnswerBatch> {
        self.answer_batch_with(contexts, query, true)
    }

    /// [`Model::answer_batch`]; without `totals` the totals are not computed (an IGTree answer then
    /// reads only the kept classes of its node) and [`AnswerBatch::totals`] is empty.
    pub fn answer_batch_with(
        &self,
        contexts: &[u32],
        query: &Query,
        totals: bool,
    ) -> Result<AnswerBatch> {
        self.check_batch(contexts)?;
        let source = self.source(query.algorithm)?;
        let rows = contexts.len() / self.width();
        // No answer has more classes than the model has.
        let columns = query.top_k.clamp(1, self.class_count().max(1));
        let cells = rows.checked_mul(columns);
        let (Some(mut classes), Some(mut votes)) = (
            cells.and_then(|n| filled(n, -1i64)),
            cells.and_then(|n| filled(n, 0f64)),
        ) else {
            return Err(Error::InvalidInput(format!(
                "{rows} answers of {columns} classes do not fit in memory: ask for fewer (top_k)"
            )));
        };
        let want_totals = totals;
        let mut totals = vec![0f64; rows];
        let mut depths = vec![0u32; rows];
        let mut distances = vec![0f64; rows];
        // IGTree: all descents first, then the nodes' classes (each pass keeps its part of the
        // model in cache).
        let matches: Vec<Match> = match source {
            Source::IgTree(trie) => contexts
                .par_chunks(self.width())
                .with_min_len(query.algorithm.batch_min_len())
                .map(|context| self.descend(&trie, context))
                .collect::<std::result::Result<_, Corrupt>>()
                .map_err(|c| self.corrupt(c))?,
            Source::Base(..) => Vec::new(),
        };
        contexts
            .par_chunks(self.width())
            .zip(classes.par_chunks_mut(columns))
            .zip(votes.par_chunks_mut(columns))
            .zip(totals.par_iter_mut())
            .zip(depths.par_iter_mut())
            .zip(distances.par_iter_mut())
            .enumerate()
            .with_min_len(query.algorithm.batch_min_len())
            .try_for_each(
                |(r, (((((context, classes), votes), total), depth), distance))| {
                    let mut j = 0;
                    let emit = |c, v| {
                        if let (Some(class), Some(vote)) = (classes.get_mut(j), votes.get_mut(j)) {
                            (*class, *vote) = (c as i64, v);
                        }
                        j += 1;
                    };
                    let summary = match source {
                        Source::IgTree(trie) => {
                            self.igtree_answer(&trie, matches[r], columns, want_totals, emit)
                        }
                        Source::Base(base, postings) => {
                            self.knn_answer(context, query, columns, (&base, postings), emit)
                        }
                    }?;
                    (*total, *depth, *distance) = (summary.total, summary.depth, summary.distance);
                    Ok(())
                },
            )
            .map_err(|c| self.corrupt(c))?;
        if !want_totals {
            totals = Vec::new();
        }
        Ok(AnswerBatch {
            columns,
            classes,
            votes,
            totals,
            depths,
            distances,
        })
    }

    /// An error when the model cannot run `algorithm` (it lacks the instance base).
    pub fn check_algorithm(&self, algorithm: Algorithm) -> Result<()> {
        if algorithm.needs_instance_base() && self.instance_base().is_none() {
            return Err(missing_base(algorithm));
        }
        Ok(())
    }

    /// The trie `algorithm` reads, verified at its first use; an error when the model does not
    /// store the instance base that TRIBL2 and IB1 search.
    #[inline]
    fn source(&self, algorithm: Algorithm) -> Result<Source<'_>> {
        if !algorithm.needs_instance_base() {
            return Ok(Source::IgTree(self.checked_trie()?));
        }
        match self.file().checked_instance_base()? {
            Some(base) => Ok(Source::Base(base, self.postings(&base))),
            None => Err(missing_base(algorithm)),
        }
    }

    /// The answer of `query` for one context, from `source`, into `answer` (its buffers reused).
    #[inline]
    fn fill_answer(
        &self,
        context: &[u32],
        query: &Query,
        source: Source,
        answer: &mut Answer,
    ) -> std::result::Result<(), Corrupt> {
        answer.classes.clear();
        answer.votes.clear();
        let limit = query.limit();
        let emit = |class, vote| {
            answer.classes.push(class);
            answer.votes.push(vote);
        };
        let summary = match source {
            Source::IgTree(trie) => {
                self.igtree_answer(&trie, self.descend(&trie, context)?, limit, true, emit)
            }
            Source::Base(base, postings) => {
                self.knn_answer(context, query, limit, (&base, postings), emit)
            }
        }?;
        answer.total = summary.total;
        answer.depth = summary.depth;
        answer.distance = summary.distance;
        Ok(())
    }

    /// IGTree: the matched node's class distribution, its counts as votes; the distance is the
    /// summed weight of the unmatched features.
    #[inline]
    fn igtree_answer(
        &self,
        trie: &TrieView,
        m: Match,
        limit: usize,
        want_total: bool,
        mut emit: impl FnMut(u32, f64),
    ) -> std::result::Result<Summary, Corrupt> {
        let total = trie.top_classes(m.node, limit, want_total, |class, count| {
            emit(class, count as f64)
        })?;
        Ok(Summary {
            total: total as f64,
            depth: m.depth,
            distance: self.distance(m.depth),
        })
    }

    /// TRIBL2 and IB1: the k-NN search's votes.
    fn knn_answer(
        &self,
        context: &[u32],
        query: &Query,
        limit: usize,
        (base, postings): (&InstanceBaseView, Option<&Postings>),
        mut emit: impl FnMut(u32, f64),
    ) -> std::result::Result<Summary, Corrupt> {
        let mut ordered = [0u32; MAX_WIDTH];
        for (slot, &f) in ordered.iter_mut().zip(self.feature_order()) {
            *slot = context[f];
        }
        let ordered = &ordered[..context.len()];
        let search = Search::new(base, ordered, self.ordered_weights()).with_postings(postings);
        let found = match query.algorithm {
            Algorithm::Ib1 => search.ib1(query.knn, self.file().class_rank()),
            _ => search.tribl2(query.knn, self.file().class_rank()),
        }?;
        for &(class, vote) in found.votes.iter().take(limit) {
            emit(class, vote);
        }
        Ok(Summary {
            total: found.votes.iter().map(|v| v.1).sum(),
            depth: found.depth,
            distance: found.distance,
        })
    }
}

impl Model {
    /// The nearest neighbours behind the k-NN answer of `query` (TRIBL2 or IB1) for one context of
    /// W ids: up to `most`, nearest first, each with its values in column order (None where it stands
    /// for several instances that differ there). An error for IGTree, which has no neighbours.
    pub fn neighbours(
        &self,
        context: &[u32],
        query: &Query,
        most: usize,
    ) -> Result<Vec<Neighbour>> {
        self.check_context(context)?;
        let Source::Base(base, postings) = self.source(query.algorithm)? else {
            return Err(Error::InvalidInput(
                "IGTree answers from a trie node: it has no neighbours (use tribl2 or ib1)".into(),
            ));
        };
        let order = self.feature_order();
        let mut ordered = [0u32; MAX_WIDTH];
        for (slot, &f) in ordered.iter_mut().zip(order) {
            *slot = context[f];
        }
        let ordered = &ordered[..context.len()];
        let search = Search::new(&base, ordered, self.ordered_weights()).with_postings(postings);
        let rank = self.file().class_rank();
        let found = match query.algorithm {
            Algorithm::Ib1 => search.ib1(query.knn, rank),
            _ => search.tribl2(query.knn, rank),
        }
        .map_err(|c| self.corrupt(c))?;
        let nodes = found
            .nearest
            .iter()
            .flat_map(|(distance, nodes)| nodes.iter().map(move |&n| (*distance, n)))
            .take(most);
        nodes
            .map(|(distance, node)| {
                let mut neighbour = base
                    .neighbour(node, distance, context.len())
                    .map_err(|c| self.corrupt(c))?;
                let mut values = vec![None; context.len()];
                for (&f, &value) in order.iter().zip(&neighbour.values) {
                    values[f] = value;
                }
                neighbour.values = values;
                Ok(neighbour)
            })
            .collect()
    }
}

/// The error for a k-NN algorithm on a model without the instance base.
fn missing_base(algorithm: Algorithm) -> Error {
    Error::InvalidInput(format!(
        "{algorithm} needs the instance base, which this model does not store \
         (train it with the tribl2 or ib1 algorithm)"
    ))
}

/// A vector of `n` copies of `value`, or None when the memory cannot be had (instead of an abort).
fn filled<T: Clone>(n: usize, value: T) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, value);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::test_model;
    use crate::vocabulary::UNKNOWN;

    /// Contexts of every kind: seen, partly seen, padded, unknown ids.
    fn contexts(model: &Model) -> Vec<Vec<u32>> {
        let mut out = vec![
            vec![0, 1, 2],
            vec![3],
            vec![],
            vec![UNKNOWN, 1],
            vec![29, 29, 29],
        ];
        out.extend((0..40u32).map(|i| vec![i % 7, (i * 3) % 11, i % 5]));
        out.iter().map(|p| model.context(p).to_vec()).collect()
    }

    #[test]
    fn top_k_keeps_the_first_classes_of_the_whole_answer_for_every_algorithm() {
        let model = test_model(3, true);
        for algorithm in [Algorithm::IgTree, Algorithm::Tribl2, Algorithm::Ib1] {
            for (k, vote) in [(1, Vote::Majority), (3, Vote::InverseDistance)] {
                let query = Query::new(algorithm, k, vote, 0).unwrap();
                for context in contexts(&model) {
                    let all = model.answer(&context, &query).unwrap();
                    assert!(!all.classes.is_empty());
                    assert_eq!(all.classes.len(), all.votes.len());
                    let sum: f64 = all.votes.iter().sum();
                    assert!((all.total - sum).abs() <= 1e-9 * sum, "{algorithm}");
                    for top_k in [1, 2, 5] {
                        let some = model.answer(&context, &query.with_top_k(top_k)).unwrap();
                        let kept = top_k.min(all.classes.len());
                        assert_eq!(some.classes, all.classes[..kept]);
                        assert_eq!(some.votes, all.votes[..kept]);
                        assert_eq!(
                            (some.total, some.depth, some.distance),
                            (all.total, all.depth, all.distance)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn igtree_answer_is_the_matched_node_and_the_unmatched_weight() {
        let model = test_model(3, false);
        for context in contexts(&model) {
            let m = model.igtree_match(&context).unwrap();
            let answer = model.answer(&context, &Query::igtree(0)).unwrap();
            let node: Vec<(u32, f64)> = model
                .trie()
                .distribution(m.node)
                .map(|(c, n)| (c, n as f64))
                .collect();
            let got: Vec<(u32, f64)> = answer.classes.into_iter().zip(answer.votes).collect();
            assert_eq!(got, node);
            assert_eq!(answer.total, model.trie().total(m.node).unwrap() as f64);
            assert_eq!(
                (answer.depth, answer.distance),
                (m.depth, model.distance(m.depth))
            );
        }
        // The unmatched weight: all of it at the root, none after a full match.
        let weights: f64 = model.file().weights().iter().sum();
        assert!((model.distance(0) - weights).abs() < 1e-12);
        assert_eq!(model.distance(3), 0.0);
    }

    #[test]
    fn batches_answer_like_single_contexts_padded_with_minus_one() {
        let model = test_model(3, true);
        let contexts = contexts(&model);
        let flat: Vec<u32> = contexts.concat();
        for algorithm in [Algorithm::IgTree, Algorithm::Tribl2, Algorithm::Ib1] {
            for top_k in [0, 1, 4] {
                let query = Query::new(algorithm, 2, Vote::Majority, top_k).unwrap();
                let batch = model.answer_batch(&flat, &query).unwrap();
                let answers = model.answers(&flat, &query).unwrap();
                let without = model.answer_batch_with(&flat, &query, false).unwrap();
                assert!(without.totals.is_empty());
                assert_eq!(
                    (
                        &without.classes,
                        &without.votes,
                        &without.depths,
                        &without.distances
                    ),
                    (
                        &batch.classes,
                        &batch.votes,
                        &batch.depths,
                        &batch.distances
                    )
                );
                assert_eq!(batch.columns, top_k.max(1));
                for (r, context) in contexts.iter().enumerate() {
                    let one = model
                        .answer(context, &query.with_top_k(batch.columns))
                        .unwrap();
                    let row = r * batch.columns..(r + 1) * batch.columns;
                    let classes: Vec<i64> = one.classes.iter().map(|&c| c as i64).collect();
                    let mut padded = classes.clone();
                    padded.resize(batch.columns, -1);
                    assert_eq!(batch.classes[row.clone()], padded[..]);
                    assert_eq!(batch.votes[row][..one.votes.len()], one.votes[..]);
                    assert_eq!(batch.totals[r], one.total);
                    assert_eq!(
                        (batch.depths[r], batch.distances[r]),
                        (one.depth, one.distance)
                    );
                    assert_eq!(answers[r], model.answer(context, &query).unwrap());
                }
            }
        }
        assert_eq!(
            model
                .answer_batch(&[], &Query::igtree(3))
                .unwrap()
                .totals
                .len(),
            0
        );
        // A top_k or k beyond anything the model holds keeps what there is: every class at most.
        for algorithm in [Algorithm::IgTree, Algorithm::Tribl2] {
            let huge = Query::new(algorithm, usize::MAX, Vote::Majority, usize::MAX).unwrap();
            let batch = model.answer_batch(&flat, &huge).unwrap();
            assert_eq!(batch.columns, model.class_count());
            assert!(model.class_count() < model.params().n_symbols as usize);
            let all = model.answer(&contexts[0], &huge).unwrap();
            assert!(all.classes.len() <= model.class_count());
        }
    }

    #[test]
    fn knn_without_the_instance_base_is_a_clear_error() {
        let model = test_model(3, false);
        let context = model.context(&[1, 2]);
        for algorithm in [Algorithm::Tribl2, Algorithm::Ib1] {
            let query = Query::new(algorithm, 1, Vote::Majority, 1).unwrap();
            let err = model.answer(&context, &query).unwrap_err().to_string();
            assert!(err.contains("needs the instance base"), "{err}");
            assert!(model.answer_batch(&context, &query).is_err());
        }
        assert!(model.answer(&[1, 2], &Query::igtree(1)).is_err());
        assert!(model.answer(&[1, 2, 31], &Query::igtree(1)).is_err());
    }

    #[test]
    fn a_wrong_width_and_a_foreign_id_have_one_wording_each() {
        let model = test_model(3, false);
        let query = Query::igtree(1);
        fn message<T: std::fmt::Debug>(r: Result<T>) -> String {
            r.unwrap_err().to_string()
        }
        let short = "a context has 2 ids but the model's width is 3";
        assert_eq!(message(model.answer(&[1, 2], &query)), short);
        assert_eq!(message(model.answer_batch(&[1, 2, 3, 1, 2], &query)), short);
        assert_eq!(message(model.check_columns(2)), short);
        let foreign = "id 31 is outside the model's vocabulary of 31 ids";
        assert_eq!(message(model.answer(&[1, 2, 31], &query)), foreign);
        assert_eq!(message(model.symbols().get(31)), foreign);
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for name in Algorithm::NAMES {
            assert_eq!(name.parse::<Algorithm>().unwrap().name(), name);
        }
        let err = "knn".parse::<Algorithm>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown algorithm \"knn\": use 'igtree', 'tribl2' or 'ib1'"
        );
        for name in Vote::NAMES {
            assert_eq!(Vote::parse(name, 1.0).unwrap().name(), name);
        }
    }

    #[test]
    fn query_parse_errors() {
        let ok = Query::parse("tribl2", 3, "exponential_decay", 0.5, 0).unwrap();
        assert_eq!(ok.algorithm(), Algorithm::Tribl2);
        assert_eq!(ok.knn().k, 3);
        assert_eq!(ok.knn().vote, Vote::ExponentialDecay { alpha: 0.5 });
        assert_eq!(ok.top_k(), 0);
        let nan = f64::NAN;
        for (algorithm, k, vote, decay, top_k, message) in [
            ("igtree", 0, "majority", 1.0, 5, "k must be at least 1, got 0"),
            ("igtree", -2, "majority", 1.0, 5, "k must be at least 1, got -2"),
            ("igtree", 1, "majority", 1.0, -1, "top_k must be at least 0, got -1"),
            (
                "igtree",
                1,
                "plurality",
                1.0,
                5,
                "unknown vote \"plurality\": use 'majority', 'inverse_distance' or 'exponential_decay'",
            ),
            (
                "igtree",
                1,
                "exponential_decay",
                0.0,
                5,
                "decay must be a positive finite number, got 0.0",
            ),
            (
                "igtree",
                1,
                "exponential_decay",
                f64::INFINITY,
                5,
                "decay must be a positive finite number, got inf",
            ),
            // A decay is checked whatever the vote: one rule per argument.
            (
                "ib1",
                1,
                "majority",
                nan,
                1,
                "decay must be a positive finite number, got nan",
            ),
            (
                "igtree",
                1,
                "inverse_distance",
                -1.0,
                5,
                "decay must be a positive finite number, got -1.0",
            ),
            ("IGTree", 1, "majority", 1.0, 5, "unknown algorithm"),
        ] {
            let err = Query::parse(algorithm, k, vote, decay, top_k)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(message), "{err}");
        }
        assert_eq!(
            Query::new(Algorithm::Ib1, 0, Vote::Majority, 1)
                .unwrap_err()
                .to_string(),
            "k must be at least 1, got 0"
        );
    }
}

#[cfg(test)]
mod neighbour_tests {
    use super::*;
    use crate::training::test_model;

    /// Every neighbour IB1 and TRIBL2 show lies at its distance from the query (the weights of the
    /// positions where they differ, those it leaves unknown at most adding theirs); IB1's nearest
    /// are at the answer's distance; IGTree has none.
    #[test]
    fn neighbours_lie_at_their_distance() {
        let model = test_model(3, true);
        let weights = model.file().weights().to_vec();
        for algorithm in [Algorithm::Ib1, Algorithm::Tribl2] {
            let query = Query::new(algorithm, 3, Vote::Majority, 5).unwrap();
            for context in [[0u32, 1, 2], [3, 3, 3], [29, 0, 5], [30, 30, 7]] {
                let answer = model.answer(&context, &query).unwrap();
                let found = model.neighbours(&context, &query, 50).unwrap();
                assert!(!found.is_empty());
                if algorithm == Algorithm::Ib1 {
                    assert_eq!(found[0].distance, answer.distance);
                }
                for n in &found {
                    let weight = |f: &usize| weights[*f];
                    let differ: f64 = (0..3)
                        .filter(|&f| n.values[f].is_some_and(|v| v != context[f]))
                        .map(|f| weight(&f))
                        .sum();
                    let unknown: f64 = (0..3)
                        .filter(|&f| n.values[f].is_none())
                        .map(|f| weight(&f))
                        .sum();
                    assert!(differ <= n.distance + 1e-9, "{algorithm} {context:?} {n:?}");
                    assert!(
                        n.distance <= differ + unknown + 1e-9,
                        "{algorithm} {context:?} {n:?}"
                    );
                    assert!(!n.counts.is_empty());
                }
            }
        }
        let igtree = Query::new(Algorithm::IgTree, 1, Vote::Majority, 5).unwrap();
        assert!(model.neighbours(&[0, 1, 2], &igtree, 5).is_err());
    }
}
