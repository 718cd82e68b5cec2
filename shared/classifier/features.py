"""The features one post gives the statistical model — the same function at training time (``otklik train``)
and in the classify function, so the model sees in production exactly what it learnt from.

- ``w:<lemma>``: every word's lemma (present or not). No word pairs: they cost a third of the time and gained
  nothing measurable in cross-validation; the taxonomy's phrases carry the pairs that matter;
- ``v:<lemma>:<form>``: verbs with their tense or mood ("уберите" is a request, "убрали" is done);
- ``t:<category>``, ``c:+``, ``c:-``, ``d:rules``: the taxonomy's scores (so operators' phrases count);
- ``f:...``: shape — a question, exclamations, shouting, length, a link;
- ``g:...``: genre — who speaks and how. A resident writes in the first person ("у нас", "живу", "мы
  обращались") or to the authorities in the second ("вы", "примите"); a news item or a notice speaks of others
  in the third person, dates its events ("21 мая", "2024 года"), quotes people and starts with a headline. The
  topic words of news and complaints are the same ("автобус", "горячая вода"), so on real posts these cues
  decide more than the topic does.

The network a post came from is deliberately not a feature: it says little about a post and taught the model
the corpus's proportions instead.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

from shared.classifier.taxonomy import Scores
from shared.classifier.text import Token, _morph, words

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


FIRST_PERSON = frozenset(
    [
        "я",
        "мы",
        "мне",
        "меня",
        "мной",
        "нам",
        "нас",
        "нами",
        "мой",
        "моя",
        "мое",
        "мои",
        "моего",
        "моей",
        "моих",
        "моим",
        "моему",
        "наш",
        "наша",
        "наше",
        "наши",
        "нашего",
        "нашей",
        "наших",
        "нашем",
        "нашу",
        "нашим",
    ]
)
SECOND_PERSON = frozenset(["вы", "вас", "вам", "вами", "ваш", "ваша", "ваше", "ваши", "вашего", "вашей", "ваших"])
_DATE = re.compile(
    r"\b\d{1,2}\s+(?:январ|феврал|марта|апрел|мая|июн|июл|август|сентябр|октябр|ноябр|декабр)", re.IGNORECASE
)
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")


@functools.lru_cache(maxsize=100_000)
def _person(lower: str) -> str:
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    return str(parses[0].tag.person or "") if parses else ""


def genre(text: str, ws: Sequence[Token]) -> dict[str, float]:
    out: dict[str, float] = {}
    n = max(len(ws), 1)
    first = sum(1 for t in ws if t.lower in FIRST_PERSON)
    third = 0
    for t in ws:
        if t.form:
            person = _person(t.lower)
            first += person == "1per"
            third += person == "3per"
    if first:
        out["g:first"] = 1.0
    out["g:first_rate"] = min(first / n * 10, 1.0)
    out["g:third_rate"] = min(third / n * 10, 1.0)
    if any(t.lower in SECOND_PERSON for t in ws):
        out["g:second"] = 1.0
    if _DATE.search(text):
        out["g:date"] = 1.0
    if _YEAR.search(text):
        out["g:year"] = 1.0
    if "«" in text or '"' in text:
        out["g:quote"] = 1.0
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) > 1 and len(lines[0]) < 120 and not lines[0].rstrip().endswith((".", "!", "?", ":")):
        out["g:headline"] = 1.0
    return out


def features(text: str, tokens: Sequence[Token], scores: Scores) -> dict[str, float]:
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
    out.update(genre(text, ws))
    return out
