"""Annotation tracks, the nested-bracket generator and the held-out probe corpora."""
from __future__ import annotations

import io
import subprocess
import sys
import tokenize

import numpy as np
import pytest

from backend.tasks import get_task
from backend.tasks.annotations import (BRACKET_MAX_DEPTH, BRACKET_SEEDS, CODE_TRACKS, bracket_probabilities,
                                       bracket_tracks, code_tracks, generate_brackets, python_spans)
from backend.tasks.probe import MIN_PROBE_TOKENS, probe_corpus
from backend.tasks.registry import BRACKET_CHARS, BRACKET_VOCAB, CODE_VOCAB, TASKS
from backend.tasks.text import encode_chars, is_code_val_file, stdlib_sources

LM_TASKS = sorted(name for name, info in TASKS.items() if info.kind == "lm")


def track(text: str, name: str) -> list[float]:
    return code_tracks(text)[name].tolist()


def marked(text: str, name: str) -> str:
    """The characters of ``text`` where track ``name`` is 1."""
    return "".join(ch for ch, v in zip(text, code_tracks(text)[name]) if v == 1.0)


# -- code tracks ------------------------------------------------------------------

def test_code_tracks_keys_shapes_and_types():
    text = "def f(x):\n    return x\n"
    tracks = code_tracks(text)
    assert tuple(tracks) == CODE_TRACKS
    for values in tracks.values():
        assert values.dtype == np.float32 and values.shape == (len(text),)
    assert all(len(v) == 0 for v in code_tracks("").values())


def test_depth_counts_after_reading_each_character():
    assert track("a(b[c{d}e]f)g", "bracket depth") == [0, 1, 1, 2, 2, 3, 3, 2, 2, 1, 1, 0, 0]
    assert track("f(x)(y)", "bracket depth") == [0, 1, 1, 0, 1, 1, 0]


def test_depth_never_goes_below_zero():
    assert track(")))(", "bracket depth") == [0, 0, 0, 1]
    assert track("(])(", "bracket depth") == [1, 0, 0, 1]
    assert min(track("x)]}) + (", "bracket depth")) == 0


def test_brackets_in_strings_and_comments_are_ignored():
    text = 'x = ("(" + f(\')\')  # ((\n"]")'
    depth = track(text, "bracket depth")
    assert depth[text.index("(")] == 1
    assert depth[text.index('"(')+1] == 1  # the "(" inside the string
    assert depth[text.index("f(") + 1] == 2
    assert depth[text.index("# ((") + 3] == 1  # a comment does not open anything
    assert depth[-1] == 0
    assert marked(text, "in comment") == "# (("


def test_string_spans_include_prefix_and_quotes():
    text = "a = rb'x(' + f\"{y}\" + u'z' + 'q'"
    assert marked(text, "in string") == "rb'x('f\"{y}\"u'z''q'"
    # a letter that ends a name is not a prefix
    text = "bar'x'"
    assert marked(text, "in string") == "'x'"


def test_triple_quoted_strings_span_lines():
    text = 's = """a (\n# not a comment\n  b"""\nt = (1,\n     2)\n'
    in_string = track(text, "in string")
    start, end = text.index('"""'), text.index('"""', 8) + 3
    assert in_string == [1.0 if start <= i < end else 0.0 for i in range(len(text))]
    assert marked(text, "in comment") == ""
    depth = track(text, "bracket depth")
    assert max(depth[:end]) == 0 and depth[text.index("(1")] == 1 and depth[-1] == 0
    assert marked("x = '''it's'''(", "in string") == "'''it's'''"


def test_escaped_quotes_do_not_end_a_string():
    text = r'"a\"(" + (' + "\n"
    assert marked(text, "in string") == r'"a\"("'
    assert track(text, "bracket depth")[-2] == 1
    text = r"'it\'s' + '\\' + (" + "\n"  # an escaped backslash, then the real closing quote
    assert marked(text, "in string") == r"'it\'s''\\'"
    assert track(text, "bracket depth")[-2] == 1
    text = '"line \\\ncontinued" + ('  # a backslash-newline inside a string
    assert marked(text, "in string") == '"line \\\ncontinued"'


