//! Sort-based construction of the context trie, level by level, and IGTree pruning, in partitions
//! that fit a memory budget.
//!
//! The instance ids are kept in one array. Every node owns a contiguous range of it; expanding a node
//! sorts its range by the next feature (in weight order) and cuts it into runs of equal value, which
//! become its children. No per-instance insertion and no per-node allocation.
//!
//! The subtrees below the root's children are independent, so the builder cuts the first feature's
//! values into ranges (partitions) whose instances fit the memory budget, builds each partition's
//! levels on its own, spills them to a temporary file when there is more than one partition, and
//! assembles the levels breadth-first at the end: the result is the same trie, byte for byte,
//! whatever the budget. (Not to be confused with shards, [`crate::shard`]: tokenised corpora.)
//!
//! A cluster build divides the same work between processes: the partitions are planned from the
//! first feature's histogram ([`plan_partitions`]), each is built by a worker and spilled to a named
//! file ([`spill_partition`]; the file format is [`crate::spill`]'s), and the process that writes
//! the model assembles them ([`BuildOptions::spilled`]), checking that they are this trie's, of these
//! instances, in order and complete, and that each level has as many nodes as the level above has
//! children.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::classes::ClassStats;
use crate::distribution::{DistributionWriter, Entries};
use crate::error::{Error, Result};
use crate::ids::IdVec;
use crate::instances::Instances;
use crate::offsets::PackedOffsets;
use crate::spill::{LevelOut, Partition, PartitionOf};
use crate::trie::{EncodedTrie, STORED_TOTAL_BYTES};
use xxhash_rust::xxh3::Xxh3;

/// Working memory per instance of a partition while its levels are built: the id (4 bytes), its sort
/// key (8) and the unpruned nodes' arrays (about 36, measured on GPT-2 text at W = 16).
pub const BUILD_BYTES_PER_INSTANCE: u64 = 48;

/// The most instances a partition holds under a budget of `partition_memory` bytes of working
/// memory (at [`BUILD_BYTES_PER_INSTANCE`] each, and at least one), or any number without one.
pub fn partition_capacity(partition_memory: Option<u64>) -> u64 {
    partition_memory.map_or(u64::MAX, |m| (m / BUILD_BYTES_PER_INSTANCE).max(1))
}

/// A build's progress callback: any `Fn(phase: &str, done: u64, total: u64)` that returns `()` (it
/// only listens) or a [`Result<()>`] (an error, such as [`Error::Interrupted`], stops the build,
/// which returns that error having written nothing; the spilled partitions are removed). A build
/// calls it at least every [`REPORT_INTERVAL`] in every phase, from the thread that started the
/// build, with `done < total` until a phase is over and `(phase, total, total)` once when it is.
pub type Progress<'a> = &'a dyn ProgressHook;

/// What [`Progress`] calls; implemented for the closures it takes.
pub trait ProgressHook: Sync {
    /// Reports `(phase, done, total)`; an error stops the build.
    fn report(&self, phase: &str, done: u64, total: u64) -> Result<()>;
}

impl<F, R> ProgressHook for F
where
    F: Fn(&str, u64, u64) -> R + Sync,
    R: GoOn,
{
    fn report(&self, phase: &str, done: u64, total: u64) -> Result<()> {
        self(phase, done, total).go_on()
    }
}

/// What a progress callback may return: `()` or [`Result<()>`].
pub trait GoOn {
    /// Whether the build goes on (Ok) or stops (the error).
    fn go_on(self) -> Result<()>;
}

impl GoOn for () {
    fn go_on(self) -> Result<()> {
        Ok(())
    }
}

impl GoOn for Result<()> {
    fn go_on(self) -> Result<()> {
        self
    }
}

/// How often a build calls its progress callback at least (as far as it can tell: one sort of a
/// partition's instances, or of all instances for one feature weight, runs uninterrupted; about
/// 0.1 s per million instances on two cores).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// One phase of a build: reports its start, calls the progress callback every [`REPORT_INTERVAL`]
/// while it runs (from [`Ticker::tick`] in loops and [`Ticker::set`] at steps) and its end.
pub(crate) struct Ticker<'a> {
    progress: Option<Progress<'a>>,
    phase: &'a str,
    done: u64,
    total: u64,
    due: Instant,
    ticks: u32,
}

impl<'a> Ticker<'a> {
    /// Starts a phase of `total` steps: reports `(phase, 0, total)`.
    pub(crate) fn start(
        progress: Option<Progress<'a>>,
        phase: &'a str,
        total: u64,
    ) -> Result<Self> {
        let mut ticker = Ticker {
            progress,
            phase,
            done: 0,
            total: total.max(1),
            due: Instant::now(),
            ticks: 0,
        };
        ticker.report()?;
        Ok(ticker)
    }

    fn report(&mut self) -> Result<()> {
        self.due = Instant::now() + REPORT_INTERVAL;
        match self.progress {
            Some(progress) => {
                progress.report(self.phase, self.done.min(self.total - 1), self.total)
            }
            None => Ok(()),
        }
    }

