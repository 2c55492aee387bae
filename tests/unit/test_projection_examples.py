"""The Projections page's examples are words the built-in word2vec run knows; the quality bench's groups too."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from backend.tasks.prose import prose_corpus
from dashboard.views.projections.search import ANALOGY_EXAMPLE, EXAMPLE_WORD


def test_analogy_placeholder_and_example_word_are_in_the_word2vec_vocabulary():
    vocab = set(prose_corpus().vocab)
    assert len(ANALOGY_EXAMPLE) == 3 and len(set(ANALOGY_EXAMPLE)) == 3
    assert set(ANALOGY_EXAMPLE) <= vocab and EXAMPLE_WORD in vocab
    assert "king" not in vocab  # why the classic example is not offered


def test_the_page_shows_the_example():
    # read, not imported: a page module registers itself with a Dash app
    source = (Path(__file__).resolve().parents[2] / "dashboard" / "views" / "projections" / "page.py").read_text()
    assert "ANALOGY_EXAMPLE[0]" in source and 'placeholder="king"' not in source


def test_bench_word_groups_are_in_the_vocabulary():
    path = Path(__file__).resolve().parents[2] / "bench" / "projection_quality.py"
    spec = importlib.util.spec_from_file_location("projection_quality", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    vocab = set(prose_corpus().vocab)
    assert all(set(words) <= vocab for words in bench.GROUPS.values())
