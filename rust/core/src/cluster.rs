//! The rules of a cluster build's tasks (run on Dask by `memlm.cluster`; the Python side only
//! converts and schedules): what a worker reads, how large its tasks are, and what it checks before
//! it builds a partition.
//!
//! - **The text.** A worker reads the shards of a build (token ids and block lengths, written by
//!   the tokenising tasks in corpus order) as one text, [`ShardText`]: the windows of the blocks at
//!   the build's width, padded with the shards' vocabulary size (the padding id of one process).
//! - **How large a task is.** A build spreads over `threads` worker threads, about
//!   `tasks_per_thread` tasks each ([`TaskSizes`]):
//!   - a trie partition holds at most `ceil(instances / (tasks_per_thread * threads))` instances,
//!     and no more than the memory budget allows one partition ([`build::partition_capacity`], the
//!     rule of the `--memory` build in one process), and at least one;
//!   - the feature weights' terms are computed one task per feature and per range of values, the
//!     ranges as many as a budget's partition needs (`ceil(instances / capacity)`) and at least as
//!     many as there are threads per feature (`ceil(threads / width)`); a range holds at most
//!     `ceil(instances / ranges)` instances of the class histogram (the client cuts the ranges
//!     from the summed class counts: every feature's values are the same ids, so it is close to
//!     each feature's own histogram; a value with more is a range of its own).
//! - **Before a partition is built.** The class counts a task is given (the whole corpus's,
//!   reduced on the client) must be valid ([`ClassCounts::check`]) and of this text: one count per
//!   symbol (the vocabulary and the padding id), summing to its instances; the feature order must
//!   order this text's features ([`build::spill_partition`] checks both). Anything else is
//!   [`Error::InvalidInput`], never a panic.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::build::{self, TrieKind};
use crate::classes::{ClassCounts, ClassStats};
use crate::error::{Error, Result};
use crate::instances::{check_width, Instances, TokenWindows};
use crate::shard;
use crate::weights::GainTerms;

/// The windows of a build's shards read as one text at a width; a worker reads it once and keeps it
/// for all its tasks on those shards.
pub struct ShardText {
    windows: TokenWindows,
}

impl ShardText {
    /// Reads the shards at `paths` (all of one vocabulary, else an error) and makes their windows
    /// at `width` (1..=64).
    pub fn open(paths: &[PathBuf], width: i64) -> Result<ShardText> {
        let width = check_width(width)?;
        let text = shard::concatenated(paths, false)?;
        Ok(ShardText {
            windows: TokenWindows::new(text.tokens, &text.block_lengths, width, text.vocab_size)?,
        })
    }

    /// The feature weights' terms of the `features` over the `values` (see [`GainTerms::compute`]).
    pub fn gain_terms(&self, features: Range<usize>, values: Range<u32>) -> Result<GainTerms> {
        if features.start > features.end || features.end > self.windows.width() {
            return Err(Error::InvalidInput(format!(
                "features {}..{} of a text of {} features",
                features.start,
                features.end,
                self.windows.width()
            )));
        }
        GainTerms::compute(&self.windows, features, values, |_| Ok(()))
    }

    /// Builds the partition of the trie of `kind` whose first values (in feature `order`) lie in
    /// `values`, with the whole corpus's `class_counts` (valid: [`ClassCounts::check`]), and writes
    /// it to `path` atomically; the counts must be this text's, over its vocabulary and the padding
    /// id ([`build::spill_partition`] checks them and the order).
    pub fn spill_partition(
        &self,
        order: &[usize],
        class_counts: ClassCounts,
        kind: TrieKind,
        values: Range<u32>,
        path: &Path,
    ) -> Result<()> {
        class_counts.check()?;
        let stats = ClassStats::from_counts(class_counts);
        let n_symbols = self.windows.pad() as usize + 1;
        build::spill_partition(&self.windows, n_symbols, order, &stats, kind, values, path)
    }
}

/// The smallest piece of a plain-text file that a tokenising task reads.
pub const MIN_PIECE_BYTES: u64 = 1 << 16;

/// The bytes of corpus a tokenising task reads (a piece of a plain-text file; a smaller file, a
/// gzip or JSONL file is one piece whatever its size): `total_bytes` over `threads` worker threads,
/// about `tasks_per_thread` pieces each, and at least [`MIN_PIECE_BYTES`].
pub fn piece_bytes(total_bytes: u64, threads: u64, tasks_per_thread: u64) -> u64 {
    let pieces = tasks_per_thread.max(1).saturating_mul(threads.max(1));
    total_bytes.div_ceil(pieces).max(MIN_PIECE_BYTES)
}

