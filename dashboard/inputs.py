"""Checks at the edge: every value a callback or an address brings, turned into what the code expects.

A Dash callback's inputs are whatever JSON the request carries: the page sends a few shapes, a
crafted request (or a stale page, or a typo in an address) any other. Callbacks and ``layout``
functions pass their inputs through these helpers first, so the code behind them only ever sees
the types, lengths and ranges it was written for, and junk gets "nothing changes" or a message,
never a traceback or an HTTP 500.

* ``as_*`` never raise: they return the value cleaned, or ``default`` when it is junk (a wrong type,
  too long, not finite). Numbers in range-checked helpers are clamped into ``[lo, hi]``.
* :func:`need` raises ``PreventUpdate`` (Dash answers 204: nothing changes) for a value a callback
  cannot do without.
* :class:`Query` reads a page's URL parameters the same way and remembers what it ignored, so the
  page can say so (:meth:`Query.notice`) instead of failing or silently showing something else.

Example::

    as_run_ids("a1b2c3d4e5,f6")            # ["a1b2c3d4e5", "f6"]
    as_run_ids("x" * 200_000)              # []: no run id is that long
    as_int("1e999", 0, lo=0, hi=50)        # 0: not a finite number
    as_int(999, 0, lo=0, hi=50)            # 50
    q = Query({"step": "1e999"}); q.int("step", None, lo=0)   # None, and q.notice() says why
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from dash.exceptions import PreventUpdate

T = TypeVar("T")

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")  # store ids are 10 hex digits; tests use short names
MAX_RUNS = 32             # runs one view shows or overlays at once
MAX_STEPS = 100_000       # snapshot steps a slider's store holds
MAX_INDEX = 10**9         # slider positions, token positions
MAX_NUMBER_TEXT = 40      # characters of a number typed as text (int("9" * 5000) is slow, then refused)
SHORT = 200               # characters of a name, a choice, a layer or track name
MAX_ITEMS = 1_000         # entries of a list a page sends (options, clicks, points)
BIG = 2**53               # beyond this a JSON number is no longer exact in the browser

__all__ = ["as_int", "as_float", "as_str", "as_bool", "as_choice", "as_list", "as_list_of", "as_dict",
           "as_run_id", "as_run_ids", "as_flags", "as_steps", "option_values", "as_points", "first_point_int",
           "need", "trigger_id", "trigger_prop", "trigger_value", "Query", "RUN_ID", "MAX_RUNS", "MAX_STEPS",
           "MAX_INDEX"]


# -- numbers -----------------------------------------------------------------------------------------
def _number(value: Any) -> float | int | None:
    """A finite int or float from a JSON number or a short numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and 0 < len(value) <= MAX_NUMBER_TEXT:
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _clamp(x, lo, hi):
    if lo is not None and x < lo:
        return lo
    if hi is not None and x > hi:
        return hi
    return x


def as_int(value: Any, default: T = None, lo: int | None = -BIG, hi: int | None = BIG) -> int | T:
    """``value`` as a whole number clamped into ``[lo, hi]``; ``default`` if it is not a finite whole number.

    >>> as_int("12"), as_int(3.0), as_int(2.5, -1), as_int(True, -1), as_int(10**400, 0, 0, 9), as_int("1e999", 0)
    (12, 3, -1, -1, 9, 0)
    """
    number = _number(value)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        return default
    return int(_clamp(int(number), lo, hi))


def as_float(value: Any, default: T = None, lo: float | None = None, hi: float | None = None) -> float | T:
    """``value`` as a finite float clamped into ``[lo, hi]``; ``default`` for NaN, infinities and non-numbers.

    >>> as_float("0.25"), as_float(float("nan"), 0.3), as_float("1e999", 0.3), as_float(5, None, 0, 1)
    (0.25, 0.3, 0.3, 1)
    """
    number = _number(value)
    if number is None:
        return default
    try:
        x = float(number)
    except OverflowError:  # an int past float's range: clamp it, or refuse it without a range
        if lo is None and hi is None:
            return default
        return hi if number > 0 and hi is not None else (lo if lo is not None else default)
    return _clamp(x, lo, hi) if math.isfinite(x) else default


