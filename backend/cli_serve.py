"""``deepscope serve``, ``demo`` and ``auth``: the dashboard's commands (the rest of the CLI is :mod:`backend.cli`).

    deepscope demo                       # dashboard + the demo runs (reused when started again)
    deepscope serve --auth --host 0.0.0.0 --allowed-host dl-lab.example.edu
    deepscope auth add ada --role operator
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

DEMO_TASK = "code-lstm"


DEMO_RUNS = (("natural-patches", "demo · natural-patches (Gabor filters)"),
             ("brackets-lstm", "demo · brackets-lstm (LSTMVis case study)"),
             (DEMO_TASK, "demo · code-lstm"))


def demo_plan(runs: list[dict]) -> tuple[list[tuple[str, str]], list[str]]:
    """What ``deepscope demo`` does with the runs already in the store: ``(to start, lines to print)``.

    A demo run is found by its name (newest first, as ``list_runs`` gives them). One that is training
    is left to train; one that ended (completed, stopped, failed, interrupted) is only shown (Resume on
    the Training page continues a stopped or interrupted one); only a demo run that does not exist yet
    is started, and none while another run trains (two cores would be shared three ways).

    >>> to_start, lines = demo_plan([{"id": "r1", "name": "demo · code-lstm", "status": "running"}])
    >>> [task for task, _ in to_start], lines
    (['natural-patches', 'brackets-lstm'], ['demo run r1 (demo · code-lstm): still training; left as it is'])
    """
    from .store import ACTIVE_STATUSES

    names = {name for _, name in DEMO_RUNS}
    newest = {}
    for run in runs:
        if run["name"] in names:
            newest.setdefault(run["name"], run)
    lines = [f"demo run {r['id']} ({r['name']}): "
             + ("still training; left as it is" if r["status"] in ACTIVE_STATUSES else f"{r['status']}; shown as it is")
             for r in (newest[n] for _, n in DEMO_RUNS if n in newest)]
    missing = [(task, name) for task, name in DEMO_RUNS if name not in newest]
    other = next((r for r in runs if r["status"] in ACTIVE_STATUSES and r["name"] not in names), None)
    if missing and other is not None:
        lines.append(f"run {other['id']} ({other['name']}) is training; not starting "
                     + ", ".join(name for _, name in missing))
        missing = []
    return missing, lines


def _start_demo(jobs, steps: int) -> None:
    """Start the demo runs that are missing, say what was reused (see :func:`demo_plan`)."""
    from .spec import RunSpec

    to_start, lines = demo_plan(jobs.store.list_runs())
    for line in lines:
        print(line)
    for task, name in to_start:  # one torch thread each (JobManager._threads)
        spec = RunSpec.for_task(task, steps=steps) if task == DEMO_TASK else RunSpec.for_task(task)
        print(f"started demo run {jobs.start(spec, name=name, threads=1)} ({name})")


def cmd_serve(args: argparse.Namespace, start_demo: bool = False) -> int:
    """The dashboard (``serve``; ``demo`` also starts the demo runs, or reuses them) and its analysis worker.

    Runs started here keep training when the dashboard stops (``--stop-runs`` stops them, checkpointed);
    a dashboard started later on the same store shows them live. The analysis worker
    (``backend.analysis.projection.worker``, a process of its own at nice 10) computes the projection maps
    and stops with the dashboard; set ``DEEPSCOPE_ANALYSIS=off`` to run the dashboard without it (e.g.
    when a worker runs elsewhere on the same store; with several, one holds the store's lease).
    """
    from dashboard.app import create_app, data_roots_from_env

    from .cli import _store
    from .jobs import JobManager

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
        _start_demo(jobs, args.steps)
    app = create_app(str(store.data_dir), store_url=store.url, jobs=jobs, security=security,
                     data_roots=tuple(args.data_root or ()) or data_roots_from_env())
    leave = "stops it and the runs started here" if args.stop_runs else "stops it; runs keep training"
    print(f"deepscope dashboard on http://{args.host}:{args.port}  (data in {store.data_dir}; Ctrl-C {leave})")

    def terminate(*_):  # run the cleanup below on `kill` too; a second `kill` must not cut it short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    # werkzeug logs every request at INFO: 25 lines a second with 20 viewers, and ~3 % of the server's CPU.
    # Errors and warnings still show; DEEPSCOPE_ACCESS_LOG=on brings the request lines back.
    from dashboard.security import on

    if not on(os.environ.get("DEEPSCOPE_ACCESS_LOG")):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        app.run(host=args.host, port=args.port, debug=False)
    except KeyboardInterrupt:
        pass
    finally:
        runs = jobs.shutdown(stop_runs=args.stop_runs)
        if runs and args.stop_runs:
            print(f"stopped {len(runs)} run(s) started here (checkpointed; Resume continues them)")
        elif runs:
            print(f"left {len(runs)} run(s) training: {', '.join(runs)} (stop them on the Training page, or "
                  "next time start with --stop-runs)")
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


def add_serve_parsers(sub, common) -> None:
    """The ``demo``, ``serve`` and ``auth`` sub-commands."""
    for name, helptext in (("demo", "dashboard with a built-in run training"), ("serve", "dashboard only")):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8050)
        p.add_argument("--stop-runs", action="store_true",
                       help="stop the runs started here when the dashboard stops (checkpointed; by default "
                            "they keep training and a dashboard started later shows them)")
        p.add_argument("--keep-runs", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
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
    p = sub.add_parser("auth", help="accounts for `serve --auth`: add NAME --role viewer|operator, remove, list")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--role", choices=["viewer", "operator"], default="viewer")
    p.add_argument("--auth-file", help="accounts file (default $DEEPSCOPE_AUTH_FILE or ~/.config/deepscope/auth.json)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
