//! Model files: round trips, equivalence of the two instance sources, and hostile bytes.

use memlm_core::format::{Check, MAGIC};
use memlm_core::{
    IdVec, InstanceTable, Instances, Model, TokenWindows, TrainSpec, Vocabulary, Weighting, UNKNOWN,
};
use proptest::prelude::*;

const VOCAB: u32 = 40;

fn spec(vocabulary: Vocabulary) -> TrainSpec<'static> {
    TrainSpec {
        vocabulary,
        weighting: Weighting::GainRatio,
        tokenizer: b"tok",
        metadata: "{}",
        instance_base: true,
        build: Default::default(),
        keep_tokens: None,
        kneser_ney: None,
        provenance: None,
        reduced: None,
    }
}

/// Blocks of token ids drawn from a small vocabulary with some repetition, so the trie branches.
fn corpus(seed: u64, tokens: usize) -> (Vec<u32>, Vec<u64>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let ids: Vec<u32> = (0..tokens)
        .map(|_| (next() % VOCAB).min(next() % VOCAB))
        .collect();
    let mut lengths = Vec::new();
    let mut left = tokens;
    while left > 0 {
        let l = (1 + next() as usize % 30).min(left);
        lengths.push(l as u64);
        left -= l;
    }
    (ids, lengths)
}

fn token_model(seed: u64, width: usize) -> Model {
    let (ids, lengths) = corpus(seed, 3000);
    let windows = TokenWindows::new(IdVec::U32(ids), &lengths, width, VOCAB).unwrap();
    Model::train(windows, spec(Vocabulary::TokenIds { size: VOCAB })).unwrap()
}

/// Per query: the IGTree's whole answer (every class and vote, total, depth, distance).
fn predictions(model: &Model, contexts: &[u32]) -> Vec<memlm_core::Answer> {
    contexts
        .chunks(model.width())
        .map(|c| model.answer(c, &memlm_core::Query::igtree(0)).unwrap())
        .collect()
}

#[test]
fn token_windows_and_instance_table_give_the_same_model() {
    let width = 3;
    let (ids, lengths) = corpus(7, 2000);
    let windows = TokenWindows::new(IdVec::U32(ids), &lengths, width, VOCAB).unwrap();
    let mut rows = Vec::new();
    for i in 0..windows.len() {
        rows.extend((0..width).map(|f| windows.feature(i, f)));
        rows.push(windows.class(i));
    }
    let table = InstanceTable::new(rows, width).unwrap();
    let a = Model::train(windows, spec(Vocabulary::TokenIds { size: VOCAB })).unwrap();
    let b = Model::train(table, spec(Vocabulary::TokenIds { size: VOCAB })).unwrap();
    assert_eq!(a.file().as_bytes(), b.file().as_bytes());
}

#[test]
fn save_and_load_round_trip() {
    let model = token_model(1, 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.memlm");
    model.file().save(&path, None).unwrap();
    let loaded = Model::load(&path, Check::Full).unwrap();
    assert_eq!(loaded.file().as_bytes(), model.file().as_bytes());
    assert_eq!(loaded.file().tokenizer_blob(), b"tok");
    assert_eq!(loaded.feature_order(), model.feature_order());
}

#[test]
fn empty_corpus_and_bad_contexts_are_errors() {
    let windows = TokenWindows::new(IdVec::U32(vec![]), &[], 4, VOCAB).unwrap();
    let err = Model::train(windows, spec(Vocabulary::TokenIds { size: VOCAB }))
        .err()
        .unwrap();
    assert!(err.to_string().contains("empty"), "{err}");
    let model = token_model(2, 4);
    let query = memlm_core::Query::igtree(1);
    assert!(model.answer(&[1, 2, 3], &query).is_err());
    assert!(model.answer(&[1, 2, 3, 4, 5], &query).is_err());
    assert!(model.answer(&[1, 2, 3, VOCAB + 1], &query).is_err());
    assert!(model.answer(&[1, 2, 3, UNKNOWN], &query).is_ok());
    assert!(model.answer_batch(&[1, 2, 3], &query).is_err());
    assert!(model.answer_batch(&[1, 2, 3, VOCAB + 1], &query).is_err());
}

#[test]
fn foreign_missing_and_truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Model::load(&dir.path().join("none"), Check::Header)
        .err()
        .unwrap();
    assert!(missing.to_string().contains("none"), "{missing}");
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"PK\x03\x04 this is a zip file, not a model").unwrap();
    let err = Model::load(&foreign, Check::Header).err().unwrap();
    assert!(err.to_string().contains("not a memlm model"), "{err}");
    let bytes = token_model(3, 2).file().as_bytes().to_vec();
    for len in [0, 7, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(Model::from_bytes(&bytes[..len]).is_err(), "length {len}");
    }
    let mut newer = bytes.clone();
    newer[8] = 9;
    let err = Model::from_bytes(&newer).err().unwrap();
    assert!(err.to_string().contains("version 9"), "{err}");
    assert_eq!(&bytes[..8], MAGIC);
}

