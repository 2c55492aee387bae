"""Junk Dash callback requests: shared by ``bench/fuzz_http.py`` and ``tests/security/test_junk.py``.

A Dash app answers every callback at one URL, ``/_dash-update-component``, with a JSON body the
browser builds from ``/_dash-dependencies``. :class:`Fuzzer` builds such bodies itself: for each
server callback it fills the inputs and state with junk (or with values it saw in pages and earlier
answers, one slot junked), expands pattern-matching ids (``ALL`` / ``MATCH``) with ids it saw on
the pages, and sends them through a ``send(path, body) -> (status, text)`` function, so the same
code drives Flask's test client and a real HTTP server.

Example::

    fz = Fuzzer(send, deps=fetch_dependencies(get), seed=0)
    fz.harvest_pages(["/", "/hidden?run=abc"])
    results = fz.sweep(per_callback=3)
    [r for r in results if r.status == 500]
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

DISPATCH = "/_dash-update-component"
PAGES_OUTPUT = ".._pages_content.children..._pages_store.data.."
WILDCARDS = ("ALL", "MATCH", "ALLSMALLER")
BIG = "x" * 200_000


ROUTER_LABEL = "Dash's own router (pathname or search not a URL string: fails before any page code)"


def _url_strings(body: dict) -> bool:
    """Whether a routing request holds what a browser sends: a path from "/" and a string search."""
    values = {i.get("property"): i.get("value") for i in body.get("inputs", []) if isinstance(i, dict)}
    path, search = values.get("pathname"), values.get("search")
    return isinstance(path, str) and path.startswith("/") and (search is None or isinstance(search, str))


def junk_pool(secret_paths: Iterable[str] = ()) -> list:
    """Values nobody's browser sends: wrong types, huge and non-finite numbers, nesting, long text, paths."""
    paths = ["../../etc/passwd", "/etc/passwd", "/proc/self/environ", "....//....//etc/passwd",
             "file:///etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", *secret_paths]
    return [
        None, True, False, 0, -1, 1, 7, 2**31, 2**63, 10**400, -10**400, 1e308, -1e308, 0.5, -0.0,
        float("inf"), float("-inf"), float("nan"),
        "", " ", "0", "-1", "1e999", "-1e999", "NaN", "inf", "abc", "null", "true", "[]", "{}",
        "<script>alert(1)</script>", "\u0000\u0001", "𝕏" * 300, "é,ü,中文,🙂", "a,b,,c,,,", "; rm -rf /",
        BIG, "1," * 50_000, "9" * 5000,
        [], [None], [1, 2, 3], ["a", 1, None, {}], [[[[[[]]]]]], ["x" * 1000] * 300, list(range(5000)),
        {}, {"a": {"b": {"c": [1]}}}, {"__proto__": {"x": 1}}, {"points": "x"}, {"points": [None, 1, "a"]},
        {"points": [{"x": "1e999", "y": None, "customdata": BIG, "pointIndex": -5, "curveNumber": 10**400}]},
        {"range": {"x": ["a", None]}}, {"range": {"x": [1e308, -1e308]}}, {"lassoPoints": {"x": [1] * 3}},
        {"step": "1e999", "run": [1]}, {"contents": "data:text/plain;base64,!!!", "filename": "../../x"},
        *paths,
    ]


def stringify_id(id_: Any) -> str:
    """Dash's string form of a component id (dict ids: JSON with sorted keys, no spaces)."""
    if isinstance(id_, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(id_[k])}" for k in sorted(id_)) + "}"
    return str(id_)


def parse_id(text: str) -> Any:
    """A dependency's id: a plain string, or a dict for a pattern-matching id."""
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def split_output(output: str) -> tuple[list[dict], bool]:
    """``[{"id", "property"}]`` of a dependency's output string, and whether it has several outputs."""
    if output.startswith(".."):
        parts = output[2:-2].split("...")
        multi = True
    else:
        parts, multi = [output], False
    out = []
    for part in parts:
        id_, prop = part.rsplit(".", 1)
        out.append({"id": parse_id(id_), "property": prop})
    return out, multi


