//! Generation: a prompt extended token by token, each token the answer of the model to the context
//! of the ids so far (windowed like any prefix, [`crate::instances::Context`]).
//!
//! Each step answers with the query's classifier, keeping one class when greedy and the sampling's
//! `top_k` otherwise (0: all): the sampling, not [`Query::top_k`], decides how many classes a step
//! keeps. Greedy decoding takes the winner. Sampling follows Hugging Face's `temperature`, `top_k`
//! and `top_p`: the pick weight of a kept class is `vote^(1/temperature)`, computed in log space
//! relative to the best kept vote as `exp(ln(vote / best) / T)` (finite for any positive
//! temperature, however small: a tiny one keeps only the best votes), normalised to sum to 1;
//! `top_p` < 1 then keeps the classes of the largest pick weights until their sum first reaches
//! `top_p` (at least one class), renormalised; one class is drawn by its pick weight.
//! The random numbers come from xoshiro256++ seeded with the generation's seed, so a seed gives the
//! same text on every machine and every run.
//!
//! From the scoring distribution ([`Generation::from_scoring`]) each step's candidates are the ids
//! by their probability after the context ([`crate::kneser_ney`]), the most probable first (ties:
//! the lower id), their probabilities as the votes; greedy takes the first (found without computing
//! every probability when there is no cache). With the document cache ([`crate::cache`]) the
//! probabilities are the cache's mixture: the whole prompt is counted first (its blocks' rules as
//! in scoring: a context starts at the prompt's start), then each token generated; only ids the
//! document holds get a cache share.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::cache::{valid_weights, CacheWeights, DocumentCache, Keys};
use crate::error::{count, positive_finite, python_float, Error, Result};
use crate::kneser_ney::EntryOrder;
use crate::model::Model;
use crate::query::{Answer, Query};

/// How generation picks tokens (Hugging Face's names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    do_sample: bool,
    temperature: f64,
    top_k: usize,
    top_p: f64,
}

impl Sampling {
    /// Greedy decoding: always the winner.
    #[cfg(test)]
    pub(crate) const GREEDY: Sampling = Sampling {
        do_sample: false,
        temperature: 1.0,
        top_k: 50,
        top_p: 1.0,
    };

    /// Greedy unless `do_sample`; `temperature` finite and positive, `top_k` >= 0 (0: all classes),
    /// `top_p` in (0, 1]. Checked whether or not sampling is on.
    pub fn new(do_sample: bool, temperature: f64, top_k: i64, top_p: f64) -> Result<Sampling> {
        let temperature = positive_finite("temperature", temperature)?;
        let top_k = count("top_k", top_k, 0)?;
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(Error::InvalidInput(format!(
                "top_p must be in (0, 1], got {}",
                python_float(top_p)
            )));
        }
        Ok(Sampling {
            do_sample,
            temperature,
            top_k,
            top_p,
        })
    }

    /// Whether tokens are drawn (else the winner is taken).
    pub fn do_sample(&self) -> bool {
        self.do_sample
    }

    /// The temperature of the votes.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// How many of the best classes are candidates (0: all).
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// The nucleus: the classes of the largest pick weights are kept until their sum reaches it.
    pub fn top_p(&self) -> f64 {
        self.top_p
    }

    /// How many classes an answer must keep for this sampling: one when greedy.
    fn answer_top_k(&self) -> usize {
        if self.do_sample {
            self.top_k
        } else {
            1
        }
    }

    /// Writes the pick weight of each of `votes` (best first) to `weights`, by the rules of the
    /// module doc: the chance of drawing it, in [0, 1], summing to 1, never NaN (greedy: all of it
    /// on the first); `order` is scratch space.
    fn pick_weights_into(&self, votes: &[f64], weights: &mut Vec<f64>, order: &mut Vec<usize>) {
        weights.clear();
        weights.resize(votes.len(), 0.0);
        if votes.is_empty() {
            return;
        }
        if !self.do_sample {
            weights[0] = 1.0;
            return;
        }
        let kept = match self.top_k {
            0 => votes.len(),
            k => k.min(votes.len()),
        };
        // Votes are finite and >= 0; anything else counts as no vote.
        let vote = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let best = votes[..kept].iter().map(|&v| vote(v)).fold(0.0, f64::max);
        for (slot, &v) in weights.iter_mut().zip(&votes[..kept]) {
            // ln(v / best) <= 0, so the weight lies in [0, 1]: 1 for the best vote, 0 for none.
            // All votes zero: every kept class alike.
            *slot = if best == 0.0 {
                1.0
            } else {
                ((vote(v) / best).ln() / self.temperature).exp()
            };
        }
        normalise(weights);
        if self.top_p < 1.0 {
            order.clear();
            order.extend(0..kept);
            order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
            // numpy's searchsorted(cumsum, top_p) + 1: through the first class that reaches top_p.
            let mut cumulative = 0.0;
            let mut nucleus = kept;
            for (n, &i) in order.iter().enumerate() {
                cumulative += weights[i];
                if cumulative >= self.top_p {
                    nucleus = n + 1;
                    break;
                }
            }
            for &i in &order[nucleus..] {
                weights[i] = 0.0;
            }
            normalise(weights);
        }
    }
}

