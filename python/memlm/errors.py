"""memlm's exceptions. All derive from :class:`MemlmError`; file-system failures stay :class:`OSError`."""

from __future__ import annotations

from memlm._core import InstanceFileError, MemlmError, ModelFormatError


class CorpusError(MemlmError):
    """A corpus could not be read: empty, missing text field, bad UTF-8, unknown source."""


class InvalidUtf8Error(CorpusError):
    """A corpus that is not valid UTF-8 (read with ``errors="strict"``): ``source`` and the byte ``offset`` of
    the first bad byte. The message tells how to substitute bad bytes: ``option`` names the switch, as the
    Python keyword (``errors='replace'``) or, raised to the command line, its option."""

    def __init__(self, source: str, offset: int, option: str = "errors='replace'"):
        self.source, self.offset = source, offset
        super().__init__(f"{source}: invalid UTF-8 at byte offset {offset} (use {option} to substitute)")

    def for_option(self, option: str) -> InvalidUtf8Error:
        """The same error, its message naming ``option`` (``--errors replace``)."""
        return InvalidUtf8Error(self.source, self.offset, option)


class TokenizerMismatchError(MemlmError):
    """A tokenizer other than the one the model was built with was given."""


__all__ = [
    "CorpusError",
    "InstanceFileError",
    "InvalidUtf8Error",
    "MemlmError",
    "ModelFormatError",
    "TokenizerMismatchError",
]
