"""``POST /v1/completions``: OpenAI's completions over memlm's generation, with log probabilities from
memlm's scoring distribution.

Each prompt (text, or token ids: one block either way) gets ``n`` choices, indexed as OpenAI does (prompt
``p``'s ``j``-th choice is ``p * n + j``). A choice's text is what :meth:`memlm.Model.generate` gives for the
same arguments: ``temperature`` 0 is greedy, any other samples with that temperature, ``top_p`` and ``top_k``
(memlm's addition; 0 samples among all classes); choice ``j`` of a request with a ``seed`` uses ``seed + j``
(so choices differ and the request is repeatable). The text ends before the first ``stop`` string; its
tokens then run to the one that completed the stop string. ``finish_reason`` is ``"length"`` when
``max_tokens`` were generated, else ``"stop"``.

``logprobs`` N gives per token its natural-log probability under the scoring distribution
(:meth:`memlm.Model.probabilities`: Kneser-Ney, without the document cache) and the N most probable tokens
after the same context (ties: the lower id), as ``{token: logprob}``; ``echo`` puts the prompt before the
text, and with ``logprobs`` the prompt's tokens before the generated ones, the first prompt token's log
probability being null (as OpenAI's). ``text_offset`` counts characters of the tokens' strings from the
start of the choice's text. This is what lm-evaluation-harness's ``local-completions`` reads.

This runs in the thread pool (the lane's handler hands it over), but for a short completion (:func:`on_event_loop`),
answered on the event loop; generation itself runs in the core with the GIL released.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import memlm
from memlm.errors import MemlmError
from memlm.generation import StopCutter, TextDecoder, stop_list
from memlm.serving.errors import APIError, error_body, json_bytes
from memlm.serving.guards import within_cap
from memlm.serving.inspection import known_ids
from memlm.serving.schemas import CompletionRequest

log = logging.getLogger("memlm.serve")

#: A completion's id: ``cmpl-`` and 128 random bits in hex, from a generator seeded from the system's random source
#: when the process starts (ids are names, not secrets: no system call per request, and nothing about the
#: traffic shows in them).
_IDS = random.Random()
#: Seeds wrap here (``seed + j`` of choice ``j``).
_SEEDS = 2**64
#: The most ids decoded in one call: the tokenizer holds the GIL while it decodes (about 0.15 µs per id),
#: so that no long generation holds up the event loop's thread for more than a millisecond or two.
DECODE_SLICE = 4096
#: The lists of a choice's ``logprobs``, one entry per token.
LOGPROB_KEYS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


@dataclass(frozen=True)
class Prompt:
    """A prompt as ids and as text (the ids of a text, or the text of ids)."""

    ids: list[int]
    text: str


@dataclass(frozen=True)
class Piece:
    """Part of a choice: text, the logprobs of the tokens that came with it (when asked), and on the last
    piece the finish reason and the number of tokens generated."""

    text: str
    logprobs: dict | None = None
    finish_reason: str | None = None
    completion_tokens: int = 0


@dataclass
class Completion:
    """A request's choices, checked and started: ``choices[i]`` gives the pieces of choice ``i``."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    #: Whether the request asked for logprobs.
    with_logprobs: bool
    choices: list[Iterator[Piece]]


def start(model: memlm.Model, request: CompletionRequest, max_tokens_cap: int) -> Completion:
    """Checks ``request`` against ``model`` and the server's cap and starts every choice (any bad value
    raises here, before anything is sent): a choice streamed or with stop strings generates as its pieces are
    read, any other here."""
    within_cap(request.max_tokens, max_tokens_cap, "max_tokens")
    try:
        stops = stop_list(request.stop)
    except MemlmError as e:
        raise APIError(400, str(e), "stop", "invalid_value") from None
    prompts = [_prompt(model, p) for p in request.prompts()]
    _within_budget(request, prompts)
    sampled = request.temperature > 0
    plain = not request.echo and request.logprobs is None
    choices: list[Iterator[Piece]] = []
    for prompt in prompts:
        for j in range(request.n):
            options = {
                "max_new_tokens": request.max_tokens,
                "do_sample": sampled,
                "temperature": request.temperature if sampled else 1.0,
                "top_k": request.top_k,
                "top_p": request.top_p,
                "seed": None if request.seed is None else (request.seed + j) % _SEEDS,
            }
            # Streamed or cut at a stop string: the ids as they come (no more are generated than are read);
            # else all at once (fewer calls into the core), and a plain choice is one piece.
            if request.stream or stops:
                choices.append(_pieces(model, prompt, model.stream_ids(prompt.ids, **options), request, stops))
                continue
            ids = model.generate_ids(prompt.ids, **options)
            if plain and len(ids) <= DECODE_SLICE:
                choices.append(iter([_whole(model, ids, request.max_tokens)]))
            else:
                choices.append(_pieces(model, prompt, iter([ids]), request, stops))
    prompt_tokens = sum(len(p.ids) for p in prompts)
    completion_id = f"cmpl-{_IDS.getrandbits(128):032x}"
    with_logprobs = request.logprobs is not None
    return Completion(completion_id, int(time.time()), request.model, prompt_tokens, with_logprobs, choices)


