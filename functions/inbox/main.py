"""inbox: other systems (a city portal form, a chat bot) POST a citizen's post here (Bearer token)."""

import functions_framework
from flask import Request, Response

from shared import bootstrap
from shared.entrypoints.request_json import json_or_none


@functions_framework.http
def inbox(request: Request) -> Response:
    if request.method != "POST":
        return Response('{"error": "use POST"}', status=405, content_type="application/json")
    answer = bootstrap.inbox_service().handle(request.headers.get("Authorization"), json_or_none(request.get_data()))
    return Response(answer.body, status=answer.status, content_type=answer.content_type)
