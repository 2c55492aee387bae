"""Sentiment of short English reviews: a generated compositional corpus with per-token
annotation tracks, word tokenisation and vocabularies, and users' own CSV files.

Pure numpy + standard library (no torch). The generated corpus needs composition: a
sentence's label follows the rule a person applies, so negation flips a word ("not bad"
is positive), and in a contrast the clause after "but"/"yet" decides while a concession
("although"/"though" ...) never does. A bag of words therefore scores only ~57%.

Example::

    train = generate_sentiment(20_000, SENTIMENT_SEEDS["train"])
    ex = train[0]     # e.g. ex.text "the plot wasn't bad , but the ending was dull", ex.label 0
    ex.tokens         # ("the", "plot", "was", "n't", "bad", ",", "but", ...)
    ex.tracks["negated"]                 # (0, 0, 0, 1, 1, 0, 0, ...)
    vocab = build_vocab(ex.tokens for ex in train)
    ids, lengths = encode([ex.tokens for ex in train], vocab, max_len=32)
    tracks = sentiment_tracks(tokenize("although slow , it was wonderful"))
    tracks["sentiment"][-1]              # 1.0: the main clause decides
    texts, labels, names = load_sentiment_csv("reviews.csv")   # names e.g. ("neg", "pos")
"""
from __future__ import annotations

import csv
import io
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

SENTIMENT_LABELS = ("negative", "positive")
# Seeds of the three generated corpora of sentiment-cnn / sentiment-lstm: all differ.
SENTIMENT_SEEDS = {"train": 101, "val": 102, "probe": 103}
SENTIMENT_TRACKS = ("polarity", "negated", "intensity", "concessive", "sentiment")
SENTIMENT_KINDS = ("plain", "negation", "contrast", "concession", "multi")
PAD = "<pad>"
UNK = "<unk>"

# -- tokenisation -------------------------------------------------------------------

# Penn-Treebank style: "didn't" -> "did" "n't", "can't" -> "ca" "n't", "it's" -> "it" "'s";
# hyphenated words stay whole; every other non-space, non-word character is a token.
_TOKEN = re.compile(r"[^\W_]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:-[^\W_]+)*|\S")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``; punctuation is separate and a negative
    contraction is split off as ``n't`` (``"didn't"`` -> ``["did", "n't"]``).
    Typographic apostrophes count as ``'``."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'").replace("\u2018", "'"))


# -- lexicon --------------------------------------------------------------------------
# An entry of several words carries its polarity on the word marked "*" (else the first).

_GENERAL_POS = ("good", "great", "excellent", "wonderful", "fantastic", "amazing", "superb", "brilliant",
                "lovely", "pleasant", "perfect", "outstanding", "impressive", "solid", "nice", "enjoyable",
                "terrific", "delightful", "decent", "charming")
_GENERAL_NEG = ("bad", "terrible", "awful", "horrible", "poor", "dreadful", "disappointing", "mediocre",
                "lousy", "unpleasant", "annoying", "frustrating", "weak", "underwhelming", "subpar",
                "atrocious", "abysmal", "miserable", "forgettable", "sloppy")
_PHRASES_POS = ("a *joy", "a *delight", "a real *treat", "*worth the money", "*worth every penny",
                "a pleasant *surprise", "a *gem", "a *triumph")
_PHRASES_NEG = ("a *waste of time", "a *waste of money", "a *letdown", "a *disaster", "a *mess",
                "a *disappointment", "a *nightmare", "a *failure")

