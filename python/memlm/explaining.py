"""How :meth:`memlm.Model.explain` builds its records: per token of a text, the classifier's answer, the
matched context, the scoring probability, and training passages from the provenance index.

Rules:
- The text is split into blocks at blank lines and each token is explained after the tokens before it in its
  block (as scoring and training see it). ``depth`` is how many context positions the answer matched in
  feature order (IGTree's path; TRIBL2's path before it switched to k-NN; 0 for IB1).
- ``context`` is the matched positions' ids, oldest first, without padding (a context matched past its
  block's start holds fewer ids than ``depth``).
- Passages are cited under a context and a depth: the query's own, or for a k-NN answer those of the
  nearest neighbour that counts the prediction (its values known so far in feature order), which hold the
  query's matched context too (TRIBL2's neighbours lie below its matched node; IB1 matches none). A passage
  is a training occurrence of the predicted token after that context matched to that depth (the provenance
  index's range, ``rust/core/src/provenance.rs``), spread evenly over all of them: up to
  ``PASSAGE_MARGIN`` tokens of its block before the cited context and after the token, widened to whole
  UTF-8 characters. :func:`check_passage` says whether a passage is what it claims."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from memlm.errors import ModelFormatError
from memlm.explanation import Explanation, Passage

if TYPE_CHECKING:
    from memlm.model import Model

#: Tokens of a passage's block shown before its cited context and after its token.
PASSAGE_MARGIN = 6
#: Class counts kept per token (the largest).
COUNTS_SHOWN = 10
#: Neighbours shown per k-NN answer (the nearest), and how many are looked through for the one to cite.
NEIGHBOURS_SHOWN = 8
NEIGHBOURS_SEARCHED = 64


def matched_columns(model: Model, depth: int) -> list[int]:
    """The context columns (0 the oldest of W) matched at ``depth`` in feature order, oldest first."""
    return sorted(model.feature_columns[:depth])


def explain_tokens(
    model: Model,
    tokens: np.ndarray,
    lengths: np.ndarray,
    algorithm: str,
    evidence: int,
    k: int,
    vote: str,
    decay: float,
    cache: bool,
) -> list[Explanation]:
    """The records of every token of the blocks ``tokens`` (concatenated, ``lengths`` long each; see the
    module doc)."""
    contexts, targets = model.windows(tokens=tokens, block_lengths=lengths)
    log10, _, _ = model.score_windows(contexts, targets, cache=cache)
    classes, votes, depths, distances = model.predict_batch(contexts, COUNTS_SHOWN, algorithm, k, vote, decay)
    blocks = np.repeat(np.arange(lengths.size), lengths.astype(np.int64))
    citer = Citer(model) if evidence and model.has_provenance else None
    width = model.width
    records = []
    for index, (context, target) in enumerate(zip(contexts.tolist(), targets.tolist(), strict=True)):
        depth, distance = int(depths[index]), float(distances[index])
        counts = {int(c): _number(v) for c, v in zip(classes[index], votes[index], strict=True) if c >= 0}
        prediction = next(iter(counts))
        neighbours = []
        cited, cited_depth = context, depth
        if algorithm != "igtree":
            neighbours = model.neighbours(context, algorithm, k, vote, decay, NEIGHBOURS_SEARCHED)
            witness = next((n for n in neighbours if prediction in n.counts), None)
            if witness is not None:
                known = next((i for i, f in enumerate(model.feature_columns) if witness.context[f] is None), width)
                cited, cited_depth = [model.pad_id if v is None else v for v in witness.context], known
        total, passages = 0, None
        if citer is not None:
            total, passages = citer.passages(prediction, cited, cited_depth, evidence)
        elif model.has_provenance:
            passages = []  # none asked for
        records.append(
            Explanation(
                index=index,
                block=int(blocks[index]),
                token=model.token_string(target),
                id=target,
                depth=depth,
                context=[context[f] for f in matched_columns(model, depth) if context[f] != model.pad_id],
                algorithm=algorithm,
                how=_how(algorithm, depth, width, distance, k),
                distance=distance,
                prediction_id=prediction,
                prediction_token=model.token_string(prediction),
                counts=counts,
                probability=float(10.0 ** log10[index]),
                switched_at=depth if algorithm == "tribl2" and depth < width else None,
                neighbours=neighbours[:NEIGHBOURS_SHOWN],
                evidence=passages,
                evidence_context=cited if passages is not None else [],
                evidence_depth=cited_depth if passages is not None else 0,
                evidence_total=total,
            )
        )
    return records


def _number(vote: float) -> int | float:
    """A vote as the count it is (IGTree), or as the weighted vote (k-NN)."""
    return int(vote) if float(vote).is_integer() else float(vote)


def _how(algorithm: str, depth: int, width: int, distance: float, k: int) -> str:
    """The answer in words."""
    if algorithm == "igtree":
        return f"IGTree: matched {depth} of {width} context positions (unmatched weight {abs(distance):.4g})"
    if algorithm == "tribl2" and depth == width:
        return f"TRIBL2: matched all {width} context positions: the counts of the instances there"
    if algorithm == "tribl2":
        return f"TRIBL2: matched {depth} of {width} positions, then k-NN (k={k}) below: nearest distance {distance:.4g}"
    return f"IB1: k-NN (k={k}) over all instances: nearest distance {distance:.4g}"


class Citer:
    """Training passages of a model with a provenance index (see the module doc)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.text, self.origins = model.training_text(), model.origins()
        self.block_pads = np.flatnonzero(self.text == model.pad_id)  # block b's tokens follow block_pads[b]
        if self.origins.n_blocks != self.block_pads.size:
            raise ModelFormatError(
                f"the model's provenance origins hold {self.origins.n_blocks:,} blocks, its text "
                f"{self.block_pads.size:,}: a damaged model file"
            )
        self.sizes = model.tokenizer.token_byte_lengths()
        self.token_bytes = model.tokenizer.token_bytes()
        order = model.feature_columns
        self.reach = [0] + [max(model.width - f for f in order[:d]) for d in range(1, model.width + 1)]

    def passages(self, token: int, context: list[int], depth: int, count: int) -> tuple[int, list[Passage]]:
        """How many training occurrences there are of ``token`` after ``context`` matched to ``depth``, and
        up to ``count`` passages of them."""
        total, positions = self.model.occurrences(token, context, depth, count)
        return total, [self.passage(position, depth) for position in positions]

    def passage(self, position: int, depth: int) -> Passage:
        """The passage around training position ``position`` (in the text), its context ``depth`` deep."""
        block = int(np.searchsorted(self.block_pads, position, side="right")) - 1
        first = int(self.block_pads[block]) + 1
        end = int(self.block_pads[block + 1]) if block + 1 < self.block_pads.size else self.text.size
        at = position - first
        context_start = max(at - self.reach[depth], 0)
        # The tokens around the passage (a character's bytes may span tokens), their bytes from the block's
        # start (only the block's prefix summed: a long block costs one pass of numpy).
        low = max(context_start - PASSAGE_MARGIN - 4, 0)
        high = min(at + 1 + PASSAGE_MARGIN + 4, end - first)
        ids = self.text[first + low : first + high]
        offset = int(self.sizes[self.text[first : first + low]].sum())
        starts = offset + np.concatenate(([0], np.cumsum(self.sizes[ids])))  # of tokens low..high
        window = b"".join(self.token_bytes[i] for i in ids.tolist())

        def byte(token: int) -> int:
            return int(starts[token - low])

        start = self._char_start(window, starts, max(context_start - PASSAGE_MARGIN, low), low, -1)
        stop = self._char_start(window, starts, min(at + 1 + PASSAGE_MARGIN, high), low, +1)
        marks = (byte(context_start), byte(at), byte(at + 1))
        span = self.origins.span(block, window, offset, byte(start), byte(stop), marks)
        return Passage(
            source=span.source,
            offset=span.offset,
            text=span.data.decode("utf-8", errors="replace"),
            ids=ids[start - low : stop - low].tolist(),
            context_ids=(context_start - start, at - start),
            token_index=at - start,
            context_chars=(_chars(span.data, span.marks[0], False), _chars(span.data, span.marks[1], False)),
            token_chars=(_chars(span.data, span.marks[1], False), _chars(span.data, span.marks[2], True)),
        )

    @staticmethod
    def _char_start(window: bytes, starts: np.ndarray, token: int, low: int, step: int) -> int:
        """The token nearest ``token`` (moving by ``step``, within the window) whose first byte starts a
        UTF-8 character."""
        while low < token < low + starts.size - 1 and window[int(starts[token - low] - starts[0])] & 0xC0 == 0x80:
            token += step
        return token


