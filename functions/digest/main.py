"""digest: called by Cloud Scheduler each working morning; one e-mail per department listing its open incidents."""

import functions_framework
from flask import Request

from shared import bootstrap
from shared.domain.errors import PermanentError


@functions_framework.http
def digest(request: Request) -> tuple[dict[str, object], int]:
    if request.method != "POST":
        return {"error": "use POST"}, 405
    body = request.get_json(silent=True) if request.data else None
    if body is not None and not isinstance(body, dict):
        return {"error": "body must be a JSON object"}, 400
    try:
        return bootstrap.run_digest(body), 200
    except PermanentError as exc:
        return {"error": str(exc)}, 400