    /// One small piece of work done: every 64th looks at the clock and reports when due.
    #[inline]
    pub(crate) fn tick(&mut self) -> Result<()> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % 64 == 0 {
            self.poll()
        } else {
            Ok(())
        }
    }

    /// Reports when due.
    pub(crate) fn poll(&mut self) -> Result<()> {
        if self.progress.is_some() && Instant::now() >= self.due {
            self.report()
        } else {
            Ok(())
        }
    }

    /// `done` steps of the phase are over, in a loop: [`Ticker::tick`] with a new count.
    #[inline]
    pub(crate) fn advance(&mut self, done: u64) -> Result<()> {
        self.done = done;
        self.tick()
    }

    /// `done` steps of the phase are over (reported when due; the last step by [`Ticker::finish`]).
    pub(crate) fn set(&mut self, done: u64) -> Result<()> {
        self.done = done;
        self.poll()
    }

    /// Ends the phase: reports `(phase, total, total)`.
    pub(crate) fn finish(self) -> Result<()> {
        match self.progress {
            Some(progress) => progress.report(self.phase, self.total, self.total),
            None => Ok(()),
        }
    }
}

/// How the builder may use memory, and whom it tells how far it got.
#[derive(Clone, Copy, Default)]
pub struct BuildOptions<'a> {
    /// Bytes of working memory a partition may take (None: one partition, as large as the data).
    pub partition_memory: Option<u64>,
    /// Folder for the spilled partitions (None: the system's temporary folder).
    pub temp_dir: Option<&'a std::path::Path>,
    /// Told how far the build got; it may stop the build.
    pub progress: Option<Progress<'a>>,
    /// Partitions other processes built and spilled ([`spill_partition`], a cluster build), in the
    /// order of their value ranges: assembled instead of built (None: built here).
    pub spilled: Option<&'a [PathBuf]>,
}

/// One level of the unpruned trie under construction.
#[derive(Default)]
struct Level {
    /// Index of every node's parent in the previous level.
    parent: Vec<u32>,
    label: Vec<u32>,
    /// Range of every node in the instance order array (dropped once the level is expanded).
    range: Vec<(u32, u32)>,
    default: Vec<u32>,
    pure: Vec<bool>,
    /// Start of every node's distribution in `dist_bytes`, plus the end.
    dist_start: Vec<u32>,
    dist_bytes: Vec<u8>,
    /// Instance base only: the one instance below each single-instance node (else `u32::MAX`).
    single: Vec<u32>,
}

impl Level {
    fn len(&self) -> usize {
        self.label.len()
    }
}

/// Counts classes over ranges of instances with one dense scratch array, reused for every node.
struct DistributionCounter<'s> {
    counts: Vec<u32>,
    touched: Vec<u32>,
    stats: &'s ClassStats,
}

impl<'s> DistributionCounter<'s> {
    fn new(stats: &'s ClassStats) -> Self {
        DistributionCounter {
            counts: vec![0; stats.counts.len()],
            touched: Vec::new(),
            stats,
        }
    }

    /// Appends the distribution of the given classes to the level, default class first.
    fn push(&mut self, classes: impl Iterator<Item = u32>, level: &mut Level) {
        for c in classes {
            if self.counts[c as usize] == 0 {
                self.touched.push(c);
            }
            self.counts[c as usize] += 1;
        }
        let (counts, rank) = (&self.counts, &self.stats.rank);
        self.touched
            .sort_unstable_by_key(|&c| (std::cmp::Reverse(counts[c as usize]), rank[c as usize]));
        let mut writer = DistributionWriter::default();
        for &c in &self.touched {
            writer.push(
                &mut level.dist_bytes,
                rank[c as usize],
                self.counts[c as usize],
            );
            self.counts[c as usize] = 0;
        }
        level.default.push(self.touched[0]);
        level.pure.push(self.touched.len() == 1);
        level.dist_start.push(
            u32::try_from(level.dist_bytes.len())
                .expect("a trie level holds under 4 GiB of distributions"),
        );
        self.touched.clear();
    }
}

/// Sorts `ids` by the value of feature `f`; `keyed` is scratch space reused between calls.
fn sort_by_feature<I: Instances + ?Sized>(
    instances: &I,
    ids: &mut [u32],
    f: usize,
    keyed: &mut Vec<u64>,
) {
    if ids.len() <= 32 {
        ids.sort_unstable_by_key(|&i| instances.feature(i as usize, f));
        return;
    }
    keyed.clear();
    keyed.extend(
        ids.iter()
            .map(|&i| ((instances.feature(i as usize, f) as u64) << 32) | i as u64),
    );
    if keyed.len() > 1 << 16 {
        rayon::slice::ParallelSliceMut::par_sort_unstable(&mut keyed[..]);
    } else {
        keyed.sort_unstable();
    }
    for (slot, &k) in ids.iter_mut().zip(keyed.iter()) {
        *slot = k as u32;
    }
}

