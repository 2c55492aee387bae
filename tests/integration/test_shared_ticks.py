"""Dashboard workers that share a cache share each tick of the live streams (dashboard/live_heads.py,
dashboard/views/training/live_route.py): one worker claims a run's refresh, reads the store and builds the
newest chunks; the others take its rows and chunks from the cache. Every viewer still gets every row once;
junk in the cache and a claimant that never answers cost time, never rows.

    .venv/bin/python -m pytest tests/integration/test_shared_ticks.py
"""
from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from flask import Flask
from flask_caching import Cache

from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import live_heads
from dashboard.data import DashboardData
from dashboard.views.training.live_route import LiveAnswers, merged
from tests.deploy.infra import free_port, start_redis

ROWS = ("train/loss", "train/acc")
SLOT_S = 0.05  # HEAD_MAX_AGE_S in these tests: a tick every slot


def _log(store: RunStore, run_id: str, step: int) -> None:
    store.log_scalars(run_id, [(n, step, 1.0 / step, time.time()) for n in ROWS], step=step)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A Redis of the tests' own (docker-compose's cache), or None without redis-server (``make test``
    installs it): the workers then share a cache folder, whose claims are check-then-set, not atomic."""
    if shutil.which("redis-server") is None:
        yield None
        return
    port = free_port()
    proc = start_redis(tmp_path_factory.mktemp("redis") / "r", port)
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait(10)


@pytest.fixture
def workers(tmp_path, monkeypatch, redis_url):
    """A store with a running run and three dashboard workers (DashboardData + LiveAnswers) on one cache
    (Redis, as docker-compose has it) that know of each other."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", SLOT_S)
    monkeypatch.setattr(live_heads, "PEER_S", 1e9)
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    if redis_url:
        config = {"CACHE_TYPE": "dashboard.safe_cache.SafeRedisCache", "CACHE_REDIS_URL": redis_url,
                  "CACHE_KEY_PREFIX": f"{tmp_path.name}:"}
    else:
        config = {"CACHE_TYPE": "dashboard.safe_cache.SafeFileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}
    out = []
    for i in range(3):
        data = DashboardData(store, Cache(Flask(f"w{i}"), config=config))
        data.heads._peer_seen_at = time.time()  # noqa: SLF001 - as after reading another worker's head
        out.append((data, LiveAnswers(data)))
    return store, run_id, out


def _next_slot() -> None:
    """Sleep to the start of the slot after next: every head is then stale (older than a slot)."""
    time.sleep(2 * SLOT_S - time.time() % SLOT_S + 0.002)


def _tick(answers: list[LiveAnswers], run_id: str, cursors: list[int], got: list[dict]) -> None:
    """Every worker answers its viewer at once (their streams wake on one clock); each viewer's cursor moves
    on to where its answer ends, and what it drew is kept."""
    def one(i: int) -> None:
        text, now, _says = answers[i].answer_and_cursors([run_id], [cursors[i]], 0.6)
        part = json.loads(text)["r"][run_id]
        assert part["from"] == cursors[i]
        for name, s in merged(part).items():
            got[i].setdefault(name, []).extend(s["x"])
        cursors[i] = now[0]
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_st001_one_worker_reads_each_tick_the_others_take_its_rows_and_chunks(workers, redis_url):
    if redis_url is None:  # a cache folder's claim is check-then-set: threads racing for it all win it
        pytest.skip("redis-server is not installed (make test installs it)")
    store, run_id, ws = workers
    answers = [a for _d, a in ws]
    start = store.scalars_after(run_id, 0)[1]
    cursors, got = [start] * 3, [{}, {}, {}]
    _next_slot()
    _tick(answers, run_id, cursors, got)  # every head starts from the same cursor
    reads0 = sum(d.heads.read for d, _a in ws)
    ticks = 12
    for step in range(2, 2 + ticks):
        _log(store, run_id, step)
        _next_slot()
        _tick(answers, run_id, cursors, got)
    _next_slot()
    _tick(answers, run_id, cursors, got)
    for g in got:  # every viewer got every step once, in order, whichever worker read it
        assert {n: xs for n, xs in g.items()} == {n: list(range(2, 2 + ticks)) for n in ROWS}, g
    assert len(set(cursors)) == 1 and cursors[0] == store.scalars_after(run_id, 0)[1]
    reads = sum(d.heads.read for d, _a in ws) - reads0
    taken = sum(d.heads.taken for d, _a in ws)
    shared = sum(a.shared for a in answers)
    # 3 workers x (ticks + 1): one read per tick, the others take its rows (or the stamp: nothing new)
    assert reads == ticks + 1 and taken >= ticks + 1, (reads, taken)
    assert shared >= ticks, (shared, [a.built for a in answers])


def test_st002_junk_rows_or_chunks_in_the_cache_are_read_again_not_drawn(workers):
    store, run_id, ws = workers
    (a, answers_a), (b, answers_b) = ws[0], ws[1]
    _log(store, run_id, 2)
    key = f"head:{run_id}"
    behind = dict(b.heads.heads([run_id])[run_id])  # b's head at `cursor`
    cursor = store.scalars_after(run_id, 0)[1]
    run = {str(k): v for k, v in store.get_run(run_id).items()}
    good = {"id": [cursor + 1, cursor + 2], "name": list(ROWS), "step": [3, 3], "value": [0.5, 0.25]}
    junk = [
        "rows", [1, 2], {"id": [cursor + 2, cursor + 1], "name": list(ROWS), "step": [3, 3], "value": [0.5, 0.25]},
        {**good, "id": [cursor + 1, cursor + 5]}, {**good, "id": [cursor, cursor + 2]},
        {**good, "id": [True, cursor + 2]}, {**good, "name": [1, 2]}, {**good, "step": [3.5, 3]},
        {**good, "value": ["x", 0.25]}, {**good, "value": [0.5]}, {**good, "step": None},
    ]
    _log(store, run_id, 3)
    for delta in junk:
        stamp = {"at": time.time() + 1, "run": run, "cursor": cursor + 2, "samples": None, "samples_at": 0.0,
                 "by": "another", "from": cursor, "delta": delta}
        a.cache_set(key, stamp, 60)
        b.heads._local[key] = {**behind, "at": 0.0}  # noqa: SLF001 - stale, at `cursor`
        head = b.heads.heads([run_id])[run_id]
        rows = b.heads.rows_in(head, cursor, head["cursor"])
        assert head["cursor"] == cursor + 2 and rows["train/loss"]["x"] == [3], delta
        assert rows["train/loss"]["y"] == pytest.approx([1 / 3], rel=1e-5), delta
    # junk chunks under the key of the chunk a viewer at `cursor` needs: built again, the answer is clean JSON
    b.heads._local.pop(key)  # noqa: SLF001 - b starts from the (junk) stamp: a head at its cursor, no rows
    head = b.heads.heads([run_id])[run_id]
    assert head["cursor"] == cursor + 2
    attempt = int(head["run"].get("attempt") or 0)
    clean = LiveAnswers(DashboardData(store, None)).answer([run_id], [cursor], 0.6)
    for chunk in ("{", [123, cursor + 2], ['{"train/loss": {"x": [3], "y": [NaN]}}', cursor + 2],
                  ['[1, 2]', cursor + 2], ['{"train/loss": {"x": [3], "y": [1]}}', cursor + 9],
                  ['{"train/loss": 3}', cursor + 2]):
        answers_b._chunks.clear()  # noqa: SLF001
        a.cache_set(f"chunk:{run_id}:{attempt}:{cursor}:{head['cursor']}:0.6", chunk, 60)
        text = answers_b.answer([run_id], [cursor], 0.6)
        assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in an answer")) == json.loads(clean), chunk
    # and the same junk carried in the stamp itself (the newest chunks ride there), or junk in place of them
    chunk_key = f"chunk:{run_id}:{attempt}:{cursor}:{cursor + 2}:0.6"
    rows = store.scalars_after(run_id, cursor)[0]
    true = {"id": [r[0] for r in rows], "name": [r[1] for r in rows], "step": [r[2] for r in rows],
            "value": [r[4] for r in rows]}  # the rows the store holds: only the carried chunks are junk
    run = {str(k): v for k, v in store.get_run(run_id).items()}  # and its row now
    for carried in ("x", [1, 2], {chunk_key: "{"}, {chunk_key: [123, cursor + 2]},
                    {chunk_key: ['{"train/loss": {"x": [3], "y": [NaN]}}', cursor + 2]},
                    {chunk_key: ['{"train/loss": {"x": [3], "y": [1]}}', cursor + 9]},
                    {chunk_key: ['{"train/loss": 3}', cursor + 2]}):
        stamp = {"at": time.time() + 1, "run": run, "cursor": cursor + 2, "samples": None, "samples_at": 0.0,
                 "by": "another", "from": cursor, "delta": true, "chunks": carried}
        a.cache_set(key, stamp, 60)
        b.heads._local[key] = {**behind, "at": 0.0}  # noqa: SLF001 - stale, at `cursor`
        answers_b._chunks.clear()  # noqa: SLF001
        text = answers_b.answer([run_id], [cursor], 0.6)
        assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in an answer")) == json.loads(clean), carried


def test_st005_a_worker_that_follows_reads_one_stamp_per_tick_with_its_chunks(workers):
    """In the steady state one worker claims every tick; another, having lost a claim, looks for the stamp
    before claiming: one cache command per tick, and the newest chunk comes in the stamp (no read of its own)."""
    store, run_id, ws = workers
    (_a, answers_a), (b, answers_b) = ws[0], ws[1]
    commands = []
    for name in ("cache_get", "cache_add", "cache_set"):
        real = getattr(b, name)
        setattr(b, name, lambda key, *rest, _real=real, _name=name:
                (commands.append((_name, key)), _real(key, *rest))[1])
    cursor = store.scalars_after(run_id, 0)[1]
    cursors, got = [[cursor], [cursor]], [[{}], [{}]]  # per worker: its viewer's cursor, and what it drew
    for step in range(2, 9):
        _log(store, run_id, step)
        _next_slot()
        for i, answers in enumerate((answers_a, answers_b)):  # a first: it claims, b finds its stamp
            _tick([answers], run_id, cursors[i], got[i])
        if step == 3:
            commands.clear()  # b lost the claim once (step 2): it follows from here
            built_b, shared_b = answers_b.built, answers_b.shared
    assert got[0][0] == got[1][0] == {n: list(range(2, 9)) for n in ROWS}
    assert [c for c, _key in commands] == ["cache_get"] * 5 and {k for _c, k in commands} == {f"head:{run_id}"}
    assert answers_b.built == built_b and answers_b.shared == shared_b + 5  # chunks from the stamps


def test_st003_a_claim_nobody_answers_costs_a_short_wait(workers, monkeypatch):
    """A worker that claimed a tick and died before writing its stamp: the others read the store themselves
    after CLAIM_WAIT_S."""
    store, run_id, ws = workers
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 30.0)  # one slot for the whole test
    (a, _answers_a), (b, _answers_b) = ws[0], ws[1]
    b.heads.heads([run_id])
    _log(store, run_id, 2)
    key = f"head:{run_id}"
    b.heads._local[key]["at"] -= 60  # noqa: SLF001 - stale, and so is its stamp
    b.cache_set(key, {**b.cache_get(key), "at": b.heads._local[key]["at"]}, 60)  # noqa: SLF001
    now = time.time()
    a.cache_add(f"claim:{run_id}:{now - now % 30.0:.3f}", "a worker that died", 5)
    t0 = time.monotonic()
    head = b.heads.heads([run_id])[run_id]
    waited = time.monotonic() - t0
    assert head["cursor"] == store.scalars_after(run_id, 0)[1]
    assert live_heads.CLAIM_WAIT_S * 0.9 <= waited < live_heads.CLAIM_WAIT_S + 1.0, waited


def test_st004_a_claim_is_one_atomic_command_that_expires(redis_url):
    """SafeRedisCache.add is SET NX EX: the first caller gets the key, later ones do not, and the key expires
    even when its claimant dies at once (cachelib's SETNX then EXPIRE would leave it forever)."""
    if redis_url is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    import redis

    from dashboard.safe_cache import SafeRedisCache

    cache = SafeRedisCache(redis.Redis.from_url(redis_url), key_prefix="st004:")
    assert cache.add("claim", "w1", timeout=1) is True
    assert cache.add("claim", "w2", timeout=1) is False and cache.get("claim") == "w1"
    assert 0 < redis.Redis.from_url(redis_url).ttl("st004:claim") <= 1
    time.sleep(1.1)
    assert cache.add("claim", "w2", timeout=1) is True and cache.get("claim") == "w2"
