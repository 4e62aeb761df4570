//! memlm core: a memory-based language model.
//!
//! Token ids go in as blocks ([`instances::TokenWindows`]) or as TiMBL column files ([`columns`]);
//! [`weights`] computes information gain and gain ratio per context position; [`build`] builds the
//! IGTree, stored compactly ([`trie`], [`offsets`], [`distribution`]); [`model::Model`] stores it in one checksummed, memory-mappable
//! file ([`format`]) and answers queries.

pub mod atomic;
pub mod build;
pub mod classes;
pub mod columns;
pub mod distribution;
pub mod error;
pub mod format;
pub mod generation;
pub mod ids;
pub mod instances;
pub mod knn;
pub mod model;
pub mod model_file;
pub mod offsets;
pub mod query;
pub mod scoring;
pub mod shard;
pub mod training;
pub mod trie;
pub mod vocabulary;
pub mod weights;

pub use error::{Error, Result};
pub use generation::{Generation, Sampling};
pub use ids::{IdVec, Ids};
pub use instances::{InstanceTable, Instances, TokenWindows};
pub use knn::{KnnOptions, Neighbourhood, Vote};
pub use model::{Match, Model};
pub use model_file::{ModelFile, Params};
pub use query::{Algorithm, Answer, AnswerBatch, Query};
pub use scoring::{Score, Scores};
pub use training::{TrainOptions, TrainSpec};
pub use vocabulary::{Vocabulary, UNKNOWN};
pub use weights::Weighting;
