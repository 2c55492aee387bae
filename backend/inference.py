"""Try a run's newest checkpoint on text the user types: prediction, hidden states, gates, generation.

The dashboard imports this module inside callbacks only (it imports torch). A run's model is loaded
from its latest checkpoint (``store.run_dir(run_id)/checkpoints``) on CPU, in eval mode, and kept in
a small cache keyed by run id and checkpoint file, so the next request answers in milliseconds.

- :func:`analyse` encodes the text the way the run's task does (characters, or words for the sentiment
  tasks; unknown ones are reported and read as "unknown"), replays the recurrent layers to expose
  ``h``, ``c`` and every gate of every layer and direction at every token
  (:func:`backend.probes.replay.replay`), and predicts: for a language model the likeliest next tokens
  after each position; for a classifier the class probabilities, and how they evolve token by token
  (the prediction after reading tokens 1..t, for every t).
- :func:`generate_text` continues a prompt (teacher forcing off); :func:`teacher_force_text` shows the
  model's guess for each next character of the true text (teacher forcing on). A transformer reads at most
  its context (``seq_len``) at once: longer texts are refused, generation slides the window.
- Sequence tasks (:mod:`backend.inference_seq`): an encoder-decoder's output and attention matrix, a
  tagger's tag and its probability for every word, with the recurrent layers' states as above.
- Runs of users' own scripts (:mod:`backend.inference_client`): the character language model ``run.watch``
  saved, run from its model file as a graph; the same analysis, generation and teacher forcing.

Every problem the user can cause (no checkpoint yet, empty or too long text, an image run) is a
``ValueError`` whose message the page shows as is.

Example::

    loaded = load_run(store, run_id)                  # LoadedRun: model, spec, vocabulary, step
    result = analyse(loaded, "def f(x):")
    result.states[(0, "fwd")]["c"].shape              # (9, hidden): cell state after each character
    result.top_tokens[-1]                             # the 5 likeliest next characters after the text
    generate_text(loaded, "def ", length=80, temperature=0.5, seed=1).text
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from .inference_client import NO_STATES, can_step, encode_exact, graph_generate, graph_teacher_forced, \
    refuse_unknown, start_ids
from .inference_runs import checkpoint_paths, checkpoint_step, is_client_run, latest_model_path, model_file_paths, \
    no_checkpoint_message, text_run_problem
from .models.build import build_model
from .models.graph import GraphModel
from .models.graph_file import read_model_file
from .inference_seq import check_context, tag_words, transformer_generate, transformer_teacher_forced, translate
from .models.generate import generate, teacher_forced
from .probes.replay import replay
from .spec import RunSpec, format_errors, spec_info
from .tasks.registry import VOCABS, TaskInfo
from .tasks.sentiment.core import tokenize
from .tasks.text import encode_chars
from .training.checkpoint import CheckpointError, read_checkpoint

MAX_CHARS = 500          # characters a character model reads in one request
MAX_WORDS = 200          # words a word model reads: a bidirectional classifier re-reads every prefix, so its
                         # cost grows with the square of the length (200 words, 2 layers: ~0.8 s on one core)
MAX_TEXT_CHARS = 20_000  # raw characters, checked before tokenising
MAX_GENERATE = 1000      # characters one generation writes
TOP_K = 5
CACHE_SIZE = 4           # loaded models
ANALYSIS_CACHE_SIZE = 8  # analyses, so changing the shown layer or gate does not recompute
UNKNOWN_WORD_ID = 1      # sentiment vocabularies: 0 pads, 1 is "<unk>"

_models: OrderedDict[tuple[str, str], "LoadedRun"] = OrderedDict()
_analyses: OrderedDict[tuple[str, str, str], "Analysis"] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedRun:
    """A run's model as its checkpoint left it, with what it needs to read text. A client run (a user's own
    script) has no spec: its model is a :class:`~backend.models.graph.GraphModel` from its model file."""

    run_id: str
    path: Path
    step: int
    spec: RunSpec | None
    info: TaskInfo
    model: Any
    vocab: tuple[str, ...]
    client_family: str = "custom"   # client runs: the family watch() found (lstm, gru, rnn or custom)
    can_step: bool = False          # client runs: generation may carry the recurrent state (inference_client)

    @property
    def word_level(self) -> bool:
        """Words (the sentiment tasks, the tagger) or characters (the language models, seq2seq)."""
        return self.info.kind in ("text", "tag")

    @property
    def unit(self) -> str:
        return "words" if self.word_level else "characters"

    @property
    def family(self) -> str:
        return self.spec.model.family if self.spec is not None else self.client_family

    @property
    def is_client(self) -> bool:
        return self.spec is None


@dataclass
class Encoded:
    tokens: list[str]
    ids: np.ndarray                 # int64 (T,)
    unknown: list[str]              # distinct tokens outside the vocabulary, in order of appearance


@dataclass
class Analysis:
    """What the model makes of one text. Arrays have the text's tokens first."""

    run_id: str
    step: int
    checkpoint: str                 # file name of the checkpoint used
    kind: str                       # "lm" or "text"
    family: str
    tokens: list[str]
    ids: np.ndarray
    unknown: list[str]
    states: dict[tuple[int, str], dict[str, np.ndarray]] = field(default_factory=dict)  # (T, hidden) each
    top_tokens: list[list[str]] = field(default_factory=list)   # LM: after token t, the TOP_K likeliest next
    top_probs: np.ndarray | None = None                          # LM: (T, TOP_K)
    class_names: tuple[str, ...] = ()
    probs: np.ndarray | None = None                              # classifier: (classes,) for the whole text
    evolution: np.ndarray | None = None                          # classifier: (T, classes) after tokens 1..t
    translation: Any = None                                      # seq2seq: inference_seq.Translation
    tagging: Any = None                                          # tagger: inference_seq.Tagging
    states_note: str | None = None                               # why there are no states, when the page has none

    @property
    def predicted(self) -> str | None:
        """The predicted class (classifiers) or the likeliest next token (language models)."""
        if self.probs is not None:
            return self.class_names[int(np.argmax(self.probs))]
        return self.top_tokens[-1][0] if self.top_tokens else None


