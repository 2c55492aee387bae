"""The hidden-state probe set of the sequence-to-sequence tasks: fixed inputs, their targets, and per-position tracks.

An encoder-decoder has two sequences, the input it reads and the output it writes. The hidden-state record
(:mod:`backend.store.hidden`) holds one token stream, so the probe lays each probe item out as its input
characters, the decoder's start token (shown ``→``), then one position per output character (the end token
shown ``⏎``), and the items one after another::

    5/3/21→2021-05-03⏎11/24/1987→1987-11-24⏎...

The encoder's states are recorded at the input positions, the decoder's at the output positions (the state
that writes that character); everywhere else a layer has no state (NaN). The output positions are laid out
from the *target* (11 for a date, the digits and the end token for a number), so every snapshot of a run has
the same positions; what the decoder wrote there changes over training.

Tracks (float32, one value per position, defined everywhere; properties of the position, the same at every
snapshot but ``correct``):

- ``field=year``, ``field=month``, ``field=day`` (dates; ``field=weekday`` for the input too): 1 where an input
  character is part of the written field, or an output character writes that field;
- ``place`` (numbers): the power of ten of the digit an input word writes ("forty" of "forty-two": 1) or an
  output digit is, -1 for none;
- ``digit``, ``letter``, ``separator``: the character class (the target's character at output positions);
- ``position``: characters from the start of the input (input) or of the output (output);
- ``remaining``: characters after this one in its input or output;
- ``correct``: filled in per snapshot by the probe: 1 where the decoder wrote the target's character.

Pure numpy (the probe in :mod:`backend.probes.seq_states` adds the model).

Example::

    ps = seq_probe_set("dates-seq2seq")
    ps.n_tokens, ps.text[:18]          # (1835, '5/3/21→2021-05-03⏎')
    ps.enc_pos[0][:3], ps.dec_pos[0][:3]
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from .dates import BOS, EOS, PAD, UNK
from .probe import ProbeCorpus

N_ITEMS = 64  # the attention probe's 8 first (the same inputs as the Attention page), then generated ones
PROBE_SEED_NUMBERS = 333  # numbers-seq2seq's probe items (training 111, validation 222)
SHOWN_SPECIALS = {PAD: "·", BOS: "→", EOS: "⏎", UNK: "\ufffd"}  # one character each: the page's text search
SEPARATORS = frozenset(" ,./-")


@dataclass(frozen=True)
class SeqProbeSet(ProbeCorpus):
    """The probe items of a sequence-to-sequence task, laid out as one token stream (module docstring):
    a :class:`~backend.tasks.probe.ProbeCorpus` (``ids`` the stream, the target at output positions;
    ``vocab`` one character per id, as the page prints it) with the items it was laid out from."""

    task: str
    x: np.ndarray                 # int64 (items, max input): input ids, 0 padding on the right
    y: np.ndarray                 # int64 (items, out steps): target ids, end tokens after the target
    out_len: np.ndarray           # int64 (items,): output positions of each item (target and its end token)
    enc_pos: list[np.ndarray]     # per item: stream positions of its input characters
    dec_pos: list[np.ndarray]     # per item: stream positions of its output characters


def seq_probe_set(task: str, n_items: int = N_ITEMS) -> SeqProbeSet:
    """The probe set of ``dates-seq2seq`` or ``numbers-seq2seq``: the attention probe's 8 inputs, then
    ``n_items - 8`` drawn with a seed of their own (unused by training and validation)."""
    if task == "numbers-seq2seq":
        from .number_words import NUMBER_OUT_LEN, NUMBER_VOCAB, encode_numbers, generate_numbers, probe_numbers

        examples = probe_numbers() + generate_numbers(max(0, n_items - 8), PROBE_SEED_NUMBERS)
        arrays, vocab, steps = encode_numbers(examples), NUMBER_VOCAB, NUMBER_OUT_LEN
        source = (f"{len(examples)} numbers in words (the Attention page's 8, then {len(examples) - 8} drawn with "
                  f"seed {PROBE_SEED_NUMBERS}), each followed by the digits the decoder writes")
    elif task == "dates-seq2seq":
        from .dates import DATE_OUT_LEN, DATE_SEEDS, DATE_VOCAB, encode_dates, generate_dates, probe_dates

        examples = probe_dates() + generate_dates(max(0, n_items - 8), DATE_SEEDS["probe"])
        arrays, vocab, steps = encode_dates(examples), DATE_VOCAB, DATE_OUT_LEN
        source = (f"{len(examples)} dates (the Attention page's 8, then {len(examples) - 8} drawn with seed "
                  f"{DATE_SEEDS['probe']}), each followed by the ISO date the decoder writes")
    else:
        raise ValueError(f"no sequence-to-sequence probe set for task {task!r}")
    examples = examples[:n_items]
    arrays = {k: v[:n_items] for k, v in arrays.items()}
    shown = tuple(SHOWN_SPECIALS.get(i, ch) for i, ch in enumerate(vocab))
    out_len = np.array([len(ex.target) + 1 for ex in examples], np.int64)
    ids, enc_pos, dec_pos, pos = [], [], [], 0
    for ex, x_row, y_row, n_out in zip(examples, arrays["x"], arrays["y"], out_len):
        n_in = int(arrays["lengths"][len(enc_pos)])
        ids += x_row[:n_in].tolist() + [BOS] + y_row[:n_out].tolist()
        enc_pos.append(np.arange(pos, pos + n_in))
        dec_pos.append(np.arange(pos + n_in + 1, pos + n_in + 1 + n_out))
        pos += n_in + 1 + int(n_out)
    ids_arr = np.asarray(ids, np.int64)
    tracks = _tracks(task, examples, arrays, ids_arr, shown, enc_pos, dec_pos)
    return SeqProbeSet(task=task, x=arrays["x"], y=arrays["y"][:, :steps], out_len=out_len, ids=ids_arr,
                       vocab=shown, enc_pos=enc_pos, dec_pos=dec_pos, tracks=tracks, source=source)


def _tracks(task: str, examples, arrays, ids: np.ndarray, shown, enc_pos, dec_pos) -> dict[str, np.ndarray]:
    n = len(ids)
    chars = [shown[i] for i in ids.tolist()]
    out: dict[str, np.ndarray] = {}
    if task == "dates-seq2seq":
        from .dates import FIELD_OF_OUTPUT, FORMATS

        for name in ("year", "month", "day", "weekday"):
            out[f"field={name}"] = np.zeros(n, np.float32)
        for ex, enc, dec in zip(examples, enc_pos, dec_pos):
            start = 0
            for fld, piece in FORMATS[ex.format](date.fromisoformat(ex.target)):
                if fld is not None:
                    out[f"field={fld}"][enc[start:start + len(piece)]] = 1.0
                start += len(piece)
            for t, fld in enumerate(FIELD_OF_OUTPUT[:len(dec)]):
                if fld is not None:
                    out[f"field={fld}"][dec[t]] = 1.0
    else:
        place = np.full(n, -1.0, np.float32)
        for ex, spans, enc, dec in zip(examples, arrays["spans"], enc_pos, dec_pos):
            digits = len(ex.target)
            for t, (a, b) in enumerate(spans[:digits].tolist()):
                power = digits - 1 - t
                place[dec[t]] = power
                if a >= 0:  # the word that writes this digit; a teen word writes two and keeps the first (tens)
                    words = enc[a:b]
                    place[words] = np.where(place[words] < 0, power, place[words])
        out["place"] = place
    out["digit"] = np.array([c.isdigit() for c in chars], np.float32)
    out["letter"] = np.array([c.isalpha() for c in chars], np.float32)
    out["separator"] = np.array([c in SEPARATORS for c in chars], np.float32)
    position, remaining = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for part in enc_pos + dec_pos:
        position[part] = np.arange(len(part))
        remaining[part] = np.arange(len(part))[::-1]
    out["position"], out["remaining"] = position, remaining
    return out
