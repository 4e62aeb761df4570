"""The scoring distribution (true probabilities), per-token scores, perplexity and the evaluation protocol."""

import copy
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memlm
from memlm.evaluation import evaluate

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50256), min_size=0, max_size=8))
def test_probabilities_sum_to_one_over_the_vocabulary(model4, ids):
    p = model4.probabilities(ids)
    assert p.shape == (50258,)
    assert p[model4.pad_id] == 0
    assert (p[:-1] > 0).all()
    assert abs(p.sum() - 1.0) < 1e-6


def test_scores_agree_with_the_full_distribution(model4):
    text = "It was a fine morning"
    ids = model4.encode(text)
    scores = model4.score(text, cache=False)  # probabilities() is the model's, without the document cache
    assert [s.id for s in scores] == ids
    for i, s in enumerate(scores):
        p = model4.probabilities(ids[:i])
        assert s.log10_prob == pytest.approx(math.log10(p[ids[i]]), rel=1e-9)
        assert 0 <= s.context_length <= model4.width


def test_token_scores_are_a_sequence_over_arrays(model4):
    text = "It was a fine morning.\n\nAnne walked out."
    scores = model4.score(text)
    items = list(scores)
    assert len(scores) == len(items) == scores.ids.size == scores.log10_probs.size > 5
    assert (
        [s.id for s in items]
        == scores.ids.tolist()
        == model4.encode("It was a fine morning.") + model4.encode("Anne walked out.")
    )
    assert [s.log10_prob for s in items] == scores.log10_probs.tolist()
    assert [s.context_length for s in items] == scores.context_lengths.tolist()
    assert [s.oov for s in items] == scores.oov.tolist()
    assert "".join(s.token for s in items) == "It was a fine morning.Anne walked out."
    assert scores[-1] == items[-1] and scores[2] == items[2]
    assert list(scores[2:5]) == items[2:5] and list(scores[::-2]) == items[::-2]
    assert scores == items and scores != items[:-1] and scores != 3
    with pytest.raises(IndexError, match="out of range"):
        scores[len(items)]
    # Slices of slices keep the text of each token (no chain of calls: a thousand deep is fine).
    rest = scores
    for _ in range(len(items) - 1):
        rest = rest[1:]
    assert list(rest) == items[-1:]
    many = model4.score("Anne " * 1500)
    for _ in range(1200):
        many = many[1:]
    assert many[0].token == " Anne" and pickle.loads(pickle.dumps(many[:3])) == many[:3]
    assert scores.perplexities() == {k: v for k, v in model4.perplexity(text).items() if k != "tokens"}
    assert pickle.loads(pickle.dumps(scores)) == scores == copy.deepcopy(scores)


def test_training_text_is_far_less_perplexing_than_held_out_text(model4):
    seen = model4.perplexity(TRAIN_TEXT.read_text()[:20000])
    held_out = model4.perplexity(TEST_TEXT.read_text()[:20000])
    assert seen["perplexity"] * 3 < held_out["perplexity"] < math.inf
    assert held_out["oov"] > 0 and held_out["perplexity_excluding_oov"] < held_out["perplexity"]


def test_unseen_tokens_have_finite_cost(model4):
    scores = model4.score("Zxqv\u4e2d\u6587 \U0001f600 floccinaucinihilipilification")
    assert any(s.oov for s in scores)
    assert all(math.isfinite(s.log10_prob) and s.log10_prob < 0 for s in scores)


def test_evaluate_reports_the_protocol_figures(model4):
    result = evaluate(model4, [TEST_TEXT])
    assert result["tokens"] > 10_000
    assert 0 < result["accuracy"] <= result["top5_accuracy"] < 1
    assert result["correct"] == round(result["accuracy"] * result["tokens"])
    assert 1 < result["perplexity_excluding_oov"] < result["perplexity"] < math.inf
    assert result["tokens_per_second"] > 0 and result["peak_rss_bytes"] > 0
    assert 0 < result["scoring_accuracy"] < 1


