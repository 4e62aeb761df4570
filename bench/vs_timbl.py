"""memlm against TiMBL itself, on identical instances, in one run: IGTree (`-a1`), TRIBL2 (`-a4`), IB1 (`-a0`).

    python -m bench.vs_timbl --train-tokens 1000000 --width 4 --algorithm igtree --algorithm tribl2 --algorithm ib1
    python -m bench.vs_timbl --train austen_train.txt.gz --train kjv.txt.gz --test docs_rst.txt.gz --algorithm tribl2

Per width and algorithm: training wall time and peak RSS (GNU time), model size, per-instance
classification time over the same test file (TiMBL's `Seconds taken`; memlm's batch classification on
all cores, as `memlm classify` reports it, its first query's set-up included), accuracy, and the share of
identical top-1 answers. `--train` and `--test` take any texts (names without a folder from the shared
data; the defaults: the training text and Persuasion). Each
figure is the median of `--repeats` runs; ratios are memlm / TiMBL from the same run. IB1 is tested on
the first `--ib1-instances` instances only (TiMBL needs ~0.1 s each at 1M tokens). Writes
bench/out/vs_timbl.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

from bench.common import (
    TEST_FILE,
    TRAIN_FILES,
    add_text_options,
    first_lines,
    instance_files,
    median,
    memlm_cmd,
    seconds_taken,
    timed,
)

TIMBL_FLAGS = {"igtree": "-a1", "tribl2": "-a4", "ib1": "-a0"}


def measure_timbl(algorithm: str, train: Path, test: Path, work: Path, repeats: tuple[int, int], k: int) -> dict:
    """Training (repeated `repeats[0]` times) and classification (`repeats[1]` times) with timbl."""
    train_repeats, repeats = repeats
    timbl = shutil.which("timbl") or sys.exit("timbl is missing: apt-get install timbl")
    flag = TIMBL_FLAGS[algorithm]
    base = work / f"timbl_{algorithm}.ibase"
    trains = []
    for _ in range(train_repeats):
        base.unlink(missing_ok=True)
        # Without -t, timbl exits with status 1 although it wrote the base: check the file.
        run = timed([timbl, "-f", train, flag, "+D", "-I", base], cwd=work)
        if not base.exists():
            raise RuntimeError(f"timbl wrote no instance base:\n{run.stderr[-2000:]}")
        trains.append(run)
    output = work / f"timbl_{algorithm}.out"
    tests = [
        timed([timbl, "-f", train, "-t", test, flag, "+D", "-k", k, "-o", output], cwd=work) for _ in range(repeats)
    ]
    for run in tests:
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-2000:])
    n = sum(1 for _ in test.open())
    return {
        "train_seconds": median([r.seconds for r in trains]),
        "train_peak_rss_bytes": median([r.peak_rss_bytes for r in trains]),
        "model_bytes": base.stat().st_size,
        "classify_us_per_instance": median([seconds_taken(r.stdout) for r in tests]) / n * 1e6,
        "predictions": [line.split()[-1] for line in output.open()],
    }


def measure_memlm(algorithm: str, train: Path, test: Path, work: Path, repeats: tuple[int, int], k: int) -> dict:
    """Training (repeated `repeats[0]` times) and classification (`repeats[1]` times) with memlm."""
    train_repeats, repeats = repeats
    model = work / f"memlm_{algorithm}.memlm"
    algorithms = "igtree" if algorithm == "igtree" else f"igtree,{algorithm}"
    train_cmd = memlm_cmd("train", "--instances", train, "--algorithms", algorithms, "-o", model)
    trains = [timed(train_cmd) for _ in range(train_repeats)]
    for run in trains:
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-2000:])
    output = work / f"memlm_{algorithm}.out"
    classify = memlm_cmd("classify", model, "--instances", test, "--algorithm", algorithm, "-k", k, "-o", output)
    tests = [timed(classify) for _ in range(repeats)]
    n = sum(1 for _ in test.open())
    return {
        "train_seconds": median([r.seconds for r in trains]),
        "train_peak_rss_bytes": median([r.peak_rss_bytes for r in trains]),
        "model_bytes": model.stat().st_size,
        "classify_us_per_instance": median([seconds_taken(r.stderr) for r in tests]) / n * 1e6,
        "predictions": [line.split()[-1] for line in output.open()],
    }


def compare(
    width: int, algorithm: str, args: argparse.Namespace, work: Path, sources=TRAIN_FILES, test_text=TEST_FILE
) -> dict:
    """One width and algorithm, trained on the texts `sources` and tested on the text `test_text`."""
    train, test = instance_files(work, width, args.train_tokens, args.test_instances, sources, test_text)
    if algorithm == "ib1":
        cut = work / f"{test.stem}_first{args.ib1_instances}.txt"
        first_lines(test, cut, args.ib1_instances)
        test = cut
    truth = [line.split()[-1] for line in test.open()]
    row = {"width": width, "algorithm": algorithm, "k": args.k, "test_instances": len(truth)}
    row["train"], row["test"] = [str(s) for s in sources], str(test_text)
    row["train_tokens"] = sum(1 for _ in train.open())
    predictions = {}
    for name, measure in (("timbl", measure_timbl), ("memlm", measure_memlm)):
        result = measure(algorithm, train, test, work, (args.train_repeats or args.repeats, args.repeats), args.k)
        predictions[name] = result.pop("predictions")
        result["accuracy"] = sum(p == t for p, t in zip(predictions[name], truth, strict=True)) / len(truth)
        row[name] = result
    same = sum(a == b for a, b in zip(predictions["timbl"], predictions["memlm"], strict=True))
    row["top1_agreement"] = same / len(truth)
    row["ratios_memlm_over_timbl"] = {
        key: row["memlm"][key] / row["timbl"][key]
        for key in ("train_seconds", "train_peak_rss_bytes", "model_bytes", "classify_us_per_instance")
    }
    print(markdown([row]), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    texts = sorted({(" + ".join(r.get("train", ["?"])), r.get("test", "?")) for r in rows})
    lines = [f"Train on {train}, test on {test}." for train, test in texts]
    lines += [
        "",
        "| W | algorithm | train tokens | test | system | train s | peak RSS MB | model MB | µs/instance | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        head = (
            f"| {row['width']} | {row['algorithm']} k={row['k']} | {row['train_tokens']:,} | {row['test_instances']:,}"
        )
        for name in ("timbl", "memlm"):
            r = row[name]
            lines.append(
                f"{head} | {name} | {r['train_seconds']:.2f} | {r['train_peak_rss_bytes'] / 2**20:.0f} | "
                f"{r['model_bytes'] / 1e6:.1f} | {r['classify_us_per_instance']:.2f} | {r['accuracy']:.4f} |"
            )
        q = row["ratios_memlm_over_timbl"]
        lines.append(
            f"{head} | **memlm/timbl** | {q['train_seconds']:.3f} | {q['train_peak_rss_bytes']:.3f} | "
            f"{q['model_bytes']:.3f} | {q['classify_us_per_instance']:.4f} | agreement {row['top1_agreement']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_text_options(parser)
    parser.add_argument("--train-tokens", type=int, default=1_000_000)
    parser.add_argument("--test-instances", type=int, default=10_000)
    parser.add_argument("--ib1-instances", type=int, default=1_000)
    parser.add_argument("--width", type=int, action="append", help="repeatable; default 4")
    parser.add_argument("--algorithm", choices=sorted(TIMBL_FLAGS), action="append", help="repeatable; default igtree")
    parser.add_argument("-k", type=int, default=1, help="k of TRIBL2 and IB1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-repeats", type=int, default=0, help="training runs (default: --repeats)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    sources = args.train or TRAIN_FILES
    rows = [
        compare(w, a, args, work, sources, args.test) for w in args.width or [4] for a in args.algorithm or ["igtree"]
    ]
    report = {"machine": platform.platform(), "processor": platform.processor(), "repeats": args.repeats, "rows": rows}
    (args.out / "vs_timbl.json").write_text(json.dumps(report, indent=2))
    (args.out / "vs_timbl.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
