"""How explanations are shown: a rich table in the terminal (:func:`print_table`) and one self-contained static
HTML page (:func:`write_page`): the text with each token coloured by its matched depth, a click on a token
showing its explanation and training passages.

Both take the :class:`~memlm.explanation.Explanation` records of :meth:`memlm.Model.explain` and
``token_string``, a function from an id (the padding id included) to its text."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from memlm import _core
from memlm.explanation import Explanation, Passage

TokenString = Callable[[int], str]

#: What to do to see training passages, said when the model has no provenance index.
NO_PROVENANCE = "no provenance index: train with `memlm train --provenance` to see training passages"
#: Classes of the counts shown: 5 in the terminal's table, 10 on the page.
TABLE_COUNTS = 5
PAGE_COUNTS = 10
#: rich styles of a passage's marks.
MARK_STYLES = {"context": "bold cyan underline", "token": "bold black on yellow"}
#: Control characters as the terminal shows them inside a passage (one line per passage).
_VISIBLE = str.maketrans({"\n": "↵", "\r": "␍", "\t": "→"})


# -- shared -----------------------------------------------------------------------------------------


def _passage_pieces(passage: Passage) -> list[tuple[str, str]]:
    """The passage's text cut at its marks, in order: (text, mark) with mark ``"context"``, ``"token"`` or
    ``""`` (unmarked); empty pieces are left out."""
    text = passage.text
    (context_start, context_end), (token_start, token_end) = passage.context_chars, passage.token_chars
    pieces = [
        (text[:context_start], ""),
        (text[context_start:context_end], "context"),
        (text[context_end:token_start], ""),
        (text[token_start:token_end], "token"),
        (text[token_end:], ""),
    ]
    return [(piece, mark) for piece, mark in pieces if piece]


def _top_counts(explanation: Explanation, n: int, token_string: TokenString) -> list[tuple[str, int, int]]:
    """The ``n`` largest class counts as (token, id, count), largest first."""
    return [(token_string(i), i, count) for i, count in list(explanation.counts.items())[:n]]


# -- terminal ---------------------------------------------------------------------------------------


def print_table(explanations: Sequence[Explanation], console: Console, token_string: TokenString) -> None:
    """Prints a table of one row per token, then per token its neighbours and training passages with the
    context and the predicted token marked (or, without a provenance index, how to get passages)."""
    console.print(_table(explanations, token_string))
    for explanation in explanations:
        if explanation.neighbours or explanation.evidence is not None:
            console.print(_details(explanation, token_string))
    if explanations and all(e.evidence is None for e in explanations):
        console.print(Text(NO_PROVENANCE, style="dim"))


def _table(explanations: Sequence[Explanation], token_string: TokenString) -> Table:
    """The table: index, token, depth, matched context, classifier, prediction, probability, counts."""
    table = Table(title="memlm explain", show_lines=True)
    for name in ("#", "token", "depth", "matched context", "classifier", "prediction", "p(token)", "counts"):
        table.add_column(name, justify="right" if name in ("#", "depth", "p(token)") else "left")
    for e in explanations:
        counts = "\n".join(f"{token!r} {count}" for token, _, count in _top_counts(e, TABLE_COUNTS, token_string))
        table.add_row(
            Text(str(e.index)),
            Text(repr(e.token)),
            Text(str(e.depth)),
            Text(repr(_joined(e.context, token_string))),
            Text.assemble((e.algorithm, "bold"), "\n", (e.how, "dim")),
            Text(repr(e.prediction_token), style="green" if e.prediction_id == e.id else "red"),
            Text(f"{e.probability:.3g}"),
            Text(counts),
        )
    return table


def _details(e: Explanation, token_string: TokenString) -> Group:
    """A token's heading line, its neighbours and its passages (source:offset beside the marked text)."""
    passages = "no provenance index" if e.evidence is None else f"training passages: {len(e.evidence)}"
    heading = Text.assemble((f"#{e.index} {e.token!r}", "bold"), f" predicted {e.prediction_token!r}: {passages}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    for n in e.neighbours:
        counts = ", ".join(f"{token_string(i)!r} {count}" for i, count in n.counts.items())
        grid.add_row(f"distance {n.distance:g}", Text(f"{_joined(n.context, token_string)!r} → {counts}"))
    for passage in e.evidence or ():
        text = Text()
        for piece, mark in _passage_pieces(passage):
            text.append(piece.translate(_VISIBLE), style=MARK_STYLES.get(mark, ""))
        grid.add_row(Text(f"{passage.source}:{passage.offset}"), text)
    return Group(heading, Padding(grid, (0, 0, 0, 2)))


def _joined(ids: Sequence[int | None], token_string: TokenString) -> str:
    """The text of ids, token by token (a neighbour's unknown value as ``·``)."""
    return "".join("·" if i is None else token_string(i) for i in ids)


# -- page -------------------------------------------------------------------------------------------


def write_page(explanations: Sequence[Explanation], path: str | Path, token_string: TokenString, title: str) -> None:
    """Writes the page (atomically): one HTML file that needs nothing else, no network either."""
    _core.write_atomic(path, _page(explanations, token_string, title).encode())


def _page(explanations: Sequence[Explanation], token_string: TokenString, title: str) -> str:
    """The page's HTML: the tokens as clickable spans, the depth legend, the explanation panel, the data as
    JSON and the script that shows a token's explanation."""
    deepest = max((e.depth for e in explanations), default=0)
    data = {"noProvenance": NO_PROVENANCE, "tokens": [_page_token(e, token_string) for e in explanations]}
    return _PAGE.format(
        title=html.escape(title),
        depth_styles=_depth_styles(deepest),
        legend=" ".join(f'<span class="d{d}">{d}</span>' for d in range(deepest + 1)),
        text="".join(
            ("<br><br>" if i and e.block != explanations[i - 1].block else "") + _span(i, e)
            for i, e in enumerate(explanations)
        ),
        data=_script_json(data),
        script=_SCRIPT,
    )


def _script_json(value: object) -> str:
    """``value`` as JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes, so
    that no text in it can close the element or open a comment."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page_token(e: Explanation, token_string: TokenString) -> dict:
    """What the page's script shows of a token: its ids decoded, its numbers formatted (so that no NaN
    reaches JSON), its passages cut at their marks."""
    return {
        "index": e.index,
        "token": e.token,
        "id": e.id,
        "depth": e.depth,
        "context": [token_string(i) for i in e.context],
        "algorithm": e.algorithm,
        "how": e.how,
        "distance": f"{e.distance:.4g}",
        "switchedAt": e.switched_at,
        "prediction": {"id": e.prediction_id, "token": e.prediction_token},
        "probability": f"{e.probability:.4g}",
        "counts": _top_counts(e, PAGE_COUNTS, token_string),
        "neighbours": [
            {
                "distance": f"{n.distance:.4g}",
                "context": ["·" if i is None else token_string(i) for i in n.context],
                "counts": [(token_string(i), i, count) for i, count in n.counts.items()],
            }
            for n in e.neighbours
        ],
        "evidence": None
        if e.evidence is None
        else [{"source": p.source, "offset": p.offset, "pieces": _passage_pieces(p)} for p in e.evidence],
    }


def _span(position: int, e: Explanation) -> str:
    """A token of the text: coloured by its depth, underlined when predicted otherwise, marked ``nl`` when it
    is white space holding a line break (drawn with a ↵ to be seen and clicked)."""
    classes = ["t", f"d{e.depth}"]
    if e.prediction_id != e.id:
        classes.append("miss")
    if not e.token.strip() and "\n" in e.token:
        classes.append("nl")
    return f'<span class="{" ".join(classes)}" data-i="{position}" tabindex="0">{html.escape(e.token)}</span>'


def _depth_styles(deepest: int) -> str:
    """A CSS class per depth 0..deepest: light backgrounds from red (no context matched) to blue (deepest)."""
    return "\n".join(
        f".d{d} {{ background: hsl({10 + 200 * d / max(deepest, 1):.0f} 75% 84%); }}" for d in range(deepest + 1)
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }}
header {{ padding: 0.6em 1.2em; border-bottom: 1px solid #ddd; background: #fff; }}
h1 {{ font-size: 1.2em; margin: 0 0 0.3em; }}
.legend span {{ padding: 0 0.5em; border-radius: 3px; font-family: monospace; }}
main {{ display: flex; gap: 1.2em; padding: 1.2em; align-items: flex-start; }}
#text {{ flex: 1 1 50%; white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.9;
  background: #fff; padding: 1em; border: 1px solid #ddd; border-radius: 4px; }}
.t {{ cursor: pointer; border-radius: 2px; }}
.t:hover, .t:focus {{ outline: 2px solid #555; }}
.t.sel {{ outline: 2px solid #000; }}
.miss {{ text-decoration: underline dotted #a00; text-underline-offset: 3px; }}
.t.nl::before {{ content: "\\21b5"; color: #888; }}
#explanation {{ flex: 1 1 50%; background: #fff; padding: 1em; border: 1px solid #ddd; border-radius: 4px;
  position: sticky; top: 1em; max-height: calc(100vh - 4em); overflow: auto; }}
#explanation h2 {{ font-size: 1.1em; margin: 0 0 0.5em; }}
#explanation h3 {{ font-size: 1em; margin: 1em 0 0.3em; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; margin: 0; }}
dt {{ color: #666; }}
dd {{ margin: 0; }}
code {{ background: #f0f0f0; padding: 0 0.25em; border-radius: 2px; white-space: pre-wrap; }}
ol {{ margin: 0; padding-left: 1.5em; }}
.right {{ color: #070; }}
.wrong {{ color: #a00; }}
.passage {{ border-left: 3px solid #ccc; padding: 0.2em 0.7em; margin: 0.6em 0; }}
.passage .source {{ font-size: 0.85em; color: #666; font-family: monospace; }}
.passage pre {{ white-space: pre-wrap; margin: 0.2em 0 0; font-family: ui-monospace, monospace; }}
mark.context {{ background: #cde8ff; }}
mark.token {{ background: #ffe27a; font-weight: bold; }}
{depth_styles}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div class="legend">matched context length: {legend} · <span class="miss">underlined</span>: predicted otherwise
· click a token to see why</div>
</header>
<main>
<div id="text">{text}</div>
<section id="explanation"><p>Click a token to see its explanation and training passages.</p></section>
</main>
<script type="application/json" id="explanations">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_SCRIPT = """
"use strict";
const data = JSON.parse(document.getElementById("explanations").textContent);
const panel = document.getElementById("explanation");

