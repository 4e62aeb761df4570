"""Building on a Dask cluster (memlm.cluster): a real scheduler and two worker processes on 127.0.0.1 build the
model file of the single-process build, byte for byte (SOURCE_DATE_EPOCH fixes the metadata's date), also when
a worker is killed mid-build; bad addresses, missing inputs and an unreachable scheduler are one-line errors
before any task is sent."""

import concurrent.futures
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import memlm
from memlm.cluster import parse_cluster
from memlm.corpus import iter_blocks, pieces
from memlm.errors import CorpusError, InvalidUtf8Error, MemlmError
from memlm.provenance import OriginsRecorder, concatenated

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli

distributed = pytest.importorskip("distributed", reason="the test extra installs Dask (memlm[dask])")

#: The date every model of these tests says it was made (the reproducible-builds convention).
EPOCH = "1700000000"
#: An address where nothing listens: connecting is refused at once.
NOBODY = "tcp://127.0.0.1:1"


class DaskCluster:
    """A `dask scheduler` and `dask worker` processes on 127.0.0.1 (no nanny: a killed worker stays dead)."""

    def __init__(self, folder: Path, workers: int):
        self.workers: list[subprocess.Popen] = []
        try:
            self._start(folder, workers)
        except BaseException:
            self.stop()  # nothing left running when the start fails
            raise

    def _start(self, folder: Path, workers: int) -> None:
        scheduler_file = folder / "scheduler.json"
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
            + ["--no-dashboard", "--scheduler-file", str(scheduler_file)],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline and self.scheduler.poll() is None, "the scheduler did not start"
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        self.add_workers(workers)

    def add_workers(self, workers: int, *options: str, prefix: tuple[str, ...] = ()) -> None:
        """Starts workers (with more ``options`` of `dask worker`, its command after a ``prefix``) and waits until
        they have joined."""
        before = len(self.workers)
        self.workers += [
            subprocess.Popen(
                [*prefix, sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--host", "127.0.0.1"]
                + ["--no-nanny", "--nthreads", "1", "--no-dashboard", "--memory-limit", "0", *options],
                stderr=subprocess.DEVNULL,
                env={**os.environ, "RAYON_NUM_THREADS": "1"},  # one core thread each: two on a two-core machine
            )
            for _ in range(workers)
        ]
        if workers:
            with self.client() as client:
                client.wait_for_workers(workers + sum(w.poll() is None for w in self.workers[:before]), timeout=60)

    def drop_worker(self) -> None:
        """Kills the last worker started and waits until the scheduler has let it go."""
        worker = self.workers.pop()
        worker.kill()
        worker.wait()
        with self.client() as client:
            deadline = time.monotonic() + 30
            while len(client.nthreads()) > sum(w.poll() is None for w in self.workers):
                assert time.monotonic() < deadline, "the scheduler kept a killed worker"
                time.sleep(0.05)

    def client(self):
        return distributed.Client(self.address, timeout=30, set_as_default=False)

    def stop(self) -> None:
        """Ends the processes (killed: nothing of theirs is kept, and a worker's graceful close takes seconds)."""
        for process in [*self.workers, *([self.scheduler] if hasattr(self, "scheduler") else [])]:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2)
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def test_a_scheduler_and_two_workers_build_the_single_process_model_byte_for_byte(cluster, tmp_path):
    options = dict(width=4, algorithms="igtree,tribl2", keep_tokens=True, provenance=True)
    single, shared = tmp_path / "single.memlm", tmp_path / "shared"
    shared.mkdir()
    memlm.train([TRAIN_TEXT, TEST_TEXT], output=single, **options)
    phases = []
    with cluster.client() as client, distributed.get_task_stream(client) as tasks:
        built = memlm.train(
            [TRAIN_TEXT, TEST_TEXT],
            output=tmp_path / "cluster.memlm",
            cluster=cluster.address,
            temp_dir=shared,
            progress=lambda phase, done, total: phases.append(phase),
            **options,
        )
    assert (tmp_path / "cluster.memlm").read_bytes() == single.read_bytes()
    assert built.predict("It was", top_k=3) == memlm.load(single).predict("It was", top_k=3)
    assert "tokenising on the cluster" in phases and "building the instance base on the cluster" in phases
    assert list(shared.iterdir()) == [], "the work folder is removed"
    # Both workers took part in every step (the scheduler's record of the build's tasks), and kept nothing.
    for step in ["tokenise", "weigh", "spill"]:
        workers = {task["worker"] for task in tasks.data if f"-{step}-" in task["key"]}
        assert len(workers) == 2, (step, workers)
    with cluster.client() as client:
        assert not any(client.run(lambda: bool(memlm.cluster._TEXT)).values())
    # The command line, at width 16 (IGTree only): the same file as `memlm train` writes.
    run_cli("train", TRAIN_TEXT, TEST_TEXT, "-o", tmp_path / "single16.memlm")
    proc = run_cli("train", TRAIN_TEXT, TEST_TEXT, "-o", tmp_path / "cluster16.memlm", "--cluster", cluster.address)
    assert "wrote" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "cluster16.memlm").read_bytes() == (tmp_path / "single16.memlm").read_bytes()


