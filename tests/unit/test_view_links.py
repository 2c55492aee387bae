"""The run card's "Look inside" links name only the pages that can show the run."""
from __future__ import annotations

from dash import dcc

from dashboard.components import view_links


def _links(task, family, **extra):
    run = {"id": "r1", "task": task, "spec": {"model": {"family": family, **extra.pop("model", {})}}, **extra}
    return {c.children: c.href for c in view_links(run) if isinstance(c, dcc.Link)}


def test_each_kind_of_run_links_to_its_pages():
    assert _links("code-lstm", "lstm") == {"Hidden states": "/hidden?run=r1", "Try it": "/try?run=r1",
                                           "Lab": "/lab?run=r1"}
    assert set(_links("code-lstm", "gru", model={"bidirectional": True})) == {"Hidden states", "Try it"}
    assert set(_links("digits-cnn", "cnn")) == {"Kernels", "Projections"}
    assert set(_links("digits-cnn", "mlp")) == {"Projections"}
    assert set(_links("sentiment-cnn", "textcnn")) == {"Kernels", "Projections", "Try it"}
    assert set(_links("sentiment-lstm", "lstm")) == {"Projections", "Try it"}
    assert set(_links("natural-patches", "sparse-ae")) == {"Kernels"}
    assert set(_links("prose-word2vec", "skipgram")) == {"Projections"}
    assert set(_links("code-lstm", "transformer")) == {"Attention", "Try it"}


def test_sequence_runs_link_to_their_hidden_states_and_embeddings():
    assert set(_links("dates-seq2seq", "gru", model={"attention": "additive"})) == {"Hidden states", "Attention",
                                                                                    "Projections"}
    assert set(_links("numbers-seq2seq", "lstm", model={"attention": "none"})) == {"Hidden states", "Projections"}
    assert set(_links("tags-bidir", "gru", model={"bidirectional": True})) == {"Hidden states", "Projections"}


def test_client_runs_and_unknown_tasks_get_no_links():
    assert view_links({"id": "r", "task": "code-lstm", "source": "client", "spec": {"model": {"family": "lstm"}}}) == []
    assert view_links({"id": "r", "task": "my-own", "spec": {}}) == []
