//! Damaged model files, opened without verification (`Check::Header`, as `memlm.load` does) and
//! queried every way: random byte flips anywhere, flips and zeroed ranges inside the bulk sections
//! (the tries, the tails, the training tokens, the Kneser-Ney statistics), and the same with forged checksums (every section
//! checksum and the header checksum recomputed, so that the damage reaches the structural checks).
//!
//! Accepted: a clean error (`Error::BadModel`), or, when the checksums were not forged, exactly the
//! answer of the undamaged model (lazy verification catches any damage a query reads). With forged
//! checksums any answer is accepted. Never a panic.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memlm_core::columns::classify_file;
use memlm_core::format::testing::{forge_checksums, section_ranges};
use memlm_core::format::{Check, Section};
use memlm_core::provenance;
use memlm_core::training::KneserNeyFrom;
use memlm_core::{
    Error, Generation, IdVec, Ids, Model, Query, Sampling, TokenWindows, TrainSpec, Vocabulary,
    Weighting, UNKNOWN,
};
use proptest::prelude::*;

/// A trained model's bytes, the inputs of every query, and the undamaged model's answers.
struct Fixture {
    bytes: Vec<u8>,
    /// Byte ranges of the sections that grow with the data (checked lazily, not at open).
    bulk: Vec<Range<usize>>,
    contexts: Vec<u32>,
    targets: Vec<u32>,
    /// A TiMBL column file of the contexts and targets (for `classify_file`).
    instances: PathBuf,
    reference: Vec<Outcome>,
    _dir: tempfile::TempDir,
}

/// One query's result: its output as text, or the error's kind and text.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Answer(String),
    Bad(String),
    /// An error of another kind than `Error::BadModel`: never accepted.
    Unexpected(String),
}

fn outcome<T: std::fmt::Debug>(result: memlm_core::Result<T>) -> Outcome {
    match result {
        Ok(v) => Outcome::Answer(format!("{v:?}")),
        Err(e @ Error::BadModel { .. }) => Outcome::Bad(e.to_string()),
        Err(e) => Outcome::Unexpected(e.to_string()),
    }
}

/// Blocks of token ids: `vocab` ids, the frequent ones drawn more often, scattered over
/// `0..spread` (so a spread above 65,536 stores u32 labels, tails and tokens).
fn corpus(seed: u64, tokens: usize, vocab: u32, spread: u32) -> (Vec<u32>, Vec<u64>) {
    let mut state = seed.wrapping_mul(6364136223846793005) ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let ids = (0..tokens)
        .map(|_| (next() % vocab).min(next() % vocab) * (spread / vocab))
        .collect();
    let mut lengths = Vec::new();
    let mut left = tokens as u64;
    while left > 0 {
        let l = (1 + next() as u64 % 40).min(left);
        lengths.push(l);
        left -= l;
    }
    (ids, lengths)
}

fn fixture(which: usize) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 2] = [OnceLock::new(), OnceLock::new()];
    FIXTURES[which].get_or_init(|| {
        // 0: W=4, u16 ids; 1: W=7, ids up to 70,000 (u32 labels, tails and tokens).
        let (width, spread) = [(4, 60u32), (7, 70_000)][which];
        let (ids, lengths) = corpus(which as u64 + 11, 2500, 60, spread);
        let vocab_size = spread + 1;
        let kept = IdVec::U32(ids.clone());
        let windows = TokenWindows::new(kept.clone(), &lengths, width, vocab_size).unwrap();
        let model = Model::train(
            windows,
            TrainSpec {
                vocabulary: Vocabulary::TokenIds { size: vocab_size },
                weighting: Weighting::GainRatio,
                tokenizer: b"tokenizer",
                metadata: "{}",
                instance_base: true,
                build: Default::default(),
                keep_tokens: Some((&kept, &lengths)),
                kneser_ney: Some(KneserNeyFrom::Text(Ids::U32(&ids), &lengths)),
                provenance: Some(b"origins"),
                reduced: None,
            },
        )
        .unwrap();
        let bytes = model.file().as_bytes().to_vec();
        // Queries: windows of held-out text (partly unseen), and a few odd contexts.
        let (test, test_lengths) = corpus(which as u64 + 99, 16, 70, spread);
        let (mut contexts, mut targets) = model.windows(&test, &test_lengths).unwrap();
        for odd in [vec![UNKNOWN; width], vec![model.params().pad; width]] {
            contexts.extend(odd);
            targets.push(ids[0]);
        }
        let dir = tempfile::tempdir().unwrap();
        let instances = dir.path().join("test.txt");
        let symbol = |id: u32| {
            model
                .symbols()
                .get(id)
                .map_or("?".into(), |s| s.into_owned())
        };
        let lines: String = contexts
            .chunks(width)
            .zip(&targets)
            .map(|(c, &t)| {
                let mut fields: Vec<String> = c.iter().map(|&id| symbol(id)).collect();
                fields.push(symbol(t));
                fields.join(" ") + "\n"
            })
            .collect();
        std::fs::write(&instances, lines).unwrap();
        let mut fixture = Fixture {
            bulk: bulk_sections(&bytes),
            bytes,
            contexts,
            targets,
            instances,
            reference: Vec::new(),
            _dir: dir,
        };
        let undamaged = Model::from_bytes_with(&fixture.bytes, Check::Header).unwrap();
        let scratch = fixture._dir.path().join("reference");
        fixture.reference = exercise(&undamaged, &fixture, &scratch);
        assert!(
            fixture
                .reference
                .iter()
                .all(|o| matches!(o, Outcome::Answer(_))),
            "{:?}",
            fixture.reference
        );
        fixture
    })
}

