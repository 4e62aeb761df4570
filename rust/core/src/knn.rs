//! k-nearest-neighbour classification over the instance base: IB1 (weighted overlap over all
//! instances) and TRIBL2 (trie descent, then IB1 below the last matched node), as in TiMBL `-a0` and
//! `-a4`. Two exact searches give the same neighbours:
//! - over posting lists ([`crate::postings`]), when the model has them: the lists of the query's
//!   values are read shortest first, each instance's distance computed when it is first met, until
//!   the weights of the lists read exceed the k-th nearest distance found, so that an instance
//!   in none of them is farther than every neighbour; the long lists are read together, skipping
//!   what cannot come near enough (WAND); a query none of whose values occur answers with the node's
//!   own distribution (all its instances tie); a query the lists cannot settle (the instances
//!   matching nothing could still be among the neighbours) goes to the trie walk;
//! - branch and bound over the trie: features are visited in weight order, the matching arc first,
//!   and a branch is cut as soon as its partial distance exceeds the current k-th nearest
//!   distance.
//!
//! The rules, TiMBL's: the distance of two instances is the summed weight of the features where they
//! differ (weighted overlap); `k` counts nearest *distances*, and every instance at one of them votes
//! with its class ([`Vote`] weighs it by its distance); a tie for the top is decided by one more
//! distance (k + 1, found by a second search) when that has a single winner, else by the global tie-break rank of the classes
//! ([`crate::classes`]).

use crate::error::{positive_finite, Error};
use crate::ids::Ids;
use crate::instances::MAX_WIDTH;
use crate::offsets::OffsetsView;
use crate::postings::Postings;
use crate::trie::{Corrupt, TrieView, ROOT};

const BAD_TAIL: Corrupt = Corrupt("a tail of the instance base lies outside the tails");
const TOO_DEEP: Corrupt = Corrupt("the instance base is deeper than the model's width");
const BAD_PARENT: Corrupt = Corrupt("a node of the instance base has no parent");
const BAD_SPAN: Corrupt = Corrupt("a node of the instance base has no posting span");

/// Posting lists up to this long are read whole, the longer ones together (WAND).
const WHOLE_LIST_MAX: usize = 256;

/// How far a sum of `n` weights totalling `sum` in one order may lie from the same sum in another
/// (each addition rounds by at most one part in 2^53 of the sum so far).
fn sum_rounding(n: usize, sum: f64) -> f64 {
    2.0 * n as f64 * f64::EPSILON * (1.0 + sum)
}

/// Distances closer than this are the same distance (sums of the same weights in another order).
const SAME_DISTANCE: f64 = 1e-9;

/// How the neighbours' classes are weighed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Vote {
    /// Every neighbour counts 1 (TiMBL's default, `-d Z`).
    Majority,
    /// 1 / (distance + epsilon) (`-d ID`).
    InverseDistance,
    /// exp(-alpha * distance) (`-d ED:alpha`), at least `f64::EPSILON`: TiMBL's floor (with
    /// `-d ED:1e300` it reports each class's count times 2.22e-16), so a huge alpha leaves the
    /// counts to decide instead of every vote 0.
    ExponentialDecay { alpha: f64 },
}

impl Vote {
    /// The names [`Vote::name`] prints and [`Vote::parse`] reads.
    pub const NAMES: [&'static str; 3] = ["majority", "inverse_distance", "exponential_decay"];

    /// The vote named `name`; `decay` is the alpha of `exponential_decay`, ignored by the other
    /// votes but checked for every vote (positive and finite), so that an argument has one rule
    /// whatever the others are.
    pub fn parse(name: &str, decay: f64) -> crate::Result<Vote> {
        let vote = match name {
            "majority" => Vote::Majority,
            "inverse_distance" => Vote::InverseDistance,
            "exponential_decay" => Vote::ExponentialDecay { alpha: decay },
            other => return Err(Error::unknown_name("vote", other, &Self::NAMES)),
        };
        positive_finite("decay", decay)?;
        Ok(vote)
    }

    /// The vote's name (`majority`, `inverse_distance`, `exponential_decay`).
    pub fn name(self) -> &'static str {
        match self {
            Vote::Majority => "majority",
            Vote::InverseDistance => "inverse_distance",
            Vote::ExponentialDecay { .. } => "exponential_decay",
        }
    }

    fn weight(self, distance: f64) -> f64 {
        match self {
            Vote::Majority => 1.0,
            Vote::InverseDistance => 1.0 / (distance + 1e-7),
            Vote::ExponentialDecay { alpha } => (-alpha * distance).exp().max(f64::EPSILON),
        }
    }
}

