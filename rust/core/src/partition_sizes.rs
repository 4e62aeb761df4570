//! How a model divides by the nearest token: the bytes of the IGTree's and of the Kneser-Ney
//! statistics' subtrees under each range of nearest-token ids. An IGTree answer reads the root and
//! the subtree of the context's nearest token (the first feature in weight order, on text), and so
//! does a scoring probability (its contexts grow leftwards from the nearest token): a model too large
//! for one machine can be served by machines that each hold the shared parts and the subtrees of one
//! range, a router in front sending each query to the machine of its nearest token
//! (docs/cluster.md). These are the bytes each such machine would hold.
//!
//! Rules: the ranges are consecutive, from id 0 to the last symbol (the padding id, which a context
//! at a block start has nearest). A node belongs to the range of its first-level ancestor (the root's
//! child on the way to it); its bytes are its label, its distribution (IGTree) or record, entries
//! and leaves (Kneser-Ney), and its share of the IGTree's packed offsets (per node, the sections'
//! bytes over the nodes). Everything else is shared: the roots, the Kneser-Ney root tables and the
//! training-text copy its leaves point into, weights, class statistics, tokenizer, metadata, and
//! the instance base of TRIBL2 and IB1 (whose search at a root mismatch reads every subtree).

use crate::error::{Error, Result};
use crate::ids::Ids;
use crate::model::Model;
use crate::trie::ROOT;

/// The bytes of each id of an id array.
fn width_of(ids: Ids) -> u64 {
    match ids {
        Ids::U16(_) => 2,
        Ids::U32(_) => 4,
    }
}

/// The bytes of a model under each range of nearest-token ids, and the bytes every range needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSizes {
    /// Per range: the IGTree's bytes under it.
    pub igtree: Vec<u64>,
    /// Per range: the Kneser-Ney statistics' bytes under it (zeros for a model without them).
    pub kneser_ney: Vec<u64>,
    /// The rest of the file.
    pub shared: u64,
}

/// What `model` holds under each of the ranges `[0, ends[0])`, `[ends[0], ends[1])`, ...: `ends`
/// ascending, the last one the model's symbol count (an error otherwise).
pub fn partition_sizes(model: &Model, ends: &[u32]) -> Result<PartitionSizes> {
    let n_symbols = model.file().params().n_symbols;
    if ends.last() != Some(&n_symbols) || ends.windows(2).any(|w| w[0] >= w[1]) || ends[0] == 0 {
        return Err(Error::InvalidInput(format!(
            "the ranges' ends must ascend from above 0 to the symbol count {n_symbols}, got {ends:?}"
        )));
    }
    let range_of = |id: u32| ends.partition_point(|&end| end <= id);
    let corrupt = |what: &str| Error::InvalidInput(format!("the model's {what} is not a trie"));
    let mut igtree = vec![0u64; ends.len()];
    let trie = model.checked_trie()?;
    let nodes = trie.node_count();
    let id_bytes = width_of(trie.labels);
    // The range of every node (usize::MAX: the root), filled breadth-first from the root's children.
    let mut owner = vec![usize::MAX; nodes];
    let mut nodes_in = vec![0u64; ends.len()];
    for n in 0..nodes {
        let children = trie.children(n as u32).map_err(|_| corrupt("IGTree"))?;
        for child in children {
            owner[child] = match n as u32 {
                ROOT => range_of(trie.labels.get(child)),
                _ => owner[n],
            };
        }
        if let Some(&p) = owner.get(n).filter(|&&p| p != usize::MAX) {
            let distribution = trie.dist_offsets.range(n);
            nodes_in[p] += 1;
            igtree[p] += id_bytes + (distribution.end - distribution.start);
        }
    }
    let breakdown = model.file().size_breakdown();
    let section = |name: &str| {
        breakdown
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, b)| *b as u64)
    };
    let offsets = section("children") + section("distribution offsets");
    for (bytes, &count) in igtree.iter_mut().zip(&nodes_in) {
        *bytes += offsets * count / nodes.max(1) as u64;
    }
    let mut kneser_ney = vec![0u64; ends.len()];
    if let Some(kn) = model.file().checked_kneser_ney()? {
        let records = kn.nodes.len().saturating_sub(1);
        let mut owner = vec![usize::MAX; records];
        let id_bytes = width_of(kn.labels);
        let (entry_bytes, leaf_bytes) = (id_bytes + 2, id_bytes + 4);
        for n in 0..records {
            let (here, next) = (kn.nodes[n], kn.nodes[n + 1]);
            let span = |k: usize| here[k] as usize..next[k] as usize;
            let (children, leaves, entries) = (span(0), span(1), span(2));
            if children.start <= n || children.end > records || leaves.end > kn.leaves.len() {
                return Err(corrupt("Kneser-Ney statistics"));
            }
            let p = owner[n];
            if n > 0 && p == usize::MAX {
                return Err(corrupt("Kneser-Ney statistics"));
            }
            for child in children {
                owner[child] = if n == 0 {
                    range_of(kn.labels.get(child))
                } else {
                    p
                };
            }
            if n == 0 {
                for leaf in leaves {
                    kneser_ney[range_of(kn.leaf_labels.get(leaf))] += leaf_bytes;
                }
            } else {
                kneser_ney[p] +=
                    16 + leaves.len() as u64 * leaf_bytes + entries.len() as u64 * entry_bytes;
            }
        }
    }
    let held: u64 = igtree.iter().chain(&kneser_ney).sum();
    Ok(PartitionSizes {
        igtree,
        kneser_ney,
        shared: (model.file().as_bytes().len() as u64).saturating_sub(held),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::test_model;

    #[test]
    fn ranges_divide_the_subtrees_and_the_rest_is_shared() {
        let model = test_model(4, false);
        let n_symbols = model.file().params().n_symbols;
        let whole = partition_sizes(&model, &[n_symbols]).unwrap();
        let file = model.file().as_bytes().len() as u64;
        assert_eq!(whole.igtree[0] + whole.kneser_ney[0] + whole.shared, file);
        assert!(whole.igtree[0] > 0 && whole.kneser_ney[0] > 0 && whole.shared > 0);
        let parts = partition_sizes(&model, &[3, 10, 11, n_symbols]).unwrap();
        assert_eq!(parts.kneser_ney.iter().sum::<u64>(), whole.kneser_ney[0]);
        // The offsets' share is rounded down per range: a byte or so each.
        let igtree: u64 = parts.igtree.iter().sum();
        assert!(
            igtree <= whole.igtree[0] && igtree + 4 >= whole.igtree[0],
            "{igtree} {whole:?}"
        );
        assert!(parts.igtree.iter().all(|&b| b > 0), "{parts:?}");
        for bad in [
            &[][..],
            &[0, n_symbols],
            &[5, 5, n_symbols],
            &[n_symbols - 1],
            &[n_symbols + 1],
        ] {
            assert!(partition_sizes(&model, bad).is_err(), "{bad:?}");
        }
    }
}
