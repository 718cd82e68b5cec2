"""open311: incidents as an Open311 GeoReport v2 read API (services, requests), public open data without
personal data."""

import functions_framework
from flask import Request, Response

from shared import bootstrap
from shared.entrypoints.open311 import Open311Request


@functions_framework.http
def open311(request: Request) -> Response:
    answer = bootstrap.open311_api().handle(
        Open311Request(method=request.method, path=request.path, args=request.args.to_dict())
    )
    return Response(answer.body, status=answer.status, content_type=answer.content_type, headers=list(answer.headers))
