"""What the scoring statistics cost a build (issue 13): wall time, CPU time and peak memory of training
against an older commit's build (before Kneser-Ney and the document cache), in one run.

    python -m bench.build_cost --old-commit 881ca4f --tokens 10000000 --width 16 --repeats 2

Both sides train on the same first N tokens of bench.scale's training text (its token files, made once),
with the same call as bench.scale's build child (`memlm.train_token_ids`, IGTree), each in a fresh process
under GNU time; old and new alternate, `--repeats` times, and the medians are compared. The old side is
built once from `git archive` in its own virtual environment (bench.generation); `--old-commit none`
measures the current build alone. Writes bench/out/build_cost.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.common import median, timed
from bench.generation import REPO, _without_pythonpath, current_build, install_old
from bench.scale import _TRAIN, BIG_CORPUS, corpus_tokens

#: The last commit before the Kneser-Ney statistics: the IGTree build as it was.
OLD_COMMIT = "881ca4f"


def build(python: Path | str, env: dict | None, files: tuple[Path, Path], n: int, width: int, model: Path) -> dict:
    """One build in a fresh process (`env`: its environment, None for this one's): wall and CPU seconds
    (GNU time), peak RSS and the model's size. It runs in the repository, where `bench` imports."""
    run = timed([python, "-c", _TRAIN, *files, n, model, width, "igtree"], cwd=REPO, env=env)
    if run.returncode != 0:
        raise SystemExit(f"the build with {python} failed:\n{run.stderr[-3000:]}")
    return {
        "wall_s": run.seconds,
        "cpu_s": run.cpu_seconds,
        "peak_rss_bytes": run.peak_rss_bytes,
        "bytes": model.stat().st_size,
    }


def markdown(report: dict) -> str:
    old = report.get("old_commit")
    lines = [
        f"# Build cost of the scoring statistics: {report['tokens']:,} tokens, W={report['width']}",
        "",
        f"Old: {old[:12] if old else 'none'} (IGTree only); new: {report['new_build']['commit']}. "
        f"Medians of {report['repeats']} alternating builds; load average before: {report['load_average']:.2f}.",
        "",
        "| | wall s | CPU s | peak RSS MiB | model MB |",
        "|---|---|---|---|---|",
    ]
    for name in ("old", "new"):
        if name in report:
            side = report[name]
            lines.append(
                f"| {name} | {side['wall_s']:.2f} | {side['cpu_s']:.2f} | {side['peak_rss_bytes'] / 2**20:.0f} "
                f"| {side['bytes'] / 1e6:.1f} |"
            )
    if "ratio" in report:
        ratio = report["ratio"]
        lines.append(
            f"| new / old | {ratio['wall_s']:.2f} | {ratio['cpu_s']:.2f} | {ratio['peak_rss_bytes']:.2f} "
            f"| {ratio['bytes']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="the build to compare with ('none': new alone)")
    parser.add_argument("--tokens", type=int, default=10_000_000, help="training tokens")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="builds per side (alternating)")
    parser.add_argument("--big-corpus", type=Path, default=BIG_CORPUS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / "out" / "cache")
    args = parser.parse_args(argv)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    tokens_file, lengths_file, n = corpus_tokens(args.tokens, args.big_corpus, work)
    # Each side's Python and environment: the old one without PYTHONPATH, so that it cannot import
    # the working tree.
    sides_to_run: dict[str, tuple[Path | str, dict | None]] = {}
    sha = None
    if args.old_commit.lower() != "none":
        sha, old_python = install_old(args.old_commit, args.cache)
        sides_to_run["old"] = (old_python, _without_pythonpath())
    sides_to_run["new"] = (sys.executable, None)
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {side: [] for side in sides_to_run}
    for repeat in range(args.repeats):
        # Alternating which side goes first.
        for side in list(sides_to_run)[:: 1 if repeat % 2 == 0 else -1]:
            python, env = sides_to_run[side]
            model = work / f"build_{side}.memlm"
            runs[side].append(build(python, env, (tokens_file, lengths_file), n, args.width, model))
            print(side, runs[side][-1], flush=True)
    sides = {side: {k: median([r[k] for r in rs]) for k in rs[0]} for side, rs in runs.items()}
    report = {
        "tokens": n,
        "width": args.width,
        "repeats": args.repeats,
        "old_commit": sha,
        "new_build": current_build(),
        "load_average": load,
        **sides,
        "runs": runs,
    }
    if "old" in sides:
        report["ratio"] = {k: sides["new"][k] / sides["old"][k] for k in sides["new"]}
    (args.out / "build_cost.json").write_text(json.dumps(report, indent=2))
    (args.out / "build_cost.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
