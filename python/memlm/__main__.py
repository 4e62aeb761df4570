"""``python -m memlm``: the same as the ``memlm`` command."""

from memlm.cli import app

app(prog_name="memlm")
