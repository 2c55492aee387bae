"""Per-character annotation tracks of probe texts, and the nested-bracket text generator.

Pure numpy + standard library (no torch). Every track is a float32 array with one
value per character of the text; the value at character ``t`` describes the state
*after reading* character ``t``: an opening bracket already counts in its own depth,
a closing one no longer does.

Example::

    tracks = code_tracks("def f(x):\\n    return [x]  # done\\n")
    tracks["bracket depth"]      # 1.0 from "(" to "x", 0.0 at ")", ...
    text = generate_brackets(10_000, seed=0)
    depth = bracket_tracks(text)["depth"]
"""
from __future__ import annotations

import re

import numpy as np

from .registry import BRACKET_LETTERS

CODE_TRACKS = ("bracket depth", "in string", "in comment", "indent", "column")
OPENERS = "([{"
CLOSERS = ")]}"
TAB_WIDTH = 4

# Python string literals and comments, for a left-to-right scan: the earliest match wins
# and matches never overlap, so a "#" inside a string or a quote inside a comment is
# swallowed by the span that contains it. Unterminated literals (a truncated file) run
# to the end of the text (triple quotes) or of the line (single quotes).
_PREFIX = r"(?:(?<![A-Za-z0-9_])(?:[rR][bBfF]?|[bBfF][rR]?|[uU]))?"
_BODY = r"(?:[^\\]|\\(?:.|\Z))"  # a character, or a backslash escape (may escape a newline)
_LINE_BODY = r"(?:[^{q}\\\n]|\\(?:.|\Z))"
_SPANS = re.compile(
    r"(?P<comment>#[^\n]*)"
    r"|(?P<string>" + _PREFIX + r"(?:"
    r"'''" + _BODY + r"*?(?:'''|\Z)"
    r'|"""' + _BODY + r'*?(?:"""|\Z)'
    r"|'" + _LINE_BODY.format(q="'") + r"*(?:'|(?=\n)|\Z)"
    r'|"' + _LINE_BODY.format(q='"') + r'*(?:"|(?=\n)|\Z)'
    r"))",
    re.DOTALL,
)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _span_mask(n: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Boolean mask of length ``n``, true inside the half-open ``spans``."""
    edges = np.zeros(n + 1, dtype=np.int32)
    if spans:
        starts, ends = np.array(spans, dtype=np.int64).T
        np.add.at(edges, starts, 1)
        np.add.at(edges, ends, -1)
    return np.cumsum(edges[:n]) > 0


def _depth(codes: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
    """Nesting depth of ( [ { after each character, counting only ``active`` characters,
    floored at 0: a stray closing bracket at depth 0 is ignored."""
    step = np.isin(codes, [ord(c) for c in OPENERS]).astype(np.int64)
    step -= np.isin(codes, [ord(c) for c in CLOSERS])
    if active is not None:
        step[~active] = 0
    total = np.cumsum(step)
    # the walk reflected at 0 (Skorokhod): subtract the deepest dip below zero so far
    floor = np.minimum(np.minimum.accumulate(total), 0) if len(total) else total
    return (total - floor).astype(np.float32)


def python_spans(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Half-open (start, end) character spans of string literals (prefix and quotes
    included) and of ``#`` comments (up to, not including, the newline)."""
    strings, comments = [], []
    for m in _SPANS.finditer(text):
        (comments if m.lastgroup == "comment" else strings).append(m.span())
    return strings, comments


def code_tracks(text: str) -> dict[str, np.ndarray]:
    """Annotation tracks of Python source ``text`` (which may be a truncated file).

    Keys (float32 arrays of ``len(text)``):

    - ``"bracket depth"``: nesting of ( [ { outside strings and comments, never below 0;
    - ``"in string"``: 1.0 on the characters of a string literal, its prefix (``r``,
      ``b``, ``f``, ``rb``, ...) and quotes included; single, double and triple quotes,
      backslash escapes (also ``\\``-newline continuations);
    - ``"in comment"``: 1.0 from ``#`` to the end of its line, the newline excluded;
    - ``"indent"``: leading-whitespace width of the current physical line / 4
      (a space is 1 column, a tab 4), so one indentation level is 1.0;
    - ``"column"``: position of the character in its line, from 0; a newline gets the
      column it sits at (the length of its line).

    Strings and comments come from one regular-expression scanner throughout, not from
    :mod:`tokenize`: the scanner agrees with ``tokenize`` on whole files (a test checks it
    on standard-library modules) and, unlike it, also works on truncated text, where an
    unterminated literal runs to the end of the text (triple quotes) or line (single).
    F-strings are strings as a whole (replacement fields included), as Python 3.11
    tokenizes them. Takes ~20 ms per 100k characters.
    """
    n = len(text)
    codes = _codes(text)
    strings, comments = python_spans(text)
    in_string = _span_mask(n, strings)
    in_comment = _span_mask(n, comments)
    depth = _depth(codes, ~(in_string | in_comment))

    is_nl = codes == ord("\n")
    line = np.cumsum(is_nl) - is_nl  # line index of each character; a newline ends its line
    nl_pos = np.flatnonzero(is_nl)
    line_start = np.concatenate([[0], nl_pos + 1])
    column = np.arange(n) - line_start[line]
    widths = np.array([m.group().count(" ") + TAB_WIDTH * m.group().count("\t")
                       for m in re.finditer(r"^[ \t]*", text, re.MULTILINE)], dtype=np.float32)
    indent = widths[:len(line_start)][line] / TAB_WIDTH if n else np.zeros(0, np.float32)
    return {
        "bracket depth": depth,
        "in string": in_string.astype(np.float32),
        "in comment": in_comment.astype(np.float32),
        "indent": indent.astype(np.float32),
        "column": column.astype(np.float32),
    }


def bracket_tracks(text: str) -> dict[str, np.ndarray]:
    """``{"depth": ...}``: nesting depth of ( [ { after each character, never below 0."""
    return {"depth": _depth(_codes(text))}


# -- the brackets-lstm language ---------------------------------------------------

BRACKET_MAX_DEPTH = 8
# Seeds of brackets-lstm's three texts: training, validation and the probe text differ.
BRACKET_SEEDS = {"train": 1, "val": 2, "probe": 3}
BRACKET_TRAIN_CHARS = 1_500_000
BRACKET_VAL_CHARS = 100_000


def bracket_probabilities(max_depth: int = BRACKET_MAX_DEPTH, open_at_zero: float = 0.5,
                          open_p: float = 0.2, close_per_level: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(p_open, p_close) of the next character at each depth 0..max_depth.

    The rest, ``1 - p_open - p_close``, is a filler letter. Closing gets likelier with
    every level (``close_per_level`` per level), is impossible at depth 0 and certain
    at ``max_depth``; so the next-character distribution depends on the exact depth.
    """
    d = np.arange(max_depth + 1)
    p_open = np.where(d == 0, open_at_zero, open_p).astype(np.float64)
    p_close = np.clip(close_per_level * d, 0.0, 1.0 - open_p)
    p_open[max_depth], p_close[max_depth] = 0.0, 1.0
    if np.any(p_open + p_close > 1.0 + 1e-12):
        raise ValueError("open and close probabilities must sum to at most 1 at every depth")
    return p_open, p_close


def generate_brackets(n_chars: int, seed: int, max_depth: int = BRACKET_MAX_DEPTH,
                      letters: str = BRACKET_LETTERS, open_at_zero: float = 0.5, open_p: float = 0.2,
                      close_per_level: float = 0.05, chains: int = 2048, chain_steps: int = 1024) -> str:
    """``n_chars`` characters of nested-bracket text, the same for the same arguments.

    The text is lines of ``(``, ``)`` and filler ``letters``: at depth ``d`` the next
    character opens with probability ``p_open[d]``, closes with ``p_close[d]`` (growing
    with ``d``, 0 at depth 0, 1 at ``max_depth``), else is a uniformly drawn letter; a
    ``)`` that returns to depth 0 is always followed by a newline. Knowing the depth
    is therefore needed to predict ``)`` and ``\\n`` well, e.g.::

        ab(c(()d)a)
        (((b)c(d))a)

    Vectorised: ``chains`` independent chains of ``chain_steps`` characters are drawn
    at once, each cut after its last newline (so each piece starts and ends at depth
    0), and concatenated; generating 2M characters takes ~0.25 s.
    """
    if n_chars < 0:
        raise ValueError("n_chars must be >= 0")
    p_open, p_close = bracket_probabilities(max_depth, open_at_zero, open_p, close_per_level)
    cum_close = p_open + p_close
    table = np.frombuffer(("(" + ")" + "\n" + letters).encode("ascii"), dtype=np.uint8)
    OPEN, CLOSE, NL, LETTER0 = 0, 1, 2, 3
    rng = np.random.default_rng(seed)
    pieces, total = [], 0
    while total < n_chars:
        u = rng.random((chain_steps, chains))
        letter = rng.integers(0, len(letters), (chain_steps, chains), dtype=np.int8)
        out = np.empty((chain_steps, chains), dtype=np.int8)
        depth = np.zeros(chains, dtype=np.int64)
        newline = np.zeros(chains, dtype=bool)
        for t in range(chain_steps):
            ut = u[t]
            opens = ut < p_open[depth]
            closes = ~opens & (ut < cum_close[depth])
            tok = np.where(opens, OPEN, np.where(closes, CLOSE, LETTER0 + letter[t]))
            tok[newline] = NL
            opens &= ~newline
            closes &= ~newline
            depth += opens
            depth -= closes
            newline = closes & (depth == 0)
            out[t] = tok
        seq = out.T  # (chains, steps), chain-major
        is_nl = seq == NL
        has_nl = is_nl.any(axis=1)
        last_nl = np.where(has_nl, chain_steps - 1 - np.argmax(is_nl[:, ::-1], axis=1), -1)
        keep = np.arange(chain_steps)[None, :] <= last_nl[:, None]
        piece = table[seq[keep]].tobytes().decode("ascii")
        pieces.append(piece)
        total += len(piece)
        if not piece:
            raise ValueError("no chain returned to depth 0; use longer chains or likelier closing")
    return "".join(pieces)[:n_chars]
