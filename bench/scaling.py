"""The scaling curve: train on the first N tokens, evaluate on held-out text, fit accuracy against log N.

    python -m bench.scaling --size 100000 --size 1000000 --size 10000000 --width 4 --width 16 \\
        --algorithm igtree --algorithm tribl2

Training text: austen + kjv + Python/Linux docs (bench.common.TRAIN_FILES), in that order; test text:
Persuasion, in the paper's evaluation protocol: every token of every block is a target, its context the
W previous tokens of the same block, left-padded. For each width, N and algorithm: accuracy, top-5
accuracy, perplexity (with and without OOVs), tokens per second, training seconds, model bytes. The fit
gives the accuracy points gained per 10x data. Writes bench/out/scaling.json, .md and .png, the OLIFANT
paper's points (Van den Bosch et al. 2025: FineWeb-Edu, W=16, other hardware and data) drawn beside for
reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import memlm
from bench.common import TEST_FILE, cut_tokens, first_tokens, text_blocks
from memlm.evaluation import evaluate

#: OLIFANT paper (Van den Bosch et al. 2025), FineWeb-Edu, W=16: (algorithm, training tokens, accuracy).
PAPER_POINTS = [
    ("igtree", 4.9e6, 0.175),
    ("igtree", 100e6, 0.220),
    ("igtree", 500e6, 0.248),
    ("tribl2", 100e6, 0.218),
    ("ib1", 51e3, 0.094),
]


def fit_points_per_decade(sizes: list[int], accuracies: list[float]) -> float | None:
    """Slope of accuracy against log10 N, in accuracy points (percent) per 10x data."""
    if len(sizes) < 2:
        return None
    slope, _ = np.polyfit(np.log10(sizes), accuracies, 1)
    return float(slope * 100)


def plot(rows: list[dict], fits: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (width, algorithm), slope in fits.items():
        mine = [r for r in rows if r["width"] == width and r["algorithm"] == algorithm]
        label = f"memlm {algorithm} W={width}" + (f" ({slope:+.1f} pts/10x)" if slope is not None else "")
        ax.plot([r["train_tokens"] for r in mine], [r["accuracy"] for r in mine], "o-", label=label)
    for algorithm in sorted({p[0] for p in PAPER_POINTS}):
        pts = [p for p in PAPER_POINTS if p[0] == algorithm]
        ax.plot(
            [p[1] for p in pts],
            [p[2] for p in pts],
            "x--",
            color="grey",
            alpha=0.8,
            label=f"OLIFANT paper {algorithm} W=16 (FineWeb-Edu, other hardware)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training tokens N")
    ax.set_ylabel("next-token accuracy (top-1)")
    ax.set_title("memlm scaling: train austen+kjv+docs, test Persuasion")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(rows: list[dict], fits: dict) -> str:
    lines = [
        "| W | algorithm | train tokens | accuracy | top-5 | perplexity | ppl w/o OOV | tokens/s | train s | MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['width']} | {r['algorithm']} | {r['train_tokens']:,} | {r['accuracy']:.4f} | "
            f"{r['top5_accuracy']:.4f} | {r['perplexity']:.1f} | {r['perplexity_excluding_oov']:.1f} | "
            f"{r['tokens_per_second']:,.0f} | {r['train_seconds']:.1f} | {r['model_bytes'] / 1e6:.1f} |"
        )
    lines.append("")
    for (width, algorithm), slope in fits.items():
        if slope is not None:
            lines.append(f"- W={width} {algorithm}: {slope:+.2f} accuracy points per 10x training data")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, action="append", help="training tokens N (repeatable)")
    parser.add_argument("--width", type=int, action="append", help="repeatable; default 4")
    parser.add_argument("--algorithm", choices=["igtree", "tribl2", "ib1"], action="append")
    parser.add_argument("--test-tokens", type=int, default=0, help="cut the test text (0: all of it)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    sizes = sorted(args.size or [100_000, 1_000_000, 10_000_000])
    algorithms = args.algorithm or ["igtree"]
    args.out.mkdir(parents=True, exist_ok=True)

    spec = memlm.TokenizerSpec.from_file()
    tokens, lengths = first_tokens(max(sizes), cache=args.out / "work")
    test_text = "\n\n".join(text_blocks(TEST_FILE))
    if args.test_tokens:
        test_text = spec.decode(spec.encode(test_text)[: args.test_tokens])
    test_file = args.out / "scaling_test.txt"
    test_file.write_text(test_text)

    rows = []
    for width in args.width or [4]:
        for n in sizes:
            if n > tokens.size:
                print(f"note: only {tokens.size:,} training tokens available, skipping N={n:,}")
                continue
            part, part_lengths = cut_tokens(tokens, lengths, n)
            start = time.perf_counter()
            model = memlm.train_token_ids(part, part_lengths, spec, width=width, algorithms=algorithms)
            train_seconds = time.perf_counter() - start
            for algorithm in algorithms:
                result = evaluate(model, [test_file], algorithm=algorithm)
                result.update(
                    train_tokens=int(part.size), train_seconds=train_seconds, model_bytes=model.info()["bytes"]
                )
                rows.append(result)
                print(markdown([result], {}).splitlines()[-2], flush=True)
            del model
    fits = {}
    for width in args.width or [4]:
        for algorithm in algorithms:
            mine = [r for r in rows if r["width"] == width and r["algorithm"] == algorithm]
            fits[(width, algorithm)] = fit_points_per_decade(
                [r["train_tokens"] for r in mine], [r["accuracy"] for r in mine]
            )
    report = {
        "rows": rows,
        "points_per_10x": [{"width": w, "algorithm": a, "points": s} for (w, a), s in fits.items()],
        "paper_points": PAPER_POINTS,
    }
    (args.out / "scaling.json").write_text(json.dumps(report, indent=2))
    (args.out / "scaling.md").write_text(markdown(rows, fits))
    plot(rows, fits, args.out / "scaling.png")
    print(markdown(rows, fits))


if __name__ == "__main__":
    main()
