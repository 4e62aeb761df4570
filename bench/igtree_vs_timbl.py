"""IGTree, memlm against `timbl -a1 +D` on identical instances, in one run (the foundation issue's figures).

    python -m bench.igtree_vs_timbl --train-tokens 1000000 --test-instances 10000 --width 4 --width 16

For each width: training wall time and peak RSS (GNU time), model size, per-instance classification time
(TiMBL's `Seconds taken`, memlm's batch predict on all cores, both over the same test file), accuracy
and the share of identical top-1 answers. Every figure is the median of `--repeats` runs; ratios are
memlm / TiMBL from the same run. Writes bench/out/igtree_vs_timbl.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

from bench.common import instance_files, median, memlm_cmd, seconds_taken, timed


def measure_timbl(train: Path, test: Path, work: Path, repeats: int) -> dict:
    timbl = shutil.which("timbl") or sys.exit("timbl is missing: apt-get install timbl")
    base = work / "timbl.ibase"
    trains = []
    for _ in range(repeats):
        base.unlink(missing_ok=True)
        # Without -t, timbl exits with status 1 although it wrote the base (SPEC §9): check the file.
        run = timed([timbl, "-f", train, "-a1", "+D", "-I", base], cwd=work)
        if not base.exists():
            raise RuntimeError(f"timbl wrote no instance base:\n{run.stderr[-2000:]}")
        trains.append(run)
    tests = [timed([timbl, "-f", train, "-t", test, "-a1", "+D", "-o", work / "timbl.out"], cwd=work)]
    tests += [
        timed([timbl, "-f", train, "-t", test, "-a1", "+D", "-o", work / "timbl.out"], cwd=work)
        for _ in range(repeats - 1)
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
        "predictions": [line.split()[-1] for line in (work / "timbl.out").open()],
    }


def measure_memlm(train: Path, test: Path, work: Path, repeats: int) -> dict:
    model = work / "memlm.memlm"
    trains = [timed(memlm_cmd("train", "--instances", train, "-o", model)) for _ in range(repeats)]
    for run in trains:
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-2000:])
    tests = [timed(memlm_cmd("classify", model, "--instances", test, "-o", work / "memlm.out")) for _ in range(repeats)]
    n = sum(1 for _ in test.open())
    return {
        "train_seconds": median([r.seconds for r in trains]),
        "train_peak_rss_bytes": median([r.peak_rss_bytes for r in trains]),
        "model_bytes": model.stat().st_size,
        "classify_us_per_instance": median([seconds_taken(r.stderr) for r in tests]) / n * 1e6,
        "predictions": [line.split()[-1] for line in (work / "memlm.out").open()],
    }


def compare(width: int, train_tokens: int, test_instances: int, work: Path, repeats: int) -> dict:
    train, test = instance_files(work, width, train_tokens, test_instances)
    truth = [line.split()[-1] for line in test.open()]
    timbl = measure_timbl(train, test, work, repeats)
    memlm = measure_memlm(train, test, work, repeats)
    row = {"width": width, "train_tokens": sum(1 for _ in train.open()), "test_instances": len(truth)}
    for name, result in (("timbl", timbl), ("memlm", memlm)):
        predictions = result.pop("predictions")
        result["accuracy"] = sum(p == t for p, t in zip(predictions, truth, strict=True)) / len(truth)
        row[name] = result
        row[f"{name}_predictions"] = predictions
    row["top1_agreement"] = sum(
        a == b for a, b in zip(row.pop("timbl_predictions"), row.pop("memlm_predictions"), strict=True)
    ) / len(truth)
    row["ratios_memlm_over_timbl"] = {
        key: memlm[key] / timbl[key]
        for key in ("train_seconds", "train_peak_rss_bytes", "model_bytes", "classify_us_per_instance")
    }
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| W | train tokens | system | train s | peak RSS MB | model MB | µs/instance | accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name in ("timbl", "memlm"):
            r = row[name]
            lines.append(
                f"| {row['width']} | {row['train_tokens']:,} | {name} | {r['train_seconds']:.2f} | "
                f"{r['train_peak_rss_bytes'] / 2**20:.0f} | {r['model_bytes'] / 1e6:.1f} | "
                f"{r['classify_us_per_instance']:.2f} | {r['accuracy']:.4f} |"
            )
        q = row["ratios_memlm_over_timbl"]
        lines.append(
            f"| {row['width']} | | **memlm/timbl** | {q['train_seconds']:.3f} | {q['train_peak_rss_bytes']:.3f} | "
            f"{q['model_bytes']:.3f} | {q['classify_us_per_instance']:.4f} | "
            f"agreement {row['top1_agreement']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-tokens", type=int, default=1_000_000)
    parser.add_argument("--test-instances", type=int, default=10_000)
    parser.add_argument("--width", type=int, action="append", help="repeatable; default 4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    rows = [compare(w, args.train_tokens, args.test_instances, work, args.repeats) for w in args.width or [4]]
    report = {"machine": platform.platform(), "processor": platform.processor(), "repeats": args.repeats, "rows": rows}
    (args.out / "igtree_vs_timbl.json").write_text(json.dumps(report, indent=2))
    table = markdown(rows)
    (args.out / "igtree_vs_timbl.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