def test_most_probable_is_the_argmax_of_the_scoring_distribution(model4):
    contexts, targets = model4.windows(TEST_TEXT.read_text()[:3000])
    best = model4.most_probable(contexts)
    assert best.shape == targets.shape and best.dtype == np.uint32
    for context, top in zip(contexts[::7], best[::7], strict=True):
        p = model4.probabilities(context[context != model4.pad_id].tolist())
        assert top == np.argmax(p)


def test_instance_models_have_no_scoring_argmax(tmp_path):
    path = tmp_path / "i.txt"
    path.write_text("a b c\nb c a\nc a b\n")
    model = memlm.train_instances(path)
    with pytest.raises(memlm.MemlmError, match="no Kneser-Ney statistics"):
        model.most_probable(np.zeros((2, 2), dtype=np.uint32))


def test_evaluate_matches_instance_by_instance_classification(model4, tmp_path):
    # The same instances through `memlm instances` + `memlm classify` (the path checked against TiMBL
    # in test_timbl_equivalence) give the same accuracy as `memlm eval` on the raw text.
    instances = tmp_path / "test.txt"
    run_cli("instances", TEST_TEXT, "--width", 4, "-o", instances)
    model = tmp_path / "m.memlm"
    model4.save(model)
    classified = run_cli("classify", model, "--instances", instances, "-o", tmp_path / "out.txt")
    line = next(x for x in classified.stderr.splitlines() if x.startswith("overall accuracy"))
    correct = int(line.split("(")[1].split("/")[0])
    assert evaluate(model4, [TEST_TEXT])["correct"] == correct


def test_score_and_eval_commands(model4_path):
    proc = run_cli("score", model4_path, stdin="It was a fine morning.\n\nThe end.")
    lines = proc.stdout.splitlines()
    assert len(lines) == len(memlm.load(model4_path).encode("It was a fine morning.")) + 3
    assert "Perplexity including OOVs" in proc.stderr
    out = run_cli("eval", model4_path, TEST_TEXT, "--json").stdout
    assert '"top5_accuracy"' in out
    table = run_cli("eval", model4_path, TEST_TEXT).stdout
    assert "perplexity" in table and "top-5 accuracy" in table


def test_knn_evaluation_needs_the_instance_base(model4):
    with pytest.raises(memlm.MemlmError, match="instance base"):
        evaluate(model4, [TEST_TEXT], algorithm="tribl2")
    small = memlm.train(TRAIN_TEXT, width=4, algorithms="igtree,tribl2")
    contexts = np.zeros((1, 4), dtype=np.uint32)
    assert small.predict_batch(contexts, algorithm="tribl2")[0].shape == (1, 1)


def test_token_models_score_with_kneser_ney_and_instance_file_models_with_witten_bell(model4, tmp_path):
    info = model4.info()
    assert info["scoring"] == "kneser_ney" and info["size_breakdown"]["kneser-ney"] > 0
    assert "Kneser-Ney" in run_cli("info", _saved(model4, tmp_path)).stdout
    instances = tmp_path / "train.txt"
    instances.write_text("a b c\nb c d\na b c\nc d a\n")
    columns = memlm.train_instances(instances)
    assert columns.info()["scoring"] == "witten_bell"
    p = columns.probabilities("a b")
    assert abs(p.sum() - 1.0) < 1e-9 and p[columns.encode("c")[0]] == p.max()


def test_longer_contexts_score_in_domain_text_better(model4, model16):
    # Every order up to W contributes (Kneser-Ney over all contexts): where long contexts were seen
    # (training text) W = 16 scores better than W = 4, and on held-out text of the same author, where
    # few are, it is no worse (measured on this sample: 0.02 % either way, with and without the cache).
    seen = TRAIN_TEXT.read_text()[:20000]
    assert model16.perplexity(seen)["perplexity"] < model4.perplexity(seen)["perplexity"]
    held_out = TEST_TEXT.read_text()
    for cache in (True, False):
        ratio = (
            model16.perplexity(held_out, cache=cache)["perplexity_excluding_oov"]
            / model4.perplexity(held_out, cache=cache)["perplexity_excluding_oov"]
        )
        assert ratio < 1.001, cache


