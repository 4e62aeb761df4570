"""Smoke runs of the benchmarks on tiny slices, so they cannot rot. They measure nothing worth keeping."""

import argparse
import json
import shutil
import socket
from pathlib import Path

import pytest

from bench import (
    build_cost,
    cluster_build,
    corruption,
    explain,
    generation,
    kneser_ney,
    knn_latency,
    latency_energy,
    scale,
    scaling,
    serve_load,
    vs_timbl,
)
from bench.common import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not there")


def test_scaling_smoke(tmp_path):
    scaling.main(["--size", "20000", "--size", "60000", "--test-tokens", "3000", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "scaling.json").read_text())
    assert [r["train_tokens"] for r in report["rows"]] == [20000, 60000]
    assert all(0 < r["accuracy"] < 1 and r["perplexity"] > 1 for r in report["rows"])
    assert report["points_per_10x"][0]["points"] is not None
    assert (tmp_path / "scaling.png").stat().st_size > 10_000


def test_kneser_ney_smoke(tmp_path):
    kneser_ney.main(
        ["--train-tokens", "30000", "--width", "2", "--width", "4", "--repeats", "1", "--out", str(tmp_path)]
    )
    report = json.loads((tmp_path / "kneser_ney.json").read_text())
    assert not report["comparable"] and report["kenlm"]["seen_tokens"] == 102_739
    assert [r["width"] for r in report["rows"]] == [2, 4]
    assert all(r["perplexity_seen"] > 1 and r["score_windows_tokens_per_s"] > 0 for r in report["rows"])


