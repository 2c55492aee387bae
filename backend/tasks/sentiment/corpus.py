"""The generated review corpus of the sentiment tasks: a grammar that writes labelled sentences.

Sentences of five domains (movies, food, books, hotels, phones) built from templates (single
clauses, negations, contrasts, concessions, several clauses) so that the label follows the
composition rule of :mod:`backend.tasks.sentiment.rule`; a bag of words therefore scores only
~57%. Each :class:`Example` carries its per-token tracks. The same seed gives the same
sentences. numpy + standard library (no torch).

Example::

    train = generate_sentiment(20_000, seed=101)
    ex = train[0]     # e.g. ex.text "the plot wasn't bad , but the ending was dull", ex.label 0
    ex.tokens         # ("the", "plot", "was", "n't", "bad", ",", "but", ...)
    ex.tracks["negated"]                       # (0, 0, 0, 1, 1, 0, 0, ...)
    track_matrix(train, "sentiment", max_len=32).shape    # (20000, 32)
    make_example(["not", "bad"], 1).text       # "not bad"
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# the lexicon's word lists are the grammar's vocabulary (package-internal names)
from .rule import (_DOMAINS, _GENERAL_NEG, _GENERAL_POS, _PHRASES_NEG, _PHRASES_POS, _VERBS_NEG,
                             _VERBS_POS, SENTIMENT_DOMAINS, _entry, sentiment_tracks)

SENTIMENT_KINDS = ("plain", "negation", "contrast", "concession", "multi")

@dataclass(frozen=True)
class Example:
    """One labelled sentence: ``label`` 0 negative / 1 positive, ``tokens`` ==
    ``tuple(tokenize(text))`` (:func:`~backend.tasks.words.tokenize`) and ``tracks`` (see
    :func:`sentiment_tracks`) with one value per token. ``kind`` is one of :data:`SENTIMENT_KINDS`,
    ``domain`` of :data:`SENTIMENT_DOMAINS`."""

    text: str
    label: int
    tokens: tuple[str, ...]
    tracks: dict[str, tuple[float, ...]] = field(compare=False, repr=False)
    domain: str = ""
    kind: str = ""


class _Domain:
    """Token tuples of one domain, precomputed for fast sampling."""

    def __init__(self, singular, plural, pos, neg):
        self.subjects = [(tuple(s.split()), False) for s in singular] + [(tuple(s.split()), True) for s in plural]
        self.adjectives = {1: [_entry(a)[0] for a in _GENERAL_POS + pos],
                           -1: [_entry(a)[0] for a in _GENERAL_NEG + neg]}


_DOMAIN_DATA = {name: _Domain(*spec) for name, spec in _DOMAINS.items()}
_PHRASES = {1: [_entry(p)[0] for p in _PHRASES_POS], -1: [_entry(p)[0] for p in _PHRASES_NEG]}
_VERBS = {1: _VERBS_POS, -1: _VERBS_NEG}
_INT = ("very", "really", "extremely", "so", "incredibly", "truly", "absolutely", "totally")
# downtoners: "fairly good", "a bit slow" (but not "a bit good")
_DOWN = {1: (("somewhat",), ("fairly",), ("rather",)),
         -1: (("slightly",), ("somewhat",), ("fairly",), ("rather",), ("a", "bit"), ("a", "little"))}
_COPULA = {(False, True): "was", (True, True): "were", (False, False): "is", (True, False): "are"}
P_NEGATED = 0.4
# (template, weight): see _sentence
_TEMPLATES = (("single", 0.36), ("but", 0.20), ("yet", 0.05), ("although_first", 0.12),
              ("although_last", 0.10), ("and", 0.07), ("and_but", 0.04), ("although_and", 0.03),
              ("but_although", 0.03))
_CUM = np.cumsum([w for _, w in _TEMPLATES]) / sum(w for _, w in _TEMPLATES)


class _Gen:
    """Builds one sentence at a time from a ``random.Random``."""

    def __init__(self, r: random.Random):
        self.r = r

    def modifier(self, lex: int, negated: bool) -> tuple[str, ...]:
        """An optional intensifier/downtoner before an adjective of polarity ``lex``."""
        r = self.r
        u = r.random()
        if negated:
            if u < 0.25:
                return (r.choice(("very", "really", "so", "too" if lex < 0 else "truly")),)
            return ()
        if u < 0.25:
            return (r.choice(_INT + (("too",) * 2 if lex < 0 else ())),)
        if u < 0.37:
            return r.choice(_DOWN[lex])
        return ()

    def predicate(self, lex: int, negated: bool, aux: str) -> list[str]:
        """``aux`` (copula; may be "") + negation + modifier + adjective, or a noun phrase."""
        r = self.r
        out = [aux] if aux else []
        if negated:
            out.append(r.choice(("not", "n't", "never", "hardly") if aux else ("not", "never")))
        if aux and r.random() < 0.15:
            if out[-1] == "hardly":
                out[-1] = "not"
            return out + list(r.choice(_PHRASES[lex]))
        if not (negated and out[-1] == "hardly"):
            out += self.modifier(lex, negated)
        return out + list(r.choice(self.dom.adjectives[lex]))

    def subject(self) -> tuple[tuple[str, ...], bool]:
        subj = self.r.choice(self.dom.subjects)
        while subj[0] == self.last_subject:
            subj = self.r.choice(self.dom.subjects)
        self.last_subject, self.plural = subj
        return subj

    def clause(self, ctx: int, form: str) -> tuple[list[str], bool]:
        """Tokens of a clause whose contextual polarity is ``ctx``, and whether it is negated."""
        r = self.r
        negated = r.random() < P_NEGATED
        lex = -ctx if negated else ctx
        if form == "recommend" and ctx > 0 and negated:  # not "would not avoid" but "didn't hate"
            form = "verb"
        elif form == "np" and negated:  # not "not rude staff" but "the staff was not rude"
            form = "copula"
        if form == "copula" or form == "pron":
            if form == "pron":
                plural = self.plural
                words = ("they",) if plural else ("it",)
            else:
                words, plural = self.subject()
            return list(words) + self.predicate(lex, negated, _COPULA[plural, self.past]), negated
        if form == "bare":  # "too long", "not funny"
            return self.predicate(lex, negated, ""), negated
        if form == "np":  # "good acting", "very fresh fries"
            words, _ = self.subject()
            return list(self.modifier(lex, False)) + list(r.choice(self.dom.adjectives[lex])) + list(words[1:]), False
        obj = list(self.subject()[0])
        pron = r.choice(("i", "we"))
        if form == "recommend":
            if negated:  # ctx < 0
                return [pron, "would", r.choice(("not", "n't", "never")), "recommend"] + obj, True
            if ctx > 0:
                return [pron, "would"] + ([r.choice(("highly", "definitely"))] if r.random() < 0.4 else []) \
                    + ["recommend"] + obj, False
            return [pron, "would"] + (["definitely"] if r.random() < 0.3 else []) + ["avoid"] + obj, False
        past, base = r.choice(_VERBS[lex])
        if negated:
            head = [pron, "never"] if r.random() < 0.25 else \
                [pron, "did" if self.past else "do", r.choice(("not", "n't"))]
            return head + (["really"] if r.random() < 0.2 else []) + [base] + obj, True
        adverb = [r.choice(("really", "absolutely", "truly"))] if r.random() < 0.25 else []
        return [pron] + adverb + [past if self.past else base] + obj, False

    def opposite(self, ctx: int, forms: str, negated: bool) -> list[str]:
        """A clause of contextual polarity ``ctx`` that contrasts with a clause negated
        like ``negated``: both negated or neither, so their polar words differ in sign too
        ("good but slow", "not bad but not great"; never "not bad, though awful")."""
        state = self.plural, self.last_subject
        for _ in range(20):
            self.plural, self.last_subject = state  # a pronoun refers to the previous clause
            toks, neg = self.clause(ctx, self.form(forms))
            if neg == negated:
                break
        return toks

    def form(self, options: str) -> str:
        return self.r.choice(options.split())

    def sentence(self, label: int, domain: str) -> tuple[list[str], str]:
        """Tokens and kind of one sentence with ``label`` under the composition rule."""
        r = self.r
        self.dom = _DOMAIN_DATA[domain]
        self.past = r.random() < 0.6
        self.plural = False
        self.last_subject = None
        ctx = 1 if label else -1
        template = _TEMPLATES[int(np.searchsorted(_CUM, r.random(), side="right"))][0]
        main = "copula copula copula verb recommend"
        if template == "single":
            toks, negated = self.clause(ctx, self.form("copula copula copula copula verb verb recommend np"))
            kind = "negation" if negated else "plain"
        elif template == "but":  # the clause after "but" decides
            first, neg = self.clause(-ctx, self.form("copula copula verb np np"))
            second = self.opposite(ctx, "copula pron bare bare verb recommend", neg)
            toks, kind = first + ([","] if r.random() < 0.5 else []) + ["but"] + second, "contrast"
        elif template == "yet":
            first, neg = self.clause(-ctx, self.form("copula verb np"))
            second = self.opposite(ctx, "copula pron bare", neg)
            toks, kind = first + [",", "yet"] + second, "contrast"
        elif template == "although_first":  # the concession never decides
            conc, neg = self.clause(-ctx, self.form("copula bare bare verb"))
            second = self.opposite(ctx, main + " pron pron", neg)
            toks, kind = [r.choice(("although", "though"))] + conc + [","] + second, "concession"
        elif template == "although_last":
            first, neg = self.clause(ctx, self.form(main))
            conc = self.opposite(-ctx, "copula bare bare pron", neg)
            toks, kind = first + [",", r.choice(("although", "though"))] + conc, "concession"
        elif template == "and":  # two clauses that agree
            first, _ = self.clause(ctx, self.form("copula copula verb"))
            second, _ = self.clause(ctx, self.form("copula pron recommend"))
            toks, kind = first + ["and"] + second, "multi"
        elif template == "and_but":
            first, _ = self.clause(-ctx, self.form("copula np"))
            mid, neg = self.clause(-ctx, "copula")
            last = self.opposite(ctx, "copula pron verb", neg)
            toks, kind = first + ["and"] + mid + [",", "but"] + last, "multi"
        elif template == "although_and":
            first, _ = self.clause(-ctx, "copula")
            mid, neg = self.clause(-ctx, self.form("copula bare"))
            last = self.opposite(ctx, main, neg)
            toks, kind = [r.choice(("although", "though"))] + first + ["and"] + mid + [","] + last, "multi"
        else:  # but_although: the middle clause decides
            first, neg = self.clause(-ctx, self.form("copula np"))
            mid = self.opposite(ctx, "copula pron", neg)
            last = self.opposite(-ctx, "copula bare", neg)
            toks, kind = first + ["but"] + mid + [",", "although"] + last, "multi"
        u = r.random()
        if u < 0.4:
            toks.append(".")
        elif u < 0.45:
            toks.append("!")
        return toks, kind


def make_example(tokens: Sequence[str], label: int, domain: str = "", kind: str = "") -> Example:
    """An :class:`Example` of ``tokens`` (its text: the tokens joined by spaces, ``n't``
    reattached, so that ``tokenize(text) == tokens``) with its tracks."""
    tokens = tuple(tokens)
    text = " ".join(tokens).replace(" n't", "n't")
    return Example(text, int(label), tokens, sentiment_tracks(tokens), domain, kind)


def generate_sentiment(n: int, seed: int) -> list[Example]:
    """``n`` generated review sentences, the same for the same seed.

    Labels are balanced (exactly, up to one; also within each kind) and follow the
    composition rule of :func:`sentiment_tracks` (tests check the two agree). Five
    domains (movies, food, books, hotels, phones), 73 positive and 71 negative
    adjectives/phrases plus verbs ("loved", "hated", "would recommend"), ~270 words.
    Kinds: single clauses, plain (~21%) or negated (~14%); contrasts with "but"/"yet"
    (~25%); concessions with "although"/"though" before or after the main clause
    (~22%); multi-clause sentences (~17%). Contrasting clauses are both negated or
    neither, so their polar words differ in sign ("not bad, but not great"). Texts are distinct within one call
    (a draw that repeats an earlier text is redrawn, up to 50 times; the sentence space
    is far larger than 20,000, so this never runs out in practice). ~0.5 s for 20,000.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    r = random.Random(seed)
    gen = _Gen(r)
    labels = [i % 2 for i in range(n)]
    r.shuffle(labels)
    seen: set[str] = set()
    out = []
    for label in labels:
        for _ in range(50):
            domain = r.choice(SENTIMENT_DOMAINS)
            toks, kind = gen.sentence(label, domain)
            ex = make_example(toks, label, domain, kind)
            if ex.text not in seen:
                break
        seen.add(ex.text)
        out.append(ex)
    return out


def track_matrix(examples: Sequence[Example], name: str, max_len: int) -> np.ndarray:
    """float32 (N, max_len) of track ``name``, zero-padded/truncated like
    :func:`~backend.tasks.words.encode`."""
    out = np.zeros((len(examples), max_len), dtype=np.float32)
    for i, ex in enumerate(examples):
        values = ex.tracks[name][:max_len]
        out[i, :len(values)] = values
    return out