/// Options of a k-NN query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnnOptions {
    /// How many nearest *distances* take part: every instance at a tied distance votes.
    pub k: usize,
    pub vote: Vote,
}

impl Default for KnnOptions {
    fn default() -> Self {
        KnnOptions {
            k: 1,
            vote: Vote::Majority,
        }
    }
}

/// The answer of a k-NN query.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbourhood {
    /// (class, vote) pairs, the winner first, then by descending vote and tie-break rank.
    pub votes: Vec<(u32, f64)>,
    /// Distance of the nearest neighbours.
    pub distance: f64,
    /// Features matched by the trie descent before the search (TRIBL2), or 0 (IB1).
    pub depth: u32,
    /// The nearest distances (up to k), each with the nodes whose instances lie at it: leaves, or
    /// nodes standing for all the instances below them.
    pub nearest: Vec<(f64, Vec<u32>)>,
}

/// A neighbour as [`InstanceBaseView::neighbour`] shows it: its feature values in weight order (None
/// past a node that stands for several instances, which differ there) and its class counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    pub distance: f64,
    pub values: Vec<Option<u32>>,
    pub counts: Vec<(u32, u64)>,
}

/// The stored instance base: the unpruned trie and the tails of its single-instance nodes.
#[derive(Clone, Copy, Debug)]
pub struct InstanceBaseView<'a> {
    pub trie: TrieView<'a>,
    pub tail_offsets: OffsetsView<'a>,
    pub tail_values: Ids<'a>,
}

impl<'a> InstanceBaseView<'a> {
    /// The tail of node `n`: positions in `tail_values` (empty unless `n` holds a single instance
    /// above depth W).
    #[inline]
    fn tail(&self, n: u32) -> Result<std::ops::Range<usize>, Corrupt> {
        self.tail_ids(self.tail_offsets.range(n as usize))
    }