def _chars(data: bytes, byte: int, up: bool) -> int:
    """The character index of byte ``byte`` of the UTF-8 ``data``: a byte inside a character gives that
    character's start, or with ``up`` its end (so that a mark inside a character widens to all of it)."""
    begun = sum(1 for b in data[:byte] if b & 0xC0 != 0x80)  # characters that start before the byte
    inside = byte < len(data) and data[byte] & 0xC0 == 0x80
    return begun - (inside and not up)


def check_passage(model: Model, explanation: Explanation, passage: Passage, source: Callable[[str], bytes]) -> str:
    """What is wrong with a cited passage ('' when nothing): its ids must hold the cited context (as far as it
    is not padding) and then the prediction, and its text must be the bytes of its source (``source(name)``
    gives them, decompressed) at its offset."""
    if passage.ids[passage.token_index] != explanation.prediction_id:
        return "the passage's token is not the prediction"
    context_start, context_end = passage.context_ids
    if context_end != passage.token_index:
        return "the passage's context does not end at its token"
    for f in matched_columns(model, explanation.evidence_depth):
        at = passage.token_index - (model.width - f)
        value = explanation.evidence_context[f]
        if at >= context_start and passage.ids[at] != value:
            return f"the passage's id at {at} is not the context's"
        if at < context_start and value != model.pad_id:
            return "the passage starts inside the context"
    raw = passage.text.encode("utf-8")
    if source(passage.source)[passage.offset : passage.offset + len(raw)] != raw:
        return f"the passage's text is not in {passage.source} at {passage.offset}"
    return ""
