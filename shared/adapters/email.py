"""E-mail channel: one multipart message (plain text + HTML, Russian), sent over SMTP or the Amazon SES API.

``mail_sender(settings)`` picks the provider (``OTKLIK_MAIL_PROVIDER``). Both send exactly the message
``build_message`` makes, so a notification looks the same whichever way it leaves.
"""

from __future__ import annotations

import email.policy
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from shared.config import Settings
from shared.domain.errors import PermanentError, TransientError
from shared.ports import Delivery
from shared.services.texts import RenderedEmail, incident_email


def recipient(delivery: Delivery) -> str:
    to = delivery.department.email
    if to is None:
        raise PermanentError(f"department {delivery.department.id} has no email")
    return to


def build_message(delivery: Delivery, mail_from: str) -> EmailMessage:
    """The notification as a MIME message: multipart/alternative, plain text first, then HTML."""
    return compose(recipient(delivery), incident_email(delivery), delivery.event_id, delivery.urgent, mail_from)


def compose(to: str, rendered: RenderedEmail, event_id: str, urgent: bool, mail_from: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{event_id}@otklik>"  # same notification, same id: mail dedupes
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies back to us
    message["Content-Language"] = "ru"
    if urgent:
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    # base64 keeps the Cyrillic bodies 7-bit clean for any relay (and shorter than quoted-printable).
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="base64")
    return message


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("OTKLIK_SMTP_HOST is not set")
        self.settings = settings

    def send(self, delivery: Delivery) -> None:
        self._deliver(build_message(delivery, self.settings.mail_from), recipient(delivery))

    def send_rendered(self, to: str, rendered: RenderedEmail, event_id: str) -> None:
        self._deliver(compose(to, rendered, event_id, False, self.settings.mail_from), to)

    def _deliver(self, message: EmailMessage, to: str) -> None:
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"mail to {to} refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentError(f"mail to {to}: {exc.smtp_code} {exc.smtp_error!r}") from exc
            raise TransientError(f"mail to {to}: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"mail to {to}: {type(exc).__name__}: {exc}") from exc

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        host = s.smtp_host or ""
        timeout = s.http_timeout_seconds
        smtp: smtplib.SMTP
        if s.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(host, s.smtp_port, timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, s.smtp_port, timeout=timeout)
        try:
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
        except BaseException:
            smtp.close()  # a refused STARTTLS or login must not leave the connection open until the server drops it
            raise
        return smtp


# SES answers that retrying will not fix: the message, the sender identity or the account itself is refused.
_SES_PERMANENT = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerified",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "ConfigurationSetDoesNotExistException",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "ValidationError",
        "BadRequestException",
        "NotFoundException",
        "AccountSendingPausedException",
        "ConfigurationSetSendingPausedException",
        "SendingPausedException",
        "AccountSuspendedException",
    }
)
# Worth another try later: rate and quota limits, timeouts, AWS's own failures.
_SES_TRANSIENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServiceError",
    }
)


class SesSender:
    """Amazon SES (API v2) with the raw MIME message. Credentials come from the standard AWS environment
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, secrets in production), never from code."""

    def __init__(self, settings: Settings) -> None:
        # Imported here, not at the top: a function that sends over SMTP never loads boto3 on a cold start.
        import boto3  # type: ignore[import-untyped]
        from botocore import exceptions  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        self.settings = settings
        self._errors: Any = exceptions
        timeout = settings.http_timeout_seconds
        self._client: Any = boto3.client(
            "sesv2",
            region_name=settings.ses_region,
            endpoint_url=settings.ses_endpoint_url,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def send(self, delivery: Delivery) -> None:
        self._deliver(build_message(delivery, self.settings.mail_from), recipient(delivery))

    def send_rendered(self, to: str, rendered: RenderedEmail, event_id: str) -> None:
        self._deliver(compose(to, rendered, event_id, False, self.settings.mail_from), to)

    def _deliver(self, message: EmailMessage, to: str) -> None:
        errors = self._errors
        try:
            self._client.send_email(
                FromEmailAddress=self.settings.mail_from,
                Destination={"ToAddresses": [to]},
                Content={"Raw": {"Data": message.as_bytes(policy=email.policy.SMTP)}},
            )
        except errors.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            text = f"mail to {to} via SES: {code or status} {error.get('Message', '')}".rstrip()
            if code in _SES_TRANSIENT or status == 429 or status >= 500:
                raise TransientError(text) from exc
            if code in _SES_PERMANENT or 400 <= status < 500:
                raise PermanentError(text) from exc
            raise TransientError(text) from exc
        except (errors.NoCredentialsError, errors.PartialCredentialsError, errors.ParamValidationError) as exc:
            # Configuration, not the network: a person has to act, a retry cannot help.
            raise PermanentError(f"mail to {to} via SES: {type(exc).__name__}: {exc}") from exc
        except (errors.BotoCoreError, OSError) as exc:
            # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, ...
            raise TransientError(f"mail to {to} via SES: {type(exc).__name__}: {exc}") from exc


def mail_sender(settings: Settings) -> SmtpSender | SesSender | None:
    """The e-mail channel the settings configure, or None when there is none (smtp without OTKLIK_SMTP_HOST).
    Both also send a letter that is not about one incident (``send_rendered``: the daily digest)."""
    if settings.mail_provider == "ses":
        return SesSender(settings)
    if settings.smtp_host:
        return SmtpSender(settings)
    return None
