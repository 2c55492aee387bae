"""numbers-seq2seq's generator: words, digits and the span of the word that writes each digit."""
from __future__ import annotations

import numpy as np

from backend.tasks.number_words import (NUMBER_MAX_IN, NUMBER_OUT_LEN, encode_numbers, generate_numbers,
                                        probe_numbers, render_number)


def test_words_digits_and_spans():
    ex = render_number(342017)
    assert ex.text == "three hundred and forty-two thousand and seventeen" and ex.target == "342017"
    assert [ex.text[a:b] if a >= 0 else None for a, b in ex.spans] == [
        "three", "forty", "two", None, "seventeen", "seventeen", None]
    assert render_number(4000006).text == "four million and six"
    assert render_number(90417).text == "ninety thousand four hundred and seventeen"


def test_every_nonzero_digit_has_a_span_naming_it():
    names = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
             "8": "eight", "9": "nine"}
    for ex in generate_numbers(300, seed=5):
        assert int(ex.target) > 0 and len(ex.spans) == len(ex.target) + 1 and ex.spans[-1] == (-1, -1)
        for digit, (a, b) in zip(ex.target, ex.spans):
            assert (a >= 0) == (digit != "0")
            if a >= 0:
                word = ex.text[a:b]
                assert names[digit] in word or word.endswith(("teen", "ten", "eleven", "twelve", "ty")), (ex, word)


def test_lengths_spread_and_arrays():
    examples = generate_numbers(2000, seed=1)
    lengths = [len(ex.text) for ex in examples]
    assert min(lengths) <= 5 and max(lengths) <= NUMBER_MAX_IN and np.percentile(lengths, 67) > 40
    arrays = encode_numbers(examples[:5] + probe_numbers())
    assert arrays["x"].shape == (13, NUMBER_MAX_IN) and arrays["y"].shape == (13, NUMBER_OUT_LEN)
    assert arrays["spans"].shape == (13, NUMBER_OUT_LEN, 2) and (arrays["lengths"] > 0).all()
