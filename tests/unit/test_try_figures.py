"""Figures and views of the Try it page (dashboard/views/try_it/figures.py): arrays in, figures out."""
from __future__ import annotations

import numpy as np

from dashboard.views.try_it.figures import (class_prediction, evolution_figure, generation_text, guesses_figure,
                                         next_token_prediction, state_range, states_heatmap, teacher_forcing_strip,
                                         token_chips)


def _texts(component) -> list[str]:
    """Every string inside a Dash component tree, depth first."""
    out = []
    if isinstance(component, str):
        return [component]
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None:
            out += _texts(child)
    return out


def test_states_heatmap_puts_cells_down_and_tokens_across():
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (6, 4))  # 6 tokens, 4 cells
    tokens = list("a( b)\n")
    fig = states_heatmap(values, tokens, "hidden state h of layer 1", "h").to_plotly_json()
    trace = fig["data"][0]
    z = np.array(trace["z"])
    assert z.shape == (4, 6)
    np.testing.assert_allclose(z, np.round(values.T, 3))
    assert (trace["zmin"], trace["zmax"]) == (-1.0, 1.0)
    assert list(fig["layout"]["xaxis"]["ticktext"]) == ["a", "(", "␣", "b", ")", "⏎"]  # whitespace made visible
    assert trace["customdata"][2][1] == "("  # hover names the token of each column
    gate = states_heatmap(rng.uniform(0, 1, (6, 4)), tokens, "forget gate", "f").to_plotly_json()["data"][0]
    assert (gate["zmin"], gate["zmax"]) == (0.0, 1.0)
    assert gate["colorscale"] != trace["colorscale"]  # a sequential scale for gates, diverging for h


def test_state_ranges_follow_what_each_state_can_be():
    c = np.array([[-3.0, 1.0], [2.0, 0.5]])
    assert state_range("c", c) == (-3.0, 3.0, True)        # unbounded: symmetric at its largest magnitude
    assert state_range("i", c) == (0.0, 1.0, False)        # a gate
    assert state_range("h", c) == (-1.0, 1.0, True)        # tanh
    assert state_range("h", np.abs(c), relu=True) == (0.0, 3.0, False)
    assert state_range("c", np.zeros((2, 2))) == (-1.0, 1.0, True)  # all zero: still a valid range


def test_long_texts_number_the_tokens_and_drop_hover_labels():
    values = np.zeros((400, 128))
    fig = states_heatmap(values, ["x"] * 400, "h", "h").to_plotly_json()
    assert "ticktext" not in fig["layout"]["xaxis"] and "customdata" not in fig["data"][0]


def test_evolution_has_a_line_per_class_over_the_tokens():
    evo = np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    fig = evolution_figure(["not", "bad", "!"], evo, ("negative", "positive")).to_plotly_json()
    assert [t["name"] for t in fig["data"]] == ["negative", "positive"]
    assert fig["data"][1]["y"] == [0.4, 0.3, 0.8]
    assert list(fig["layout"]["xaxis"]["ticktext"]) == ["not", "bad", "!"]
    assert fig["layout"]["yaxis"]["range"] == [-0.02, 1.02]


def test_guesses_show_each_positions_top_tokens_shaded_by_probability():
    top = [["(", "a"], [")", "("], ["\n", "b"]]
    probs = np.array([[0.7, 0.2], [0.5, 0.4], [0.9, 0.05]])
    trace = guesses_figure(list("a(b"), top, probs).to_plotly_json()["data"][0]
    assert trace["text"] == [["(", ")", "⏎"], ["a", "(", "b"]]  # rank down, positions across
    np.testing.assert_allclose(trace["z"], probs.T)


def test_prediction_views_name_the_class_and_the_next_characters():
    view = class_prediction(("negative", "positive"), np.array([0.2, 0.8]))
    text = " ".join(_texts(view))
    assert "positive" in text and "80.0% sure" in text and "20.0%" in text
    chips = " ".join(_texts(next_token_prediction([")", " "], np.array([0.6, 0.004]))))
    assert ")" in chips and "60%" in chips and "␣" in chips and "<1%" in chips
    marked = token_chips(["the", "zorp", "film"], ["zorp"])
    assert [c.className for c in marked.children] == ["try-token", "try-token try-unknown", "try-token"]


def test_teacher_forcing_strip_puts_a_guess_under_each_character():
    strip = teacher_forcing_strip(list("abc"), ["b", "x"], np.array([0.9, 0.05]))
    cols = strip.children
    assert len(cols) == 3
    assert [c.children[0].children for c in cols] == ["a", "b", "c"]
    assert [c.children[1].children for c in cols[1:]] == ["b", "x"]
    assert "try-tf-wrong" in cols[2].children[1].className and "try-tf-wrong" not in cols[1].children[1].className
    green, red = cols[1].style["background"], cols[2].style["background"]
    assert green.startswith("hsl(108") and red.startswith("hsl(6")  # sure and right: green; unlikely: red
    pre = generation_text("def ", "f(x):")
    assert [s.children for s in pre.children] == ["def ", "f(x):"]