@dataclass
class Generation:
    prompt: str
    text: str                       # the continuation only
    ids: list[int]
    temperature: float
    seed: int | None
    unknown: list[str]
    step: int


@dataclass
class TeacherForcing:
    tokens: list[str]               # the text, one per character
    guesses: list[str]              # the model's guess for tokens[1:], after reading tokens[:t+1]
    p_true: np.ndarray              # probability it gave the true next token, (T - 1,)
    unknown: list[str]
    step: int

    @property
    def accuracy(self) -> float:
        return float(np.mean([g == t for g, t in zip(self.guesses, self.tokens[1:])])) if self.guesses else 0.0


# -- loading -----------------------------------------------------------------------------

def load_run(store: Any, run_id: str, checkpoint: str | None = None) -> LoadedRun:
    """The model of ``run_id`` from its newest checkpoint (or the named ``checkpoint`` file while it
    still exists), cached. ValueError, for the page, when the run cannot be tried."""
    run = store.get_run(run_id) if run_id else None
    if run is None:
        raise ValueError(f"There is no run with id {run_id!r}." if run_id else "Choose a run first.")
    problem = text_run_problem(run)
    if problem:
        raise ValueError(problem)
    for _attempt in range(3):  # the trainer keeps only the newest few files: one may go as we open it
        path = _checkpoint(run, store.run_dir(run_id), checkpoint)
        if path is None:
            raise ValueError(no_checkpoint_message(run))
        key = (run_id, path.name)
        with _lock:
            if key in _models:
                _models.move_to_end(key)
                return _models[key]
        try:
            loaded = _load_client(run, path) if is_client_run(run) else _load(run_id, path)
        except FileNotFoundError:
            checkpoint = None
            continue
        with _lock:
            _models[key] = loaded
            while len(_models) > CACHE_SIZE:
                _models.popitem(last=False)
        return loaded
    raise ValueError(f"The checkpoints of {run.get('name') or run_id} kept changing while being read; try again.")


