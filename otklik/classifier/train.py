"""``otklik train``: fit the classifier's heads on the corpus and write shared/classifier/model.json.

scikit-learn is a development dependency only: the deployed function reads the weights with plain Python.

What it learns from: every ``corpus/*.jsonl`` (the drafted, cross-labelled posts and the operators' verdicts,
``corpus/feedback.jsonl``), all of it — the held-out split of ``make eval`` is measured on the synthetic corpus,
the real posts of ``make eval-real`` are what counts — plus, when ``../shared/data/`` is there, its real
social-network and news sentences as non-complaints (CC BY-SA 4.0, see README "Training data").

What it never learns from: the real development set (``../shared/eval/real_dev.jsonl``). A corpus line sharing a
run of :data:`SHINGLE` words with one of its texts is left out and counted, so a post copied or paraphrased from it
cannot leak in. The set chooses the thresholds (model selection is what it is for), and guards the output: a
model that scores lower on it than the shipped one is not written (``--force`` writes it anyway).

Thresholds, on the development set when it is there (else on cross-validated training predictions):
- ``screen``: the highest keeping :data:`SCREEN_RECALL` of complaints — the first stage only drops the obvious;
- ``complaint`` (second stage): the one with the best balanced accuracy (the mean of complaint recall and
  non-complaint specificity, then accuracy): real sets differ in how many of their posts are complaints (the
  development set 40 %, residents' portals nearly all), and a threshold tuned for plain accuracy on one share
  drops the complaints of the other;
- ``danger``: the lowest whose precision on the posts the screen keeps reaches :data:`DANGER_PRECISION` (the most
  hazards caught that the duty service can still trust), raised as far as it catches as many.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otklik import REPO_ROOT
from otklik.classifier.corpus import CORPUS, Labelled, load
from otklik.classifier.evaluate_real import NOT_A_COMPLAINT, RealPost, load_real, real_dev_path
from shared.classifier.features import features
from shared.classifier.model import MODEL
from shared.classifier.taxonomy import Taxonomy
from shared.classifier.text import tokenize

MODEL_NAME = "otklik-ru-v2"
LICENSED_DATA = REPO_ROOT.parent / "shared" / "data" / "ud_russian_taiga_social_news.jsonl"
CACHE = REPO_ROOT / ".otklik" / "cache" / "embeddings.json"
SCREEN_RECALL = 0.97
DANGER_PRECISION = 0.75  # the issue asks >= 0.70: aimed above it, as 35 real hazards give a coarse estimate
DENSE_SCALE = 5.0  # the embedding's weight against the sparse features (chosen on the development set)
C = 0.3  # chosen on the development set among 0.1-3 (stronger regularisation: the corpus is drafted)
PRUNE = 1e-3
SHINGLE = 8


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # a category id, or not_a_complaint
    danger: bool


def examples(corpus: Path = CORPUS, licensed: Path = LICENSED_DATA) -> list[Example]:
    found = [_example(p) for p in load(corpus)]
    if licensed.exists():
        for line in licensed.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.append(Example(str(json.loads(line)["text"]), NOT_A_COMPLAINT, False))
    return found


def _example(p: Labelled) -> Example:
    return Example(p.text, p.category if p.is_complaint else NOT_A_COMPLAINT, p.danger and p.is_complaint)


def _words(text: str) -> list[str]:
    return re.findall(r"[а-яёa-z0-9]+", text.lower().replace("ё", "е"))


def shingles(text: str) -> set[int]:
    ws = _words(text)
    return {hash(" ".join(ws[i : i + SHINGLE])) for i in range(max(len(ws) - SHINGLE + 1, 0))}


def without_dev(train: Sequence[Example], dev: Sequence[RealPost]) -> tuple[list[Example], int]:
    """The training examples sharing no run of SHINGLE words with a development text, and how many did."""
    seen: set[int] = set()
    for post in dev:
        seen |= shingles(post.text)
    dev_texts = {" ".join(_words(p.text)) for p in dev}
    kept = [e for e in train if not (shingles(e.text) & seen) and " ".join(_words(e.text)) not in dev_texts]
    return kept, len(train) - len(kept)


def embeddings(texts: Sequence[str], cache: Path = CACHE) -> list[list[float]]:
    """Sentence embeddings, cached by text (a training run embeds thousands of posts; most did not change)."""
    from shared.classifier.sentence import embed

    stored: dict[str, list[float]] = json.loads(cache.read_text("utf-8")) if cache.exists() else {}
    keys = [hashlib.sha256(t.encode()).hexdigest()[:24] for t in texts]
    missing = [(k, t) for k, t in zip(keys, texts, strict=True) if k not in stored]
    for start in range(0, len(missing), 64):
        chunk = missing[start : start + 64]
        for (k, _), vector in zip(chunk, embed([t for _, t in chunk]), strict=True):
            stored[k] = [round(v, 5) for v in vector]
    if missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored), "utf-8")
    return [stored[k] for k in keys]


def featurize(texts: Sequence[str], taxonomy: Taxonomy) -> list[dict[str, float]]:
    rows = []
    for text in texts:
        tokens = tokenize(text)
        rows.append(features(text, tokens, taxonomy.score(tokens)))
    return rows


def train(
    corpus: Path = CORPUS, out: Path = MODEL, dev_path: Path | None = None, force: bool = False
) -> dict[str, Any]:
    import numpy as np
    import scipy.sparse as sp  # type: ignore[import-untyped]
    from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.model_selection import cross_val_predict  # type: ignore[import-untyped]

    taxonomy = Taxonomy.load()
    dev_file = dev_path or real_dev_path()
    dev = load_real(dev_file) if dev_file.exists() else []
    data, left_out = without_dev(examples(corpus), dev)
    texts = [e.text for e in data]
    vectorizer = DictVectorizer()
    sparse = vectorizer.fit_transform(featurize(texts, taxonomy))
    names = [str(n) for n in vectorizer.get_feature_names_out()]
    dense = np.array(embeddings(texts)) * DENSE_SCALE
    both = sp.hstack([sparse, sp.csr_matrix(dense)]).tocsr()
    labels = np.array([e.label for e in data])
    complaint = (labels != NOT_A_COMPLAINT).astype(int)
    danger = np.array([int(e.danger) for e in data])

    def fit(x: Any, y: Any) -> Any:
        return LogisticRegression(C=C, max_iter=4000, class_weight="balanced").fit(x, y)

    # The category is learnt from complaints alone: what a non-complaint is "about" is not a department's.
    complaints = np.flatnonzero(complaint == 1)
    screen, is_complaint, hazard = fit(sparse, complaint), fit(both, complaint), fit(both, danger)
    category = fit(both[complaints], labels[complaints])
    if dev:
        dev_sparse = vectorizer.transform(featurize([p.text for p in dev], taxonomy))
        dev_both = sp.hstack([dev_sparse, sp.csr_matrix(np.array(embeddings([p.text for p in dev])) * DENSE_SCALE)])
        dev_both = dev_both.tocsr()
        truth = np.array([p.label for p in dev])
        p_screen = screen.predict_proba(dev_sparse)[:, 1]
        p_complaint = is_complaint.predict_proba(dev_both)[:, 1]
        p_danger = hazard.predict_proba(dev_both)[:, 1]
        truth_danger = np.array([p.danger for p in dev])
        chosen_on = "development set"
    else:
        truth = labels
        p_screen = cross_val_predict(fit(sparse, complaint), sparse, complaint, cv=5, method="predict_proba")[:, 1]
        p_complaint = cross_val_predict(fit(both, complaint), both, complaint, cv=5, method="predict_proba")[:, 1]
        p_danger = cross_val_predict(fit(both, danger), both, danger, cv=5, method="predict_proba")[:, 1]
        truth_danger = danger.astype(bool)
        chosen_on = "cross-validated training predictions"
    truly = truth != NOT_A_COMPLAINT
    screen_threshold = _recall_threshold(truly, p_screen, SCREEN_RECALL)
    complaint_threshold = _best_balanced_threshold(truly, p_complaint, p_screen >= screen_threshold)
    # A post the screen dropped is never dangerous; one the danger head flags is a complaint whatever else it is.
    # A post the screen dropped is never dangerous; one the danger head flags is a complaint whatever else it is.
    danger_threshold = _precision_threshold(
        truth_danger, np.where(p_screen >= screen_threshold, p_danger, 0.0), DANGER_PRECISION
    )

    classes = [str(c) for c in category.classes_]
    heads = {
        "screen": _head(screen, names, ["no", "yes"], 0, screen_threshold),
        "complaint": _head(is_complaint, names, ["no", "yes"], dense.shape[1], complaint_threshold),
        "category": _head(category, names, classes, dense.shape[1], 0.5),
        "danger": _head(hazard, names, ["no", "yes"], dense.shape[1], danger_threshold),
    }
    info = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_posts": len(data),
        "licensed_sentences": sum(1 for _ in LICENSED_DATA.open(encoding="utf-8")) if LICENSED_DATA.exists() else 0,
        "left_out_as_too_close_to_the_development_set": left_out,
        "features": len(names),
        "dense_scale": DENSE_SCALE,
        "c": C,
        "thresholds_chosen_on": chosen_on,
        "screen_threshold": screen_threshold,
        "complaint_threshold": complaint_threshold,
        "danger_threshold": danger_threshold,
    }
    model = {"name": MODEL_NAME, "info": info, "dense_scale": DENSE_SCALE, "heads": heads}
    return _write_if_not_worse(model, out, dev_file if dev else None, force)


def _write_if_not_worse(model: dict[str, Any], out: Path, dev_file: Path | None, force: bool) -> dict[str, Any]:
    info: dict[str, Any] = dict(model["info"])
    if dev_file is not None and out.exists():
        from otklik.classifier.evaluate_real import evaluate
        from shared.classifier.russian import RussianClassifier

        with tempfile.TemporaryDirectory() as tmp:
            candidate = Path(tmp) / "model.json"
            candidate.write_text(json.dumps(model, ensure_ascii=False), "utf-8")
            new = evaluate(dev_file, RussianClassifier.load(model=candidate))
        try:
            old = evaluate(dev_file, RussianClassifier.load(model=out))
        except (KeyError, ValueError):  # a model of an older format: nothing comparable to keep
            old = None
        info["development_set"] = {"accuracy": new["accuracy"], "macro_f1": new["macro_f1"]}
        if old is not None and new["accuracy"] < old["accuracy"] and not force:
            info["written"] = False
            info["refused"] = (
                f"accuracy on the development set {new['accuracy']} < the shipped model's {old['accuracy']}"
            )
            return info
    out.write_text(json.dumps(model, ensure_ascii=False), "utf-8")
    info["written"] = True
    return info


def _head(model: Any, names: Sequence[str], classes: list[str], dense: int, threshold: float) -> dict[str, Any]:
    coef = model.coef_
    weights: dict[str, list[float]] = {}
    for j, feature in enumerate(names):
        column = [float(coef[i, j]) for i in range(coef.shape[0])]
        if max(abs(v) for v in column) >= PRUNE:
            weights[feature] = [round(v, 4) for v in column]
    head: dict[str, Any] = {
        "classes": classes,
        "intercept": [round(float(v), 4) for v in model.intercept_],
        "weights": weights,
        "threshold": round(threshold, 4),
    }
    if dense:
        first = len(names)
        head["dense"] = [[round(float(coef[i, first + k]), 4) for i in range(coef.shape[0])] for k in range(dense)]
    return head


def _recall_threshold(truth: Any, p: Any, recall: float) -> float:
    positives = float(truth.sum()) or 1.0
    for t in [i / 100 for i in range(95, 1, -1)]:
        if float(((p >= t) & truth).sum()) / positives >= recall:
            return t
    return 0.02


def _best_balanced_threshold(truth: Any, p: Any, screened: Any) -> float:
    """The complaint head's threshold for the best balanced accuracy on the posts the screen kept."""
    best, best_t = -1.0, 0.5
    for t in [i / 100 for i in range(5, 96)]:
        said = screened & (p >= t)
        recall = float((said & truth).sum()) / max(float(truth.sum()), 1.0)
        specificity = float((~said & ~truth).sum()) / max(float((~truth).sum()), 1.0)
        score = (recall + specificity) / 2 + float((said == truth).mean()) / 100
        if score > best:
            best, best_t = score, t
    return best_t


def _precision_threshold(truth: Any, p: Any, precision: float) -> float:
    """The lowest threshold whose precision reaches ``precision``, then raised as far as it catches as many
    positives: 35 real hazards are few, and the lowest such threshold sits on the edge of ordinary complaints
    ("третий день нет горячей воды" just under it)."""
    steps = [i / 100 for i in range(1, 96)]

    def caught(t: float) -> tuple[float, float]:
        flagged = p >= t
        found = float((flagged & truth).sum())
        return found, (found / float(flagged.sum()) if flagged.sum() else 0.0)

    lowest = next((t for t in steps if caught(t)[1] >= precision), None)
    if lowest is None:
        return 0.95
    most = caught(lowest)[0]
    return max(t for t in steps if t >= lowest and caught(t)[0] == most and caught(t)[1] >= precision)


if __name__ == "__main__":
    print(json.dumps(train(), indent=2))
