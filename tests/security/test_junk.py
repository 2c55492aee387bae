"""Junk at the dashboard's edges gets no HTTP 500: bad URL parameters, long strings, junk callback bodies.

Every request goes through Flask's test client with the app's safety net (Dash's ``on_error``, which
turns an exception into "no update") switched off, so a callback that raises shows as a 500 here: the
checks at the edge (``dashboard/inputs.py``) are what is tested. The request bodies are built by
``bench/_dash_fuzz.py`` (shared with ``bench/fuzz_http.py``, which sends thousands over HTTP).

    .venv/bin/python -m pytest tests/security/test_junk.py      # ~30 s
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from _dash_fuzz import DryJobs, Fuzzer, by_callback, client_sender, fetch_dependencies, split_output  # noqa: E402

BAD = "1e999"
URL_PARAMS = ("step", "layer", "pos", "ob", "oa", "win")
PAGES_OUTPUT = ".._pages_content.children..._pages_store.data.."


def new_run_form(output: str) -> bool:
    """Whether a callback writes to the New run form (dashboard/views/new_run/page.py, dashboard/views/new_run/form.py):
    its input checks are their own change; it is swept in test_new_run_form_answers_junk_without_500."""
    ids = [o["id"] for o in split_output(output)[0]]
    return any(str(i.get("type", "") if isinstance(i, dict) else i).startswith("new-") for i in ids)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A store with tiny trained runs (hidden states, kernels, samples, gradient flow, embeddings,
    checkpoints) and one queued run; a few seconds of training on CPU."""
    from backend.spec import RunSpec
    from backend.store import RunStore
    from backend.training.worker import run_training

    data = tmp_path_factory.mktemp("junk") / "data"
    store = RunStore(data)
    runs = {}
    for task in ("brackets-lstm", "digits-cnn"):
        spec = RunSpec.for_task(task, steps=4, probe_every=4, eval_every=4, checkpoint_every=4, log_every=2)
        runs[task] = store.create_run(task, spec.task, spec.model_dump())
        assert run_training(store, runs[task], device="cpu") == "completed"
    store.create_run("waiting", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="queued")
    return data, runs


@pytest.fixture(scope="module")
def app(data_dir):
    from backend.store import RunStore
    from dashboard.app import create_app

    data, _runs = data_dir
    app = create_app(data, jobs=DryJobs(RunStore(data)))
    app._on_error = None  # no safety net: an exception in a callback answers 500 here
    return app


@pytest.fixture(scope="module")
def send(app):
    return client_sender(app.server.test_client())


def _pages() -> list[str]:
    import dash
    return sorted({p["path"] for p in dash.page_registry.values()})


def _render(send, path: str, search: str) -> tuple[int, str]:
    """Status and (for a 200) the answer's text as it reads, through the routing callback that renders pages."""
    result = Fuzzer(send, []).render(path, search)
    if result.status != 200:
        return result.status, result.text
    return result.status, json.dumps(json.loads(result.text), ensure_ascii=False)  # Dash writes "/" as \u002f


def test_bad_url_parameters_render_every_page_and_the_page_says_what_it_ignored(app, send):
    pages = _pages()
    assert {"/", "/hidden", "/kernels", "/projections", "/lab", "/runs", "/try"} <= set(pages)
    for path in pages:
        for name in URL_PARAMS:
            status, _ = send(f"{path}?{name}={BAD}", None)
            assert status == 200, f"GET {path}?{name}={BAD}: {status}"
        for search in [f"?{name}={BAD}" for name in URL_PARAMS] + ["?" + "&".join(f"{n}={BAD}" for n in URL_PARAMS)]:
            status, text = _render(send, path, search)
            assert status == 200, f"{path}{search}: {status}"
            content = json.loads(text)["response"]["_pages_content"]["children"]
            assert content, f"{path}{search}: an empty page"
            if path == "/new":  # its layout is the New run form's change
                continue
            shown = json.dumps(content)
            name = search[1:].split("=")[0]
            assert "Ignored in the address" in shown and f"{name}={BAD}" in shown, f"{path}{search}: no notice"


def test_hidden_page_reads_good_parameters_and_clamps_or_ignores_bad_ones(send, data_dir):
    _data, runs = data_dir
    status, text = _render(send, "/hidden", f"?run={runs['brackets-lstm']}&step=10&layer=0&pos=5&win=160")
    assert status == 200 and "Ignored in the address" not in text
    status, text = _render(send, "/hidden", f"?run={runs['brackets-lstm']}&ob=999&win=7&run=x&thr=NaN&sel=9-3")
    assert status == 200
    for said in ("ob=999: out of range, using 50", "win=7: not one of 40, 80, 160, 320", "given more than once",
                 "thr=NaN: not a finite number", "sel=9-3: not a range"):
        assert said in text, said
    status, text = _render(send, "/kernels", "?run=../../etc/passwd")
    assert status == 200 and "run=../../etc/passwd: not a run id" in text