/// The byte ranges of the bulk sections, from the file's section table.
fn bulk_sections(bytes: &[u8]) -> Vec<Range<usize>> {
    section_ranges(bytes)
        .into_iter()
        .filter(|(id, range)| Section::from_id(*id).unwrap().is_bulk() && !range.is_empty())
        .map(|(_, range)| range)
        .collect()
}

/// The queries [`exercise`] runs first: (algorithm, k, vote, decay, top_k).
const QUERIES: [(&str, i64, &str, f64, i64); 6] = [
    ("igtree", 1, "majority", 1.0, 0),
    ("igtree", 1, "majority", 1.0, 3),
    ("tribl2", 1, "majority", 1.0, 0),
    ("tribl2", 3, "inverse_distance", 1.0, 2),
    ("ib1", 1, "majority", 1.0, 0),
    ("ib1", 2, "exponential_decay", 0.7, 4),
];

/// Contexts each query answers one by one; then come its three batch outcomes.
const CONTEXTS_PER_QUERY: usize = 6;
const OUTCOMES_PER_QUERY: usize = CONTEXTS_PER_QUERY + 3;

/// Every query kind, each result recorded (outputs of files included).
fn exercise(model: &Model, f: &Fixture, scratch: &Path) -> Vec<Outcome> {
    let w = model.width();
    let queries: Vec<Query> = QUERIES
        .iter()
        .map(|&(a, k, v, d, t)| Query::parse(a, k, v, d, t).unwrap())
        .collect();
    let mut out = Vec::new();
    // OUTCOMES_PER_QUERY outcomes per query, the first its answer for the first context.
    for query in &queries {
        for context in f.contexts.chunks(w).take(CONTEXTS_PER_QUERY) {
            out.push(outcome(model.answer(context, query)));
        }
        out.push(outcome(model.answers(&f.contexts, query)));
        out.push(outcome(model.answer_batch(&f.contexts, query)));
        out.push(outcome(
            model.answer_batch(&f.contexts, &query.with_top_k(usize::MAX)),
        ));
    }
    out.push(outcome(model.score_batch(&f.contexts, &f.targets)));
    for context in f.contexts.chunks(w).take(4) {
        out.push(outcome(model.probabilities(context)));
    }
    let samplings = [
        Sampling::new(false, 1.0, 50, 1.0).unwrap(),
        Sampling::new(true, 0.7, 20, 0.9).unwrap(),
        Sampling::new(true, 0.005, 0, 1.0).unwrap(),
    ];
    for query in [&queries[0], &queries[2], &queries[5]] {
        for sampling in samplings {
            let generated = Generation::new(model, &f.contexts[..w], 12, query, sampling, Some(7))
                .and_then(|mut g| g.next_ids(model, 12));
            out.push(outcome(generated));
        }
    }
    for (query, distribution) in [(&queries[0], true), (&queries[2], false)] {
        let output = scratch.with_extension("out");
        let totals = classify_file(
            model,
            &f.instances,
            Some(&output),
            distribution,
            query,
            None,
        )
        .map(|t| {
            let text = std::fs::read_to_string(&output).unwrap_or_default();
            (t.instances, t.correct, text)
        });
        out.push(outcome(totals));
    }
    out.push(outcome(model.file().checked_training_tokens().map(|t| {
        t.map(|(ids, lengths)| (ids.len(), ids.max(), lengths.to_vec()))
    })));
    // The provenance index: the occurrences of each target after its context, at every depth.
    for (context, &target) in f.contexts.chunks(w).zip(&f.targets).take(4) {
        for depth in [0, 1, w] {
            let found = provenance::Index::of(model.file()).and_then(|index| {
                let index = index.expect("the fixture has a provenance index");
                Ok((
                    index.origins().to_vec(),
                    index.occurrences(target, context, depth, 5)?,
                ))
            });
            out.push(outcome(found));
        }
    }
    out
}

