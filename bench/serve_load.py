"""Load test of `memlm serve` on the loopback interface, against `Model.generate` in one process.

    python -m bench.serve_load --clients 32 --completions 2000 --max-tokens 32

One model is trained (W=16 on `--train-file`, by default Jane Austen's novels) and saved; `memlm serve` serves it
from a subprocess on 127.0.0.1 (a free port; nothing leaves the machine). The prompts are the first sentences of
Persuasion's paragraphs (held-out text), taken in turn. In the same run:

- the HTTP ceiling: `--completions` requests of `GET /health` from the same clients, requests/s (what the
  server's HTTP stack answers when a route does no work);
- `--repeats` rounds, each of `Model.generate` in this process (the model loaded from its file, memory-mapped as the
  server's: every prompt of the load, greedy, `--max-tokens` new tokens each, one after another; tokens/s =
  generated tokens / wall time) and then the load: `--clients` concurrent clients (each one keep-alive connection)
  send `--completions` requests of `POST /v1/completions` in all (`temperature` 0, `max_tokens` `--max-tokens`):
  requests/s, generated tokens/s (from the responses' usage), the CPU time of the server's processes and of the
  clients, and their ratio to `Model.generate`'s tokens/s of the same round (the machine's speed drifts: a round's
  two measures are taken back to back). The headline is the median round's ratio (the lower of the middle two for an
  even number of rounds); latency per request (p50, p95, p99, max) is over every round. Before the rounds, one pass
  of each warms the caches up (the tokenizer's, the model's, the server's) and gives the texts every answer must
  have.

An error is a status other than 200, a body that is not a completion, a completion of other than `--max-tokens`
tokens or whose text is not `Model.generate`'s for the same prompt (greedy: they must be identical), or a request
still unanswered after `--request-timeout` s; a load stops at `--timeout` s whatever is left (counted as errors).
The clients are asyncio protocols on uvloop (no task or stream per request) and check the answers once a load is
over: they share the cores with the server, and should take as little of them as they can, as a load generator in C
would.

Must hold: zero errors, and the served tokens/s at least `TARGET_RATIO` x `Model.generate`'s (the median round).
Writes bench/out/serve_load.json and .md. The clients, the server and its thread pool share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
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


def parse_head(head: bytes) -> tuple[int, int]:
    """(the status, the Content-Length) of a response's head (its bytes up to the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), int(headers["content-length"])


