"""Hosts, origins, headers, body size, sign-in and roles: every request passes the guard first.

Each test names the finding it answers (docs/security.md); on the code before the guard each of
them failed: a foreign Host started a run, a cross-origin POST was answered, no framing headers
were sent, a 133 MiB body was read, there was no sign-in, and serve bound 0.0.0.0 without one.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backend.spec import RunSpec
from dashboard import ids
from dashboard.accounts import Accounts
from dashboard.app import create_app
from dashboard.login import safe_next
from dashboard.views.new_run.form import form_values
from dashboard.security import SecurityConfig, body_limit, make_security

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


class FakeJobs:
    """Records what the dashboard asked to start instead of training."""

    def __init__(self):
        self.started = []

    def start(self, spec, **_kw):
        self.started.append(spec)
        return f"run{len(self.started)}"


@pytest.fixture
def accounts(tmp_path):
    acc = Accounts.load(tmp_path / "auth.json")
    acc.add("olga", "operator-pass-1", role="operator")
    acc.add("vic", "viewer-pass-1", role="viewer")
    return acc


def _app(tmp_path, security=None):
    jobs = FakeJobs()
    app = create_app(tmp_path / "data", jobs=jobs, security=security)
    return app, jobs


def _start_body(client) -> dict:
    """The New run page's Start callback as the browser sends it (from /_dash-dependencies)."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if f"{ids.NEW_ALERT}.children" in d["output"])
    values = form_values(RunSpec.for_task("digits-cnn"))
    fields = [{"id": {"type": ids.NEW_FIELD, "field": k}, "property": "value", "value": v} for k, v in values.items()]
    return {"output": dep["output"], "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                                                 for o in dep["output"].strip(".").split("...")],
            "inputs": [{"id": ids.NEW_START, "property": "n_clicks", "value": 1}],
            "state": [{"id": ids.NEW_TASK, "property": "value", "value": "digits-cnn"}, fields],
            "changedPropIds": [f"{ids.NEW_START}.n_clicks"]}


def _post_start(client, **headers):
    body = _start_body(client)
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json",
                       headers=headers, environ_base=LOCAL)


def test_sec001_foreign_host_is_refused(tmp_path):
    app, jobs = _app(tmp_path)
    client = app.server.test_client()
    assert client.get("/", headers={"Host": "evil.example"}, environ_base=LOCAL).status_code == 400
    # The DNS-rebinding case of the finding: Host and Origin both say evil.example.
    r = _post_start(client, Host="evil.example", Origin="http://evil.example")
    assert r.status_code == 400 and jobs.started == []
    for host in ("localhost:8050", "127.0.0.1:8050", "[::1]:8050"):
        assert client.get("/", headers={"Host": host}, environ_base=LOCAL).status_code == 200, host


def test_sec002_allowed_host_by_flag(tmp_path):
    app, _ = _app(tmp_path, make_security(False, ("dash.example.org",)))
    client = app.server.test_client()
    assert client.get("/", headers={"Host": "dash.example.org"}, environ_base=LOCAL).status_code == 200
    assert client.get("/", headers={"Host": "other.example.org"}, environ_base=LOCAL).status_code == 400


def test_sec003_cross_origin_post_is_refused_same_origin_works(tmp_path):
    app, jobs = _app(tmp_path)
    client = app.server.test_client()
    assert _post_start(client, Origin="http://evil.example").status_code == 403
    assert _post_start(client, Origin="null").status_code == 403
    assert _post_start(client, Referer="http://evil.example/page").status_code == 403
    assert jobs.started == []
    ok = _post_start(client, Origin="http://localhost")
    assert ok.status_code == 200 and len(jobs.started) == 1


def test_sec004_framing_and_sniffing_headers(tmp_path):
    app, _ = _app(tmp_path)
    r = app.server.test_client().get("/", environ_base=LOCAL)
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"


def test_sec005_body_over_the_limit_is_refused_unread(tmp_path):
    app, _ = _app(tmp_path)
    limit = body_limit()
    assert app.server.config["MAX_CONTENT_LENGTH"] == limit < 133 * 2**20
    r = app.server.test_client().post("/_dash-update-component", data=b"x" * (limit + 1),
                                      content_type="application/json", environ_base=LOCAL)
    assert r.status_code == 413


