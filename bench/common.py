"""Helpers shared by the benchmarks: the benchmark texts (the first N tokens of the training text,
instance files, text blocks) and timed runs with peak memory."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import memlm
from memlm.corpus import read_blocks

#: The benchmark texts and the GPT-2 tokenizer (their README says where each comes from); the
#: environment variable MEMLM_BENCH_DATA points elsewhere.
SHARED_DATA = Path(
    os.environ.get("MEMLM_BENCH_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data")
)
#: The training text, in this order: Jane Austen's novels, the King James Bible, Python and Linux docs.
TRAIN_FILES = ("austen_train.txt.gz", "kjv.txt.gz", "docs_rst.txt.gz")
#: The held-out test text: Austen's Persuasion.
TEST_FILE = "austen_persuasion_test.txt.gz"


@dataclass
class Run:
    """One finished command: wall seconds, peak resident memory, its output, CPU seconds (user + system)."""

    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0


def timed(cmd: list, cwd: Path | None = None, env: dict | None = None) -> Run:
    """Runs `cmd` under GNU time (`/usr/bin/time -v`) and returns wall time, peak RSS and CPU time."""
    gnu_time = shutil.which("time", path="/usr/bin") or sys.exit("GNU time is missing: apt-get install time")
    start = time.perf_counter()
    proc = subprocess.run([gnu_time, "-v", *map(str, cmd)], capture_output=True, text=True, cwd=cwd, env=env)
    seconds = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return Run(seconds, int(peak.group(1)) * 1024 if peak else 0, proc.returncode, proc.stdout, proc.stderr, cpu)


def memlm_cmd(*args) -> list:
    return [sys.executable, "-m", "memlm", *map(str, args)]


def first_lines(source: Path, target: Path, n: int) -> int:
    """Copies the first `n` lines of `source` to `target`; returns how many there were."""
    count = 0
    with source.open() as src, target.open("w") as dst:
        for line in src:
            if count == n:
                break
            dst.write(line)
            count += 1
    return count


def data_path(name: str | Path) -> Path:
    """A file of `SHARED_DATA` when given by its bare name (a string without a folder), else the path."""
    return SHARED_DATA / name if isinstance(name, str) and os.sep not in name else Path(name)


def cut_tokens(tokens: np.ndarray, lengths: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` of `tokens` (all of them for None) with their block lengths, the last block cut
    where they end."""
    if n is None or n >= tokens.size:
        return tokens, np.asarray(lengths, dtype=np.uint64)
    ends = np.cumsum(lengths)
    whole = int(np.searchsorted(ends, n, side="right"))
    cut = lengths[:whole].tolist()
    rest = n - (int(ends[whole - 1]) if whole else 0)
    if rest > 0 and whole < len(lengths):
        cut.append(rest)
    return tokens[: sum(cut)], np.asarray(cut, dtype=np.uint64)


def first_tokens(
    n: int | None, sources: Sequence[str | Path] | None = None, cache: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` tokens of `sources` (all for None), tokenised as `memlm train` does (GPT-2, one block
    per paragraph), and their block lengths, the last block cut where the tokens end.

    `sources` defaults to the training text (`TRAIN_FILES`, in order); names without a folder are taken
    from `SHARED_DATA`. Only as many files as `n` needs are read; fewer tokens come back when they hold
    fewer. With `cache`, each file's tokens are kept there (as .npz, keyed by the file's size and
    modification time) for the next run.
    """
    paths = [data_path(s) for s in (sources or TRAIN_FILES)]
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for path in paths:
        parts.append(_file_tokens(path, cache))
        if n is not None and sum(p[0].size for p in parts) >= n:
            break
    tokens = np.concatenate([p[0] for p in parts])
    lengths = np.concatenate([p[1] for p in parts]).astype(np.uint64)
    return cut_tokens(tokens, lengths, n)


def _file_tokens(path: Path, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    stat = path.stat()
    kept = cache / f"{path.name}.{stat.st_size}.{stat.st_mtime_ns}.tokens.npz" if cache else None
    if kept is not None and kept.exists():
        with np.load(kept) as saved:
            return saved["tokens"], saved["lengths"]
    tokens, lengths, _, _ = memlm.tokenize(path)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        np.savez(kept, tokens=tokens, lengths=lengths)
    return tokens, lengths


def text_blocks(path: str | Path) -> list[str]:
    """The blocks of a text file (gzip too), exactly as training reads them (memlm's own reader)."""
    return list(read_blocks([data_path(path)]))


def instance_files(
    workdir: Path,
    width: int,
    train_tokens: int,
    test_instances: int,
    train: Sequence[str | Path] = TRAIN_FILES,
    test: str | Path = TEST_FILE,
) -> tuple[Path, Path]:
    """TiMBL column files for the TiMBL comparisons: train = the first `train_tokens` tokens of `train`
    (by default the training text: austen + kjv + docs), test = the first `test_instances` tokens of the
    text `test` (by default Persuasion; one instance per token, its W previous tokens of the same block as
    context). Kept in `workdir` under names that say which texts they come from."""

    def named(sources: Sequence[str | Path]) -> str:
        text = "+".join(str(data_path(s).resolve()) for s in sources)
        stem = "+".join(Path(str(s)).name.split(".")[0] for s in sources)[:60]
        return f"{stem}.{hashlib.sha256(text.encode()).hexdigest()[:8]}"

    train_file = workdir / f"train_w{width}_{train_tokens}_{named(train)}.txt"
    test_file = workdir / f"test_w{width}_{test_instances}_{named([test])}.txt"
    vocab_size = memlm.TokenizerSpec.from_file().vocab_size
    for path, n, sources in ((train_file, train_tokens, list(train)), (test_file, test_instances, [test])):
        if path.exists():
            continue
        tokens, lengths = first_tokens(n, sources)
        if tokens.size < n:
            print(f"note: {'+'.join(map(str, sources))} holds only {tokens.size:,} tokens, not {n:,}", file=sys.stderr)
        partial = path.with_suffix(".partial")
        memlm.write_instances(tokens, lengths, partial, width, vocab_size)
        partial.replace(path)
    return train_file, test_file


def add_text_options(parser) -> None:
    """`--train` (repeatable) and `--test`: the texts a benchmark trains and tests on (names without a
    folder from `SHARED_DATA`; `args.train` None means `TRAIN_FILES`)."""
    parser.add_argument("--train", action="append", help="training text (repeatable; default: the training text)")
    parser.add_argument("--test", default=TEST_FILE, help="test text (default: Persuasion)")


def seconds_taken(log: str) -> float:
    """TiMBL's (and `memlm classify`'s) `Seconds taken: S (R p/s)` figure."""
    match = re.search(r"Seconds taken: ([0-9.]+)", log)
    if not match:
        raise RuntimeError(f"no 'Seconds taken' line in:\n{log[-2000:]}")
    return float(match.group(1))


def median(values: list[float]) -> float:
    return statistics.median(values)