class Client(asyncio.Protocol):
    """One client: a keep-alive connection that sends the next request of ``shared`` as soon as the last is
    answered, reading responses straight off the socket (an asyncio protocol: no task or stream per request, so
    that the clients, which share the cores with the server, take as little CPU time as they can). Each answer is
    kept, (index, status, body), to be checked once the load is over."""

    def __init__(self, shared: Shared):
        self.shared, self.buffer, self.index, self.started = shared, b"", -1, 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        if not self.shared.queue:
            self.transport.close()
            return
        self.index, request = self.shared.queue.pop()
        self.started = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        status, length = parse_head(self.buffer[: end + 4])
        if len(self.buffer) < end + 4 + length:
            return
        self.shared.latencies.append(time.perf_counter() - self.started)
        self.shared.answers.append((self.index, status, self.buffer[end + 4 : end + 4 + length]))
        self.buffer, self.index = self.buffer[end + 4 + length :], -1
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.index >= 0:
            self.shared.errors.append(f"request {self.index}: the connection was lost ({exc!r})")
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class Shared:
    """A load in progress: the requests still to send (popped from the end), and what came back."""

    queue: list[tuple[int, bytes]]
    latencies: list[float] = field(default_factory=list)
    answers: list[tuple[int, int, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def run_load(port: int, requests: list[bytes], expected: list[str] | None, args) -> Load:
    """``requests`` sent by ``args.clients`` clients, each taking the next one when done with its last; a request
    unanswered after ``args.request_timeout`` s ends its connection (an error; the client reconnects). Once all are
    answered (or ``args.timeout`` s passed), each answer is checked: with ``expected``, it must be a completion of
    ``args.max_tokens`` tokens and that text."""
    loop = asyncio.get_running_loop()
    shared = Shared(list(enumerate(requests))[::-1])

    async def client() -> None:
        while shared.queue:
            _, protocol = await loop.create_connection(lambda: Client(shared), "127.0.0.1", port)
            while not protocol.closed.done():
                await asyncio.wait([protocol.closed], timeout=1.0)
                if protocol.index >= 0 and time.perf_counter() - protocol.started > args.request_timeout:
                    shared.errors.append(f"request {protocol.index}: no answer after {args.request_timeout} s")
                    protocol.index = -1
                    protocol.transport.abort()

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(client()) for _ in range(args.clients)]
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    load = Load(latencies=shared.latencies, errors=shared.errors, seconds=time.perf_counter() - started)
    load.errors = list(shared.errors)  # a connection lost as the clients are cancelled adds nothing now
    unanswered = len(requests) - len(shared.answers) - len(load.errors)  # each error so far is one request lost
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            load.errors.append(f"a client failed: {task.exception()!r}")
    for index, status, body in shared.answers:
        problem = check(status, body, None if expected is None else expected[index], args.max_tokens, load)
        if problem:
            load.errors.append(f"request {index}: {problem}")
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
    """What is wrong with an answer (None: nothing); counts the tokens of a good completion (only)."""
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    if expected is None:
        return None
    try:
        answer = json.loads(body)
        text, tokens = answer["choices"][0]["text"], answer["usage"]["completion_tokens"]
    except (ValueError, KeyError, IndexError) as e:
        return f"not a completion ({e!r}): {body[:200]!r}"
    if tokens != max_tokens:
        return f"{tokens} tokens, not {max_tokens}"
    if text != expected:
        return f"text {text[:60]!r} is not Model.generate's {expected[:60]!r}"
    load.tokens += tokens
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
            if health_status(port) == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"memlm serve did not answer /health within {STARTUP_SECONDS} s")


