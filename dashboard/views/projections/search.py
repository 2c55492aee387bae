"""Lookups in the **original** space of a projection source: words, nearest neighbours, analogies.

Pure functions over a :class:`dashboard.views.projections.data.SourceData` (its texts, its lowercase
index and its unit-length points); the cached reader (:class:`dashboard.views.projections.data.ProjectionData`)
loads the source and caches what these return. Word lookup is a case-insensitive exact match,
else close spellings by difflib; similarities are cosines. Errors a person can fix come out as
:class:`~dashboard.views.hidden_states.data.ViewError` with the message for the page.

Example::

    data = pd.source_data(run_id, None, "tokens")        # a SourceData
    row = find_row(data, "King")                          # case-insensitive
    nearest(data, row, k=10)["items"][0]                  # {"row", "text", "sim"}
    analogy(data, {n: find_row(data, w) for n, w in zip("abc", ("king", "man", "woman"))}, k=5)
    suggestions("kign", data.index(), data.texts)         # ["king", ...]
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

import numpy as np

from dashboard.snapshots import ViewError

if TYPE_CHECKING:
    from dashboard.views.projections.data import SourceData

N_NEIGHBOURS = 10
# The analogy the page offers as placeholders: words of the built-in word2vec run's vocabulary (pydoc's
# topics have no "king" or "queen"; a test checks these are there). a - b + c: functions - function + class
# ~ classes (plural minus singular, plus another singular).
ANALOGY_EXAMPLE = ("functions", "function", "class")
EXAMPLE_WORD = "function"
N_ANSWERS = 5
N_SUGGESTIONS = 5


def noun(source: str) -> str:
    """What one point of a source is called in messages."""
    return "token" if source == "tokens" else "input"


def a_noun(source: str) -> str:
    """``a token`` / ``an input``."""
    return "a token" if source == "tokens" else "an input"


def find_row(data: SourceData, query: str) -> int:
    """Row of ``query`` (case-insensitive exact match on the text), else ViewError with close spellings."""
    q = (query or "").strip()
    if not q:
        raise ViewError(f"Type {a_noun(data.source)} to look up.")
    index = data.index()
    row = index.get(q.lower())
    if row is not None:
        return int(row)
    raise ViewError(unknown_message(q, data.source, suggestions(q, index, data.texts)))


def row_of(data: SourceData, query: str | int) -> int:
    """``query`` as a row: a row number (checked against the source's size) or a text (:func:`find_row`)."""
    if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        if not 0 <= int(query) < data.n:
            raise ViewError(f"Point {query} is not in this source (it has {data.n:,} points).")
        return int(query)
    return find_row(data, str(query))


def nearest(data: SourceData, row: int, k: int = N_NEIGHBOURS) -> dict:
    """The ``k`` points nearest to ``row`` by cosine similarity, ``row`` excluded:
    ``{"step", "row", "text", "n", "items": [{"row", "text", "sim"}]}``."""
    sims = data.unit @ data.unit[row]
    sims[row] = -np.inf
    top = top_k(sims, k)
    return {"step": data.step, "row": row, "text": str(data.texts[row]), "n": data.n,
            "items": [{"row": int(i), "text": str(data.texts[i]), "sim": float(sims[i])} for i in top]}


def analogy(data: SourceData, rows: dict[str, int], k: int = N_ANSWERS) -> dict:
    """``a - b + c`` for ``rows`` ``{"a", "b", "c"}``: the ``k`` points nearest to it by cosine, the
    three excluded: ``{"step", "rows", "texts", "items"}``."""
    target = data.unit[rows["a"]] - data.unit[rows["b"]] + data.unit[rows["c"]]
    norm = float(np.linalg.norm(target))
    sims = data.unit @ (target / norm if norm > 0 else target)
    sims[list(rows.values())] = -np.inf
    top = top_k(sims, k)
    return {"step": data.step, "rows": rows, "texts": {n: str(data.texts[r]) for n, r in rows.items()},
            "items": [{"row": int(i), "text": str(data.texts[i]), "sim": float(sims[i])} for i in top]}


def suggestions(query: str, index: dict[str, int], texts: np.ndarray, n: int = N_SUGGESTIONS) -> list[str]:
    """Up to ``n`` close spellings of ``query`` among the texts (difflib), else texts that contain it."""
    q = query.lower()
    slack = max(2, len(q) // 2)
    near = [k for k in index if abs(len(k) - len(q)) <= slack]
    found = difflib.get_close_matches(q, near, n=n, cutoff=0.6)
    if not found:
        found = [k for k in index if q in k][:n]
    return [str(texts[index[k]]) for k in found]


def unknown_message(query: str, source: str, close: list[str]) -> str:
    """The message for a text the source does not have, with close spellings when there are some."""
    msg = f"no {noun(source)} '{query}' in this source"
    if close:
        msg += "; close spellings: " + ", ".join(f"'{c}'" for c in close)
    return msg + "."


def top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest finite ``sims``, largest first (ties in index order)."""
    finite = int(np.isfinite(sims).sum())
    k = min(k, finite)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-sims, k - 1)[:k]
    return top[np.argsort(-sims[top], kind="stable")]
