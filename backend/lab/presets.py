"""Preset experiments of the lecture lab: one click launches the runs a phenomenon needs.

Each :class:`Preset` names its runs (a name and a :class:`~backend.spec.RunSpec` each), says in one
line what to look for, and where it lands: the Training page overlaying its runs (``/?run=a,b``)
or its own view on the Lab page (``/lab?preset=ID&run=a,b``). Budgets are small enough for two
CPU cores: every preset's runs finish in under 3 minutes side by side (figures in PRESETS' comments).
No torch here: the dashboard imports this module.

Example::

    run_ids = launch(jobs, "optimizers")            # six trainer processes, one thread each
    PRESETS["optimizers"].landing(run_ids)         # "/?run=...,..."
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec import RunSpec


@dataclass(frozen=True)
class Preset:
    """One lab experiment: its runs, what to look for and where to look."""

    id: str
    title: str
    explanation: str  # one line: what to look for
    runs: tuple[tuple[str, RunSpec], ...]
    page: str = "/"  # "/" (Training, overlaying the runs) or "/lab" (the preset's view on the Lab page)
    notes: tuple[str, ...] = field(default_factory=tuple)  # what the runs are, for the page
    diverges: tuple[str, ...] = ()  # names of runs meant to diverge (stop as failed): the phenomenon itself

    def expected_status(self, name: str) -> str:
        """The final status a run of this preset should reach: ``failed`` for one meant to diverge."""
        return "failed" if name in self.diverges else "completed"

    def landing(self, run_ids: list[str]) -> str:
        """The address of the preset's view for the launched ``run_ids``."""
        runs = ",".join(run_ids)
        if self.page == "/lab":
            return f"/lab?preset={self.id}&run={runs}"
        return f"{self.page}?run={runs}"

    def specs(self, steps: int | None = None) -> list[tuple[str, RunSpec]]:
        """The preset's ``(name, spec)`` pairs; ``steps`` replaces every run's budget (tests use
        a reduced one), keeping each run's evaluation and probe cadences within it."""
        if steps is None:
            return list(self.runs)
        out = []
        for name, spec in self.runs:
            data: dict[str, Any] = spec.model_dump()
            data.update(steps=int(steps), epochs=None, eval_every=min(spec.eval_every, max(1, steps // 5)),
                        checkpoint_every=min(spec.checkpoint_every, steps))
            if spec.probe_every is not None:  # a fixed probe cadence keeps a few snapshots within the budget
                data["probe_every"] = min(spec.probe_every, max(1, steps // 5))
            out.append((name, RunSpec.model_validate(data)))
        return out


def _spec(task: str, **kw: Any) -> RunSpec:
    return RunSpec.for_task(task, **kw)


# -- optimizers --------------------------------------------------------------------------------
# The same small CNN (digits-cnn, channels 8/16, no dropout, seed 0, batch 32) under six optimizers,
# each at its usual learning rate. Measured here (1 thread, 300 steps, validation loss):
# sgd 0.333, momentum 0.090, adam 0.147, adagrad 0.124, rmsprop 0.071, adadelta 0.162; at 1000 steps
# all are 0.05-0.10. The six runs of 1,500 steps take ~1.5 s of training each; launched side by side
# (own processes, one thread each) all six complete in ~40 s (process start-up and probes included).
OPTIMIZER_LRS = {"sgd": 0.05, "momentum": 0.05, "adam": 0.003, "adagrad": 0.05, "rmsprop": 0.001, "adadelta": 1.0}
_OPT_MODEL = {"family": "cnn", "channels": [8, 16], "kernel_sizes": [3], "dropout": 0.0}

OPTIMIZERS = Preset(
    id="optimizers",
    title="Optimizers",
    explanation=("The same CNN and seed under SGD, SGD with momentum, Adam, Adagrad, RMSprop and Adadelta: "
                 "plain SGD's loss falls slowest; momentum and the adaptive methods get there in a fraction "
                 "of the steps."),
    runs=tuple((f"lab · optimizers · {opt}",
                _spec("digits-cnn", model=_OPT_MODEL, optimizer=opt, lr=lr, momentum=0.9, batch_size=32,
                      steps=1500, log_every=10, eval_every=100, seed=0, name=f"lab · optimizers · {opt}"))
               for opt, lr in OPTIMIZER_LRS.items()),
    notes=("digits-cnn, CNN 8/16 channels, batch 32, 1,500 steps, seed 0; learning rates: "
           + ", ".join(f"{k} {v:g}" for k, v in OPTIMIZER_LRS.items()),),
)

# -- dropout -----------------------------------------------------------------------------------
# An MLP of 2 x 512 units (1.8M parameters) on patches-cnn (19,500 32x32 colour patches, 13 photos;
# validation from parts of the photos training never sees), with dropout 0 and 0.5. Measured here
# (1 thread, adam 0.001, batch 64), loss in eval mode, validation - training:
# 1,000 steps: gap 3.03 without dropout (train 0.28, val 3.32) vs 0.94 with (1.32, 2.26);
# 2,500 steps: 5.29 vs 1.48. Validation accuracy stays near 0.3 for both (0.34 vs 0.29 at 2,500):
# dropout shrinks the overfitting (val loss), not the distance between the photos' halves.
# digits-cnn does not show it: its 1,437 digits are learnt to 99% either way (gap 0.05 both ways).
_DROPOUT_MODEL = {"family": "mlp", "hidden_size": 512, "layers": 2, "activation": "relu"}

DROPOUT = Preset(
    id="dropout",
    title="Dropout and overfitting",
    explanation=("A large MLP on few images, without and with dropout 0.5: without it the training loss "
                 "falls towards zero while the validation loss climbs (overfitting); dropout keeps the gap "
                 "between the two curves much smaller."),
    runs=tuple((f"lab · dropout {p:g}",
                _spec("patches-cnn", model={**_DROPOUT_MODEL, "dropout": p}, optimizer="adam", lr=0.001,
                      batch_size=64, steps=2000, log_every=10, eval_every=100, seed=0,
                      name=f"lab · dropout {p:g}"))
               for p in (0.0, 0.5)),
    notes=("patches-cnn, MLP 2 x 512 (1.8M parameters), adam 0.001, batch 64, 2,000 steps; compare "
           "train/loss with val/loss of each run.",),
)

# -- gradient flow through time ----------------------------------------------------------------
# recall-lstm (repeat the key seen 21 characters earlier), 64 units, adam 0.01, clip 1, batch 32.
# decay_ratio(norms, 1, 20) of the trained model on 64 probe episodes, measured here (1 thread):
#   600 steps:  rnn 2.0e9,  lstm 4.2, gru 0.88 (recall accuracy 0.31, 0.31, 0.75)
#   3000 steps: rnn 2.1e26, lstm 3.1, gru 0.63 (recall accuracy 0.31, 1.00, 1.00; chance is 0.25)
# At initialisation all three decay (rnn 7.9e4, lstm 1.7e4, gru 7.2e3): the LSTM and GRU learn to keep
# the gradient, the tanh RNN does not. The three runs finish in ~13 s, 16 s and 29 s of training alone.
GRADFLOW_FAMILIES = ("rnn", "lstm", "gru")

GRADIENT_FLOW = Preset(
    id="gradient-flow",
    title="Gradient flow through time",
    explanation=("Plain tanh RNN vs LSTM vs GRU on a task that needs a 21-step memory: the norm of dL/dh_t "
                 "against the distance from the loss falls by many orders of magnitude for the RNN, and stays "
                 "within a small factor for the LSTM and GRU, which learn the task."),
    runs=tuple((f"lab · gradient flow · {fam}",
                _spec("recall-lstm", model={"family": fam, "hidden_size": 64, "embedding_dim": 8,
                                            **({"activation": "tanh"} if fam == "rnn" else {})},
                      optimizer="adam", lr=0.01, batch_size=32, steps=3000, clip_norm=1.0, seed=0,
                      probe_every=300,  # ten snapshots for the slider (the adaptive cadence would space them out)
                      name=f"lab · gradient flow · {fam}"))
               for fam in GRADFLOW_FAMILIES),
    page="/lab",
    notes=("recall-lstm, 64 units, adam 0.01, gradient clipping 1, 3,000 steps; the curves are each run's "
           "newest gradient-flow snapshot (about ten per run).",),
)

# -- activations in recurrent nets ----------------------------------------------------------------
# A plain RNN of 32 units (embedding 32) on code-lstm's 64-character windows, ReLU vs tanh, adam 0.002,
# batch 32, no clipping, seed 0. The gradient-flow probe's forward pass gives the mean ||h_t|| over 32
# validation windows at each of their 64 steps; a tanh layer's is at most sqrt(32) = 5.66. Measured here
# (launched side by side, 1 thread each), mean ||h|| at the last time step (largest ||h_t|| of any window
# and step in brackets):
#   step      0          150           300           900           3000
#   relu    2.29 (4.06)  10.3 (17.6)   11.4 (16.7)   13.1 (20.7)   13.5 (23.3)
#   tanh    2.82 (3.81)   4.62 (5.27)   4.67 (5.26)   4.82 (5.36)   4.95 (5.58)
# Along the sequence at step 3000: relu 9.4 at t=0, 13-14 from t=8 on; tanh flat at 4.9-5.1. The ReLU
# state climbs to 2.4x the tanh bound (its largest 4x) and keeps rising with training; tanh saturates
# just under the bound. Both learn (validation loss 1.95 relu, 1.94 tanh at 3,000). At higher learning
# rates adam keeps the ReLU net smaller (lr 0.01/0.03, 64 units: ~5-6); plain SGD at lr 2 diverges in
# 4 steps (the clipping preset). Default budget: both runs completed in 113 s side by side (two cores
# shared with other work, load average ~9).
ACTIVATIONS_MODEL = {"family": "rnn", "hidden_size": 32, "embedding_dim": 32}

ACTIVATIONS = Preset(
    id="activations",
    title="Activations in recurrent nets",
    explanation=("The same plain RNN with ReLU and with tanh: the tanh state can never be longer than "
                 "sqrt(hidden units) and saturates just under it, while the ReLU state grows past that bound, "
                 "step after step along a sequence and run after run through training."),
    runs=tuple((f"lab · activations · {act}",
                _spec("code-lstm", model={**ACTIVATIONS_MODEL, "activation": act}, optimizer="adam", lr=0.002,
                      batch_size=32, seq_len=64, steps=3000, clip_norm=None, log_every=10, eval_every=300,
                      probe_every=150, seed=0, name=f"lab · activations · {act}"))
               for act in ("relu", "tanh")),
    page="/lab",
    notes=("code-lstm, plain RNN of 32 units (embedding 32), adam 0.002, batch 32, no gradient clipping, 3,000 "
           "steps; hidden-state norms from 16 validation windows of 64 characters, every 150 steps.",),
)

# -- gradient clipping ---------------------------------------------------------------------------
# A ReLU RNN of 64 units (embedding 16) on code-lstm with plain SGD at lr 2, without and with clipping the
# global gradient norm to 1 (seed 0, batch 32, every step logged). Measured here (1 thread):
#   no clipping: ||g|| 0.70, 0.77, then 2.0e10 at step 3 (the loss 4.4e8): the update wrecks the weights
#     and the loss is NaN at step 4, where the run stops (failed: "training diverged at step 4"); seeds
#     1-3 diverge by step 7 as well (at lr 1 seed 2 does not).
#   clip 1: the same 2.0e10 at step 3 is cut to 1.0 and the run recovers: pre-clip norms above 1 at
#     20 of 2,000 steps (11.3 at step 7), after clipping at most 1.0000001; validation loss 2.12 at
#     step 200, 1.86 at 1,000, 1.81 at 2,000.
# Default budget: both runs done in 60 s side by side (the diverged one in 15 s, start-up included).
CLIP_NORM = 1.0
CLIPPING_MODEL = {"family": "rnn", "hidden_size": 64, "embedding_dim": 16, "activation": "relu"}

CLIPPING = Preset(
    id="clipping",
    title="Gradient clipping",
    explanation=("A ReLU RNN trained with a large learning rate, without and with gradient clipping at norm 1: "
                 "a gradient billions of times too long wrecks the unclipped run within a few steps (its loss "
                 "turns NaN), while the clipped run cuts that step to length 1 and trains on."),
    runs=tuple((f"lab · clipping · {'clip ' + format(clip, 'g') if clip else 'off'}",
                _spec("code-lstm", model=CLIPPING_MODEL, optimizer="sgd", lr=2.0, batch_size=32, seq_len=64,
                      steps=2000, clip_norm=clip, log_every=1, eval_every=200, probe_every=100, seed=0,
                      name=f"lab · clipping · {'clip ' + format(clip, 'g') if clip else 'off'}"))
               for clip in (None, CLIP_NORM)),
    page="/lab",
    diverges=("lab · clipping · off",),
    notes=(f"code-lstm, ReLU RNN of 64 units (embedding 16), SGD lr 2, batch 32, 2,000 steps; clipping the global "
           f"gradient norm to {CLIP_NORM:g} or not; gradient norms logged every step, before and after clipping.",),
)

# -- attention and input length (issue 16) ------------------------------------------------------------
# numbers-seq2seq (numbers in words -> digits, 1-7 digits, inputs 3-87 characters), the same bidirectional GRU
# encoder-decoder (64 units, embedding 32, adam 0.005, batch 64, clip 1, seed 0) with additive attention and with
# none. Measured here (1 thread each, seed 0, side by side with a load average of 6-8), validation sequence
# accuracy on the shortest / middle / longest third of the inputs (at most 25, 26-48, over 48 characters):
#   step    no attention           additive attention
#   200     0.864 / 0.128 / 0.003  0.997 / 0.921 / 0.827
#   400     0.951 / 0.513 / 0.066  0.999 / 0.999 / 0.989  (0.996 overall; alignment share 0.75)
#   800     0.993 / 0.768 / 0.238  1.000 / 0.994 / 0.980
# Without attention the longest third stays far behind the shortest even at 800 steps (margin 0.76); with
# attention the three are within 0.02 from step 400. The 800-step runs took 440 s (none) and 522 s (additive)
# of wall time on that loaded machine (about 90 s of CPU each). The preset's 400 steps, launched by
# bench/lab.py (load average 6.8-7.2, two cores shared with other work): both runs done 213 s after the
# launch (none 165 s), with the figures of the 400-step row: over the 3-minute target on that machine. The
# runs need about 50 s of CPU each (half the 800-step runs' ~90-105 s read from ps), so on a quiet 2-core
# machine they should finish in about a minute; not measured quiet.
ATTENTION_STEPS = 400
ATTENTION = Preset(
    id="attention",
    title="Attention and input length",
    explanation=("The same encoder-decoder with and without attention, writing numbers given in words as digits "
                 "('four million and six' -> 4000006): without attention everything must pass through the "
                 "encoder's final state, and its sequence accuracy falls from the shortest third of the inputs to "
                 "the longest (val/seq_acc_short, _middle, _long); with attention all three stay high."),
    runs=tuple((f"lab · attention · {att}",
                _spec("numbers-seq2seq", model={"attention": att}, steps=ATTENTION_STEPS, eval_every=200, seed=0,
                      name=f"lab · attention · {att}"))
               for att in ("additive", "none")),
    notes=("numbers-seq2seq, bidirectional GRU encoder and GRU decoder of 64 units, adam 0.005, batch 64, "
           f"{ATTENTION_STEPS:,} steps; compare val/seq_acc_short, val/seq_acc_middle and val/seq_acc_long.",
           "Where the attention run looks while writing each digit: the Attention page, /attention?run=<id of "
           "the additive run> (its id is the first in the address the Launch button opens)."),
)

# -- bidirectional tagging (issue 16) ------------------------------------------------------------------
# tags-bidir, a GRU tagger of 32 units (embedding 16, adam 0.01, batch 64, clip 1, 300 steps, seed 0) reading
# left to right, and reading both ways. Measured here (bench/lab.py, side by side, load average 7): accuracy on
# the ambiguous words forward 0.685, bidirectional 1.000; on the other words 1.000 both; whole sentences right
# 0.461 and 1.000. Both runs done 19.7 s after the launch (forward 14.9 s).
TAGGING = Preset(
    id="bidirectional-tagging",
    title="Bidirectional tagging",
    explanation=("A tagger that reads left to right against one that reads both ways, on sentences where a "
                 "quarter of the words take their tag from the next word ('the cold wind': ADJ, 'the cold "
                 "spreads': NOUN): on those ambiguous words (val/acc_ambiguous) the forward tagger can only guess, "
                 "the bidirectional one is right; on the other words both are."),
    runs=tuple((f"lab · tagging · {'bidirectional' if bi else 'forward'}",
                _spec("tags-bidir", model={"bidirectional": bi}, steps=300, seed=0,
                      name=f"lab · tagging · {'bidirectional' if bi else 'forward'}"))
               for bi in (False, True)),
    notes=("tags-bidir, GRU tagger of 32 units (embedding 16), adam 0.01, batch 64, 300 steps; compare "
           "val/acc_ambiguous with val/acc_unambiguous.",),
)

# -- teacher forcing and exposure bias (issue 16) ---------------------------------------------------------
# dates-seq2seq at its default model (bidirectional GRU, 64 units, additive attention, adam 0.005, batch 64,
# clip 1, seed 0), teacher forcing 1, 0.5, and linear from 1 to 0. Validation decodes free running (the model
# reads its own previous character). Measured here (bench/lab.py, side by side, load average 7-9): at 400 steps
# all three write every validation date right free running (seq_acc 1.000 in every length third; alignment
# share 0.886, 0.865, 0.888): the classic exposure-bias gap (a model always fed the truth stumbling over its
# own mistakes) does NOT show at this budget on dates: with attention the task is too easy for errors to
# compound. The three runs done 144 s after the launch (the linear one 141 s). Differences, if any, are
# early in the curves (not measured step by step).
TEACHER_STEPS = 400
TEACHER_RUNS = (("ratio 1", {"teacher_forcing": 1.0}), ("ratio 0.5", {"teacher_forcing": 0.5}),
                ("linear 1 to 0", {"teacher_forcing": 1.0, "teacher_forcing_schedule": "linear",
                                   "teacher_forcing_floor": 0.0}))
TEACHER_FORCING = Preset(
    id="teacher-forcing",
    title="Teacher forcing",
    explanation=("An encoder-decoder trained always fed the true previous character (ratio 1), half the time "
                 "(0.5), and less and less (linear 1 to 0); validation always decodes free running, from its own "
                 "previous characters. The classic claim: a model always fed the truth never learns to recover "
                 "from its own mistakes (exposure bias). Measured here at this budget it does not show on dates: "
                 "all three end writing every validation date right; compare how fast val/seq_acc rises and "
                 "train/loss falls."),
    runs=tuple((f"lab · teacher forcing · {label}",
                _spec("dates-seq2seq", steps=TEACHER_STEPS, eval_every=100, seed=0, **kw,
                      name=f"lab · teacher forcing · {label}"))
               for label, kw in TEACHER_RUNS),
    notes=(f"dates-seq2seq, bidirectional GRU, additive attention, adam 0.005, batch 64, {TEACHER_STEPS:,} steps; "
           "teacher_forcing is logged with the metrics.",),
)

PRESETS: dict[str, Preset] = {p.id: p for p in (OPTIMIZERS, DROPOUT, GRADIENT_FLOW, ACTIVATIONS, CLIPPING,
                                                   ATTENTION, TAGGING, TEACHER_FORCING)}


def get_preset(preset_id: str) -> Preset:
    """The preset called ``preset_id``; KeyError naming the known ones."""
    try:
        return PRESETS[preset_id]
    except KeyError:
        raise KeyError(f"unknown preset {preset_id!r}; presets: {', '.join(PRESETS)}") from None


def launch(jobs, preset_id: str, steps: int | None = None) -> list[str]:
    """Start the preset's runs with ``jobs`` (a :class:`~backend.jobs.JobManager`), one torch thread
    each so that they share the cores fairly; returns their run ids in the preset's order.
    ``steps`` replaces every run's budget (see :meth:`Preset.specs`)."""
    preset = get_preset(preset_id)
    return [jobs.start(spec, name=name, threads=1) for name, spec in preset.specs(steps)]


NO_JOBS = ("Not started: no job manager is available here (start the dashboard with `deepscope serve` "
           "or `deepscope demo`), so the lab cannot launch runs.")


def start_preset(jobs, preset_id: str) -> tuple[bool, str, list[str]]:
    """What a Launch button does: ``(True, landing address, run ids)`` after :func:`launch`, or
    ``(False, message, [])`` saying why nothing started (no job manager, unknown preset, a refusal)."""
    if preset_id not in PRESETS:
        return False, f"Not started: there is no preset {preset_id!r}; presets: {', '.join(PRESETS)}.", []
    if jobs is None:
        return False, NO_JOBS, []
    preset, run_ids = PRESETS[preset_id], []
    try:
        for name, spec in preset.specs():
            run_ids.append(jobs.start(spec, name=name, threads=1))
    except Exception as exc:  # noqa: BLE001 - the page shows the refusal, never a traceback
        done = f" (started {len(run_ids)} of {len(preset.runs)}: {', '.join(run_ids)})" if run_ids else ""
        return False, f"Not started{done}: {exc}", run_ids
    return True, preset.landing(run_ids), run_ids