def wildcard_keys(id_: Any) -> dict[str, str]:
    """``{key: "ALL" | "MATCH" | "ALLSMALLER"}`` of a pattern-matching id."""
    if not isinstance(id_, dict):
        return {}
    return {k: v[0] for k, v in id_.items() if isinstance(v, list) and len(v) == 1 and v[0] in WILDCARDS}


def fits(pattern: dict, concrete: dict) -> bool:
    if set(pattern) != set(concrete):
        return False
    wild = wildcard_keys(pattern)
    return all(k in wild or pattern[k] == concrete[k] for k in pattern)


@dataclass
class Result:
    """One request and its answer."""

    callback: str  # the dependency's output string, or "GET <path>"
    status: int
    seconds: float
    size: int
    text: str = field(repr=False, default="")
    body: str = field(repr=False, default="")
    disclosed: bool = False  # the answer holds a marker of a file outside the data folder


class Fuzzer:
    """Builds and sends junk callback requests for every server callback of ``deps``.

    ``send(path, body_or_None) -> (status, text)``: POST the JSON body, or GET ``path`` when the
    body is None. Values and dict ids seen in rendered pages and in answers are remembered and
    mixed into later requests, so the junk reaches past the first ``if value is None`` of a callback.
    """

    def __init__(self, send: Callable[[str, dict | None], tuple[int, str]], deps: list[dict], seed: int = 0,
                 secret_paths: Iterable[str] = (), markers: Iterable[str] = (), keep_text: bool = False):
        self.send = send
        self.server_deps = [d for d in deps if not d.get("clientside_function")]
        self.rng = random.Random(seed)
        self.junk = junk_pool(secret_paths)
        self.seen: dict[tuple[str, str], list] = {}  # (stringified id, prop) -> values seen
        self.dict_ids: dict[str, dict] = {}  # stringified -> dict id, seen on pages
        self.results: list[Result] = []
        self.keep_text = keep_text
        self.markers = tuple(markers)
        self._plain = False

    # -- learning what the pages hold ---------------------------------------------------------
    def remember(self, id_: Any, prop: str, value: Any) -> None:
        key = (stringify_id(id_), prop)
        values = self.seen.setdefault(key, [])
        if len(json.dumps(value, default=str)) < 50_000:
            values.append(value)  # the newest last: pages are learnt one run at a time
            del values[:-8]
        if isinstance(id_, dict):
            self.dict_ids[stringify_id(id_)] = id_

    def harvest(self, node: Any) -> None:
        """Walk a layout (or any part of an answer) for components: their ids and props."""
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                props = item.get("props") if "type" in item and "namespace" in item else None
                if isinstance(props, dict):
                    if "id" in props:
                        for prop, value in props.items():
                            if prop != "id":
                                self.remember(props["id"], prop, value)
                    stack.extend(props.values())
                else:
                    stack.extend(item.values())

    def harvest_answer(self, text: str) -> None:
        try:
            answer = json.loads(text)
        except ValueError:
            return
        for sid, props in ((answer or {}).get("response") or {}).items():
            if isinstance(props, dict):
                for prop, value in props.items():
                    self.remember(parse_id(sid), prop, value)
                    self.harvest(value)

    def page_body(self, pathname: Any, search: Any) -> dict:
        """The body of Dash pages' routing callback, which renders a page's layout."""
        return {"output": PAGES_OUTPUT,
                "outputs": [{"id": "_pages_content", "property": "children"},
                            {"id": "_pages_store", "property": "data"}],
                "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                           {"id": "_pages_location", "property": "search", "value": search}],
                "changedPropIds": ["_pages_location.pathname"], "state": []}

    def render(self, path: str, search: str = "", label: str | None = None) -> Result:
        """Render a page through the routing callback; remember what it holds."""
        result = self.post(self.page_body(path, search), label or f"page {path}")
        if result.status == 200:
            self.harvest_answer(result.text)
        return result

    def harvest_pages(self, urls: Iterable[str]) -> None:
        for url in urls:
            path, _, query = url.partition("?")
            self.render(path, f"?{query}" if query else "")

    # -- sending --------------------------------------------------------------------------------
    def post(self, body: dict, label: str) -> Result:
        if body.get("output") == PAGES_OUTPUT and not _url_strings(body):
            label = ROUTER_LABEL
        text_body = json.dumps(body)
        t0 = time.perf_counter()
        status, text = self.send(DISPATCH, body)
        result = Result(label, status, time.perf_counter() - t0, len(text), text, text_body[:300])
        result.disclosed = any(m in text for m in self.markers)
        self.results.append(result)
        return result

    def get(self, url: str) -> Result:
        t0 = time.perf_counter()
        status, text = self.send(url, None)
        result = Result(f"GET {url.split('?')[0]}", status, time.perf_counter() - t0, len(text), text, url[:300])
        result.disclosed = any(m in text for m in self.markers)
        self.results.append(result)
        return result

    # -- building callback bodies ---------------------------------------------------------------
    def junk_value(self) -> Any:
        return self.rng.choice(self.junk)

    def mutate(self, value: Any, depth: int = 0) -> Any:
        """``value`` with one part (or all of it) replaced by junk."""
        if depth > 4 or self.rng.random() < 0.3:
            return self.junk_value()
        if isinstance(value, dict) and value:
            key = self.rng.choice(list(value))
            return {**value, key: self.mutate(value[key], depth + 1)}
        if isinstance(value, list) and value:
            i = self.rng.randrange(len(value))
            return value[:i] + [self.mutate(value[i], depth + 1)] + value[i + 1:]
        return self.junk_value()

    def plausible(self, id_: Any, prop: str) -> Any:
        """A value the page held: mostly the newest (so the values of one request fit together), else any."""
        values = self.seen.get((stringify_id(id_), prop))
        if not values:
            return None
        return values[-1] if self.rng.random() < 0.7 else self.rng.choice(values)

    def concrete_ids(self, pattern: dict, match: dict) -> list[dict]:
        """Ids seen on pages that fit ``pattern``, MATCH keys fixed by ``match``; made up when none were seen."""
        found = [i for i in self.dict_ids.values() if fits(pattern, i)
                 and all(i[k] == v for k, v in match.items() if k in i)]
        if found:
            return found
        made = {k: (v if k not in wildcard_keys(pattern) else match.get(k, 0)) for k, v in pattern.items()}
        return [made]

    def junk_id(self, pattern: dict) -> dict:
        """A concrete id whose wildcard values are junk: ids are the client's to choose too."""
        value = self.rng.choice(["../../etc/passwd", -1, 10**400, None, [1], {"a": 1}, "x" * 5000, 1.5, ""])
        return {k: (value if k in wildcard_keys(pattern) else v) for k, v in pattern.items()}

    def _expand(self, spec: dict, match: dict, with_value: Callable[[Any, str], Any] | None):
        """One request entry for a dependency entry: a dict, or a list of dicts for ALL."""
        id_ = parse_id(spec["id"]) if isinstance(spec["id"], str) else spec["id"]
        prop = spec["property"]
        wild = wildcard_keys(id_)

        def entry(concrete):
            out = {"id": concrete, "property": prop}
            if with_value is not None:
                out["value"] = with_value(concrete, prop)
            return out
        if not wild:
            return entry(id_)
        ids = self.concrete_ids(id_, match)
        if "MATCH" in wild.values():
            return entry(ids[0])
        if not self._plain and with_value is not None and self.rng.random() < 0.25:
            ids = ids + [self.junk_id(id_)]
        if not self._plain and self.rng.random() < 0.1:
            ids = []
        return [entry(i) for i in ids]

    def body(self, dep: dict, mode: str) -> dict:
        """A well-formed request for ``dep`` with junk values.

        ``mode``: ``"one"`` junks one input or state slot and fills the rest with values seen;
        ``"all"`` junks every slot; ``"seen"`` sends values seen (mutated at one slot); ``"plain"``
        sends values seen only (what a page would send: it fills the stores for the junk after it).
        """
        outputs, multi = split_output(dep["output"])
        self._plain = mode == "plain"
        slots = dep["inputs"] + dep["state"]
        target = self.rng.randrange(len(slots)) if slots else -1
        match: dict = {}
        for spec in slots + outputs:
            id_ = parse_id(spec["id"]) if isinstance(spec["id"], str) else spec["id"]
            if "MATCH" in wildcard_keys(id_).values():
                ids = self.concrete_ids(id_, {})
                match = {k: ids[0][k] for k, w in wildcard_keys(id_).items() if w == "MATCH"}
                break

        def value_for(index):
            def fill(concrete, prop):
                if mode == "all" or (index == target and mode == "one"):
                    return self.junk_value()
                seen = self.plausible(concrete, prop)
                if index == target and mode == "seen":
                    return self.mutate(seen) if seen is not None else self.junk_value()
                return seen
            return fill
        inputs = [self._expand(s, match, value_for(i)) for i, s in enumerate(dep["inputs"])]
        state = [self._expand(s, match, value_for(len(dep["inputs"]) + i)) for i, s in enumerate(dep["state"])]
        outs = [self._expand(o, match, None) for o in outputs]
        changed = []
        if inputs:
            trig = inputs[target] if 0 <= target < len(inputs) else inputs[0]
            trig = trig[0] if isinstance(trig, list) and trig else trig
            if isinstance(trig, dict):
                changed = [f"{stringify_id(trig['id'])}.{trig['property']}"]
        if mode != "plain" and self.rng.random() < 0.05:  # the client names the trigger too: one that is no input, or unreadable
            changed = self.rng.choice([[], ["{not json.n_clicks"], [7], ["no-such-id.value"], ["x"] * 50])
        return {"output": dep["output"], "outputs": outs if multi else outs[0], "inputs": inputs, "state": state,
                "changedPropIds": changed}

    def warm(self, rounds: int = 2, deps: list[dict] | None = None) -> list[Result]:
        """Requests with values seen on the pages only, ``rounds`` times over the callbacks, so their answers
        (stores of steps, selections, settings) are known before the junk: junk then reaches deeper code."""
        out = []
        for _ in range(rounds):
            for dep in deps if deps is not None else self.server_deps:
                result = self.post(self.body(dep, "plain"), dep["output"])
                if result.status == 200:
                    self.harvest_answer(result.text)
                result.text = result.text if result.status >= 500 else ""
                out.append(result)
        return out

    def sweep(self, per_callback: int, deps: list[dict] | None = None) -> list[Result]:
        """``per_callback`` junk requests to each server callback (modes one, seen, all in turn)."""
        out = []
        modes = ("one", "seen", "all")
        for dep in deps if deps is not None else self.server_deps:
            for k in range(per_callback):
                result = self.post(self.body(dep, modes[k % len(modes)]), dep["output"])
                if result.status == 200:
                    self.harvest_answer(result.text)
                if not self.keep_text:
                    result.text = result.text if result.status >= 500 else ""
                out.append(result)
        return out

    def search_junk(self, pages: Iterable[str], params: Iterable[str], per_page: int, odd: bool = True) -> list[Result]:
        """The routing callback with junk query strings made of ``params``; with ``odd``, now and then a
        ``search`` that is no string at all (Dash's own router fails on those before any page code runs)."""
        from urllib.parse import quote
        out = []
        words = [None, "", "1e999", "-1e999", "NaN", "inf", "-1", "10" * 200, "abc", "%00", "𝕏" * 50,
                 "../../etc/passwd", "/proc/self/environ", "<script>x</script>", "a,b,c," * 2000, "x" * 200_000]
        names = list(params)
        for path in pages:
            for _ in range(per_page):
                parts = []
                for name in self.rng.sample(names, k=min(len(names), self.rng.randint(1, 3))):
                    word = self.rng.choice(words)
                    parts.append(name if word is None else f"{name}={quote(word)}")
                    if self.rng.random() < 0.2:  # a repeated key: Dash passes a list
                        parts.append(f"{name}={quote(self.rng.choice(words) or '')}")
                search = "?" + "&".join(parts)
                if odd and self.rng.random() < 0.05:
                    search = self.rng.choice([None, 5, ["?a=1"], {"x": 1}, "no-question-mark", "?&&=&=="])
                result = self.render(path, search, label=f"page {path}")
                if not self.keep_text:
                    result.text = result.text if result.status >= 500 else ""
                out.append(result)
        return out


    def route_junk(self, path: str, params: Iterable[str], per_route: int, good: dict[str, list[str]]) -> list[Result]:
        """GETs of a plain route (e.g. the Training page's ``/_deepscope/live``) with junk query strings made of
        ``params``: junk words, and now and then a good value (``good``: name -> values a page would send),
        so a junk cursor also meets a real run."""
        from urllib.parse import quote
        out = []
        words = ["", "1e999", "-1", "NaN", "inf", "0.5", "²", "10" * 200, "abc", "%00", "𝕏" * 50, "../../etc/passwd",
                 "a,b,c," * 2000, "0," * 5000, "1,2", "x" * 20_000, "9" * 40, " 1", "1 ", "0x10", "+1"]
        names = list(params)
        for _ in range(per_route):
            parts = []
            for name in self.rng.sample(names, k=self.rng.randint(1, len(names))):
                pool = good.get(name) if self.rng.random() < 0.5 else None
                parts.append(f"{name}={quote(self.rng.choice(pool) if pool else self.rng.choice(words))}")
                if self.rng.random() < 0.1:  # a repeated key
                    parts.append(f"{name}={quote(self.rng.choice(words))}")
            result = self.get(f"{path}?{'&'.join(parts)}")
            if not self.keep_text:
                result.text = result.text if result.status >= 500 else ""
            out.append(result)
        return out


