"""The ``deepscope`` command.

    deepscope demo                       # dashboard on http://127.0.0.1:8050 + code-lstm, brackets-lstm and
                                         # natural-patches runs
    deepscope serve --port 8050          # dashboard only
    deepscope train digits-cnn --set lr=0.01 --set model.channels=8,16
    deepscope runs                       # list runs in the data folder
    deepscope agent                      # start runs queued by dashboards elsewhere (GPU hosts)
    deepscope track RUN depth.csv        # attach your own per-token annotation to a run's hidden states
    deepscope import-lstmvis DIR         # an LSTMVis project (lstm.yml + HDF5 + dict) as a run
    deepscope auth add ada --role operator   # an account for `deepscope serve --auth` (docs/security.md)

The data folder is ``--data-dir``, else ``$DEEPSCOPE_DATA_DIR``, else ``./deepscope-data``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

DEFAULT_DATA_DIR = "./deepscope-data"
DEMO_TASK = "code-lstm"


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "model.channels=8,16"]`` -> ``{"lr": 0.01, "model": {"channels": [8, 16]}}``.

    Keys of the model (``hidden_size``) may omit the ``model.`` prefix.
    """
    from .spec import ModelSpec

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes key=value, got {pair!r}")
        key = key.strip()
        if "." not in key and key in ModelSpec.model_fields:
            key = f"model.{key}"
        value = _parse_value(raw.strip())
        field = ModelSpec.model_fields.get(key.removeprefix("model.")) if key.startswith("model.") else None
        if field is not None and getattr(field.annotation, "__origin__", None) is list and not isinstance(value, list):
            value = [value]  # channels=8 means one conv layer of 8
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    if "," in raw:
        return [_parse_value(p.strip()) for p in raw.split(",") if p.strip()]
    return {"none": None, "null": None}.get(raw.lower(), raw)


def _data_dir(args: argparse.Namespace) -> str:
    return args.data_dir or os.environ.get("DEEPSCOPE_DATA_DIR") or DEFAULT_DATA_DIR


def _store(args: argparse.Namespace):
    from .store import RunStore

    return RunStore(_data_dir(args), args.store_url or os.environ.get("DEEPSCOPE_STORE_URL"))


def cmd_train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .spec import RunSpec, estimate, format_errors
    from .training.progress import ProgressHook
    from .training.worker import run_training

    try:
        spec = RunSpec.for_task(args.task, **parse_sets(args.set or []))
    except (ValidationError, ValueError, KeyError) as exc:
        msgs = format_errors(exc) if isinstance(exc, ValidationError) else [str(exc).strip("'\"")]
        print("deepscope train: invalid spec:\n  " + "\n  ".join(msgs), file=sys.stderr)
        return 2
    store = _store(args)
    run_id = store.create_run(args.name or spec.name or f"{spec.task} · {spec.model.family}", spec.task,
                              spec.model_dump(), source="cli")
    print(f"run {run_id}: {spec.task}, {spec.model.family}, {estimate(spec).describe()}; data in {store.data_dir}")
    status = run_training(store, run_id, extra_hooks=[ProgressHook()], device=args.device)
    run = store.require_run(run_id)
    print(f"run {run_id} {status} at step {run['step']}")
    if status == "failed":
        print(run["error"], file=sys.stderr)
    return 0 if status != "failed" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    runs = _store(args).list_runs()
    if not runs:
        print("no runs yet: try `deepscope train digits-cnn` or `deepscope demo`")
        return 0
    print(f"{'id':<11} {'status':<10} {'step':>8}  {'task':<12} name")
    for r in runs:
        print(f"{r['id']:<11} {r['status']:<10} {r['step']:>8}  {r['task']:<12} {r['name']}")
    return 0


