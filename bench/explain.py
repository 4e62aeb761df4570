"""Explanations with training evidence (issue 16): the provenance store's bytes per training token and the
time of `Model.explain` per token with evidence, at ~1e7 training tokens.

    python -m bench.explain [--width 16] [--evidence 3] [--test-tokens 2000]

Trains from the raw benchmark texts (austen + kjv + Python/Linux docs, bench.common.TRAIN_FILES: about 1.1e7
GPT-2 tokens; `--train` gives others) with `provenance=True`, in this process; reports the build time with
and without the provenance phase, the provenance section's bytes per token, and the same with the training
text it cites (kept by the Kneser-Ney statistics either way, so not new bytes). Then explains the first
`--test-tokens` tokens of Persuasion (held out), `--evidence` passages per token, in turn with the model
loaded from its file: the first call (reading the training text and the origins once) and the median of
`--repeats` later calls, in ms per token; each passage is checked to be a real training occurrence (ids and
source bytes), as tests/test_explain.py does. Writes bench/out/explain.json and .md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import memlm
from bench.common import SHARED_DATA, TEST_FILE, TRAIN_FILES, text_blocks
from memlm.explaining import check_passage

#: The Must-hold lines of issue 16.
MAX_MS_PER_TOKEN = 1.0
MAX_BYTES_PER_TOKEN = 6.0


def held_out(tokens: int, model: memlm.Model) -> str:
    """The first blocks of Persuasion holding at least ``tokens`` tokens."""
    blocks = text_blocks(SHARED_DATA / TEST_FILE)
    taken, count = [], 0
    for block in blocks:
        taken.append(block)
        count += len(model.encode(block))
        if count >= tokens:
            break
    return "\n\n".join(taken)


def checked(model: memlm.Model, records) -> int:
    """How many passages were cited, each checked to be a training occurrence (else the run stops)."""
    cache: dict[str, bytes] = {}

    def source(name: str) -> bytes:
        if name not in cache:
            data = Path(name).read_bytes()
            cache[name] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        return cache[name]

    count = 0
    for record in records:
        for passage in record.evidence or ():
            wrong = check_passage(model, record, passage, source)
            if wrong:
                sys.exit(f"token {record.index}: {wrong}")
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--evidence", type=int, default=3, help="passages per token")
    parser.add_argument("--test-tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", nargs="+", help="training texts (default: the benchmark texts)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    sources = [str(Path(p)) for p in args.train] if args.train else [str(SHARED_DATA / f) for f in TRAIN_FILES]

    phases: dict[str, float] = {}
    current = [None, time.perf_counter()]

    def progress(phase: str, _done: int, _total: int) -> None:
        now = time.perf_counter()
        if current[0] is not None:
            phases[current[0]] = phases.get(current[0], 0.0) + now - current[1]
        current[:] = [phase, now]

    start = time.perf_counter()
    model = memlm.train(sources, width=args.width, provenance=True, progress=progress)
    build = time.perf_counter() - start
    progress("done", 0, 0)
    info = model.info()
    tokens = info["training_instances"]
    provenance = info["size_breakdown"]["provenance"]
    text_bytes = info["id_bytes"] * (tokens + info["metadata"]["blocks"])

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.memlm"
        model.save(path)
        del model
        loaded = memlm.load(path)
        text = held_out(args.test_tokens, loaded)
        start = time.perf_counter()
        records = loaded.explain(text, evidence=args.evidence)
        first = time.perf_counter() - start
        n = len(records)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            records = loaded.explain(text, evidence=args.evidence)
            times.append(time.perf_counter() - start)
        passages = checked(loaded, records)
        without = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            loaded.explain(text, evidence=0)
            without.append(time.perf_counter() - start)

    row = {
        "sources": sources,
        "width": args.width,
        "training_tokens": tokens,
        "build_seconds": round(build, 1),
        "provenance_phase_seconds": round(phases.get("indexing provenance", 0.0), 1),
        "provenance_bytes": provenance,
        "provenance_bytes_per_token": round(provenance / tokens, 3),
        "with_cited_text_bytes_per_token": round((provenance + text_bytes) / tokens, 3),
        "test_tokens": n,
        "evidence": args.evidence,
        "passages_checked": passages,
        "tokens_with_evidence": sum(1 for r in records if r.evidence),
        "first_call_ms_per_token": round(first * 1e3 / n, 4),
        "ms_per_token": round(statistics.median(times) * 1e3 / n, 4),
        "ms_per_token_without_evidence": round(statistics.median(without) * 1e3 / n, 4),
    }
    row["holds"] = (
        row["ms_per_token"] <= MAX_MS_PER_TOKEN and row["with_cited_text_bytes_per_token"] <= MAX_BYTES_PER_TOKEN
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explain.json").write_text(json.dumps(row, indent=2) + "\n")
    markdown = "\n".join(
        [
            "# Explanations with training evidence",
            "",
            f"W={args.width}, {tokens:,} training tokens ({', '.join(Path(s).name for s in sources)}); "
            f"{n:,} held-out Persuasion tokens, {args.evidence} passages each.",
            "",
            "| provenance B/token (with the cited text) | ms/token with evidence (first call) | without evidence |"
            " passages checked | build s (provenance phase) |",
            "|---|---|---|---|---|",
            f"| {row['provenance_bytes_per_token']} ({row['with_cited_text_bytes_per_token']}; at most "
            f"{MAX_BYTES_PER_TOKEN}) | {row['ms_per_token']} ({row['first_call_ms_per_token']}; at most "
            f"{MAX_MS_PER_TOKEN}) | {row['ms_per_token_without_evidence']} | {passages:,} | "
            f"{row['build_seconds']} ({row['provenance_phase_seconds']}) |",
            "",
        ]
    )
    (args.out / "explain.md").write_text(markdown)
    print(markdown)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
