"""A ``local:N`` cluster (``memlm train --cluster local:N``): a Dask scheduler on the loopback interface and N
worker processes under nannies (a killed worker is started again), run by a process of their own that the
build's process starts and stops (:func:`started`).

Why a process of their own, not a ``LocalCluster`` inside the build's process:

- It runs in a session of its own: a terminal's Ctrl-C, Ctrl-Z or hang-up reaches the build's process only,
  which stops the cluster; never a worker as it starts (a worker's KeyboardInterrupt was a page of tracebacks).
- Its worker processes are spawned from this module: a script that calls ``memlm.train(..., cluster="local:2")``
  without ``if __name__ == "__main__":`` is not run again in every worker (multiprocessing's spawn imports the
  spawning process's main module).
- Its scheduler drops a worker that has not sent a heartbeat for :data:`WORKER_TTL_SECONDS` (a frozen process,
  one swapping for ever), or for Dask's configured ``distributed.scheduler.worker-ttl`` when that is shorter,
  and its nanny starts it again (Dask's default, five minutes, would stall the build that long).

The protocol, as :data:`COMMAND` ``WORKERS THREADS`` (a command, not ``python -m``: memlm's package imports
this module before ``-m`` would run it): once every worker is up, the process writes the scheduler's address
on one line of standard output; it stops the cluster when its standard input ends (the build closed it, or the
build's process died). Its errors go to standard error, one line.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from memlm.errors import MemlmError, one_line

#: The longest a ``local:N`` worker may go without a heartbeat before the scheduler starts it again.
WORKER_TTL_SECONDS = 30
#: How long the build waits for a ``local:N`` cluster to start (its workers each import Dask and memlm).
START_SECONDS = 60
#: How long the build waits for a ``local:N`` cluster to stop by itself before it kills its processes.
STOP_SECONDS = 10
#: The Python code that runs a ``local:N`` cluster's process (:func:`main`).
COMMAND = "from memlm.local_cluster import main; main()"


@contextlib.contextmanager
def started(workers: int, core_threads: int) -> Iterator[Callable[[], str]]:
    """A ``local:N`` cluster of ``workers`` processes (each with ``core_threads`` threads for the core's work),
    started for the ``with`` block and stopped after it, its processes gone, whatever happens. What the block
    gets waits for the cluster to be up and returns its scheduler's address (the caller works meanwhile)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-c", COMMAND, str(workers), str(core_threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,  # no terminal signal reaches it: the build stops it
        )
        try:
            yield functools.partial(_address, process, errors)
        finally:
            _stop(process)


def _address(process: subprocess.Popen, errors) -> str:
    """The scheduler address the process writes once its workers are up (a :class:`MemlmError` with the last line
    of its errors when it ends first, or when it has not within :data:`START_SECONDS`)."""
    deadline = time.monotonic() + START_SECONDS
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
            raise MemlmError(f"the local Dask cluster did not start within {START_SECONDS} s")
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            raise MemlmError(f"the local Dask cluster did not start: {_why_ended(process, errors):.300}")
        line += chunk
    return line.decode().strip()


def _why_ended(process: subprocess.Popen, errors) -> str:
    """Why the cluster's process ended before it was up: the signal that killed it, else its last line."""
    status = process.wait()
    if status < 0:
        try:
            return f"its process was killed by {signal.Signals(-status).name}"
        except ValueError:  # a real-time signal without a name of its own
            return f"its process was killed by signal {-status}"
    errors.seek(0)
    said = [line.strip() for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
    return said[-1] if said else f"its process ended with status {status}"


def _stop(process: subprocess.Popen) -> None:
    """Closes the process's standard input (it stops its cluster), waits :data:`STOP_SECONDS` for it, then kills
    what is left of its session (a worker that does not stop, one that was frozen)."""
    with contextlib.suppress(OSError):
        process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its session's group: it and its workers
    process.wait()
    process.stdout.close()


def _worker_ttl() -> float:
    """The scheduler's worker-ttl: :data:`WORKER_TTL_SECONDS`, or the configured one when shorter."""
    import dask
    from dask.utils import parse_timedelta

    configured = dask.config.get("distributed.scheduler.worker-ttl", None)
    try:
        seconds = parse_timedelta(configured)
        if seconds is not None and not 0 <= seconds < float("inf"):
            raise ValueError
    except Exception:  # whatever parse_timedelta raises for what is no duration (ValueError, KeyError, ...)
        raise ValueError(
            f"Dask's distributed.scheduler.worker-ttl is no duration: {configured!r:.100} (DASK_DISTRIBUTED__"
            "SCHEDULER__WORKER_TTL or a Dask configuration file)"
        ) from None
    return min(WORKER_TTL_SECONDS, seconds or WORKER_TTL_SECONDS)


def _run(workers: int, core_threads: int) -> None:
    """Runs the cluster: its address to standard output, then until standard input ends."""
    import dask
    import distributed

    with (
        dask.config.set({"distributed.scheduler.worker-ttl": f"{_worker_ttl()}s"}),
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # Its HTTP server (there even without a dashboard) on a free port of the loopback interface only.
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,  # a task's error is raised in the build's process, not logged here
            env={"RAYON_NUM_THREADS": str(core_threads)},
        ) as cluster,
    ):
        sys.stdout.write(cluster.scheduler_address + "\n")
        sys.stdout.flush()
        while sys.stdin.buffer.read(4096):
            pass


def main() -> None:
    """The cluster's process: ``WORKERS THREADS`` from its command line (whole numbers from 1), one line on
    standard error and status 1 for what goes wrong, 2 for other arguments."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ended by its standard input, never by a stray Ctrl-C
    arguments = sys.argv[1:]
    if len(arguments) != 2 or not all(a.isascii() and a.isdigit() and int(a) >= 1 for a in arguments):
        print(f"usage: python -c {COMMAND!r} WORKERS THREADS (whole numbers from 1)", file=sys.stderr)
        sys.exit(2)
    try:
        _run(int(arguments[0]), int(arguments[1]))
    except Exception as e:  # noqa: BLE001 - the build's process shows it as one line
        print(one_line(e), file=sys.stderr)
        sys.exit(1)
