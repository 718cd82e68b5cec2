"""The Russian-language classifier: what a post is about, whether it is a complaint, how dangerous it is, and
where — lemmas (pymorphy3), the operators' taxonomy, a trained linear model in two stages, a sentence encoder,
the gazetteers and the address rules together.

Decisions, and why each is made that way:
- **first stage, every post** (thousands a second): the ``screen`` head on the lemmas, the taxonomy's scores and
  the genre cues says whether the post could be a complaint. Its threshold keeps almost every complaint; what it
  drops (most news, notices, ads, chatter — the bulk of real traffic) is decided there, cheaply;
- **second stage, the posts it kept**: the post's sentence embedding joins the sparse features. The ``complaint``
  head decides complaint or not, the ``category`` head (learnt from complaints only) what it is about, the
  ``danger`` head whether it is an immediate hazard to people, unless the post says the hazard is dealt with
  ("люк закрыли"); a hazard is always a complaint. A category operators added to the taxonomy that the model does not
  know wins when its phrases outscore every other;
- **municipality**: a place named in the text that belongs to the source's municipality, else the first place
  named, else the source's municipality, else the coordinates; **places**: streets with the house number,
  settlements, districts (``addresses.py``) and the gazetteer's names;
- **evidence**: in Russian, the words and places that decided, for the operator and the clerk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from shared.classifier.addresses import places_of
from shared.classifier.features import features
from shared.classifier.model import MODEL, LinearModel
from shared.classifier.places import GAZETTEERS, Gazetteer
from shared.classifier.taxonomy import TAXONOMY, Scores, Taxonomy
from shared.classifier.text import tokenize
from shared.domain.categories import category_name
from shared.domain.models import Classification, Geo, Post, Priority

NAME = "ru-morph-linear"
EVIDENCE_WORDS = 4
Embedder = Callable[[list[str]], list[list[float]]]


def _sentence_embedder(texts: list[str]) -> list[list[float]]:
    from shared.classifier.sentence import embed  # numpy and the encoder's weights: second stage only

    return embed(texts)


class RussianClassifier:
    def __init__(
        self, taxonomy: Taxonomy, model: LinearModel, gazetteer: Gazetteer, embedder: Embedder = _sentence_embedder
    ) -> None:
        self.taxonomy = taxonomy
        self.model = model
        self.gazetteer = gazetteer
        self.embedder = embedder

    @classmethod
    def load(cls, taxonomy: Path = TAXONOMY, model: Path = MODEL, gazetteers: Path = GAZETTEERS) -> RussianClassifier:
        return cls(Taxonomy.load(taxonomy), LinearModel.load(model), Gazetteer.load(gazetteers))

    @property
    def name(self) -> str:
        return f"{NAME}/{self.model.name}"

    def classify(self, post: Post) -> Classification:
        return self.decide(post.text, post.source, post.municipality_hint, post.geo)

    def screen(self, text: str) -> float:
        """The first stage alone: the probability that ``text`` is a complaint (what ``make bench`` times)."""
        tokens = tokenize(text)
        return self.model.heads["screen"].positive(features(text, tokens, self.taxonomy.score(tokens)))

    def decide(
        self, text: str, source: str | None = None, municipality_hint: str | None = None, geo: Geo | None = None
    ) -> Classification:
        tokens = tokenize(text)
        scores = self.taxonomy.score(tokens)
        x = features(text, tokens, scores)
        heads = self.model.heads
        screen, complaint_head, category_head, danger_head = (
            heads["screen"],
            heads["complaint"],
            heads["category"],
            heads["danger"],
        )
        p_screen = screen.positive(x)
        evidence: list[str] = []

        if p_screen < screen.threshold:
            is_complaint, danger, p_danger = False, False, 0.0
            categories = category_head.probabilities(x)  # sparse only: the category a non-complaint is closest to
            p_complaint = p_screen
            why = screen.explain(x, screen.classes[0])
            evidence.append(f"не жалоба ({p_screen:.2f}, первый отбор): {_said(why, scores)}")
        else:
            embedding = self.embedder([text])[0]
            scale = self.model.dense_scale
            categories = category_head.probabilities(x, embedding, scale)
            p_complaint = complaint_head.positive(x, embedding, scale)
            p_danger = danger_head.positive(x, embedding, scale)
            danger = p_danger >= danger_head.threshold and not scores.resolved
            # A hazard is always a complaint: the team must not miss one because it was phrased as news.
            is_complaint = p_complaint >= complaint_head.threshold or danger
            why = complaint_head.explain(x, complaint_head.classes[1 if is_complaint else 0])
            label = "жалоба" if is_complaint else "не жалоба"
            evidence.append(f"{label} ({p_complaint:.2f}): {_said(why, scores)}")
        category = max(categories, key=lambda c: categories[c])
        rule_category, rule_score = scores.best_category()
        if (
            rule_category is not None
            and rule_category not in category_head.classes
            and rule_score > max((scores.categories.get(c, 0.0) for c in category_head.classes), default=0.0)
        ):
            category = rule_category
            evidence.append(f"категория «{category_name(category)}»: фразы операторов {scores.evidence.get(category)}")
        elif is_complaint:
            words = _said(category_head.explain(x, category), scores)
            evidence.append(f"категория «{category_name(category)}» ({categories[category]:.2f}): {words}")
        if danger:
            evidence.append(f"опасно ({p_danger:.2f}): {_said(danger_head.explain(x, danger_head.classes[1]), scores)}")
        elif is_complaint and scores.danger and scores.resolved:
            evidence.append("опасность устранена, судя по тексту")

        found = self.gazetteer.find(tokens, prefer=municipality_hint)
        municipality = self._municipality(found.municipalities, municipality_hint, geo)
        evidence.extend(found.evidence[:3])
        if municipality and municipality == municipality_hint and municipality not in found.municipalities:
            evidence.append(f"муниципалитет «{self._name_of(municipality)}»: по источнику")
        elif municipality and municipality not in found.municipalities:
            evidence.append(f"муниципалитет «{self._name_of(municipality)}»: по координатам")

        priority = Priority.CRITICAL if danger else Priority.NORMAL if is_complaint else Priority.LOW
        confidence = categories.get(category, 0.0) * p_complaint if is_complaint else 1 - p_complaint
        if danger:
            confidence = max(confidence, p_danger)
        return Classification(
            category=category,
            is_complaint=is_complaint,
            danger=danger,
            priority=priority,
            municipality=municipality,
            places=tuple(places_of(tokens, found.places)),
            confidence=round(min(max(confidence, 0.0), 1.0), 3),
            evidence=tuple(evidence),
            classifier=self.name,
        )

    def _name_of(self, municipality: str) -> str:
        m = self.gazetteer.municipalities.get(municipality)
        return m.name if m else municipality

    def _municipality(self, named: list[str], hint: str | None, geo: Geo | None) -> str | None:
        if hint and hint in named:
            return hint
        if named:
            same_region = [
                m for m in named if hint is None or self.gazetteer.region_of(m) == self.gazetteer.region_of(hint)
            ]
            return (same_region or named)[0]
        if hint:
            return hint
        if geo is not None:
            return self.gazetteer.locate(geo.lat, geo.lon)
        return None


def _said(features: list[str], scores: Scores) -> str:
    return ", ".join(_words(features, scores.evidence)) or "нет сильных слов"


def _words(features: list[str], phrases: dict[str, list[str]]) -> list[str]:
    """What a clerk reads for the model's strongest features: the words, or the taxonomy phrases behind a score."""
    shown: list[str] = []
    for feature in features:
        kind, _, rest = feature.partition(":")
        if kind in {"w", "b", "v"}:
            said = [rest.split(":")[0].replace("_", " ")]
        elif kind == "t":
            said = phrases.get(rest, [])
        elif kind == "c":
            said = phrases.get("complaint" if rest == "+" else "not a complaint", [])
        elif kind == "d":
            said = phrases.get("danger", [])
        elif kind == "g":
            said = [GENRE_WORDS.get(rest, "")]
        else:
            said = []
        shown += [s for s in said if s and s not in shown]
        if len(shown) >= EVIDENCE_WORDS:
            break
    return shown[:EVIDENCE_WORDS]


GENRE_WORDS = {
    "first": "пишет от первого лица",
    "first_rate": "пишет от первого лица",
    "second": "обращается к «вам»",
    "third_rate": "рассказ о других",
    "date": "дата события",
    "year": "год",
    "quote": "цитата",
    "headline": "заголовок",
}


@functools.cache
def default() -> RussianClassifier:
    return RussianClassifier.load()
