"""Users' data files without the server's: the New run form takes uploads and files from the
operator's data roots only, reads regular files only and within a size limit, never quotes a
file the user did not supply, and no JSON-like input makes spec validation raise.

    .venv/bin/python -m pytest -q tests/security/test_data_files.py
"""
from __future__ import annotations

import base64
import csv
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.spec import ModelSpec, RunSpec, parse_spec
from backend.tasks import TASKS
from backend.tasks.sentiment.core import generate_sentiment
from dashboard.views.new_run.form import FIELDS, FormResult, form_values, validate_form
from dashboard.uploads import UPLOAD_LIMIT, FormFiles
from backend.datafiles import DataFileError

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-e7f1c0de"


def write_reviews(path: Path, n: int = 40, header=("text", "label")) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for ex in generate_sentiment(n, seed=3):
            writer.writerow([ex.text, "pos" if ex.label else "neg"])
    return path


def data_url(content: bytes, kind: str = "text/csv") -> str:
    return f"data:{kind};base64," + base64.b64encode(content).decode()


@pytest.fixture
def place(tmp_path):
    """A data root with a good CSV, an uploads folder, and a folder outside both."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    write_reviews(root / "reviews.csv")
    files = FormFiles(uploads=tmp_path / "data" / "uploads", roots=(root.resolve(),))
    return files, root, outside


def form(task="sentiment-lstm", **values) -> dict:
    return form_values(RunSpec.for_task(task)) | values


def messages(result: FormResult) -> str:
    return " | ".join([*result.field_errors.values(), *result.general_errors])


def in_thread(fn, timeout: float):
    """``fn()``'s result, or AssertionError when it has not returned within ``timeout`` seconds."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(value=fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"still running after {timeout} s (a hang)"
    return out["value"]


# --- disclosure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("files_given", [False, True])
def test_ds001_proc_environ_is_refused_without_quoting_it(place, files_given):
    files = place[0] if files_given else None
    result = validate_form("sentiment-lstm", form(data_file="/proc/self/environ"), files)
    assert result.spec is None and "not inside a data folder" in result.field_errors["data_file"]
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")  # as the server process started
    values = [e.partition(b"=")[2].decode(errors="replace") for e in environ]
    assert not [v for v in values if len(v) >= 8 and v in messages(result)]
    assert "PATH=" not in messages(result) and "HOME=" not in messages(result)


def test_ds002_a_file_outside_the_roots_is_refused_unread(place):
    files, _root, outside = place
    secret = write_reviews(outside / "secret.csv", header=(SECRET, "label"))
    for name in (str(secret), f"../outside/{secret.name}", str(outside / "nope.csv")):
        result = validate_form("sentiment-lstm", form(data_file=name), files)
        assert result.spec is None and "not inside a data folder" in result.field_errors["data_file"], name
        assert SECRET not in messages(result)


def test_ds003_a_symlink_in_a_root_to_a_file_outside_is_refused(place):
    files, root, outside = place
    (root / "link.csv").symlink_to(write_reviews(outside / "theirs.csv"))
    result = validate_form("sentiment-lstm", form(data_file=str(root / "link.csv")), files)
    assert result.spec is None and "not inside a data folder" in result.field_errors["data_file"]
    assert not any("link" in o["label"] for o in files.choices())


def test_ds004_a_file_in_a_root_is_used_by_name_and_its_problems_are_not_quoted(place):
    files, root, _outside = place
    ok = validate_form("sentiment-lstm", form(data_file="reviews.csv"), files)
    assert ok.spec is not None and ok.spec.data_file == str((root / "reviews.csv").resolve()), messages(ok)
    assert [o["label"] for o in files.choices()] == ["root/reviews.csv"]
    write_reviews(root / "bad.csv", header=(SECRET, "label"))
    (root / "one.csv").write_text("text,label\n" + f"fine,{SECRET}\n" * 12)
    for name, problem in (("bad.csv", "no column 'text'"), ("one.csv", "2 distinct labels")):
        result = validate_form("sentiment-lstm", form(data_file=name), files)
        assert problem in result.field_errors["data_file"] and SECRET not in messages(result), messages(result)
        assert str(root) not in messages(result)  # shown as root/<name>, not the server's path