/// Builds the IGTree (TiMBL `-a1`): the trie in feature order `order`, nodes whose instances all share
/// one class not expanded, then pruned bottom-up (a leaf whose default equals its parent's is removed).
pub fn build_igtree<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    options: BuildOptions,
) -> Result<EncodedTrie> {
    Ok(build(instances, order, stats, TrieKind::IgTree, options)?.0)
}

/// The unpruned instance base of TRIBL2 and IB1, with the tails of its single-instance leaves.
pub struct InstanceBase {
    /// Every node with two or more instances is expanded, to depth W.
    pub trie: EncodedTrie,
    /// Per node: how many feature values its tail holds (W - depth for single-instance nodes).
    pub tail_offsets: PackedOffsets,
    /// The tails: the remaining feature values (in weight order) of each single-instance node.
    pub tail_values: IdVec,
}

/// Builds the instance base (TiMBL's IB1/TRIBL2 trie): the full trie in feature order `order`, except
/// that a node holding a single instance stores the rest of that instance as a tail instead of a chain.
pub fn build_instance_base<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    options: BuildOptions,
) -> Result<InstanceBase> {
    let (trie, tails) = build(instances, order, stats, TrieKind::InstanceBase, options)?;
    let (tail_offsets, tail_values) = tails.expect("the instance base has tails");
    Ok(InstanceBase {
        trie,
        tail_offsets,
        tail_values,
    })
}

/// Which trie a build makes, and so which nodes it expands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrieKind {
    /// The IGTree: nodes whose instances have more than one class are expanded.
    IgTree,
    /// The instance base: nodes holding more than one instance are expanded.
    InstanceBase,
}

impl TrieKind {
    /// The names [`TrieKind::name`] gives and `parse` reads, in the order of [`TrieKind::ALL`].
    pub const NAMES: [&'static str; 2] = ["igtree", "instance_base"];
    /// Every kind, in declaration order (a kind's index is its name's in [`TrieKind::NAMES`]).
    pub const ALL: [TrieKind; 2] = [TrieKind::IgTree, TrieKind::InstanceBase];

    /// The trie's name (`igtree`, `instance_base`).
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Its code in spilled partitions.
    pub(crate) fn code(self) -> u32 {
        match self {
            TrieKind::IgTree => 1,
            TrieKind::InstanceBase => 2,
        }
    }

    /// The inverse of [`TrieKind::code`].
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(TrieKind::IgTree),
            2 => Some(TrieKind::InstanceBase),
            _ => None,
        }
    }

    fn phase(self) -> &'static str {
        match self {
            TrieKind::IgTree => "building the IGTree (partitions)",
            TrieKind::InstanceBase => "building the instance base (partitions)",
        }
    }
}

impl std::str::FromStr for TrieKind {
    type Err = Error;

    /// A name of [`TrieKind::NAMES`].
    fn from_str(name: &str) -> Result<Self> {
        match Self::NAMES.iter().position(|&n| n == name) {
            Some(i) => Ok(Self::ALL[i]),
            None => Err(Error::unknown_name("trie", name, &Self::NAMES)),
        }
    }
}

/// Whether a build of `kind` expands the root, and so has partitions: there are features, and the
/// root's instances have more than one class (IGTree) or are more than one (instance base).
fn expands_root(kind: TrieKind, order: &[usize], stats: &ClassStats) -> bool {
    !order.is_empty()
        && match kind {
            TrieKind::IgTree => stats.counts.iter().filter(|&&c| c > 0).nth(1).is_some(),
            TrieKind::InstanceBase => stats.counts.iter().sum::<u64>() > 1,
        }
}

/// The partitions of a build of `kind`: ranges of the first feature's values (in feature `order`),
/// ascending, each holding at most `capacity` instances (a single value with more is a partition
/// of its own), together covering every symbol; none when the root is not expanded.
/// `histogram(feature)` gives how many instances hold each value of a feature (one count per
/// symbol), asked only when there are partitions.
pub fn plan_partitions(
    kind: TrieKind,
    order: &[usize],
    stats: &ClassStats,
    capacity: u64,
    histogram: impl FnOnce(usize) -> Vec<u64>,
) -> Vec<Range<u32>> {
    if !expands_root(kind, order, stats) {
        return Vec::new();
    }
    value_ranges(&histogram(order[0]), capacity)
}

/// Ranges of values, ascending, covering every value of `histogram` (a count per value), each
/// holding at most `capacity` counts (taken as 1 when 0; a single value with more is a range of
/// its own).
pub fn value_ranges(histogram: &[u64], capacity: u64) -> Vec<Range<u32>> {
    let capacity = capacity.max(1);
    let mut ranges = Vec::new();
    let (mut start, mut held) = (0u32, 0u64);
    for (value, &count) in histogram.iter().enumerate() {
        if held > 0 && held.saturating_add(count) > capacity {
            ranges.push(start..value as u32);
            (start, held) = (value as u32, 0);
        }
        held = held.saturating_add(count);
    }
    ranges.push(start..histogram.len() as u32);
    ranges
}

