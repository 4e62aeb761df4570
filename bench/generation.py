"""Generation speed of this working tree against an older commit, side by side in one run.

    python -m bench.generation --old-commit 274be5f --prompts 500 --repeats 5

The old commit is installed beside the current build: its source is taken with `git archive` and built
into its own virtual environment (`pip install --no-deps`, maturin compiles the Rust core; a few minutes
the first time, then cached under `--cache` by commit). One model is trained with the current build
(W=16 on `--train-file`, by default Jane Austen's novels) and saved; both sides load that same file (the
model file format is shared). Each side runs in its own process (the old one with its environment's
Python, the new one with this Python), `--repeats` times, alternating which side goes first, and
measures on that one model:

- `Model.generate` throughput, greedy and sampled (`do_sample=True, top_k=50`, prompt i with seed i):
  `--max-new-tokens` new tokens after each prompt, the prompts being the first sentences (at most 32
  words) of the first `--prompts` paragraphs of Persuasion (held-out text) that have at least 8 words;
  tokens/s = generated tokens / wall time of the generate calls (loading and a warm-up excluded);
- single-context `Model.predict` latency (p50, p95 over `--predict-contexts` contexts of Persuasion,
  `top_k=1`) and `Model.predict_batch` time per context over every context of Persuasion (all cores).

Figures are medians over the repeats; the ratios new/old come from the same run. The greedy texts of the
two sides are compared too (same model, same prompts: they should be identical). `--old-commit none`
measures the current build alone. Writes bench/out/generation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import memlm
from bench.common import TEST_FILE, data_path, median, text_blocks

REPO = Path(__file__).resolve().parent.parent
OLD_COMMIT = "274be5f"
#: Sampled generation as measured (Hugging Face's arguments).
SAMPLING = {"do_sample": True, "top_k": 50}
#: What each side reports: (label, whether more is better, number format).
MEASURES = {
    "greedy_tokens_per_s": ("generate greedy, tokens/s", True, ",.0f"),
    "sampled_tokens_per_s": ("generate sampled (top_k=50), tokens/s", True, ",.0f"),
    "predict_p50_us": ("predict p50, µs", False, ".2f"),
    "predict_p95_us": ("predict p95, µs", False, ".2f"),
    "batch_us_per_context": ("predict_batch, µs per context", False, ".3f"),
}
#: The throughput the current build should reach, as a multiple of the old one's.
TARGET_RATIO = 3.0
#: Latency counts as no worse up to this ratio new/old (the noise of a busy machine).
LATENCY_TOLERANCE = 1.05

#: One side's measurements, run by that side's Python (so it uses only what both old and new memlm
#: have): prints one JSON line.
_WORKER = r"""
import hashlib, json, sys, time
import numpy as np
import memlm

model_path, prompts_path, contexts_path, max_new, n_single, sampling = sys.argv[1:7]
max_new, n_single, sampling = int(max_new), int(n_single), json.loads(sampling)
model = memlm.load(model_path)
prompts = json.loads(open(prompts_path, encoding="utf-8").read())
contexts = np.load(contexts_path)
singles = [row.tolist() for row in contexts[:n_single]]


def generate_all(chosen, **kwargs):
    start = time.perf_counter()
    texts = [model.generate(p, max_new_tokens=max_new, seed=i, **kwargs) for i, p in enumerate(chosen)]
    return time.perf_counter() - start, texts


def single_latencies(chosen):
    samples = []
    for ids in chosen:
        start = time.perf_counter_ns()
        model.predict(ids, top_k=1)
        samples.append(time.perf_counter_ns() - start)
    return np.asarray(samples) / 1e3


# Warm-up: touch the model's pages and every code path once.
generate_all(prompts[:20])
generate_all(prompts[:20], **sampling)
single_latencies(singles[:200])
model.predict_batch(contexts[:1000], top_k=1)

greedy_seconds, greedy = generate_all(prompts)
sampled_seconds, _ = generate_all(prompts, **sampling)
single = single_latencies(singles)
batch = []
for _ in range(15):  # a few ms each: many repeats steady the median
    start = time.perf_counter()
    model.predict_batch(contexts, top_k=1)
    batch.append(time.perf_counter() - start)