def test_a_folder_of_plain_gzip_and_jsonl_files_under_a_memory_budget_is_the_single_build(cluster, tmp_path):
    """A folder (its files in sorted order) holding a plain-text file cut into several pieces, a gzip file and a
    JSONL file, with a memory budget: the file of one process, byte for byte. (No budget gives a cluster build
    more than one partition or weighing range: a budget must hold the Kneser-Ney phase, 80 bytes a token,
    which leaves a partition room for every instance; so this runs the budget's arithmetic, not its split.)"""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_bytes(TRAIN_TEXT.read_bytes())  # ~400 kB: pieces of 64 kB and more
    (folder / "b.txt.gz").write_bytes(gzip.compress(TEST_TEXT.read_bytes(), mtime=0))
    paragraphs = TEST_TEXT.read_text().split("\n\n")[:50]
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs))
    options = dict(width=5, memory=256 << 20)
    memlm.train(folder, output=tmp_path / "single.memlm", **options)
    with cluster.client() as client, distributed.get_task_stream(client) as tasks:
        memlm.train(folder, output=tmp_path / "cluster.memlm", cluster=cluster.address, **options)
    assert (tmp_path / "cluster.memlm").read_bytes() == (tmp_path / "single.memlm").read_bytes()
    assert len({task["key"] for task in tasks.data if "-tokenise-" in task["key"]}) > 3, "a.txt cut into pieces"


def test_merge_on_the_cluster_is_the_single_merge(cluster, tmp_path):
    parts = [tmp_path / "emma.shard", tmp_path / "persuasion.shard"]
    for text, part in zip([TRAIN_TEXT, TEST_TEXT], parts, strict=True):
        memlm.make_shard(text, part, provenance=True)
    memlm.merge(parts, width=6, provenance=True, output=tmp_path / "single.memlm")
    memlm.merge(parts, width=6, provenance=True, output=tmp_path / "cluster.memlm", cluster=cluster.address)
    assert (tmp_path / "cluster.memlm").read_bytes() == (tmp_path / "single.memlm").read_bytes()
    proc = run_cli("merge", *parts, "--width", 6, "-o", tmp_path / "cli.memlm", "--cluster", cluster.address)
    assert proc.returncode == 0 and memlm.load(tmp_path / "cli.memlm").width == 6


def test_a_file_changed_after_planning_is_refused(cluster, tmp_path):
    """The pieces of a file are planned from its size; a file that changes before (or while) its pieces are
    tokenised would give a model of two texts: the build stops with one line instead."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(TRAIN_TEXT.read_bytes())

    def change(phase, done, total) -> None:
        if phase == "tokenising on the cluster" and done == 0:  # planned, its tasks sent
            with corpus.open("ab") as file:
                file.write(b"\n\nOne more paragraph.\n")

    with pytest.raises(CorpusError) as e:
        memlm.train(corpus, width=3, cluster=cluster.address, progress=change)
    assert str(e.value).startswith(f"{corpus}: the file changed during the cluster build (its size or times are")
    # The same size, another modification time: changed too.
    memlm.train(corpus, width=3, cluster=cluster.address)  # as it is now, it builds

    def touch(phase, done, total) -> None:
        if phase == "tokenising on the cluster" and done == 0:
            os.utime(corpus, ns=(0, corpus.stat().st_mtime_ns + 1))

    with pytest.raises(CorpusError, match="the file changed during the cluster build"):
        memlm.train(corpus, width=3, cluster=cluster.address, progress=touch)

    # Rewritten in place, the same size, its modification time set back (`cp -p`, os.utime): changed too.
    def rewrite(phase, done, total) -> None:
        if phase == "tokenising on the cluster" and done == 0:
            before = corpus.stat()
            corpus.write_bytes(corpus.read_bytes().swapcase())
            os.utime(corpus, ns=(before.st_atime_ns, before.st_mtime_ns))

    with pytest.raises(CorpusError, match="the file changed during the cluster build"):
        memlm.train(corpus, width=3, cluster=cluster.address, progress=rewrite)


def test_a_relative_temp_dir_is_the_clients(cluster, tmp_path, monkeypatch):
    """A relative --temp-dir is taken in the client's current folder, not in each worker's. At width 1 on two
    worker threads, the one feature's weights are reduced from several ranges of values (a task each)."""
    shard = tmp_path / "emma.shard"
    memlm.make_shard(TEST_TEXT, shard)
    (tmp_path / "relative").mkdir()
    monkeypatch.chdir(tmp_path)
    memlm.merge([shard], width=1, output=tmp_path / "single.memlm")
    with cluster.client() as client, distributed.get_task_stream(client) as tasks:
        memlm.merge([shard], width=1, output=tmp_path / "cluster.memlm", cluster=cluster.address, temp_dir="relative")
    assert (tmp_path / "cluster.memlm").read_bytes() == (tmp_path / "single.memlm").read_bytes()
    assert len({task["key"] for task in tasks.data if "-weigh-" in task["key"]}) >= 2