#[test]
fn symbol_models_map_strings() {
    let rows = vec![0, 1, 2, 1, 2, 3, 2, 3, 1];
    let symbols = ["_", "a", "b", "c"].map(String::from).to_vec();
    let model = Model::train(
        InstanceTable::new(rows, 2).unwrap(),
        spec(Vocabulary::Symbols(symbols)),
    )
    .unwrap();
    assert_eq!(model.symbols().id("_"), 0);
    assert_eq!(model.symbols().id("c"), 3);
    assert_eq!(model.symbols().id("zzz"), UNKNOWN);
    assert_eq!(model.symbols().get(2).unwrap(), "b");
    let context = [model.symbols().id("a"), model.symbols().id("b")];
    let answer = model
        .answer(&context, &memlm_core::Query::igtree(1))
        .unwrap();
    assert_eq!(model.symbols().get(answer.classes[0]).unwrap(), "c");
}

/// Rewrites every section checksum and the header checksum (format versions 2 and 3), so that
/// corruption reaches the structural checks.
fn reseal(bytes: &mut [u8]) {
    use memlm_core::format::checksum;
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let count = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let table_end = 16 + 32 * count;
    if table_end + 8 > bytes.len() {
        return; // a damaged section count: nothing to reseal
    }
    for k in 0..count {
        let e = 16 + 32 * k;
        let (offset, len) = (word(bytes, e + 8) as usize, word(bytes, e + 16) as usize);
        // A damaged table entry may hold any offset and length: no overflow, no slice past the end.
        if offset
            .checked_add(len)
            .is_some_and(|end| end <= bytes.len())
        {
            let sum = checksum(&bytes[offset..offset + len]);
            bytes[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let sum = checksum(&bytes[..table_end]);
    bytes[table_end..table_end + 8].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn quick_open_defers_the_tries_to_verify() {
    let model = token_model(4, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.memlm");
    model.file().save(&path, None).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte inside the IGTree's distributions: a bulk section, not read by the quick open.
    let dist = model.file().as_bytes().len() / 2;
    bytes[dist] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let opened = Model::load(&path, Check::Header).expect("the header is intact");
    let err = opened.verify().unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    let err = Model::load(&path, Check::Full).err().unwrap().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    // A damaged small section (the parameters) is caught by the quick open already.
    let mut bytes = model.file().as_bytes().to_vec();
    let params = 16 + 32 * u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize + 8;
    bytes[params] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = Model::load(&path, Check::Header).err().unwrap().to_string();
    assert!(err.contains("checksum mismatch in section Params"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A saved and reloaded model answers every query exactly as before.
    #[test]
    fn reloaded_model_classifies_identically(seed in 0u64..1000, width in 1usize..8,
                                             queries in prop::collection::vec(0u32..=VOCAB, 0..400)) {
        let model = token_model(seed, width);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memlm");
        model.file().save(&path, None).unwrap();
        let loaded = Model::load(&path, Check::Header).unwrap();
        let n = queries.len() / width * width;
        prop_assert_eq!(predictions(&model, &queries[..n]), predictions(&loaded, &queries[..n]));
    }

    /// Any byte changed anywhere, with the checksums fixed up, is refused by the full check or still
    /// safe to query: never a panic or an out-of-bounds read.
    #[test]
    fn corrupted_model_never_panics(at in any::<prop::sample::Index>(), value in any::<u8>(),
                                    queries in prop::collection::vec(0u32..=VOCAB, 12)) {
        let mut bytes = token_model(5, 3).file().as_bytes().to_vec();
        let i = at.index(bytes.len() - 8);
        bytes[i] = value;
        reseal(&mut bytes);
        if let Ok(model) = Model::from_bytes(&bytes) {
            for c in queries.chunks(3) {
                let answer = model.answer(c, &memlm_core::Query::igtree(0)).unwrap();
                let _ = model.distance(answer.depth);
            }
            let _ = model.answer_batch(&queries, &memlm_core::Query::igtree(0)).unwrap();
        }
    }
}

#[test]
fn partitioned_build_equals_single_build_byte_for_byte() {
    use memlm_core::build::{BuildOptions, BUILD_BYTES_PER_INSTANCE};
    let (ids, lengths) = corpus(11, 5000);
    for width in [1, 3, 6] {
        let single = Model::train(
            TokenWindows::new(IdVec::U32(ids.clone()), &lengths, width, VOCAB).unwrap(),
            spec(Vocabulary::TokenIds { size: VOCAB }),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let reports = std::sync::Mutex::new(Vec::new());
        let progress = |phase: &str, done: u64, total: u64| {
            reports
                .lock()
                .unwrap()
                .push((phase.to_string(), done, total));
        };
        // Room for 400 instances per partition: the 40 first-feature values spread over many.
        let mut partitioned_spec = spec(Vocabulary::TokenIds { size: VOCAB });
        partitioned_spec.build = BuildOptions {
            partition_memory: Some(400 * BUILD_BYTES_PER_INSTANCE),
            temp_dir: Some(dir.path()),
            progress: Some(&progress),
            spilled: None,
        };
        let partitioned = Model::train(
            TokenWindows::new(IdVec::U32(ids.clone()), &lengths, width, VOCAB).unwrap(),
            partitioned_spec,
        )
        .unwrap();
        assert_eq!(
            partitioned.file().as_bytes(),
            single.file().as_bytes(),
            "width {width}"
        );
        partitioned.verify().unwrap();
        let reports = reports.into_inner().unwrap();
        let partitions = reports.last().unwrap().2;
        assert!(partitions > 5, "only {partitions} partitions");
        // The spill files are gone once the build is done.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn shards_round_trip_and_models_keep_their_tokens() {
    use memlm_core::shard::{write_shard, Shard};
    use memlm_core::Ids;
    let (ids, lengths) = corpus(12, 800);
    let narrow = IdVec::U16(ids.iter().map(|&t| t as u16).collect());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.shard");
    write_shard(
        &path,
        &narrow,
        &lengths,
        VOCAB,
        b"tok",
        "{\"n\":1}",
        None,
        None,
        false,
    )
    .unwrap();
    let shard = Shard::open(&path).unwrap();
    let (tokens, blocks) = shard.tokens();
    assert!(matches!(tokens, Ids::U16(t) if t.iter().map(|&x| x as u32).eq(ids.iter().copied())));
    assert_eq!(blocks, &lengths[..]);
    assert_eq!(
        (shard.vocab_size(), shard.tokenizer_blob(), shard.metadata()),
        (VOCAB, &b"tok"[..], "{\"n\":1}")
    );
    // A shard is not a model, and a model is not a shard: each says what it is.
    let err = Model::load(&path, Check::Header).err().unwrap().to_string();
    assert!(err.contains("memlm merge"), "{err}");
    let model_path = dir.path().join("m.memlm");
    let mut keeping = spec(Vocabulary::TokenIds { size: VOCAB });
    keeping.keep_tokens = Some((&narrow, &lengths));
    let kept = Model::train(
        TokenWindows::new(IdVec::U32(ids.clone()), &lengths, 3, VOCAB).unwrap(),
        keeping,
    )
    .unwrap();
    kept.file().save(&model_path, None).unwrap();
    let err = Shard::open(&model_path).err().unwrap().to_string();
    assert!(err.contains("a memlm model, not a shard"), "{err}");
    let loaded = Model::load(&model_path, Check::Full).unwrap();
    let (tokens, blocks) = loaded.file().training_tokens().expect("kept");
    assert_eq!((tokens.len(), blocks), (ids.len(), &lengths[..]));
    // Block lengths that do not add up to the tokens are refused.
    let bad_path = dir.path().join("bad.shard");
    let mut short = lengths.clone();
    short[0] += 1;
    write_shard(
        &bad_path, &narrow, &short, VOCAB, b"tok", "{}", None, None, false,
    )
    .unwrap();
    let err = Shard::open(&bad_path).err().unwrap().to_string();
    assert!(err.contains("do not add up"), "{err}");
}

/// A model of format version 2 (version 3 without the Kneser-Ney sections, as memlm wrote before
/// them) opens, verifies, and answers and scores (Witten-Bell) as the same model of version 3.
#[test]
fn a_version_2_model_is_read_and_scores_with_witten_bell() {
    let model = token_model(6, 3);
    let mut bytes = model.file().as_bytes().to_vec();
    assert_eq!(bytes[8], 3);
    bytes[8] = 2;
    reseal(&mut bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.memlm");
    std::fs::write(&path, &bytes).unwrap();
    let old = Model::load(&path, Check::Full).expect("version 2 is readable");
    let (ids, lengths) = corpus(7, 200);
    let (contexts, targets) = old.windows(&ids, &lengths).unwrap();
    assert_eq!(predictions(&old, &contexts), predictions(&model, &contexts));
    let scores = old.score_batch(&contexts, &targets).unwrap();
    assert!(scores.log10.iter().all(|p| p.is_finite() && *p < 0.0));
    assert_eq!(
        scores.log10,
        model.score_batch(&contexts, &targets).unwrap().log10
    );
}

#[test]
fn a_build_reduced_from_shards_and_spilled_partitions_equals_the_single_build_byte_for_byte() {
    use memlm_core::build::{spill_partition, value_ranges, TrieKind};
    use memlm_core::classes::{ClassCounts, ClassStats};
    use memlm_core::training::{Reduction, Spilled};
    use memlm_core::weights::{FeatureWeights, GainTerms};
    use memlm_core::Ids;
    let (ids, lengths) = corpus(13, 6000);
    let n_symbols = VOCAB as usize + 1;
    let windows =
        |width| TokenWindows::new(IdVec::U32(ids.clone()), &lengths, width, VOCAB).unwrap();
    // Three shards of whole blocks, in corpus order.
    let cuts = [0, lengths.len() / 3, lengths.len() / 2, lengths.len()];
    let shard_counts = || {
        let mut start = 0usize;
        cuts.windows(2)
            .map(|w| {
                let len: u64 = lengths[w[0]..w[1]].iter().sum();
                let shard = &ids[start..start + len as usize];
                start += len as usize;
                ClassCounts::of_tokens(Ids::U32(shard), n_symbols).unwrap()
            })
            .collect::<Vec<_>>()
    };
    for width in [1, 4] {
        let single =
            Model::train(windows(width), spec(Vocabulary::TokenIds { size: VOCAB })).unwrap();
        let instances = windows(width);
        // Per value range, its features in two groups (one empty at width 1).
        let terms: Vec<GainTerms> = [0..9, 9..10, 10..30, 30..n_symbols as u32]
            .into_iter()
            .flat_map(|values| [0..width / 2, width / 2..width].map(|f| (f, values.clone())))
            .map(|(features, values)| {
                GainTerms::compute(&instances, features, values, |_| Ok(())).unwrap()
            })
            .collect();
        let reduced = Reduction::new(shard_counts(), &terms).unwrap();
        let stats = reduced.stats();
        let whole = FeatureWeights::compute(&instances, &stats, |_| Ok(())).unwrap();
        let bits = |w: &FeatureWeights| {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (bits(&w.info_gain), bits(&w.gain_ratio))
        };
        assert_eq!(bits(&reduced.weights), bits(&whole), "bit for bit");
        let order = reduced.order(Weighting::GainRatio);
        let dir = tempfile::tempdir().unwrap();
        let spill = |kind: TrieKind| -> Vec<std::path::PathBuf> {
            let ranges = reduced.partitions(kind, Weighting::GainRatio, 700);
            assert!(ranges.len() > 4, "{} partitions", ranges.len());
            ranges
                .into_iter()
                .enumerate()
                .map(|(i, values)| {
                    let path = dir.path().join(format!("{}-{i}", kind.name()));
                    // A task run twice leaves the same file.
                    for _ in 0..2 {
                        spill_partition(
                            &instances,
                            n_symbols,
                            &order,
                            &stats,
                            kind,
                            values.clone(),
                            &path,
                        )
                        .unwrap();
                    }
                    path
                })
                .collect()
        };
        let (igtree, base) = (spill(TrieKind::IgTree), spill(TrieKind::InstanceBase));
        let assemble = |igtree: &[std::path::PathBuf]| {
            let mut spec = spec(Vocabulary::TokenIds { size: VOCAB });
            spec.reduced = Some((
                &reduced,
                Spilled {
                    igtree,
                    instance_base: &base,
                },
            ));
            Model::train(windows(width), spec)
        };
        let assembled = assemble(&igtree).unwrap();
        assert_eq!(
            assembled.file().as_bytes(),
            single.file().as_bytes(),
            "width {width}"
        );
        // A partition another build spilled (another feature order, or other class statistics, over
        // as many instances) is refused, though its trie, width, values and instances are these.
        let mut counts = reduced.class_counts.clone();
        let seen: Vec<usize> = (0..counts.counts.len())
            .filter(|&c| counts.counts[c] > 0)
            .collect();
        let (a, b) = (
            seen[0],
            seen[1..]
                .iter()
                .copied()
                .find(|&c| counts.counts[c] != counts.counts[seen[0]])
                .expect("two classes of different counts"),
        );
        counts.counts.swap(a, b);
        let other_stats = ClassStats::from_counts(counts);
        let reversed: Vec<usize> = order.iter().rev().copied().collect();
        let foreign = dir.path().join("foreign");
        let first = reduced.partitions(TrieKind::IgTree, Weighting::GainRatio, 700)[0].clone();
        let mut foreign_builds = vec![(&order, &other_stats)];
        if width > 1 {
            foreign_builds.push((&reversed, &stats));
        }
        let another_build = "a spilled partition of another build (its text, feature order or \
                             class statistics differ from this build's)";
        let mixed_with = |foreign: &std::path::Path| {
            let mut mixed = igtree.clone();
            mixed[0] = foreign.to_path_buf();
            assemble(&mixed).err().expect("refused").to_string()
        };
        // A partition spilled from `windows` with `order` and `statistics` is refused as another build's.
        let refused = |windows: &TokenWindows, order: &[usize], statistics: &ClassStats| {
            spill_partition(
                windows,
                n_symbols,
                order,
                statistics,
                TrieKind::IgTree,
                first.clone(),
                &foreign,
            )
            .unwrap();
            let err = mixed_with(&foreign);
            assert!(err.ends_with(another_build), "{err}");
        };
        for (other_order, other) in foreign_builds {
            refused(&instances, other_order, other);
        }
        // The same token ids in other blocks (the first two joined): the same counts, first
        // occurrences and instances, built with this build's order and statistics, but another
        // trie: refused by the text's part of the fingerprint.
        let mut joined = vec![lengths[0] + lengths[1]];
        joined.extend_from_slice(&lengths[2..]);
        let rejoined = TokenWindows::new(IdVec::U32(ids.clone()), &joined, width, VOCAB).unwrap();
        refused(&rejoined, &order, &stats);
        // Partitions out of order, missing, or of the other trie are refused, each by its check.
        let mut swapped = igtree.clone();
        swapped.swap(0, 1);
        let out_of_order = "a spilled partition of another build, or out of order: ";
        let uncovered = format!(
            "the {} partitions given do not cover the igtree trie's {n_symbols} symbols",
            igtree.len() - 1
        );
        for (wrong, message) in [
            (&swapped[..], out_of_order),
            (&igtree[1..], out_of_order),
            (&igtree[..igtree.len() - 1], uncovered.as_str()),
            (&base[..], out_of_order),
        ] {
            let err = assemble(wrong).err().expect("refused").to_string();
            assert!(err.contains(message), "{message:?} not in {err:?}");
        }
        let mut bytes = std::fs::read(&igtree[2]).unwrap();
        bytes[3] ^= 0x40;
        std::fs::write(&igtree[2], &bytes).unwrap();
        let err = assemble(&igtree).err().expect("refused").to_string();
        assert!(err.contains("checksum does not match"), "{err}");
        std::fs::write(&igtree[2], &bytes[..bytes.len() - 30]).unwrap();
        let err = assemble(&igtree).err().expect("refused").to_string();
        assert!(err.contains("not a whole spilled partition"), "{err}");
        // Statistics of other instances are refused.
        let other = Reduction::new(shard_counts()[1..].to_vec(), &terms);
        assert!(other.is_err());
        assert!(value_ranges(&[5, 0, 9, 1], 6) == vec![0..2, 2..3, 3..4]);
        // A capacity of 0 is taken as 1: no range holds two values that have counts.
        assert!(value_ranges(&[2, 0, 3], 0) == vec![0..1, 1..3]);
    }
}
