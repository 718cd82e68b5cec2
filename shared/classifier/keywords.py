"""A small, transparent keyword classifier: word stems per category, danger phrases, non-complaint markers.

Stems match the start of a lower-cased word, which covers most Russian inflection ("ям" finds яма, ямы, ямой,
ямищу) without a morphology library. It is deliberately simple; the evidence it returns says which stems
decided, so a clerk can see why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.domain.models import Classification, Post, Priority

NAME = "keywords-v1"

CATEGORY_STEMS: dict[str, tuple[str, ...]] = {
    "roads": (
        "дорог",
        "ям",
        "выбоин",
        "колдобин",
        "асфальт",
        "ямочн",
        "светофор",
        "проезж",
        "обочин",
        "трасс",
        "разметк",
        "гололед",
        "гололёд",
        "лужа",
        "луж",
        "мост",
        "перекрест",
        "шоссе",
        "грейдер",
    ),
    "landscaping": (
        "двор",
        "детск",
        "площадк",
        "качел",
        "фонар",
        "освещен",
        "парк",
        "сквер",
        "дерев",
        "газон",
        "скамейк",
        "лавочк",
        "тротуар",
        "благоустр",
        "мусор на",
        "покос",
        "аллея",
        "клумб",
        "горк",
    ),
    "housing_utilities": (
        "горяч",
        "холодн",
        "вод",
        "отоплен",
        "батаре",
        "канализац",
        "подвал",
        "мусоропровод",
        "крыш",
        "кровл",
        "протека",
        "лифт",
        "ук$",
        "управляющ",
        "жкх$",
        "газ",
        "электричеств",
        "свет дали",
        "без света",
        "свет отключ",
        "мусор",
        "контейнер",
        "вывоз",
        "подъезд",
        "стояк",
        "труб",
        "тепл",
    ),
    "public_transport": (
        "автобус",
        "маршрут",
        "маршрутк",
        "троллейбус",
        "трамва",
        "остановк",
        "водител",
        "проезд",
        "расписан",
        "транспорт",
        "электричк",
    ),
    "healthcare": ("поликлиник", "больниц", "врач", "скор", "фельдшер", "талон", "лекарств", "медиц"),
    "education": ("школ", "детсад", "садик", "учител", "учебн", "класс", "кружк"),
    "social": ("пенси", "пособи", "соцзащит", "льгот", "многодет", "инвалид", "субсиди"),
    "ecology": ("свалк", "выброс", "дым", "вонь", "запах", "экологи", "сброс", "река", "вырубк"),
    "safety": ("собак", "стая", "бродяч", "хулиган", "краж", "заброшен", "полици", "драк"),
    "communications": ("связ", "интернет", "сотов", "вышк", "телефон", "почт", "телевиден"),
}

DANGER_PHRASES: tuple[str, ...] = (
    "открытый люк",
    "открытого люка",
    "люк открыт",
    "без крышки",
    "провалил",
    "провод",
    "искрит",
    "оголен",
    "оголён",
    "сосульк",
    "обруш",
    "рухнул",
    "падает",
    "упал",
    "глубокая яма",
    "ограждени",
    "перила",
    "опасно",
    "угроза",
    "чуть не",
    "провал",
    "торчит арматур",
    "обрыв",
)

# Posts that are not a request to the authorities: ads, thanks, announcements, lost pets, polls.
NOT_COMPLAINT_PHRASES: tuple[str, ...] = (
    "спасибо",
    "благодар",
    "скидк",
    "акция",
    "продам",
    "продаю",
    "куплю",
    "реклам",
    "приглаша",
    "потерял",
    "потерялась",
    "потерялся",
    "нашлась",
    "опрос",
    "голосуем",
    "поздравля",
    "вниманию жителей",
    "информируем",
    "уважаемые жители",
    "график",
    "афиша",
)
COMPLAINT_MARKERS: tuple[str, ...] = (
    "когда",
    "сколько можно",
    "почему",
    "невозможно",
    "не работает",
    "не убира",
    "нет ",
    "уже",
    "жалоб",
    "помогите",
    "просим",
    "прошу",
    "разберитесь",
    "безобрази",
    "!!",
    "?",
    "не вывоз",
    "ужас",
    "опасно",
    "дней",
    "неделю",
    "месяц",
)

_WORD = re.compile(r"[а-яёa-z0-9]+", re.IGNORECASE)


@dataclass(frozen=True)
class KeywordClassifier:
    name: str = NAME

    def classify(self, post: Post) -> Classification:
        text = " " + post.text.lower().replace("ё", "е") + " "
        words = _WORD.findall(text)
        scores: dict[str, list[str]] = {}
        for category, stems in CATEGORY_STEMS.items():
            hits = [s for s in stems if _matches(s, text, words)]
            if hits:
                scores[category] = hits
        danger = [p for p in DANGER_PHRASES if p.replace("ё", "е") in text]
        not_complaint = [p for p in NOT_COMPLAINT_PHRASES if p in text]
        complaint = [p for p in COMPLAINT_MARKERS if p in text]

        if scores:
            category = max(scores, key=lambda c: (len(scores[c]), -list(CATEGORY_STEMS).index(c)))
            hits = scores[category]
        else:
            category, hits = "other", []
        # A thank-you or an ad mentions the same things as a complaint; it is a complaint only when the complaint
        # markers outweigh the others, or it names a topic and has no marker of chatter at all.
        is_complaint = bool(danger) or len(complaint) > len(not_complaint) or (bool(scores) and not not_complaint)
        priority = Priority.CRITICAL if danger else Priority.NORMAL
        evidence = tuple(
            [f"{category}: {h}" for h in hits]
            + [f"danger: {p}" for p in danger]
            + [f"not a complaint: {p}" for p in not_complaint]
        )
        total = sum(len(v) for v in scores.values())
        confidence = round(len(hits) / total, 2) if total else 0.2
        return Classification(
            category=category,
            is_complaint=is_complaint,
            danger=bool(danger) and is_complaint,
            priority=priority if is_complaint else Priority.LOW,
            municipality=post.municipality_hint,
            places=(),
            confidence=confidence,
            evidence=evidence,
            classifier=self.name,
        )


def _matches(stem: str, text: str, words: list[str]) -> bool:
    """``стем`` matches words starting with it; ``слово$`` only that whole word; a phrase with spaces matches
    where it starts a word."""
    if stem.endswith("$"):
        return stem[:-1] in words
    if " " in stem:
        return re.search(r"(?<![а-яёa-z0-9])" + re.escape(stem), text) is not None
    return any(w.startswith(stem) for w in words)
