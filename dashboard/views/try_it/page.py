"""Try it page (``/try``): type a sentence or some code and see what a run's newest checkpoint makes of it.

For every text run (a character language model or a text classifier) that has a checkpoint: the
prediction (the class and its probability, or the likeliest next characters), the hidden states and
gates of each layer and direction at every token (cells down, tokens across), for a classifier how
its prediction evolves word by word, and for a language model text generation: free running
(teacher forcing off: the model continues the text from its own samples, at a temperature) or
teacher forced (on: under each character, what the model guessed after reading the true text before it).

Address: ``/try?run=<run id>`` preselects a run; ``&text=...`` (URL-encoded) fills in the text.
The model is loaded by :mod:`backend.inference` inside a callback: opening the dashboard imports no torch.
"""
from __future__ import annotations

import logging

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from backend.inference_runs import EXAMPLES, example_text, is_language_model, run_label, tryable_runs
from backend.probes.states import GATE_NAMES
from dashboard.components import alert, blank_figure, no_runs_state
from dashboard.context import current
from dashboard.inputs import Query, as_bool, as_choice, as_dict, as_float, as_int, as_run_id, as_str, trigger_id
from dashboard.views.try_it.seq import tagging_view, translation_view
from dashboard.views.try_it.figures import class_prediction, evolution_figure, generation_text, guesses_figure, \
    next_token_prediction, states_heatmap, teacher_forcing_strip, token_chips
from dashboard.views.try_it.ids import (TRY_ANALYSE, TRY_DIR, TRY_EVOLUTION, TRY_EVOLUTION_CARD, TRY_EXAMPLE, TRY_GENERATE,
                               TRY_GEN_CARD, TRY_GEN_MESSAGE, TRY_GEN_OUT, TRY_GUESSES, TRY_GUESSES_CARD,
                               TRY_HEATMAP, TRY_HEAT_NOTE, TRY_INFO, TRY_INTERVAL, TRY_LAYER, TRY_LENGTH,
                               TRY_MESSAGE, TRY_PREDICTION, TRY_REQUEST, TRY_RESULT, TRY_RUN, TRY_SEED, TRY_STATE,
                               TRY_STATES_CARD, TRY_TEACHER, TRY_TEMPERATURE, TRY_TEXT, TRY_TOKENS)

dash.register_page(__name__, path="/try", name="Try it", order=4, title="Try it · deepscope")
log = logging.getLogger(__name__)


WHAT = ("Type a sentence (or some code, a date, a number in words) and see what a trained model makes of it: its "
        "prediction, the hidden state and gates of every cell after each token, for a classifier how its verdict "
        "changes word by word, for an encoder-decoder what it writes and where it looked, for a tagger each word's "
        "tag. It runs the run's newest checkpoint, so the answers improve as the run trains.")
HOW_TO_REACH = ["Open it for any run at ", html.Code("/try?run=<run id>"),
                " (language models, text classifiers, encoder-decoders and taggers with a checkpoint)."]
PLAIN = {"displaylogo": False, "displayModeBar": False}
HIDDEN, SHOWN = {"display": "none"}, {}
TEXT_CHARS = 80_000  # characters of a text accepted at all; the model's own limit (20,000) says why above it


def read_result(value) -> dict | None:
    """The analysed text's store (written by :func:`_analyse`) as the page sends it back, checked."""
    v = as_dict(value)
    run, text = as_run_id((v or {}).get("run")), as_str((v or {}).get("text"), TEXT_CHARS)
    if run is None or text is None:
        return None
    return {"run": run, "text": text, "checkpoint": as_str(v.get("checkpoint"), 255),
            "words": as_bool(v.get("words")), "relu": as_bool(v.get("relu"))}


def _run_options(runs: list[dict], keep: str | None, store) -> list[dict]:
    options = [{"label": run_label(r), "value": r["id"]} for r in tryable_runs(runs, store.run_dir)]
    if keep and keep not in {o["value"] for o in options}:  # asked for, but not (yet) tryable: say so on Analyse
        run = store.get_run(keep)
        if run is not None:
            options.append({"label": run_label(run) + "  (cannot be tried yet)", "value": keep})
    return options