# domain: (singular subjects, plural subjects, positive adjectives, negative adjectives)
_DOMAINS: dict[str, tuple[tuple[str, ...], ...]] = {
    "movies": (
        ("the film", "the movie", "this movie", "this film", "the sequel", "the plot", "the story",
         "the acting", "the ending", "the script", "the soundtrack", "the dialogue"),
        ("the jokes", "the characters", "the action scenes", "the performances"),
        ("funny", "gripping", "moving", "hilarious", "thrilling", "entertaining", "touching", "clever",
         "suspenseful", "well acted"),
        ("boring", "dull", "slow", "predictable", "long", "tedious", "confusing", "cliched", "pointless",
         "silly", "pretentious", "poorly acted"),
    ),
    "food": (
        ("the food", "the meal", "the pizza", "the soup", "the burger", "the service", "the staff",
         "the dessert", "this restaurant", "the pasta"),
        ("the fries", "the portions", "the noodles", "the waiters"),
        ("delicious", "tasty", "fresh", "flavorful", "crispy", "juicy", "generous", "friendly", "attentive",
         "hearty"),
        ("bland", "greasy", "cold", "stale", "overcooked", "soggy", "salty", "rude", "slow", "overpriced",
         "undercooked"),
    ),
    "books": (
        ("the book", "this novel", "the novel", "the story", "the writing", "the ending", "the prose",
         "the plot", "this memoir"),
        ("the characters", "the chapters", "the descriptions"),
        ("engaging", "insightful", "well written", "captivating", "witty", "moving", "clever", "gripping",
         "thoughtful"),
        ("tedious", "shallow", "poorly written", "repetitive", "dry", "confusing", "boring", "long",
         "predictable", "pretentious"),
    ),
    "hotels": (
        ("the hotel", "our room", "the room", "the bed", "the staff", "the location", "the breakfast",
         "the bathroom", "the lobby", "the pool"),
        ("the beds", "the rooms", "the towels", "the receptionists"),
        ("clean", "spacious", "comfortable", "quiet", "cozy", "friendly", "helpful", "convenient",
         "spotless", "welcoming"),
        ("dirty", "noisy", "cramped", "smelly", "uncomfortable", "rude", "unhelpful", "tiny", "shabby",
         "overpriced", "cold"),
    ),
    "phones": (
        ("this phone", "the phone", "the battery", "the screen", "the camera", "the charger", "the app",
         "the keyboard", "this laptop", "the speaker"),
        ("the buttons", "the speakers", "the headphones", "the updates"),
        ("fast", "reliable", "sleek", "responsive", "sturdy", "bright", "sharp", "intuitive", "light",
         "durable"),
        ("slow", "buggy", "laggy", "flimsy", "unreliable", "dim", "clunky", "fragile", "glitchy",
         "overpriced", "heavy"),
    ),
}
SENTIMENT_DOMAINS = tuple(_DOMAINS)
# verbs: (past, base) with their polarity; "recommend" / "avoid" come with "would"
_VERBS_POS = (("loved", "love"), ("liked", "like"), ("enjoyed", "enjoy"), ("adored", "adore"),
              ("appreciated", "appreciate"))
_VERBS_NEG = (("hated", "hate"), ("disliked", "dislike"), ("loathed", "loathe"), ("detested", "detest"))

NEGATORS = frozenset({"not", "n't", "never", "hardly", "barely", "no", "cannot"})
INTENSIFIERS = frozenset({"very", "really", "extremely", "so", "incredibly", "truly", "absolutely", "totally",
                          "too", "highly", "definitely", "remarkably"})
DOWNTONERS = frozenset({"slightly", "somewhat", "fairly", "rather"})
_DOWN_AFTER_A = frozenset({"bit", "little"})  # "a bit", "a little"
CONTRASTS = frozenset({"but", "yet", "however"})
CONCESSIVES = frozenset({"although", "though"})
# a negation's scope ends at these; a concession's at punctuation or a contrast
CLAUSE_BREAKS = frozenset({",", ";", ":", ".", "!", "?", "and", "or"}) | CONTRASTS | CONCESSIVES
_CONCESSION_ENDS = frozenset({",", ";", ":", ".", "!", "?"}) | CONTRASTS


def _entry(phrase: str) -> tuple[tuple[str, ...], str]:
    """(tokens, polar head word) of a lexicon entry."""
    words = phrase.split()
    head = next((w for w in words if w.startswith("*")), words[0])
    return tuple(w.lstrip("*") for w in words), head.lstrip("*")


def _build_lexicon() -> dict[str, int]:
    lexicon: dict[str, int] = {}
    for sign, col, adjectives, phrases, verbs in ((1, 2, _GENERAL_POS, _PHRASES_POS, _VERBS_POS),
                                                  (-1, 3, _GENERAL_NEG, _PHRASES_NEG, _VERBS_NEG)):
        entries = adjectives + phrases + tuple(a for spec in _DOMAINS.values() for a in spec[col])
        for phrase in entries:
            lexicon[_entry(phrase)[1]] = sign
        for past, base in verbs:
            lexicon[past] = lexicon[base] = sign
    lexicon["recommend"], lexicon["avoid"] = 1, -1
    return lexicon