generated = len(prompts) * max_new
print(json.dumps({
    "memlm_file": memlm.__file__,
    "greedy_tokens_per_s": generated / greedy_seconds,
    "sampled_tokens_per_s": generated / sampled_seconds,
    "predict_p50_us": float(np.percentile(single, 50)),
    "predict_p95_us": float(np.percentile(single, 95)),
    "batch_us_per_context": float(np.median(batch)) / len(contexts) * 1e6,
    "greedy_digests": [hashlib.sha1(t.encode()).hexdigest()[:16] for t in greedy],
}))
"""


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, check=True).stdout.strip()


def install_old(commit: str, cache: Path) -> tuple[str, Path]:
    """The full hash of `commit` and the Python of a virtual environment where that commit's memlm is
    installed (built the first time, then reused)."""
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    home = cache.resolve() / f"memlm-{sha[:12]}"
    python = home / "venv" / "bin" / "python"
    if (home / "installed").exists() and python.exists():
        return sha, python
    shutil.rmtree(home, ignore_errors=True)
    source = home / "src"
    source.mkdir(parents=True)
    print(f"installing memlm {sha[:12]} in {home} (built once: a few minutes)", file=sys.stderr, flush=True)
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", sha], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", source], input=archive.stdout, check=True)
    # The environment sees this Python's packages (numpy, tokenizers, maturin): only memlm is installed.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", home / "venv"], check=True)
    build = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", source],
        capture_output=True,
        text=True,
        env=_without_pythonpath(),
    )
    if build.returncode != 0:
        raise RuntimeError(f"building memlm {sha[:12]} failed:\n{build.stdout[-3000:]}{build.stderr[-5000:]}")
    shutil.rmtree(source / "target", ignore_errors=True)  # the build's intermediate files
    (home / "installed").write_text(sha + "\n")
    return sha, python


def _without_pythonpath() -> dict:
    """This environment without PYTHONPATH, so that the old side cannot import the working tree."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def current_build() -> dict:
    """Which memlm this Python imports, the commit under it, and whether its binding may be stale."""
    described = git("describe", "--always", "--dirty")
    # The compiled binding: the extension module beside the Python package.
    binding = sorted(Path(memlm.__file__).parent.glob("*.so"), key=lambda p: p.stat().st_mtime)
    sources = list((REPO / "rust").rglob("*.rs")) if (REPO / "rust").is_dir() else []
    stale = bool(binding and sources and max(p.stat().st_mtime for p in sources) > binding[-1].stat().st_mtime)
    if stale:
        print("warning: Rust sources are newer than the built binding: rebuild it (make install)", file=sys.stderr)
    return {"commit": described, "memlm_file": memlm.__file__, "binding_older_than_sources": stale}


def prompts_of(blocks: list[str], n: int, min_words: int = 8, max_words: int = 32) -> list[str]:
    """The first sentence of each of the first `n` blocks with at least `min_words` words, cut after
    `max_words` words."""
    prompts = []
    for block in blocks:
        if len(block.split()) < min_words:
            continue
        sentence = re.match(r".+?[.!?](?=\s|$)", block)
        prompts.append(" ".join((sentence.group(0) if sentence else block).split()[:max_words]))
        if len(prompts) == n:
            break
    return prompts


def run_side(python: Path | str, files: list[Path], args: argparse.Namespace, env: dict | None) -> dict:
    cmd = [
        python,
        "-c",
        _WORKER,
        *files,
        args.max_new_tokens,
        args.predict_contexts,
        json.dumps(SAMPLING),
    ]
    # Run from the work folder: nothing there can shadow the installed memlm.
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=files[0].parent, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    return {key: median([r[key] for r in runs]) for key in MEASURES}


