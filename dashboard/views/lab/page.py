"""Lab page (``/lab``): preset experiments that show a classic phenomenon, one click each.

Every preset (``backend.lab.presets``) has a card: what it runs, one line on what to look for,
and Launch, which starts its runs with the app's job manager and opens its view: the Training
page overlaying the runs, or the preset's own view on this page (``/lab?preset=ID&run=a,b``).

Each view on this page is a section ``lab-view-<preset id>`` built by ``VIEWS[preset id](runs,
asked)`` (``runs``: the store's runs, newest first; ``asked``: the ``?run=`` ids meant for it);
the page wraps what the builder returns in that section, so builders must not use the id
themselves. A view module's callbacks are registered by a function this module calls (Dash runs
a page module once per app; a plain module's ``@callback`` reaches only a process's first app,
and tests build several). Opened with ``?preset=X``, X's view comes right after the cards and the page
scrolls to it. The gradient-flow view lives in :mod:`dashboard.views.lab.gradflow`.
"""
from __future__ import annotations

from typing import Callable

import dash
from dash import ALL, Input, Output, callback, clientside_callback, dcc, html, no_update

from backend.lab.presets import PRESETS, Preset, start_preset
from dashboard import ids
from dashboard.views.lab import activations as lab_activations
from dashboard.views.lab import gradflow as lab_gradflow
from dashboard.components import alert
from dashboard.context import current
from dashboard.inputs import Query, as_choice, as_list, trigger_id

dash.register_page(__name__, path="/lab", name="Lab", order=30, title="Lab · deepscope")
lab_gradflow.register()
lab_activations.register()  # here: Dash runs this module once per app, so every app gets the view's callbacks

LAB_LANDED = "lab-landed"      # dcc.Store: the preset the page was opened for (scrolls to its view)
LAB_SCROLLED = "lab-scrolled"  # dcc.Store: the view scrolled to (output of the clientside scroll)
VIEWS: dict[str, Callable[[list[dict], list[str]], object]] = {lab_gradflow.PRESET: lab_gradflow.section,
                                                               "activations": lab_activations.section}
VIEW_OF = {"clipping": "activations"}  # presets sharing another's view (the view has fixed component ids)


def view_id(preset_id: str) -> str:
    """The id of a preset's view section on this page."""
    return f"lab-view-{preset_id}"


def _card(p: Preset) -> html.Div:
    where = "its view below" if p.page == "/lab" else "the Training page, its runs overlaid"
    return html.Div([
        html.Div([html.H3(p.title), html.Button("Launch", id={"type": ids.LAB_LAUNCH, "preset": p.id},
                                                className="btn btn-primary")], className="lab-card-head"),
        html.P(p.explanation, className="lab-explanation"),
        html.Div([f"{len(p.runs)} runs: ", ", ".join(name.rsplit(" · ", 1)[-1] for name, _ in p.runs),
                  f". Opens {where}."], className="muted lab-runs"),
        *[html.Div(n, className="muted lab-note") for n in p.notes],
    ], id={"type": ids.LAB_PRESET, "preset": p.id}, className="card lab-card")


def view_order(landed: str | None, views=None) -> list[str]:
    """The views' preset ids in page order: the landed preset's first, the others as registered."""
    order = list(views if views is not None else VIEWS)
    return ([landed] if landed in order else []) + [v for v in order if v != landed]


def layout(**query) -> html.Div:
    """The presets' cards, then the views (``?preset=``'s first, ``?run=`` shown in it)."""
    context = current()
    runs = context.data.list_runs()
    q = Query(query)
    preset, asked_ids = q.str("preset", None, 64), q.run_ids("run")
    # the run list is cached for a second: runs launched just now are read fresh
    listed = {r["id"] for r in runs}
    runs = [r for r in (context.data.get_run(rid) for rid in asked_ids if rid not in listed) if r] + runs
    landed = PRESETS.get(preset or "")
    unknown = alert(f"There is no preset {preset!r}; presets: {', '.join(PRESETS)}.", "warning") \
        if preset and landed is None else None
    notice = q.notice()
    target = VIEW_OF.get(landed.id, landed.id) if landed is not None else None
    target = target if target in VIEWS else None
    # ?run= is meant for the landed preset's view; without ?preset= every view may show it
    sections = [html.Section(VIEWS[pid](runs, asked_ids if target in (None, pid) else []), id=view_id(pid),
                             className="lab-view lab-view-landed" if pid == target else "lab-view")
                for pid in view_order(target)]
    return html.Div([
        html.Div(html.H2("Lab"), className="page-head"),
        html.P("Preset experiments for what lecture slides show: one click launches small runs (under 3 minutes "
               "on two cores) and opens the view where the effect appears.", className="muted"),
        notice,
        html.Div(id=ids.LAB_ALERT, role="status",
                 children=alert(f"{landed.title}: {landed.explanation}", "info") if landed else unknown),
        dcc.Location(id=ids.LAB_LOCATION, refresh="callback-nav"),
        html.Div([_card(p) for p in PRESETS.values()], className="lab-grid"),
        *sections,
        dcc.Store(id=LAB_LANDED, data=target), dcc.Store(id=LAB_SCROLLED),
    ], className="lab-page")


@callback(Output(ids.LAB_ALERT, "children"), Output(ids.LAB_LOCATION, "href"),
          Input({"type": ids.LAB_LAUNCH, "preset": ALL}, "n_clicks"), prevent_initial_call=True)
def _launch(clicks):
    """Start the clicked preset's runs and open its view; a refusal says why."""
    trigger = trigger_id()
    name = as_choice(trigger.get("preset"), tuple(PRESETS)) if isinstance(trigger, dict) else None
    if name is None or not any(as_list(clicks)):
        return no_update, no_update
    ok, text, run_ids = start_preset(current().jobs, name)
    if not ok:
        return alert(text, "danger"), no_update
    preset = PRESETS[name]
    return alert([f"Started {len(run_ids)} runs of {preset.title}; opening ",
                  dcc.Link("its view", href=text), "..."], "success"), text


# Opened for a preset: bring its view into sight. The landed section is at least a window tall
# (lab_views.css), so the page can scroll that far even before its figures are drawn; the scroll
# is repeated for a moment while the page still grows, unless the person scrolled meanwhile.
clientside_callback(
    """
    function(preset) {
        if (!preset) { return window.dash_clientside.no_update; }
        let tries = 0, last = null;
        const go = () => {
            const el = document.getElementById('lab-view-' + preset);
            if (last !== null && Math.abs(window.scrollY - last) > 2) { return; }
            if (el) {
                el.scrollIntoView({block: 'start'});
                last = window.scrollY;
                if (el.getBoundingClientRect().top < 100) { return; }
            }
            if (tries++ < 30) { window.setTimeout(go, 100); }
        };
        window.requestAnimationFrame(() => window.setTimeout(go, 50));
        return preset;
    }
    """,
    Output(LAB_SCROLLED, "data"), Input(LAB_LANDED, "data"),
)