class DryJobs:
    """A job manager that starts nothing: junk that happens to be a valid "start" or "launch" request
    (or a real one) records a queued run instead of spawning trainers on a busy machine."""

    def __init__(self, store):
        self.store, self.calls = store, []

    def start(self, spec, name=None, threads=None):
        self.calls.append(("start", spec.task))
        return self.store.create_run(name or "dry run", spec.task, spec.model_dump(), status="queued")

    def resume(self, run_id):
        self.calls.append(("resume", run_id))

    def control(self, run_id, action, value=None):
        self.calls.append((action, run_id))


def fetch_dependencies(send: Callable[[str, dict | None], tuple[int, str]]) -> list[dict]:
    status, text = send("/_dash-dependencies", None)
    if status != 200:
        raise RuntimeError(f"/_dash-dependencies answered {status}")
    return json.loads(text)


def client_sender(client) -> Callable[[str, dict | None], tuple[int, str]]:
    """``send`` for a Flask test client."""
    def send(path: str, body: dict | None) -> tuple[int, str]:
        if body is None:
            response = client.get(path)
        else:
            response = client.post(path, data=json.dumps(body), content_type="application/json")
        return response.status_code, response.get_data(as_text=True)
    return send


def by_callback(results: Iterable[Result], status: int = 500) -> dict[str, int]:
    """How many answers of ``status`` each callback gave."""
    counts: dict[str, int] = {}
    for r in results:
        if r.status == status:
            counts[r.callback] = counts.get(r.callback, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
