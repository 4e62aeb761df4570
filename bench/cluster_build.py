"""Past one machine (issue 18): the build on a Dask cluster against the build in one process, and serving a model
in partitions by nearest token, simulated with processes on this machine.

    python -m bench.cluster_build [--tokens 10000000] [--width 16] [--workers 1 --workers 2] [--repeats 3]
                                  [--partitions 2 --partitions 4] [--test-tokens 100000]

Build: the raw text of the first `--tokens` training tokens (austen + kjv + Python/Linux docs, whole blocks:
their ids decoded, one block per paragraph, which tokenises back to the same ids, checked) is trained with
`memlm train CORPUS -o MODEL --width W`, without a cluster and with `--cluster local:N` for each `--workers`
N, each a fresh process, in turn, `--repeats` times; SOURCE_DATE_EPOCH is fixed, so every build must write
the same file (checked). Per run: wall time, and the peak resident memory of each process of the build (the
client, each Dask worker: VmHWM of /proc/PID/status, sampled every 20 ms); medians, and the ratio of each
cluster build's wall time to the single process's, measured in the same run (the overhead the issue caps at
15%; the single process uses the same cores: its core runs on all of them).

Serving: the model is served in P partitions (`--partitions`) of the nearest token's value (the first
feature in weight order), ranges balanced by the training tokens' counts: P server processes each load the
model (memory-mapped) and answer only the contexts whose nearest token is theirs, which a router (this
process) sends them in batches; the windows of the first `--test-tokens` tokens of Persuasion are answered
by IGTree (`predict_batch`, top-5) and scored (`score_windows`), and must equal one server's answers. Per
server: its contexts, and the bytes of the model it would hold in a deployment where each machine keeps only
its partition (`Model.partition_sizes`: its subtrees, and what every machine needs). memlm writes no
per-partition model files yet: here every server maps the whole file and reads only its partition's
subtrees (per-process page counts cannot show it here: this machine maps files in folios of up to 2 MB).
Contexts per second: all servers and the router on this machine's cores. Writes bench/out/cluster_build.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import memlm
from bench.common import SHARED_DATA, TEST_FILE, first_tokens, median, memlm_cmd, text_blocks
from bench.generation import current_build

#: The issue's cap on the cluster's overhead: wall time at most this times the single process's.
MAX_OVERHEAD = 1.15
#: When every build says it was made (SOURCE_DATE_EPOCH), so that the files compare byte for byte.
EPOCH = "1700000000"
#: How often the build's processes are sampled for their peak memory, in seconds.
SAMPLE_SECONDS = 0.02
#: Contexts per batch the router (and the single process) answers at once.
BATCH = 4096


def raw_corpus(n: int, work: Path) -> tuple[Path, int]:
    """A plain-text file of the whole blocks among the first `n` training tokens (one paragraph each), which
    tokenises back to their ids (checked once); its token count."""
    path, count_file = work / f"cluster_corpus_{n}.txt", work / f"cluster_corpus_{n}.tokens"
    if path.exists() and count_file.exists():
        return path, int(count_file.read_text())
    tokens, lengths = first_tokens(n + 200_000, cache=work)
    ends = np.cumsum(lengths).astype(np.int64)
    blocks = int(np.searchsorted(ends, n, side="right")) if ends[-1] > n else len(lengths) - 1
    spec = memlm.TokenizerSpec.from_file()
    texts = spec.tokenizer.decode_batch(
        [block.tolist() for block in np.split(tokens[: ends[blocks - 1]], ends[: blocks - 1])]
    )
    partial = path.with_suffix(".partial")
    partial.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    again, _, _, _ = memlm.tokenize(partial)
    count = int(ends[blocks - 1])
    if not np.array_equal(again, tokens[:count]):
        raise SystemExit(f"{partial}: the decoded text does not tokenise back to its ids")
    partial.replace(path)
    count_file.write_text(str(count))
    return path, count


def _peak_rss(pid: int) -> int | None:
    """A process's peak resident memory so far (VmHWM), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


#: The roles of a build's processes, in the order the report lists them.
ROLES = ("client", "scheduler", "worker")


