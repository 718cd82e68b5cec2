"""The classifier's parts on their own: lemmas, the operators' taxonomy, the gazetteers, the linear model, and the
`otklik classify` command's JSON Lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from otklik.classifier.stdio import classify_lines
from shared.classifier.model import Head
from shared.classifier.places import Gazetteer
from shared.classifier.taxonomy import Taxonomy
from shared.classifier.text import tokenize, words
from shared.domain.errors import ConfigError


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.load()


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load()


def test_words_become_lemmas_and_links_are_not_words() -> None:
    tokens = words(tokenize("Ямы, ямой и ямищу видно тут: https://vk.com/wall-1_2 [id7|Иван] 😡"))
    assert [t.lemma for t in tokens][:2] == ["яма", "яма"] or "яма" in tokens[0].lemmas
    assert not any("vk" in t.lower or t.lower == "иван" for t in tokens)


def test_verbs_carry_tense_and_requests() -> None:
    forms = {t.lower: t.form for t in tokenize("Уберите! Убрали. Уберут?") if t.form}
    assert forms == {"уберите": "impr", "убрали": "past", "уберут": "futr"}


def test_a_phrase_matches_in_any_inflection_with_words_between(taxonomy: Taxonomy) -> None:
    scores = taxonomy.score(tokenize("Люки у школы открыты, а один открытый совсем люк без крышки"))
    assert "открытый люк" in scores.evidence["danger"] and "без крышки" in scores.evidence["danger"]
    assert scores.danger >= 6


def test_words_too_far_apart_are_not_a_phrase(taxonomy: Taxonomy) -> None:
    scores = taxonomy.score(tokenize("Открытый вчера магазин у нас во дворе, а люк на месте"))
    assert "открытый люк" not in scores.evidence.get("danger", [])


def test_a_hazard_said_to_be_dealt_with_is_resolved_unless_still_open(taxonomy: Taxonomy) -> None:
    assert taxonomy.score(tokenize("Открытый люк наконец закрыли")).resolved is True
    assert taxonomy.score(tokenize("Обещали что закрыли люк, а он до сих пор открытый")).resolved is False


def test_an_operator_phrase_takes_effect_and_a_bad_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text("categories:\n  cemetery:\n    name: Кладбища\n    phrases: {кладбище: 3}\n", "utf-8")
    scores = Taxonomy.load(path).score(tokenize("На кладбищах опять не убран снег"))
    assert scores.best_category() == ("cemetery", 3.0)
    path.write_text("categories: [1, 2]\n", "utf-8")
    with pytest.raises(ConfigError):
        Taxonomy.load(path)


@pytest.mark.parametrize(
    ("text", "places", "municipality"),
    [
        ("В Кирово-Чепецком районе опять нет света", ["Кирово-Чепецкий район"], "kirovo-chepetsky-district"),
        ("г. Шахты, ул. Советская", ["Шахты"], "shakhty"),
        ("в Шахтах на Машзаводе темно", ["Шахты", "Машзавод"], "shakhty"),
        ("в д. Стулове опять без воды", ["Стулово"], None),
        ("в Аксайском р-не дороги нет", ["Аксайский район"], "aksaysky-district"),
        ("В Таганроге и в Новочеркасске", ["Таганрог", "Новочеркасск"], "taganrog"),
        ("Октябрьский район Ростова", ["Октябрьский район", "Ростов"], "rostov-na-donu"),
    ],
)
def test_places_in_the_text_with_inflection(
    gazetteer: Gazetteer, text: str, places: list[str], municipality: str | None
) -> None:
    found = gazetteer.find(tokenize(text))
    assert found.places == places
    if municipality is not None:
        assert found.municipalities[0] == municipality


def test_common_words_and_streets_are_not_places(gazetteer: Gazetteer) -> None:
    assert gazetteer.find(tokenize("шахты закрыли давно, уголь не добывают")).places == []
    assert gazetteer.find(tokenize("на ул. Кирова и проспекте Ленина")).municipalities == []


def test_an_unknown_village_after_its_kind_is_still_a_place(gazetteer: Gazetteer) -> None:
    found = gazetteer.find(tokenize("в с. Заречное третий день нет света"))
    assert "Заречное" in found.places or "Заречный" in found.places


def test_coordinates_find_the_nearest_municipality_within_its_radius(gazetteer: Gazetteer) -> None:
    assert gazetteer.locate(47.709, 40.216) == "shakhty"
    assert gazetteer.locate(58.6035, 49.668) == "kirov"
    assert gazetteer.locate(55.75, 37.62) is None  # Moscow is in neither region


def test_gazetteer_ids_are_unique_and_cover_the_seed_cities(gazetteer: Gazetteer) -> None:
    names = {m.name for m in gazetteer.municipalities.values()}
    assert {"Киров", "Шахты", "Ростов-на-Дону", "Кирово-Чепецкий район"} <= names
    assert len(gazetteer.municipalities) >= 90


def test_linear_heads_are_logistic_and_softmax() -> None:
    binary = Head(classes=("no", "yes"), intercept=(0.0,), weights={"a": (2.0,)})
    assert binary.probabilities({})["yes"] == pytest.approx(0.5)
    assert binary.probabilities({"a": 1.0})["yes"] == pytest.approx(1 / (1 + 2.718281828**-2), rel=1e-6)
    multi = Head(classes=("x", "y", "z"), intercept=(0.0, 0.0, 0.0), weights={"b": (1.0, 0.0, -1.0)})
    p = multi.probabilities({"b": 1.0})
    assert sum(p.values()) == pytest.approx(1.0) and p["x"] > p["y"] > p["z"]
    assert multi.explain({"a": 1.0, "b": 1.0}, "x") == ["b"] and binary.explain({"a": 1.0}, "no") == []


def test_a_head_adds_the_scaled_embedding_to_the_sparse_logits() -> None:
    head = Head(classes=("no", "yes"), intercept=(0.0,), weights={"a": (1.0,)}, dense=((2.0,), (-1.0,)))
    assert head.logits({"a": 1.0}) == [1.0]  # no embedding: the first stage's view
    assert head.logits({"a": 1.0}, [0.5, 1.0], scale=2.0) == pytest.approx([1.0 + 2.0 - 2.0])
    assert head.positive({}, [1.0, 0.0]) == pytest.approx(1 / (1 + 2.718281828**-2), rel=1e-6)


def test_classify_command_answers_each_line_in_order() -> None:
    lines = io.StringIO(
        '{"text": "Открытый люк у школы №5 в Шахтах, дети ходят рядом!", "source": "vk"}\n'
        "\n"
        '{"text": "Продам гараж", "geo": {"lat": 58.6, "lon": 49.67}}\n'
        '{"source": "vk"}\n'
    )
    out = io.StringIO()
    assert classify_lines(lines, out) == 1  # the third line has no text
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["danger"] is True and first["priority"] == "critical" and first["municipality"] == "shakhty"
    assert set(first) == {
        "category",
        "is_complaint",
        "danger",
        "priority",
        "municipality",
        "places",
        "confidence",
        "evidence",
    }
    assert second["is_complaint"] is False and second["municipality"] == "kirov"
    assert third["line"] == 4 and "text" in third["error"]
