"""New run page (``/new``): choose a task and an architecture, see its size, start it.

Validation, parameter count and memory estimate update as the user types; Start stays
disabled until the spec is valid, and a refused start shows its message. The form's
logic is in :mod:`dashboard.views.new_run.form`; where a data file may come from (an upload, or a
file in the operator's data roots, nothing else) is :mod:`dashboard.uploads`'.
"""
from __future__ import annotations

from pathlib import Path

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from backend.datafiles import DataFileError
from backend.spec import RunSpec
from backend.tasks import TASKS
from dashboard import ids
from dashboard.context import current
from dashboard.views.new_run.form import BY_NAME, FIELD_GROUPS, FormField, family_options, form_values, relevant_fields, \
    start_run, validate_form
from dashboard.inputs import as_choice, as_str
from dashboard.uploads import UPLOAD_LIMIT, FormFiles

NEW_UPLOAD, NEW_UPLOAD_STATUS = ids.NEW_UPLOAD, ids.NEW_UPLOAD_STATUS
DATA_FILE = {"type": ids.NEW_FIELD, "field": "data_file"}

dash.register_page(__name__, path="/new", name="New run", order=20, title="New run · deepscope")

DEFAULT_TASK = "digits-cnn"


def _input(f: FormField, value) -> object:
    fid = {"type": ids.NEW_FIELD, "field": f.name}
    if f.kind == "select":
        return dcc.Dropdown(id=fid, options=list(f.options), value=value, clearable=f.optional,
                            placeholder="family default" if f.optional else None)
    if f.kind == "bool":
        return dcc.Checklist(id=fid, options=[{"label": " yes", "value": "on"}], value=value)
    if f.kind in ("int", "float"):
        return dcc.Input(id=fid, type="number", value=value, step=f.step or 1, debounce=False, className="input")
    if f.kind == "file":
        return _file_input(fid, value)
    return dcc.Input(id=fid, type="text", value=value, debounce=False, className="input",
                     placeholder="e.g. wide cnn" if f.name == "name" else None)


def _file_input(fid: dict, value) -> html.Div:
    """A drop zone for the user's CSV, and a list of it plus the files of the operator's data roots."""
    files = _files()
    options = files.choices()
    if value and not any(o["value"] == value for o in options):
        options.append({"label": files.label(Path(value)), "value": value})
    return html.Div([
        dcc.Upload(id=NEW_UPLOAD, children=html.Div(["Drop a CSV file here or ", html.A("choose one")]),
                   max_size=UPLOAD_LIMIT, accept=".csv,.tsv,.txt,text/csv,text/plain", multiple=False,
                   className="upload-drop", className_reject="upload-drop upload-reject"),
        dcc.Dropdown(id=fid, options=options, value=value, clearable=True, placeholder="the generated reviews"),
        html.Div(id=NEW_UPLOAD_STATUS, className="field-error", role="status"),
    ])


def _files() -> FormFiles:
    """Where this app's form may take data files from (its uploads folder and data roots)."""
    return FormFiles.for_context(current())


def _field(f: FormField, value) -> html.Div:
    return html.Div([
        html.Label(f.label, className="field-label"),
        _input(f, value),
        html.Div(f.help, className="field-help") if f.help else None,
        html.Div(id={"type": ids.NEW_FEEDBACK, "field": f.name}, className="field-error"),
    ], id={"type": ids.NEW_WRAP, "field": f.name}, className="field")


def layout(task: str | None = None, **_query) -> html.Div:
    """The form, filled with the defaults of ``task`` (``?task=``) or digits-cnn."""
    task = task if task in TASKS else DEFAULT_TASK
    values = form_values(RunSpec.for_task(task))
    groups = [html.Fieldset([html.Legend(title), html.Div([_field(BY_NAME[n], values[n]) for n in names],
                                                          className="field-grid")]) for title, names in FIELD_GROUPS]
    side = html.Aside([
        html.H4("Size"), html.Div(id=ids.NEW_COST, className="cost"),
        html.Div(id=ids.NEW_ERRORS, className="general-errors"),
        html.Button("Start run", id=ids.NEW_START, className="btn btn-primary btn-wide", disabled=True),
        html.Div(id=ids.NEW_ALERT, role="status"),
        dcc.Location(id=ids.NEW_LOCATION, refresh="callback-nav"),
    ], className="side-card")
    return html.Div([
        html.Div(html.H2("New run"), className="page-head"),
        html.P("Pick a task and an architecture; the size and any problem show as you type.", className="muted"),
        html.Div([
            html.Div([
                html.Div([html.Label("Task", className="field-label"),
                          dcc.Dropdown(id=ids.NEW_TASK, options=sorted(TASKS), value=task, clearable=False),
                          html.Div(TASKS[task].description, id=ids.NEW_TASK_INFO, className="field-help")],
                         className="field task-field"),
                *groups,
            ], className="form-card"),
            side,
        ], className="new-grid"),
    ])


