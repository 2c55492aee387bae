"""View state of the hidden-states page: parsed from and written to the URL, and checked.

The URL holds everything needed to reproduce a view (run, step, layer, direction,
state, window position, threshold, brushed range, margins, track, gate), so a
link shows the same thing to someone else.

Example::

    view = parse_view({"run": "ab12", "sel": "500-505", "thr": "0.3"})
    view.sel        # (500, 505)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from backend.probes.states import GATE_NAMES, GATES

WINDOWS = (40, 80, 160, 320)  # tokens the Select view can show ("zoom")
DEFAULT_THRESHOLD = 0.3


@dataclass
class View:
    run: str | None = None
    step: int | None = None      # None: follow the newest snapshot
    layer: int = 0
    dir: str = "fwd"
    state: str = "h"
    pos: int = 0
    thr: float = DEFAULT_THRESHOLD
    sel: tuple[int, int] | None = None
    ob: int = 1
    oa: int = 0
    track: str | None = None
    gate: str | None = None
    win: int = 80

    @property
    def key(self) -> str:
        return f"l{self.layer}.{self.dir}.{self.state}"

    def to_query(self) -> dict[str, str]:
        """Non-default fields as URL query parameters."""
        out: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is None or value == getattr(View, name, None):
                continue
            out[name] = f"{value[0]}-{value[1]}" if name == "sel" else str(value)
        return out


def _int(value: Any, default: int, lo: int = 0, hi: int = 10**9) -> int:
    try:
        return min(hi, max(lo, int(float(value))))
    except (TypeError, ValueError):
        return default


def parse_view(query: Mapping[str, Any]) -> View:
    """A View from URL parameters; unreadable values fall back to defaults."""
    v = View()
    v.run = query.get("run") or None
    v.step = _int(query["step"], 0) if query.get("step") not in (None, "") else None
    v.layer = _int(query.get("layer"), 0, 0, 64)
    v.dir = "bwd" if query.get("dir") == "bwd" else "fwd"
    v.state = str(query.get("state") or "h")[:2]
    v.pos = _int(query.get("pos"), 0)
    try:
        v.thr = float(query.get("thr", DEFAULT_THRESHOLD))
    except (TypeError, ValueError):
        v.thr = DEFAULT_THRESHOLD
    sel = str(query.get("sel") or "")
    if "-" in sel:
        a, _, b = sel.partition("-")
        start, stop = _int(a, -1, -1), _int(b, -1, -1)
        v.sel = (start, stop) if start >= 0 and stop > start else None
    v.ob, v.oa = _int(query.get("ob"), 1, 0, 50), _int(query.get("oa"), 0, 0, 50)
    v.track = query.get("track") or None
    v.gate = query.get("gate") or None
    win = _int(query.get("win"), 80)
    v.win = win if win in WINDOWS else 80
    return v


def state_options(meta: Mapping[str, Any]) -> list[dict]:
    """Dropdown options for the states a snapshot holds (h, c, then gates)."""
    return [{"label": GATE_NAMES.get(s, s), "value": s} for s in meta.get("states", ["h"])]


def gate_options(meta: Mapping[str, Any]) -> list[dict]:
    family = meta.get("family", "lstm")
    return [{"label": GATE_NAMES.get(g, g), "value": g} for g in GATES.get(family, ()) if g in meta.get("states", [])]


def layer_options(meta: Mapping[str, Any]) -> list[dict]:
    return [{"label": f"layer {i}", "value": i} for i in range(int(meta.get("layers", 1)))]


def dir_options(meta: Mapping[str, Any]) -> list[dict]:
    names = {"fwd": "forward", "bwd": "backward"}
    return [{"label": names[d], "value": d} for d in meta.get("directions", ["fwd"])]


def state_label(state: str) -> str:
    return GATE_NAMES.get(state, state)


def window_start(pos, n_tokens: int, length: int) -> int:
    """First token of a window of ``length`` at ``pos``, kept inside the corpus.

    >>> window_start(990, 1000, 80), window_start(-5, 1000, 80)
    (920, 0)
    """
    return min(max(0, int(pos or 0)), max(0, n_tokens - length))
