//! memlm core: a memory-based language model (TiMBL's IGTree, TRIBL2 and IB1 over a trie of every
//! training context).
//!
//! Where things live:
//! - Tokenising: [`ascii_bpe`] (GPT-2's BPE on ASCII text, the Python side's fast path).
//! - Instances and windowing: [`instances`] (token blocks as instances, the padding rule, a query's
//!   [`instances::Context`]) and [`columns`] (TiMBL column files: reading, writing, classifying).
//! - Symbols: [`vocabulary`] (token ids or a symbol table, the padding and unknown ids).
//! - Training: [`training`] runs the pipeline: class statistics and tie-break ranks ([`classes`]),
//!   feature weights and order ([`weights`]), the tries ([`build`]), the file ([`model_file`]); a
//!   cluster build's tasks ([`cluster`]) and their spilled partitions ([`spill`]).
//! - Storage: the trie's compact form ([`trie`], with [`offsets`], the encoded class distributions
//!   of [`distribution`] and the id arrays of [`ids`]); the checksummed container ([`mod@format`]);
//!   the model file on top of it ([`model_file`]); tokenised corpora ([`shard`]); atomic writes
//!   ([`atomic`]).
//! - Queries: [`model::Model`] (contexts, IGTree descent, scoring), the classifiers' answers
//!   ([`query`], with the k-NN search of [`knn`]), probabilities for perplexity ([`scoring`]),
//!   generation ([`generation`]).
//!
//! Words with one meaning each: a node's *class distribution* is its (class, count) entries; an
//! answer's *votes* are what a classifier gives its classes (an IGTree node's counts, or the
//! neighbours' weighted counts), a vote's *share* is the vote over the total; *probabilities* are
//! the smoothed scoring distribution; a *shard* is a tokenised corpus file; a *partition* is a
//! subtree range the memory-capped build spills.

pub mod ascii_bpe;
pub mod atomic;
pub mod build;
pub mod cache;
pub mod classes;
pub mod cluster;
pub mod columns;
pub mod distribution;
pub mod error;
pub mod format;
pub mod generation;
pub mod hashed_counts;
pub mod ids;
pub mod instances;
pub mod kneser_ney;
pub mod knn;
pub mod model;
pub mod model_file;
pub mod offsets;
pub mod partition_sizes;
pub mod postings;
pub mod provenance;
pub mod query;
pub mod scoring;
pub mod shard;
pub mod spill;
pub mod training;
pub mod trie;
pub mod vocabulary;
pub mod weights;

pub use error::{Error, Result};
pub use generation::{Generation, Sampling};
pub use ids::{IdVec, Ids};
pub use instances::{Context, InstanceTable, Instances, TokenWindows, MAX_WIDTH};
pub use knn::{KnnOptions, Neighbourhood, Vote};
pub use model::{Match, Model};
pub use model_file::{ModelFile, Params};
pub use query::{Algorithm, Answer, AnswerBatch, Query};
pub use scoring::{Score, Scores};
pub use training::{TrainOptions, TrainSpec};
pub use vocabulary::{Vocabulary, UNKNOWN};
pub use weights::Weighting;