/// How many instances hold each value of feature `f` (one count per symbol).
fn histogram<I: Instances + ?Sized>(instances: &I, f: usize, n_symbols: usize) -> Vec<u64> {
    let mut histogram = vec![0u64; n_symbols];
    for i in 0..instances.len() {
        histogram[instances.feature(i, f) as usize] += 1;
    }
    histogram
}

/// The root of a build: every instance's class in one distribution.
fn root_level<I: Instances + ?Sized>(instances: &I, stats: &ClassStats) -> Level {
    let mut root = Level {
        dist_start: vec![0],
        ..Level::default()
    };
    DistributionCounter::new(stats)
        .push((0..instances.len()).map(|i| instances.class(i)), &mut root);
    root
}

/// The kept levels of one partition: the subtrees of the root's children whose value (of the
/// first feature in `order`) lies in `values`, pruned against `root_default` (IGTree).
fn partition_levels<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    kind: TrieKind,
    values: &Range<u32>,
    root_default: u32,
    ticker: &mut Ticker,
) -> Result<Vec<LevelOut>> {
    let n = instances.len() as u32;
    let ids: Vec<u32> = match values.start == 0 && values.end as usize >= stats.counts.len() {
        true => (0..n).collect(),
        false => (0..n)
            .filter(|&i| values.contains(&instances.feature(i as usize, order[0])))
            .collect(),
    };
    let levels = build_levels(instances, order, stats, kind, ids, ticker)?;
    level_outs(instances, order, levels, kind, root_default, ticker)
}

/// Builds one partition of a trie of `kind` (the subtrees whose first value in feature `order`
/// lies in `values`, one of [`plan_partitions`]' ranges) and writes it to `path`, atomically: a
/// cluster build's task ([`crate::cluster`]), whose files [`BuildOptions::spilled`] then assembles.
/// Running it twice writes the same file. What it is given is checked first (an
/// [`Error::InvalidInput`], never a panic): `stats` must count `n_symbols` symbols (every class of
/// the instances lies below it) and these instances, `order` must order their features.
pub fn spill_partition<I: Instances + ?Sized>(
    instances: &I,
    n_symbols: usize,
    order: &[usize],
    stats: &ClassStats,
    kind: TrieKind,
    values: Range<u32>,
    path: &Path,
) -> Result<()> {
    let counted: u64 = stats.counts.iter().sum();
    if stats.counts.len() != n_symbols || counted != instances.len() as u64 {
        return Err(Error::InvalidInput(format!(
            "class counts of {counted} instances over {} symbols for a text of {} instances over \
             {n_symbols}",
            stats.counts.len(),
            instances.len()
        )));
    }
    let mut features = order.to_vec();
    features.sort_unstable();
    if !features.into_iter().eq(0..instances.width()) {
        return Err(Error::InvalidInput(format!(
            "the feature order {order:?} is not an order of the {} features",
            instances.width()
        )));
    }
    let root_default = root_level(instances, stats).default[0];
    let mut ticker = Ticker::start(None, kind.phase(), 1)?;
    let levels = partition_levels(
        instances,
        order,
        stats,
        kind,
        &values,
        root_default,
        &mut ticker,
    )?;
    let of = partition_of(instances, order, stats, kind, values);
    Partition::write_file(&levels, &of, path)?;
    ticker.finish()
}

/// What a partition of this build is: its trie, width, values and instances, and the build's
/// fingerprint ([`build_fingerprint`]).
fn partition_of<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    kind: TrieKind,
    values: Range<u32>,
) -> PartitionOf {
    PartitionOf {
        kind,
        width: order.len() as u32,
        values,
        instances: instances.len() as u64,
        build: build_fingerprint(instances, order, stats),
    }
}

/// A build's fingerprint, written into its spilled partitions and checked when they are assembled:
/// the xxh3-64 hash of its instances' fingerprint ([`Instances::fingerprint`]: for text, its token
/// ids and block boundaries), its feature order (which follows from the weighting and the weights)
/// and its class statistics (counts and tie-break ranks per symbol), so that a partition spilled by
/// another build, even of as many instances with the same counts, is refused rather than assembled
/// into a wrong trie.
fn build_fingerprint<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
) -> u64 {
    let mut hasher = Xxh3::new();
    for part in [
        instances.fingerprint(),
        order.len() as u64,
        stats.counts.len() as u64,
    ] {
        hasher.update(&part.to_le_bytes());
    }
    for &f in order {
        hasher.update(&(f as u64).to_le_bytes());
    }
    for (&count, &rank) in stats.counts.iter().zip(&stats.rank) {
        hasher.update(&count.to_le_bytes());
        hasher.update(&rank.to_le_bytes());
    }
    hasher.digest()
}