def _checkpoint(run: dict, run_dir: Path, name: str | None) -> Path | None:
    if name:
        found = model_file_paths(run_dir) if is_client_run(run) else checkpoint_paths(run_dir)
        wanted = [p for p in found if p.name == Path(name).name]
        if wanted:
            return wanted[0]
    return latest_model_path(run, run_dir)


def _load_client(run: dict, path: Path) -> LoadedRun:
    """A client run's newest model file; GraphError (a ValueError) when it cannot be read safely."""
    torch.set_num_threads(1)
    file = read_model_file(path)
    model = ((run.get("spec") or {}).get("model") or {})
    info = TaskInfo(name=str(run.get("task") or "custom"), kind="lm", description="a model from the user's own "
                    "script", families=(), vocab_size=len(file.vocab))
    return LoadedRun(run_id=run["id"], path=path, step=file.step, spec=None, info=info, model=file.model,
                     vocab=file.vocab, client_family=str(model.get("family") or "custom"),
                     can_step=can_step(file.model, len(file.vocab)))


def _load(run_id: str, path: Path) -> LoadedRun:
    torch.set_num_threads(1)  # requests are small; the cores belong to the trainers
    # weights_only: anyone who can write the data folder could plant this file; CheckpointError is a ValueError
    state = read_checkpoint(path, map_location="cpu")
    try:
        spec = RunSpec.model_validate(state["spec"])
    except ValidationError as exc:
        raise ValueError(f"The checkpoint's spec no longer validates: {'; '.join(format_errors(exc))}") from None
    info = spec_info(spec)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG alone
        model = build_model(spec)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # weights of another shape, or not a state dict
        raise CheckpointError(f"Checkpoint {path.name} does not fit its own spec: "
                              f"{str(exc).strip().splitlines()[0][:300]}") from None
    model.eval()
    return LoadedRun(run_id=run_id, path=path, step=int(state.get("step", checkpoint_step(path))), spec=spec,
                     info=info, model=model, vocab=_vocab(spec))


def _vocab(spec: RunSpec) -> tuple[str, ...]:
    if spec.data_file:
        from .tasks.user_text import read_user_text

        try:
            return read_user_text(spec.data_file).vocab
        except (ValueError, OSError) as exc:
            raise ValueError(f"This run's words come from its data file {spec.data_file}, which cannot be read "
                             f"now: {exc}") from None
    return tuple(VOCABS[spec.task])


# -- encoding ----------------------------------------------------------------------------

def encode_text(loaded: LoadedRun, text: str | None, allow_empty: bool = False) -> Encoded:
    """Tokens and ids of ``text`` as the run's task reads it; unknown tokens map to the unknown id."""
    text = (text or "").replace("\r\n", "\n")
    if not text.strip() and not allow_empty:
        raise ValueError(f"Type some text first: the model reads {loaded.unit}.")
    most = MAX_WORDS if loaded.word_level else MAX_CHARS
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"The text has {len(text):,} characters; Try it reads at most {most} {loaded.unit}. "
                         "Shorten it.")
    if loaded.word_level:
        tokens = tokenize(text)
        index = {w: i for i, w in enumerate(loaded.vocab)}
        ids = np.array([index.get(t, UNKNOWN_WORD_ID) for t in tokens], dtype=np.int64)
        unknown = [t for t in tokens if t not in index]
    elif loaded.is_client:  # the user's vocabulary has no "unknown" id: characters outside it are refused
        tokens = list(text)
        ids, unknown = encode_exact(text, loaded.vocab)
        refuse_unknown(unknown, len(loaded.vocab))
    else:
        tokens = list(text)
        ids = encode_chars(text, loaded.vocab)
        unknown = [t for t, i in zip(tokens, ids) if i == 0]
    if not tokens and not allow_empty:
        raise ValueError("The text has no words the model could read.")
    if len(tokens) > most:
        raise ValueError(f"The text has {len(tokens):,} {loaded.unit}; Try it reads at most {most}. Shorten it.")
    return Encoded(tokens, ids, list(dict.fromkeys(unknown)))


def decode(loaded: LoadedRun, ids) -> list[str]:
    return [loaded.vocab[int(i)] if 0 <= int(i) < len(loaded.vocab) else "?" for i in ids]


