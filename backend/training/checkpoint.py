"""Checkpoints: model, optimizer, scaler, step and sampler state, written atomically.

A checkpoint holds only tensors and plain Python values (dicts, lists, str, int, float, bool, None), so it
is read with ``torch.load(..., weights_only=True)``: a file planted in the data folder cannot run code
when a trainer resumes from it or the Try it page opens it (see docs/security.md).

Example::

    path = save_checkpoint(trainer, run_dir / "checkpoints")      # .../step-000001200.pt
    pending = save_checkpoint(trainer, path.parent, pending=True)  # .../pending-step-000001200.pt, not used yet
    promote_checkpoint(pending)                                    # once the rows up to its step are durable
    state = read_checkpoint(path)                                  # dict; CheckpointError if unsafe/corrupt
    load_checkpoint(trainer, path)                                 # 1200
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..store.arrays import TEMP_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

KEEP = 3
STEP_GLOB = "step-*.pt"  # what a finished checkpoint is named; its temporary file starts with TEMP_PREFIX
PENDING_PREFIX = "pending-"  # a whole checkpoint waiting for its step's metric rows to be durable: never resumed from
_STEP_NAME = re.compile(r"step-(\d+)\.pt")
REQUIRED = ("step", "model", "spec")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely (corrupt, truncated, or holding objects other than
    tensors and plain values). A ValueError so that pages show its message as is."""


def save_checkpoint(trainer: "Trainer", folder: Path, pending: bool = False) -> Path:
    """Write ``step-XXXXXXXXX.pt`` under ``folder`` and keep the newest few.

    ``pending``: write ``pending-step-XXXXXXXXX.pt`` instead, which nothing resumes from until
    :func:`promote_checkpoint` renames it. A resume from step S never logs the steps up to S again, so a
    checkpoint may only count once every metric row up to S is durable; the trainer goes on meanwhile.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PENDING_PREFIX if pending else ''}step-{trainer.step:09d}.pt"
    tmp = folder / f"{TEMP_PREFIX}{path.name}"  # never matched by STEP_GLOB; swept at start if a kill leaves it
    torch.save({
        "step": int(trainer.step),
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "perm": _as_tensor(trainer._perm),
        "pos": int(trainer._pos),
        "spec": trainer.spec.model_dump(mode="json"),  # plain JSON types: what weights_only allows
    }, tmp)
    os.replace(tmp, path)
    if not pending:
        _prune(folder)
    return path


def promote_checkpoint(pending: Path) -> Path | None:
    """Make a pending checkpoint (from ``save_checkpoint(..., pending=True)``) a finished one; returns
    its new path, or None when the file is gone (a resume of this run cleared it: nothing to do)."""
    pending = Path(pending)
    final = pending.with_name(pending.name[len(PENDING_PREFIX):])
    try:
        os.replace(pending, final)
    except FileNotFoundError:
        return None
    _prune(final.parent)
    return final


def clear_pending(folder: Path) -> int:
    """Delete the pending checkpoints of a process that ended before their rows were durable (called when
    the run starts again: that process is gone). Returns how many."""
    n = 0
    for p in Path(folder).glob(f"{PENDING_PREFIX}{STEP_GLOB}"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _prune(folder: Path) -> None:
    for old in checkpoints(folder)[:-KEEP]:
        old.unlink(missing_ok=True)


def _as_tensor(perm: Any) -> torch.Tensor | None:
    # the sampler's permutation is a tensor today; keep it one (weights_only refuses numpy arrays)
    return None if perm is None else torch.as_tensor(perm)


def checkpoints(folder: Path) -> list[Path]:
    """The finished checkpoints in ``folder``, oldest step first (temporary ``.tmp-step-*`` files never)."""
    found = (p for p in Path(folder).glob(STEP_GLOB) if _STEP_NAME.fullmatch(p.name) and p.is_file())
    return sorted(found, key=lambda p: int(_STEP_NAME.fullmatch(p.name).group(1)))


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint of the highest step in ``folder``, or None."""
    found = checkpoints(folder)
    return found[-1] if found else None


def read_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """The dict in checkpoint ``path``, read with ``weights_only=True`` (never unsafe unpickling).

    Raises CheckpointError naming the file when it is corrupt, is not a deepscope checkpoint, or needs
    objects other than tensors and plain values (a planted pickle, or a file written by other code); there
    is deliberately no fallback to ``weights_only=False``. FileNotFoundError passes through (the trainer
    may have just deleted an old file).

    Example::

        read_checkpoint(run_dir / "checkpoints" / "step-000001200.pt")["step"]   # 1200
    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:  # what weights_only raises for anything not allowlisted, or garbage
        raise CheckpointError(_refusal(Path(path).name, exc)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, TypeError,
            AttributeError, IndexError) as exc:  # truncated or garbled files fail in many ways
        raise CheckpointError(f"Checkpoint {Path(path).name} is corrupt or not a checkpoint: "
                              f"{_first_line(exc)}") from None
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"Checkpoint {Path(path).name} is not a deepscope checkpoint "
                              f"(missing {', '.join(missing)}).")
    return state


def _refusal(name: str, exc: pickle.UnpicklingError) -> str:
    # torch's own message advises retrying with weights_only=False: never pass that advice on
    wanted = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if wanted is None:
        return f"Checkpoint {name} is corrupt or not a checkpoint: its data cannot be read."
    return (f"Checkpoint {name} holds objects that deepscope will not load (it asks for {wanted.group(1)}; only "
            "tensors and plain values are read, so files written by other code, or planted, are refused).")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def load_checkpoint(trainer: "Trainer", path: Path) -> int:
    """Restore ``trainer`` from ``path``; returns the step it continues from. CheckpointError when the file
    cannot be read safely or does not fit the trainer's model."""
    state = read_checkpoint(path, map_location=trainer.device)
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scaler.load_state_dict(state["scaler"])
        trainer.generator.set_state(state["generator"].cpu())  # generator states live on the CPU
        torch.set_rng_state(state["torch_rng"].cpu())
        trainer._perm, trainer._pos = state["perm"], int(state["pos"])
        trainer.step = int(state["step"])
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"Checkpoint {Path(path).name} does not fit this run: {_first_line(exc)}") from None
    return trainer.step