@pytest.mark.skipif(shutil.which("timbl") is None, reason="timbl is not installed")
def test_vs_timbl_smoke(tmp_path):
    args = ["--train-tokens", "20000", "--test-instances", "200", "--ib1-instances", "40", "--repeats", "1"]
    for algorithm in ("igtree", "tribl2", "ib1"):
        args += ["--algorithm", algorithm]
    vs_timbl.main([*args, "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "vs_timbl.json").read_text())["rows"]
    assert [r["algorithm"] for r in rows] == ["igtree", "tribl2", "ib1"]
    assert all(r["top1_agreement"] >= 0.99 for r in rows)


def test_knn_latency_smoke(tmp_path):
    args = ["--train-tokens", "20000", "--width", "4", "--contexts", "50", "--repeats", "1", "--out", str(tmp_path)]
    knn_latency.main([*args, "--algorithm", "tribl2", "--algorithm", "ib1", "--test-tokens", "3000"])
    report = json.loads((tmp_path / "knn_latency.json").read_text())
    row = report["rows"][0]
    assert (row["width"], row["contexts"]) == (4, 50)
    assert all(0 < row[a]["p50_us"] <= row[a]["p95_us"] <= row[a]["p99_us"] for a in ("tribl2", "ib1"))


@pytest.mark.skipif(shutil.which("timbl") is None, reason="timbl is not installed")
def test_latency_energy_smoke(tmp_path):
    latency_energy.main(
        [
            *("--train-tokens", "20000", "--test-instances", "200", "--ib1-instances", "20"),
            *("--latency-contexts", "40", "--generate-tokens", "4", "--repeats", "1", "--energy-seconds", "0.1"),
            *("--out", str(tmp_path)),
        ]
    )
    report = json.loads((tmp_path / "latency_energy.json").read_text())
    row = report["rows"][0]
    assert set(row["latency"]) == {"igtree", "tribl2", "ib1"}
    assert all(r["predict_p50_us"] > 0 and r["generate_tokens_per_s"] > 0 for r in row["latency"].values())
    assert all(e["joules"] > 0 and e["method"] for e in row["energy"].values())
    assert (tmp_path / "latency.png").exists() and (tmp_path / "energy.png").exists()


@pytest.mark.skipif(shutil.which("timbl") is None, reason="timbl is not installed")
def test_scale_smoke(tmp_path):
    scale.main(["--size", "20000", "--algorithm", "tribl2", "--timbl-max-tokens", "20000", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "scale.json").read_text())
    assert [(r["train_tokens"], r["algorithms"]) for r in rows] == [(20000, "igtree"), (20000, "igtree,tribl2")]
    first = rows[0]
    assert first["peak_rss_bytes"] > 0 and first["load_ms"] > 0 and first["igtree"]["predict_p50_us"] > 0
    assert first["timbl"]["model_bytes"] > 0 and "tribl2" in rows[1]


def test_generation_smoke(tmp_path):
    # The new side only: installing the old commit beside it takes minutes.
    sample = Path(__file__).resolve().parent.parent / "data" / "austen_emma_sample.txt"
    generation.main(
        [
            *("--old-commit", "none", "--train-file", str(sample), "--prompts", "6", "--repeats", "2"),
            *("--max-new-tokens", "8", "--predict-contexts", "50", "--out", str(tmp_path)),
        ]
    )
    report = json.loads((tmp_path / "generation.json").read_text())
    assert report["prompts"] == 6 and "old" not in report and len(report["new"]["runs"]) == 2
    assert all(report["new"]["median"][key] > 0 for key in generation.MEASURES)
    assert "generate greedy" in (tmp_path / "generation.md").read_text()


def test_build_cost_smoke(tmp_path):
    # The new side only: installing the old commit beside it takes minutes.
    build_cost.main(["--old-commit", "none", "--tokens", "20000", "--repeats", "1", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "build_cost.json").read_text())
    assert report["tokens"] == 20000 and "old" not in report and "ratio" not in report
    new = report["new"]
    assert new["wall_s"] > 0 and new["cpu_s"] > 0 and new["peak_rss_bytes"] > 0 and new["bytes"] > 0
    assert "| new |" in (tmp_path / "build_cost.md").read_text()


def test_corruption_smoke(tmp_path):
    # Damaged models loaded without verify: clean errors or the right answers, no crash (issue 12).
    assert corruption.main(["--n", "10", "--contexts", "8", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "corruption.json").read_text())
    counts = report["counts"]
    assert sum(counts.values()) == 10 and counts["wrong"] == counts["crash"] == 0 and report["ok"]
    assert "clean errors" in (tmp_path / "corruption.md").read_text()


def test_explain_smoke(tmp_path):
    sample = str(Path(__file__).resolve().parent.parent / "data" / "austen_emma_sample.txt")
    explain.main(["--train", sample, "--width", "4", "--test-tokens", "150", "--repeats", "1", "--out", str(tmp_path)])
    row = json.loads((tmp_path / "explain.json").read_text())
    assert (
        row["passages_checked"] > 100 and 0 < row["provenance_bytes_per_token"] < row["with_cited_text_bytes_per_token"]
    )
    assert row["ms_per_token"] > 0


def test_serve_load_smoke(tmp_path):
    sample = str(Path(__file__).resolve().parent.parent / "data" / "austen_emma_sample.txt")
    serve_load.main(
        ["--train-file", sample, "--width", "4", "--clients", "4", "--completions", "40", "--max-tokens", "8"]
        + ["--repeats", "2", "--out", str(tmp_path)]
    )
    report = json.loads((tmp_path / "serve_load.json").read_text())
    assert report["load"]["error_count"] == 0 and report["errors_met"]
    assert 0 < report["load"]["p50_ms"] <= report["load"]["p95_ms"] and report["ratio"] > 0
    assert len(report["rounds"]) == 2 and report["ratio_range"][0] <= report["ratio"] <= report["ratio_range"][1]
    assert all(r["tokens_per_s"] > 0 and r["generate_tokens_per_s"] > 0 for r in report["rounds"])


def test_serve_load_counts_every_error():
    """The load's clients count a silent server's requests as errors (after --request-timeout), and check() refuses a
    wrong status, text or token count without counting its tokens."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        args = argparse.Namespace(clients=2, max_tokens=2, timeout=30, request_timeout=1)
        load = serve_load.run_clients(
            serve_load.run_load(silent.getsockname()[1], [serve_load.request_bytes("GET", "/health")] * 3, None, args)
        )
    assert len(load.errors) == 3 and all("no answer after 1 s" in e for e in load.errors), load.errors
    good = json.dumps({"choices": [{"text": "ab"}], "usage": {"completion_tokens": 2}}).encode()
    counted = serve_load.Load()
    assert serve_load.check(200, good, "ab", 2, counted) is None and counted.tokens == 2
    assert "status 500" in serve_load.check(500, good, "ab", 2, counted)
    assert "is not Model.generate's" in serve_load.check(200, good, "ac", 2, counted)
    assert "2 tokens, not 3" in serve_load.check(200, good, "ab", 3, counted)
    assert "not a completion" in serve_load.check(200, b"{}", "ab", 2, counted)
    assert counted.tokens == 2


def test_cluster_build_smoke(tmp_path):
    cluster_build.main(
        ["--tokens", "20000", "--width", "4", "--workers", "2", "--repeats", "1", "--partitions", "2"]
        + ["--test-tokens", "2000", "--out", str(tmp_path)]
    )
    report = json.loads((tmp_path / "cluster_build.json").read_text())
    assert report["identical"] and set(report["builds"]) == {"single process", "local:2"}
    roles = [p["role"] for p in report["builds"]["local:2"]["processes"]]
    assert roles == ["client", "scheduler", "worker", "worker"], roles
    served, row = report["serving"], report["serving"]["partitioned"][0]
    assert row["identical"] and sum(s["test_contexts"] for s in row["servers"]) == served["contexts"] == 2000
    held = row["shared_bytes"] + sum(s["igtree_bytes"] + s["kneser_ney_bytes"] for s in row["servers"])
    assert all(s["igtree_bytes"] > 0 for s in row["servers"]) and held <= served["model_bytes"]