def test_a_workers_error_is_raised_on_the_client_as_it_was_raised(cluster, tmp_path):
    # Invalid UTF-8 deep in a file that the cluster cuts into pieces: the offset is the file's, as one process
    # reports it, whichever piece held it.
    text = TRAIN_TEXT.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(text + b"\n\nsome \xff byte\n")
    with pytest.raises(InvalidUtf8Error) as single:
        memlm.train(bad, width=2)
    with pytest.raises(InvalidUtf8Error) as remote:
        memlm.train(bad, width=2, cluster=cluster.address)
    assert str(remote.value) == str(single.value) and remote.value.offset == len(text) + 7
    proc = run_cli("train", bad, "-o", tmp_path / "m.memlm", "--cluster", cluster.address, check=False)
    assert proc.returncode == 1 and proc.stderr == f"memlm: error: {bad}: invalid UTF-8 at byte offset " + (
        f"{len(text) + 7} (use --errors replace to substitute)\n"
    )


@pytest.mark.parametrize("step", ["memlm-", "-spill-"])
def test_a_worker_killed_mid_build_still_gives_the_same_model(tmp_path, step):
    """SIGKILLed while it runs the first task of the build (tokenising), or a task building a trie partition
    (its spilled file then written again by the other worker)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(TRAIN_TEXT.read_bytes() * 6)  # ~700,000 tokens: tasks of a tenth of a second and more
    single = memlm.train(corpus, width=8)
    own = DaskCluster(tmp_path, workers=2)
    try:
        outcome = _train_while_killing(own, step, corpus, width=8, output=tmp_path / "m.memlm")
    finally:
        own.stop()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["workers"] == 1, "the killed worker is gone"
    single.save(tmp_path / "single.memlm")
    assert (tmp_path / "m.memlm").read_bytes() == (tmp_path / "single.memlm").read_bytes()


def _train_while_killing(own: DaskCluster, step: str, corpus: Path, **options) -> dict:
    """Trains on ``corpus`` on ``own`` in a thread and SIGKILLs the worker that runs a task of the build whose
    key holds ``step`` as soon as one does. The outcome: the "model" or the "error" raised, the "seconds" the
    build went on after the kill, and the "workers" the scheduler has once it ended."""
    outcome: dict = {}

    def build() -> None:
        try:
            outcome["model"] = memlm.train(corpus, cluster=own.address, **options)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = e

    builder = threading.Thread(target=build)
    with own.client() as client:
        pids = client.run(os.getpid)
        builder.start()
        os.kill(pids[_when_a_task_runs(client, builder, step)], signal.SIGKILL)
        killed = time.monotonic()
        builder.join(timeout=120)
        assert not builder.is_alive(), "the build did not end"
        outcome["seconds"] = time.monotonic() - killed
        outcome["workers"] = len(client.nthreads())
    return outcome


def test_a_worker_keeps_the_text_of_each_build(tmp_path):
    """Two builds sharing a cluster each keep their text on a worker (one's end drops only its own); a third
    evicts the least recently used."""
    from memlm.cluster import TEXTS_KEPT, _forget_text, _shard_text

    shard = tmp_path / "a.shard"
    memlm.make_shard(TEST_TEXT, shard)
    paths = [str(shard)]
    try:
        a = _shard_text("build-a", paths, 3)
        b = _shard_text("build-b", paths, 2)
        assert _shard_text("build-a", paths, 3) is a and _shard_text("build-b", paths, 2) is b
        _forget_text("build-a")
        assert _shard_text("build-b", paths, 2) is b and set(memlm.cluster._TEXT) == {"build-b"}
        for build in ["build-c", "build-d"][:TEXTS_KEPT]:
            _shard_text(build, paths, 1)
        assert "build-b" not in memlm.cluster._TEXT and len(memlm.cluster._TEXT) == TEXTS_KEPT
        # Tasks of one build running at once in a worker's threads read its text once (the lock).
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(lambda _: _shard_text("build-e", paths, 4), range(8)))
        assert all(text is texts[0] for text in texts)
    finally:
        for build in list(memlm.cluster._TEXT):
            _forget_text(build)


def test_a_task_compares_the_clients_identity_of_a_file_by_size_and_seconds(tmp_path):
    """Across machines only a file's size and modification time in whole seconds are compared (another machine
    may see another inode number, a cached or coarser time): the task run here with the identity a client
    elsewhere would have taken (another inode, other nanoseconds) tokenises; another size or second does not."""
    from memlm.cluster import Identity, _identity, _tokenise
    from memlm.tokenization import TokenizerSpec

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Some text.\n\nMore text.\n")
    os.utime(corpus, ns=(0, 1_700_000_000_250_000_000))
    (piece,) = pieces([corpus], 1 << 20)
    here = _identity(piece)
    spec = TokenizerSpec.from_file(None)
    elsewhere = Identity(here.size, here.mtime_ns + 500_000_000, here.inode + 1, here.ctime_ns + 1)
    shard = _tokenise(piece, elsewhere, str(tmp_path / "a.shard"), spec, "text", "strict", False)
    assert shard is not None and shard.class_counts[0].sum() > 0
    for changed in [here._replace(size=here.size + 1), here._replace(mtime_ns=here.mtime_ns + 10**9)]:
        with pytest.raises(CorpusError, match="the file changed during the cluster build"):
            _tokenise(piece, changed, str(tmp_path / "b.shard"), spec, "text", "strict", False)


def _when_a_task_runs(client, builder: threading.Thread, step: str) -> str:
    """The worker that runs one of the build's tasks whose key holds ``step``, as soon as one does."""
    deadline = time.monotonic() + 60
    while True:
        busy = [w for w, keys in client.processing().items() if any("memlm-" in k and step in k for k in keys)]
        if busy:
            return busy[0]
        assert time.monotonic() < deadline and builder.is_alive(), "no task of the build was seen running"
        time.sleep(0.005)


