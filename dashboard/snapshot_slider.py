"""The training-step slider shared by snapshot pages (hidden states, kernels).

The slider's value is an index into the run's snapshot steps. With "follow the
newest" on, each poll moves it to the last snapshot; moving it by hand turns
following off. Pure functions: pages call them from their callbacks.

Example::

    value = slider_value(steps=[0, 100, 200], known=None, index=None, follow=["on"], initial_step=None)  # 2
"""
from __future__ import annotations

PLAY, PAUSE = "▶ Play", "❚❚ Pause"

# Clientside: keep the address bar's query equal to a page's view (a dict of query parameters), so the view
# can be shared or reloaded. replaceState fires no navigation event: Dash pages does not re-render for it.
URL_SYNC_JS = """function (query) {
    if (!query) { return window.dash_clientside.no_update; }
    const url = new URL(window.location.href);
    url.search = new URLSearchParams(query).toString();
    if (url.href !== window.location.href) { window.history.replaceState(window.history.state, '', url.href); }
    return window.dash_clientside.no_update;
}"""


def slider_value(steps: list[int], known: list[int] | None, index: int | None, follow: list | None,
                 initial_step: int | None) -> int:
    """Index the slider should show after a poll found ``steps`` (``known``: the previous list)."""
    if "on" in (follow or []) or known is None and initial_step is None:
        return len(steps) - 1
    if known is None:  # first load of a shared URL: the snapshot at or before its step
        return max([i for i, s in enumerate(steps) if s <= initial_step] or [0])
    return min(index or 0, len(steps) - 1)


def slider_marks(steps: list[int], most: int = 8) -> dict:
    """About ``most`` labelled marks, always including the newest."""
    every = max(1, len(steps) // most)
    return {i: {"label": f"{s:,}"} for i, s in enumerate(steps) if i % every == 0 or i == len(steps) - 1}


def keeps_following(index: int | None, steps: list[int] | None, follow: list | None) -> bool:
    """False when the person moved the slider away from the newest snapshot."""
    return not (steps and index is not None and index < len(steps) - 1 and "on" in (follow or []))


def step_at(steps: list[int] | None, index: int | None) -> int | None:
    """The training step the slider points at."""
    if not steps:
        return None
    return steps[min(int(index or 0), len(steps) - 1)]


def register_play(play: str, tick: str, slider: str, follow: str, steps: str, reset) -> None:
    """The Play button of a snapshot page, all in the browser: it starts (from the first snapshot when
    the slider is at the newest, else from where it is) and pauses; each tick of the ``tick``
    interval moves ``slider`` one snapshot on, turning ``follow`` off; the last one stops, and so
    does a change of ``reset`` (an ``Input``: the run or the settings). ``steps`` is the store of the
    page's snapshot steps: a list, or a dict holding it under ``"steps"``."""
    from dash import Input, Output, State, clientside_callback

    clientside_callback(
        f"""
        function(nPlay, nTick, _reset, disabled, index, steps) {{
            const nu = window.dash_clientside.no_update;
            const fired = (window.dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
            const list = Array.isArray(steps) ? steps : ((steps || {{}}).steps || []);
            const last = list.length - 1;
            const stop = [nu, nu, true, {PLAY!r}];
            if (fired.some(p => p.startsWith({reset.component_id!r} + "."))) {{
                return disabled ? [nu, nu, nu, nu] : stop;
            }}
            if (fired.some(p => p.startsWith({play!r} + "."))) {{
                if (!disabled || last < 1) {{ return stop; }}
                const start = (index === null || index === undefined || index >= last) ? 0 : index;
                return [start, [], false, {PAUSE!r}];
            }}
            if (disabled) {{ return [nu, nu, nu, nu]; }}
            const next = Math.min((index || 0) + 1, Math.max(last, 0));
            return next >= last ? [next, nu, true, {PLAY!r}] : [next, nu, nu, nu];
        }}
        """,
        Output(slider, "value", allow_duplicate=True), Output(follow, "value", allow_duplicate=True),
        Output(tick, "disabled"), Output(play, "children"),
        Input(play, "n_clicks"), Input(tick, "n_intervals"), reset,
        State(tick, "disabled"), State(slider, "value"), State(steps, "data"),
        prevent_initial_call=True,
    )
