"""Layout pieces of the Hidden states page (``dashboard/views/hidden_states/page.py``): its toolbar, window
navigation, the Match-on row and the track upload, built from a :class:`~dashboard.views.hidden_states.view.View`."""
from __future__ import annotations

from dash import dcc, html

from dashboard import ids
from dashboard.views.hidden_states.panels import HS_MATCH_ON, HS_MATCH_ON_ROW
from dashboard.views.hidden_states.select import MATCH_LABELS
from dashboard.views.hidden_states.view import BOTH, WINDOWS, View, dir_options, gate_options, layer_options, state_options


def choices_of(context, run_id: str, meta: dict) -> dict[str, list[dict]]:
    """Dropdown options of a snapshot's meta: layer, direction, state, track (with the user's own), gate."""
    tracks = [{"label": t, "value": t} for t in meta.get("tracks", [])]
    tracks += [{"label": f"{r['meta']['name']} (yours)", "value": r["meta"]["name"]}
               for r in context.data.store.list_snapshots(run_id, "hidden-track")]
    return {"layer": layer_options(meta), "dir": dir_options(meta), "state": state_options(meta), "track": tracks,
            "gate": gate_options(meta)}


def toolbar(view: View, options: list[dict], choices: dict[str, list[dict]]) -> html.Div:
    def field(label, cid, comp):
        return html.Div([html.Label(label, htmlFor=cid), comp], className="field")
    return html.Div([
        field("Run", ids.HS_RUN, dcc.Dropdown(id=ids.HS_RUN, options=options, value=view.run, clearable=False)),
        field("Layer", ids.HS_LAYER, dcc.Dropdown(id=ids.HS_LAYER, value=view.layer, options=choices["layer"],
                                                  clearable=False)),
        field("Direction", ids.HS_DIR, dcc.Dropdown(id=ids.HS_DIR, value=view.dir, options=choices["dir"],
                                                    clearable=False)),
        field("State", ids.HS_STATE, dcc.Dropdown(id=ids.HS_STATE, value=view.state, options=choices["state"],
                                                  clearable=False)),
        # text, parsed here: a number input ignores a typed value equal to its last typed one, even
        # after the dragged line changed it (Dash 4.4); and "abc" deserves a message, not None
        field("Threshold", ids.HS_THRESHOLD, dcc.Input(id=ids.HS_THRESHOLD, type="text", value=f"{view.thr:g}",
                                                       inputMode="decimal", debounce=True, className="num")),
        field("Off before", ids.HS_OFF_BEFORE, dcc.Input(id=ids.HS_OFF_BEFORE, type="number", value=view.ob,
                                                         min=0, max=50, step=1, debounce=True, className="num")),
        field("Off after", ids.HS_OFF_AFTER, dcc.Input(id=ids.HS_OFF_AFTER, type="number", value=view.oa,
                                                       min=0, max=50, step=1, debounce=True, className="num")),
        html.Div([html.Label("Training step", htmlFor=ids.HS_STEP),
                  dcc.Slider(id=ids.HS_STEP, min=0, max=0, step=1, value=0, marks=None, included=False,
                             allow_direct_input=False),
                  html.Div([dcc.Checklist(id=ids.HS_FOLLOW, options=[{"label": " follow the newest", "value": "on"}],
                                          value=[] if view.step is not None else ["on"], inline=True),
                            html.Span(id=ids.HS_SNAPSHOT_INFO, className="muted")], className="step-info")],
                 className="field field-step"),
    ], className="toolbar hs-toolbar")


def match_on(view: View) -> html.Div:
    """Side by side only: which direction's selected cells the Match view searches for."""
    return html.Div([html.Label("Match on", htmlFor=HS_MATCH_ON),
                     dcc.RadioItems(id=HS_MATCH_ON, value=view.match, inline=True, className="match-on",
                                    options=[{"label": f" {v}", "value": k} for k, v in MATCH_LABELS.items()])],
                    id=HS_MATCH_ON_ROW, className="match-on-row",
                    style={} if view.dir == BOTH else {"display": "none"})


def upload() -> html.Details:
    return html.Details([
        html.Summary("Add your own annotation track"),
        html.P("A file with one value per token of the probe text: .npy, one number per line, or CSV with a header "
               "(first column). Its correlation with every cell appears above.", className="muted"),
        html.Div([dcc.Input(id=ids.HS_UPLOAD_NAME, type="text", placeholder="track name (optional)", className="search"),
                  dcc.Upload(html.Button("Choose file…", className="btn"), id=ids.HS_UPLOAD, multiple=False,
                             max_size=64 * 2**20)], className="hs-nav"),
        html.Div(id=ids.HS_UPLOAD_MSG, role="status"),
    ], className="upload")


def navigation(view: View) -> html.Div:
    sel = view.sel or (None, None)
    return html.Div([
        html.Button("◀", id=ids.HS_PREV, className="btn", title="previous window"),
        html.Label("Window starts at token", htmlFor=ids.HS_POS),
        dcc.Input(id=ids.HS_POS, type="number", value=view.pos, min=0, step=1, debounce=True, className="num"),
        html.Button("▶", id=ids.HS_NEXT, className="btn", title="next window"),
        html.Label("Tokens shown", htmlFor=ids.HS_WINDOW, className="range-label"),
        dcc.Dropdown(id=ids.HS_WINDOW, options=[{"label": str(w), "value": w} for w in WINDOWS], value=view.win,
                     clearable=False, className="win-select"),
        dcc.Input(id=ids.HS_SEARCH, type="text", placeholder="find text, e.g. def ", debounce=True,
                  className="search"),
        html.Button("Find next", id=ids.HS_SEARCH_GO, className="btn"),
        html.Label("Range", htmlFor=ids.HS_SEL_START, className="range-label"),
        dcc.Input(id=ids.HS_SEL_START, type="number", value=sel[0], min=0, step=1, debounce=True, className="num",
                  placeholder="from"),
        dcc.Input(id=ids.HS_SEL_STOP, type="number", value=sel[1], min=0, step=1, debounce=True, className="num",
                  placeholder="to (excl.)"),
        html.Button("Clear", id=ids.HS_CLEAR, className="btn"),
    ], className="hs-nav")