def cmd_serve(args: argparse.Namespace, start_demo: bool = False) -> int:
    """The dashboard (``serve``; ``demo`` also starts the demo runs) and its analysis worker.

    The analysis worker (``backend.analysis.projection_worker``, a process of its own at nice 10)
    computes the projection maps; set ``DEEPSCOPE_ANALYSIS=off`` to run the dashboard without it
    (e.g. when a worker runs elsewhere on the same store). It stops with the dashboard, also under
    ``--keep-runs``.
    """
    from dashboard.app import create_app, data_roots_from_env

    from .jobs import JobManager
    from .spec import RunSpec
    from .store import ACTIVE_STATUSES

    security = _serve_security(args)
    if security is None:
        return 2
    store = _store(args)
    jobs = JobManager(store)
    jobs.reconcile()
    jobs.start_reaper()
    if os.environ.get("DEEPSCOPE_ANALYSIS", "on").strip().lower() != "off":
        jobs.start_analysis()
    if start_demo:
        live = [r for r in store.list_runs() if r["status"] in ACTIVE_STATUSES]
        if live:
            print(f"a run is already training ({live[0]['id']}); not starting another")
        else:
            # short runs first: in ~10 s Kernels shows filters that became edge detectors, in ~20 s
            # Hidden states a cell that counts bracket depth; one torch thread each (JobManager._threads)
            patches = jobs.start(RunSpec.for_task("natural-patches"), name="demo · natural-patches (Gabor filters)",
                                 threads=1)
            short = jobs.start(RunSpec.for_task("brackets-lstm"), name="demo · brackets-lstm (LSTMVis case study)",
                               threads=1)
            run_id = jobs.start(RunSpec.for_task(DEMO_TASK, steps=args.steps), name="demo · code-lstm", threads=1)
            print(f"started demo runs {run_id} ({DEMO_TASK}, long), {short} (brackets-lstm, ~20 s) and {patches} "
                  "(natural-patches, ~10 s)")
    app = create_app(str(store.data_dir), store_url=store.url, jobs=jobs, security=security,
                     data_roots=tuple(args.data_root or ()) or data_roots_from_env())
    print(f"deepscope dashboard on http://{args.host}:{args.port}  (data in {store.data_dir}; Ctrl-C stops)")

    def terminate(*_):  # run the cleanup below on `kill` too; a second `kill` must not cut it short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        app.run(host=args.host, port=args.port, debug=False)
    except KeyboardInterrupt:
        pass
    finally:
        if not args.keep_runs:
            stopped = jobs.shutdown()
            if stopped:
                print(f"stopped {len(stopped)} run(s) started here (checkpointed; Resume continues them)")
        else:
            jobs.stop_analysis()
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from .store import StoreError
    from .store.hidden import add_user_track
    from .tasks.user_tracks import TrackFileError, parse_track_file

    store = _store(args)
    try:
        with open(args.file, "rb") as fh:
            name, values = parse_track_file(fh.read(), args.file)
        add_user_track(store, args.run, args.name or name, values)
    except (OSError, TrackFileError, StoreError) as exc:
        print(f"deepscope track: {exc}", file=sys.stderr)
        return 2
    print(f"attached track {args.name or name!r} ({len(values):,} values) to run {args.run}")
    return 0


def cmd_import_lstmvis(args: argparse.Namespace) -> int:
    from .client.lstmvis import LSTMVisError, import_lstmvis

    try:
        run_id = import_lstmvis(args.project, _store(args), name=args.name, max_tokens=args.max_tokens)
    except (OSError, LSTMVisError, ImportError) as exc:
        print(f"deepscope import-lstmvis: {exc}", file=sys.stderr)
        return 2
    print(f"imported {args.project} as run {run_id}; open Hidden states and choose it")
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from .jobs import JobManager

    store = _store(args)
    print(f"deepscope agent: starting queued runs from {store.url} (Ctrl-C stops)")
    JobManager(store, launch=True).serve_queue(poll=args.poll, once=args.once)
    return 0


def _serve_security(args: argparse.Namespace):
    """The dashboard's security settings from flags and environment, or None after saying what is wrong.

    Serving on an address other than loopback without ``--auth`` is refused: anyone who reaches the
    port could start runs and read every run.
    """
    from dashboard.security import is_loopback, make_security, on

    auth = args.auth or on(os.environ.get("DEEPSCOPE_AUTH"))
    host = str(args.host)
    if not auth and not (is_loopback(host) or host == "localhost"):
        print(f"refusing to serve on {host} without --auth: anyone who reaches the port could start and stop "
              "runs. Add an account with `deepscope auth add NAME --role operator`, then start with "
              f"`deepscope serve --auth --host {host} --allowed-host YOUR.HOST.NAME` (docs/security.md)",
              file=sys.stderr)
        return None
    hosts = tuple(args.allowed_host or ()) or tuple(
        h for h in os.environ.get("DEEPSCOPE_ALLOWED_HOSTS", "").split(",") if h.strip())
    if host not in ("0.0.0.0", "::", ""):
        hosts += (host,)  # the address it is bound to is a name people will use
    elif not hosts:
        print(f"note: serving on {host} but answering only Host names of loopback; add --allowed-host with the "
              "name people type in their browser", file=sys.stderr)
    try:
        return make_security(auth, hosts, args.auth_file, args.cookie_secure or on(os.environ.get("DEEPSCOPE_COOKIE_SECURE")))
    except ValueError as exc:
        print(f"deepscope: {exc}", file=sys.stderr)
        return None