def test_workers_that_cannot_build_or_all_die_are_one_line(tmp_path, monkeypatch):
    """Dask waits forever for a worker to come back: the build does not, and says why. A worker that cannot
    write to the work folder (here: mounted read-only for it), that dies in the start-up check (its memlm
    made to exit there, by a preload module), or that never answers it (as on a hung mount), is one line
    before any task too."""
    monkeypatch.setattr(memlm.cluster, "NO_WORKERS_SECONDS", 2)
    monkeypatch.setattr(memlm.cluster, "ANSWER_SECONDS", 2)
    corpus, shared = tmp_path / "corpus.txt", tmp_path / "shared"
    corpus.write_bytes(TRAIN_TEXT.read_bytes() * 3)
    shared.mkdir()
    dies = tmp_path / "dies_at_check.py"
    dies.write_text("import os\nimport memlm.cluster\nmemlm.cluster._worker_state = lambda *_: os._exit(1)\n")
    own = DaskCluster(tmp_path, workers=0)
    try:
        # A mount namespace of its own, where the shared folder is read-only (needs root, or user namespaces).
        mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
        read_only = ("unshare", "-m", "sh", "-c", mount)
        if shutil.which("unshare") and subprocess.run([*read_only[:2], "true"], check=False).returncode == 0:
            own.add_workers(1, prefix=(*read_only, str(shared)))
            with pytest.raises(MemlmError, match="cannot read and write the work folder .*Read-only file system") as e:
                memlm.train(corpus, width=4, cluster=own.address, temp_dir=shared)
            assert "\n" not in str(e.value) and list(shared.iterdir()) == []
            own.drop_worker()
        own.add_workers(1, "--preload", str(dies))
        with pytest.raises(MemlmError, match="every Dask worker of .* left the cluster during the start-up check") as e:
            memlm.train(corpus, width=4, cluster=own.address)
        assert "\n" not in str(e.value)
        hangs = tmp_path / "hangs_at_check.py"
        hangs.write_text(
            "import time\nimport memlm.cluster\nmemlm.cluster._worker_state = lambda *_: time.sleep(600)\n"
        )
        own.add_workers(1, "--preload", str(hangs))
        started = time.monotonic()
        with pytest.raises(
            MemlmError, match="checking the workers: the Dask cluster .* did not answer within 2 s"
        ) as e:
            memlm.train(corpus, width=4, cluster=own.address)
        assert "\n" not in str(e.value) and time.monotonic() - started < 20
        own.drop_worker()
        own.add_workers(1)
        outcome = _train_while_killing(own, "memlm-", corpus, width=4, temp_dir=tmp_path)
        assert outcome["seconds"] < 30
    finally:
        own.stop()
    error = outcome.get("error")
    assert isinstance(error, MemlmError) and "\n" not in str(error), error
    assert "every Dask worker left the cluster" in str(error) and "none came back within 2 s" in str(error)
    assert not list(tmp_path.glob("memlm-cluster-*")), "the work folder is removed"


def _start_local_build(tmp_path: Path, *options: str, **popen) -> tuple[subprocess.Popen, Path, Path]:
    """`memlm train` of a ~700,000-token corpus on local:2 (its -o file holding b"old"), started: the process, the
    shared folder and the model's path."""
    corpus, shared, model = tmp_path / "corpus.txt", tmp_path / "shared", tmp_path / "m.memlm"
    corpus.write_bytes(TRAIN_TEXT.read_bytes() * 6)
    shared.mkdir()
    model.write_bytes(b"old")
    command = [sys.executable, "-m", "memlm", "train", corpus, "-o", model, "--cluster", "local:2", *options]
    return subprocess.Popen([*command, "--temp-dir", shared], **popen), shared, model


def _wait_for(found, proc: subprocess.Popen, what: str):
    """``found()`` once it is true (within 60 s, while ``proc`` runs)."""
    deadline = time.monotonic() + 60
    while not (value := found()):
        assert time.monotonic() < deadline and proc.poll() is None, f"no {what}"
        time.sleep(0.01)
    return value


@pytest.mark.parametrize("moment", ["*", "*/piece-*.shard"])
def test_ctrl_c_stops_a_cluster_build_and_leaves_nothing(tmp_path, moment):
    """Ctrl-C as the local cluster starts (its work folder made) or as its workers tokenise (their shards there)."""
    proc, shared, model = _start_local_build(
        tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's command is
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # whatever this test's runner ignores
    )
    _wait_for(lambda: list(shared.glob(moment)), proc, moment)
    cluster = _wait_for(lambda: _local_cluster(proc.pid), proc, "local cluster process")
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: to every process of the build's group
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 130 and stderr.strip().splitlines()[-1] == "memlm: interrupted", stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr  # starting workers' were pages
    assert model.read_bytes() == b"old" and list(shared.iterdir()) == []
    assert _session_ends(cluster), "the local cluster's processes are gone"


