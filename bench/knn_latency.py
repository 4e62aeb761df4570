"""Single-context k-NN latency from Python (issue 15): TRIBL2 and IB1 one context per call.

    python -m bench.knn_latency --train-tokens 1000000 --width 16 --algorithm tribl2
    python -m bench.knn_latency --train austen_train.txt.gz --train kjv.txt.gz --test docs_rst.txt.gz

Trains a model with the instance base (algorithms igtree, tribl2, ib1) on the first `--train-tokens`
tokens of `--train` (by default the training text), samples `--contexts` windows of the first
`--test-tokens` tokens of the text `--test` (by default Persuasion; seed 0), makes one warm-up call (the
model's first k-NN query verifies the instance base and builds its posting lists), then times each
`Model.predict(ids, top_k=1, algorithm=A)` call: p50, p95 and p99 in microseconds, the median of
`--repeats` passes. Writes bench/out/knn_latency.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import memlm
from bench.common import TRAIN_FILES, add_text_options, first_tokens, median


def latency(model: memlm.Model, algorithm: str, contexts: list[list[int]], repeats: int) -> dict:
    """p50, p95 and p99 of single-context calls in microseconds (median over `repeats` passes)."""
    start = time.perf_counter()
    model.predict(contexts[0], top_k=1, algorithm=algorithm)
    first = time.perf_counter() - start
    passes = []
    for _ in range(repeats):
        samples = []
        for ids in contexts:
            start = time.perf_counter_ns()
            model.predict(ids, top_k=1, algorithm=algorithm)
            samples.append(time.perf_counter_ns() - start)
        passes.append(np.percentile(np.asarray(samples) / 1e3, [50, 95, 99]))
    p50, p95, p99 = (median([p[i] for p in passes]) for i in range(3))
    return {"first_call_ms": first * 1e3, "p50_us": p50, "p95_us": p95, "p99_us": p99}


def measure(width: int, args: argparse.Namespace) -> dict:
    tokens, lengths = first_tokens(args.train_tokens, args.train or TRAIN_FILES, cache=args.out / "work")
    spec = memlm.TokenizerSpec.from_file()
    model = memlm.train_token_ids(tokens, lengths, spec, width=width, algorithms="igtree,tribl2,ib1")
    test, test_lengths = first_tokens(args.test_tokens, [args.test], cache=args.out / "work")
    windows, _ = model.windows(tokens=test, block_lengths=test_lengths)
    chosen = np.random.default_rng(0).choice(len(windows), min(args.contexts, len(windows)), replace=False)
    contexts = [windows[i].tolist() for i in chosen]
    row = {"width": width, "train_tokens": int(tokens.size), "contexts": len(contexts)}
    for algorithm in args.algorithm or ["tribl2"]:
        row[algorithm] = latency(model, algorithm, contexts, args.repeats)
        print(algorithm, width, row[algorithm], flush=True)
    return row


def markdown(report: dict) -> str:
    lines = [
        f"# Single-context k-NN latency from Python (train {report['train']}, test {report['test']})",
        "",
        "| W | train tokens | algorithm | contexts | first call ms | p50 µs | p95 µs | p99 µs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        for algorithm in report["algorithms"]:
            r = row[algorithm]
            lines.append(
                f"| {row['width']} | {row['train_tokens']:,} | {algorithm} | {row['contexts']:,} "
                f"| {r['first_call_ms']:.0f} | {r['p50_us']:.1f} | {r['p95_us']:.1f} | {r['p99_us']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_text_options(parser)
    parser.add_argument("--train-tokens", type=int, default=1_000_000)
    parser.add_argument("--test-tokens", type=int, default=200_000, help="the test text's first N tokens")
    parser.add_argument("--width", type=int, action="append", help="repeatable; default 16")
    parser.add_argument("--algorithm", choices=("tribl2", "ib1"), action="append", help="default tribl2")
    parser.add_argument("--contexts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [measure(width, args) for width in args.width or [16]]
    report = {
        "machine": platform.platform(),
        "train": "+".join(map(str, args.train or TRAIN_FILES)),
        "test": str(args.test),
        "algorithms": args.algorithm or ["tribl2"],
        "repeats": args.repeats,
        "rows": rows,
    }
    (args.out / "knn_latency.json").write_text(json.dumps(report, indent=2))
    (args.out / "knn_latency.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