def cmd_auth(args: argparse.Namespace) -> int:
    """``deepscope auth add|remove|list``: the accounts of ``serve --auth`` (hashed, outside the data folder)."""
    import getpass

    from dashboard.accounts import AccountError, Accounts

    try:
        accounts = Accounts.load(args.auth_file)
        if args.action == "list":
            for name, user in sorted(accounts.users.items()):
                print(f"{name:<24} {user['role']}")
            print(f"({len(accounts.users)} account(s) in {accounts.path})")
        elif args.action == "remove":
            print("removed" if accounts.remove(args.name) else f"no account {args.name!r}")
        else:
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(
                f"password for {args.name}: ")
            accounts.add(args.name, password, role=args.role)
            print(f"{args.name} ({args.role}) saved in {accounts.path}")
    except AccountError as exc:
        print(f"deepscope auth: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepscope", description="Watch deep networks learn, live.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help=f"data folder (default $DEEPSCOPE_DATA_DIR or {DEFAULT_DATA_DIR})")
    common.add_argument("--store-url", help="SQLAlchemy URL of the store (default: SQLite in the data folder)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("demo", "dashboard with a built-in run training"), ("serve", "dashboard only")):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8050)
        p.add_argument("--keep-runs", action="store_true", help="leave runs started here training after exit")
        p.add_argument("--auth", action="store_true", help="require sign-in (accounts: `deepscope auth add`); "
                       "needed to serve on an address other than loopback; also $DEEPSCOPE_AUTH=on")
        p.add_argument("--auth-file", help="accounts file (default $DEEPSCOPE_AUTH_FILE or ~/.config/deepscope/auth.json)")
        p.add_argument("--allowed-host", action="append", metavar="NAME",
                       help="a Host name the dashboard answers besides loopback (repeatable; "
                            "$DEEPSCOPE_ALLOWED_HOSTS, comma-separated)")
        p.add_argument("--data-root", action="append", metavar="FOLDER",
                       help="a folder whose files the New run form may use by name (repeatable; none by default; "
                            "$DEEPSCOPE_DATA_ROOTS)")
        p.add_argument("--cookie-secure", action="store_true", help="send the session cookie over HTTPS only")
        if name == "demo":
            p.add_argument("--steps", type=int, default=20000, help="steps of the demo run")
    p = sub.add_parser("train", parents=[common], help="train a built-in task in this terminal")
    p.add_argument("task")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field (repeatable)")
    p.add_argument("--name")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    sub.add_parser("runs", parents=[common], help="list runs")
    p = sub.add_parser("track", parents=[common], help="attach a per-token annotation track to a run's hidden states")
    p.add_argument("run", help="run id")
    p.add_argument("file", help=".npy, one number per line, or CSV with a header (first column)")
    p.add_argument("--name", help="track name (default: the CSV header or the file name)")
    p = sub.add_parser("import-lstmvis", parents=[common], help="import an LSTMVis project as a run (Hidden states)")
    p.add_argument("project", help="LSTMVis project folder (holds lstm.yml)")
    p.add_argument("--name", help="run name (default: the project's name)")
    p.add_argument("--max-tokens", type=int, default=None, help="import only the first N tokens")
    p = sub.add_parser("agent", parents=[common], help="start queued runs on this host (GPU trainer service)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the queue")
    p.add_argument("--once", action="store_true", help="start what is queued now, then exit")
    p = sub.add_parser("auth", help="accounts for `serve --auth`: add NAME --role viewer|operator, remove, list")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--role", choices=["viewer", "operator"], default="viewer")
    p.add_argument("--auth-file", help="accounts file (default $DEEPSCOPE_AUTH_FILE or ~/.config/deepscope/auth.json)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return cmd_train(args)
    if args.command == "runs":
        return cmd_runs(args)
    if args.command == "agent":
        return cmd_agent(args)
    if args.command == "track":
        return cmd_track(args)
    if args.command == "import-lstmvis":
        return cmd_import_lstmvis(args)
    if args.command == "auth":
        return cmd_auth(args)
    return cmd_serve(args, start_demo=args.command == "demo")


if __name__ == "__main__":
    sys.exit(main())
