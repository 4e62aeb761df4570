"""Corpus ingestion: blocks, file kinds, encodings and bad input."""

import gzip
import io
import json

import pytest

from memlm.corpus import iter_documents, read_blocks, split_blocks
from memlm.errors import CorpusError


def test_blocks_split_at_blank_lines_and_join_lines():
    text = "One line\nand the next.\n\n\n  \nSecond block.\r\n\r\nThird\n"
    assert split_blocks(text) == ["One line and the next.", "Second block.", "Third"]


def test_text_without_blank_line_is_one_block():
    assert split_blocks("a\nb\nc") == ["a b c"]
    assert split_blocks("\n\n  \n") == []


TRICKY_BLOCKS = [
    ("a\r\n\r\nb", ["a", "b"]),  # CRLF line ends, a CRLF blank line
    ("a \t\n \t \nb  ", ["a", "b"]),  # trailing spaces and tabs, a line of only spaces and tabs
    ("a\n\f\nb\n\v\x0c\r\nc", ["a", "b", "c"]),  # form feeds and vertical tabs are blank
    ("a\fb\n\rc", ["a\fb c"]),  # ... but inside a line, or a CR before text, end nothing
    ("a\n\u00a0\nb\n\u2028\n\u3000\nc", ["a b c"]),  # other Unicode whitespace is stripped, not blank
    ("a\x1cb\x85c\u2029d", ["a\x1cb\x85c\u2029d"]),  # separators str.splitlines() would split at
    (" \n\t\n\r\n\f\n", []),  # only whitespace lines
    ("\n\na\n\n\n\nb\n\n", ["a", "b"]),
]


@pytest.mark.parametrize(("text", "blocks"), TRICKY_BLOCKS)
def test_a_text_and_the_same_text_read_line_by_line_give_the_same_blocks(tmp_path, text, blocks):
    # split_blocks (score, perplexity, JSONL records) and a file streamed line by line (train) follow one
    # rule; the file is read as bytes and split at line feeds only, as split_blocks splits the text.
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode())
    assert split_blocks(text) == blocks
    if blocks:
        assert read_blocks([path]) == blocks


def test_directories_gzip_and_jsonl(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha\n\nbeta")
    with gzip.open(tmp_path / "sub" / "b.txt.gz", "wt") as f:
        f.write("gamma")
    (tmp_path / "sub" / "c.jsonl").write_text(
        json.dumps({"body": "delta\n\nepsilon"}) + "\n\n" + json.dumps({"body": "zeta"}) + "\n"
    )
    assert read_blocks([tmp_path], text_field="body") == ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def test_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from\nstdin\n\nagain")))
    assert read_blocks(["-"]) == ["from stdin", "again"]


def test_bad_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine text\xff more")
    with pytest.raises(CorpusError, match=r"bad.txt: invalid UTF-8 at byte offset 9"):
        read_blocks([path])
    assert read_blocks([path], errors="replace") == ["fine text\ufffd more"]


def test_empty_missing_and_malformed_sources(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(CorpusError, match="holds no text"):
        read_blocks([empty])
    with pytest.raises(CorpusError, match="no corpus"):
        read_blocks([])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_blocks([tmp_path / "nope.txt"])
    (tmp_path / "d").mkdir()
    with pytest.raises(CorpusError, match="no files"):
        read_blocks([tmp_path / "d"])
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"text": "ok"}\n{"other": 1}\n')
    with pytest.raises(CorpusError, match=r"x.jsonl:2: no 'text' field"):
        list(iter_documents([jsonl]))
    jsonl.write_text("{not json\n")
    with pytest.raises(CorpusError, match=r"x.jsonl:1: not valid JSON"):
        list(iter_documents([jsonl]))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(CorpusError, match="not a valid gzip"):
        read_blocks([broken])
