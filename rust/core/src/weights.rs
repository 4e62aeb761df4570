//! Feature weights (information gain and gain ratio, as in the TiMBL manual) and the feature order:
//! features by descending weight of the model's [`Weighting`], a tie going to the feature nearer the
//! target. The IGTree tests features in that order and the k-NN distance weighs mismatches by them.
//!
//! The weights are sums over feature values (of P(v) H(C|v) and P(v) log2 P(v)), taken in ascending
//! value order. [`GainTerms`] holds those terms for one range of values, so that a cluster build
//! can compute them in ranges on several machines and [`FeatureWeights::from_terms`] add them up in
//! the same order: the weights a single process computes, bit for bit.

use std::ops::Range;

use rayon::prelude::*;

use crate::classes::{entropy_of_counts, ClassStats};
use crate::error::{Error, Result};
use crate::instances::Instances;

/// Which weight orders the features and scores mismatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// Gain ratio (TiMBL's default, `-w1`).
    GainRatio,
    /// Information gain (`-w2`).
    InfoGain,
}

impl Weighting {
    /// The names [`Weighting::name`] prints and `parse` reads.
    pub const NAMES: [&'static str; 2] = ["gain_ratio", "info_gain"];

    /// The weighting's name (`gain_ratio`, `info_gain`).
    pub fn name(self) -> &'static str {
        match self {
            Weighting::GainRatio => "gain_ratio",
            Weighting::InfoGain => "info_gain",
        }
    }

    /// Numeric code stored in model files.
    pub fn code(self) -> u32 {
        match self {
            Weighting::GainRatio => 1,
            Weighting::InfoGain => 2,
        }
    }
    /// Inverse of [`Weighting::code`].
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Weighting::GainRatio),
            2 => Some(Weighting::InfoGain),
            _ => None,
        }
    }
}

impl std::str::FromStr for Weighting {
    type Err = Error;

    /// A name of [`Weighting::NAMES`], or TiMBL's abbreviation (`gr`, `ig`).
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "gain_ratio" | "gr" => Ok(Weighting::GainRatio),
            "info_gain" | "ig" => Ok(Weighting::InfoGain),
            other => Err(Error::unknown_name("weighting", other, &Self::NAMES)),
        }
    }
}

impl std::fmt::Display for Weighting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Information gain and gain ratio of every feature.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureWeights {
    /// IG_f = H(C) - sum_v P(v) H(C|v).
    pub info_gain: Vec<f64>,
    /// GR_f = IG_f / split_info_f (0 when the split info is 0).
    pub gain_ratio: Vec<f64>,
}

impl FeatureWeights {
    /// Computes both weights for every feature of `instances`, calling `after(features done)` after
    /// every feature (one sort of the instances each); an error from it stops the computation and
    /// is returned.
    pub fn compute<I: Instances + ?Sized>(
        instances: &I,
        classes: &ClassStats,
        after: impl FnMut(usize) -> Result<()>,
    ) -> Result<Self> {
        let all = GainTerms::compute(instances, 0..instances.width(), 0..u32::MAX, after)?;
        Self::from_terms(&[all], classes)
    }

    /// The weights from the terms of `tasks`, each over a range of values (and all features, the
    /// terms of those it did not compute empty): per feature, the ranges it has terms for must be
    /// in ascending order and together cover every value that occurs. The same numbers, bit for
    /// bit, as one pass over all values, since each sum adds the same terms in the same order. An
    /// error when the ranges are out of order, the tasks of different widths, or the terms do not
    /// add up to the instances `classes` counts.
    pub fn from_terms(tasks: &[GainTerms], classes: &ClassStats) -> Result<Self> {
        let class_entropy = classes.entropy();
        let instances: u64 = classes.counts.iter().sum();
        let width = tasks.first().map_or(0, |t| t.features.len());
        let mismatch =
            |what: &str| Error::InvalidInput(format!("feature weight terms to reduce: {what}"));
        if tasks.iter().any(|t| t.features.len() != width) {
            return Err(mismatch("tasks of different widths"));
        }
        let mut info_gain = Vec::with_capacity(width);
        let mut gain_ratio = Vec::with_capacity(width);
        for f in 0..width {
            let (mut conditional, mut split_info) = (0.0, 0.0);
            let (mut counted, mut last) = (0u64, None);
            for terms in tasks.iter().map(|t| &t.features[f]) {
                if !terms.is_consistent() || terms.values.first().is_some_and(|&v| Some(v) <= last)
                {
                    return Err(mismatch(
                        "values out of order, or arrays of different lengths",
                    ));
                }
                last = terms.values.last().copied().or(last);
                counted += terms.counts.iter().sum::<u64>();
                for (c, s) in terms.conditional.iter().zip(&terms.split) {
                    conditional += c;
                    split_info -= s;
                }
            }
            if counted != instances {
                return Err(mismatch(&format!(
                    "feature {f} counts {counted} instances, the classes {instances}"
                )));
            }
            let info = (class_entropy - conditional).max(0.0);
            info_gain.push(info);
            gain_ratio.push(if split_info > 0.0 {
                info / split_info
            } else {
                0.0
            });
        }
        Ok(FeatureWeights {
            info_gain,
            gain_ratio,
        })
    }

    /// The weights of the chosen kind.
    pub fn get(&self, weighting: Weighting) -> &[f64] {
        match weighting {
            Weighting::GainRatio => &self.gain_ratio,
            Weighting::InfoGain => &self.info_gain,
        }
    }
}

/// The share of one range of feature values in the weights of some features: what a cluster
/// build's tasks compute, each for its features over its range, for [`FeatureWeights::from_terms`]
/// to add up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GainTerms {
    /// One per feature, in column order (empty for the features not computed).
    pub features: Vec<ValueTerms>,
}

