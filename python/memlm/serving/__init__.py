"""``memlm serve``: an OpenAI-compatible HTTP API over loaded models, and a playground page.

:func:`memlm.serving.app.create_app` makes the ASGI application (``pip install "memlm[serve]"``);
:func:`memlm.serving.server.run` serves it with uvicorn, in one or more worker processes. One job per module:
:mod:`.registry` (model names), :mod:`.schemas` (request bodies, and how they are parsed), :mod:`.errors`
(OpenAI-style error bodies), :mod:`.guards` (API key, body size limit, token cap), :mod:`.lane` (the route answered
before FastAPI), :mod:`.completions` (``/v1/completions``), :mod:`.inspection` (score, tokenize, detokenize,
explain), :mod:`.app` (the routes), :mod:`.coalescing` (one write per response), :mod:`.server` (sockets and
worker processes) and ``playground.html`` (the page at ``/``). This module imports nothing, so that the command
line can name its defaults without the serve extra installed."""

#: The default most tokens one completion (or explanation) may generate: ``--max-tokens-cap``.
MAX_TOKENS_CAP = 4096
#: The default body limit: 1 MiB, plenty for prompts (a lm-evaluation-harness batch of token ids is far less).
MAX_BODY_BYTES = 1 << 20
#: The default seconds a request's body may take to arrive once its head has (``--body-timeout``), and the most.
BODY_SECONDS = 30
MAX_BODY_SECONDS = 3600
