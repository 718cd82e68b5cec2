"""``otklik classify``: JSON Lines in, JSON Lines out, one answer per input line in the same order."""

from __future__ import annotations

import json
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.classifier.russian import RussianClassifier
from shared.domain.models import Geo


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str
    source: str | None = None
    community: str | None = None
    geo: Geo | None = None
    municipality: str | None = Field(default=None, description="the source's municipality id, if known")


def classify_lines(lines: TextIO, out: TextIO) -> int:
    classifier = RussianClassifier.load()
    failed = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        answer: dict[str, Any]
        try:
            request = ClassifyRequest.model_validate_json(line)
        except ValidationError as exc:
            failed = True
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors())
            answer = {"line": number, "error": reason}
        else:
            decided = classifier.decide(request.text, request.source, request.municipality, request.geo)
            answer = decided.model_dump(mode="json", exclude={"classifier"})
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
        out.flush()
    return 1 if failed else 0
