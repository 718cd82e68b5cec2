"""Where the problem is, as a clerk writes it: streets with the house number, settlements, districts and named
places, normalised to the nominative with the kind of place spelt out — "на Спартаковской, 59" gives
"улица Спартаковская, 59", "ул.Ленина,д.15" "улица Ленина, 15", "в д. Стулово" "деревня Стулово",
"Слободского района" "Слободской район", "в Овсянниковском саду" "Овсянниковский сад". Rules over the tokens
and pymorphy3's grammar, so they work for places no gazetteer lists.

A street's name keeps its case when it is a name in the genitive ("улица Ленина", "улица Карла Маркса"); an
adjective is put into the nominative of the street word's gender ("Московской улице" -> "улица Московская",
"Октябрьском проспекте" -> "проспект Октябрьский"). A bare name is a street only with a house number after it
and a preposition before it ("на Спартаковской, 59", "у Ленина 15"), so "на Пасху 15 человек" stays nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from shared.classifier.text import Token, _morph

# Street kinds: what a text may write -> (the word a clerk writes, its grammatical gender).
STREET_KINDS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(["ул", "улица", "улице", "улицы", "улицу", "улицей", "улиц"], ("улица", "femn")),
    **dict.fromkeys(["пр", "пр-т", "пр-кт", "просп", "проспект"], ("проспект", "masc")),
    **dict.fromkeys(["пер", "переулок"], ("переулок", "masc")),
    **dict.fromkeys(["б-р", "бульвар"], ("бульвар", "masc")),
    **dict.fromkeys(["пл", "площадь"], ("площадь", "femn")),
    **dict.fromkeys(["наб", "набережная"], ("набережная", "femn")),
    **dict.fromkeys(["ш", "шоссе"], ("шоссе", "neut")),
    **dict.fromkeys(["тракт"], ("тракт", "masc")),
    **dict.fromkeys(["проезд"], ("проезд", "masc")),
    **dict.fromkeys(["тупик"], ("тупик", "masc")),
    **dict.fromkeys(["аллея"], ("аллея", "femn")),
    **dict.fromkeys(["мкр", "мкр-н", "микрорайон"], ("микрорайон", "masc")),
    **dict.fromkeys(["кв-л", "квартал"], ("квартал", "masc")),
}
# Full street words whose other forms come through their lemma ("улице", "проспекте", "переулке").
_STREET_LEMMAS = {"улица", "проспект", "переулок", "бульвар", "площадь", "набережная", "шоссе", "тракт", "проезд",
                  "тупик", "аллея", "микрорайон", "квартал"}  # fmt: skip
# Settlement kinds before a name: "д. Стулово", "в селе Быстрица", "пос. Майский", "х. Красный", "ст-ца".
SETTLEMENT_KINDS: dict[str, str] = {
    **dict.fromkeys(["д", "дер", "деревня"], "деревня"),
    **dict.fromkeys(["с", "село"], "село"),
    **dict.fromkeys(["п", "пос", "поселок", "посёлок", "пгт", "рп"], "посёлок"),
    **dict.fromkeys(["х", "хут", "хутор"], "хутор"),
    **dict.fromkeys(["ст", "ст-ца", "станица"], "станица"),
    **dict.fromkeys(["слобода"], "слобода"),
    **dict.fromkeys(["г", "город"], ""),  # a town is written by its name alone: "Новомосковск"
}
# Kinds that follow an adjective name: "Слободской район", "Овсянниковский сад", "Ленинский округ".
AREA_KINDS = frozenset(
    ["район", "округ", "микрорайон", "сад", "парк", "сквер", "бульвар", "роща", "лес", "бор", "пруд", "озеро",
     "набережная", "площадь", "улица", "проспект", "переулок", "шоссе", "тракт", "проезд", "мост", "кладбище",
     "рынок", "вокзал", "область", "край", "поселение"]
)  # fmt: skip
# Common adjectives that start a sentence before such a word without naming anything: "Детский сад закрыт".
_COMMON_ADJECTIVES = frozenset(
    ["наш", "ваш", "мой", "твой", "свой", "этот", "тот", "весь", "детский", "городской", "центральный", "главный",
     "новый", "старый", "большой", "малый", "любой", "каждый", "другой", "сельский", "районный", "местный",
     "ближайший", "соседний", "муниципальный", "ботанический", "школьный", "наш", "целый", "один"]
)  # fmt: skip
_DISTRICT_ABBREVIATIONS = {"р-н": "район", "р-на": "район", "р-не": "район", "р-ну": "район", "рн": "район"}
_HOUSE = re.compile(r"^\d{1,4}[а-яa-z]?$", re.IGNORECASE)
_HOUSE_WORDS = frozenset(["д", "дом", "дома", "доме", "домом", "домах", "№"])
_BEFORE_BARE_STREET = frozenset(["на", "по", "у", "возле", "около", "напротив", "вдоль"])
_GENDER_OF_AREA = {"район": "masc", "округ": "masc", "микрорайон": "masc", "сад": "masc", "парк": "masc",
                   "сквер": "masc", "бульвар": "masc", "лес": "masc", "бор": "masc", "пруд": "masc", "мост": "masc",
                   "рынок": "masc", "вокзал": "masc", "проспект": "masc", "переулок": "masc", "тракт": "masc",
                   "проезд": "masc", "роща": "femn", "набережная": "femn", "площадь": "femn", "улица": "femn",
                   "озеро": "neut", "шоссе": "neut", "кладбище": "neut", "область": "femn", "край": "masc",
                   "поселение": "neut"}  # fmt: skip
# Capitalised words that are not names of places even though pymorphy3 knows them as such.
_NOT_A_PLACE = frozenset(["россия", "рф", "русь", "ссср", "европа", "земля", "кремль"])
_UNITS_AFTER = frozenset(
    [
        "год",
        "лет",
        "раз",
        "человек",
        "рубль",
        "руб",
        "минута",
        "мин",
        "час",
        "день",
        "метр",
        "м",
        "км",
        "см",
        "кг",
        "градус",
        "процент",
        "тысяча",
        "штука",
        "шт",
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ]
)


def find_addresses(tokens: Sequence[Token]) -> list[str]:
    """The places a tokenised text names, normalised, in text order, each once."""
    found: list[str] = []
    used: set[int] = set()
    ws = [t for t in tokens if t.is_word]
    for k in range(len(ws)):
        if k in used:
            continue
        for rule in (_street_after_kind, _name_before_kind, _settlement, _bare_street, _house_then_street):
            hit = rule(ws, tokens, k)
            if hit is not None:
                place, taken = hit
                if place and place not in found:
                    found.append(place)
                used.update(taken)
                break
    return found


# --- the rules: each returns (place, indexes of ws it used) or None -------------------------------------------


def _street_after_kind(ws: Sequence[Token], tokens: Sequence[Token], k: int) -> tuple[str, set[int]] | None:
    """ "ул. Ленина, 15", "улице Карла Маркса д.3", "пр-т Октябрьский", "мкр. Северный"."""
    kind = _street_kind(ws[k])
    if kind is None or k + 1 >= len(ws):
        return None
    name = _name_run(ws, tokens, k + 1)
    if not name:
        return None
    word, gender = kind
    text = _street_name(ws, name, gender)
    house, taken = _house_after(ws, tokens, name[-1] + 1)
    place = f"{word} {text}" + (f", {house}" if house else "")
    return place, {k, *name, *taken}


def _name_before_kind(ws: Sequence[Token], tokens: Sequence[Token], k: int) -> tuple[str, set[int]] | None:
    """ "на Московской улице, 5", "Октябрьский проспект", "в Слободском районе", "в Овсянниковском саду"."""
    if k + 1 >= len(ws) or not _adjacent(tokens, ws[k], ws[k + 1]) or ws[k].lemma in _COMMON_ADJECTIVES:
        return None
    kind_at = k + 1
    if ws[kind_at].lemma in {"сельский", "городской"} and kind_at + 1 < len(ws):
        kind_at += 1  # "Казанское сельское поселение"
    after = _DISTRICT_ABBREVIATIONS.get(ws[kind_at].lower) or ws[kind_at].lemma
    if after not in AREA_KINDS or not _is_adjective(ws[k].lower):
        return None
    numbered = after in _STREET_LEMMAS and bool(_house_after(ws, tokens, kind_at + 1)[0])
    if not ws[k].capitalized and not numbered:
        return None  # a lower-case name only with a house number after it: "ириновский проспект 1"
    start = k
    if k > 0 and ws[k - 1].capitalized and _is_adjective(ws[k - 1].lower) and _adjacent(tokens, ws[k - 1], ws[k]):
        start = k - 1  # "Нижне-Ивкинский", "Малая Садовая улица"
    gender = _GENDER_OF_AREA.get(after, "masc")
    name = " ".join(_adjective_nominative(w.text, gender) for w in ws[start : k + 1])
    if after in _STREET_LEMMAS:
        house, taken = _house_after(ws, tokens, kind_at + 1)
        return f"{after} {name}" + (f", {house}" if house else ""), {start, k, kind_at, *taken}
    if kind_at > k + 1:
        after = f"{_adjective_nominative(ws[k + 1].text, gender).lower()} {after}"
    return f"{name} {after}", set(range(start, kind_at + 1))


def _settlement(ws: Sequence[Token], tokens: Sequence[Token], k: int) -> tuple[str, set[int]] | None:
    """ "д. Стулово", "в селе Быстрица", "г. Новомосковск", "пос. Майский"."""
    kind = SETTLEMENT_KINDS.get(ws[k].lower) if ws[k].lower in SETTLEMENT_KINDS else None
    if kind is None and ws[k].lemma in {"деревня", "село", "поселок", "хутор", "станица", "город"}:
        kind = SETTLEMENT_KINDS.get(ws[k].lemma, "")
    if kind is None or k + 1 >= len(ws) or not ws[k + 1].capitalized or not _adjacent(tokens, ws[k], ws[k + 1]):
        return None
    if len(ws[k].lower) <= 2 and not _dotted(tokens, ws[k]):
        return None  # "с Новым годом", "в Киров": one-letter kinds count only as abbreviations ("с.", "д.")
    if ws[k + 1].lemma in {"уважение", "праздник", "новый", "днем", "день"}:
        return None
    name = _settlement_nominative(ws[k + 1].text, kind)
    second = k + 2 < len(ws) and ws[k + 2].capitalized and _adjacent(tokens, ws[k + 1], ws[k + 2])
    if second and ("-" in ws[k + 2].text or _is_adjective(ws[k + 1].lower)):
        name += " " + _settlement_nominative(ws[k + 2].text, kind)  # "Красный Камень", "Нижний Новгород"
    return (f"{kind} {name}" if kind else name), {k, k + 1}


def _bare_street(ws: Sequence[Token], tokens: Sequence[Token], k: int) -> tuple[str, set[int]] | None:
    """ "на Спартаковской, 59", "у Ленина 15": a capitalised name between a preposition and a house number."""
    if k == 0 or ws[k - 1].lower not in _BEFORE_BARE_STREET or not ws[k].capitalized:
        return None
    name = [k]
    if k + 1 < len(ws) and ws[k + 1].capitalized and _adjacent(tokens, ws[k], ws[k + 1]):
        name.append(k + 1)  # "на Карла Маркса 5"
    if ws[k].geo or ws[k].lower in _NOT_A_PLACE:
        return None
    house, taken = _house_after(ws, tokens, name[-1] + 1, bare=True)
    if house:
        return f"улица {_street_name(ws, name, 'femn')}, {house}", {*name, *taken}
    if len(name) == 1 and ws[k - 1].lower in {"на", "по"} and _is_street_adjective(ws[k].lower):
        return f"улица {_adjective_nominative(ws[k].text, 'femn')}", {k}  # "по Советской", "на Садовой"
    return None


def _house_then_street(ws: Sequence[Token], tokens: Sequence[Token], k: int) -> tuple[str, set[int]] | None:
    """ "дом 15 по улице Ленина", "д. 7 по ул. Гагарина"."""
    if ws[k].lower not in {"дом", "д"} or k + 3 >= len(ws) or not _HOUSE.match(ws[k + 1].lower):
        return None
    if ws[k + 2].lower != "по":
        return None
    street = _street_after_kind(ws, tokens, k + 3)
    if street is None or "," in street[0]:
        return None
    return f"{street[0]}, {ws[k + 1].lower}", {k, k + 1, k + 2, *street[1]}


def find_towns(tokens: Sequence[Token], known: Sequence[str]) -> list[str]:
    """Towns pymorphy3 knows as place names (Geox) that the gazetteers do not: "в Новомосковске" ->
    "Новомосковск". Capitalised, not after a street word (that is a street named after a town)."""
    found: list[str] = []
    lowered = {k.lower().replace("ё", "е") for k in known}
    ws = [t for t in tokens if t.is_word]
    for k, t in enumerate(ws):
        if not t.geo or not t.capitalized or t.lower in _NOT_A_PLACE or (k == 0 and t.text.isupper()):
            continue
        if k > 0 and (_street_kind(ws[k - 1]) is not None or ws[k - 1].lower in {"им", "имени"}):
            continue
        town = _town_nominative(t.lower)
        if town is None or town.lower() in lowered or town in found:
            continue
        found.append(town)
    return found


# --- pieces ---------------------------------------------------------------------------------------------------


def _street_kind(t: Token) -> tuple[str, str] | None:
    kind = STREET_KINDS.get(t.lower)
    if kind is None and t.lemma in _STREET_LEMMAS:
        kind = STREET_KINDS.get(t.lemma)
    return kind


def _name_run(ws: Sequence[Token], tokens: Sequence[Token], j: int) -> list[int]:
    """The words of a name starting at ``j``: a capitalised or numeric first word ("8 Марта", "40 лет Победы"
    stop at the number's noun), then capitalised words written right after it; at most three."""
    if j >= len(ws) or not _adjacent(tokens, ws[j - 1], ws[j]):
        return []
    first = ws[j]
    if first.lower in _HOUSE_WORDS or (_HOUSE.match(first.lower) and not (j + 1 < len(ws) and ws[j + 1].capitalized)):
        return []
    if not (first.capitalized or first.text[:1].isdigit() or (len(first.text) > 3 and first.text.islower())):
        return []
    if first.text.islower() and (first.lemma in _NOT_A_NAME or not _is_proper(first.lower)):
        return []  # "ул ленина" is a street, "с главной улицы станицы" is not
    run = [j]
    while len(run) < 3 and run[-1] + 1 < len(ws):
        nxt = ws[run[-1] + 1]
        if not nxt.capitalized or _between(tokens, ws[run[-1]], nxt).strip() or _street_kind(nxt) is not None:
            break  # "ул. Пушкина. Приехали": a name does not run over punctuation
        run.append(run[-1] + 1)
    return run


_NOT_A_NAME = frozenset(["который", "этот", "тот", "весь", "наш", "ваш", "свой", "такой", "там", "тут", "где"])


def _street_name(ws: Sequence[Token], name: Sequence[int], gender: str) -> str:
    words = [ws[i].text for i in name]
    first = ws[name[0]]
    if _is_adjective(first.lower):
        words = [_adjective_nominative(w, gender) if _is_adjective(w.lower()) else w for w in words]
    return " ".join(_capital(w) for w in words)


def _house_after(ws: Sequence[Token], tokens: Sequence[Token], j: int, bare: bool = False) -> tuple[str, set[int]]:
    """A house number at ``j`` ("15", "15а", "д. 15", "дом 15", "15/2", "15 корп. 2"), with the ws it used."""
    taken: set[int] = set()
    if j < len(ws) and ws[j].lower in _HOUSE_WORDS and not bare:
        taken.add(j)
        j += 1
    if j >= len(ws) or not _HOUSE.match(ws[j].lower) or not _near(tokens, ws[j - 1], ws[j]):
        return "", set()
    if j + 1 < len(ws) and (ws[j + 1].lemma in _UNITS_AFTER or ws[j + 1].lower in _UNITS_AFTER):
        return "", set()
    house = ws[j].lower
    taken.add(j)
    if j + 1 < len(ws) and _HOUSE.match(ws[j + 1].lower) and _between(tokens, ws[j], ws[j + 1]).strip() == "/":
        house += "/" + ws[j + 1].lower
        taken.add(j + 1)
    elif j + 2 < len(ws) and ws[j + 1].lower in {"к", "корп", "корпус"} and ws[j + 2].text.isdigit():
        house += f" корпус {ws[j + 2].text}"
        taken.update({j + 1, j + 2})
    return house, taken


def _between(tokens: Sequence[Token], a: Token, b: Token) -> str:
    return "".join(t.text for t in tokens if a.start + len(a.text) <= t.start < b.start)


def _adjacent(tokens: Sequence[Token], a: Token, b: Token) -> bool:
    """Nothing but a dot or a space between two words ("ул.Ленина", "ул. Ленина")."""
    return _between(tokens, a, b).strip() in {"", "."}


def _near(tokens: Sequence[Token], a: Token, b: Token) -> bool:
    """A house number follows its street with at most a comma, a dot or a dash between."""
    return _between(tokens, a, b).strip() in {"", ",", ".", "-", "—", ",."}


def _dotted(tokens: Sequence[Token], t: Token) -> bool:
    end = t.start + len(t.text)
    return any(x.start == end and x.text.startswith(".") for x in tokens)


def _capital(word: str) -> str:
    return word if word[:1].isdigit() else word[:1].upper() + word[1:]


@functools.lru_cache(maxsize=20_000)
def _is_proper(lower: str) -> bool:
    """A surname, first name, patronymic or place name, or an adjective (street names are often adjectives)."""
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    return any(p.tag.POS == "ADJF" or {"Surn", "Name", "Patr", "Geox"} & set(p.tag.grammemes) for p in parses[:3])


@functools.lru_cache(maxsize=20_000)
def _is_street_adjective(lower: str) -> bool:
    """A feminine adjective in the locative or dative, as a street is named without its word ("на Садовой")."""
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    return bool(parses) and all(
        p.tag.POS == "ADJF"
        and {"femn", "sing"} <= set(p.tag.grammemes)
        and ({"loct", "datv", "gent"} & set(p.tag.grammemes))
        for p in parses[:1]
    )


@functools.lru_cache(maxsize=20_000)
def _is_adjective(lower: str) -> bool:
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    return any(p.tag.POS == "ADJF" for p in parses[:2])


@functools.lru_cache(maxsize=20_000)
def _adjective_nominative(word: str, gender: str) -> str:
    parses = [p for p in _morph().parse(word.lower()) if p.tag.POS == "ADJF"]  # type: ignore[attr-defined]
    for p in parses:
        inflected = p.inflect({"nomn", "sing", gender})
        if inflected is not None:
            return "-".join(_capital(part) for part in str(inflected.word).split("-"))
    return _capital(word)


@functools.lru_cache(maxsize=20_000)
def _settlement_nominative(word: str, kind: str) -> str:
    lower = word.lower()
    for ending in ("ове", "еве", "ино", "ине", "ыне", "ово", "ево"):
        if lower.endswith(ending):
            return word[:-1] + "о" if ending.endswith("е") else word
    parses = _morph().parse(lower)  # type: ignore[attr-defined]
    geo = [p for p in parses if "Geox" in p.tag] or parses[:1]
    for p in geo:
        if p.tag.POS == "ADJF":
            gender = {"деревня": "femn", "станица": "femn", "слобода": "femn", "село": "neut"}.get(kind, "masc")
            return _adjective_nominative(word, gender)
        inflected = p.inflect({"nomn"})
        if inflected is not None and p.is_known:
            return "-".join(_capital(part) for part in str(inflected.word).split("-"))
    return _capital(word)


@functools.lru_cache(maxsize=20_000)
def _town_nominative(lower: str) -> str | None:
    for p in _morph().parse(lower)[:2]:  # type: ignore[attr-defined]
        if "Geox" in p.tag and p.tag.POS == "NOUN" and p.is_known:
            inflected = p.inflect({"nomn"})
            word = str(inflected.word if inflected is not None else p.normal_form)
            return "-".join(_capital(part) for part in word.split("-"))
    return None


def settlement_names(places: Sequence[str]) -> list[str]:
    """The settlements among ``places`` by their bare names ("деревня Стулово" -> "Стулово"), streets left out:
    what grouping compares as "the same village"."""
    kinds = {k for k in SETTLEMENT_KINDS.values() if k}
    streets = {word for word, _ in STREET_KINDS.values()}
    names = []
    for place in places:
        first, _, rest = place.partition(" ")
        if first in streets:
            continue
        names.append(rest if first in kinds and rest else place)
    return names


def towns_of_adjectives(tokens: Sequence[Token]) -> list[str]:
    """Towns named only by their adjective ("в Нижневартовской больнице", "подольских школьников"): the
    adjective's stem without -ский when pymorphy3 knows that as a place."""
    found: list[str] = []
    for t in tokens:
        if t.is_word and t.lemma.endswith("ский") and len(t.lemma) > 7:
            town = _town_nominative(t.lemma.removesuffix("ий"))
            if town is not None and town not in found:
                found.append(town)
    return found


def places_of(tokens: Sequence[Token], gazetteer_places: Sequence[str]) -> list[str]:
    """Every place a post names: its streets and kinded settlements first (the most precise), then the
    gazetteer's names not already said by them, then towns only pymorphy3 knows; when a post names nothing
    else, the towns its adjectives point to."""
    addresses = find_addresses(tokens)
    bare = {n.lower() for n in settlement_names(addresses)}
    places = addresses + [p for p in gazetteer_places if p.lower() not in bare and p not in addresses]
    places += find_towns(tokens, [*places, *settlement_names(places)])
    return places or towns_of_adjectives(tokens)
