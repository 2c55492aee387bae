"""The composition rule of the sentiment corpus: its lexicon, word classes and per-token tracks.

A sentence's label follows the rule a person applies: negation flips a polar word ("not bad"
is positive), and in a contrast the clause after "but"/"yet" decides while a concession
("although"/"though" ...) never does. :func:`sentiment_tracks` follows the rule token by token;
on sentences of :mod:`backend.tasks.sentiment.corpus` it is exact (the generator builds
sentences to it), on other text it is a lexicon heuristic. The word lists here are also the
generator's vocabulary. Pure standard library (no numpy, no torch).

Example::

    LEXICON["dull"], LEXICON["loved"]          # -1, 1
    tokens = ["although", "slow", ",", "it", "was", "wonderful"]
    tracks = sentiment_tracks(tokens)
    tracks["concessive"]                       # (1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    tracks["sentiment"][-1]                    # 1.0: the main clause decides
    rule_label(["not", "bad"])                 # 1 (positive)
"""
from __future__ import annotations

from typing import Mapping, Sequence

SENTIMENT_TRACKS = ("polarity", "negated", "intensity", "concessive", "sentiment")

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
