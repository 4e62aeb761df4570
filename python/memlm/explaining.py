"""How :meth:`memlm.Model.explain` builds its records: per token of a text, the classifier's answer, the
matched context, the scoring probability, and training passages from the provenance index.

Rules:
- The text is split into blocks at blank lines and each token is explained after the tokens before it in its
  block (as scoring and training see it). ``depth`` is how many context positions the answer matched in
  feature order (IGTree's path; TRIBL2's path before it switched to k-NN; 0 for IB1).
- ``context`` is the matched positions' ids, oldest first, without padding (a context matched past its
  block's start holds fewer ids than ``depth``).
- A cited passage is a training occurrence of the predicted token whose context matches the query's to the
  same depth in feature order (the provenance index's range, ``rust/core/src/provenance.rs``), spread evenly
  over all of them: up to ``PASSAGE_MARGIN`` tokens of its block before the matched context and after the
  token, widened to whole UTF-8 characters. For a k-NN answer the context is that of the nearest
  neighbour that counts the prediction (as far as its values are known, in feature order), which holds the
  query's matched context too (TRIBL2's neighbours lie below its matched node; IB1 matches none)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from memlm.corpus import split_blocks
from memlm.explanation import Explanation, Passage

if TYPE_CHECKING:
    from memlm.model import Model

#: Tokens of a passage's block shown before its matched context and after its token.
PASSAGE_MARGIN = 6
#: Class counts kept per token (the largest).
COUNTS_SHOWN = 10
#: Neighbours shown per k-NN answer (the nearest).
NEIGHBOURS_SHOWN = 8


def explain_text(
    model: Model, text: str, algorithm: str, evidence: int, k: int, vote: str, decay: float, cache: bool
) -> list[Explanation]:
    """The records of every token of ``text`` (see the module doc)."""
    contexts, targets = model.windows(split_blocks(text))
    log10, _, _ = model.score_windows(contexts, targets, cache=cache)
    classes, votes, depths, distances = model.predict_batch(contexts, COUNTS_SHOWN, algorithm, k, vote, decay)
    citer = Citer(model) if evidence and model.has_provenance else None
    order = model.feature_order
    width = model.width
    records = []
    for index, (context, target) in enumerate(zip(contexts.tolist(), targets.tolist(), strict=True)):
        depth, distance = int(depths[index]), float(distances[index])
        counts = {int(c): _number(v) for c, v in zip(classes[index], votes[index], strict=True) if c >= 0}
        prediction = next(iter(counts))
        matched = sorted(order[:depth])  # column order: oldest first
        context_ids = [context[f] for f in matched if context[f] != model.pad_id]
        neighbours = []
        if algorithm != "igtree":
            neighbours = model.neighbours(context, algorithm, k, vote, decay, NEIGHBOURS_SHOWN)
        cited, cited_depth = context, depth
        witness = next((n for n in neighbours if prediction in n.counts), None)
        if witness is not None:
            known = next((i for i, f in enumerate(order) if witness.context[f] is None), width)
            cited, cited_depth = [model.pad_id if v is None else v for v in witness.context], known
        passages = None if citer is None else citer.passages(prediction, cited, cited_depth, evidence)
        if evidence == 0 and model.has_provenance:
            passages = []  # none asked for
        records.append(
            Explanation(
                index=index,
                token=model.token_string(target),
                id=target,
                depth=depth,
                context=context_ids,
                algorithm=algorithm,
                how=_how(algorithm, depth, width, distance, k),
                distance=distance,
                prediction_id=prediction,
                prediction_token=model.token_string(prediction),
                counts=counts,
                probability=float(10.0 ** log10[index]),
                switched_at=depth if algorithm == "tribl2" else None,
                neighbours=neighbours,
                evidence=passages,
            )
        )
    return records


def _number(vote: float) -> int | float:
    """A vote as the count it is (IGTree), or as the weighted vote (k-NN)."""
    return int(vote) if float(vote).is_integer() else float(vote)


def _how(algorithm: str, depth: int, width: int, distance: float, k: int) -> str:
    """The answer in words."""
    if algorithm == "igtree":
        return f"IGTree: matched {depth} of {width} context positions (unmatched weight {distance:.4g})"
    if algorithm == "tribl2" and depth == width:
        return f"TRIBL2: matched all {width} context positions: the counts of the instances there"
    if algorithm == "tribl2":
        return f"TRIBL2: matched {depth} of {width} positions, then k-NN (k={k}) below: nearest distance {distance:.4g}"
    return f"IB1: k-NN (k={k}) over all instances: nearest distance {distance:.4g}"


class Citer:
    """Training passages of a model with a provenance index (see the module doc)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.text = model.training_text()
        self.block_pads = np.flatnonzero(self.text == model.pad_id)  # block b's tokens follow block_pads[b]
        self.origins = model.origins()
        self.sizes = model.tokenizer.token_byte_lengths()
        self.token_bytes = model.tokenizer.token_bytes()
        order = model.feature_order
        self.reach = [0] + [max(model.width - f for f in order[:d]) for d in range(1, model.width + 1)]

    def passages(self, token: int, context: list[int], depth: int, count: int) -> list[Passage]:
        """Up to ``count`` passages where ``token`` follows ``context`` matched to ``depth``."""
        _total, positions = self.model.occurrences(token, context, depth, count)
        return [self.passage(position, depth) for position in positions]

    def passage(self, position: int, depth: int) -> Passage:
        """The passage around training position ``position`` (in the text), its context ``depth`` deep."""
        block = int(np.searchsorted(self.block_pads, position, side="right")) - 1
        first = int(self.block_pads[block]) + 1
        end = int(self.block_pads[block + 1]) if block + 1 < self.block_pads.size else self.text.size
        ids = self.text[first:end]
        at = position - first
        context_start = max(at - self.reach[depth], 0)
        starts = np.concatenate(([0], np.cumsum(self.sizes[ids])))  # byte start of each token, and the end
        block_text = b"".join(self.token_bytes[i] for i in ids.tolist())
        start = _char_start(block_text, starts, max(context_start - PASSAGE_MARGIN, 0), -1)
        stop = _char_start(block_text, starts, min(at + 1 + PASSAGE_MARGIN, ids.size), +1)
        marks = (int(starts[context_start]), int(starts[at]), int(starts[at + 1]))
        span = self.origins.span(block, block_text, int(starts[start]), int(starts[stop]), marks)
        chars = [_chars(span.data, mark) for mark in span.marks]
        return Passage(
            source=span.source,
            offset=span.offset,
            text=span.data.decode("utf-8", errors="replace"),
            ids=ids[start:stop].tolist(),
            context_ids=(context_start - start, at - start),
            token_index=at - start,
            context_chars=(chars[0], chars[1]),
            token_chars=(chars[1], chars[2]),
        )


def _char_start(text: bytes, starts: np.ndarray, token: int, step: int) -> int:
    """The token nearest ``token`` (moving by ``step``) whose first byte starts a UTF-8 character."""
    while 0 < token < starts.size - 1 and text[int(starts[token])] & 0xC0 == 0x80:
        token += step
    return token


def _chars(data: bytes, byte: int) -> int:
    """How many characters the UTF-8 ``data`` holds before byte ``byte``."""
    return sum(1 for b in data[:byte] if b & 0xC0 != 0x80)
