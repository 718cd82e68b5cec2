"""Where the problem is: streets with the house number, settlements and districts, normalised (issue 15)."""

from __future__ import annotations

import pytest

from otklik.classifier.evaluate_real import RealPost, place_found
from otklik.classifier.train import Example, without_dev
from shared.classifier.addresses import find_addresses, places_of, settlement_names
from shared.classifier.text import tokenize


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Сегодня на Спартаковской, 59 во всём доме запах газа", "улица Спартаковская, 59"),
        ("Киров, ул.Ленина,д.15 кв 3 течёт крыша", "улица Ленина, 15"),
        ("дом 15 по улице Ленина не убран", "улица Ленина, 15"),
        ("на Московской улице, 5 яма", "улица Московская, 5"),
        ("ул Карла Маркса 12а", "улица Карла Маркса, 12а"),
        ("пр-т Победы Революции 5/2", "проспект Победы Революции, 5/2"),
        ("в деревне Стулово нет света", "деревня Стулово"),
        ("в с. Быстрица не ходит автобус", "село Быстрица"),
        ("В Овсянниковском саду сломана ветка", "Овсянниковский сад"),
        ("Киров, Нововятский р-н, опять без воды", "Нововятский район"),
        ("по ул. 8 Марта д 4", "улица 8 Марта, 4"),
    ],
)
def test_places_are_normalised_to_the_nominative_with_their_kind(text: str, place: str) -> None:
    assert place in find_addresses(tokenize(text))


@pytest.mark.parametrize(
    "text",
    ["С Новым годом! На Пасху 15 человек", "На ул. Пушкина. Приехали", "Детский сад закрыт на карантин"],
)
def test_ordinary_words_are_not_places(text: str) -> None:
    found = find_addresses(tokenize(text))
    assert not any("Приехали" in p or "Детский" in p or "Пасх" in p for p in found)


def test_towns_pymorphy_knows_are_places_and_streets_are_not_settlements() -> None:
    places = places_of(tokenize("в Новомосковске на ул. Ленина, 3 вырубают лес"), [])
    assert places == ["улица Ленина, 3", "Новомосковск"]
    assert settlement_names(["улица Ленина, 3", "деревня Стулово", "Киров"]) == ["Стулово", "Киров"]


@pytest.mark.parametrize(
    ("label", "places", "found"),
    [
        ("Спартаковская", ["улица Спартаковская, 59"], True),
        ("улица Ломоносова, 27", ["улица Ломоносова, 27"], True),
        ("улица Ломоносова, 27", ["улица Ломоносова"], False),  # the house number is part of the place
        ("деревня Стулово", ["Стулово"], True),
        ("Новомосковск, микрорайон Залесный", ["Новомосковск"], True),
        ("Петербург", ["Москва"], False),
    ],
)
def test_a_labelled_place_is_found_by_its_name_and_house(label: str, places: list[str], found: bool) -> None:
    assert place_found(label, places) is found


def test_training_leaves_out_posts_too_close_to_the_development_set() -> None:
    dev = [
        RealPost(
            1,
            "Во дворе дома на улице Мира уже третью неделю стоит огромная лужа и никто не чинит",
            "x",
            False,
            "",
            "vk",
        )
    ]
    train = [
        Example("уже третью неделю стоит огромная лужа и никто не чинит, помогите", "landscaping", False),
        Example("Во дворе на Мира лужа", "landscaping", False),
    ]
    kept, left_out = without_dev(train, dev)
    assert left_out == 1 and kept == [train[1]]