/// What to damage.
#[derive(Clone, Debug)]
enum Damage {
    /// XOR bytes anywhere in the file.
    Flips(Vec<(prop::sample::Index, u8)>),
    /// XOR bytes of one bulk section.
    BulkFlips(prop::sample::Index, Vec<(prop::sample::Index, u8)>),
    /// Zero a range of one bulk section (start, length up to 64 bytes or the rest).
    Zeroed(prop::sample::Index, prop::sample::Index, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let flips = prop::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..6);
    prop_oneof![
        flips.clone().prop_map(Damage::Flips),
        (any::<prop::sample::Index>(), flips).prop_map(|(s, f)| Damage::BulkFlips(s, f)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop_oneof![1usize..65, Just(usize::MAX)]
        )
            .prop_map(|(s, at, len)| Damage::Zeroed(s, at, len)),
    ]
}

fn damaged(f: &Fixture, damage: &Damage) -> Vec<u8> {
    let mut bytes = f.bytes.clone();
    match damage {
        Damage::Flips(flips) => {
            for (at, x) in flips {
                bytes[at.index(f.bytes.len())] ^= x;
            }
        }
        Damage::BulkFlips(section, flips) => {
            let range = section.get(&f.bulk).clone();
            for (at, x) in flips {
                bytes[range.start + at.index(range.len())] ^= x;
            }
        }
        Damage::Zeroed(section, at, len) => {
            let range = section.get(&f.bulk).clone();
            let start = range.start + at.index(range.len());
            let end = start.saturating_add(*len).min(range.end);
            bytes[start..end].fill(0);
        }
    }
    bytes
}

fn check(which: usize, damage: &Damage, forge: bool) -> Result<(), TestCaseError> {
    let f = fixture(which);
    let mut bytes = damaged(f, damage);
    if forge {
        forge_checksums(&mut bytes);
    }
    let model = match Model::from_bytes_with(&bytes, Check::Header) {
        Ok(model) => model,
        Err(Error::BadModel { .. }) => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(format!("open: {e}"))),
    };
    let dir = tempfile::tempdir().unwrap();
    let outcomes = exercise(&model, f, &dir.path().join("damaged"));
    for (k, (got, want)) in outcomes.iter().zip(&f.reference).enumerate() {
        match got {
            Outcome::Bad(_) => {}
            Outcome::Unexpected(e) => {
                return Err(TestCaseError::fail(format!("query {k}: not BadModel: {e}")))
            }
            Outcome::Answer(_) if forge || got == want => {}
            Outcome::Answer(a) => {
                return Err(TestCaseError::fail(format!(
                    "query {k}: a wrong answer from a damaged model opened without verify:\n\
                     got  {a}\nwant {want:?}"
                )))
            }
        }
    }
    // Verifying never panics either; unforged damage of a section is always caught.
    let verified = model.verify();
    let clean = matches!(verified, Ok(()) | Err(Error::BadModel { .. }));
    prop_assert!(clean, "verify: {:?}", verified);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random damage: a clean error or the undamaged model's answer, for every query kind.
    #[test]
    fn damage_gives_clean_errors_or_the_same_answers(which in 0..2usize, damage in damage()) {
        check(which, &damage, false)?;
    }

    /// Damage behind forged checksums reaches the structural checks: never a panic.
    #[test]
    fn damage_with_forged_checksums_never_panics(which in 0..2usize, damage in damage()) {
        check(which, &damage, true)?;
    }
}