    /// Node `n` at `distance` as a neighbour: the labels of the path to it (found by the breadth-first
    /// numbering: a node's parent is the last node whose children start at or before it), its tail,
    /// then None up to `width`; its class counts.
    pub fn neighbour(&self, n: u32, distance: f64, width: usize) -> Result<Neighbour, Corrupt> {
        let trie = &self.trie;
        let mut path = Vec::new();
        let mut node = n;
        while node != ROOT {
            if path.len() >= width {
                return Err(TOO_DEEP);
            }
            path.push(trie.labels.try_get(node as usize).ok_or(BAD_PARENT)?);
            let (mut low, mut high) = (0u32, node);
            while low < high {
                let mid = low + (high - low) / 2;
                if trie.children(mid)?.start <= node as usize {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            let parent = low.checked_sub(1).ok_or(BAD_PARENT)?;
            if !trie.children(parent)?.contains(&(node as usize)) {
                return Err(BAD_PARENT);
            }
            node = parent;
        }
        path.reverse();
        let mut values: Vec<Option<u32>> = path.into_iter().map(Some).collect();
        for t in self.tail(n)? {
            values.push(Some(self.tail_values.try_get(t).ok_or(BAD_TAIL)?));
        }
        if values.len() > width {
            return Err(TOO_DEEP);
        }
        values.resize(width, None);
        let mut counts = Vec::new();
        let mut entries = trie.entries(n)?;
        while let Some((class, count)) = entries.try_next()? {
            counts.push((class, u64::from(count)));
        }
        Ok(Neighbour {
            distance,
            values,
            counts,
        })
    }

    /// Positions in `tail_values` of a stored tail range, checked to lie inside them.
    #[inline]
    fn tail_ids(&self, r: std::ops::Range<u64>) -> Result<std::ops::Range<usize>, Corrupt> {
        if r.end > self.tail_values.len() as u64 {
            return Err(BAD_TAIL);
        }
        Ok(r.start as usize..r.end as usize)
    }

    /// Checks, in constant time, that the arrays have consistent lengths (the quick open).
    pub(crate) fn check_lengths(&self, n_symbols: u32) -> Result<(), String> {
        self.trie.check_lengths(n_symbols)?;
        self.tail_offsets.check_lengths(self.trie.node_count())?;
        if self.tail_offsets.total() != self.tail_values.len() as u64 {
            return Err("tail lengths do not add up to the tail values".into());
        }
        Ok(())
    }

    /// Checks the tails against the trie: only single-instance leaves have one, of length W - depth.
    pub(crate) fn validate(&self, width: usize, n_symbols: u32) -> Result<(), String> {
        self.check_lengths(n_symbols)?;
        self.trie.validate(n_symbols)?;
        let nodes = self.trie.node_count();
        self.tail_offsets.validate(nodes)?;
        let mut depth = vec![0u8; nodes];
        let broken = |e: Corrupt| e.0.to_string();
        for n in 0..nodes as u32 {
            let d = depth[n as usize] as usize;
            let children = self.trie.children(n).map_err(broken)?;
            if d >= width && !children.is_empty() {
                return Err("the instance base is deeper than the width".into());
            }
            for c in children.clone() {
                depth[c] = d as u8 + 1;
            }
            let tail = self.tail(n).map_err(broken)?.len();
            let single = self.trie.total(n).map_err(broken)? == 1;
            let expected = if single && children.is_empty() {
                width - d
            } else {
                0
            };
            if tail != expected {
                return Err(format!("node {n} has a tail of the wrong length"));
            }
        }
        Ok(())
    }
}

/// The nearest distances found so far, each with the nodes whose instances lie at it.
struct Nearest {
    keep: usize,
    groups: Vec<(f64, Vec<u32>)>,
    /// The distance beyond which nothing can enter (kept up to date by `add`).
    bound: f64,
    /// What the search found broken, if anything: the bound is then -inf, which ends the search.
    broken: Option<Corrupt>,
}

impl Nearest {
    fn new(keep: usize) -> Self {
        Nearest {
            keep,
            groups: Vec::with_capacity(keep.min(64) + 1),
            bound: f64::INFINITY,
            broken: None,
        }
    }

    /// The distance beyond which nothing can enter.
    #[inline]
    fn bound(&self) -> f64 {
        self.bound
    }

    fn add(&mut self, distance: f64, node: u32) {
        if distance > self.bound {
            return;
        }
        let at = self
            .groups
            .partition_point(|g| g.0 < distance - SAME_DISTANCE);
        match self.groups.get_mut(at) {
            // A group's distance is its least member's, whichever search met them first.
            Some(g) if (g.0 - distance).abs() <= SAME_DISTANCE => {
                g.0 = g.0.min(distance);
                g.1.push(node);
            }
            _ => {
                self.groups.insert(at, (distance, vec![node]));
                self.groups.truncate(self.keep);
            }
        }
        if let Some(last) = self.groups.get(self.keep.wrapping_sub(1)) {
            self.bound = last.0 + SAME_DISTANCE;
        }
    }

    /// Records a broken structure and ends the search (nothing is within a bound of -inf).
    #[cold]
    fn fail(&mut self, c: Corrupt) {
        self.broken.get_or_insert(c);
        self.bound = f64::NEG_INFINITY;
    }
}

/// One k-NN query over an instance base.
pub struct Search<'q, 'a> {
    base: &'q InstanceBaseView<'a>,
    /// Query values in weight order.
    query: &'q [u32],
    /// Feature weights in weight order.
    weights: &'q [f64],
    /// The instance base's posting lists, when the search may use them.
    postings: Option<&'q Postings>,
}

impl<'q, 'a> Search<'q, 'a> {
    /// A query; `query` and `weights` are both in feature-weight order.
    pub fn new(base: &'q InstanceBaseView<'a>, query: &'q [u32], weights: &'q [f64]) -> Self {
        Search {
            base,
            query,
            weights,
            postings: None,
        }
    }

    /// The same query, searched over `postings` (built from the same instance base) where they
    /// answer it.
    pub fn with_postings(self, postings: Option<&'q Postings>) -> Self {
        Search { postings, ..self }
    }

    /// IB1: the k nearest distances over all instances.
    pub fn ib1(&self, options: KnnOptions, rank: &[u32]) -> Result<Neighbourhood, Corrupt> {
        self.knn_below(ROOT, 0, options, rank)
    }

    /// TRIBL2: descend while the query matches; an exact match answers with its leaf's distribution,
    /// otherwise IB1 runs over the instances below the last matched node, on the remaining features.
    pub fn tribl2(&self, options: KnnOptions, rank: &[u32]) -> Result<Neighbourhood, Corrupt> {
        let trie = &self.base.trie;
        let mut node = ROOT;
        let mut depth = 0;
        while depth < self.query.len() && !trie.children(node)?.is_empty() {
            match trie.try_child(node, self.query[depth])? {
                Some(c) => {
                    node = c;
                    depth += 1;
                }
                None => break,
            }
        }
        let tail = self.base.tail(node)?;
        if tail.len() > self.query.len() - depth {
            return Err(TOO_DEEP);
        }
        let tail_matches = tail
            .clone()
            .enumerate()
            .all(|(j, t)| self.base.tail_values.try_get(t) == Some(self.query[depth + j]));
        if depth == self.query.len() || (!tail.is_empty() && tail_matches) {
            let mut votes = Vec::new();
            let mut entries = trie.entries(node)?;
            while let Some((c, n)) = entries.try_next()? {
                votes.push((c, n as f64 * options.vote.weight(0.0)));
            }
            return Ok(Neighbourhood {
                votes: best_first(votes, rank)?,
                distance: 0.0,
                depth: depth as u32,
                nearest: vec![(0.0, vec![node])],
            });
        }
        self.knn_below(node, depth, options, rank)
    }

    fn knn_below(
        &self,
        node: u32,
        depth: usize,
        options: KnnOptions,
        rank: &[u32],
    ) -> Result<Neighbourhood, Corrupt> {
        let k = options.k.max(1);
        let trie = &self.base.trie;
        let groups = self.nearest_groups(node, depth, k)?;
        let votes_k = tally(trie, &groups, options.vote)?;
        // TiMBL's tie rule looks one distance further: searched again, only when the top is tied.
        let wider = || {
            tally(
                trie,
                &self.nearest_groups(node, depth, k.saturating_add(1))?,
                options.vote,
            )
        };
        let votes = resolve_ties(votes_k, wider, rank)?;
        Ok(Neighbourhood {
            votes,
            distance: groups.first().map_or(0.0, |g| g.0),
            depth: depth as u32,
            nearest: groups,
        })
    }

    /// The `keep` nearest distances below `node` (at depth `depth`), each with the nodes of its
    /// instances (leaves, or a node whose instances all lie at that distance): from the posting
    /// lists where they settle it, else from the trie walk.
    fn nearest_groups(
        &self,
        node: u32,
        depth: usize,
        keep: usize,
    ) -> Result<Vec<(f64, Vec<u32>)>, Corrupt> {
        let mut nearest = Nearest::new(keep);
        let listed = match self.postings {
            Some(postings) => self.search_postings(postings, node, depth, &mut nearest)?,
            None => false,
        };
        if !listed {
            nearest = Nearest::new(keep);
            self.visit(node, depth, 0.0, &mut nearest);
        }
        if let Some(c) = nearest.broken {
            return Err(c);
        }
        Ok(nearest.groups)
    }

    /// The nearest distances below `node` (at depth `from`) from the posting lists, as the module
    /// doc says; false when instances in none of the lists could still be among them (`nearest`
    /// is then incomplete, for the trie walk to start over).
    fn search_postings(
        &self,
        postings: &Postings,
        node: u32,
        from: usize,
        nearest: &mut Nearest,
    ) -> Result<bool, Corrupt> {
        let span = postings.span(node).ok_or(BAD_SPAN)?;
        let width = self.query.len();
        if width > MAX_WIDTH || self.weights.len() != width || from > width {
            return Err(TOO_DEEP);
        }
        if postings.width() != width {
            return Ok(false);
        }
        let mut lists: [(&[u32], usize); MAX_WIDTH] = [(&[], 0); MAX_WIDTH];
        for (slot, f) in lists.iter_mut().zip(from..width) {
            *slot = (postings.list(f, self.query[f], &span), f);
        }
        let lists = &mut lists[..width - from];
        lists.sort_unstable_by_key(|(list, _)| list.len());
        // The distance of an instance that matches no feature (summed in weight order).
        let all_weight = self.weights[from..].iter().fold(0.0, |d, w| d + w);
        if lists.iter().all(|(list, _)| list.is_empty()) {
            // No instance below `node` matches a feature: all are at one distance, and their votes
            // are the node's own class distribution.
            nearest.add(all_weight, node);
            return Ok(true);
        }
        // The features whose lists were read whole, and their summed weight: the least distance
        // of an instance in none of them.
        let mut read = [0usize; MAX_WIDTH];
        let mut n_read = 0;
        let mut read_weight = 0.0;
        for &(list, feature) in lists.iter() {
            if read_weight > nearest.bound() + sum_rounding(width, read_weight) {
                return Ok(true);
            }
            if list.len() > WHOLE_LIST_MAX {
                break;
            }
            for &instance in list {
                self.meet(postings, instance, from, &read[..n_read], nearest);
            }
            read[n_read] = feature;
            n_read += 1;
            read_weight += self.weights[feature];
        }
        // The long lists together, in instance order (WAND: Broder et al. 2003): an instance in
        // none of the lists read is at distance `all_weight` less the weights of the long lists it
        // is in, so one whose lists cannot add up to `needed` is skipped unread.
        let mut cursors: [(&[u32], f64); MAX_WIDTH] = [(&[], 0.0); MAX_WIDTH];
        let mut n = 0;
        for &(list, feature) in &lists[n_read..] {
            cursors[n] = (list, self.weights[feature]);
            n += 1;
        }
        let mut cursors = &mut cursors[..n];
        loop {
            cursors.sort_unstable_by_key(|(list, _)| list.first().copied().unwrap_or(u32::MAX));
            let live = cursors
                .iter()
                .take_while(|(list, _)| !list.is_empty())
                .count();
            cursors = &mut cursors[..live];
            let needed = all_weight - nearest.bound() - sum_rounding(width, all_weight);
            let mut sum = 0.0;
            let Some(pivot) = cursors.iter().position(|&(_, w)| {
                sum += w;
                sum >= needed
            }) else {
                break;
            };
            let target = cursors[pivot].0[0];
            if cursors[0].0[0] == target {
                self.meet(postings, target, from, &read[..n_read], nearest);
                for (list, _) in cursors.iter_mut() {
                    if list.first() == Some(&target) {
                        *list = &list[1..];
                    }
                }
            } else {
                for (list, _) in cursors[..pivot].iter_mut() {
                    *list = &list[list.partition_point(|&i| i < target)..];
                }
            }
        }
        Ok(all_weight > nearest.bound() + sum_rounding(width, all_weight))
    }

    /// Adds `instance` to `nearest` at its distance from the query (over the features from
    /// `from`), unless it matches a feature of `read`, whose lists met it before.
    #[inline]
    fn meet(
        &self,
        postings: &Postings,
        instance: u32,
        from: usize,
        read: &[usize],
        nearest: &mut Nearest,
    ) {
        let values = postings.values(instance);
        if read.iter().any(|&f| values[f] == self.query[f]) {
            return;
        }
        // Mismatches summed in weight order, as the trie walk sums them.
        let mut d = 0.0;
        let features = values[from..].iter().zip(&self.query[from..]);
        for ((v, q), w) in features.zip(&self.weights[from..]) {
            if v != q {
                d += w;
            }
        }
        nearest.add(d, postings.leaf(instance));
    }

    /// The trie walk below `node`; its distances sum the mismatches in weight order, as
    /// [`Search::search_postings`] must too (so that both give the same distances, bit for bit).
    fn visit(&self, node: u32, depth: usize, distance: f64, nearest: &mut Nearest) {
        let children = match self.base.trie.children(node) {
            Ok(children) => children,
            Err(c) => return nearest.fail(c),
        };
        // Only leaves have tails: skip the lookup for inner nodes.
        let tail = if children.is_empty() {
            self.base.tail_offsets.range(node as usize)
        } else {
            0..0
        };
        self.visit_with(node, children, tail, depth, distance, nearest);
    }

    /// Visits `node`, whose child range (checked) and stored tail range (not yet checked) the
    /// caller knows. What a damaged instance base breaks (a tail outside the tails, a trie deeper
    /// than the width) is recorded in `nearest`, which ends the search.
    fn visit_with(
        &self,
        node: u32,
        children: std::ops::Range<usize>,
        tail: std::ops::Range<u64>,
        depth: usize,
        distance: f64,
        nearest: &mut Nearest,
    ) {
        if distance > nearest.bound() {
            return;
        }
        if tail.start != tail.end {
            let tail = match self.base.tail_ids(tail) {
                Ok(tail) => tail,
                Err(c) => return nearest.fail(c),
            };
            let (Some(query), Some(weights)) = (
                self.query.get(depth..depth + tail.len()),
                self.weights.get(depth..depth + tail.len()),
            ) else {
                return nearest.fail(TOO_DEEP);
            };
            let mut d = distance;
            for ((t, &q), &w) in tail.zip(query).zip(weights) {
                if self.base.tail_values.try_get(t) != Some(q) {
                    d += w;
                    if d > nearest.bound() {
                        return;
                    }
                }
            }
            nearest.add(d, node);
            return;
        }
        if children.is_empty() {
            nearest.add(distance, node);
            return;
        }
        let (Some(&value), Some(&weight)) = (self.query.get(depth), self.weights.get(depth)) else {
            return nearest.fail(TOO_DEEP);
        };
        let trie = &self.base.trie;
        let matching = match trie.try_child(node, value) {
            Ok(matching) => matching,
            Err(c) => return nearest.fail(c),
        };
        if let Some(c) = matching {
            self.visit(c, depth + 1, distance, nearest);
        }
        let mismatch = distance + weight;
        if mismatch > nearest.bound() {
            return;
        }
        // Siblings are consecutive: walk their child and tail ranges instead of looking each up.
        let grandchildren = trie.children.ranges_from(children.start);
        let tails = self.base.tail_offsets.ranges_from(children.start);
        for ((c, grand), tail) in children.zip(grandchildren).zip(tails) {
            if mismatch > nearest.bound() {
                return;
            }
            if Some(c as u32) != matching {
                let grand = match trie.child_ids(c as u32, grand) {
                    Ok(grand) => grand,
                    Err(e) => return nearest.fail(e),
                };
                self.visit_with(c as u32, grand, tail, depth + 1, mismatch, nearest);
            }
        }
    }
}

/// Sums the (weighted) class counts of every node in the groups; sorted by class.
fn tally(
    trie: &TrieView,
    groups: &[(f64, Vec<u32>)],
    vote: Vote,
) -> Result<Vec<(u32, f64)>, Corrupt> {
    // Per group, each class's count summed exactly (in integers, so in any order of the nodes),
    // then weighed once by the group's distance.
    let mut votes: Vec<(u32, f64)> = Vec::new();
    let mut counts: Vec<(u32, u64)> = Vec::new();
    for (distance, nodes) in groups {
        counts.clear();
        for &n in nodes {
            let mut entries = trie.entries(n)?;
            while let Some((c, count)) = entries.try_next()? {
                counts.push((c, u64::from(count)));
            }
        }
        let w = vote.weight(*distance);
        votes.extend(summed(&mut counts).iter().map(|&(c, n)| (c, n as f64 * w)));
    }
    votes.sort_unstable_by_key(|v| v.0);
    votes.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 += later.1;
            true
        } else {
            false
        }
    });
    Ok(votes)
}

