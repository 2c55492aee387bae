"""One training run in this process, recorded in the store. Also the trainer process entry.

``python -m backend.training.worker --data-dir D --run-id ID [--resume]`` is what the
job manager spawns; ``run_training`` is what ``deepscope train`` calls in-process. A run with
``processes > 1`` is handed to torchrun (:func:`backend.training.distributed.launch`), which starts this
module once per process: rank 0 records the run, the others only train (:func:`follow`).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback

from ..spec import RECURRENT, RunSpec, spec_info
from ..store import RunStore
from ..store.retry import call_with_retry, is_transient, outage_clock
from ..store.spool import clear_status_note, write_status_note
from ..tasks.data import load_task_data
from ..tasks.registry import records_projections
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .device import configure_threads
from .distributed import Ranks, under_torchrun
from .hooks import Hook
from .store_hooks import CheckpointHook, ControlHook, MetricsHook
from .trainer import Trainer

log = logging.getLogger(__name__)


def default_hooks(store: RunStore, run_id: str, spec: RunSpec, ranks: Ranks | None = None) -> list[Hook]:
    """The hooks every built-in run gets: metrics writer, controls, checkpoints, the
    hidden-state, gradient-flow and text-samples probes for recurrent language models, the hidden-state probe of
    taggers and of encoder-decoders (encoder and decoder layers), the attention probe for
    encoder-decoders with attention and for transformer language models, the kernel probe for conv models and
    the embedding probe (token embeddings, classifier features) for classifiers, word2vec and the token
    embeddings of language models, taggers and encoder-decoders (:func:`~backend.tasks.registry.records_projections`).
    The snapshot probes share one cost budget (:func:`backend.probes.hooks.share_budget`).
    ``ranks`` (rank 0 of several processes): metrics summed over the ranks, controls broadcast to them."""
    metrics = MetricsHook(store, run_id, every=spec.log_every, ranks=ranks)
    control: Hook = ControlHook(store, run_id, on_pause=metrics.writer.flush)
    if ranks is not None and ranks.size > 1:
        from .rank_hooks import ControlSync
        control = ControlSync(ranks, control)
    hooks: list[Hook] = [metrics, control,
                         CheckpointHook(store, run_id, every=spec.checkpoint_every, writer=metrics.writer)]
    info = spec_info(spec)
    if info.kind == "lm" and spec.model.family in RECURRENT:
        from ..probes.hooks import HiddenStateProbe
        from ..tasks.probe import probe_corpus
        hooks.append(HiddenStateProbe(store, run_id, probe_corpus(info), every=spec.probe_every,
                                      adaptive=spec.probe_every is None))  # an explicit cadence is kept
        if not spec.model.bidirectional:  # ||dL/dh_t|| against distance, for the Lab's gradient-flow view
            from ..probes.gradflow import GradientFlowProbe
            hooks.append(GradientFlowProbe(store, run_id, every=spec.probe_every,
                                           adaptive=spec.probe_every is None))
    if info.kind == "lm" and spec.model.family in RECURRENT and not spec.model.bidirectional:
        from ..probes.samples import SamplesProbe  # text written from a fixed prompt, for the Training page
        hooks.append(SamplesProbe(store, run_id, every=spec.probe_every, adaptive=spec.probe_every is None))
    if info.kind == "tag" and spec.model.family in RECURRENT:  # the tagger's states over tagged sentences
        from ..probes.hooks import HiddenStateProbe
        from ..tasks.probe import probe_corpus
        hooks.append(HiddenStateProbe(store, run_id, probe_corpus(info), every=spec.probe_every,
                                      adaptive=spec.probe_every is None))
    if info.kind == "seq2seq" and spec.model.attention != "none":  # attention maps of fixed probe dates
        from ..probes.attention import AttentionProbe
        hooks.append(AttentionProbe(store, run_id, every=spec.probe_every, adaptive=spec.probe_every is None))
    if info.kind == "seq2seq" and spec.model.family in RECURRENT:  # encoder and decoder states of probe items
        # (after the attention probe: at a common step that one captures before this one's files are written)
        from ..probes.seq_states import Seq2SeqStateProbe
        hooks.append(Seq2SeqStateProbe(store, run_id, every=spec.probe_every, adaptive=spec.probe_every is None))
    if info.kind == "lm" and spec.model.family == "transformer":  # every layer and head over the probe text
        from ..probes.lm_attention import TransformerAttentionProbe
        hooks.append(TransformerAttentionProbe(store, run_id, info, every=spec.probe_every,
                                               adaptive=spec.probe_every is None))
    if spec.model.family in ("cnn", "sparse-ae", "textcnn"):
        from ..probes.kernels import KernelProbe
        hooks.append(KernelProbe(store, run_id, every=spec.probe_every, adaptive=spec.probe_every is None))
    if records_projections(info):  # token embeddings and classifier features, for Projections
        from ..probes.projections import EmbeddingProbe
        hooks.append(EmbeddingProbe(store, run_id, every=spec.probe_every, adaptive=spec.probe_every is None,
                                    family=spec.model.family))
    from ..probes.hooks import SnapshotProbe, share_budget
    # one budget for all of them (PROBE_BUDGET): more kinds of probe never add up past it
    share_budget([h for h in hooks if isinstance(h, SnapshotProbe)])
    return hooks


def run_training(store: RunStore, run_id: str, resume: bool = False, extra_hooks: list[Hook] | None = None,
                 device: str | None = None, ranks: Ranks | None = None) -> str:
    """Train the run ``run_id`` to its end; returns its final status.

    A crash marks the run ``failed`` with the traceback; whatever was logged stays. Status writes wait out
    a store outage (up to ``$DEEPSCOPE_STORE_OUTAGE_S``); a run stopped because the store stayed unreachable
    longer than that ends ``interrupted``, checkpointed (docs/store.md, "When the store is unreachable").

    A spec with ``processes > 1`` trains under torchrun, supervised from here (``extra_hooks`` cannot
    follow it into those processes: a :class:`~backend.training.progress.ProgressHook` among them becomes
    rank 0's progress bar); ``ranks`` is rank 0's place there.
    """
    run = store.require_run(run_id)
    trainer = None
    try:
        spec = RunSpec.model_validate(run["spec"])
        if spec.processes > 1 and ranks is None:
            from .distributed import DistributedError
            from .torchrun import launch
            try:
                return launch(store, run_id, spec.processes, resume=resume, device=device,
                              progress=_wants_progress(extra_hooks))
            except DistributedError as exc:  # cannot start here (no torchrun, too few cores or GPUs): say why
                _set_status(store, run_id, "failed", error=str(exc))
                log.error("run %s cannot train here: %s", run_id, exc)
                return "failed"
        _set_status(store, run_id, "running", pid=os.getpid(), must=True)
        data = load_task_data(spec_info(spec), seed=spec.seed, data_file=spec.data_file)
        trainer = Trainer(spec, data, hooks=default_hooks(store, run_id, spec, ranks) + list(extra_hooks or []),
                          device=ranks.device if ranks else device, ranks=ranks)
        if resume:
            ckpt = latest_checkpoint(store.run_dir(run_id) / "checkpoints")
            if ranks is not None:
                ranks.share(None if ckpt is None else str(ckpt))  # every rank resumes from this very file
            if ckpt is None:
                raise RuntimeError(f"run {run_id} has no checkpoint to resume from")
            step = load_checkpoint(trainer, ckpt)
            # before it logs step+1 again: drop what the last attempt logged after its checkpoint, so
            # curves never run back on themselves (the resume is recorded in runs.resumes)
            gone = store.supersede_after(run_id, step)
            log.info("run %s resumes from step %d; superseded %d scalar rows and %d snapshots after it",
                     run_id, step, gone["scalars"], gone["snapshots"])
        return _finish(store, run_id, trainer, trainer.run())
    except KeyboardInterrupt:
        if trainer is not None:
            trainer.close()
            save_checkpoint(trainer, store.run_dir(run_id) / "checkpoints")
        _set_status(store, run_id, "stopped")
        raise
    except BaseException as exc:
        if trainer is not None:
            trainer.close()  # flush what was logged before the crash
        msg = "".join(traceback.format_exception(exc))
        _set_status(store, run_id, "failed", error=msg)
        log.error("run %s failed:\n%s", run_id, msg)
        return "failed"


def follow(store: RunStore, run_id: str, ranks: Ranks, resume: bool = False) -> str:
    """A rank other than 0 of a multi-process run: train its slice of every batch, write nothing; returns
    how training ended. Errors are raised (torchrun stops the other processes; rank 0 or the supervisor
    records the run's end)."""
    from .rank_hooks import ControlSync, FollowerMetricsHook

    spec = RunSpec.model_validate(store.require_run(run_id)["spec"])
    data = load_task_data(spec_info(spec), seed=spec.seed, data_file=spec.data_file)
    hooks = [FollowerMetricsHook(ranks, every=spec.log_every), ControlSync(ranks)]
    trainer = Trainer(spec, data, hooks=hooks, device=ranks.device, ranks=ranks)
    if resume:
        ckpt = ranks.share(None)  # rank 0's choice
        if ckpt is None:
            raise RuntimeError(f"run {run_id} has no checkpoint to resume from")
        ranks.seed(spec.seed, load_checkpoint(trainer, ckpt))  # its own randomness, not rank 0's saved one
    try:
        return trainer.run()
    finally:
        trainer.close()


def _wants_progress(hooks: list[Hook] | None) -> bool:
    from .progress import ProgressHook

    others = [type(h).__name__ for h in hooks or [] if not isinstance(h, ProgressHook)]
    if others:
        raise ValueError(f"hooks of this process ({', '.join(others)}) cannot run in a multi-process run's "
                         "processes; train with processes=1 to use them")
    return len(hooks or []) > 0


def _finish(store: RunStore, run_id: str, trainer: Trainer, status: str) -> str:
    """The end of a run that returned: close its hooks (metrics written, or spooled once the store has been
    unreachable past the outage limit), then write its final status within the same limit."""
    end = time.monotonic() + outage_clock(store).limit_s
    trainer.close()
    error = None
    if status == "stopped" and trainer.stop_reason:  # ControlHook: the store was unreachable for too long
        status, error = "interrupted", trainer.stop_reason
    _set_status(store, run_id, status, error=error, deadline_s=end - time.monotonic())
    return status


def _set_status(store: RunStore, run_id: str, status: str, error: str | None = None, pid: int | None = None,
                deadline_s: float | None = None, must: bool = False) -> bool:
    """``store.set_status``, retried while the store is unreachable, up to ``deadline_s`` (default: the
    outage limit). Past it the status is left in the run's folder (``status-note.json``) for the next
    process that sees the store, or raised when ``must``. Returns True when the store took it."""
    clock = outage_clock(store)
    wait = clock.limit_s if deadline_s is None else max(1.0, deadline_s)
    try:
        call_with_retry(lambda: store.set_status(run_id, status, error=error, pid=pid), deadline_s=wait,
                        clock=clock)
    except Exception as exc:
        if must or not is_transient(exc):
            raise
        note = write_status_note(store.run_dir(run_id), status, error)
        log.error("the store stayed unreachable: run %s could not be marked %s; left in %s", run_id, status, note)
        return False
    clear_status_note(store.run_dir(run_id))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one deepscope training run (spawned by the job manager).")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--store-url", default=None)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--progress", action="store_true", help="a progress bar (rank 0 of a multi-process run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configure_threads()
    store = RunStore(args.data_dir, args.store_url)
    if under_torchrun():
        return _rank_main(store, args)
    status = run_training(store, args.run_id, resume=args.resume, device=args.device)
    return 0 if status != "failed" else 1


def _rank_main(store: RunStore, args: argparse.Namespace) -> int:
    """One process of a multi-process run, started by torchrun."""
    from .distributed import close_ranks, init_ranks

    ranks = init_ranks(args.device)
    try:
        if not ranks.is_main:
            follow(store, args.run_id, ranks, resume=args.resume)
            return 0
        from .progress import ProgressHook
        status = run_training(store, args.run_id, resume=args.resume, ranks=ranks,
                              extra_hooks=[ProgressHook()] if args.progress else None)
        return 0 if status != "failed" else 1
    finally:
        close_ranks()


if __name__ == "__main__":
    sys.exit(main())
