"""Layout pieces of the Attention page (``dashboard/views/attention/page.py``): the toolbar, the choices a
snapshot offers, the run options and the empty states, built from a :class:`~dashboard.views.attention.data.View`.

Example::

    choices = snapshot_choices(rows[-1]["meta"])      # {"item": [...], "layer": [...], "head": [...]}
    toolbar(view, run_options(runs, view.run), choices, kind="seq2seq")
"""
from __future__ import annotations

from dash import dcc, html

from dashboard import ids
from dashboard.views.attention.data import SEQ2SEQ, TRANSFORMER, View
from dashboard.components import empty_state
from dashboard.snapshot_slider import PLAY

HIDDEN = {"display": "none"}


def snapshot_choices(meta: dict | None) -> dict[str, list[dict]]:
    """Dropdown options of a snapshot's meta: items (labelled by their input text and format), layers, heads.
    Values are strings of indices (a Dash 4 dropdown shows a numeric 0 as empty).

    >>> snapshot_choices({"items": [{"name": "5/3/21", "extra": {"format": "m/d/yy"}}], "layers": ["l0"],
    ...                   "heads": ["h0", "h1"]})["item"]
    [{'label': '5/3/21   (m/d/yy)', 'value': '0'}]
    """
    meta = meta if isinstance(meta, dict) else {}
    items = [e for e in meta.get("items") or [] if isinstance(e, dict)]
    item_opts = []
    for n, e in enumerate(items):
        fmt = (e.get("extra") or {}).get("format")
        item_opts.append({"label": f"{e.get('name', n)}" + (f"   ({fmt})" if fmt else ""), "value": str(n)})
    layers = [str(x) for x in meta.get("layers") or []]
    heads = [str(x) for x in meta.get("heads") or []]
    return {"item": item_opts,
            "layer": [{"label": f"layer {i} ({name})" if name != f"l{i}" else f"layer {i}", "value": str(i)}
                      for i, name in enumerate(layers)],
            "head": [{"label": f"head {i}" if name == f"h{i}" else f"head {i} ({name})", "value": str(i)}
                     for i, name in enumerate(heads)]}


def run_options(runs: list[dict], chosen: str | None, known: dict[str, dict]) -> list[dict]:
    """The run dropdown: runs with attention, plus the chosen run when it has none (it says why below)."""
    options = [{"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]} for r in runs]
    if chosen in known and chosen not in {o["value"] for o in options}:
        r = known[chosen]
        options.append({"label": f"{r['name']}  ({r['id']}, no attention)", "value": r["id"]})
    return options


def no_attention_runs(what: str) -> html.Div:
    """Empty state for a store whose runs have no attention maps."""
    return empty_state("No run with attention maps yet", html.P(what),
                       html.P(["No run with attention maps yet: start dates-seq2seq or a transformer on code-lstm "
                               "from ", dcc.Link("New run", href="/new"), " (attention is on by default for "
                               "dates-seq2seq; for code-lstm choose model family transformer)."]))


def no_attention_message(run: dict, kind: str | None) -> str:
    """Why a run has nothing to show on this page, and what to do."""
    name = f"Run {run.get('name') or run['id']} ({run['id']})"
    model = (run.get("spec") or {}).get("model") or {}
    if kind == SEQ2SEQ:
        return (f"{name} is an encoder-decoder without attention (attention none): it has no attention to show. "
                "Its decoder reads only the encoder's last state. Start dates-seq2seq with attention additive or "
                "multiplicative from New run to see where the decoder looks.")
    return (f"{name} is a {model.get('family') or 'model'} on {run.get('task')}: it has no attention to show. "
            "Attention maps are recorded for dates-seq2seq with attention, and for transformers on a "
            "language-model task (e.g. code-lstm with model family transformer).")


def toolbar(view: View, options: list[dict], choices: dict[str, list[dict]], kind: str | None) -> html.Div:
    def field(label, cid, comp):
        return html.Div([html.Label(label, htmlFor=cid), comp], className="field")
    return html.Div([
        field("Run", ids.ATT_RUN, dcc.Dropdown(id=ids.ATT_RUN, options=options, value=view.run, clearable=False)),
        html.Div(field("Probe input", ids.ATT_ITEM,
                       dcc.Dropdown(id=ids.ATT_ITEM, options=choices["item"], value=str(view.item),
                                    clearable=False)),
                 id=ids.ATT_ITEM_FIELD, style=None if kind == SEQ2SEQ else HIDDEN),
        html.Div([field("Layer", ids.ATT_LAYER, dcc.Dropdown(id=ids.ATT_LAYER, options=choices["layer"],
                                                             value=str(view.layer), clearable=False)),
                  field("Head", ids.ATT_HEAD, dcc.Dropdown(id=ids.ATT_HEAD, options=choices["head"],
                                                           value=str(view.head), clearable=False))],
                 id=ids.ATT_HEAD_FIELDS, className="att-heads", style=None if kind == TRANSFORMER else HIDDEN),
        html.Div([html.Label("Training step", htmlFor=ids.ATT_STEP),
                  html.Div([html.Button(PLAY, id=ids.ATT_PLAY, className="btn kn-play", n_clicks=0,
                                        title="step through the snapshots up to the newest, 2 a second"),
                            html.Div(dcc.Slider(id=ids.ATT_STEP, min=0, max=0, step=1, value=0, marks=None,
                                                included=False, allow_direct_input=False), className="kn-slider")],
                           className="kn-step-row"),
                  html.Div([dcc.Checklist(id=ids.ATT_FOLLOW, options=[{"label": " follow the newest", "value": "on"}],
                                          value=[] if view.step is not None else ["on"], inline=True),
                            html.Span(id=ids.ATT_INFO, className="muted")], className="step-info")],
                 className="field field-step"),
    ], className="toolbar att-toolbar")
