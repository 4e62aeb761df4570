"""Model.explain and the provenance store: every cited passage is a real training occurrence (its ids hold the
matched context followed by the predicted token, its text is the named source's bytes at its offset)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

import memlm
from memlm.errors import MemlmError

from conftest import TEST_TEXT, TRAIN_TEXT

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
    order = model.feature_order
    data: dict[str, bytes] = {}
    checked = 0
    for record in records:
        assert record.evidence is not None
        matched = sorted(order[: record.depth])  # columns, oldest first
        for passage in record.evidence:
            assert passage.ids[passage.token_index] == record.prediction_id
            context_start, context_end = passage.context_ids
            assert context_end == passage.token_index
            at = [passage.token_index - (model.width - f) for f in matched]
            assert [passage.ids[i] for i in at if i >= context_start] == record.context
            assert all(i >= 0 for i in at if i >= context_start)
            raw = passage.text.encode("utf-8")
            source = data.setdefault(passage.source, source_bytes(passage.source))
            assert source[passage.offset : passage.offset + len(raw)] == raw, (passage.source, passage.offset)
            assert passage.context_chars[1] == passage.token_chars[0] <= passage.token_chars[1] <= len(passage.text)
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


@pytest.mark.parametrize("algorithm", ["tribl2", "ib1"])
def test_knn_explanations_show_neighbours_and_cite_the_nearest(sources, algorithm):
    model = memlm.train([str(s) for s in sources], width=4, provenance=True, algorithms="igtree,tribl2,ib1")
    records = model.explain(HELD_OUT[:1500], algorithm=algorithm, k=2, evidence=2)
    assert check_passages(model, records) > 100
    order = model.feature_order
    for record in records:
        assert record.neighbours and record.algorithm == algorithm
        assert record.neighbours[0].distance == pytest.approx(record.distance)
        witness = next((n for n in record.neighbours if record.prediction_id in n.counts), None)
        if witness is None or not record.evidence:
            continue
        known = [f for f in order if witness.context[f] is not None]
        for passage in record.evidence:  # the passage holds the neighbour's context (its known, non-padding part)
            for f in known:
                at = passage.token_index - (model.width - f)
                if witness.context[f] != model.pad_id:
                    assert passage.ids[at] == witness.context[f]