/// One feature's terms over a range of its values: one entry per value of the range that occurs,
/// in ascending value order (all four arrays equally long).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueTerms {
    /// The values.
    pub values: Vec<u32>,
    /// The instances holding each value (the feature's histogram over the range).
    pub counts: Vec<u64>,
    /// P(v) H(C|v): the value's share of the conditional class entropy.
    pub conditional: Vec<f64>,
    /// P(v) log2 P(v): the value's share of the split info (negated).
    pub split: Vec<f64>,
}

impl ValueTerms {
    fn is_consistent(&self) -> bool {
        let n = self.values.len();
        self.counts.len() == n
            && self.conditional.len() == n
            && self.split.len() == n
            && self.values.windows(2).all(|w| w[0] < w[1])
    }
}

impl GainTerms {
    /// The terms of the `features` of `instances` over the values in `values`, P(v) counting over
    /// all the instances; `after(features done)` is called after every feature (one sort of the
    /// instances holding a value of the range each), and its error stops the computation.
    pub fn compute<I: Instances + ?Sized>(
        instances: &I,
        features: Range<usize>,
        values: Range<u32>,
        mut after: impl FnMut(usize) -> Result<()>,
    ) -> Result<Self> {
        // One buffer for all features, sorted on all cores: peak memory 8 bytes per instance.
        let mut pairs: Vec<u64> = Vec::new();
        let mut terms = vec![ValueTerms::default(); instances.width()];
        for (done, f) in features.filter(|&f| f < instances.width()).enumerate() {
            terms[f] = value_terms(instances, f, &values, &mut pairs);
            after(done + 1)?;
        }
        Ok(GainTerms { features: terms })
    }
}

/// The terms of feature `f` over `values`, from its sorted (value, class) pairs.
fn value_terms<I: Instances + ?Sized>(
    instances: &I,
    f: usize,
    values: &Range<u32>,
    pairs: &mut Vec<u64>,
) -> ValueTerms {
    let n = instances.len();
    let wanted = match values.start == 0 && values.end == u32::MAX {
        true => n,
        false => (0..n)
            .filter(|&i| values.contains(&instances.feature(i, f)))
            .count(),
    };
    pairs.clear();
    pairs.reserve_exact(wanted); // no more room than the pairs take
    pairs.extend((0..n).filter_map(|i| {
        let value = instances.feature(i, f);
        values
            .contains(&value)
            .then(|| ((value as u64) << 32) | instances.class(i) as u64)
    }));
    pairs.par_sort_unstable();
    let total = n as f64;
    let mut terms = ValueTerms::default();
    let mut class_counts: Vec<u64> = Vec::new();
    let mut start = 0;
    while start < pairs.len() {
        let value = pairs[start] >> 32;
        let mut end = start;
        class_counts.clear();
        while end < pairs.len() && pairs[end] >> 32 == value {
            let run_start = end;
            while end < pairs.len() && pairs[end] == pairs[run_start] {
                end += 1;
            }
            class_counts.push((end - run_start) as u64);
        }
        let n_value = (end - start) as u64;
        let p_value = n_value as f64 / total;
        terms.values.push(value as u32);
        terms.counts.push(n_value);
        terms
            .conditional
            .push(p_value * entropy_of_counts(class_counts.iter().copied(), n_value));
        terms.split.push(p_value * p_value.log2());
        start = end;
    }
    terms
}

/// Features by descending weight; ties go to the feature nearer the target (the higher index).
pub fn feature_order(weights: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(b.cmp(&a)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::InstanceTable;

    /// The seven-instance table whose weights TiMBL 6.5 prints as
    /// IG 0.86312057 1.5566567 1.5566567, GR 0.75130082 0.84492033 0.69620214.
    pub(crate) fn timbl_example() -> InstanceTable {
        // symbols: _=0 a=1 b=2 c=3 d=4 x=5 q=6 y=7 z=8
        let rows = vec![
            0, 0, 1, 2, //
            0, 1, 2, 3, //
            1, 2, 3, 4, //
            0, 0, 1, 2, //
            0, 1, 2, 5, //
            0, 0, 6, 2, //
            5, 7, 8, 3, //
        ];
        InstanceTable::new(rows, 3).unwrap()
    }

    #[test]
    fn weights_match_timbl_on_a_known_table() {
        let t = timbl_example();
        let w = FeatureWeights::compute(&t, &ClassStats::new(&t, 9), |_| Ok(())).unwrap();
        let ig = [0.86312057, 1.5566567, 1.5566567];
        let gr = [0.75130082, 0.84492033, 0.69620214];
        for f in 0..3 {
            assert!((w.info_gain[f] - ig[f]).abs() < 1e-6, "{:?}", w.info_gain);
            assert!((w.gain_ratio[f] - gr[f]).abs() < 1e-6, "{:?}", w.gain_ratio);
        }
        // TiMBL's permutation < 2, 1, 3 > in 0-based feature numbers.
        assert_eq!(feature_order(&w.gain_ratio), vec![1, 0, 2]);
        // Information gain ties features 2 and 3: the nearer one (index 2) goes first.
        assert_eq!(feature_order(&w.info_gain), vec![2, 1, 0]);
    }

    #[test]
    fn constant_feature_has_zero_weight() {
        let t = InstanceTable::new(vec![0, 1, 0, 2, 0, 1], 1).unwrap();
        let w = FeatureWeights::compute(&t, &ClassStats::new(&t, 3), |_| Ok(())).unwrap();
        assert_eq!(w.info_gain, vec![0.0]);
        assert_eq!(w.gain_ratio, vec![0.0]);
    }
}