def layout(**query) -> html.Div:
    context = current()
    store = context.data.store
    runs = context.data.list_runs()
    q = Query(query)
    run, text = q.run_id("run"), q.str("text", None, 20_000)
    if not runs and not run:
        return html.Div([q.notice(), no_runs_state(WHAT + " Train a language model (code-lstm, brackets-lstm) or a "
                                                          "sentiment classifier.")])
    options = _run_options(runs, run, store)
    value = run or (options[0]["value"] if options else None)
    chosen = store.get_run(value) if value else None
    start_text = text if text is not None else (example_text(chosen) if chosen else "")
    return html.Div([
        html.Div(html.H2("Try it"), className="page-head"),
        html.P(WHAT, className="page-intro"),
        html.Div([
            html.Div([html.Label("Run", htmlFor=TRY_RUN),
                      dcc.Dropdown(id=TRY_RUN, options=options, value=value, clearable=False,
                                   placeholder="No text run with a checkpoint yet...")], className="field"),
            html.Div([html.Label("Your text", htmlFor=TRY_TEXT),
                      dcc.Textarea(id=TRY_TEXT, value=start_text, className="try-text", spellCheck=False,
                                   placeholder="Type a sentence, or some code...")], className="field"),
            html.Div([html.Button("Analyse", id=TRY_ANALYSE, className="btn btn-primary"),
                      html.Button("Use the example", id=TRY_EXAMPLE, className="btn",
                                  title="replace the text with an example for this run's task"),
                      html.Span(HOW_TO_REACH, className="muted")], className="try-actions"),
        ], className="toolbar try-toolbar"),
        q.notice(),
        html.Div(id=TRY_MESSAGE, role="status"),
        html.Div(id=TRY_INFO, className="try-info muted"),
        dcc.Loading(html.Section([html.H3("Prediction"), html.Div(id=TRY_PREDICTION), html.Div(id=TRY_TOKENS)],
                                 className="card"), type="dot"),
        html.Section([html.H3("How the prediction evolves, token by token"),
                      dcc.Graph(id=TRY_EVOLUTION, config=PLAIN, figure=blank_figure("Analyse a text to see this."))],
                     id=TRY_EVOLUTION_CARD, className="card", style=HIDDEN),
        html.Section([html.H3("Next-character guesses"),
                      dcc.Graph(id=TRY_GUESSES, config=PLAIN, figure=blank_figure("Analyse a text to see this."))],
                     id=TRY_GUESSES_CARD, className="card", style=HIDDEN),
        _generation_card(is_language_model(chosen) if chosen else False),
        html.Section([
            html.H3("Hidden states and gates"),
            html.Div([_field("Layer", TRY_LAYER), _field("Direction", TRY_DIR), _field("State or gate", TRY_STATE)],
                     className="try-state-controls"),
            dcc.Graph(id=TRY_HEATMAP, config=PLAIN, figure=blank_figure("Analyse a text to see this.")),
            html.P(id=TRY_HEAT_NOTE, className="try-legend muted"),
        ], id=TRY_STATES_CARD, className="card"),
        dcc.Store(id=TRY_REQUEST), dcc.Store(id=TRY_RESULT),
        dcc.Interval(id=TRY_INTERVAL, interval=max(5000, 10 * context.poll_ms)),
    ], className="try-page")


def _field(label: str, cid: str) -> html.Div:
    return html.Div([html.Label(label, htmlFor=cid), dcc.Dropdown(id=cid, clearable=False)], className="field")


def _generation_card(show: bool) -> html.Section:
    return html.Section([
        html.H3("Generate text"),
        html.P("The text box above is the prompt. Teacher forcing off: the model continues your text on its own, "
               "reading back each character it wrote. On: it reads your true text and, under each character, shows "
               "what it guessed would come there (as in training, where it never has to live with its own mistakes).",
               className="muted"),
        html.Div([
            html.Div([html.Label("Temperature (0: always the likeliest character)", htmlFor=TRY_TEMPERATURE),
                      dcc.Slider(id=TRY_TEMPERATURE, min=0, max=2, step=0.1, value=0.8,
                                 marks={0: "0", 0.5: "0.5", 1: "1", 1.5: "1.5", 2: "2"},
                                 tooltip={"placement": "bottom", "always_visible": False})], className="field"),
            html.Div([html.Label("Length", htmlFor=TRY_LENGTH),
                      dcc.Input(id=TRY_LENGTH, type="number", min=1, max=1000, step=1, value=200, className="num")],
                     className="field"),
            html.Div([html.Label("Seed", htmlFor=TRY_SEED),
                      dcc.Input(id=TRY_SEED, type="number", min=0, step=1, value=0, className="num")],
                     className="field"),
            html.Div([html.Label("Teacher forcing", htmlFor=TRY_TEACHER),
                      dcc.RadioItems(id=TRY_TEACHER, value="off", inline=True, className="pj-radio",
                                     options=[{"label": " off: the model writes on", "value": "off"},
                                              {"label": " on: guesses under your text", "value": "on"}])],
                     className="field"),
            html.Button("Generate", id=TRY_GENERATE, className="btn btn-primary"),
        ], className="try-gen-controls"),
        html.Div(id=TRY_GEN_MESSAGE, role="status"),
        dcc.Loading(html.Div(id=TRY_GEN_OUT), type="dot"),
    ], id=TRY_GEN_CARD, className="card", style=SHOWN if show else HIDDEN)