# -- analysis ----------------------------------------------------------------------------

def analyse_run(store: Any, run_id: str, text: str, checkpoint: str | None = None) -> Analysis:
    """:func:`analyse` of the run's model (see :func:`load_run`), cached per run, checkpoint and text."""
    loaded = load_run(store, run_id, checkpoint)
    key = (run_id, loaded.path.name, text)
    with _lock:
        if key in _analyses:
            _analyses.move_to_end(key)
            return _analyses[key]
    result = analyse(loaded, text)
    with _lock:
        _analyses[key] = result
        while len(_analyses) > ANALYSIS_CACHE_SIZE:
            _analyses.popitem(last=False)
    return result


@torch.no_grad()
def analyse(loaded: LoadedRun, text: str, top_k: int = TOP_K) -> Analysis:
    """Hidden states and gates at every token, and the prediction (see the module docstring); an
    encoder-decoder's output and attention, a tagger's tags (:mod:`backend.inference_seq`)."""
    if loaded.info.kind in ("seq2seq", "tag"):
        return _analyse_sequence(loaded, text)
    if loaded.info.kind not in ("lm", "text"):
        raise ValueError(f"Try it reads language models and text classifiers, not {loaded.info.kind!r} runs.")
    enc = encode_text(loaded, text)
    check_context(loaded, len(enc.ids))
    model = loaded.model
    x = torch.as_tensor(enc.ids)[None]
    out = Analysis(run_id=loaded.run_id, step=loaded.step, checkpoint=loaded.path.name, kind=loaded.info.kind,
                   family=loaded.family, tokens=enc.tokens, ids=enc.ids, unknown=enc.unknown)
    if isinstance(model, GraphModel):  # a client run: its graph's recurrent layers, replayed
        logits, states = model.logits_and_states(enc.ids)
        out.states = {key: {name: v.numpy().copy() for name, v in d.items()} for key, d in states.items()}
        out.states_note = None if states else NO_STATES
    elif hasattr(model, "rnn"):
        states = replay(model.rnn, model.embedding(x))
        out.states = {key: {name: v[:, 0].numpy().copy() for name, v in d.items()} for key, d in states.items()}
    if loaded.info.kind == "lm":
        probs = torch.softmax((logits if isinstance(model, GraphModel) else model(x)[0]).float(), dim=-1)
        top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        out.top_probs = top.values.numpy()
        out.top_tokens = [decode(loaded, row) for row in top.indices.tolist()]
        return out
    out.class_names = tuple(loaded.info.class_names) or tuple(str(i) for i in range(loaded.info.n_classes))
    out.probs = _softmax(model(_padded([enc.ids], _min_len(model)))).numpy()[0]
    out.evolution = prefix_probabilities(model, enc.ids, out.states)
    return out


def _analyse_sequence(loaded: LoadedRun, text: str) -> Analysis:
    """A seq2seq run's output and attention, or a tagger's tags; the recurrent encoder's states either way."""
    if loaded.info.kind == "seq2seq":
        result = translate(loaded, text)
        tokens, extra = result.keys, {"translation": result}
    else:
        result = tag_words(loaded, text)
        tokens, extra = result.words, {"tagging": result}
    out = Analysis(run_id=loaded.run_id, step=loaded.step, checkpoint=loaded.path.name, kind=loaded.info.kind,
                   family=loaded.family, tokens=tokens, ids=result.ids, unknown=result.unknown, **extra)
    if hasattr(loaded.model, "rnn"):  # the encoder (seq2seq) or the tagger's layers, replayed cell by cell
        states = replay(loaded.model.rnn, loaded.model.embedding(torch.as_tensor(result.ids)[None]))
        out.states = {key: {name: v[:, 0].numpy().copy() for name, v in d.items()} for key, d in states.items()}
    return out


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1)


def _min_len(model: torch.nn.Module) -> int:
    """A text CNN cannot convolve fewer tokens than its widest filter: pad up to it (padding is masked)."""
    convs = getattr(model, "convs", None)
    return max((c.kernel_size[0] for c in convs), default=1) if convs is not None else 1


