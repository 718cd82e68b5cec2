"""The keyword classifier on hand-written Russian posts, and its accuracy on the labelled demo walls."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.classifier.keywords import NAME, KeywordClassifier
from shared.domain.models import Classification, Post, Priority
from tests.builders import make_post

DEMO_WALLS = Path(__file__).resolve().parents[2] / "otklik" / "demo" / "data" / "vk_walls.json"

# Measured on otklik/demo/data/vk_walls.json (44 labelled posts, 35 complaints) when these tests were written:
# category accuracy on complaints 31/35 = 0.886, is_complaint accuracy 41/44 = 0.932. The floors leave a small
# margin for harmless tuning; a change that loses more than that must show why.
CATEGORY_ACCURACY_FLOOR = 0.85
IS_COMPLAINT_ACCURACY_FLOOR = 0.90


def classify(text: str, **post_fields: Any) -> Classification:
    return KeywordClassifier().classify(make_post(text=text, **post_fields))


def labelled_demo_posts() -> list[tuple[Post, dict[str, Any]]]:
    """Every labelled item of the demo walls as the post the VK connector would make of it, with its label."""
    data = json.loads(DEMO_WALLS.read_text(encoding="utf-8"))
    found = []
    for community in data["communities"]:
        for item in community["items"]:
            post = Post(
                source="vk",
                community=str(item["owner_id"]),
                post_id=str(item["id"]),
                text=item.get("text", ""),
                published_at=datetime.fromtimestamp(int(item["date"]), tz=UTC),
                url=f"https://vk.com/wall{item['owner_id']}_{item['id']}",
                municipality_hint=community.get("municipality"),
            )
            found.append((post, item["_label"]))
    return found


# --- categories and inflection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "На улице Ленина огромные ямы, машины ломаются! Когда отремонтируют?",
        "Третью неделю на Садовой не проехать за огромной ямой, администрация молчит!",
        "Сколько можно засыпать эту яму щебнем? Через неделю опять то же самое.",
    ],
    ids=["ямы", "ямой", "яму"],
)
def test_inflected_forms_of_pothole_are_roads(text: str) -> None:
    result = classify(text)
    assert result.category == "roads"
    assert result.is_complaint is True
    assert result.evidence == ("roads: ям",)  # the inflected word alone decided


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("В подъезде третий день нет горячей воды, управляющая компания не отвечает.", "housing_utilities"),
        ("Автобус 12 не пришёл ни разу за час, на остановке толпа. Почему?", "public_transport"),
        ("В поликлинике на Ленина нет талонов к врачу уже месяц. Куда обращаться?", "healthcare"),
        ("Стая бродячих собак у школы кидается на детей, когда это прекратится?", "safety"),
        ("За гаражами опять стихийная свалка, вонь на весь квартал! Сколько можно?", "ecology"),
    ],
)
def test_complaints_get_the_category_of_their_words(text: str, category: str) -> None:
    result = classify(text)
    assert result.category == category
    assert result.is_complaint is True
    assert result.priority is Priority.NORMAL


def test_capital_letters_and_yo_do_not_hide_a_stem() -> None:
    assert classify("ГОЛОЛЁД НА ТРАССЕ, КОГДА ПОСЫПЯТ?").category == "roads"


def test_a_post_without_known_words_is_other_with_low_confidence() -> None:
    result = classify("Кто-нибудь знает, во сколько сегодня салют?")
    assert result.category == "other"
    assert result.confidence < 0.5


# --- danger ---------------------------------------------------------------------------------------------


def test_open_manhole_is_dangerous_and_critical() -> None:
    result = classify("На ул. Шевченко у дома 12 открытый люк, дети ходят рядом! Помогите!")
    assert result.danger is True
    assert result.priority is Priority.CRITICAL
    assert result.is_complaint is True
    assert "danger: открытый люк" in result.evidence


def test_danger_makes_a_post_a_complaint_even_without_complaint_words() -> None:
    result = classify("Во дворе дома 3 оголенные провода торчат из столба.")
    assert result.danger is True
    assert result.is_complaint is True
    assert result.priority is Priority.CRITICAL


def test_an_ordinary_complaint_is_not_dangerous() -> None:
    result = classify("Когда уже покрасят лавочки в сквере? Облезли совсем.")
    assert result.danger is False
    assert result.priority is Priority.NORMAL


# --- not complaints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Продам гараж на ул. Шевченко, недорого. Звоните.",
        "Скидки до 50% в магазине «Обувь»! Акция до конца месяца.",
        "Огромное спасибо коммунальщикам за быстрый ремонт крыши в нашем доме!",
        "Благодарим дорожников за новый асфальт на Садовой, теперь ездить одно удовольствие.",
        "Хорошая погода сегодня.",
    ],
    ids=["ad-sale", "ad-discount", "thanks-roof", "thanks-asphalt", "chatter"],
)
def test_ads_thanks_and_chatter_are_not_complaints(text: str) -> None:
    result = classify(text)
    assert result.is_complaint is False
    assert result.danger is False
    assert result.priority is Priority.LOW


def test_evidence_says_why_a_post_is_not_a_complaint() -> None:
    result = classify("Огромное спасибо коммунальщикам за быстрый ремонт крыши в нашем доме!")
    assert "not a complaint: спасибо" in result.evidence


def test_thank_you_to_the_administration_is_not_a_complaint() -> None:
    assert classify("Спасибо администрации за новую детскую площадку во дворе!").is_complaint is False


def test_a_word_ending_in_uk_is_not_a_management_company() -> None:
    result = classify("Внук третий день не может дозвониться до поликлиники, когда это закончится?")
    assert result.category == "healthcare"


# --- what the result carries ----------------------------------------------------------------------------


def test_municipality_comes_from_the_sources_hint() -> None:
    assert classify("Яма на Садовой!", municipality_hint="kirov").municipality == "kirov"
    assert classify("Яма на Садовой!", municipality_hint=None).municipality is None


def test_evidence_names_the_matched_stems_of_the_category() -> None:
    result = classify("В подъезде нет горячей воды, управляющая компания молчит!")
    assert result.category == "housing_utilities"
    assert {"housing_utilities: горяч", "housing_utilities: вод", "housing_utilities: управляющ"} <= set(
        result.evidence
    )


def test_result_names_the_classifier_and_a_valid_confidence() -> None:
    result = classify("Яма на Садовой!")
    assert result.classifier == NAME == KeywordClassifier().name
    assert 0 <= result.confidence <= 1


def test_same_post_same_classification() -> None:
    post = make_post(text="Огромные ямы на Садовой, когда починят?")
    assert KeywordClassifier().classify(post) == KeywordClassifier().classify(post)


# --- the labelled demo walls ----------------------------------------------------------------------------


def test_demo_walls_are_labelled_enough_to_measure() -> None:
    labelled = labelled_demo_posts()
    assert len(labelled) >= 40
    assert sum(label["is_complaint"] for _, label in labelled) >= 30


def test_accuracy_on_labelled_demo_walls_stays_above_the_measured_floor() -> None:
    classifier = KeywordClassifier()
    results = [(classifier.classify(post), label) for post, label in labelled_demo_posts()]
    complaints = [(r, label) for r, label in results if label["is_complaint"]]
    category_accuracy = sum(r.category == label["category"] for r, label in complaints) / len(complaints)
    complaint_accuracy = sum(r.is_complaint == label["is_complaint"] for r, label in results) / len(results)
    print(f"category accuracy on complaints {category_accuracy:.3f}")
    print(f"is_complaint accuracy {complaint_accuracy:.3f}")
    assert category_accuracy >= CATEGORY_ACCURACY_FLOOR, f"category accuracy {category_accuracy:.3f}"
    assert complaint_accuracy >= IS_COMPLAINT_ACCURACY_FLOOR, f"is_complaint accuracy {complaint_accuracy:.3f}"