/// Bytes of every bulk section of the small model flipped behind forged checksums, at a stride
/// that visits about 800 of them (a deterministic sweep of what the proptest samples).
#[test]
fn bulk_bytes_flipped_behind_forged_checksums() {
    let f = fixture(0);
    let model = Model::from_bytes_with(&f.bytes, Check::Header).unwrap();
    let w = model.width();
    let queries: Vec<Query> = ["igtree", "tribl2", "ib1"]
        .iter()
        .map(|a| Query::parse(a, 2, "majority", 1.0, 0).unwrap())
        .collect();
    let mut caught = 0;
    let bytes_total: usize = f.bulk.iter().map(|r| r.len()).sum();
    let stride = (bytes_total / 800).max(1);
    for range in &f.bulk {
        for at in range.clone().step_by(stride) {
            let mut bytes = f.bytes.clone();
            bytes[at] ^= 0x5a;
            forge_checksums(&mut bytes);
            let Ok(model) = Model::from_bytes_with(&bytes, Check::Header) else {
                caught += 1;
                continue;
            };
            let mut bad = false;
            for query in &queries {
                for result in [
                    model.answer(&f.contexts[..w], query).map(drop),
                    model.answer_batch(&f.contexts, query).map(drop),
                ] {
                    match result {
                        Ok(()) => {}
                        Err(Error::BadModel { .. }) => bad = true,
                        Err(e) => panic!("flip at {at}: {e}"),
                    }
                }
            }
            match model.score_batch(&f.contexts, &f.targets) {
                Ok(_) => {}
                Err(Error::BadModel { .. }) => bad = true,
                Err(e) => panic!("flip at {at}: {e}"),
            }
            caught += bad as usize;
        }
    }
    // Many flips of the structure are caught by the reads' checks (the rest give some answer).
    let flipped = f
        .bulk
        .iter()
        .map(|r| r.len().div_ceil(stride))
        .sum::<usize>();
    eprintln!("{caught} of {flipped} forged flips caught (bulk bytes: {bytes_total})");
    assert!(caught > 0);
}

/// Lazy verification: a damaged trie is found at the first query that reads it, once; the quick
/// open stays quick, and a query of the other trie is unaffected.
#[test]
fn first_query_verifies_the_trie_it_reads() {
    let f = fixture(0);
    let igtree = f.bulk[0].clone(); // the labels of the IGTree come first
    let mut bytes = f.bytes.clone();
    bytes[igtree.start] ^= 1;
    let model = Model::from_bytes_with(&bytes, Check::Header).unwrap();
    let w = model.width();
    let ib1 = ("ib1", 1, "majority", 1.0, 0);
    let at = QUERIES.iter().position(|&q| q == ib1).unwrap() * OUTCOMES_PER_QUERY;
    let (a, k, v, d, t) = ib1;
    let ib1 = Query::parse(a, k, v, d, t).unwrap();
    // The undamaged model's answer of this query for the first context.
    assert_eq!(
        outcome(model.answer(&f.contexts[..w], &ib1)),
        f.reference[at]
    );
    for _ in 0..2 {
        let err = model
            .answer(&f.contexts[..w], &Query::igtree(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checksum mismatch in section Labels16"),
            "{err}"
        );
        // Scores read the Kneser-Ney statistics, not the IGTree, with the cache or without.
        assert!(model.score_batch(&f.contexts, &f.targets).is_ok());
        let weights = [0.05, 0.1, 0.05, 0.05];
        assert!(model
            .score_document(&f.contexts, &f.targets, &weights)
            .is_ok());
    }
    assert!(Model::from_bytes_with(&bytes, Check::Full).is_err());
}

/// The same for the Kneser-Ney statistics: damage is found by the first score, not at open, and
/// the classifiers are unaffected.
#[test]
fn first_score_verifies_the_kneser_ney_statistics() {
    let f = fixture(0);
    let word = |at: usize| u64::from_le_bytes(f.bytes[at..at + 8].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(f.bytes[12..16].try_into().unwrap()) as usize;
    let entry = (0..count)
        .map(|k| 16 + 32 * k)
        .find(|&e| {
            u32::from_le_bytes(f.bytes[e..e + 4].try_into().unwrap())
                == Section::KnEntryProbs as u32
        })
        .unwrap();
    let mut bytes = f.bytes.clone();
    bytes[word(entry + 8) + word(entry + 16) / 2] ^= 1;
    let model = Model::from_bytes_with(&bytes, Check::Header).unwrap();
    let w = model.width();
    for _ in 0..2 {
        let err = model
            .score_batch(&f.contexts, &f.targets)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checksum mismatch in section KnEntryProbs"),
            "{err}"
        );
        assert!(model.probabilities(&f.contexts[..w]).is_err());
        assert!(model.answer(&f.contexts[..w], &Query::igtree(1)).is_ok());
    }
    assert!(Model::from_bytes_with(&bytes, Check::Full).is_err());
}