def _role(pid: int, root: int) -> str:
    """What a process of a build is: the client (the `memlm` command), the scheduler (``local:N``'s process,
    `memlm.local_cluster`: the scheduler and the workers' nannies), a Dask worker, or a helper (the resource
    tracker, a short-lived command some library ran), which the report leaves out."""
    if pid == root:
        return "client"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "helper"
    if "memlm.local_cluster" in command:
        return "scheduler"
    return "worker" if "spawn_main" in command and "resource_tracker" not in command else "helper"


def _descendants(pid: int) -> list[int]:
    """The process's children, grandchildren, ... (from /proc, without a dependency)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def build(corpus: Path, model: Path, width: int, cluster: str | None, work: Path) -> dict:
    """One `memlm train` in a fresh process: wall seconds and each process's peak memory."""
    command = memlm_cmd("train", corpus, "-o", model, "--width", width)
    if cluster is not None:
        command += ["--cluster", cluster, "--temp-dir", work]
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    log = work / "cluster_build.log"
    peaks: dict[int, tuple[str, int]] = {}
    with log.open("w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stderr=stderr, env=env)
        while process.poll() is None:
            for pid in [process.pid, *_descendants(process.pid)]:
                peak = _peak_rss(pid)
                if peak is not None:
                    # Asked again each time: a child between fork and exec still shows its parent's command.
                    role = _role(pid, process.pid)
                    if role == "helper" and pid in peaks:  # gone meanwhile: it keeps the role it had
                        role = peaks[pid][0]
                    peaks[pid] = (role, max(peak, peaks.get(pid, ("", 0))[1]))
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"memlm train {'--cluster ' + cluster if cluster else ''} failed:\n{log.read_text()[-3000:]}")
    processes = sorted(
        ({"role": role, "peak_rss_bytes": peak} for role, peak in peaks.values() if role != "helper"),
        key=lambda p: (ROLES.index(p["role"]), -p["peak_rss_bytes"]),
    )
    return {"wall_s": seconds, "processes": processes, "bytes": model.stat().st_size}


# Serving in partitions.


