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
pub mod ids;
pub mod instances;
pub mod knn;
pub mod model;
pub mod offsets;
pub mod scoring;
pub mod shard;
pub mod trie;
pub mod weights;

pub use error::{Error, Result};
pub use ids::{IdVec, Ids};
pub use instances::{InstanceTable, Instances, TokenWindows};
pub use knn::{KnnOptions, Neighbourhood, Vote};
pub use model::{Algorithm, Match, Model, TrainSpec, Vocabulary};
pub use weights::Weighting;