def test_comments_run_to_the_end_of_their_line_without_the_newline():
    text = "x = 1  # one (two)\ny = '#' # z\n#\n"
    comment = track(text, "in comment")
    assert marked(text, "in comment") == "# one (two)# z#"
    assert comment[text.index("\n")] == 0.0
    assert marked(text, "in string") == "'#'"
    assert max(track(text, "bracket depth")) == 0


def test_truncated_files_still_annotate():
    text = 'x = f(1, """abc (\n  def'
    assert marked(text, "in string") == '"""abc (\n  def'
    assert track(text, "bracket depth")[-1] == 1
    text = "s = 'abc (\nt = ("  # an unterminated one-line string stops at the newline
    assert marked(text, "in string") == "'abc ("
    assert track(text, "bracket depth")[-1] == 1
    assert marked('x = "ab\\', "in string") == '"ab\\'


def test_indent_counts_tabs_as_four_columns():
    text = "if x:\n\tif y:\n\t\tz\n  w\n    \tv\n"
    indent = track(text, "indent")
    lines = text.split("\n")[:-1]
    expected = [0.0, 1.0, 2.0, 0.5, 2.0]
    per_char = [e for line, e in zip(lines, expected) for _ in range(len(line) + 1)]
    assert indent == per_char


def test_column_resets_after_each_newline():
    assert track("ab\ncd\n\ne", "column") == [0, 1, 2, 0, 1, 2, 0, 0]
    assert track("\tx", "column") == [0, 1]


def test_scanner_agrees_with_tokenize_on_standard_library_files():
    files = stdlib_sources(600_000)
    assert len(files) >= 5
    for name, text in files:
        lines = text.splitlines(keepends=True)
        offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])])
        strings, comments = [], []
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                span = (offsets[tok.start[0] - 1] + tok.start[1], offsets[tok.end[0] - 1] + tok.end[1])
                (strings if tok.type == tokenize.STRING else comments).append(span)
        assert python_spans(text) == (strings, comments), name


# -- brackets -----------------------------------------------------------------------

def test_bracket_tracks_depth():
    tracks = bracket_tracks("a(b(c)d)\n)(")
    assert list(tracks) == ["depth"] and tracks["depth"].dtype == np.float32
    assert tracks["depth"].tolist() == [0, 1, 1, 2, 2, 1, 1, 0, 0, 0, 1]


@pytest.fixture(scope="module")
def bracket_text() -> str:
    return generate_brackets(200_000, seed=7)


def test_generated_text_uses_the_task_vocabulary_only(bracket_text):
    assert len(bracket_text) == 200_000
    assert set(bracket_text) == set(BRACKET_CHARS)
    assert BRACKET_VOCAB[0] == CODE_VOCAB[0] and BRACKET_VOCAB[1:] == list(BRACKET_CHARS)
    assert get_task("brackets-lstm").vocab_size == len(BRACKET_VOCAB)
    assert (encode_chars(bracket_text, BRACKET_VOCAB) > 0).all()
    assert encode_chars("(x)", BRACKET_VOCAB).tolist() == [2, 0, 3]


def test_generated_depth_stays_between_zero_and_max(bracket_text):
    step = np.array([{"(": 1, ")": -1}.get(ch, 0) for ch in bracket_text])
    raw = np.cumsum(step)  # no floor: the generator itself must never close at depth 0
    assert raw.min() == 0 and raw.max() == BRACKET_MAX_DEPTH
    np.testing.assert_array_equal(bracket_tracks(bracket_text)["depth"], raw)
    # at the maximum depth the next character is always a closing bracket
    at_max = np.flatnonzero(raw[:-1] == BRACKET_MAX_DEPTH)
    assert len(at_max) > 100 and all(bracket_text[i + 1] == ")" for i in at_max)


def test_a_newline_follows_exactly_the_returns_to_depth_zero(bracket_text):
    depth = bracket_tracks(bracket_text)["depth"]
    chars = np.array(list(bracket_text))
    closes_to_zero = (chars[:-1] == ")") & (depth[:-1] == 0)
    np.testing.assert_array_equal(chars[1:] == "\n", closes_to_zero)


def test_closing_gets_likelier_with_depth(bracket_text):
    _, p_close = bracket_probabilities()
    depth = bracket_tracks(bracket_text)["depth"].astype(int)
    chars = np.array(list(bracket_text))
    after_letter_or_open = np.isin(chars[:-1], list("(abcd"))  # no forced newline next
    for d in range(1, BRACKET_MAX_DEPTH):
        sel = after_letter_or_open & (depth[:-1] == d)
        if sel.sum() > 2000:
            assert abs((chars[1:][sel] == ")").mean() - p_close[d]) < 0.04, d