def test_a_local_cluster_stops_when_its_build_is_killed(tmp_path):
    """The build's process SIGKILLed (nothing of it runs to stop the cluster): the cluster's process sees its
    standard input end and stops the cluster; the -o file stays as it was."""
    proc, shared, model = _start_local_build(tmp_path, stderr=subprocess.DEVNULL)
    _wait_for(lambda: list(shared.glob("*/piece-*.shard")), proc, "shard")
    cluster = _local_cluster(proc.pid)
    assert cluster is not None and len(_session(cluster)) >= 3, "the cluster's process and its two workers"
    proc.kill()
    proc.wait()
    assert _session_ends(cluster), f"the local cluster runs on: {_session(cluster)}"
    assert model.read_bytes() == b"old"


def _processes() -> dict[int, tuple[int, int]]:
    """Every live process (zombies left out): its parent and its session."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z":
            found[int(entry.parent.name)] = (int(fields[1]), int(fields[3]))
    return found


def _local_cluster(build: int) -> int | None:
    """The process of the local cluster that the build process ``build`` started (None: not yet, or no more)."""
    for pid, (parent, _) in _processes().items():
        if parent == build and b"memlm.local_cluster" in _command(pid):
            return pid
    return None


def _session(leader: int) -> list[int]:
    """The live processes of the session that process ``leader`` started (a local cluster's: it and its workers)."""
    return [pid for pid, (_, session) in _processes().items() if session == leader]


def _session_ends(leader: int) -> bool:
    """Whether the session that process ``leader`` started has no live process within 30 s (a process SIGKILLed
    a moment ago may still be on its way out)."""
    deadline = time.monotonic() + 30
    while _session(leader):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _worker_processes(build: int) -> list[int]:
    """The Dask worker processes of the local cluster the build process ``build`` started (multiprocessing's
    spawned children of its cluster process)."""
    cluster = _local_cluster(build)
    return [
        pid
        for pid, (parent, _) in _processes().items()
        if parent == cluster and b"spawn_main" in (command := _command(pid)) and b"resource_tracker" not in command
    ]


@pytest.mark.parametrize("fault", ["all killed", "one frozen"])
def test_local_workers_build_the_same_model_when_killed_or_frozen(tmp_path, fault):
    """local:N's nannies start killed worker processes again; its scheduler drops a frozen one (SIGSTOP: no
    heartbeat) after its worker-ttl (given as 1 s here: Dask makes it at least 5 s for a few workers; 30 s
    unless set shorter) and its nanny replaces it, while the build waits for its task: the build goes on, and
    writes the same file."""
    corpus, shared = tmp_path / "corpus.txt", tmp_path / "shared"
    corpus.write_bytes(TRAIN_TEXT.read_bytes() * 2)
    shared.mkdir()
    run_cli("train", corpus, "--width", 3, "-o", tmp_path / "single.memlm")
    command = [sys.executable, "-m", "memlm", "train", corpus, "--width", "3", "-o", tmp_path / "local.memlm"]
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "1s"}
    with (tmp_path / "stderr").open("w+") as stderr:
        proc = subprocess.Popen([*command, "--cluster", "local:2", "--temp-dir", shared], stderr=stderr, env=env)
        _wait_for(lambda: list(shared.glob("*/piece-*.shard")), proc, "shard")  # the workers are tokenising
        workers = _worker_processes(proc.pid)
        assert len(workers) == 2, workers
        for pid in workers if fault == "all killed" else workers[:1]:
            os.kill(pid, signal.SIGKILL if fault == "all killed" else signal.SIGSTOP)
        replaced_while_building, deadline = False, time.monotonic() + 120
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the build did not end"
            replaced_while_building |= workers[0] not in _processes()
            time.sleep(0.05)
        stderr.seek(0)
        said = stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in said, said
    assert (tmp_path / "local.memlm").read_bytes() == (tmp_path / "single.memlm").read_bytes()
    assert replaced_while_building, "the build ended before the worker was replaced"


def test_a_local_cluster_that_does_not_start_is_one_line(monkeypatch):
    """Its process ends first (here: refused arguments), or is not up within START_SECONDS: one line, and the
    process (and its workers, if any) stopped."""
    from memlm import local_cluster

    refused = r"^the local Dask cluster did not start: usage: python -c .* WORKERS THREADS"
    with pytest.raises(MemlmError, match=refused), local_cluster.started(0, 1) as address:
        address()
    monkeypatch.setattr(local_cluster, "START_SECONDS", 0.2)
    killed = r"^the local Dask cluster did not start: its process was killed by SIGKILL$"
    with pytest.raises(MemlmError, match=killed), local_cluster.started(1, 1) as address:
        os.kill(_local_cluster(os.getpid()), signal.SIGKILL)
        address()
    late = r"^the local Dask cluster did not start within 0.2 s$"
    with pytest.raises(MemlmError, match=late), local_cluster.started(1, 1) as address:
        cluster = _local_cluster(os.getpid())
        address()
    assert cluster is not None and _session_ends(cluster)


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # gone meanwhile


