"""Hidden-state probe: every K steps, replay a fixed probe corpus and record every state.

The probe corpus (held-out text, >= 20,000 tokens) is replayed as one continuous text
from a zero state at its first token (its last, for backward layers): the state at every
token carries everything before it, exactly as one pass of the model over the whole text
(:func:`backend.probes.replay.replay_stream`; ``segment`` is only the length of the chunks
that pass hands its state across). ``continuous=False`` keeps the former probe, parallel
segments each from a zero state after ``warmup`` tokens, to measure what continuity changes:
its states jump at every segment's first token wherever a cell remembers longer than the
warm-up (tests/integration/test_probe_continuity.py).

Example::

    states = capture_model(model, torch.as_tensor(corpus.ids))
    states[(0, "fwd", "c")].shape     # (n_tokens, hidden): float16 numpy
"""
from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from .replay import family_of, replay, replay_stream
from .states import STATES

log = logging.getLogger(__name__)
SEGMENT = 256  # tokens per chunk of the continuous replay (and per segment of the former probe)
WARMUP = 0  # the continuous replay needs none; the former segmented probe used 64
StateKey = tuple[int, str, str]  # (layer, direction, state)


def find_recurrent(model: nn.Module) -> nn.RNNBase:
    """The model's recurrent layer (``model.rnn`` or the first nn.LSTM/GRU/RNN inside)."""
    rnn = getattr(model, "rnn", None)
    if isinstance(rnn, nn.RNNBase):
        return rnn
    for module in model.modules():
        if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            return module
    raise ValueError(f"{type(model).__name__} has no recurrent layer (nn.LSTM, nn.GRU or nn.RNN); "
                     "hidden states exist for recurrent models only")


def segment_windows(n_tokens: int, segment: int, warmup: int, bidirectional: bool):
    """Token positions of each parallel window (-1 = padding) and the reset masks of replay()."""
    tail = warmup if bidirectional else 0
    n_seg = max(1, math.ceil(n_tokens / segment))
    starts = np.arange(n_seg) * segment
    pos = starts[:, None] - warmup + np.arange(warmup + segment + tail)[None, :]
    real = (pos >= 0) & (pos < n_tokens)
    pos = np.where(real, pos, -1)
    first = real.argmax(1)  # first real position of each row
    last = real.shape[1] - 1 - real[:, ::-1].argmax(1)
    reset_fwd = {int(t): torch.as_tensor(first == t) for t in np.unique(first[first > 0])}
    reset_bwd = {int(t): torch.as_tensor(last == t) for t in np.unique(last[last < real.shape[1] - 1])}
    return pos, reset_fwd, reset_bwd


@torch.no_grad()
def capture(rnn: nn.RNNBase, embed: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor,
            segment: int = SEGMENT, warmup: int = WARMUP, continuous: bool = True) -> dict[StateKey, np.ndarray]:
    """All states of ``rnn`` at every token of ``ids`` (1-D), as float16 ``(n_tokens, hidden)``: one
    continuous replay of the whole text (``warmup`` unused), or with ``continuous=False`` parallel
    segments of ``segment`` tokens, each from a zero state ``warmup`` tokens before it."""
    if continuous:
        streamed = replay_stream(rnn, embed(ids), chunk=segment)
        return {(layer, d, name): arr.to(torch.float16).contiguous().cpu().numpy()
                for (layer, d), by_state in streamed.items() for name, arr in by_state.items()}
    n = int(ids.shape[0])
    pos, reset_fwd, reset_bwd = segment_windows(n, segment, warmup, rnn.bidirectional)
    dev = ids.device
    window_ids = ids[torch.as_tensor(np.maximum(pos, 0), device=dev)]
    move = {t: m.to(dev) for t, m in reset_fwd.items()}, {t: m.to(dev) for t, m in reset_bwd.items()}
    states = replay(rnn, embed(window_ids), *move)
    out: dict[StateKey, np.ndarray] = {}
    for (layer, d), by_state in states.items():
        for name, arr in by_state.items():
            kept = arr[warmup:warmup + segment].to(torch.float16)  # (segment, windows, hidden), one pass
            out[(layer, d, name)] = kept.transpose(0, 1).reshape(-1, arr.shape[-1])[:n].cpu().numpy()
    return out


def capture_model(model: nn.Module, ids: torch.Tensor, **kwargs) -> dict[StateKey, np.ndarray]:
    """:func:`capture` for a token model with ``embedding`` and ``rnn`` (RecurrentLM and alike)."""
    rnn = find_recurrent(model)
    embed = getattr(model, "embedding", None)
    if embed is None:
        raise ValueError(f"{type(model).__name__} has no token embedding: the probe replays token ids")
    was_training = model.training
    model.eval()
    try:
        return capture(rnn, embed, ids, **kwargs)
    finally:
        model.train(was_training)


def describe(rnn: nn.RNNBase) -> dict:
    """What a snapshot of ``rnn`` holds (goes into the record's meta)."""
    family = family_of(rnn)
    return {"family": family, "layers": rnn.num_layers, "cells": rnn.hidden_size,
            "directions": ["fwd", "bwd"] if rnn.bidirectional else ["fwd"], "states": list(STATES[family]),
            "continuous": True}  # one replay of the whole text (docs/hidden.md); absent: the former segments


class SnapshotWriterThread:
    """Writes captured snapshots from a daemon thread so the training step never waits on disk."""

    def __init__(self, write: Callable[..., object], depth: int = 1, nice: int = 10):
        self._write = write
        self.nice = nice
        self.last_write_s = 0.0  # wall time of the latest write (the probe's cadence counts it)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._loop, name="deepscope-probe-writer", daemon=True)
        self._thread.start()

    def put(self, *args) -> None:
        self._queue.put(args)  # blocks only when the previous snapshot is still being written

    def _loop(self) -> None:
        try:  # Linux: a thread has its own nice value; the writer yields the cores to training
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        except (AttributeError, OSError):
            pass
        while True:
            args = self._queue.get()
            try:
                if args is None:
                    return
                t0 = time.perf_counter()
                self._write(*args)
                self.last_write_s = time.perf_counter() - t0
            except Exception:  # a failed snapshot must not kill training
                log.exception("could not write a hidden-state snapshot")
            finally:
                self._queue.task_done()

    def join(self) -> None:
        """Wait until everything put so far is written."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)


def adapt_every(every: int, probe_s: float, step_s: float, budget: float) -> int:
    """The smallest doubling of ``every`` whose probes cost at most ``budget`` of training time.

    >>> adapt_every(100, probe_s=0.5, step_s=0.01, budget=0.02)   # 0.5 s per 100 steps is 50%
    3200
    """
    if step_s <= 0:
        return every
    while probe_s > budget * every * step_s:
        every *= 2
    return every