def test_sec006_without_auth_only_loopback_clients(tmp_path):
    app, jobs = _app(tmp_path)
    client = app.server.test_client()
    r = client.get("/", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert r.status_code == 403 and b"--auth" in r.data
    assert client.get("/", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"}).status_code == 200


def test_sec007_auth_sign_in_and_roles(tmp_path, accounts):
    app, jobs = _app(tmp_path, make_security(True, (), str(accounts.path)))
    client = app.server.test_client()
    remote = {"REMOTE_ADDR": "10.1.2.3"}  # with auth, other machines may connect
    r = client.get("/hidden?run=x", environ_base=remote)
    assert r.status_code == 302 and "/login?next=" in r.headers["Location"]
    assert client.get("/_dash-layout", environ_base=remote).status_code == 401
    # the Training page's live data too: signed out, its poll and its stream get a 401, not a redirect
    for live in ("/_deepscope/live?run=abc&since=0", "/_deepscope/stream?run=abc&since=0"):
        assert client.get(live, environ_base=remote).status_code == 401, live
    bad = client.post("/login", data={"name": "vic", "password": "nope-nope"}, environ_base=remote)
    assert bad.status_code == 401 and b"Wrong name or password" in bad.data
    ok = client.post("/login", data={"name": "vic", "password": "viewer-pass-1", "next": "/runs"},
                     environ_base=remote)
    assert ok.status_code == 302 and ok.headers["Location"] == "/runs"
    assert "HttpOnly" in ok.headers["Set-Cookie"] and "SameSite=Lax" in ok.headers["Set-Cookie"]
    page = client.get("/", environ_base=remote)
    assert page.status_code == 200
    assert client.get("/_dash-layout", environ_base=remote).status_code == 200
    r = client.post("/_dash-update-component", data=json.dumps(_start_body(client)),
                    content_type="application/json", environ_base=remote)
    assert r.status_code == 200 and jobs.started == []  # answered by the guard, in the page's own alert
    assert "a viewer" in r.get_json()["response"][ids.NEW_ALERT]["children"]["props"]["children"]
    junk = client.post("/_dash-update-component", data="{not json", content_type="application/json",
                       environ_base=remote)
    assert junk.status_code == 400 and jobs.started == []  # malformed: refused before any role check
    client.get("/logout", environ_base=remote)
    client.post("/login", data={"name": "olga", "password": "operator-pass-1"}, environ_base=remote)
    r = client.post("/_dash-update-component", data=json.dumps(_start_body(client)),
                    content_type="application/json", environ_base=remote)
    assert r.status_code == 200 and len(jobs.started) == 1


def test_sec008_session_survives_restart_and_ends_with_the_account(tmp_path, accounts):
    security = make_security(True, (), str(accounts.path))
    first, _ = _app(tmp_path, security)
    c1 = first.server.test_client()
    c1.post("/login", data={"name": "vic", "password": "viewer-pass-1"}, environ_base=LOCAL)
    cookie = c1.get_cookie("deepscope_session").value
    second, _ = _app(tmp_path, make_security(True, (), str(accounts.path)))  # a restarted dashboard
    c2 = second.server.test_client()
    c2.set_cookie("deepscope_session", cookie)
    assert c2.get("/_dash-layout", environ_base=LOCAL).status_code == 200
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    c3 = second.server.test_client()
    c3.set_cookie("deepscope_session", forged)
    assert c3.get("/_dash-layout", environ_base=LOCAL).status_code == 401
    Accounts.load(accounts.path).remove("vic")
    assert c2.get("/_dash-layout", environ_base=LOCAL).status_code == 401


def test_sec009_passwords_hashed_at_rest(accounts):
    text = accounts.path.read_text()
    assert "viewer-pass-1" not in text and "operator-pass-1" not in text
    assert (accounts.path.stat().st_mode & 0o077) == 0


def test_sec010_failed_sign_ins_are_slowed(tmp_path, accounts):
    app, _ = _app(tmp_path, make_security(True, (), str(accounts.path)))
    client = app.server.test_client()
    env = {"REMOTE_ADDR": "10.9.9.9"}
    codes = [client.post("/login", data={"name": "olga", "password": f"guess-{i}"}, environ_base=env).status_code
             for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    right = client.post("/login", data={"name": "olga", "password": "operator-pass-1"}, environ_base=env)
    assert right.status_code == 429  # even the right password waits out the window


@pytest.mark.parametrize("value,expected", [("/runs?x=1", "/runs?x=1"), ("//evil.example/x", "/"),
                                            ("http://evil.example", "/"), ("/\\evil.example", "/"), (None, "/")])
def test_sec011_sign_in_redirects_stay_local(value, expected):
    assert safe_next(value) == expected


def test_sec012_auth_needs_an_operator_account(tmp_path):
    with pytest.raises(ValueError, match="auth add"):
        make_security(True, (), str(tmp_path / "none.json"))


def test_sec013_serve_refuses_a_public_address_without_auth(tmp_path):
    r = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--host", "0.0.0.0", "--port", "0",
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--auth" in r.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was opened


def test_sec014_default_config_is_loopback_without_auth():
    cfg = SecurityConfig()
    assert cfg.auth is False and set(cfg.allowed_hosts) >= {"localhost", "127.0.0.1"}


def test_sec015_shared_deployments_require_sign_in(tmp_path, accounts, monkeypatch):
    from dashboard.app import server_from_env
    from tests.unit.test_deploy import ROOT, _compose

    env = _compose()["services"]["dashboard"]["environment"]
    assert env["DEEPSCOPE_AUTH"] == "on" and env["DEEPSCOPE_AUTH_FILE"].startswith("/run/secrets/")
    assert '"--auth"' in (ROOT / "Dockerfile").read_text()
    # gunicorn's entry point with the compose environment: sign-in asked, foreign hosts refused
    monkeypatch.setenv("DEEPSCOPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEEPSCOPE_AUTH", "on")
    monkeypatch.setenv("DEEPSCOPE_AUTH_FILE", str(accounts.path))
    monkeypatch.setenv("DEEPSCOPE_ALLOWED_HOSTS", "dash.example.org")
    client = server_from_env().test_client()
    remote = {"REMOTE_ADDR": "172.18.0.1"}
    assert client.get("/", headers={"Host": "dash.example.org"}, environ_base=remote).status_code == 302
    assert client.get("/", headers={"Host": "evil.example"}, environ_base=remote).status_code == 400
    monkeypatch.setenv("DEEPSCOPE_AUTH_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="operator account"):
        server_from_env()
