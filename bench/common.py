"""Helpers shared by the benchmarks: corpus slices as instance files, timed runs with peak memory."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TRAIN_FILES = ("austen_train.txt.gz", "kjv.txt.gz", "docs_rst.txt.gz")
TEST_FILE = "austen_persuasion_test.txt.gz"


@dataclass
class Run:
    """One finished command: wall seconds, peak resident memory, its output."""

    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


def timed(cmd: list, cwd: Path | None = None) -> Run:
    """Runs `cmd` under GNU time (`/usr/bin/time -v`) and returns wall time and peak RSS."""
    gnu_time = shutil.which("time", path="/usr/bin") or sys.exit("GNU time is missing: apt-get install time")
    start = time.perf_counter()
    proc = subprocess.run([gnu_time, "-v", *map(str, cmd)], capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return Run(seconds, int(peak.group(1)) * 1024 if peak else 0, proc.returncode, proc.stdout, proc.stderr)


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


def instance_files(workdir: Path, width: int, train_tokens: int, test_instances: int) -> tuple[Path, Path]:
    """TiMBL column files of the anchor split (SPEC §9, shared/data/README.md): train = the first
    `train_tokens` tokens of austen + kjv (+ docs), test = the first `test_instances` of Persuasion."""
    train, test = workdir / f"train_w{width}_{train_tokens}.txt", workdir / f"test_w{width}_{test_instances}.txt"
    if not train.exists():
        everything = workdir / f"all_w{width}.txt"
        # Tokenise only as many of the files as the slice needs.
        for used in range(1, len(TRAIN_FILES) + 1):
            sources = [SHARED_DATA / f for f in TRAIN_FILES[:used]]
            subprocess.run(memlm_cmd("instances", *sources, "--width", width, "-o", everything), check=True)
            got = first_lines(everything, train, train_tokens)
            if got == train_tokens:
                break
        if got < train_tokens:
            print(f"note: the corpus holds only {got:,} tokens", file=sys.stderr)
        everything.unlink()
    if not test.exists():
        everything = workdir / f"persuasion_w{width}.txt"
        subprocess.run(memlm_cmd("instances", SHARED_DATA / TEST_FILE, "--width", width, "-o", everything), check=True)
        first_lines(everything, test, test_instances)
        everything.unlink()
    return train, test


def seconds_taken(log: str) -> float:
    """TiMBL's (and `memlm classify`'s) `Seconds taken: S (R p/s)` figure."""
    match = re.search(r"Seconds taken: ([0-9.]+)", log)
    if not match:
        raise RuntimeError(f"no 'Seconds taken' line in:\n{log[-2000:]}")
    return float(match.group(1))


def median(values: list[float]) -> float:
    return statistics.median(values)