/// Opens the partitions other processes spilled for this build, checking that they are of this
/// trie and these instances and that their value ranges follow each other from the first symbol
/// to the last (or that there are none, when the root is not expanded).
fn open_spilled<I: Instances + ?Sized>(
    paths: &[PathBuf],
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    kind: TrieKind,
) -> Result<Vec<Partition>> {
    let partitions = paths
        .iter()
        .map(|p| Partition::open(p))
        .collect::<Result<Vec<_>>>()?;
    let mut next = 0;
    for (partition, path) in partitions.iter().zip(paths) {
        let of = partition.of().expect("opened from a file");
        let expected = partition_of(instances, order, stats, kind, next..of.values.end);
        if of.build != expected.build {
            return Err(Error::InvalidInput(format!(
                "{}: a spilled partition of another build (its text, feature order or class \
                 statistics differ from this build's)",
                crate::error::shown(path)
            )));
        }
        if *of != expected || of.values.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: a spilled partition of another build, or out of order: {of:?} where {expected:?} was due",
                crate::error::shown(path)
            )));
        }
        next = of.values.end;
    }
    let complete = match expands_root(kind, order, stats) {
        true => next as usize == stats.counts.len(),
        false => partitions.is_empty(),
    };
    if !complete {
        return Err(Error::InvalidInput(format!(
            "the {} partitions given do not cover the {} trie's {} symbols",
            partitions.len(),
            kind.name(),
            stats.counts.len()
        )));
    }
    Ok(partitions)
}

/// Builds a trie (and, for the instance base, its tails) in partitions that fit
/// `options.partition_memory`, or assembles it from `options.spilled`.
fn build<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    kind: TrieKind,
    options: BuildOptions,
) -> Result<(EncodedTrie, Option<Tails>)> {
    let n = instances.len();
    let n_symbols = stats.counts.len();
    let root = root_level(instances, stats);
    let root_default = root.default[0];
    let (mut partitions, mut ticker) = match options.spilled {
        Some(paths) => {
            let partitions = open_spilled(paths, instances, order, stats, kind)?;
            // One step: assembling the levels.
            (
                partitions,
                Ticker::start(options.progress, kind.phase(), 1)?,
            )
        }
        None => {
            let capacity = partition_capacity(options.partition_memory);
            let ranges = plan_partitions(kind, order, stats, capacity, |f| {
                histogram(instances, f, n_symbols)
            });
            // One step per partition, and a last one: assembling the levels.
            let mut ticker =
                Ticker::start(options.progress, kind.phase(), ranges.len() as u64 + 1)?;
            let mut partitions = Vec::with_capacity(ranges.len());
            for (s, values) in ranges.iter().enumerate() {
                ticker.set(s as u64)?;
                let levels = partition_levels(
                    instances,
                    order,
                    stats,
                    kind,
                    values,
                    root_default,
                    &mut ticker,
                )?;
                partitions.push(if ranges.len() == 1 {
                    Partition::InMemory(levels)
                } else {
                    let of = partition_of(instances, order, stats, kind, values.clone());
                    Partition::spill(levels, of, options.temp_dir)?
                });
            }
            ticker.set(ranges.len() as u64)?;
            (partitions, ticker)
        }
    };
    // The root: its distribution, its kept children, its tail when it holds a single instance.
    let mut root_out = LevelOut {
        labels: vec![0],
        dist_lens: vec![root.dist_bytes.len() as u32],
        dist_bytes: root.dist_bytes,
        ..LevelOut::default()
    };
    let single_root = kind == TrieKind::InstanceBase && n == 1;
    root_out
        .tail_lens
        .push(if single_root { order.len() as u32 } else { 0 });
    if single_root {
        root_out
            .tail_values
            .extend(order.iter().map(|&f| instances.feature(0, f)));
    }
    let depth = partitions.iter().map(Partition::depth).max().unwrap_or(0);
    let mut trie = TrieWriter::new(n_symbols as u32, stats, kind == TrieKind::InstanceBase);
    let mut level: Vec<LevelOut> = Vec::with_capacity(partitions.len());
    for partition in &mut partitions {
        level.push(match partition.depth() >= 1 {
            true => partition.take_level(1)?,
            false => LevelOut::default(),
        });
    }
    root_out
        .children
        .push(level.iter().map(|l| l.labels.len() as u32).sum());
    trie.append(&root_out, &mut ticker)?;
    trie.check_level(1)?;
    for d in 1..=depth {
        // The nodes of level d, as many as the children the level above counted.
        let mut nodes = 0u64;
        for (s, partition) in partitions.iter_mut().enumerate() {
            let out = match d {
                1 => std::mem::take(&mut level[s]),
                _ if partition.depth() >= d => partition.take_level(d)?,
                _ => continue,
            };
            nodes += out.labels.len() as u64;
            trie.append(&out, &mut ticker)?;
        }
        trie.check_level(nodes)?;
    }
    trie.check_level(0)?;
    let built = trie.finish();
    ticker.finish()?;
    Ok(built)
}

/// The instance base's tails: their lengths per node, and their values.
type Tails = (PackedOffsets, IdVec);

