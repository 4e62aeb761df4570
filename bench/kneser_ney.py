"""Kneser-Ney scoring (issue 13) against KenLM, in one run.

    python -m bench.kneser_ney --width 4 --width 16

Train on austen_train + kjv (1,789,387 GPT-2 tokens, every block tokenised on its own), test on Persuasion.
Per width: perplexity (without and with the document cache, whose weights training fitted on its own
held-out blocks) over the test tokens seen in training (the only figure that compares with KenLM's,
which scores unseen tokens as one `<unk>` class) against KenLM's order-5 figure recomputed from
`kenlm/persuasion_o5.tsv.gz` (the ids are checked to be the same tokens); the file size against KenLM's
trie (40.9 MB); training time with the share of the Kneser-Ney phase, the cache's fit included (the
build without that phase is the IGTree build as before, so their ratio is the cost of Kneser-Ney and the
cache; one process, one run); scoring
speed single-threaded (a child process with RAYON_NUM_THREADS=1, median of `--repeats` passes over
Persuasion, every run timed once per pass in turn; wall time, and CPU time, which a machine shared with
other work does not inflate):
`Model.score_windows` on ready windows without and with the cache, and `Model.perplexity(text)` and
`Model.score(text)` from the raw text (tokenising included; with the cache, the default, and without), in
the steady state (the tokenizer's fast path built: two passes first). Top-1 accuracy of IGTree and of the
scoring distribution's most probable token. Nothing is fitted on Persuasion. Writes
bench/out/kneser_ney.json and .md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import memlm
from bench.common import SHARED_DATA, TEST_FILE, first_tokens, text_blocks
from memlm.scoring import perplexity_of

TRAIN = ("austen_train.txt.gz", "kjv.txt.gz")
KENLM_TSV = SHARED_DATA / "kenlm" / "persuasion_o5.tsv.gz"
#: KenLM's trie file for the same setup (its README).
KENLM_TRIE_BYTES = 40.9e6

#: Scoring speed in a child process with one rayon thread: argv = model, repeats.
_SPEED = """
import json, sys, time, statistics, memlm
from bench.common import TEST_FILE, first_tokens, text_blocks
model = memlm.load(sys.argv[1])
tokens, lengths = first_tokens(None, [TEST_FILE])
contexts, targets = model.windows(tokens=tokens, block_lengths=lengths)
text = "\\n\\n".join(text_blocks(TEST_FILE))
model.score_windows(contexts[:1000], targets[:1000])  # the first score verifies the checksums
# Steady state: the tokenizer's fast path is built once per process after 512k characters (two passes).
model.perplexity(text), model.perplexity(text)
def timed(f):
    wall, cpu = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - wall, time.process_time() - cpu
runs = {"score_windows": lambda: model.score_windows(contexts, targets, cache=False),
        "score_windows_cache": lambda: model.score_windows(contexts, targets, cache=True),
        "perplexity_text": lambda: model.perplexity(text),
        "score_text": lambda: model.score(text),
        "score_text_no_cache": lambda: model.score(text, cache=False)}
# Round-robin (each pass times every run once), so that a slow spell of a shared machine slows them alike.
times = {name: [] for name in runs}
for _ in range(int(sys.argv[2])):
    for name, f in runs.items():
        times[name].append(timed(f))
n = int(targets.size)
out = {"tokens": n}
for name, t in times.items():
    out[name + "_tokens_per_s"] = n / statistics.median(w for w, _ in t)
    out[name + "_tokens_per_cpu_s"] = n / statistics.median(c for _, c in t)
print(json.dumps(out))
"""


def kenlm_reference(test_tokens: np.ndarray) -> dict:
    """KenLM's perplexity over the seen test tokens and over all of them, from its per-token scores."""
    with gzip.open(KENLM_TSV, "rt") as tsv:
        rows = np.loadtxt(tsv, delimiter="\t", skiprows=1, usecols=(2, 3, 4))
    if not np.array_equal(rows[:, 0].astype(np.int64), test_tokens.astype(np.int64)):
        raise SystemExit(f"{KENLM_TSV} does not hold the tokens of {TEST_FILE} in order")
    seen = rows[:, 1] == 0
    return {
        "oov": rows[:, 1].astype(bool),
        "perplexity_seen": perplexity_of(rows[seen, 2]),
        "perplexity_all": perplexity_of(rows[:, 2]),
        "seen_tokens": int(seen.sum()),
    }


