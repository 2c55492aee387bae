"""The sequence tasks (issue 16): the generators' promises, the spec's new fields, sizes and metric helpers."""
from __future__ import annotations

import datetime as dt

import pytest
import torch

from backend.models import build_model
from backend.models.seq2seq import teacher_forcing_at
from backend.spec import RunSpec, count_params, parse_spec
from backend.tasks import TASKS
from backend.tasks.dates import (DATE_MAX_IN, DATE_OUT_LEN, DATE_VOCAB, EOS, FORMATS, decode_ids, encode_dates,
                                 generate_dates, probe_dates, render)
from backend.tasks.tagging import (AMBIGUOUS_NOMINALS, DEMONSTRATIVES, IGNORE, TAG_MAX_LEN, encode_sentences,
                                   generate_sentences)
from backend.training.seq_metrics import alignment_hits, attention_entropy, length_thirds


# -- dates ------------------------------------------------------------------------------------------
def test_dates_are_deterministic_valid_and_varied():
    a, b = generate_dates(500, seed=5), generate_dates(500, seed=5)
    assert a == b and a != generate_dates(500, seed=6)
    for ex in a:
        assert dt.date.fromisoformat(ex.target).isoformat() == ex.target
        assert all(c in DATE_VOCAB for c in ex.text) and len(ex.text) <= DATE_MAX_IN
    lengths = sorted(len(ex.text) for ex in a)
    assert lengths[0] <= 8 and lengths[-1] >= 30  # short numeric forms and long written-out ones
    assert {ex.format for ex in a} == set(FORMATS)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_spans_hold_the_field_that_determines_each_output_character(fmt):
    day = dt.date(1977, 9, 28)
    ex = render(day, fmt)
    year, month, day_span = (ex.text[slice(*ex.spans[i])] for i in (0, 5, 8))
    assert year in ("1977", "77") and day_span.rstrip("thsndr") == "28"
    assert month in ("9", "09", "Sep", "September")
    assert ex.spans[4] == ex.spans[7] == ex.spans[10] == (-1, -1)  # '-' and the end token: no input decides
    assert all(ex.spans[i] == ex.spans[0] for i in range(4))


def test_output_order_differs_from_input_order():
    """The year is written last but output first in most formats: alignment is not diagonal."""
    later = [ex for ex in generate_dates(300, seed=1) if ex.spans[0][0] > ex.spans[8][0]]
    assert len(later) > 200


def test_encoding_round_trips():
    exs = probe_dates()
    arrays = encode_dates(exs)
    assert arrays["x"].shape == (8, DATE_MAX_IN) and arrays["y"].shape == (8, DATE_OUT_LEN)
    assert (arrays["y"][:, -1] == EOS).all()
    assert [decode_ids(row) for row in arrays["y"].tolist()] == [ex.target for ex in exs]
    assert arrays["lengths"].tolist() == [len(ex.text) for ex in exs]
    assert min(len(ex.text) for ex in exs) <= 6 and max(len(ex.text) for ex in exs) >= 35  # short to long


# -- tagging ----------------------------------------------------------------------------------------
def test_ambiguous_words_are_decided_by_the_next_word_only():
    sentences = generate_sentences(2000, seed=3)
    share = sum(sum(s.ambiguous) for s in sentences) / sum(len(s.words) for s in sentences)
    assert 0.2 <= share <= 0.3
    nominal = {"ADJ", "NOUN"}
    seen = {"ADJ": 0, "NOUN": 0, "DET": 0, "PRON": 0}
    for s in sentences:
        for i, (w, t) in enumerate(zip(s.words, s.tags)):
            if w in AMBIGUOUS_NOMINALS:
                assert (t == "ADJ") == (s.tags[i + 1] in nominal), (s.words, i)
                seen[t] += 1
            elif w in DEMONSTRATIVES:
                assert (t == "PRON") == (s.tags[i + 1] == "VERB"), (s.words, i)
                seen[t] += 1
    assert min(seen.values()) > 150  # both readings of both kinds, often
    assert 0.4 < seen["ADJ"] / (seen["ADJ"] + seen["NOUN"]) < 0.6  # guessing from the left gets ~half


def test_tag_encoding_marks_padding_and_ambiguity():
    s = generate_sentences(50, seed=0)
    arrays = encode_sentences(s)
    assert arrays["x"].shape == (50, TAG_MAX_LEN)
    real = arrays["x"] != 0
    assert ((arrays["y"] == IGNORE) == ~real).all() and not arrays["ambiguous"][~real].any()
    assert arrays["ambiguous"].sum() == sum(sum(x.ambiguous) for x in s)


