"""The ``memlm`` command line: train, merge, generate, info, verify, score, eval, instances, classify, serve. Every
command turns memlm's errors and file errors into one line on stderr (see :func:`_clean_errors`)."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

import memlm
from memlm.checks import context_width, not_an_input, output_file, shown_path
from memlm.corpus import STDIN, iter_documents, source_name
from memlm.errors import InvalidUtf8Error, MemlmError
from memlm.evaluation import evaluate as run_evaluation
from memlm.explain_view import NO_PROVENANCE, print_table, write_page
from memlm.model import KNESER_NEY
from memlm.progress import BuildProgress, parse_size
from memlm.scoring import perplexities
from memlm.serving import BODY_SECONDS, MAX_BODY_SECONDS, MAX_TOKENS_CAP

app = typer.Typer(
    help="memlm: a memory-based language model (IGTree over all training contexts), CPU only.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True)


class _Stdout(Console):
    """rich's console on standard output, whose closed pipe ends memlm as any other (141, quietly) rather
    than with rich's own exit status 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


#: Exit statuses besides 0: an error of the input or the system (one line on stderr), Ctrl-C, and a reader
#: of the output that went away (``memlm score ... | head``): 128 + the signal, as the shell shows a tool
#: that the signal ended. Usage errors (typer's) exit with 2.
EXIT_ERROR = 1
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
#: Signals that stop a command as Ctrl-C does (the work is abandoned, a file being saved is not put in
#: place, and the temporary file is removed), exiting with 128 + the signal: what `timeout`, job
#: schedulers and service managers send (SIGTERM), and a closed terminal (SIGHUP).
STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Raised by the handler of a :data:`STOPPING_SIGNALS` signal: a KeyboardInterrupt (what memlm's
    builds and saves stop at), whose exit status is 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame) -> None:
    raise Stopped(signum)


def _ignored(signum: int) -> bool:
    """Whether signal ``signum`` is ignored (as memlm was started, by ``nohup`` or a shell's background job)."""
    return signal.getsignal(signum) == signal.SIG_IGN


