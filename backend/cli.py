"""The ``deepscope`` command.

    deepscope demo                       # dashboard on http://127.0.0.1:8050 + code-lstm, brackets-lstm and
                                         # natural-patches runs
    deepscope serve --port 8050          # dashboard only; runs keep training when it stops (--stop-runs)
    deepscope train digits-cnn --set lr=0.01 --set model.channels=8,16
    deepscope runs                       # list runs in the data folder
    deepscope resume RUN                 # continue a stopped or interrupted run from its checkpoint
    deepscope agent                      # start runs queued by dashboards elsewhere (GPU hosts)
    deepscope worker                     # the analysis worker (projection maps) as a service of its own
    deepscope health --url URL           # exit 0 when a service is healthy (docker-compose health checks)
    deepscope track RUN depth.csv        # attach your own per-token annotation to a run's hidden states
    deepscope import-lstmvis DIR         # an LSTMVis project (lstm.yml + HDF5 + dict) as a run
    deepscope auth add ada --role operator   # an account for `deepscope serve --auth` (docs/security.md)

The data folder is ``--data-dir``, else ``$DEEPSCOPE_DATA_DIR``, else ``./deepscope-data``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# serve, demo and auth live there; DEMO_RUNS and demo_plan are imported from here by older callers
from .cli_serve import DEMO_RUNS, DEMO_TASK, add_serve_parsers, cmd_auth, cmd_serve, demo_plan  # noqa: F401

DEFAULT_DATA_DIR = "./deepscope-data"


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
    from .threads import configure_process

    configure_process(say=print)  # first: OpenMP and BLAS read their settings when torch and numpy load
    from pydantic import ValidationError

    from .spec import RunSpec, estimate, format_errors
    from .training.distributed import check_processes
    from .training.progress import ProgressHook
    from .training.worker import run_training

    if args.nproc is not None and (problem := check_processes(args.nproc, args.device)):
        print(f"deepscope train: --nproc {args.nproc}: {problem}", file=sys.stderr)
        return 2
    try:
        nproc = {} if args.nproc is None else {"processes": args.nproc}  # several: torchrun (training/distributed.py)
        spec = RunSpec.for_task(args.task, **{**parse_sets(args.set or []), **nproc})
    except (ValidationError, ValueError, KeyError) as exc:
        msgs = format_errors(exc) if isinstance(exc, ValidationError) else [str(exc).strip("'\"")]
        sep = " " if len(msgs) == 1 else "\n  "  # one problem: one line
        print("deepscope train: invalid spec:" + sep + "\n  ".join(msgs), file=sys.stderr)
        return 2
    if spec.processes > 1 and (problem := check_processes(spec.processes, args.device)):
        print(f"deepscope train: processes={spec.processes}: {problem}", file=sys.stderr)
        return 2
    store = _store(args)
    _sweep(store)
    run_id = store.create_run(args.name or spec.name or f"{spec.task} · {spec.model.family}", spec.task,
                              spec.model_dump(), source="cli")
    print(f"run {run_id}: {spec.task}, {spec.model.family}, {estimate(spec).describe()}; data in {store.data_dir}")
    status = run_training(store, run_id, extra_hooks=[ProgressHook()], device=args.device)
    return _report_end(store, run_id, status)


def _report_end(store, run_id: str, status: str) -> int:
    """Say how a run trained in this terminal ended; the exit code of ``train`` and ``resume``."""
    run = store.require_run(run_id)
    print(f"run {run_id} {status} at step {run['step']}")
    if status == "failed":
        print(run["error"], file=sys.stderr)
    return 0 if status != "failed" else 1


def _sweep(store) -> None:
    """Mark runs whose process is gone ``interrupted`` and delete temporary files killed writers left
    (:func:`backend.liveness.startup_sweep`); say which runs."""
    from .liveness import startup_sweep

    for run_id in startup_sweep(store):
        print(f"run {run_id}: its process is gone; marked interrupted (`deepscope resume {run_id}` continues it)",
              file=sys.stderr)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a stopped, failed or interrupted built-in run from its latest checkpoint, in this terminal."""
    from .threads import configure_process

    configure_process(say=print)  # first, as in cmd_train: OpenMP and BLAS read their settings at load
    from .liveness import claim_resume, resumed_elsewhere, why_not_resumable
    from .training.progress import ProgressHook
    from .training.worker import run_training

    store = _store(args)
    _sweep(store)
    run = store.get_run(args.run)
    if run is None:
        print(f"deepscope resume: no run with id {args.run!r} (`deepscope runs` lists them)", file=sys.stderr)
        return 2
    if run["status"] == "paused":  # its trainer is alive: ask it to go on
        store.request_control(run["id"], "resume")
        print(f"run {run['id']} was paused; asked its trainer (process {run['pid']} on {run['host']}) to go on")
        return 0
    why = why_not_resumable(store, run)
    if why is not None:
        print(f"deepscope resume: {why}", file=sys.stderr)
        return 2
    if not claim_resume(store, run["id"], pid=os.getpid()):
        print(f"deepscope resume: {resumed_elsewhere(run['id'])}", file=sys.stderr)
        return 2
    print(f"run {run['id']} ({run['name']}): {run['status']} at step {run['step']}; resuming from its latest "
          f"checkpoint (what it logged after that is replaced); data in {store.data_dir}")
    status = run_training(store, run["id"], resume=True, extra_hooks=[ProgressHook()], device=args.device)
    return _report_end(store, run["id"], status)


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    _sweep(store)
    runs = store.list_runs()
    if not runs:
        print("no runs yet: try `deepscope train digits-cnn` or `deepscope demo`")
        return 0
    print(f"{'id':<11} {'status':<11} {'step':>8}  {'task':<12} name")
    for r in runs:
        print(f"{r['id']:<11} {r['status']:<11} {r['step']:>8}  {r['task']:<12} {r['name']}")
    return 0


