"""Building on a Dask cluster (``memlm train --cluster``, ``memlm merge --cluster``, ``cluster=`` in Python): the
model file a build in one process writes, byte for byte, its work spread over the workers of a Dask cluster.
Needs the optional extra ``memlm[dask]`` (Dask's ``distributed``) on the client and on every worker.

A cluster is given as ``tcp://HOST:PORT``, the address of a running Dask scheduler (``dask scheduler``, or one
that ``dask-jobqueue``, ``dask-kubernetes`` or an SSH cluster started), or as ``local:N``: a scheduler and N
worker processes on this machine, started for the build and stopped after it (each worker's core threads set
to the CPUs divided by N), in a process and session of their own (:mod:`memlm.local_cluster`).

The steps, each a set of Dask tasks that the client waits for before it submits the next:

1. Tokenise: one task per piece of the corpus (a file, or a part of a large plain-text file cut at the start
   of a blank line, so that its blocks are the file's: :func:`memlm.corpus.pieces`; about
   :data:`TASKS_PER_THREAD` pieces per worker thread) writes the piece's token ids as a shard into the work
   folder and returns its class counts.
2. Weigh: the class counts of the shards, reduced in corpus order, are the corpus's (counts add, first
   occurrences shift by the tokens before their shard: the tie-break ranks follow); one task per feature and
   per range of values computes that feature's weight terms over its range from all shards. The ranges are
   cut from the summed class histogram (every feature's values are the same ids): one per feature unless
   there are more worker threads than features, or the memory budget's partition is smaller than the text
   (the core's rules: ``memlm_core::cluster::TaskSizes``).
3. Partition: the terms, added up in value order, are the feature weights, bit for bit those of one process
   (:class:`memlm._core.Reduction`); the tries' partitions are planned from the exact histogram of the first
   feature in weight order (the nearest token, on text), as the ``memory`` build plans them; one task per
   partition builds it from all shards and spills it to the work folder (written atomically: a task run
   twice leaves one whole file).
4. Assemble, on the client: it reads the shards (the whole text, 2 bytes per token, as the build in one
   process holds it), puts the spilled partitions together level by level, computes the Kneser-Ney
   statistics and the provenance index, and writes the model: its memory is the single build's without the
   trie's working memory (its peak is the Kneser-Ney phase: ~80 bytes per token, :mod:`memlm.building`).

Files pass through a work folder, a new folder inside ``temp_dir`` that the client and every worker see at
the same path: shared storage (NFS, Lustre, a cluster's scratch) for workers on other machines; for
``local:N`` any local folder (the system's temporary folder by default). Shards and spilled partitions go
there; only small results (class counts, weight terms) pass through Dask. The corpus must be readable by the
workers at the same absolute paths. The folder is removed at the end, whatever happens, after the client is
closed (a client killed outright leaves it behind). Checked before any task is sent: the arguments, every
input file (missing: :class:`FileNotFoundError`; not a regular file: :class:`CorpusError`), the scheduler
(one :class:`MemlmError` line when it cannot be reached or has no workers), and that every worker has this
memlm and can read and write the work folder.

A worker that dies mid-build (killed, out of memory, its machine gone) is Dask's to handle: the scheduler
runs its tasks again on the others (tasks are deterministic and write atomically, so the model is the
same); a task whose workers died three times (Dask's ``allowed-failures``) is an error. When every worker has
left, the client waits :data:`NO_WORKERS_SECONDS` for one to come (a ``local:N`` cluster restarts its killed
workers) and then fails with one line; a worker that dies during the start-up check is left out of it (the
build fails when none is left). A frozen worker (alive, silent) holds its tasks until the scheduler drops it
after its ``worker-ttl`` (``local:N``: :data:`memlm.local_cluster.WORKER_TTL_SECONDS`). A lost scheduler is one
line, and Dask's log shows only critical records while the build runs. Dask's other waits have no deadline:
the client runs each in a thread of its own, bounded by :data:`ANSWER_SECONDS` (calls that do no build work)
or by the same no-worker rule (collecting results). A task's own error (a file a worker cannot read, invalid
UTF-8) is raised on the client as it was raised there. A corpus file must stay unchanged during the build:
the client and each task compare its :class:`Identity` (across machines, only its size and modification time
in whole seconds).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import importlib.util
import logging
import math
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memlm import __version__, local_cluster
from memlm._core import (
    FORMAT_VERSION,
    KneserNeyStatistics,
    Reduction,
    ShardText,
    TrainOptions,
    piece_bytes,
    read_shards,
    task_sizes,
    weighing_tasks,
    write_shard,
)
from memlm._core import class_counts as _class_counts
from memlm._core import gain_terms as _gain_terms
from memlm._core import spill_partition as _spill_partition
from memlm.building import build_model, encoded, partition_memory
from memlm.corpus import Piece, check_reading, no_text, pieces, source_name
from memlm.errors import CorpusError, MemlmError, one_line
from memlm.model import Model
from memlm.provenance import Origins, OriginsRecorder, concatenated
from memlm.tokenization import TokenizerSpec

#: The most worker processes ``local:N`` starts per CPU of this machine (:func:`max_local_workers`): more would
#: only share the CPUs, each holding the text.
LOCAL_WORKERS_PER_CPU = 4


def max_local_workers() -> int:
    """The most workers ``local:N`` starts (each a process): :data:`LOCAL_WORKERS_PER_CPU` per CPU."""
    return LOCAL_WORKERS_PER_CPU * (os.cpu_count() or 1)


#: How long the client waits for a scheduler's handshake, for a scheduler to have a worker, and for each answer of
#: a scheduler while it waits for the build (Dask's client waits as long to reconnect to a lost one).
CONNECT_SECONDS = 10
#: Seconds the handshake with the scheduler may take in all (Dask's can hang against something that is no scheduler).
HANDSHAKE_SECONDS = 30
#: How long a build waits for a worker when every worker has left the cluster (killed, their machines gone) before
#: it fails: a cluster that restarts its workers (``local:N``'s nannies, a job queue) has them back sooner. Also how
#: long it waits for a scheduler that does not answer (frozen, its machine gone without closing the connection).
NO_WORKERS_SECONDS = 60
#: How often the client, while it waits for tasks or for a call, asks the scheduler how many workers it has (when
#: nothing finished meanwhile): the waits' limits are checked as often, so each is met within about
#: ``POLL_SECONDS + CONNECT_SECONDS``.
POLL_SECONDS = 1
#: How long the client waits for the answer to a call that does no build work: the start-up check run on every
#: worker (a worker whose work folder is on a hung mount never answers it), copying the build's options to every
#: worker (about: see :data:`POLL_SECONDS`). Longer than a frozen ``local:N`` worker can hold it up: two of its
#: worker-ttl, then its restart.
ANSWER_SECONDS = 4 * local_cluster.WORKER_TTL_SECONDS
#: How long the client waits for the workers of a cluster it did not start to drop their text at the end (best
#: effort: the model is written by then).
FORGET_SECONDS = 10
#: Tasks per worker thread for tokenising and for each trie's partitions: enough to even out their sizes.
TASKS_PER_THREAD = 4
#: The phase in which the client waits for its Kneser-Ney statistics.
KNESER_NEY_PHASE = "computing Kneser-Ney statistics (beside the cluster)"
#: The tokenizer section of the shards in the work folder: none (the client has the tokenizer; compressing it
#: for every shard would cost a task a fifth of a second).
SCRATCH_TOKENIZER = b""

#: What a wait with a timeout raises (asyncio's is not the builtin before Python 3.11).
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)

_ADDRESS = re.compile(r"tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):(?P<port>[0-9]{1,5})")
_LOCAL = re.compile(r"local:(?P<workers>[+-]?[0-9]+)")


@dataclass(frozen=True)
class Cluster:
    """Where a build runs: a running scheduler at ``address`` (``tcp://HOST:PORT``, its ``host`` and ``port``),
    or ``local_workers`` worker processes started on this machine (``local:N``)."""

    address: str | None = None
    host: str = ""
    port: int = 0
    local_workers: int | None = None

    def __str__(self) -> str:
        return self.address or f"local:{self.local_workers}"


def parse_cluster(value) -> Cluster:
    """A cluster as the ``cluster`` argument or ``--cluster`` gives it: ``tcp://HOST:PORT`` (HOST a name, an
    IPv4 address or a bracketed IPv6 one, PORT 1..65535) or ``local:N`` (N workers, 1..:func:`max_local_workers`);
    anything else is a :class:`MemlmError` that shows it."""
    forms = "give tcp://HOST:PORT (a running Dask scheduler) or local:N (N worker processes on this machine)"
    if not isinstance(value, str):
        raise MemlmError(f"cluster must be a str ({forms}), got {value!r}")
    if local := _LOCAL.fullmatch(value):
        workers = int(local["workers"])
        if not 1 <= workers <= max_local_workers():
            raise MemlmError(
                f"local:N needs from 1 to {max_local_workers()} workers ({LOCAL_WORKERS_PER_CPU} per CPU of this "
                f"machine), got {value!r}"
            )
        return Cluster(local_workers=workers)
    address = _ADDRESS.fullmatch(value)
    if address is None:
        raise MemlmError(f"not a cluster address: {value!r}: {forms}")
    if not 1 <= int(address["port"]) <= 65535:
        raise MemlmError(f"{value!r}: a port is a number from 1 to 65535")
    return Cluster(address=value, host=address["host"].strip("[]"), port=int(address["port"]))


class Identity(NamedTuple):
    """What tells a file from the same file changed, on one machine: its size, modification time (ns), inode
    number and inode change time (ns: a write changes it, even one whose modification time was set back after
    it; so do a chmod, chown, rename or new hard link, which the build counts as changes too). The client takes
    it when it plans the pieces and again once they are tokenised; each task takes its own before and after it
    reads its piece (a file changed meanwhile is an error, not a model of two texts). Between machines only
    :meth:`shared` is compared: shared storage may give other inode numbers (CIFS, FUSE) and coarser or cached
    times (NFS) on each machine."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    def shared(self) -> tuple[int, int]:
        """What every machine must see alike of an unchanged file: its size and its modification time in
        whole seconds."""
        return self.size, self.mtime_ns // 1_000_000_000


