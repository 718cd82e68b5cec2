"""Reading a source API's answer without trusting its size.

httpx reads a whole body into memory; a proxy's error page is small, but a broken or hostile server can send any
amount, and one source's answer must not take the ingest function (256 MB) and every other source down with it.
``send`` streams the body and stops at ``MAX_ANSWER_BYTES``: far more than any honest page (100 VK posts of 16,384
characters each with attachments are under 5 MB), far less than the function's memory.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from shared.domain.errors import PermanentError

MAX_ANSWER_BYTES = 16 * 1024 * 1024
# httpx's read timeout bounds each wait for the next bytes, not the whole body: a server dripping a byte every
# few seconds would hold the ingest run (and every source after it) to its own timeout. A whole answer gets this.
MAX_ANSWER_SECONDS = 60.0


class AnswerTooLarge(PermanentError):
    """The answer is larger than anything the API sends: not read, not retried within this run."""


def send(
    http: httpx.Client, method: str, url: str, *, what: str, limit: int | None = None, **kwargs: Any
) -> tuple[httpx.Response, bytes]:
    """``http.request(method, url, **kwargs)``, returning the response (status and headers; its body is read and
    closed) and the body, decoded from any Content-Encoding. ``AnswerTooLarge`` (naming ``what``) once the body is
    over ``limit`` bytes, whether announced or not; ``httpx.ReadTimeout`` once the answer has taken more than
    ``MAX_ANSWER_SECONDS``; httpx's own errors (``httpx.TransportError``: a transfer cut short, a timeout) as they
    come. ``limit`` None: ``MAX_ANSWER_BYTES``."""
    limit = MAX_ANSWER_BYTES if limit is None else limit
    deadline = time.monotonic() + MAX_ANSWER_SECONDS
    with http.stream(method, url, **kwargs) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise AnswerTooLarge(f"{what}: the answer is {int(declared):,} bytes, more than the {limit:,} accepted")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise AnswerTooLarge(f"{what}: the answer is more than the {limit:,} bytes accepted")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"{what}: the answer took more than {MAX_ANSWER_SECONDS:.0f} s", request=response.request
                )
    return response, bytes(body)
