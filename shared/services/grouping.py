"""Incidents, not posts (issue 9): which posts are about the same problem, and what a new post does to the
incidents already open or resolved. Pure: no GCP, no numpy; text tools from ``shared.classifier``.

**The key of a post** (:class:`ProblemKey`, built by :func:`problem_key`): category, municipality, the places
the text names — addresses (street + house: "ул. Ленина, 102", "Ленина 102", "на Ленина, д. 102" all give
``ленин|102``), streets without a house ("пр. Победы Революции", "на Октябрьском проспекте", "по Советской"),
landmarks ("школа № 5" / "у 5-й школы" / "возле 5 школы" give ``школа#5``; "у остановки" gives ``остановка``),
settlements (the gazetteer's, as the classifier finds them) — a ~250 m geo cell when the post has coordinates,
and the content stems: lemmas without stop words, place words and numbers, cut to 6 letters so that a typo at
the end or a derived word still meets ("освещение"/"освещения", "ямищи" stays apart from "яма" — a price paid).

**The rule** (:func:`same_problem`), in order — the first that fails decides "not the same":

1. *category*: equal, or a compatible pair (:data:`COMPATIBLE`: a sidewalk pit is roads to one operator and
   landscaping to another; icicles are housing & utilities or safety);
2. *municipality*: equal when both are known;
3. *time*: the posts within :data:`WINDOW` (14 days) of each other, :data:`CRITICAL_WINDOW` (3 days) when either is
   critical. Ordinary problems are written about for weeks ("третью неделю нет горячей воды", "уже третий раз
   пишу"), and 14 days covers the repeat posts while a pothole that is back next season is a new incident. A
   hazard is posted in a burst within hours; one a week later is a *new* occurrence (the lid stolen again) or
   an unfixed one, and merging it silently into a stale incident would hide a hazard — a false split only
   duplicates work, a false merge loses a critical alert. (Open incidents are not bound by the window: see
   :func:`decide`.);
4. *place conflicts*: different houses of the same street, no common settlement when both name one, geo
   points more than :data:`GEO_FAR_M` apart → not the same; two different streets and none in common → a
   penalty as large as identical text (residents write the same complaint about many roads), which only strong
   place evidence outweighs (the same numbered landmark: a resident may name the cross street);
5. *score* = text similarity (at least :data:`MIN_TEXT`: the same address alone is not the same problem)
   + place evidence ≥ :data:`THRESHOLD` (tuned on the pair set's training split,
   ``otklik eval-grouping``). Text similarity is the idf-weighted cosine of the content stems (idf from the
   labelled corpus, ``grouping_idf.json``: "яма", "дорога" are everywhere and say little; "арматура",
   "сосулька" say a lot). Cosine over lemma stems rather than character n-grams: Russian inflection is solved by
   the lemmas, the stems take the typos, and n-grams of whole posts reward shared boilerplate ("Киров,
   администрация, когда") more than shared content. Place evidence: :data:`STRONG_PLACE` for the same address,
   the same numbered landmark or coordinates within :data:`GEO_NEAR_M`; :data:`WEAK_PLACE` for the same street
   without a house, the same unnumbered landmark or the same village.

**Finding candidates in Firestore** (:func:`candidate_keys`, :func:`query_keys`): every incident document gets an
array field ``group_keys`` = ``candidate_keys(key)`` of its posts (``"<municipality>|<category>"``,
``"…|a:ленин|102"``, ``"…|l:школа#5"``, ``"…|g:<cell>"``) and a ``group`` map (``ProblemKey.to_dict()`` of its
latest post) with ``last_post_at``. A new post queries ``incidents.where("group_keys", "array-contains-any",
query_keys(key)[:30])`` (Firestore's limit is 30 values) filtered to ``last_post_at >= now - 60 days``, ordered by
``last_post_at`` descending, limit 50 — one indexed query; :func:`decide` then picks among the documents.

**Reopen rule** (:func:`decide`): a matching *open* incident is joined; a matching incident *resolved* at most
:data:`REOPEN_DAYS` (7) days before the new post is reopened (the fix did not hold, or the problem came back);
resolved longer ago → a new incident that links to the old one (``related_id``).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from shared.classifier.features import STOP_LEMMAS
from shared.classifier.places import STREET_WORDS
from shared.classifier.text import Token, tokenize

IDF_FILE = Path(__file__).resolve().parent.parent / "classifier" / "grouping_idf.json"

WINDOW = timedelta(days=14)
CRITICAL_WINDOW = timedelta(days=3)
OPEN_JOIN_MAX = timedelta(days=60)  # an open incident silent this long is not joined any more
REOPEN_DAYS = timedelta(days=7)
GEO_CELL_M = 250.0
GEO_NEAR_M = 300.0
GEO_FAR_M = 1500.0
STRONG_PLACE = 0.35
WEAK_PLACE = 0.15
# Two named streets, none in common: even word for word the same text (residents write the same complaint about
# many roads) stays two problems; the same numbered landmark can still bring them together (a crossroads).
STREET_MISMATCH = 1.0
THRESHOLD = 0.3  # tuned by ``otklik eval-grouping`` on the training pairs; see bench/results/grouping.json
STEM = 6
MIN_TEXT = 0.1  # the same place alone is not the same problem: some content words must meet

COMPATIBLE = frozenset(
    frozenset(pair)
    for pair in [
        ("roads", "landscaping"),
        ("roads", "public_transport"),
        ("roads", "safety"),
        ("landscaping", "housing_utilities"),
        ("landscaping", "safety"),
        ("landscaping", "ecology"),
        ("housing_utilities", "safety"),
        ("housing_utilities", "ecology"),
        ("education", "safety"),
        ("ecology", "safety"),
    ]
)

# The classifier's street words ("ул", "пр-т", "переулок", ...) less "им."/"имени", which name an institution.
STREET_MARKERS = (STREET_WORDS - {"им", "имя"}) | {"пр-кт", "мкр", "микрорайон"}
# Street words that may follow the name ("Октябрьский проспект", "на Платовском проспекте").
STREET_AFTER = frozenset(
    ["улица", "проспект", "переулок", "бульвар", "площадь", "набережная", "шоссе", "тракт", "проезд", "пр-т"]
)
HOUSE_WORDS = frozenset(["д", "дом", "домом", "дома", "доме"])
PREPOSITIONS = frozenset(["на", "по", "вдоль"])
LANDMARKS = {
    "школа": "школа",
    "гимназия": "школа",
    "лицей": "школа",
    "сад": "детсад",
    "садик": "детсад",
    "детсад": "детсад",
    "больница": "больница",
    "поликлиника": "поликлиника",
    "остановка": "остановка",
    "рынок": "рынок",
    "вокзал": "вокзал",
    "автовокзал": "вокзал",
    "парк": "парк",
    "сквер": "сквер",
    "стадион": "стадион",
    "аптека": "аптека",
    "перекресток": "перекресток",
    "переезд": "переезд",
    "мост": "мост",
    "мостик": "мост",
    "эстакада": "эстакада",
    "пятерочка": "пятерочка",
    "магнит": "магнит",
    "маршрут": "маршрут",
    "котельная": "котельная",
    "подъезд": "подъезд",
}
# Numbers that are quantities, not houses or school numbers: "5 дней", "102 метра".
UNITS = frozenset(
    [
        "год",
        "лет",
        "день",
        "дня",
        "дней",
        "сутки",
        "неделя",
        "месяц",
        "час",
        "минута",
        "метр",
        "м",
        "км",
        "сантиметр",
        "см",
        "этаж",
        "раз",
        "градус",
        "человек",
        "семья",
        "штука",
        "рубль",
        "тысяча",
        "процент",
    ]
)
EXTRA_STOP = frozenset(
    [
        "весь",
        "уже",
        "опять",
        "снова",
        "еще",
        "очень",
        "просто",
        "вообще",
        "когда",
        "который",
        "такой",
        "этот",
        "тот",
        "свой",
        "наш",
        "ваш",
        "мой",
        "быть",
        "мочь",
        "сегодня",
        "вчера",
        "завтра",
        "утро",
        "вечер",
        "день",
        "неделя",
        "месяц",
        "год",
        "раз",
        "город",
        "улица",
        "дом",
        "район",
        "село",
        "поселок",
        "деревня",
        "администрация",
        "глава",
        "пожалуйста",
        "здравствуйте",
        "уважаемый",
        "добрый",
        "кто",
        "где",
        "почему",
        "сколько",
        "ничто",
        "никто",
        "нет",
        "не",
        "ни",
        "только",
        "тоже",
        "также",
        "даже",
        "если",
        "так",
        "там",
        "тут",
        "здесь",
        "вот",
        "все",
        "они",
        "он",
        "она",
        "оно",
        "мы",
        "вы",
        "я",
        "ты",
        "его",
        "их",
        "её",
        "нас",
        "вас",
        "сделать",
        "делать",
        "сказать",
        "говорить",
        "писать",
        "написать",
        # counting and linking words, and the words every complaint shares
        "один",
        "два",
        "три",
        "второй",
        "третий",
        "или",
        "под",
        "через",
        "после",
        "можно",
        "каждый",
        "сутки",
        "житель",
        "пос",
    ]
)
_NUMBER = re.compile(r"^\d{1,4}(?:-?[а-я]{1,2})?$")
_HOUSE = re.compile(r"^\d{1,4}[а-я]?$")


@dataclass(frozen=True)
class ProblemKey:
    """What :func:`same_problem` compares: one post's category, municipality, places, words and time."""

    category: str
    municipality: str | None
    published_at: datetime
    critical: bool = False
    addresses: frozenset[str] = frozenset()  # "ленин|102"
    streets: frozenset[str] = frozenset()  # "ленин", "победа революция"
    landmarks: frozenset[str] = frozenset()  # "школа#5", "остановка"
    settlements: frozenset[str] = frozenset()  # gazetteer names, lower-cased
    geo: tuple[float, float] | None = None
    stems: frozenset[str] = frozenset()

    @property
    def geo_cell(self) -> str | None:
        return None if self.geo is None else cell_of(*self.geo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "municipality": self.municipality,
            "published_at": self.published_at.isoformat(),
            "critical": self.critical,
            "addresses": sorted(self.addresses),
            "streets": sorted(self.streets),
            "landmarks": sorted(self.landmarks),
            "settlements": sorted(self.settlements),
            "geo": list(self.geo) if self.geo else None,
            "stems": sorted(self.stems),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ProblemKey:
        geo = raw.get("geo")
        return cls(
            category=str(raw["category"]),
            municipality=raw.get("municipality"),
            published_at=datetime.fromisoformat(str(raw["published_at"])),
            critical=bool(raw.get("critical", False)),
            addresses=frozenset(raw.get("addresses") or ()),
            streets=frozenset(raw.get("streets") or ()),
            landmarks=frozenset(raw.get("landmarks") or ()),
            settlements=frozenset(raw.get("settlements") or ()),
            geo=(float(geo[0]), float(geo[1])) if geo else None,
            stems=frozenset(raw.get("stems") or ()),
        )


@dataclass(frozen=True)
class Places:
    addresses: frozenset[str]
    streets: frozenset[str]
    landmarks: frozenset[str]
    place_words: frozenset[int]  # token indexes that belong to a place (left out of the content)


def problem_key(
    text: str,
    category: str,
    municipality: str | None,
    published_at: datetime,
    *,
    critical: bool = False,
    geo: tuple[float, float] | None = None,
    settlements: Iterable[str] | None = None,
) -> ProblemKey:
    """The key of one classified post. ``settlements``: the classifier's ``places``; None finds them here."""
    tokens = tokenize(text)
    found = extract_places(tokens)
    if settlements is None:
        settlements = _gazetteer_places(tokens)
    named = frozenset(s.lower().replace("ё", "е") for s in settlements)
    return ProblemKey(
        category=category,
        municipality=municipality,
        published_at=published_at,
        critical=critical,
        addresses=found.addresses,
        streets=found.streets,
        landmarks=found.landmarks,
        settlements=named,
        geo=geo,
        # A settlement's name is place evidence (weighed as such), not content: "Артём" in two posts about
        # different problems must not make their texts look alike.
        stems=content_stems(tokens, found.place_words) - {w[:STEM] for name in named for w in name.split()},
    )


def key_of_post(post: Any, classification: Any) -> ProblemKey:
    """:func:`problem_key` of a :class:`~shared.domain.models.Post` and its ``Classification``."""
    geo = (post.geo.lat, post.geo.lon) if post.geo is not None else None
    return problem_key(
        post.text,
        classification.category,
        classification.municipality,
        post.published_at,
        critical=classification.priority == "critical" or classification.danger,
        geo=geo,
        settlements=classification.places,
    )


def extract_places(tokens: Sequence[Token]) -> Places:
    """Addresses, streets and landmarks named in a tokenised text (see the module's docstring)."""
    ws = [i for i, t in enumerate(tokens) if t.is_word]
    addresses: set[str] = set()
    streets: set[str] = set()
    landmarks: set[str] = set()
    used: set[int] = set()
    n = len(ws)
    for k, i in enumerate(ws):
        t = tokens[i]
        adjacent = k + 1 < n and (ws[k + 1] == i + 1 or (ws[k + 1] == i + 2 and tokens[i + 1].text == "."))
        if t.lower in STREET_MARKERS and adjacent and not _is_number(tokens[ws[k + 1]].lower):
            # "ул. Ленина, 102", "пр. Победы Революции", "ул ленина 102"
            name: list[int] = []
            j = k + 1
            while j < n and len(name) < 3:
                word = tokens[ws[j]]
                if _is_number(word.lower) or word.lower in STOP_LEMMAS:
                    break
                if name and (not word.capitalized or ws[j] != name[-1] + 1):
                    break  # "ул. Гоголя. Подвал ...": a name does not run over punctuation
                name.append(ws[j])
                j += 1
            if name:
                street = " ".join(tokens[x].lemma for x in name)
                streets.add(street)
                used.update(name)
                used.add(i)
                house = _house_after(tokens, ws, j)
                if house is not None:
                    addresses.add(f"{street}|{tokens[ws[house]].lower}")
                    used.add(ws[house])
                continue
        if t.lower in STREET_AFTER and k > 0:
            prev = tokens[ws[k - 1]]
            if prev.capitalized and prev.lemma.endswith(("ий", "ый", "ой")):  # "Октябрьский проспект"
                streets.add(prev.lemma)
                used.update({ws[k - 1], i})
            continue
        if t.capitalized and not t.geo and t.lower not in STREET_MARKERS:
            before = tokens[ws[k - 1]].lower if k > 0 else ""
            house = _house_after(tokens, ws, k + 1)
            near = before in PREPOSITIONS or k + 1 == house or before in {"у", "возле"}
            if house is not None and near and t.lemma not in LANDMARKS:  # "на Ленина 102", "Ленина, 102"
                streets.add(t.lemma)
                addresses.add(f"{t.lemma}|{tokens[ws[house]].lower}")
                used.update({i, ws[house]})
                continue
            if before in PREPOSITIONS and t.lemma not in LANDMARKS and not _after_street_word(tokens, ws, k):
                streets.add(t.lemma)  # "на Шевченко", "по Советской"
                used.add(i)
        landmark = LANDMARKS.get(t.lemma)
        if landmark is None or (landmark in {"магнит", "пятерочка"} and not t.capitalized):
            continue
        number = _landmark_number(tokens, ws, k)
        landmarks.add(f"{landmark}#{number}" if number else landmark)
        used.add(i)
    return Places(frozenset(addresses), frozenset(streets), frozenset(landmarks), frozenset(used))


def _is_number(word: str) -> bool:
    return bool(_NUMBER.match(word))


def _after_street_word(tokens: Sequence[Token], ws: Sequence[int], k: int) -> bool:
    return k + 1 < len(ws) and tokens[ws[k + 1]].lower in STREET_AFTER


def _house_after(tokens: Sequence[Token], ws: Sequence[int], j: int) -> int | None:
    """The index in ``ws`` of a house number at ``j`` ("102", "102а", "д. 102", "дом 102"), if there is one."""
    if j < len(ws) and tokens[ws[j]].lower in HOUSE_WORDS:
        j += 1
    if j >= len(ws) or not _HOUSE.match(tokens[ws[j]].lower):
        return None
    if j + 1 < len(ws) and tokens[ws[j + 1]].lemma in UNITS:
        return None
    gap = tokens[ws[j - 1]].start + len(tokens[ws[j - 1]].text)
    between = [t for t in tokens if gap <= t.start < tokens[ws[j]].start]
    if any(t.text.strip() not in {",", ".", "", "-", "—"} for t in between):
        return None
    return j


def _landmark_number(tokens: Sequence[Token], ws: Sequence[int], k: int) -> str | None:
    """ "школа № 5", "школы 5", "5-й школы", "у 12 школы", "10 маршрута"."""
    if k + 1 < len(ws):
        nxt = tokens[ws[k + 1]]
        if _is_number(nxt.lower) and not (k + 2 < len(ws) and tokens[ws[k + 2]].lemma in UNITS):
            return nxt.lower.split("-")[0]
    if k > 0:
        prev = tokens[ws[k - 1]]
        if _is_number(prev.lower):
            return prev.lower.split("-")[0]
    return None


def content_stems(tokens: Sequence[Token], skip: Iterable[int] = ()) -> frozenset[str]:
    left_out = set(skip)
    stems = set()
    for i, t in enumerate(tokens):
        if not t.is_word or i in left_out or t.geo:
            continue
        lemma = t.lemma
        if len(lemma) < 3 or lemma in STOP_LEMMAS or lemma in EXTRA_STOP or any(c.isdigit() for c in lemma):
            continue
        stems.add(lemma[:STEM])
    return frozenset(stems)


@functools.cache
def _gazetteer() -> Any:
    from shared.classifier.places import Gazetteer

    return Gazetteer.load()


def _gazetteer_places(tokens: Sequence[Token]) -> list[str]:
    return list(_gazetteer().find(tokens).places)


@functools.cache
def idf_table() -> dict[str, float]:
    """Stem -> inverse document frequency over the labelled corpus (``otklik eval-grouping`` writes it)."""
    if not IDF_FILE.exists():
        return {}
    raw = json.loads(IDF_FILE.read_text(encoding="utf-8"))
    return {str(k): float(v) for k, v in raw["idf"].items()}


def _idf(stem: str, table: Mapping[str, float]) -> float:
    return table.get(stem, table.get("", 5.0)) if table else 1.0


def text_similarity(a: Iterable[str], b: Iterable[str], idf: Mapping[str, float] | None = None) -> float:
    """Cosine of the idf-weighted stem sets (each stem counts once: posts are short, repeats are emphasis)."""
    table = idf_table() if idf is None else idf
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    dot = sum(_idf(s, table) ** 2 for s in sa & sb)
    na = math.sqrt(sum(_idf(s, table) ** 2 for s in sa))
    nb = math.sqrt(sum(_idf(s, table) ** 2 for s in sb))
    return dot / (na * nb)


def cell_of(lat: float, lon: float, size_m: float = GEO_CELL_M) -> str:
    """A ~``size_m`` square grid cell: rows of latitude, columns scaled by the row's latitude."""
    step = size_m / 111_320.0
    row = math.floor(lat / step)
    col = math.floor(lon * math.cos(math.radians((row + 0.5) * step)) / step)
    return f"{row}:{col}"


def neighbour_cells(lat: float, lon: float, size_m: float = GEO_CELL_M) -> list[str]:
    step = size_m / 111_320.0
    cells = []
    for dlat in (-step, 0.0, step):
        for dlon in (-1, 0, 1):
            la = lat + dlat
            cells.append(cell_of(la, lon + dlon * step / max(math.cos(math.radians(la)), 0.01), size_m))
    return list(dict.fromkeys(cells))


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6_371_000.0 * 2 * math.asin(math.sqrt(h))


@dataclass(frozen=True)
class Match:
    same: bool
    score: float
    reasons: tuple[str, ...] = ()


def compatible(a: str, b: str) -> bool:
    return a == b or frozenset((a, b)) in COMPATIBLE


def window_for(a: ProblemKey, b: ProblemKey) -> timedelta:
    return CRITICAL_WINDOW if a.critical or b.critical else WINDOW


def same_problem(
    a: ProblemKey,
    b: ProblemKey,
    *,
    threshold: float = THRESHOLD,
    ignore_time: bool = False,
    idf: Mapping[str, float] | None = None,
) -> Match:
    """Whether two posts are about the same problem, by the rule in the module's docstring."""
    if not compatible(a.category, b.category):
        return Match(False, 0.0, (f"categories {a.category} and {b.category} differ",))
    if a.municipality and b.municipality and a.municipality != b.municipality:
        return Match(False, 0.0, (f"municipalities {a.municipality} and {b.municipality} differ",))
    reasons: list[str] = []
    if not ignore_time:
        window = window_for(a, b)
        apart = abs(a.published_at - b.published_at)
        if apart > window:
            return Match(False, 0.0, (f"{apart.days} days apart, the window is {window.days}",))
    conflict = _place_conflict(a, b)
    if conflict:
        return Match(False, 0.0, (conflict,))
    text = text_similarity(a.stems, b.stems, idf)
    reasons.append(f"text {text:.2f}")
    place, why = _place_evidence(a, b)
    if why:
        reasons.append(why)
    score = text + place
    if text < MIN_TEXT:
        return Match(False, round(score, 3), (*reasons, f"text below {MIN_TEXT}: a different problem"))
    if a.streets and b.streets and not a.streets & b.streets:
        score -= STREET_MISMATCH
        reasons.append(f"different streets ({', '.join(sorted(a.streets))} / {', '.join(sorted(b.streets))})")
    return Match(score >= threshold, round(score, 3), tuple(reasons))


def _place_conflict(a: ProblemKey, b: ProblemKey) -> str | None:
    houses_a = _houses(a.addresses)
    houses_b = _houses(b.addresses)
    for street in houses_a.keys() & houses_b.keys():
        if not houses_a[street] & houses_b[street]:
            return f"different houses on {street}: {sorted(houses_a[street])} / {sorted(houses_b[street])}"
    numbered_a = _numbered(a.landmarks)
    numbered_b = _numbered(b.landmarks)
    for kind in numbered_a.keys() & numbered_b.keys():
        if not numbered_a[kind] & numbered_b[kind]:
            return f"different {kind}: {sorted(numbered_a[kind])} / {sorted(numbered_b[kind])}"
    own = {(a.municipality or "").lower(), (b.municipality or "").lower()}
    sa, sb = a.settlements - own, b.settlements - own
    if sa and sb and not sa & sb:
        return f"different settlements: {', '.join(sorted(sa))} / {', '.join(sorted(sb))}"
    if a.geo and b.geo and _metres(a.geo, b.geo) > GEO_FAR_M:
        return f"{_metres(a.geo, b.geo) / 1000:.1f} km apart"
    return None


def _houses(addresses: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for address in addresses:
        street, _, house = address.partition("|")
        out.setdefault(street, set()).add(house)
    return out


def _numbered(landmarks: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for landmark in landmarks:
        kind, sep, number = landmark.partition("#")
        if sep:
            out.setdefault(kind, set()).add(number)
    return out


def _place_evidence(a: ProblemKey, b: ProblemKey) -> tuple[float, str]:
    if a.addresses & b.addresses:
        return STRONG_PLACE, f"same address {', '.join(sorted(a.addresses & b.addresses))}"
    numbered = {x for x in a.landmarks & b.landmarks if "#" in x}
    if numbered:
        return STRONG_PLACE, f"same landmark {', '.join(sorted(numbered))}"
    if a.geo and b.geo and _metres(a.geo, b.geo) <= GEO_NEAR_M:
        return STRONG_PLACE, f"{_metres(a.geo, b.geo):.0f} m apart"
    if a.streets & b.streets:
        return WEAK_PLACE, f"same street {', '.join(sorted(a.streets & b.streets))}"
    if a.landmarks & b.landmarks:
        return WEAK_PLACE, f"same landmark {', '.join(sorted(a.landmarks & b.landmarks))}"
    own = {(a.municipality or "").lower(), (b.municipality or "").lower()}
    if (a.settlements & b.settlements) - own:
        return WEAK_PLACE, f"same settlement {', '.join(sorted((a.settlements & b.settlements) - own))}"
    return 0.0, ""


def candidate_keys(key: ProblemKey) -> list[str]:
    """The index keys an incident is stored under (its ``group_keys`` array field), most specific first."""
    base = f"{key.municipality or '-'}|{key.category}"
    keys = [f"{base}|a:{a}" for a in sorted(key.addresses)]
    keys += [f"{base}|l:{x}" for x in sorted(key.landmarks) if "#" in x]
    if key.geo_cell:
        keys.append(f"{base}|g:{key.geo_cell}")
    keys.append(base)
    return keys


def is_place_key(index_key: str) -> bool:
    """``mun|category|a:street|house``, ``...|l:school#5``, ``...|g:cell``, not the broad ``mun|category``."""
    return index_key.count("|") >= 2


def query_keys(key: ProblemKey) -> list[str]:
    """The values a new post looks for with ``array-contains-any``: its own keys, the 8 cells around its point,
    and the broad key of every compatible category (at most 30: Firestore's limit)."""
    mun = key.municipality or "-"
    categories = [
        key.category,
        *sorted(c for pair in COMPATIBLE if key.category in pair for c in pair - {key.category}),
    ]
    keys = candidate_keys(key)
    if key.geo:
        keys += [f"{mun}|{key.category}|g:{c}" for c in neighbour_cells(*key.geo)]
    keys += [f"{mun}|{c}" for c in categories]
    return list(dict.fromkeys(keys))[:30]


@dataclass(frozen=True)
class Candidate:
    """What :func:`decide` needs of a stored incident: its id, its latest post's key, its status and clocks."""

    id: str
    key: ProblemKey
    status: str
    created_at: datetime
    last_post_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def dismissed(self) -> bool:
        return self.status in {"rejected", "irrelevant", "merged"}

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None or self.status == "closed"


@dataclass(frozen=True)
class Decision:
    action: Literal["join", "reopen", "new"]
    incident_id: str | None
    reason: str
    score: float = 0.0
    related_id: str | None = None  # a new incident's predecessor: the same problem, resolved long ago


def decide(
    new: ProblemKey,
    candidates: Iterable[Candidate],
    *,
    threshold: float = THRESHOLD,
    reopen_within: timedelta = REOPEN_DAYS,
) -> Decision:
    """Join an open incident about the same problem; reopen one resolved at most ``reopen_within`` before the
    post; else a new incident (linked to a matching resolved one, if any). Rejected and irrelevant incidents are
    never joined. Among several matches the open one wins, then the highest score."""
    best_open: tuple[float, Candidate, Match] | None = None
    best_resolved: tuple[float, Candidate, Match] | None = None
    for c in candidates:
        if c.dismissed:
            continue
        m = same_problem(c.key, new, threshold=threshold, ignore_time=True)
        if not m.same:
            continue
        if c.resolved:
            if c.resolved_at is not None and c.resolved_at > new.published_at:
                continue  # resolved after this post was written: the post is older news
            if best_resolved is None or (c.resolved_at or c.created_at) > (
                best_resolved[1].resolved_at or best_resolved[1].created_at
            ):
                best_resolved = (m.score, c, m)
            continue
        last = max(c.last_post_at or c.created_at, c.key.published_at)
        if new.published_at - last > OPEN_JOIN_MAX:
            continue
        if best_open is None or m.score > best_open[0]:
            best_open = (m.score, c, m)
    if best_open is not None:
        score, c, m = best_open
        return Decision("join", c.id, f"same problem as open incident {c.id}: {'; '.join(m.reasons)}", score)
    if best_resolved is not None:
        score, c, m = best_resolved
        resolved_at = c.resolved_at or c.created_at
        since = new.published_at - resolved_at
        if since <= reopen_within:
            return Decision(
                "reopen",
                c.id,
                f"resolved {since.days} days ago (≤ {reopen_within.days}): the problem is back; {'; '.join(m.reasons)}",
                score,
            )
        return Decision(
            "new",
            None,
            f"same problem as {c.id}, resolved {since.days} days ago (> {reopen_within.days}): a new incident",
            score,
            related_id=c.id,
        )
    return Decision("new", None, "no open or recently resolved incident about the same problem")