def partition_ranges(counts: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """`parts` ranges of ids covering [0, len(counts)), each holding about an equal share of the counts."""
    cumulative = np.cumsum(counts)
    cuts = [int(np.searchsorted(cumulative, cumulative[-1] * k / parts)) + 1 for k in range(1, parts)]
    bounds = [0, *sorted(set(min(c, len(counts) - 1) for c in cuts)), len(counts)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if lo < hi]  # noqa: B905 - consecutive bounds


def _answers(model: memlm.Model, contexts: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    """What a server gives for a batch: IGTree's top-5 classes and votes, the matched depth, the log10 score."""
    classes, votes, depth, _ = model.predict_batch(contexts, top_k=5)
    log10_probs, _, _ = model.score_windows(contexts, targets, cache=False)
    return classes, votes, depth, log10_probs


def _serve(path: str, connection) -> None:
    """A server: loads the model (memory-mapped) and answers the batches of (contexts, targets) it is sent,
    until None."""
    model = memlm.load(path)
    while (batch := connection.recv()) is not None:
        connection.send(_answers(model, *batch))


class Servers:
    """Server processes (:func:`_serve`), and a router in front: each context goes to the server of its nearest
    token's range."""

    def __init__(self, path: Path, ranges: list[tuple[int, int]], column: int):
        self.ranges, self.column = ranges, column
        spawn = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for _ in ranges:
            ours, theirs = spawn.Pipe()
            process = spawn.Process(target=_serve, args=(str(path), theirs))
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def owners(self, contexts: np.ndarray) -> np.ndarray:
        return np.searchsorted([hi for _, hi in self.ranges], contexts[:, self.column], side="right")

    def route(self, contexts: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        """Sends each context to its server, all servers at once, and puts their answers back in order."""
        owner = self.owners(contexts)
        for p, pipe in enumerate(self.pipes):
            pipe.send((contexts[owner == p], targets[owner == p]))
        parts = [pipe.recv() for pipe in self.pipes]
        merged = []
        for k, first in enumerate(parts[0]):
            column = np.empty((len(contexts), *first.shape[1:]), first.dtype)
            for p, part in enumerate(parts):
                column[owner == p] = part[k]
            merged.append(column)
        return merged

    def close(self) -> None:
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            pipe.send(None)
            process.join()


def serve(path: Path, ranges: list[tuple[int, int]], contexts: np.ndarray, targets: np.ndarray) -> dict:
    """The contexts answered by servers of `ranges` of the nearest token, behind a router: the answers in order,
    contexts per second, and per server its contexts and the model's bytes under its range."""
    model = memlm.load(path)
    column = model.feature_columns[0]  # the nearest token's column, the first feature in weight order
    servers = Servers(path, ranges, column)
    try:
        servers.route(contexts[:1], targets[:1])  # each server's first query checks the checksums it needs
        answers = []
        start = time.perf_counter()
        for at in range(0, len(contexts), BATCH):
            answers.append(servers.route(contexts[at : at + BATCH], targets[at : at + BATCH]))
        seconds = time.perf_counter() - start
    finally:
        servers.close()
    owner = servers.owners(contexts)
    sizes = model.partition_sizes([hi for _, hi in ranges])
    return {
        "partitions": len(ranges),
        "answers": [np.concatenate(column) for column in zip(*answers, strict=True)],
        "contexts_per_s": len(contexts) / seconds,
        "shared_bytes": sizes["shared_bytes"],
        "servers": [
            {
                "values": list(r),
                "test_contexts": int((owner == p).sum()),
                "igtree_bytes": sizes["igtree_bytes"][p],
                "kneser_ney_bytes": sizes["kneser_ney_bytes"][p],
            }
            for p, r in enumerate(ranges)
        ],
    }


def serving(path: Path, partitions: list[int], test_tokens: int, training_tokens: np.ndarray) -> dict:
    """The model served by one process and in each number of `partitions` (ranges of the nearest token
    balanced by the training tokens' counts): answers compared, bytes per server."""
    model = memlm.load(path)
    contexts, targets = model.windows(text_blocks(SHARED_DATA / TEST_FILE))
    contexts, targets = contexts[:test_tokens], targets[:test_tokens]
    counts = np.bincount(training_tokens, minlength=model.n_ids)
    alone = serve(path, [(0, model.n_ids)], contexts, targets)
    rows = []
    for p in partitions:
        served = serve(path, partition_ranges(counts, p), contexts, targets)
        identical = all(np.array_equal(a, b) for a, b in zip(served.pop("answers"), alone["answers"], strict=True))
        rows.append({**served, "identical": identical})
    alone.pop("answers")
    return {"contexts": len(contexts), "model_bytes": model.info()["bytes"], "one_process": alone, "partitioned": rows}


def markdown(report: dict) -> str:
    mib = 2**20
    builds = report["builds"]
    lines = [
        f"# Building on a Dask cluster: {report['tokens']:,} tokens from raw text, W={report['width']}",
        "",
        f"{report['cpus']} CPUs; medians of {report['repeats']} runs in turn; load average before: "
        f"{report['load_average']:.2f}. Every build wrote the same file: {report['identical']}.",
        "",
        "| build | wall s | / single | peak memory per process (MiB) |",
        "|---|---|---|---|",
    ]
    for name, side in builds.items():
        ratio = report["ratios"].get(name)
        processes = ", ".join(f"{p['role']} {p['peak_rss_bytes'] / mib:.0f}" for p in side["processes"])
        lines.append(f"| {name} | {side['wall_s']:.2f} | {'' if ratio is None else f'{ratio:.2f}'} | {processes} |")
    lines += [
        "",
        f"Overhead at most {MAX_OVERHEAD - 1:.0%} over the single process: {report['overhead_ok']}.",
        "",
        f"Model: {report['model']['bytes'] / 1e6:.1f} MB ({report['model']['bytes_per_token']:.1f} bytes per token: "
        f"IGTree {report['model']['igtree_bytes'] / 1e6:.1f} MB, Kneser-Ney statistics "
        f"{report['model']['kneser_ney_bytes'] / 1e6:.1f} MB).",
    ]
    served = report["serving"]
    alone = served["one_process"]
    whole = served["model_bytes"] / mib
    lines += [
        "",
        f"## Served in partitions by nearest token: {served['contexts']:,} Persuasion contexts",
        "",
        "Each server has the model memory-mapped and answers the contexts a router sends it: those whose nearest "
        "token lies in its range. Answers: IGTree top-5 (classes, votes), matched depth, Kneser-Ney log10 "
        "probability. Held: the bytes of the model a server of that range needs (`Model.partition_sizes`: its "
        f"IGTree and Kneser-Ney subtrees, and the {alone['shared_bytes'] / mib:.1f} MiB every server needs).",
        "",
        "| servers | same answers | contexts/s | per server: nearest-token ids, test contexts, MiB held |",
        "|---|---|---|---|",
        f"| 1 | | {alone['contexts_per_s']:,.0f} | all, {served['contexts']:,}, {whole:.1f} |",
    ]
    for row in served["partitioned"]:
        each = "; ".join(
            f"{s['values'][0]}-{s['values'][1] - 1}, {s['test_contexts']:,}, "
            f"{(row['shared_bytes'] + s['igtree_bytes'] + s['kneser_ney_bytes']) / mib:.1f}"
            for s in row["servers"]
        )
        lines.append(f"| {row['partitions']} | {row['identical']} | {row['contexts_per_s']:,.0f} | {each} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=10_000_000, help="training tokens (whole blocks)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--workers", type=int, action="append", help="local workers (repeatable; default 1 and 2)")
    parser.add_argument("--repeats", type=int, default=3, help="builds of each kind, in turn")
    parser.add_argument("--partitions", type=int, action="append", help="servers (repeatable; default 2 and 4)")
    parser.add_argument("--test-tokens", type=int, default=100_000, help="Persuasion tokens to answer")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    corpus, n = raw_corpus(args.tokens, work)
    kinds: list[str | None] = [None, *(f"local:{w}" for w in args.workers or [1, 2])]
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {kind or "single process": [] for kind in kinds}
    files: set[bytes] = set()
    for repeat in range(args.repeats):
        for kind in kinds[:: 1 if repeat % 2 == 0 else -1]:
            model = work / f"cluster_build_{(kind or 'single').replace(':', '_')}.memlm"
            run = build(corpus, model, args.width, kind, work)
            runs[kind or "single process"].append(run)
            files.add(model.read_bytes())
            print(kind or "single process", f"{run['wall_s']:.2f} s", flush=True)
    builds = {
        name: {
            "wall_s": median([r["wall_s"] for r in rs]),
            # The client, the scheduler, then the workers by their peak (the i-th of each run: medians over the runs).
            "processes": [
                {
                    "role": p["role"],
                    "peak_rss_bytes": median(
                        [r["processes"][i]["peak_rss_bytes"] for r in rs if i < len(r["processes"])]
                    ),
                }
                for i, p in enumerate(max((r["processes"] for r in rs), key=len))
            ],
        }
        for name, rs in runs.items()
    }
    single_wall = builds["single process"]["wall_s"]
    ratios = {name: side["wall_s"] / single_wall for name, side in builds.items() if name != "single process"}
    model_path = work / "cluster_build_single.memlm"
    info = memlm.load(model_path).info()
    breakdown = info["size_breakdown"]
    igtree = sum(breakdown[k] for k in ("labels", "children", "distribution offsets", "distributions"))
    served = serving(model_path, args.partitions or [2, 4], args.test_tokens, first_tokens(n, cache=work)[0])
    report = {
        "tokens": n,
        "width": args.width,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_average": load,
        "build": current_build(),
        "identical": len(files) == 1,
        "builds": builds,
        "ratios": ratios,
        "overhead_ok": all(r <= MAX_OVERHEAD for r in ratios.values()),
        "model": {
            "bytes": info["bytes"],
            "bytes_per_token": info["bytes"] / n,
            "igtree_bytes": igtree,
            "kneser_ney_bytes": breakdown["kneser-ney"],
        },
        "serving": served,
        "runs": runs,
    }
    (args.out / "cluster_build.json").write_text(json.dumps(report, indent=2))
    (args.out / "cluster_build.md").write_text(markdown(report))
    print(markdown(report))
    if not report["identical"] or not all(row["identical"] for row in served["partitioned"]):
        sys.exit("the builds or the partitioned answers differ")


if __name__ == "__main__":
    main()