/// Scales `weights` (in [0, 1], at least one of them 1) to sum to 1.
fn normalise(weights: &mut [f64]) {
    let sum: f64 = weights.iter().sum();
    if sum > 0.0 {
        weights.iter_mut().for_each(|x| *x /= sum);
    }
}

/// The position drawn from `weights` (pick weights) by `uniform` in [0, 1): the first whose
/// cumulative weight exceeds it.
fn draw(weights: &[f64], uniform: f64) -> usize {
    let target = uniform * weights.iter().sum::<f64>();
    let mut cumulative = 0.0;
    let mut last = 0;
    for (i, &weight) in weights.iter().enumerate() {
        if weight > 0.0 {
            cumulative += weight;
            last = i;
            if target < cumulative {
                return i;
            }
        }
    }
    last
}

/// A uniform number in [0, 1) from 53 random bits.
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Keep this many ids before dropping all but the last W of them.
const KEEP_IDS: usize = 4096;

/// A generation in progress.
pub struct Generation {
    /// The ids so far, prompt and generated (the last W of them make the context; the document
    /// cache has counted them all).
    ids: Vec<u32>,
    remaining: usize,
    source: Source,
    sampling: Sampling,
    rng: Xoshiro256PlusPlus,
    /// Buffers reused by every step.
    answer: Answer,
    weights: Vec<f64>,
    order: Vec<usize>,
}

/// Where a generation's candidates come from.
enum Source {
    /// A classifier's answers (TiMBL's algorithms), by the query.
    Classifier(Query),
    /// The scoring distribution ([`crate::kneser_ney`]), with the document cache when it has one.
    KneserNey(Box<KneserNeyState>),
}

/// What generation from the scoring distribution keeps between steps.
struct KneserNeyState {
    /// The large contexts' entries in probability order, for the most probable id's search.
    entry_order: EntryOrder,
    /// The document cache over the prompt and the tokens generated, and its weights.
    cache: Option<(DocumentCache, CacheWeights)>,
}

impl KneserNeyState {
    /// Starts over `prompt` (with a cache, all of it counted first, as a document scored from its
    /// start; the weights must be the cache's: finite, at least 0, summing to at most 1).
    fn new(model: &Model, prompt: &[u32], cache: Option<CacheWeights>) -> Result<KneserNeyState> {
        let n_ids = model.params().n_symbols as usize;
        if let Some(weights) = cache.as_ref().filter(|w| !valid_weights(w)) {
            return Err(Error::InvalidInput(format!(
                "the document cache's weights must be finite, at least 0 and sum to at most 1, got {weights:?}"
            )));
        }
        model.kneser_ney()?; // an error for a model without the statistics
        let mut state = KneserNeyState {
            entry_order: EntryOrder::default(),
            cache: cache.map(|weights| (DocumentCache::new(n_ids, prompt.len()), weights)),
        };
        if state.cache.is_some() {
            for i in 0..prompt.len() {
                state.count(model, &model.context(&prompt[..i]), prompt[i]);
            }
        }
        Ok(state)
    }

    /// The candidates after `context` into `answer`: the most probable first, `keep` of them (0:
    /// all with a positive probability, in id order unless `ordered`).
    fn answer_into(
        &mut self,
        model: &Model,
        context: &[u32],
        keep: usize,
        ordered: bool,
        answer: &mut Answer,
    ) -> Result<()> {
        let kn = model.kneser_ney()?;
        let corrupt = |c| model.corrupt(c);
        let path = kn.descend(context).map_err(corrupt)?;
        answer.classes.clear();
        answer.votes.clear();
        if keep == 1 && self.cache.is_none() {
            let best = kn.most_probable(&path, model.root_order(&kn), &mut self.entry_order);
            answer.classes.push(best.map_err(corrupt)?);
            answer.votes.push(1.0);
            return Ok(());
        }
        let mut p = kn.probabilities(&path).map_err(corrupt)?;
        if let Some((cache, weights)) = &self.cache {
            cache.mix_into(&Keys::of(context, model.params().pad), weights, &mut p);
        }
        best_first(&p, keep, ordered, answer);
        Ok(())
    }