#: Tokens one request may generate in all (choices x max_tokens), and score with ``logprobs`` in all (choices x
#: (max_tokens + the prompt's tokens when echoed)): what a 2-core machine does in seconds (generating costs ~2
#: µs per token, a token's logprobs ~0.4 ms), so that no request holds the server for long.
MAX_GENERATED_TOKENS = 1 << 20
MAX_SCORED_TOKENS = 1 << 14


#: A completion answered on the event loop's thread, without the hop to the thread pool (which costs about as
#: much as generating 32 tokens): one of at most ON_LOOP_CHOICES choices and ON_LOOP_TOKENS tokens in all, from a
#: body of at most ON_LOOP_BODY_BYTES (which bounds the prompts' encoding; the server builds the tokenizer's fast
#: path at load for this), without logprobs or stop strings (a choice cut at a stop string is decoded a token at a
#: time: 1.4 ms for 256 tokens). It holds the loop for well under a millisecond.
ON_LOOP_TOKENS = 256
ON_LOOP_CHOICES = 4
ON_LOOP_BODY_BYTES = 2 << 10


def on_event_loop(request: CompletionRequest, body_bytes: int) -> bool:
    """Whether ``request`` (a body of ``body_bytes``) is short enough to be answered on the event loop (see
    :data:`ON_LOOP_TOKENS`)."""
    return (
        request.generated_tokens() <= ON_LOOP_TOKENS
        and len(request.prompts()) * request.n <= ON_LOOP_CHOICES
        and body_bytes <= ON_LOOP_BODY_BYTES
        and request.logprobs is None
        and not request.stop
    )


def _within_budget(request: CompletionRequest, prompts: list[Prompt]) -> None:
    """A 400 for a request whose choices would generate or score more tokens than one request may."""
    generated = request.generated_tokens()
    if generated > MAX_GENERATED_TOKENS:
        message = f"{generated:,} tokens (prompts x n x max_tokens): at most {MAX_GENERATED_TOKENS:,} per request"
        raise APIError(400, message, "max_tokens", "invalid_value")
    if request.logprobs is None:
        return
    echoed = sum(len(p.ids) for p in prompts) if request.echo else 0
    scored = request.n * (len(prompts) * request.max_tokens + echoed)
    if scored > MAX_SCORED_TOKENS:
        message = f"logprobs for {scored:,} tokens: at most {MAX_SCORED_TOKENS:,} per request (fewer n, max_tokens)"
        raise APIError(400, message, "logprobs", "invalid_value")


def _prompt(model: memlm.Model, prompt: str | list[int]) -> Prompt:
    try:
        if isinstance(prompt, str):
            return Prompt(model.encode(prompt), prompt)
        return Prompt(known_ids(model, prompt, "prompt"), model.decode(prompt))
    except MemlmError as e:
        raise APIError(400, str(e), "prompt", "invalid_value") from None


def _whole(model: memlm.Model, ids: list[int], max_tokens: int) -> Piece:
    """A choice of ``ids`` (at most :data:`DECODE_SLICE`) without echo, logprobs or stop strings, as one piece:
    the text :func:`_pieces` gives in pieces, decoded at once."""
    return Piece(model.tokenizer.decode(ids), None, _finish_reason(len(ids), max_tokens, False), len(ids))


def _pieces(
    model: memlm.Model, prompt: Prompt, generated: Iterator[list[int]], request: CompletionRequest, stops: list[str]
) -> Iterator[Piece]:
    """A choice piece by piece: the prompt when echoed, the generated text as its ids come (decoded at most
    :data:`DECODE_SLICE` ids at a time; with stop strings one token at a time, so that the tokens end where
    the text stopped), and a last piece with the finish reason."""
    ids = list(prompt.ids)
    scorer = None if request.logprobs is None else TokenLogprobs(model, request.logprobs)
    if request.echo:
        yield Piece(prompt.text, scorer and scorer.of(ids, 0, first_null=True))
    decoder, cutter = TextDecoder(model.tokenizer.decode), StopCutter(stops)
    for chunk in generated:
        first, text = len(ids), ""
        slices = (chunk[i : i + DECODE_SLICE] for i in range(0, len(chunk), DECODE_SLICE))
        for step in ([i] for i in chunk) if stops else slices:
            ids.extend(step)
            text += cutter.feed(decoder.push(step))
            if cutter.stopped:
                break
        if text or scorer:
            yield Piece(text, scorer and scorer.of(ids, first))
        if cutter.stopped:
            break
    rest = cutter.feed(decoder.finish()) + cutter.finish()
    count = len(ids) - len(prompt.ids)
    yield Piece(rest, None, _finish_reason(count, request.max_tokens, cutter.stopped), count)