@callback(Output(TRY_RUN, "options"), Input(TRY_INTERVAL, "n_intervals"), State(TRY_RUN, "value"),
          State(TRY_RUN, "options"), prevent_initial_call=True)
def _options(_n, value, options):
    """Runs that got their first checkpoint since the page opened join the list."""
    value = as_run_id(value)
    data = current().data
    fresh = _run_options(data.list_runs(), value, data.store)
    return fresh if fresh != options else no_update


@callback(Output(TRY_TEXT, "value"), Output(TRY_REQUEST, "data"), Output(TRY_GEN_CARD, "style"),
          Output(TRY_GEN_OUT, "children", allow_duplicate=True),
          Output(TRY_GEN_MESSAGE, "children", allow_duplicate=True),
          Input(TRY_RUN, "value"), Input(TRY_ANALYSE, "n_clicks"), Input(TRY_EXAMPLE, "n_clicks"),
          State(TRY_TEXT, "value"), prevent_initial_call="initial_duplicate")
def _request(run_id, clicks, _example, text):
    """What to analyse: on a new run its example (unless the user typed something of their own), on Analyse
    the text as typed. One callback, so the analysis never reads the text before the example replaced it."""
    run_id, clicks = as_run_id(run_id), as_int(clicks, 0, 0)
    text = text[:TEXT_CHARS] if isinstance(text, str) else ""  # longer is past the model's limit: it says so
    run = current().data.store.get_run(run_id) if run_id else None
    gen_style = SHOWN if run and is_language_model(run) else HIDDEN
    trigger = trigger_id()
    if run is not None and (trigger == TRY_EXAMPLE or (trigger == TRY_RUN and _is_example(text))):
        text = example_text(run)
    clear = trigger == TRY_RUN  # generated text of another run would mislead
    return (text, {"run": run_id, "text": text or "", "n": clicks or 0}, gen_style,
            None if clear else no_update, None if clear else no_update)


def _is_example(text: str | None) -> bool:
    return not (text or "").strip() or text in EXAMPLES.values()


def _layer_options(states: dict) -> tuple[list, list, dict]:
    """Choices of layer (numbered from 0, as on the Hidden states page and in PyTorch's names such as
    ``weight_ih_l0``), direction and state."""
    layers = sorted({layer for layer, _ in states})
    dirs = [d for d in ("fwd", "bwd") if any(k[1] == d for k in states)]
    names = list(next(iter(states.values())).keys()) if states else []
    return ([{"label": f"layer {layer}", "value": layer} for layer in layers],
            [{"label": {"fwd": "forward", "bwd": "backward (reads right to left)"}[d], "value": d} for d in dirs],
            [{"label": f"{n}: {GATE_NAMES.get(n, n)}", "value": n} for n in names])


def _keep(value, options: list[dict], default=None):
    values = [o["value"] for o in options]
    if value in values:
        return value
    return default if default in values else (values[0] if values else None)


def _checkpoint_line(store, result) -> str:
    run = store.get_run(result.run_id) or {}
    step, status = int(run.get("step") or 0), run.get("status", "")
    return f"Checkpoint at step {result.step:,}; the run is at step {step:,}{' too' if step == result.step else ''} " \
           f"({status})."


@callback(Output(TRY_MESSAGE, "children"), Output(TRY_INFO, "children"), Output(TRY_PREDICTION, "children"),
          Output(TRY_TOKENS, "children"), Output(TRY_RESULT, "data"),
          Output(TRY_EVOLUTION, "figure"), Output(TRY_EVOLUTION_CARD, "style"),
          Output(TRY_GUESSES, "figure"), Output(TRY_GUESSES_CARD, "style"), Output(TRY_STATES_CARD, "style"),
          Output(TRY_LAYER, "options"), Output(TRY_LAYER, "value"), Output(TRY_DIR, "options"),
          Output(TRY_DIR, "value"), Output(TRY_STATE, "options"), Output(TRY_STATE, "value"),
          Input(TRY_REQUEST, "data"), State(TRY_LAYER, "value"), State(TRY_DIR, "value"), State(TRY_STATE, "value"))
