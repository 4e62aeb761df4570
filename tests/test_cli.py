"""The `memlm` command line, end to end, as a user runs it."""

import memlm

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli


def test_version():
    out = run_cli("--version").stdout
    assert memlm.__version__ in out and "model format" in out


def test_train_info_generate(tmp_path):
    model = tmp_path / "m.memlm"
    run_cli("train", TRAIN_TEXT, "--width", 4, "-o", model)
    info = run_cli("info", model).stdout
    assert "width                 4" in info
    assert "gpt2-tokenizer.json" in info
    assert "t-1 t-2 t-3 t-4" in info
    args = ("generate", model, "Emma was", "--max-new-tokens", 20, "--do-sample", "--seed", 5)
    first = run_cli(*args).stdout
    assert first.startswith("Emma was") and len(first) > len("Emma was") + 20
    assert run_cli(*args).stdout == first
    assert run_cli(*args, "--stream").stdout == first
    piped = run_cli("generate", model, "--max-new-tokens", 20, "--do-sample", "--seed", 5, stdin="Emma was\n").stdout
    assert piped == first
    assert run_cli("info", model, "--json").stdout.lstrip().startswith("{")


def test_jsonl_corpus_with_text_field(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"body": "a b c a b c"}\n{"body": "a b d"}\n')
    run_cli("train", corpus, "--text-field", "body", "--width", 2, "-o", tmp_path / "m.memlm")
    bad = run_cli("train", corpus, "-o", tmp_path / "x.memlm", check=False)
    assert bad.returncode == 1 and "no 'text' field" in bad.stderr


def test_classify_writes_timbl_layout(tmp_path, model4_path):
    instances = tmp_path / "test.txt"
    run_cli("instances", TEST_TEXT, "--width", 4, "-o", instances)
    proc = run_cli("classify", model4_path, "--instances", instances, "--distribution")
    lines = proc.stdout.splitlines()
    given = instances.read_text().splitlines()
    assert len(lines) == len(given)
    first = lines[0]
    assert first.startswith(given[0] + " ")
    prediction, distribution = first[len(given[0]) + 1 :].split(" ", 1)
    assert distribution.startswith("{ " + prediction + " ") and distribution.endswith(" }")
    assert "overall accuracy:" in proc.stderr and "Seconds taken:" in proc.stderr


def test_errors_are_one_clean_line(tmp_path):
    corrupt = tmp_path / "corrupt.memlm"
    corrupt.write_bytes(b"MEMLM\0\r\n" + memlm.FORMAT_VERSION.to_bytes(4, "little") + b"\0" * 100)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        (("info", tmp_path / "missing.memlm"), "missing.memlm"),
        (("generate", corrupt, "hi"), "checksum"),
        (("verify", corrupt), "checksum"),
        (("train", empty, "-o", tmp_path / "m.memlm"), "holds no text"),
        (("train", "-o", tmp_path / "m.memlm"), "no corpus"),
        (("train", TRAIN_TEXT, "--width", 99, "-o", tmp_path / "m.memlm"), "width must be between 1 and 64"),
        (("train", "--instances", empty, "-o", tmp_path / "m.memlm"), "no instances"),
    ]
    for args, message in cases:
        proc = run_cli(*args, check=False)
        assert proc.returncode == 1, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "m.memlm").exists()


def test_instance_file_errors(tmp_path):
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a b c\na b\n")
    proc = run_cli("train", "--instances", ragged, "-o", tmp_path / "m.memlm", check=False)
    assert proc.returncode == 1 and "ragged.txt:2: 2 columns where the file started with 3" in proc.stderr
    good = tmp_path / "good.txt"
    good.write_text("_ a b\na b c\n_ a b\n")
    run_cli("train", "--instances", good, "-o", tmp_path / "m.memlm")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("a b c d e\n")
    proc = run_cli("classify", tmp_path / "m.memlm", "--instances", wrong, check=False)
    assert proc.returncode == 1 and "model's width is 2" in proc.stderr
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("_ a b\nzz yy b\n")
    proc = run_cli("classify", tmp_path / "m.memlm", "--instances", unknown)
    assert proc.stdout.splitlines() == ["_ a b b", "zz yy b b"]
