"""Seed inputs of the cargo-fuzz target `query` (fuzz/fuzz_targets/query.rs): small real models, each as
one input per mode (the quick open, forged checksums, the full check). Run by bench/fuzz.sh.

    python -m bench.fuzz_seeds DIR
"""

from __future__ import annotations

import struct
import sys
import tempfile
from pathlib import Path

import memlm

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "data" / "austen_emma_sample.txt"
#: Mode byte of an input: bit 0 forges the checksums after the fuzzer's mutations, bit 1 runs the full check.
MODES = (0, 1, 2)


def word_tokenizer(words: list[str], path: Path) -> Path:
    """A word-level tokenizer of `words` (the models stay small: GPT-2's tokenizer alone takes 1.2 MB)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(path))
    return path


def models(workdir: Path) -> list[tuple[str, bytes]]:
    """Small models (tens of kB): token ids at widths 1 to 4 (with the instance base; W=2 keeps its training
    tokens), and an instance-file model (a symbol table)."""
    text = TRAIN.read_text()
    tokenizer = word_tokenizer(text[:6000].split(), workdir / "words.json")
    out = []
    for width, chars in ((1, 1500), (2, 3000), (3, 2000), (4, 4000)):
        source = workdir / f"part{width}.txt"
        source.write_text(text[:chars])
        model = memlm.train(
            [source],
            width=width,
            tokenizer=tokenizer,
            algorithms=("igtree", "tribl2", "ib1"),
            keep_tokens=width == 2,
        )
        path = workdir / f"w{width}.memlm"
        model.save(path)
        out.append((f"w{width}", path.read_bytes()))
    instances = workdir / "columns.txt"
    words = text.split()[:400]
    rows = [" ".join((["_"] * 3 + words)[i : i + 4]) for i in range(len(words))]
    instances.write_text("\n".join(rows) + "\n")
    model = memlm.train_instances(instances, algorithms=("igtree", "tribl2"))
    path = workdir / "symbols.memlm"
    model.save(path)
    out.append(("symbols", path.read_bytes()))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m bench.fuzz_seeds DIR")
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, image in models(Path(tmp)):
            for mode in MODES:
                seed = struct.pack("<Q", 0x5EED + mode)
                (target / f"seed-{name}-mode{mode}").write_bytes(bytes([mode]) + seed + image)
                print(f"{name}: {len(image)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
