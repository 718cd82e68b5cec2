"""ingest: called by Cloud Scheduler; fetches new posts from every configured source and publishes them."""

import functions_framework
from flask import Request

from shared import bootstrap


@functions_framework.http
def ingest(request: Request) -> tuple[dict[str, object], int]:
    if request.method != "POST":
        return {"error": "use POST"}, 405
    return bootstrap.run_ingest(), 200
