"""Which runs "Try it" can read, where their newest checkpoint is, and an example text for each.

Torch-free, so the dashboard can list the runs before anyone asks for a prediction (the model itself
is loaded by :mod:`backend.inference`, inside a callback). A run qualifies when its task reads text
and predicts something: a character language model (``code-lstm``, ``brackets-lstm``,
``recall-lstm``; recurrent or transformer), a text classifier (``sentiment-lstm``, ``sentiment-cnn``, also
on the user's own CSV file), an encoder-decoder (``dates-seq2seq``, ``numbers-seq2seq``) or a tagger
(``tags-bidir``); or a character language model of a user's own script that ``run.watch`` saved
(``source`` ``client``: its ``model-step-*.pt`` files, ``spec["model"]["try"]`` says whether it could be
saved and why not). Every refusal is a sentence the page can show as is.

Example::

    problem = text_run_problem(run)           # None, or why Try it cannot read this run
    path = latest_checkpoint_path(store.run_dir(run["id"]))   # .../checkpoints/step-000001200.pt
    checkpoint_step(path)                     # 1200
    example_text(run)                         # a Python function for code-lstm, a review for sentiment-lstm
"""
from __future__ import annotations

import re
from pathlib import Path

from .spec import RECURRENT
from .tasks.registry import TASKS

# Checkpoint files are written by backend.training.checkpoint.save_checkpoint as step-XXXXXXXXX.pt
# (that module imports torch, so the naming is read here without it).
_CKPT = re.compile(r"^step-(\d+)\.pt$")
# Client runs (users' own scripts) have model files instead: backend.models.graph_file writes
# model-step-XXXXXXXXX.pt beside, and Try it runs their exported graph (backend.inference_client).
MODEL_FILE_PREFIX = "model-step-"
_MODEL = re.compile(r"^model-step-(\d+)\.pt$")
TEXT_FAMILIES = (*RECURRENT, "textcnn", "transformer")

EXAMPLES = {
    "code-lstm": "def area(width, height):\n    if width < 0:\n        raise ValueError(\"negative\")\n"
                 "    return width * height\n",
    "brackets-lstm": "a(b(c)d(a(b(cd))a)b)c(d(",
    "recall-lstm": "Cabcdabdcbadcabdbcadb?C\nAdcbaabcdbcadbacdabcd?",
    "sentiment-lstm": "The acting was not bad, but the ending was too long.",
    "sentiment-cnn": "The acting was not bad, but the ending was too long.",
    "dates-seq2seq": "Tuesday 3rd of May 2021",
    "numbers-seq2seq": "three hundred and forty-two thousand and seventeen",
    "tags-bidir": "that cold wind spreads near the green house .",
}
KIND_LABELS = {"lm": "language model", "text": "classifier", "seq2seq": "encoder-decoder", "tag": "tagger"}


def checkpoint_step(path: str | Path) -> int:
    """The training step a checkpoint file was written at, from its name (``step-000001200.pt``: 1200)."""
    match = _CKPT.match(Path(path).name)
    if not match:
        raise ValueError(f"{Path(path).name} is not a checkpoint file (step-<number>.pt)")
    return int(match.group(1))


def checkpoint_paths(run_dir: str | Path) -> list[Path]:
    """A run's checkpoint files, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    return sorted((p for p in folder.glob("step-*.pt") if _CKPT.match(p.name)), key=checkpoint_step)


def latest_checkpoint_path(run_dir: str | Path) -> Path | None:
    """The newest checkpoint under ``run_dir/checkpoints``, or None before the first is written."""
    found = checkpoint_paths(run_dir)
    return found[-1] if found else None


def model_file_step(path: str | Path) -> int:
    """The step a client run's model file was saved at (``model-step-000000120.pt``: 120)."""
    match = _MODEL.match(Path(path).name)
    if not match:
        raise ValueError(f"{Path(path).name} is not a model file (model-step-<number>.pt)")
    return int(match.group(1))


def model_file_paths(run_dir: str | Path) -> list[Path]:
    """A client run's model files, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    return sorted((p for p in folder.glob(f"{MODEL_FILE_PREFIX}*.pt") if _MODEL.match(p.name)), key=model_file_step)


def is_client_run(run: dict) -> bool:
    """A run recorded by a user's own script (``import deepscope``), not by deepscope's trainer."""
    return run.get("source") == "client"


def _client_try(run: dict) -> dict:
    facts = ((run.get("spec") or {}).get("model") or {}).get("try")
    return facts if isinstance(facts, dict) else {}


def latest_model_path(run: dict, run_dir: str | Path) -> Path | None:
    """The newest file Try it reads for ``run``: a checkpoint, or a client run's model file."""
    found = model_file_paths(run_dir) if is_client_run(run) else checkpoint_paths(run_dir)
    return found[-1] if found else None


