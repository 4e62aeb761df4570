"""Scale (issue 7): build, size, load and latency at 10^6, 10^7, 10^8 training tokens, W = 16.

    python -m bench.scale --size 1000000 --size 10000000 --size 100000000 --algorithm igtree --algorithm tribl2

Training text: austen + kjv + Python/Linux docs (bench.common.TRAIN_FILES), then the big corpus that
make_big_corpus.sh (beside the benchmark texts) builds from Debian packages (called when `--big-corpus` is
missing and a size needs it; the report says how many tokens there really were). Per size, in a fresh process each:
build wall time and peak RSS (GNU time, the whole `train` process), model bytes per token with the
breakdown, load time (`memlm.load`, median of 5 fresh processes), single-context `predict` p50/p95 from
Python and batch µs per instance over Persuasion contexts. `timbl -a1 +D` runs beside up to
`--timbl-max-tokens`. Writes bench/out/scale.json and .md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import memlm
from bench.common import SHARED_DATA, TEST_FILE, TRAIN_FILES, cut_tokens, first_tokens, median, timed
from bench.latency_energy import batch_latency, python_latency

BIG_CORPUS = Path("/tmp/big_corpus/big_corpus.txt.gz")
MAKE_BIG_CORPUS = SHARED_DATA / "make_big_corpus.sh"


def corpus_tokens(needed: int, big: Path, work: Path) -> tuple[Path, Path, int]:
    """The first `needed` tokens of the training text and their block lengths, saved as .npy for the
    training processes to map (each file's tokens are kept in `work` between runs)."""
    sources = [SHARED_DATA / f for f in TRAIN_FILES]
    if needed > 11_000_000:
        if not big.exists():
            print(f"building the big corpus with {MAKE_BIG_CORPUS} (about 30 minutes)", file=sys.stderr)
            subprocess.run(["bash", MAKE_BIG_CORPUS, big.parent], check=True)
        sources.append(big)
    tokens, lengths = first_tokens(needed, sources, cache=work)
    work.mkdir(parents=True, exist_ok=True)
    tokens_file, lengths_file = work / "scale_tokens.npy", work / "scale_lengths.npy"
    np.save(tokens_file, tokens)
    np.save(lengths_file, lengths)
    return tokens_file, lengths_file, int(tokens.size)


#: Trains on the first N tokens in a child process (so that GNU time sees its peak RSS alone).
_TRAIN = """
import sys, time, numpy as np, memlm
from bench.common import cut_tokens
tokens, lengths = np.load(sys.argv[1], mmap_mode="r"), np.load(sys.argv[2])
part, part_lengths = cut_tokens(tokens, lengths, int(sys.argv[3]))
part = np.ascontiguousarray(part); del tokens  # only the first N tokens are read into memory
start = time.perf_counter()
model = memlm.train_token_ids(part, part_lengths, memlm.TokenizerSpec.from_file(), width=int(sys.argv[5]),
                              algorithms=sys.argv[6])
model.save(sys.argv[4])
print(time.perf_counter() - start)
"""

_LOAD = """
import sys, time, memlm
start = time.perf_counter(); m = memlm.load(sys.argv[1]); m.width
print(time.perf_counter() - start)
"""


def load_seconds(model: Path, repeats: int = 5) -> float:
    runs = [subprocess.run([sys.executable, "-c", _LOAD, model], capture_output=True, text=True, check=True)]
    runs += [
        subprocess.run([sys.executable, "-c", _LOAD, model], capture_output=True, text=True, check=True)
        for _ in range(repeats - 1)
    ]
    return median([float(r.stdout) for r in runs])


def test_contexts(model: memlm.Model, n: int) -> np.ndarray:
    """The model's contexts of the first `n` tokens of Persuasion (every token of every block)."""
    tokens, lengths = first_tokens(n, [TEST_FILE])
    return model.windows(tokens=tokens, block_lengths=lengths)[0]


def measure(n: int, width: int, algorithms: str, files: tuple[Path, Path], work: Path, test_tokens: int) -> dict:
    model_path = work / f"scale_{n}_{width}_{algorithms.replace(',', '-')}.memlm"
    run = timed([sys.executable, "-c", _TRAIN, *files, n, model_path, width, algorithms], cwd=Path.cwd())
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    model = memlm.load(model_path)
    contexts = test_contexts(model, test_tokens)
    info = model.info()
    row = {
        "train_tokens": n,
        "width": width,
        "algorithms": algorithms,
        "build_seconds": float(run.stdout.split()[-1]),
        "process_seconds": run.seconds,
        "peak_rss_bytes": run.peak_rss_bytes,
        "model_bytes": info["bytes"],
        "bytes_per_token": info["bytes"] / n,
        "breakdown_bytes_per_token": {k: v / n for k, v in info["size_breakdown"].items()},
        "load_ms": load_seconds(model_path) * 1e3,
    }
    single = [list(c) for c in contexts[:2000]]
    for algorithm in algorithms.split(","):
        many = contexts if algorithm == "igtree" else contexts[:200]
        row[algorithm] = {
            **python_latency(model, algorithm, single if algorithm == "igtree" else single[:200], 3),
            **batch_latency(model, algorithm, many, 3),
        }
    return row


def timbl_row(n: int, width: int, files: tuple[Path, Path], work: Path) -> dict:
    """`timbl -a1 +D` trained on the same first N tokens (instances written by memlm)."""
    from bench.vs_timbl import measure_timbl

    vocab_size = memlm.TokenizerSpec.from_file().vocab_size
    part, part_lengths = cut_tokens(np.load(files[0], mmap_mode="r"), np.load(files[1]), n)
    train = work / f"scale_timbl_train_{n}_{width}.txt"
    memlm.write_instances(np.ascontiguousarray(part), part_lengths, train, width, vocab_size)
    short = work / f"scale_timbl_test_{width}_2000.txt"
    memlm.write_instances(*first_tokens(2000, [TEST_FILE]), short, width, vocab_size)
    found = measure_timbl("igtree", train, short, work, (1, 1), 1)
    found.pop("predictions")
    return found


def markdown(rows: list[dict]) -> str:
    lines = [
        "| N | algorithms | build s | peak RSS MB | bytes/token | load ms | IGTree predict p50/p95 µs |"
        " IGTree batch µs | TRIBL2 predict p50 µs | TRIBL2 batch µs | timbl -a1 train s / peak MB / µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ig, tr, tb = r.get("igtree", {}), r.get("tribl2", {}), r.get("timbl")
        lines.append(
            f"| {r['train_tokens']:,} | {r['algorithms']} | {r['build_seconds']:.1f} | "
            f"{r['peak_rss_bytes'] / 2**20:,.0f} | {r['bytes_per_token']:.2f} | {r['load_ms']:.1f} | "
            f"{ig.get('predict_p50_us', 0):.2f} / {ig.get('predict_p95_us', 0):.2f} | "
            f"{ig.get('batch_us_per_instance', 0):.3f} | {tr.get('predict_p50_us', float('nan')):.1f} | "
            f"{tr.get('batch_us_per_instance', float('nan')):.1f} | "
            + (
                f"{tb['train_seconds']:.0f} / {tb['train_peak_rss_bytes'] / 2**20:,.0f} / "
                f"{tb['classify_us_per_instance']:.0f} |"
                if tb
                else "— |"
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, action="append", help="training tokens N (repeatable)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--algorithm", action="append", choices=["igtree", "tribl2"], help="default: igtree")
    parser.add_argument("--big-corpus", type=Path, default=BIG_CORPUS)
    parser.add_argument("--timbl-max-tokens", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.size or [1_000_000, 10_000_000, 100_000_000])
    tokens_file, lengths_file, available = corpus_tokens(max(sizes), args.big_corpus, args.out / "work")
    rows = []
    for n in sizes:
        if n > available:
            print(f"note: the corpus holds {available:,} tokens; measuring N={available:,} instead of {n:,}")
            n = available
        for algorithms in ["igtree"] + (["igtree,tribl2"] if "tribl2" in (args.algorithm or []) else []):
            started = time.perf_counter()
            row = measure(n, args.width, algorithms, (tokens_file, lengths_file), args.out, 10_000)
            if algorithms == "igtree" and n <= args.timbl_max_tokens:
                row["timbl"] = timbl_row(n, args.width, (tokens_file, lengths_file), args.out)
            rows.append(row)
            print(markdown([row]).splitlines()[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)
            (args.out / "scale.json").write_text(json.dumps(rows, indent=2))
            (args.out / "scale.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