/// The weighing tasks of a text of `width` features whose shards have `shard_counts` (their class
/// counts, in corpus order): per range of values (holding at most `range` instances of the summed
/// class histogram: every feature's values are the same ids) and per feature, that feature and
/// range, in value order.
pub fn weighing_tasks(
    shard_counts: Vec<ClassCounts>,
    width: usize,
    range: u64,
) -> Result<Vec<(Range<usize>, Range<u32>)>> {
    let histogram = ClassCounts::concatenated(shard_counts)?.counts;
    Ok(build::value_ranges(&histogram, range)
        .into_iter()
        .flat_map(|values| (0..width).map(move |f| (f..f + 1, values.clone())))
        .collect())
}

/// How large a cluster build's tasks are (the rules in the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSizes {
    /// The most instances of the class histogram a weighing task's range of values holds (see the
    /// module's documentation).
    pub weigh_range: u64,
    /// The most instances a trie partition holds.
    pub partition: u64,
}

impl TaskSizes {
    /// The sizes for `instances` of `width` features on `threads` worker threads, about
    /// `tasks_per_thread` tasks each, with `partition_memory` bytes of working memory for a partition
    /// (None: no budget).
    pub fn new(
        instances: u64,
        width: usize,
        threads: u64,
        tasks_per_thread: u64,
        partition_memory: Option<u64>,
    ) -> TaskSizes {
        let threads = threads.max(1);
        let fits = build::partition_capacity(partition_memory);
        let ranges = instances
            .div_ceil(fits)
            .max(threads.div_ceil(width.max(1) as u64))
            .max(1);
        let tasks = tasks_per_thread.max(1).saturating_mul(threads);
        TaskSizes {
            weigh_range: instances.div_ceil(ranges).max(1),
            partition: instances.div_ceil(tasks).min(fits).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighing_tasks_cut_the_summed_class_histogram() {
        let counts = |counts: Vec<u64>, first_seen: Vec<u64>| ClassCounts { counts, first_seen };
        let u = ClassCounts::UNSEEN;
        // Two shards: 4 + 3 instances over 4 symbols; the sum is [3, 2, 0, 2].
        let shards = vec![
            counts(vec![2, 1, 0, 1], vec![0, 1, u, 3]),
            counts(vec![1, 1, 0, 1], vec![0, 1, u, 2]),
        ];
        let tasks = weighing_tasks(shards.clone(), 2, 4).unwrap();
        assert_eq!(
            tasks,
            vec![(0..1, 0..1), (1..2, 0..1), (0..1, 1..4), (1..2, 1..4)]
        );
        // Shards over different symbol spaces are an error, not a panic.
        let mut other = shards;
        other[1] = counts(vec![1, 1, 0], vec![0, 1, u]);
        assert!(weighing_tasks(other, 2, 3).is_err());
    }

    #[test]
    fn task_sizes_follow_the_threads_and_the_budget() {
        // No budget: partitions of a quarter of a thread's share; the weights in one range per
        // feature while the features are as many as the threads.
        let sizes = TaskSizes::new(1000, 4, 2, 4, None);
        assert_eq!(
            sizes,
            TaskSizes {
                weigh_range: 1000,
                partition: 125
            }
        );
        // More threads than features: ranges so that every thread has a task.
        assert_eq!(TaskSizes::new(1000, 2, 8, 4, None).weigh_range, 250);
        // A budget of 10 instances a partition (480 bytes at 48 bytes each) caps both.
        let budget = Some(10 * build::BUILD_BYTES_PER_INSTANCE);
        assert_eq!(
            TaskSizes::new(1000, 4, 2, 4, budget),
            TaskSizes {
                weigh_range: 10,
                partition: 10
            }
        );
        // Tokenising: pieces of a quarter of a thread's share, at least MIN_PIECE_BYTES.
        assert_eq!(piece_bytes(80 << 20, 2, 4), 10 << 20);
        assert_eq!(piece_bytes(1000, 2, 4), MIN_PIECE_BYTES);
        assert_eq!(piece_bytes(1 << 30, 0, 0), 1 << 30);
        // A budget below one instance still lets a task take one; no instances, one all the same.
        assert_eq!(TaskSizes::new(1000, 4, 2, 4, Some(1)).partition, 1);
        assert_eq!(
            TaskSizes::new(0, 4, 0, 0, None),
            TaskSizes {
                weigh_range: 1,
                partition: 1
            }
        );
    }
}