# --- files that never end, hang or are huge -----------------------------------------------------

DEV_ZERO = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))  # an unbounded read dies, not the machine
from pathlib import Path
from backend.spec import parse_spec
from dashboard.views.new_run.form import form_values, validate_form
from dashboard.uploads import FormFiles
from backend.spec import RunSpec
values = form_values(RunSpec.for_task("sentiment-lstm")) | {"data_file": "/dev/zero"}
print(validate_form("sentiment-lstm", values, FormFiles(roots=(Path("/dev"),))).field_errors["data_file"])
print(parse_spec({"task": "sentiment-lstm", "data_file": "/dev/zero"})[1][0])
"""


def test_ds005_dev_zero_is_refused_quickly_in_bounded_memory():
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", DEV_ZERO], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=os.environ | {"DEEPSCOPE_TORCH_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("not a regular file") == 2, proc.stdout
    assert time.monotonic() - started < 60


def test_ds006_a_named_pipe_is_refused_without_hanging(place):
    files, root, _outside = place
    fifo = root / "pipe.csv"
    os.mkfifo(fifo)
    try:
        result = in_thread(lambda: validate_form("sentiment-lstm", form(data_file=str(fifo)), files), timeout=10)
        assert result.spec is None and "not a regular file" in result.field_errors["data_file"]
        _spec, errors = in_thread(lambda: parse_spec({"task": "sentiment-lstm", "data_file": str(fifo)}), 10)
        assert any("not a regular file" in e for e in errors), errors
    finally:  # old code blocks in open() until a writer comes: be that writer, then leave
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


def test_ds007_a_huge_sparse_file_is_refused_as_too_large_quickly(place):
    files, root, _outside = place
    sparse = root / "huge.csv"
    with open(sparse, "wb") as fh:
        fh.truncate(200 * 2**20)
    started = time.monotonic()
    result = validate_form("sentiment-lstm", form(data_file=str(sparse)), files)
    _spec, errors = parse_spec({"task": "sentiment-lstm", "data_file": str(sparse)})  # the CLI's limit too
    assert time.monotonic() - started < 3
    assert "larger than the limit of 20 MiB" in result.field_errors["data_file"]
    assert any("larger than the limit" in e for e in errors), errors


def test_ds008_refusals_are_cached_while_the_file_is_unchanged(place, monkeypatch):
    from backend.tasks import user_text

    _files, root, _outside = place
    bad = root / "bad.csv"
    bad.write_text("words,label\n" + "x,1\n" * 20)
    calls = []
    real = user_text.load_sentiment_csv
    monkeypatch.setattr(user_text, "load_sentiment_csv", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        _spec, errors = parse_spec({"task": "sentiment-lstm", "data_file": str(bad)})
        assert any("no column 'text'" in e for e in errors), errors
    assert len(calls) == 1


# --- uploads ------------------------------------------------------------------------------------

def test_ds009_an_upload_is_stored_content_addressed_and_validates(place):
    files, root, _outside = place
    content = (root / "reviews.csv").read_bytes()
    path = files.store_upload(data_url(content, "application/vnd.ms-excel"), "C:\\Users\\me\\My reviews.csv")
    assert path == files.uploads / f"{hashlib.sha256(content).hexdigest()}.csv" and path.read_bytes() == content
    assert files.store_upload(data_url(content), "again.csv") == path  # stored once
    assert files.label(path) == "again.csv" and not list(files.uploads.glob(".upload-*"))
    result = validate_form("sentiment-lstm", form(data_file=files.token(path)), files)
    assert result.spec is not None and result.spec.data_file == str(path.resolve()), messages(result)
    assert RunSpec.model_validate(result.spec.model_dump()).data_file == result.spec.data_file  # restarts
    assert validate_form("sentiment-lstm", form(data_file=result.spec.data_file), files).spec is not None


def test_ds010_an_uploads_own_problems_are_quoted_back_by_its_name(place):
    files, _root, _outside = place
    path = files.store_upload(data_url(b"words;label\nnice;1\n"), "mine.csv")
    result = validate_form("sentiment-lstm", form(data_file=files.token(path)), files)
    assert result.field_errors["data_file"].startswith("mine.csv: no column 'text'; the columns are 'words;label'")
    assert str(files.uploads) not in messages(result)


def test_ds011_an_oversize_upload_is_refused_with_a_clear_message(place):
    files, _root, _outside = place
    with pytest.raises(ValueError, match="big.csv: larger than the limit of 20 MiB"):
        files.store_upload(data_url(b"a" * (UPLOAD_LIMIT + 1)), "big.csv")
    assert not files.uploads.exists() or not list(files.uploads.iterdir())


@pytest.mark.parametrize("contents, filename, expected", [
    ("hello", "a.csv", "not a file's contents"),
    ("data:text/csv;base64,@@not base64@@", "a.csv", "not valid base64"),
    (data_url(b"\x89PNG\r\n", "image/png"), "cat.png", "image/png, not CSV text"),
    (["data:text/csv;base64,YQ=="], ["a.csv"], "one file at a time"),
    (None, None, "one file at a time"),
    ("data:text/csv;base64,", "empty.csv", "the file is empty"),
])
def test_ds012_junk_uploads_get_a_message_and_store_nothing(place, contents, filename, expected):
    files, _root, _outside = place
    with pytest.raises(ValueError, match=expected):
        files.store_upload(contents, filename)
    assert not files.uploads.exists() or not list(files.uploads.iterdir())


def test_ds013_unknown_uploads_sidecars_and_nul_names_are_refused(place):
    files, _root, _outside = place
    sidecar = files.store_upload(data_url(b"text,label\n"), "private name.csv").with_suffix(".json")
    for value in ("upload:" + "0" * 64, "upload:../../etc/passwd", "a\x00b.csv", "  /  ", 5, str(sidecar)):
        result = validate_form("sentiment-lstm", form(data_file=value), files)
        assert result.spec is None and result.field_errors.get("data_file"), value


def test_ds014_the_upload_callback_stores_and_chooses_the_file(tmp_path):
    from dashboard.app import create_app

    app = create_app(tmp_path / "data")
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if any(i["id"] == "new-upload" for i in d["inputs"]))
    content = write_reviews(tmp_path / "r.csv").read_bytes()
    body = {"output": dep["output"], "outputs": _outputs(dep), "changedPropIds": ["new-upload.contents"],
            "inputs": [{"id": "new-upload", "property": "contents", "value": data_url(content)}],
            "state": [{"id": "new-upload", "property": "filename", "value": "r.csv"},
                      {"id": {"type": "new-field", "field": "data_file"}, "property": "options", "value": []}]}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.data[:500]
    out = response.get_json()["response"]
    token = "upload:" + hashlib.sha256(content).hexdigest()
    assert (tmp_path / "data" / "uploads" / f"{token[7:]}.csv").read_bytes() == content
    assert token in str(out) and "r.csv" in str(out)


def _outputs(dep: dict) -> list[dict]:
    import json

    out = []
    for spec in dep["output"].strip(".").split("..."):
        ident, _, prop = spec.rpartition(".")
        out.append({"id": json.loads(ident) if ident.startswith("{") else ident, "property": prop})
    return out


# --- no exception escapes spec validation -------------------------------------------------------

def test_ds015_reported_escapes_are_messages_now():
    assert parse_spec({"task": "nope", "data_file": "x.csv"})[1] and parse_spec([1, 2])[1]
    assert validate_form("digits-cnn", {"layers": 10**400}).spec is None  # raised OverflowError before
    huge_layers = validate_form("digits-cnn", form("digits-cnn", layers=10**400))
    assert "less than or equal to 8" in huge_layers.field_errors["layers"]
    assert validate_form("digits-cnn", form("digits-cnn", lr=10**400)).field_errors["lr"] == "is far too large"
    for data in ({"task": "digits-cnn", "lr": float("nan")}, {"task": "digits-cnn", "epochs": float("inf")}):
        assert any("finite number" in e for e in parse_spec(data)[1])
    values = form_values(RunSpec.for_task("digits-cnn"))
    assert validate_form("digits-cnn", values | {"lr": "nan"}).field_errors["lr"] == "must be a finite number"


RUN_FIELDS = sorted(RunSpec.model_fields) + ["bogus"]
MODEL_FIELDS = sorted(ModelSpec.model_fields)
FORM_FIELDS = sorted(f.name for f in FIELDS)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["", "nan", "1e999", "-0", "16, 32", "lstm", "adam", "x" * 5000, "9" * 5000]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6) | st.sampled_from(MODEL_FIELDS), inner, max_size=4),
                    max_leaves=10)
TASK = st.sampled_from(sorted(TASKS)) | JSON
SPEC = st.fixed_dictionaries({"task": TASK}, optional={
    **{k: JSON for k in RUN_FIELDS if k not in ("task", "model")},
    "model": st.dictionaries(st.sampled_from(MODEL_FIELDS) | st.text(max_size=4), JSON, max_size=6) | JSON})
FORM = st.dictionaries(st.sampled_from(FORM_FIELDS) | st.text(max_size=4), JSON, max_size=10)


@st.composite
def near_valid(draw, form_like: bool = False):
    """A task's defaults with a few fields replaced by junk: reaches the deeper validators."""
    task = draw(st.sampled_from(sorted(TASKS)))
    spec = RunSpec.for_task(task)
    data = form_values(spec) if form_like else spec.model_dump()
    for key in draw(st.lists(st.sampled_from(FORM_FIELDS if form_like else RUN_FIELDS), max_size=3)):
        data[key] = draw(JSON)
    if not form_like and isinstance(data.get("model"), dict):
        for key in draw(st.lists(st.sampled_from(MODEL_FIELDS), max_size=3)):
            data["model"][key] = draw(JSON)
    return (task, data) if form_like else data
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _all_str(items) -> bool:
    return all(isinstance(m, str) for m in items)