def _analyse(request, layer, direction, state):
    """Run the model on the text; every refusal is a message in the page."""
    empty = [None, None, None, None, None, no_update, HIDDEN, no_update, HIDDEN, no_update,
             [], None, [], None, [], None]
    request = as_dict(request)
    if request is not None:
        request = {"run": as_run_id(request.get("run")), "text": as_str(request.get("text"), TEXT_CHARS, "")}
    layer, direction, state = as_int(layer, None, 0, 64), as_choice(direction, ("fwd", "bwd")), as_str(state, 8)
    if not request or not request.get("run"):
        return [alert("Choose a run above. Try it reads language models (code-lstm, brackets-lstm, recall-lstm), "
                      "text classifiers (sentiment-lstm, sentiment-cnn), encoder-decoders (dates-seq2seq, "
                      "numbers-seq2seq) and taggers (tags-bidir) once they have written a checkpoint.", "info"),
                *empty[1:]]
    store = current().data.store
    try:
        from backend.inference import analyse_run  # torch, loaded on first use

        result = analyse_run(store, request["run"], request.get("text") or "")
    except ValueError as exc:
        return [alert(str(exc), "danger"), *empty[1:]]
    except Exception as exc:  # noqa: BLE001 - a broken checkpoint must not break the page
        log.exception("Try it failed on run %s", request.get("run"))
        return [alert(f"Could not run the model: {exc}", "danger"), *empty[1:]]
    message = None
    if result.unknown:
        shown = ", ".join(f"“{t}”" for t in result.unknown[:12]) + (" ..." if len(result.unknown) > 12 else "")
        message = alert([f"Not in the model's vocabulary, read as “unknown”: {shown}. ",
                         "The model never saw these in training, so its answer may mean little."], "warning")
    words = result.kind in ("text", "tag")
    unit = "words" if words else "characters"
    info = f"{_checkpoint_line(store, result)} Read as {len(result.tokens):,} {unit}."
    evolution = guesses = no_update
    if result.kind == "seq2seq":
        prediction = translation_view(result.translation)
    elif result.kind == "tag":
        prediction = tagging_view(result.tagging)
    elif words:
        prediction = class_prediction(result.class_names, result.probs)
        evolution = evolution_figure(result.tokens, result.evolution, result.class_names)
    else:
        prediction = next_token_prediction(result.top_tokens[-1], result.top_probs[-1])
        guesses = guesses_figure(result.tokens, result.top_tokens, result.top_probs)
    tokens = html.Div([html.Div("The text as the model reads it:", className="muted"),
                       token_chips(result.tokens, result.unknown)]) \
        if result.unknown or result.kind == "text" else None
    if not result.states and result.states_note:  # a script's model without recurrent layers: the backend says so
        tokens = html.Div([tokens, html.P(result.states_note, className="muted")])
    elif not result.states and result.family == "transformer":
        tokens = html.Div([tokens, html.P([
            "A transformer keeps no recurrent state per token: every position reads the ones before it through "
            "attention. See its attention maps on the ",
            dcc.Link("Attention page", href=f"/attention?run={result.run_id}"), "."], className="muted")])
    elif not result.states:
        model = ((store.get_run(result.run_id) or {}).get("spec") or {}).get("model") or {}
        widths = ", ".join(str(k) for k in model.get("kernel_sizes", [])) or "a few"
        tokens = html.Div([tokens, html.P([
            f"A text CNN keeps no state per token: it slides filters over every run of {widths} words (its n-gram "
            "widths) and keeps each filter's best match. See which n-grams its filters detect on the ",
            dcc.Link("Kernels page", href=f"/kernels?run={result.run_id}"), "."], className="muted")])
    layers, dirs, names = _layer_options(result.states)
    stored = {"run": result.run_id, "text": request.get("text") or "", "checkpoint": result.checkpoint,
              "words": words, "relu": _relu(store, result.run_id)}
    return [message, info, prediction, tokens, stored,
            evolution, SHOWN if result.kind == "text" else HIDDEN, guesses, SHOWN if result.kind == "lm" else HIDDEN,
            SHOWN if result.states else HIDDEN,
            layers, _keep(layer, layers), dirs, _keep(direction, dirs), names, _keep(state, names, "h")]


def _relu(store, run_id: str) -> bool:
    model = ((store.get_run(run_id) or {}).get("spec") or {}).get("model") or {}
    return model.get("family") == "rnn" and model.get("activation") == "relu"


@callback(Output(TRY_HEATMAP, "figure"), Output(TRY_HEAT_NOTE, "children"),
          Input(TRY_RESULT, "data"), Input(TRY_LAYER, "value"), Input(TRY_DIR, "value"), Input(TRY_STATE, "value"))
