"""Load test of `memlm serve` on the loopback interface, against `Model.generate` in one process.

    python -m bench.serve_load --clients 32 --completions 2000 --max-tokens 32

One model is trained (W=16 on `--train-file`, by default Jane Austen's novels) and saved; `memlm serve` serves it
from a subprocess on 127.0.0.1 (a free port; nothing leaves the machine). The prompts are the first sentences of
Persuasion's paragraphs (held-out text), taken in turn. In the same run:

- `Model.generate` in this process (the model loaded from its file, memory-mapped as the server's): every
  prompt of the load, greedy, `--max-tokens` new tokens each, one after another; tokens/s = generated
  tokens / wall time of the second of two such passes (the first warms the tokenizer's and the model's
  caches up, as the server's first pass does);
- the HTTP ceiling: `--completions` requests of `GET /health` from the same clients, requests/s (what the
  server's HTTP stack answers when a route does no work);
- the load: `--clients` concurrent clients (each one keep-alive connection) send `--completions` requests
  of `POST /v1/completions` in all (`temperature` 0, `max_tokens` `--max-tokens`): latency per request
  (p50, p95, p99, max), requests/s and generated tokens/s (from the responses' usage). An error is a
  status other than 200, a body that is not a completion, a completion of fewer tokens or whose text is not
  `Model.generate`'s for the same prompt (greedy: they must be identical), or a request still unanswered
  after `--request-timeout` s; the load stops at `--timeout` s whatever is left (counted as errors). The
  load runs twice; the second is measured, the errors of both are counted.

Must hold: zero errors, and the served tokens/s at least `TARGET_RATIO` x `Model.generate`'s. Writes
bench/out/serve_load.json and .md. The clients, the server and its thread pool share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import memlm
from bench.common import TEST_FILE, data_path, memlm_cmd, text_blocks
from bench.generation import prompts_of

#: The served tokens/s must reach this share of `Model.generate`'s.
TARGET_RATIO = 0.5
#: Seconds the server may take to load the model and listen.
STARTUP_SECONDS = 60


@dataclass
class Load:
    """What the clients saw: latency of each answered request (s), the tokens generated, the errors."""

    latencies: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(method: str, path: str, body: dict | None = None) -> bytes:
    """An HTTP/1.1 request on a keep-alive connection."""
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    """Sends ``request`` and reads the response (status, body); the server sends a Content-Length."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(lines[0].split()[1]), body


async def run_load(port: int, requests: list[bytes], expected: list[str] | None, args) -> Load:
    """``requests`` sent by ``args.clients`` clients, each taking the next one when done with its last;
    with ``expected``, each answer must be a completion of ``args.max_tokens`` tokens and that text."""
    load, queue = Load(), list(enumerate(requests))
    queue.reverse()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                index, request = queue.pop()
                started = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(exchange(reader, writer, request), args.request_timeout)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                    load.errors.append(f"request {index}: {type(e).__name__} {e}")
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                load.latencies.append(time.perf_counter() - started)
                problem = check(status, body, None if expected is None else expected[index], args.max_tokens, load)
                if problem:
                    load.errors.append(f"request {index}: {problem}")
        finally:
            writer.close()

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(client()) for _ in range(args.clients)]
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    load.seconds = time.perf_counter() - started
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            load.errors.append(f"a client failed: {task.exception()!r}")
    unanswered = len(requests) - len(load.latencies) - len(load.errors)
    if unanswered > 0:
        load.errors.append(f"{unanswered} requests unanswered after {args.timeout} s")
    return load


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system, all threads) process ``pid`` and its descendants alive now have taken (Linux's
    /proc)."""
    ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(map(int, ticks)) / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(int(child)) for child in children)


def run_clients(load: Coroutine[None, None, Load]) -> Load:
    """Runs the clients' coroutine on uvloop's event loop (the serve extra's; about half the CPU time of asyncio's
    per request here: the clients share the cores with the server), or asyncio's without it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load)
    return uvloop.run(load)


def check(status: int, body: bytes, expected: str | None, max_tokens: int, load: Load) -> str | None:
    """What is wrong with an answer (None: nothing); counts the tokens of a good completion."""
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    if expected is None:
        return None
    try:
        answer = json.loads(body)
        text, tokens = answer["choices"][0]["text"], answer["usage"]["completion_tokens"]
    except (ValueError, KeyError, IndexError) as e:
        return f"not a completion ({e!r}): {body[:200]!r}"
    load.tokens += tokens
    if tokens != max_tokens:
        return f"{tokens} tokens, not {max_tokens}"
    if text != expected:
        return f"text {text[:60]!r} is not Model.generate's {expected[:60]!r}"
    return None


def start_server(model_path: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    """`memlm serve MODEL --workers N --no-access-log` on 127.0.0.1:port, once its /health answers (its log in
    ``log``)."""
    command = memlm_cmd("serve", model_path, "--port", port, "--workers", workers, "--no-access-log")
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"memlm serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            status, _ = asyncio.run(_one(port, request_bytes("GET", "/health")))
            if status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"memlm serve did not answer /health within {STARTUP_SECONDS} s")


