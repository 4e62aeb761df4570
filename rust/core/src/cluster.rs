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
        let (tokens, lengths, vocab_size) = shard::concatenated(paths)?;
        Ok(ShardText {
            windows: TokenWindows::new(tokens, &lengths, width, vocab_size)?,
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