def test_a_long_string_where_run_ids_belong_is_answered_fast_and_bounded(app, send):
    from dashboard.inputs import MAX_RUNS, as_run_ids

    deps = fetch_dependencies(send)
    fz = Fuzzer(send, deps)
    steps = next(d for d in fz.server_deps if d["output"].startswith("..lab-gf-step.max"))
    live = next(d for d in fz.server_deps if d["output"].startswith("..train-graph-loss.figure"))
    for long in ("x" * 5000, "ab," * 1700, "𝕏" * 5000):
        for dep in (steps, live):
            body = fz.body(dep, "plain")
            body["inputs"][1]["value"] = long  # the run dropdown's value
            body["changedPropIds"] = [f"{body['inputs'][1]['id']}.value"]
            t0 = time.perf_counter()
            result = fz.post(body, dep["output"])
            assert result.status in (200, 204) and time.perf_counter() - t0 < 1.0, (dep["output"], result.status)
    t0 = time.perf_counter()
    assert as_run_ids("x" * 200_000) == [] and len(as_run_ids("ab1," * 50_000)) == 1
    assert len(as_run_ids(",".join(f"r{i}" for i in range(50_000)))) == MAX_RUNS
    assert time.perf_counter() - t0 < 0.1
    t0 = time.perf_counter()
    status, text = _render(send, "/", "?run=" + ",".join(f"r{i}" for i in range(20_000)))
    assert status == 200 and f"more than {MAX_RUNS} runs" in text and time.perf_counter() - t0 < 1.0


def _sweep(send, data_dir, keep) -> Fuzzer:
    """Each kept callback: requests with the pages' own values (twice over), then three junk bodies per run."""
    _data, runs = data_dir
    fz = Fuzzer(send, fetch_dependencies(send), seed=1)
    deps = [d for d in fz.server_deps if keep(d["output"])]
    for rid in runs.values():
        fz.harvest_pages([f"{path}?run={rid}" for path in _pages()])
        fz.warm(1, deps)
        fz.sweep(3, deps)
    return fz


def test_junk_to_every_callback_gets_no_500(send, data_dir):
    fz = _sweep(send, data_dir, lambda out: out != PAGES_OUTPUT and not new_run_form(out))
    swept = {r.callback for r in fz.results if not r.callback.startswith("page ")}
    assert len(swept) >= 45, len(swept)  # every callback of every page but the New run form's
    assert by_callback(fz.results, 500) == {}
    assert not [r for r in fz.results if r.seconds > 5], "slow answers"


def test_junk_to_the_live_route_gets_a_400_or_an_answer_never_a_500(send, data_dir):
    """The Training page's plain live route (dashboard/views/training/live_route.py): junk query strings, some
    naming real runs, get a 400 with a reason or (when they happen to be valid) an answer; never a 500."""
    _data, runs = data_dir
    fz = Fuzzer(send, fetch_dependencies(send), seed=2)
    good = {"run": [",".join(runs.values()), *runs.values()], "since": ["0", "0,0", "5"], "smooth": ["0", "0.6"]}
    results = fz.route_junk("/_deepscope/live", ("run", "since", "smooth", "x"), 300, good)
    assert {r.status for r in results} <= {200, 400} and 400 in {r.status for r in results}
    assert not [r for r in results if r.seconds > 2], "slow answers"


def test_routing_callback_takes_junk_search_strings(send):
    fz = Fuzzer(send, [], seed=2)
    results = fz.search_junk(_pages(), ("run", "step", "pos", "win", "sel", "preset", "text", "zzz"), 6, odd=False)
    assert len(results) >= 40 and by_callback(results, 500) == {}


def test_new_run_form_answers_junk_without_500(send, data_dir):
    fz = _sweep(send, data_dir, new_run_form)
    assert by_callback(fz.results, 500) == {}


def test_input_helpers_turn_junk_into_defaults():
    from dashboard.inputs import (Query, as_choice, as_float, as_int, as_run_id, as_run_ids, as_steps, as_str,
                                  first_point_int)

    for junk in (None, True, "1e999", "NaN", float("nan"), float("inf"), [], {}, "9" * 5000, 2.5, "x"):
        assert as_int(junk, -7) == -7, junk
    assert (as_int(10**400, 0, 0, 50), as_int("-3", 0, 0), as_int(" 12 ")) == (50, 0, 12)
    assert (as_float("1e999", 0.3), as_float(10**400, None), as_float(10**400, 0, 0, 1), as_float("0.25")) == \
        (0.3, None, 1, 0.25)
    assert (as_str("x" * 201), as_str(["a"]), as_choice(["pca"], ("pca",), "tsne")) == (None, None, "tsne")
    for bad in ("../../etc/passwd", "/proc/self/environ", "a" * 65, "", "a b", "<script>", 7, ["a1"]):
        assert as_run_id(bad) is None, bad
    assert as_run_ids(["a1", "a1", None, {"x": 1}, "b2"]) == ["a1", "b2"] and as_run_ids("a1,b2") == ["a1", "b2"]
    assert as_steps([0, 10, "20"]) is None and as_steps([0, 10]) == [0, 10] and as_steps("0,10", []) == []
    assert first_point_int({"points": [{"customdata": [3]}]}) == 3
    assert first_point_int({"points": [{"customdata": float("inf")}]}, default=0) == 0
    q = Query({"step": "1e999", "pos": "-4", "run": ["a1", "b2"], "zz": "1"})
    assert (q.int("step", None), q.int("pos", 0), q.run_ids("run")) == (None, 0, ["a1", "b2"])
    assert q.problems == ["step=1e999: not a finite whole number", "pos=-4: out of range, using 0",
                          "zz=1: not a parameter of this page"]
    assert Query({}).notice() is None and "Ignored in the address" in str(q.notice())