def as_bool(value: Any, default: bool = False) -> bool:
    """A JSON boolean; anything else is ``default``."""
    return value if isinstance(value, bool) else default


# -- text and choices ---------------------------------------------------------------------------------
def as_str(value: Any, max_len: int = SHORT, default: T = None) -> str | T:
    """``value`` if it is a string of at most ``max_len`` characters, else ``default`` (never cut: a cut
    name would name something else).

    >>> as_str("tanh"), as_str(["tanh"]), as_str("x" * 300, 200, "")
    ('tanh', None, '')
    """
    return value if isinstance(value, str) and len(value) <= max_len else default


def as_choice(value: Any, choices: Iterable, default: T = None) -> Any:
    """``value`` if it is one of ``choices`` (strings or numbers), else ``default``.

    >>> as_choice("pca", ("tsne", "pca"), "tsne"), as_choice({"a": 1}, ("tsne", "pca"), "tsne")
    ('pca', 'tsne')
    """
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return default
    return value if value in tuple(choices) else default


# -- containers ---------------------------------------------------------------------------------------
def as_list(value: Any, limit: int = MAX_ITEMS, default: T = None) -> list | T:
    """``value`` if it is a list of at most ``limit`` entries, else ``default`` (``[]`` when None)."""
    if isinstance(value, (list, tuple)) and len(value) <= limit:
        return list(value)
    return [] if default is None else default


def as_list_of(value: Any, item: Callable[[Any], Any], limit: int = MAX_ITEMS, default: T = None) -> list | T:
    """The entries of a list that ``item`` accepts (``item`` returns None for junk), in order; ``default``
    (``[]`` when None) if ``value`` is not a list or has more than ``limit`` entries.

    >>> as_list_of([1, "2", None, "x"], as_int)
    [1, 2]
    """
    if not isinstance(value, (list, tuple)) or len(value) > limit:
        return [] if default is None else default
    return [x for x in (item(v) for v in value) if x is not None]


def as_dict(value: Any, default: T = None, max_keys: int = 64) -> dict | T:
    """``value`` if it is a dict of at most ``max_keys`` keys, else ``default``."""
    return value if isinstance(value, dict) and len(value) <= max_keys else default


# -- what pages send ------------------------------------------------------------------------------------
def as_run_id(value: Any) -> str | None:
    """A run id (letters, digits, ``_.-``, at most 64 characters, no path), or None.

    >>> as_run_id("a1b2c3d4e5"), as_run_id("../../etc/passwd"), as_run_id(["a1"])
    ('a1b2c3d4e5', None, None)
    """
    return value if isinstance(value, str) and RUN_ID.fullmatch(value) else None


def as_run_ids(value: Any, limit: int = MAX_RUNS) -> list[str]:
    """Run ids from a list of them, or from one string (one id, or ids separated by commas); junk entries
    are dropped, duplicates kept once, at most ``limit``. Bounded work whatever the size of ``value``.

    >>> as_run_ids(["a1", "a1", None, "b2"]), as_run_ids("a1,,b2"), as_run_ids(5), as_run_ids("x" * 200_000)
    (['a1', 'b2'], ['a1', 'b2'], [], [])
    """
    if isinstance(value, str):
        value = value[: limit * 66].split(",")  # 64 characters and a comma each: a longer string holds junk
    if not isinstance(value, (list, tuple)):
        return []
    out: list[str] = []
    for entry in value[: limit * 4]:
        rid = as_run_id(entry)
        if rid is not None and rid not in out:
            out.append(rid)
            if len(out) == limit:
                break
    return out


def as_flags(value: Any) -> list[str]:
    """A checklist's value: its short string entries (``"on" in as_flags(follow)``)."""
    return as_list_of(value, lambda v: as_str(v, 64), limit=64)