@FUZZ
@given(data=SPEC | JSON | near_valid())
def test_ds016_parse_spec_only_returns_messages(data):
    spec, errors = parse_spec(data)
    assert (spec is None) != (errors == []) and _all_str(errors)
    assert spec is None or isinstance(spec, RunSpec)


@FUZZ
@given(task_values=st.tuples(TASK, FORM | JSON) | near_valid(form_like=True))
def test_ds017_validate_form_only_returns_messages(task_values):
    task, values = task_values
    files = FormFiles(roots=(Path(__file__).resolve().parent,))  # names may hit real (non-CSV) files
    result = validate_form(task, values, files)
    assert result.spec is None or isinstance(result.spec, RunSpec)
    assert _all_str(result.field_errors) and _all_str(result.field_errors.values())
    assert _all_str(result.general_errors) and isinstance(result.cost, str)


def test_uploads_have_a_total_quota(tmp_path):
    files = FormFiles(uploads=tmp_path / "uploads", total_limit=300)
    first = "text,label\n" + "good film,pos\n" * 10
    files.store_upload("data:text/csv;base64," + base64.b64encode(first.encode()).decode(), "a.csv")
    files.store_upload("data:text/csv;base64," + base64.b64encode(first.encode()).decode(), "a.csv")  # same bytes
    second = "text,label\n" + "bad film,neg\n" * 20
    with pytest.raises(DataFileError, match="uploads folder is full"):
        files.store_upload("data:text/csv;base64," + base64.b64encode(second.encode()).decode(), "b.csv")
