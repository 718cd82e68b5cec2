"""The operator-editable rules (``taxonomy.yaml``): lemma phrases with weights for each category, for complaint
and non-complaint signals, and for danger. ``Taxonomy.score`` says which phrases a post contains.

A phrase matches when its lemmas occur in order with at most ``MAX_GAP`` other words between consecutive ones;
``слово*`` matches any word starting with ``слово``. Each phrase counts once per post.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.classifier.text import Token, lemma_key, words
from shared.domain.errors import ConfigError
from shared.yaml_data import load_yaml

TAXONOMY = Path(__file__).resolve().parent / "taxonomy.yaml"
MAX_GAP = 2
DANGER_THRESHOLD = 3.0


@dataclass(frozen=True)
class Phrase:
    text: str
    lemmas: tuple[str, ...]
    weight: float


@dataclass
class Scores:
    categories: dict[str, float] = field(default_factory=dict)
    complaint: float = 0.0
    non_complaint: float = 0.0
    danger: float = 0.0
    resolved: bool = False
    evidence: dict[str, list[str]] = field(default_factory=dict)  # "roads" / "complaint" / "danger" -> phrases

    def best_category(self) -> tuple[str | None, float]:
        if not self.categories:
            return None, 0.0
        category = max(self.categories, key=lambda c: self.categories[c])
        return category, self.categories[category]


class Taxonomy:
    def __init__(
        self,
        categories: Mapping[str, Sequence[Phrase]],
        names: Mapping[str, str],
        complaint: Sequence[Phrase],
        non_complaint: Sequence[Phrase],
        danger: Sequence[Phrase],
        resolved_words: frozenset[str],
    ) -> None:
        self.categories = dict(categories)
        self.names = dict(names)
        self.complaint = list(complaint)
        self.non_complaint = list(non_complaint)
        self.danger = list(danger)
        self.resolved_words = resolved_words
        # Every phrase of every group, indexed by its first word: a post looks up only the phrases that can start
        # at one of its own lemmas (a few dozen) instead of trying all of them.
        self._groups: dict[str, list[Phrase]] = {f"category:{c}": list(p) for c, p in self.categories.items()}
        self._groups |= {"complaint": self.complaint, "non_complaint": self.non_complaint, "danger": self.danger}
        self._by_first: dict[str, list[tuple[str, Phrase]]] = {}
        self._starred: list[tuple[str, Phrase]] = []
        for group, phrases in self._groups.items():
            for phrase in phrases:
                if any(part.endswith("*") for part in phrase.lemmas):
                    self._starred.append((group, phrase))
                else:
                    self._by_first.setdefault(phrase.lemmas[0], []).append((group, phrase))

    @classmethod
    def load(cls, path: Path = TAXONOMY) -> Taxonomy:
        try:
            data: Any = load_yaml(path.read_text(encoding="utf-8"))
            categories = {
                str(cid): _phrases(spec.get("phrases") or {}, f"categories.{cid}.phrases")
                for cid, spec in (data.get("categories") or {}).items()
            }
            names = {str(cid): str(spec.get("name", cid)) for cid, spec in (data.get("categories") or {}).items()}
            complaint = data.get("complaint") or {}
            danger = data.get("danger") or {}
            return cls(
                categories,
                names,
                _phrases(complaint.get("markers") or {}, "complaint.markers"),
                _phrases(complaint.get("non_complaint") or {}, "complaint.non_complaint"),
                _phrases(danger.get("phrases") or {}, "danger.phrases"),
                frozenset(str(w).lower() for w in danger.get("resolved_words") or []),
            )
        except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def score(self, tokens: Sequence[Token]) -> Scores:
        ws = words(list(tokens))
        positions: dict[str, list[int]] = {}
        for i, token in enumerate(ws):
            for lemma in token.lemmas:
                positions.setdefault(lemma, []).append(i)
        hits: dict[str, list[Phrase]] = {}
        candidates = [pair for lemma in positions for pair in self._by_first.get(lemma, ())]
        for group, phrase in candidates:
            if _found(phrase.lemmas, positions):
                hits.setdefault(group, []).append(phrase)
        if self._starred:
            joined = " " + " ".join(t.lower for t in ws)
            for group, phrase in self._starred:
                # A one-word stem ("ямищ*") is a substring test on the joined words; longer ones walk the words.
                single = len(phrase.lemmas) == 1
                if (f" {phrase.lemmas[0][:-1]}" in joined) if single else _matches(ws, phrase.lemmas):
                    hits.setdefault(group, []).append(phrase)
        scores = Scores()
        for category in self.categories:
            found = hits.get(f"category:{category}", [])
            scores.categories[category] = sum(p.weight for p in found)
            if found:
                scores.evidence[category] = [p.text for p in found]
        for group, label in (("complaint", "complaint"), ("non_complaint", "not a complaint"), ("danger", "danger")):
            found = hits.get(group, [])
            setattr(scores, group, sum(p.weight for p in found))
            if found:
                scores.evidence[label] = [p.text for p in found]
        scores.resolved = any(t.lower in self.resolved_words for t in ws) and not _still_open(ws)
        return scores


def _found(parts: tuple[str, ...], positions: dict[str, list[int]]) -> bool:
    """``parts`` in order, each within ``MAX_GAP`` words of the one before."""
    starts = positions.get(parts[0], ())
    for start in starts:
        at, ok = start, True
        for part in parts[1:]:
            nxt = next((j for j in positions.get(part, ()) if at < j <= at + 1 + MAX_GAP), None)
            if nxt is None:
                ok = False
                break
            at = nxt
        if ok:
            return True
    return False


def _still_open(ws: Sequence[Token]) -> bool:
    """ "до сих пор", "так и не", "когда" keep a hazard open even next to "закрыли" ("обещали что закроют...")."""
    lowers = [t.lower for t in ws]
    return "когда" in lowers or "пор" in lowers or ("так" in lowers and "не" in lowers) or "обещали" in lowers


def _phrases(raw: Mapping[str, Any], where: str) -> list[Phrase]:
    phrases = []
    for text, weight in raw.items():
        key = tuple(
            part if part.endswith("*") else lemma
            for part, lemma in zip(str(text).lower().split(), _lemmas_keeping_stars(str(text)), strict=False)
        )
        if not key:
            raise ValueError(f"{where}: phrase {text!r} has no words")
        phrases.append(Phrase(str(text), key, float(weight)))
    return phrases


def _lemmas_keeping_stars(text: str) -> list[str]:
    out = []
    for part in text.lower().split():
        if part.endswith("*"):
            out.append(part)
        else:
            out.extend(lemma_key(part) or (part,))
    return out


def _word_matches(token: Token, part: str) -> bool:
    if part.endswith("*"):
        stem = part[:-1]
        return token.lower.startswith(stem) or token.lemma.startswith(stem)
    return part in token.lemmas


def _matches(ws: Sequence[Token], parts: tuple[str, ...]) -> bool:
    n = len(ws)
    for start in range(n):
        if not _word_matches(ws[start], parts[0]):
            continue
        position, ok = start, True
        for part in parts[1:]:
            nxt = next(
                (j for j in range(position + 1, min(n, position + 2 + MAX_GAP)) if _word_matches(ws[j], part)), None
            )
            if nxt is None:
                ok = False
                break
            position = nxt
        if ok:
            return True
    return False
