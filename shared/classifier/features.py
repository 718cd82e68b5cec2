"""The features one post gives the statistical model — the same function at training time (``otklik train``)
and in the classify function, so the model sees in production exactly what it learnt from.

- ``w:<lemma>``: every word's lemma (present or not). No word pairs: they cost a third of the time and gained
  nothing measurable in cross-validation; the taxonomy's phrases carry the pairs that matter;
- ``v:<lemma>:<form>``: verbs with their tense or mood ("уберите" is a request, "убрали" is done);
- ``t:<category>``, ``c:+``, ``c:-``, ``d:rules``: the taxonomy's scores (so operators' phrases count);
- ``f:...``: shape — a question, exclamations, shouting, length, a link, the network it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.classifier.taxonomy import Scores
from shared.classifier.text import Token, words

STOP_LEMMAS = frozenset(
    [
        "и",
        "в",
        "во",
        "на",
        "с",
        "со",
        "по",
        "к",
        "а",
        "о",
        "об",
        "у",
        "за",
        "из",
        "от",
        "до",
        "же",
        "ли",
        "бы",
        "то",
        "это",
        "как",
        "что",
    ]
)


def features(text: str, tokens: Sequence[Token], scores: Scores, source: str | None) -> dict[str, float]:
    ws = words(list(tokens))
    out: dict[str, float] = {}
    lemmas = [t.lemma for t in ws]
    for lemma in lemmas:
        if lemma not in STOP_LEMMAS and not lemma.isdigit():
            out[f"w:{lemma}"] = 1.0
    for t in ws:
        if t.form:
            out[f"v:{t.lemma}:{t.form}"] = 1.0
            out[f"f:verb_{t.form}"] = 1.0
    for category, value in scores.categories.items():
        if value:
            out[f"t:{category}"] = math.log1p(value)
    if scores.complaint:
        out["c:+"] = math.log1p(scores.complaint)
    if scores.non_complaint:
        out["c:-"] = math.log1p(scores.non_complaint)
    if scores.danger:
        out["d:rules"] = math.log1p(scores.danger)
        if scores.danger >= 3:
            out["d:rules3"] = 1.0
    if scores.resolved:
        out["d:resolved"] = 1.0
    if "?" in text:
        out["f:question"] = 1.0
    if "!!" in text or "!!!" in text:
        out["f:exclaim"] = 1.0
    shouting = [t for t in ws if len(t.text) > 3 and t.text.isupper()]
    if shouting:
        out["f:caps"] = 1.0
    out["f:len"] = min(len(text), 600) / 600
    if len(text) < 40:
        out["f:short"] = 1.0
    if "http" in text or "vk.com" in text or "t.me/" in text:
        out["f:link"] = 1.0
    if source:
        out[f"f:source_{source}"] = 1.0
    return out
