//! Feature weights (information gain and gain ratio, as in the TiMBL manual) and the feature order:
//! features by descending weight of the model's [`Weighting`], a tie going to the feature nearer the
//! target. The IGTree tests features in that order and the k-NN distance weighs mismatches by them.

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
        mut after: impl FnMut(usize) -> Result<()>,
    ) -> Result<Self> {
        let class_entropy = classes.entropy();
        // One buffer for all features, sorted on all cores: peak memory 8 bytes per instance.
        let mut pairs: Vec<u64> = Vec::with_capacity(instances.len());
        let mut per_feature: Vec<(f64, f64)> = Vec::with_capacity(instances.width());
        for f in 0..instances.width() {
            per_feature.push(feature_gain(instances, f, class_entropy, &mut pairs));
            after(f + 1)?;
        }
        Ok(FeatureWeights {
            info_gain: per_feature.iter().map(|p| p.0).collect(),
            gain_ratio: per_feature.iter().map(|p| p.1).collect(),
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

/// (information gain, gain ratio) of feature `f`, from the sorted (value, class) pairs.
fn feature_gain<I: Instances + ?Sized>(
    instances: &I,
    f: usize,
    class_entropy: f64,
    pairs: &mut Vec<u64>,
) -> (f64, f64) {
    let n = instances.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    pairs.clear();
    pairs.extend(
        (0..n).map(|i| ((instances.feature(i, f) as u64) << 32) | instances.class(i) as u64),
    );
    pairs.par_sort_unstable();
    let total = n as f64;
    let mut conditional = 0.0;
    let mut split_info = 0.0;
    let mut class_counts: Vec<u64> = Vec::new();
    let mut start = 0;
    while start < n {
        let value = pairs[start] >> 32;
        let mut end = start;
        class_counts.clear();
        while end < n && pairs[end] >> 32 == value {
            let run_start = end;
            while end < n && pairs[end] == pairs[run_start] {
                end += 1;
            }
            class_counts.push((end - run_start) as u64);
        }
        let n_value = (end - start) as u64;
        let p_value = n_value as f64 / total;
        conditional += p_value * entropy_of_counts(class_counts.iter().copied(), n_value);
        split_info -= p_value * p_value.log2();
        start = end;
    }
    let info_gain = (class_entropy - conditional).max(0.0);
    let gain_ratio = if split_info > 0.0 {
        info_gain / split_info
    } else {
        0.0
    };
    (info_gain, gain_ratio)
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
