"""Long runs of blank characters in generated text, made visible.

A character model often writes long runs of spaces or line breaks (indentation it
keeps extending, a loop on its likeliest character at low temperature). In a
``<pre>`` they show as empty space and the sample looks cut short, so a run with more
than :data:`MAX_BREAKS` line breaks, or a stretch of more than :data:`MAX_INDENT` spaces
or tabs on one line, is drawn as a marker that says what it holds. Everything shorter
(a line break and the next line's indentation, a blank line or two) is shown as written.

Example::

    html.Pre(with_blank_runs(" the return\\n" + " " * 180))
    # [" the return", Span("⟨1 line break, 180 spaces⟩", className="blank-run"), "\\n"]
"""
from __future__ import annotations

import re

from dash import html

MAX_INDENT = 32  # spaces or tabs on one line shown as written: deep indentation is still code
MAX_BREAKS = 3  # line breaks in a row shown as written: a blank line or two between blocks
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


def too_long(run: str, max_indent: int = MAX_INDENT, max_breaks: int = MAX_BREAKS) -> bool:
    """Whether a run of blank characters is drawn as a marker rather than as written.

    >>> too_long("\\n" + " " * 24), too_long("\\n" + " " * 180), too_long("\\n" * 5), too_long(" " * 40)
    (False, True, True, True)
    """
    return run.count("\n") > max_breaks or max(len(line) for line in re.split(r"[\r\n]", run)) > max_indent


def split_blank_runs(text: str, max_indent: int = MAX_INDENT) -> list[tuple[str, bool]]:
    """``text`` as pieces ``(piece, is_long_blank_run)``, in order; the pieces join back to ``text``.

    >>> split_blank_runs("a" + " " * 40 + "b\\n  c")
    [('a', False), ('                                        ', True), ('b\\n  c', False)]
    """
    out: list[tuple[str, bool]] = []
    for i, piece in enumerate(re.split(r"(\s+)", text)):
        if not piece:
            continue
        long_run = i % 2 == 1 and too_long(piece, max_indent)
        if out and not long_run and not out[-1][1]:
            out[-1] = (out[-1][0] + piece, False)  # text and short blanks stay one piece
        else:
            out.append((piece, long_run))
    return out


def with_blank_runs(text: str, max_indent: int = MAX_INDENT) -> str | list:
    """Children for a ``<pre>``: the text, with each long blank run as a marker (a line break kept after it);
    the text itself when it has no long run."""
    pieces = split_blank_runs(text, max_indent)
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
