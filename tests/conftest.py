"""Shared fixtures: the real sample corpus in data/, models trained on it once per session."""

import subprocess
import sys
from pathlib import Path

import pytest

import memlm

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TRAIN_TEXT = DATA / "austen_emma_sample.txt"
TEST_TEXT = DATA / "austen_persuasion_sample.txt"


def run_cli(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Runs `python -m memlm ARGS` and returns the finished process (text mode)."""
    proc = subprocess.run(
        [sys.executable, "-m", "memlm", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"memlm {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def model4() -> memlm.Model:
    return memlm.train(TRAIN_TEXT, width=4)


@pytest.fixture(scope="session")
def model16() -> memlm.Model:
    return memlm.train(TRAIN_TEXT, width=16)


@pytest.fixture(scope="session")
def model4_path(model4, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "emma4.memlm"
    model4.save(path)
    return path
