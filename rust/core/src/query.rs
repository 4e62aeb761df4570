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

use crate::error::{Error, Result};
use crate::instances::MAX_WIDTH;
use crate::knn::{InstanceBaseView, KnnOptions, Search, Vote};
use crate::model::Model;

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

/// How to answer a context: the classifier, its k-NN options, how many classes to keep.
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
            return Err(Error::InvalidInput("k must be at least 1".into()));
        }
        Ok(Query {
            algorithm,
            knn: KnnOptions { k, vote },
            top_k,
        })
    }

    /// A query from names and numbers as a user gives them (the Python API and the CLI): every
    /// name and number is checked ([`Vote::parse`] for `vote` and `decay`).
    pub fn parse(algorithm: &str, k: i64, vote: &str, decay: f64, top_k: i64) -> Result<Query> {
        let algorithm = algorithm.parse()?;
        let vote = Vote::parse(vote, decay)?;
        let k = usize::try_from(k)
            .ok()
            .filter(|&k| k >= 1)
            .ok_or_else(|| Error::InvalidInput(format!("k must be at least 1, got {k}")))?;
        let top_k = usize::try_from(top_k).map_err(|_| {
            Error::InvalidInput(format!("top_k must be >= 0 (0 keeps all), got {top_k}"))
        })?;
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

    /// How many classes an answer keeps (0: all).
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
    /// Per row: the sum of all votes.
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
        let base = self.base_for(query.algorithm)?;
        answer.classes.clear();
        answer.votes.clear();
        let summary = self.answer_with(
            context,
            query,
            query.limit(),
            base.as_ref(),
            |class, vote| {
                answer.classes.push(class);
                answer.votes.push(vote);
            },
        );
        answer.total = summary.total;
        answer.depth = summary.depth;
        answer.distance = summary.distance;
        Ok(())
    }

    /// [`Model::answer`] for every context of a row-major batch (W ids each), on all cores.
    pub fn answers(&self, contexts: &[u32], query: &Query) -> Result<Vec<Answer>> {
        self.check_batch(contexts)?;
        let base = self.base_for(query.algorithm)?;
        Ok(contexts
            .par_chunks(self.width())
            .with_min_len(query.algorithm.batch_min_len())
            .map(|context| {
                let mut answer = Answer::default();
                let summary =
                    self.answer_with(context, query, query.limit(), base.as_ref(), |c, v| {
                        answer.classes.push(c);
                        answer.votes.push(v);
                    });
                answer.total = summary.total;
                answer.depth = summary.depth;
                answer.distance = summary.distance;
                answer
            })
            .collect())
    }

    /// [`Model::answer`] for a row-major batch of contexts (W ids each), on all cores, in dense
    /// arrays of max(top_k, 1) classes per row (so `top_k` 0 keeps one here).
    pub fn answer_batch(&self, contexts: &[u32], query: &Query) -> Result<AnswerBatch> {
        self.check_batch(contexts)?;
        let base = self.base_for(query.algorithm)?;
        let rows = contexts.len() / self.width();
        let columns = query.top_k.max(1);
        let mut classes = vec![-1i64; rows * columns];
        let mut votes = vec![0f64; rows * columns];
        let summaries: Vec<Summary> = contexts
            .par_chunks(self.width())
            .zip(
                classes
                    .par_chunks_mut(columns)
                    .zip(votes.par_chunks_mut(columns)),
            )
            .with_min_len(query.algorithm.batch_min_len())
            .map(|(context, (classes, votes))| {
                let mut j = 0;
                self.answer_with(context, query, columns, base.as_ref(), |class, vote| {
                    classes[j] = class as i64;
                    votes[j] = vote;
                    j += 1;
                })
            })
            .collect();
        Ok(AnswerBatch {
            columns,
            classes,
            votes,
            totals: summaries.iter().map(|s| s.total).collect(),
            depths: summaries.iter().map(|s| s.depth).collect(),
            distances: summaries.iter().map(|s| s.distance).collect(),
        })
    }

    /// An error when the model cannot run `algorithm` (it lacks the instance base).
    pub fn check_algorithm(&self, algorithm: Algorithm) -> Result<()> {
        self.base_for(algorithm).map(drop)
    }

    /// The instance base when `algorithm` searches it; an error when the model does not store it.
    fn base_for(&self, algorithm: Algorithm) -> Result<Option<InstanceBaseView<'_>>> {
        if !algorithm.needs_instance_base() {
            return Ok(None);
        }
        match self.instance_base() {
            Some(base) => Ok(Some(base)),
            None => Err(Error::InvalidInput(format!(
                "{algorithm} needs the instance base, which this model does not store \
                 (train it with the tribl2 or ib1 algorithm)"
            ))),
        }
    }

    /// The one answer rule: `emit(class, vote)` for the first `limit` classes, best first.
    #[inline]
    fn answer_with(
        &self,
        context: &[u32],
        query: &Query,
        limit: usize,
        base: Option<&InstanceBaseView>,
        mut emit: impl FnMut(u32, f64),
    ) -> Summary {
        let Some(base) = base else {
            let trie = self.trie();
            let m = self.descend(&trie, context);
            let total = trie.top_classes(m.node, limit, |class, count| emit(class, count as f64));
            return Summary {
                total: total as f64,
                depth: m.depth,
                distance: self.distance(m.depth),
            };
        };
        let mut ordered = [0u32; MAX_WIDTH];
        for (slot, &f) in ordered.iter_mut().zip(self.feature_order()) {
            *slot = context[f];
        }
        let ordered = &ordered[..context.len()];
        let search = Search::new(base, ordered, self.ordered_weights());
        let found = match query.algorithm {
            Algorithm::Ib1 => search.ib1(query.knn, self.file().class_rank()),
            _ => search.tribl2(query.knn, self.file().class_rank()),
        };
        for &(class, vote) in found.votes.iter().take(limit) {
            emit(class, vote);
        }
        Summary {
            total: found.votes.iter().map(|v| v.1).sum(),
            depth: found.depth,
            distance: found.distance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (algorithm, k, vote, decay, top_k, message) in [
            ("igtree", 0, "majority", 1.0, 5, "k must be at least 1"),
            ("igtree", -2, "majority", 1.0, 5, "k must be at least 1"),
            ("igtree", 1, "majority", 1.0, -1, "top_k must be >= 0"),
            (
                "igtree",
                1,
                "plurality",
                1.0,
                5,
                "unknown vote \"plurality\"",
            ),
            (
                "igtree",
                1,
                "exponential_decay",
                0.0,
                5,
                "decay must be a positive",
            ),
            (
                "igtree",
                1,
                "exponential_decay",
                f64::NAN,
                5,
                "decay must be a positive",
            ),
            ("igtree", 1, "exponential_decay", f64::INFINITY, 5, "decay"),
            ("IGTree", 1, "majority", 1.0, 5, "unknown algorithm"),
        ] {
            let err = Query::parse(algorithm, k, vote, decay, top_k)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
        // A decay only matters to the exponential decay.
        assert!(Query::parse("ib1", 1, "majority", f64::NAN, 1).is_ok());
    }
}