async def _one(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await exchange(reader, writer, request)
    finally:
        writer.close()


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


def markdown(report: dict) -> str:
    load, baseline = report["load"], report["generate"]
    lines = [
        f"`memlm serve` on 127.0.0.1: W={report['width']}, trained on {report['train_file']} "
        f"({report['train_tokens']:,} tokens), {report['workers']} server processes without access log; "
        f"{report['clients']} clients, {report['completions']:,} completions "
        f"of {report['max_tokens']} tokens (greedy); {report['machine']}; load average before the run "
        f"{report['load_average']}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| errors | {load['error_count']} |",
        f"| latency p50 / p95 / p99 / max, ms | {load['p50_ms']:.1f} / {load['p95_ms']:.1f} / "
        f"{load['p99_ms']:.1f} / {load['max_ms']:.1f} |",
        f"| served completions/s | {load['requests_per_s']:,.0f} |",
        f"| served tokens/s | {load['tokens_per_s']:,.0f} |",
        f"| `Model.generate` in one process, tokens/s | {baseline['tokens_per_s']:,.0f} "
        f"({baseline['us_per_call']:.0f} µs per call) |",
        f"| served / `Model.generate` | **{report['ratio']:.2f}** |",
        f"| CPU time per completion: server (all processes) / clients, µs | {load['server_cpu_us_per_request']:.0f} / "
        f"{load['client_cpu_us_per_request']:.0f} |",
        f"| HTTP ceiling: `GET /health` requests/s (x {report['max_tokens']} tokens) | "
        f"{report['health_requests_per_s']:,.0f} ({report['health_requests_per_s'] * report['max_tokens']:,.0f}) |",
        "",
        "- zero errors: " + ("met" if not load["error_count"] else f"**not met** ({load['error_count']})"),
        f"- served tokens/s >= {TARGET_RATIO:g} x `Model.generate`'s: "
        + ("met" if report["ratio"] >= TARGET_RATIO else "**not met**"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-file", default="austen_train.txt.gz", help="a benchmark text's name, or a path")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--completions", type=int, default=2000, help="completion requests in all")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per completion")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="server processes (memlm serve --workers)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the load may take in all")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds one request may take")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    train_file = data_path(args.train_file)
    model_path = work / f"serve_w{args.width}_{train_file.name.split('.')[0]}.memlm"
    memlm.train(train_file, width=args.width, output=model_path)
    model = memlm.load(model_path)  # memory-mapped, as the server's
    prompts = prompts_of(text_blocks(TEST_FILE), args.completions)
    chosen = [prompts[i % len(prompts)] for i in range(args.completions)]

    expected = [model.generate(p, max_new_tokens=args.max_tokens) for p in chosen]  # the warm-up pass
    started = time.perf_counter()
    again = [model.generate(p, max_new_tokens=args.max_tokens) for p in chosen]
    generate_seconds = time.perf_counter() - started
    assert again == expected, "greedy generation is not repeatable"
    baseline = {
        "tokens_per_s": len(chosen) * args.max_tokens / generate_seconds,
        "us_per_call": generate_seconds / len(chosen) * 1e6,
    }
    print(f"Model.generate: {baseline['tokens_per_s']:,.0f} tokens/s", file=sys.stderr, flush=True)

    port = free_port()
    server = start_server(model_path, port, args.workers, work / "serve_load.log")
    try:
        health = run_clients(run_load(port, [request_bytes("GET", "/health")] * args.completions, None, args))
        bodies = [
            {"model": model_path.stem, "prompt": p, "max_tokens": args.max_tokens, "temperature": 0} for p in chosen
        ]
        requests = [request_bytes("POST", "/v1/completions", b) for b in bodies]
        warm = run_clients(run_load(port, requests, expected, args))  # the warm-up pass: checked, not timed
        server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
        load = run_clients(run_load(port, requests, expected, args))
        server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
        load.errors[:0] = [f"warm-up {error}" for error in warm.errors]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    latencies = load.latencies
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_average": load_average,
        "width": args.width,
        "train_file": train_file.name,
        "train_tokens": model.info()["training_instances"],
        "clients": args.clients,
        "workers": args.workers,
        "completions": args.completions,
        "max_tokens": args.max_tokens,
        "generate": baseline,
        "health_requests_per_s": len(health.latencies) / health.seconds,
        "load": {
            "errors": load.errors[:20],
            "error_count": len(load.errors),
            "seconds": load.seconds,
            "p50_ms": percentile_ms(latencies, 50),
            "p95_ms": percentile_ms(latencies, 95),
            "p99_ms": percentile_ms(latencies, 99),
            "max_ms": max(latencies, default=float("nan")) * 1e3,
            "requests_per_s": len(latencies) / load.seconds,
            "tokens_per_s": load.tokens / load.seconds,
            "server_cpu_us_per_request": server_cpu / args.completions * 1e6,
            "client_cpu_us_per_request": client_cpu / args.completions * 1e6,
        },
    }
    report["ratio"] = report["load"]["tokens_per_s"] / baseline["tokens_per_s"]
    report["errors_met"] = not load.errors
    report["ratio_met"] = report["ratio"] >= TARGET_RATIO
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / "serve_load.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