# The demo's runs, oldest first (so code-lstm, the newest, is the one the Training page opens on): short
# ones first: in ~10 s Kernels shows filters that became edge detectors, in ~20 s Hidden states a cell that
# counts bracket depth. ``demo`` started again finds them by name.
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
    beat = None
    if args.heartbeat:  # `deepscope health --heartbeat`: fresh while the loop's rounds reach the store
        from .health import Heartbeat

        beat = Heartbeat(args.heartbeat, lambda: {"role": "agent"})
    try:
        JobManager(store, launch=True).serve_queue(poll=args.poll, once=args.once,
                                                   on_round=None if beat is None else beat.beat)
    finally:
        if beat is not None:
            beat.path.unlink(missing_ok=True)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """The analysis worker as a service (docker-compose's ``analysis``): see :mod:`backend.analysis.service`."""
    from .analysis.service import run_worker

    return run_worker(_data_dir(args), args.store_url or os.environ.get("DEEPSCOPE_STORE_URL"), args.poll,
                      args.heartbeat)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when every check asked for passes (docker-compose health checks): see :mod:`backend.health`."""
    from . import health

    checks = []
    if args.url:
        checks.append(lambda: health.check_url(args.url, args.timeout))
    if args.store:
        checks.append(lambda: health.check_store(_data_dir(args), args.store_url or os.environ.get(
            "DEEPSCOPE_STORE_URL"), args.timeout))
    if args.heartbeat is not None:
        checks.append(lambda: health.check_heartbeat(args.heartbeat, args.max_age))
    if not checks:
        print("deepscope health: name a check: --url URL, --store or --heartbeat [FILE]", file=sys.stderr)
        return 2
    return health.run_checks(checks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepscope", description="Watch deep networks learn, live.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help=f"data folder (default $DEEPSCOPE_DATA_DIR or {DEFAULT_DATA_DIR})")
    common.add_argument("--store-url", help="SQLAlchemy URL of the store (default: SQLite in the data folder)")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parsers(sub, common)
    p = sub.add_parser("train", parents=[common], help="train a built-in task in this terminal")
    p.add_argument("task")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field (repeatable)")
    p.add_argument("--name")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train on N processes with torchrun (DistributedDataParallel: gloo on CPU, one GPU each "
                        "with NCCL); the batch size is the global batch (same as --set processes=N)")
    p = sub.add_parser("resume", parents=[common],
                       help="continue a stopped, failed or interrupted run from its latest checkpoint, here")
    p.add_argument("run", help="run id (`deepscope runs` lists them)")
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
    heartbeat_env = os.environ.get("DEEPSCOPE_HEARTBEAT")
    p.add_argument("--heartbeat", default=heartbeat_env, metavar="FILE",
                   help="write a heartbeat here after every round that reached the store, for "
                        "`deepscope health --heartbeat` ($DEEPSCOPE_HEARTBEAT)")
    p = sub.add_parser("worker", parents=[common], help="the analysis worker (projection maps) as a service")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between passes when there was nothing to do")
    p.add_argument("--heartbeat", default=heartbeat_env, metavar="FILE",
                   help="write a heartbeat here every 5 s for `deepscope health --heartbeat` ($DEEPSCOPE_HEARTBEAT)")
    p = sub.add_parser("health", parents=[common], help="exit 0 when a service is healthy (health checks)")
    p.add_argument("--url", help="GET this URL; healthy on HTTP 200 (the dashboard: .../_deepscope/health)")
    p.add_argument("--store", action="store_true", help="the store answers (--store-url or $DEEPSCOPE_STORE_URL)")
    p.add_argument("--heartbeat", nargs="?", const=heartbeat_env or "", default=None, metavar="FILE",
                   help="a service's heartbeat file is fresh (default file: $DEEPSCOPE_HEARTBEAT)")
    p.add_argument("--max-age", type=float, default=30.0, help="seconds a heartbeat stays fresh")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the URL or the store")
    from . import export

    export.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return cmd_train(args)
    if args.command == "runs":
        return cmd_runs(args)
    if args.command == "resume":
        return cmd_resume(args)
    if args.command == "agent":
        return cmd_agent(args)
    if args.command == "worker":
        return cmd_worker(args)
    if args.command == "health":
        return cmd_health(args)
    if args.command == "track":
        return cmd_track(args)
    if args.command == "import-lstmvis":
        return cmd_import_lstmvis(args)
    if args.command == "auth":
        return cmd_auth(args)
    if args.command == "export":
        from .export import cmd_export

        return cmd_export(args, _store(args))
    return cmd_serve(args, start_demo=args.command == "demo")


if __name__ == "__main__":
    sys.exit(main())