@pytest.mark.parametrize(
    ("configured", "ttl"), [("5 minutes", 30), ("7s", 7), (None, 30), ("0s", 30), ("abc", None), (-5, None)]
)
def test_a_local_clusters_worker_ttl_is_30_s_or_the_configured_one_if_shorter(configured, ttl):
    import dask

    from memlm.local_cluster import _worker_ttl

    with dask.config.set({"distributed.scheduler.worker-ttl": configured}):
        if ttl is None:
            with pytest.raises(ValueError, match="^Dask's distributed.scheduler.worker-ttl is no duration: "):
                _worker_ttl()
        else:
            assert _worker_ttl() == ttl


def test_a_script_without_a_main_guard_builds_on_a_local_cluster(tmp_path):
    """The local cluster's workers are spawned from memlm's own module: a script that calls memlm.train with
    local:N at its top level is not run again in each of them (multiprocessing's spawn runs the main module)."""
    script = tmp_path / "script.py"
    script.write_text(
        f"import memlm\nmemlm.train({str(TEST_TEXT)!r}, width=2, output='m.memlm', cluster='local:1')\nprint('built')\n"
    )
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "built\n", "")
    assert memlm.load(tmp_path / "m.memlm").width == 2


@pytest.mark.parametrize(
    "address",
    ["", "tcp://", "tcp://host", "tcp://host:", "tcp://:8786", "tcp://host:0", "tcp://host:70000", "tcp://a b:1"]
    + ["http://host:8786", "host:8786", "local:", "local:0", "local:-2", "local:2.5", "local:99999999999999999999"]
    + [" local:2", "local:2 ", "LOCAL:2", "local:1025"],
)
def test_a_malformed_cluster_is_one_line_before_any_work(tmp_path, address):
    with pytest.raises(MemlmError, match="cluster|local:N|port") as e:
        memlm.train(tmp_path / "missing.txt", cluster=address)
    assert "\n" not in str(e.value)
    proc = run_cli("train", TRAIN_TEXT, "-o", tmp_path / "m.memlm", "--cluster", address, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("memlm: error: ") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "m.memlm").exists()


