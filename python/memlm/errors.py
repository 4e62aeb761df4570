"""memlm's exceptions. All derive from :class:`MemlmError`; file-system failures stay :class:`OSError`."""

from __future__ import annotations

from memlm._core import InstanceFileError, MemlmError, ModelFormatError


class CorpusError(MemlmError):
    """A corpus could not be read: empty, missing text field, bad UTF-8, unknown source."""


class InvalidUtf8Error(CorpusError):
    """Text that is not valid UTF-8: its ``source`` (a file, ``<stdin>``, a command-line argument) and the
    byte ``offset`` of the first bad byte. Where bad bytes can be substituted, ``option`` names the switch
    in the message: the Python keyword (``errors='replace'``) or, raised to the command line, its option."""

    def __init__(self, source: str, offset: int, option: str | None = None):
        self.source, self.offset, self.option = source, offset, option
        hint = f" (use {option} to substitute)" if option else ""
        super().__init__(f"{source}: invalid UTF-8 at byte offset {offset}{hint}")

    def __reduce__(self):
        """Pickled by its fields (a cluster build's task raises it on a worker, the client raises it again)."""
        return (InvalidUtf8Error, (self.source, self.offset, self.option))

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


def one_line(error: BaseException) -> str:
    """``error`` as its class name and message on one line of at most 200 characters (for a line that cites it)."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:200]
