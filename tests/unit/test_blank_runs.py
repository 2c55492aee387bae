"""Long runs of blanks in generated text are drawn as a marker that says what they are."""
from __future__ import annotations

from backend.store.samples import Samples
from dashboard.blank_runs import describe_blanks, split_blank_runs, with_blank_runs
from dashboard.views.try_it.figures import generation_text
from dashboard.views.training.samples import sample_box
from tests.unit.test_samples_card import find


def _markers(node) -> list[str]:
    return [m.children for m in find(node, "blank-run")]


def test_pieces_join_back_to_the_text_and_only_long_runs_are_marked():
    text = "def f():\n" + " " * 12 + "return 1\n" + " " * 180 + "x\n\n\n" + "\n" * 20
    pieces = split_blank_runs(text)
    assert "".join(p for p, _ in pieces) == text
    assert [len(p) for p, long_run in pieces if long_run] == [181, 23]  # the 12-space indent stays as written


def test_the_marker_counts_what_the_run_holds():
    assert describe_blanks("\n" + " " * 180) == "1 line break, 180 spaces"
    assert describe_blanks("\t\t" + " ") == "1 space, 2 tabs"
    children = with_blank_runs(" the return\n" + " " * 180)
    assert children[0] == " the return"
    assert children[1].children == "⟨1 line break, 180 spaces⟩" and children[2] == "\n"
    assert with_blank_runs("no long run here") == "no long run here"


def test_line_breaks_and_indentation_show_as_written():
    # issue 17: "(1 line break, 24 spaces)" markers hid ordinary code layout
    code = "class A:\n    def f(self):\n" + " " * 24 + "return 1\n\n\n" + "x = 2\t\t# done"
    assert with_blank_runs(code) == code
    assert split_blank_runs(code) == [(code, False)]
    assert _markers(generation_text("def f():", code)) == []


def test_the_samples_card_and_try_it_show_the_marker():
    rec = Samples(step=2000, prompt='def getcontext():\n    """Returns', texts={0.5: " the return\n" + " " * 180},
                  meta={})
    assert _markers(sample_box(rec, 0.5, "newest", "newest")) == ["⟨1 line break, 180 spaces⟩"]
    assert _markers(generation_text("x = ", "1" + " " * 40)) == ["⟨40 spaces⟩"]