def _padded(rows: list[np.ndarray], min_len: int = 1) -> torch.Tensor:
    width = max(min_len, max(len(r) for r in rows))
    batch = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, :len(r)] = torch.as_tensor(r)
    return batch


@torch.no_grad()
def prefix_probabilities(model: torch.nn.Module, ids: np.ndarray,
                         states: dict[tuple[int, str], dict[str, np.ndarray]] | None = None) -> np.ndarray:
    """``(T, classes)``: the class probabilities after reading tokens ``1..t``, for every ``t``.

    A unidirectional recurrent classifier classifies from its last layer's final ``h``, so after ``t``
    tokens that is ``head(h_t)`` of the replay (``states``). Otherwise (a bidirectional one reads each
    prefix backwards too, a text CNN pools over the prefix) the model runs on every prefix, in one batch.
    """
    rnn = getattr(model, "rnn", None)
    if rnn is not None and not rnn.bidirectional and states:
        h = torch.from_numpy(states[(rnn.num_layers - 1, "fwd")]["h"])
        return _softmax(model.head(h)).numpy()
    prefixes = [ids[:t + 1] for t in range(len(ids))]
    return _softmax(model(_padded(prefixes, _min_len(model)))).numpy()


# -- generation --------------------------------------------------------------------------

def _need_lm(loaded: LoadedRun) -> None:
    if loaded.info.kind != "lm":
        raise ValueError("Text generation needs a language-model run (code-lstm, brackets-lstm, recall-lstm); "
                         f"{loaded.spec.task} is not one.")


def generate_text(loaded: LoadedRun, prompt: str, length: int = 200, temperature: float = 0.8,
                  seed: int | None = 0) -> Generation:
    """``length`` characters continuing ``prompt`` (an empty prompt starts on a new line), sampled at
    ``temperature`` (0: always the likeliest character). Teacher forcing off: the model reads its own output."""
    _need_lm(loaded)
    length = int(length or 0)
    if not 1 <= length <= MAX_GENERATE:
        raise ValueError(f"Length must be from 1 to {MAX_GENERATE:,} characters.")
    if temperature is None or not 0 <= float(temperature) <= 10:
        raise ValueError("Temperature must be from 0 (always the likeliest character) to 10.")
    enc = encode_text(loaded, prompt, allow_empty=True)
    if loaded.is_client:  # its graph, carrying the recurrent state when that is exact
        ids = graph_generate(loaded.model, enc.ids.tolist() or start_ids(loaded.vocab), length, float(temperature),
                             seed, step=loaded.can_step)
    elif loaded.family == "transformer":  # a sliding window of its context
        ids = transformer_generate(loaded.model, enc.ids.tolist(), length, float(temperature), seed)
    else:
        ids = generate(loaded.model, enc.ids.tolist(), length, float(temperature), seed)
    return Generation(prompt=prompt or "", text="".join(decode(loaded, ids)), ids=ids,
                      temperature=float(temperature), seed=seed, unknown=enc.unknown, step=loaded.step)


def teacher_force_text(loaded: LoadedRun, text: str) -> TeacherForcing:
    """The model's guess for every next character of ``text`` after reading the true text before it."""
    _need_lm(loaded)
    enc = encode_text(loaded, text)
    if len(enc.ids) < 2:
        raise ValueError("Teacher forcing needs at least two characters: the model guesses each one from those "
                         "before it.")
    if loaded.is_client:
        guess, p_true = graph_teacher_forced(loaded.model, enc.ids.tolist())
    elif loaded.family == "transformer":
        check_context(loaded, len(enc.ids) - 1)
        guess, p_true = transformer_teacher_forced(loaded.model, enc.ids.tolist())
    else:
        guess, p_true = teacher_forced(loaded.model, enc.ids.tolist())
    return TeacherForcing(tokens=enc.tokens, guesses=decode(loaded, guess), p_true=p_true, unknown=enc.unknown,
                          step=loaded.step)


def clear_cache() -> None:
    """Forget loaded models and analyses (tests; a dashboard never needs to)."""
    with _lock:
        _models.clear()
        _analyses.clear()