    /// Counts `id` after `context` in the document cache.
    fn count(&mut self, model: &Model, context: &[u32], id: u32) {
        if let Some((cache, _)) = &mut self.cache {
            cache.observe(&Keys::of(context, model.params().pad), id);
        }
    }
}

/// The ids of positive `probabilities`, the most probable first (ties: the lower id), `keep` of
/// them (0: all, in id order unless `ordered`: sorting them all costs more than the step), with
/// their probabilities as votes, into `answer`.
fn best_first(probabilities: &[f64], keep: usize, ordered: bool, answer: &mut Answer) {
    let mut ids: Vec<u32> = (0..probabilities.len() as u32)
        .filter(|&id| probabilities[id as usize] > 0.0)
        .collect();
    let order = |a: &u32, b: &u32| {
        let (pa, pb) = (probabilities[*a as usize], probabilities[*b as usize]);
        pb.total_cmp(&pa).then(a.cmp(b))
    };
    if keep > 0 && keep < ids.len() {
        ids.select_nth_unstable_by(keep - 1, order);
        ids.truncate(keep);
    }
    if keep > 0 || ordered {
        ids.sort_unstable_by(order);
    }
    answer.votes.clear();
    answer
        .votes
        .extend(ids.iter().map(|&id| probabilities[id as usize]));
    answer.classes = ids;
}

impl Generation {
    /// Starts generating up to `max_new_tokens` after `prompt` with `model`: answers by `query`'s
    /// classifier, picks by `sampling`, draws from an RNG seeded with `seed` (None: from the
    /// operating system's entropy). `query`'s `top_k` is not used: each step keeps one class when
    /// greedy, `sampling`'s `top_k` when sampling.
    pub fn new(
        model: &Model,
        prompt: &[u32],
        max_new_tokens: usize,
        query: &Query,
        sampling: Sampling,
        seed: Option<u64>,
    ) -> Result<Generation> {
        model.check_ids(prompt)?;
        let query = query.with_top_k(sampling.answer_top_k());
        model.check_algorithm(query.algorithm())?;
        let source = Source::Classifier(query);
        Ok(Self::start(prompt, max_new_tokens, source, sampling, seed))
    }

    /// Starts generating from the scoring distribution (Kneser-Ney; an error for a model without
    /// it), with the document cache weighted by `cache` when given (the whole `prompt` counted
    /// first); otherwise as [`Generation::new`]: greedy takes the most probable id, sampling draws
    /// among the `top_k` most probable by their probabilities as votes.
    pub fn from_scoring(
        model: &Model,
        prompt: &[u32],
        max_new_tokens: usize,
        sampling: Sampling,
        seed: Option<u64>,
        cache: Option<CacheWeights>,
    ) -> Result<Generation> {
        model.check_ids(prompt)?;
        let source = Source::KneserNey(Box::new(KneserNeyState::new(model, prompt, cache)?));
        Ok(Self::start(prompt, max_new_tokens, source, sampling, seed))
    }

    fn start(
        prompt: &[u32],
        max_new_tokens: usize,
        source: Source,
        sampling: Sampling,
        seed: Option<u64>,
    ) -> Generation {
        let rng = match seed {
            Some(seed) => Xoshiro256PlusPlus::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Generation {
            ids: prompt.to_vec(),
            remaining: max_new_tokens,
            source,
            sampling,
            rng,
            answer: Answer::default(),
            weights: Vec::new(),
            order: Vec::new(),
        }
    }

    /// How many tokens are still to come.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next token, or None once `max_new_tokens` are done. `model` must be the one the
    /// generation was started with.
    pub fn next_id(&mut self, model: &Model) -> Result<Option<u32>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let context = model.context(&self.ids);
        match &mut self.source {
            Source::Classifier(query) => model.answer_into(&context, query, &mut self.answer)?,
            Source::KneserNey(state) => {
                let keep = self.sampling.answer_top_k();
                // Sampling among all ids by their probabilities needs no order; top_p does.
                let ordered = self.sampling.top_p() < 1.0;
                state.answer_into(model, &context, keep, ordered, &mut self.answer)?
            }
        }
        if self.answer.classes.is_empty() {
            return Err(Error::InvalidInput(
                "the model answered with no class".into(),
            ));
        }
        let pick = if self.sampling.do_sample {
            self.sampling
                .pick_weights_into(&self.answer.votes, &mut self.weights, &mut self.order);
            draw(&self.weights, uniform(&mut self.rng))
        } else {
            0
        };
        let id = self.answer.classes[pick];
        if let Source::KneserNey(state) = &mut self.source {
            state.count(model, &context, id);
        }
        if self.ids.len() >= KEEP_IDS {
            let width = context.len();
            self.ids.drain(..self.ids.len() - width);
        }
        self.ids.push(id);
        self.remaining -= 1;
        Ok(Some(id))
    }

