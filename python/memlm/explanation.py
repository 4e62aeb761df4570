"""What :meth:`memlm.Model.explain` returns: per token, why the model predicted what it did, with training evidence.

Typed records only (no model access): :class:`Explanation` per token, with its :class:`Neighbour` list (k-NN
answers) and :class:`Passage` list (training occurrences, from a model trained with a provenance index).
``to_dict`` gives the JSON form that ``memlm explain --json`` prints, one object per token."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Passage:
    """A training occurrence of the matched context followed by the predicted token.

    ``source`` is the path as given at training; ``offset`` the byte offset in it (of the decompressed bytes
    for gzip) where ``text`` starts; ``text`` the passage exactly as the source's bytes read it from there;
    ``ids`` its token ids. ``context_ids`` is the range of ``ids`` from the oldest cited context position
    to the predicted token and ``token_index`` the index in ``ids`` of the predicted token; ``context_chars``
    and ``token_chars`` are the same spans as character ranges of ``text`` (for marking them; a token that
    is part of a character marks all of it)."""

    source: str
    offset: int
    text: str
    ids: list[int]
    context_ids: tuple[int, int]
    token_index: int
    context_chars: tuple[int, int]
    token_chars: tuple[int, int]


@dataclass(frozen=True)
class Neighbour:
    """A nearest neighbour of a k-NN answer: its distance, its context (W ids oldest first, the padding id
    before a block's start, None where the neighbour is a trie node standing for several instances that
    differ there) and its class counts as {id: count}."""

    distance: float
    context: list[int | None]
    counts: dict[int, int | float]


@dataclass(frozen=True)
class Explanation:
    """Why one token (``index`` in the text, in block ``block``): the context matched (``depth`` positions,
    ``context`` their ids oldest first), which classifier answered and how (``how``, in words; ``distance``:
    IGTree's summed weight of the unmatched positions, or the nearest neighbours' distance; ``switched_at``:
    the depth where TRIBL2 switched to k-NN, when it did), the class counts behind the answer (``counts``,
    {id: count}, up to 10, largest first; k-NN: weighted votes), the prediction, the scoring probability of
    the actual token (``probability``) and the evidence (``evidence``: None without a provenance index, else
    up to the number asked of passages, cited under ``evidence_context``, W ids oldest first, matched to
    ``evidence_depth`` positions in feature order: the query's context, or for k-NN the nearest neighbour
    that counts the prediction; ``evidence_total``: how many training occurrences there are in all)."""

    index: int
    block: int
    token: str
    id: int
    depth: int
    context: list[int]
    algorithm: str
    how: str
    distance: float
    prediction_id: int
    prediction_token: str
    counts: dict[int, int | float]
    probability: float
    switched_at: int | None = None
    neighbours: list[Neighbour] = field(default_factory=list)
    evidence: list[Passage] | None = None
    evidence_context: list[int] = field(default_factory=list)
    evidence_depth: int = 0
    evidence_total: int = 0

    def to_dict(self) -> dict:
        """The JSON form: the keys ``memlm explain --json`` prints (``counts`` keyed by id as a string)."""
        return {
            "index": self.index,
            "block": self.block,
            "token": self.token,
            "id": self.id,
            "depth": self.depth,
            "context": self.context,
            "algorithm": self.algorithm,
            "how": self.how,
            "distance": self.distance,
            "switched_at": self.switched_at,
            "neighbours": [{**asdict(n), "counts": {str(k): v for k, v in n.counts.items()}} for n in self.neighbours],
            "prediction": {"id": self.prediction_id, "token": self.prediction_token},
            "counts": {str(k): v for k, v in self.counts.items()},
            "probability": self.probability,
            "evidence": None if self.evidence is None else [asdict(p) for p in self.evidence],
            "evidence_context": self.evidence_context,
            "evidence_depth": self.evidence_depth,
            "evidence_total": self.evidence_total,
        }
