"""Running the application with uvicorn: in this process, or in ``workers`` processes.

One process answers as fast as one core runs its Python (the HTTP stack and a request's Python work cost more
than generating a short completion); ``workers`` processes answer up to that many times as many. Each worker
listens on a socket of its own, bound to the same port with SO_REUSEPORT (the kernel spreads the connections over
them), loads the models itself (memory-mapped, so their pages are shared) and builds its application from the
settings the parent puts in the environment variable :data:`SETTINGS` (uvicorn starts a worker by importing its
application's factory, :func:`from_environment`). Uvicorn's supervisor starts the workers, starts a new one for a
worker that dies, and stops them all on SIGINT or SIGTERM, which the parent then raises again, so that
``memlm serve`` ends as a stopped command ends, whether it has workers or not (SIGHUP replaces the workers
one by one, as uvicorn's supervisor does, where it stops a server of one process).

The models are loaded (and checked) and the port bound in the parent before anything listens: a bad model file or
a port in use is an error at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors.multiprocess import SIGNALS, Multiprocess, Process

from memlm.errors import MemlmError
from memlm.serving.app import create_app
from memlm.serving.registry import load_models

#: The environment variable through which a worker process gets its settings (JSON: model paths, API key, caps).
SETTINGS = "MEMLM_SERVE_SETTINGS"


@dataclass(frozen=True)
class Served:
    """What a server serves: its settings (model paths, API key, token cap; JSON-able, for the workers) and the
    application built from them in this process (its models loaded and checked)."""

    settings: dict
    app: ASGIApp

    @classmethod
    def load(cls, paths: Sequence[str | Path], api_key: str | None, max_tokens_cap: int) -> Served:
        settings = {"paths": [os.fspath(p) for p in paths], "api_key": api_key, "max_tokens_cap": max_tokens_cap}
        return cls(settings, _application(settings))


def run(served: Served, host: str, port: int, workers: int = 1, access_log: bool = True) -> None:
    """Serves ``served`` on ``host:port`` with ``workers`` processes until SIGINT or SIGTERM, raised again once the
    requests in flight are answered; ``access_log``: one log line per request."""
    options = dict(host=host, port=port, log_level="info", access_log=access_log)
    sockets = _listening_sockets(host, port, workers)
    names = ", ".join(Path(p).stem for p in served.settings["paths"])
    print(f"memlm: serving {names} on http://{host}:{sockets[0].getsockname()[1]}/", file=sys.stderr, flush=True)
    if workers == 1:
        # uvicorn.Server, not uvicorn.run (which swallows it): the signal is raised again once the server stops.
        uvicorn.Server(uvicorn.Config(served.app, **options)).run(sockets)
        return
    os.environ[SETTINGS] = json.dumps(served.settings)
    config = uvicorn.Config(f"{__name__}:from_environment", factory=True, workers=workers, **options)
    handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}  # the supervisor takes them over
    supervisor = _Supervisor(config, sockets=sockets)
    try:
        supervisor.run()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for sock in sockets:
            sock.close()
    if supervisor.stopped_by is not None:
        signal.raise_signal(supervisor.stopped_by)


def from_environment() -> ASGIApp:
    """A worker's application, from the settings its parent left in :data:`SETTINGS`."""
    return _application(json.loads(os.environ[SETTINGS]))


def _application(settings: dict) -> ASGIApp:
    models = load_models(settings["paths"])
    return create_app(models, api_key=settings["api_key"], max_tokens_cap=settings["max_tokens_cap"])


def _listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host:port`` (port 0: one the system picks); a port that something else listens
    on is a :class:`MemlmError`. Several are bound with SO_REUSEPORT, and the kernel spreads new connections evenly
    over them, where workers sharing one socket take them as each happens to wake (seen here: 29 of 32 connections
    in one of two workers). A first plain bind checks that the port is free, so that a second server is never let
    into the group of a first one."""
    try:
        first = _bound(host, port, reuse_port=False)
        if count == 1:
            return [first]
        port = first.getsockname()[1]
        first.close()
        sockets: list[socket.socket] = []
        try:
            for _ in range(count):
                sockets.append(_bound(host, port, reuse_port=True))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        return sockets
    except OSError as e:
        raise MemlmError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` that child processes inherit."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _Supervisor(Multiprocess):
    """Uvicorn's supervisor of worker processes: each worker first listens on a socket of its own (one of
    :func:`_listening_sockets`); a worker started later, in place of one that died, on all of them. It remembers
    the signal that stopped it (``stopped_by``)."""

    stopped_by: int | None = None

    def init_processes(self) -> None:
        for sock in self.sockets:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)

    def handle_int(self) -> None:
        self.stopped_by = signal.SIGINT
        super().handle_int()

    def handle_term(self) -> None:
        self.stopped_by = signal.SIGTERM
        super().handle_term()
