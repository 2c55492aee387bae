"""Long runs of blank characters in generated text, made visible.

A character model often writes long runs of spaces or line breaks (indentation it
keeps extending, a loop on its likeliest character at low temperature). In a
``<pre>`` they show as empty space and the sample looks cut short, so runs of
:data:`LONGEST` or more blanks are drawn as a marker that says what they are.

Example::

    html.Pre(with_blank_runs(" the return\\n" + " " * 180))
    # [" the return", Span("⟨1 line break, 180 spaces⟩", className="blank-run"), "\\n"]
"""
from __future__ import annotations

import re

from dash import html

LONGEST = 16  # Python indentation in the built-in corpora is at most 12 spaces: shorter runs stay as written
_NAMES = (("\n", "line break", "line breaks"), (" ", "space", "spaces"), ("\t", "tab", "tabs"))


def describe_blanks(run: str) -> str:
    """What a run of blank characters holds, in words.

    >>> describe_blanks("\\n" + " " * 180), describe_blanks("  "), describe_blanks("\\r")
    ('1 line break, 180 spaces', '2 spaces', '1 blank character')
    """
    parts = [f"{run.count(ch)} {one if run.count(ch) == 1 else many}" for ch, one, many in _NAMES if ch in run]
    rest = len(run) - sum(run.count(ch) for ch, _, _ in _NAMES)
    if rest:
        parts.append(f"{rest} blank character" + ("s" if rest > 1 else ""))
    return ", ".join(parts)


def split_blank_runs(text: str, longest: int = LONGEST) -> list[tuple[str, bool]]:
    """``text`` as pieces ``(piece, is_long_blank_run)``, in order; the pieces join back to ``text``.

    >>> split_blank_runs("a" + " " * 20 + "b\\n  c", longest=16)
    [('a', False), ('                    ', True), ('b\\n  c', False)]
    """
    pieces = re.split(r"(\s{%d,})" % longest, text)
    return [(p, i % 2 == 1) for i, p in enumerate(pieces) if p]


def with_blank_runs(text: str, longest: int = LONGEST) -> str | list:
    """Children for a ``<pre>``: the text, with each long blank run as a marker (a line break kept after it);
    the text itself when it has no long run."""
    pieces = split_blank_runs(text, longest)
    if not any(long_run for _, long_run in pieces):
        return text
    out: list = []
    for piece, long_run in pieces:
        if not long_run:
            out.append(piece)
            continue
        out.append(html.Span(f"⟨{describe_blanks(piece)}⟩", className="blank-run",
                             title="a run of blank characters the model wrote, shortened here"))
        if "\n" in piece:
            out.append("\n")
    return out