#: Where the files are each process's own.
_PROCESS_FOLDERS = ("/dev/", "/proc/")


def _identity(piece: Piece) -> Identity:
    """The identity of a piece's file; only a regular file (whole or gzip) can be read by a cluster's workers,
    a pipe, FIFO, terminal or device cannot, nor a file under /dev or /proc (``/dev/stdin``, ``/dev/fd/N``,
    whatever they are), as standard input (-) cannot."""
    try:
        status = os.stat(piece.path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), piece.label) from None
    # /dev/stdin or /dev/fd/N that is a regular file is still the client's own (a worker would open its own).
    if not stat.S_ISREG(status.st_mode) or piece.path.startswith(_PROCESS_FOLDERS):
        raise CorpusError(
            f"{source_name(piece.label)}: standard input, a pipe or a device, not a regular file: a cluster's "
            "workers cannot read it: give files"
        )
    return Identity(status.st_size, status.st_mtime_ns, status.st_ino, status.st_ctime_ns)


def _identity_now(piece: Piece) -> Identity | None:
    """The identity of the piece's file now (None: it is gone, or no longer a regular file)."""
    try:
        return _identity(piece)
    except (OSError, CorpusError):
        return None


def _changed(piece: Piece) -> CorpusError:
    return CorpusError(
        f"{source_name(piece.label)}: the file changed during the cluster build (its size or times are not what "
        "they were when the build planned its pieces: it was written, or its attributes changed): build again "
        "once it stays the same"
    )


