"""A run of a user's own training script: open it, log scalars, watch a model, close it.

Writing never holds the training step up: scalar rows go to the metrics hook's
:class:`~backend.training.store_hooks.BackgroundWriter` (a queue committed every 0.2 s by a
thread), and snapshot files to the probes' writer thread. Nothing here raises into the user's
loop: a problem is reported once as a :class:`DeepscopeWarning` and training goes on. A store
that cannot be opened gives a run that records nothing; a store that becomes unreachable later
only delays the writing (rows wait in memory, then in a spool file; the writer thread also keeps
the run's heartbeat), and :meth:`Run.finish` waits for it up to the outage limit (docs/store.md).

Example::

    import deepscope
    with deepscope.init(name="my lstm", config={"lr": 1e-3}) as run:
        run.watch(model, probe=probe_ids, vocab=chars)
        for step in range(1, 1001):
            loss = train_step()
            run.log({"train/loss": loss}, step=step)
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..cli import DEFAULT_DATA_DIR


class DeepscopeWarning(UserWarning):
    """Something could not be recorded; training goes on."""


def init(name: str | None = None, config: Mapping[str, Any] | Any = None, data_dir: str | os.PathLike | None = None,
         store_url: str | None = None, task: str | None = None, total_steps: int | None = None) -> "Run":
    """Open a run in the store and return it (use it as a context manager, or call ``finish``).

    ``data_dir`` defaults to ``$DEEPSCOPE_DATA_DIR``, else ``./deepscope-data`` (as the CLI);
    ``store_url`` to ``$DEEPSCOPE_STORE_URL``, else SQLite in ``data_dir``. ``config`` (a dict, an
    argparse namespace or a dataclass) is stored as the run's spec. ``task`` names the data (shown
    in the dashboard; default ``custom``). ``total_steps``, when known, sets the snapshot cadence
    (about ten snapshots per run); otherwise every 100 steps, widened to a tenth of the steps so far
    as the run grows. Either way probes widen it while snapshots cost over their share of 1.5% of
    training time.
    When the store cannot be opened, this warns and returns a run that records nothing.
    Under torchrun (``RANK``, else ``LOCAL_RANK``, set and not 0) it returns a run that records nothing
    (``run.disabled``) and opens no store: only rank 0 records (docs/api.md, "Several processes").

    >>> run = init(name="try", config={"lr": 0.1}, data_dir=tmp)   # doctest: +SKIP
    """
    from ..store import RunStore
    from ..training.distributed import env_rank

    data_dir = data_dir or os.environ.get("DEEPSCOPE_DATA_DIR") or DEFAULT_DATA_DIR
    store_url = store_url or os.environ.get("DEEPSCOPE_STORE_URL") or None
    name = name or Path(sys.argv[0] or "python").stem or "python"
    if env_rank() != 0:
        return Run(None, None, name, task or "custom", total_steps)
    try:
        store = RunStore(data_dir, store_url)
        run_id = store.create_run(name, task or "custom", _spec(config), source="client", status="running")
        store.set_status(run_id, "running", pid=os.getpid())
    except Exception as exc:  # noqa: BLE001 - no store must never stop training
        where = store_url or data_dir
        warnings.warn(f"deepscope: cannot open the store at {where} ({type(exc).__name__}: {exc}); this run "
                      "records nothing, training goes on", DeepscopeWarning, stacklevel=2)
        return Run(None, None, name, task or "custom", total_steps)
    return Run(store, run_id, name, task or "custom", total_steps)


def _spec(config: Any) -> dict:
    """``config`` as a JSON object; a non-mapping ``model`` entry moves to ``model_name`` (the
    dashboard reads ``spec["model"]`` as the model's facts)."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif not isinstance(config, Mapping) and hasattr(config, "__dict__"):
        config = vars(config)
    spec = json.loads(json.dumps(dict(config), default=str))
    if "model" in spec and not isinstance(spec["model"], dict):
        spec["model_name"] = spec.pop("model")
    return spec


class Run:
    """One run of a user's script. Made by :func:`init`; see the module docstring."""

    def __init__(self, store, run_id: str | None, name: str, task: str = "custom", total_steps: int | None = None):
        from ..training.store_hooks import BackgroundWriter

        self.store, self.id, self.name, self.task, self.total_steps = store, run_id, name, task, total_steps
        self.step = 0
        self.status = "running" if store is not None else "disabled"
        self._probes: list = []
        self._trainer = None
        self._fired: dict[int, int] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._writer = BackgroundWriter(store, run_id) if store is not None else None
        if store is not None:
            atexit.register(self._at_exit)

    @property
    def disabled(self) -> bool:
        """True when the store could not be opened: every call is a no-op."""
        return self.store is None

    def __repr__(self) -> str:
        return f"<deepscope run {self.id} {self.name!r} {self.status} at step {self.step}>"

    # -- logging ----------------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record scalars at ``step`` (default: the previous step + 1); fires the probes when the
        step passes their cadence. Values: numbers, numpy scalars, one-element tensors (converted in
        the writer thread: no device sync here). Never raises; a problem is warned once.

        >>> run.log({"train/loss": loss, "lr": 1e-3}, step=100)   # doctest: +SKIP
        """
        if self._writer is None or self.status != "running":
            return
        try:
            step = self.step + 1 if step is None else int(step)
            rows = []
            for key, value in metrics.items():
                v = self._scalar(str(key), value)
                if v is not None:
                    rows.append((str(key), step, v, time.time()))
            if rows:
                self._writer.put(rows, step)
            if step > self.step:
                last, self.step = self.step, step
                self._fire(step, last)
        except Exception as exc:  # noqa: BLE001
            self._warn("log", f"run.log failed ({type(exc).__name__}: {exc}); training goes on")

    def _scalar(self, key: str, value: Any):
        if isinstance(value, torch.Tensor):
            if value.numel() == 1:
                return value.detach().reshape(()).clone()  # float() of it runs in the writer thread
        elif hasattr(value, "__float__"):  # int, float, bool, numpy scalars
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        self._warn(f"value:{key}", f"{key!r} is not a number ({type(value).__name__}); it is not recorded")
        return None

    def _fire(self, step: int, last: int) -> None:
        from .watch import crossed

        for probe in self._probes:
            if probe.enabled and crossed(step, self._fired.get(id(probe), last), probe.every):
                self._capture(probe, step)

    def _capture(self, probe, step: int) -> None:
        from ..probes.hooks import default_every

        try:
            self._trainer.step = step
            probe.capture(self._trainer)
            self._fired[id(probe)] = step
            if self.total_steps is None and probe.adaptive:  # length unknown: ~10 snapshots per doubling
                probe.every = max(probe.every, default_every(step))
        except Exception as exc:  # noqa: BLE001 - a probe that fails is switched off, training goes on
            probe.enabled = False
            self._warn(f"probe:{probe.kind}", f"the {probe.kind} probe failed and is off "
                                              f"({type(exc).__name__}: {exc})")

    def snapshot(self) -> None:
        """Take every watched probe's snapshot now, at the current step."""
        if self.status == "running":
            for probe in self._probes:
                if probe.enabled:
                    self._capture(probe, self.step)

    # -- probes -----------------------------------------------------------------------------
    def watch(self, model: torch.nn.Module, probe: Any = None, every: int | None = None,
              layers: str | Sequence[str] | None = None, vocab: Sequence[str] | None = None,
              labels: Any = None, optimizer: Any = None) -> "Run":
        """Record what ``model`` learns with the built-in probes, snapshot now and at the cadence.

        - ``nn.LSTM``/``GRU``/``RNN``: hidden states, gates included, at every token of ``probe`` (1-D
          token ids, or a string encoded by ``vocab``); ``vocab`` gives each id's text.
        - ``nn.Conv1d``/``Conv2d``: kernels every snapshot; feature maps of the first 8 ``probe`` inputs
          (token-id rows: each filter's top n-grams).
        - ``nn.Embedding`` with ``vocab``: the token embeddings; with ``labels`` (one per ``probe``
          input): the features the output layer reads. Both feed the Projections page.
        - ``optimizer``: its kind and learning rate go in the run's header on the Training page.
        - A character language model (``probe`` text or 1-D ids, ``vocab`` single characters) is exported
          once and its weights saved with each snapshot, for the Try it page (docs/api.md); one that cannot
          be exported is warned about and training goes on.

        Layers are found by type; ``layers`` (names, or parent names) keeps some. ``every``: snapshot
        cadence in steps, kept as given (default: as :func:`init` says, widened while the snapshots cost
        over their share of 1.5% of the training time).

        >>> run.watch(model, probe=text[:4000], vocab=chars)   # doctest: +SKIP
        """
        if self.disabled or self.status != "running":
            return self
        if self._trainer is not None:  # two probes of a kind would write the same records
            self._warn("watch-twice", "run.watch was already called; a run records one model")
            return self
        try:
            from .watch import build_probes

            probes, trainer, summary = build_probes(
                self.store, self.id, model, probe=probe, every=every, layers=layers, vocab=vocab, labels=labels,
                task=self.task, total_steps=self.total_steps, warn=lambda m: self._warn(f"watch:{m}", m))
        except Exception as exc:  # noqa: BLE001
            self._warn("watch", f"run.watch failed ({type(exc).__name__}: {exc}); nothing is recorded for it")
            return self
        facts: dict = {"model": summary}
        if optimizer is not None:  # the run's header: "optimizer adam  lr 0.001"
            facts["optimizer"] = type(optimizer).__name__.lower()
            groups = getattr(optimizer, "param_groups", None) or [{}]
            if isinstance(groups[0].get("lr"), (int, float)):
                facts["lr"] = float(groups[0]["lr"])
        try:
            self._merge_spec(facts)
        except Exception as exc:  # noqa: BLE001 - the summary is a nicety; the probes still record
            self._warn("watch-summary", f"the model summary is not recorded ({type(exc).__name__}: {exc})")
        trainer.step = self.step
        for p in probes:
            try:
                p.on_train_start(trainer)  # setup, and the first snapshot
            except Exception as exc:  # noqa: BLE001
                p.enabled = False
                self._warn(f"probe:{p.kind}", f"the {p.kind} probe is off ({type(exc).__name__}: {exc})")
            if p.enabled:
                self._fired[id(p)] = self.step
                self._probes.append(p)
            else:
                p.close()
        self._trainer = trainer
        return self

    def log_track(self, name: str, values: Any) -> None:
        """Attach a per-token annotation track (one number per token of the probe text) to the
        hidden states, e.g. the bracket depth at each character. Shown beside the built-in tracks."""
        if self.disabled:
            return
        from ..probes.hooks import HiddenStateProbe
        from ..store.hidden import add_user_track

        try:
            probe = next((p for p in self._probes if isinstance(p, HiddenStateProbe)), None)
            if probe is None:
                raise ValueError("no hidden states are recorded: watch a recurrent model with a probe text first")
            probe.flush()  # the first snapshot must be in the store
            add_user_track(self.store, self.id, name, values.detach().cpu().numpy()
                           if isinstance(values, torch.Tensor) else values)
        except Exception as exc:  # noqa: BLE001
            self._warn(f"track:{name}", f"track {name!r} not recorded: {exc}")

    # -- closing ----------------------------------------------------------------------------
    def finish(self, status: str = "completed", error: str | None = None) -> None:
        """Take the final snapshots, write everything queued and mark the run ``status``
        (``completed``, ``stopped`` or ``failed``, with ``error``, e.g. a traceback). Idempotent.
        While the store is unreachable it waits for it up to the outage limit (``$DEEPSCOPE_STORE_OUTAGE_S``,
        10 minutes); past it the rows stay in the run's spool file and the status in ``status-note.json``."""
        from ..store.retry import outage_clock

        with self._lock:
            if self.status != "running":
                return
            self.status = status
        atexit.unregister(self._at_exit)
        end = time.monotonic() + outage_clock(self.store).limit_s
        for probe in self._probes:
            if probe.enabled:
                self._capture(probe, self.step)  # skipped when this step is already recorded
        for closer in [p.close for p in self._probes] + [self._writer.close]:
            try:
                closer()
            except Exception as exc:  # noqa: BLE001
                self._warn("close", f"could not write everything ({exc})")
        self._set_status(status, error, max(1.0, end - time.monotonic()))

    def _set_status(self, status: str, error: str | None, wait_s: float) -> None:
        """The final status, retried while the store is unreachable; past ``wait_s`` left in the run's folder."""
        from ..store.retry import call_with_retry, is_transient, outage_clock
        from ..store.spool import write_status_note

        try:
            call_with_retry(lambda: self.store.set_status(self.id, status, error=error), deadline_s=wait_s,
                            clock=outage_clock(self.store))
        except Exception as exc:  # noqa: BLE001
            if is_transient(exc):
                write_status_note(self.store.run_dir(self.id), status, error)
            self._warn("status", f"could not mark run {self.id} {status} ({exc})")

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.finish("completed")
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("stopped")
        else:
            self.finish("failed", error="".join(traceback.format_exception(exc_type, exc, tb)))
        return False  # the exception goes on to the user

    def _at_exit(self) -> None:
        """A run left open: failed when the script died of an exception, else completed."""
        exc = getattr(sys, "last_value", None)
        if exc is not None and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
            self.finish("failed", error="".join(traceback.format_exception(exc)))
        else:
            self.finish("stopped" if isinstance(exc, KeyboardInterrupt) else "completed")

    # -- helpers ----------------------------------------------------------------------------
    def _merge_spec(self, extra: dict) -> None:
        run = self.store.require_run(self.id)
        self.store.update_spec(self.id, {**(run.get("spec") or {}), **extra})

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"deepscope: {message}", DeepscopeWarning, stacklevel=_user_stacklevel())


_HERE = str(Path(__file__).resolve().parent)


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package."""
    frame, level = sys._getframe(1), 1  # level 1: the frame that calls warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame, level = frame.f_back, level + 1
    return level