def test_cluster_addresses_that_parse():
    assert parse_cluster("tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"
    assert parse_cluster("tcp://[::1]:8786").address == "tcp://[::1]:8786"
    assert parse_cluster("tcp://scheduler.example.org:1").address == "tcp://scheduler.example.org:1"
    assert parse_cluster("local:3").local_workers == 3
    # local:N: at most four worker processes per CPU.
    most = 4 * (os.cpu_count() or 1)
    assert parse_cluster(f"local:{most}").local_workers == most
    with pytest.raises(MemlmError, match=f"local:N needs from 1 to {most} workers \\(4 per CPU of this machine\\)"):
        parse_cluster(f"local:{most + 1}")
    for value in [None, 2, b"local:2", ["local:2"]]:
        with pytest.raises(MemlmError, match="must be a str"):
            parse_cluster(value)


def test_a_missing_input_is_an_error_before_the_scheduler_is_asked(tmp_path):
    # The scheduler cannot be reached either: the missing file is what is reported.
    with pytest.raises(FileNotFoundError) as e:
        memlm.train([TRAIN_TEXT, tmp_path / "missing.txt"], cluster=NOBODY)
    missing = tmp_path / "missing.txt"
    assert e.value.filename == str(missing)
    proc = run_cli("train", TRAIN_TEXT, missing, "-o", tmp_path / "m.memlm", "--cluster", NOBODY, check=False)
    assert proc.returncode == 1 and proc.stderr == f"memlm: error: {missing}: No such file or directory\n"
    with pytest.raises(CorpusError, match="standard input"):
        memlm.train("-", cluster=NOBODY)
    # Nor another name of it, nor a FIFO (in a folder's files too, the FIFO given itself).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    read_end, write_end = os.pipe()
    try:
        for source in ["/dev/stdin", fifo, f"/dev/fd/{read_end}"]:
            with pytest.raises(CorpusError, match="a pipe or a device, not a regular file: a cluster's workers") as e:
                memlm.train([TRAIN_TEXT, source], cluster=NOBODY)
            assert str(e.value).startswith(f"{source}: standard input, ")
    finally:
        os.close(read_end)
        os.close(write_end)
    proc = run_cli("train", TRAIN_TEXT, fifo, "-o", tmp_path / "m.memlm", "--cluster", NOBODY, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(f"memlm: error: {fifo}: standard input, a pipe")
    assert proc.stderr.count("\n") == 1
    with pytest.raises(CorpusError, match="errors must be"):
        memlm.train(TRAIN_TEXT, errors="ignore", cluster=NOBODY)
    with pytest.raises(MemlmError, match="text_field must be a name"):
        memlm.train(TRAIN_TEXT, text_field=3, cluster=NOBODY)
    with pytest.raises(FileNotFoundError):
        memlm.merge([tmp_path / "missing.shard"], cluster=NOBODY)


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    with pytest.raises(MemlmError, match=f"cannot reach the Dask scheduler at {NOBODY}"):
        memlm.train(TRAIN_TEXT, cluster=NOBODY)
    for command in [("train", TRAIN_TEXT), ("train", TEST_TEXT, "--provenance")]:
        proc = run_cli(*command, "-o", tmp_path / "m.memlm", "--cluster", NOBODY, check=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"memlm: error: cannot reach the Dask scheduler at {NOBODY} (")
    # A name that does not resolve, too.
    proc = run_cli(
        "train", TEST_TEXT, "-o", tmp_path / "m.memlm", "--cluster", "tcp://no-such-host.invalid:8786", check=False
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "cannot reach" in proc.stderr


@pytest.mark.parametrize(
    "answer", [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", bytes(range(256)) * 4, None]
)
def test_a_port_that_is_no_scheduler_is_one_line(tmp_path, monkeypatch, answer):
    """Something that accepts connections but is no Dask scheduler (an HTTP server, one sending bytes that Dask
    reads as a message of exabytes, a silent one): one error within the connection deadline, not a hang or Dask's
    traceback (the command too: nothing after its line, as a Client that met such bytes printed at exit)."""
    monkeypatch.setattr(memlm.cluster, "CONNECT_SECONDS", 1)
    monkeypatch.setattr(memlm.cluster, "HANDSHAKE_SECONDS", 3)
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        held = []

        def serve() -> None:
            while True:
                try:
                    connection, _ = stranger.accept()
                except OSError:
                    return
                held.append(connection)
                if answer is not None:
                    connection.sendall(answer)
                    connection.close()

        threading.Thread(target=serve, daemon=True).start()
        started = time.monotonic()
        address = f"tcp://127.0.0.1:{stranger.getsockname()[1]}"
        with pytest.raises(MemlmError, match=f"cannot reach the Dask scheduler at {address}: is it a Dask scheduler"):
            memlm.train(TEST_TEXT, cluster=address)
        assert time.monotonic() - started < 10
        if answer is not None:
            proc = run_cli("train", TEST_TEXT, "-o", tmp_path / "m.memlm", "--cluster", address, check=False)
            assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
            assert proc.stderr.startswith(f"memlm: error: cannot reach the Dask scheduler at {address}: is it a Dask")


def test_a_scheduler_without_workers_is_one_line(tmp_path, monkeypatch):
    lonely = DaskCluster(tmp_path, workers=0)
    try:
        monkeypatch.setattr(memlm.cluster, "CONNECT_SECONDS", 1)
        with pytest.raises(MemlmError, match=f"the Dask scheduler at {lonely.address} has no workers"):
            memlm.train(TEST_TEXT, cluster=lonely.address)
    finally:
        lonely.stop()


def test_a_workers_address_is_one_line(cluster):
    with cluster.client() as client:
        worker = next(iter(client.scheduler_info()["workers"]))
    with pytest.raises(MemlmError, match=f"cannot reach the Dask scheduler at {worker}: it is a Dask Worker, not a"):
        memlm.train(TEST_TEXT, cluster=worker)


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_a_lost_or_frozen_scheduler_is_one_line(tmp_path, monkeypatch, capfd, fault):
    """The scheduler killed mid-build (the client gives up reconnecting after its timeout, CONNECT_SECONDS), or
    frozen (SIGSTOP: the connection stays open, nothing answers; NO_WORKERS_SECONDS of it): one line, none of
    Dask's log lines, the work folder removed."""
    corpus, shared = tmp_path / "corpus.txt", tmp_path / "shared"
    corpus.write_bytes(TRAIN_TEXT.read_bytes() * 6)
    shared.mkdir()
    own = DaskCluster(tmp_path, workers=1)
    monkeypatch.setattr(memlm.cluster, "CONNECT_SECONDS", 1)
    monkeypatch.setattr(memlm.cluster, "NO_WORKERS_SECONDS", 2)
    monkeypatch.setattr(memlm.cluster, "FORGET_SECONDS", 1)

    def stop_the_scheduler(phase, done, total) -> None:
        if phase == "tokenising on the cluster" and done == 0:
            own.scheduler.send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)

    started = time.monotonic()
    try:
        with pytest.raises(MemlmError) as e:
            memlm.train(corpus, width=8, cluster=own.address, temp_dir=shared, progress=stop_the_scheduler)
    finally:
        own.stop()
    assert time.monotonic() - started < 30
    assert str(e.value) == "tokenising on the cluster: " + (
        f"the build lost the connection to the Dask scheduler {own.address}: the build stopped"
        if fault == "killed"
        else f"the Dask scheduler of {own.address} has not answered for 2 s (frozen? its machine gone?): the build "
        "stopped"
    )
    assert "distributed" not in capfd.readouterr().err
    assert list(shared.iterdir()) == [], "the work folder is removed"


def test_what_a_cluster_build_refuses(tmp_path, monkeypatch):
    shard = tmp_path / "a.shard"
    memlm.make_shard(TEST_TEXT, shard)
    for command in [
        ("train", TEST_TEXT, "--shard", "-o", tmp_path / "b.shard", "--cluster", "local:1"),
        ("train", "--instances", shard, "-o", tmp_path / "m.memlm", "--cluster", "local:1"),
        ("merge", shard, "--shard", "-o", tmp_path / "b.shard", "--cluster", "local:1"),
    ]:
        proc = run_cli(*command, check=False)
        assert proc.returncode == 1 and "--cluster" in proc.stderr and proc.stderr.count("\n") == 1
    for epoch in ("yesterday", "\u00b2"):  # "²" is a digit to str.isdigit, not to int()
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        with pytest.raises(MemlmError, match="SOURCE_DATE_EPOCH must be a whole number"):
            memlm.train(TEST_TEXT, cluster="local:1")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_pieces_of_a_file_give_its_blocks_and_origins(tmp_path, newline):
    # Blank lines of white space, blocks of several lines, a long run without blank lines.
    paragraphs = [f"line {i} of{newline} paragraph {i}" for i in range(400)]
    text = "".join(p + newline + (" \t" if i % 3 else "") + newline for i, p in enumerate(paragraphs))
    text += "x " * 5000 + newline
    path = tmp_path / "text.txt"
    path.write_text(text, newline="")
    cut = pieces([path], 1000)
    assert len(cut) > 10 and cut[0].start == 0 and cut[-1].end is None
    assert all(a.end == b.start for a, b in zip(cut, cut[1:]))  # noqa: B905 - consecutive pieces
    assert all(p.path == str(path.resolve()) and p.label == str(path) for p in cut)
    data = path.read_bytes()
    for piece in cut[1:]:
        assert data[piece.start - 1 : piece.start] == b"\n" and data[piece.start :].split(b"\n")[0].strip() == b""
    whole, parts = OriginsRecorder(), []
    expected = [block for _, block in iter_blocks([path], origins=whole)]
    got = []
    for piece in cut:
        recorder = OriginsRecorder()
        got += [block for _, block in iter_blocks([piece], origins=recorder)]
        parts.append(memlm.provenance.Origins.from_bytes(recorder.to_bytes(), "piece"))
    assert got == expected
    assert concatenated(parts) == whole.to_bytes()
    # Gzip (whatever its name) and JSONL files, and files no larger than a piece, are one piece.
    gzipped = gzip.compress(data, mtime=0)
    assert len(gzipped) > 1000
    for name, content in [("a.jsonl", b'{"text": "x"}\n\n' * 500), ("b.txt", b"short\n\nfile\n"), ("c.txt", gzipped)]:
        (tmp_path / name).write_bytes(content)
        assert len(pieces([tmp_path / name], 1000)) == 1


def test_partition_sizes_divide_the_model_by_nearest_token(model4):
    n = model4.n_ids
    whole = model4.partition_sizes([n])
    assert whole["igtree_bytes"][0] + whole["kneser_ney_bytes"][0] + whole["shared_bytes"] == model4.info()["bytes"]
    parts = model4.partition_sizes([300, 1000, n])
    assert sum(parts["kneser_ney_bytes"]) == whole["kneser_ney_bytes"][0]
    assert all(b > 0 for b in parts["igtree_bytes"] + parts["kneser_ney_bytes"])
    for bad in ([], [n - 1], [0, n], [5, 5, n], [n + 1], [-1, n], [2**70, n], [True, n], [2.5, n]):
        with pytest.raises(MemlmError, match="ranges' ends"):
            model4.partition_sizes(bad)


def test_a_tasks_inputs_are_checked_in_the_core(tmp_path):
    """What a worker's task is given (by another client, or a bug) is checked by the core: one error line, no
    panic; and the tasks' sizes follow the core's rules."""
    from memlm._core import (
        ShardText,
        class_counts,
        gain_terms,
        piece_bytes,
        read_shard,
        spill_partition,
        task_sizes,
        weighing_tasks,
    )

    shard = tmp_path / "a.shard"
    memlm.make_shard(TEST_TEXT, shard)
    tokens, _, vocab_size, *_ = read_shard(shard)
    text = ShardText([shard], 3)
    counts = class_counts(tokens, vocab_size)
    spill_partition(text, [0, 1, 2], counts, "igtree", (0, vocab_size + 1), tmp_path / "whole.partition")
    other = class_counts(tokens[:-1], vocab_size)
    for bad_counts, order, message in [
        (other, [0, 1, 2], "class counts of .* for a text of"),
        (class_counts(tokens, vocab_size + 1), [0, 1, 2], "class counts of .* for a text of"),
        (counts, [0, 1], "is not an order of the 3 features"),
        (counts, [0, 1, 7], "is not an order of the 3 features"),
    ]:
        with pytest.raises(MemlmError, match=message) as e:
            spill_partition(text, order, bad_counts, "igtree", (0, 10), tmp_path / "bad.partition")
        assert "\n" not in str(e.value)
    with pytest.raises(MemlmError, match="features 2..5 of a text of 3 features"):
        gain_terms(text, (2, 5), (0, 10))
    with pytest.raises(MemlmError, match="width must be between 1 and 64"):
        ShardText([shard], 65)
    assert not (tmp_path / "bad.partition").exists()
    # The tasks' sizes are the core's rules (tested there): one call of each binding.
    assert task_sizes(1000, 4, 2, 4) == (1000, 125)
    assert piece_bytes(80 << 20, 2, 4) == 10 << 20
    assert weighing_tasks([counts], 2, tokens.size) == [((0, 1), (0, vocab_size + 1)), ((1, 2), (0, vocab_size + 1))]
