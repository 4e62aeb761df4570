"""Shared fixtures: the real sample corpus in data/, models trained on it once per session."""

import shutil
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


@pytest.fixture
def browser():
    """Headless Chromium driven by Selenium (the page tests); missing, the test fails: `make install-test`
    installs Debian's chromium and chromium-driver as root."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(
            "the page tests need Debian's chromium and chromium-driver: run `make install-test` as root "
            "or `sudo apt-get install chromium chromium-driver`"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with webdriver.Chrome(options=options, service=Service(driver)) as browser:
        yield browser
