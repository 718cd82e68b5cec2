"""vk_callback: VK's Callback API pushes a community's new posts and comments here within seconds."""

import functions_framework
from flask import Request, Response

from shared import bootstrap
from shared.entrypoints.request_json import json_or_none


@functions_framework.http
def vk_callback(request: Request) -> Response:
    if request.method != "POST":
        return Response("use POST", status=405)
    answer = bootstrap.vk_callback_service().handle(json_or_none(request.get_data()))
    return Response(answer.body, status=answer.status, content_type=answer.content_type)
