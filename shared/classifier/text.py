"""Russian text as the classifier sees it: tokens, each with its pymorphy3 lemmas.

Tokens are words (letters and digits, hyphenated parts kept together: "Кирово-Чепецком", "р-не") and runs of
other characters; one compiled regular expression, because razdel's finer rules (abbreviations, fractions)
change nothing the classifier uses and cost half of its time.

Russian inflects heavily ("яма", "ямы", "ямой", "яму" are one word), so every rule and model feature speaks in
lemmas. A word may have several readings ("ямы" is also the genitive of "ям"); ``lemmas`` keeps the normal form
of every reading, ``lemma`` the most probable one. Parsing is cached per lower-cased word: posts repeat words a
lot, and a cached word costs a dict lookup instead of a dictionary walk.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

_WORD = re.compile(r"[а-яёa-z0-9]", re.IGNORECASE)
_TOKEN = re.compile(r"[0-9a-zа-яё]+(?:[-‐][0-9a-zа-яё]+)*|[^\s0-9a-zа-яё]+", re.IGNORECASE)
_URL = re.compile(
    r"(?:https?://|www\.)\S+|\b(?:vk\.com|t\.me|ok\.ru)/\S+|\[(?:id|club|public)\d+\|[^\]]*\]", re.IGNORECASE
)


@functools.cache
def _morph() -> object:
    import logging

    import pymorphy3  # type: ignore[import-untyped]

    logging.getLogger("pymorphy3").setLevel(logging.WARNING)  # it announces every dictionary load at INFO
    return pymorphy3.MorphAnalyzer()


class Token(NamedTuple):  # a NamedTuple: built several times faster than a frozen dataclass, per word
    text: str  # as written
    lower: str  # lower-cased, ё as е
    lemma: str  # the most probable normal form
    lemmas: frozenset[str]  # every reading's normal form, and the word itself
    start: int  # offset in the text
    is_word: bool
    capitalized: bool
    geo: bool  # pymorphy knows it as a place name (Geox)
    form: str  # of a verb: past, pres, futr or impr (a request: "уберите"); "" otherwise


@functools.lru_cache(maxsize=200_000)
def analyse_word(lower: str) -> tuple[str, frozenset[str], bool, str]:
    """(best lemma, all lemmas, is a known place name, verb form) of a lower-cased word."""
    if not _WORD.search(lower) or lower.isdigit():
        return lower, frozenset({lower}), False, ""
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    if not parses:
        return lower, frozenset({lower}), False, ""
    best = parses[0].normal_form.replace("ё", "е")
    every = frozenset({p.normal_form.replace("ё", "е") for p in parses[:4]} | {lower})
    geo = any("Geox" in p.tag for p in parses[:2])
    tag = parses[0].tag
    form = ""
    if tag.POS == "VERB":
        form = "impr" if tag.mood == "impr" else str(tag.tense or "")
    return best, every, geo, form


def parse_word(lower: str) -> tuple[str, frozenset[str], bool]:
    """(best lemma, all lemmas, is a known place name) of a lower-cased word."""
    lemma, lemmas, geo, _ = analyse_word(lower)
    return lemma, lemmas, geo


def tokenize(text: str) -> list[Token]:
    tokens = []
    # Links and VK mentions ([id1|Имя]) are not words of the post; blanked to keep offsets.
    text = _URL.sub(lambda m: " " * len(m.group(0)), text)
    for piece in _TOKEN.finditer(text):
        raw = piece.group(0)
        lower = raw.lower().replace("ё", "е")
        is_word = bool(_WORD.search(raw))
        lemma, lemmas, geo, form = analyse_word(lower) if is_word else (lower, frozenset({lower}), False, "")
        tokens.append(Token(raw, lower, lemma, lemmas, piece.start(), is_word, raw[:1].isupper(), geo, form))
    return tokens


def words(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.is_word]


def lemma_key(phrase: str) -> tuple[str, ...]:
    """The lemmas of an operator's phrase ("открытые люки" -> ("открытый", "люк")), as rules are matched."""
    return tuple(t.lemma for t in words(tokenize(phrase)))
