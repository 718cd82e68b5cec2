"""A trained linear model read from ``model.json`` and applied in plain Python: no numpy or scikit-learn in the
model itself (the sentence encoder brings numpy, but only for the second stage). ``otklik train`` writes the file.

Heads (``otklik-ru-v2``):
- ``screen`` (binary, sparse features only): the first decision, complaint or not, on every post — cheap;
- ``complaint`` (binary), ``category`` (one of the taxonomy's ids, learnt from complaints) and ``danger``
  (binary): from the sparse features and the post's sentence embedding, run only on posts the screen kept.

A head is ``{"classes", "intercept", "weights": {feature: [w per class]}, "dense"?: [[w per class] per
dimension], "threshold"?}``; a binary head has one weight per feature (the positive class's logit), a multi-class
head one per class (softmax). ``dense_scale`` multiplies the embedding as it did in training.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = Path(__file__).resolve().parent / "model.json"


@dataclass(frozen=True)
class Head:
    classes: tuple[str, ...]
    intercept: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]
    threshold: float = 0.5
    dense: tuple[tuple[float, ...], ...] = field(default=())

    @property
    def binary(self) -> bool:
        return len(self.intercept) == 1

    def logits(
        self, x: Mapping[str, float], embedding: Sequence[float] | None = None, scale: float = 1.0
    ) -> list[float]:
        out = list(self.intercept)
        width = len(out)
        for feature, value in x.items():
            w = self.weights.get(feature)
            if w is not None:
                for i in range(width):
                    out[i] += w[i] * value
        if embedding is not None and self.dense:
            for v, w in zip(embedding, self.dense, strict=True):
                if v:
                    sv = v * scale
                    for i in range(width):
                        out[i] += w[i] * sv
        return out

    def probabilities(
        self, x: Mapping[str, float], embedding: Sequence[float] | None = None, scale: float = 1.0
    ) -> dict[str, float]:
        z = self.logits(x, embedding, scale)
        if self.binary:
            p = _sigmoid(z[0])
            return {self.classes[0]: 1 - p, self.classes[1]: p}
        top = max(z)
        exps = [math.exp(v - top) for v in z]
        total = sum(exps)
        return {c: e / total for c, e in zip(self.classes, exps, strict=True)}

    def positive(self, x: Mapping[str, float], embedding: Sequence[float] | None = None, scale: float = 1.0) -> float:
        """A binary head's probability of its positive class."""
        return self.probabilities(x, embedding, scale)[self.classes[1]]

    def explain(self, x: Mapping[str, float], chosen: str, top: int = 8) -> list[str]:
        """The sparse features that pushed most towards ``chosen``."""
        index, sign = (
            (0, 1.0 if chosen == self.classes[1] else -1.0) if self.binary else (self.classes.index(chosen), 1.0)
        )
        pushes = []
        for feature, value in x.items():
            w = self.weights.get(feature)
            if w is not None and sign * w[index] * value > 0:
                pushes.append((sign * w[index] * value, feature))
        return [f for _, f in heapq.nlargest(top, pushes)]


@dataclass(frozen=True)
class LinearModel:
    name: str
    heads: Mapping[str, Head]
    info: Mapping[str, Any]
    dense_scale: float = 1.0

    @classmethod
    def load(cls, path: Path = MODEL) -> LinearModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        heads = {
            name: Head(
                classes=tuple(str(c) for c in head["classes"]),
                intercept=tuple(float(v) for v in head["intercept"]),
                weights={f: tuple(float(v) for v in w) for f, w in head["weights"].items()},
                threshold=float(head.get("threshold", 0.5)),
                dense=tuple(tuple(float(v) for v in row) for row in head.get("dense") or ()),
            )
            for name, head in data["heads"].items()
        }
        return cls(
            name=str(data["name"]),
            heads=heads,
            info=data.get("info", {}),
            dense_scale=float(data.get("dense_scale", 1)),
        )


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)
