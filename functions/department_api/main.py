"""department_api: departments answer incidents (JSON API with a Bearer token per department) and clerks use
the answer page reached by a signed link from the notification e-mail."""

import functions_framework
from flask import Request, Response

from shared import bootstrap
from shared.entrypoints.department_api import HttpRequest


@functions_framework.http
def department_api(request: Request) -> Response:
    answer = bootstrap.department_api().handle(
        HttpRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=request.get_data(cache=True),
            form=request.form.to_dict(),
            query=request.args.to_dict(),
        )
    )
    return Response(answer.body, status=answer.status, content_type=answer.content_type, headers=list(answer.headers))
