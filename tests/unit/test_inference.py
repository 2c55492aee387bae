"""Try it's backend (backend/inference.py) on tiny untrained models saved as checkpoints in a temporary store.

The properties hold for any weights: hidden states equal the replay (and the fused module's output),
the prediction after token t equals running the model on the first t tokens, the top-k guesses are the
model's own softmax, and every refusal says why.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from backend import inference
from backend.inference import (MAX_CHARS, MAX_WORDS, analyse, analyse_run, generate_text, load_run, teacher_force_text)
from backend.inference_runs import example_text, latest_checkpoint_path, text_run_problem, tryable_runs
from backend.models.build import build_model
from backend.models.generate import teacher_forced
from backend.probes.replay import replay
from backend.spec import RunSpec
from backend.tasks.registry import VOCABS
from backend.tasks.sentiment.core import SENTIMENT_MAX_LEN, encode, generate_sentiment, tokenize


@pytest.fixture(autouse=True)
def _fresh_cache():
    inference.clear_cache()
    yield
    inference.clear_cache()


def save_run(store, task: str, step: int = 40, name: str | None = None, seed: int = 0, **overrides):
    """A run row and one checkpoint of a freshly initialised model: (run id, model, spec)."""
    spec = RunSpec.for_task(task, **overrides)
    run_id = store.create_run(name or task, task, spec.model_dump(), status="running")
    torch.manual_seed(seed)
    model = build_model(spec).eval()
    write_checkpoint(store, run_id, model, spec, step)
    return run_id, model, spec


def write_checkpoint(store, run_id, model, spec, step):
    folder = store.run_dir(run_id) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step, "model": model.state_dict(), "spec": spec.model_dump()}, folder / f"step-{step:09d}.pt")


SMALL_RNN = {"hidden_size": 8, "embedding_dim": 6}


def test_language_model_states_equal_the_replay_and_guesses_its_softmax(store):
    run_id, model, _ = save_run(store, "brackets-lstm", model={**SMALL_RNN, "layers": 2})
    text = "a(b(c)d)("
    result = analyse(load_run(store, run_id), text)
    assert result.tokens == list(text) and result.kind == "lm" and result.step == 40
    assert set(result.states) == {(0, "fwd"), (1, "fwd")}
    assert set(result.states[(0, "fwd")]) == {"h", "c", "i", "f", "g", "o"}
    x = torch.as_tensor(result.ids)[None]
    with torch.no_grad():
        ref = replay(model.rnn, model.embedding(x))
        fused, _ = model.rnn(model.embedding(x))
        probs = torch.softmax(model(x)[0], -1).numpy()
    for key, states in ref.items():
        for name, arr in states.items():
            np.testing.assert_allclose(result.states[key][name], arr[:, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.states[(1, "fwd")]["h"], fused[0].numpy(), atol=1e-5)
    assert result.top_probs.shape == (len(text), 5)
    assert np.all(np.diff(result.top_probs, axis=1) <= 0)  # likeliest first
    vocab = VOCABS["brackets-lstm"]
    for t in (0, 4, len(text) - 1):
        order = np.argsort(-probs[t])[:5]
        assert result.top_tokens[t] == [vocab[i] for i in order]
        np.testing.assert_allclose(result.top_probs[t], probs[t, order], rtol=1e-5)
    assert result.predicted == result.top_tokens[-1][0]


def _probs_of_each_prefix(model, ids, pad_to=None):
    out = []
    with torch.no_grad():
        for t in range(1, len(ids) + 1):
            row = torch.zeros(1, pad_to or t, dtype=torch.long)
            row[0, :t] = torch.as_tensor(ids[:t])
            out.append(torch.softmax(model(row), -1)[0].numpy())
    return np.array(out)


@pytest.mark.parametrize("model_spec", [{"family": "gru", **SMALL_RNN, "layers": 2},
                                        {"family": "lstm", **SMALL_RNN, "bidirectional": True},
                                        {"family": "rnn", **SMALL_RNN}])
def test_classifier_evolution_equals_the_model_on_each_prefix(store, model_spec):
    run_id, model, _ = save_run(store, "sentiment-lstm", model=model_spec)
    text = "The plot was not bad, but far too long."
    result = analyse(load_run(store, run_id), text)
    assert result.tokens == tokenize(text) and result.class_names == ("negative", "positive")
    want = _probs_of_each_prefix(model, result.ids)
    np.testing.assert_allclose(result.evolution, want, atol=1e-5)
    np.testing.assert_allclose(result.probs, want[-1], atol=1e-5)
    assert result.predicted == result.class_names[int(np.argmax(want[-1]))]
    dirs = ("fwd", "bwd") if model_spec.get("bidirectional") else ("fwd",)
    assert set(result.states) == {(layer, d) for layer in range(model_spec.get("layers", 1)) for d in dirs}
    assert result.states[(0, "fwd")]["h"].shape == (len(result.tokens), 8)


def test_text_cnn_prediction_matches_training_padding_even_for_one_word(store):
    run_id, model, _ = save_run(store, "sentiment-cnn", model={"channels": [6], "kernel_sizes": [2, 3, 4],
                                                                "embedding_dim": 8})
    loaded = load_run(store, run_id)
    for text in ("awful", "I loved this phone, although the battery was weak."):
        result = analyse(loaded, text)
        # as in training: encoded and padded to SENTIMENT_MAX_LEN; the padding is masked out
        ids, _ = encode([tokenize(text)], VOCABS["sentiment-cnn"], SENTIMENT_MAX_LEN)
        np.testing.assert_array_equal(result.ids, ids[0, :len(result.tokens)])
        want = _probs_of_each_prefix(model, result.ids, pad_to=SENTIMENT_MAX_LEN)
        np.testing.assert_allclose(result.evolution, want, atol=1e-5)
        np.testing.assert_allclose(result.probs, want[-1], atol=1e-5)
        assert result.states == {}


def test_unknown_words_and_characters_are_reported_and_read_as_unknown(store):
    run_id, _, _ = save_run(store, "sentiment-lstm", model=SMALL_RNN)
    result = analyse(load_run(store, run_id), "The zorblax was great, zorblax!")
    assert result.unknown == ["zorblax"]
    assert [i for t, i in zip(result.tokens, result.ids) if t == "zorblax"] == [1, 1]
    lm_id, _, _ = save_run(store, "code-lstm", model=SMALL_RNN, name="code")
    result = analyse(load_run(store, lm_id), "x = 'café' ± 1")
    assert result.unknown == ["é", "±"]
    assert result.ids[result.tokens.index("é")] == 0 and len(result.tokens) == 14


def test_refusals_say_why(store):
    run_id, _, _ = save_run(store, "brackets-lstm", model=SMALL_RNN)
    loaded = load_run(store, run_id)
    with pytest.raises(ValueError, match="Type some text"):
        analyse(loaded, "  \n ")
    analyse(loaded, "(" * MAX_CHARS)
    with pytest.raises(ValueError, match=f"has {MAX_CHARS + 1} characters; Try it reads at most {MAX_CHARS}"):
        analyse(loaded, "(" * (MAX_CHARS + 1))
    with pytest.raises(ValueError, match="no run with id"):
        load_run(store, "nope")
    # no checkpoint yet: when the first one comes
    spec = RunSpec.for_task("code-lstm", checkpoint_every=250, model=SMALL_RNN)
    waiting = store.create_run("waiting", "code-lstm", spec.model_dump(), status="running")
    with pytest.raises(ValueError, match="no checkpoint yet .*every 250 steps \\(the first at step 250\\)"):
        load_run(store, waiting)
    # image and word2vec runs
    digits = RunSpec.for_task("digits-cnn")
    img = store.create_run("digits", "digits-cnn", digits.model_dump(), status="completed")
    with pytest.raises(ValueError, match="reads images.*Try it takes text runs"):
        load_run(store, img)
    w2v = store.create_run("w2v", "prose-word2vec", RunSpec.for_task("prose-word2vec").model_dump())
    with pytest.raises(ValueError, match="word vectors"):
        load_run(store, w2v)
    # generation is for language models; teacher forcing needs two characters
    cls_id, _, _ = save_run(store, "sentiment-lstm", model=SMALL_RNN, name="cls")
    with pytest.raises(ValueError, match="language-model run"):
        generate_text(load_run(store, cls_id), "good", 10)
    with pytest.raises(ValueError, match="at least two characters"):
        teacher_force_text(loaded, "a")
    with pytest.raises(ValueError, match="Length must be"):
        generate_text(loaded, "a(", 0)
    words = load_run(store, cls_id)
    with pytest.raises(ValueError, match=f"has {MAX_WORDS + 1} words; Try it reads at most {MAX_WORDS}"):
        analyse(words, "good " * (MAX_WORDS + 1))
    # the run list offers only text runs with a checkpoint
    offered = [r["id"] for r in tryable_runs(store.list_runs(), store.run_dir)]
    assert set(offered) == {run_id, cls_id}
    assert text_run_problem(store.get_run(waiting)) is None


def test_models_are_cached_per_checkpoint_and_the_newest_is_used(store):
    run_id, model, spec = save_run(store, "brackets-lstm", model=SMALL_RNN)
    first = load_run(store, run_id)
    assert load_run(store, run_id) is first
    assert analyse_run(store, run_id, "a(b)") is analyse_run(store, run_id, "a(b)")
    torch.manual_seed(5)
    write_checkpoint(store, run_id, build_model(spec), spec, 80)
    newer = load_run(store, run_id)
    assert newer is not first and newer.step == 80 and newer.path == latest_checkpoint_path(store.run_dir(run_id))
    assert load_run(store, run_id, checkpoint=first.path.name) is first  # asked for by name while it exists
    assert analyse_run(store, run_id, "a(b)").step == 80


def test_generation_is_seeded_and_teacher_forcing_matches_the_model(store):
    run_id, model, _ = save_run(store, "code-lstm", model=SMALL_RNN)
    loaded = load_run(store, run_id)
    a = generate_text(loaded, "def f(x):", 120, temperature=1.0, seed=1)
    assert len(a.ids) == 120 and len(a.text) == 120 and a.text == generate_text(loaded, "def f(x):", 120, 1.0, 1).text
    assert generate_text(loaded, "def f(x):", 120, 1.0, seed=2).text != a.text
    greedy = {generate_text(loaded, "def f(x):", 60, 0.0, seed=s).text for s in (1, 2)}
    assert len(greedy) == 1  # temperature 0: the likeliest character, whatever the seed
    assert len(generate_text(loaded, "", 10, 0.5).text) == 10  # an empty prompt starts on a new line
    tf = teacher_force_text(loaded, "def f(x):\n    return x\n")
    guess, p_true = teacher_forced(model, tf_ids := analyse(loaded, "def f(x):\n    return x\n").ids.tolist())
    assert tf.guesses == [VOCABS["code-lstm"][i] for i in guess] and len(tf.guesses) == len(tf_ids) - 1
    np.testing.assert_allclose(tf.p_true, p_true, rtol=1e-6)
    assert tf.accuracy == pytest.approx(np.mean(guess == np.array(tf_ids[1:])))


def test_a_run_on_the_users_csv_reads_its_own_vocabulary(store, tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for ex in generate_sentiment(60, seed=3):
            writer.writerow([ex.text, "pos" if ex.label else "neg"])
    run_id, model, spec = save_run(store, "sentiment-lstm", model=SMALL_RNN, data_file=str(path))
    run = store.get_run(run_id)
    first = example_text(run)
    result = analyse(load_run(store, run_id), first)
    assert result.class_names == ("neg", "pos") and result.unknown == []
    assert result.evolution.shape == (len(tokenize(first)), 2)
    path.unlink()
    inference.clear_cache()
    with pytest.raises(ValueError, match="no such file|data file"):
        load_run(store, run_id)