    /// Up to `n` more tokens (fewer, or none, once `max_new_tokens` are done).
    pub fn next_ids(&mut self, model: &Model, n: usize) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(n.min(self.remaining).min(1 << 16));
        while ids.len() < n {
            match self.next_id(model)? {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sampling {
        /// The pick weights of `votes`.
        fn pick_weights(&self, votes: &[f64]) -> Vec<f64> {
            let mut weights = Vec::new();
            self.pick_weights_into(votes, &mut weights, &mut Vec::new());
            weights
        }
    }

    fn sampling(temperature: f64, top_k: i64, top_p: f64) -> Sampling {
        Sampling::new(true, temperature, top_k, top_p).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    const VOTES: [f64; 4] = [4.0, 2.0, 1.0, 1.0];

    #[test]
    fn the_cache_mixture_of_generation_is_that_of_scoring() {
        // Each step's candidate probabilities, with the text so far counted, are what scoring the
        // same text as one document gives its tokens.
        let model = crate::training::test_model(3, false);
        let weights = [0.05, 0.1, 0.05, 0.05];
        let text: Vec<u32> = [5u32, 9, 2, 17, 4, 4, 11, 23, 8, 1, 6, 13].repeat(2);
        let (contexts, targets) = model.windows(&text, &[text.len() as u64]).unwrap();
        let scored = model.score_document(&contexts, &targets, &weights).unwrap();
        let mut state = KneserNeyState::new(&model, &[], Some(weights)).unwrap();
        let mut answer = Answer::default();
        for (i, &token) in text.iter().enumerate() {
            let context = model.context(&text[..i]);
            state
                .answer_into(&model, &context, 0, true, &mut answer)
                .unwrap();
            let at = answer.classes.iter().position(|&c| c == token).unwrap();
            let expected = 10f64.powf(scored.log10[i]);
            assert!(
                (answer.votes[at] / expected - 1.0).abs() < 1e-9,
                "token {i}"
            );
            let sum: f64 = answer.votes.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "step {i} sums to {sum}");
            state.count(&model, &context, token);
        }
        // A prompt is counted as the same document: starting after half the text gives the same
        // candidates as counting that half step by step.
        let mut prompted = KneserNeyState::new(&model, &text[..12], Some(weights)).unwrap();
        let mut other = Answer::default();
        prompted
            .answer_into(&model, &model.context(&text[..12]), 0, true, &mut other)
            .unwrap();
        let mut stepped = KneserNeyState::new(&model, &[], Some(weights)).unwrap();
        for i in 0..12 {
            stepped.count(&model, &model.context(&text[..i]), text[i]);
        }
        stepped
            .answer_into(&model, &model.context(&text[..12]), 0, true, &mut answer)
            .unwrap();
        assert_eq!(
            (other.classes, other.votes),
            (answer.classes.clone(), answer.votes.clone())
        );
        assert!(KneserNeyState::new(&model, &[], Some([0.5, 0.5, 0.5, 0.0])).is_err());
        assert!(KneserNeyState::new(&model, &[], Some([f64::NAN, 0.0, 0.0, 0.0])).is_err());
    }

    #[test]
    fn candidates_of_a_distribution_come_most_probable_first() {
        let p = [0.1, 0.0, 0.3, 0.1, 0.5];
        let mut answer = Answer::default();
        best_first(&p, 0, true, &mut answer);
        assert_eq!(answer.classes, vec![4, 2, 0, 3]); // ties: the lower id; no zero probability
        assert_eq!(answer.votes, vec![0.5, 0.3, 0.1, 0.1]);
        best_first(&p, 0, false, &mut answer);
        assert_eq!(answer.classes, vec![0, 2, 3, 4]); // unordered: by id
        best_first(&p, 3, false, &mut answer);
        assert_eq!(answer.classes, vec![4, 2, 0]);
        best_first(&p, 1, true, &mut answer);
        assert_eq!((answer.classes, answer.votes), (vec![4], vec![0.5]));
    }

    #[test]
    fn greedy_puts_everything_on_the_winner() {
        assert_eq!(
            Sampling::GREEDY.pick_weights(&VOTES),
            vec![1.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(Sampling::GREEDY.answer_top_k(), 1);
    }

    #[test]
    fn temperature_sharpens_or_flattens_the_votes() {
        assert!(close(
            &sampling(1.0, 0, 1.0).pick_weights(&VOTES),
            &[0.5, 0.25, 0.125, 0.125]
        ));
        // T = 0.5 squares the votes: 16, 4, 1, 1.
        let sharp = sampling(0.5, 0, 1.0).pick_weights(&VOTES);
        assert!(close(
            &sharp,
            &[16.0 / 22.0, 4.0 / 22.0, 1.0 / 22.0, 1.0 / 22.0]
        ));
        // T = 2 takes square roots: 2, sqrt 2, 1, 1.
        let flat = sampling(2.0, 0, 1.0).pick_weights(&VOTES);
        let s = 4.0 + 2f64.sqrt();
        assert!(close(&flat, &[2.0 / s, 2f64.sqrt() / s, 1.0 / s, 1.0 / s]));
        // Huge votes do not overflow: computed in log space.
        let huge = sampling(0.01, 0, 1.0).pick_weights(&[1e300, 1e299]);
        assert!(huge[0] > 0.999 && huge.iter().all(|p| p.is_finite()));
        // Tiny temperatures keep the best votes (ties alike), never NaN; zero votes get nothing.
        let w = sampling(0.005, 0, 1.0).pick_weights(&[4.0, 4.0, 2.0, 0.0]);
        assert!(close(&w, &[0.5, 0.5, 0.5 * 0.5f64.powi(200), 0.0]), "{w:?}");
        for t in [0.005, 1e-300, f64::MIN_POSITIVE] {
            let w = sampling(t, 0, 1.0).pick_weights(&[4.0, 4.0, 2.0, 0.0]);
            assert!(close(&w, &[0.5, 0.5, 0.0, 0.0]), "temperature {t}");
            let w = sampling(t, 0, 0.9).pick_weights(&[3.0, 2.0, 1.0]);
            assert_eq!(w, vec![1.0, 0.0, 0.0], "temperature {t}");
        }
        let w = sampling(1e300, 0, 1.0).pick_weights(&[4.0, 1.0]);
        assert!(w.iter().all(|x| x.is_finite() && (x - 0.5).abs() < 1e-9));
        assert_eq!(
            sampling(0.5, 0, 1.0).pick_weights(&[0.0, 0.0]),
            vec![0.5, 0.5]
        );
    }

    #[test]
    fn top_k_keeps_the_best_classes() {
        assert!(close(
            &sampling(1.0, 2, 1.0).pick_weights(&VOTES),
            &[2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0]
        ));
        assert!(close(
            &sampling(1.0, 1, 1.0).pick_weights(&VOTES),
            &[1.0, 0.0, 0.0, 0.0]
        ));
        assert!(close(
            &sampling(1.0, 9, 1.0).pick_weights(&VOTES),
            &[0.5, 0.25, 0.125, 0.125]
        ));
        assert_eq!(sampling(1.0, 50, 1.0).answer_top_k(), 50);
    }

    #[test]
    fn top_p_keeps_the_nucleus_through_the_class_that_reaches_it() {
        // Cumulative 0.5, 0.75, 0.875, 1: top_p 0.5 keeps one class, 0.6 two, 0.75 two, 0.8 three.
        for (top_p, kept) in [(0.5, 1), (0.6, 2), (0.75, 2), (0.8, 3), (0.1, 1)] {
            let p = sampling(1.0, 0, top_p).pick_weights(&VOTES);
            assert_eq!(
                p.iter().filter(|&&x| x > 0.0).count(),
                kept,
                "top_p {top_p}"
            );
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Ties keep their order (stable): the first of two equal classes goes first.
        let p = sampling(1.0, 0, 0.3).pick_weights(&[1.0, 1.0, 1.0]);
        assert_eq!(p, vec![1.0, 0.0, 0.0]);
        let p = sampling(1.0, 0, 0.4).pick_weights(&[1.0, 1.0, 1.0]);
        assert_eq!(p, vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn draws_follow_the_weights() {
        let p = [0.5, 0.0, 0.25, 0.25];
        assert_eq!(draw(&p, 0.0), 0);
        assert_eq!(draw(&p, 0.49), 0);
        assert_eq!(draw(&p, 0.5), 2);
        assert_eq!(draw(&p, 0.8), 3);
        assert_eq!(draw(&p, 0.999_999_999_999), 3);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[draw(&p, uniform(&mut rng))] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((9_500..10_500).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn greedy_generation_takes_the_answer_s_first_class() {
        let model = crate::training::test_model(3, true);
        for algorithm in ["igtree", "tribl2"] {
            let query = Query::parse(algorithm, 1, "majority", 1.0, 5).unwrap();
            let mut generation =
                Generation::new(&model, &[4, 5], 40, &query, Sampling::GREEDY, None).unwrap();
            let ids = generation.next_ids(&model, 100).unwrap();
            assert_eq!((ids.len(), generation.remaining()), (40, 0));
            assert_eq!(generation.next_ids(&model, 5).unwrap(), vec![]);
            let mut so_far = vec![4, 5];
            for &id in &ids {
                let answer = model.answer(&model.context(&so_far), &query).unwrap();
                assert_eq!(id, answer.classes[0]);
                so_far.push(id);
            }
        }
    }

    #[test]
    fn a_seed_gives_the_same_sampled_ids() {
        let model = crate::training::test_model(3, false);
        let query = Query::igtree(1);
        let run = |seed: Option<u64>, sampling: Sampling| {
            let mut g = Generation::new(&model, &[1], 300, &query, sampling, seed).unwrap();
            let mut ids = g.next_ids(&model, 7).unwrap();
            ids.extend(g.next_ids(&model, 1000).unwrap());
            ids
        };
        let sampled = sampling(1.0, 0, 1.0);
        let a = run(Some(42), sampled);
        assert_eq!(a.len(), 300);
        assert_eq!(a, run(Some(42), sampled));
        assert_ne!(a, run(Some(43), sampled));
        assert_ne!(run(None, sampled), run(None, sampled));
        // Sampling from the top 1 class is greedy.
        let greedy = run(Some(1), Sampling::GREEDY);
        assert_eq!(run(Some(2), sampling(1.0, 1, 1.0)), greedy);
        // Every sampled id is one of the classes the context's answer lists.
        let mut so_far = vec![1];
        for &id in &a {
            let answer = model
                .answer(&model.context(&so_far), &Query::igtree(0))
                .unwrap();
            assert!(answer.classes.contains(&id));
            so_far.push(id);
        }
    }

    #[test]
    fn a_generation_checks_its_prompt_and_classifier() {
        let model = crate::training::test_model(3, false);
        let query = Query::igtree(1);
        assert!(Generation::new(&model, &[99], 5, &query, Sampling::GREEDY, None).is_err());
        assert!(
            Generation::new(&model, &[crate::UNKNOWN], 5, &query, Sampling::GREEDY, None).is_ok()
        );
        let ib1 = Query::parse("ib1", 1, "majority", 1.0, 1).unwrap();
        let err = Generation::new(&model, &[1], 5, &ib1, Sampling::GREEDY, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("instance base"), "{err}");
    }

    #[test]
    fn sampling_arguments_are_checked() {
        for (temperature, top_k, top_p, message) in [
            (
                0.0,
                50,
                1.0,
                "temperature must be a positive finite number, got 0.0",
            ),
            (
                -1.0,
                50,
                1.0,
                "temperature must be a positive finite number, got -1.0",
            ),
            (
                f64::NAN,
                50,
                1.0,
                "temperature must be a positive finite number, got nan",
            ),
            (
                f64::INFINITY,
                50,
                1.0,
                "temperature must be a positive finite number, got inf",
            ),
            (1.0, -1, 1.0, "top_k must be at least 0, got -1"),
            (1.0, 50, 0.0, "top_p must be in (0, 1], got 0.0"),
            (1.0, 50, 1.5, "top_p must be in (0, 1], got 1.5"),
            (1.0, 50, f64::NAN, "top_p must be in (0, 1], got nan"),
        ] {
            for do_sample in [false, true] {
                let err = Sampling::new(do_sample, temperature, top_k, top_p)
                    .unwrap_err()
                    .to_string();
                assert_eq!(err, message);
            }
        }
    }
}