def _finish_reason(generated: int, max_tokens: int, stopped: bool) -> str:
    """OpenAI's ``finish_reason``: ``"length"`` when ``max_tokens`` were generated and no stop string cut the
    text, else ``"stop"``."""
    return "length" if generated == max_tokens and not stopped else "stop"


class TokenLogprobs:
    """OpenAI's ``logprobs`` of a choice's tokens, from the scoring distribution (see the module's docstring)."""

    def __init__(self, model: memlm.Model, top: int):
        self._model, self._top = model, top
        self._offset = 0  # characters of the token strings so far

    def of(self, ids: list[int], start: int, first_null: bool = False) -> dict:
        """The logprobs of ``ids[start:]``, each after the ids before it (one block); with ``first_null``
        the first token's are null."""
        model, width = self._model, self._model.width
        tokens, logprobs, tops, offsets = [], [], [], []
        for j in range(start, len(ids)):
            token = model.token_string(ids[j])
            if first_null and j == 0:
                logprobs.append(None)
                tops.append(None)
            else:
                p = model.probabilities(ids[max(0, j - width) : j])
                logprobs.append(_ln(p[ids[j]]))
                tops.append(self._best(p))
            tokens.append(token)
            offsets.append(self._offset)
            self._offset += len(token)
        return dict(zip(LOGPROB_KEYS, (tokens, logprobs, tops, offsets), strict=True))

    def _best(self, p: np.ndarray) -> dict[str, float]:
        """The ``top`` most probable tokens of ``p`` (ties: the lower id) as {token: logprob}; a token
        string that two ids share keeps the more probable."""
        if not self._top:
            return {}
        best = np.argpartition(-p, self._top - 1)[: self._top] if self._top < p.size else np.arange(p.size)
        best = best[np.lexsort((best, -p[best]))]
        out: dict[str, float] = {}
        for i in best.tolist():
            logprob = _ln(p[i])
            if logprob is not None:
                out.setdefault(self._model.token_string(i), logprob)
        return out


def _ln(probability: float) -> float | None:
    """The natural log of a probability; None for 0 (JSON has no -infinity)."""
    return math.log(probability) if probability > 0 else None


def complete(model: memlm.Model, request: CompletionRequest, max_tokens_cap: int) -> dict:
    """The response of a completion that is not streamed: :func:`start`, then every choice generated whole."""
    completion = start(model, request, max_tokens_cap)
    choices, generated = [], 0
    for index, pieces in enumerate(completion.choices):
        parts = list(pieces)
        logprobs = None
        if completion.with_logprobs:
            scored = [p.logprobs for p in parts if p.logprobs is not None]
            logprobs = {key: [value for part in scored for value in part[key]] for key in LOGPROB_KEYS}
        generated += parts[-1].completion_tokens
        choices.append(_choice(index, "".join(p.text for p in parts), logprobs, parts[-1].finish_reason))
    return {**_head(completion), "choices": choices, "usage": _usage(completion.prompt_tokens, generated)}


def events(completion: Completion, include_usage: bool) -> Iterator[bytes]:
    """The streamed response: server-sent events ``data: {...}``, one per piece of each choice in turn (a
    choice's last event has its finish reason), with ``include_usage`` one with the usage counts and no
    choices, then ``data: [DONE]``. An error after the first event (the status is sent by then) is sent as
    an event with OpenAI's error body, and logged."""
    head, generated = _head(completion), 0
    try:
        for index, pieces in enumerate(completion.choices):
            for piece in pieces:
                yield _event({**head, "choices": [_choice(index, piece.text, piece.logprobs, piece.finish_reason)]})
                generated += piece.completion_tokens
        if include_usage:
            yield _event({**head, "choices": [], "usage": _usage(completion.prompt_tokens, generated)})
    except Exception as error:
        log.exception("a streamed completion failed")
        yield _event(error_body(500, str(error)))
    yield b"data: [DONE]\n\n"


def _event(data: dict) -> bytes:
    return b"data: " + json_bytes(data) + b"\n\n"


def _head(completion: Completion) -> dict:
    return {"id": completion.id, "object": "text_completion", "created": completion.created, "model": completion.model}


def _choice(index: int, text: str, logprobs: dict | None, finish_reason: str | None) -> dict:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}
