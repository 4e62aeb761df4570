"""Running ``memlm serve``: the listening sockets, and the worker processes that serve on them with uvicorn.

One process answers as fast as one core runs its Python (the HTTP stack and a request's Python work cost more
than generating a short completion); ``workers`` processes answer up to that many times as many. The rules:

- The parent loads (and checks) the models and binds every socket before any worker starts, so that a bad model
  file or a port in use is an error at once; it then lets the models go and only supervises.
- Each worker listens on a socket of its own, all bound to the one port with SO_REUSEPORT: the kernel spreads new
  connections evenly over them (workers sharing one socket take them as each happens to wake: 29 of 32
  connections in one of two workers, seen here). A plain bind first checks that the port is free (so that a
  second server does not join the first one's group), and the sockets listen at once (connections wait there
  for the workers).
- A worker is a spawned process (the parent has threads, so it is not forked) in a process group of its own (a
  Ctrl-C at the terminal reaches the parent alone), dies with the parent (Linux's parent-death signal), loads
  the models itself (memory-mapped: their pages are shared) and runs uvicorn on its socket, with
  :class:`memlm.serving.coalescing.HttpProtocol` (a short response in one write).
- A worker that cannot load the models (a file gone or damaged since the parent checked it) stops the server with
  an error; one that dies later is replaced, on the same socket.
- SIGINT, SIGTERM and SIGHUP (each unless it was ignored when memlm started: ``nohup`` ignores SIGHUP, a shell's
  background job SIGINT) stop the server: each worker gets SIGTERM and answers the requests in flight
  (uvicorn's graceful shutdown; killed after :data:`STOP_SECONDS` or at a second signal), then the parent raises
  the first signal again, so that ``memlm serve`` ends as every memlm command ends (130, 143, 129).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from memlm.errors import MemlmError
from memlm.serving.app import create_app
from memlm.serving.coalescing import HttpProtocol
from memlm.serving.registry import load_models

#: The signals that stop a server.
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds a worker has to answer its requests in flight once told to stop, before it is killed.
STOP_SECONDS = 30
#: Seconds between two looks at the workers.
POLL_SECONDS = 0.2
#: The exit status of a worker that could not load the models.
CANNOT_START = 3
#: Linux's prctl option that sends a process a signal when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Settings:
    """What a server serves: the model files (named by their stems), the API key, the token cap, the seconds a
    request's body may take."""

    paths: tuple[str, ...]
    api_key: str | None
    max_tokens_cap: int
    body_seconds: int

    @classmethod
    def of(cls, paths: Sequence[str | Path], api_key: str | None, max_tokens_cap: int, body_seconds: int) -> Settings:
        return cls(tuple(os.fspath(p) for p in paths), api_key, max_tokens_cap, body_seconds)

    def application(self) -> ASGIApp:
        """The application, its models loaded and checked (a :class:`MemlmError` or OSError otherwise)."""
        models = load_models(self.paths)
        return create_app(models, self.api_key, self.max_tokens_cap, body_seconds=self.body_seconds)


def run(settings: Settings, host: str, port: int, workers: int = 1, access_log: bool = True) -> None:
    """Serves ``settings`` on ``host:port`` with ``workers`` processes until SIGINT, SIGTERM or SIGHUP, raised
    again once the requests in flight are answered; ``access_log``: one log line per request."""
    settings.application()  # every model loaded and checked before anything listens, then let go
    sockets = _listening_sockets(host, port, workers)
    try:
        names = ", ".join(Path(p).stem for p in settings.paths)
        print(f"memlm: serving {names} on http://{host}:{sockets[0].getsockname()[1]}/", file=sys.stderr, flush=True)
        options = dict(host=host, log_level="info", access_log=access_log)
        stopped_by = _supervise(settings, sockets, options)
    finally:
        for sock in sockets:
            sock.close()
    signal.raise_signal(stopped_by)


def _supervise(settings: Settings, sockets: list[socket.socket], options: dict) -> int:
    """Runs a worker on each socket, replacing any that dies, until a :data:`STOPPING` signal, which it returns
    once the workers have stopped; a worker that cannot start is a :class:`MemlmError`."""
    spawn = multiprocessing.get_context("spawn")
    stopped_by: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, _frame: stopped_by.append(signum))
        for signum in STOPPING
        if signal.getsignal(signum) != signal.SIG_IGN  # ignored as memlm started (nohup, a background job): stays so
    }
    workers: list[multiprocessing.process.BaseProcess | None] = [None] * len(sockets)
    try:
        while not stopped_by:
            for index, sock in enumerate(sockets):
                worker = workers[index]
                if worker is not None and worker.is_alive():
                    continue
                if worker is not None:
                    if worker.exitcode == CANNOT_START:
                        raise MemlmError("a worker could not start (its error is above): the server stopped")
                    print(f"memlm: worker {worker.pid} ended ({worker.exitcode}): starting another", file=sys.stderr)
                workers[index] = spawn.Process(target=_work, args=(settings, sock, options, os.getpid()))
                workers[index].start()
            time.sleep(POLL_SECONDS)
    finally:
        _stop([w for w in workers if w is not None], stopped_by)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return stopped_by[0]


def _stop(workers: list[multiprocessing.process.BaseProcess], stopped_by: list[int]) -> None:
    """Tells each worker to stop (SIGTERM: uvicorn answers the requests in flight first), and kills those still
    there after :data:`STOP_SECONDS` or a second stopping signal (a second Ctrl-C)."""
    signals = len(stopped_by)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline and len(stopped_by) <= max(signals, 1):
        time.sleep(POLL_SECONDS)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
        worker.join()


def _work(settings: Settings, sock: socket.socket, options: dict, parent: int) -> None:
    """A worker: serves ``settings`` on ``sock`` until SIGTERM (or its parent's death)."""
    os.setpgid(0, 0)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        return
    try:
        app = settings.application()
    except (MemlmError, OSError) as e:
        print(f"memlm: error: worker {os.getpid()}: {e}", file=sys.stderr, flush=True)
        sys.exit(CANNOT_START)
    uvicorn.Server(uvicorn.Config(app, http=HttpProtocol, **options)).run([sock])


def _listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` (port 0: one the system picks) with SO_REUSEPORT; a port that
    something else listens on is a :class:`MemlmError`. A first plain bind checks that the port is free, and each
    socket listens at once, so that no second server joins the group (and connections wait for the workers)."""
    sockets: list[socket.socket] = []
    try:
        probe = _bound(host, port, reuse_port=False)
        port = probe.getsockname()[1]
        probe.close()
        for _ in range(count):
            sockets.append(_bound(host, port, reuse_port=True))
            sockets[-1].listen(2048)
    except OSError as e:
        for sock in sockets:
            sock.close()
        raise MemlmError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sockets


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
