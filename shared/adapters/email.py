"""E-mail channel over SMTP (STARTTLS, SSL, or plain on a loopback sink), Russian-language text."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from shared.config import Settings
from shared.domain.errors import PermanentError, TransientError
from shared.ports import Delivery
from shared.services.texts import incident_email


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("OTKLIK_SMTP_HOST is not set")
        self.settings = settings

    def send(self, delivery: Delivery) -> None:
        to = delivery.department.email
        if to is None:
            raise PermanentError(f"department {delivery.department.id} has no email")
        subject, body = incident_email(delivery.incident, delivery.department)
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = f"<{delivery.event_id}@otklik>"  # same notification, same id: mail dedupes
        message.set_content(body)
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
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
        if s.smtp_user and s.smtp_password:
            smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
        return smtp
