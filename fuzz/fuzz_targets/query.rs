//! Opens any bytes as a model and runs every query kind on it: never a panic, a hang or an
//! out-of-bounds read (libFuzzer reports those; a clean `Err` is fine).
//!
//! Input: one mode byte, eight seed bytes, then the model image. Mode bit 0 forges the checksums
//! (every section's and the header's recomputed after the fuzzer's mutations, so that they reach
//! the structural checks and the queries' reads); bit 1 opens with `Check::Full` instead of the
//! quick open (`Check::Header`, as `memlm.load` does). The seed picks the contexts, targets and
//! query options. Seeds: small real models (`bench/fuzz.sh` writes them).

#![no_main]

use libfuzzer_sys::fuzz_target;
use memlm_core::format::testing::forge_checksums;
use memlm_core::format::Check;
use memlm_core::{Generation, Model, Query, Sampling, UNKNOWN};

/// splitmix64: the contexts and options from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn exercise(model: &Model, seed: u64) {
    let mut rng = Rng(seed);
    let (w, n) = (model.width(), model.params().n_symbols as u64);
    // Ids of the model, the padding id, and unknown ids.
    let id = |rng: &mut Rng| match rng.below(8) {
        0 => UNKNOWN,
        1 => model.params().pad,
        _ => rng.below(n) as u32,
    };
    let rows = 1 + rng.below(6) as usize;
    let contexts: Vec<u32> = (0..rows * w).map(|_| id(&mut rng)).collect();
    let targets: Vec<u32> = (0..rows).map(|_| id(&mut rng)).collect();
    let votes = ["majority", "inverse_distance", "exponential_decay"];
    for algorithm in ["igtree", "tribl2", "ib1"] {
        let k = 1 + rng.below(4) as i64;
        let vote = votes[rng.below(3) as usize];
        let top_k = [0, 1, 3, i64::MAX][rng.below(4) as usize];
        let Ok(query) = Query::parse(algorithm, k, vote, 0.1 + rng.below(30) as f64 / 10.0, top_k)
        else {
            continue;
        };
        for context in contexts.chunks(w) {
            let _ = model.answer(context, &query);
        }
        let _ = model.answers(&contexts, &query);
        let _ = model.answer_batch(&contexts, &query);
        for sampling in [
            Sampling::new(false, 1.0, 50, 1.0).unwrap(),
            Sampling::new(true, 0.7, 20, 0.9).unwrap(),
            Sampling::new(true, 0.005, 0, 1.0).unwrap(),
        ] {
            if let Ok(mut g) =
                Generation::new(model, &contexts[..w], 8, &query, sampling, Some(seed))
            {
                let _ = g.next_ids(model, 8);
            }
        }
    }
    let _ = model.score_batch(&contexts, &targets);
    for context in contexts.chunks(w) {
        let _ = model.probabilities(context);
    }
    let _ = model.windows(&targets, &[targets.len() as u64]);
    for &t in &targets {
        if let Ok(s) = model.symbols().get(t) {
            let _ = model.symbols().id(&s);
        }
    }
    let _ = model.file().checked_training_tokens();
    let _ = model.verify();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 8 {
        return;
    }
    let (seed, image) = rest.split_at(8);
    let seed = u64::from_le_bytes(seed.try_into().unwrap());
    let mut image = image.to_vec();
    if mode & 1 == 1 {
        forge_checksums(&mut image);
    }
    let check = if mode & 2 == 2 {
        Check::Full
    } else {
        Check::Header
    };
    if let Ok(model) = Model::from_bytes_with(&image, check) {
        exercise(&model, seed);
    }
});
