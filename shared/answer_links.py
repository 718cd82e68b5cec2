"""Signed links to the answer page: the e-mail a clerk gets carries a link that opens that one incident for that
one department, with no password, until it expires. itsdangerous signs and times them (HMAC, URL-safe)."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "otklik.answer-link.v1"


class InvalidLink(ValueError):
    pass


@dataclass(frozen=True)
class LinkGrant:
    incident_id: str
    department_id: str


class AnswerLinks:
    def __init__(self, base_url: str, key: str, max_age_days: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.serializer = URLSafeTimedSerializer(key, salt=SALT)
        self.max_age_seconds = max_age_days * 86400

    def token(self, incident_id: str, department_id: str) -> str:
        return str(self.serializer.dumps([incident_id, department_id]))

    def url(self, incident_id: str, department_id: str) -> str:
        return f"{self.base_url}/answer/{self.token(incident_id, department_id)}"

    def read(self, token: str) -> LinkGrant:
        try:
            data = self.serializer.loads(token, max_age=self.max_age_seconds)
        except SignatureExpired as exc:
            raise InvalidLink("this link has expired: ask the coordinator for a new one") from exc
        except BadSignature as exc:
            raise InvalidLink("this link is not valid") from exc
        if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data)):
            raise InvalidLink("this link is not valid")
        return LinkGrant(data[0], data[1])