@contextmanager
def _clean_errors():
    """Turns memlm's errors and file errors into one line on stderr and exit status 1; Ctrl-C into one line
    and 130 (SIGTERM and SIGHUP into one line and 143, 129); a closed standard output (a pipe whose reader
    quit) into a quiet exit with 141. The handlers of SIGTERM and SIGHUP are memlm's while the command runs, unless
    memlm was started with the signal ignored (``nohup`` ignores SIGHUP): it stays ignored."""
    previous = {signum: signal.signal(signum, _stop) for signum in STOPPING_SIGNALS if not _ignored(signum)}
    try:
        yield
        sys.stdout.flush()  # here, so that a closed pipe is noticed while it can still be handled
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except Stopped as e:
        print(f"memlm: interrupted by {signal.Signals(e.signum).name}", file=sys.stderr)
        raise typer.Exit(128 + e.signum) from None
    except KeyboardInterrupt:
        print("memlm: interrupted", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (MemlmError, OSError) as e:
        if isinstance(e, InvalidUtf8Error) and e.option:
            e = e.for_option(f"{ERRORS_OPTION} replace")
        file_error = isinstance(e, OSError) and e.filename is not None
        message = f"{shown_path(e.filename)}: {e.strerror}" if file_error else str(e)
        print(f"memlm: error: {message}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _silence_stdout() -> None:
    """Points standard output at /dev/null: what is still buffered for the closed pipe is dropped, rather
    than raising again when Python flushes it at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _either(names: tuple[str, ...]) -> str:
    """``a, b or c``: the names the core knows, for help texts."""
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _version(value: bool) -> None:
    if value:
        print(f"memlm {memlm.__version__} (model format {memlm.FORMAT_VERSION})")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """memlm: train, inspect and run memory-based language models."""


def _whole_number(value: str | int) -> int:
    """An int option's value, once it is written as a whole number (``4``, not ``4.0`` or `` 4``), as
    the Python API takes only ints; typer hands defaults over as they are."""
    if isinstance(value, int):
        return value
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise typer.BadParameter(f"{value!r} is not a whole number")
    return int(value)


def _int_option(*names: str, help: str):
    return typer.Option(*names, help=help, parser=_whole_number, metavar="INTEGER")


WidthOption = Annotated[int, _int_option(help="Context width W (1..64).")]
DEFAULT_WIDTH = 16
#: The option that says what to do with bad UTF-8 in a text read (its name is in the error it prevents).
ERRORS_OPTION = "--errors"
ErrorsOption = Annotated[
    str, typer.Option(ERRORS_OPTION, help="Bad UTF-8 in the text: 'strict' (an error) or 'replace' (by U+FFFD).")
]
TextFieldOption = Annotated[str, typer.Option(help="Field holding the text in JSONL records.")]
WeightingOption = Annotated[str, typer.Option(help=f"Feature weighting: {_either(memlm.WEIGHTINGS)}.")]
AlgorithmsOption = Annotated[
    str, typer.Option(help=f"What the model must answer: {', '.join(memlm.ALGORITHMS)} (comma-separated).")
]
MemoryOption = Annotated[
    str | None,
    typer.Option(
        help="Memory budget of the whole build, e.g. 8G: the trie is then built in partitions (subtrees) that "
        "fit it, each spilled to --temp-dir and assembled at the end (the same model file)."
    ),
]
TempDirOption = Annotated[
    str | None,
    typer.Option(
        help="Folder for the partitions spilled under --memory (default: the system's temporary folder); with "
        "--cluster, where the build's shards and partitions go (a folder every worker sees)."
    ),
]
ClusterOption = Annotated[
    str | None,
    typer.Option(
        help="Build on a Dask cluster: tcp://HOST:PORT (a running scheduler) or local:N (N worker processes "
        "here); needs memlm\\[dask]. The same model file. Shards and partitions pass through --temp-dir, which "
        "the client and every worker must see at the same path (shared storage), as they must the corpus.",
    ),
]
KeepTokensOption = Annotated[
    bool, typer.Option("--keep-tokens", help="Store the token ids in the model, so `memlm merge` can add to it.")
]
ProvenanceOption = Annotated[
    bool,
    typer.Option(
        "--provenance",
        help="Store where each training token came from (source, byte offset; ~3 bytes per token), so that "
        "`memlm explain` cites training passages.",
    ),
]


def _build_options(
    weighting: str, algorithms: str, memory: str | None, temp_dir: str | None, keep_tokens: bool, cluster: str | None
):
    """The keyword arguments that `memlm.train` and `memlm.merge` share."""
    return dict(
        weighting=weighting,
        algorithms=algorithms,
        memory=None if memory is None else parse_size(memory),
        temp_dir=temp_dir,
        keep_tokens=keep_tokens,
        cluster=cluster,
    )


def _wrote(output: str, model: memlm.Model) -> None:
    info = model.info()
    print(
        f"wrote {shown_path(output)}: width {info['width']}, {info['training_instances']:,} instances, "
        f"{info['nodes']:,} nodes, {info['bytes']:,} bytes",
        file=sys.stderr,
    )


def _wrote_shard(output: str, fields: dict) -> None:
    print(
        f"wrote shard {shown_path(output)}: {fields['tokens']:,} tokens in {fields['blocks']:,} blocks", file=sys.stderr
    )


@app.command()
def train(
    corpus: Annotated[
        list[str] | None,
        typer.Argument(metavar="CORPUS", help="Text files, directories, .gz, .jsonl, or - for stdin."),
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="Model (or shard) file to write.")] = ...,
    width: Annotated[
        int | None, _int_option(help="Context width W (1..64; default 16; with --instances, the file's own).")
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help="tokenizers JSON file (default: GPT-2 BPE).")] = None,
    text_field: TextFieldOption = "text",
    errors: ErrorsOption = "strict",
    weighting: WeightingOption = "gain_ratio",
    instances: Annotated[
        Path | None, typer.Option(help="Train from a TiMBL column-format instance file instead.")
    ] = None,
    algorithms: AlgorithmsOption = "igtree",
    memory: MemoryOption = None,
    temp_dir: TempDirOption = None,
    keep_tokens: KeepTokensOption = False,
    shard: Annotated[
        bool, typer.Option("--shard", help="Only tokenise: write a shard for `memlm merge` instead of a model.")
    ] = False,
    provenance: ProvenanceOption = False,
    cluster: ClusterOption = None,
) -> None:
    """Train a model and write it to one self-contained file (IGTree; with tribl2/ib1 also the instance base)."""
    with _clean_errors():
        if cluster is not None and (instances is not None or shard):
            raise MemlmError("--cluster builds a model from a corpus: not with --instances or --shard")
        if instances is not None:
            if corpus or shard or width is not None or provenance:
                raise MemlmError(
                    "give either a corpus or --instances, not both (and no --shard, --width or --provenance: "
                    "the instance file's columns give the width, and it has no source text to cite)"
                )
            with BuildProgress(stderr) as progress:
                model = memlm.train_instances(
                    instances, weighting=weighting, algorithms=algorithms, output=output, progress=progress
                )
            _wrote(output, model)
            return
        if not corpus:
            raise MemlmError("no corpus given (or use --instances FILE)")
        with BuildProgress(stderr) as progress:
            if shard:
                fields = memlm.make_shard(
                    corpus, output, tokenizer, text_field, errors, progress=progress, provenance=provenance
                )
                _wrote_shard(output, fields)
                return
            options = _build_options(weighting, algorithms, memory, temp_dir, keep_tokens, cluster)
            model = memlm.train(
                corpus,
                width=DEFAULT_WIDTH if width is None else width,
                tokenizer=tokenizer,
                text_field=text_field,
                errors=errors,
                progress=progress,
                output=output,
                provenance=provenance,
                **options,
            )
        _wrote(output, model)


@app.command()
def merge(
    inputs: Annotated[
        list[str], typer.Argument(metavar="SHARD_OR_MODEL", help="Shards, or models trained with --keep-tokens.")
    ],
    output: Annotated[str, typer.Option("-o", "--output", help="Model (or shard) file to write.")] = ...,
    width: WidthOption = DEFAULT_WIDTH,
    weighting: WeightingOption = "gain_ratio",
    algorithms: AlgorithmsOption = "igtree",
    memory: MemoryOption = None,
    temp_dir: TempDirOption = None,
    keep_tokens: KeepTokensOption = False,
    shard: Annotated[bool, typer.Option("--shard", help="Write one combined shard instead of a model.")] = False,
    provenance: Annotated[
        bool,
        typer.Option(
            "--provenance",
            help="Give the model a provenance index (every input must hold its blocks' origins: shards made "
            "with --provenance, models trained with --provenance --keep-tokens); a --shard keeps them anyway.",
        ),
    ] = False,
    cluster: ClusterOption = None,
) -> None:
    """Make one model of shards (or of models that kept their tokens): the model of their text, concatenated."""
    with _clean_errors():
        if shard:
            if cluster is not None:
                raise MemlmError("--cluster builds a model: not with --shard")
            _wrote_shard(output, memlm.merge_shards(inputs, output, provenance))
            return
        with BuildProgress(stderr) as progress:
            options = _build_options(weighting, algorithms, memory, temp_dir, keep_tokens, cluster)
            model = memlm.merge(inputs, width=width, progress=progress, output=output, provenance=provenance, **options)
        _wrote(output, model)


AlgorithmOption = Annotated[str, typer.Option(help=f"Classifier: {_either(memlm.ALGORITHMS)}.")]
KOption = Annotated[int, _int_option("-k", help="k-NN: how many nearest distances vote.")]
CacheOption = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        help="Score with the document cache (when the model has its weights), reset at every document: "
        "a whole text file, or one JSONL record.",
    ),
]
VoteOption = Annotated[str, typer.Option(help=f"k-NN votes: {_either(memlm.VOTES)}.")]
DecayOption = Annotated[float, typer.Option(help="Alpha of exponential_decay voting.")]


@app.command()
def generate(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    prompt: Annotated[
        str | None, typer.Argument(metavar="PROMPT", help="Prompt (read from stdin when omitted).")
    ] = None,
    max_new_tokens: Annotated[int, _int_option(help="Tokens to generate (below 2**64; Ctrl-C stops early).")] = 20,
    do_sample: Annotated[bool, typer.Option("--do-sample", help="Sample instead of greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_k: Annotated[int, _int_option(help="Sample among the k most frequent (0: all).")] = 50,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int | None, _int_option(help="Random seed, for repeatable sampling.")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop at this string (repeatable).")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they come.")] = False,
    algorithm: Annotated[
        str,
        typer.Option(help=f"Classifier ({_either(memlm.ALGORITHMS)}) or {KNESER_NEY} (the scoring distribution)."),
    ] = "igtree",
    k: KOption = 1,
    vote: VoteOption = "majority",
    decay: DecayOption = 1.0,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help=f"With {KNESER_NEY}: the document cache over the text so far.")
    ] = False,
) -> None:
    """Generate text after a prompt (greedy unless --do-sample)."""
    with _clean_errors():
        model = memlm.load(model_path)
        if prompt is None:
            prompt = "" if sys.stdin.isatty() else _read_stdin().rstrip("\n")
        else:
            _check_argument(prompt, "PROMPT")
        for text in stop or ():
            _check_argument(text, "--stop")
        pieces = model.stream(
            prompt,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            stop=stop,
            algorithm=algorithm,
            k=k,
            vote=vote,
            decay=decay,
            cache=cache,
        )
        if stream:
            sys.stdout.write(prompt)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            print(prompt + "".join(pieces))


def _check_argument(value: str, name: str) -> None:
    """An :class:`InvalidUtf8Error` when the command-line argument ``value`` was not valid UTF-8 (Python
    keeps such bytes as lone surrogates, which no tokenizer takes)."""
    try:
        value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidUtf8Error(f"the {name} argument", e.start) from None


def _read_stdin() -> str:
    """Standard input as text: UTF-8, or an :class:`InvalidUtf8Error`."""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidUtf8Error(source_name(STDIN), e.start) from None


@app.command()
def info(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's width, size, weights and tokenizer."""
    with _clean_errors():
        details = memlm.load(model_path).info()
        if as_json:
            print(json.dumps(details, indent=2))
            return
        per_token = details["bytes"] / max(details["training_instances"], 1)
        print(f"file                  {shown_path(model_path)}")
        print(f"width                 {details['width']}")
        print(f"training instances    {details['training_instances']:,}")
        print(f"symbols               {details['symbols']:,}")
        print(f"nodes                 {details['nodes']:,}")
        print(f"bytes                 {details['bytes']:,} ({per_token:.2f} per training token)")
        parts = ", ".join(f"{name} {size:,}" for name, size in details["size_breakdown"].items())
        print(f"  of which            {parts}")
        if details["scoring"] == "kneser_ney":
            kn = details["size_breakdown"]["kneser-ney"]
            per = kn / max(details["training_instances"], 1)
            print(f"scoring               Kneser-Ney, {kn:,} bytes ({per:.2f} per training token)")
        else:
            print("scoring               Witten-Bell along the IGTree path (no Kneser-Ney statistics)")
        provenance = details["size_breakdown"].get("provenance", 0)
        if provenance:
            per = provenance / max(details["training_instances"], 1)
            print(
                f"provenance            {provenance:,} bytes ({per:.2f} per training token, besides the training "
                f"text it shares with the Kneser-Ney statistics: {details['id_bytes']} per token)"
            )
        else:
            print("provenance            none (train with --provenance to cite training passages)")
        print(f"tokenizer             {details['tokenizer'] or 'none (symbol table)'}")
        print(f"weighting             {details['weighting']}")
        print(f"algorithms            {', '.join(details['algorithms'])}")
        print("feature order         " + " ".join(f"t-{d}" for d in details["feature_order"]))
        weights = details[details["weighting"]]
        print("weights (t-W .. t-1)  " + " ".join(f"{w:.4f}" for w in weights))


@app.command()
def explain(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    text: Annotated[str | None, typer.Argument(metavar="TEXT", help="Text to explain (- or piped in: stdin).")] = None,
    generate: Annotated[int, _int_option(help="First generate this many tokens after the text (greedy).")] = 0,
    algorithm: AlgorithmOption = "igtree",
    evidence: Annotated[int, _int_option(help="Training passages cited per token (with a provenance index).")] = 3,
    k: KOption = 1,
    vote: VoteOption = "majority",
    decay: DecayOption = 1.0,
    cache: CacheOption = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per token.")] = False,
    page: Annotated[
        str | None,
        typer.Option("--html", metavar="PAGE", help="Write a self-contained HTML page there (instead of the table)."),
    ] = None,
) -> None:
    """Explain every token of a text: the context matched, the answer and its counts, the token's probability,
    and training passages where the context was followed by the prediction."""
    with _clean_errors():
        if page is not None:
            page_path = output_file(page)
            not_an_input(page_path, [model_path])
        model = memlm.load(model_path)
        if text == STDIN or (text is None and not sys.stdin.isatty()):
            text = _read_stdin()
        elif text is None:
            raise MemlmError("no TEXT given: give it as an argument, or pipe it in (or give - to type it)")
        else:
            _check_argument(text, "TEXT")
        records = model.explain(
            text, algorithm=algorithm, evidence=evidence, generate=generate, k=k, vote=vote, decay=decay, cache=cache
        )
        if not records:
            raise MemlmError("the text holds no tokens to explain")
        if not model.has_provenance and as_json:
            print(f"{shown_path(model_path)}: {NO_PROVENANCE}", file=sys.stderr)
        if page is not None:
            write_page(records, page_path, model.token_string, f"memlm explain: {shown_path(model_path)}")
            print(f"wrote {shown_path(page_path)}: {len(records):,} tokens", file=sys.stderr)
        if as_json:
            for record in records:
                print(json.dumps(record.to_dict(), ensure_ascii=False))
        elif page is None:
            print_table(records, Console(), model.token_string)


@app.command()
def verify(model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")]) -> None:
    """Check every checksum and structural invariant of a model file (loading checks only the header)."""
    with _clean_errors():
        memlm.load(model_path, verify=True)
        print(f"{shown_path(model_path)}: ok")


@app.command()
def score(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    text_file: Annotated[str, typer.Argument(metavar="FILE", help="Text to score (- or omitted: stdin).")] = "-",
    text_field: TextFieldOption = "text",
    errors: ErrorsOption = "strict",
    cache: CacheOption = True,
) -> None:
    """Score text: per token its log10 probability, matched context length and OOV flag (KenLM style)."""
    with _clean_errors():
        model = memlm.load(model_path)
        # Each document (the file, or each JSONL record) is scored from an empty cache.
        documents = [model.score(doc, cache) for _, doc in iter_documents([text_file], text_field, errors)]
        out = sys.stdout
        for scores in documents:
            for s in scores:
                out.write(f"{s.token!r}\t{s.log10_prob:.6f}\t{s.context_length}\t{int(s.oov)}\n")
        log10 = np.concatenate([np.zeros(0), *(scores.log10_probs for scores in documents)])
        oov = np.concatenate([np.zeros(0, dtype=bool), *(scores.oov for scores in documents)])
        totals = perplexities(log10, oov)
        print(
            f"Total: {log10.sum():.4f} OOV: {totals['oov']}\n"
            f"Perplexity including OOVs:\t{totals['perplexity']:.4f}\n"
            f"Perplexity excluding OOVs:\t{totals['perplexity_excluding_oov']:.4f}\n"
            f"Tokens:\t{log10.size}",
            file=sys.stderr,
        )


@app.command("eval")
def evaluate(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    test: Annotated[list[str], typer.Argument(metavar="TESTFILE", help="Held-out text (files, dirs, .gz, .jsonl).")],
    algorithm: AlgorithmOption = "igtree",
    k: KOption = 1,
    vote: VoteOption = "majority",
    decay: DecayOption = 1.0,
    text_field: TextFieldOption = "text",
    errors: ErrorsOption = "strict",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cache: CacheOption = True,
) -> None:
    """Evaluate on held-out text: every token of every block is a target, its context the W tokens before it
    in the block (left-padded). Reports accuracy, top-5 accuracy, the scoring distribution's top-1 accuracy,
    perplexity, tokens/s and peak memory."""
    from rich.table import Table

    with _clean_errors():
        model = memlm.load(model_path)
        # k, vote and decay are checked whatever the algorithm: a value that does not apply must still be valid.
        result = run_evaluation(
            model,
            test,
            algorithm=algorithm,
            text_field=text_field,
            errors=errors,
            k=k,
            vote=vote,
            decay=decay,
            cache=cache,
        )
        if as_json:
            print(json.dumps(result, indent=2))
            return
        table = Table(title=f"memlm eval: {shown_path(Path(model_path).name)} on {', '.join(test)}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        rows = [
            ("algorithm", algorithm + (f" (k={k}, {vote})" if algorithm != "igtree" else "")),
            ("width", str(result["width"])),
            ("tokens", f"{result['tokens']:,}"),
            ("accuracy", f"{result['accuracy']:.4f}"),
            ("top-5 accuracy", f"{result['top5_accuracy']:.4f}"),
            ("top-1 accuracy of the scoring distribution (no cache)", _or_none(result["scoring_accuracy"], "{:.4f}")),
            ("perplexity", f"{result['perplexity']:.2f}"),
            ("perplexity excluding OOVs", f"{result['perplexity_excluding_oov']:.2f} ({result['oov']} OOV)"),
            ("tokens per second", f"{result['tokens_per_second']:,.0f}"),
            ("scoring tokens per second", f"{result['scoring_tokens_per_second']:,.0f}"),
            ("peak memory", f"{result['peak_rss_bytes'] / 2**20:.0f} MiB"),
        ]
        for name, value in rows:
            table.add_row(name, value)
        _Stdout().print(table)


def _or_none(value: float | None, form: str) -> str:
    """``value`` in ``form``, or "none" for a measure that does not apply."""
    return "none" if value is None else form.format(value)


@app.command()
def instances(
    corpus: Annotated[list[str], typer.Argument(metavar="CORPUS", help="Text files, directories, .gz, .jsonl, or -.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Instance file to write.")] = ...,
    width: WidthOption = DEFAULT_WIDTH,
    tokenizer: Annotated[str | None, typer.Option(help="tokenizers JSON file.")] = None,
    text_field: TextFieldOption = "text",
    errors: ErrorsOption = "strict",
) -> None:
    """Write the instances of a corpus in TiMBL's column format (token ids, _ for padding)."""
    with _clean_errors():
        context_width(width)
        not_an_input(output_file(output), [*corpus, tokenizer])
        tokens, lengths, spec, _ = memlm.tokenize(corpus, tokenizer, text_field, errors)
        memlm.write_instances(tokens, lengths, output, width, spec.vocab_size)
        print(f"wrote {shown_path(output)}: {tokens.size:,} instances of width {width}", file=sys.stderr)


@app.command()
def classify(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    instances: Annotated[str, typer.Option(help="TiMBL column-format test file.")] = ...,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Output (default stdout).")] = None,
    distribution: Annotated[
        bool, typer.Option("--distribution", help="After each class, every class's votes in braces (TiMBL's +v db).")
    ] = False,
    algorithm: AlgorithmOption = "igtree",
    k: KOption = 1,
    vote: VoteOption = "majority",
    decay: DecayOption = 1.0,
) -> None:
    """Classify an instance file; TiMBL's output layout and totals (`Seconds taken`, accuracy)."""
    with _clean_errors():
        model = memlm.load(model_path)
        totals = model.classify_file(instances, output, distribution, algorithm, k=k, vote=vote, decay=decay)
        n, seconds = totals["instances"], totals["seconds"]
        rate = n / seconds if seconds > 0 else float("inf")
        print(f"Tested: {n} instances", file=sys.stderr)
        print(f"Seconds taken: {seconds:.4f} ({rate:.2f} p/s)", file=sys.stderr)
        if totals["has_classes"] and n:
            print(
                f"overall accuracy:        {totals['correct'] / n:.6f}  ({totals['correct']}/{n})",
                file=sys.stderr,
            )


#: The ports a server can listen on (0: one the system picks).
PORTS = range(0, 1 << 16)
#: The most server processes `memlm serve --workers` starts.
MAX_WORKERS = 256


@app.command()
def serve(
    model_paths: Annotated[
        list[str], typer.Argument(metavar="MODEL", help="Model files, each served under its file's stem.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, _int_option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer KEY' on every route but / and /health.")
    ] = None,
    max_tokens_cap: Annotated[
        int, _int_option(help="The most tokens one completion or explanation may generate.")
    ] = MAX_TOKENS_CAP,
    workers: Annotated[
        int, _int_option(help=f"Server processes (1..{MAX_WORKERS}), each loading the models (memory-mapped: shared).")
    ] = 1,
    body_timeout: Annotated[
        int,
        _int_option(
            help=f"Seconds (1..{MAX_BODY_SECONDS}) a request's body may take to arrive after its head (then 408)."
        ),
    ] = BODY_SECONDS,
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = True,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API (/v1/completions, ...), with a playground page at /
    (needs FastAPI and uvicorn: the package's serve extra)."""
    with _clean_errors():
        try:
            from memlm.serving import server
        except ImportError as e:
            raise MemlmError(f'memlm serve needs {e.name or e}: pip install "memlm[serve]"') from None
        if port not in PORTS:
            raise MemlmError(f"--port must be from 0 to {PORTS[-1]}, got {port}")
        if not 1 <= workers <= MAX_WORKERS:
            raise MemlmError(f"--workers must be from 1 to {MAX_WORKERS}, got {workers}")
        if not 1 <= body_timeout <= MAX_BODY_SECONDS:
            raise MemlmError(f"--body-timeout must be from 1 to {MAX_BODY_SECONDS}, got {body_timeout}")
        settings = server.Settings.of(model_paths, api_key, max_tokens_cap, body_timeout)
        server.run(settings, host, port, workers, access_log)
