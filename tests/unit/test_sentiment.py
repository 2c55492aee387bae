"""The generated sentiment corpus, its tracks and composition rule, vocabularies and ids,
and users' own CSV files."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from backend.tasks.sentiment.core import (LEXICON, PAD, SENTIMENT_DOMAINS, SENTIMENT_KINDS, SENTIMENT_LABELS,
                                     SENTIMENT_SEEDS, SENTIMENT_TRACKS, UNK, SentimentFileError, build_vocab,
                                     decode, encode, generate_sentiment, load_sentiment_csv, make_example,
                                     rule_label, sentiment_tracks, tokenize, track_matrix, word_counts)
from backend.tasks.sentiment import core as S
@pytest.fixture(scope="module")
def corpus():
    return generate_sentiment(4000, SENTIMENT_SEEDS["train"])


# -- the generator ----------------------------------------------------------------

def test_same_seed_same_corpus_other_seed_other_corpus():
    a, b = generate_sentiment(300, 7), generate_sentiment(300, 7)
    assert a == b and [x.tracks for x in a] == [x.tracks for x in b]
    c = generate_sentiment(300, 8)
    assert sum(x.text == y.text for x, y in zip(a, c)) < 10
    assert len(set(SENTIMENT_SEEDS.values())) == 3 and set(SENTIMENT_SEEDS) == {"train", "val", "probe"}
    assert SENTIMENT_LABELS == ("negative", "positive")
    assert generate_sentiment(0, 1) == []


def test_20000_balanced_distinct_examples():
    examples = generate_sentiment(20_000, SENTIMENT_SEEDS["val"])
    assert len({ex.text for ex in examples}) == 20_000
    assert abs(sum(ex.label for ex in examples) - 10_000) <= 1
    kinds = Counter(ex.kind for ex in examples)
    assert set(kinds) == set(SENTIMENT_KINDS) and min(kinds.values()) > 2000
    assert {ex.domain for ex in examples} == set(SENTIMENT_DOMAINS)
    for kind in SENTIMENT_KINDS:  # balanced within every phenomenon too
        share = np.mean([ex.label for ex in examples if ex.kind == kind])
        assert 0.45 < share < 0.55, kind


def test_text_tokens_and_tracks_agree(corpus):
    for ex in corpus:
        assert ex.text == ex.text.lower() and ex.label in (0, 1)
        assert tuple(tokenize(ex.text)) == ex.tokens
        assert tuple(ex.tracks) == SENTIMENT_TRACKS
        assert all(len(v) == len(ex.tokens) for v in ex.tracks.values())
        assert ex.tracks == sentiment_tracks(ex.tokens)
        assert ex.tracks["sentiment"][-1] == (1.0 if ex.label else -1.0)
    assert any("n't" in ex.tokens and "n't" in ex.text for ex in corpus)  # "wasn't" -> "was" "n't"


def test_lexicon_size_and_consistency(corpus):
    positive = [w for w, s in LEXICON.items() if s > 0]
    negative = [w for w, s in LEXICON.items() if s < 0]
    assert len(positive) >= 40 and len(negative) >= 40
    for spec in S._DOMAINS.values():  # every domain word has one polarity
        for sign, col in ((1, 2), (-1, 3)):
            for adjective in spec[col]:
                assert LEXICON[S._entry(adjective)[1]] == sign, adjective
    vocab = build_vocab(ex.tokens for ex in generate_sentiment(20_000, 0))
    assert 200 <= len(vocab) <= 600
    used = {tok for ex in corpus for tok in ex.tokens}
    assert len(used & set(positive)) > 60 and len(used & set(negative)) > 60


# -- the composition rule ---------------------------------------------------------

@pytest.mark.parametrize("text,label", [
    ("the movie was good", 1),
    ("the plot was not bad", 1),
    ("the film was not good", 0),
    ("the food wasn't bad at all", 1),
    ("this phone is very good", 1),
    ("the book was extremely boring .", 0),
    ("good acting but too long", 0),
    ("although slow , it was wonderful", 1),
    ("the room was clean , although the staff was rude", 1),
    ("the plot wasn't bad , but the ending was dull", 0),
    ("the service was slow , yet the pizza was delicious", 1),
    ("i didn't like the book", 0),
    ("i would not recommend this phone", 0),
    ("although the fries were cold and greasy , the burger was delicious", 1),
    ("the staff was rude but the room was spotless , although a bit noisy", 1),
    ("the screen is sharp and the battery is never slow", 1),
])
def test_rule_labels_like_a_person(text, label):
    assert rule_label(tokenize(text)) == label


def test_rule_has_no_answer_without_a_deciding_word():
    assert rule_label(tokenize("the film was long-ish")) is None
    assert rule_label(tokenize("good acting but")) is None
    assert rule_label([]) is None


def test_tracks_of_one_sentence():
    tokens = tokenize("the plot wasn't very bad , but a bit slow , although clever")
    assert tokens == ["the", "plot", "was", "n't", "very", "bad", ",", "but", "a", "bit", "slow", ",",
                      "although", "clever"]
    tracks = sentiment_tracks(tokens)
    assert tracks["polarity"] == (0, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 0, 0, 1)
    assert tracks["negated"] == (0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert tracks["intensity"] == (0, 0, 0, 0, 1, 0, 0, 0, -1, -1, 0, 0, 0, 0)
    assert tracks["concessive"] == (0,) * 12 + (1, 1)
    assert tracks["sentiment"] == (0, 0, 0, 0, 0, 1, 1, 0, 0, 0, -1, -1, -1, -1)


NEGATORS = {"not", "n't", "never", "hardly"}
BREAKS = {",", ".", "!", "and", "but", "yet", "although", "though"}


def independent_label(tokens) -> int:
    """The label by a clause-by-clause reading, written apart from the module's scanner:
    split at breaks; a clause is concessive from "although"/"though" to the next comma;
    its value is its last polar word, flipped if a negator precedes it in the clause;
    the last non-concessive clause with a value decides."""
    clauses, current, conc = [], [], False
    for tok in list(tokens) + ["."]:
        if tok in BREAKS:
            clauses.append((conc, current))
            current = []
            if tok in {",", ".", "!", "but", "yet"}:
                conc = False
            if tok in {"although", "though"}:
                conc = True
        else:
            current.append(tok)
    decision = None
    for conc, words in clauses:
        for i, word in enumerate(words):
            if word in LEXICON and not conc:
                flip = any(w in NEGATORS for w in words[:i])
                decision = LEXICON[word] * (-1 if flip else 1)
    return int(decision > 0)


def test_generated_labels_follow_an_independent_reading(corpus):
    assert all(independent_label(ex.tokens) == ex.label for ex in corpus)


def test_negated_negative_words_are_positive_and_the_clause_after_but_decides(corpus):
    negated_negative = [ex for ex in corpus if ex.kind == "negation" and NEGATORS & set(ex.tokens)
                        and any(LEXICON.get(t, 0) < 0 for t in ex.tokens)]
    assert sum("not" in ex.tokens for ex in negated_negative) > 50
    assert len(negated_negative) > 200 and all(ex.label == 1 for ex in negated_negative)
    buts = [ex for ex in corpus if ex.kind == "contrast" and "but" in ex.tokens]
    assert len(buts) > 300
    for ex in buts:
        after = ex.tokens[ex.tokens.index("but") + 1:]
        assert rule_label(after) == ex.label, ex.text
        before = ex.tokens[:ex.tokens.index("but")]
        assert rule_label(before) == 1 - ex.label, ex.text  # the clauses contrast
    later = [ex for ex in corpus if ex.kind == "concession" and ex.tokens[0] not in ("although", "though")]
    assert len(later) > 100  # "X , although Y": the first clause decides
    for ex in later:
        cut = ex.tokens.index(",")
        assert rule_label(ex.tokens[:cut]) == ex.label, ex.text


def test_bag_of_words_fails_where_the_tracks_succeed():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = generate_sentiment(6000, 1), generate_sentiment(2000, 2)
    bow = CountVectorizer(analyzer=lambda tokens: tokens)
    model = LogisticRegression(max_iter=2000).fit(bow.fit_transform([ex.tokens for ex in train]),
                                                   [ex.label for ex in train])
    y = np.array([ex.label for ex in test])
    accuracy = (model.predict(bow.transform([ex.tokens for ex in test])) == y).mean()
    # measured: 0.565 (plain sentences 0.69, negated 0.47, contrasts 0.51, concessions 0.54);
    # bag of unigrams+bigrams 0.67. The corpus needs composition.
    assert accuracy < 0.75

    def oracle(ex) -> int:  # last polar word outside a concession, flipped when negated
        t = ex.tracks
        values = [p * (1 - 2 * n) for p, n, c in zip(t["polarity"], t["negated"], t["concessive"]) if p and not c]
        return int(values[-1] > 0)

    assert all(oracle(ex) == ex.label for ex in test)


# -- tokens, vocabulary and ids ---------------------------------------------------

@pytest.mark.parametrize("text,tokens", [
    ("I didn't LIKE it, honestly!", ["i", "did", "n't", "like", "it", ",", "honestly", "!"]),
    ("We can't; it's a well-written book...", ["we", "ca", "n't", ";", "it", "'s", "a", "well-written", "book",
                                               ".", ".", "."]),
    ("Isn\u2019t it  great?\n", ["is", "n't", "it", "great", "?"]),
    ("", []),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_build_vocab_orders_by_frequency_then_alphabet():
    lists = [["b", "a", "c"], ["a", "c", "d"], ["a"]]
    assert build_vocab(lists) == (PAD, UNK, "a", "c", "b", "d")
    assert build_vocab(lists, min_count=2) == (PAD, UNK, "a", "c")
    assert build_vocab(lists, max_size=4) == (PAD, UNK, "a", "c")
    assert build_vocab(iter(lists)) == build_vocab(lists)  # a generator is fine
    assert build_vocab([[PAD, UNK, "x"]]) == (PAD, UNK, "x")
    with pytest.raises(ValueError, match="max_size"):
        build_vocab(lists, max_size=1)


def test_encode_pads_truncates_and_round_trips(corpus):
    vocab = (PAD, UNK, "the", "film", "was", "good")
    ids, lengths = encode([["the", "film", "was", "good"], ["the", "plot"], []], vocab, max_len=3)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.tolist() == [[2, 3, 4], [2, 1, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 2, 0]
    with pytest.raises(ValueError, match="max_len"):
        encode([["a"]], vocab, 0)
    tokens = [ex.tokens for ex in corpus]
    full = build_vocab(tokens)
    ids, lengths = encode(tokens, full, max_len=40)
    assert ids.shape == (len(corpus), 40) and (ids[np.arange(40) >= lengths[:, None]] == 0).all()
    assert all(decode(row, full) == list(toks) for row, toks in zip(ids, tokens))


def test_word_counts_and_track_matrix(corpus):
    vocab = (PAD, UNK, "a", "b")
    assert word_counts([["a", "b", "a"], ["z", "a"]], vocab).tolist() == [0, 1, 3, 1]
    tokens = [ex.tokens for ex in corpus]
    vocab = build_vocab(tokens)
    counts = word_counts(tokens, vocab)
    assert counts.sum() == sum(map(len, tokens)) and counts[0] == counts[1] == 0
    assert (np.diff(counts[2:]) <= 0).all()
    m = track_matrix(corpus[:3], "negated", 5)
    assert m.shape == (3, 5) and m.dtype == np.float32
    assert m[0].tolist() == list(corpus[0].tracks["negated"][:5]) + [0.0] * (5 - len(corpus[0].tokens[:5]))
    ex = make_example(["not", "bad"], 1)
    assert ex.text == "not bad" and ex.tracks["sentiment"] == (0.0, 1.0)


# -- users' CSV files -------------------------------------------------------------

def test_csv_with_string_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('\ufefftext,label\n"Great, really great",pos\n\nawful, neg\n  meh  ,neg\n', encoding="utf-8")
    texts, labels, names = load_sentiment_csv(path)
    assert texts == ["Great, really great", "awful", "meh"]
    assert names == ("neg", "pos") and labels == [1, 0, 0]


def test_csv_with_int_labels_and_other_columns(tmp_path):
    path = tmp_path / "stars.csv"
    path.write_text("id,stars,review\n1,10,loved it\n2,2,hated it\n3,02,so so\n", encoding="utf-8")
    texts, labels, names = load_sentiment_csv(str(path), text_column="review", label_column="stars")
    assert names == ("2", "10") and labels == [1, 0, 0] and texts[2] == "so so"


@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (b" \n\n", "the file is empty"),
    (b"review,label\nok,1\n", "no column 'text'; the columns are 'review', 'label'"),
    (b"text;label\nok;1\n", "no column 'text'.*comma-separated"),
    (b"text,label\n", "header but no rows"),
    (b"text,label\ngood,1\n ,0\n", r"row 2 \(line 3\) has an empty 'text'"),
    (b"text,label\ngood,1\nbad\n", r"row 2 \(line 3\) has an empty 'label'"),
    (b"text,label\ngood,pos\nfine,pos\n", "at least 2 distinct labels.*found only 'pos'"),
    (b"text,label\ngood,1\nbad \xff,0\n", "not UTF-8 text.*0xff at offset 22"),
])
def test_csv_errors_say_what_and_where(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SentimentFileError, match=message):
        load_sentiment_csv(path)


def test_csv_missing_file(tmp_path):
    with pytest.raises(SentimentFileError, match="nope.csv: no such file"):
        load_sentiment_csv(tmp_path / "nope.csv")
    assert issubclass(SentimentFileError, ValueError)


def test_the_built_in_vocabulary_covers_every_generated_corpus():
    from backend.tasks.sentiment.core import SENTIMENT_MAX_LEN, SENTIMENT_VOCAB

    assert SENTIMENT_VOCAB[:2] == (PAD, UNK) and len(set(SENTIMENT_VOCAB)) == len(SENTIMENT_VOCAB)
    for seed in (*SENTIMENT_SEEDS.values(), 7):
        examples = generate_sentiment(5000, seed)
        ids, lengths = encode([ex.tokens for ex in examples], SENTIMENT_VOCAB, SENTIMENT_MAX_LEN)
        assert (ids != 1).all(), "a generated word is missing from the built-in vocabulary"
        assert lengths.max() <= SENTIMENT_MAX_LEN  # nothing truncated
