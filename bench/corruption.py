"""Corruption campaign: random damage to the bulk sections of model files, each damaged file loaded
WITHOUT verify and queried every way, in a subprocess of its own (so that a crash is counted, not
fatal).

Two small models are trained on data/austen_emma_sample.txt (W=4 and W=16, both with the instance
base, so all three algorithms run). Then ``--n`` damaged copies are made, alternating between the
two: random bytes flipped, or a range zeroed, inside one bulk section (the tries, their offsets and
distributions, the instance base's tails; found through the file's section table). Each copy is
loaded with ``memlm.load(path)`` (no verify) and queried with every algorithm and every query kind
(predict, predict_batch, votes, score_windows, probabilities, perplexity, greedy and sampled
generate, classify_file) on a fixed set of contexts, and its answers are compared with those of
the undamaged model. Per damaged file the worst outcome counts:

- clean error: the load or a query raised ``memlm.MemlmError`` (``ModelFormatError``); every other
  query gave the undamaged model's answer;
- identical: every query gave the undamaged model's answer (the damage lay where no query reads);
- WRONG: some query gave another answer than the undamaged model;
- crash: the process died (a signal, an abort), hung past ``--timeout``, or a query raised anything
  but MemlmError (pyo3's PanicException included).

Exits 1 unless wrong = crashes = 0. Writes bench/out/corruption.json and corruption.md.

    python -m bench.corruption --n 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "data" / "austen_emma_sample.txt"
TEST = ROOT / "data" / "austen_persuasion_sample.txt"
WIDTHS = (4, 16)
#: Sections whose checksums are checked when a model is opened (format version 3 ids): parameters,
#: weights, feature order, class statistics, symbol table, tokenizer, metadata, shard parameters,
#: Kneser-Ney parameters, discounts and document cache weights, provenance parameters.
SMALL_SECTIONS = {1, 2, 3, 4, 5, 6, 18, 19, 20, 21, 43, 47, 48, 62, 63}
#: The classifiers and their k-NN settings: every algorithm, every vote.
QUERIES = (
    ("igtree", {}),
    ("tribl2", {"k": 1}),
    ("tribl2", {"k": 2, "vote": "inverse_distance"}),
    ("ib1", {"k": 3, "vote": "majority"}),
    ("ib1", {"k": 2, "vote": "exponential_decay", "decay": 0.5}),
)


def section_table(data: bytes) -> list[tuple[int, int, int]]:
    """(section id, offset, length) of every section, read from the header (format version 3)."""
    (count,) = struct.unpack_from("<I", data, 12)
    out = []
    for k in range(count):
        ident, _elem, offset, length, _sum = struct.unpack_from("<IIQQQ", data, 16 + 32 * k)
        out.append((ident, offset, length))
    return out


def bulk_sections(data: bytes) -> list[tuple[int, int, int]]:
    return [s for s in section_table(data) if s[0] not in SMALL_SECTIONS and s[2] > 0]


def damage(data: bytes, rng: random.Random) -> tuple[bytes, dict]:
    """One random damage inside one bulk section: flipped bytes, or a zeroed range."""
    sections = bulk_sections(data)
    # Half the time a section chosen uniformly (small exception lists get hit too), half the time a
    # byte chosen uniformly over all bulk bytes (the big arrays).
    if rng.random() < 0.5:
        ident, offset, length = rng.choice(sections)
    else:
        ident, offset, length = rng.choices(sections, weights=[s[2] for s in sections])[0]
    out = bytearray(data)
    if rng.random() < 0.7:
        positions = sorted(offset + rng.randrange(length) for _ in range(rng.randint(1, 8)))
        for at in positions:
            out[at] ^= rng.randint(1, 255)
        what = {"kind": "flip", "section": ident, "positions": positions}
    else:
        start = offset + rng.randrange(length)
        end = min(offset + length, start + rng.randint(1, 256))
        out[start:end] = bytes(end - start)
        what = {"kind": "zero", "section": ident, "range": [start, end]}
        if bytes(out) == data:  # the range was zero already
            out[start] ^= 0xFF
            what["flipped"] = start
    return bytes(out), what


# -- the worker: one model file, every query ------------------------------------------------------


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _queries(model, spec: dict, scratch: Path):
    """(name, thunk) of every query kind; each thunk returns something JSON can hold."""
    contexts = np.array(spec["contexts"], dtype=np.uint32)
    targets = np.array(spec["targets"], dtype=np.uint32)
    prefixes = [row.tolist() for row in contexts[:6]]
    for algorithm, knn in QUERIES:
        name = f"{algorithm}{knn}"
        for i, prefix in enumerate(prefixes):

            def predict(prefix=prefix, algorithm=algorithm, knn=knn):
                p = model.predict(prefix, top_k=5, algorithm=algorithm, **knn)
                return [list(p.ids), list(p.votes), p.depth, p.distance]

            yield f"predict {name} {i}", predict

        def batch(algorithm=algorithm, knn=knn):
            classes, votes, depth, distance = model.predict_batch(contexts, top_k=3, algorithm=algorithm, **knn)
            return [classes.tolist(), votes.tolist(), depth.tolist(), distance.tolist()]

        def votes(algorithm=algorithm, knn=knn):
            ids, votes = model.votes(prefixes[0], algorithm=algorithm, **knn)
            return [ids.tolist(), votes.tolist()]

        def text(algorithm=algorithm, knn=knn):
            return model.predict(spec["prompts"][0], top_k=3, algorithm=algorithm, **knn).ids

        def classify(algorithm=algorithm, knn=knn):
            output = scratch / "classified.txt"
            totals = model.classify_file(spec["instances"], output, distribution=True, algorithm=algorithm, **knn)
            return [totals["instances"], totals["correct"], hashlib.sha256(output.read_bytes()).hexdigest()[:16]]

        yield f"predict_batch {name}", batch
        yield f"votes {name}", votes
        yield f"predict text {name}", text
        yield f"classify_file {name}", classify
        if algorithm != "ib1" or knn.get("vote") == "majority":
            for sampled in (False, True):

                def generate(algorithm=algorithm, knn=knn, sampled=sampled):
                    options = {"do_sample": True, "temperature": 0.7, "top_k": 20, "seed": 5} if sampled else {}
                    return model.generate(spec["prompts"][1], 12, algorithm=algorithm, **knn, **options)

                yield f"generate {'sampled' if sampled else 'greedy'} {name}", generate

    def score():
        log10, depths, oov = model.score_windows(contexts, targets)
        return [log10.tolist(), depths.tolist(), oov.tolist()]

    yield "score_windows", score
    yield "perplexity", lambda: model.perplexity(spec["prompts"][2])
    for i, prefix in enumerate(prefixes[:2]):
        yield f"probabilities {i}", lambda prefix=prefix: _digest(model.probabilities(prefix))


def worker(model_path: str, spec_path: str) -> None:
    """Loads the model without verify and prints every query's outcome as JSON."""
    import memlm

    spec = json.loads(Path(spec_path).read_text())
    out: dict[str, list] = {}
    try:
        model = memlm.load(model_path)
    except memlm.MemlmError as e:
        print(json.dumps({"load": ["error", type(e).__name__, str(e)]}))
        return
    except BaseException as e:  # noqa: BLE001 - anything else (PanicException too) is a crash
        print(json.dumps({"load": ["crash", type(e).__name__, str(e)]}))
        return
    with tempfile.TemporaryDirectory() as scratch:
        for name, query in _queries(model, spec, Path(scratch)):
            try:
                out[name] = ["ok", query()]
            except memlm.MemlmError as e:
                out[name] = ["error", type(e).__name__, str(e)]
            except BaseException as e:  # noqa: BLE001
                out[name] = ["crash", type(e).__name__, str(e)]
    print(json.dumps(out))