def test_generator_is_deterministic_per_seed():
    a = generate_brackets(5000, seed=3)
    assert a == generate_brackets(5000, seed=3)
    assert a != generate_brackets(5000, seed=4)
    assert generate_brackets(100, seed=3) == a[:100]
    assert generate_brackets(0, seed=3) == ""


# -- probe corpora ------------------------------------------------------------------

@pytest.fixture(scope="module", params=LM_TASKS)
def corpus(request):
    return request.param, probe_corpus(get_task(request.param))


def test_probe_corpus_length_and_aligned_tracks(corpus):
    name, c = corpus
    info = get_task(name)
    assert info.probe_tokens >= MIN_PROBE_TOKENS
    assert c.ids.dtype == np.int64 and c.ids.shape == (info.probe_tokens,) == (c.n_tokens,)
    assert len(c.vocab) == info.vocab_size and c.ids.max() < len(c.vocab)
    assert c.tracks and all(v.dtype == np.float32 and v.shape == c.ids.shape for v in c.tracks.values())
    assert all(np.isfinite(v).all() and v.std() > 0 for v in c.tracks.values())
    assert c.source and "\n" not in c.source
    assert len(c.text) == c.n_tokens


def test_probe_corpus_is_the_same_every_call(corpus):
    name, c = corpus
    again = probe_corpus(get_task(name))
    np.testing.assert_array_equal(c.ids, again.ids)
    assert c.source == again.source and c.tracks.keys() == again.tracks.keys()
    for key in c.tracks:
        np.testing.assert_array_equal(c.tracks[key], again.tracks[key])
    short = probe_corpus(get_task(name), 1000)
    np.testing.assert_array_equal(short.ids, c.ids[:1000])


def test_code_corpus_is_whole_validation_files():
    c = probe_corpus(get_task("code-lstm"))
    files = stdlib_sources()
    val = [(n, t) for i, (n, t) in enumerate(files) if is_code_val_file(i)]
    train_names = {n for i, (n, _) in enumerate(files) if not is_code_val_file(i)}
    np.testing.assert_array_equal(c.ids, encode_chars("".join(t for _, t in val)[:c.n_tokens]))
    used, total = [], 0
    for n, t in val:
        if total >= c.n_tokens:
            break
        used.append(n)
        total += len(t)
    assert not set(used) & train_names
    assert all(n in c.source for n in used[:2])
    assert list(c.tracks) == list(CODE_TRACKS)
    first = val[0][1]  # tracks come from whole files: the first file's are its own
    for key, values in code_tracks(first).items():
        np.testing.assert_array_equal(c.tracks[key][:len(first)], values[:c.n_tokens])


def test_bracket_corpus_is_held_out():
    c = probe_corpus(get_task("brackets-lstm"))
    assert len(set(BRACKET_SEEDS.values())) == 3
    train = generate_brackets(c.n_tokens, BRACKET_SEEDS["train"])
    val = generate_brackets(c.n_tokens, BRACKET_SEEDS["val"])
    assert c.text != train and c.text != val and c.text[:200] not in train
    np.testing.assert_array_equal(c.tracks["depth"], bracket_tracks(c.text)["depth"])
    assert c.tracks["depth"].max() == BRACKET_MAX_DEPTH


def test_image_tasks_have_no_corpus():
    with pytest.raises(ValueError, match="digits-cnn has no token corpus; hidden-state probes apply to text tasks"):
        probe_corpus(get_task("digits-cnn"))


def test_probe_modules_do_not_import_torch():
    code = ("import sys, backend.tasks.probe, backend.tasks.annotations, backend.tasks.text; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_brackets_task_data_has_different_train_and_val_streams():
    from backend.tasks.data import load_task_data

    data = load_task_data(get_task("brackets-lstm"))
    assert len(data.train_ids) >= 1_000_000 and len(data.val_ids) == 100_000
    assert int(data.train_ids.min()) > 0 and int(data.train_ids.max()) < len(BRACKET_VOCAB)
    assert not (data.train_ids[:1000] == data.val_ids[:1000]).all()