def _check_unchanged(piece: Piece, identity: Identity) -> None:
    """A :class:`CorpusError` when the piece's file is no longer the one planned on this machine."""
    if _identity_now(piece) != identity:
        raise _changed(piece)


class Shard(NamedTuple):
    """A shard a task wrote: its path in the work folder and the class counts of its tokens (instances per
    symbol, index of each symbol's first instance)."""

    path: str
    class_counts: tuple[np.ndarray, np.ndarray]


def train(
    cluster: Cluster,
    sources: list,
    spec: TokenizerSpec,
    text_field: str,
    errors: str,
    options: TrainOptions,
    memory: int | None,
    progress,
    output: Path | None,
    provenance: bool,
    metadata_of,
) -> Model:
    """:func:`memlm.train` on ``cluster``, its arguments checked (``metadata_of(tokens, lengths)``: the model's
    metadata)."""
    check_reading(text_field, errors)
    whole = pieces(sources, piece_bytes=math.inf)  # every input exists (and none is stdin) before connecting
    identities = {piece.path: _identity(piece) for piece in whole}  # each a regular file
    total_bytes = sum(identity.size for identity in identities.values())
    with _session(cluster, options.temp_dir, progress) as session:
        size = piece_bytes(total_bytes, session.threads, TASKS_PER_THREAD)
        # Cut from the files found above (a folder's files are not looked for again).
        parts = [(piece, identities[piece.path]) for piece in pieces(whole, size)]
        shards = session.tokenise(parts, spec, text_field, errors, provenance)
        for piece in whole:  # a file changed after its tasks ran would make the model another file's
            _check_unchanged(piece, identities[piece.path])
        if not shards:
            raise no_text(sources)
        tokens, lengths, origins = _read_text([s.path for s in shards], provenance)
        metadata = metadata_of(tokens, lengths)
        return session.build(shards, spec, options, memory, tokens, lengths, metadata, origins, output)


def train_tokens(
    cluster: Cluster,
    tokens: np.ndarray,
    lengths: np.ndarray,
    spec: TokenizerSpec,
    options: TrainOptions,
    memory: int | None,
    progress,
    output: Path | None,
    metadata: str,
    origins: bytes | None,
) -> Model:
    """:func:`memlm.train_token_ids` on ``cluster`` (what :func:`memlm.merge` runs, its inputs read on the client:
    they need not be on shared storage), its arguments checked: the text goes to the workers as one shard."""
    with _session(cluster, options.temp_dir, progress) as session:
        path = session.path("merged.shard")
        write_shard(path, tokens, lengths, spec.vocab_size, SCRATCH_TOKENIZER, "{}", None, scratch=True)
        shard = Shard(path, _class_counts(tokens, spec.vocab_size))
        return session.build([shard], spec, options, memory, tokens, lengths, metadata, origins, output)


