"""A trained linear model read from ``model.json`` and applied in plain Python: no numpy or scikit-learn in the
deployed function (they would cost most of the cold-start budget). ``otklik train`` writes the file.

Three heads: ``complaint`` (binary), ``category`` (one of the taxonomy's ids), ``danger`` (binary). A head is
``{"classes", "intercept", "weights": {feature: [w per class]}, "threshold"?}``; a binary head has one weight per
feature (the positive class's logit), a multi-class head one per class (softmax).
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from operator import add
from pathlib import Path
from typing import Any

MODEL = Path(__file__).resolve().parent / "model.json"


@dataclass(frozen=True)
class Head:
    classes: tuple[str, ...]
    intercept: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]
    threshold: float = 0.5

    @property
    def binary(self) -> bool:
        return len(self.intercept) == 1

    def logits(self, x: Mapping[str, float]) -> list[float]:
        out = list(self.intercept)
        for feature, value in x.items():
            w = self.weights.get(feature)
            if w is not None:
                for i, wi in enumerate(w):
                    out[i] += wi * value
        return out

    def probabilities(self, x: Mapping[str, float]) -> dict[str, float]:
        return self.from_logits(self.logits(x))

    def from_logits(self, z: list[float]) -> dict[str, float]:
        if self.binary:
            p = _sigmoid(z[0])
            return {self.classes[0]: 1 - p, self.classes[1]: p}
        top = max(z)
        exps = [math.exp(v - top) for v in z]
        total = sum(exps)
        return {c: e / total for c, e in zip(self.classes, exps, strict=True)}


@dataclass(frozen=True)
class LinearModel:
    name: str
    heads: Mapping[str, Head]
    info: Mapping[str, Any]

    def __post_init__(self) -> None:
        # All heads' weights of a feature in one tuple: one dict lookup per feature instead of one per head.
        packed: dict[str, list[float]] = {}
        offsets, width = {}, 0
        for name, head in self.heads.items():
            offsets[name] = (width, width + len(head.intercept))
            width += len(head.intercept)
        for name, head in self.heads.items():
            lo, hi = offsets[name]
            for feature, w in head.weights.items():
                packed.setdefault(feature, [0.0] * width)[lo:hi] = w
        object.__setattr__(self, "_packed", {f: tuple(w) for f, w in packed.items()})
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_width", width)

    def explain(self, x: Mapping[str, float], chosen: Mapping[str, str], top: int = 8) -> dict[str, list[str]]:
        """Per head, the features that pushed most towards its ``chosen`` class (one pass over ``x``)."""
        packed: dict[str, tuple[float, ...]] = self._packed  # type: ignore[attr-defined]
        columns = {}
        for name, cls in chosen.items():
            head, (lo, _) = self.heads[name], self._offsets[name]  # type: ignore[attr-defined]
            if head.binary:
                columns[name] = (lo, 1.0 if cls == head.classes[1] else -1.0)
            else:
                columns[name] = (lo + head.classes.index(cls), 1.0)
        found: dict[str, list[tuple[float, str]]] = {name: [] for name in chosen}
        for feature, value in x.items():
            w = packed.get(feature)
            if w is None:
                continue
            for name, (index, sign) in columns.items():
                push = sign * w[index] * value
                if push > 0:
                    found[name].append((push, feature))
        return {name: [f for _, f in heapq.nlargest(top, pushes)] for name, pushes in found.items()}

    def probabilities(self, x: Mapping[str, float]) -> dict[str, dict[str, float]]:
        """Per head, the probability of each class."""
        packed: dict[str, tuple[float, ...]] = self._packed  # type: ignore[attr-defined]
        z = [0.0] * self._width  # type: ignore[attr-defined]
        for feature, value in x.items():
            w = packed.get(feature)
            if w is not None:
                z = list(map(add, z, w)) if value == 1.0 else [a + b * value for a, b in zip(z, w, strict=True)]
        out = {}
        for name, head in self.heads.items():
            lo, hi = self._offsets[name]  # type: ignore[attr-defined]
            out[name] = head.from_logits([a + b for a, b in zip(z[lo:hi], head.intercept, strict=True)])
        return out

    @classmethod
    def load(cls, path: Path = MODEL) -> LinearModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        heads = {
            name: Head(
                classes=tuple(str(c) for c in head["classes"]),
                intercept=tuple(float(v) for v in head["intercept"]),
                weights={f: tuple(float(v) for v in w) for f, w in head["weights"].items()},
                threshold=float(head.get("threshold", 0.5)),
            )
            for name, head in data["heads"].items()
        }
        return cls(name=str(data["name"]), heads=heads, info=data.get("info", {}))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)