def health_status(port: int) -> int:
    """The status of ``GET /health`` on 127.0.0.1:``port`` (OSError: nothing answers there yet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_bytes("GET", "/health"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            head += chunk
        return parse_head(head[: head.index(b"\r\n\r\n") + 4])[0]


def round_report(load: Load, generate_seconds: float, server_cpu: float, client_cpu: float, args) -> dict:
    """One round's figures: `Model.generate`'s pass (``generate_seconds``) and the load after it, and their ratio."""
    generate_tokens_per_s = args.completions * args.max_tokens / generate_seconds
    return {
        "generate_tokens_per_s": generate_tokens_per_s,
        "generate_us_per_call": generate_seconds / args.completions * 1e6,
        "seconds": load.seconds,
        "requests_per_s": len(load.latencies) / load.seconds,
        "tokens_per_s": load.tokens / load.seconds,
        "ratio": load.tokens / load.seconds / generate_tokens_per_s,
        "server_cpu_us_per_request": server_cpu / args.completions * 1e6,
        "client_cpu_us_per_request": client_cpu / args.completions * 1e6,
    }


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


def markdown(report: dict) -> str:
    load = report["load"]
    low, high = report["ratio_range"]
    lines = [
        f"`memlm serve` on 127.0.0.1: W={report['width']}, trained on {report['train_file']} "
        f"({report['train_tokens']:,} tokens), {report['workers']} server processes without access log; "
        f"{report['clients']} clients, {report['completions']:,} completions "
        f"of {report['max_tokens']} tokens (greedy) in each of {len(report['rounds'])} rounds; {report['machine']}; "
        f"load average before the run {report['load_average']}",
        "",
        "| round | `Model.generate` tokens/s (µs per call) | served completions/s | served tokens/s | ratio | "
        "CPU µs per completion: server / clients |",
        "|---|---|---|---|---|---|",
        *(
            f"| {number} | {r['generate_tokens_per_s']:,.0f} ({r['generate_us_per_call']:.0f}) | "
            f"{r['requests_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | {r['ratio']:.2f} | "
            f"{r['server_cpu_us_per_request']:.0f} / {r['client_cpu_us_per_request']:.0f} |"
            for number, r in enumerate(report["rounds"], 1)
        ),
        "",
        "| measure | value |",
        "|---|---|",
        f"| errors (`GET /health`, the warm-up and every round) | {load['error_count']} |",
        f"| latency p50 / p95 / p99 / max (all rounds), ms | {load['p50_ms']:.1f} / {load['p95_ms']:.1f} / "
        f"{load['p99_ms']:.1f} / {load['max_ms']:.1f} |",
        f"| served / `Model.generate`: median round (lowest, highest) | **{report['ratio']:.2f}** ({low:.2f}, "
        f"{high:.2f}) |",
        f"| HTTP ceiling: `GET /health` requests/s (x {report['max_tokens']} tokens) | "
        f"{report['health_requests_per_s']:,.0f} ({report['health_requests_per_s'] * report['max_tokens']:,.0f}) |",
        "",
        "- zero errors: " + ("met" if not load["error_count"] else f"**not met** ({load['error_count']})"),
        f"- served tokens/s >= {TARGET_RATIO:g} x `Model.generate`'s (the median round): "
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
    parser.add_argument("--repeats", type=int, default=5, help="rounds of Model.generate's pass and the load")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    if min(args.repeats, args.clients, args.completions) < 1:
        parser.error("--repeats, --clients and --completions must be at least 1")
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
    port = free_port()
    server = start_server(model_path, port, args.workers, work / "serve_load.log")
    try:
        health = run_clients(run_load(port, [request_bytes("GET", "/health")] * args.completions, None, args))
        bodies = [
            {"model": model_path.stem, "prompt": p, "max_tokens": args.max_tokens, "temperature": 0} for p in chosen
        ]
        requests = [request_bytes("POST", "/v1/completions", b) for b in bodies]
        warm = run_clients(run_load(port, requests, expected, args))  # the warm-up pass: checked, not timed
        errors = [f"GET /health {error}" for error in health.errors] + [f"warm-up {error}" for error in warm.errors]
        rounds, latencies = [], []
        for number in range(args.repeats):
            started = time.perf_counter()
            again = [model.generate(p, max_new_tokens=args.max_tokens) for p in chosen]
            generate_seconds = time.perf_counter() - started
            assert again == expected, "greedy generation is not repeatable"
            server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
            load = run_clients(run_load(port, requests, expected, args))
            server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
            rounds.append(round_report(load, generate_seconds, server_cpu, client_cpu, args))
            latencies += load.latencies
            errors += [f"round {number + 1} {error}" for error in load.errors]
            print(f"round {number + 1}: ratio {rounds[-1]['ratio']:.2f}", file=sys.stderr, flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    median = next(r for r in rounds if r["ratio"] == statistics.median_low(r["ratio"] for r in rounds))
    ratios = sorted(r["ratio"] for r in rounds)
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
        "health_requests_per_s": len(health.latencies) / health.seconds,
        "rounds": rounds,
        "load": {
            **median,
            "errors": errors[:20],
            "error_count": len(errors),
            "p50_ms": percentile_ms(latencies, 50),
            "p95_ms": percentile_ms(latencies, 95),
            "p99_ms": percentile_ms(latencies, 99),
            "max_ms": max(latencies, default=float("nan")) * 1e3,
        },
        "ratio": median["ratio"],
        "ratio_range": [ratios[0], ratios[-1]],
    }
    report["errors_met"] = not errors
    report["ratio_met"] = report["ratio"] >= TARGET_RATIO
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / "serve_load.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
