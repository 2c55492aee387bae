"""View state of the hidden-states page: parsed from and written to the URL, and checked.

The URL holds everything needed to reproduce a view (run, step, layer, direction,
state, window position, threshold, brushed range, margins, track, gate, what the
Match view matches on), so a link shows the same thing to someone else.

Direction is ``fwd``, ``bwd`` or, for a bidirectional run, ``both`` (the two side by
side, the default there); ``None`` means "the run's default" until the page knows the run.

Example::

    view = parse_view({"run": "ab12", "sel": "500-505", "thr": "0.3", "dir": "both"})
    view.sel, view.dir, view.keys     # (500, 505), "both", ["l0.fwd.h", "l0.bwd.h"]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from backend.probes.states import GATE_NAMES, GATES
from dashboard.inputs import MAX_INDEX, Query, as_int

WINDOWS = (40, 80, 160, 320)  # tokens the Select view can show ("zoom")
DEFAULT_THRESHOLD = 0.3   # until a range is brushed; a brush then suggests one (docs/hidden.md "Defaults")
DEFAULT_STATE = "h"       # bounded (-1..1): one threshold means the same for every cell; c is not
DEFAULT_OFF_BEFORE = 1
BOTH = "both"
DIRECTIONS = ("fwd", "bwd", BOTH)
MATCH_ON = ("both", "fwd", "bwd")  # side by side: match forward and backward cells together, or one of them
DIR_NAMES = {"fwd": "forward", "bwd": "backward"}


@dataclass
class View:
    run: str | None = None
    step: int | None = None      # None: follow the newest snapshot
    layer: int = 0
    dir: str | None = None       # None: the run's default (see default_dir)
    state: str = DEFAULT_STATE
    pos: int = 0
    thr: float = DEFAULT_THRESHOLD
    sel: tuple[int, int] | None = None
    ob: int = DEFAULT_OFF_BEFORE
    oa: int = 0
    track: str | None = None
    gate: str | None = None
    win: int = 80
    match: str = "both"          # side by side only: which direction's selected cells the Match view uses

    @property
    def key(self) -> str:
        """The one state shown (single direction; forward when side by side)."""
        return f"l{self.layer}.{self.directions[0]}.{self.state}"

    @property
    def directions(self) -> list[str]:
        return shown_directions(self.dir)

    @property
    def keys(self) -> list[str]:
        """The states shown: one, or forward then backward side by side."""
        return [f"l{self.layer}.{d}.{self.state}" for d in self.directions]

    def to_query(self) -> dict[str, str]:
        """Non-default fields as URL query parameters."""
        out: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is None or value == getattr(View, name, None):
                continue
            out[name] = f"{value[0]}-{value[1]}" if name == "sel" else str(value)
        return out


MAX_LAYER = 64
STATE_LEN = 2    # state names: h, c and the gates' one-letter names
NAME_LEN = 200   # track and gate names


def parse_view(query: Mapping[str, Any] | Query) -> View:
    """A View from URL parameters; unreadable values fall back to defaults, numbers out of range are
    clamped, and a :class:`~dashboard.inputs.Query` passed in remembers both for the page to say."""
    q = query if isinstance(query, Query) else Query(query)
    v = View()
    v.run = q.run_id("run")
    v.step = q.int("step", None, 0, MAX_INDEX)
    v.layer = q.int("layer", 0, 0, MAX_LAYER)
    v.dir = q.choice("dir", DIRECTIONS, None)
    v.state = q.str("state", DEFAULT_STATE, STATE_LEN)
    v.pos = q.int("pos", 0, 0, MAX_INDEX)
    v.thr = q.float("thr", DEFAULT_THRESHOLD)
    sel = q.str("sel", "", 40)
    if sel:
        a, _, b = sel.partition("-")
        start, stop = as_int(a, -1, -1, MAX_INDEX), as_int(b, -1, -1, MAX_INDEX)
        v.sel = (start, stop) if start >= 0 and stop > start else None
        if v.sel is None:
            q.note("sel", sel, "not a range like 500-505")
    v.ob, v.oa = q.int("ob", DEFAULT_OFF_BEFORE, 0, 50), q.int("oa", 0, 0, 50)
    v.track = q.str("track", None, NAME_LEN)
    v.gate = q.str("gate", None, NAME_LEN)
    win = q.int("win", 80, 1, 10_000)
    if win not in WINDOWS:
        q.note("win", win, "not one of " + ", ".join(map(str, WINDOWS)))
    v.win = win if win in WINDOWS else 80
    v.match = q.choice("match", MATCH_ON, "both")
    return v


def state_options(meta: Mapping[str, Any]) -> list[dict]:
    """Dropdown options for the states a snapshot holds (h, c, then gates)."""
    return [{"label": GATE_NAMES.get(s, s), "value": s} for s in meta.get("states", ["h"])]


def gate_options(meta: Mapping[str, Any]) -> list[dict]:
    family = meta.get("family", "lstm")
    return [{"label": GATE_NAMES.get(g, g), "value": g} for g in GATES.get(family, ()) if g in meta.get("states", [])]


def layer_options(meta: Mapping[str, Any]) -> list[dict]:
    """Layer choices; an encoder-decoder's are named ("encoder layer 0", "decoder layer 0")."""
    return [{"label": layer_name(meta, i), "value": i} for i in range(int(meta.get("layers", 1)))]


