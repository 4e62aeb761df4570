"""Latency and energy: memlm against TiMBL, side by side, in one run.

    python -m bench.latency_energy --train-tokens 1000000 --width 4 --width 16 --country NLD

Per width, on identical instances (the anchor split of bench.common):
- training wall time, peak RSS and model size, and classification time per instance, memlm and `timbl`
  for IGTree, TRIBL2 and IB1 (bench.vs_timbl, median of `--repeats`);
- memlm latency per algorithm: single-context `predict` from Python (p50, p95), batch prediction per
  instance, and `Model.generate` itself, greedy, as users call it (per prompt: the call's time per new
  token, p50 and p95 over the prompts; tokens/s over all of them), each the median of `--repeats`;
- energy (CodeCarbon offline tracker; the method it used is printed and stored) of training, of
  classifying the test instances (both systems) and of generating tokens (memlm): joules per token
  and kg CO2eq.
The OLIFANT generation path (python3-timbl, one `TimblClassifier.classify` call per token) is not
measured: Debian bookworm ships no python3-timbl package. Writes bench/out/latency_energy.{json,md}
and latency.png, energy.png with the OLIFANT paper's figures (Van den Bosch et al. 2025: FineWeb-Edu,
W=16, other hardware) as reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

import memlm
from bench import vs_timbl
from bench.common import TEST_FILE, first_lines, first_tokens, instance_files, median, memlm_cmd, text_blocks
from bench.energy import track

ALGORITHMS = ("igtree", "tribl2", "ib1")
#: OLIFANT paper, FineWeb-Edu, W=16, ~500k test tokens: (label, ms per token, kWh over the test text).
PAPER = [
    ("IGTree 100M", 1.4, 0.021),
    ("TRIBL2 100M", 8.5, 0.132),
    ("IB1-IG 51k", 24.5, 0.382),
    ("GPT-2 small", 32.6, 0.504),
]
PAPER_TEST_TOKENS = 500_000


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    us = np.asarray(samples_ns) / 1e3
    return float(np.percentile(us, 50)), float(np.percentile(us, 95))


def python_latency(model: memlm.Model, algorithm: str, contexts: list[list[int]], repeats: int) -> dict:
    """p50/p95 of single-context `predict` calls from Python, median over repeats."""
    p50s, p95s = [], []
    for _ in range(repeats):
        samples = []
        for ids in contexts:
            start = time.perf_counter_ns()
            model.predict(ids, top_k=1, algorithm=algorithm)
            samples.append(time.perf_counter_ns() - start)
        p50, p95 = percentiles(samples)
        p50s.append(p50)
        p95s.append(p95)
    return {"predict_p50_us": median(p50s), "predict_p95_us": median(p95s)}


def batch_latency(model: memlm.Model, algorithm: str, contexts: np.ndarray, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_batch(contexts, top_k=1, algorithm=algorithm)
        times.append(time.perf_counter() - start)
    return {"batch_us_per_instance": median(times) / len(contexts) * 1e6}


def generate_latency(model: memlm.Model, algorithm: str, prompts: list[str], tokens: int, repeats: int) -> dict:
    """`Model.generate` itself (tokenise, predict, decode), greedy, `tokens` new tokens after each prompt:
    per call its time per new token (p50, p95 over the prompts), and tokens/s over all calls."""
    p50s, p95s, rates = [], [], []
    for _ in range(repeats):
        per_token_ns, total_ns = [], 0
        for prompt in prompts:
            start = time.perf_counter_ns()
            model.generate(prompt, max_new_tokens=tokens, algorithm=algorithm)
            took = time.perf_counter_ns() - start
            per_token_ns.append(took / tokens)
            total_ns += took
        p50, p95 = percentiles(per_token_ns)
        p50s.append(p50)
        p95s.append(p95)
        rates.append(len(prompts) * tokens / (total_ns / 1e9))
    return {"generate_p50_us": median(p50s), "generate_p95_us": median(p95s), "generate_tokens_per_s": median(rates)}


def generating(model: memlm.Model, prompts: list[str], tokens: int, algorithm: str):
    """Work for the energy tracker: greedy generation of `tokens` new tokens after every prompt."""
    return lambda: [model.generate(p, max_new_tokens=tokens, algorithm=algorithm) for p in prompts]


def energies(width: int, args: argparse.Namespace, work: Path, model_paths: dict, tests: dict) -> dict:
    """Joules per token: training (both), classifying the test instances (both), generating (memlm)."""
    timbl = shutil.which("timbl")
    train, _ = instance_files(work, width, args.train_tokens, args.test_instances)
    out: dict = {}

    def run(cmd):
        return lambda: subprocess.run([str(c) for c in cmd], capture_output=True, cwd=work, check=False)

    n_train = sum(1 for _ in train.open())
    e = track(run(memlm_cmd("train", "--instances", train, "-o", work / "energy.memlm")), args.country, 0)
    out["memlm_train"] = {**e.as_dict(), "joules_per_training_token": e.per(n_train * e.runs)}
    e = track(run([timbl, "-f", train, "-a1", "+D", "-I", work / "energy.ibase"]), args.country, 0)
    out["timbl_train"] = {**e.as_dict(), "joules_per_training_token": e.per(n_train * e.runs)}
    for algorithm in ALGORITHMS:
        test = tests[algorithm]
        n = sum(1 for _ in test.open())
        cmd = memlm_cmd(
            "classify", model_paths[algorithm], "--instances", test, "--algorithm", algorithm, "-o", work / "energy.out"
        )
        e = track(run(cmd), args.country, args.energy_seconds)
        out[f"memlm_classify_{algorithm}"] = {**e.as_dict(), "joules_per_token": e.per(n * e.runs)}
        flag = vs_timbl.TIMBL_FLAGS[algorithm]
        e = track(run([timbl, "-f", train, "-t", test, flag, "+D", "-o", work / "energy_timbl.out"]), args.country, 0)
        out[f"timbl_classify_{algorithm}"] = {**e.as_dict(), "joules_per_token": e.per(n * e.runs)}
    return out


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for kind, title, unit in (
        ("latency", "classification time per token", "µs per token (log)"),
        ("energy", "energy per 1,000 tokens classified", "joules per 1,000 tokens (log)"),
    ):
        fig, ax = plt.subplots(figsize=(9, 5))
        labels, memlm_vals, timbl_vals = [], [], []
        for row in rows:
            for a in ALGORITHMS:
                labels.append(f"{a}\nW={row['width']}")
                if kind == "latency":
                    memlm_vals.append(row["latency"][a]["batch_us_per_instance"])
                    timbl_vals.append(row["vs_timbl"][a]["timbl"]["classify_us_per_instance"])
                else:
                    memlm_vals.append(row["energy"][f"memlm_classify_{a}"]["joules_per_token"] * 1e3)
                    timbl_vals.append(row["energy"][f"timbl_classify_{a}"]["joules_per_token"] * 1e3)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, timbl_vals, 0.4, label="timbl (this machine)")
        ax.bar(x + 0.2, memlm_vals, 0.4, label="memlm (this machine)")
        for i, (name, ms, kwh) in enumerate(PAPER):
            value = ms * 1e3 if kind == "latency" else kwh * 3.6e6 / PAPER_TEST_TOKENS * 1e3
            ax.axhline(value, ls="--", lw=0.8, color="grey")
            # Alternate sides so that close reference lines keep readable labels.
            label_x, side = (-0.45, "left") if i % 2 else (len(labels) - 0.55, "right")
            ax.text(
                label_x,
                value,
                f"OLIFANT paper: {name} (other hardware)",
                fontsize=7,
                va="bottom",
                ha=side,
                color="grey",
            )
        ax.set_xticks(x, labels)
        ax.set_yscale("log")
        ax.set_ylabel(unit)
        ax.set_title(f"memlm vs TiMBL: {title}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{kind}.png", dpi=120)
        plt.close(fig)


def markdown(rows: list[dict]) -> str:
    lines = [vs_timbl.markdown([r for row in rows for r in row["vs_timbl"].values()]), ""]
    lines.append("| W | algorithm | predict p50 µs | p95 µs | batch µs/inst | generate p50 µs | p95 µs | tokens/s |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for a, r in row["latency"].items():
            lines.append(
                f"| {row['width']} | {a} | {r['predict_p50_us']:.1f} | {r['predict_p95_us']:.1f} | "
                f"{r['batch_us_per_instance']:.2f} | {r['generate_p50_us']:.1f} | {r['generate_p95_us']:.1f} | "
                f"{r['generate_tokens_per_s']:,.0f} |"
            )
    lines += [
        "",
        "| W | work | J per token | kg CO2eq (total) | method | runs | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name, e in row["energy"].items():
            per = e.get("joules_per_token", e.get("joules_per_training_token"))
            lines.append(
                f"| {row['width']} | {name} | {per:.3g} | {e['kg_co2eq']:.3g} | {e['method']} | {e['runs']} | "
                f"{e['seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-tokens", type=int, default=1_000_000)
    parser.add_argument("--test-instances", type=int, default=10_000)
    parser.add_argument("--ib1-instances", type=int, default=300)
    parser.add_argument("--latency-contexts", type=int, default=2_000, help="single-predict calls (IB1: a tenth)")
    parser.add_argument("--generate-tokens", type=int, default=50)
    parser.add_argument("--width", type=int, action="append")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-repeats", type=int, default=0, help="training runs (default: --repeats)")
    parser.add_argument("--country", default="NLD", help="ISO code for CodeCarbon's carbon intensity")
    parser.add_argument("--energy-seconds", type=float, default=5.0, help="repeat memlm work at least this long")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.k = 1
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    test_blocks = text_blocks(TEST_FILE)
    rows = []
    for width in args.width or [4]:
        row: dict = {"width": width, "vs_timbl": {}, "latency": {}}
        for algorithm in ALGORITHMS:
            row["vs_timbl"][algorithm] = vs_timbl.compare(width, algorithm, args, work)
        train, test = instance_files(work, width, args.train_tokens, args.test_instances)
        ib1_test = work / f"{test.stem}_first{args.ib1_instances}.txt"
        first_lines(test, ib1_test, args.ib1_instances)
        tests = {"igtree": test, "tribl2": test, "ib1": ib1_test}
        model_paths = {a: work / f"memlm_{a}.memlm" for a in ALGORITHMS}
        # The same tokens trained from raw text (tokenizer inside), for the Python-side latencies.
        text_model = memlm.train_token_ids(
            *first_tokens(args.train_tokens, cache=work),
            memlm.TokenizerSpec.from_file(),
            width=width,
            algorithms="igtree,tribl2,ib1",
        )
        contexts, _ = text_model.windows(test_blocks)
        prompts = [b[:200] for b in test_blocks[:20]]
        for algorithm in ALGORITHMS:
            n = args.latency_contexts // (10 if algorithm == "ib1" else 1)
            sample = [list(c) for c in contexts[:n]]
            row["latency"][algorithm] = {
                **python_latency(text_model, algorithm, sample, args.repeats),
                **batch_latency(text_model, algorithm, contexts[: max(n, 1)], args.repeats),
                **generate_latency(
                    text_model,
                    algorithm,
                    prompts[: 20 if algorithm != "ib1" else 2],
                    args.generate_tokens,
                    args.repeats,
                ),
            }
        row["energy"] = energies(width, args, work, model_paths, tests)
        for algorithm in ALGORITHMS:
            used = prompts[: 20 if algorithm != "ib1" else 2]
            e = track(generating(text_model, used, args.generate_tokens, algorithm), args.country, args.energy_seconds)
            tokens = e.runs * len(used) * args.generate_tokens
            row["energy"][f"memlm_generate_{algorithm}"] = {**e.as_dict(), "joules_per_token": e.per(tokens)}
        rows.append(row)
        write_report(rows, args)  # after every width, so a long run leaves its finished part


def write_report(rows: list[dict], args: argparse.Namespace) -> None:
    report = {"machine": platform.platform(), "repeats": args.repeats, "country": args.country, "rows": rows}
    (args.out / "latency_energy.json").write_text(json.dumps(report, indent=2))
    table = markdown(rows)
    (args.out / "latency_energy.md").write_text(table)
    plot(rows, args.out)
    methods = sorted({e["method"] for row in rows for e in row["energy"].values()})
    print(table)
    print(f"CodeCarbon measured energy by: {', '.join(methods)}", flush=True)


if __name__ == "__main__":
    main()
