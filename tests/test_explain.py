"""Model.explain and the provenance store: every cited passage is a real training occurrence (its ids hold the
matched context followed by the predicted token, its text is the named source's bytes at its offset)."""

import gzip
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import memlm
from memlm._core import CoreModel
from memlm.checks import train_options
from memlm.errors import MemlmError, ModelFormatError
from memlm.explaining import check_passage, matched_columns
from memlm.provenance import concatenated

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli

#: Held-out text: the first blocks of the Persuasion sample (the model trains on Emma).
HELD_OUT = "\n\n".join(TEST_TEXT.read_text(encoding="utf-8").split("\n\n")[:12])


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Emma as given, a gzip copy of a part, and a file with CRLF line ends, indentation, trailing spaces,
    a no-break-space-only line inside a block and characters of several bytes (passages must cross them)."""
    folder = tmp_path_factory.mktemp("sources")
    emma = TRAIN_TEXT.read_text(encoding="utf-8")
    zipped = folder / "part.txt.gz"
    with gzip.open(zipped, "wt", encoding="utf-8") as f:
        f.write(emma[:30_000])
    odd = folder / "odd.txt"
    odd.write_bytes(
        "  Café au lait, said Mr. Knightley;  \r\n\tthe naïve reply — «non» — came\r\n\u00a0\r\n at once.\r\n\r\n"
        "Mr. Knightley said nothing, and Emma Woodhouse smiled. 😀 Mr. Knightley said so.\n".encode()
        * 3
    )
    return [TRAIN_TEXT, zipped, odd]


@pytest.fixture(scope="module", params=[4, 16])
def model(request, sources):
    return memlm.train([str(s) for s in sources], width=request.param, provenance=True)


def source_bytes(name: str) -> bytes:
    data = Path(name).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def check_passages(model, records) -> int:
    """Checks every passage of ``records`` (see the module doc); returns how many there were."""
    data: dict[str, bytes] = {}

    def source(name: str) -> bytes:
        return data.setdefault(name, source_bytes(name))

    checked = 0
    for record in records:
        assert record.evidence is not None
        assert record.evidence_total >= len(record.evidence)
        matched = matched_columns(model, record.depth)
        for passage in record.evidence:
            assert check_passage(model, record, passage, source) == ""
            # the query's own matched context is there too (k-NN passages cite a neighbour's)
            at = [passage.token_index - (model.width - f) for f in matched]
            assert [passage.ids[i] for i in at if i >= passage.context_ids[0]] == record.context
            a, b = passage.token_chars
            assert passage.context_chars[1] == a < b <= len(passage.text)
            checked += 1
    return checked


def same_origins(a, b) -> bool:
    x, y = a.origins(), b.origins()
    names = ("block_source", "block_offset", "block_bytes", "block_first_join", "join_position", "gap_start")
    return (
        x.sources == y.sources and x.gaps == y.gaps and all(np.array_equal(getattr(x, n), getattr(y, n)) for n in names)
    )


def test_cited_passages_are_training_occurrences(model):
    records = model.explain(HELD_OUT, evidence=3)
    assert len(records) > 300
    assert sum(1 for r in records if r.evidence) > 0.9 * len(records)
    assert check_passages(model, records) > 600
    assert [r.id for r in records] == model.windows(memlm.corpus.split_blocks(HELD_OUT))[1].tolist()


def test_passages_across_line_breaks_gzip_and_wide_characters(model, sources):
    text = "Café au lait, said Mr. Knightley; the naïve reply — «non» — came at once. 😀 Mr. Knightley said so."
    records = model.explain(text, evidence=5)
    assert check_passages(model, records) > 20
    cited = {p.source for r in records for p in r.evidence}
    assert str(sources[2]) in cited
    crossing = [p for r in records for p in r.evidence if "\r\n" in p.text]
    assert crossing, "some passage crosses a CRLF line join"
    zipped = model.explain(TRAIN_TEXT.read_text(encoding="utf-8")[:2_000], evidence=20)
    assert check_passages(model, zipped) > 100
    assert str(sources[1]) in {p.source for r in zipped for p in r.evidence}


def test_explain_answers_and_probabilities(model):
    records = model.explain(HELD_OUT[:500], evidence=0)
    scores = model.score(HELD_OUT[:500])
    assert [round(r.probability, 9) for r in records] == [round(10**s.log10_prob, 9) for s in scores]
    contexts, _ = model.windows(memlm.corpus.split_blocks(HELD_OUT[:500]))
    classes, _, depth, _ = model.predict_batch(contexts)
    assert [r.prediction_id for r in records] == classes[:, 0].tolist()
    assert [r.depth for r in records] == depth.tolist()
    assert all(r.evidence == [] for r in records)  # none asked for
    assert all(list(r.counts)[0] == r.prediction_id for r in records)


def test_no_provenance_store_says_how(tmp_path):
    plain = memlm.train([str(TRAIN_TEXT)], width=4)
    assert not plain.has_provenance
    records = plain.explain("Mr. Knightley said", evidence=3)
    assert all(r.evidence is None for r in records)
    with pytest.raises(MemlmError, match="--provenance"):
        plain.occurrences(11, [0, 0, 0, 0], 1, 3)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None])
def test_bad_evidence_counts(model, bad):
    with pytest.raises(MemlmError):
        model.explain("Mr. Knightley", evidence=bad)


def test_saved_and_loaded_model_cites_the_same(model, tmp_path):
    path = tmp_path / "m.memlm"
    model.save(path)
    loaded = memlm.load(path)
    assert loaded.has_provenance
    assert [r.to_dict() for r in loaded.explain(HELD_OUT[:400])] == [r.to_dict() for r in model.explain(HELD_OUT[:400])]
    loaded.verify()


def test_memory_budget_build_keeps_the_index(sources, tmp_path):
    paths = [str(s) for s in sources]
    whole = memlm.train(paths, width=4, provenance=True)
    capped = memlm.train(paths, width=4, provenance=True, memory=400 << 20, temp_dir=tmp_path)
    assert same_origins(capped, whole)
    assert [r.to_dict() for r in capped.explain(HELD_OUT[:600])] == [r.to_dict() for r in whole.explain(HELD_OUT[:600])]


def test_merged_shards_keep_the_provenance(sources, tmp_path):
    paths = [str(s) for s in sources]
    shards = []
    for number, path in enumerate(paths):
        shards.append(tmp_path / f"{number}.shard")
        memlm.make_shard([path], shards[-1], provenance=True)
    whole = memlm.train(paths, width=4, provenance=True)
    merged = memlm.merge(shards, width=4, provenance=True)
    assert same_origins(merged, whole)
    assert np.array_equal(merged.training_text(), whole.training_text())
    assert [r.to_dict() for r in merged.explain(HELD_OUT[:800])] == [r.to_dict() for r in whole.explain(HELD_OUT[:800])]
    joined = tmp_path / "joined.shard"
    memlm.merge_shards(shards, joined)  # one shard of three keeps their origins
    assert same_origins(memlm.merge([joined], width=4, provenance=True), whole)
    plain = tmp_path / "plain.shard"
    memlm.make_shard([paths[0]], plain)
    with pytest.raises(MemlmError, match="holds no provenance origins"):
        memlm.merge([plain, shards[1]], width=4, provenance=True)
    assert not memlm.merge([plain, shards[1]], width=4).has_provenance
    assert memlm.merge(shards, width=4).has_provenance  # kept whenever every input has origins


@pytest.mark.parametrize("algorithm", ["tribl2", "ib1"])
def test_knn_explanations_show_neighbours_and_cite_the_nearest(sources, algorithm):
    model = memlm.train([str(s) for s in sources], width=4, provenance=True, algorithms="igtree,tribl2,ib1")
    records = model.explain(HELD_OUT[:1500], algorithm=algorithm, k=2, evidence=2)
    assert check_passages(model, records) > 100
    for record in records:
        assert record.neighbours and record.algorithm == algorithm
        assert record.neighbours[0].distance == pytest.approx(record.distance)
        witness = next((n for n in record.neighbours if record.prediction_id in n.counts), None)
        if witness is not None and record.evidence:  # passages cited under that neighbour's context
            known = [f for f in model.feature_columns if witness.context[f] is not None]
            assert all(record.evidence_context[f] == witness.context[f] for f in known)


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "m.memlm"
    model.save(path)
    return path


def test_cli_json_has_the_keys_and_info_the_bytes(model_file):
    proc = run_cli("explain", model_file, "Mr. Knightley said nothing.", "--json", "--evidence", "2")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    keys = {"token", "id", "depth", "context", "algorithm", "prediction", "counts", "probability", "evidence"}
    assert lines and all(keys <= line.keys() for line in lines)
    assert all(set(p) >= {"source", "offset", "text", "ids"} for line in lines for p in line["evidence"])
    piped = run_cli("explain", model_file, "--json", stdin="Mr. Knightley said nothing.")
    assert [json.loads(line)["id"] for line in piped.stdout.splitlines()] == [line["id"] for line in lines]
    info = run_cli("info", model_file).stdout
    assert re.search(r"provenance +[\d,]+ bytes \([\d.]+ per training token", info)


def test_cli_table_page_and_no_index(model_file, tmp_path):
    table = run_cli("explain", model_file, "Mr. Knightley said")
    assert "Knight" in table.stdout and "training passages" in table.stdout
    page = tmp_path / "page.html"
    run_cli("explain", model_file, "Mr. Knightley said", "--html", page)
    assert "<!doctype html>" in page.read_text(encoding="utf-8")
    plain = tmp_path / "plain.memlm"
    memlm.train([str(TRAIN_TEXT)], width=4, output=plain)
    proc = run_cli("explain", plain, "Mr. Knightley said")
    assert "memlm train --provenance" in proc.stdout
    assert json.loads(run_cli("explain", plain, "Mr.", "--json").stdout.splitlines()[0])["evidence"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--evidence", "-1"], "evidence must be a whole number from 0"),
        (["--generate", "100001"], "generate must be a whole number from 0 to 100,000"),
        (["--algorithm", "ib1"], "needs the instance base"),
        (["--html", "{dir}"], "is a folder, not a file to write"),
        (["--html", "{model}"], ""),
    ],
)
def test_cli_bad_arguments_are_one_line(model_file, tmp_path, args, message):
    args = [a.format(dir=tmp_path, model=model_file) for a in args]
    before = model_file.read_bytes()
    proc = run_cli("explain", model_file, "Mr. Knightley", *args, check=False)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message.lower() in proc.stderr.lower()
    assert model_file.read_bytes() == before  # nothing lost


# -- hostile input ------------------------------------------------------------------------------------


def test_origins_of_other_text_are_refused(sources, tmp_path):
    """Origins that do not describe the training text: refused when training, and a model file holding such
    origins (built past that check) fails verify and explain with a clean error."""
    spec = memlm.TokenizerSpec.from_file()
    tokens, lengths, _, _ = memlm.tokenize([str(sources[2])])
    other = memlm.train([str(sources[1])], width=4, provenance=True).origins()
    wrong = concatenated([other])
    with pytest.raises(MemlmError, match="provenance origins hold"):
        memlm.train_token_ids(tokens, lengths, spec, width=4, origins=wrong)
    options = train_options(4, "gain_ratio", ("igtree",), None, False)
    metadata = json.dumps({"tokenizer": spec.name, "tokenizer_sha256": spec.sha256})
    core = CoreModel.train_tokens(
        tokens.astype(np.uint32), lengths, spec.vocab_size, spec.to_blob(), metadata, options, origins=wrong
    )
    forged = memlm.Model(core, spec)
    with pytest.raises(ModelFormatError, match="damaged provenance origins"):
        forged.verify()
    with pytest.raises(ModelFormatError, match="damaged provenance origins"):
        forged.explain("Mr. Knightley said", evidence=2)


def test_replaced_bytes_and_provenance_do_not_mix(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Emma said \xff\xfe nothing at all.\n")
    with pytest.raises(MemlmError, match="--errors strict"):
        memlm.train([str(bad)], width=4, provenance=True, errors="replace")
    with pytest.raises(MemlmError, match="--errors strict"):
        memlm.make_shard([str(bad)], tmp_path / "s.shard", provenance=True, errors="replace")


def test_a_source_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    odd = tmp_path / os.fsdecode(b"bad\xffname.txt")
    odd.write_text(TRAIN_TEXT.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    model = memlm.train([str(odd)], width=4, provenance=True)
    path = tmp_path / "m.memlm"
    model.save(path)
    proc = run_cli("explain", path, "Emma Woodhouse, handsome", "--json")
    sources = {p["source"] for line in proc.stdout.splitlines() for p in json.loads(line)["evidence"]}
    assert sources == {str(tmp_path / "bad\\xffname.txt")}
    run_cli("explain", path, "Emma Woodhouse", "--html", tmp_path / "page.html")


def test_generated_tokens_are_explained_as_generated(model):
    prompt = "Emma "  # ends in a space: the prompt is tokenised as generation reads it
    records = model.explain(prompt, generate=4, evidence=1)
    ids = model.encode(prompt)
    assert [r.id for r in records[: len(ids)]] == ids and len(records) == len(ids) + 4
    assert all(r.id == r.prediction_id for r in records[len(ids) :])  # greedy: each is the prediction
    assert model.decode([r.id for r in records]) == prompt + model.generate(prompt, max_new_tokens=4)


def test_empty_text_and_shards_without_origins(model_file, tmp_path):
    proc = run_cli("explain", model_file, "   ", check=False)
    assert proc.returncode != 0 and "no tokens to explain" in proc.stderr
    assert memlm.load(model_file).explain("") == []
    plain = tmp_path / "plain.shard"
    memlm.make_shard([str(TRAIN_TEXT)], plain)
    with pytest.raises(MemlmError, match="holds no provenance origins"):
        memlm.merge_shards([plain], tmp_path / "joined.shard", provenance=True)
    for bad in (-1, 2**40):
        with pytest.raises(MemlmError):
            memlm.load(model_file).occurrences(bad, [0, 0, 0, 0], 1, 1)