def measure(width: int, train: tuple, test: tuple, kenlm: dict | None, out: Path, repeats: int) -> dict:
    tokens, lengths = train
    phases: dict[str, float] = {}
    current = [None, time.perf_counter()]

    def progress(phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if phase != current[0]:
            if current[0] is not None:
                phases[current[0]] = phases.get(current[0], 0.0) + now - current[1]
            current[:] = [phase, now]

    start = time.perf_counter()
    model = memlm.train_token_ids(tokens, lengths, memlm.TokenizerSpec.from_file(), width=width, progress=progress)
    seconds = time.perf_counter() - start
    phases[current[0]] = phases.get(current[0], 0.0) + time.perf_counter() - current[1]
    path = out / "work" / f"kneser_ney_w{width}.memlm"
    model.save(path)
    model = memlm.load(path)
    kn_seconds = sum(s for p, s in phases.items() if "Kneser-Ney" in p)
    contexts, targets = model.windows(tokens=test[0], block_lengths=test[1])
    log10, _, oov = model.score_windows(contexts, targets, cache=False)
    igtree_top1 = model.predict_batch(contexts)[0][:, 0]
    scoring_top1 = model.most_probable(contexts)
    cached, _, _ = model.score_windows(contexts, targets, cache=True)
    if kenlm is not None and not np.array_equal(oov, kenlm["oov"]):
        raise SystemExit("memlm's OOV tokens are not KenLM's")
    info = model.info()
    speed = subprocess.run(
        [sys.executable, "-c", _SPEED, str(path), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RAYON_NUM_THREADS": "1"},
    )
    return {
        "width": width,
        "load_average": os.getloadavg()[0],
        "perplexity_seen": perplexity_of(log10[~oov]),
        "perplexity_all": perplexity_of(log10),
        "cache_weights": model.cache_weights,
        "perplexity_seen_cache": perplexity_of(cached[~oov]),
        "perplexity_all_cache": perplexity_of(cached),
        "seen_tokens": int((~oov).sum()),
        "igtree_accuracy": float((igtree_top1 == targets).mean()),
        "scoring_accuracy": float((scoring_top1 == targets).mean()),
        "file_bytes": path.stat().st_size,
        "kneser_ney_bytes": info["size_breakdown"]["kneser-ney"],
        "train_tokens": int(tokens.size),
        "train_seconds": seconds,
        "kneser_ney_seconds": kn_seconds,
        "phases": phases,
        **json.loads(speed.stdout),
    }


def markdown(rows: list[dict], kenlm: dict) -> str:
    lines = [
        "# Kneser-Ney scoring against KenLM (train austen_train + kjv, test Persuasion)",
        "",
        f"KenLM `lmplz -o 5`: perplexity over the {kenlm['seen_tokens']:,} seen tokens "
        f"**{kenlm['perplexity_seen']:.2f}** (all tokens, `<unk>` as a class: {kenlm['perplexity_all']:.2f}), "
        f"trie {KENLM_TRIE_BYTES / 1e6:.1f} MB.",
        "",
        "| W | ppl seen | / KenLM | ppl all | with cache: ppl seen | / without | ppl all | file MB | / KenLM trie "
        "| KN MB | KN B/token | train s | KN phase s | train / without KN "
        "| score_windows tok/s (1 thread): wall / CPU | with cache: wall / CPU | perplexity(text) tok/s: wall / CPU "
        "| Model.score(text) tok/s: wall / CPU | without cache: wall / CPU | top-1: IGTree / scoring argmax |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['width']} | {r['perplexity_seen']:.2f} | {r['perplexity_seen'] / kenlm['perplexity_seen']:.4f} "
            f"| {r['perplexity_all']:.2f} | {r['perplexity_seen_cache']:.2f} "
            f"| {r['perplexity_seen_cache'] / r['perplexity_seen']:.4f} | {r['perplexity_all_cache']:.2f} "
            f"| {r['file_bytes'] / 1e6:.2f} | {r['file_bytes'] / KENLM_TRIE_BYTES:.3f} "
            f"| {r['kneser_ney_bytes'] / 1e6:.2f} | {r['kneser_ney_bytes'] / r['train_tokens']:.2f} "
            f"| {r['train_seconds']:.1f} | {r['kneser_ney_seconds']:.1f} "
            f"| {r['train_seconds'] / (r['train_seconds'] - r['kneser_ney_seconds']):.2f} "
            f"| {r['score_windows_tokens_per_s'] / 1e6:.2f} M / {r['score_windows_tokens_per_cpu_s'] / 1e6:.2f} M "
            f"| {r['score_windows_cache_tokens_per_s'] / 1e6:.2f} M "
            f"/ {r['score_windows_cache_tokens_per_cpu_s'] / 1e6:.2f} M "
            f"| {r['perplexity_text_tokens_per_s'] / 1e6:.2f} M / {r['perplexity_text_tokens_per_cpu_s'] / 1e6:.2f} M "
            f"| {r['score_text_tokens_per_s'] / 1e6:.2f} M / {r['score_text_tokens_per_cpu_s'] / 1e6:.2f} M "
            f"| {r['score_text_no_cache_tokens_per_s'] / 1e6:.2f} M "
            f"/ {r['score_text_no_cache_tokens_per_cpu_s'] / 1e6:.2f} M "
            f"| {r['igtree_accuracy']:.4f} / {r['scoring_accuracy']:.4f} |"
        )
    by_width = {r["width"]: r for r in rows}
    if 4 in by_width and 16 in by_width:
        ratio = by_width[16]["perplexity_seen"] / by_width[4]["perplexity_seen"]
        lines += ["", f"W=16 / W=4 perplexity over seen tokens: {ratio:.4f}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, action="append", help="context width (repeatable; default 4 and 16)")
    parser.add_argument("--repeats", type=int, default=5, help="scoring passes (the median counts)")
    parser.add_argument(
        "--train-tokens",
        type=int,
        help="only the first N training tokens (a smoke run: KenLM's figure no longer compares)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    (args.out / "work").mkdir(parents=True, exist_ok=True)
    train = first_tokens(args.train_tokens, TRAIN, cache=args.out / "work")
    test = first_tokens(None, [TEST_FILE], cache=args.out / "work")
    assert text_blocks(TEST_FILE)
    kenlm = kenlm_reference(test[0])
    # KenLM's OOV tokens are memlm's only when both saw the whole training text.
    comparable = args.train_tokens is None
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    for width in args.width or [4, 16]:
        rows.append(measure(width, train, test, kenlm if comparable else None, args.out, args.repeats))
        print(markdown(rows, kenlm).splitlines()[-1], flush=True)
        (args.out / "kneser_ney.json").write_text(
            json.dumps(
                {"kenlm": {k: v for k, v in kenlm.items() if k != "oov"}, "comparable": comparable, "rows": rows},
                indent=2,
            )
        )
        (args.out / "kneser_ney.md").write_text(markdown(rows, kenlm))
    print(markdown(rows, kenlm))


if __name__ == "__main__":
    main()