# word -> lexical polarity (+1 / -1) of every polar word the generator uses
LEXICON: Mapping[str, int] = _build_lexicon()


# -- annotation tracks ----------------------------------------------------------------

def sentiment_tracks(tokens: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Per-token annotation tracks of a tokenised sentence, by the rule of the generator.

    Keys (tuples of ``len(tokens)`` floats); a value describes the state *after reading*
    the token, so a negator is inside its own scope:

    - ``"polarity"``: lexical polarity from :data:`LEXICON` before negation: +1, -1 or 0;
    - ``"negated"``: 1 from a negator (:data:`NEGATORS`) up to the next clause break
      (punctuation, "and", "but", "although", ...), the break excluded;
    - ``"intensity"``: 1 on intensifiers ("very", "too", ...), -1 on downtoners
      ("slightly", "a bit", "a little", ...), else 0;
    - ``"concessive"``: 1 from "although"/"though" up to the next punctuation or contrast;
    - ``"sentiment"``: the sentence's sentiment so far: the contextual polarity
      (flipped when negated) of the latest polar word outside a concession; reset to 0
      by "but"/"yet"/"however". Its last value is the label (+1 positive, -1 negative).

    On generated sentences these are exact; on other text they are a lexicon heuristic.
    """
    n = len(tokens)
    polarity, negated, intensity, concessive, sentiment = ([0.0] * n for _ in range(5))
    neg = conc = False
    s = 0.0
    for t, tok in enumerate(tokens):
        if tok in CLAUSE_BREAKS:
            neg = False
            if tok in _CONCESSION_ENDS:
                conc = False
            if tok in CONCESSIVES:
                conc = True
            elif tok in CONTRASTS:
                s = 0.0
        elif tok in NEGATORS:
            neg = True
        elif tok in INTENSIFIERS:
            intensity[t] = 1.0
        elif tok in DOWNTONERS:
            intensity[t] = -1.0
        elif tok in _DOWN_AFTER_A and t and tokens[t - 1] == "a":
            intensity[t] = intensity[t - 1] = -1.0
        p = LEXICON.get(tok, 0)
        if p:
            polarity[t] = float(p)
            if not conc:
                s = float(-p if neg else p)
        negated[t] = 1.0 if neg else 0.0
        concessive[t] = 1.0 if conc else 0.0
        sentiment[t] = s
    return {"polarity": tuple(polarity), "negated": tuple(negated), "intensity": tuple(intensity),
            "concessive": tuple(concessive), "sentiment": tuple(sentiment)}


def rule_label(tokens: Sequence[str]) -> int | None:
    """The label the rule of :func:`sentiment_tracks` gives (1 positive, 0 negative), or
    None when no polar word outside a concession decides."""
    s = sentiment_tracks(tokens)["sentiment"]
    return None if not s or s[-1] == 0 else int(s[-1] > 0)


# -- the generated corpus -------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    """One labelled sentence: ``label`` 0 negative / 1 positive, ``tokens`` ==
    ``tuple(tokenize(text))`` and ``tracks`` (see :func:`sentiment_tracks`) with one value
    per token. ``kind`` is one of :data:`SENTIMENT_KINDS`, ``domain`` of :data:`SENTIMENT_DOMAINS`."""

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
    """float32 (N, max_len) of track ``name``, zero-padded/truncated like :func:`encode`."""
    out = np.zeros((len(examples), max_len), dtype=np.float32)
    for i, ex in enumerate(examples):
        values = ex.tracks[name][:max_len]
        out[i, :len(values)] = values
    return out


# -- vocabulary and ids ---------------------------------------------------------------

def build_vocab(token_lists: Iterable[Sequence[str]], max_size: int | None = None,
                min_count: int = 1) -> tuple[str, ...]:
    """``(PAD, UNK, words...)``: words seen at least ``min_count`` times, by descending
    frequency, ties alphabetical; at most ``max_size`` entries in all (PAD and UNK included)."""
    if max_size is not None and max_size < 2:
        raise ValueError("max_size must be at least 2 (PAD and UNK)")
    counts = Counter(tok for toks in token_lists for tok in toks)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[:max_size - 2]
    return (PAD, UNK, *words)


def encode(token_lists: Iterable[Sequence[str]], vocab: Sequence[str],
           max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths): int64 (N, max_len) ids, unknown words -> 1 (UNK), right-padded with
    0 (PAD) and truncated at ``max_len``; int64 (N,) lengths after truncation."""
    if max_len < 1:
        raise ValueError("max_len must be >= 1")
    index = {w: i for i, w in enumerate(vocab)}
    rows = [[index.get(tok, 1) for tok in toks[:max_len]] for toks in token_lists]
    ids = np.zeros((len(rows), max_len), dtype=np.int64)
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids, lengths


def decode(ids: Sequence[int], vocab: Sequence[str]) -> list[str]:
    """Words of one row of ids, PAD dropped (the inverse of :func:`encode` for known words)."""
    return [vocab[i] for i in ids if i != 0]


def word_counts(token_lists: Iterable[Sequence[str]], vocab: Sequence[str]) -> np.ndarray:
    """int64 count of each vocabulary id in the corpus; out-of-vocabulary words count as UNK."""
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.zeros(len(vocab), dtype=np.int64)
    for tok, c in Counter(tok for toks in token_lists for tok in toks).items():
        counts[index.get(tok, 1)] += c
    return counts


# -- users' own files -----------------------------------------------------------------

class SentimentFileError(ValueError):
    """A sentiment CSV that cannot be used; the message says where and why."""


def _builtin_vocab() -> tuple[str, ...]:
    """The generator's closed vocabulary, by frequency in a 3,000-example training corpus (60 ms);
    a test checks that no generated corpus has a word outside it."""
    return build_vocab(ex.tokens for ex in generate_sentiment(3000, SENTIMENT_SEEDS["train"]))


# The built-in sentiment tasks' vocabulary and text length (the longest generated text is 24 tokens).
SENTIMENT_VOCAB: tuple[str, ...] = _builtin_vocab()
SENTIMENT_MAX_LEN = 32


def load_sentiment_csv(path: str | Path, text_column: str = "text",
                       label_column: str = "label") -> tuple[list[str], list[int], tuple[str, ...]]:
    """(texts, label ids, label names) of a UTF-8 CSV file with a header row.

    Labels may be names ("pos"/"neg") or integers; ids index the sorted distinct names
    (integers sorted numerically), e.g. ``("neg", "pos")``. Blank lines are skipped;
    texts and labels are stripped of surrounding spaces. Raises
    :class:`SentimentFileError` naming the file, and the row where one is at fault.
    """
    path = Path(path)
    if not path.exists():
        raise SentimentFileError(f"{path}: no such file")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SentimentFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SentimentFileError(f"{path}: not UTF-8 text (byte 0x{content[exc.start]:02x} at offset "
                                 f"{exc.start}); save it as UTF-8") from None
    if not text.strip():
        raise SentimentFileError(f"{path}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
        columns = [cell.strip() for cell in header]
        missing = [c for c in (text_column, label_column) if c not in columns]
        if missing:
            hint = " (is it comma-separated?)" if len(columns) == 1 and re.search(r"[;\t|]", columns[0]) else ""
            raise SentimentFileError(f"{path}: no column {missing[0]!r}; the columns are "
                                     f"{', '.join(repr(c) for c in columns)}{hint}")
        ti, li = columns.index(text_column), columns.index(label_column)
        texts, raw = [], []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"row {len(texts) + 1} (line {reader.line_num})"
            body = row[ti].strip() if ti < len(row) else ""
            label = row[li].strip() if li < len(row) else ""
            if not body:
                raise SentimentFileError(f"{path}: {where} has an empty {text_column!r}")
            if not label:
                raise SentimentFileError(f"{path}: {where} has an empty {label_column!r}")
            texts.append(body)
            raw.append(label)
    except csv.Error as exc:
        raise SentimentFileError(f"{path}: line {reader.line_num}: {exc}") from None
    if not texts:
        raise SentimentFileError(f"{path}: the file has a header but no rows")
    if all(re.fullmatch(r"[+-]?\d+", lab) for lab in raw):
        raw = [str(int(lab)) for lab in raw]
        names = tuple(sorted(set(raw), key=int))
    else:
        names = tuple(sorted(set(raw)))
    if len(names) < 2:
        raise SentimentFileError(f"{path}: needs at least 2 distinct labels in {label_column!r}, "
                                 f"found only {names[0]!r}")
    ids = {name: i for i, name in enumerate(names)}
    return texts, [ids[lab] for lab in raw], names