@callback(Output({"type": ids.NEW_FIELD, "field": ALL}, "value"),
          Output({"type": ids.NEW_FIELD, "field": "family"}, "options"),
          Output(ids.NEW_TASK_INFO, "children"),
          Input(ids.NEW_TASK, "value"), prevent_initial_call=True)
def _load_defaults(task):
    """A new task loads its default spec into every field."""
    task = as_choice(task, TASKS)
    if task is None:
        raise PreventUpdate
    values = form_values(RunSpec.for_task(task))
    return ([values.get(n, no_update) for n in _names(ctx.outputs_list[0])], family_options(task),
            TASKS[task].description)


def _names(items) -> list[str]:
    """The field names of pattern-matching ids as the request gave them; "" for anything not a name
    (the ids come from the client, so a junk request can send lists or objects there)."""
    out = []
    for item in items if isinstance(items, list) else []:
        ident = item.get("id") if isinstance(item, dict) else None
        name = ident.get("field") if isinstance(ident, dict) else None
        out.append(name if isinstance(name, str) and len(name) <= 64 else "")
    return out


def _form(names: list[str], values) -> dict:
    """``{field: value}`` of the named fields (junk names dropped)."""
    values = values if isinstance(values, list) else []
    return {n: v for n, v in zip(names, values) if n}


@callback(Output({"type": ids.NEW_WRAP, "field": ALL}, "className"),
          Input(ids.NEW_TASK, "value"), Input({"type": ids.NEW_FIELD, "field": "family"}, "value"),
          Input({"type": ids.NEW_FIELD, "field": "optimizer"}, "value"))
def _relevance(task, family, optimizer):
    """Grey out fields the chosen family or optimizer ignores."""
    keep = relevant_fields(as_str(task, 64), as_str(family, 64), as_str(optimizer, 64))
    return ["field" if name in keep else "field irrelevant" for name in _names(ctx.outputs_list)]


@callback(Output({"type": ids.NEW_FEEDBACK, "field": ALL}, "children"),
          Output(ids.NEW_COST, "children"), Output(ids.NEW_ERRORS, "children"), Output(ids.NEW_START, "disabled"),
          Input(ids.NEW_TASK, "value"), Input({"type": ids.NEW_FIELD, "field": ALL}, "value"))
def _validate(task, values):
    """Inline messages, size estimate and whether Start is allowed."""
    result = validate_form(as_str(task, 64, ""), _form(_names(ctx.inputs_list[1]), values), _files())
    feedback = [result.field_errors.get(name, "") for name in _names(ctx.outputs_list[0])]
    cost = result.cost or html.Span("fix the problems to see the size", className="muted")
    general = [html.Div(m, className="alert alert-danger") for m in result.general_errors]
    return feedback, cost, general, result.spec is None


@callback(Output(ids.NEW_ALERT, "children"), Output(ids.NEW_LOCATION, "href"),
          Input(ids.NEW_START, "n_clicks"), State(ids.NEW_TASK, "value"),
          State({"type": ids.NEW_FIELD, "field": ALL}, "value"), prevent_initial_call=True)
def _start(_clicks, task, values):
    """Start the run and open its training view; a refusal shows why."""
    values = _form(_names(ctx.states_list[1]), values)
    ok, text = start_run(current().jobs, as_str(task, 64, ""), values, _files())
    if not ok:
        return html.Div(text, className="alert alert-danger"), no_update
    return html.Div("Started; opening its training view...", className="alert alert-success"), f"/?run={text}"


@callback(Output(DATA_FILE, "options"), Output(DATA_FILE, "value", allow_duplicate=True),
          Output(NEW_UPLOAD_STATUS, "children"), Output(NEW_UPLOAD, "contents"),
          Input(NEW_UPLOAD, "contents"), State(NEW_UPLOAD, "filename"), State(DATA_FILE, "options"),
          prevent_initial_call=True)
def _upload(contents, filename, options):
    """Store an upload content-addressed and choose it; the drop zone is emptied so the bytes are sent once."""
    if contents is None:
        raise PreventUpdate
    files = _files()
    try:
        path = files.store_upload(contents, filename)
    except DataFileError as exc:
        return no_update, no_update, str(exc), None
    token = files.token(path)
    options = [o for o in options or [] if isinstance(o, dict) and o.get("value") != token]
    return options + [{"label": f"{files.label(path)} (uploaded)", "value": token}], token, "", None