/// `counts` sorted by class, each class once with its counts summed (saturating).
fn summed(counts: &mut Vec<(u32, u64)>) -> &[(u32, u64)] {
    counts.sort_unstable_by_key(|c| c.0);
    counts.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 = kept.1.saturating_add(later.1);
            true
        } else {
            false
        }
    });
    counts
}

/// Orders the votes winner first, as TiMBL decides a tie for the top: retry with one more distance
/// (`wider`, k + 1 distances); if that has a single winner it decides and its votes are reported,
/// otherwise the tied classes of the k distances are ordered by the global tie-break rank (frequency,
/// then first occurrence).
fn resolve_ties(
    votes: Vec<(u32, f64)>,
    wider: impl FnOnce() -> Result<Vec<(u32, f64)>, Corrupt>,
    rank: &[u32],
) -> Result<Vec<(u32, f64)>, Corrupt> {
    let votes = best_first(votes, rank)?;
    if !top_is_tied(&votes) {
        return Ok(votes);
    }
    let wider = best_first(wider()?, rank)?;
    Ok(if top_is_tied(&wider) { votes } else { wider })
}

fn top_is_tied(votes: &[(u32, f64)]) -> bool {
    match votes {
        [first, second, ..] => second.1 >= first.1 - 1e-12 * first.1.abs(),
        _ => false,
    }
}