# -- spec -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, expected", [
    ({"task": "dates-seq2seq", "model": {"attention": "dot"}},
     "model.attention: Input should be 'additive', 'multiplicative' or 'none'"),
    ({"task": "dates-seq2seq", "teacher_forcing": 1.5}, "teacher_forcing: Input should be less than or equal to 1"),
    ({"task": "dates-seq2seq", "teacher_forcing": -0.1}, "teacher_forcing: Input should be greater than or equal"),
    ({"task": "dates-seq2seq", "teacher_forcing": float("nan")}, "teacher_forcing: Input should be a finite number"),
    ({"task": "dates-seq2seq", "teacher_forcing_schedule": "cosine"},
     "teacher_forcing_schedule: Input should be 'constant' or 'linear'"),
    ({"task": "dates-seq2seq", "teacher_forcing": 0.5, "teacher_forcing_schedule": "linear",
      "teacher_forcing_floor": 0.8}, "teacher_forcing_floor: Value error, a linear schedule decays"),
    ({"task": "dates-seq2seq", "teacher_forcing_floor": "lots"},
     "teacher_forcing_floor: Input should be a valid number"),
    ({"task": "tags-bidir", "model": {"family": "cnn"}}, "does not fit task 'tags-bidir'"),
    ({"task": "dates-seq2seq", "model": {"family": "mlp"}}, "does not fit task 'dates-seq2seq'"),
])
def test_bad_sequence_fields_name_the_field(data, expected):
    spec, errors = parse_spec(data)
    assert spec is None
    assert any(expected.replace("Value error, ", "") in e for e in errors), errors


def test_other_kinds_ignore_the_sequence_fields():
    spec, errors = parse_spec({"task": "digits-cnn", "teacher_forcing": 0.3, "model": {"attention": "none"}})
    assert errors == [] and spec.teacher_forcing == 0.3


def test_teacher_forcing_schedule():
    const = RunSpec.for_task("dates-seq2seq", teacher_forcing=0.7)
    assert teacher_forcing_at(const, 1, 100) == teacher_forcing_at(const, 100, 100) == 0.7
    lin = RunSpec.for_task("dates-seq2seq", teacher_forcing_schedule="linear", teacher_forcing_floor=0.25)
    ratios = [teacher_forcing_at(lin, s, 101) for s in (1, 51, 101)]
    assert ratios == [1.0, 0.625, 0.25]


@pytest.mark.parametrize("model", [
    {"family": "gru", "attention": "additive", "bidirectional": True, "layers": 2},
    {"family": "lstm", "attention": "multiplicative", "bidirectional": False},
    {"family": "rnn", "attention": "none", "bidirectional": True, "activation": "relu"},
])
@pytest.mark.parametrize("task", ["dates-seq2seq", "tags-bidir"])
def test_parameter_count_matches_torch(task, model):
    spec = RunSpec.for_task(task, model={**model, "hidden_size": 11, "embedding_dim": 5})
    assert count_params(spec)[0] == sum(p.numel() for p in build_model(spec).parameters())


def test_model_shapes_and_greedy_decoding():
    torch.manual_seed(0)
    x = torch.as_tensor(encode_dates(probe_dates())["x"])
    y = torch.as_tensor(encode_dates(probe_dates())["y"])
    for attention in ("additive", "multiplicative", "none"):
        model = build_model(RunSpec.for_task("dates-seq2seq", model={"attention": attention})).eval()
        assert model(x, y, teacher_forcing=0.5).shape == (8, DATE_OUT_LEN, len(DATE_VOCAB))
        ids, attn = model.greedy(x, steps=DATE_OUT_LEN)
        assert ids.shape == (8, DATE_OUT_LEN)
        if attention == "none":
            assert attn is None
            continue
        lengths = (x != 0).sum(1)
        assert attn.shape == (8, DATE_OUT_LEN, int(lengths.max()))
        assert torch.allclose(attn.sum(-1), torch.ones(8, DATE_OUT_LEN), atol=1e-5)
        assert all(float(attn[i, :, lengths[i]:].abs().sum()) == 0 for i in range(8))  # padding gets none
    tagger = build_model(RunSpec.for_task("tags-bidir")).eval()
    words = torch.as_tensor(encode_sentences(generate_sentences(4, seed=0))["x"])
    assert tagger(words).shape == (4, TAG_MAX_LEN, TASKS["tags-bidir"].n_classes)


# -- metric helpers ---------------------------------------------------------------------------------
def test_alignment_hits_count_argmax_inside_the_span():
    attn = torch.tensor([[[0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.3, 0.3, 0.4]]])
    spans = torch.tensor([[[1, 3], [1, 3], [-1, -1]]])
    assert alignment_hits(attn, spans) == (1, 2)


def test_attention_entropy_is_normalised():
    uniform = torch.full((1, 2, 4), 0.25)
    peaked = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0]]])
    assert attention_entropy(uniform, torch.tensor([4]))[0] / 2 == pytest.approx(1.0)
    assert attention_entropy(peaked, torch.tensor([4]))[0] == pytest.approx(0.0, abs=1e-6)


def test_length_thirds_split_the_validation_dates():
    lengths = torch.as_tensor(encode_dates(generate_dates(2000, seed=202))["lengths"])
    thirds = length_thirds(lengths)
    sizes = [int(m.sum()) for m in thirds.values()]
    assert sum(sizes) == 2000 and min(sizes) > 400
    assert int(lengths[thirds["short"]].max()) < int(lengths[thirds["long"]].min())
