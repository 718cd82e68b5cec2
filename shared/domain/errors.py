"""Errors the services raise. The split decides what a handler does with a message or a source."""


class OtklikError(Exception):
    """Base of all Otklik errors."""


class PermanentError(OtklikError):
    """The input can never succeed (malformed, unknown, contradictory): quarantine it and acknowledge."""


class TransientError(OtklikError):
    """Worth retrying (a server busy, a timeout, a rate limit): retry with backoff, or let Pub/Sub redeliver.
    ``retry_after`` is the wait the other side asked for (Telegram's ``retry_after``, HTTP Retry-After)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceAccessError(OtklikError):
    """A source refuses us until a person acts: a revoked token, a closed community, a bot removed from a chat.
    The source is stopped (health record ``stopped``) with ``action`` telling an operator what to do; other
    sources keep going."""

    def __init__(self, message: str, action: str) -> None:
        super().__init__(message)
        self.action = action


class InvalidTransition(PermanentError):
    pass


class ConfigError(OtklikError):
    """A configuration file or variable is wrong; the message names the file and the entry."""