def test_w16_distribution_sums_to_one_after_training_prefixes(model16):
    model16.verify()  # every structural invariant of the stored statistics
    text = TRAIN_TEXT.read_text()[:3000]
    ids = model16.encode(text)
    for end in (0, 1, 5, 17, 40, len(ids) - 1):
        p = model16.probabilities(ids[:end])
        assert abs(p.sum() - 1.0) < 1e-6 and p[model16.pad_id] == 0 and (p[:-1] > 0).all()


def _saved(model, tmp_path):
    path = tmp_path / "m.memlm"
    model.save(path)
    return path


def test_the_document_cache_makes_a_repeated_passage_cheaper(model4, model4_path):
    weights = model4.cache_weights
    assert weights is not None and len(weights) == 4 and 0 < sum(weights) < 1
    passage = TEST_TEXT.read_text()[:1500]
    twice = passage + "\n\n" + passage
    plain = [s.log10_prob for s in model4.score(twice, cache=False)]
    cached = [s.log10_prob for s in model4.score(twice)]
    n = len(plain) // 2
    # Without the cache each block is scored alike; with it, the second copy costs far less.
    assert plain[:n] == plain[n:]
    assert sum(cached[n:]) > sum(plain[n:]) + n * 0.1
    assert model4.perplexity(twice)["perplexity"] < model4.perplexity(twice, cache=False)["perplexity"]
    proc = run_cli("score", model4_path, "--no-cache", stdin=twice)
    assert [float(line.split("\t")[1]) for line in proc.stdout.splitlines()] == pytest.approx(plain, abs=1e-6)
    held_out = [
        json.loads(run_cli("eval", model4_path, TEST_TEXT, "--json", *flag).stdout) for flag in ([], ["--no-cache"])
    ]
    assert held_out[0]["perplexity"] < held_out[1]["perplexity"]
    assert (
        held_out[0].keys()
        == held_out[1].keys()
        >= {"accuracy", "top5_accuracy", "perplexity", "perplexity_excluding_oov"}
    )


def test_the_document_cache_starts_empty_at_every_file_and_record(model4, model4_path, tmp_path):
    """Each test file (and JSONL record) is its own document: scored together, two copies of a text cost
    what each costs alone, where one cache over both would make the second far cheaper."""
    assert model4.cache_weights is not None
    copy = tmp_path / "copy.txt"
    copy.write_text(TEST_TEXT.read_text())

    def log10_sum(result):
        return result["tokens"] * math.log10(result["perplexity"])

    one = evaluate(model4, [TEST_TEXT])
    both = evaluate(model4, [TEST_TEXT, copy])
    assert both["tokens"] == 2 * one["tokens"] and both["oov"] == 2 * one["oov"]
    assert log10_sum(both) == pytest.approx(2 * log10_sum(one), rel=1e-9)
    cli = json.loads(run_cli("eval", model4_path, TEST_TEXT, copy, "--json").stdout)
    assert cli["perplexity"] == pytest.approx(both["perplexity"], rel=1e-9)
    passage = TEST_TEXT.read_text()[:1500]
    records = tmp_path / "two.jsonl"
    records.write_text(json.dumps({"text": passage}) + "\n" + json.dumps({"text": passage}) + "\n")
    scores = [float(line.split("\t")[1]) for line in run_cli("score", model4_path, records).stdout.splitlines()]
    alone = [s.log10_prob for s in model4.score(passage)]
    assert scores == pytest.approx(alone + alone, abs=1e-6)
