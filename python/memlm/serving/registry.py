"""The models a server answers for, by name: each model file's stem (``emma.memlm`` is ``emma``).

A request names a model; the name is only ever a key of this dict, so no request can make the server open a
file: the files are the ones given on the command line, loaded (and checked) before the server starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import memlm
from memlm.errors import MemlmError
from memlm.serving.errors import APIError


def load_models(paths: Sequence[str | Path]) -> dict[str, memlm.Model]:
    """The models of ``paths`` by file stem, loaded in order; two files of one stem are an error (a
    :class:`MemlmError` naming both), as is no file at all."""
    if not paths:
        raise MemlmError("give at least one model file to serve")
    stems: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.stem in stems:
            raise MemlmError(f"two models would be named {path.stem!r}: {stems[path.stem]} and {path} (rename one)")
        stems[path.stem] = path
    models = {name: memlm.load(path) for name, path in stems.items()}
    for model in models.values():
        if model.has_tokenizer:
            # Built now, not after the first half million characters of requests: short completions are answered
            # on the event loop (completions.on_event_loop), whose prompts must encode fast from the first.
            _ = model.tokenizer.fast_path
    return models


def model_named(models: Mapping[str, memlm.Model], name: str) -> memlm.Model:
    """The model called ``name``, or a 404 :class:`APIError` that lists the names there are."""
    model = models.get(name)
    if model is None:
        there = ", ".join(repr(n) for n in models)
        raise APIError(404, f"the model {name!r} does not exist: this server has {there}", "model", "model_not_found")
    return model
