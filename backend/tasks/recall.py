"""The ``recall-lstm`` language: remember a key symbol for ``gap`` steps, then say it again.

Pure numpy (no torch). The text is a stream of episodes, one per line::

    A cabdbacddabcbaddbcab?A
    C dbbacadbcabdcbaacbdd?C

Each episode is a key (``A``..``D``), ``gap`` random filler letters (``a``..``d``), the marker
``?`` and the key again, then a newline. Everything but the key after ``?`` is either fixed by the
format or random, so a language model's loss on that one token measures exactly whether it
carried the key ``gap + 1`` steps: the task that needs long memory, where a plain tanh RNN's
gradient vanishes with the distance and an LSTM's does not.

Example::

    text = generate_recall(1_000, seed=0)
    tracks = recall_tracks(text)          # key held, steps since the key, recall position
    tokens, targets = recall_probe_batch(16)   # episodes cut before the answer, and the answers
"""
from __future__ import annotations

import numpy as np

RECALL_KEYS = "ABCD"
RECALL_FILLERS = "abcd"
RECALL_MARKER = "?"
RECALL_GAP = 20  # filler letters between a key and its "?"
RECALL_CHARS = "\n" + RECALL_MARKER + RECALL_KEYS + RECALL_FILLERS
RECALL_VOCAB = ["\ufffd"] + list(RECALL_CHARS)  # index 0: unknown character, as in the other char tasks
# Seeds of the three texts: training, validation and the hidden-state probe text differ.
RECALL_SEEDS = {"train": 11, "val": 12, "probe": 13, "gradflow": 14}
RECALL_TRAIN_CHARS = 400_000
RECALL_VAL_CHARS = 40_000
_BLOCK = 512  # episodes drawn at a time: the text for a seed does not depend on how much is asked


def episode_length(gap: int = RECALL_GAP) -> int:
    """Characters per episode: key, fillers, marker, key, newline."""
    return gap + 4


def _episodes(n: int, seed: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keys (n,), fillers (n, gap))`` as indexes into RECALL_KEYS / RECALL_FILLERS, drawn block by
    block so that the first ``m`` episodes are the same whatever ``n >= m``."""
    rng = np.random.default_rng(seed)
    keys, fillers, have = [], [], 0
    while have < n:
        keys.append(rng.integers(0, len(RECALL_KEYS), _BLOCK))
        fillers.append(rng.integers(0, len(RECALL_FILLERS), (_BLOCK, gap)))
        have += _BLOCK
    return np.concatenate(keys)[:n], np.concatenate(fillers)[:n]


def generate_recall(n_chars: int, seed: int, gap: int = RECALL_GAP) -> str:
    """``n_chars`` characters of recall episodes (see the module docstring), the same for the same
    seed and gap; a shorter request is a prefix of a longer one."""
    if n_chars < 0:
        raise ValueError("n_chars must be >= 0")
    if gap < 1:
        raise ValueError("gap must be at least 1")
    length = episode_length(gap)
    n_ep = -(-n_chars // length)
    keys, fillers = _episodes(n_ep, seed, gap)
    key_b = np.frombuffer(RECALL_KEYS.encode("ascii"), np.uint8)[keys]
    rows = np.empty((n_ep, length), dtype=np.uint8)
    rows[:, 0] = key_b
    rows[:, 1:gap + 1] = np.frombuffer(RECALL_FILLERS.encode("ascii"), np.uint8)[fillers]
    rows[:, gap + 1] = ord(RECALL_MARKER)
    rows[:, gap + 2] = key_b
    rows[:, gap + 3] = ord("\n")
    return rows.tobytes().decode("ascii")[:n_chars]


def recall_tracks(text: str) -> dict[str, np.ndarray]:
    """Per-character tracks of recall text (float32, ``len(text)`` each), describing the state after
    reading each character:

    - ``"key"``: which key is being held, 1..4 for ``A``..``D`` (0 before the first key);
    - ``"since key"``: characters read since the key (0 at the key itself);
    - ``"recall"``: 1.0 at the marker ``?``, where the next character is the key to recall.
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    n = len(codes)
    is_key = np.zeros(n, dtype=bool)
    key_id = np.zeros(n, dtype=np.float32)
    # a key opens an episode: the first character of the text or one after a newline
    starts = np.zeros(n, dtype=bool)
    if n:
        starts[0] = True
        starts[1:] = codes[:-1] == ord("\n")
    for i, k in enumerate(RECALL_KEYS):
        hit = starts & (codes == ord(k))
        is_key |= hit
        key_id[hit] = i + 1
    idx = np.where(is_key, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    held = np.where(last >= 0, key_id[np.maximum(last, 0)], 0.0).astype(np.float32)
    since = np.where(last >= 0, np.arange(n) - last, 0).astype(np.float32)
    recall = (codes == ord(RECALL_MARKER)).astype(np.float32)
    return {"key": held, "since key": since, "recall": recall}


def recall_probe_batch(n: int, gap: int = RECALL_GAP, seed: int = RECALL_SEEDS["gradflow"]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens (n, gap + 2), targets (n,))`` int64 ids of RECALL_VOCAB: ``n`` episodes from the key
    to the marker ``?``, and the key each must answer. The loss at the last step then depends on the
    first token only, ``gap + 1`` steps back (the gradient-flow probe's batch)."""
    keys, fillers = _episodes(n, seed, gap)
    key_ids = keys + RECALL_VOCAB.index(RECALL_KEYS[0])
    tokens = np.empty((n, gap + 2), dtype=np.int64)
    tokens[:, 0] = key_ids
    tokens[:, 1:gap + 1] = fillers + RECALL_VOCAB.index(RECALL_FILLERS[0])
    tokens[:, gap + 1] = RECALL_VOCAB.index(RECALL_MARKER)
    return tokens, key_ids.astype(np.int64)
