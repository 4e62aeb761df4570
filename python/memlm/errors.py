"""memlm's exceptions. All derive from :class:`MemlmError`; file-system failures stay :class:`OSError`."""

from memlm._core import InstanceFileError, MemlmError, ModelFormatError


class CorpusError(MemlmError):
    """A corpus could not be read: empty, missing text field, bad UTF-8, unknown source."""


class TokenizerMismatchError(MemlmError):
    """A tokenizer other than the one the model was built with was given."""


__all__ = ["CorpusError", "InstanceFileError", "MemlmError", "ModelFormatError", "TokenizerMismatchError"]
