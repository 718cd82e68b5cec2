"""The HTTP shape shared by the functions Cloud Scheduler calls (remind, digest): POST, an optional JSON object
body (``{"now": ...}`` in local mode), the run's report as JSON, 400 with the reason for a request that can
never succeed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Request

from shared.domain.errors import PermanentError
from shared.entrypoints.request_json import json_or_none


def run_scheduled(
    request: Request, run: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> tuple[dict[str, Any], int]:
    if request.method != "POST":
        return {"error": "use POST"}, 405
    body = json_or_none(request.get_data())
    if body is not None and not isinstance(body, dict):
        return {"error": "body must be a JSON object"}, 400
    try:
        return run(body), 200
    except PermanentError as exc:
        return {"error": str(exc)}, 400