def layer_name(meta: Mapping[str, Any], layer: int) -> str:
    """How titles name a layer: "layer 1", or an encoder-decoder's "decoder layer 0".

    >>> layer_name({}, 1), layer_name({"layer_names": ["encoder layer 0", "decoder layer 0"]}, 1)
    ('layer 1', 'decoder layer 0')
    """
    names = meta.get("layer_names") or []
    return names[layer] if 0 <= layer < len(names) else f"layer {layer}"


def no_state_note(meta: Mapping[str, Any], layer: int, sel: tuple[int, int]) -> str:
    """Why a brushed range selects nothing in a layer that has no state there (an encoder-decoder: the
    encoder has states at the input characters, the decoder at the output ones)."""
    name = layer_name(meta, layer)
    part, other = ("input", "decoder") if name.startswith("encoder") else ("output", "encoder")
    return (f"The {name} has no state at tokens {sel[0]:,}–{sel[1] - 1:,}: it runs over the {part} characters "
            f"only. Brush some of those (left of “→” is the input, right of it the output), or choose the "
            f"{other}'s layer.")


def for_layer(direction: str | None, meta: Mapping[str, Any], layer: int) -> str | None:
    """``direction`` as layer ``layer`` can show it: forward where the layer has no backward direction (the
    decoder layers of an encoder-decoder whose encoder is bidirectional; ``meta.layer_directions``).

    >>> meta = {"directions": ["fwd", "bwd"], "layer_directions": [["fwd", "bwd"], ["fwd"]]}
    >>> for_layer("both", meta, 0), for_layer("both", meta, 1), for_layer("bwd", meta, 1)
    ('both', 'fwd', 'fwd')
    """
    per = meta.get("layer_directions")
    if isinstance(per, list) and 0 <= layer < len(per) and "bwd" not in (per[layer] or []):
        return "fwd" if direction in (BOTH, "bwd") else direction
    return direction


def dir_options(meta: Mapping[str, Any]) -> list[dict]:
    """Direction choices: "both, side by side" first for a bidirectional run; never offered otherwise."""
    dirs = [d for d in meta.get("directions", ["fwd"]) if d in DIR_NAMES] or ["fwd"]
    options = [{"label": DIR_NAMES[d] + (" only" if len(dirs) > 1 else ""), "value": d} for d in dirs]
    if len(dirs) > 1:
        options.insert(0, {"label": "both, side by side", "value": BOTH})
    return options


def default_dir(directions: Sequence[str]) -> str:
    """Side by side for a bidirectional run, else forward.

    >>> default_dir(["fwd", "bwd"]), default_dir(["fwd"])
    ('both', 'fwd')
    """
    return BOTH if "bwd" in directions else "fwd"


def resolve_dir(requested: str | None, directions: Sequence[str]) -> str:
    """The direction to show: ``requested`` when the run has it, else the run's default.

    >>> resolve_dir("both", ["fwd"]), resolve_dir("bwd", ["fwd", "bwd"]), resolve_dir(None, ["fwd", "bwd"])
    ('fwd', 'bwd', 'both')
    """
    allowed = [o["value"] for o in dir_options({"directions": list(directions)})]
    return requested if requested in allowed else default_dir(directions)


def shown_directions(direction: str | None) -> list[str]:
    """The stored directions a view shows.

    >>> shown_directions("both"), shown_directions("bwd"), shown_directions(None)
    (['fwd', 'bwd'], ['bwd'], ['fwd'])
    """
    if direction == BOTH:
        return ["fwd", "bwd"]
    return [direction] if direction in DIR_NAMES else ["fwd"]


def run_directions(run: Mapping[str, Any] | None, snapshots: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """A run's directions: from its newest snapshot, else from its spec (before the first snapshot)."""
    if snapshots:
        return list(snapshots[-1]["meta"].get("directions", ["fwd"]))
    model = ((run or {}).get("spec") or {}).get("model", {})
    return ["fwd", "bwd"] if model.get("bidirectional") else ["fwd"]


def state_label(state: str) -> str:
    return GATE_NAMES.get(state, state)


def window_start(pos, n_tokens: int, length: int) -> int:
    """First token of a window of ``length`` at ``pos``, kept inside the corpus.

    >>> window_start(990, 1000, 80), window_start(-5, 1000, 80)
    (920, 0)
    """
    return min(max(0, int(pos or 0)), max(0, n_tokens - length))
