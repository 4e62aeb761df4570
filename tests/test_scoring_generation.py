"""Generation from the scoring distribution (algorithm="kneser-ney"), with and without the document cache."""

import numpy as np
import pytest

import memlm

from conftest import run_cli


def test_greedy_takes_the_most_probable_token_each_step(model4):
    prompt = "It was a fine morning, and"
    text = model4.generate(prompt, max_new_tokens=12, algorithm="kneser-ney")
    ids = model4.encode(prompt)
    for _ in range(12):
        ids.append(int(np.argmax(model4.probabilities(ids))))
    assert prompt + text == model4.decode(ids)


def test_the_cache_copies_a_passage_the_document_repeats(model4):
    # A made-up passage the model never saw, twice in the prompt: with the cache the continuation of its
    # third start comes from the prompt itself (until the model's own opinion of " mor" wins: "morrow");
    # the model alone cannot know it.
    passage = " Zorblax quintessa morvane plethik."
    prompt = passage * 2 + " Zorblax"
    with_cache = model4.generate(prompt, max_new_tokens=6, algorithm="kneser-ney", cache=True)
    alone = model4.generate(prompt, max_new_tokens=6, algorithm="kneser-ney", cache=False)
    assert with_cache.startswith(" quintessa mor")
    assert not alone.startswith(" quintessa")


def test_sampling_is_repeatable_and_follows_top_k(model4):
    kwargs = {"max_new_tokens": 30, "algorithm": "kneser-ney", "do_sample": True, "seed": 11, "top_k": 20}
    first = model4.generate("Anne", **kwargs)
    assert first == model4.generate("Anne", **kwargs) and first != model4.generate("Anne", **{**kwargs, "seed": 12})
    assert model4.generate("Anne", **{**kwargs, "cache": True}) == model4.generate("Anne", **{**kwargs, "cache": True})
    # Sampling over every token at a temperature near 0 takes the most probable one each step, as greedy
    # decoding does (greedy finds it without computing every probability: another path).
    greedy = model4.generate("Anne", max_new_tokens=10, algorithm="kneser-ney")
    assert model4.generate("Anne", **{**kwargs, "max_new_tokens": 10, "top_k": 0, "temperature": 1e-9}) == greedy


def test_bad_arguments_and_models_without_statistics(model4, tmp_path):
    with pytest.raises(memlm.MemlmError, match="cache"):
        model4.generate("Anne", algorithm="kneser-ney", cache="yes")
    with pytest.raises(memlm.MemlmError, match="k must"):
        model4.generate("Anne", algorithm="kneser-ney", k=0)
    with pytest.raises(memlm.MemlmError, match="'kneser-ney'"):
        model4.generate("Anne", algorithm="kneser-knee")
    with pytest.raises(memlm.MemlmError, match="cache applies to algorithm='kneser-ney' only"):
        model4.generate("Anne", cache=True)
    path = tmp_path / "i.txt"
    path.write_text("a b c\nb c a\nc a b\n")
    instance_model = memlm.train_instances(path)
    with pytest.raises(memlm.MemlmError, match="no Kneser-Ney statistics"):
        instance_model.generate("a b", algorithm="kneser-ney")


def test_generate_command(model4, model4_path):
    out = run_cli("generate", model4_path, "It was", "--algorithm", "kneser-ney", "--max-new-tokens", 8).stdout
    assert out == "It was" + model4.generate("It was", max_new_tokens=8, algorithm="kneser-ney") + "\n"
    prompt = " Zorblax quintessa morvane plethik." * 2 + " Zorblax"
    arguments = ("generate", model4_path, prompt, "--algorithm", "kneser-ney", "--max-new-tokens", 4)
    assert run_cli(*arguments, "--cache").stdout.startswith(prompt + " quintessa")
    assert not run_cli(*arguments).stdout.startswith(prompt + " quintessa")
    refused = run_cli("generate", model4_path, "It was", "--cache", check=False)
    assert refused.returncode == 1 and "cache applies" in refused.stderr