/// Appends levels breadth-first to the stored form.
struct TrieWriter {
    labels: IdVec,
    children: PackedOffsets,
    dist_offsets: PackedOffsets,
    dist_bytes: Vec<u8>,
    /// The instance base only.
    tails: Option<Tails>,
    classes: Vec<u32>,
    total_nodes: Vec<u32>,
    total_counts: Vec<u64>,
    /// The nodes due in the level being appended, and the children of those appended so far.
    due: u64,
    children_counted: u64,
}

impl TrieWriter {
    fn new(n_symbols: u32, stats: &ClassStats, with_tails: bool) -> Self {
        TrieWriter {
            labels: IdVec::for_symbols(n_symbols),
            children: PackedOffsets::default(),
            dist_offsets: PackedOffsets::default(),
            dist_bytes: Vec::new(),
            tails: with_tails.then(|| (PackedOffsets::default(), IdVec::for_symbols(n_symbols))),
            classes: stats.by_rank.clone(),
            total_nodes: Vec::new(),
            total_counts: Vec::new(),
            due: 1,
            children_counted: 0,
        }
    }

    /// Ends a level of `nodes` nodes: an error unless the level above counted as many children.
    fn check_level(&mut self, nodes: u64) -> Result<()> {
        if nodes != self.due {
            return Err(Error::InvalidInput(format!(
                "the partitions' levels do not fit together: a level of {nodes} nodes where {} were due",
                self.due
            )));
        }
        self.due = std::mem::take(&mut self.children_counted);
        Ok(())
    }

    fn append(&mut self, level: &LevelOut, ticker: &mut Ticker) -> Result<()> {
        let mut dist_at = 0;
        for j in 0..level.labels.len() {
            ticker.tick()?;
            let len = level.dist_lens[j] as usize;
            if len as u64 >= STORED_TOTAL_BYTES {
                let bytes = &level.dist_bytes[dist_at..dist_at + len];
                self.total_nodes.push(self.labels.view().len() as u32);
                self.total_counts.push(
                    Entries::new(bytes, &self.classes)
                        .map(|(_, c)| c as u64)
                        .sum(),
                );
            }
            dist_at += len;
            self.labels.push(level.labels[j]);
            self.children.push(level.children[j] as u64);
            self.children_counted += level.children[j] as u64;
            self.dist_offsets.push(len as u64);
        }
        self.dist_bytes.extend_from_slice(&level.dist_bytes);
        if let Some((offsets, values)) = &mut self.tails {
            for &len in &level.tail_lens {
                offsets.push(len as u64);
            }
            for &v in &level.tail_values {
                values.push(v);
            }
        }
        Ok(())
    }

    fn finish(self) -> (EncodedTrie, Option<Tails>) {
        let trie = EncodedTrie {
            labels: self.labels,
            children: self.children.finish(),
            dist_offsets: self.dist_offsets.finish(),
            dist_bytes: self.dist_bytes,
            classes: self.classes,
            total_nodes: self.total_nodes,
            total_counts: self.total_counts,
        };
        (trie, self.tails.map(|(o, v)| (o.finish(), v)))
    }
}

/// Builds the unpruned levels below a root that holds `ids` and is always expanded: level 0 is that
/// root, level d holds the nodes matched on d features.
fn build_levels<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    kind: TrieKind,
    mut ids: Vec<u32>,
    ticker: &mut Ticker,
) -> Result<Vec<Level>> {
    let n = ids.len();
    let mut counter = DistributionCounter::new(stats);
    let mut keyed: Vec<u64> = Vec::new();
    let mut root = Level {
        parent: vec![0],
        label: vec![0],
        range: vec![(0, n as u32)],
        dist_start: vec![0],
        ..Level::default()
    };
    counter.push(ids.iter().map(|&i| instances.class(i as usize)), &mut root);
    let mut levels = vec![root];
    for (depth, &feature) in order.iter().enumerate() {
        let parent_level = levels.last_mut().expect("the root level exists");
        let ranges = std::mem::take(&mut parent_level.range);
        let mut next = Level {
            dist_start: vec![0],
            ..Level::default()
        };
        if kind == TrieKind::InstanceBase {
            parent_level.single = ranges
                .iter()
                .map(|&(start, end)| {
                    if end - start == 1 {
                        ids[start as usize]
                    } else {
                        u32::MAX
                    }
                })
                .collect();
        }
        for (j, &(start, end)) in ranges.iter().enumerate() {
            ticker.tick()?;
            let leaf = depth > 0
                && match kind {
                    TrieKind::IgTree => parent_level.pure[j],
                    TrieKind::InstanceBase => end - start == 1,
                };
            if leaf {
                continue;
            }
            let slice = &mut ids[start as usize..end as usize];
            sort_by_feature(instances, slice, feature, &mut keyed);
            let mut run = 0;
            while run < slice.len() {
                let value = instances.feature(slice[run] as usize, feature);
                let mut run_end = run + 1;
                while run_end < slice.len()
                    && instances.feature(slice[run_end] as usize, feature) == value
                {
                    run_end += 1;
                }
                next.parent.push(j as u32);
                next.label.push(value);
                next.range
                    .push((start + run as u32, start + run_end as u32));
                counter.push(
                    slice[run..run_end]
                        .iter()
                        .map(|&i| instances.class(i as usize)),
                    &mut next,
                );
                run = run_end;
            }
        }
        if next.len() == 0 {
            break;
        }
        levels.push(next);
        ticker.poll()?;
    }
    // Nodes at depth W are never expanded and have no tail.
    let last = levels.last_mut().expect("the root level exists");
    if last.single.is_empty() {
        last.single = vec![u32::MAX; last.len()];
    }
    Ok(levels)
}