def as_steps(value: Any, default: T = None) -> list[int] | T:
    """A store of snapshot steps: whole numbers >= 0 (at most :data:`MAX_STEPS`); ``default`` for junk
    (any entry that is not a step makes the whole list junk: indices into it must mean what they say).

    >>> as_steps([0, 100, 200]), as_steps([0, "x"]), as_steps("0,100", [])
    ([0, 100, 200], None, [])
    """
    if not isinstance(value, list) or len(value) > MAX_STEPS:
        return default
    steps = [as_int(s, None, 0, BIG) if not isinstance(s, str) else None for s in value]
    return default if any(s is None for s in steps) else steps


def option_values(options: Any) -> list:
    """The ``value`` of each option of a dropdown's or radio's ``options`` (dicts only)."""
    return [o.get("value") for o in as_list(options) if isinstance(o, dict)]


def as_points(value: Any, limit: int = 10_000) -> list[dict]:
    """The ``points`` of a Plotly ``clickData`` / ``selectedData`` (dicts only, at most ``limit``)."""
    points = (value or {}).get("points") if isinstance(value, dict) else None
    if not isinstance(points, list):
        return []
    return [p for p in points[:limit] if isinstance(p, dict)]


def first_point_int(value: Any, key: str = "customdata", default: T = None, hi: int = MAX_INDEX) -> int | T:
    """The whole number ``key`` of the first clicked point (or the first entry of it), in ``[0, hi]``.

    >>> first_point_int({"points": [{"customdata": [5]}]}), first_point_int({"points": "x"}, default=0)
    (5, 0)
    """
    points = as_points(value, 1)
    if not points:
        return default
    custom = points[0].get(key)
    if isinstance(custom, (list, tuple)):
        custom = custom[0] if custom else None
    number = as_int(custom, None)
    return number if number is not None and 0 <= number <= hi else default


def trigger_id() -> Any:
    """``dash.ctx.triggered_id`` (a string or a dict id), or None when the request names no readable
    trigger (its ``changedPropIds`` are the client's to write: Dash's own parse of them can raise)."""
    from dash import ctx

    try:
        found = ctx.triggered_id
    except Exception:  # noqa: BLE001 - json.loads / rpartition on whatever the request held
        return None
    return found if isinstance(found, (str, dict)) else None


def trigger_prop() -> str:
    """The property id (``"id.prop"``) of the first input that fired, or "" when there is none readable."""
    from dash import ctx

    try:
        prop = ctx.triggered[0]["prop_id"] if ctx.triggered else ""
    except Exception:  # noqa: BLE001
        return ""
    return prop if isinstance(prop, str) else ""


def trigger_value() -> Any:
    """The value of the first input that fired (None when there is none readable)."""
    from dash import ctx

    try:
        return ctx.triggered[0].get("value") if ctx.triggered else None
    except Exception:  # noqa: BLE001
        return None


def need(value: T) -> T:
    """``value``, or ``PreventUpdate`` (nothing changes) when it is None or empty."""
    if value is None or value == "" or value == []:
        raise PreventUpdate
    return value


