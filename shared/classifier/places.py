"""Where a post is about: place names in the text (with Russian inflection), else the source's municipality,
else its coordinates — resolved against gazetteers of municipalities (``gazetteers/*.yaml``).

A gazetteer lists every municipality of a region (city okrugs, districts) with its aliases, settlements and
city districts. A name matches a run of words when every word matches: a text word matches a name word when
they share a lemma or a surface form, so "в Кирово-Чепецком районе" finds "Кирово-Чепецкий район" and
"в Таганроге" finds "Таганрог". Village names in -ово/-ево/-ино, which the dictionary does not know, also match
their inflected forms ("в Стулове" -> "Стулово").

False friends are guarded: a one-word name that is also a common word ("Шахты" / шахты, "Майский") must be
capitalised; a name right after a street word ("ул. Кирова", "проспект Октябрьский") is a street, not a place.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.classifier.text import Token, parse_word, tokenize, words
from shared.yaml_data import load_yaml

GAZETTEERS = Path(__file__).resolve().parent / "gazetteers"
# Words after which a capitalised name is a street or an institution named after someone, not a place.
STREET_WORDS = frozenset(
    [
        "ул",
        "улица",
        "пр",
        "пр-т",
        "проспект",
        "пер",
        "переулок",
        "б-р",
        "бульвар",
        "пл",
        "площадь",
        "наб",
        "набережная",
        "ш",
        "шоссе",
        "тракт",
        "проезд",
        "им",
        "имя",
        "мкр-н",
        "тупик",
        "аллея",
    ]
)
# Words before an unknown place name: "д. Стулово", "в селе Быстрица", "пос. Майский", "х. Красный".
SETTLEMENT_WORDS = frozenset(
    [
        "г",
        "город",
        "д",
        "дер",
        "деревня",
        "с",
        "село",
        "пос",
        "п",
        "поселок",
        "пгт",
        "х",
        "хутор",
        "ст",
        "станица",
        "слобода",
        "мкр",
        "микрорайон",
    ]
)
DISTRICT_ABBREVIATIONS = {"р-н": "район", "р-на": "район", "р-не": "район", "р-ну": "район", "рн": "район"}
_O_ENDINGS = ("ом", "е", "а", "у")  # Стулово: Стулова, Стулову, Стуловом, Стулове


@dataclass(frozen=True)
class Municipality:
    id: str
    name: str
    region: str
    kind: str
    center: tuple[float, float]
    radius_km: float


@dataclass(frozen=True)
class PlaceName:
    name: str  # as the gazetteer spells it, nominative
    municipality: str  # id
    kind: str  # municipality | alias | settlement | district
    keys: tuple[frozenset[str], ...]  # per word: the forms a text word may share with it
    common_word: bool  # a single word that is also an ordinary word: must be capitalised
    needs_marker: bool = False  # a one-word adjective (Советская, Майский): only after "ст.", "пос." ...


@dataclass
class PlaceMatch:
    places: list[str] = field(default_factory=list)  # names found, nominative, in text order
    municipalities: list[str] = field(default_factory=list)  # the municipalities of the gazetteer names found
    evidence: list[str] = field(default_factory=list)


def _word_keys(word: str) -> frozenset[str]:
    lower = word.lower().replace("ё", "е")
    lower = DISTRICT_ABBREVIATIONS.get(lower, lower)
    _, lemmas, _ = parse_word(lower)
    keys = set(lemmas) | {lower}
    return frozenset(keys)


def _text_keys(token: Token) -> frozenset[str]:
    return _keys_of_text_word(token.lower, token.lemmas)


@functools.lru_cache(maxsize=100_000)
def _keys_of_text_word(word: str, lemmas: frozenset[str]) -> frozenset[str]:
    lower = DISTRICT_ABBREVIATIONS.get(word, word)
    keys = set(lemmas) | {lower}
    for ending in _O_ENDINGS:
        if lower.endswith(ending) and len(lower) > len(ending) + 3:
            keys.add(lower[: -len(ending)] + "о")
    return frozenset(keys)


class Gazetteer:
    def __init__(self, municipalities: Sequence[Municipality], names: Sequence[PlaceName]) -> None:
        self.municipalities = {m.id: m for m in municipalities}
        self.names = list(names)
        self._by_first: dict[str, list[PlaceName]] = {}
        for name in self.names:
            for key in name.keys[0]:
                self._by_first.setdefault(key, []).append(name)
        self._same_name: dict[str, list[PlaceName]] = {}
        for name in self.names:
            self._same_name.setdefault(name.name.lower().replace("ё", "е"), []).append(name)

    @classmethod
    def load(cls, folder: Path = GAZETTEERS) -> Gazetteer:
        municipalities: list[Municipality] = []
        names: list[PlaceName] = []
        for path in sorted(folder.glob("*.yaml")):
            data = load_yaml(path.read_text(encoding="utf-8")) or {}
            region = str(data.get("region") or path.stem)
            for raw in data.get("municipalities") or []:
                m = Municipality(
                    id=str(raw["id"]),
                    name=str(raw["name"]),
                    region=region,
                    kind=str(raw.get("kind", "")),
                    center=(float(raw["center"][0]), float(raw["center"][1])),
                    radius_km=float(raw.get("radius_km", 20)),
                )
                municipalities.append(m)
                spelled = [(m.name, "municipality")]
                if m.name.endswith(" муниципальный округ"):  # people still say "Опаринский район"
                    spelled.append((m.name.removesuffix(" муниципальный округ") + " район", "alias"))
                spelled += [(str(a), "alias") for a in raw.get("aliases") or []]
                spelled += [(str(d), "demonym") for d in raw.get("demonyms") or []]  # "шахтинцы"
                spelled += [(_name_of(s), "settlement") for s in raw.get("settlements") or []]
                spelled += [(_name_of(d), "district") for d in raw.get("districts") or []]
                for text, kind in spelled:
                    if text:
                        names.append(_place_name(text, m.id, kind))
        return cls(municipalities, names)

    def find(self, tokens: Sequence[Token], prefer: str | None = None) -> PlaceMatch:
        """Places named in ``tokens``. A name several municipalities share ("Октябрьский район": Kirov, Rostov,
        and a district of Rostov oblast) goes to ``prefer`` (the source's municipality) or to a municipality
        the text also names unambiguously; else to the municipality of that very name; else it stays a place
        without a municipality."""
        found = PlaceMatch()
        ws = words(list(tokens))
        keys = [_text_keys(t) for t in ws]
        matched: list[tuple[PlaceName, str]] = []
        i = 0
        while i < len(ws):
            match = self._match_at(ws, keys, i)
            if match is None:
                unknown = self._unknown_at(ws, i)
                if unknown:
                    _add(found.places, unknown)
                    found.evidence.append(f"место: {unknown} (нет в справочнике)")
                i += 1
                continue
            name, length = match
            matched.append((name, " ".join(t.text for t in ws[i : i + length])))
            i += length
        candidates = [_options(self._same_name.get(name.name.lower().replace("ё", "е"), [name])) for name, _ in matched]
        certain = {next(iter(c)) for c in candidates if len(c) == 1}
        for (name, surface), options in zip(matched, candidates, strict=True):
            if name.kind != "demonym":
                _add(found.places, name.name)
            chosen = _choose(options, prefer, certain)
            if chosen is None:
                found.evidence.append(f"место: «{surface}» → {name.name} (есть в нескольких муниципалитетах)")
                continue
            _add(found.municipalities, chosen)
            found.evidence.append(f"место: «{surface}» → {name.name} ({self.municipalities[chosen].name})")
        return found

    def _match_at(self, ws: Sequence[Token], keys: Sequence[frozenset[str]], i: int) -> tuple[PlaceName, int] | None:
        if i > 0 and (ws[i - 1].lower in STREET_WORDS or ws[i - 1].lemma in STREET_WORDS):
            return None
        best: tuple[PlaceName, int] | None = None
        for key in keys[i]:
            for name in self._by_first.get(key, ()):
                n = len(name.keys)
                if best is not None and n <= best[1]:
                    continue  # the longest name wins: "Кирово-Чепецкий район" over "Кирово-Чепецк"
                if i + n > len(ws) or not all(name.keys[k] & keys[i + k] for k in range(n)):
                    continue
                if name.common_word and not (ws[i].capitalized or ws[i].geo):
                    continue
                if n == 1 and not ws[i].capitalized and not ws[i].geo and name.kind not in {"municipality", "demonym"}:
                    continue  # lower-case one-word settlements are too often ordinary words
                if name.needs_marker and not (i > 0 and ws[i - 1].lower in SETTLEMENT_WORDS):
                    continue  # "по Советской" is a street; "ст. Советская" the stanitsa
                best = (name, n)
        return best

    @staticmethod
    def _unknown_at(ws: Sequence[Token], i: int) -> str | None:
        """A capitalised word right after "д.", "село", "пос." ... that the gazetteer does not know."""
        if i == 0 or ws[i - 1].lower.rstrip(".") not in SETTLEMENT_WORDS or not ws[i].capitalized:
            return None
        if ws[i - 1].lower in {"с", "п", "г"} and ws[i].lemma in {"уважение", "праздник"}:
            return None
        return _nominative(ws[i].text)

    def locate(self, lat: float, lon: float) -> str | None:
        """The municipality whose centre is nearest to a point, if the point is within its radius."""
        best: tuple[float, str] | None = None
        for m in self.municipalities.values():
            distance = _km(lat, lon, *m.center)
            if distance <= m.radius_km and (best is None or distance < best[0]):
                best = (distance, m.id)
        return best[1] if best else None

    def region_of(self, municipality: str | None) -> str | None:
        m = self.municipalities.get(municipality or "")
        return m.region if m else None


def municipality_regions(folder: Path = GAZETTEERS) -> dict[str, str]:
    """Municipality id -> region id, read straight from the YAML: what routing needs, without the morphology
    that building the place-name index costs (route and department_api never load pymorphy3)."""
    regions: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        region = str(data.get("region") or path.stem)
        for raw in data.get("municipalities") or []:
            regions[str(raw["id"])] = region
    return regions


def _options(names: Sequence[PlaceName]) -> dict[str, PlaceName]:
    """Municipality -> its entry of this name; the municipality's own name beats its centre of the same name."""
    options: dict[str, PlaceName] = {}
    for name in names:
        if name.municipality not in options or name.kind == "municipality":
            options[name.municipality] = name
    return options


def _choose(options: dict[str, PlaceName], prefer: str | None, certain: set[str]) -> str | None:
    if len(options) == 1:
        return next(iter(options))
    if prefer in options:
        return prefer
    for municipality in options:
        if municipality in certain:
            return municipality
    own = [m for m, n in options.items() if n.kind == "municipality"]
    return own[0] if len(own) == 1 else None


def _name_of(entry: Any) -> str:
    return str(entry.get("name", "")) if isinstance(entry, dict) else str(entry)


def _place_name(text: str, municipality: str, kind: str) -> PlaceName:
    parts = [t.text for t in words(tokenize(text))]
    keys = []
    for part in parts:
        k = set(_word_keys(part))
        lower = part.lower().replace("ё", "е")
        if lower.endswith(("ово", "ево", "ино", "ыно", "ое")):
            k.add(lower)  # inflected forms are mapped back to -о in _text_keys
        keys.append(frozenset(k))
    common = len(parts) == 1 and _is_common_word(parts[0])
    adjective = len(parts) == 1 and kind in {"settlement", "district"} and _is_adjective(parts[0])
    return PlaceName(
        name=text, municipality=municipality, kind=kind, keys=tuple(keys), common_word=common, needs_marker=adjective
    )


@functools.lru_cache(maxsize=4096)
def _is_adjective(word: str) -> bool:
    from shared.classifier.text import _morph

    parses = _morph().parse(word.lower())  # type: ignore[attr-defined]
    return bool(parses) and parses[0].tag.POS == "ADJF" and "Geox" not in parses[0].tag


@functools.lru_cache(maxsize=4096)
def _is_common_word(word: str) -> bool:
    from shared.classifier.text import _morph

    parses = _morph().parse(word.lower())  # type: ignore[attr-defined]
    return bool(parses) and parses[0].is_known and not any("Geox" in p.tag for p in parses[:2])


def _nominative(word: str) -> str:
    from shared.classifier.text import _morph

    lower = word.lower()
    for ending in ("ове", "еве", "ине", "ыне"):
        if lower.endswith(ending):
            return word[:-1] + "о"
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    if parses and parses[0].is_known:
        inflected = parses[0].inflect({"nomn"})
        if inflected is not None:
            found = str(inflected.word)
            return found.capitalize() if "-" not in found else found.title()
    return word


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))
