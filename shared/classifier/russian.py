"""The Russian-language classifier: what a post is about, whether it is a complaint, how dangerous it is, and
where — lemmas (pymorphy3), the operators' taxonomy, a trained linear model and the gazetteers together.

Decisions, and why each is made that way:
- **category**: the model's most probable category (the taxonomy's scores are among its features). A category
  operators added to the taxonomy that the model does not know wins when its phrases outscore every other;
- **is_complaint**: the model's probability against its tuned threshold; a hazard is always a complaint
  (the team must not miss one because it was phrased as news);
- **danger**: the taxonomy's danger phrases reaching ``DANGER_THRESHOLD``, or the model's danger probability
  over its threshold (tuned for recall on cross-validated training data) — unless the post says the hazard is
  already dealt with ("люк закрыли");
- **municipality**: a place named in the text that belongs to the source's municipality, else the first place
  named, else the source's municipality, else the coordinates;
- **evidence**: the phrases, words and places that decided, for the clerk.
"""

from __future__ import annotations

import functools
from pathlib import Path

from shared.classifier.features import features
from shared.classifier.model import MODEL, LinearModel
from shared.classifier.places import GAZETTEERS, Gazetteer
from shared.classifier.taxonomy import DANGER_THRESHOLD, TAXONOMY, Taxonomy
from shared.classifier.text import tokenize
from shared.domain.models import Classification, Geo, Post, Priority

NAME = "ru-morph-linear"
EVIDENCE_WORDS = 4


class RussianClassifier:
    def __init__(self, taxonomy: Taxonomy, model: LinearModel, gazetteer: Gazetteer) -> None:
        self.taxonomy = taxonomy
        self.model = model
        self.gazetteer = gazetteer

    @classmethod
    def load(cls, taxonomy: Path = TAXONOMY, model: Path = MODEL, gazetteers: Path = GAZETTEERS) -> RussianClassifier:
        return cls(Taxonomy.load(taxonomy), LinearModel.load(model), Gazetteer.load(gazetteers))

    @property
    def name(self) -> str:
        return f"{NAME}/{self.model.name}"

    def classify(self, post: Post) -> Classification:
        return self.decide(post.text, post.source, post.municipality_hint, post.geo)

    def decide(
        self, text: str, source: str | None = None, municipality_hint: str | None = None, geo: Geo | None = None
    ) -> Classification:
        tokens = tokenize(text)
        scores = self.taxonomy.score(tokens)
        x = features(text, tokens, scores, source)
        evidence: list[str] = []

        every = self.model.probabilities(x)
        category_head = self.model.heads["category"]
        probabilities = every["category"]
        category = max(probabilities, key=lambda c: probabilities[c])
        by_operators = False
        rule_category, rule_score = scores.best_category()
        if (
            rule_category is not None
            and rule_category not in category_head.classes
            and rule_score > max((scores.categories.get(c, 0.0) for c in category_head.classes), default=0.0)
        ):
            category, probabilities[rule_category], by_operators = rule_category, 1.0, True

        danger_head = self.model.heads["danger"]
        p_danger = every["danger"][danger_head.classes[1]]
        by_rules = scores.danger >= DANGER_THRESHOLD
        danger = (by_rules or p_danger >= danger_head.threshold) and not scores.resolved

        complaint_head = self.model.heads["complaint"]
        p_complaint = every["complaint"][complaint_head.classes[1]]
        is_complaint = danger or p_complaint >= complaint_head.threshold

        chosen = {"complaint": complaint_head.classes[1 if is_complaint else 0]}
        if not by_operators:
            chosen["category"] = category
        if danger and not by_rules:
            chosen["danger"] = danger_head.classes[1]
        why = self.model.explain(x, chosen)
        if by_operators:
            evidence.append(f"category {category}: operators' phrases {scores.evidence.get(category)}")
        else:
            category_words = ", ".join(_words(why["category"], scores.evidence)) or "no strong words"
            evidence.append(f"category {category}: {category_words}")
        if danger:
            danger_words = scores.evidence.get("danger", []) if by_rules else _words(why["danger"], scores.evidence)
            how = "rules" if by_rules else f"model {p_danger:.2f}"
            evidence.append(f"danger ({how}): {', '.join(danger_words)}")
        label = "complaint" if is_complaint else "not a complaint"
        evidence.append(f"{label} ({p_complaint:.2f}): {', '.join(_words(why['complaint'], scores.evidence))}")

        found = self.gazetteer.find(tokens, prefer=municipality_hint)
        municipality = self._municipality(found.municipalities, municipality_hint, geo)
        evidence.extend(found.evidence[:3])
        if municipality and municipality == municipality_hint and municipality not in found.municipalities:
            evidence.append(f"municipality {municipality}: the source's")
        elif municipality and municipality not in found.municipalities:
            evidence.append(f"municipality {municipality}: from the coordinates")

        priority = Priority.CRITICAL if danger else Priority.NORMAL if is_complaint else Priority.LOW
        confidence = probabilities[category] * (p_complaint if is_complaint else 1 - p_complaint)
        if danger:
            confidence = max(confidence, p_danger if not by_rules else 0.9)
        return Classification(
            category=category,
            is_complaint=is_complaint,
            danger=danger,
            priority=priority,
            municipality=municipality,
            places=tuple(found.places),
            confidence=round(min(max(confidence, 0.0), 1.0), 3),
            evidence=tuple(evidence),
            classifier=self.name,
        )

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
        else:
            said = []
        shown += [s for s in said if s not in shown]
        if len(shown) >= EVIDENCE_WORDS:
            break
    return shown[:EVIDENCE_WORDS]


@functools.cache
def default() -> RussianClassifier:
    return RussianClassifier.load()