def markdown(report: dict) -> str:
    old, new = report.get("old"), report["new"]
    lines = [
        f"W={report['width']}, trained on {report['train_file']} ({report['train_tokens']:,} tokens); "
        f"{report['prompts']} prompts x {report['max_new_tokens']} new tokens; medians of {report['repeats']} "
        f"runs per side; {report['machine']}",
        "",
    ]
    if old:
        lines += [
            f"| measure | old {old['commit'][:7]} | new {new['commit']} | new/old |",
            "|---|---|---|---|",
        ]
        for key, (label, higher_is_better, form) in MEASURES.items():
            ratio = report["ratios_new_over_old"][key]
            better = "higher is better" if higher_is_better else "lower is better"
            lines.append(
                f"| {label} ({better}) | {old['median'][key]:{form}} | {new['median'][key]:{form}} | **{ratio:.2f}x** |"
            )
        same, total = report["greedy_identical"], report["prompts"]
        lines += [
            "",
            f"- greedy texts identical on {same} of {total} prompts",
            f"- target: generate throughput >= {TARGET_RATIO:g}x the old one, greedy and sampled: "
            + ("met" if report["target_met"] else "**not met**"),
        ]
        worse = [
            f"{MEASURES[key][0].split(',')[0]} {ratio:.2f}x"
            for key, ratio in report["ratios_new_over_old"].items()
            if not MEASURES[key][1] and ratio > LATENCY_TOLERANCE
        ]
        lines.append(
            f"- predict and predict_batch latency no worse (new/old <= {LATENCY_TOLERANCE:g}): "
            + (f"**not met** ({', '.join(worse)})" if worse else "met")
        )
    else:
        lines += [f"| measure | new {new['commit']} |", "|---|---|"]
        lines += [f"| {label} | {new['median'][key]:{form}} |" for key, (label, _, form) in MEASURES.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="commit to compare with ('none': new side only)")
    parser.add_argument("--prompts", type=int, default=500, help="prompts (first sentences of Persuasion)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side (alternating)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--train-file", default="austen_train.txt.gz", help="a benchmark text's name, or a path")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--predict-contexts", type=int, default=5000, help="single predict calls per run")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / "out" / "cache")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)

    old = None if args.old_commit.lower() == "none" else install_old(args.old_commit, args.cache)
    new = current_build()

    # One model, trained with the current build, loaded by both sides.
    train_file = data_path(args.train_file)
    model_path = work / f"generation_w{args.width}_{train_file.name.split('.')[0]}.memlm"
    started = time.perf_counter()
    model = memlm.train(train_file, width=args.width)
    model.save(model_path)
    print(f"trained {model_path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    blocks = text_blocks(TEST_FILE)
    prompts = prompts_of(blocks, args.prompts)
    if len(prompts) < args.prompts:
        print(f"note: Persuasion gives only {len(prompts)} prompts", file=sys.stderr)
    prompts_path, contexts_path = work / "generation_prompts.json", work / "generation_contexts.npy"
    prompts_path.write_text(json.dumps(prompts), encoding="utf-8")
    np.save(contexts_path, model.windows(blocks)[0])
    train_tokens = model.info()["training_instances"]
    del model
    files = [model_path, prompts_path, contexts_path]

    sides: dict[str, tuple] = {"new": (sys.executable, None)}
    if old:
        sides = {"old": (old[1], _without_pythonpath()), **sides}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            python, env = sides[name]
            result = run_side(python, files, args, env)
            runs[name].append(result)
            print(
                f"run {repeat + 1}/{args.repeats} {name}: "
                + ", ".join(f"{key} {result[key]:{form}}" for key, (_, _, form) in MEASURES.items()),
                file=sys.stderr,
                flush=True,
            )

    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "width": args.width,
        "train_file": train_file.name,
        "train_tokens": train_tokens,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "sampling": SAMPLING,
        "repeats": args.repeats,
        "predict_contexts": args.predict_contexts,
        "new": {**new, "median": summary(runs["new"]), "runs": runs["new"]},
    }
    _check_imports(runs["new"], str(Path(memlm.__file__).parent))
    if old:
        sha, python = old
        _check_imports(runs["old"], str(python.parent.parent))
        report["old"] = {"commit": sha, "python": str(python), "median": summary(runs["old"]), "runs": runs["old"]}
        report["ratios_new_over_old"] = {
            key: report["new"]["median"][key] / report["old"]["median"][key] for key in MEASURES
        }
        old_texts, new_texts = runs["old"][0]["greedy_digests"], runs["new"][0]["greedy_digests"]
        report["greedy_identical"] = sum(a == b for a, b in zip(old_texts, new_texts, strict=True))
        report["target_met"] = all(
            report["ratios_new_over_old"][key] >= TARGET_RATIO
            for key in ("greedy_tokens_per_s", "sampled_tokens_per_s")
        )
        report["latency_no_worse"] = all(
            ratio <= LATENCY_TOLERANCE for key, ratio in report["ratios_new_over_old"].items() if not MEASURES[key][1]
        )
    for side in runs.values():
        for run in side[1:]:
            run.pop("greedy_digests")  # the first run's are kept
    (args.out / "generation.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / "generation.md").write_text(table)
    print(table)


def _check_imports(runs: list[dict], folder: str) -> None:
    """Each side must have imported its own memlm (the old one from its environment)."""
    for run in runs:
        if not run["memlm_file"].startswith(folder):
            raise RuntimeError(f"a side imported memlm from {run['memlm_file']}, not from {folder}")


if __name__ == "__main__":
    main()