/// IGTree pruning: marks, bottom-up, every leaf whose default class equals its parent's for removal.
/// `keep[d][j]` tells whether node j of level d survives.
fn prune(levels: &[Level]) -> Vec<Vec<bool>> {
    let mut keep: Vec<Vec<bool>> = levels.iter().map(|l| vec![false; l.len()]).collect();
    keep[0][0] = true;
    let mut has_kept_child: Vec<bool> = Vec::new();
    for d in (1..levels.len()).rev() {
        let (level, parent) = (&levels[d], &levels[d - 1]);
        let mut parent_has_kept_child = vec![false; parent.len()];
        for (j, kept) in keep[d].iter_mut().enumerate() {
            let p = level.parent[j] as usize;
            let internal = has_kept_child.get(j).copied().unwrap_or(false);
            *kept = internal || level.default[j] != parent.default[p];
            parent_has_kept_child[p] |= *kept;
        }
        has_kept_child = parent_has_kept_child;
    }
    keep
}

/// The kept nodes of levels 1.. (IGTree: pruned against `root_default`, the real root's default;
/// instance base: all, with their tails), breadth-first.
fn level_outs<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    mut levels: Vec<Level>,
    kind: TrieKind,
    root_default: u32,
    ticker: &mut Ticker,
) -> Result<Vec<LevelOut>> {
    levels[0].default[0] = root_default;
    let keep = (kind == TrieKind::IgTree).then(|| prune(&levels));
    let kept = |d: usize, j: usize| keep.as_ref().is_none_or(|k| k[d][j]);
    let mut outs = Vec::with_capacity(levels.len() - 1);
    for d in 1..levels.len() {
        let mut kept_children = vec![0u32; levels[d].len()];
        if let Some(below) = levels.get(d + 1) {
            for j in 0..below.len() {
                if kept(d + 1, j) {
                    kept_children[below.parent[j] as usize] += 1;
                }
            }
        }
        let level = std::mem::take(&mut levels[d]);
        let mut out = LevelOut::default();
        for (j, &degree) in kept_children.iter().enumerate() {
            ticker.tick()?;
            if !kept(d, j) {
                continue;
            }
            out.labels.push(level.label[j]);
            out.children.push(degree);
            let dist = level.dist_start[j] as usize..level.dist_start[j + 1] as usize;
            out.dist_lens.push(dist.len() as u32);
            out.dist_bytes.extend_from_slice(&level.dist_bytes[dist]);
            if kind == TrieKind::InstanceBase {
                let single = level.single[j];
                if single == u32::MAX {
                    out.tail_lens.push(0);
                } else {
                    out.tail_lens.push((order.len() - d) as u32);
                    out.tail_values.extend(
                        order[d..]
                            .iter()
                            .map(|&f| instances.feature(single as usize, f)),
                    );
                }
            }
        }
        outs.push(out);
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_kinds_parse_their_names() {
        for kind in TrieKind::ALL {
            assert_eq!(kind.name().parse::<TrieKind>().unwrap(), kind);
        }
        assert_eq!(TrieKind::IgTree.name(), "igtree");
        let err = "ig_tree".parse::<TrieKind>().unwrap_err().to_string();
        assert!(
            err.contains("igtree") && err.contains("instance_base"),
            "{err}"
        );
    }
    use crate::instances::InstanceTable;
    use crate::trie::{TrieView, ROOT};

    fn dist(v: &TrieView, n: u32) -> Vec<(u32, u32)> {
        v.distribution(n).collect()
    }

    fn build(rows: Vec<u32>, width: usize, n_symbols: usize, order: &[usize]) -> EncodedTrie {
        let t = InstanceTable::new(rows, width).unwrap();
        let stats = ClassStats::new(&t, n_symbols);
        build_igtree(&t, order, &stats, BuildOptions::default()).unwrap()
    }

    #[test]
    fn spilled_levels_that_do_not_fit_together_are_an_error() {
        // Level 1 holds the node of feature 1's value 1, with one child (value 9) in level 2; the
        // spilled file is rewritten (a whole, checksummed file of this build) with two children.
        let rows = vec![8, 1, 5, 8, 1, 5, 9, 1, 6, 8, 2, 5];
        let t = InstanceTable::new(rows, 2).unwrap();
        let stats = ClassStats::new(&t, 10);
        let (order, kind) = ([1, 0], TrieKind::IgTree);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whole.partition");
        let values = 0..10;
        spill_partition(&t, 10, &order, &stats, kind, values.clone(), &path).unwrap();
        let paths = [path.clone()];
        let spilled = || BuildOptions {
            spilled: Some(&paths),
            ..BuildOptions::default()
        };
        let whole = build_igtree(&t, &order, &stats, BuildOptions::default()).unwrap();
        let assembled = build_igtree(&t, &order, &stats, spilled()).unwrap();
        assert_eq!(assembled.view().node_count(), whole.view().node_count());
        let mut partition = Partition::open(&path).unwrap();
        let mut levels: Vec<LevelOut> = (1..=partition.depth())
            .map(|d| partition.take_level(d).unwrap())
            .collect();
        assert_eq!(levels[0].children, vec![1]);
        levels[0].children[0] = 2;
        let of = partition_of(&t, &order, &stats, kind, values);
        Partition::write_file(&levels, &of, &path).unwrap();
        let Err(err) = build_igtree(&t, &order, &stats, spilled()) else {
            panic!("levels that do not fit together were assembled");
        };
        let err = err.to_string();
        assert!(
            err.contains(
                "the partitions' levels do not fit together: a level of 1 nodes where 2 were due"
            ),
            "{err}"
        );
    }

    #[test]
    fn pure_root_is_a_single_node() {
        let trie = build(vec![1, 2, 7, 3, 4, 7], 2, 8, &[1, 0]);
        assert_eq!(trie.view().node_count(), 1);
        assert_eq!(dist(&trie.view(), ROOT), vec![(7, 2)]);
        trie.view().validate(8).unwrap();
    }

    #[test]
    fn leaves_agreeing_with_parent_are_pruned() {
        // Feature order [0]. Value 1 -> classes {5,5,6}: default 5 = root default, but value 1 has a
        // mixed distribution. Value 2 -> class 6 (differs from root default 5): kept.
        // Value 3 -> class 5 (same as root default): pruned.
        let rows = vec![1, 5, 1, 5, 1, 6, 2, 6, 3, 5];
        let trie = build(rows, 1, 8, &[0]);
        let v = trie.view();
        v.validate(8).unwrap();
        assert_eq!(v.default_class(ROOT), 5);
        assert_eq!(dist(&v, ROOT), vec![(5, 3), (6, 2)]);
        assert_eq!(v.child(ROOT, 3), None, "pruned: same default as the root");
        assert_eq!(v.child(ROOT, 1), None, "pruned: same default as the root");
        let two = v.child(ROOT, 2).expect("kept: default 6 differs");
        assert_eq!(dist(&v, two), vec![(6, 1)]);
        assert_eq!(v.node_count(), 2);
    }

    #[test]
    fn internal_node_with_same_default_is_kept_when_a_child_differs() {
        // Order [1, 0]. Feature 1 value 1 covers classes 5,5,6 (default 5, like the root); under it,
        // feature 0 value 9 -> class 6 differs, so both nodes stay.
        let rows = vec![8, 1, 5, 8, 1, 5, 9, 1, 6, 8, 2, 5];
        let trie = build(rows, 2, 10, &[1, 0]);
        let v = trie.view();
        v.validate(10).unwrap();
        let one = v.child(ROOT, 1).expect("internal node kept");
        assert_eq!(v.default_class(one), 5);
        let leaf = v.child(one, 9).expect("differing leaf kept");
        assert_eq!(v.default_class(leaf), 6);
        assert_eq!(v.child(one, 8), None);
        assert_eq!(v.child(ROOT, 2), None);
    }

    #[test]
    fn default_ties_break_on_global_frequency_then_first_occurrence() {
        // Global counts: 4 x2 (first seen at 0), 3 x2 (first seen at 2), 7 x1.
        // Node of value 1 holds {3:1, 7:1}: tie -> 3 (more frequent globally).
        // Node of value 2 holds {4:1, 3:1}: tie on count and global frequency -> 4 (seen first).
        let rows = vec![2, 4, 0, 4, 1, 3, 1, 7, 2, 3];
        let trie = build(rows, 1, 8, &[0]);
        let v = trie.view();
        assert_eq!(v.default_class(ROOT), 4);
        let one = v.child(ROOT, 1).unwrap();
        assert_eq!(dist(&v, one), vec![(3, 1), (7, 1)]);
        // Value 2's default (4) equals the root's, so it is pruned.
        assert_eq!(v.child(ROOT, 2), None);
    }

    #[test]
    fn depth_is_bounded_by_width() {
        let rows = vec![1, 1, 5, 1, 1, 6, 1, 1, 5];
        let trie = build(rows, 2, 8, &[0, 1]);
        let v = trie.view();
        v.validate(8).unwrap();
        // The two instances with identical features but classes 5,5,6 end in one leaf at depth 2 with
        // default 5 = root default: everything is pruned.
        assert_eq!(v.node_count(), 1);
    }
}