/// Sorts votes best first: by vote, then by tie-break rank. An empty list (no neighbour voted) or
/// a class without a rank is [`Corrupt`].
fn best_first(mut votes: Vec<(u32, f64)>, rank: &[u32]) -> Result<Vec<(u32, f64)>, Corrupt> {
    if votes.is_empty() || votes.iter().any(|v| v.0 as usize >= rank.len()) {
        return Err(Corrupt("no neighbour has a class"));
    }
    votes.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(rank[a.0 as usize].cmp(&rank[b.0 as usize]))
    });
    Ok(votes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{build_instance_base, BuildOptions};
    use crate::classes::ClassStats;
    use crate::instances::InstanceTable;

    // Symbols: features a..f = 1..6, q = 7 and z = 8 (never stored); classes X..V = 10..14.
    const A: u32 = 1;
    const B: u32 = 2;
    const C: u32 = 3;
    const D: u32 = 4;
    const E: u32 = 5;
    const F: u32 = 6;
    const Q: u32 = 7;
    const Z: u32 = 8;
    const X: u32 = 10;
    const Y: u32 = 11;
    const ZC: u32 = 12;
    const W: u32 = 13;
    const V: u32 = 14;
    /// Hand-picked weights, features already in weight order.
    const WEIGHTS: [f64; 3] = [3.0, 2.0, 1.0];

    fn answer(
        rows: &[[u32; 4]],
        query: [u32; 3],
        algorithm: &str,
        options: KnnOptions,
    ) -> Neighbourhood {
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        let table = InstanceTable::new(flat, 3).unwrap();
        let stats = ClassStats::new(&table, 15);
        let base =
            build_instance_base(&table, &[0, 1, 2], &stats, BuildOptions::default()).unwrap();
        let view = InstanceBaseView {
            trie: base.trie.view(),
            tail_offsets: base.tail_offsets.view(),
            tail_values: base.tail_values.view(),
        };
        view.validate(3, 15).unwrap();
        let search = Search::new(&view, &query, &WEIGHTS);
        match algorithm {
            "ib1" => search.ib1(options, &stats.rank),
            _ => search.tribl2(options, &stats.rank),
        }
        .unwrap()
    }

    fn k(k: usize) -> KnnOptions {
        KnnOptions {
            k,
            vote: Vote::Majority,
        }
    }

    const FOUR: [[u32; 4]; 4] = [[A, B, C, X], [A, B, D, Y], [A, E, C, Y], [F, B, C, ZC]];

    #[test]
    fn ib1_tie_at_k_is_decided_by_one_more_distance() {
        // Distances to (a b q): 1 (X), 1 (Y), 3 (Y), 4 (Z). k=1 ties X and Y; with the distance 3
        // group Y leads 2 to 1, and those are the votes reported.
        let n = answer(&FOUR, [A, B, Q], "ib1", k(1));
        assert_eq!(n.votes, vec![(Y, 2.0), (X, 1.0)]);
        assert_eq!(n.distance, 1.0);
        let n = answer(&FOUR, [A, B, Q], "ib1", k(2));
        assert_eq!(n.votes, vec![(Y, 2.0), (X, 1.0)]);
        let n = answer(&FOUR, [A, B, Q], "ib1", k(3));
        assert_eq!(n.votes[0], (Y, 2.0));
        assert_eq!(n.votes.len(), 3);
    }

    #[test]
    fn ib1_exact_match_and_every_tied_instance_votes() {
        let n = answer(&FOUR, [A, B, C], "ib1", k(1));
        assert_eq!((n.votes.clone(), n.distance), (vec![(X, 1.0)], 0.0));
        // (f e c): Z at 2, Y at 3 (a e c), X at 5, Y at 6. k=2 ties Z and Y; one more distance (X)
        // still ties, so the k=2 votes stand, Y first as the globally more frequent class.
        let n = answer(&FOUR, [F, E, C], "ib1", k(2));
        assert_eq!(n.votes, vec![(Y, 1.0), (ZC, 1.0)]);
        // Two instances at one distance both vote: (a b z) has X and Y at 1; k=2 adds Y at 3.
        let n = answer(&FOUR, [A, B, Z], "ib1", k(2));
        assert_eq!(n.votes, vec![(Y, 2.0), (X, 1.0)]);
    }

    #[test]
    fn persistent_tie_falls_back_to_frequency_then_first_occurrence() {
        // (a b q): X and Y at 1, then W and V at 6: still a tie, so the k=1 tie is broken by the global
        // rank: all classes occur once, X first.
        let rows = [[A, B, C, X], [A, B, D, Y], [Z, Z, Z, W], [Z, Z, Q, V]];
        let n = answer(&rows, [A, B, Q], "ib1", k(1));
        assert_eq!(n.votes, vec![(X, 1.0), (Y, 1.0)]);
        // With Y twice in the data, Y is globally more frequent and wins the same tie.
        let rows = [
            [A, B, C, X],
            [A, B, D, Y],
            [Z, Z, Z, W],
            [Z, Z, Q, V],
            [E, E, E, Y],
        ];
        let n = answer(&rows, [A, B, Q], "ib1", k(1));
        assert_eq!(n.votes[0].0, Y);
    }

    #[test]
    fn tribl2_descends_then_searches_below_the_last_match() {
        // Exact match: the leaf's distribution, depth 3.
        let n = answer(&FOUR, [A, B, C], "tribl2", k(1));
        assert_eq!((n.votes, n.depth, n.distance), (vec![(X, 1.0)], 3, 0.0));
        // (f e c): matches f, then IB1 below it on (e c): only (b c) -> Z at distance 2.
        let n = answer(&FOUR, [F, E, C], "tribl2", k(1));
        assert_eq!((n.votes, n.depth, n.distance), (vec![(ZC, 1.0)], 1, 2.0));
        // IB1 over everything finds the same nearest instance.
        assert_eq!(answer(&FOUR, [F, E, C], "ib1", k(1)).votes[0].0, ZC);
        // (a q c): matches a; below it (b c) X and (e c) Y at 2, (b d) Y at 3 -> Y by the retry.
        let n = answer(&FOUR, [A, Q, C], "tribl2", k(1));
        assert_eq!((n.votes, n.depth), (vec![(Y, 2.0), (X, 1.0)], 1));
    }

    #[test]
    fn distance_weighted_votes() {
        let inverse = KnnOptions {
            k: 2,
            vote: Vote::InverseDistance,
        };
        let n = answer(&FOUR, [A, B, Q], "ib1", inverse);
        assert_eq!(n.votes[0].0, Y);
        assert!((n.votes[0].1 - (1.0 / (1.0 + 1e-7) + 1.0 / (3.0 + 1e-7))).abs() < 1e-9);
        let decay = KnnOptions {
            k: 2,
            vote: Vote::ExponentialDecay { alpha: 1.0 },
        };
        let n = answer(&FOUR, [A, B, Q], "ib1", decay);
        assert_eq!(n.votes[0].0, Y);
        assert!((n.votes[1].1 - (-1.0f64).exp()).abs() < 1e-12);
        // A decay so steep that every weight underflows: each neighbour weighs f64::EPSILON, as in
        // TiMBL, so the votes are the counts times that (never all 0) and sum to a share of 1.
        let steep = KnnOptions {
            k: 2,
            vote: Vote::ExponentialDecay { alpha: 1e300 },
        };
        let n = answer(&FOUR, [A, B, Q], "ib1", steep);
        let majority = answer(&FOUR, [A, B, Q], "ib1", k(2));
        let classes = |votes: &[(u32, f64)]| votes.iter().map(|v| v.0).collect::<Vec<_>>();
        assert_eq!(classes(&n.votes), classes(&majority.votes));
        for ((_, steep), (_, count)) in n.votes.iter().zip(&majority.votes) {
            assert_eq!(*steep, count * f64::EPSILON);
        }
    }

    #[test]
    fn the_posting_lists_find_the_neighbours_the_trie_walk_finds() {
        // Random instances over few values (many ties, duplicates, single-instance tails), weights
        // with equal pairs; queries with values never stored.
        const WIDTH: usize = 5;
        // Weights whose sums round differently in different orders (0.1 + 0.2 != 0.3).
        let weights = [0.3, 0.2, 0.2, 0.1, 0.1];
        let mut state = 11u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % n) as u32
        };
        let mut flat = Vec::new();
        // Enough instances for lists longer than WHOLE_LIST_MAX (read together).
        for _ in 0..3000 {
            // Value 0 common (long lists), 1..=11 rare.
            flat.extend((0..WIDTH).map(|_| if next(10) < 7 { 0 } else { 1 + next(11) }));
            flat.push(20 + next(4));
        }
        let table = InstanceTable::new(flat, WIDTH).unwrap();
        let stats = ClassStats::new(&table, 24);
        let order: Vec<usize> = (0..WIDTH).collect();
        let base = build_instance_base(&table, &order, &stats, BuildOptions::default()).unwrap();
        let view = InstanceBaseView {
            trie: base.trie.view(),
            tail_offsets: base.tail_offsets.view(),
            tail_values: base.tail_values.view(),
        };
        let postings = Postings::build(&view, WIDTH, 24).expect("postings of a sound base");
        let votes = [
            Vote::Majority,
            Vote::InverseDistance,
            Vote::ExponentialDecay { alpha: 0.7 },
        ];
        // How often the walk took over ([0]), and how often the lists answered alone ([1]).
        let mut answered = [0usize; 2];
        for i in 0..300 {
            // Common values, rare ones and values never stored (12..=15); now and then values
            // never stored but the first (the instances matching nothing are the second nearest:
            // the walk answers), or only values never stored (one group: the root's votes).
            let query: Vec<u32> = (0..WIDTH)
                .map(|f| match (i % 50, f, next(2)) {
                    (0, 0, _) => 0,
                    (0 | 25, _, _) => 13,
                    (_, _, 0) => 0,
                    _ => 1 + next(15),
                })
                .collect();
            let walk = Search::new(&view, &query, &weights);
            let listed = Search::new(&view, &query, &weights).with_postings(Some(&postings));
            let mut nearest = Nearest::new(2);
            let alone = listed
                .search_postings(&postings, ROOT, 0, &mut nearest)
                .unwrap();
            answered[alone as usize] += 1;
            for k in 1..=4 {
                for vote in votes {
                    let options = KnnOptions { k, vote };
                    let rank = &stats.rank;
                    // The same answers; the nodes met may differ (a node for all its leaves).
                    let answer = |n: Result<Neighbourhood, Corrupt>| {
                        n.map(|n| (n.votes, n.distance, n.depth))
                    };
                    assert_eq!(
                        answer(listed.ib1(options, rank)),
                        answer(walk.ib1(options, rank)),
                        "{query:?} {k}"
                    );
                    assert_eq!(
                        answer(listed.tribl2(options, rank)),
                        answer(walk.tribl2(options, rank)),
                        "{query:?}"
                    );
                }
            }
        }
        assert!(answered[0] > 0 && answered[1] > 100, "{answered:?}");
    }
}
