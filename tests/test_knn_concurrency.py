"""k-NN queries from several threads right after loading: the posting lists are built once, by whichever
query comes first, while the others wait without holding the thread pool (a batch whose workers waited for
a build that needed them hung the process)."""

import subprocess
import sys

import pytest

import memlm

from conftest import TEST_TEXT, TRAIN_TEXT

RACE = """
import sys, threading, memlm
model = memlm.load(sys.argv[1])
contexts, _ = model.windows(open(sys.argv[2]).read()[:6000])
algorithm = sys.argv[3]
start = threading.Barrier(4)
def run(f):
    start.wait()
    f()
calls = [
    lambda: model.predict(contexts[5].tolist(), algorithm=algorithm),
    lambda: model.predict_batch(contexts, algorithm=algorithm),
    lambda: model.predict_batch(contexts[::-1].copy(), algorithm=algorithm, k=3),
    lambda: model.predict(contexts[7].tolist(), algorithm=algorithm, k=2),
]
threads = [threading.Thread(target=run, args=(f,)) for f in calls]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok")
"""


@pytest.fixture(scope="module")
def knn_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("knn") / "emma16.memlm"
    memlm.train(TRAIN_TEXT, width=16, algorithms="igtree,tribl2,ib1").save(path)
    return path


@pytest.mark.parametrize("algorithm", ["ib1", "tribl2"])
def test_concurrent_first_queries_finish(knn_model, algorithm):
    for _ in range(4):
        run = subprocess.run(
            [sys.executable, "-c", RACE, str(knn_model), str(TEST_TEXT), algorithm],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_a_single_query_answers_as_the_batch_does(knn_model):
    model = memlm.load(knn_model)
    contexts, _ = model.windows(TEST_TEXT.read_text()[:6000])
    for algorithm in ("ib1", "tribl2"):
        batch = model.predict_batch(contexts, algorithm=algorithm, k=2)
        one_by_one = [model.predict(row.tolist(), algorithm=algorithm, k=2).ids[0] for row in contexts[:60]]
        assert one_by_one == [int(c) for c in batch[0][:60, 0]]