def _heatmap(stored, layer, direction, state):
    """The chosen state or gate of the analysed text (the analysis is cached: no second model run)."""
    stored = read_result(stored)
    layer, direction, state = as_int(layer, None, 0, 64), as_choice(direction, ("fwd", "bwd")), as_str(state, 8)
    if not stored:
        return blank_figure("Analyse a text to see its hidden states."), None
    if layer is None or direction is None or state is None:
        return blank_figure("This model keeps no state per token."), None
    try:
        from backend.inference import analyse_run

        result = analyse_run(current().data.store, stored["run"], stored["text"], stored.get("checkpoint"))
        values = result.states[(int(layer), direction)][state]
    except (ValueError, KeyError) as exc:
        return blank_figure(f"Cannot show this: {exc}"), None
    where = f"layer {int(layer)}" + (", backward" if direction == "bwd" else "")
    label = f"{GATE_NAMES.get(state, state)} of {where}, after each token"
    fig = states_heatmap(values, result.tokens, label, state, words=stored.get("words", False),
                         relu=stored.get("relu", False))
    if state in "ifozr":
        kind = "gates run from 0 (white: closed) to 1 (green: open)"
    elif stored.get("relu", False) and state == "h":
        kind = "a ReLU state is never negative: white is 0, darker green is larger"
    else:
        kind = "red: positive, blue: negative, white: near 0"
    note = (f"Rows are the {values.shape[1]} cells of {where}, columns the {len(result.tokens)} tokens of your text; "
            f"each column is the state after reading that token. Colours: {kind}. Hover a square for its value.")
    return fig, note


@callback(Output(TRY_GEN_OUT, "children"), Output(TRY_GEN_MESSAGE, "children"),
          Input(TRY_GENERATE, "n_clicks"), State(TRY_RUN, "value"), State(TRY_TEXT, "value"),
          State(TRY_TEMPERATURE, "value"), State(TRY_LENGTH, "value"), State(TRY_SEED, "value"),
          State(TRY_TEACHER, "value"), prevent_initial_call=True)
def _generate(_clicks, run_id, text, temperature, length, seed, teacher):
    """Free running (teacher forcing off) or teacher forced (on) text of the run's language model."""
    run_id, text = as_run_id(run_id), as_str(text, TEXT_CHARS, "")
    temperature, length = as_float(temperature, None), as_int(length, None)
    seed, teacher = as_int(seed, None, 0, 2**63 - 1), as_choice(teacher, ("on", "off"), "off")
    if run_id is None:
        return None, alert("Choose a run above.", "warning")
    store = current().data.store
    try:
        from backend.inference import generate_text, load_run, teacher_force_text

        loaded = load_run(store, run_id)
        if teacher == "on":
            tf = teacher_force_text(loaded, text or "")
            right = sum(g == t for g, t in zip(tf.guesses, tf.tokens[1:]))
            head = html.Div([html.Strong(f"{right} of {len(tf.guesses)} characters guessed right "
                                         f"({100 * tf.accuracy:.0f}%)"),
                             f", each after reading your true text before it (checkpoint at step {tf.step:,}). "
                             "Top: your text; below it: the model's guess. Green: it gave the true character a high "
                             "probability; red: a low one. Wrong guesses in red letters."], className="try-info")
            return html.Div([head, teacher_forcing_strip(tf.tokens, tf.guesses, tf.p_true)]), None
        if length is None:
            raise ValueError("Length must be a whole number from 1 to 1,000.")
        gen = generate_text(loaded, text or "", length, 0.0 if temperature is None else temperature, seed)
    except ValueError as exc:
        return None, alert(str(exc), "danger")
    except Exception as exc:  # noqa: BLE001
        log.exception("generation failed on run %s", run_id)
        return None, alert(f"Could not generate: {exc}", "danger")
    how = ("always the likeliest character (greedy)" if gen.temperature == 0
           else f"sampled at temperature {gen.temperature:g}, seed {gen.seed}")
    head = html.Div([html.Strong(f"{len(gen.text)} characters written by the model"),
                     f": {how}, checkpoint at step {gen.step:,}. Grey: your prompt.",
                     " (Empty prompt: it starts on a new line.)" if not (text or "") else ""], className="try-info")
    warn = (alert(f"Not in the vocabulary, read as unknown: {', '.join(gen.unknown[:12])}", "warning")
            if gen.unknown else None)
    return html.Div([head, generation_text(text or "", gen.text)]), warn