function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}
const quoted = (s) => el("code", {}, JSON.stringify(s));
const tokens = (list) => list.length ? list.flatMap((s) => [quoted(s), " "]) : ["(none)"];
const counts = (list) => el("ol", {}, ...list.map(([s, id, n]) => el("li", {}, quoted(s), ` id ${id}: ${n}`)));

function passage(p) {
  const text = p.pieces.map(([piece, mark]) => mark ? el("mark", {className: mark}, piece) : piece);
  return el("div", {className: "passage"}, el("div", {className: "source"}, `${p.source}:${p.offset}`),
    el("pre", {}, ...text));
}

function evidence(t) {
  if (t.evidence === null) return el("p", {id: "evidence"}, data.noProvenance);
  if (!t.evidence.length) return el("p", {id: "evidence"}, "no training passage");
  return el("div", {id: "evidence"}, ...t.evidence.map(passage));
}

function details(t) {
  const right = t.prediction.id === t.id;
  const rows = [
    ["token", [quoted(t.token), ` id ${t.id}, position ${t.index}`]],
    ["prediction", [quoted(t.prediction.token), el("span", {className: right ? "right" : "wrong"},
      right ? " \\u2713 right" : " \\u2717 wrong")]],
    ["p(token)", [t.probability]],
    [`matched context (${t.depth})`, tokens(t.context)],
    ["classifier", [el("b", {}, t.algorithm), ": ", t.how]],
    ["distance", [t.distance]],
  ];
  if (t.switchedAt !== null) rows.push(["switched to k-NN at", [String(t.switchedAt)]]);
  rows.push([`counts (largest)`, [counts(t.counts)]]);
  return el("dl", {}, ...rows.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, ...value)]));
}

function neighbours(t) {
  if (!t.neighbours.length) return [];
  return [el("h3", {}, "nearest neighbours"), el("ol", {}, ...t.neighbours.map((n) =>
    el("li", {}, `distance ${n.distance}: `, ...tokens(n.context), counts(n.counts))))];
}

function show(span) {
  const t = data.tokens[Number(span.dataset.i)];
  document.querySelectorAll(".t.sel").forEach((s) => s.classList.remove("sel"));
  span.classList.add("sel");
  panel.replaceChildren(el("h2", {}, "Why ", quoted(t.token)), details(t), ...neighbours(t),
    el("h3", {}, "training passages"), evidence(t));
}

const text = document.getElementById("text");
text.addEventListener("click", (event) => {
  const span = event.target.closest(".t");
  if (span) show(span);
});
text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.target.matches(".t")) show(event.target);
});
"""