def _read_text(paths: list[str], provenance: bool) -> tuple[np.ndarray, np.ndarray, bytes | None]:
    """The shards' text one after the other (read as the workers read it: :func:`memlm._core.read_shards`): ids,
    block lengths, and the blocks' origins (with provenance)."""
    tokens, lengths, parts = read_shards(paths, provenance)
    if not provenance:
        return tokens, lengths, None
    origins = []
    for path, part in zip(paths, parts, strict=True):
        if part is None:
            raise MemlmError(f"{path} (a shard of this build) holds no provenance origins")
        origins.append(Origins.from_bytes(part, f"{path} (a shard)"))
    return tokens, lengths, concatenated(origins)


@contextlib.contextmanager
def _session(cluster: Cluster, temp_dir: Path | None, progress) -> Iterator[_Session]:
    """A client of the cluster (a local one started for the build) and a work folder every worker sees; both
    gone afterwards."""
    if importlib.util.find_spec("distributed") is None:
        raise MemlmError('a cluster build needs Dask: pip install "memlm[dask]"')
    with contextlib.ExitStack() as stack:
        # Absolute: a relative folder would be taken in each worker's own current folder. Made before the client,
        # so removed after it is closed (a local cluster's workers stopped, a remote scheduler told to forget the
        # build's tasks), not while tasks still write into it.
        work = Path(
            tempfile.mkdtemp(prefix="memlm-cluster-", dir=None if temp_dir is None else Path(temp_dir).absolute())
        )
        stack.callback(_remove, work)
        local = None
        if cluster.local_workers is not None:  # starting while this process imports Dask
            core_threads = max(1, (os.cpu_count() or 1) // cluster.local_workers)
            local = stack.enter_context(local_cluster.started(cluster.local_workers, core_threads))
        import distributed

        stack.enter_context(_quiet_dask_logs())
        client = stack.enter_context(_client(distributed, cluster if local is None else parse_cluster(local())))
        session = _Session(client, cluster, work, progress)
        session.check_workers()
        stack.callback(session.forget)
        yield session


#: Builds running in this process (in threads) whose Dask logs are quiet, and the levels to give back after the
#: last (:func:`_quiet_dask_logs`); changed under :data:`_QUIET_LOCK`.
_QUIET: dict = {"builds": 0, "levels": {}}
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Dask's loggers (``distributed`` and those under it) show only critical records while a build of this
    process runs: what goes wrong reaches the build as an error of its own, one line (a lost scheduler was
    Dask's ERROR line, then the build's). Their levels are given back when the last build ends."""
    with _QUIET_LOCK:
        if _QUIET["builds"] == 0:
            loggers = [logging.getLogger("distributed")] + [
                logger
                for name, logger in list(logging.root.manager.loggerDict.items())
                if name.startswith("distributed.") and isinstance(logger, logging.Logger) and logger.level
            ]
            _QUIET["levels"] = {logger: logger.level for logger in loggers}
            for logger in loggers:
                logger.setLevel(logging.CRITICAL)
        _QUIET["builds"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["builds"] -= 1
            if _QUIET["builds"] == 0:
                for logger, level in _QUIET.pop("levels").items():
                    logger.setLevel(level)


def _remove(work: Path) -> None:
    """Removes the work folder (again, a moment later, should a remote worker's task that was still running have
    written into it meanwhile)."""
    for attempt in range(3):
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists():
            return
        time.sleep(0.5 * (attempt + 1))


@contextlib.contextmanager
def _client(distributed, cluster: Cluster):
    """A connected ``distributed.Client`` of the scheduler at ``cluster``, which has a worker."""
    with _connected(distributed, cluster) as client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except (TimeoutError, OSError):
            raise MemlmError(f"the Dask scheduler at {cluster} has no workers") from None
        yield client


def _connected(distributed, cluster: Cluster):
    """A client of the scheduler at ``cluster``, or a :class:`MemlmError` within :data:`HANDSHAKE_SECONDS`. A plain
    connection first: a refused or unresolvable address fails at once (Dask would retry it until its timeout).
    Then the question Dask's peers ask each other, who they are (:func:`_identify`): something that answers but is
    no Dask scheduler (a scheduler's HTTP port, a proxy, a worker) is refused before a ``Client`` meets it (one
    whose handshake fails on a stranger's bytes cannot be closed: it tries, for 20 s, as the process ends). Then
    the ``Client``'s handshake, in a thread of its own: both within the one deadline."""
    unreachable = f"cannot reach the Dask scheduler at {cluster}"
    try:
        socket.create_connection((cluster.host, cluster.port), CONNECT_SECONDS).close()
    except OSError as e:
        raise MemlmError(f"{unreachable} ({e.strerror or e})") from None
    deadline = time.monotonic() + HANDSHAKE_SECONDS
    with ThreadPoolExecutor(1, thread_name_prefix="memlm-dask-identify") as pool:  # a loop of its own
        identified = pool.submit(asyncio.run, _identify(cluster.address, HANDSHAKE_SECONDS))
        try:
            kind = identified.result()
        except Exception as e:  # whatever a stranger's bytes make Dask raise (seen: "Unable to allocate 3.07 EiB")
            reason = f"no Dask answer within {HANDSHAKE_SECONDS} s" if isinstance(e, _TIMEOUTS) else one_line(e)
            raise MemlmError(f"{unreachable}: is it a Dask scheduler? ({reason})") from None
    if kind is None:
        raise MemlmError(f"{unreachable}: is it a Dask scheduler? (its answer is no Dask identity)")
    if kind != "Scheduler":
        raise MemlmError(f"{unreachable}: it is a Dask {kind:.50}, not a scheduler")
    outcome: dict = {}

    def connect() -> None:
        try:
            outcome["client"] = distributed.Client(cluster.address, timeout=CONNECT_SECONDS, set_as_default=False)
        except Exception as e:  # noqa: BLE001 - shown in the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=connect, name="memlm-dask-connect", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if "client" in outcome:
        return outcome["client"]
    error = outcome.get("error")
    reason = f"no answer within {HANDSHAKE_SECONDS} s" if error is None else one_line(error)
    raise MemlmError(f"{unreachable}: the scheduler did not take the client ({reason})")


async def _identify(address: str, seconds: float) -> str | None:
    """The kind of Dask peer at ``address`` (``"Scheduler"``, ``"Worker"``; None when its answer is no Dask
    identity), asked over a connection of its own that is closed after, whatever the answer; a
    :class:`TimeoutError` after ``seconds``."""
    from distributed.comm import connect

    async def ask():
        comm = await connect(address, timeout=CONNECT_SECONDS)
        try:
            await comm.write({"op": "identity", "reply": True})
            answer = await comm.read()
        finally:
            comm.abort()
        kind = answer.get("type") if isinstance(answer, dict) else None
        return kind if isinstance(kind, str) else None

    return await asyncio.wait_for(ask(), seconds)


def _worker_state(work: str, probe: str, content: bytes) -> tuple[str, int, str | None]:
    """What a worker has: its memlm's version and model format, and what keeps it from using the work folder
    (None: it reads there the ``probe`` file the client wrote, with its ``content``, and writes a file of its
    own)."""
    try:
        with open(os.path.join(work, probe), "rb") as file:
            if file.read() != content:
                return __version__, FORMAT_VERSION, "another folder is at that path there: it is not shared"
        own = os.path.join(work, f"probe-{uuid.uuid4().hex}")
        with open(own, "wb") as file:
            file.write(content)
        os.remove(own)
    except OSError as e:
        return __version__, FORMAT_VERSION, one_line(e)
    return __version__, FORMAT_VERSION, None


def _value(value):
    """A task that returns its argument (see :meth:`_Session._shared`)."""
    return value


def _tokenise(
    piece: Piece, planned: Identity, shard: str, spec: TokenizerSpec, text_field: str, errors: str, provenance: bool
):
    """A task: tokenises a piece of the corpus, whose file must be as it was planned (the ``planned`` identity,
    taken on the client: :meth:`Identity.shared` compared) and stay as it is on this worker while it is read,
    and writes it as a shard (None for a piece without text)."""
    # This machine's identity (not found here: FileNotFoundError, as reading it would raise); the client's
    # inode and nanoseconds may not be this machine's.
    before = _identity(piece)
    if before.shared() != planned.shared():
        raise _changed(piece)
    recorder = OriginsRecorder() if provenance else None
    tokens, lengths = encoded([piece], spec, text_field, errors, origins=recorder)
    _check_unchanged(piece, before)
    if tokens.size == 0:
        return None
    origins = None if recorder is None else recorder.to_bytes()
    write_shard(shard, tokens, lengths, spec.vocab_size, SCRATCH_TOKENIZER, "{}", origins, scratch=True)
    return Shard(shard, _class_counts(tokens, spec.vocab_size))


#: The most builds whose text a worker keeps at once (builds sharing a cluster each keep their own; a third
#: evicts the one least recently used, whose next task reads it again).
TEXTS_KEPT = 2
#: The text of the shards a worker's tasks read, by build (its :attr:`_Session.run`): (paths, width, text),
#: most recently used last, kept for the build's next tasks.
_TEXT: dict[str, tuple[tuple[str, ...], int, ShardText]] = {}
#: Held while :data:`_TEXT` is looked at or changed: a worker may run several tasks at once, in threads.
_TEXT_LOCK = threading.Lock()


def _shard_text(build: str, shards: list[str], width: int) -> ShardText:
    """The windows of the shards' text at ``width`` for the ``build``, read once per worker and build."""
    key = (tuple(shards), width)
    with _TEXT_LOCK:  # another thread that needs the same text waits for this one to read it
        kept = _TEXT.pop(build, None)
        if kept is None or kept[:2] != key:
            while len(_TEXT) >= TEXTS_KEPT:
                del _TEXT[next(iter(_TEXT))]
            kept = (*key, ShardText(shards, width))
        _TEXT[build] = kept
        return kept[2]


def _forget_text(build: str) -> None:
    """Run on every worker when a build ends: the text it kept for that build goes."""
    with _TEXT_LOCK:
        _TEXT.pop(build, None)


def _weigh(build: str, shards: list[str], width: int, features: tuple[int, int], values: tuple[int, int]):
    """A task: the weight terms of some features over a range of values (:func:`memlm._core.gain_terms`)."""
    return _gain_terms(_shard_text(build, shards, width), features, values)


def _spill(
    build: str, shards: list[str], width: int, order: list[int], counts, trie: str, values: tuple[int, int], path: str
):
    """A task: builds a partition of a trie and spills it to ``path`` (:func:`memlm._core.spill_partition`)."""
    _spill_partition(_shard_text(build, shards, width), order, _owned(counts), trie, values, path)
    return path


def _owned(arrays):
    """Arrays that came through Dask (possibly read-only views of a message, not aligned), as aligned copies
    the core can read."""
    return tuple(np.array(a) for a in arrays)


class _Outage(NamedTuple):
    """Since when (``time.monotonic()``) a cluster has had no worker, or (``silent``) its scheduler no answer."""

    since: float
    silent: bool


class _Session:
    """A build's client, work folder and progress, and its steps as Dask tasks."""

    def __init__(self, client, cluster: Cluster, work: Path, progress):
        self.client = client
        self.cluster = cluster
        self.work = work
        self.progress = progress or (lambda *_: None)
        #: The build's part of its tasks' keys, and the steps submitted so far (each has its own keys).
        self.run = uuid.uuid4().hex[:12]
        self.steps = 0
        #: Threads the workers run tasks on, all told.
        try:
            self.threads = sum(client.nthreads(callback_timeout=CONNECT_SECONDS).values()) or 1
        except (OSError, *_TIMEOUTS):
            raise MemlmError(f"the Dask scheduler of {cluster} stopped answering as the build began") from None

    def path(self, name: str) -> str:
        return str(self.work / name)

    def forget(self) -> None:
        """The workers of a cluster the build did not start drop the text they kept for it (best effort: a worker
        gone has nothing to drop; one that does not answer is not waited for past :data:`FORGET_SECONDS`); a
        ``local:N`` cluster is stopped instead."""
        if self.cluster.local_workers is None:
            with contextlib.suppress(Exception):
                self._waited("ending the build", lambda: self.client.run(_forget_text, self.run), FORGET_SECONDS)

    def _waited(self, phase: str, call, seconds: float | None = None):
        """``call()``, a blocking call to the cluster (Dask's own have no deadline), run in a thread of its own:
        a :class:`MemlmError` when it has not returned within ``seconds`` (None: no limit), or when the cluster
        has had no worker, or its scheduler no answer, for :data:`NO_WORKERS_SECONDS` meanwhile (:meth:`_alone`)."""
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["value"] = call()
            except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
                outcome["error"] = e

        thread = threading.Thread(target=run, name="memlm-dask-wait", daemon=True)
        started = time.monotonic()
        thread.start()
        outage: _Outage | None = None
        while True:
            thread.join(POLL_SECONDS)
            if not thread.is_alive():
                break
            if seconds is not None and time.monotonic() - started >= seconds:
                raise MemlmError(
                    f"{phase}: the Dask cluster {self.cluster} did not answer within {seconds} s (a worker stuck "
                    "on a hung mount of the work folder or of the corpus?): the build stopped"
                )
            outage = self._alone(phase, outage)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def check_workers(self) -> None:
        """Every worker runs this memlm and can read and write the work folder (one that dies meanwhile is left
        out; none left: an error)."""
        cluster = self.cluster
        probe, content = "probe", uuid.uuid4().bytes
        (self.work / probe).write_bytes(content)
        phase = "checking the workers"
        with self._failures(phase):
            states = self._waited(
                phase,
                lambda: self.client.run(_worker_state, str(self.work), probe, content, on_error="return"),
                ANSWER_SECONDS,
            )
        (self.work / probe).unlink()
        left = []
        for worker, state in states.items():
            if isinstance(state, ImportError):
                raise MemlmError(f'a worker of {cluster} cannot import memlm ({state}): install "memlm[dask]" there')
            if isinstance(state, OSError):  # the connection to it closed: it left the cluster
                left.append(f"{worker}: {one_line(state)}")
                continue
            if isinstance(state, BaseException):
                raise MemlmError(f"worker {worker} of {cluster} failed the start-up check: {one_line(state)}")
            version, model_format, problem = state
            if (version, model_format) != (__version__, FORMAT_VERSION):
                raise MemlmError(
                    f"worker {worker} runs memlm {version} (model format {model_format}), this client "
                    f"memlm {__version__} (model format {FORMAT_VERSION}): install the same on every worker"
                )
            if problem is not None:
                raise MemlmError(
                    f"worker {worker} cannot read and write the work folder {self.work} ({problem}): give --temp-dir "
                    "(temp_dir) a folder on storage that the client and every worker share, at the same path"
                )
        if len(left) == len(states):
            raise MemlmError(
                f"every Dask worker of {cluster} left the cluster during the start-up check"
                + "".join(f" ({reason})" for reason in left[:1])
            )

    def _shared(self, value):
        """A future of ``value`` for many tasks, sent to the scheduler once: a task that returns it, which the
        scheduler runs again should every worker holding it die (data scattered to workers would be lost),
        copied to every worker (else the scheduler keeps the tasks that need it where it is)."""
        self.steps += 1
        future = self.client.submit(_value, value, key=f"memlm-{self.steps}-value-{self.run}")
        phase = "sending the build's options to the cluster"
        with self._failures(phase):
            for _ in self._finished(phase, [future]):
                pass
            self._waited(phase, lambda: self.client.replicate([future]), ANSWER_SECONDS)
        return future

    @contextlib.contextmanager
    def _failures(self, phase: str) -> Iterator[None]:
        """Dask's errors for a build's tasks and calls as one line each."""
        import distributed
        from distributed.comm import CommClosedError

        try:
            yield
        except CommClosedError:  # a call's connection to the scheduler closed under it
            raise self._lost(phase) from None
        except distributed.KilledWorker as e:
            raise MemlmError(
                f"{phase}: Dask gave up on a task whose workers died ({e}): out of memory? (give --memory)"
            ) from None
        except concurrent.futures.CancelledError as e:  # what the client raises when it loses the scheduler
            if "scheduler-connection-lost" in str(e):
                raise self._lost(phase) from None
            raise MemlmError(
                f"{phase}: the Dask scheduler {self.cluster} cancelled the build's tasks ({one_line(e)}): the build "
                "stopped"
            ) from None

    def _lost(self, phase: str) -> MemlmError:
        return MemlmError(
            f"{phase}: the build lost the connection to the Dask scheduler {self.cluster}: the build stopped"
        )

    def _finished(self, phase: str, futures: list) -> Iterator[list]:
        """The futures in batches as they finish (a task's error raised); fails when the cluster has had no
        worker, or its scheduler no answer, for :data:`NO_WORKERS_SECONDS` (Dask itself would wait for ever)."""
        import distributed

        pending = set(futures)
        outage: _Outage | None = None
        while pending:
            try:
                with self.client.as_current():
                    done, pending = distributed.wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except _TIMEOUTS:
                outage = self._alone(phase, outage)
                continue
            outage = None
            for future in done:
                if future.status == "error":
                    future.result()  # raises the task's error
            yield list(done)

    def _alone(self, phase: str, outage: _Outage | None) -> _Outage | None:
        """The cluster's outage so far, ``outage`` carried on (None: it has workers; or the connection to the
        scheduler closed, which Dask ends by cancelling the build's futures): since when it has had no worker, or
        its scheduler no answer within :data:`CONNECT_SECONDS` (frozen, its machine gone without closing the
        connection). Fails after :data:`NO_WORKERS_SECONDS` of either."""
        try:
            workers, silent = len(self.client.nthreads(callback_timeout=CONNECT_SECONDS)), False
        except _TIMEOUTS:
            workers, silent = 0, True
        except OSError:
            return outage
        if workers:
            return None
        now = time.monotonic()
        if outage is None or outage.silent != silent:
            return _Outage(now - CONNECT_SECONDS if silent else now, silent)  # silent since the question was asked
        if now - outage.since < NO_WORKERS_SECONDS:
            return outage
        if silent:
            raise MemlmError(
                f"{phase}: the Dask scheduler of {self.cluster} has not answered for {NO_WORKERS_SECONDS} s (frozen? "
                "its machine gone?): the build stopped"
            )
        raise MemlmError(
            f"{phase}: every Dask worker left the cluster {self.cluster} and none came back within "
            f"{NO_WORKERS_SECONDS} s: the build stopped"
        )

    def _tasks(self, phase: str, function, calls: Sequence[tuple]) -> list:
        """Runs ``function(*call)`` for every call as Dask tasks and returns their results in order, reporting
        progress as they finish; the first task's error is raised (the rest cancelled)."""
        self.steps += 1
        futures = [
            self.client.submit(function, *call, key=f"memlm-{self.steps}-{function.__name__[1:]}-{i}-{self.run}")
            for i, call in enumerate(calls)
        ]
        try:
            with self._failures(phase):
                self.progress(phase, 0, len(futures))
                results = {}
                for batch in self._finished(phase, futures):
                    # The worker holding a result may die meanwhile: Dask computes it again, or waits for ever
                    # for a worker when none is left.
                    gathered = self._waited(phase, lambda batch=batch: self.client.gather(batch))
                    results.update(zip([f.key for f in batch], gathered, strict=True))
                    self.progress(phase, len(results), len(futures))
                return [results[f.key] for f in futures]
        finally:
            self.client.cancel(futures)

    def tokenise(
        self, parts: list[tuple[Piece, Identity]], spec, text_field: str, errors: str, provenance: bool
    ) -> list[Shard]:
        """Step 1: the shards of the pieces (each with its file's identity) that hold text, in corpus order."""
        spec_future = self._shared(spec)
        calls = [
            (piece, identity, self.path(f"piece-{i}.shard"), spec_future, text_field, errors, provenance)
            for i, (piece, identity) in enumerate(parts)
        ]
        return [s for s in self._tasks("tokenising on the cluster", _tokenise, calls) if s is not None]

    def build(
        self,
        shards: list[Shard],
        spec: TokenizerSpec,
        options: TrainOptions,
        memory: int | None,
        tokens: np.ndarray,
        lengths: np.ndarray,
        metadata: str,
        origins: bytes | None,
        output: Path | None,
    ) -> Model:
        """Steps 2-4: the model of the shards' text; the client computes the Kneser-Ney statistics meanwhile."""
        paths = [s.path for s in shards]
        n = tokens.size
        # The tasks' sizes: about TASKS_PER_THREAD per thread, each within what the memory budget leaves a
        # partition in one process (the core's rules: memlm_core::cluster::TaskSizes).
        sizes = task_sizes(
            n,
            options.width,
            self.threads,
            TASKS_PER_THREAD,
            None if memory is None else partition_memory(memory, n, tokens.itemsize),
        )
        abandoned = threading.Event()

        def go_on(*_) -> None:
            if abandoned.is_set():
                raise MemlmError("abandoned")

        with ThreadPoolExecutor(1, thread_name_prefix="memlm-kneser-ney") as pool:
            statistics = pool.submit(
                KneserNeyStatistics.compute, tokens, lengths, options.width, spec.vocab_size, go_on
            )
            try:
                reduction = self._weigh(shards, options, sizes[0])
                spilled = self._partitions(paths, options, reduction, sizes[1])
                self.progress(KNESER_NEY_PHASE, 0, 1)
                kneser_ney = statistics.result()
                self.progress(KNESER_NEY_PHASE, 1, 1)
            finally:
                abandoned.set()
        return build_model(
            tokens,
            lengths,
            spec,
            options,
            metadata,
            None,
            self.progress,
            output,
            origins,
            reduced=(reduction, *spilled),
            kneser_ney=kneser_ney,
        )

    def _weigh(self, shards: list[Shard], options: TrainOptions, range_size: int) -> Reduction:
        """Step 2: the statistics, reduced; one task per feature and per range of values of at most
        ``range_size`` instances of the summed class histogram."""
        paths = [s.path for s in shards]
        counts = [_owned(s.class_counts) for s in shards]
        calls = [
            (self.run, paths, options.width, features, values)
            for features, values in weighing_tasks(counts, options.width, range_size)
        ]
        terms = self._tasks("weighing the features on the cluster", _weigh, calls)
        return Reduction(counts, [[_owned(f) for f in t] for t in terms])

    def _partitions(
        self, paths: list[str], options: TrainOptions, reduction: Reduction, capacity: int
    ) -> tuple[list[str], list[str]]:
        """Step 3: the tries' partitions, spilled: (the IGTree's files, the instance base's), in order, each of
        at most ``capacity`` instances."""
        order = reduction.order(options.weighting)
        counts = self._shared(reduction.class_counts)
        spilled: dict[str, list[str]] = {"igtree": [], "instance_base": []}
        for trie, name in [("igtree", "IGTree"), ("instance_base", "instance base")][: 1 + options.instance_base]:
            calls = [
                (self.run, paths, options.width, order, counts, trie, values, self.path(f"{trie}-{i}.partition"))
                for i, values in enumerate(reduction.partitions(trie, options.weighting, capacity))
            ]
            spilled[trie] = self._tasks(f"building the {name} on the cluster", _spill, calls)
        return spilled["igtree"], spilled["instance_base"]