def run_worker(model_path: Path, spec_path: Path, timeout: float) -> tuple[dict | None, str]:
    """The worker's outcomes, or None and what went wrong when the process died or hung."""
    cmd = [sys.executable, "-m", "bench.corruption", "--worker", str(model_path), str(spec_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, f"hung (no answer after {timeout:.0f} s)"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        return None, f"died with status {proc.returncode}: {tail[0][:200]}"
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""
    except (json.JSONDecodeError, IndexError):
        return None, f"printed no result: {proc.stdout[-200:]!r}"


def judge(outcomes: dict | None, reference: dict) -> tuple[str, str]:
    """The worst outcome of one damaged file: crash, wrong, error or identical, and a detail."""
    if outcomes is None:
        return "crash", ""
    if "load" in outcomes:
        status, kind, message = outcomes["load"]
        return ("error" if status == "error" else "crash"), f"load: {kind}: {message}"
    verdict, detail = "identical", ""
    for name, want in reference.items():
        got = outcomes.get(name, ["crash", "missing", ""])
        if got[0] == "crash":
            return "crash", f"{name}: {got[1]}: {got[2]}"
        if got[0] == "ok" and got[1] != want[1]:
            return "wrong", f"{name}: {json.dumps(got[1])[:200]} instead of {json.dumps(want[1])[:200]}"
        if got[0] == "error" and verdict == "identical":
            verdict, detail = "error", f"{name}: {got[1]}: {got[2]}"
    return verdict, detail


# -- the campaign ---------------------------------------------------------------------------------


def prepare(workdir: Path, contexts_per_model: int) -> list[tuple[Path, Path]]:
    """Trains the models and writes each one's query spec: (model path, spec path) per width."""
    import memlm

    test_text = TEST.read_text()
    prompts = [
        "Emma Woodhouse, handsome, clever, and rich",
        "It was a fine morning, and",
        test_text[:2000],
    ]
    out = []
    for width in WIDTHS:
        model = memlm.train([TRAIN], width=width, algorithms=("igtree", "tribl2", "ib1"))
        path = workdir / f"w{width}.memlm"
        model.save(path)
        contexts, targets = model.windows([test_text[:4000]])
        # Windows from all over the sample, and a context of unknown and padding ids.
        pick = np.linspace(0, len(targets) - 1, contexts_per_model).astype(int)
        contexts, targets = contexts[pick], targets[pick]
        instances = workdir / f"w{width}.instances"
        pad = model.pad_id
        with instances.open("w") as f:
            for row, target in zip(contexts, targets, strict=True):
                f.write(" ".join("_" if int(i) == pad else str(int(i)) for i in row) + f" {int(target)}\n")
        spec = {
            "contexts": contexts.tolist(),
            "targets": targets.tolist(),
            "prompts": prompts,
            "instances": str(instances),
        }
        spec_path = workdir / f"w{width}.json"
        spec_path.write_text(json.dumps(spec))
        out.append((path, spec_path))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="damaged files (default 200)")
    parser.add_argument("--seed", type=int, default=12, help="seed of the damage (default 12)")
    parser.add_argument("--contexts", type=int, default=24, help="contexts queried per model (default 24)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a worker counts as hung")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="where the reports go")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memlm-corruption-") as tmp:
        workdir = Path(tmp)
        models = prepare(workdir, args.contexts)
        references = []
        for path, spec in models:
            reference, problem = run_worker(path, spec, args.timeout)
            if reference is None or "load" in reference or any(v[0] != "ok" for v in reference.values()):
                sys.exit(f"the undamaged model {path.name} does not answer every query: {problem or reference}")
            references.append(reference)
        counts = {"error": 0, "identical": 0, "wrong": 0, "crash": 0}
        cases = []
        for i in range(args.n):
            which = i % len(models)
            path, spec = models[which]
            data, what = damage(path.read_bytes(), rng)
            damaged = workdir / f"damaged-{i}.memlm"
            damaged.write_bytes(data)
            outcomes, problem = run_worker(damaged, spec, args.timeout)
            verdict, detail = judge(outcomes, references[which])
            damaged.unlink()
            counts[verdict] += 1
            cases.append({"width": WIDTHS[which], **what, "verdict": verdict, "detail": problem or detail})
            if verdict in ("wrong", "crash"):
                print(f"[{i}] {verdict.upper()}: W={WIDTHS[which]} {what}: {problem or detail}", file=sys.stderr)
    seconds = time.perf_counter() - started
    ok = counts["wrong"] == 0 and counts["crash"] == 0
    report = {
        "n": args.n,
        "seed": args.seed,
        "widths": list(WIDTHS),
        "queries_per_file": len(references[0]),
        "counts": counts,
        "ok": ok,
        "seconds": round(seconds, 1),
        "cases": cases,
    }
    (args.out / "corruption.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Corruption campaign",
        "",
        f"{args.n} damaged copies of W={'/'.join(map(str, WIDTHS))} models (data/austen_emma_sample.txt, "
        f"igtree+tribl2+ib1), loaded without verify, {len(references[0])} queries each "
        f"(seed {args.seed}, {seconds:.0f} s).",
        "",
        "| clean errors | identical answers | WRONG answers | crashes |",
        "|---|---|---|---|",
        f"| {counts['error']} | {counts['identical']} | {counts['wrong']} | {counts['crash']} |",
        "",
        "PASS: clean errors or correct answers only." if ok else "FAIL: wrong answers or crashes.",
    ]
    (args.out / "corruption.md").write_text("\n".join(lines) + "\n")
    print(
        f"corruption campaign: {args.n} damaged files: {counts['error']} clean errors, "
        f"{counts['identical']} identical answers, {counts['wrong']} WRONG answers, {counts['crash']} crashes "
        f"({seconds:.0f} s) -> {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("RAYON_NUM_THREADS", "2")
    sys.exit(main())
