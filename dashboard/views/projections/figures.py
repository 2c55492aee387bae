"""Figures of the projections page: WebGL maps of a model's points, coloured, with neighbours and analogies.

Pure: arrays in, figures out, no per-point Python loops (hover texts are built with numpy string
ufuncs; coordinates travel as float32 typed arrays, rounded to a ten-thousandth of the map's span).

- :func:`map_figure`: ``go.Scattergl`` (2-D) or ``go.Scatter3d`` (3-D), one trace per category for
  labels / predictions / correct (a legend), one trace on a log colour scale for frequency; fixed
  axis ranges (:func:`dashboard.views.projections.data.fixed_ranges` over every snapshot) and a
  ``uirevision``, so the axes and the person's zoom stay still from one snapshot to the next; a
  queried point starred and named, its neighbours ringed, an analogy drawn as arrows b -> a and
  c -> answer. Every point's ``customdata`` is its row in the source (what a click or a lasso
  selection reports), sent as a plain list: ``dcc.Graph`` reads a clicked point's customdata from
  the figure's own ``data``, where a typed array stays base64-encoded and would arrive as nothing.
- :func:`hover_texts`: the hover line of each point (its text, label, prediction, frequency).
- :func:`message_figure`: an empty map that says why it is empty, at the map's height.

Example::

    fig = map_figure(coords, rows, texts, colour_by="label", label=label, classes=["neg", "pos"],
                     ranges=[[-30, 30], [-25, 28]], uirevision="run:key",
                     highlight={"query": 12, "neighbours": [40, 7], "texts": ["king", "queen", "prince"]})
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

CATEGORICAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#7f7f7f"]
MANY = ["#AA0DFE", "#3283FE", "#85660D", "#782AB6", "#565656", "#1C8356", "#16FF32", "#F7E1A0", "#E2E2E2",
        "#1CBE4F", "#C4451C", "#DEA0FD", "#FE00FA", "#325A9B", "#FEAF16", "#F8A19F", "#90AD1C", "#F6222E",
        "#1CFFCE", "#2ED9FF", "#B10DA1", "#C075A6", "#FC1CBF", "#B00068", "#FBE426", "#FA0087"]  # Alphabet
NONE_GREY = "#b8bec8"
SINGLE = "#3b6fb6"
CORRECT = {"correct": "#2ca02c", "wrong": "#d62728", "unknown": NONE_GREY}
HIGHLIGHT = "#111827"
ARROW_BA = "#c2410c"     # b -> a
ARROW_CX = "#1d4ed8"     # c -> answer
MAX_LEGEND = len(MANY)   # more categories than this: one trace on a colour scale, names in the hover
VISIBLE = {"\n": "⏎", "\t": "⇥", "\r": "␍"}
LABEL_MAX = 150          # maps of at most this many points write each point's text beside it (a character map)


def marker_size(n: int, dims: int = 2) -> float:
    """Marker diameter in px: 8 for a few hundred points, 4 for 5,000, 2.5 for 100,000."""
    size = 11.5 - 1.75 * math.log10(max(n, 10))
    return float(np.clip(size * (0.75 if dims == 3 else 1.0), 2.0, 9.0))


def display_texts(texts, escape: bool = True) -> np.ndarray:
    """Texts for hover and labels: HTML-escaped (``escape``), whitespace made visible (an all-space token
    shows as ␣)."""
    t = np.asarray(texts).astype(str)
    if not t.size:
        return t
    # room for every character to become "&amp;" before each replace: np.strings.replace narrows its result
    # to the longest output and then cuts a later, longer replacement ("<" among 2-letter words: "&l")
    wide = f"<U{5 * max(1, t.dtype.itemsize // 4)}"
    for a, b in (*((("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")) if escape else ()), *VISIBLE.items()):
        t = np.strings.replace(t.astype(wide), a, b)
    blank = np.strings.strip(t) == ""
    if blank.any():
        t = np.where(blank, np.strings.replace(np.where(blank, t, ""), " ", "␣"), t)
        t = np.where(t == "", "∅", t)
    return t.astype(str)  # trimmed to the longest


def class_names(values: np.ndarray, classes: list[str] | None, none: str = "none") -> np.ndarray:
    """The class name of each id (``classes[id]``, ``class k`` past the list), ``none`` for -1."""
    values = np.asarray(values, dtype=np.int64)
    top = int(values.max(initial=-1))
    names = list(classes or [])
    names += [f"class {k}" for k in range(len(names), top + 1)]
    table = np.array(names + [none], dtype=object)
    return table[np.where(values >= 0, values, len(names))].astype(str)


def hover_texts(texts, label=None, pred=None, classes=None, freq=None) -> np.ndarray:
    """One hover text per point: the text in bold, then label, prediction and frequency where known."""
    h = np.strings.add(np.strings.add("<b>", display_texts(texts)), "</b>")
    if label is not None or pred is not None:
        parts = []
        if label is not None:
            parts.append(np.strings.add("label: ", class_names(label, classes)))
        if pred is not None:
            parts.append(np.strings.add("predicted: ", class_names(pred, classes)))
        line = parts[0] if len(parts) == 1 else np.strings.add(np.strings.add(parts[0], ", "), parts[1])
        h = np.strings.add(np.strings.add(h, "<br>"), line)
    if freq is not None:
        h = np.strings.add(np.strings.add(h, "<br>frequency: "), np.asarray(freq, dtype=np.int64).astype(str))
    return h


def _round(coords: np.ndarray) -> np.ndarray:
    """float32 coordinates rounded to about 1e-4 of their span (smaller after compression)."""
    c = np.asarray(coords, dtype=np.float32)
    if not c.size:
        return c
    span = float(np.nanmax(c) - np.nanmin(c)) or 1.0
    decimals = int(np.clip(4 - math.floor(math.log10(span)), 0, 8))
    return np.round(c, decimals).astype(np.float32)


def _groups(colour_by: str, label, pred, classes) -> list[tuple[str, np.ndarray | None, str]] | None:
    """``(name, codes, colour)`` per category for a categorical colouring, or None for a single trace.

    ``codes`` is an int array over the points, the category index of each."""
    if colour_by in ("label", "prediction"):
        values = label if colour_by == "label" else pred
        return None if values is None else [("cat", np.asarray(values, dtype=np.int64), "")]
    if colour_by == "correct" and label is not None and pred is not None:
        lab, prd = np.asarray(label, dtype=np.int64), np.asarray(pred, dtype=np.int64)
        return [("correct", np.where((lab < 0) | (prd < 0), 2, np.where(lab == prd, 0, 1)), "")]
    return None


def point_labels(texts, longest: int = 12) -> np.ndarray:
    """Texts written beside the points of a small map: as :func:`display_texts`, cut to ``longest``, not
    HTML-escaped (WebGL text draws ``&lt;`` as it is written, not as ``<``).

    >>> point_labels(["e", "\\n", " ", "<", "supercalifragilistic"]).tolist()
    ['e', '⏎', '␣', '<', 'supercalifr…']
    """
    t = display_texts(texts, escape=False)
    long = np.strings.str_len(t) > longest
    return np.where(long, np.strings.add(np.strings.slice(t, 0, longest - 1), "…"), t) if long.any() else t


def map_figure(coords, rows, texts, *, colour_by: str = "none", label=None, pred=None, classes=None, freq=None,
               ranges=None, title: str = "", uirevision: str | None = None, highlight: dict | None = None,
               analogy: dict | None = None, axis_titles: list[str] | None = None, height: int = 640) -> go.Figure:
    """The map of one snapshot (see the module docstring).

    ``coords`` ``(m, 2|3)``, ``rows`` ``(m,)`` source rows, ``texts`` ``(m,)``; ``label`` / ``pred`` /
    ``freq`` aligned with the points. ``highlight``: ``{"query": i, "neighbours": [j, ...], "texts":
    [query text, neighbour texts...]}`` with indices into ``coords`` (-1: not drawn). ``analogy``:
    ``{"a", "b", "c", "answer": indices, "texts": {"a", "b", "c", "answer"}}``.
    """
    coords = np.asarray(coords, dtype=np.float32)
    m, dims = coords.shape if coords.ndim == 2 else (0, 2)
    rows = np.asarray(rows, dtype=np.int32)
    xyz = _round(coords)
    hover = hover_texts(texts, label, pred, classes, freq)
    size = marker_size(m, dims)
    scatter = go.Scattergl if dims == 2 else go.Scatter3d
    traces = []
    # few points (a character LM's 98 characters): each one's text beside it, readable without hovering
    labels = point_labels(texts) if 0 < m <= LABEL_MAX else None

    def points(mask, name, marker, legend=True):
        idx = np.flatnonzero(mask) if mask is not None else slice(None)
        kw = {"x": xyz[idx, 0], "y": xyz[idx, 1]}
        if dims == 3:
            kw["z"] = xyz[idx, 2]
        if labels is not None:
            kw.update(mode="markers+text", text=labels[idx], textposition="top center",
                      textfont={"size": 11, "color": "#334155"})
        else:
            kw["mode"] = "markers"
        return scatter(**kw, name=name, meta="points", customdata=rows[idx].tolist(), hovertext=hover[idx],
                       hovertemplate="%{hovertext}<extra></extra>", marker=marker, showlegend=legend)

    groups = _groups(colour_by, label, pred, classes) if m else None
    legend_title = {"label": "label", "prediction": "predicted", "correct": "prediction"}.get(colour_by, "")
    if groups:
        codes = groups[0][1]
        if colour_by == "correct":
            cats = [(0, "correct", CORRECT["correct"]), (1, "wrong", CORRECT["wrong"]), (2, "unknown", CORRECT["unknown"])]
        else:
            present = np.unique(codes)
            names = class_names(np.maximum(present, -1), classes, none="no label")
            palette = CATEGORICAL if (present >= 0).sum() <= len(CATEGORICAL) else MANY
            cats = [(int(v), str(n), NONE_GREY if v < 0 else palette[int(v) % len(palette)])
                    for v, n in zip(present, names)]
        if len(cats) <= MAX_LEGEND:
            for v, name, colour in cats:
                mask = codes == v
                if mask.any():
                    traces.append(points(mask, name, {"size": size, "color": colour, "opacity": 0.85}))
        else:  # too many classes for a legend: a colour scale, the names in the hover
            traces.append(points(None, "points", {"size": size, "color": codes.astype(np.float32),
                                                  "colorscale": "Turbo", "opacity": 0.85}, legend=False))
    elif colour_by == "frequency" and freq is not None and m:
        logf = np.log10(np.maximum(np.asarray(freq, dtype=np.float64), 1.0)).astype(np.float32)
        top = max(1, int(math.ceil(float(logf.max(initial=0)))))
        ticks = list(range(top + 1))
        marker = {"size": size, "color": logf, "colorscale": "Viridis", "cmin": 0, "cmax": top, "opacity": 0.85,
                  "colorbar": {"title": {"text": "frequency", "side": "right"}, "thickness": 12, "len": 0.6,
                               "tickvals": ticks, "ticktext": [_count(10 ** k) for k in ticks]}}
        traces.append(points(None, "points", marker, legend=False))
    elif m:
        traces.append(points(None, "points", {"size": size, "color": SINGLE, "opacity": 0.75}, legend=False))

    annotations = []
    for marks, spec in ((_highlight_marks, highlight), (_analogy_marks, analogy)):
        if spec:
            more, notes = marks(xyz, rows, spec, size, dims)
            traces += more
            annotations += notes

    fig = go.Figure(traces)
    ranges = ranges or _own_ranges(coords)
    titles = list(axis_titles or [""] * dims)
    show_ticks = any(titles)
    axis = {"showgrid": True, "gridcolor": "#eef0f4", "zeroline": False, "showticklabels": show_ticks,
            "ticks": "", "tickfont": {"size": 10, "color": "#8a94a3"}}
    n_legend = sum(t.meta == "points" for t in traces) if groups and m else 0
    top = (36 if title else 10) + (26 if 0 < n_legend <= 6 else 0)
    layout = dict(title={"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left", "yref": "container",
                         "y": 1, "yanchor": "top", "pad": {"t": 10}}, height=height,
                  uirevision=uirevision, hovermode="closest", plot_bgcolor="white", paper_bgcolor="white",
                  margin={"l": 10 if not show_ticks else 40, "r": 10, "t": top, "b": 10 if not show_ticks else 36},
                  legend=_legend(legend_title, n_legend),
                  showlegend=bool(groups) and m > 0, annotations=annotations)
    if dims == 3:
        layout["annotations"] = []
    if dims == 2:
        layout.update(dragmode="zoom", xaxis={**axis, "range": ranges[0], "title": {"text": titles[0]}},
                      yaxis={**axis, "range": ranges[1], "title": {"text": titles[1]}})
    else:
        scene_axis = {**axis, "showbackground": False, "showspikes": False}
        layout.update(scene={"xaxis": {**scene_axis, "range": ranges[0], "title": {"text": titles[0]}},
                             "yaxis": {**scene_axis, "range": ranges[1], "title": {"text": titles[1]}},
                             "zaxis": {**scene_axis, "range": ranges[2], "title": {"text": titles[2]}},
                             "aspectmode": "cube", "annotations": annotations})
    fig.update_layout(**layout)
    return fig


def _legend(title: str, n: int) -> dict:
    """A few categories: one row above the map, right of the title; more: a column right of the map.
    Never over the points."""
    base = {"title": {"text": title}, "itemsizing": "constant", "font": {"size": 12}, "bgcolor": "rgba(0,0,0,0)"}
    if n <= 6:  # a row of its own between the title and the map (the mode bar sits top right)
        return {**base, "orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}
    return {**base, "orientation": "v", "x": 1.01, "xanchor": "left", "y": 1, "yanchor": "top"}


def _own_ranges(coords: np.ndarray) -> list[list[float]]:
    from dashboard.views.projections.data import fixed_ranges  # pure helper; imported late to keep this module light

    if not coords.size:
        return [[-1.0, 1.0]] * (coords.shape[1] if coords.ndim == 2 else 2)
    return fixed_ranges(np.nanmin(coords, axis=0), np.nanmax(coords, axis=0))


def _xyz(xyz: np.ndarray, idx) -> dict:
    idx = np.asarray(idx, dtype=np.int64)
    out = {"x": xyz[idx, 0], "y": xyz[idx, 1]}
    if xyz.shape[1] == 3:
        out["z"] = xyz[idx, 2]
    return out


def _label(x, y, z, text: str, colour: str, bold: bool = False, size: int = 12, yshift: int = 10) -> dict:
    """An SVG label above a point (HTML allowed, readable over the points)."""
    ann = {"x": float(x), "y": float(y), "text": f"<b>{text}</b>" if bold else text, "showarrow": False,
           "yshift": yshift, "font": {"size": size, "color": colour}, "bgcolor": "rgba(255,255,255,0.8)",
           "borderpad": 1}
    if z is not None:
        ann["z"] = float(z)
    return ann


def _highlight_marks(xyz, rows, hl: dict, size: float, dims: int) -> tuple[list, list]:
    """Rings on the neighbours (hover names them) and a star on the queried point, labelled."""
    scatter = go.Scattergl if dims == 2 else go.Scatter3d
    names = display_texts(hl.get("texts") or [])
    near = np.asarray(hl.get("neighbours") or [], dtype=np.int64)
    keep = near >= 0
    traces, labels = [], []
    if keep.any():
        idx = near[keep]
        rank = np.flatnonzero(keep) + 1
        hover = [f"neighbour {r}: <b>{t}</b>" for r, t in zip(rank, names[1:][keep])] if len(names) > 1 else None
        traces.append(scatter(**_xyz(xyz, idx), mode="markers", name="nearest neighbours", meta="highlight",
                              customdata=rows[idx].tolist(), text=hover, hovertemplate="%{text}<extra></extra>",
                              marker={"size": size + 9, "color": HIGHLIGHT if dims == 2 else "rgba(17,24,39,0.25)",
                                      "line": {"color": HIGHLIGHT, "width": 2},
                                      "symbol": "circle-open" if dims == 2 else "circle"}, showlegend=False))
    q = int(hl.get("query", -1))
    if q >= 0:
        text = str(names[0]) if len(names) else ""
        traces.append(scatter(**_xyz(xyz, [q]), mode="markers", name="query", meta="highlight", customdata=rows[[q]].tolist(),
                              text=[f"<b>{text}</b>"], hovertemplate="%{text}<extra></extra>",
                              marker={"size": size + 12, "color": "#fde047", "symbol": "star" if dims == 2 else "diamond",
                                      "line": {"color": HIGHLIGHT, "width": 1.5}}, showlegend=False))
        labels.append(_label(*xyz[q, :2], xyz[q, 2] if dims == 3 else None, text, HIGHLIGHT, bold=True, size=13,
                             yshift=14))
    return traces, labels


def _analogy_marks(xyz, rows, an: dict, size: float, dims: int) -> tuple[list, list]:
    """Markers on a, b, c and the answer, labelled, and arrows b -> a and c -> answer (2-D: annotations
    with arrowheads; 3-D: line segments)."""
    texts = an.get("texts") or {}
    names = [k for k in ("a", "b", "c", "answer") if int(an.get(k, -1)) >= 0]
    if not names:
        return [], []
    idx = [int(an[k]) for k in names]
    shown = display_texts([texts.get(k, k) for k in names])
    scatter = go.Scattergl if dims == 2 else go.Scatter3d
    colours = [ARROW_BA if k in ("a", "b") else ARROW_CX for k in names]
    traces = [scatter(**_xyz(xyz, idx), mode="markers", name="analogy", meta="analogy", customdata=rows[idx].tolist(),
                      text=[f"{k}: <b>{t}</b>" for k, t in zip(names, shown)], hovertemplate="%{text}<extra></extra>",
                      marker={"size": size + 6, "color": colours, "line": {"color": "white", "width": 1}},
                      showlegend=False)]
    annotations = [_label(*xyz[i, :2], xyz[i, 2] if dims == 3 else None, str(t), c, bold=True,
                          yshift=12 if k in ("a", "answer") else -12)  # b, c below: the pairs overlap less
                   for i, t, c, k in zip(idx, shown, colours, names)]
    pairs = [(k0, k1, c) for k0, k1, c in (("b", "a", ARROW_BA), ("c", "answer", ARROW_CX))
             if int(an.get(k0, -1)) >= 0 and int(an.get(k1, -1)) >= 0]
    if dims == 2:
        for k0, k1, colour in pairs:
            p0, p1 = xyz[int(an[k0])], xyz[int(an[k1])]
            annotations.append({"x": float(p1[0]), "y": float(p1[1]), "ax": float(p0[0]), "ay": float(p0[1]),
                                "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "text": "", "showarrow": True,
                                "arrowhead": 3, "arrowsize": 1.4, "arrowwidth": 2.2, "arrowcolor": colour,
                                "standoff": size / 2 + 4, "startstandoff": size / 2 + 4, "opacity": 0.9})
    else:
        for k0, k1, colour in pairs:
            seg = xyz[[int(an[k0]), int(an[k1])]]
            traces.append(go.Scatter3d(x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines", meta="analogy",
                                       line={"color": colour, "width": 6}, hoverinfo="skip", showlegend=False))
    return traces, annotations


def _count(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            return f"{n // div}{unit}"
    return str(n)


def message_figure(message: str, height: int = 640) -> go.Figure:
    """An empty map that says why (at the map's height, so the page does not jump)."""
    fig = go.Figure()
    fig.update_layout(height=height, xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="white",
                      annotations=[{"text": message, "showarrow": False, "font": {"size": 14, "color": "#555"},
                                    "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
                      margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig
