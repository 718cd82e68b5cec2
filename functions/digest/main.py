"""digest: called by Cloud Scheduler each working morning; one e-mail per department listing its open incidents."""

import functions_framework
from flask import Request

from shared import bootstrap
from shared.entrypoints.scheduled import run_scheduled


@functions_framework.http
def digest(request: Request) -> tuple[dict[str, object], int]:
    return run_scheduled(request, bootstrap.run_digest)
