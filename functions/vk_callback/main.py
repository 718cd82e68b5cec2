"""vk_callback: VK's Callback API pushes a community's new posts and comments here within seconds."""

import functions_framework
from flask import Request, Response

from shared import bootstrap


@functions_framework.http
def vk_callback(request: Request) -> Response:
    if request.method != "POST":
        return Response("use POST", status=405)
    answer = bootstrap.vk_callback_service().handle(request.get_json(silent=True))
    return Response(answer.body, status=answer.status, content_type=answer.content_type)