# -- URL parameters ---------------------------------------------------------------------------------------
NOTICE_CLASS = "alert alert-warning url-notice"


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Query:
    """A page's URL parameters, each read with a type, a range and a default.

    What could not be used (not a number, out of range, too long, given twice, a name the page does
    not read) is collected; :meth:`notice` is the line the page shows about it (None when all was used).

    >>> q = Query({"step": "1e999", "pos": "12", "zoom": "2"})
    >>> q.int("step", None, lo=0), q.int("pos", 0, lo=0)
    (None, 12)
    >>> q.problems
    ['step=1e999: not a finite whole number', 'zoom=2: not a parameter of this page']
    """

    def __init__(self, query: Mapping[str, Any] | None):
        self.raw = dict(query or {})
        self.read: set[str] = set()
        self._problems: list[str] = []

    def _get(self, name: str) -> tuple[bool, Any]:
        """(present, value): a repeated key (Dash gives a list) is noted and treated as absent."""
        self.read.add(name)
        if name not in self.raw:
            return False, None
        value = self.raw[name]
        if isinstance(value, list):
            self.note(name, value, "given more than once")
            return False, None
        return True, value

    def note(self, name: str, value: Any, why: str) -> None:
        """Remember that ``name=value`` was not used, and why (for checks a page makes itself)."""
        self._problems.append(f"{_shown(name)}={_shown(value)}: {why}")

    def int(self, name: str, default: T = None, lo: int | None = 0, hi: int | None = MAX_INDEX) -> int | T:
        """A whole number; out of range: clamped (and noted); not a number: ``default`` (noted)."""
        present, value = self._get(name)
        if not present or value == "":
            return default
        number = as_int(value, None, None, None)
        if number is None:
            self.note(name, value, "not a finite whole number")
            return default
        clamped = _clamp(number, lo, hi)
        if clamped != number:
            self.note(name, value, f"out of range, using {clamped:,}")
        return clamped

    def float(self, name: str, default: T = None, lo: float | None = None, hi: float | None = None) -> float | T:
        """A finite number; out of range: clamped (noted); not a number: ``default`` (noted)."""
        present, value = self._get(name)
        if not present or value == "":
            return default
        number = as_float(value, None)
        if number is None:
            self.note(name, value, "not a finite number")
            return default
        clamped = _clamp(number, lo, hi)
        if clamped != number:
            self.note(name, value, f"out of range, using {clamped:g}")
        return clamped

    def str(self, name: str, default: T = None, max_len: int = SHORT) -> str | T:
        """Text of at most ``max_len`` characters; longer: ``default`` (noted)."""
        present, value = self._get(name)
        if not present or value == "":
            return default
        text = as_str(value, max_len)
        if text is None:
            self.note(name, value, f"longer than {max_len:,} characters")
            return default
        return text

    def choice(self, name: str, choices: Sequence, default: T = None) -> Any:
        """One of ``choices``; anything else: ``default`` (noted)."""
        present, value = self._get(name)
        if not present or value == "":
            return default
        chosen = as_choice(value, choices)
        if chosen is None:
            self.note(name, value, "not one of " + ", ".join(map(str, choices)))
            return default
        return chosen

    def run_ids(self, name: str = "run", limit: int = MAX_RUNS) -> list[str]:
        """Run ids, comma-separated (or the key repeated); entries that are no run id are noted."""
        self.read.add(name)
        value = self.raw.get(name)
        if value is None or value == "":
            return []
        parts = value if isinstance(value, list) else [value]
        entries = [e for p in parts[:limit] if isinstance(p, str) for e in p[: limit * 66].split(",") if e]
        if any(as_run_id(e) is None for e in entries) or any(not isinstance(p, str) for p in parts):
            self.note(name, value, "not a run id")
        elif len(dict.fromkeys(entries)) > limit or len(parts) > limit:
            self.note(name, value, f"more than {limit} runs, using the first {limit}")
        return as_run_ids(entries, limit)

    def run_id(self, name: str = "run") -> str | None:
        """One run id, or None (noted when something else was given)."""
        present, value = self._get(name)
        if not present or value == "":
            return None
        rid = as_run_id(value)
        if rid is None:
            self.note(name, value, "not a run id")
        return rid

    @property
    def problems(self) -> list[str]:
        """What was ignored, in order: bad values, then names the page does not read."""
        unread = [f"{_shown(k)}={_shown(v)}: not a parameter of this page" for k, v in self.raw.items()
                  if k not in self.read]
        return self._problems + unread

    def notice(self):
        """A warning line naming what the address held that the page ignored, or None."""
        from dash import html  # here: the helpers above are plain Python, usable without Dash's components

        problems = self.problems
        if not problems:
            return None
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return html.Div([html.Strong("Ignored in the address: "), "; ".join(problems[:5]) + more + "."],
                        className=NOTICE_CLASS, role="status")