def _client_problem(run: dict) -> str | None:
    name = run.get("name") or run.get("id")
    facts = _client_try(run)
    if facts.get("ok") is True:
        return None
    if facts.get("why"):
        return f"{name} was recorded by your own script, and its model could not be saved for Try it: {facts['why']}."
    return (f"{name} was recorded by your own script without a model Try it can read. run.watch saves one for a "
            "character language model (probe= a text, vocab= its characters); runs recorded before deepscope "
            "did that have none.")


def _family(run: dict) -> str | None:
    return ((run.get("spec") or {}).get("model") or {}).get("family")


def text_run_problem(run: dict) -> str | None:
    """None when Try it can read ``run`` (a store row), else a sentence saying why not."""
    name = run.get("name") or run.get("id")
    if is_client_run(run):
        return _client_problem(run)
    info = TASKS.get(run.get("task") or "")
    if info is None:
        return (f"{name} has task {run.get('task')!r}, not one of deepscope's built-in tasks (it was trained by "
                "your own script or imported): Try it reads runs of the built-in text tasks.")
    if info.kind in ("image", "recon"):
        return f"{name} reads images ({info.name}); Try it takes text runs: language models and text classifiers."
    if info.kind == "w2v":
        return (f"{name} learns word vectors (word2vec) and predicts nothing you could type at it: look up its "
                "words' neighbours on the Projections page.")
    if _family(run) not in TEXT_FAMILIES:
        return f"{name} is a {_family(run)!r} model; Try it reads recurrent networks and text CNNs."
    return None


def no_checkpoint_message(run: dict) -> str:
    """Why a text run has no checkpoint yet, and when its first one comes."""
    name = run.get("name") or run.get("id")
    if is_client_run(run):
        return (f"{name} has no model file yet: run.watch saves one with each snapshot and when the run "
                "finishes; try again in a moment.")
    spec = run.get("spec") or {}
    every = spec.get("checkpoint_every")
    status, step = run.get("status"), int(run.get("step") or 0)
    when = (f"The trainer writes one every {every:,} steps (the first at step {every:,}) and when training ends"
            if isinstance(every, int) else "The trainer writes one every few hundred steps and when training ends")
    if status in ("queued", None):
        return f"{name} has not started yet, so it has no checkpoint to try. {when}."
    if status in ("running", "paused"):
        return f"{name} has no checkpoint yet (it is at step {step:,}). {when}; try again then."
    return f"{name} has no checkpoint ({status} at step {step:,}), so there is no trained model to try."


def is_language_model(run: dict) -> bool:
    if is_client_run(run):
        return _client_try(run).get("ok") is True
    info = TASKS.get(run.get("task") or "")
    return info is not None and info.kind == "lm"


def example_text(run: dict) -> str:
    """A text to start from: a Python function for code-lstm, brackets for brackets-lstm, a review for the
    sentiment tasks (the first text of the user's file, for a run on their own CSV, when it can be read)."""
    task = run.get("task") or ""
    if is_client_run(run):
        example = _client_try(run).get("example")
        return example if isinstance(example, str) else ""
    data_file = (run.get("spec") or {}).get("data_file")
    if data_file:
        try:
            from .tasks.user_text import read_user_text

            return read_user_text(data_file).texts[0]
        except (ValueError, OSError, IndexError):
            pass
    return EXAMPLES.get(task, "")


def run_label(run: dict) -> str:
    """How a run is named in the page's run chooser."""
    info = TASKS.get(run.get("task") or "")
    kind = "your script's language model" if is_client_run(run) else KIND_LABELS.get(info.kind if info else "",
                                                                                   "classifier")
    return f"{run.get('name') or run['id']}  ({run.get('task')}, {kind}, {run['id']}, {run.get('status')})"


def tryable_runs(runs: list[dict], run_dir) -> list[dict]:
    """The runs of ``runs`` (newest first) Try it can read now: text runs with a checkpoint.
    ``run_dir(run_id)`` is the run's folder (``RunStore.run_dir``)."""
    return [r for r in runs if text_run_problem(r) is None and latest_model_path(r, run_dir(r["id"])) is not None]
