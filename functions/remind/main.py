"""remind: called by Cloud Scheduler every 15 minutes; reminds, flags overdue, escalates (services/remind.py)."""

import functions_framework
from flask import Request

from shared import bootstrap
from shared.entrypoints.scheduled import run_scheduled


@functions_framework.http
def remind(request: Request) -> tuple[dict[str, object], int]:
    return run_scheduled(request, bootstrap.run_remind)
