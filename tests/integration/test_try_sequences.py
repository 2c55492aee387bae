"""Try it on the sequence tasks and the transformer language model (backend.inference, backend.inference_seq):
a dates encoder-decoder writes the ISO date and its attention matrix, the tagger tags each word with its
probability and flags the ambiguous ones, a transformer analyses text up to its context and says clearly
when a text is longer, and generates past it (sliding window).

Runs (shared with the browser tests through tests/seq_runs.py): dates-seq2seq 200 steps (~15 s on one
thread when the machine is quiet), tags-bidir 300 steps (~5 s), a 2-layer transformer on brackets-lstm for
30 steps (~3 s).
"""
from __future__ import annotations

import numpy as np
import pytest

from backend.inference import analyse_run, clear_cache, generate_text, load_run, teacher_force_text
from backend.inference_runs import example_text, run_label, text_run_problem
from backend.inference_seq import tag_words, translate
from backend.store import RunStore
from tests.seq_runs import trained_run

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _loaded(task: str, steps: int, **kw):
    data_dir, run_id = trained_run(task, steps, **kw)
    store = RunStore(data_dir)
    return store, run_id, load_run(store, run_id)


def test_dates_model_writes_iso_and_its_attention_matrix():
    store, run_id, loaded = _loaded("dates-seq2seq", 200)
    assert text_run_problem(store.get_run(run_id)) is None and "encoder-decoder" in run_label(store.get_run(run_id))
    t = translate(loaded, "  Tuesday 3rd of May 2021 ")
    assert t.output == "2021-05-03"
    assert t.queries[-1] == "</s>" and t.weights.shape == (len(t.queries), len("Tuesday 3rd of May 2021"))
    np.testing.assert_allclose(t.weights.sum(1), 1.0, atol=1e-4)
    year = [int(np.argmax(row)) for row in t.weights[:4]]  # the year's digits look at "2021" (characters 19-22)
    assert sum(19 <= y < 23 for y in year) >= 3, year
    assert translate(loaded, "05/03/21").output == "2021-05-03"
    result = analyse_run(store, run_id, example_text(store.get_run(run_id)))
    assert result.kind == "seq2seq" and result.translation.output == "2021-05-03"
    assert {(0, "fwd"), (0, "bwd")} <= set(result.states)  # the bidirectional encoder, replayed
    with pytest.raises(ValueError, match="at most 40"):
        translate(loaded, "Wednesday, the 28th of September, 1977 and more")
    assert translate(loaded, "3 May 21 ü").unknown == ["ü"]


def test_tagger_gives_each_word_a_tag_probability_and_ambiguity_flag():
    store, run_id, loaded = _loaded("tags-bidir", 300)
    t = tag_words(loaded, "The cold wind spreads.")
    assert t.words == ["the", "cold", "wind", "spreads", "."]
    assert t.tags == ["DET", "ADJ", "NOUN", "VERB", "PUNCT"]
    assert t.ambiguous == [False, True, False, False, False]
    assert ((t.probs > 0) & (t.probs <= 1)).all() and t.probs[1] > 0.5
    assert tag_words(loaded, "the cold spreads .").tags[1] == "NOUN"  # the next word decides
    assert tag_words(loaded, "that sleeps .").tags[0] == "PRON"
    assert tag_words(loaded, "the zebra sleeps .").unknown == ["zebra"]
    result = analyse_run(store, run_id, "that dog sleeps .")
    assert result.kind == "tag" and result.tagging.tags[0] == "DET" and result.states
    with pytest.raises(ValueError, match="Type a sentence"):
        tag_words(loaded, "  ,,, ")


def test_transformer_language_model_and_its_context_limit():
    store, run_id, loaded = _loaded("brackets-lstm", 30, seq_len=32,
                                    model={"family": "transformer", "hidden_size": 32, "heads": 2, "layers": 2})
    assert text_run_problem(store.get_run(run_id)) is None
    result = analyse_run(store, run_id, "a(b(c)d)" * 4)  # 32 characters: the whole context
    assert result.kind == "lm" and len(result.top_tokens) == 32 and not result.states
    with pytest.raises(ValueError, match="reads at most 32 characters at once .* your text has 33"):
        analyse_run(store, run_id, "a(b(c)d)" * 4 + "(")
    gen = generate_text(loaded, "a(b(", length=60, temperature=0.0)  # past the context: the window slides
    assert len(gen.text) == 60
    assert len(teacher_force_text(loaded, "a(b(c)d)" * 4 + "(").guesses) == 32
    with pytest.raises(ValueError, match="at most 32"):
        teacher_force_text(loaded, "a(b(c)d)" * 5)
