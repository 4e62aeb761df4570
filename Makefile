# memlm: `make demo` trains on the sample corpus and generates text; `make test` runs every check.
PYTHON ?= python3
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore
MEMLM := $(PYTHON) -m memlm
DEMO_MODEL := build/demo.memlm
PROMPTS := "Emma Woodhouse, handsome, clever, and rich," "Mr. Knightley said" "It was a fine morning, and"

.PHONY: install install-test timbl chromium demo test lint rust-test python-test bench

install:
	$(PIP) --editable .

# mypy: stubtest checks python/memlm/_core.pyi against the built extension (make lint).
install-test: timbl chromium
	$(PIP) --editable ".[test]"

# TiMBL is the reference the equivalence tests run against (Debian package `timbl`).
timbl:
	@command -v timbl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq timbl time >/dev/null; \
	  else echo "timbl is missing: run 'sudo apt-get install timbl time'" >&2; exit 1; fi; }

# Headless Chromium opens the explanation page in tests/test_explain_page.py and the playground of `memlm serve`
# in tests/test_serve.py (Debian packages `chromium` and `chromium-driver`; Selenium, which drives it, is in the
# test extra, with FastAPI, uvicorn and the clients of the serve tests).
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium chromium-driver'" >&2; exit 1; fi; }

demo: install
	@mkdir -p build
	$(MEMLM) train data/austen_emma_sample.txt --width 4 -o $(DEMO_MODEL)
	$(MEMLM) info $(DEMO_MODEL)
	@for prompt in $(PROMPTS); do \
	  echo; $(MEMLM) generate $(DEMO_MODEL) "$$prompt" --max-new-tokens 40 --do-sample --top-k 20 --seed 7; \
	done

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
	ruff check python tests bench
	ruff format --check python tests bench
	MYPYPATH=python MYPY_CACHE_DIR=build/mypy_cache $(PYTHON) -m mypy.stubtest memlm._core

rust-test:
	cargo test --quiet

python-test:
	$(PYTHON) -m pytest -q

test: install-test lint rust-test python-test

bench: install
	$(PYTHON) -m bench.vs_timbl
